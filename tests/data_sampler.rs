//! The mixture sampler and `splitflow data preview` on a tiny corpus generated here: tones and
//! noise for several labels and groups, with a manifest.jsonl spanning the four splits.

mod common;

use std::path::Path;

use splitflow::data::LABELS;
use splitflow::data::manifest::{ClipRow, write_jsonl};
use splitflow::data::sampler::{MixtureSampler, SILENCE_RMS, SamplerConfig, compatible};

const RATE: u32 = 22050;

fn label_id(name: &str) -> usize {
    LABELS.iter().position(|l| *l == name).unwrap()
}

/// A clip: a tone (with harmonics) at `hz` plus noise, `secs` long; `silent_secs` of zeros first.
fn clip(hz: f64, secs: f64, silent_secs: f64, seed: u64) -> Vec<f32> {
    let n = (secs * f64::from(RATE)) as usize;
    let lead = (silent_secs * f64::from(RATE)) as usize;
    let noise = common::lcg(n, seed);
    (0..n)
        .map(|i| {
            if i < lead {
                return 0.0;
            }
            let t = i as f64 / f64::from(RATE);
            let w = std::f64::consts::TAU * hz * t;
            (0.3 * w.sin() + 0.1 * (2.0 * w).sin() + 0.1 * noise[i]) as f32
        })
        .collect()
}

/// (label, group, split, seconds, silent lead, tone Hz) for each clip of the fixture.
const FIXTURE: &[(&str, &str, &str, f64, f64, f64)] = &[
    ("speech", "spk_a", "train", 4.0, 0.0, 180.0),
    ("speech", "spk_a", "train", 2.5, 0.0, 190.0),
    ("speech", "spk_b", "train", 5.0, 3.5, 220.0),
    ("speech", "spk_c", "train", 1.0, 0.0, 250.0),
    ("music", "song_1", "train", 6.0, 0.0, 440.0),
    ("music", "song_2", "train", 4.0, 0.0, 330.0),
    ("drums", "kit_1", "train", 0.3, 0.0, 80.0),
    ("drums", "kit_2", "train", 0.5, 0.0, 100.0),
    ("piano", "preset_1", "train", 2.0, 0.0, 523.0),
    ("water", "river", "train", 3.5, 0.0, 1500.0),
    ("engine", "motor", "train", 2.0, 0.0, 60.0),
    ("engine", "motor", "train", 1.2, 0.0, 65.0),
    ("speech", "spk_d", "valid", 3.0, 0.0, 200.0),
    ("speech", "spk_e", "valid", 2.0, 0.0, 210.0),
    ("water", "rain", "valid", 3.0, 0.0, 2000.0),
    ("animal", "cow", "test", 3.0, 0.0, 300.0),
    ("speech", "spk_h", "heldout", 3.0, 0.0, 170.0),
    ("water", "sea", "heldout", 3.0, 0.0, 1200.0),
];

fn make_corpus(dir: &Path) {
    let mut rows = Vec::new();
    for (i, (label, group, split, secs, silent, hz)) in FIXTURE.iter().enumerate() {
        let path = format!("audio/{label}/{group}-{i:03}.wav");
        common::write_wav(
            &dir.join(&path),
            &[clip(*hz, *secs, *silent, i as u64 + 1)],
            RATE,
            16,
            false,
        );
        rows.push(ClipRow {
            path,
            label: label.to_string(),
            duration: *secs,
            rate: RATE,
            package: "fixture".into(),
            source_file: format!("{group}.wav"),
            group: group.to_string(),
            licence: "CC0".into(),
            split: split.to_string(),
        });
    }
    write_jsonl(&dir.join("manifest.jsonl"), &rows).unwrap();
}

fn corpus() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    make_corpus(d.path());
    d
}

fn energy(x: impl Iterator<Item = f64>) -> f64 {
    x.map(|v| v * v).sum()
}

