//! Metric properties: invariances, perfect estimates, permutations, silence, bad input.

use splitflow::metrics::{
    bss_eval_images_framewise, bss_eval_sources, bss_eval_v4, nan_median, nsdr, sdr_framewise, si_sdr, si_sdr_channel,
};

/// `[source][channel][sample]` references and estimates.
type Pair = (Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>);

/// Deterministic uniform noise in [-0.5, 0.5) (LCG as in the conformance data).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = (1_103_515_245 * x + 12_345) % (1 << 31);
            (x as f64 / (1u64 << 31) as f64 - 0.5) as f32
        })
        .collect()
}

/// Two stereo sources and estimates with a little leakage and noise.
fn stereo_case(n: usize) -> Pair {
    let s: Vec<Vec<Vec<f32>>> = (0..2)
        .map(|j| (0..2).map(|c| noise(n, 10 + 2 * j as u64 + c as u64)).collect())
        .collect();
    let nz = noise(n, 99);
    let e = (0..2)
        .map(|j| {
            (0..2)
                .map(|c| {
                    (0..n)
                        .map(|i| s[j][c][i] + 0.1 * s[1 - j][c][i] + 0.02 * nz[i])
                        .collect()
                })
                .collect()
        })
        .collect();
    (s, e)
}

#[test]
fn si_sdr_is_invariant_to_estimate_scale() {
    let r = noise(5000, 1);
    let e: Vec<f32> = r.iter().zip(noise(5000, 2)).map(|(a, b)| a + 0.3 * b).collect();
    let base = si_sdr_channel(&r, &e, false);
    for k in [0.01f32, 0.5, 3.7, 100.0] {
        let scaled: Vec<f32> = e.iter().map(|x| x * k).collect();
        let v = si_sdr_channel(&r, &scaled, false);
        // Exact up to the eps regulariser (f32::EPSILON added to both sums, as torchmetrics).
        assert!((v - base).abs() < 1e-3, "scale {k}: {v} vs {base}");
    }
    let zm = si_sdr(std::slice::from_ref(&r), std::slice::from_ref(&e), true).expect("si");
    assert!(
        (zm - base).abs() < 0.1,
        "zero-mean variant close on zero-mean noise: {zm} vs {base}"
    );
}

#[test]
fn perfect_estimate_gives_infinite_sdr() {
    let (s, _) = stereo_case(20_000);
    let v4 = bss_eval_v4(&s, &s, 8000, 8000).expect("v4");
    for src in &v4.sources {
        assert!(src.sdr.iter().all(|&x| x == f64::INFINITY), "{:?}", src.sdr);
        assert!(src.sar.iter().all(|&x| x > 60.0), "{:?}", src.sar);
    }
    let fast = sdr_framewise(&s, &s, 8000, 8000).expect("sdr");
    assert!(fast.iter().flatten().all(|&x| x == f64::INFINITY));
    // nSDR is capped by its 1e-7 regulariser: 10 log10((E + 1e-7) / 1e-7).
    let e: f64 = s[0].iter().flatten().map(|&x| f64::from(x) * f64::from(x)).sum();
    let cap = 10.0 * ((e + 1e-7) / 1e-7).log10();
    assert!((nsdr(&s[0], &s[0]).expect("nsdr") - cap).abs() < 1e-9);
    // SI-SDR is capped by its f32-epsilon regulariser.
    assert!(si_sdr(&s[0], &s[0], false).expect("si") > 100.0);
}

#[test]
fn swapped_estimates_lower_sir_and_permutation_recovers_them() {
    let (s, e) = stereo_case(24_000);
    let good = bss_eval_v4(&s, &e, 8000, 8000).expect("v4");
    let swapped: Vec<_> = vec![e[1].clone(), e[0].clone()];
    let bad = bss_eval_v4(&s, &swapped, 8000, 8000).expect("v4");
    for j in 0..2 {
        let (g, b) = (nan_median(&good.sources[j].sir), nan_median(&bad.sources[j].sir));
        // Swapped: the wrong source only leaks 0.1 (-20 dB) plus what 2 x 512 random taps capture.
        assert!(g > 15.0 && b < -10.0, "source {j}: SIR {g} (matched) vs {b} (swapped)");
    }
    let mono = |x: &[Vec<Vec<f32>>]| x.iter().map(|src| src[0].clone()).collect::<Vec<_>>();
    let res = bss_eval_sources(&mono(&s), &mono(&swapped), true).expect("sources");
    assert_eq!(res.permutation, vec![vec![1, 0]]);
    assert!(res.sources.iter().all(|src| src.sir[0] > 15.0));
}

