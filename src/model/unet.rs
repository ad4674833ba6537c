//! The separator's U-Net over `(band, frame)` planes, conditioned on the flow times and the
//! query.
//!
//! Input `(B, 3, F, T)`: the flow state `z`, the mixture features `cond` and a constant
//! frequency-position channel (`−1` at the lowest band to `+1` at the top) that tells the
//! otherwise shift-invariant convolutions where in the spectrum they are. `F` and `T` are
//! zero-padded to multiples of `2^(levels − 1)` (`F` only when levels halve it) and the output
//! cropped back, so any `T >= 1` works.
//!
//! * Encoder: a 3×3 input convolution, then per level `res_blocks` residual blocks and (except
//!   at the last level) a 2×2 stride-2 convolution halving frequency and time.
//! * Middle: residual block, optional self-attention along time, residual block.
//! * Decoder: per level the encoder's output of that level is concatenated, `res_blocks`
//!   residual blocks, then a 1×1 convolution to the next level's channels and nearest
//!   upsampling ×2.
//! * Output: GroupNorm → SiLU → 3×3 convolution to one channel.
//!
//! Variants ([`UNetConfig::layout`], [`UNetConfig::down_freq`], [`UNetConfig::freq_dilation`]):
//! with `down_freq = false` every level keeps all `F` bands (the stride and upsampling act on
//! time only, a 1×2 kernel) and the first convolution of each residual block may be dilated
//! along the band axis to widen its reach in frequency instead; with `layout = "time"` the net
//! is 1-D: `z` and `cond` enter as `2F` channels of a height-1 plane, every kernel is 1×3
//! over frames, the output convolution has `F` channels (the bands), and no weight is shared
//! across frequency.
//!
//! Residual block: `x + conv₂(SiLU(FiLM(GN(conv₁(SiLU(GN(x)))))))`, with a 1×1 convolution on
//! the skip path when the channel count changes. GroupNorm keeps the network independent of
//! the batch size. FiLM is `h · (1 + γ) + β` with `(γ, β)` a linear map of the conditioning
//! vector, in every block.
//!
//! Conditioning vector: sinusoidal embeddings (DDPM style, of `1000·t`) of `t` and of `t − r`,
//! concatenated, through `Linear → SiLU → Linear`, plus a linear map of the query, then SiLU.
//!
//! Attention: multi-head self-attention along time within each frequency row, at the
//! bottleneck only (`F / 16` rows of `T / 16` positions by default). There it costs under 1 %
//! of the convolutions for 10 s chunks and gives every position a receptive field of the whole
//! chunk; at higher resolutions its quadratic cost would not pay on two cores.

use anyhow::ensure;
use candle_core::{D, DType, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::model::conv::GemmConv2d;
use crate::model::fused;
use crate::model::norm::Norm;

/// U-Net hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Channels per level (one entry per resolution; each level but the last halves F and T).
    pub channels: Vec<usize>,
    /// Residual blocks per level in the encoder and in the decoder.
    pub res_blocks: usize,
    /// GroupNorm groups (must divide every channel count).
    pub groups: usize,
    /// Size of each sinusoidal embedding (of `t` and of `t − r`); even.
    pub time_dim: usize,
    /// Size of the conditioning vector fed to the FiLM layers.
    pub emb_dim: usize,
    /// Heads of the bottleneck time attention; 0 disables it.
    pub attention_heads: usize,
    /// What the convolutions slide over (`"freq_time"`, the default: `(band, frame)` planes;
    /// `"time"`: frames only, every band its own channel).
    #[serde(default)]
    pub layout: Layout,
    /// Whether each level halves the band axis as well as time (`"freq_time"` only; `false`
    /// keeps every level at full band resolution).
    #[serde(default = "yes")]
    pub down_freq: bool,
    /// Band-axis dilation of the first convolution of every residual block, per level
    /// (`"freq_time"` only; missing levels use 1).
    #[serde(default)]
    pub freq_dilation: Vec<usize>,
    /// Add a fourth input plane (`"freq_time"` only): `cond` divided by its own mean over the
    /// chunk's frames in each band (floored at a tenth of the plane's overall mean), the
    /// band-wise normalisation of cepstral mean subtraction. A static EQ of the recording
    /// (`g(f)·X`, so `g^p · cond` after the compression) cancels in it exactly, so the network
    /// sees each band's envelope apart from the recording chain's colour.
    #[serde(default)]
    pub input_norm: bool,
}

