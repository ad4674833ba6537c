//! GroupNorm with FiLM and SiLU as one layer ([`fused::group_norm_act`]).
//!
//! The parameters are those of [`candle_nn::group_norm`] (`weight`, `bias`, initialised to
//! 1 and 0), so checkpoints of either implementation load into the other.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::Result;
use crate::model::fused;

/// GroupNorm over `(B, C, ...)` with its per-channel affine, an optional per-example FiLM and
/// an optional SiLU, computed as one fused kernel on the CPU.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl Norm {
    /// `groups` groups over `channels` channels, epsilon 1e-5.
    pub fn new(groups: usize, channels: usize, vb: VarBuilder) -> Result<Self> {
        anyhow::ensure!(
            groups >= 1 && channels.is_multiple_of(groups),
            "{groups} GroupNorm groups do not divide {channels} channels"
        );
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            groups,
            eps: 1e-5,
        })
    }

    /// `act(GN(x) · (1 + γ) + β)` with `film = (γ, β)`, each `(B, C)` (none: `γ = β = 0`),
    /// `act` SiLU when `silu`.
    pub fn forward(&self, x: &Tensor, film: Option<(&Tensor, &Tensor)>, silu: bool) -> Result<Tensor> {
        let (b, c) = (x.dim(0)?, self.weight.dim(0)?);
        let w = self.weight.unsqueeze(0)?;
        let bias = self.bias.unsqueeze(0)?;
        let (scale, shift) = match film {
            None => (w.broadcast_as((b, c))?, bias.broadcast_as((b, c))?),
            Some((gamma, beta)) => {
                let g1 = (gamma + 1.0)?;
                (g1.broadcast_mul(&w)?, (g1.broadcast_mul(&bias)? + beta)?)
            }
        };
        Ok(fused::group_norm_act(x, &scale, &shift, self.groups, self.eps, silu)?)
    }
}
