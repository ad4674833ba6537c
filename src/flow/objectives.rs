//! Training objectives (time convention in [`crate::flow`]): conditional flow matching (CFM),
//! SplitMeanFlow, the discriminative baseline, and the bridge that refines the baseline, with
//! optional W-CFM pair weighting.
//!
//! All losses are per-example mean squared errors (mean over every element of an example),
//! averaged over the batch, optionally with per-example W-CFM weights:
//!
//! * **CFM** (Lipman et al. 2023, straight path): `t ~ p(t)`, `z_t = (1-t) x + t ε`,
//!   `‖u(z_t, t, t) − (ε − x)‖²`.
//! * **SplitMeanFlow** (Guo et al. 2025): the first `round(fm_fraction · B)` examples of the
//!   batch are trained with plain flow matching (`r = t`, the boundary condition `u(z, t, t) = v`),
//!   the others with interval splitting consistency: `r < s < t`,
//!   `u₂ = sg u(z_t, s, t)`, `z_s = z_t − (t−s) u₂`, `u₁ = sg u(z_s, r, s)`,
//!   target `λ u₁ + (1−λ) u₂` with `λ = (s−r)/(t−r)` (the identity divided by `t − r`),
//!   loss `‖u(z_t, r, t) − target‖²`. Each example is in exactly one part. The network is
//!   always called on the whole batch in order (the caller's closure captures the batch's
//!   conditioning): once with gradient (`u(z_t, r, t)`, `r = t` on FM rows) and, when there
//!   are interval examples, twice detached for the targets (whose FM rows are unused).
//! * **Discriminative**: the same network called with `z = 0`, `r = t = 0`, trained to output
//!   `x` directly with the mean squared error (the same loss family and scale as the generative
//!   objectives, so learning rates carry over; the data `x` lies in `[-1, 1]`).
//! * **Bridge** (the flow that starts at the predictive estimate, not at pure noise): one
//!   network does both. Its discriminative output `x̂ = sg u(0, 0, 0)` plus noise,
//!   `y = x̂ + σ ε`, is the starting point at `t = 1`; the path is `z_t = (1 − t) x + t y` and
//!   the network called at `(z_t, t, t)` predicts the data `x` itself (x-prediction: with the
//!   endpoint `y` known, the sampler's step from `t` to `r` is `z_r = (1 − r) x̃ + r y`, exact
//!   when `x̃ = x`). The first `round(direct_fraction · B)` examples of the batch are trained
//!   as the discriminative baseline (`z = 0`, `t = 0`, so `x̂` keeps meaning the direct
//!   estimate), the others on the bridge; the loss of both is the squared error against `x`.
//!   The network is called on the whole batch twice: once detached for `x̂`, once with
//!   gradient.
//!
//! **W-CFM** (Calvo-Ordoñez et al. 2025, "Weighted Conditional Flow Matching"): each pair
//! `(x, ε)` is weighted by the Gibbs kernel `exp(−c(x, ε)/eps)` with `c` the *mean* squared
//! distance per element (so `eps` does not depend on the representation size); the weights
//! are normalised to mean 1 over the batch, which keeps the loss scale (and the learning rate)
//! independent of `eps`. They are constants (no gradient) and apply to every example of the
//! generative objectives; the discriminative objective draws no noise and rejects the option.
//!
//! **Times** are drawn per example from [`TimeSampling`] (default logit-normal(0, 1), the
//! "rectified flow" choice of Esser et al. 2024, which spends more samples on mid-path times),
//! then clamped to `[1e-5, 1 − 1e-5]` so that `t = 0` and `t = 1` are never hit exactly.
//! Draw order from the RNG: the noise `ε` (row-major, whole batch), then per example the
//! times (CFM: `t`; SplitMeanFlow: `a`, `b`, `λ` for every example, whichever part it is in).

use anyhow::{bail, ensure};
use candle_core::{DType, Tensor};
use rand::Rng;
use rand::distr::Open01;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{Field, conditional_velocity, interpolate, mean_per_example, normal, per_example, times};
use crate::Result;

/// Smallest distance of a drawn time from 0 and 1.
pub const T_MARGIN: f64 = 1e-5;

