//! Separation quality metrics, matching the established implementations number for number.
//!
//! | function | definition | matches |
//! |---|---|---|
//! | [`bss_eval_v4`] | framewise SDR/ISR/SIR/SAR, 512-tap filters solved once | `museval.evaluate(mode="v4")` |
//! | [`bss_eval_sources`], [`bss_eval_sources_framewise`] | SDR/SIR/SAR, filters per segment | mir_eval / MATLAB BSS Eval v3 |
//! | [`bss_eval_images`], [`bss_eval_images_framewise`] | SDR/ISR/SIR/SAR, filters per segment | mir_eval / MATLAB BSS Eval v3 |
//! | [`sdr_framewise`] | museval v4 SDR alone, no projection | `museval` SDR |
//! | [`sdr_summary`] | framewise SDR + nSDR + SI-SDR in one pass | the three rows around it |
//! | [`sdr_filtered`] | SDR after a 512-tap projection on the reference | `torchmetrics.signal_distortion_ratio` |
//! | [`nsdr`] | `10 log10((Σ ref² + 1e-7) / (Σ (ref - est)² + 1e-7))` | MDX 2021 / Demucs `new_sdr` |
//! | [`si_sdr`] | scale-invariant SDR per channel, averaged | `torchmetrics.scale_invariant_signal_distortion_ratio` |
//!
//! Audio is planar: a multichannel signal is `[channel][sample]`, a set of sources is
//! `[source][channel][sample]`. Samples are `f32`; every computation runs in `f64`. All values
//! are in dB. See `docs/metrics.md` for the definitions and the measured agreement.

mod bss_eval;
mod embedding;
mod fft;
mod mrstft;
mod projection;
mod sdr;

pub use bss_eval::{
    Aggregate, BssEvalScores, FILTER_LEN, MAX_PERMUTATION_SOURCES, SourceScores, bss_eval_images,
    bss_eval_images_framewise, bss_eval_sources, bss_eval_sources_framewise, bss_eval_v4,
};
pub use embedding::emb_mse;
pub use mrstft::{
    A_WEIGHTING_TAPS, MRSTFT_EPS, MrStftConfig, MrStftScore, StftLossTerms, a_weighting_fir, mrstft, mrstft_detailed,
};
pub use sdr::{
    NSDR_EPS, SdrSummary, nsdr, sdr_filtered, sdr_framewise, sdr_summary, sdri, si_sdr, si_sdr_channel, si_sdri,
};

use crate::Result;
use projection::Segment;

/// NaN-ignoring median (numpy `nanmedian`): the mean of the two middle values for an even
/// count; NaN when no value is a number. Infinite values count as numbers.
pub fn nan_median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Zero-pads or truncates every channel of `estimates` to `len` samples (what `museval.evaluate`
/// does before scoring).
pub fn pad_or_truncate(estimates: &[Vec<Vec<f32>>], len: usize) -> Vec<Vec<Vec<f32>>> {
    estimates
        .iter()
        .map(|chans| {
            chans
                .iter()
                .map(|c| {
                    let mut c = c[..c.len().min(len)].to_vec();
                    c.resize(len, 0.0);
                    c
                })
                .collect()
        })
        .collect()
}

/// museval framing: with `window < n`, `floor((n - window + hop) / hop)` frames of `window`
/// samples starting every `hop` samples (a trailing partial frame is dropped); otherwise one frame
/// over the whole signal. Frames are `(start, length)`.
pub fn museval_frames(n: usize, window: usize, hop: usize) -> Result<Vec<(usize, usize)>> {
    if window == 0 || hop == 0 {
        anyhow::bail!("window and hop must be positive (got window {window}, hop {hop})");
    }
    if window < n {
        Ok((0..(n - window) / hop + 1).map(|t| (t * hop, window)).collect())
    } else {
        Ok(vec![(0, n)])
    }
}

/// Checks `[source][channel][sample]` views: at least one source, the same number of sources in
/// both, every source with the same non-zero number of channels, every channel of one non-zero
/// length. Returns `(sources, channels, samples)`.
pub(crate) fn validate(refs: &Segment, ests: &Segment) -> Result<(usize, usize, usize)> {
    let nsrc = refs.len();
    if nsrc == 0 {
        anyhow::bail!("no reference sources");
    }
    if ests.len() != nsrc {
        anyhow::bail!("{nsrc} reference sources but {} estimated sources", ests.len());
    }
    let nchan = refs[0].len();
    if nchan == 0 {
        anyhow::bail!("reference source 0 has no channels");
    }
    let n = refs[0][0].len();
    if n == 0 {
        anyhow::bail!("reference source 0 is empty");
    }
    for (what, set) in [("reference", refs), ("estimated", ests)] {
        for (j, chans) in set.iter().enumerate() {
            if chans.len() != nchan {
                anyhow::bail!("{what} source {j} has {} channels, expected {nchan}", chans.len());
            }
            if let Some(c) = chans.iter().position(|c| c.len() != n) {
                anyhow::bail!(
                    "{what} source {j} channel {c} has {} samples, expected {n}",
                    chans[c].len()
                );
            }
        }
    }
    Ok((nsrc, nchan, n))
}

/// True when some source has every sample of every channel equal to zero in
/// `start..start + len`.
///
/// museval and mir_eval test whether the sum over channels is zero at every sample, which also
/// flags a source whose channels cancel exactly (`[x, -x]`); this checks true silence.
pub(crate) fn any_source_silent(sig: &Segment, start: usize, len: usize) -> bool {
    sig.iter()
        .any(|chans| chans.iter().all(|c| c[start..start + len].iter().all(|&x| x == 0.0)))
}
