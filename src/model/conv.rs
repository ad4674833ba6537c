//! 2-D convolution as unfold ([`fused::im2col`]) + one batched matrix product, for fast CPU
//! training.
//!
//! candle 0.11.1's CPU `conv2d` backward computes the input gradient with `conv_transpose2d`,
//! which on the CPU is a direct loop (one short dot product per pixel, tap and channel): a
//! training step of the separator spent most of its time there. Here both passes run on the
//! gemm kernels, and the unfold's backward is one fold pass ([`fused`]). The parameters are
//! those of [`candle_nn::conv2d`] (`weight (out, in, k, k)`, `bias (out)`, same
//! initialisation), so a checkpoint loads into either implementation; on devices other than
//! the CPU the layer runs candle's `conv2d`.
//!
//! Supported shapes (all the separator uses): `k × k` with odd `k`, stride 1, "same" zero
//! padding; `2 × 2` stride 2 (even input sizes).

use anyhow::ensure;
use candle_core::Tensor;
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::Result;
use crate::model::fused;

/// A convolution layer (see the module docs).
#[derive(Debug, Clone)]
pub struct GemmConv2d {
    weight: Tensor,
    bias: Tensor,
    k: usize,
    stride: usize,
}

impl GemmConv2d {
    /// `k × k` stride-1 "same" convolution (odd `k`) or, with `stride == 2`, `2 × 2` stride 2.
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        ensure!(
            (stride == 1 && k % 2 == 1) || (stride == 2 && k == 2),
            "unsupported convolution: kernel {k}, stride {stride}"
        );
        let cfg = Conv2dConfig {
            padding: if stride == 1 { k / 2 } else { 0 },
            stride,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(c_in, c_out, k, cfg, vb)?;
        Ok(Self {
            weight: conv.weight().clone(),
            bias: conv.bias().expect("candle_nn::conv2d has a bias").clone(),
            k,
            stride,
        })
    }

    /// The same layer as candle's `conv2d` (for tests).
    pub fn as_candle(&self) -> candle_nn::Conv2d {
        let cfg = Conv2dConfig {
            padding: if self.stride == 1 { self.k / 2 } else { 0 },
            stride: self.stride,
            ..Default::default()
        };
        candle_nn::Conv2d::new(self.weight.clone(), Some(self.bias.clone()), cfg)
    }

    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        ensure!(
            self.stride == 1 || (h % 2 == 0 && w % 2 == 0),
            "stride-2 convolution needs even sizes, got {h}x{w}"
        );
        let pad = if self.stride == 1 { self.k / 2 } else { 0 };
        Ok(fused::conv2d(x, &self.weight, &self.bias, self.stride, pad)?)
    }
}
