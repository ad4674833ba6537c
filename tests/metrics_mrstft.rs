//! MR-STFT metric: agreement with auraloss (tests/reference/mrstft/values.json, written by
//! scripts/reference/mrstft_reference.py) and properties.

mod common;

use common::lcg;

use serde_json::Value;
use splitflow::metrics::{A_WEIGHTING_TAPS, MrStftConfig, a_weighting_fir, mrstft, mrstft_detailed};

/// Relative tolerance against auraloss.
const REL_TOL: f64 = 1e-4;

fn values() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/mrstft/values.json");
    let text = std::fs::read_to_string(path).expect("read values.json");
    serde_json::from_str(&text).expect("parse values.json")
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// `(reference, estimate)` of one case, as the generator builds them.
fn signals(case: &Value) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let n = case["n"].as_u64().expect("n") as usize;
    let (rs, os) = (nums(&case["ref_seeds"]), nums(&case["other_seeds"]));
    let (a, b) = (nums(&case["a"]), nums(&case["b"]));
    let mut refs = Vec::new();
    let mut ests = Vec::new();
    for c in 0..rs.len() {
        let r = lcg(n, rs[c] as u64);
        let o = lcg(n, os[c] as u64);
        refs.push(r.iter().map(|&v| v as f32).collect());
        ests.push(r.iter().zip(&o).map(|(&r, &o)| (a[c] * r + b[c] * o) as f32).collect());
    }
    (refs, ests)
}

