//! Flow-matching maths on candle tensors, independent of the network: training objectives
//! ([`objectives`]) and samplers ([`sampling`]).
//!
//! # Time convention (the one place it is stated)
//!
//! ```text
//! z_t = (1 - t) · x + t · ε        x = data (t = 0),  ε ~ N(0, I) noise (t = 1)
//! v(z_t, t) = dz/dt = ε - x        instantaneous (conditional) velocity
//! u(z_t, r, t) = 1/(t - r) ∫_r^t v(z_τ, τ) dτ      average velocity over [r, t], r ≤ t
//! z_r = z_t - (t - r) · u(z_t, r, t)                 u(z, t, t) = v(z, t)
//! ```
//!
//! Sampling integrates from `t = 1` (noise) down to `t = 0` (data). The SplitMeanFlow identity
//! for `r < s < t` is `(t - r) u(z_t, r, t) = (s - r) u(z_s, r, s) + (t - s) u(z_t, s, t)` with
//! `z_s = z_t - (t - s) u(z_t, s, t)`.
//!
//! The network is a single function `u(z, r, t)` (the conditioning and the query are captured
//! by the caller's closure, see [`Field`]); the instantaneous velocity is `u(z, t, t)`. The
//! discriminative baseline calls the same function with `z = 0`, `r = t = 0` and reads its
//! output as the estimate of `x`.
//!
//! # Randomness
//!
//! Noise and times are drawn on the CPU from a caller-supplied RNG (normally a
//! [`ChaCha8Rng`] from [`rng`]) and then moved to the data's device, so a seed gives the same
//! draws on every device and the CPU results are reproducible bit for bit.

pub mod objectives;
pub mod sampling;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::Result;

/// The network as the flow code sees it: `u(z, r, t)` with `z` of shape `(B, ...)` and `r`,
/// `t` of shape `(B,)` (f32, on `z`'s device), returning a tensor shaped like `z`.
pub type Field<'a> = dyn Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + 'a;

/// The seeded generator used for noise: ChaCha8 (portable and stable across platforms and
/// `rand` releases, unlike `StdRng`), seeded with `seed`, on stream `stream` (e.g. the sample
/// index), so different streams of one seed are independent.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Standard normal f32 noise of `shape`, drawn on the CPU from `rng` (row-major order) and
/// moved to `device`.
pub fn normal<R: Rng + ?Sized>(rng: &mut R, shape: &[usize], device: &Device) -> Result<Tensor> {
    let n = shape.iter().product::<usize>();
    let data: Vec<f32> = (0..n).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?.to_device(device)?)
}

/// The band mask of a flow state or a network output `y` (the data convention `y = 2m − 1`):
/// `m = (y + 1) / 2` clamped to `[0, mask_max]`. With `straight_through` the clamp passes the
/// gradient unchanged (training losses on the masked signal keep learning where the raw
/// output left the range); without, it is the plain clamp the separator applies.
pub fn mask_of(y: &Tensor, mask_max: f32, straight_through: bool) -> candle_core::Result<Tensor> {
    let m = y.affine(0.5, 0.5)?;
    let clamped = m.clamp(0f32, mask_max)?;
    if straight_through {
        &m + (clamped - &m)?.detach()
    } else {
        Ok(clamped)
    }
}

/// A `(B,)` f32 tensor on `device` from per-example values.
pub fn times(values: &[f64], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = values.iter().map(|&t| t as f32).collect();
    Ok(Tensor::from_vec(v, values.len(), device)?)
}

/// A `(B,)` f32 tensor on `device` with every entry `t`.
pub fn time_full(t: f64, batch: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(t as f32, batch, device)?)
}

/// `(B,)` per-example values reshaped to `(B, 1, ..., 1)` so they broadcast against `like`
/// (`(B, ...)`), in `like`'s dtype.
pub fn per_example(values: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = values.elem_count();
    Ok(values.to_dtype(like.dtype())?.reshape(shape)?)
}

/// The straight path `z_t = (1 - t) x + t ε` for per-example times `t` `(B,)`.
pub fn interpolate(x: &Tensor, eps: &Tensor, t: &Tensor) -> Result<Tensor> {
    let t = per_example(t, x)?;
    let one_minus = t.affine(-1.0, 1.0)?;
    Ok((x.broadcast_mul(&one_minus)? + eps.broadcast_mul(&t)?)?)
}

/// The conditional velocity of the straight path, `dz_t/dt = ε - x` (independent of `t`).
pub fn conditional_velocity(x: &Tensor, eps: &Tensor) -> Result<Tensor> {
    Ok((eps - x)?)
}

/// Mean over all but the first axis: `(B, ...)` → `(B,)` in f32.
pub(crate) fn mean_per_example(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?.flatten_from(1)?.mean(1)?)
}
