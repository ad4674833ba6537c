//! Projection-free SDR variants (museval v4 SDR, MDX nSDR, SI-SDR) and the single-reference
//! filtered SDR of torchmetrics.

use faer::Mat;
use rayon::prelude::*;

use super::bss_eval::view;
use super::fft::lagged_xcorr;
use super::projection::solve_normal;
use super::{any_source_silent, museval_frames, validate};
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
    let (refs, ests) = (view(references), view(estimates));
    let (nsrc, _, n) = validate(&refs, &ests)?;
    let frames = museval_frames(n, window, hop)?;
    let silent: Vec<bool> = frames
        .par_iter()
        .map(|&(s, l)| any_source_silent(&refs, s, l) || any_source_silent(&ests, s, l))
        .collect();
    Ok((0..nsrc)
        .into_par_iter()
        .map(|j| {
            frames
                .par_iter()
                .zip(&silent)
                .map(|(&(s, l), &quiet)| {
                    if quiet {
                        return f64::NAN;
                    }
                    let (num, den) = energies(&references[j], &estimates[j], s, l);
                    if den == 0.0 {
                        f64::INFINITY
                    } else {
                        10.0 * (num / den).log10()
                    }
                })
                .collect()
        })
        .collect())
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
