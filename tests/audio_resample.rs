//! Sample-rate conversion: accuracy, delay compensation, exact lengths, streaming.

use splitflow::audio::resample::{StreamResampler, output_len, resample};

const PI2: f64 = 2.0 * std::f64::consts::PI;

/// Sum of unit sines at `freqs` (scaled to peak <= 0.9) sampled at `rate`, `n` frames;
/// sample `i` is the signal at time `(i - shift) / rate`.
fn tones(freqs: &[f64], rate: u32, n: usize, shift: f64) -> Vec<f32> {
    let g = 0.9 / freqs.len() as f64;
    (0..n)
        .map(|i| {
            let t = (i as f64 - shift) / rate as f64;
            (freqs.iter().map(|f| (PI2 * f * t + 0.3 * f).sin()).sum::<f64>() * g) as f32
        })
        .collect()
}

/// Applies a raised-cosine fade of `len` frames at both ends.
fn fade(x: &mut [f32], len: usize) {
    let n = x.len();
    for i in 0..len {
        let g = (0.5 - 0.5 * (std::f64::consts::PI * i as f64 / len as f64).cos()) as f32;
        x[i] *= g;
        x[n - 1 - i] *= g;
    }
}

/// Error of `got` against `want` in dB relative to `want`, ignoring `edge` frames each end.
fn error_db(want: &[f32], got: &[f32], edge: usize) -> f64 {
    assert_eq!(want.len(), got.len());
    let (mut s, mut e) = (0.0f64, 0.0f64);
    for (w, g) in want[edge..want.len() - edge].iter().zip(&got[edge..got.len() - edge]) {
        s += (*w as f64).powi(2);
        e += (*w as f64 - *g as f64).powi(2);
    }
    10.0 * (e / s).log10()
}

/// Small deterministic PRNG (xorshift), so the tests need no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn signal(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (self.next() % 20001) as f32 / 10000.0 - 1.0).collect()
    }
}

fn round_trip(rate: u32, mid: u32, freqs: &[f64]) -> f64 {
    let n = 3 * rate as usize;
    let mut x = tones(freqs, rate, n, 0.0);
    fade(&mut x, rate as usize / 20);
    let x = vec![x.clone(), x.iter().map(|v| -0.5 * v).collect()];
    let down = resample(&x, rate, mid).unwrap();
    assert_eq!(down[0].len() as u64, output_len(n as u64, rate, mid));
    let back = resample(&down, mid, rate).unwrap();
    assert_eq!(back.len(), 2);
    // ceil(ceil(n*mid/rate)*rate/mid) may exceed n by a frame or so.
    assert!(back[0].len() >= n && back[0].len() <= n + 3, "{}", back[0].len());
    let db = (0..2)
        .map(|c| error_db(&x[c], &back[c][..n], 0))
        .fold(f64::MIN, f64::max);
    println!("round trip {rate} -> {mid} -> {rate}: error {db:.1} dB");
    db
}

#[test]
fn round_trip_44100_16000_is_accurate() {
    let db = round_trip(44100, 16000, &[110.0, 440.0, 1234.5, 3000.0, 5500.0, 6900.0]);
    assert!(db < -60.0, "round-trip error {db:.1} dB is not below -60 dB");
}

#[test]
fn round_trip_48000_44100_is_accurate() {
    let db = round_trip(48000, 44100, &[100.0, 1000.0, 5000.0, 12000.0, 19000.0]);
    assert!(db < -60.0, "round-trip error {db:.1} dB is not below -60 dB");
}

