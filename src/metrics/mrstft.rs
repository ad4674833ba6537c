//! Multi-resolution STFT loss as a metric: auraloss `MultiResolutionSTFTLoss`, number for number.
//!
//! # Definition
//!
//! For one resolution `(n_fft, hop, win_length)` and signals `x` (estimate) and `y` (reference):
//!
//! * STFT as `torch.stft(x, n_fft, hop, win_length, torch.hann_window(win_length))` with torch's
//!   defaults: `center=True` with reflect padding of `n_fft / 2` samples on both sides (no edge
//!   repeat), frames `1 + (len + 2 (n_fft/2) - n_fft) / hop`, unnormalised one-sided DFT of
//!   `n_fft` points, and the periodic Hann window of `win_length` samples zero-padded on both
//!   sides to `n_fft` (`(n_fft - win_length) / 2` zeros on the left), as torch does.
//! * Magnitudes `|X| = sqrt(max(re² + im², eps))` with `eps = 1e-8` ([`MRSTFT_EPS`]); auraloss
//!   takes `log` of this clamped magnitude directly, so the log term sees `|X| >= 1e-4` and no
//!   further epsilon.
//! * Spectral convergence `SC = ‖|Y| - |X|‖_F / ‖|Y|‖_F`, the Frobenius norms taken over the whole
//!   `(channels, bins, frames)` tensor at once (normalised by the **reference**), and the
//!   log-magnitude distance `LM = mean |log|X| - log|Y||` over the same elements.
//! * The loss of a resolution is `SC + LM` (`w_sc = w_log_mag = 1`, `w_lin_mag = w_phs = 0`, no
//!   mel/chroma scale, no scale invariance, reduction `mean` of a scalar, i.e. none).
//!
//! The metric is the mean of the per-resolution losses. Lower is better; 0 only for identical
//! signals (up to the `eps` clamp).
//!
//! # Channels
//!
//! auraloss takes `(batch, channels, time)` and folds channels into the batch of the STFT, so a
//! signal given as one item `(1, C, T)` gets one SC over all its channels jointly and one LM
//! averaged over all channels' bins. That is what `per_channel: false` computes (the
//! [`MrStftConfig::auraloss_default`] setting). With `per_channel: true` every channel is scored
//! alone as `(1, 1, T)` and the metric is the mean over channels of those values (the
//! [`MrStftConfig::svs`] setting, as the gensvs_eval metrics script does).
//!
//! # A-weighting
//!
//! auraloss's `perceptual_weighting=True` filters both signals with
//! `auraloss.perceptual.FIRFilter(filter_type="aw", fs)` before every STFT: the analog IEC/CD 1672
//! A-weighting filter, mapped to digital by the bilinear transform (`scipy.signal.bilinear`), its
//! magnitude sampled at 512 frequencies `k fs / 1024` (`scipy.signal.freqz(worN=512)`), fitted by
//! least squares with a 101-tap linear-phase FIR (`scipy.signal.firls`, the 512 points taken as 256
//! bands with linear gain and don't-care gaps between them), the taps rounded to `f32`, and applied
//! as a zero-padded "same" convolution (`conv1d`, padding 50). [`a_weighting_fir`] computes the
//! same taps at run time from the same formulas (the digital response is evaluated as
//! `H_a(j 2 fs tan(ω/2))`, the bilinear transform in closed form).
//!
//! # Why not [`crate::dsp::Stft`]
//!
//! `dsp::Stft` only has windows of length `n_fft` and returns `f32` spectra; auraloss's default
//! resolutions use windows shorter than the FFT (600 of 1024 and so on), and the metric is
//! accumulated in `f64` frame by frame without storing spectrograms, so the framing is done here
//! on `realfft` directly (same reflect-padding convention as torch).

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

use crate::Result;
use crate::dsp::WindowKind;

/// The magnitude clamp of auraloss `STFTLoss` (`eps=1e-8`, applied to `re² + im²`).
pub const MRSTFT_EPS: f64 = 1e-8;