/// 10 log10(|target|² / |mixture - target|²), in f64.
fn measured_tir(mixture: &[f32], target: &[f32]) -> f64 {
    let t = energy(target.iter().map(|v| f64::from(*v)));
    let n = energy(mixture.iter().zip(target).map(|(m, t)| f64::from(*m) - f64::from(*t)));
    10.0 * (t / n).log10()
}

#[test]
fn same_seed_and_index_give_identical_mixes_on_any_thread() {
    let d = corpus();
    let s = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let first: Vec<_> = (0..6).map(|i| s.sample(42, i).unwrap()).collect();
    // Again, in reverse order, from other threads.
    let again: Vec<_> = std::thread::scope(|sc| {
        let s = &s;
        let hs: Vec<_> = (0..6u64)
            .rev()
            .map(|i| sc.spawn(move || s.sample(42, i).unwrap()))
            .collect();
        let mut v: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        v.reverse();
        v
    });
    assert_eq!(first, again);
    assert_ne!(first[0].mixture, first[1].mixture);
    assert_ne!(s.sample(43, 0).unwrap().mixture, first[0].mixture);
    // Loading the split into memory draws the very same bits as reading crops on demand.
    let pre = SamplerConfig {
        preload: true,
        ..SamplerConfig::default()
    };
    let p = MixtureSampler::open(d.path(), "train", pre).unwrap();
    for (i, m) in first.iter().enumerate() {
        assert_eq!(&p.sample(42, i as u64).unwrap(), m);
    }
}

#[test]
fn measured_ratio_matches_the_requested_one_within_a_tenth_of_a_db() {
    let d = corpus();
    let s = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for i in 0..150 {
        let m = s.sample(1, i).unwrap();
        assert!((-10.0..=10.0).contains(&m.tir_db), "{}", m.tir_db);
        let got = measured_tir(&m.mixture, &m.target);
        assert!(
            (got - f64::from(m.tir_db)).abs() < 0.1,
            "index {i}: asked {} got {got}",
            m.tir_db
        );
        (lo, hi) = (lo.min(m.tir_db), hi.max(m.tir_db));
    }
    // The draws spread over the range.
    assert!(lo < -7.0 && hi > 7.0, "{lo} {hi}");
    // The extremes, and a range beyond the default.
    for r in [[-10.0, -10.0], [10.0, 10.0], [-30.0, 30.0]] {
        let cfg = SamplerConfig {
            tir_db: r,
            ..SamplerConfig::default()
        };
        let s = MixtureSampler::open(d.path(), "train", cfg).unwrap();
        for i in 0..40 {
            let m = s.sample(2, i).unwrap();
            let got = measured_tir(&m.mixture, &m.target);
            assert!(
                (got - f64::from(m.tir_db)).abs() < 0.1,
                "{r:?} {i}: {} vs {got}",
                m.tir_db
            );
            if r[0] == r[1] {
                assert_eq!(m.tir_db, r[0]);
            }
        }
    }
}

/// Every augmentation on at full strength (low-pass, EQ, RandAugment, pitch ±3 semitones,
/// reverb on every source): the ratio, the exact sum and the peak still hold, and the draws
/// stay reproducible.
#[test]
fn full_augmentation_keeps_ratio_sum_and_reproducibility() {
    let d = corpus();
    let cfg = SamplerConfig {
        lowpass_p: 1.0,
        eq_p: 1.0,
        randaugment_n: 3,
        randaugment_m: 10.0,
        pitch_semitones: 3.0,
        reverb_p: 1.0,
        ..SamplerConfig::default()
    };
    let s = MixtureSampler::open(d.path(), "train", cfg.clone()).unwrap();
    let plain = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    for i in 0..40 {
        let p = s.sample_parts(9, i).unwrap();
        let m = s.sample(9, i).unwrap();
        assert_eq!(m, s.sample(9, i).unwrap(), "example {i} is not reproducible");
        assert_ne!(
            m.target,
            plain.sample(9, i).unwrap().target,
            "example {i}: augmentation had no effect"
        );
        let got = measured_tir(&m.mixture, &m.target);
        assert!(
            (got - f64::from(m.tir_db)).abs() < 0.1,
            "index {i}: asked {} got {got}",
            m.tir_db
        );
        for (j, v) in m.mixture.iter().enumerate() {
            let sum = p.interferers.iter().fold(p.target[j], |a, (_, x)| a + x[j]);
            assert_eq!(*v, sum, "example {i} sample {j}");
        }
        let peak = m.mixture.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((0.2511..=0.8914).contains(&peak), "{peak}");
    }
    for bad in [
        SamplerConfig {
            pitch_semitones: -1.0,
            ..SamplerConfig::default()
        },
        SamplerConfig {
            reverb_p: 1.5,
            ..SamplerConfig::default()
        },
        SamplerConfig {
            reverb_rt60: [0.0, 1.0],
            ..SamplerConfig::default()
        },
    ] {
        assert!(MixtureSampler::open(d.path(), "train", bad).is_err());
    }
}