fn yes() -> bool {
    true
}

/// What the U-Net's convolutions slide over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// 3×3 convolutions over `(band, frame)` planes: weights shared across frequency.
    #[default]
    FreqTime,
    /// 1×3 convolutions over frames, the `F` bands of `z` and `cond` as `2F` input channels and
    /// the output's `F` bands as output channels: no weight sharing across frequency, ~1/(3F)
    /// of the work per channel pair.
    Time,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            channels: vec![12, 32, 64, 96, 128],
            res_blocks: 1,
            groups: 4,
            time_dim: 64,
            emb_dim: 128,
            attention_heads: 4,
            layout: Layout::FreqTime,
            down_freq: true,
            freq_dilation: Vec::new(),
            input_norm: false,
        }
    }
}

/// Channel planes of the network input: `z`, `cond`, frequency position (`"freq_time"`).
const IN_CHANNELS: usize = 3;

impl UNetConfig {
    /// A small network for tests and quick experiments.
    pub fn tiny() -> Self {
        Self {
            channels: vec![8, 16, 32],
            res_blocks: 1,
            groups: 4,
            time_dim: 16,
            emb_dim: 32,
            attention_heads: 2,
            layout: Layout::FreqTime,
            down_freq: true,
            freq_dilation: Vec::new(),
            input_norm: false,
        }
    }

