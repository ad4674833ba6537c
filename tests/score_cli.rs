//! `splitflow score` end to end: museval reference vectors through files and JSON, folder
//! matching, and the input problems the command must survive.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::{lcg, write_wav};

fn splitflow() -> Command {
    Command::cargo_bin("splitflow").unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `splitflow score [EXTRA...] --reference REFERENCE --estimate ESTIMATE`.
fn score_pair(extra: &[&str], reference: &Path, estimate: &Path) -> std::process::Output {
    splitflow()
        .arg("score")
        .args(extra)
        .arg("--reference")
        .arg(reference)
        .arg("--estimate")
        .arg(estimate)
        .output()
        .unwrap()
}

/// Writes the museval reference case as 8 kHz float WAVs: `ref/t/s0.wav`, `ref/t/s1.wav`,
/// `est/t/s0.wav`, `est/t/s1.wav`.
fn write_lcg_case(dir: &Path) {
    let n = 24_000;
    let (s0, s1, nz) = (lcg(n, 1), lcg(n, 2), lcg(n, 3));
    let est0: Vec<f32> = (0..n)
        .map(|i| (0.8 * if i >= 3 { s0[i - 3] } else { 0.0 } + 0.2 * s1[i] + 0.05 * nz[i]) as f32)
        .collect();
    let est1: Vec<f32> = (0..n).map(|i| (s1[i] + 0.1 * s0[i] - 0.05 * nz[i]) as f32).collect();
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    write_wav(&dir.join("ref/t/s0.wav"), &[f(&s0)], 8000, 32, true);
    write_wav(&dir.join("ref/t/s1.wav"), &[f(&s1)], 8000, 32, true);
    write_wav(&dir.join("est/t/s0.wav"), &[est0], 8000, 32, true);
    write_wav(&dir.join("est/t/s1.wav"), &[est1], 8000, 32, true);
}

#[test]
fn museval_reference_vectors_through_json() {
    let tmp = tempfile::tempdir().unwrap();
    write_lcg_case(tmp.path());
    let json = tmp.path().join("t.json");
    let run = splitflow()
        .args([
            "score",
            "--sources",
            "--quiet",
            "--metrics",
            "sdr,isr,sir,sar,nsdr,si_sdr,sdr_filtered",
            "--references",
        ])
        .arg(tmp.path().join("ref"))
        .arg("--estimates")
        .arg(tmp.path().join("est"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // An existing folder as --json PATH gets the folder layout, also for one track.
    let folder = tmp.path().join("jsondir");
    std::fs::create_dir_all(&folder).unwrap();
    let run2 = splitflow()
        .args(["score", "--quiet", "--metrics", "nsdr", "--references"])
        .arg(tmp.path().join("ref"))
        .arg("--estimates")
        .arg(tmp.path().join("est"))
        .arg("--json")
        .arg(&folder)
        .output()
        .unwrap();
    assert!(run2.status.success(), "{}", stderr(&run2));
    assert!(folder.is_dir());
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"aggregate.json".to_string()) && names.len() == 2,
        "{names:?}"
    );
    // museval.evaluate(win=8000, hop=8000, mode="v4") per frame (tests/conformance).
    let want = [
        [
            [-2.2316, -2.3568, -2.1468],
            [-2.1413, -2.2224, -2.0404],
            [12.1248, 12.1218, 12.1054],
            [24.1946, 23.8185, 23.7938],
        ],
        [
            [19.0571, 19.0869, 19.1376],
            [36.0935, 36.1305, 36.1168],
            [20.1268, 20.1697, 20.1563],
            [26.1720, 26.2524, 26.1916],
        ],
    ];
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for (j, target) in targets.iter().enumerate() {
        assert_eq!(target["name"], format!("s{j}"));
        let frames = target["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 3);
        for (f, frame) in frames.iter().enumerate() {
            assert_eq!(frame["time"], f as f64);
            for (k, key) in ["SDR", "ISR", "SIR", "SAR"].iter().enumerate() {
                let got = frame["metrics"][key].as_f64().unwrap();
                assert!(
                    (got - want[j][k][f]).abs() < 1e-3,
                    "source {j} frame {f} {key}: {got} vs {}",
                    want[j][k][f]
                );
            }
        }
    }
    // Whole-signal: MDX nSDR, torchmetrics SI-SDR and SDR (filter 512).
    let whole = [[-2.2459, -49.981, 11.8592], [19.0937, 19.0967, 19.1848]];
    for (j, target) in targets.iter().enumerate() {
        for (k, key) in ["nsdr", "si_sdr", "sdr_filtered"].iter().enumerate() {
            let got = target["scores"][key].as_f64().unwrap();
            assert!(
                (got - whole[j][k]).abs() < 1e-3,
                "source {j} {key}: {got} vs {}",
                whole[j][k]
            );
        }
    }
    // The table shows the median over frames.
    let table = String::from_utf8_lossy(&run.stdout);
    let row = table.lines().find(|l| l.starts_with("t ") && l.contains("s0")).unwrap();
    assert!(row.contains("-2.232"), "{row}");
}

#[test]
fn folders_report_missing_estimates_and_write_csv() {
    let tmp = tempfile::tempdir().unwrap();
    write_lcg_case(tmp.path());
    // A reference without an estimate, and a second track scored pairwise.
    write_wav(
        &tmp.path().join("ref/u/s0.wav"),
        &[lcg(8000, 9).iter().map(|&x| x as f32).collect()],
        8000,
        16,
        false,
    );
    let csv = tmp.path().join("scores.csv");
    let run = splitflow()
        .args(["score", "--quiet", "--metrics", "sdr,si_sdr", "--references"])
        .arg(tmp.path().join("ref"))
        .arg("--estimates")
        .arg(tmp.path().join("est"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(err.contains("u/s0.wav: no estimate at"), "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "track,source,sdr,si_sdr");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("t/s0,s0,-2.23"), "{}", lines[1]);
    // Two tracks: the table ends with median and mean over tracks.
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(
        table.contains("median over tracks") && table.contains("mean over tracks"),
        "{table}"
    );

    // --skip-missing: the same folders score the references that have an estimate and succeed.
    let skip = |est: &Path| {
        splitflow()
            .args([
                "score",
                "--quiet",
                "--metrics",
                "sdr,si_sdr",
                "--skip-missing",
                "--references",
            ])
            .arg(tmp.path().join("ref"))
            .arg("--estimates")
            .arg(est)
            .arg("--csv")
            .arg(tmp.path().join("skip.csv"))
            .output()
            .unwrap()
    };
    let run = skip(&tmp.path().join("est"));
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("1 references without an estimate skipped"),
        "{}",
        stderr(&run)
    );
    let text = std::fs::read_to_string(tmp.path().join("skip.csv")).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&csv).unwrap(),
        "the rows of the run above"
    );
    // An estimate folder that matches nothing is an error, not an empty success.
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let run = skip(&tmp.path().join("empty"));
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("no reference under"), "{}", stderr(&run));
}

#[test]
fn rates_lengths_and_silence_are_handled() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let x: Vec<f32> = lcg(16_000, 4).iter().map(|&v| v as f32).collect();
    write_wav(&d.join("ref.wav"), std::slice::from_ref(&x), 16_000, 32, true);
    // The estimate at 8 kHz: an error, unless --resample.
    let half: Vec<f32> = x.iter().step_by(2).copied().collect();
    write_wav(&d.join("est8k.wav"), &[half], 8_000, 32, true);
    let run = score_pair(&[], &d.join("ref.wav"), &d.join("est8k.wav"));
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("(use --resample)"), "{}", stderr(&run));
    let run = score_pair(
        &["--resample", "--metrics", "nsdr"],
        &d.join("ref.wav"),
        &d.join("est8k.wav"),
    );
    assert!(run.status.success(), "{}", stderr(&run));

    // A shorter estimate: padded with a warning, and scored.
    write_wav(&d.join("short.wav"), &[x[..15_000].to_vec()], 16_000, 32, true);
    let run = score_pair(&[], &d.join("ref.wav"), &d.join("short.wav"));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("15000 samples, reference has 16000: zero-padded"),
        "{}",
        stderr(&run)
    );

    // An all-zero reference: a message and NaN, no panic.
    write_wav(&d.join("zero.wav"), &[vec![0.0; 16_000]], 16_000, 32, true);
    let run = score_pair(
        &["--metrics", "sdr, nsdr, si_sdr"],
        &d.join("zero.wav"),
        &d.join("ref.wav"),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("reference is all zeros"), "{}", stderr(&run));
    let table = String::from_utf8_lossy(&run.stdout);
    // Every score of the silent source is NaN (the formulas' -100 dB floors are not scores).
    let row = table.lines().nth(1).unwrap();
    assert_eq!(row.matches("nan").count(), 3, "{table}");
    assert!(!row.contains("-100") && !row.contains("-97"), "{table}");

    // Unreadable estimate: reported, non-zero exit.
    std::fs::write(d.join("bad.wav"), "nope").unwrap();
    let run = score_pair(&[], &d.join("ref.wav"), &d.join("bad.wav"));
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("bad.wav"), "{}", stderr(&run));
}

