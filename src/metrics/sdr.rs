//! Projection-free SDR variants (museval v4 SDR, MDX nSDR, SI-SDR) and the single-reference
//! filtered SDR of torchmetrics.

use faer::Mat;
use rayon::prelude::*;

use super::bss_eval::view;
use super::fft::lagged_xcorr;
use super::projection::solve_normal;
use super::{museval_frames, validate};
use crate::Result;

/// The `delta` of the MDX 2021 challenge SDR and Demucs `new_sdr` (both use `1e-7`).
pub const NSDR_EPS: f64 = 1e-7;

/// The `eps` torchmetrics uses in SI-SDR: `torch.finfo(float32).eps`, the dtype of our audio.
const SI_SDR_EPS: f64 = f32::EPSILON as f64;

fn check_channels(reference: &[Vec<f32>], estimate: &[Vec<f32>]) -> Result<()> {
    if reference.is_empty() || reference.len() != estimate.len() {
        anyhow::bail!(
            "reference has {} channels, estimate {}",
            reference.len(),
            estimate.len()
        );
    }
    for (c, (r, e)) in reference.iter().zip(estimate).enumerate() {
        if r.len() != e.len() {
            anyhow::bail!("channel {c}: reference has {} samples, estimate {}", r.len(), e.len());
        }
    }
    Ok(())
}

/// Sum over channels and samples of `(f(ref), g(ref, est))` pairs of squares, in `f64`.
fn energies(reference: &[Vec<f32>], estimate: &[Vec<f32>], start: usize, len: usize) -> (f64, f64) {
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (r, e) in reference.iter().zip(estimate) {
        for (&r, &e) in r[start..start + len].iter().zip(&e[start..start + len]) {
            let (r, e) = (f64::from(r), f64::from(e));
            num += r * r;
            den += (r - e) * (r - e);
        }
    }
    (num, den)
}

/// MDX 2021 / Demucs "new SDR" of one source over its whole signal:
/// `10 log10((Σ ref² + 1e-7) / (Σ (ref - est)² + 1e-7))`, sums over all channels and samples.
///
/// `reference` and `estimate` are `[channel][sample]` with matching shapes. Finite for any input
/// (a perfect estimate of a non-silent source gives a large finite value; silence vs silence
/// gives 0 dB).
pub fn nsdr(reference: &[Vec<f32>], estimate: &[Vec<f32>]) -> Result<f64> {
    check_channels(reference, estimate)?;
    let n = reference[0].len();
    if reference.iter().any(|c| c.len() != n) {
        anyhow::bail!("reference channels differ in length");
    }
    let (num, den) = energies(reference, estimate, 0, n);
    Ok(10.0 * ((num + NSDR_EPS) / (den + NSDR_EPS)).log10())
}

/// SDR improvement over the mixture, on the [`nsdr`] definition:
/// `nsdr(reference, estimate) - nsdr(reference, mixture)`.
pub fn sdri(reference: &[Vec<f32>], estimate: &[Vec<f32>], mixture: &[Vec<f32>]) -> Result<f64> {
    Ok(nsdr(reference, estimate)? - nsdr(reference, mixture)?)
}

/// museval v4 SDR alone, per frame: `10 log10(Σ s² / Σ (ŝ - s)²)` summed over channels within
/// each frame (museval framing, see [`super::museval_frames`]). Equal to the SDR of
/// [`super::bss_eval_v4`] (the projection terms add back to the estimate) at a tiny fraction of
/// its cost. NaN for every source in frames where any reference or estimate source is all
/// zeros; `+inf` for a perfect estimate. Returns `[source][frame]`.
pub fn sdr_framewise(
    references: &[Vec<Vec<f32>>],
    estimates: &[Vec<Vec<f32>>],
    window: usize,
    hop: usize,
) -> Result<Vec<Vec<f64>>> {
    Ok(sdr_summary(references, estimates, window, hop, false)?.sdr)
}

/// The projection-free metrics of every source in one pass over the audio.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SdrSummary {
    /// museval v4 SDR per frame, `[source][frame]` (as [`sdr_framewise`]).
    pub sdr: Vec<Vec<f64>>,
    /// Frames as `(start, length)`.
    pub frames: Vec<(usize, usize)>,
    /// Whole-signal MDX nSDR per source (as [`nsdr`]).
    pub nsdr: Vec<f64>,
    /// Whole-signal SI-SDR per source, mean over channels (as [`si_sdr`]).
    pub si_sdr: Vec<f64>,
}

/// Per-segment sums: `[Σ s, Σ ŝ, Σ s², Σ ŝ s, Σ ŝ², Σ (ŝ - s)²]`.
type Sums = [f64; 6];

fn add(a: &mut Sums, b: &Sums) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