    /// Checks the values are consistent.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.channels.is_empty(), "U-Net needs at least one level");
        ensure!(
            self.res_blocks >= 1,
            "U-Net needs at least one residual block per level"
        );
        ensure!(self.groups >= 1, "GroupNorm needs at least one group");
        for &c in &self.channels {
            ensure!(
                c > 0 && c % self.groups == 0,
                "U-Net channel count {c} is not a positive multiple of the {} GroupNorm groups",
                self.groups
            );
        }
        ensure!(
            self.time_dim >= 2 && self.time_dim.is_multiple_of(2),
            "time embedding size must be even and >= 2, got {}",
            self.time_dim
        );
        ensure!(self.emb_dim >= 1, "conditioning size must be positive");
        ensure!(
            self.freq_dilation.len() <= self.channels.len() && self.freq_dilation.iter().all(|&d| d >= 1),
            "freq_dilation needs at most one entry >= 1 per level, got {:?}",
            self.freq_dilation
        );
        ensure!(
            self.layout == Layout::FreqTime || (self.freq_dilation.iter().all(|&d| d == 1)),
            "freq_dilation applies to the \"freq_time\" layout only"
        );
        ensure!(
            self.layout == Layout::FreqTime || !self.input_norm,
            "input_norm applies to the \"freq_time\" layout only"
        );
        let last = self.channels[self.channels.len() - 1];
        ensure!(
            self.attention_heads == 0 || last.is_multiple_of(self.attention_heads),
            "attention heads ({}) must divide the bottleneck channels ({last})",
            self.attention_heads
        );
        Ok(())
    }

    /// Multiple that T is padded to: `2^(levels − 1)`.
    pub fn multiple(&self) -> usize {
        1 << (self.channels.len() - 1)
    }

    /// Multiple that F is padded to: [`Self::multiple`] when levels halve the band axis, else 1.
    pub fn freq_multiple(&self) -> usize {
        if self.halves_freq() { self.multiple() } else { 1 }
    }

    fn halves_freq(&self) -> bool {
        self.layout == Layout::FreqTime && self.down_freq
    }

    /// Kernel of the 3-tap convolutions: `(3, 3)`, or `(1, 3)` over time only.
    fn kernel(&self) -> (usize, usize) {
        match self.layout {
            Layout::FreqTime => (3, 3),
            Layout::Time => (1, 3),
        }
    }

    /// Down-sampling factor (band, frame) between levels.
    fn step(&self) -> (usize, usize) {
        if self.halves_freq() { (2, 2) } else { (1, 2) }
    }

    /// Band-axis dilation of level `l`'s residual blocks.
    fn dilation(&self, l: usize) -> usize {
        self.freq_dilation.get(l).copied().unwrap_or(1)
    }

    /// Input channels and output channels of the network for `n_bands` bands, and the height
    /// of the planes it works on.
    fn io(&self, n_bands: usize) -> (usize, usize, usize) {
        match self.layout {
            Layout::FreqTime => (IN_CHANNELS + usize::from(self.input_norm), 1, n_bands),
            Layout::Time => (2 * n_bands, n_bands, 1),
        }
    }

    /// Multiply-adds ×2 of the convolutions, linear maps and attention products of one
    /// forward pass over an `F × T` plane (batch 1), counted on the padded sizes. Element-wise
    /// work (GroupNorm, SiLU, FiLM, softmax) is not counted.
    ///
    /// A convolution of `K` taps `c_in → c_out` producing `P` pixels costs `2·K·c_in·c_out·P`
    /// (`K = 9` for 3×3, 3 for 1×3); at level `l` there are `P_l` pixels (`(F/2^l)(T/2^l)`,
    /// or `F·T/2^l` when the band axis is not halved, or `T/2^l` for the `"time"` layout) and
    /// `c_l` channels. Per level: encoder blocks `2 · 2·K·c_l²·P_l` each; decoder blocks the
    /// same, the first with `2c_l` inputs to conv₁ and a 1×1 skip
    /// (`2·K·2c_l·c_l + 2·K·c_l² + 2·2c_l·c_l`)·P_l; downsampling `2·S·c_l·c_{l+1}·P_{l+1}`
    /// (`S` = taps of the stride kernel, 4 or 2); upsampling projection `2·c_l·c_{l−1}·P_l`.
    /// Attention over `n = T/2^(L−1)` positions per row, `rows` rows, `c` channels:
    /// `(2·3c² + 2·c²)·n + 2·2·n²·c` per row.
    pub fn flops(&self, n_bands: usize, frames: usize) -> f64 {
        let (m, fm) = (self.multiple(), self.freq_multiple());
        let (ci, co, height) = self.io(n_bands);
        let (fp, tp) = (height.div_ceil(fm) * fm, frames.max(1).div_ceil(m) * m);
        let ch = &self.channels;
        let levels = ch.len();
        let (kh, kw) = self.kernel();
        let (sf, st) = self.step();
        let taps = kh * kw;
        let conv = |k: usize, ci: usize, co: usize, p: usize| 2.0 * (k * ci * co * p) as f64;
        let fpow = |l: usize| sf.pow(l as u32);
        let px = |l: usize| (fp / fpow(l)) * (tp >> l);
        let block = |ci: usize, co: usize, p: usize| {
            conv(taps, ci, co, p) + conv(taps, co, co, p) + if ci != co { conv(1, ci, co, p) } else { 0.0 }
        };
        let mut total = conv(taps, ci, ch[0], px(0)) + conv(taps, ch[0], co, px(0));
        for l in 0..levels {
            let (c, p) = (ch[l], px(l));
            // Encoder (the first block of level 0 follows the input conv: same width).
            total += self.res_blocks as f64 * block(c, c, p);
            if l + 1 < levels {
                total += conv(sf * st, c, ch[l + 1], px(l + 1));
            }
            // Decoder.
            total += block(2 * c, c, p) + (self.res_blocks - 1) as f64 * block(c, c, p);
            if l > 0 {
                total += conv(1, c, ch[l - 1], p);
            }
        }
        let (c, p) = (ch[levels - 1], px(levels - 1));
        total += 2.0 * block(c, c, p);
        if self.attention_heads > 0 {
            let (rows, n) = ((fp / fpow(levels - 1)) as f64, (tp >> (levels - 1)) as f64);
            let c = c as f64;
            total += rows * ((8.0 * c * c) * n + 4.0 * n * n * c);
        }
        total
    }
}