/// Which objective trains the network (`"kind"`-tagged in JSON, e.g.
/// `{"kind": "split_mean_flow", "fm_fraction": 0.25}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Objective {
    /// Conditional flow matching on the straight path (instantaneous velocity, `r = t`).
    #[default]
    Cfm,
    /// SplitMeanFlow: interval-splitting consistency plus plain flow matching on a fraction
    /// `fm_fraction` (in `[0, 1]`) of each batch.
    SplitMeanFlow { fm_fraction: f64 },
    /// Direct regression of the data from `z = 0`, `r = t = 0` (the baseline).
    Discriminative,
    /// The bridge from the direct estimate plus noise of scale `sigma` (> 0) to the data, with
    /// a fraction `direct_fraction` (in `[0, 1)`) of each batch trained as the baseline.
    Bridge { sigma: f64, direct_fraction: f64 },
}

impl Objective {
    /// Whether the network's output at `z = 0`, `r = t = 0` is the data estimate (the
    /// discriminative baseline and the bridge, whose starting point it is).
    pub fn has_direct(&self) -> bool {
        matches!(self, Objective::Discriminative | Objective::Bridge { .. })
    }
}

/// How training times are drawn (`"kind"`-tagged in JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeSampling {
    /// `t ~ U(0, 1)`.
    Uniform,
    /// `t = sigmoid(mean + std · n)`, `n ~ N(0, 1)`.
    LogitNormal { mean: f64, std: f64 },
    /// `t` uniform on `{1/n, 2/n, …, 1}`: the times an `n`-step uniform sampler (or one with
    /// fewer steps dividing `n`) evaluates, for few-step training (the bridge).
    Grid { n: usize },
}

impl Default for TimeSampling {
    fn default() -> Self {
        TimeSampling::LogitNormal { mean: 0.0, std: 1.0 }
    }
}

impl TimeSampling {
    /// One time in `[T_MARGIN, 1 − T_MARGIN]`.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let t = match self {
            TimeSampling::Uniform => rng.sample::<f64, _>(Open01),
            TimeSampling::LogitNormal { mean, std } => {
                let n: f64 = rng.sample(StandardNormal);
                1.0 / (1.0 + (-(mean + std * n)).exp())
            }
            TimeSampling::Grid { n } => {
                let n = (*n).max(1);
                rng.random_range(1..=n) as f64 / n as f64
            }
        };
        t.clamp(T_MARGIN, 1.0 - T_MARGIN)
    }
}

/// The objective part of the training configuration (JSON), e.g.
/// `{"objective": {"kind": "cfm"}, "wcfm_eps": 1.0, "time": {"kind": "uniform"}}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    pub objective: Objective,
    /// W-CFM temperature: when set, pair `(x, ε)` is weighted by `exp(−c/eps)` (normalised to
    /// batch mean 1), `c` the mean squared distance between `x` and `ε`. Must be positive.
    pub wcfm_eps: Option<f64>,
    /// Distribution of the training times.
    pub time: TimeSampling,
    /// When set, each bin's squared error is weighted by the mixture's band magnitude to this
    /// power (normalised to mean 1 per example): errors where the mixture is loud, which
    /// dominate SDR, count more than errors in near-silent bins. The weight depends on the
    /// conditioning only, so the minimiser (the conditional expectation) is unchanged.
    pub magnitude_weight: Option<f64>,
    /// Score the separated signal instead of the mask (discriminative objective): the
    /// estimated mask ([`crate::flow::mask_of`], straight-through clamp to `mask_max`)
    /// applied to the mixture's band magnitudes, compressed like the features, against the
    /// target's compressed band magnitudes: `mean((m^p · |X|^p − |S|^p)²)` with `p` the
    /// features' power. Loud bins count more than silent ones, and masks above 1 are
    /// learned where the interference cancels the target (up to `bands.mask_max`).
    pub signal_loss: bool,
    /// Weight of the waveform term (discriminative objective; 0 = off): the estimated mask
    /// applied to the mixture's STFT, inverted, and `−SI-SDR` in dB against the target
    /// waveform, times this weight, added to the mask loss.
    pub waveform_sisdr: f64,
}

