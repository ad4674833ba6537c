//! Writes a synthetic scoring benchmark track: `cargo run --release --example make_score_track
//! -- OUT_DIR [SECONDS]`. Four broadband stereo 44.1 kHz sources (filtered noise with
//! different spectra and envelopes) under OUT_DIR/references/track/ and estimates under
//! OUT_DIR/estimates/track/: each estimate is its source plus 10% of the next source, a
//! little noise, and a 2-sample delay. 32-bit float WAV.

use std::path::PathBuf;

use splitflow::audio::{AtomicAudioWriter, OutputSpec, SampleFormat};

fn main() -> splitflow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "score-bench".into()));
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(240.0);
    let rate = 44_100u32;
    let n = (seconds * rate as f64) as usize;
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    // Source k: noise through a one-pole low-pass with its own cutoff, amplitude-modulated.
    let sources: Vec<Vec<Vec<f32>>> = (0..4)
        .map(|k| {
            let a = [0.05f32, 0.2, 0.5, 0.9][k];
            (0..2)
                .map(|_| {
                    let mut y = 0.0f32;
                    (0..n)
                        .map(|i| {
                            y += a * (noise() - y);
                            let env =
                                0.6 + 0.4 * ((i as f32 / rate as f32) * (0.5 + k as f32) * std::f32::consts::TAU).sin();
                            0.5 * y * env
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let spec = OutputSpec {
        sample_rate: rate,
        channels: 2,
        format: SampleFormat::Float(32),
    };
    for (k, src) in sources.iter().enumerate() {
        let other = &sources[(k + 1) % 4];
        let est: Vec<Vec<f32>> = src
            .iter()
            .zip(other)
            .map(|(s, o)| {
                (0..n)
                    .map(|i| if i >= 2 { s[i - 2] } else { 0.0 } + 0.1 * o[i] + 0.01 * noise())
                    .collect()
            })
            .collect();
        for (kind, audio) in [("references", src), ("estimates", &est)] {
            let mut w = AtomicAudioWriter::create(&dir.join(kind).join("track").join(format!("s{k}.wav")), spec)?;
            w.write_f32(audio)?;
            w.finish(true)?;
        }
    }
    println!("wrote {seconds} s, 4 sources, stereo, 44.1 kHz under {}", dir.display());
    Ok(())
}
