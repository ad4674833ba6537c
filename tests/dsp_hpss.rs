//! HPSS: masks sum to one, separation quality on a synthetic mixture, queries, shapes,
//! determinism, and (ignored) speed.

mod common;

use std::f64::consts::PI;

use splitflow::separate::engine::Segment;
use splitflow::separate::hpss::HpssConfig;
use splitflow::separate::{Hpss, Query, Separator, separate_all};

/// Deterministic uniform noise in [-1, 1) (xorshift64*).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    common::white(n, seed)
}

fn peak(x: &[Vec<f32>]) -> f32 {
    x.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Scale-invariant SDR of `est` against `reference`, in dB.
fn si_sdr(est: &[f32], reference: &[f32]) -> f64 {
    let dot: f64 = est.iter().zip(reference).map(|(&e, &r)| e as f64 * r as f64).sum();
    let energy: f64 = reference.iter().map(|&r| r as f64 * r as f64).sum();
    let alpha = dot / energy;
    let (mut target, mut residual) = (0.0f64, 0.0f64);
    for (&e, &r) in est.iter().zip(reference) {
        let t = alpha * r as f64;
        target += t * t;
        residual += (e as f64 - t).powi(2);
    }
    10.0 * (target / residual).log10()
}

const SR: u32 = 22_050;

/// 3 s at 22.05 kHz: (harmonic, percussive) parts. The harmonic part is a sustained chord
/// that changes once, with slow fades and a gentle tremolo; the percussive part is a decaying
/// noise burst with a click every 0.25 s.
fn synthetic() -> (Vec<f32>, Vec<f32>) {
    let n = 3 * SR as usize;
    let sr = SR as f64;
    let chords = [[220.0, 277.18, 329.63, 440.0], [196.0, 246.94, 293.66, 392.0]];
    let harmonic: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / sr;
            let env = (t / 0.3).min(1.0) * ((3.0 - t) / 0.3).min(1.0) * (1.0 + 0.2 * (2.0 * PI * 0.7 * t).sin());
            let xfade = ((t - 1.45) / 0.1).clamp(0.0, 1.0);
            let tone = |f: &[f64; 4]| {
                f.iter()
                    .enumerate()
                    .map(|(k, &f)| (2.0 * PI * f * t).sin() / (k + 1) as f64)
                    .sum::<f64>()
            };
            (0.25 * env * ((1.0 - xfade) * tone(&chords[0]) + xfade * tone(&chords[1]))) as f32
        })
        .collect();
    let burst = noise(n, 42);
    let period = SR as usize / 4;
    let percussive: Vec<f32> = (0..n)
        .map(|i| {
            let k = i % period;
            let t = k as f64 / sr;
            let decay = (-t / 0.008).exp();
            let click = if k < 3 { 0.8 } else { 0.0 };
            (0.6 * decay * burst[i] as f64 + click) as f32
        })
        .collect();
    (harmonic, percussive)
}

fn q(s: &str) -> Query {
    Query::from_label(s)
}

#[test]
fn harmonic_plus_percussive_is_the_input() {
    let (h, p) = synthetic();
    let mono: Vec<f32> = h.iter().zip(&p).map(|(a, b)| a + b).collect();
    let chunk = vec![mono, noise(h.len(), 7)];
    let hpss = Hpss::default();
    let harm = hpss.separate(&chunk, SR, &q("harmonic")).unwrap();
    let perc = hpss.separate(&chunk, SR, &q("percussive")).unwrap();
    let pk = peak(&chunk);
    let mut worst = 0.0f32;
    for c in 0..chunk.len() {
        for i in 0..chunk[c].len() {
            worst = worst.max((harm[c][i] + perc[c][i] - chunk[c][i]).abs());
        }
    }
    println!("max |H + P - x| / peak = {:e}", worst / pk);
    assert!(worst <= 1e-5 * pk, "{worst:e}");
    // separate_both gives the same two estimates.
    let (h2, p2) = hpss.separate_both(&chunk, SR).unwrap();
    assert_eq!(h2, harm);
    assert_eq!(p2, perc);
}

