//! STFT / iSTFT: round trip, frame counts, bin placement and a hand-computed frame.

mod common;

use splitflow::dsp::{Spectrogram, Stft, StftConfig, WindowKind};

/// Deterministic uniform noise in [-1, 1) (xorshift64*).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    common::white(n, seed)
}

fn stft(n_fft: usize, hop: usize, window: WindowKind, center: bool) -> Stft {
    Stft::new(StftConfig {
        n_fft,
        hop,
        window,
        center,
    })
    .expect("valid config")
}

#[test]
fn round_trip_is_exact_to_float_rounding() {
    let combos = [(2048, 512), (1024, 256), (512, 128), (400, 100), (401, 100), (256, 128)];
    let lengths = [1usize, 2, 3, 7, 1000, 44101];
    let mut worst = 0.0f32;
    for &(n_fft, hop) in &combos {
        for window in [WindowKind::Hann, WindowKind::SqrtHann, WindowKind::Hamming] {
            let st = stft(n_fft, hop, window, true);
            for (k, &len) in lengths.iter().enumerate() {
                let x = noise(len, (n_fft * 31 + hop + k) as u64);
                let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let spec = st.forward(&x);
                assert_eq!(spec.n_frames, st.n_frames(len));
                assert_eq!(spec.n_bins, n_fft / 2 + 1);
                let y = st.inverse(&spec, len);
                assert_eq!(y.len(), len);
                let err = x.iter().zip(&y).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                worst = worst.max(err / peak);
                assert!(
                    err <= 1e-6 * peak,
                    "n_fft {n_fft} hop {hop} {window:?} len {len}: max err {err:e} (peak {peak})"
                );
            }
        }
    }
    println!("worst round-trip error relative to peak: {worst:e}");
}

#[test]
fn rectangular_window_round_trip() {
    let st = stft(64, 16, WindowKind::Rectangular, true);
    let x = noise(1001, 5);
    let y = st.inverse(&st.forward(&x), x.len());
    let err = x.iter().zip(&y).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-6, "{err:e}");
}

#[test]
fn frame_counts() {
    let c = stft(2048, 512, WindowKind::Hann, true);
    assert_eq!(c.n_frames(0), 0);
    assert_eq!(c.n_frames(1), 1);
    assert_eq!(c.n_frames(511), 1);
    assert_eq!(c.n_frames(512), 2);
    assert_eq!(c.n_frames(44100), 1 + 44100 / 512);
    for len in [1usize, 2, 7, 1000, 44101] {
        assert_eq!(c.n_frames(len), 1 + len / 512);
    }
    // Odd n_fft: pad n_fft/2 each side as torch, so 1 + (len - 1) / hop.
    let odd = stft(401, 100, WindowKind::Hann, true);
    assert_eq!(odd.n_frames(1000), 1 + 999 / 100);
    assert_eq!(odd.n_frames(1001), 1 + 1000 / 100);
    // Not centred.
    let nc = stft(1024, 256, WindowKind::Hann, false);
    assert_eq!(nc.n_frames(0), 0);
    assert_eq!(nc.n_frames(5), 1);
    assert_eq!(nc.n_frames(1024), 1);
    assert_eq!(nc.n_frames(1279), 1);
    assert_eq!(nc.n_frames(1280), 2);
    assert_eq!(nc.n_frames(10_000), 1 + (10_000 - 1024) / 256);
}

#[test]
fn empty_signal() {
    let st = stft(512, 128, WindowKind::Hann, true);
    let spec = st.forward(&[]);
    assert_eq!(spec.n_frames, 0);
    assert!(spec.data.is_empty());
    assert_eq!(st.inverse(&spec, 0), Vec::<f32>::new());
    assert_eq!(st.inverse(&spec, 5), vec![0.0; 5]);
}

