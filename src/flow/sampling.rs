//! Samplers: integrate the learnt field from noise at `t = 1` to data at `t = 0` (time
//! convention in [`crate::flow`]), or call the discriminative network directly.
//!
//! * [`euler`]: `N` uniform steps `z ← z − h · u(z, t, t)`, `h = 1/N` (first order).
//! * [`heun`]: `N` uniform steps of Heun's method (explicit trapezoid, second order; two field
//!   evaluations a step, the second at the end of the step, including `t = 0`).
//! * [`mean_flow`]: `N` uniform intervals `z_r = z_t − (t − r) · u(z_t, r, t)`; exact for any
//!   `N` when `u` is the true average velocity (1 or 2 steps in practice).
//! * [`discriminative`]: `u(0, 0, 0)`.
//! * [`bridge`]: from the discriminative estimate plus noise, `N` uniform x-prediction steps
//!   (a model trained with the bridge objective, [`crate::flow::objectives`]).
//!
//! Noise for sample `k` of seed `s` comes from [`noise`] (ChaCha8 seeded with `s`, stream `k`,
//! drawn on the CPU): the same seed gives the same output, bit for bit on the CPU.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::objectives::Objective;
use super::{Field, normal, rng, time_full};
use crate::Result;

/// Evaluates `field` at the same `r`, `t` for the whole batch of `z`.
fn eval(field: &Field, z: &Tensor, r: f64, t: f64) -> Result<Tensor> {
    let b = z.dim(0)?;
    let out = field(z, &time_full(r, b, z.device())?, &time_full(t, b, z.device())?)?;
    ensure!(
        out.dims() == z.dims(),
        "the field returned shape {:?} for an input of shape {:?}",
        out.dims(),
        z.dims()
    );
    Ok(out)
}

fn check_steps(steps: usize) -> Result<()> {
    ensure!(steps > 0, "a sampler needs at least one step");
    Ok(())
}

/// Time at the end of step `k` of `n` uniform steps from 1 to 0 (`t_0 = 1`, `t_n = 0`).
fn grid(k: usize, n: usize) -> f64 {
    1.0 - k as f64 / n as f64
}

/// Euler integration of `dz/dt = u(z, t, t)` from `noise` at `t = 1` to `t = 0` in `steps`
/// uniform steps.
pub fn euler(field: &Field, noise: &Tensor, steps: usize) -> Result<Tensor> {
    jumps(field, noise, steps, false)
}

/// `steps` uniform jumps `z ← z − (t − r) · u(z, ρ, t)` from 1 to 0, with `ρ = r` (average
/// velocity over the step: mean flow) or `ρ = t` (instantaneous velocity: Euler).
fn jumps(field: &Field, noise: &Tensor, steps: usize, average: bool) -> Result<Tensor> {
    check_steps(steps)?;
    let mut z = noise.clone();
    for k in 0..steps {
        let (t, r) = (grid(k, steps), grid(k + 1, steps));
        let u = eval(field, &z, if average { r } else { t }, t)?;
        z = (z - (u * (t - r))?)?;
    }
    Ok(z)
}

/// Heun's method (explicit trapezoid) for `dz/dt = u(z, t, t)` from `noise` at `t = 1` to
/// `t = 0` in `steps` uniform steps (`2 · steps` field evaluations).
pub fn heun(field: &Field, noise: &Tensor, steps: usize) -> Result<Tensor> {
    check_steps(steps)?;
    let mut z = noise.clone();
    for k in 0..steps {
        let (t, next) = (grid(k, steps), grid(k + 1, steps));
        let h = t - next;
        let v1 = eval(field, &z, t, t)?;
        let predictor = (&z - (&v1 * h)?)?;
        let v2 = eval(field, &predictor, next, next)?;
        z = (z - ((v1 + v2)? * (h / 2.0))?)?;
    }
    Ok(z)
}

/// Mean-flow sampling: `steps` uniform intervals `[r, t]` from 1 to 0, each a single jump
/// `z_r = z_t − (t − r) · u(z_t, r, t)`.
pub fn mean_flow(field: &Field, noise: &Tensor, steps: usize) -> Result<Tensor> {
    jumps(field, noise, steps, true)
}

