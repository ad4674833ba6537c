//! Speed benchmark of the metrics on a full-length track (ignored by default; run in release):
//!
//! ```text
//! cargo test --release --test metrics_speed -- --ignored --nocapture
//! ```
//!
//! 240 s, 4 sources, stereo, 44.1 kHz: broadband noise-like sources; each estimate is its source
//! delayed by a few samples, plus 5 % of every other source and a little noise.

mod common;

use std::time::Instant;

use splitflow::metrics::{bss_eval_v4, nan_median, sdr_summary};

const RATE: usize = 44_100;

/// xorshift64* uniform noise in [-0.5, 0.5).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    // Uniform in [-0.5, 0.5).
    common::white(n, seed).into_iter().map(|v| v * 0.5).collect()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_240s_4src_stereo() {
    let n = 240 * RATE;
    let (nsrc, nchan) = (4, 2);
    let t = Instant::now();
    let refs: Vec<Vec<Vec<f32>>> = (0..nsrc)
        .map(|j| (0..nchan).map(|c| noise(n, 1 + (j * nchan + c) as u64)).collect())
        .collect();
    let ests: Vec<Vec<Vec<f32>>> = (0..nsrc)
        .map(|j| {
            let delay = 1 + 2 * j; // 1, 3, 5, 7 samples
            (0..nchan)
                .map(|c| {
                    let nz = noise(n, 1000 + (j * nchan + c) as u64);
                    (0..n)
                        .map(|i| {
                            let own = if i >= delay { refs[j][c][i - delay] } else { 0.0 };
                            let others: f32 = (0..nsrc).filter(|&k| k != j).map(|k| refs[k][c][i]).sum();
                            0.9 * own + 0.05 * others + 0.02 * nz[i]
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    eprintln!(
        "generated {nsrc} sources x {nchan} channels x {n} samples in {:.2?}",
        t.elapsed()
    );
    eprintln!("threads: {}", rayon::current_num_threads());

    let t = Instant::now();
    let summary = sdr_summary(&refs, &ests, RATE, RATE, false).expect("summary");
    let fast_time = t.elapsed();
    eprintln!("SDR (v4 framewise) + nSDR + SI-SDR, one pass: {fast_time:.3?}");
    let (fast, nsdrs, sisdrs) = (&summary.sdr, &summary.nsdr, &summary.si_sdr);

    let t = Instant::now();
    let full = bss_eval_v4(&refs, &ests, RATE, RATE).expect("v4");
    let full_time = t.elapsed();
    eprintln!(
        "full v4 SDR/ISR/SIR/SAR ({} frames): {full_time:.2?}",
        full.frames.len()
    );
    for (j, src) in full.sources.iter().enumerate() {
        let m = src.median();
        eprintln!(
            "  src{j}: SDR {:.3} ISR {:.3} SIR {:.3} SAR {:.3} | fast SDR {:.3} nSDR {:.3} SI-SDR {:.3}",
            m.sdr,
            m.isr,
            m.sir,
            m.sar,
            nan_median(&fast[j]),
            nsdrs[j],
            sisdrs[j]
        );
        for (a, b) in src.sdr.iter().zip(&fast[j]) {
            assert!((a - b).abs() < 1e-6, "v4 SDR {a} vs fast SDR {b}");
        }
    }
    eprintln!("peak memory (VmHWM): {:.0} MiB", peak_rss_mib());
}