/// Number of taps of auraloss's A-weighting FIR (`FIRFilter(ntaps=101)`).
pub const A_WEIGHTING_TAPS: usize = 101;

/// Frames per parallel work item. Fixed, so the summation order (and the result, bit for bit)
/// does not depend on the number of threads.
const FRAMES_PER_CHUNK: usize = 64;

/// The resolutions and options of an MR-STFT score. See the module docs for the definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrStftConfig {
    /// FFT size of each resolution.
    pub fft_sizes: Vec<usize>,
    /// Hop of each resolution, in samples.
    pub hop_sizes: Vec<usize>,
    /// Hann window length of each resolution (`<= fft size`; zero-padded, centred, to it).
    pub win_lengths: Vec<usize>,
    /// `Some(sample_rate)`: filter both signals with auraloss's A-weighting FIR designed for
    /// that sample rate before the STFTs (auraloss `perceptual_weighting=True`).
    pub a_weighting: Option<u32>,
    /// Score each channel alone and average the scores, instead of one joint score over all
    /// channels (see the module docs).
    pub per_channel: bool,
}

impl MrStftConfig {
    /// auraloss `MultiResolutionSTFTLoss()` with every default: FFT sizes 1024, 2048, 512, hops
    /// 120, 240, 50, Hann windows of 600, 1200, 240 samples, no A-weighting, all channels of
    /// the signal scored jointly as one `(1, C, T)` item.
    pub fn auraloss_default() -> Self {
        Self {
            fft_sizes: vec![1024, 2048, 512],
            hop_sizes: vec![120, 240, 50],
            win_lengths: vec![600, 1200, 240],
            a_weighting: None,
            per_channel: false,
        }
    }

    /// The multi-resolution STFT loss of the generative singing-voice separation metrics study
    /// (Bereuter et al., 2025, "Towards reliable objective evaluation metrics for generative
    /// singing voice separation models"; its `gensvs_eval_metrics.py`): FFT size = window length
    /// in 256, 512, 1024, 2048, 4096, hop = window / 4, A-weighting for `sample_rate`, each
    /// channel scored alone as `(1, 1, T)` and the scores averaged.
    pub fn svs(sample_rate: u32) -> Self {
        let sizes = vec![256, 512, 1024, 2048, 4096];
        Self {
            hop_sizes: sizes.iter().map(|s| s / 4).collect(),
            win_lengths: sizes.clone(),
            fft_sizes: sizes,
            a_weighting: Some(sample_rate),
            per_channel: true,
        }
    }

    /// A preset by name: `"auraloss"` (or `"default"`) for [`MrStftConfig::auraloss_default`],
    /// `"svs"` for [`MrStftConfig::svs`] at `sample_rate`.
    pub fn preset(name: &str, sample_rate: u32) -> Result<Self> {
        match name {
            "auraloss" | "default" => Ok(Self::auraloss_default()),
            "svs" => Ok(Self::svs(sample_rate)),
            other => anyhow::bail!("unknown MR-STFT preset '{other}' (expected 'auraloss' or 'svs')"),
        }
    }

    /// Checks the configuration: at least one resolution, as many hops and window lengths as FFT
    /// sizes, every hop and window length at least 1, every window no longer than its FFT, and
    /// a non-zero A-weighting sample rate.
    pub fn validate(&self) -> Result<()> {
        let n = self.fft_sizes.len();
        anyhow::ensure!(n > 0, "MR-STFT needs at least one resolution");
        anyhow::ensure!(
            self.hop_sizes.len() == n && self.win_lengths.len() == n,
            "MR-STFT: {n} FFT sizes but {} hop sizes and {} window lengths",
            self.hop_sizes.len(),
            self.win_lengths.len()
        );
        for ((&n_fft, &hop), &win) in self.fft_sizes.iter().zip(&self.hop_sizes).zip(&self.win_lengths) {
            anyhow::ensure!(hop >= 1, "MR-STFT hop size must be at least 1");
            anyhow::ensure!(
                win >= 1 && win <= n_fft,
                "MR-STFT window length must be between 1 and the FFT size ({n_fft}), got {win}"
            );
        }
        if let Some(sr) = self.a_weighting {
            anyhow::ensure!(sr > 0, "A-weighting needs a positive sample rate");
        }
        Ok(())
    }