/// The bridge sampler: the direct estimate `x̂ = u(0, 0, 0)`, the start `y = x̂ + σ · noise` at
/// `t = 1`, then `steps` uniform steps `z_r = (1 − r) · x̃ + r · y` with the network's data
/// prediction `x̃ = u(z_t, t, t)` (`steps + 1` field evaluations). With `σ = 0` or zero noise it
/// is a deterministic refinement of the direct estimate.
pub fn bridge(field: &Field, noise: &Tensor, steps: usize, sigma: f64) -> Result<Tensor> {
    check_steps(steps)?;
    let x_hat = discriminative(field, noise.dims(), noise.device())?;
    let start = (x_hat + (noise * sigma)?)?;
    let mut z = start.clone();
    for k in 0..steps {
        let (t, r) = (grid(k, steps), grid(k + 1, steps));
        let x_t = eval(field, &z, t, t)?;
        z = if r == 0.0 {
            x_t
        } else {
            ((x_t * (1.0 - r))? + (&start * r)?)?
        };
    }
    Ok(z)
}

/// The discriminative estimate `u(0, 0, 0)` for a batch of `shape` `(B, ...)` (f32).
pub fn discriminative(field: &Field, shape: &[usize], device: &Device) -> Result<Tensor> {
    ensure!(!shape.is_empty(), "the sample shape needs a batch axis");
    eval(field, &Tensor::zeros(shape, DType::F32, device)?, 0.0, 0.0)
}

/// The starting noise of sample `index` for `seed`: standard normal f32 of `shape`, from
/// [`rng`]`(seed, index)`, drawn on the CPU and moved to `device`.
pub fn noise(shape: &[usize], seed: u64, index: u64, device: &Device) -> Result<Tensor> {
    normal(&mut rng(seed, index), shape, device)
}

/// A sampler and its step count, written `euler:N`, `heun:N`, `meanflow:N`, `bridge:N` or
/// `direct` on the command line and in JSON configs. A bridge's noise scale belongs to the
/// model ([`Sampler::for_objective`] sets it); `bridge:N` parses with `sigma = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Sampler {
    Euler {
        steps: usize,
    },
    Heun {
        steps: usize,
    },
    MeanFlow {
        steps: usize,
    },
    /// The discriminative network (`z = 0`, `r = t = 0`); no noise.
    Direct,
    /// [`bridge`] with `steps` steps from the direct estimate plus noise of scale `sigma`.
    Bridge {
        steps: usize,
        sigma: f64,
    },
}

impl Sampler {
    /// Whether the sampler starts from noise (so several draws differ).
    pub fn is_generative(&self) -> bool {
        !matches!(self, Sampler::Direct)
    }

    /// Network evaluations per sample.
    pub fn evaluations(&self) -> usize {
        match *self {
            Sampler::Euler { steps } | Sampler::MeanFlow { steps } => steps,
            Sampler::Heun { steps } => 2 * steps,
            Sampler::Direct => 1,
            Sampler::Bridge { steps, .. } => steps + 1,
        }
    }

    /// This sampler for a model trained with `objective`: a bridge takes the model's noise
    /// scale. Errors when the two do not go together (a flow sampler on a model without a
    /// flow, the bridge on a model not trained for it, the direct sampler on a flow model that
    /// has no direct output).
    pub fn for_objective(self, objective: &Objective) -> Result<Sampler> {
        Ok(match (self, objective) {
            (Sampler::Direct, o) if o.has_direct() => self,
            (Sampler::Direct, _) => bail!("sampler 'direct' needs a discriminative or bridge model"),
            (Sampler::Bridge { steps, .. }, Objective::Bridge { sigma, .. }) => {
                Sampler::Bridge { steps, sigma: *sigma }
            }
            (Sampler::Bridge { .. }, _) => bail!("sampler '{self}' needs a model trained with the bridge objective"),
            (_, Objective::Cfm | Objective::SplitMeanFlow { .. }) => self,
            (_, _) => {
                bail!("sampler '{self}' needs a flow model (CFM or SplitMeanFlow); this one runs direct or bridge")
            }
        })
    }

    /// Runs the sampler from `noise` (`(B, ...)`; only its shape and device matter for
    /// [`Sampler::Direct`]).
    pub fn run(&self, field: &Field, noise: &Tensor) -> Result<Tensor> {
        match *self {
            Sampler::Euler { steps } => euler(field, noise, steps),
            Sampler::Heun { steps } => heun(field, noise, steps),
            Sampler::MeanFlow { steps } => mean_flow(field, noise, steps),
            Sampler::Direct => discriminative(field, noise.dims(), noise.device()),
            Sampler::Bridge { steps, sigma } => bridge(field, noise, steps, sigma),
        }
    }

