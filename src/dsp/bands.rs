//! The separator's time-frequency representation: mel-spaced band magnitudes of a mono signal
//! at a fixed processing rate, the ideal band-domain ratio mask of a target, and the
//! application of a band mask to each channel's full-band STFT at its native rate.
//!
//! # Representation (defaults of [`BandConfig`])
//!
//! * Processing rate 22 050 Hz, STFT `n_fft` 1024, hop 256 (11.6 ms, ~86 frames per second),
//!   periodic Hann, centred frames ([`crate::dsp::stft`], torch conventions): a signal of `len`
//!   samples has `1 + len / hop` frames, frame `i` centred on sample `i * hop`.
//! * `n_bands` (128) triangular bands with centres equally spaced on the HTK mel scale
//!   (`2595 log10(1 + f / 700)`) between `fmin` and the Nyquist frequency: `n_bands + 2` mel
//!   points, band `b` rises from point `b` to its centre `b + 1` and falls to point `b + 2`.
//!   Low bands are narrower than an FFT bin, so every triangle is widened to reach at least one
//!   bin spacing either side of its centre (no empty band); each band's weights sum to 1, so a
//!   band value is a weighted mean of the STFT magnitudes it covers.
//! * Features (the network's conditioning input): the mixture is scaled to an RMS of
//!   `ref_rms` (gain capped at 80 dB for near-silent input), band magnitudes are compressed as
//!   `|X_band|^power` (power 0.3).
//! * Ideal mask (the flow data): `m = |S_band| / (|S_band| + |N_band| + eps)` in `[0, 1]` with
//!   `S` the target, `N = mixture − target`, both analysed with the mixture's gain and
//!   `eps = 1e-3` on those normalised magnitudes; the generative model works on `y = 2m − 1`.
//! * Application ([`Bands::mask_to_bins`], [`Bands::apply_mask`]): the band mask, clamped to
//!   `[0, 1]`, is interpolated to the bins of any STFT: in frequency linearly between band
//!   centres (bins below the lowest centre take the lowest band, above the top centre the top
//!   band), in time linearly between frame centres (clamped at the ends). [`Bands::apply_mask`]
//!   uses an STFT whose `n_fft` and hop are scaled to the native rate (2048 / 512 at 44.1 kHz),
//!   so the target is `iSTFT(mask · X_channel)` and `input − target` is the exact residual.
//!
//! Layouts: band matrices are band-major (`values[band * n_frames + frame]`, the `(F, T)` plane
//! of the network's `(B, 1, F, T)` tensors); bin masks are frame-major like
//! [`Spectrogram`](crate::dsp::Spectrogram) (`mask[frame * n_bins + bin]`).
//!
//! The filterbank is written here rather than taken from a crate: it is twenty lines, and the
//! widening and the exact interpolation rule back to native bins are specific to this design.

use anyhow::ensure;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::dsp::stft::{Spectrogram, Stft, StftConfig, WindowKind};

/// Floor of the ratio mask's denominator, on loudness-normalised band magnitudes.
pub const MASK_EPS: f32 = 1e-3;
/// Largest gain the loudness normalisation applies (80 dB).
const MAX_GAIN: f32 = 1e4;

/// Parameters of the band representation (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandConfig {
    /// Processing sample rate (Hz).
    pub rate: u32,
    /// STFT size at the processing rate.
    pub n_fft: usize,
    /// STFT hop at the processing rate.
    pub hop: usize,
    /// Number of mel-spaced bands.
    pub n_bands: usize,
    /// Lowest mel point (Hz); the top is the Nyquist frequency.
    pub fmin: f32,
    /// Magnitude compression exponent of the features.
    pub power: f32,
    /// RMS the mixture is scaled to before analysis.
    pub ref_rms: f32,
    /// Largest value of an applied mask (1: the estimate is never louder than the mixture in
    /// any band; above 1 where interference can cancel the target). Older configs without
    /// the key read as 1.
    #[serde(default = "one")]
    pub mask_max: f32,
}

fn one() -> f32 {
    1.0
}

impl Default for BandConfig {
    fn default() -> Self {
        Self {
            rate: 22_050,
            n_fft: 1024,
            hop: 256,
            n_bands: 128,
            fmin: 0.0,
            power: 0.3,
            ref_rms: 0.1,
            mask_max: 1.0,
        }
    }
}