    /// The shortest signal every resolution accepts: torch's reflect padding needs more samples
    /// than the `n_fft / 2` it pads.
    pub fn min_len(&self) -> usize {
        self.fft_sizes.iter().map(|&n| n / 2 + 1).max().unwrap_or(1)
    }
}

/// Spectral convergence and log-magnitude distance of one resolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StftLossTerms {
    pub fft_size: usize,
    pub hop_size: usize,
    pub win_length: usize,
    /// `‖|Y| - |X|‖_F / ‖|Y|‖_F` (mean over channels when scored per channel).
    pub spectral_convergence: f64,
    /// `mean |log|X| - log|Y||` (mean over channels when scored per channel).
    pub log_magnitude: f64,
}

/// An MR-STFT score with its per-resolution terms.
#[derive(Clone, Debug, PartialEq)]
pub struct MrStftScore {
    /// The metric: mean over resolutions of `spectral_convergence + log_magnitude`.
    pub value: f64,
    pub resolutions: Vec<StftLossTerms>,
}

/// MR-STFT loss of `estimate` against `reference` (auraloss `loss(input=estimate,
/// target=reference)`; spectral convergence is normalised by the reference). Both are
/// `[channel][sample]` with the same shape; every channel needs more than `n_fft / 2` samples
/// for the largest FFT size ([`MrStftConfig::min_len`]), as torch's reflect padding requires.
/// Lower is better. See the module docs for the definition.
pub fn mrstft(reference: &[Vec<f32>], estimate: &[Vec<f32>], cfg: &MrStftConfig) -> Result<f64> {
    Ok(mrstft_detailed(reference, estimate, cfg)?.value)
}

/// [`mrstft`] with the spectral-convergence and log-magnitude terms of every resolution.
pub fn mrstft_detailed(reference: &[Vec<f32>], estimate: &[Vec<f32>], cfg: &MrStftConfig) -> Result<MrStftScore> {
    cfg.validate()?;
    let nchan = reference.len();
    anyhow::ensure!(nchan > 0, "MR-STFT: the reference has no channels");
    anyhow::ensure!(
        estimate.len() == nchan,
        "MR-STFT: reference has {nchan} channels, estimate {}",
        estimate.len()
    );
    let n = reference[0].len();
    for (what, sig) in [("reference", reference), ("estimate", estimate)] {
        if let Some(c) = sig.iter().position(|c| c.len() != n) {
            anyhow::bail!("MR-STFT: {what} channel {c} has {} samples, expected {n}", sig[c].len());
        }
    }
    let min_len = cfg.min_len();
    anyhow::ensure!(
        n >= min_len,
        "MR-STFT: signals of {n} samples are too short for FFT size {} (need at least {min_len})",
        cfg.fft_sizes.iter().max().copied().unwrap_or(0)
    );

    let taps = cfg.a_weighting.map(a_weighting_fir).transpose()?;
    let prepare = |c: &Vec<f32>| -> Vec<f64> {
        let x: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
        match &taps {
            Some(t) => fir_same(&x, t),
            None => x,
        }
    };
    let refs: Vec<Vec<f64>> = reference.iter().map(prepare).collect();
    let ests: Vec<Vec<f64>> = estimate.iter().map(prepare).collect();

    // Channel groups scored jointly: all channels together, or each alone.
    let groups: Vec<Vec<usize>> = if cfg.per_channel {
        (0..nchan).map(|c| vec![c]).collect()
    } else {
        vec![(0..nchan).collect()]
    };

    let mut planner = RealFftPlanner::<f64>::new();
    let mut resolutions = Vec::with_capacity(cfg.fft_sizes.len());
    for ((&n_fft, &hop), &win) in cfg.fft_sizes.iter().zip(&cfg.hop_sizes).zip(&cfg.win_lengths) {
        let res = Resolution::new(&mut planner, n_fft, hop, win);
        let (mut sc, mut lm) = (0.0, 0.0);
        for group in &groups {
            let mut acc = Sums::default();
            for &c in group {
                acc.add(&res.sums(&refs[c], &ests[c]));
            }
            sc += (acc.diff_sq / acc.ref_sq).sqrt();
            lm += 0.5 * acc.log_abs / acc.count as f64;
        }
        resolutions.push(StftLossTerms {
            fft_size: n_fft,
            hop_size: hop,
            win_length: win,
            spectral_convergence: sc / groups.len() as f64,
            log_magnitude: lm / groups.len() as f64,
        });
    }
    let value = resolutions
        .iter()
        .map(|r| r.spectral_convergence + r.log_magnitude)
        .sum::<f64>()
        / resolutions.len() as f64;
    Ok(MrStftScore { value, resolutions })
}