/// One-way conversions against the ideal signal at the output rate: checks that the delay
/// compensation is exact (a fraction of a sample off would cost tens of dB).
#[test]
fn one_way_output_is_time_aligned() {
    for (from, to, freqs) in [
        (44100, 16000, &[440.0, 1234.5, 3000.0, 6500.0][..]),
        (16000, 44100, &[440.0, 1234.5, 3000.0, 6500.0]),
        (44100, 48000, &[440.0, 5000.0, 15000.0]),
        (48000, 44100, &[440.0, 5000.0, 15000.0]),
        (44100, 22050, &[440.0, 5000.0, 9000.0]),
        (8000, 192000, &[300.0, 1000.0, 3300.0]),
        (192000, 8000, &[300.0, 1000.0, 3300.0]),
        (11025, 96000, &[300.0, 1000.0, 4400.0]),
    ] {
        let x = tones(freqs, from, from as usize, 0.0);
        let y = resample(&[x], from, to).unwrap();
        assert_eq!(y[0].len() as u64, output_len(from as u64, from, to));
        let want = tones(freqs, to, y[0].len(), 0.0);
        // Ignore the edges, where the input starts and stops abruptly.
        let db = error_db(&want, &y[0], to as usize / 20);
        println!("{from} -> {to}: error {db:.1} dB");
        assert!(db < -80.0, "{from} -> {to}: error {db:.1} dB");
    }
}

#[test]
fn streaming_equals_one_shot() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for (from, to) in [(44100, 16000), (16000, 44100), (48000, 44100), (44100, 44100)] {
        let n = 20000 + rng.below(5000);
        let x = vec![rng.signal(n), rng.signal(n)];
        let whole = resample(&x, from, to).unwrap();
        for _ in 0..3 {
            let mut r = StreamResampler::new(from, to, 2).unwrap();
            assert_eq!(r.rates(), (from, to));
            let mut out = vec![Vec::new(), Vec::new()];
            let mut pos = 0;
            while pos < n {
                // Mostly small pieces, sometimes empty, sometimes large.
                let len = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(8),
                    2 => rng.below(700),
                    _ => rng.below(6000),
                }
                .min(n - pos);
                let piece: Vec<Vec<f32>> = x.iter().map(|c| c[pos..pos + len].to_vec()).collect();
                pos += len;
                let got = r.process(&piece).unwrap();
                assert_eq!(got.len(), 2);
                assert_eq!(got[0].len(), got[1].len());
                for (o, g) in out.iter_mut().zip(got) {
                    o.extend(g);
                }
            }
            for (o, g) in out.iter_mut().zip(r.finish().unwrap()) {
                o.extend(g);
            }
            assert_eq!(out, whole, "{from} -> {to}: streaming differs from one-shot");
        }
    }
}

#[test]
fn output_length_is_exact() {
    let mut rng = Rng(12345);
    for (from, to) in [
        (44100, 16000),
        (16000, 44100),
        (48000, 44100),
        (8000, 192000),
        (192000, 8000),
        (22050, 22050),
    ] {
        for n in [0usize, 1, 2, 3, 17, 441, 1001, 4097, 44101] {
            let x = vec![rng.signal(n)];
            let y = resample(&x, from, to).unwrap();
            let want = output_len(n as u64, from, to) as usize;
            assert_eq!(y[0].len(), want, "{from} -> {to}, {n} frames");
            assert!(y[0].iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn single_frame_and_empty_streams() {
    let mut r = StreamResampler::new(44100, 48000, 3).unwrap();
    assert!(r.finish().unwrap().iter().all(Vec::is_empty));

    let mut r = StreamResampler::new(44100, 48000, 1).unwrap();
    let a = r.process(&[vec![0.5]]).unwrap();
    let b = r.finish().unwrap();
    assert_eq!(a[0].len() + b[0].len(), 2); // ceil(48000 / 44100)

    // An impulse lands where it should: at t = 0 the output peaks at frame 0.
    let y = resample(&[vec![1.0]], 8000, 16000).unwrap();
    assert_eq!(y[0].len(), 2);
    assert!(y[0][0] > 0.5 && y[0][0].abs() > y[0][1].abs(), "{:?}", y[0]);
}

#[test]
fn equal_rates_are_identity() {
    let x = vec![vec![0.1, -0.2, 0.3], vec![1.0, 0.0, -1.0]];
    assert_eq!(resample(&x, 44100, 44100).unwrap(), x);
}

#[test]
fn wrong_channel_count_is_an_error() {
    let mut r = StreamResampler::new(44100, 16000, 2).unwrap();
    assert!(r.process(&[vec![0.0; 10]]).is_err());
    assert!(r.process(&[vec![0.0; 10], vec![0.0; 9]]).is_err());
    assert!(StreamResampler::new(0, 16000, 2).is_err());
}