#[test]
fn sum_holds_through_the_engine_and_other_powers() {
    let x = vec![noise(20_000, 3), noise(20_000, 4)];
    let pk = peak(&x);
    for power in [1.0f32, 2.0, 5.0, f32::INFINITY] {
        let hpss = Hpss::new(HpssConfig {
            n_fft: 512,
            hop: 128,
            harmonic_kernel: 9,
            percussive_kernel: 13,
            power,
        })
        .unwrap();
        let seg = Segment {
            length_secs: 0.3,
            overlap_secs: 0.05,
        };
        let h = separate_all(&hpss, &q("tonal"), &x, 16_000, seg).unwrap();
        let p = separate_all(&hpss, &q("drums"), &x, 16_000, seg).unwrap();
        for c in 0..2 {
            assert_eq!(h[c].len(), x[c].len());
            let err = (0..x[c].len()).fold(0.0f32, |m, i| m.max((h[c][i] + p[c][i] - x[c][i]).abs()));
            assert!(err <= 1e-5 * pk, "power {power}: {err:e}");
        }
    }
}

#[test]
fn separates_a_synthetic_mixture() {
    let (h, p) = synthetic();
    let mix: Vec<f32> = h.iter().zip(&p).map(|(a, b)| a + b).collect();
    let hpss = Hpss::default();
    let est_p = hpss
        .separate(std::slice::from_ref(&mix), SR, &q("percussive"))
        .unwrap()
        .remove(0);
    let est_h = hpss
        .separate(std::slice::from_ref(&mix), SR, &q("harmonic"))
        .unwrap()
        .remove(0);
    let (p_mix, p_est) = (si_sdr(&mix, &p), si_sdr(&est_p, &p));
    let (h_mix, h_est) = (si_sdr(&mix, &h), si_sdr(&est_h, &h));
    println!(
        "percussive: SI-SDR mix {p_mix:.2} dB -> est {p_est:.2} dB (+{:.2}); harmonic: mix {h_mix:.2} dB -> est {h_est:.2} dB (+{:.2})",
        p_est - p_mix,
        h_est - h_mix
    );
    assert!(
        p_est - p_mix >= PERC_GAIN_DB,
        "percussive improvement {:.2} dB",
        p_est - p_mix
    );
    assert!(
        h_est - h_mix >= HARM_GAIN_DB,
        "harmonic improvement {:.2} dB",
        h_est - h_mix
    );
}

/// Thresholds a few dB under the measured improvements (+17.8 dB percussive, +6.8 dB
/// harmonic with the default rate-adaptive config at 22.05 kHz: n_fft 1024, hop 256, 17/17).
const PERC_GAIN_DB: f64 = 14.0;
const HARM_GAIN_DB: f64 = 4.0;

#[test]
fn queries() {
    let hpss = Hpss::default();
    for ok in ["percussive", "drums", "percussion", "harmonic", "tonal", "  DRUMS "] {
        hpss.check_query(&q(ok)).unwrap();
    }
    for bad in ["vocals", "bass", ""] {
        let msg = format!("{:#}", hpss.check_query(&q(bad)).unwrap_err());
        assert_eq!(
            msg,
            format!("hpss cannot separate '{bad}'; it answers: percussive (drums), harmonic")
        );
        let err = hpss.separate(&[vec![0.0; 100]], SR, &q(bad)).unwrap_err();
        assert!(format!("{err:#}").contains("it answers: percussive (drums), harmonic"));
    }
    assert_eq!(hpss.name(), "hpss");
}

