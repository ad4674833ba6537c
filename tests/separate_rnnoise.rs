//! The RNNoise peer (`--model rnnoise`): queries, lengths at any rate (through the engine's
//! resampling), latency compensation.

use splitflow::separate::{Query, by_name, separate_all};

/// A voiced, speech-like tone: 140 Hz fundamental with 12 harmonics and a syllable envelope.
fn voiced(rate: u32, seconds: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let env = (std::f32::consts::PI * 3.0 * t).sin().abs();
            let f0 = 140.0 * (1.0 + 0.03 * (2.0 * std::f32::consts::PI * 4.0 * t).sin());
            let tone: f32 = (1..=12)
                .map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32)
                .sum();
            0.2 * env * tone
        })
        .collect()
}

/// Lag (in samples, within ±max_lag) at which `b` best matches `a`.
fn best_lag(a: &[f32], b: &[f32], max_lag: isize) -> isize {
    (-max_lag..=max_lag)
        .max_by(|&p, &q| {
            let c = |lag: isize| -> f64 {
                (0..a.len() as isize)
                    .filter_map(|i| {
                        let j = i + lag;
                        (j >= 0 && (j as usize) < b.len()).then(|| a[i as usize] as f64 * b[j as usize] as f64)
                    })
                    .sum()
            };
            c(p).total_cmp(&c(q))
        })
        .unwrap()
}

#[test]
fn rnnoise_answers_speech_only() {
    let r = by_name("rnnoise").unwrap();
    for ok in ["speech", "voice", "Vocals"] {
        r.check_query(&Query::from_label(ok)).unwrap();
    }
    let err = r.check_query(&Query::from_label("drums")).unwrap_err().to_string();
    assert!(err.contains("speech") && err.contains("drums"), "{err}");
}

#[test]
fn rnnoise_keeps_length_and_alignment_at_any_rate() {
    let r = by_name("rnnoise").unwrap();
    let q = Query::from_label("speech");
    for rate in [48_000, 22_050, 16_000] {
        let x = voiced(rate, 1.3);
        // Through the engine, which resamples to RNNoise's 48 kHz and back.
        let out = separate_all(r.as_ref(), &q, &[x.clone(), x.clone()], rate, r.segment()).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.len() == x.len()), "rate {rate}");
        assert!(out[0].iter().all(|v| v.is_finite()));
        // Output energy stays on the voiced signal and lines up with it: RNNoise's one-frame
        // latency (480 samples at 48 kHz) is compensated, so the best cross-correlation lag is
        // within a sample or two of 0 (its filters shift the phase slightly).
        let energy: f32 = out[0].iter().map(|v| v * v).sum();
        assert!(energy > 0.0, "rate {rate}: silent output");
        let lag = best_lag(&x, &out[0], 600 * rate as isize / 48_000);
        assert!(lag.abs() <= 2, "rate {rate}: output lags the input by {lag} samples");
    }
    // Silence in, silence out.
    let out = r.separate(&[vec![0.0; 4800]], 48_000, &q).unwrap();
    assert!(out[0].iter().all(|v| v.abs() < 1e-6));
}
