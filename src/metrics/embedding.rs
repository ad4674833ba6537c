//! Embedding distance: `emb_mse`, the mean squared distance between CREPE embeddings of a
//! reference and an estimate.
//!
//! What the embedding captures, and what it does not (see also `docs/metrics.md`):
//!
//! - CREPE is a pitch estimator trained on monophonic, pitched audio at 16 kHz. Its fifth-block
//!   activations (torchcrepe's `embed`, the "pitch embedding" of DDSP) describe the local
//!   periodicity and spectral shape of each 64 ms frame: fundamental, harmonic pattern, some
//!   timbre. Two signals with the same notes and similar spectra embed close together.
//! - Only content below 8 kHz is seen (the signal is resampled to 16 kHz first).
//! - Every frame is normalised to zero mean and unit variance before the network, so level is
//!   invisible: a gain error, a fade or a quieter bleed of the right timbre costs nothing, and
//!   near-silent frames (e.g. a residual at -80 dB) are amplified to full scale.
//! - It is tuned to pitched sources (voice, bass, melodic instruments); on drums, noise or
//!   dense mixtures the activations are not a meaningful description and the distance is not a
//!   perceptual quality score. Use it beside SDR-type metrics, not instead of them.
//! - Values depend on the model (tiny vs full) and are not comparable across models.

use anyhow::{bail, ensure};
use candle_core::DType;

use crate::Result;
use crate::audio::resample::resample;
use crate::model::crepe::{self, Crepe};

/// Mean squared distance between the CREPE embeddings of `reference` and `estimate`
/// (planar `[channel][sample]` at `sample_rate`), averaged over frames and embedding values.
///
/// Steps: each signal is mixed down to mono (the mean of its channels; the two may have
/// different channel counts), resampled to 16 kHz with [`crate::audio::resample::resample`]
/// (skipped at 16 kHz), cut into `1 + n / 160` centred frames of 1024 samples (10 ms hop) and
/// normalised per frame exactly as `torchcrepe.embed` does (see [`crepe::frames`]); the
/// fifth-block embeddings `e_ref`, `e_est` of `model` give
/// `mean over frames t and values d of (e_ref[t, d] − e_est[t, d])²`.
///
/// At 16 kHz this equals `((torchcrepe.embed(ref, 16000, 160, model) -
/// torchcrepe.embed(est, 16000, 160, model))**2).mean()` (checked in `tests/model_crepe.rs`).
/// At other rates the resampler differs from torchcrepe's (resampy), and torchcrepe's own hop
/// would be `int((sample_rate // 100) · 16000 / sample_rate)` (159 at 22.05 kHz); here it is
/// always 160.
///
/// `emb_mse(x, x) == 0` and, because of the per-frame normalisation, `emb_mse(x, g·x)` is zero
/// up to rounding for any gain `g > 0`. Errors if either signal has no channels, channels of
/// different lengths, no samples, or if the two lengths differ.
pub fn emb_mse(reference: &[Vec<f32>], estimate: &[Vec<f32>], sample_rate: u32, model: &Crepe) -> Result<f64> {
    let r = mono(reference, "reference")?;
    let e = mono(estimate, "estimate")?;
    ensure!(
        r.len() == e.len(),
        "reference has {} samples but estimate has {}",
        r.len(),
        e.len()
    );
    ensure!(sample_rate > 0, "sample rate must be positive");
    let (r, e) = if sample_rate == crepe::SAMPLE_RATE {
        (r, e)
    } else {
        let mut both = resample(&[r, e], sample_rate, crepe::SAMPLE_RATE)?;
        let e = both.pop().unwrap_or_default();
        let r = both.pop().unwrap_or_default();
        (r, e)
    };
    let n = crepe::frame_count(r.len(), crepe::HOP);
    let bs = model.batch_size();
    let mut sum = 0.0f64;
    for first in (0..n).step_by(bs) {
        let count = bs.min(n - first);
        let fr = crepe::frames_tensor(&r, crepe::HOP, first, count, model.device())?;
        let fe = crepe::frames_tensor(&e, crepe::HOP, first, count, model.device())?;
        let d = (model.forward_embedding(&fr)? - model.forward_embedding(&fe)?)?;
        sum += d.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    Ok(sum / (n * model.config().embedding_dim()) as f64)
}

/// Mean of the channels, in `f64`, rounded to `f32`.
fn mono(x: &[Vec<f32>], what: &str) -> Result<Vec<f32>> {
    let Some(first) = x.first() else {
        bail!("{what} has no channels");
    };
    let n = first.len();
    ensure!(n > 0, "{what} has no samples");
    if let Some(c) = x.iter().position(|c| c.len() != n) {
        bail!("{what} channel {c} has {} samples, expected {n}", x[c].len());
    }
    if x.len() == 1 {
        return Ok(first.clone());
    }
    let k = x.len() as f64;
    Ok((0..n)
        .map(|i| (x.iter().map(|c| c[i] as f64).sum::<f64>() / k) as f32)
        .collect())
}