#[test]
fn mixture_is_target_plus_interferers_sample_for_sample() {
    let d = corpus();
    let s = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    for i in 0..30 {
        let p = s.sample_parts(5, i).unwrap();
        let m = s.sample(5, i).unwrap();
        assert_eq!(m.target, p.target);
        assert_eq!(m.query, p.query);
        assert_eq!(m.interferers, p.interferers.iter().map(|x| x.0).collect::<Vec<_>>());
        assert_eq!(p.interferers.len(), p.interferer_rows.len());
        for (j, v) in m.mixture.iter().enumerate() {
            let mut sum = p.target[j];
            for (_, x) in &p.interferers {
                sum += x[j];
            }
            assert_eq!(*v, sum, "example {i} sample {j}");
        }
        // Peak-normalised into peak_db (default -12..-1 dBFS): no clipping.
        let peak = m.mixture.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((0.2511..=0.8914).contains(&peak), "{peak}");
        let qpeak = m.query.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((0.2511..=0.8914).contains(&qpeak), "{qpeak}");
    }
}

#[test]
fn labels_are_distinct_music_avoids_instruments_and_targets_are_balanced() {
    let d = corpus();
    let s = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let mut counts = vec![0usize; LABELS.len()];
    let mut k_seen = [false; 4];
    let n = 400;
    for i in 0..n {
        let p = s.sample_parts(9, i).unwrap();
        counts[p.label] += 1;
        let mut all = vec![p.label];
        all.extend(p.interferers.iter().map(|x| x.0));
        k_seen[p.interferers.len()] = true;
        assert!((1..=3).contains(&p.interferers.len()));
        for a in 0..all.len() {
            for b in a + 1..all.len() {
                assert!(compatible(all[a], all[b]), "{} with {}", LABELS[all[a]], LABELS[all[b]]);
            }
        }
        // Each source comes from a clip of its label in this split.
        let rows = s.rows();
        assert_eq!(rows[p.target_row.expect("a present target")].label, LABELS[p.label]);
        for ((l, _), r) in p.interferers.iter().zip(&p.interferer_rows) {
            assert_eq!(rows[*r].label, LABELS[*l]);
            assert_eq!(rows[*r].split, "train");
        }
    }
    assert!(k_seen[1] && k_seen[2] && k_seen[3], "{k_seen:?}");
    assert!(!compatible(label_id("music"), label_id("piano")));
    // Six labels in train (animal is only in test): uniform targets, ~67 each.
    let present = ["speech", "music", "drums", "piano", "water", "engine"];
    for (l, c) in counts.iter().enumerate() {
        if present.contains(&LABELS[l]) {
            assert!(*c > 35, "{}: {c} of {n}", LABELS[l]);
        } else {
            assert_eq!(*c, 0, "{}", LABELS[l]);
        }
    }
}