impl ObjectiveConfig {
    /// Checks the numbers: `fm_fraction` in `[0, 1]`, `wcfm_eps > 0` and only with a generative
    /// objective, logit-normal `std > 0`.
    pub fn validate(&self) -> Result<()> {
        if let Objective::SplitMeanFlow { fm_fraction } = self.objective {
            ensure!(
                (0.0..=1.0).contains(&fm_fraction),
                "split_mean_flow fm_fraction must be in [0, 1], got {fm_fraction}"
            );
        }
        if let Objective::Bridge { sigma, direct_fraction } = self.objective {
            ensure!(
                sigma > 0.0 && sigma.is_finite(),
                "bridge sigma must be a positive noise scale, got {sigma}"
            );
            ensure!(
                (0.0..1.0).contains(&direct_fraction),
                "bridge direct_fraction must be in [0, 1), got {direct_fraction}"
            );
        }
        if let TimeSampling::Grid { n } = self.time {
            ensure!(n >= 1, "grid time sampling needs n >= 1");
        }
        if let Some(eps) = self.wcfm_eps {
            ensure!(eps > 0.0 && eps.is_finite(), "wcfm_eps must be positive, got {eps}");
            if self.objective.has_direct() {
                bail!("wcfm_eps weights noise/data pairs: it does not apply to the discriminative or bridge objective");
            }
        }
        if self.signal_loss {
            ensure!(
                self.objective == Objective::Discriminative,
                "signal_loss applies to the discriminative objective only"
            );
            ensure!(
                self.magnitude_weight.is_none(),
                "signal_loss weighs bins by the mixture already: drop magnitude_weight"
            );
        }
        ensure!(
            self.waveform_sisdr >= 0.0 && self.waveform_sisdr.is_finite(),
            "waveform_sisdr must be a finite weight >= 0, got {}",
            self.waveform_sisdr
        );
        ensure!(
            self.waveform_sisdr == 0.0 || self.objective.has_direct(),
            "waveform_sisdr applies to the discriminative and bridge objectives only"
        );
        if let Some(p) = self.magnitude_weight {
            ensure!(p > 0.0 && p.is_finite(), "magnitude_weight must be positive, got {p}");
        }
        if let TimeSampling::LogitNormal { mean, std } = self.time {
            ensure!(
                std > 0.0 && std.is_finite() && mean.is_finite(),
                "logit_normal time sampling needs a finite mean and std > 0, got mean {mean}, std {std}"
            );
        }
        Ok(())
    }
}

/// Figures of one loss evaluation (for logs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossStats {
    /// The (weighted) batch loss.
    pub loss: f32,
    /// Unweighted mean loss of the flow-matching examples (`r = t`), if any.
    pub fm_loss: Option<f32>,
    /// Unweighted mean loss of the SplitMeanFlow interval examples, if any.
    pub interval_loss: Option<f32>,
    /// Examples trained with flow matching (`r = t`; all of them for CFM).
    pub n_fm: usize,
    /// Examples trained with interval consistency.
    pub n_interval: usize,
    /// Smallest and largest W-CFM weight (both 1 without W-CFM).
    pub weight_min: f32,
    pub weight_max: f32,
}

/// W-CFM weights `(B,)` of the pairs `(x, ε)`: `w_i ∝ exp(−c_i/eps)`, `c_i` the mean squared
/// distance between `x_i` and `ε_i`, normalised to mean 1. Computed in f64 with the smallest
/// cost subtracted first (no underflow for small `eps`; the normalisation cancels the shift).
pub fn wcfm_weights(x: &Tensor, noise: &Tensor, eps: f64) -> Result<Vec<f64>> {
    ensure!(eps > 0.0, "W-CFM eps must be positive, got {eps}");
    let cost: Vec<f32> = mean_per_example(&(x - noise)?.sqr()?)?.to_vec1()?;
    let min = cost.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let w: Vec<f64> = cost.iter().map(|&c| (-(c as f64 - min) / eps).exp()).collect();
    let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
    Ok(w.into_iter().map(|v| v / mean).collect())
}

/// The training loss of `cfg` for a batch of data `x` `(B, ...)`, drawing noise and times from
/// `rng` (see the module docs for the draw order). Returns the scalar loss (differentiable
/// through `field`) and its figures.
pub fn loss<R: Rng + ?Sized>(
    cfg: &ObjectiveConfig,
    field: &Field,
    x: &Tensor,
    rng: &mut R,
) -> Result<(Tensor, LossStats)> {
    weighted_loss(cfg, field, x, None, rng)
}

