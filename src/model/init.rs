//! Seeded weight initialisation.
//!
//! candle's CPU device draws `randn`/`rand` from the thread RNG and refuses `set_seed`, so a
//! [`candle_nn::VarMap`] initialises differently on every run. Training runs must be
//! reproducible from their config, so this backend draws each variable from ChaCha8 seeded
//! with (seed, variable name) — the same distribution as [`candle_nn::Init::var`], the same
//! numbers every run and on every device — and registers the variable in the `VarMap` for the
//! optimiser.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

struct Seeded {
    map: VarMap,
    seed: u64,
}

/// `n` draws of `init`'s distribution for a tensor of `shape`, from ChaCha8 seeded by
/// (`seed`, `name`).
fn values(init: Init, shape: &Shape, seed: u64, name: &str) -> Result<Vec<f32>> {
    let n = shape.elem_count();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ crate::data::manifest::fnv1a(name));
    let uniform = |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, up: f64| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
    };
    let normal = |rng: &mut rand_chacha::ChaCha8Rng, mean: f64, std: f64| -> Result<Vec<f32>> {
        let d = Normal::new(mean, std).map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))?;
        Ok((0..n).map(|_| d.sample(rng) as f32).collect())
    };
    Ok(match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
        Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev)?,
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(&mut rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(&mut rng, 0.0, std)?,
            }
        }
    })
}

impl SimpleBackend for Seeded {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("weights lock poisoned".into()))?;
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("shape mismatch on {name}: {shape:?} <> {:?}", var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let t = Tensor::from_vec(values(init, &shape, self.seed, name)?, shape, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("weights lock poisoned".into()))?;
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("no variable named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().is_ok_and(|d| d.contains_key(name))
    }
}

/// A VarBuilder that creates the variables of `varmap` (a clone shares its storage) with
/// seeded initial values.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(Seeded {
            map: varmap.clone(),
            seed,
        }),
        dtype,
        device.clone(),
    )
}