/// Running sums of one resolution over frames (and channels of a group).
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    /// `Σ (|Y| - |X|)²`
    diff_sq: f64,
    /// `Σ |Y|²` (of the clamped magnitudes)
    ref_sq: f64,
    /// `Σ |ln(|X|² / |Y|²)|`, i.e. twice `Σ |log|X| - log|Y||`
    log_abs: f64,
    /// Number of (bin, frame) elements.
    count: usize,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.diff_sq += o.diff_sq;
        self.ref_sq += o.ref_sq;
        self.log_abs += o.log_abs;
        self.count += o.count;
    }
}

/// One STFT resolution: plan and the Hann window zero-padded, centred, to `n_fft`.
struct Resolution {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl Resolution {
    fn new(planner: &mut RealFftPlanner<f64>, n_fft: usize, hop: usize, win: usize) -> Self {
        // torch.stft pads a shorter window with (n_fft - win) / 2 zeros on the left.
        let left = (n_fft - win) / 2;
        let mut window = vec![0.0; n_fft];
        window[left..left + win].copy_from_slice(&WindowKind::Hann.build_f64(win));
        Self {
            n_fft,
            hop,
            window,
            fft: planner.plan_fft_forward(n_fft),
        }
    }

    /// Reflect-pads `x` by `n_fft / 2` on both sides (torch `pad_mode="reflect"`; the caller
    /// guarantees `x.len() > n_fft / 2`).
    fn padded(&self, x: &[f64]) -> Vec<f64> {
        let pad = self.n_fft / 2;
        let len = x.len();
        let mut out = Vec::with_capacity(len + 2 * pad);
        out.extend((1..=pad).rev().map(|j| x[j]));
        out.extend_from_slice(x);
        out.extend((1..=pad).map(|j| x[len - 1 - j]));
        out
    }