#[test]
fn absent_examples_query_a_label_the_mixture_lacks() {
    let d = corpus();
    let present = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let cfg = SamplerConfig {
        absent_p: 0.5,
        ..SamplerConfig::default()
    };
    let s = MixtureSampler::open(d.path(), "train", cfg).unwrap();
    let rows = s.rows();
    let (mut absent, n) = (0, 300);
    for i in 0..n {
        let p = s.sample_parts(5, i).unwrap();
        // The draw before the conversion is the plain sampler's: same mixture, same sources.
        let q = present.sample_parts(5, i).unwrap();
        assert_eq!(p.mixture(), q.mixture(), "example {i}");
        match p.target_row {
            Some(t) => {
                assert_eq!(p, q, "example {i}: a present example is the plain one");
                assert_eq!(rows[t].label, LABELS[p.label]);
            }
            None => {
                absent += 1;
                assert!(p.target.iter().all(|v| *v == 0.0), "example {i}: silent target");
                assert_eq!(p.tir_db, f32::NEG_INFINITY);
                // The drawn target leads the interferers; the queried label is none of them
                // and suits every one (no music query on an instrument).
                assert_eq!(p.interferers[0], (q.label, q.target.clone()));
                assert_eq!(p.interferer_rows[0], q.target_row.unwrap());
                assert_eq!(p.interferers.len(), q.interferers.len() + 1);
                for (l, _) in &p.interferers {
                    assert!(compatible(*l, p.label), "{} with {}", LABELS[*l], LABELS[p.label]);
                }
                assert_eq!(rows[p.query_row].label, LABELS[p.label]);
                assert_eq!(p.query.len(), q.query.len());
                assert!(p.query.iter().any(|v| *v != 0.0));
            }
        }
    }
    // About half (a mixture without a compatible absent label stays present).
    assert!((90..=170).contains(&absent), "{absent} absent of {n}");
    for bad in [-0.1, 1.0, f32::NAN] {
        let cfg = SamplerConfig {
            absent_p: bad,
            ..SamplerConfig::default()
        };
        let e = MixtureSampler::open(d.path(), "train", cfg).err().expect("refused");
        assert!(e.to_string().contains("absent_p"), "{e}");
    }
}

#[test]
fn paired_examples_ask_one_mixture_for_two_sources() {
    let d = corpus();
    let plain = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let cfg = SamplerConfig {
        pair_queries: true,
        ..SamplerConfig::default()
    };
    let s = MixtureSampler::open(d.path(), "train", cfg).unwrap();
    let rows = s.rows();
    let energy = |x: &[f32]| x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
    for k in 0..60u64 {
        // Even indices are the plain draws.
        let a = s.sample_parts(3, 2 * k).unwrap();
        assert_eq!(a, plain.sample_parts(3, 2 * k).unwrap(), "pair {k}");
        let b = s.sample_parts(3, 2 * k + 1).unwrap();
        // The same mixture, bit for bit in the sum's order up to f32 rounding.
        let (ma, mb) = (a.mixture(), b.mixture());
        assert!(
            ma.iter().zip(&mb).all(|(x, y)| (x - y).abs() < 1e-6),
            "pair {k}: mixture"
        );
        // The first interferer is the new target; the old target leads the interferers.
        assert_eq!(b.label, a.interferers[0].0);
        assert_eq!(b.target, a.interferers[0].1);
        assert_eq!(b.interferers[0], (a.label, a.target.clone()));
        assert_eq!(b.interferers[1..], a.interferers[1..]);
        assert_eq!(b.target_row, Some(a.interferer_rows[0]));
        assert_eq!(b.interferer_rows[0], a.target_row.unwrap());
        // Its ratio is the new target's against the rest.
        let mut rest = vec![0.0f32; mb.len()];
        for (_, x) in &b.interferers {
            rest.iter_mut().zip(x).for_each(|(r, v)| *r += v);
        }
        let tir = 10.0 * (energy(&b.target) / energy(&rest)).log10();
        assert!(
            (f64::from(b.tir_db) - tir).abs() < 1e-3,
            "pair {k}: {} vs {tir}",
            b.tir_db
        );
        // A query clip of the new label, from another group of it when there is one.
        assert_eq!(rows[b.query_row].label, LABELS[b.label]);
        assert_eq!(b.query.len(), a.query.len());
        let t = b.target_row.unwrap();
        if rows
            .iter()
            .any(|r| r.label == rows[t].label && r.group != rows[t].group)
        {
            assert_ne!(rows[b.query_row].group, rows[t].group, "pair {k}: query group");
        }
    }
    let cfg = SamplerConfig {
        pair_queries: true,
        absent_p: 0.1,
        ..SamplerConfig::default()
    };
    let e = MixtureSampler::open(d.path(), "train", cfg).err().expect("refused");
    assert!(e.to_string().contains("pair_queries"), "{e}");
}