fn conv2d(ci: usize, co: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<GemmConv2d> {
    GemmConv2d::new(ci, co, k, stride, vb)
}

/// Pre-activation residual block with FiLM conditioning.
#[derive(Debug)]
struct ResBlock {
    norm1: Norm,
    conv1: GemmConv2d,
    film: Linear,
    norm2: Norm,
    conv2: GemmConv2d,
    skip: Option<GemmConv2d>,
    c_out: usize,
}

impl ResBlock {
    /// A block at level `level` (which sets the band-axis dilation of `conv1`).
    fn new(ci: usize, co: usize, level: usize, cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        let k = cfg.kernel();
        Ok(Self {
            norm1: Norm::new(cfg.groups, ci, vb.pp("norm1"))?,
            conv1: GemmConv2d::with_axes(ci, co, k, (1, 1), (cfg.dilation(level), 1), vb.pp("conv1"))?,
            film: candle_nn::linear(cfg.emb_dim, 2 * co, vb.pp("film"))?,
            norm2: Norm::new(cfg.groups, co, vb.pp("norm2"))?,
            conv2: GemmConv2d::with_axes(co, co, k, (1, 1), (1, 1), vb.pp("conv2"))?,
            skip: if ci != co {
                Some(conv2d(ci, co, 1, 1, vb.pp("skip"))?)
            } else {
                None
            },
            c_out: co,
        })
    }

    /// `x (B, ci, F, T)`, `emb (B, E)` → `(B, co, F, T)`.
    fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x, None, true)?)?;
        let film = self.film.forward(emb)?;
        let gamma = film.narrow(1, 0, self.c_out)?;
        let beta = film.narrow(1, self.c_out, self.c_out)?;
        let h = self
            .conv2
            .forward(&self.norm2.forward(&h, Some((&gamma, &beta)), true)?)?;
        let skip = match &self.skip {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        Ok((skip + h)?)
    }
}

/// Multi-head self-attention along time within each frequency row, residual.
#[derive(Debug)]
struct TimeAttention {
    norm: Norm,
    qkv: GemmConv2d,
    proj: GemmConv2d,
    heads: usize,
}

impl TimeAttention {
    fn new(c: usize, cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: Norm::new(cfg.groups, c, vb.pp("norm"))?,
            qkv: conv2d(c, 3 * c, 1, 1, vb.pp("qkv"))?,
            proj: conv2d(c, c, 1, 1, vb.pp("proj"))?,
            heads: cfg.attention_heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, f, t) = x.dims4()?;
        let (h, dh) = (self.heads, c / self.heads);
        let qkv = self
            .qkv
            .forward(&self.norm.forward(x, None, false)?)?
            .reshape((b, 3, h, dh, f, t))?;
        // (B, H, dh, F, T) → (B, F, H, T, dh) → (B·F·H, T, dh).
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(1, i, 1)?
                .squeeze(1)?
                .permute((0, 3, 1, 4, 2))?
                .contiguous()?
                .reshape((b * f * h, t, dh))?)
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let att = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?;
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        let y = att.matmul(&v)?; // (B·F·H, T, dh)
        let y = y
            .reshape((b, f, h, t, dh))?
            .permute((0, 2, 4, 1, 3))?
            .reshape((b, c, f, t))?;
        Ok((x + self.proj.forward(&y)?)?)
    }
}

/// The U-Net (tensor paths under the builder: `in_conv`, `time.{0,1}`, `query_proj`,
/// `enc.{level}.{block}`, `down.{level}`, `mid.{0,1}`, `attn`, `dec.{level}.{block}`,
/// `up.{level}`, `out_norm`, `out_conv`).
#[derive(Debug)]
pub struct UNet {
    cfg: UNetConfig,
    in_conv: GemmConv2d,
    time1: Linear,
    time2: Linear,
    query_proj: Linear,
    enc: Vec<Vec<ResBlock>>,
    down: Vec<GemmConv2d>,
    mid: [ResBlock; 2],
    attn: Option<TimeAttention>,
    dec: Vec<Vec<ResBlock>>,
    up: Vec<GemmConv2d>,
    out_norm: Norm,
    out_conv: GemmConv2d,
}