#[test]
fn inverse_pads_with_zeros_past_coverage() {
    let st = stft(256, 64, WindowKind::Hann, true);
    let x = noise(1000, 9);
    let y = st.inverse(&st.forward(&x), 5000);
    assert_eq!(y.len(), 5000);
    assert!(y[1000 + 256..].iter().all(|&v| v == 0.0));
    let short = st.inverse(&st.forward(&x), 10);
    assert!(short.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn non_centred_round_trip_interior() {
    let st = stft(512, 128, WindowKind::Hann, false);
    let x = noise(5000, 3);
    let y = st.inverse(&st.forward(&x), x.len());
    // Interior samples (covered by the full overlap) are exact.
    let covered = (st.n_frames(x.len()) - 1) * 128 + 512;
    for i in 512..covered - 512 {
        assert!((x[i] - y[i]).abs() < 1e-6, "sample {i}");
    }
    // Uncovered tail is zero; the very first sample (window 0) too.
    assert_eq!(y[0], 0.0);
    assert!(y[covered..].iter().all(|&v| v == 0.0));
}

#[test]
fn sine_lands_in_its_bin() {
    let (sr, n_fft, hop) = (16_000.0f64, 1024usize, 256usize);
    let bin = 37usize;
    let freq = bin as f64 * sr / n_fft as f64;
    let x: Vec<f32> = (0..16_000)
        .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / sr).sin() as f32)
        .collect();
    let st = stft(n_fft, hop, WindowKind::Hann, true);
    let spec = st.forward(&x);
    for t in 4..spec.n_frames - 4 {
        let mags: Vec<f32> = spec.frame(t).iter().map(|c| c.norm()).collect();
        let argmax = (0..mags.len()).max_by(|&a, &b| mags[a].total_cmp(&mags[b])).unwrap();
        assert_eq!(argmax, bin, "frame {t}");
        // Hann main lobe: amplitude * sum(w) / 2 = n_fft / 4 in the bin, n_fft / 8 next to it.
        assert!((mags[bin] / (n_fft as f32 / 4.0) - 1.0).abs() < 1e-3, "{}", mags[bin]);
        assert!((mags[bin + 1] / (n_fft as f32 / 8.0) - 1.0).abs() < 1e-2);
        // Everything away from the main lobe is rounding noise.
        let leak = mags
            .iter()
            .enumerate()
            .filter(|(k, _)| k.abs_diff(bin) > 1)
            .fold(0.0f32, |m, (_, &v)| m.max(v));
        assert!(leak < 1e-3 * mags[bin], "leak {leak}");
    }
}

/// Naive DFT of one frame of the reflect-padded, windowed signal.
fn naive_frame(x: &[f32], n_fft: usize, hop: usize, t: usize, window: &[f32]) -> Vec<(f64, f64)> {
    let pad = n_fft / 2;
    let len = x.len() as isize;
    let reflect = |i: isize| -> f64 {
        let j = if i < 0 {
            -i
        } else if i >= len {
            2 * (len - 1) - i
        } else {
            i
        };
        x[j as usize] as f64
    };
    let frame: Vec<f64> = (0..n_fft)
        .map(|n| reflect((t * hop + n) as isize - pad as isize) * window[n] as f64)
        .collect();
    (0..=n_fft / 2)
        .map(|k| {
            frame.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, &v)| {
                let ph = -2.0 * std::f64::consts::PI * (k * n) as f64 / n_fft as f64;
                (re + v * ph.cos(), im + v * ph.sin())
            })
        })
        .collect()
}

#[test]
fn frames_match_naive_dft() {
    let (n_fft, hop) = (400usize, 100usize);
    let x = noise(2000, 11);
    for window in [WindowKind::Hann, WindowKind::Hamming, WindowKind::SqrtHann] {
        let st = stft(n_fft, hop, window, true);
        let win = window.build(n_fft);
        // Hann periodic window values.
        if window == WindowKind::Hann {
            assert_eq!(win[0], 0.0);
            assert!((win[n_fft / 2] - 1.0).abs() < 1e-7);
            assert!((win[n_fft / 4] - 0.5).abs() < 1e-6);
        }
        let spec: Spectrogram = st.forward(&x);
        // Frame 0 and the last exercise the left / right reflect padding.
        for t in [0, 1, 7, spec.n_frames - 1] {
            let want = naive_frame(&x, n_fft, hop, t, &win);
            for (k, (c, w)) in spec.frame(t).iter().zip(&want).enumerate() {
                let err = ((c.re as f64 - w.0).powi(2) + (c.im as f64 - w.1).powi(2)).sqrt();
                assert!(err < 1e-4, "{window:?} frame {t} bin {k}: {c} vs {w:?}");
            }
        }
    }
}

#[test]
fn short_signals_use_repeated_reflection() {
    let st = stft(8, 2, WindowKind::Rectangular, true);
    // Length 1: the padded signal is constant, so frame 0 is a DC of 8 * x0.
    let spec = st.forward(&[0.5]);
    assert_eq!(spec.n_frames, 1);
    assert!((spec.data[0].re - 4.0).abs() < 1e-6);
    assert!(spec.data[1..].iter().all(|c| c.norm() < 1e-6));
    // Length 3 with pad 4: [x0 x1 x2 x1 | x0 x1 x2 | x1 x0 x1 x2] (numpy's reflect); DC of
    // frame 0 = sum of the first 8 padded samples = 2 x0 + 4 x1 + 2 x2.
    let x = [1.0f32, 10.0, 100.0];
    let spec = st.forward(&x);
    assert_eq!(spec.n_frames, 2);
    assert!((spec.data[0].re - (2.0 + 40.0 + 200.0)).abs() < 1e-3);
}

#[test]
fn rejects_bad_configs() {
    for (n_fft, hop) in [(0, 1), (512, 0), (512, 513)] {
        assert!(
            Stft::new(StftConfig {
                n_fft,
                hop,
                window: WindowKind::Hann,
                center: true
            })
            .is_err()
        );
    }
}

#[test]
fn stft_can_be_shared_across_threads() {
    let st = stft(512, 128, WindowKind::Hann, true);
    let x = noise(10_000, 1);
    let want = st.inverse(&st.forward(&x), x.len());
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| st.inverse(&st.forward(&x), x.len())))
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}
