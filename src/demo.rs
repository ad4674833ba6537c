//! The demo mixture: a short synthetic song (drums + harmonic instruments) rendered by code,
//! so the bundled assets and the end-to-end tests need no recorded audio. The same function
//! renders `assets/demo/` (`cargo run --release --example make_assets`) and the small clips
//! the tests generate on the fly.

use std::f32::consts::PI;

use crate::audio::Planar;

/// The rendered stems of the demo song; `mixture = drums + harmonic` sample for sample.
pub struct DemoSong {
    pub rate: u32,
    pub drums: Planar,
    pub harmonic: Planar,
}

impl DemoSong {
    /// The sum of the stems.
    pub fn mixture(&self) -> Planar {
        self.drums
            .iter()
            .zip(&self.harmonic)
            .map(|(d, h)| d.iter().zip(h).map(|(a, b)| a + b).collect())
            .collect()
    }
}

/// Deterministic white noise in [-1, 1) (xorshift64).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn midi_hz(note: f32) -> f32 {
    440.0 * 2f32.powf((note - 69.0) / 12.0)
}

/// Adds `f(t)` for t in [0, len) seconds at `start` seconds, scaled by (left, right) gains.
fn add(out: &mut Planar, rate: u32, start: f32, len: f32, gains: (f32, f32), mut f: impl FnMut(f32) -> f32) {
    let n = out[0].len();
    let s = ((start * rate as f32) as usize).min(n);
    let e = (s + (len * rate as f32) as usize).min(n);
    let (left, right) = out.split_at_mut(1);
    for (k, (l, r)) in left[0][s..e].iter_mut().zip(&mut right[0][s..e]).enumerate() {
        let v = f(k as f32 / rate as f32);
        *l += gains.0 * v;
        *r += gains.1 * v;
    }
}

/// Renders `seconds` of the demo song, stereo, at `rate` Hz: 120 BPM, drums (kick, snare,
/// hi-hat from decaying noise and pitch sweeps) over an A minor - F - C - G progression (pad
/// chords, bass line, a plucked melody). Peak of the mixture is about 0.8.
pub fn render(rate: u32, seconds: f32) -> DemoSong {
    let n = (rate as f32 * seconds).round() as usize;
    let mut drums = vec![vec![0.0f32; n]; 2];
    let mut harmonic = vec![vec![0.0f32; n]; 2];
    let mut noise = Noise(0x5EED_1234_ABCD_0001);
    let beat = 0.5f32; // 120 BPM
    let beats = (seconds / beat).ceil() as usize;

    for b in 0..beats {
        let t0 = b as f32 * beat;
        // Kick on 1 and 3, plus a pickup on the "and" of 4 every other bar.
        if b % 2 == 0 || (b % 8 == 7) {
            let start = if b % 8 == 7 { t0 + beat / 2.0 } else { t0 };
            let mut phase = 0.0f32;
            add(&mut drums, rate, start, 0.25, (0.75, 0.75), |t| {
                // A fast pitch drop and a beater click: a tight, punchy kick.
                let f = 50.0 + 150.0 * (-t * 45.0).exp();
                phase += 2.0 * PI * f / rate as f32;
                phase.sin() * (-t * 20.0).exp() + 0.5 * noise.next() * (-t * 400.0).exp()
            });
        }
        // Snare on 2 and 4: noise burst with a tonal body.
        if b % 2 == 1 {
            let mut lp = 0.0f32;
            add(&mut drums, rate, t0, 0.2, (0.55, 0.65), |t| {
                lp += 0.6 * (noise.next() - lp);
                let body = (2.0 * PI * 185.0 * t).sin() * (-t * 30.0).exp();
                (lp * 0.8 * (-t * 18.0).exp() + 0.5 * body) * 0.8
            });
        }
        // Closed hi-hat on every eighth: high-passed noise, very short.
        for half in 0..2 {
            let mut prev = 0.0f32;
            let accent = if half == 0 { 0.22 } else { 0.14 };
            add(
                &mut drums,
                rate,
                t0 + half as f32 * beat / 2.0,
                0.06,
                (accent * 0.6, accent),
                |t| {
                    let x = noise.next();
                    let hp = x - prev;
                    prev = x;
                    hp * (-t * 70.0).exp()
                },
            );
        }
    }

    // Chords (A minor, F, C, G), one per bar of 2 s.
    let chords: [[f32; 3]; 4] = [
        [57.0, 60.0, 64.0],
        [53.0, 57.0, 60.0],
        [55.0, 60.0, 64.0],
        [55.0, 59.0, 62.0],
    ];
    let roots = [45.0f32, 41.0, 48.0, 43.0];
    let bars = (seconds / (4.0 * beat)).ceil() as usize;
    for bar in 0..bars {
        let t0 = bar as f32 * 4.0 * beat;
        let chord = chords[bar % 4];
        for (k, &note) in chord.iter().enumerate() {
            let f = midi_hz(note);
            let detune = 1.0 + 0.002 * (k as f32 - 1.0);
            let pan = 0.35 + 0.15 * k as f32;
            add(&mut harmonic, rate, t0, 2.0, (1.0 - pan, pan), |t| {
                let env = (t / 0.15).min(1.0) * (((2.0 - t) / 0.2).clamp(0.0, 1.0));
                let x = (1..=4)
                    .map(|h| (2.0 * PI * f * detune * h as f32 * t).sin() / (h * h) as f32)
                    .sum::<f32>();
                0.09 * env * x
            });
        }
        // Bass: root on every beat, slightly staccato.
        for b in 0..4 {
            let f = midi_hz(roots[bar % 4]);
            add(&mut harmonic, rate, t0 + b as f32 * beat, beat, (0.5, 0.5), |t| {
                let env = (t / 0.01).min(1.0) * ((beat - t) / 0.05).clamp(0.0, 1.0);
                0.35 * env * ((2.0 * PI * f * t).sin() + 0.3 * (4.0 * PI * f * t).sin())
            });
        }
        // Melody: a plucked note on each beat from the chord, an octave up.
        for b in 0..4 {
            let f = midi_hz(chord[(b + bar) % 3] + 12.0);
            add(&mut harmonic, rate, t0 + b as f32 * beat, beat, (0.6, 0.4), |t| {
                let env = (t / 0.005).min(1.0) * (-t * 4.0).exp();
                0.12 * env * ((2.0 * PI * f * t).sin() + 0.4 * (6.0 * PI * f * t).sin())
            });
        }
    }

    let mut song = DemoSong { rate, drums, harmonic };
    let peak = song.mixture().iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        let g = 0.8 / peak;
        for c in song.drums.iter_mut().chain(song.harmonic.iter_mut()) {
            c.iter_mut().for_each(|v| *v *= g);
        }
    }
    song
}

/// Writes `seconds` of the demo mixture as stereo 44.1 kHz 16-bit WAV (a 10 s rendering
/// repeated, so memory stays small): long inputs for the benchmarks.
pub fn write_long(path: &std::path::Path, seconds: f32) -> crate::Result<()> {
    use crate::audio::{AtomicAudioWriter, OutputSpec, SampleFormat};
    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 2,
        format: SampleFormat::Int(16),
    };
    let mut w = AtomicAudioWriter::create(path, spec)?;
    let piece = render(44_100, 10.0).mixture();
    let mut left = seconds;
    while left > 0.0 {
        let n = (left.min(10.0) * 44_100.0) as usize;
        let chunk: Vec<Vec<f32>> = piece.iter().map(|c| c[..n].to_vec()).collect();
        w.write_f32(&chunk)?;
        left -= 10.0;
    }
    w.finish(true)
}