#[test]
fn query_comes_from_another_group_when_there_is_one() {
    let d = corpus();
    let s = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let rows = s.rows();
    let mut checked_other = 0;
    for i in 0..200 {
        let p = s.sample_parts(3, i).unwrap();
        let (t, q) = (&rows[p.target_row.expect("a present target")], &rows[p.query_row]);
        assert_eq!(q.label, t.label);
        // engine, piano and water have one group in train: the query shares it.
        if ["engine", "piano", "water"].contains(&t.label.as_str()) {
            assert_eq!(q.group, t.group);
        } else {
            assert_ne!(q.group, t.group, "example {i}: {}", t.label);
            checked_other += 1;
        }
    }
    assert!(checked_other > 100);
}

#[test]
fn lengths_follow_the_config_and_silent_crops_are_redrawn() {
    let d = corpus();
    let cfg = SamplerConfig {
        seconds: 1.5,
        query_seconds: 0.7,
        labels: Some(vec!["speech".into()]),
        ..SamplerConfig::default()
    };
    let s = MixtureSampler::open(d.path(), "train", cfg).unwrap();
    let rms = |x: &[f32]| (energy(x.iter().map(|v| f64::from(*v))) / x.len() as f64).sqrt();
    let mut from_b = 0;
    for i in 0..120 {
        let p = s.sample_parts(11, i).unwrap();
        let m = s.sample(11, i).unwrap();
        assert_eq!(m.label, label_id("speech"));
        assert_eq!(m.mixture.len(), 33075);
        assert_eq!(m.target.len(), 33075);
        assert_eq!(m.query.len(), 15435);
        // spk_b's clip is 3.5 s of silence then 1.5 s of tone: most 1.5 s crops of it are
        // silent, yet the target never is (before the peak normalisation it was above
        // SILENCE_RMS; after it, the mixture peak is at least -12 dBFS).
        if s.rows()[p.target_row.expect("a present target")].group == "spk_b" {
            from_b += 1;
        }
        assert!(rms(&m.target) > SILENCE_RMS, "{i}");
    }
    assert!(from_b > 10, "{from_b}");
}

#[test]
fn errors_name_the_file_and_the_reason() {
    let d = corpus();
    let err = |r: splitflow::Result<MixtureSampler>| format!("{:#}", r.err().expect("should fail"));
    let e = err(MixtureSampler::open(
        &d.path().join("nope"),
        "train",
        SamplerConfig::default(),
    ));
    assert!(e.contains("manifest.jsonl"), "{e}");
    let e = err(MixtureSampler::open(d.path(), "holdout", SamplerConfig::default()));
    assert!(e.contains("no clips in split 'holdout'"), "{e}");
    let bad = SamplerConfig {
        labels: Some(vec!["kazoo".into()]),
        ..SamplerConfig::default()
    };
    let e = err(MixtureSampler::open(d.path(), "train", bad));
    assert!(e.contains("kazoo") && e.contains("speech"), "{e}");
    let bad = SamplerConfig {
        interferers: [0, 2],
        ..SamplerConfig::default()
    };
    assert!(err(MixtureSampler::open(d.path(), "train", bad)).contains("interferers"));
    // A clip whose audio is all zeros: the sampler gives up and names it.
    let wav = d.path().join("audio/piano/preset_1-008.wav");
    common::write_wav(&wav, &[vec![0.0; 44100]], RATE, 16, false);
    let only_piano = SamplerConfig {
        labels: Some(vec!["piano".into()]),
        ..SamplerConfig::default()
    };
    let s = MixtureSampler::open(d.path(), "train", only_piano.clone()).unwrap();
    let e = format!("{:#}", s.sample(0, 0).unwrap_err());
    assert!(e.contains("silent") && e.contains("preset_1-008.wav"), "{e}");
    // A clip at another rate.
    common::write_wav(&wav, &[clip(523.0, 2.0, 0.0, 3)], 16000, 16, false);
    let s = MixtureSampler::open(d.path(), "train", only_piano).unwrap();
    let e = format!("{:#}", s.sample(0, 0).unwrap_err());
    assert!(e.contains("preset_1-008.wav") && e.contains("16000"), "{e}");
}

