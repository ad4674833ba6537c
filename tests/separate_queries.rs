//! Several queries in one pass give what each query gives alone, for the bundled neural model
//! (one batched network pass, one STFT per channel) and for HPSS (one STFT and median pair).

use splitflow::separate::neural::FlowOptions;
use splitflow::separate::{Query, Segment, Separator, load, separate_all, separate_all_many};

/// A stereo test signal at 44.1 kHz: tones, a click track and noise, different per channel.
fn signal(secs: f32) -> Vec<Vec<f32>> {
    let rate = 44_100.0;
    let n = (secs * rate) as usize;
    let mut s = 0x1234_5678_9abc_def1u64;
    (0..2)
        .map(|c| {
            (0..n)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let t = i as f32 / rate;
                    let noise = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                    let click = if i % 11_025 < 200 { 0.5 } else { 0.0 };
                    0.3 * (2.0 * std::f32::consts::PI * (220.0 + 110.0 * c as f32) * t).sin()
                        + 0.1 * noise
                        + click * noise
                })
                .collect()
        })
        .collect()
}

fn max_err(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn energy(x: &[Vec<f32>]) -> f64 {
    x.iter().flatten().map(|v| (*v as f64).powi(2)).sum()
}

fn check(sep: &dyn Separator, labels: &[&str], secs: f32, tolerance: f32) {
    let x = signal(secs);
    let queries: Vec<Query> = labels.iter().map(|l| Query::from_label(l)).collect();
    let seg = Segment {
        length_secs: 4.0,
        overlap_secs: 0.5,
    };
    let many = separate_all_many(sep, &queries, &x, 44_100, seg).unwrap();
    assert_eq!(many.len(), labels.len());
    for (q, m) in queries.iter().zip(&many) {
        let one = separate_all(sep, q, &x, 44_100, seg).unwrap();
        let err = max_err(&one, m);
        assert!(
            err <= tolerance,
            "{} {q:?}: batched differs from alone by {err}",
            sep.name()
        );
        assert!(energy(m) > 0.0, "{} {q:?}: silent estimate", sep.name());
    }
    // The queries are not all answered alike.
    assert!(max_err(&many[0], &many[1]) > 1e-3, "{}: two queries agree", sep.name());
}

#[test]
fn bundled_model_answers_several_queries_like_each_alone() {
    let sep = load(splitflow::separate::DEFAULT_MODEL, &FlowOptions::default()).unwrap();
    assert_eq!(sep.labels().len(), splitflow::data::LABELS.len());
    // Batched matrix products may round differently from single ones; far below 16-bit steps.
    check(&*sep, &["drums", "bass", "speech", "music"], 9.0, 1e-5);
}

#[test]
fn generative_model_answers_several_queries_like_each_alone() {
    let opts = FlowOptions {
        samples: 2,
        ..FlowOptions::default()
    };
    let sep = load("splitflow-small", &opts).unwrap();
    check(&*sep, &["drums", "speech", "bass"], 5.0, 1e-5);
}

#[test]
fn hpss_answers_both_parts_in_one_pass() {
    let sep = load("hpss", &FlowOptions::default()).unwrap();
    assert_eq!(sep.labels(), ["percussive", "harmonic"]);
    check(&*sep, &["percussive", "harmonic"], 6.0, 0.0);
}