impl BandConfig {
    /// Frames per second of audio at the processing rate.
    pub fn frames_per_second(&self) -> f64 {
        self.rate as f64 / self.hop as f64
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.rate >= 1000,
            "band rate must be at least 1000 Hz, got {}",
            self.rate
        );
        ensure!(
            self.n_fft >= 16 && self.n_fft.is_multiple_of(2),
            "band n_fft must be even and at least 16, got {}",
            self.n_fft
        );
        ensure!(
            self.hop >= 1 && self.hop <= self.n_fft / 2,
            "band hop must be between 1 and n_fft / 2 = {}, got {}",
            self.n_fft / 2,
            self.hop
        );
        ensure!(self.n_bands >= 2, "need at least 2 bands, got {}", self.n_bands);
        let nyquist = self.rate as f32 / 2.0;
        ensure!(
            self.fmin >= 0.0 && self.fmin < nyquist,
            "fmin must be in [0, {nyquist}) Hz, got {}",
            self.fmin
        );
        ensure!(
            self.power > 0.0,
            "compression power must be positive, got {}",
            self.power
        );
        ensure!(
            self.ref_rms > 0.0,
            "reference RMS must be positive, got {}",
            self.ref_rms
        );
        ensure!(
            (1.0..=8.0).contains(&self.mask_max),
            "mask_max must be in [1, 8], got {}",
            self.mask_max
        );
        Ok(())
    }
}

/// Compressed band magnitudes of a loudness-normalised signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// `n_bands × n_frames`, band-major.
    pub values: Vec<f32>,
    pub n_bands: usize,
    pub n_frames: usize,
    /// Gain applied to the input before analysis (`ref_rms / rms`, capped).
    pub gain: f32,
}

/// One band's filter: weights of bins `start .. start + weights.len()`.
#[derive(Clone, Debug)]
struct Filter {
    start: usize,
    weights: Vec<f32>,
}

/// The band analyser for one [`BandConfig`] (`Send + Sync`).
#[derive(Debug)]
pub struct Bands {
    cfg: BandConfig,
    stft: Stft,
    filters: Vec<Filter>,
    centres: Vec<f32>,
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// Linear interpolation position of `x` in the increasing `points`: `(i, w)` such that the
/// value is `(1 - w) v[i] + w v[i + 1]`, clamped to the ends (`w = 0` at `i = 0` or the last).
fn locate(points: &[f32], x: f32) -> (usize, f32) {
    let last = points.len() - 1;
    if last == 0 || x <= points[0] {
        return (0, 0.0);
    }
    if x >= points[last] {
        return (last, 0.0);
    }
    let i = points.partition_point(|&p| p <= x) - 1;
    (i, (x - points[i]) / (points[i + 1] - points[i]))
}

/// The STFT used for a channel at `native_rate`: `n_fft` and hop of `cfg` scaled by
/// `native_rate / cfg.rate` (`n_fft` rounded to even, hop at most `n_fft / 2`), Hann, centred.
pub fn native_stft_config(cfg: &BandConfig, native_rate: u32) -> StftConfig {
    let ratio = native_rate as f64 / cfg.rate as f64;
    let n_fft = (((cfg.n_fft as f64 * ratio) / 2.0).round() as usize * 2).max(4);
    let hop = ((cfg.hop as f64 * ratio).round() as usize).clamp(1, n_fft / 2);
    StftConfig {
        n_fft,
        hop,
        window: WindowKind::Hann,
        center: true,
    }
}

impl Bands {
    /// Builds the filterbank and plans the STFT.
    pub fn new(cfg: BandConfig) -> Result<Self> {
        cfg.validate()?;
        // At its own rate the native STFT is the processing STFT (n_fft is even).
        let stft = Stft::new(native_stft_config(&cfg, cfg.rate))?;
        let n_bins = cfg.n_fft / 2 + 1;
        let df = cfg.rate as f64 / cfg.n_fft as f64;
        let (m0, m1) = (hz_to_mel(cfg.fmin as f64), hz_to_mel(cfg.rate as f64 / 2.0));
        let points: Vec<f64> = (0..cfg.n_bands + 2)
            .map(|i| mel_to_hz(m0 + (m1 - m0) * i as f64 / (cfg.n_bands + 1) as f64))
            .collect();
        let mut filters = Vec::with_capacity(cfg.n_bands);
        let mut centres = Vec::with_capacity(cfg.n_bands);
        for b in 0..cfg.n_bands {
            let c = points[b + 1];
            let lo = points[b].min(c - df);
            let hi = points[b + 2].max(c + df);
            let w: Vec<(usize, f64)> = (0..n_bins)
                .filter_map(|k| {
                    let f = k as f64 * df;
                    let w = if f <= c {
                        (f - lo) / (c - lo)
                    } else {
                        (hi - f) / (hi - c)
                    };
                    (w > 0.0).then_some((k, w))
                })
                .collect();
            // Widening to ±df guarantees the nearest bin has weight >= 1/2.
            let sum: f64 = w.iter().map(|(_, w)| w).sum();
            let start = w[0].0;
            let mut weights = vec![0.0f32; w[w.len() - 1].0 + 1 - start];
            for (k, v) in &w {
                weights[k - start] = (v / sum) as f32;
            }
            filters.push(Filter { start, weights });
            centres.push(c as f32);
        }
        Ok(Self {
            cfg,
            stft,
            filters,
            centres,
        })
    }