/// [`loss`] with a per-bin weight of the squared error (`weight` has the shape of `x`; see
/// [`ObjectiveConfig::magnitude_weight`]); `None` weighs every bin 1.
pub fn weighted_loss<R: Rng + ?Sized>(
    cfg: &ObjectiveConfig,
    field: &Field,
    x: &Tensor,
    weight: Option<&Tensor>,
    rng: &mut R,
) -> Result<(Tensor, LossStats)> {
    cfg.validate()?;
    if let Some(w) = weight {
        ensure!(
            w.dims() == x.dims(),
            "loss weight shape {:?} differs from the data shape {:?}",
            w.dims(),
            x.dims()
        );
    }
    let sq_err = |pred: &Tensor, target: &Tensor| -> Result<Tensor> {
        let e = (pred - target)?.sqr()?;
        mean_per_example(&match weight {
            Some(w) => (e * w)?,
            None => e,
        })
    };
    let b = x.dim(0)?;
    ensure!(b > 0, "the loss needs a non-empty batch");
    let dev = x.device();
    if cfg.objective == Objective::Discriminative {
        return discriminative_loss(field, x, &sq_err);
    }
    let noise = normal(rng, x.dims(), dev)?.to_dtype(x.dtype())?;
    let (per, n_fm) = match cfg.objective {
        Objective::Discriminative => return discriminative_loss(field, x, &sq_err),
        Objective::Bridge { sigma, direct_fraction } => {
            return bridge_loss(field, x, &noise, sigma, direct_fraction, &cfg.time, &sq_err, rng);
        }
        Objective::Cfm => {
            let t: Vec<f64> = (0..b).map(|_| cfg.time.draw(rng)).collect();
            let t = times(&t, dev)?;
            let z = interpolate(x, &noise, &t)?;
            let pred = field(&z, &t, &t)?;
            (sq_err(&pred, &conditional_velocity(x, &noise)?)?, b)
        }
        Objective::SplitMeanFlow { fm_fraction } => {
            let n_fm = ((fm_fraction * b as f64).round() as usize).min(b);
            let (mut r, mut s, mut t) = (Vec::with_capacity(b), Vec::with_capacity(b), Vec::with_capacity(b));
            let mut lambda = Vec::with_capacity(b);
            for i in 0..b {
                let (ta, tb) = (cfg.time.draw(rng), cfg.time.draw(rng));
                let l = rng.sample::<f64, _>(Open01);
                if i < n_fm {
                    r.push(ta);
                    s.push(ta);
                    t.push(ta);
                    lambda.push(0.0);
                } else {
                    let (lo, hi) = if ta <= tb { (ta, tb) } else { (tb, ta) };
                    r.push(lo);
                    s.push(lo + l * (hi - lo));
                    t.push(hi);
                    lambda.push(l);
                }
            }
            // The field always sees the whole batch, in order (the caller's closure captures
            // the conditioning of all B examples): one differentiable call for every example,
            // and, when there are interval examples, two detached calls for their targets.
            let (r, s, t) = (times(&r, dev)?, times(&s, dev)?, times(&t, dev)?);
            let z = interpolate(x, &noise, &t)?;
            let pred = field(&z, &r, &t)?;
            let n_int = b - n_fm;
            let fm_target = conditional_velocity(x, &noise)?;
            let target = if n_int == 0 {
                fm_target
            } else {
                let u2 = field(&z, &s, &t)?.detach();
                let zs = (&z - u2.broadcast_mul(&per_example(&(&t - &s)?, &z)?)?)?;
                let u1 = field(&zs, &r, &s)?.detach();
                let lam = per_example(&times(&lambda, dev)?, &z)?;
                let split = (u1.broadcast_mul(&lam)? + u2.broadcast_mul(&lam.affine(-1.0, 1.0)?)?)?;
                Tensor::cat(&[fm_target.narrow(0, 0, n_fm)?, split.narrow(0, n_fm, n_int)?], 0)?
            };
            (sq_err(&pred, &target)?, n_fm)
        }
    };

    let (weighted, weight_min, weight_max) = match cfg.wcfm_eps {
        Some(eps) => {
            let w = wcfm_weights(x, &noise, eps)?;
            let lo = w.iter().copied().fold(f64::INFINITY, f64::min) as f32;
            let hi = w.iter().copied().fold(f64::NEG_INFINITY, f64::max) as f32;
            ((&per * times(&w, dev)?)?, lo, hi)
        }
        None => (per.clone(), 1.0, 1.0),
    };
    let loss = weighted.mean_all()?;
    let per_v: Vec<f32> = per.to_vec1()?;
    let stats = LossStats {
        loss: loss.to_scalar::<f32>()?,
        fm_loss: part_mean(&per_v[..n_fm]),
        interval_loss: part_mean(&per_v[n_fm..]),
        n_fm,
        n_interval: b - n_fm,
        weight_min,
        weight_max,
    };
    Ok((loss, stats))
}

