//! Optimiser pieces of the trainer: AdamW with saveable state, the learning-rate schedule
//! (linear warm-up + cosine decay), global-norm gradient clipping, and an exponential moving
//! average (EMA) of the weights. Every piece exports its state as a name → tensor map, to be
//! written with the model weights into one safetensors checkpoint
//! (`candle_core::safetensors::save`) and read back with [`AdamW::load_state`] /
//! [`Ema::load_state`].
//!
//! Parameters are named [`Var`]s, normally [`named_vars`] of the model's [`VarMap`], sorted by
//! name so that the order (and thus every reduction) is the same run after run.

use std::collections::HashMap;
use std::f64::consts::PI;

use anyhow::{Context, ensure};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::Result;

/// The variables of `map` as `(name, var)`, sorted by name.
pub fn named_vars(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// AdamW hyper-parameters (PyTorch's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied to parameters of rank ≥ 2 only (weights of linear and
    /// convolution layers); biases, norm gains and other vectors are not decayed.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    /// First and second moment estimates (f32, on the parameter's device).
    m: Tensor,
    v: Tensor,
}

/// AdamW (Loshchilov & Hutter) with PyTorch's semantics: decoupled weight decay
/// `θ ← θ(1 − lr·wd)`, then `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ − lr · (m/(1−β₁ᵗ)) / (sqrt(v/(1−β₂ᵗ)) + eps)`.
///
/// Written here rather than using `candle_nn::AdamW` because that one keeps its moments and
/// step count private, and a resumable checkpoint must save them.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
}

/// Key of the step counter in [`AdamW::state`].
pub const STEP_KEY: &str = "adamw.step";

impl AdamW {
    /// An optimiser over `vars` (names must be unique; non-float variables are skipped), with
    /// zero moments and step 0.
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let mut slots = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !var.dtype().is_float() {
                continue;
            }
            ensure!(
                !slots.iter().any(|s: &Slot| s.name == name),
                "AdamW: parameter `{name}` given twice"
            );
            let m = Tensor::zeros(var.shape(), DType::F32, var.device())?;
            slots.push(Slot {
                decay: var.rank() >= 2,
                v: m.clone(),
                m,
                name,
                var,
            });
        }
        Ok(Self { cfg, slots, step: 0 })
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Sets the learning rate of the next steps (the schedule calls this before each step).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The optimised variables, in name order.
    pub fn vars(&self) -> Vec<Var> {
        self.slots.iter().map(|s| s.var.clone()).collect()
    }

    /// One update with the gradients in `grads`; parameters without a gradient are left alone
    /// (their moments too), as in PyTorch.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamWConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            // Detached (no copy): moments must never record a graph, or each step's would
            // keep the last one alive (see `Ema::update`).
            let g = g.detach().to_dtype(DType::F32)?;
            slot.m = ((&slot.m * beta1)? + (&g * (1.0 - beta1))?)?;
            slot.v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let theta = slot.var.as_tensor().detach().to_dtype(DType::F32)?;
            let theta = if slot.decay && weight_decay != 0.0 {
                (theta * (1.0 - lr * weight_decay))?
            } else {
                theta
            };
            let denom = ((&slot.v.sqrt()? / bc2_sqrt)? + eps)?;
            let next = (theta - (slot.m.div(&denom)? * (lr / bc1))?)?;
            slot.var.set(&next.to_dtype(slot.var.dtype())?)?;
        }
        Ok(())
    }

    /// The optimiser state: `adamw.m.<name>`, `adamw.v.<name>` (f32, on the parameters'
    /// devices) and [`STEP_KEY`] (a one-element i64 CPU tensor).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut map = HashMap::with_capacity(2 * self.slots.len() + 1);
        for s in &self.slots {
            map.insert(format!("adamw.m.{}", s.name), s.m.clone());
            map.insert(format!("adamw.v.{}", s.name), s.v.clone());
        }
        map.insert(STEP_KEY.to_string(), Tensor::new(&[self.step as i64], &Device::Cpu)?);
        Ok(map)
    }

    /// Restores [`state`](Self::state) (e.g. read from a checkpoint; other keys are ignored).
    /// Every parameter's moments must be present with its shape.
    pub fn load_state(&mut self, map: &HashMap<String, Tensor>) -> Result<()> {
        let step = map
            .get(STEP_KEY)
            .with_context(|| format!("optimiser state has no `{STEP_KEY}`"))?
            .to_dtype(DType::I64)?
            .flatten_all()?
            .to_vec1::<i64>()?;
        ensure!(
            step.len() == 1 && step[0] >= 0,
            "optimiser state `{STEP_KEY}` must hold one non-negative count"
        );
        let mut moments = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let get = |kind: &str| -> Result<Tensor> {
                let key = format!("adamw.{kind}.{}", s.name);
                let t = map
                    .get(&key)
                    .with_context(|| format!("optimiser state has no `{key}`"))?;
                ensure!(
                    t.dims() == s.var.dims(),
                    "optimiser state `{key}` has shape {:?}, the parameter {:?}",
                    t.dims(),
                    s.var.dims()
                );
                Ok(t.to_dtype(DType::F32)?.to_device(s.var.device())?)
            };
            moments.push((get("m")?, get("v")?));
        }
        for (s, (m, v)) in self.slots.iter_mut().zip(moments) {
            s.m = m;
            s.v = v;
        }
        self.step = step[0] as u64;
        Ok(())
    }
}

