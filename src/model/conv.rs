//! 2-D convolution as an explicit unfold + matrix product, for fast CPU training.
//!
//! candle 0.11.1's CPU `conv2d` backward computes the input gradient with `conv_transpose2d`,
//! which on the CPU is a direct loop (one short dot product per pixel, tap and channel): a
//! training step of the separator spent most of its time there. Written with tensor ops whose
//! gradients candle computes efficiently (zero padding, `narrow`, `cat`, `reshape`,
//! `permute`, batched `matmul`), both passes run on the gemm kernels. The parameters are those of
//! [`candle_nn::conv2d`] (`weight (out, in, k, k)`, `bias (out)`, same initialisation), so a
//! checkpoint loads into either implementation.
//!
//! Supported shapes (all the separator uses): `k × k` with odd `k`, stride 1, "same" zero
//! padding; `2 × 2` stride 2 (even input sizes).

use anyhow::ensure;
use candle_core::Tensor;
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::Result;

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
        let (b, c, h, w) = x.dims4()?;
        let k = self.k;
        let (ho, wo, cols) = if self.stride == 2 {
            ensure!(
                h % 2 == 0 && w % 2 == 0,
                "stride-2 convolution needs even sizes, got {h}x{w}"
            );
            // Space to depth: taps (ky, kx) then channels.
            let cols = x
                .reshape((b, c, h / 2, 2, w / 2, 2))?
                .permute((0, 3, 5, 1, 2, 4))?
                .reshape((b, 4 * c, h * w / 4))?;
            (h / 2, w / 2, cols)
        } else if k == 1 {
            (h, w, x.reshape((b, c, h * w))?)
        } else {
            let p = k / 2;
            let xp = x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
            let mut taps = Vec::with_capacity(k * k);
            for ky in 0..k {
                for kx in 0..k {
                    taps.push(xp.narrow(2, ky, h)?.narrow(3, kx, w)?);
                }
            }
            (h, w, Tensor::cat(&taps, 1)?.reshape((b, k * k * c, h * w))?)
        };
        let c_out = self.weight.dim(0)?;
        let wf = self.weight.permute((0, 2, 3, 1))?.reshape((1, c_out, k * k * c))?;
        let y = wf.broadcast_as((b, c_out, k * k * c))?.matmul(&cols.contiguous()?)?;
        let y = y.broadcast_add(&self.bias.reshape((1, c_out, 1))?)?;
        Ok(y.reshape((b, c_out, ho, wo))?)
    }
}
