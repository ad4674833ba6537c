//! The waveform term of the discriminative loss ([`ObjectiveConfig::waveform_sisdr`]): the
//! estimated band mask applied to the mixture's STFT and inverted by candle ops, so the
//! gradient reaches the mask, then `−SI-SDR` against the target waveform.
//!
//! The inverse STFT is the one of [`crate::dsp::stft::Stft::inverse`] written as matrix
//! products: each frame `x[n] = Σ_k c_k (Re_k cos(2πkn/N) − Im_k sin(2πkn/N)) / N` (`c_k` = 1
//! at DC and Nyquist, 2 between) times the synthesis window, overlap-added at the hop (`N`
//! must be a multiple of the hop: `N / hop` shifted copies summed), divided by the summed
//! squared window, the centring pad removed. Band masks reach the bins through
//! [`Bands::bin_weights`] (the interpolation of [`Bands::mask_to_bins`]). Tests check both
//! against `Bands::apply_mask` (tests/train_waveform.rs).
//!
//! [`ObjectiveConfig::waveform_sisdr`]: crate::flow::objectives::ObjectiveConfig::waveform_sisdr

use anyhow::ensure;
use candle_core::{D, Device, Tensor};

use crate::Result;
use crate::dsp::bands::Bands;

/// Constant matrices of the masked inverse STFT, on one device.
pub struct Synth {
    /// `(n_bands, n_bins)`.
    bins: Tensor,
    /// `(n_bins, N)`: cosine and (negated) sine synthesis bases with the window and `c_k / N`.
    cos: Tensor,
    sin: Tensor,
    window: Vec<f32>,
    n_fft: usize,
    hop: usize,
}

impl Synth {
    pub fn new(bands: &Bands, dev: &Device) -> Result<Synth> {
        let stft = bands.stft();
        let cfg = stft.config();
        let (n_fft, hop) = (cfg.n_fft, cfg.hop);
        ensure!(
            n_fft.is_multiple_of(hop) && cfg.center,
            "the waveform loss needs a centred STFT whose n_fft ({n_fft}) is a multiple of the hop ({hop})"
        );
        let n_bins = n_fft / 2 + 1;
        let window = stft.window().to_vec();
        let (mut cos, mut sin) = (vec![0f32; n_bins * n_fft], vec![0f32; n_bins * n_fft]);
        for k in 0..n_bins {
            let c = if k == 0 || (n_fft.is_multiple_of(2) && k == n_bins - 1) {
                1.0
            } else {
                2.0
            };
            for n in 0..n_fft {
                // k·n mod N keeps the angle accurate for large products.
                let a = std::f64::consts::TAU * ((k * n) % n_fft) as f64 / n_fft as f64;
                let g = c / n_fft as f64 * f64::from(window[n]);
                cos[k * n_fft + n] = (g * a.cos()) as f32;
                sin[k * n_fft + n] = (-g * a.sin()) as f32;
            }
        }
        let nb = bands.config().n_bands;
        Ok(Synth {
            bins: Tensor::from_vec(bands.bin_weights(), (nb, n_bins), dev)?,
            cos: Tensor::from_vec(cos, (n_bins, n_fft), dev)?,
            sin: Tensor::from_vec(sin, (n_bins, n_fft), dev)?,
            window,
            n_fft,
            hop,
        })
    }

    /// The waveforms `(B, len)` of band masks `(B, 1, F, T)` applied to the mixture STFTs
    /// `re`, `im` `(B, T, n_bins)`.
    pub fn masked_waveform(&self, mask: &Tensor, re: &Tensor, im: &Tensor, len: usize) -> Result<Tensor> {
        let (b, _, f, t) = mask.dims4()?;
        let n_bins = self.n_fft / 2 + 1;
        ensure!(
            re.dims() == [b, t, n_bins] && im.dims() == re.dims(),
            "mixture STFT {:?} / {:?} does not fit masks {:?} ({n_bins} bins)",
            re.dims(),
            im.dims(),
            mask.dims()
        );
        let m = mask.squeeze(1)?.transpose(1, 2)?.contiguous()?.reshape((b * t, f))?;
        let m = m.matmul(&self.bins)?.reshape((b, t, n_bins))?;
        let (er, ei) = ((&m * re)?, (&m * im)?);
        let frames =
            (er.reshape((b * t, n_bins))?.matmul(&self.cos)? + ei.reshape((b * t, n_bins))?.matmul(&self.sin)?)?;
        // Overlap-add: N = r·hop, frame t's block j lands on output block t + j.
        let r = self.n_fft / self.hop;
        let frames = frames.reshape((b, t, r, self.hop))?;
        let mut ola: Option<Tensor> = None;
        for j in 0..r {
            let part = frames.narrow(2, j, 1)?.squeeze(2)?.pad_with_zeros(1, j, r - 1 - j)?;
            ola = Some(match ola {
                Some(acc) => (acc + part)?,
                None => part,
            });
        }
        let total = (t + r - 1) * self.hop;
        let ola = ola.expect("r >= 1").reshape((b, total))?;
        let mut env = vec![0f64; total];
        for s in 0..t {
            for (e, w) in env[s * self.hop..].iter_mut().zip(&self.window) {
                *e += f64::from(*w) * f64::from(*w);
            }
        }
        let inv: Vec<f32> = env
            .iter()
            .map(|&e| if e > 1e-11 { (1.0 / e) as f32 } else { 0.0 })
            .collect();
        let inv = Tensor::from_vec(inv, (1, total), mask.device())?;
        let y = ola.broadcast_mul(&inv)?;
        let pad = self.n_fft / 2;
        let avail = total.saturating_sub(pad).min(len);
        let y = y.narrow(1, pad, avail)?;
        Ok(if avail < len {
            y.pad_with_zeros(1, 0, len - avail)?
        } else {
            y
        })
    }
}

/// `−mean SI-SDR` (dB) of estimates against references, both `(B, L)`: per example
/// `10 log10(|α s|² / |α s − ŝ|²)`, `α = <ŝ, s> / |s|²` (no mean removal, as
/// `metrics::sdr::si_sdr_channel` with `zero_mean = false`).
pub fn neg_si_sdr(estimate: &Tensor, reference: &Tensor) -> Result<Tensor> {
    ensure!(
        estimate.dims() == reference.dims() && estimate.rank() == 2,
        "SI-SDR needs two (B, L) tensors, got {:?} and {:?}",
        estimate.dims(),
        reference.dims()
    );
    const EPS: f64 = 1e-8;
    let dot = (estimate * reference)?.sum_keepdim(D::Minus1)?;
    let ss = (reference.sqr()?.sum_keepdim(D::Minus1)? + EPS)?;
    let proj = reference.broadcast_mul(&(dot / ss)?)?;
    let noise = (estimate - &proj)?;
    let ratio = ((proj.sqr()?.sum(D::Minus1)? + EPS)? / (noise.sqr()?.sum(D::Minus1)? + EPS)?)?;
    let db = (ratio.log()? * (10.0 / std::f64::consts::LN_10))?;
    Ok(db.mean_all()?.neg()?)
}
