//! 2-D convolution as unfold + one matrix product per example ([`fused::conv2d`]), for fast
//! CPU training.
//!
//! candle 0.11.1's CPU `conv2d` backward computes the input gradient with `conv_transpose2d`,
//! which on the CPU is a direct loop (one short dot product per pixel, tap and channel): a
//! training step of the separator spent most of its time there. Here both passes run on the
//! gemm kernels, and the unfold's backward is one fold pass ([`fused`]). The parameters are
//! those of [`candle_nn::conv2d`] (`weight (out, in, kh, kw)`, `bias (out)`, the same
//! initialisation), so a checkpoint loads into either implementation; on devices other than
//! the CPU the layer composes candle ops ([`fused::conv2d_reference`]).
//!
//! Supported shapes, per axis (rows and columns independently): odd `k` taps, stride 1,
//! dilation `d`, "same" zero padding `d·(k − 1)/2`; or `k` taps with stride `k` (no padding,
//! no dilation: non-overlapping patches, the input size a multiple of `k`).

use anyhow::ensure;
use candle_core::Tensor;
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::Result;
use crate::model::fused::{self, Geometry};

/// A convolution layer (see the module docs).
#[derive(Debug, Clone)]
pub struct GemmConv2d {
    weight: Tensor,
    bias: Tensor,
    geo: Geometry,
}

impl GemmConv2d {
    /// `k × k` stride-1 "same" convolution (odd `k`) or, with `stride == 2`, `2 × 2` stride 2.
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_axes(c_in, c_out, (k, k), (stride, stride), (1, 1), vb)
    }

    /// A `kernel.0 × kernel.1` convolution with a `stride` and `dilation` per axis (rows,
    /// columns); each axis either stride 1 with an odd kernel ("same" padding) or stride equal
    /// to the kernel without dilation.
    pub fn with_axes(
        c_in: usize,
        c_out: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let axis = |k: usize, s: usize, d: usize| -> Result<usize> {
            ensure!(
                k >= 1 && d >= 1 && ((s == 1 && k % 2 == 1) || (s == k && s > 1 && d == 1)),
                "unsupported convolution: kernel {kernel:?}, stride {stride:?}, dilation {dilation:?}"
            );
            Ok(if s == 1 { d * (k - 1) / 2 } else { 0 })
        };
        let pad = (
            axis(kernel.0, stride.0, dilation.0)?,
            axis(kernel.1, stride.1, dilation.1)?,
        );
        // candle_nn::conv2d's initialisation, for any kernel shape.
        let weight = vb.get_with_hints(
            (c_out, c_in, kernel.0, kernel.1),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bound = 1.0 / (c_in as f64).sqrt();
        let bias = vb.get_with_hints(c_out, "bias", candle_nn::Init::Uniform { lo: -bound, up: bound })?;
        Ok(Self {
            weight,
            bias,
            geo: Geometry { stride, pad, dilation },
        })
    }

    /// The same layer as candle's `conv2d` (for tests; square layers with the same stride,
    /// padding and dilation on both axes only).
    pub fn as_candle(&self) -> Result<candle_nn::Conv2d> {
        let Geometry { stride, pad, dilation } = self.geo;
        ensure!(
            stride.0 == stride.1 && pad.0 == pad.1 && dilation.0 == dilation.1,
            "candle's Conv2d has one stride, padding and dilation for both axes"
        );
        let cfg = Conv2dConfig {
            padding: pad.0,
            stride: stride.0,
            dilation: dilation.0,
            ..Default::default()
        };
        Ok(candle_nn::Conv2d::new(
            self.weight.clone(),
            Some(self.bias.clone()),
            cfg,
        ))
    }

    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (s, k) = (self.geo.stride, self.weight.dims());
        ensure!(
            (s.0 == 1 || h % s.0 == 0) && (s.1 == 1 || w % s.1 == 0),
            "stride-{s:?} convolution needs sizes that are multiples of the stride, got {h}x{w} (kernel {}x{})",
            k[2],
            k[3]
        );
        Ok(fused::conv2d(x, &self.weight, &self.bias, self.geo)?)
    }
}