/// The signal loss of [`ObjectiveConfig::signal_loss`]: `field(0, 0, 0)` read as a mask
/// ([`crate::flow::mask_of`] with the straight-through clamp), applied to the mixture's
/// compressed band magnitudes `cond` (`|X|^power`), against the target's `target`
/// (`|S|^power`, same scale): the per-example mean squared error, averaged over the batch.
pub fn signal_loss(
    field: &Field,
    cond: &Tensor,
    target: &Tensor,
    power: f64,
    mask_max: f32,
) -> Result<(Tensor, LossStats)> {
    ensure!(
        cond.dims() == target.dims(),
        "mixture features {:?} and target features {:?} differ in shape",
        cond.dims(),
        target.dims()
    );
    let b = cond.dim(0)?;
    ensure!(b > 0, "the loss needs a non-empty batch");
    let zero = Tensor::zeros(b, DType::F32, cond.device())?;
    let pred = field(&cond.zeros_like()?, &zero, &zero)?;
    let m = crate::flow::mask_of(&pred, mask_max, true)?;
    // A small floor keeps the power's gradient finite at m = 0.
    let est = ((m + 1e-4)?.powf(power)? * cond)?;
    let loss = mean_per_example(&(est - target)?.sqr()?)?.mean_all()?;
    let stats = LossStats {
        loss: loss.to_scalar::<f32>()?,
        weight_min: 1.0,
        weight_max: 1.0,
        ..LossStats::default()
    };
    Ok((loss, stats))
}

/// The bridge loss (module docs): `x̂ = sg field(0, 0, 0)`, then the first `n_d` examples at
/// `z = 0`, `t = 0` and the others at `z_t = (1 − t) x + t (x̂ + σ ε)`, `t` from `time`, all
/// scored against `x`. Draws: the noise `ε` (row-major, whole batch: the caller's, drawn
/// first as for every generative objective), then one time per bridge example. `fm_loss`
/// reports the bridge examples, `interval_loss` the direct ones.
#[allow(clippy::too_many_arguments)]
fn bridge_loss<R: Rng + ?Sized>(
    field: &Field,
    x: &Tensor,
    noise: &Tensor,
    sigma: f64,
    direct_fraction: f64,
    time: &TimeSampling,
    sq_err: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    rng: &mut R,
) -> Result<(Tensor, LossStats)> {
    let b = x.dim(0)?;
    let dev = x.device();
    let n_d = ((direct_fraction * b as f64).round() as usize).min(b);
    let t: Vec<f64> = (0..b).map(|i| if i < n_d { 0.0 } else { time.draw(rng) }).collect();
    let zero = Tensor::zeros(b, DType::F32, dev)?;
    let x_hat = field(&x.zeros_like()?, &zero, &zero)?.detach();
    let start = (x_hat + (noise * sigma)?)?;
    // The direct rows have t = 0 and z = 0 (not x: the baseline never sees the data).
    let t = times(&t, dev)?;
    let z = interpolate(x, &start, &t)?;
    let z = if n_d == 0 {
        z
    } else {
        Tensor::cat(&[z.narrow(0, 0, n_d)?.zeros_like()?, z.narrow(0, n_d, b - n_d)?], 0)?
    };
    let pred = field(&z, &t, &t)?;
    let per = sq_err(&pred, x)?;
    let loss = per.mean_all()?;
    let per_v: Vec<f32> = per.to_vec1()?;
    let stats = LossStats {
        loss: loss.to_scalar::<f32>()?,
        fm_loss: part_mean(&per_v[n_d..]),
        interval_loss: part_mean(&per_v[..n_d]),
        n_fm: b - n_d,
        n_interval: n_d,
        weight_min: 1.0,
        weight_max: 1.0,
    };
    Ok((loss, stats))
}

/// Mean of one part of the per-example losses (`None` when the part is empty).
fn part_mean(v: &[f32]) -> Option<f32> {
    (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
}

/// The discriminative loss: `field(0, 0, 0)` against `x`, mean squared error (no draws).
fn discriminative_loss(
    field: &Field,
    x: &Tensor,
    sq_err: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<(Tensor, LossStats)> {
    let b = x.dim(0)?;
    let zero = Tensor::zeros(b, DType::F32, x.device())?;
    let pred = field(&x.zeros_like()?, &zero, &zero)?;
    let loss = sq_err(&pred, x)?.mean_all()?;
    let stats = LossStats {
        loss: loss.to_scalar::<f32>()?,
        fm_loss: None,
        interval_loss: None,
        n_fm: 0,
        n_interval: 0,
        weight_min: 1.0,
        weight_max: 1.0,
    };
    Ok((loss, stats))
}