fn segment_sums(r: &[f32], e: &[f32]) -> Sums {
    const L: usize = 8;
    let mut acc = [[0.0f64; L]; 6];
    let rc = r.chunks_exact(L);
    let ec = e.chunks_exact(L);
    let (rr, er) = (rc.remainder(), ec.remainder());
    for (rb, eb) in rc.zip(ec) {
        for i in 0..L {
            let (t, p) = (f64::from(rb[i]), f64::from(eb[i]));
            acc[0][i] += t;
            acc[1][i] += p;
            acc[2][i] += t * t;
            acc[3][i] += p * t;
            acc[4][i] += p * p;
            acc[5][i] += (p - t) * (p - t);
        }
    }
    for (i, (&t, &p)) in rr.iter().zip(er).enumerate() {
        let (t, p) = (f64::from(t), f64::from(p));
        acc[0][i] += t;
        acc[1][i] += p;
        acc[2][i] += t * t;
        acc[3][i] += p * t;
        acc[4][i] += p * p;
        acc[5][i] += (p - t) * (p - t);
    }
    let mut out = [0.0f64; 6];
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = a.iter().sum();
    }
    out
}

/// SI-SDR from whole-channel sums (torchmetrics formula, see [`si_sdr_channel`]):
/// `Σ (α s - ŝ)² = (α - 1)² Σ s² + 2 (α - 1) Σ s (s - ŝ) + Σ (ŝ - s)²`, which keeps the
/// precision of the directly summed `Σ (ŝ - s)²` for good estimates.
fn si_sdr_from_sums(s: &Sums, n: usize, zero_mean: bool) -> f64 {
    let [st, sp, mut tt, mut pt, _, mut dd] = *s;
    if zero_mean && n > 0 {
        let (mt, mp) = (st / n as f64, sp / n as f64);
        tt -= n as f64 * mt * mt;
        pt -= n as f64 * mt * mp;
        dd -= n as f64 * (mp - mt) * (mp - mt);
    }
    let alpha = (pt + SI_SDR_EPS) / (tt + SI_SDR_EPS);
    let num = alpha * alpha * tt;
    let den = (alpha - 1.0) * (alpha - 1.0) * tt + 2.0 * (alpha - 1.0) * (tt - pt) + dd;
    10.0 * ((num + SI_SDR_EPS) / (den.max(0.0) + SI_SDR_EPS)).log10()
}

/// museval framewise SDR, MDX nSDR and SI-SDR of every source in a single pass over the audio
/// (the sums of each elementary segment between frame boundaries are computed once, in
/// parallel over sources and channels). Values equal [`sdr_framewise`], [`nsdr`] and
/// [`si_sdr`] up to summation order.
pub fn sdr_summary(
    references: &[Vec<Vec<f32>>],
    estimates: &[Vec<Vec<f32>>],
    window: usize,
    hop: usize,
    zero_mean: bool,
) -> Result<SdrSummary> {
    let (refs, ests) = (view(references), view(estimates));
    let (nsrc, nchan, n) = validate(&refs, &ests)?;
    let frames = museval_frames(n, window, hop)?;
    let mut cuts: Vec<usize> = frames.iter().flat_map(|&(s, l)| [s, s + l]).chain([0, n]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let segments: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    // sums[src][chan][segment]
    let sums: Vec<Vec<Vec<Sums>>> = (0..nsrc)
        .into_par_iter()
        .map(|j| {
            (0..nchan)
                .into_par_iter()
                .map(|c| {
                    let (r, e) = (&references[j][c], &estimates[j][c]);
                    segments
                        .par_iter()
                        .map(|&(a, b)| segment_sums(&r[a..b], &e[a..b]))
                        .collect()
                })
                .collect()
        })
        .collect();
    let seg_range = |start: usize, len: usize| {
        let a = segments.partition_point(|&(s, _)| s < start);
        let b = segments.partition_point(|&(_, e)| e <= start + len);
        a..b
    };
    // Per frame, per source: sums over channels and the frame's segments.
    let frame_sums: Vec<Vec<Sums>> = frames
        .iter()
        .map(|&(s, l)| {
            let range = seg_range(s, l);
            (0..nsrc)
                .map(|j| {
                    let mut acc = [0.0f64; 6];
                    for chan in &sums[j] {
                        for seg in &chan[range.clone()] {
                            add(&mut acc, seg);
                        }
                    }
                    acc
                })
                .collect()
        })
        .collect();
    let mut sdr = vec![Vec::with_capacity(frames.len()); nsrc];
    for per_src in &frame_sums {
        // Silent source in this frame: Σ s² = 0 (reference) or Σ ŝ² = 0 (estimate).
        let silent = per_src.iter().any(|s| s[2] == 0.0 || s[4] == 0.0);
        for (j, s) in per_src.iter().enumerate() {
            sdr[j].push(if silent {
                f64::NAN
            } else if s[5] == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (s[2] / s[5]).log10()
            });
        }
    }
    let whole = |j: usize, c: usize| {
        let mut acc = [0.0f64; 6];
        for seg in &sums[j][c] {
            add(&mut acc, seg);
        }
        acc
    };
    let nsdr = (0..nsrc)
        .map(|j| {
            let (mut num, mut den) = (0.0, 0.0);
            for c in 0..nchan {
                let w = whole(j, c);
                num += w[2];
                den += w[5];
            }
            10.0 * ((num + NSDR_EPS) / (den + NSDR_EPS)).log10()
        })
        .collect();
    let si_sdr = (0..nsrc)
        .map(|j| {
            (0..nchan)
                .map(|c| si_sdr_from_sums(&whole(j, c), n, zero_mean))
                .sum::<f64>()
                / nchan as f64
        })
        .collect();
    Ok(SdrSummary {
        sdr,
        frames,
        nsdr,
        si_sdr,
    })
}