    /// `k` samples of `shape` on `device`, sample `i` started from [`noise`]`(shape, seed, i)`.
    pub fn draw(&self, field: &Field, shape: &[usize], seed: u64, k: usize, device: &Device) -> Result<Vec<Tensor>> {
        self.draw_with_temperature(field, shape, seed, k, 1.0, device)
    }

    /// [`Sampler::draw`] from noise scaled by `temperature` (in `[0, 1]`): 1 samples the learnt
    /// distribution, lower values pull the samples towards the flow's image of the prior's
    /// mode (0: one deterministic estimate, the same for every seed).
    pub fn draw_with_temperature(
        &self,
        field: &Field,
        shape: &[usize],
        seed: u64,
        k: usize,
        temperature: f64,
        device: &Device,
    ) -> Result<Vec<Tensor>> {
        self.draw_rows(field, shape, 1, seed, k, temperature, device)
    }

    /// [`Sampler::draw_with_temperature`] for a batch of `rows` problems at once (e.g. one
    /// mixture and several queries), where every row starts from the noise that a batch of
    /// one would: sample `i` of row `j` equals sample `i` of that row drawn alone. `shape`
    /// is the shape of one row, with a batch axis of 1; the results have `rows` on it.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_rows(
        &self,
        field: &Field,
        shape: &[usize],
        rows: usize,
        seed: u64,
        k: usize,
        temperature: f64,
        device: &Device,
    ) -> Result<Vec<Tensor>> {
        ensure!(k > 0, "at least one sample is needed");
        ensure!(rows > 0, "at least one row is needed");
        ensure!(
            (0.0..=1.0).contains(&temperature),
            "temperature must be in [0, 1], got {temperature}"
        );
        let mut repeat = vec![1usize; shape.len()];
        if let Some(first) = repeat.first_mut() {
            *first = rows;
        }
        (0..k as u64)
            .map(|i| {
                let z = (noise(shape, seed, i, device)? * temperature)?;
                let z = if rows == 1 { z } else { z.repeat(repeat.as_slice())? };
                self.run(field, &z)
            })
            .collect()
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sampler::Euler { steps } => write!(f, "euler:{steps}"),
            Sampler::Heun { steps } => write!(f, "heun:{steps}"),
            Sampler::MeanFlow { steps } => write!(f, "meanflow:{steps}"),
            Sampler::Direct => write!(f, "direct"),
            Sampler::Bridge { steps, .. } => write!(f, "bridge:{steps}"),
        }
    }
}

impl FromStr for Sampler {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        const FORMS: &str = "euler:N, heun:N, meanflow:N, bridge:N or direct";
        let s = s.trim().to_ascii_lowercase();
        if s == "direct" {
            return Ok(Sampler::Direct);
        }
        let (name, steps) = s
            .split_once(':')
            .with_context(|| format!("sampler `{s}`: expected {FORMS}"))?;
        let steps: usize = steps
            .parse()
            .with_context(|| format!("sampler `{s}`: the step count `{steps}` is not a whole number"))?;
        ensure!(steps > 0, "sampler `{s}`: the step count must be at least 1");
        Ok(match name {
            "euler" => Sampler::Euler { steps },
            "heun" => Sampler::Heun { steps },
            "meanflow" | "mean_flow" => Sampler::MeanFlow { steps },
            "bridge" => Sampler::Bridge { steps, sigma: 0.0 },
            _ => bail!("sampler `{s}`: unknown name `{name}`, expected {FORMS}"),
        })
    }
}

impl TryFrom<String> for Sampler {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Sampler> for String {
    fn from(s: Sampler) -> String {
        s.to_string()
    }
}

/// Combines `K` samples (same shape): the element-wise mean and the element-wise standard
/// deviation over the samples (population form, divided by `K`; zero for one sample), both in
/// f32. The spread is the per-bin uncertainty picture of `--samples K`.
pub fn combine(samples: &[Tensor]) -> Result<(Tensor, Tensor)> {
    ensure!(!samples.is_empty(), "no samples to combine");
    let stacked = Tensor::stack(samples, 0)?.to_dtype(DType::F32)?;
    let mean = stacked.mean(0)?;
    let centred = stacked.broadcast_sub(&mean.unsqueeze(0)?)?;
    let std = centred.sqr()?.mean(0)?.sqrt()?;
    Ok((mean, std))
}
