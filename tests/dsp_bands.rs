//! The band representation (src/dsp/bands.rs): filterbank shape, features, ideal masks and
//! the application of band masks at native rates.

mod common;

use common::lcg;
use splitflow::dsp::bands::{BandConfig, Bands, native_stft_config};

fn bands() -> Bands {
    Bands::new(BandConfig::default()).unwrap()
}

fn noise(seed: u64, n: usize, amp: f32) -> Vec<f32> {
    lcg(n, seed).into_iter().map(|v| v as f32 * amp).collect()
}

fn sine(freq: f32, rate: u32, n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

/// `(low, low + high)`: two tones of amplitude 0.3.
fn two_tones(f_low: f32, f_high: f32, rate: u32, n: usize) -> (Vec<f32>, Vec<f32>) {
    let low = sine(f_low, rate, n, 0.3);
    let mix = low.iter().zip(sine(f_high, rate, n, 0.3)).map(|(a, b)| a + b).collect();
    (low, mix)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn centres_are_mel_spaced_and_cover_the_band() {
    let b = bands();
    let c = b.centres();
    assert_eq!(c.len(), 128);
    assert!(c.windows(2).all(|w| w[1] > w[0]));
    assert!(c[0] > 0.0 && c[0] < 30.0, "lowest centre {}", c[0]);
    assert!(c[127] > 10_000.0 && c[127] < 11_025.0, "top centre {}", c[127]);
    // Equal mel steps: consecutive centre differences in mel are constant.
    let mel = |f: f32| 2595.0 * (1.0 + f / 700.0).log10();
    let d0 = mel(c[1]) - mel(c[0]);
    for w in c.windows(2) {
        assert!((mel(w[1]) - mel(w[0]) - d0).abs() < 1e-2);
    }
}

#[test]
fn features_of_a_sine_peak_at_its_band_and_are_loudness_normalised() {
    let b = bands();
    let n = 22_050;
    let x = sine(1000.0, 22_050, n, 0.3);
    let f = b.features(&x);
    assert_eq!(f.n_frames, 1 + n / 256);
    assert_eq!(f.values.len(), 128 * f.n_frames);
    let rms = 0.3 / 2f32.sqrt();
    assert!((f.gain - 0.1 / rms).abs() < 1e-3, "gain {}", f.gain);
    // Mid frame: the band whose centre is nearest 1 kHz holds the maximum.
    let t = f.n_frames / 2;
    let col: Vec<f32> = (0..128).map(|k| f.values[k * f.n_frames + t]).collect();
    let peak = (0..128).max_by(|&i, &j| col[i].total_cmp(&col[j])).unwrap();
    let nearest = (0..128)
        .min_by(|&i, &j| {
            (b.centres()[i] - 1000.0)
                .abs()
                .total_cmp(&(b.centres()[j] - 1000.0).abs())
        })
        .unwrap();
    assert!(peak.abs_diff(nearest) <= 1, "peak band {peak}, nearest {nearest}");
    // Scaling the input changes nothing (loudness normalisation), compression is power 0.3.
    let g = b.features(&x.iter().map(|v| v * 0.01).collect::<Vec<_>>());
    assert!(max_abs_diff(&f.values, &g.values) < 1e-3 * col[peak]);
    // Analytic peak: a Hann-windowed sine of amplitude A gives |X| = A·n_fft/4 at its bin;
    // the band is a weighted mean of bins so it is below that, and above a tenth of it.
    let a = 0.3 * f.gain * 1024.0 / 4.0;
    assert!(col[peak] < a.powf(0.3) && col[peak] > (a / 10.0).powf(0.3));
}

#[test]
fn ideal_mask_of_target_alone_is_one_and_of_silence_zero() {
    let b = bands();
    let x = noise(3, 5000, 0.2);
    let zero = vec![0.0; x.len()];
    let m = b.ideal_mask(&x, &x).unwrap();
    assert!(m.iter().all(|&v| v > 0.99 && v <= 1.0));
    let m = b.ideal_mask(&x, &zero).unwrap();
    assert!(m.iter().all(|&v| v == 0.0));
    // Half the mixture: m = s / (s + s + eps) ≈ 1/2.
    let half: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
    let m = b.ideal_mask(&x, &half).unwrap();
    assert!(m.iter().all(|&v| (v - 0.5).abs() < 0.01), "{:?}", &m[..4]);
    assert!(b.ideal_mask(&x, &x[1..]).is_err());
}

#[test]
fn ideal_mask_separates_disjoint_tones() {
    let b = bands();
    let n = 11_025;
    let (low, mix) = two_tones(300.0, 4000.0, 22_050, n);
    let m = b.ideal_mask(&mix, &low).unwrap();
    let nf = b.n_frames(n);
    let band_of = |f: f32| {
        (0..128)
            .min_by(|&i, &j| (b.centres()[i] - f).abs().total_cmp(&(b.centres()[j] - f).abs()))
            .unwrap()
    };
    let t = nf / 2;
    assert!(m[band_of(300.0) * nf + t] > 0.95);
    assert!(m[band_of(4000.0) * nf + t] < 0.05);
}

#[test]
fn mask_to_bins_interpolates_linearly_in_frequency_and_time() {
    let cfg = BandConfig {
        n_bands: 8,
        ..BandConfig::default()
    };
    let b = Bands::new(cfg).unwrap();
    let c = b.centres().to_vec();
    let frames = 3;
    // Mask = band index / 7 in frame 0, constant 1 in frame 2 (frame 1 = 0.5).
    let mut mask = vec![0.0f32; 8 * frames];
    for k in 0..8 {
        mask[k * frames] = k as f32 / 7.0;
        mask[k * frames + 1] = 0.5;
        mask[k * frames + 2] = 1.0;
    }
    let (rate, n_fft, hop) = (22_050u32, 1024usize, 256usize);
    let n_bins = n_fft / 2 + 1;
    let native_frames = 5; // frames 3, 4 lie past the last band frame: clamped.
    let out = b.mask_to_bins(&mask, frames, rate, n_fft, hop, native_frames).unwrap();
    assert_eq!(out.len(), native_frames * n_bins);
    for k in 0..n_bins {
        let f = k as f32 * rate as f32 / n_fft as f32;
        let want = if f <= c[0] {
            0.0
        } else if f >= c[7] {
            1.0
        } else {
            let i = c.iter().rposition(|&x| x <= f).unwrap();
            (i as f32 + (f - c[i]) / (c[i + 1] - c[i])) / 7.0
        };
        assert!((out[k] - want).abs() < 1e-5, "bin {k}: {} vs {want}", out[k]);
        assert!((out[n_bins + k] - 0.5).abs() < 1e-6);
        assert_eq!(out[4 * n_bins + k], 1.0);
    }
    // Half-way in time (native hop of half a band hop): mean of frames 0 and 1.
    let out = b.mask_to_bins(&mask, frames, rate, n_fft, hop / 2, 2).unwrap();
    let k = 200;
    let f0 = b.mask_to_bins(&mask, frames, rate, n_fft, hop, 1).unwrap()[k];
    assert!((out[n_bins + k] - 0.5 * (f0 + 0.5)).abs() < 1e-5);
    // Values are clamped to [0, 1]; shapes are checked.
    let wild = vec![3.0f32; 8 * frames];
    assert!(
        b.mask_to_bins(&wild, frames, rate, n_fft, hop, 2)
            .unwrap()
            .iter()
            .all(|&v| v == 1.0)
    );
    assert!(b.mask_to_bins(&wild[1..], frames, rate, n_fft, hop, 2).is_err());
}

#[test]
fn apply_mask_identity_and_zero_at_every_rate_and_odd_lengths() {
    let b = bands();
    for &(rate, len) in &[
        (8_000u32, 4_001usize),
        (22_050, 7_777),
        (44_100, 13_001),
        (48_000, 9_999),
        (44_100, 1),
    ] {
        let x = noise(rate as u64 + len as u64, len, 0.5);
        let frames = b.n_frames((len as u64 * 22_050 / rate as u64) as usize).max(1);
        let ones = vec![1.0f32; 128 * frames];
        let y = b.apply_mask(&x, rate, &ones, frames).unwrap();
        assert_eq!(y.len(), len);
        let err = max_abs_diff(&x, &y);
        assert!(err < 1e-5, "rate {rate} len {len}: identity error {err}");
        let zeros = vec![0.0f32; 128 * frames];
        let y = b.apply_mask(&x, rate, &zeros, frames).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "rate {rate}: zero mask leaks");
    }
}

#[test]
fn native_stft_scales_with_the_rate() {
    let cfg = BandConfig::default();
    let at = |r| native_stft_config(&cfg, r);
    assert_eq!((at(22_050).n_fft, at(22_050).hop), (1024, 256));
    assert_eq!((at(44_100).n_fft, at(44_100).hop), (2048, 512));
    assert_eq!((at(48_000).n_fft, at(48_000).hop), (2230, 557));
    assert_eq!((at(8_000).n_fft, at(8_000).hop), (372, 93));
}

#[test]
fn band_mask_of_ideal_tones_applied_at_44k_recovers_the_target() {
    // Ideal mask at 22.05 kHz from band analysis, applied to the 44.1 kHz mixture.
    let b = bands();
    let n = 44_100;
    let (low, mix) = two_tones(300.0, 5000.0, 44_100, n);
    let dec = |x: &[f32]| x.iter().step_by(2).copied().collect::<Vec<f32>>();
    // Decimation by 2 is alias-free here: both tones are below 11 kHz.
    let (mix22, low22) = (dec(&mix), dec(&low));
    let m = b.ideal_mask(&mix22, &low22).unwrap();
    let frames = b.n_frames(mix22.len());
    let y = b.apply_mask(&mix, 44_100, &m, frames).unwrap();
    // Error energy well below the target's (interior, away from the edges).
    let (s, e) = (4410..n - 4410).fold((0.0f64, 0.0f64), |(s, e), i| {
        (s + (low[i] as f64).powi(2), e + ((y[i] - low[i]) as f64).powi(2))
    });
    let sdr = 10.0 * (s / e).log10();
    assert!(sdr > 20.0, "SDR {sdr} dB");
}

/// `mask_max` bounds the applied mask (1 by default, also for configs written before the key
/// existed) and is range-checked.
#[test]
fn mask_max_bounds_the_applied_mask_and_defaults_to_one() {
    let old = r#"{"rate": 22050, "n_fft": 1024, "hop": 256, "n_bands": 8, "fmin": 0.0, "power": 0.3, "ref_rms": 0.1}"#;
    let cfg: BandConfig = serde_json::from_str(old).unwrap();
    assert_eq!(cfg.mask_max, 1.0);
    let frames = 2;
    let mask = vec![1.4f32; 8 * frames];
    let bins = |mask_max: f32| {
        let b = Bands::new(BandConfig {
            mask_max,
            ..cfg.clone()
        })
        .unwrap();
        b.mask_to_bins(&mask, frames, 22_050, 1024, 256, frames).unwrap()
    };
    assert!(bins(1.0).iter().all(|&v| (v - 1.0).abs() < 1e-6));
    assert!(bins(1.5).iter().all(|&v| (v - 1.4).abs() < 1e-5));
    assert!(bins(1.2).iter().all(|&v| (v - 1.2).abs() < 1e-6));
    for bad in [0.5, 9.0, f32::NAN] {
        let c = BandConfig {
            mask_max: bad,
            ..cfg.clone()
        };
        assert!(c.validate().is_err(), "mask_max {bad} accepted");
    }
}
