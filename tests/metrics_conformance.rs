//! Metric values against the reference implementations (museval v4, mir_eval, torchmetrics,
//! MDX/Demucs) on the deterministic LCG inputs of `tests/conformance/UPSTREAM_README.md`.
//! Tolerance 1e-3 dB (the references are printed with four decimals).

mod common;

use common::lcg;

use splitflow::metrics::{
    bss_eval_sources, bss_eval_v4, nan_median, nsdr, sdr_filtered, sdr_framewise, sdr_summary, si_sdr, si_sdr_channel,
};

const TOL: f64 = 1e-3;

/// `[source][channel][sample]` references and estimates.
type Pair = (Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>);

/// References `[s0, s1]` and estimates `[est0, est1]`, mono, as `[source][channel][sample]`.
fn lcg_case() -> Pair {
    let n = 24_000;
    let (s0, s1, nz) = (lcg(n, 1), lcg(n, 2), lcg(n, 3));
    let delay3 = |i: usize| if i >= 3 { s0[i - 3] } else { 0.0 };
    let est0: Vec<f32> = (0..n)
        .map(|i| (0.8 * delay3(i) + 0.2 * s1[i] + 0.05 * nz[i]) as f32)
        .collect();
    let est1: Vec<f32> = (0..n).map(|i| (s1[i] + 0.1 * s0[i] - 0.05 * nz[i]) as f32).collect();
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    (vec![vec![to32(&s0)], vec![to32(&s1)]], vec![vec![est0], vec![est1]])
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.6}, want {want:.6} (diff {:.2e})",
        (got - want).abs()
    );
    eprintln!("{what}: got {got:.6}, want {want:.4}, diff {:.1e}", (got - want).abs());
}