/// Sinusoidal embedding `(B, dim)` of `x (B,)`: `[sin(1000 x ω_i), cos(1000 x ω_i)]`,
/// `ω_i = 10000^(−i/(dim/2))`.
fn sinusoidal(x: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| 1000.0 * (-(10000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), x.device())?;
    let args = x.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs)?;
    Ok(Tensor::cat(&[args.sin()?, args.cos()?], 1)?)
}

/// `cond (B, 1, F, T)` divided, in each band, by its mean over the `T` frames plus a tenth of
/// the plane's mean (so that near-silent bands stay near 0 rather than being lifted to 1):
/// `cond / (mean_t + 0.1 · mean_ft + 1e-6)`. A per-band gain `g_f` on `cond` cancels wherever
/// the band mean dominates the floor.
pub fn band_normalised(cond: &Tensor) -> Result<Tensor> {
    let band_mean = cond.mean_keepdim(D::Minus1)?;
    let floor = (band_mean.mean_keepdim(2)? * 0.1)?;
    let den = (band_mean.broadcast_add(&floor)? + 1e-6)?;
    Ok(cond.broadcast_div(&den)?)
}

impl UNet {
    /// Builds the network for `n_bands`-band planes and conditioning queries of `query_dim`
    /// values.
    pub fn new(cfg: &UNetConfig, n_bands: usize, query_dim: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        ensure!(n_bands >= 1, "the U-Net needs at least one band");
        let (c_in, c_out, _) = cfg.io(n_bands);
        let (k, step) = (cfg.kernel(), cfg.step());
        let ch = &cfg.channels;
        let levels = ch.len();
        let mut enc = Vec::with_capacity(levels);
        let mut dec = Vec::with_capacity(levels);
        let mut down = Vec::new();
        let mut up = Vec::new();
        for l in 0..levels {
            let c = ch[l];
            let e = (0..cfg.res_blocks)
                .map(|i| ResBlock::new(c, c, l, cfg, vb.pp(format!("enc.{l}.{i}"))))
                .collect::<Result<Vec<_>>>()?;
            enc.push(e);
            let d = (0..cfg.res_blocks)
                .map(|i| {
                    let ci = if i == 0 { 2 * c } else { c };
                    ResBlock::new(ci, c, l, cfg, vb.pp(format!("dec.{l}.{i}")))
                })
                .collect::<Result<Vec<_>>>()?;
            dec.push(d);
            if l + 1 < levels {
                down.push(GemmConv2d::with_axes(
                    c,
                    ch[l + 1],
                    step,
                    step,
                    (1, 1),
                    vb.pp(format!("down.{l}")),
                )?);
            }
            if l > 0 {
                up.push(conv2d(c, ch[l - 1], 1, 1, vb.pp(format!("up.{l}")))?);
            }
        }
        let last = ch[levels - 1];
        Ok(Self {
            in_conv: GemmConv2d::with_axes(c_in, ch[0], k, (1, 1), (1, 1), vb.pp("in_conv"))?,
            time1: candle_nn::linear(2 * cfg.time_dim, cfg.emb_dim, vb.pp("time.0"))?,
            time2: candle_nn::linear(cfg.emb_dim, cfg.emb_dim, vb.pp("time.1"))?,
            query_proj: candle_nn::linear(query_dim, cfg.emb_dim, vb.pp("query_proj"))?,
            enc,
            down,
            mid: [
                ResBlock::new(last, last, levels - 1, cfg, vb.pp("mid.0"))?,
                ResBlock::new(last, last, levels - 1, cfg, vb.pp("mid.1"))?,
            ],
            attn: if cfg.attention_heads > 0 {
                Some(TimeAttention::new(last, cfg, vb.pp("attn"))?)
            } else {
                None
            },
            dec,
            up,
            out_norm: Norm::new(cfg.groups, ch[0], vb.pp("out_norm"))?,
            out_conv: GemmConv2d::with_axes(ch[0], c_out, k, (1, 1), (1, 1), vb.pp("out_conv"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Conditioning vector `(B, E)` from `r`, `t` `(B,)` and the query `(B, Q)`.
    fn embed(&self, r: &Tensor, t: &Tensor, query: &Tensor) -> Result<Tensor> {
        let r = r.to_dtype(DType::F32)?;
        let t = t.to_dtype(DType::F32)?;
        let te = Tensor::cat(
            &[
                sinusoidal(&t, self.cfg.time_dim)?,
                sinusoidal(&(&t - &r)?, self.cfg.time_dim)?,
            ],
            1,
        )?;
        let te = self.time2.forward(&self.time1.forward(&te)?.silu()?)?;
        Ok((te + self.query_proj.forward(query)?)?.silu()?)
    }

    /// `z, cond (B, 1, F, T)`, `r, t (B,)`, `query (B, Q)` → `(B, 1, F, T)`.
    pub fn forward(&self, z: &Tensor, cond: &Tensor, r: &Tensor, t: &Tensor, query: &Tensor) -> Result<Tensor> {
        let (b, c, f, tl) = z.dims4()?;
        ensure!(c == 1, "z must be (B, 1, F, T), got {:?}", z.dims());
        ensure!(
            cond.dims() == z.dims(),
            "cond {:?} and z {:?} shapes differ",
            cond.dims(),
            z.dims()
        );
        ensure!(tl >= 1 && f >= 1, "empty input plane {:?}", z.dims());
        ensure!(
            r.dims() == [b] && t.dims() == [b],
            "r {:?} and t {:?} must be ({b},)",
            r.dims(),
            t.dims()
        );
        ensure!(query.dim(0)? == b, "query batch {} is not {b}", query.dim(0)?);
        let (m, fm) = (self.cfg.multiple(), self.cfg.freq_multiple());
        let (fp, tp) = (f.div_ceil(fm) * fm, tl.div_ceil(m) * m);
        let pad = |x: &Tensor| -> Result<Tensor> {
            Ok(x.to_dtype(DType::F32)?
                .pad_with_zeros(2, 0, fp - f)?
                .pad_with_zeros(3, 0, tp - tl)?)
        };
        let x = match self.cfg.layout {
            Layout::FreqTime => {
                let pos: Vec<f32> = (0..fp)
                    .map(|i| {
                        if f > 1 {
                            -1.0 + 2.0 * i as f32 / (f - 1) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let pos = Tensor::from_vec(pos, (1, 1, fp, 1), z.device())?.broadcast_as((b, 1, fp, tp))?;
                let mut planes = vec![pad(z)?, pad(cond)?, pos.contiguous()?];
                if self.cfg.input_norm {
                    planes.push(pad(&band_normalised(&cond.to_dtype(DType::F32)?)?)?);
                }
                Tensor::cat(&planes, 1)?
            }
            // Bands as channels: (B, 2, F, T) → (B, 2F, 1, T).
            Layout::Time => Tensor::cat(&[pad(z)?, pad(cond)?], 1)?.reshape((b, 2 * fp, 1, tp))?,
        };
        let emb = self.embed(r, t, query)?;

        let levels = self.cfg.channels.len();
        let mut h = self.in_conv.forward(&x)?;
        let mut skips = Vec::with_capacity(levels);
        for l in 0..levels {
            for blk in &self.enc[l] {
                h = blk.forward(&h, &emb)?;
            }
            skips.push(h.clone());
            if l + 1 < levels {
                h = self.down[l].forward(&h)?;
            }
        }
        h = self.mid[0].forward(&h, &emb)?;
        if let Some(a) = &self.attn {
            h = a.forward(&h)?;
        }
        h = self.mid[1].forward(&h, &emb)?;
        for l in (0..levels).rev() {
            h = Tensor::cat(&[&h, &skips[l]], 1)?;
            for blk in &self.dec[l] {
                h = blk.forward(&h, &emb)?;
            }
            if l > 0 {
                h = fused::upsample(&self.up[l - 1].forward(&h)?, self.cfg.step())?;
            }
        }
        let y = self.out_conv.forward(&self.out_norm.forward(&h, None, true)?)?;
        // `"time"`: (B, F, 1, T) → (B, 1, F, T), the same memory.
        let y = y.reshape((b, 1, fp, tp))?;
        Ok(y.narrow(2, 0, f)?.narrow(3, 0, tl)?)
    }
}