    pub fn config(&self) -> &BandConfig {
        &self.cfg
    }

    /// Band centre frequencies (Hz), increasing.
    pub fn centres(&self) -> &[f32] {
        &self.centres
    }

    /// Frames of a signal of `len` samples at the processing rate (`1 + len / hop`; 0 for 0).
    pub fn n_frames(&self, len: usize) -> usize {
        self.stft.n_frames(len)
    }

    /// The loudness-normalisation gain of `x`: `ref_rms / rms(x)`, at most 1e4.
    pub fn gain(&self, x: &[f32]) -> f32 {
        if x.is_empty() {
            return 1.0;
        }
        let rms = (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt() as f32;
        (self.cfg.ref_rms / rms.max(self.cfg.ref_rms / MAX_GAIN)).min(MAX_GAIN)
    }

    /// Band magnitudes (`n_bands × frames`, band-major) of `spec`, scaled by `gain`.
    fn band_magnitudes(&self, spec: &Spectrogram, gain: f32) -> Vec<f32> {
        let nf = spec.n_frames;
        let mut out = vec![0.0f32; self.cfg.n_bands * nf];
        let mut mag = vec![0.0f32; spec.n_bins];
        for t in 0..nf {
            // |c| as sqrt(re² + im²): libm's hypot guards against overflow that STFT
            // magnitudes never reach, at several times the cost.
            for (m, c) in mag.iter_mut().zip(spec.frame(t)) {
                *m = c.norm_sqr().sqrt() * gain;
            }
            for (b, f) in self.filters.iter().enumerate() {
                let s: f32 = f.weights.iter().zip(&mag[f.start..]).map(|(w, m)| w * m).sum();
                out[b * nf + t] = s;
            }
        }
        out
    }

    /// Compressed band magnitudes of the loudness-normalised mono signal `x` (processing rate).
    pub fn features(&self, x: &[f32]) -> Features {
        let gain = self.gain(x);
        let spec = self.stft.forward(x);
        let mut values = self.band_magnitudes(&spec, gain);
        let p = self.cfg.power;
        values.iter_mut().for_each(|v| *v = v.powf(p));
        Features {
            values,
            n_bands: self.cfg.n_bands,
            n_frames: spec.n_frames,
            gain,
        }
    }

    /// The loudness gain of `mixture`, after checking `target` has its length.
    fn mixture_gain(&self, mixture: &[f32], target: &[f32]) -> Result<f32> {
        ensure!(
            mixture.len() == target.len(),
            "mixture ({}) and target ({}) lengths differ",
            mixture.len(),
            target.len()
        );
        Ok(self.gain(mixture))
    }

    /// Compressed band magnitudes `|S_band|^power` of `target` on the scale of `mixture`'s
    /// features (the mixture's loudness gain): what a perfect separation's features would be
    /// (`n_bands × frames`, band-major). Same length, processing rate.
    pub fn target_features(&self, mixture: &[f32], target: &[f32]) -> Result<Vec<f32>> {
        let gain = self.mixture_gain(mixture, target)?;
        let p = self.cfg.power;
        let mut v = self.band_magnitudes(&self.stft.forward(target), gain);
        v.iter_mut().for_each(|x| *x = x.powf(p));
        Ok(v)
    }

    /// The ideal band ratio mask `m ∈ [0, 1]` of `target` in `mixture` (same length, processing
    /// rate): `n_bands × frames`, band-major. The flow data is `y = 2m − 1`.
    pub fn ideal_mask(&self, mixture: &[f32], target: &[f32]) -> Result<Vec<f32>> {
        let gain = self.mixture_gain(mixture, target)?;
        let noise: Vec<f32> = mixture.iter().zip(target).map(|(m, s)| m - s).collect();
        let s = self.band_magnitudes(&self.stft.forward(target), gain);
        let n = self.band_magnitudes(&self.stft.forward(&noise), gain);
        Ok(s.iter().zip(&n).map(|(&s, &n)| s / (s + n + MASK_EPS)).collect())
    }

    /// The STFT of the features (processing rate).
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// The band-to-bin interpolation of [`Self::mask_to_bins`] at the processing rate as a
    /// matrix: `n_bands × (n_fft / 2 + 1)`, row-major, so `bin_mask = band_maskᵀ · W` per
    /// frame.
    pub fn bin_weights(&self) -> Vec<f32> {
        let (nb, n_fft) = (self.cfg.n_bands, self.cfg.n_fft);
        let n_bins = n_fft / 2 + 1;
        let mut w = vec![0f32; nb * n_bins];
        for (k, (b, t)) in self.bin_positions(self.cfg.rate, n_fft).into_iter().enumerate() {
            w[b * n_bins + k] += 1.0 - t;
            if t != 0.0 {
                w[(b + 1) * n_bins + k] += t;
            }
        }
        w
    }

    /// Where each bin of an `n_fft`-point STFT at `native_rate` falls between the band centres:
    /// `(band, weight of the next band)` (the rule of [`Self::mask_to_bins`]).
    fn bin_positions(&self, native_rate: u32, n_fft: usize) -> Vec<(usize, f32)> {
        (0..n_fft / 2 + 1)
            .map(|k| locate(&self.centres, k as f32 * native_rate as f32 / n_fft as f32))
            .collect()
    }

    /// Interpolates a band mask (`n_bands × frames`, band-major, clamped to `[0, mask_max]`) to the
    /// bins of an STFT at `native_rate` with `n_fft`/`hop` (centred frames): `native_frames ×
    /// (n_fft / 2 + 1)`, frame-major (see the module docs for the rule).
    pub fn mask_to_bins(
        &self,
        band_mask: &[f32],
        frames: usize,
        native_rate: u32,
        n_fft: usize,
        hop: usize,
        native_frames: usize,
    ) -> Result<Vec<f32>> {
        let nb = self.cfg.n_bands;
        ensure!(
            band_mask.len() == nb * frames,
            "band mask has {} values, expected {nb} bands x {frames} frames",
            band_mask.len()
        );
        ensure!(frames >= 1, "band mask has no frames");
        ensure!(
            native_rate > 0 && n_fft > 0 && hop > 0,
            "native STFT parameters must be positive"
        );
        let n_bins = n_fft / 2 + 1;
        let bin_pos = self.bin_positions(native_rate, n_fft);
        let frame_sec = self.cfg.hop as f64 / self.cfg.rate as f64;
        let mut out = vec![0.0f32; native_frames * n_bins];
        let mut col = vec![0.0f32; nb];
        for (j, row) in out.chunks_exact_mut(n_bins).enumerate() {
            let p = (j as f64 * hop as f64 / native_rate as f64 / frame_sec).min((frames - 1) as f64);
            let i0 = p.floor() as usize;
            let i1 = (i0 + 1).min(frames - 1);
            let w = (p - i0 as f64) as f32;
            for (b, c) in col.iter_mut().enumerate() {
                let v = (1.0 - w) * band_mask[b * frames + i0] + w * band_mask[b * frames + i1];
                *c = v.clamp(0.0, self.cfg.mask_max);
            }
            for (o, &(b, w)) in row.iter_mut().zip(&bin_pos) {
                *o = if w == 0.0 {
                    col[b]
                } else {
                    (1.0 - w) * col[b] + w * col[b + 1]
                };
            }
        }
        Ok(out)
    }

    /// The target of one channel (`samples` at `native_rate`) under a band mask
    /// (`n_bands × frames`, band-major): `iSTFT(mask · STFT(samples))` with the STFT of
    /// [`native_stft_config`]. An all-ones mask returns the input, all-zeros returns zeros.
    pub fn apply_mask(&self, samples: &[f32], native_rate: u32, band_mask: &[f32], frames: usize) -> Result<Vec<f32>> {
        Ok(self
            .apply_masks(samples, native_rate, &[band_mask], frames)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Bands::apply_mask`] for several masks of the same channel: one forward STFT, one
    /// inverse per mask.
    pub fn apply_masks(
        &self,
        samples: &[f32],
        native_rate: u32,
        band_masks: &[&[f32]],
        frames: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let cfg = native_stft_config(&self.cfg, native_rate);
        let stft = Stft::new(cfg)?;
        let spec = stft.forward(samples);
        let mut masked = spec.clone();
        band_masks
            .iter()
            .map(|band_mask| {
                let mask = self.mask_to_bins(band_mask, frames, native_rate, cfg.n_fft, cfg.hop, spec.n_frames)?;
                for ((o, c), m) in masked.data.iter_mut().zip(&spec.data).zip(&mask) {
                    *o = *c * *m;
                }
                Ok(stft.inverse(&masked, samples.len()))
            })
            .collect()
    }
}