/// Scale-invariant SDR of one channel, as torchmetrics
/// `scale_invariant_signal_distortion_ratio`:
/// `α = (Σ ŝ s + ε) / (Σ s² + ε)`, `SI-SDR = 10 log10((Σ (α s)² + ε) / (Σ (α s - ŝ)² + ε))`
/// with `ε = f32::EPSILON` (torchmetrics uses the eps of the input dtype, `float32` for audio).
/// With `zero_mean`, both signals have their mean removed first (torchmetrics default: false).
pub fn si_sdr_channel(reference: &[f32], estimate: &[f32], zero_mean: bool) -> f64 {
    let n = reference.len().min(estimate.len());
    let (mr, me) = if zero_mean && n > 0 {
        let mr = reference[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let me = estimate[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        (mr, me)
    } else {
        (0.0, 0.0)
    };
    let (mut pt, mut tt) = (0.0f64, 0.0f64);
    for (&t, &p) in reference[..n].iter().zip(&estimate[..n]) {
        let (t, p) = (f64::from(t) - mr, f64::from(p) - me);
        pt += p * t;
        tt += t * t;
    }
    let alpha = (pt + SI_SDR_EPS) / (tt + SI_SDR_EPS);
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&t, &p) in reference[..n].iter().zip(&estimate[..n]) {
        let (t, p) = (f64::from(t) - mr, f64::from(p) - me);
        let st = alpha * t;
        num += st * st;
        den += (st - p) * (st - p);
    }
    10.0 * ((num + SI_SDR_EPS) / (den + SI_SDR_EPS)).log10()
}

/// SI-SDR of a multichannel source: [`si_sdr_channel`] on each channel, then the mean over
/// channels (torchmetrics scores each channel separately; averaging is ours).
pub fn si_sdr(reference: &[Vec<f32>], estimate: &[Vec<f32>], zero_mean: bool) -> Result<f64> {
    check_channels(reference, estimate)?;
    let sum: f64 = reference
        .iter()
        .zip(estimate)
        .map(|(r, e)| si_sdr_channel(r, e, zero_mean))
        .sum();
    Ok(sum / reference.len() as f64)
}

/// SI-SDR improvement: `si_sdr(reference, estimate) - si_sdr(reference, mixture)`.
pub fn si_sdri(reference: &[Vec<f32>], estimate: &[Vec<f32>], mixture: &[Vec<f32>], zero_mean: bool) -> Result<f64> {
    Ok(si_sdr(reference, estimate, zero_mean)? - si_sdr(reference, mixture, zero_mean)?)
}

/// SDR after the best `filter_len`-tap FIR filtering of the reference, as torchmetrics
/// `signal_distortion_ratio(preds, target, filter_length=filter_len)` (and the SDR of mir_eval
/// `bss_eval_sources` for a matched pair):
/// with `R` the Toeplitz autocorrelation matrix of the reference over lags `0..filter_len` and
/// `b[k] = Σ_n s[n - k] ŝ[n]`, `coh = bᵀ R⁻¹ b` is the energy of the projection of `ŝ` on the
/// delayed references and `SDR = 10 log10(coh / (Σ ŝ² - coh))`. Mono signals of equal length.
pub fn sdr_filtered(reference: &[f32], estimate: &[f32], filter_len: usize) -> Result<f64> {
    if reference.len() != estimate.len() || reference.is_empty() {
        anyhow::bail!("reference has {} samples, estimate {}", reference.len(), estimate.len());
    }
    if filter_len == 0 {
        anyhow::bail!("filter length must be positive");
    }
    let m = filter_len - 1;
    let corr = lagged_xcorr(&[reference], &[reference, estimate], &[(0, 0), (0, 1)], m);
    let r = Mat::from_fn(filter_len, filter_len, |a, b| corr[0][m + b.abs_diff(a)]);
    let b = Mat::from_fn(filter_len, 1, |a, _| corr[1][m - a]);
    let c = solve_normal(&r, &b);
    let coh: f64 = (0..filter_len).map(|a| b[(a, 0)] * c[(a, 0)]).sum();
    let energy: f64 = estimate.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    Ok(10.0 * (coh / (energy - coh)).log10())
}