#[test]
fn preview_writes_wavs_and_a_spectrogram_grid() {
    let d = corpus();
    let out = tempfile::tempdir().unwrap();
    let o = assert_cmd::Command::cargo_bin("splitflow")
        .unwrap()
        .args(["data", "preview", "--data"])
        .arg(d.path())
        .args(["--split", "train", "--n", "3", "--seed", "4", "-o"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout.lines().filter(|l| l.contains("TIR")).count(), 3, "{stdout}");
    // The printed ratio is the sample's.
    let s = MixtureSampler::open(d.path(), "train", SamplerConfig::default()).unwrap();
    let m0 = s.sample(4, 0).unwrap();
    assert!(stdout.contains(&format!("TIR {:+6.2} dB", m0.tir_db)), "{stdout}");
    for i in 0..3 {
        for what in ["mixture", "target", "query"] {
            let (spec, audio) = common::read_wav(&out.path().join(format!("{i:02}_{what}.wav")));
            assert_eq!((spec.channels, spec.bits_per_sample, spec.sample_rate), (1, 16, RATE));
            assert_eq!(audio[0].len(), 66150);
        }
    }
    let (_, mix0) = common::read_wav(&out.path().join("00_mixture.wav"));
    let err = mix0[0]
        .iter()
        .zip(&m0.mixture)
        .map(|(a, b)| (a / 32768.0 - f64::from(*b)).abs())
        .fold(0.0, f64::max);
    assert!(err <= 1.0 / 32768.0, "{err}");
    // The grid decodes: six rows (mixture, target per example) of a coloured picture.
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.path().join("grid.png")).unwrap(),
    ));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.height, 6 * (160 + 14 + 6) + 6);
    assert!(info.width >= 259);
    let distinct: std::collections::BTreeSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    assert!(distinct.len() > 50, "{}", distinct.len());
    // A missing corpus is an error naming the manifest.
    let o = assert_cmd::Command::cargo_bin("splitflow")
        .unwrap()
        .args(["data", "preview", "--data", "/nonexistent/corpus", "-o"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/corpus/manifest.jsonl"));
}

#[test]
fn line_chart_draws_each_series_in_its_colour() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    let train: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect();
    let valid: Vec<(f64, f64)> = (0..10).map(|i| (i as f64 * 10.0, 0.5 / (1.0 + i as f64))).collect();
    let axes = splitflow::viz::Axes {
        title: "loss",
        x: "step",
        y: "loss",
    };
    splitflow::viz::write_line_chart(&path, &axes, &[("train", train), ("valid", valid)]).unwrap();
    let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 540));
    for c in [colorous::TABLEAU10[0], colorous::TABLEAU10[1]] {
        let n = buf.chunks(3).filter(|p| *p == [c.r, c.g, c.b]).count();
        assert!(n > 100, "{c:?}: {n} pixels");
    }
    let e = splitflow::viz::write_line_chart::<&str>(&path, &axes, &[]).unwrap_err();
    assert!(format!("{e:#}").contains("curves.png"));
}