    /// The sums over all frames of one channel pair.
    fn sums(&self, reference: &[f64], estimate: &[f64]) -> Sums {
        let yp = self.padded(reference);
        let xp = self.padded(estimate);
        let n_frames = 1 + (yp.len() - self.n_fft) / self.hop;
        let n_chunks = n_frames.div_ceil(FRAMES_PER_CHUNK);
        let partial: Vec<Sums> = (0..n_chunks)
            .into_par_iter()
            .map_init(
                || {
                    (
                        vec![0.0f64; self.n_fft],
                        self.fft.make_output_vec(),
                        self.fft.make_output_vec(),
                        self.fft.make_scratch_vec(),
                    )
                },
                |(frame, xs, ys, scratch), chunk| {
                    let mut s = Sums::default();
                    let end = ((chunk + 1) * FRAMES_PER_CHUNK).min(n_frames);
                    for t in chunk * FRAMES_PER_CHUNK..end {
                        let start = t * self.hop;
                        for (spec, sig) in [(&mut *xs, &xp), (&mut *ys, &yp)] {
                            let src = &sig[start..start + self.n_fft];
                            for ((f, &v), &w) in frame.iter_mut().zip(src).zip(&self.window) {
                                *f = v * w;
                            }
                            // Buffer lengths come from the plan, so this cannot fail.
                            self.fft
                                .process_with_scratch(frame, spec, scratch)
                                .expect("realfft forward: buffer lengths match the plan");
                        }
                        for (x, y) in xs.iter().zip(ys.iter()) {
                            let px = (x.re * x.re + x.im * x.im).max(MRSTFT_EPS);
                            let py = (y.re * y.re + y.im * y.im).max(MRSTFT_EPS);
                            let d = py.sqrt() - px.sqrt();
                            s.diff_sq += d * d;
                            s.ref_sq += py;
                            // |log|X| - log|Y|| = |ln(px / py)| / 2; the 1/2 is applied once
                            // at the end (one logarithm per bin instead of two).
                            s.log_abs += (px / py).ln().abs();
                        }
                        s.count += xs.len();
                    }
                    s
                },
            )
            .collect();
        let mut total = Sums::default();
        for p in &partial {
            total.add(p);
        }
        total
    }
}

/// `conv1d(x, taps, padding = taps.len() / 2)` for odd-length `taps` (auraloss's filters are
/// symmetric, so correlation and convolution agree): the output has the input's length, zeros
/// are assumed outside the signal. Each output sums `taps[k] x[i + k - half]` in order of `k`,
/// written as one multiply-add pass over a block per tap so that it vectorises.
fn fir_same(x: &[f64], taps: &[f64]) -> Vec<f64> {
    const BLOCK: usize = 4096;
    let half = taps.len() / 2;
    let n = x.len();
    let mut out = vec![0.0; n];
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(bi, block)| {
        let start = bi * BLOCK;
        for (k, &t) in taps.iter().enumerate() {
            // Outputs i = start + j read x[i + k - half]; keep the j where that index exists.
            let j0 = (half.saturating_sub(k)).saturating_sub(start).min(block.len());
            let j1 = (n + half).saturating_sub(k).saturating_sub(start).min(block.len());
            if j0 >= j1 {
                continue;
            }
            let src = &x[start + j0 + k - half..start + j1 + k - half];
            for (o, &v) in block[j0..j1].iter_mut().zip(src) {
                *o += t * v;
            }
        }
    });
    out
}

/// The 101 taps of auraloss's A-weighting FIR for `sample_rate`
/// (`auraloss.perceptual.FIRFilter(filter_type="aw", fs=sample_rate)`), rounded to `f32` as
/// auraloss stores them. See the module docs for the design.
pub fn a_weighting_fir(sample_rate: u32) -> Result<Vec<f64>> {
    use std::f64::consts::PI;
    anyhow::ensure!(sample_rate > 0, "A-weighting needs a positive sample rate");
    let fs = f64::from(sample_rate);
    // Analog A-weighting (IEC/CD 1672) as auraloss defines it:
    // H(s) = (2π f4)² 10^(A1000/20) s⁴ / ((s + 2π f4)² (s + 2π f1)² (s + 2π f3) (s + 2π f2)).
    let (f1, f2, f3, f4, a1000) = (20.598997, 107.65265, 737.86223, 12194.217, 1.9997);
    let (w1, w2, w3, w4) = (2.0 * PI * f1, 2.0 * PI * f2, 2.0 * PI * f3, 2.0 * PI * f4);
    let gain = w4 * w4 * 10f64.powf(a1000 / 20.0);
    let analog_mag = |om: f64| {
        let o2 = om * om;
        gain * o2 * o2 / ((o2 + w4 * w4) * (o2 + w1 * w1) * ((o2 + w3 * w3) * (o2 + w2 * w2)).sqrt())
    };
    // freqz(worN=512): ω_k = π k / 512; the bilinear transform maps it to Ω = 2 fs tan(ω/2).
    const GRID: usize = 512;
    let freqs: Vec<f64> = (0..GRID).map(|k| k as f64 / GRID as f64).collect(); // relative to Nyquist
    let mags: Vec<f64> = freqs
        .iter()
        .map(|&f| analog_mag(2.0 * fs * (PI * f / 2.0).tan()))
        .collect();
    let bands: Vec<(f64, f64)> = freqs.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let desired: Vec<(f64, f64)> = mags.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let taps = firls(A_WEIGHTING_TAPS, &bands, &desired)?;
    Ok(taps.into_iter().map(|t| f64::from(t as f32)).collect())
}