#[test]
fn usage_errors() {
    let run = splitflow()
        .args(["score", "--metrics", "sdrx", "--reference", "a", "--estimate", "b"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("unknown metric 'sdrx'"), "{}", stderr(&run));
    let run = splitflow()
        .args(["score", "--metrics", "si_sdri", "--reference", "a", "--estimate", "b"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("si_sdri needs the mixture"), "{}", stderr(&run));
}

/// MR-STFT through the CLI on the stereo 44.1 kHz auraloss reference case
/// (tests/reference/mrstft/values.json), both presets.
#[test]
fn mrstft_matches_auraloss_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 44_100;
    let (a, b) = ([0.8, 0.3], [0.1, 0.3]);
    let reference: Vec<Vec<f32>> = [3, 4]
        .iter()
        .map(|&s| lcg(n, s).iter().map(|&x| x as f32).collect())
        .collect();
    let estimate: Vec<Vec<f32>> = (0..2)
        .map(|c| {
            let (r, o) = (lcg(n, [3, 4][c]), lcg(n, [5, 6][c]));
            (0..n).map(|i| (a[c] * r[i] + b[c] * o[i]) as f32).collect()
        })
        .collect();
    write_wav(&tmp.path().join("r.wav"), &reference, 44_100, 32, true);
    write_wav(&tmp.path().join("e.wav"), &estimate, 44_100, 32, true);
    for (preset, want) in [("auraloss", 1.0839909315109253), ("svs", 1.0320022255182266)] {
        let csv = tmp.path().join(format!("{preset}.csv"));
        let csv_arg = csv.to_str().unwrap();
        let extra = ["--metrics", "mrstft", "--mrstft-preset", preset, "--csv", csv_arg];
        let run = score_pair(&extra, &tmp.path().join("r.wav"), &tmp.path().join("e.wav"));
        assert!(run.status.success(), "{}", stderr(&run));
        let text = std::fs::read_to_string(&csv).unwrap();
        let got: f64 = text
            .lines()
            .nth(1)
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((got - want).abs() / want < 1e-4, "{preset}: {got} vs auraloss {want}");
    }
}

/// emb_mse through the CLI: zero for identical files, positive when the estimate differs, and
/// a clear error for a model file that is not CREPE.
#[test]
fn emb_mse_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 8_000;
    let tone: Vec<f32> = (0..n)
        .map(|i| (2.0 * std::f32::consts::PI * 220.0 * i as f32 / 16_000.0).sin() * 0.5)
        .collect();
    let noisy: Vec<f32> = tone.iter().zip(lcg(n, 7)).map(|(&t, z)| t + 0.3 * z as f32).collect();
    write_wav(&tmp.path().join("r.wav"), std::slice::from_ref(&tone), 16_000, 32, true);
    write_wav(
        &tmp.path().join("same.wav"),
        std::slice::from_ref(&tone),
        16_000,
        32,
        true,
    );
    write_wav(&tmp.path().join("noisy.wav"), &[noisy], 16_000, 32, true);
    let value = |est: &str| -> f64 {
        let csv = tmp.path().join(format!("{est}.csv"));
        let run = splitflow()
            .args(["score", "--metrics", "emb_mse", "--reference"])
            .arg(tmp.path().join("r.wav"))
            .arg("--estimate")
            .arg(tmp.path().join(est))
            .arg("--csv")
            .arg(&csv)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("same.wav"), 0.0);
    assert!(value("noisy.wav") > 1e-3);
    let run = splitflow()
        .args(["score", "--metrics", "emb_mse", "--crepe-model"])
        .arg(tmp.path().join("r.wav"))
        .arg("--reference")
        .arg(tmp.path().join("r.wav"))
        .arg("--estimate")
        .arg(tmp.path().join("same.wav"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("cannot load CREPE model"), "{}", stderr(&run));
}