/// Learning rate at optimiser step `step` (0-based): linear warm-up `peak · (step + 1) / warmup`
/// over the first `warmup` steps, then cosine decay from `peak` (at `step = warmup`) to `floor`
/// (at `step = total`), and `floor` after. This equals PyTorch's
/// `SequentialLR([LinearLR(start_factor=1/warmup, total_iters=warmup-1),
/// CosineAnnealingLR(T_max=total-warmup, eta_min=floor)], milestones=[warmup])`.
pub fn lr_at(step: u64, warmup: u64, total: u64, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    if total <= warmup {
        return peak;
    }
    let progress = ((step - warmup) as f64 / (total - warmup) as f64).min(1.0);
    floor + (peak - floor) * 0.5 * (1.0 + (PI * progress).cos())
}

/// Clips the gradients of `vars` in `grads` to a global L2 norm of at most `max_norm`
/// (PyTorch's `clip_grad_norm_`: scale `max_norm / (norm + 1e-6)` when below 1) and returns the
/// norm before clipping. A non-finite norm is returned with the gradients untouched, so the
/// caller can skip the step.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f32> {
    let mut total: Option<Tensor> = None;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            let sq = g.to_dtype(DType::F32)?.sqr()?.sum_all()?;
            total = Some(match total {
                Some(t) => (t + sq)?,
                None => sq,
            });
        }
    }
    let Some(total) = total else {
        return Ok(0.0);
    };
    let norm = total.to_device(&Device::Cpu)?.to_scalar::<f32>()?.sqrt();
    let coef = max_norm / (norm as f64 + 1e-6);
    if norm.is_finite() && coef < 1.0 {
        for var in vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = (g * coef)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

/// Exponential moving average of the weights: after each optimiser step,
/// `shadow ← decay · shadow + (1 − decay) · θ` (shadows in f32, starting at the weights given to
/// [`Ema::new`]). Evaluate with the averaged weights by [`swap`](Ema::swap)ping them in, and
/// swap again to continue training.
pub struct Ema {
    decay: f64,
    vars: Vec<(String, Var)>,
    shadow: Vec<Tensor>,
}

impl Ema {
    /// Shadows initialised to the current values of `vars`. `decay` in `[0, 1)`.
    pub fn new(vars: Vec<(String, Var)>, decay: f64) -> Result<Self> {
        ensure!((0.0..1.0).contains(&decay), "EMA decay must be in [0, 1), got {decay}");
        let shadow = vars
            .iter()
            .map(|(_, v)| Ok(v.as_tensor().detach().to_dtype(DType::F32)?.copy()?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { decay, vars, shadow })
    }

    /// The decay factor.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Moves every shadow towards its variable's current value.
    pub fn update(&mut self) -> Result<()> {
        for ((_, var), s) in self.vars.iter().zip(&mut self.shadow) {
            // The variable detached (here, in `new` and in `swap`): otherwise each shadow
            // records an op on the last one and every step's averages stay alive until the
            // next swap (3 parameter copies per step: 32 MB per step for a 2.7 M-parameter
            // net, killed for memory after 1,700 steps).
            let theta = var.as_tensor().detach().to_dtype(DType::F32)?;
            *s = ((&*s * self.decay)? + (theta * (1.0 - self.decay))?)?;
        }
        Ok(())
    }

    /// Exchanges the live weights and the averages (twice restores both).
    pub fn swap(&mut self) -> Result<()> {
        for ((_, var), s) in self.vars.iter().zip(&mut self.shadow) {
            let live = var.as_tensor().detach().to_dtype(DType::F32)?.copy()?;
            var.set(&s.to_dtype(var.dtype())?)?;
            *s = live;
        }
        Ok(())
    }

    /// The averaged weights as `ema.<name>` → tensor (f32).
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .zip(&self.shadow)
            .map(|((name, _), s)| (format!("ema.{name}"), s.clone()))
            .collect()
    }

    /// The averaged weights under the variables' own names (to write an EMA-only model file).
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .zip(&self.shadow)
            .map(|((name, _), s)| (name.clone(), s.clone()))
            .collect()
    }

    /// Restores [`state`](Self::state); every variable must be present with its shape.
    pub fn load_state(&mut self, map: &HashMap<String, Tensor>) -> Result<()> {
        let mut shadow = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let key = format!("ema.{name}");
            let t = map.get(&key).with_context(|| format!("EMA state has no `{key}`"))?;
            ensure!(
                t.dims() == var.dims(),
                "EMA state `{key}` has shape {:?}, the parameter {:?}",
                t.dims(),
                var.dims()
            );
            shadow.push(t.to_dtype(DType::F32)?.to_device(var.device())?);
        }
        self.shadow = shadow;
        Ok(())
    }
}