/// `scipy.signal.firls` with unit weights, for odd `numtaps` and band edges relative to Nyquist:
/// the linear-phase FIR minimising the squared error to a piecewise-linear gain over the bands.
fn firls(numtaps: usize, bands: &[(f64, f64)], desired: &[(f64, f64)]) -> Result<Vec<f64>> {
    use std::f64::consts::PI;
    anyhow::ensure!(numtaps % 2 == 1, "firls needs an odd number of taps");
    let m = (numtaps - 1) / 2;
    let sinc = |x: f64| if x == 0.0 { 1.0 } else { (PI * x).sin() / (PI * x) };
    // q(n) = Σ_bands [f sinc(f n)] from f1 to f2 (∫ cos(π n f) df without the 1/π).
    let q: Vec<f64> = (0..numtaps)
        .map(|n| {
            let n = n as f64;
            bands.iter().map(|&(a, b)| b * sinc(b * n) - a * sinc(a * n)).sum()
        })
        .collect();
    // Q = toeplitz(q[..=m]) + hankel(q[..=m], q[m..]), i.e. Q[k][j] = q[|k-j|] + q[k+j].
    let dim = m + 1;
    let mut qm = vec![0.0; dim * dim];
    for k in 0..dim {
        for j in 0..dim {
            qm[k * dim + j] = q[k.abs_diff(j)] + q[k + j];
        }
    }
    // b(n) = Σ_bands ∫ (s f + c) cos(π n f) df with the linear gain s f + c of each band.
    let rhs: Vec<f64> = (0..dim)
        .map(|n| {
            let nf = n as f64;
            bands
                .iter()
                .zip(desired)
                .map(|(&(a, b), &(da, db))| {
                    let s = (db - da) / (b - a);
                    let c = da - a * s;
                    let g = |f: f64| {
                        let lin = f * (s * f + c) * sinc(f * nf);
                        if n == 0 {
                            lin - s * f * f / 2.0
                        } else {
                            lin + s * (nf * PI * f).cos() / ((PI * nf) * (PI * nf))
                        }
                    };
                    g(b) - g(a)
                })
                .sum()
        })
        .collect();
    let a = cholesky_solve(&mut qm, dim, rhs)?;
    // Symmetric taps [a_m .. a_1, 2 a_0, a_1 .. a_m], as scipy.
    let mut taps = Vec::with_capacity(numtaps);
    taps.extend(a[1..].iter().rev());
    taps.push(2.0 * a[0]);
    taps.extend(&a[1..]);
    Ok(taps)
}

/// Solves `A x = b` for symmetric positive definite `A` (row-major `n × n`, overwritten).
fn cholesky_solve(a: &mut [f64], n: usize, mut b: Vec<f64>) -> Result<Vec<f64>> {
    // A = L Lᵀ, L stored in the lower triangle.
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| a[j * n + k] * a[j * n + k]).sum::<f64>();
        anyhow::ensure!(d > 0.0, "firls: the normal equations are not positive definite");
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>();
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        b[i] = (b[i] - (0..i).map(|k| a[i * n + k] * b[k]).sum::<f64>()) / a[i * n + i];
    }
    for i in (0..n).rev() {
        b[i] = (b[i] - (i + 1..n).map(|k| a[k * n + i] * b[k]).sum::<f64>()) / a[i * n + i];
    }
    Ok(b)
}