#[test]
fn output_shape_matches_input() {
    let hpss = Hpss::default();
    for channels in [1usize, 2, 8] {
        for len in [0usize, 1, 7, 22_050] {
            let chunk: Vec<Vec<f32>> = (0..channels).map(|c| noise(len, c as u64 + 1)).collect();
            for query in ["percussive", "harmonic"] {
                let out = hpss.separate(&chunk, SR, &q(query)).unwrap();
                assert_eq!(out.len(), channels);
                assert!(out.iter().all(|c| c.len() == len), "{channels} ch, {len} frames");
                assert!(out.iter().flatten().all(|v| v.is_finite()));
            }
        }
    }
    assert!(hpss.separate(&[], SR, &q("drums")).unwrap().is_empty());
    // Silence stays silence.
    let out = hpss.separate(&[vec![0.0; 5000]], SR, &q("harmonic")).unwrap();
    assert!(out[0].iter().all(|&v| v == 0.0));
}

#[test]
fn other_rates() {
    let hpss = Hpss::default();
    for rate in [8_000u32, 16_000, 44_100, 48_000, 96_000] {
        let x = vec![noise(rate as usize / 2, rate as u64)];
        let h = hpss.separate(&x, rate, &q("harmonic")).unwrap();
        let p = hpss.separate(&x, rate, &q("percussive")).unwrap();
        let err = (0..x[0].len()).fold(0.0f32, |m, i| m.max((h[0][i] + p[0][i] - x[0][i]).abs()));
        assert!(err <= 1e-5 * peak(&x), "{rate}: {err:e}");
    }
    assert!(hpss.separate(&[vec![0.0; 10]], 0, &q("harmonic")).is_err());
}

#[test]
fn rejects_bad_configs() {
    let good = HpssConfig {
        n_fft: 1024,
        hop: 256,
        harmonic_kernel: 17,
        percussive_kernel: 17,
        power: 2.0,
    };
    assert!(Hpss::new(good.clone()).is_ok());
    for bad in [
        HpssConfig {
            n_fft: 0,
            ..good.clone()
        },
        HpssConfig { hop: 0, ..good.clone() },
        HpssConfig {
            hop: 2048,
            ..good.clone()
        },
        HpssConfig {
            harmonic_kernel: 0,
            ..good.clone()
        },
        HpssConfig {
            percussive_kernel: 0,
            ..good.clone()
        },
        HpssConfig {
            power: 0.0,
            ..good.clone()
        },
        HpssConfig {
            power: f32::NAN,
            ..good.clone()
        },
    ] {
        assert!(Hpss::new(bad).is_err());
    }
}

#[test]
fn deterministic() {
    let x = vec![noise(30_000, 1), noise(30_000, 2), noise(30_000, 3)];
    let hpss = Hpss::default();
    let a = hpss.separate(&x, SR, &q("percussive")).unwrap();
    let b = hpss.separate(&x, SR, &q("percussive")).unwrap();
    assert_eq!(a, b);
    // Same result whether channels are processed together or alone.
    let alone = hpss.separate(&x[1..2], SR, &q("percussive")).unwrap();
    assert_eq!(alone[0], a[1]);
}

/// `cargo test --release --test dsp_hpss -- --ignored --nocapture hpss_speed`
#[test]
#[ignore]
fn hpss_speed() {
    let rate = 44_100u32;
    let secs = 60.0f64;
    let n = (secs * rate as f64) as usize;
    let x = vec![noise(n, 1), noise(n, 2)];
    let hpss = Hpss::default();
    let query = q("percussive");
    // Warm up the thread pool.
    let _ = hpss.separate(&[x[0][..44_100].to_vec()], rate, &query).unwrap();
    let t = std::time::Instant::now();
    let out = separate_all(&hpss, &query, &x, rate, hpss.segment()).unwrap();
    let engine = t.elapsed().as_secs_f64();
    assert_eq!(out[0].len(), n);
    let t = std::time::Instant::now();
    let _ = hpss.separate(&x, rate, &query).unwrap();
    let whole = t.elapsed().as_secs_f64();
    println!(
        "60 s stereo 44.1 kHz: engine (10 s / 1 s segments) {engine:.3} s, RTF {:.4}; one call {whole:.3} s, RTF {:.4}; threads {}",
        engine / secs,
        whole / secs,
        rayon::current_num_threads()
    );
}