fn config(kind: &str, sample_rate: u32) -> MrStftConfig {
    match kind {
        "default" => MrStftConfig::auraloss_default(),
        "default_aw" => MrStftConfig {
            a_weighting: Some(sample_rate),
            ..MrStftConfig::auraloss_default()
        },
        "svs" => MrStftConfig::svs(sample_rate),
        other => panic!("unknown kind {other}"),
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn inputs_match_generator() {
    let v = values();
    for case in v["cases"].as_array().expect("cases") {
        let (refs, ests) = signals(case);
        let first = &case["first_samples"];
        for (got, want) in [(&refs[0], &first["reference"]), (&ests[0], &first["estimate"])] {
            // serde_json's default float parsing may be one f64 ulp off; compare as f32.
            for (g, w) in got.iter().zip(nums(want)) {
                assert_eq!(*g, w as f32, "{}", case["name"]);
            }
        }
    }
}

#[test]
fn a_weighting_taps_match_auraloss() {
    let v = values();
    let taps = v["a_weighting_taps"].as_object().expect("taps");
    for (sr, want) in taps {
        let want = nums(want);
        let got = a_weighting_fir(sr.parse().expect("sample rate")).expect("design");
        assert_eq!(got.len(), A_WEIGHTING_TAPS);
        let peak = want.iter().fold(0.0f64, |m, &t| m.max(t.abs()));
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        eprintln!("A-weighting taps at {sr} Hz: max abs diff {worst:.3e} (peak tap {peak:.4})");
        // Taps are f32-rounded on both sides; allow a few f32 ulps of the peak.
        assert!(worst <= 4.0 * f64::from(f32::EPSILON) * peak, "{sr} Hz: {worst:e}");
    }
}

#[test]
fn matches_auraloss() {
    let v = values();
    let mut worst_f64 = 0.0f64;
    let mut worst_f32 = 0.0f64;
    for case in v["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let sr = case["sample_rate"].as_u64().expect("sample_rate") as u32;
        let (refs, ests) = signals(case);
        for (kind, want) in case["values"].as_object().expect("values") {
            let got = mrstft(&refs, &ests, &config(kind, sr)).expect("mrstft");
            let (w64, w32) = (want["f64"].as_f64().expect("f64"), want["f32"].as_f64().expect("f32"));
            let (e64, e32) = (rel(got, w64), rel(got, w32));
            eprintln!("{name} {kind}: {got:.10} auraloss f64 {w64:.10} ({e64:.1e}), f32 {w32:.10} ({e32:.1e})");
            assert!(e64 < REL_TOL, "{name} {kind}: {got} vs auraloss (f64) {w64}");
            assert!(e32 < REL_TOL, "{name} {kind}: {got} vs auraloss (f32) {w32}");
            worst_f64 = worst_f64.max(e64);
            worst_f32 = worst_f32.max(e32);
        }
    }
    eprintln!("worst relative difference: {worst_f64:.2e} vs auraloss in f64, {worst_f32:.2e} vs auraloss in f32");
}

#[test]
fn per_resolution_terms_match_auraloss() {
    let v = values();
    for case in v["cases"].as_array().expect("cases") {
        let sr = case["sample_rate"].as_u64().expect("sample_rate") as u32;
        let (refs, ests) = signals(case);
        let got = mrstft_detailed(&refs, &ests, &config("default", sr)).expect("mrstft");
        let want = case["default_per_resolution"].as_array().expect("per resolution");
        assert_eq!(got.resolutions.len(), want.len());
        for (g, w) in got.resolutions.iter().zip(want) {
            assert_eq!(g.fft_size as u64, w["fft_size"].as_u64().expect("fft_size"));
            let (sc, lm) = (w["sc"].as_f64().expect("sc"), w["log_mag"].as_f64().expect("log_mag"));
            eprintln!(
                "{} n_fft {}: SC rel diff {:.1e}, LM rel diff {:.1e}",
                case["name"],
                g.fft_size,
                rel(g.spectral_convergence, sc),
                rel(g.log_magnitude, lm)
            );
            assert!(
                rel(g.spectral_convergence, sc) < REL_TOL,
                "SC {} vs {sc}",
                g.spectral_convergence
            );
            assert!(rel(g.log_magnitude, lm) < REL_TOL, "LM {} vs {lm}", g.log_magnitude);
        }
        let mean = got
            .resolutions
            .iter()
            .map(|r| r.spectral_convergence + r.log_magnitude)
            .sum::<f64>()
            / 3.0;
        assert!((mean - got.value).abs() < 1e-12);
    }
}

fn stereo(n: usize, seeds: [u64; 2], gain: f64) -> Vec<Vec<f32>> {
    seeds
        .iter()
        .map(|&s| lcg(n, s).into_iter().map(|v| (gain * v) as f32).collect())
        .collect()
}

#[test]
fn identical_signals_score_zero() {
    let x = stereo(8000, [11, 12], 1.0);
    for cfg in [MrStftConfig::auraloss_default(), MrStftConfig::svs(16000)] {
        let v = mrstft(&x, &x, &cfg).expect("mrstft");
        assert_eq!(v, 0.0, "{cfg:?}");
    }
    // Silence against silence: every magnitude is clamped to sqrt(eps), still exactly 0.
    let z = vec![vec![0.0f32; 4000]; 2];
    assert_eq!(mrstft(&z, &z, &MrStftConfig::auraloss_default()).expect("mrstft"), 0.0);
}

#[test]
fn silent_estimate_is_finite_and_large() {
    let x = stereo(8000, [13, 14], 1.0);
    let z = vec![vec![0.0f32; 8000]; 2];
    let s = mrstft_detailed(&x, &z, &MrStftConfig::auraloss_default()).expect("mrstft");
    assert!(s.value.is_finite() && s.value > 1.0, "{s:?}");
    for r in &s.resolutions {
        // |Y - X| ≈ |Y| where X is the clamp sqrt(eps): SC just below 1.
        assert!(r.spectral_convergence > 0.99 && r.spectral_convergence <= 1.0, "{r:?}");
    }
}

#[test]
fn scaling_behaviour() {
    let n = 8000;
    let x = stereo(n, [21, 22], 1.0);
    let cfg = MrStftConfig::auraloss_default();
    // A gain g on the estimate: SC = |1 - g| and LM = |log g| exactly, up to the eps clamp.
    for g in [0.5f64, 2.0] {
        let e = stereo(n, [21, 22], g);
        let s = mrstft_detailed(&x, &e, &cfg).expect("mrstft");
        for r in &s.resolutions {
            assert!((r.spectral_convergence - (1.0 - g).abs()).abs() < 1e-6, "{g}: {r:?}");
            assert!((r.log_magnitude - g.ln().abs()).abs() < 1e-6, "{g}: {r:?}");
        }
    }
    // Scaling both signals by the same gain leaves the score unchanged (away from the clamp).
    let e = stereo(n, [23, 24], 1.0);
    let base = mrstft(&x, &e, &cfg).expect("mrstft");
    let scaled =
        |sig: &Vec<Vec<f32>>| -> Vec<Vec<f32>> { sig.iter().map(|c| c.iter().map(|&v| v * 4.0).collect()).collect() };
    let both = mrstft(&scaled(&x), &scaled(&e), &cfg).expect("mrstft");
    assert!(rel(both, base) < 1e-6, "{both} vs {base}");
    // The log term is symmetric; spectral convergence is normalised by the reference, so
    // swapping the arguments changes it.
    let half = stereo(n, [21, 22], 0.5);
    let fwd = mrstft_detailed(&x, &half, &cfg).expect("mrstft");
    let rev = mrstft_detailed(&half, &x, &cfg).expect("mrstft");
    for (f, r) in fwd.resolutions.iter().zip(&rev.resolutions) {
        assert!((f.log_magnitude - r.log_magnitude).abs() < 1e-9);
        assert!((f.spectral_convergence - 0.5).abs() < 1e-6 && (r.spectral_convergence - 1.0).abs() < 1e-6);
    }
}

#[test]
fn per_channel_is_mean_of_mono_scores() {
    let n = 6000;
    let r = stereo(n, [31, 32], 1.0);
    let mut e = stereo(n, [33, 34], 0.3);
    for (ec, rc) in e.iter_mut().zip(&r) {
        for (ev, rv) in ec.iter_mut().zip(rc) {
            *ev += rv;
        }
    }
    e[1].iter_mut().for_each(|v| *v *= 0.2); // channels differ, so joint != per channel
    let cfg = MrStftConfig::svs(44100);
    let stereo_score = mrstft(&r, &e, &cfg).expect("mrstft");
    let mono: Vec<f64> = (0..2)
        .map(|c| mrstft(&r[c..c + 1], &e[c..c + 1], &cfg).expect("mrstft"))
        .collect();
    assert!((stereo_score - (mono[0] + mono[1]) / 2.0).abs() < 1e-12);
    let joint = mrstft(
        &r,
        &e,
        &MrStftConfig {
            per_channel: false,
            ..cfg
        },
    )
    .expect("mrstft");
    assert!((joint - stereo_score).abs() > 1e-3, "{joint} vs {stereo_score}");
}

#[test]
fn rejects_bad_input() {
    let cfg = MrStftConfig::auraloss_default();
    let x = stereo(4000, [41, 42], 1.0);
    // Channel count mismatch.
    assert!(mrstft(&x, &x[..1], &cfg).is_err());
    // Length mismatch, in either argument or between channels.
    let mut short = x.clone();
    short[1].truncate(3999);
    assert!(mrstft(&x, &short, &cfg).is_err());
    assert!(mrstft(&short, &x, &cfg).is_err());
    // No channels.
    assert!(mrstft(&[], &[], &cfg).is_err());
    // Too short for reflect padding of the largest FFT (2048 -> needs 1025 samples).
    let s = vec![vec![0.1f32; 1024]];
    let err = mrstft(&s, &s, &cfg).expect_err("too short").to_string();
    assert!(err.contains("too short"), "{err}");
    let s = vec![vec![0.1f32; 1025]];
    assert!(mrstft(&s, &s, &cfg).is_ok());
    // Bad configurations.
    let bad = [
        MrStftConfig {
            hop_sizes: vec![120, 240],
            ..cfg.clone()
        },
        MrStftConfig {
            win_lengths: vec![600, 4096, 240],
            ..cfg.clone()
        },
        MrStftConfig {
            hop_sizes: vec![120, 0, 50],
            ..cfg.clone()
        },
        MrStftConfig {
            fft_sizes: vec![],
            hop_sizes: vec![],
            win_lengths: vec![],
            ..cfg.clone()
        },
        MrStftConfig {
            a_weighting: Some(0),
            ..cfg.clone()
        },
    ];
    for b in &bad {
        assert!(mrstft(&x, &x, b).is_err(), "{b:?}");
    }
    assert!(MrStftConfig::preset("nope", 44100).is_err());
    assert_eq!(
        MrStftConfig::preset("svs", 48000).expect("svs"),
        MrStftConfig::svs(48000)
    );
}

/// Timing on a 4-minute stereo 44.1 kHz track (both presets).
/// `cargo test --release --test metrics_mrstft -- --ignored --nocapture`
#[test]
#[ignore]
fn speed_four_minutes_stereo() {
    let n = 240 * 44100;
    let r = stereo(n, [51, 52], 1.0);
    let e: Vec<Vec<f32>> = r
        .iter()
        .zip(stereo(n, [53, 54], 0.1))
        .map(|(rc, oc)| rc.iter().zip(oc).map(|(&a, b)| 0.8 * a + b).collect())
        .collect();
    for (name, cfg) in [
        ("auraloss default", MrStftConfig::auraloss_default()),
        ("svs", MrStftConfig::svs(44100)),
    ] {
        let t = std::time::Instant::now();
        let v = mrstft(&r, &e, &cfg).expect("mrstft");
        eprintln!("{name}: {v:.6} in {:.2} s", t.elapsed().as_secs_f64());
    }
}