#[test]
fn lcg_inputs_match_documented_first_samples() {
    let s0 = lcg(3, 1);
    let s1 = lcg(3, 2);
    for (got, want) in s0
        .iter()
        .zip([0.0139, -0.3243, -0.1913])
        .chain(s1.iter().zip([-0.4723, 0.1963, -0.1875]))
    {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}

#[test]
fn museval_v4_framewise() {
    let (refs, ests) = lcg_case();
    let r = bss_eval_v4(&refs, &ests, 8000, 8000).expect("v4");
    let want = [
        // SDR, ISR, SIR, SAR per source, per frame
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
    assert_eq!(r.frames, vec![(0, 8000), (8000, 8000), (16000, 8000)]);
    for (j, src) in r.sources.iter().enumerate() {
        for (m, (name, got)) in [
            ("SDR", &src.sdr),
            ("ISR", &src.isr),
            ("SIR", &src.sir),
            ("SAR", &src.sar),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(got.len(), 3);
            for t in 0..3 {
                assert_close(&format!("v4 src{j} {name} frame {t}"), got[t], want[j][m][t], TOL);
            }
        }
    }
    // The projection-free SDR equals the v4 SDR.
    let fast = sdr_framewise(&refs, &ests, 8000, 8000).expect("sdr");
    for (j, src) in r.sources.iter().enumerate() {
        for (t, f) in fast[j].iter().enumerate() {
            assert!(
                (f - src.sdr[t]).abs() < 1e-9,
                "fast SDR differs: {} vs {}",
                f,
                src.sdr[t]
            );
        }
    }
    let med = r.sources[0].median();
    assert!((med.sdr - nan_median(&[-2.2316, -2.3568, -2.1468])).abs() < TOL);
}

#[test]
fn museval_v4_whole_signal() {
    let (refs, ests) = lcg_case();
    let want = [
        [-2.2459, -2.1364, 12.1230, 24.4136],
        [19.0937, 36.1157, 20.1553, 26.2108],
    ];
    // A window at least as long as the signal gives one frame over the whole signal.
    for window in [24_000, 1 << 20] {
        let r = bss_eval_v4(&refs, &ests, window, window).expect("v4");
        assert_eq!(r.frames, vec![(0, 24_000)]);
        for (j, src) in r.sources.iter().enumerate() {
            for (m, (name, got)) in [
                ("SDR", &src.sdr),
                ("ISR", &src.isr),
                ("SIR", &src.sir),
                ("SAR", &src.sar),
            ]
            .into_iter()
            .enumerate()
            {
                assert_close(&format!("v4 whole src{j} {name}"), got[0], want[j][m], TOL);
            }
        }
    }
}

#[test]
fn mir_eval_sources_and_torchmetrics_sdr() {
    let (refs, ests) = lcg_case();
    let mono = |x: &[Vec<Vec<f32>>]| x.iter().map(|s| s[0].clone()).collect::<Vec<_>>();
    let (r, e) = (mono(&refs), mono(&ests));
    let res = bss_eval_sources(&r, &e, false).expect("sources");
    let want = [[11.8592, 12.1230, 24.4136], [19.1848, 20.1553, 26.2108]];
    for (j, src) in res.sources.iter().enumerate() {
        assert_close(&format!("mir_eval src{j} SDR"), src.sdr[0], want[j][0], TOL);
        assert_close(&format!("mir_eval src{j} SIR"), src.sir[0], want[j][1], TOL);
        assert_close(&format!("mir_eval src{j} SAR"), src.sar[0], want[j][2], TOL);
        assert!(src.isr[0].is_nan());
    }
    assert_eq!(res.permutation, vec![vec![0, 1]]);
    for (j, want) in [11.8592, 19.1848].into_iter().enumerate() {
        let got = sdr_filtered(&r[j], &e[j], 512).expect("sdr");
        assert_close(&format!("torchmetrics SDR src{j}"), got, want, TOL);
    }
    // With the permutation search the identity is still the best matching here.
    let perm = bss_eval_sources(&r, &e, true).expect("sources");
    assert_eq!(perm.permutation, vec![vec![0, 1]]);
}

#[test]
fn mdx_nsdr_and_si_sdr() {
    let (refs, ests) = lcg_case();
    for (j, (want_nsdr, want_si)) in [(-2.2459, -49.981), (19.0937, 19.0967)].into_iter().enumerate() {
        assert_close(
            &format!("nSDR src{j}"),
            nsdr(&refs[j], &ests[j]).expect("nsdr"),
            want_nsdr,
            TOL,
        );
        assert_close(
            &format!("SI-SDR src{j}"),
            si_sdr(&refs[j], &ests[j], false).expect("si"),
            want_si,
            TOL,
        );
    }
}

#[test]
fn torchmetrics_si_sdr_doc_example() {
    let got = si_sdr_channel(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0], false);
    assert!((got - 18.4030).abs() < 1e-4, "{got}");
}

#[test]
fn one_pass_summary_equals_the_separate_functions() {
    let (refs, ests) = lcg_case();
    for zero_mean in [false, true] {
        for (window, hop) in [(8000, 8000), (5000, 3000), (30_000, 30_000)] {
            let sum = sdr_summary(&refs, &ests, window, hop, zero_mean).expect("summary");
            let r = bss_eval_v4(&refs, &ests, window, hop).expect("v4");
            assert_eq!(sum.frames, r.frames);
            for j in 0..2 {
                for (a, b) in sum.sdr[j].iter().zip(&r.sources[j].sdr) {
                    assert!((a - b).abs() < 1e-9, "SDR {a} vs {b}");
                }
                let n = nsdr(&refs[j], &ests[j]).expect("nsdr");
                let s = si_sdr(&refs[j], &ests[j], zero_mean).expect("si");
                assert!((sum.nsdr[j] - n).abs() < 1e-9, "nSDR {} vs {n}", sum.nsdr[j]);
                assert!((sum.si_sdr[j] - s).abs() < 1e-6, "SI-SDR {} vs {s}", sum.si_sdr[j]);
            }
        }
    }
}