#[test]
fn silent_sources_give_nan_not_panic() {
    let (mut s, e) = stereo_case(24_000);
    // Source 1 silent in the middle frame only: that frame is NaN for every source.
    for chan in &mut s[1] {
        chan[8000..16000].fill(0.0);
    }
    let r = bss_eval_v4(&s, &e, 8000, 8000).expect("v4");
    for src in &r.sources {
        assert!(src.sdr[1].is_nan() && src.isr[1].is_nan() && src.sir[1].is_nan() && src.sar[1].is_nan());
        assert!(src.sdr[0].is_finite() && src.sdr[2].is_finite());
        assert!(src.median().sdr.is_finite());
    }
    // A reference silent everywhere: every value NaN, for every function.
    for chan in &mut s[1] {
        chan.fill(0.0);
    }
    let r = bss_eval_v4(&s, &e, 8000, 8000).expect("v4");
    assert!(
        r.sources
            .iter()
            .all(|src| src.sdr.iter().chain(&src.sir).all(|x| x.is_nan()))
    );
    assert!(r.sources[0].median().sdr.is_nan());
    assert!(
        sdr_framewise(&s, &e, 8000, 8000)
            .expect("sdr")
            .iter()
            .flatten()
            .all(|x| x.is_nan())
    );
    let mono = |x: &[Vec<Vec<f32>>]| x.iter().map(|src| src[0].clone()).collect::<Vec<_>>();
    let res = bss_eval_sources(&mono(&s), &mono(&e), true).expect("sources");
    assert!(res.sources.iter().all(|src| src.sdr[0].is_nan()));
    let res = bss_eval_images_framewise(&s, &e, 8000, 8000, false).expect("images");
    assert!(res.sources.iter().all(|src| src.sdr.iter().all(|x| x.is_nan())));
    // A silent estimate channel alone is fine (the source is not silent).
    let (s, mut e) = stereo_case(24_000);
    e[0][1].fill(0.0);
    let r = bss_eval_v4(&s, &e, 8000, 8000).expect("v4");
    assert!(r.sources[0].sdr.iter().all(|x| x.is_finite()));
    // A silent reference channel (e.g. a hard-panned source) keeps every metric finite, in v4
    // and in v3 (where the Gram matrix has no epsilon on its diagonal).
    let (mut s, e) = stereo_case(24_000);
    s[0][1].fill(0.0);
    let r = bss_eval_v4(&s, &e, 8000, 8000).expect("v4");
    let v3 = bss_eval_images_framewise(&s, &e, 8000, 8000, false).expect("v3");
    for res in [&r, &v3] {
        for src in &res.sources {
            assert!(
                src.sdr
                    .iter()
                    .chain(&src.isr)
                    .chain(&src.sir)
                    .chain(&src.sar)
                    .all(|x| x.is_finite())
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let (s, e) = stereo_case(1000);
    assert!(bss_eval_v4(&s, &e[..1], 500, 500).is_err());
    let short: Vec<Vec<Vec<f32>>> = e
        .iter()
        .map(|src| src.iter().map(|c| c[..900].to_vec()).collect())
        .collect();
    assert!(bss_eval_v4(&s, &short, 500, 500).is_err());
    assert!(bss_eval_v4(&s, &e, 0, 500).is_err());
    assert!(bss_eval_v4(&[], &[], 500, 500).is_err());
    assert!(nsdr(&s[0], &e[0][..1]).is_err());
    assert!(sdr_framewise(&s, &e, 500, 0).is_err());
}
