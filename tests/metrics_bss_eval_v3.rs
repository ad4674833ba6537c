//! BSS Eval v3 regression: the MATLAB results mir_eval is tested against
//! (`tests/conformance/bss_eval_v3/`), within the upstream tolerance of 1e-2 dB.
//!
//! Per case: `bss_eval_sources` (with permutation search), `bss_eval_sources_framewise`,
//! `bss_eval_images` (with permutation search) and `bss_eval_images_framewise` (no
//! permutation), as mir_eval's defaults. Case 06 is stereo and is mixed down to mono first.

use std::path::{Path, PathBuf};

use serde_json::Value;
use splitflow::metrics::{
    BssEvalScores, bss_eval_images, bss_eval_images_framewise, bss_eval_sources, bss_eval_sources_framewise,
};

const TOL: f64 = 1e-2;

/// `[source][channel][sample]` references and estimates.
type Pair = (Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>);

const CASES: [&str; 8] = ["01", "02", "03", "05", "06", "07", "08", "09"];

fn data_dir() -> PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/bss_eval_v3");
    if shared.is_dir() {
        shared
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/bss_eval_v3")
    }
}

/// One mono signal per source file `0.wav`, `1.wav`, ... (multichannel files are averaged).
fn load_sources(dir: &Path) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("{i}.wav"));
        if !path.exists() {
            break;
        }
        let mut reader = hound::WavReader::open(&path).expect("open wav");
        let spec = reader.spec();
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(spec.bits_per_sample, 16);
        let samples: Vec<f32> = reader
            .samples::<i16>()
            .map(|s| f32::from(s.expect("sample")) / 32768.0)
            .collect();
        let ch = spec.channels as usize;
        out.push(samples.chunks(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect());
    }
    assert!(!out.is_empty(), "no sources in {}", dir.display());
    out
}

/// Parses the MATLAB output (which writes `Infinity`/`NaN` literals) with numbers as strings.
fn load_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read json");
    let text = text
        .replace("-Infinity", "\"-inf\"")
        .replace("Infinity", "\"inf\"")
        .replace("NaN", "\"nan\"");
    serde_json::from_str(&text).expect("parse json")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("f64"),
        Value::String(s) => s.parse().expect("inf/nan"),
        other => panic!("not a number: {other}"),
    }
}

/// `[source][frame]` from either a flat per-source list or a nested one.
fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|row| match row {
            Value::Array(frames) => frames.iter().map(num).collect(),
            x => vec![num(x)],
        })
        .collect()
}

fn compare(case: &str, section: &str, got: &BssEvalScores, want: &Value, worst: &mut f64) -> usize {
    let mut compared = 0;
    for (name, key) in [
        ("Source to Distortion", 0),
        ("Image to Spatial", 1),
        ("Source to Interference", 2),
        ("Source to Artifact", 3),
    ] {
        let Some(expected) = want.get(name) else { continue };
        let expected = matrix(expected);
        assert_eq!(expected.len(), got.sources.len(), "{case} {section}: source count");
        for (j, (exp, src)) in expected.iter().zip(&got.sources).enumerate() {
            let values = [&src.sdr, &src.isr, &src.sir, &src.sar][key];
            assert_eq!(values.len(), exp.len(), "{case} {section} {name} src{j}: frame count");
            for (t, (&g, &w)) in values.iter().zip(exp).enumerate() {
                if w.is_nan() {
                    continue; // undefined frame in the reference convention
                }
                let ok = if w.is_infinite() { g == w } else { (g - w).abs() <= TOL };
                assert!(ok, "{case} {section} {name} src{j} frame {t}: got {g}, want {w}");
                if w.is_finite() {
                    *worst = worst.max((g - w).abs());
                }
                compared += 1;
            }
        }
    }
    compared
}

fn perm_matches(case: &str, section: &str, got: &BssEvalScores, want: &Value) {
    let expected = matrix(&want["Source permutation"]);
    for (j, frames) in expected.iter().enumerate() {
        for (t, &p) in frames.iter().enumerate() {
            if p.is_nan() {
                continue;
            }
            assert_eq!(
                got.permutation[t][j], p as usize,
                "{case} {section}: permutation of source {j}, frame {t}"
            );
        }
    }
}

/// Images inputs: channel 0 is the signal, channels 1..nchan copies; for the estimate the copies
/// are multiplied by `gain` and their order is reversed when `reverse`.
fn images(refs: &[Vec<f32>], ests: &[Vec<f32>], section: &Value) -> Pair {
    let nchan = section["nchan"].as_u64().expect("nchan") as usize;
    let gain = section["gain"].as_f64().expect("gain") as f32;
    let reverse = section["reverse"].as_bool().expect("reverse");
    let r = refs.iter().map(|s| vec![s.clone(); nchan]).collect();
    let e = ests
        .iter()
        .map(|s| {
            let mut extra: Vec<Vec<f32>> = (1..nchan).map(|_| s.iter().map(|&x| x * gain).collect()).collect();
            if reverse {
                extra.reverse();
            }
            let mut chans = vec![s.clone()];
            chans.extend(extra);
            chans
        })
        .collect();
    (r, e)
}

fn run_case(case: &str) {
    let dir = data_dir();
    let refs = load_sources(&dir.join(format!("ref{case}")));
    let ests = load_sources(&dir.join(format!("est{case}")));
    let want = load_json(&dir.join(format!("output{case}.json")));
    let mut worst = 0.0f64;
    let mut n = 0;

    let got = bss_eval_sources(&refs, &ests, true).expect("sources");
    n += compare(case, "Sources", &got, &want["Sources"], &mut worst);
    perm_matches(case, "Sources", &got, &want["Sources"]);

    let fw = &want["Framewise"];
    let (win, hop) = (
        fw["win"].as_u64().expect("win") as usize,
        fw["hop"].as_u64().expect("hop") as usize,
    );
    let got = bss_eval_sources_framewise(&refs, &ests, win, hop, false).expect("framewise");
    n += compare(case, "Framewise", &got, fw, &mut worst);

    let im = &want["Images"];
    let (r, e) = images(&refs, &ests, im);
    let got = bss_eval_images(&r, &e, true).expect("images");
    n += compare(case, "Images", &got, im, &mut worst);
    perm_matches(case, "Images", &got, im);

    let imf = &want["Images Framewise"];
    let (r, e) = images(&refs, &ests, imf);
    let (win, hop) = (
        imf["win"].as_u64().expect("win") as usize,
        imf["hop"].as_u64().expect("hop") as usize,
    );
    let got = bss_eval_images_framewise(&r, &e, win, hop, false).expect("images framewise");
    n += compare(case, "Images Framewise", &got, imf, &mut worst);
    eprintln!("case {case}: {n} values compared, worst finite deviation {worst:.2e} dB");
}

#[test]
fn case_01() {
    run_case(CASES[0]);
}
#[test]
fn case_02() {
    run_case(CASES[1]);
}
#[test]
fn case_03() {
    run_case(CASES[2]);
}
#[test]
fn case_05() {
    run_case(CASES[3]);
}
#[test]
fn case_06() {
    run_case(CASES[4]);
}
#[test]
fn case_07() {
    run_case(CASES[5]);
}
#[test]
fn case_08() {
    run_case(CASES[6]);
}
#[test]
fn case_09() {
    run_case(CASES[7]);
}