#[test]
fn mixtures_writes_a_scoreable_evaluation_set_at_the_requested_ratio() {
    let d = corpus();
    let out = tempfile::tempdir().unwrap();
    let splitflow = || assert_cmd::Command::cargo_bin("splitflow").unwrap();
    let o = splitflow()
        .args(["data", "mixtures", "--data"])
        .arg(d.path())
        .args([
            "--split",
            "train",
            "--labels",
            "speech,water",
            "--n",
            "2",
            "--seconds",
            "1",
            "--tir",
            "-5",
            "-o",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tracks = std::fs::read_to_string(out.path().join("tracks.csv")).unwrap();
    assert_eq!(tracks.lines().count(), 5, "{tracks}");
    for track in ["speech_000", "speech_001", "water_000", "water_001"] {
        let label = track.split('_').next().unwrap();
        let (_, mix) = common::read_wav(&out.path().join(format!("mixtures/{track}.wav")));
        let (_, target) = common::read_wav(&out.path().join(format!("references/{track}/{label}.wav")));
        assert!(out.path().join(format!("queries/{track}.wav")).is_file());
        assert_eq!(mix[0].len(), RATE as usize);
        // The ratio survives 16-bit quantisation to well within 0.1 dB.
        let tir = measured_tir(
            &mix[0].iter().map(|v| *v as f32).collect::<Vec<_>>(),
            &target[0].iter().map(|v| *v as f32).collect::<Vec<_>>(),
        );
        assert!((tir + 5.0).abs() < 0.1, "{track}: {tir} dB");
    }
    // The layout is what `score` reads: the mixture as estimate gives SI-SDRi 0.
    let est = out.path().join("est");
    for track in ["speech_000", "speech_001", "water_000", "water_001"] {
        let label = track.split('_').next().unwrap();
        std::fs::create_dir_all(est.join(track)).unwrap();
        std::fs::copy(
            out.path().join(format!("mixtures/{track}.wav")),
            est.join(format!("{track}/{label}.wav")),
        )
        .unwrap();
    }
    let o = splitflow()
        .args(["score", "--quiet", "--metrics", "si_sdri", "--references"])
        .arg(out.path().join("references"))
        .arg("--estimates")
        .arg(&est)
        .arg("--mixtures")
        .arg(out.path().join("mixtures"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout.matches(" 0.000").count(), 8, "{stdout}");
}

#[test]
fn mixtures_from_the_heldout_split_use_only_its_labels() {
    let d = corpus();
    let out = tempfile::tempdir().unwrap();
    let o = assert_cmd::Command::cargo_bin("splitflow")
        .unwrap()
        .args(["data", "mixtures", "--data"])
        .arg(d.path())
        .args(["--split", "heldout", "--n", "3", "--seconds", "1", "-o"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tracks = std::fs::read_to_string(out.path().join("tracks.csv")).unwrap();
    let mut labels: Vec<&str> = tracks.lines().skip(1).filter_map(|l| l.split(',').nth(1)).collect();
    labels.sort();
    assert_eq!(
        labels,
        ["speech", "speech", "speech", "water", "water", "water"],
        "{tracks}"
    );
    // The held-out speech clip is the 170 Hz tone, not one of the other splits' voices.
    let (_, target) = common::read_wav(&out.path().join("references/speech_000/speech.wav"));
    let power = |hz: f64| {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, v) in target[0].iter().enumerate() {
            let w = std::f64::consts::TAU * hz * i as f64 / f64::from(RATE);
            re += *v * w.cos();
            im += *v * w.sin();
        }
        re * re + im * im
    };
    let tones = [170.0, 180.0, 190.0, 200.0, 210.0, 220.0, 250.0];
    let best = tones.iter().copied().max_by(|a, b| power(*a).total_cmp(&power(*b)));
    assert_eq!(best, Some(170.0));
}

#[test]
fn package_share_keys_that_match_no_clip_are_reported() {
    let d = corpus();
    let cfg = |key: &str| SamplerConfig {
        package_share: std::collections::BTreeMap::from([(key.to_string(), 0.5)]),
        ..SamplerConfig::default()
    };
    let s = MixtureSampler::open(d.path(), "train", cfg("fixture")).unwrap();
    assert!(s.unmatched_shares().is_empty());
    // The set's name is not the package column: such a share would change nothing.
    let s = MixtureSampler::open(d.path(), "train", cfg("render-ambience")).unwrap();
    assert_eq!(s.unmatched_shares(), vec!["render-ambience"]);
}
