//! Neural networks run with [candle](https://github.com/huggingface/candle): the pretrained
//! models of the model-based metrics in [`crate::metrics`] ([`crepe`]) and the separator's own
//! [`Network`] ([`unet`], [`query`]; see docs/model.md). CPU by default; the `cuda` and `metal`
//! cargo features enable candle's GPU back ends (pass the device to the builders).

pub mod conv;
pub mod crepe;
pub mod fused;
pub mod init;
pub mod norm;
pub mod package;
pub mod query;
pub mod unet;

use std::path::Path;

use anyhow::Context;
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::dsp::bands::BandConfig;
pub use query::{QueryEncoder, resolve_query};
pub use unet::{Layout, UNet, UNetConfig};

/// Everything that fixes the separator network's shape (stored as JSON next to its weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The representation the network sees (its `n_bands` is the network's `F`).
    pub bands: BandConfig,
    pub unet: UNetConfig,
    /// Size of the query embedding (labels and reference clips).
    pub query_dim: usize,
    /// Number of labels (the length of [`crate::data::LABELS`]).
    pub n_labels: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            bands: BandConfig::default(),
            unet: UNetConfig::default(),
            query_dim: 64,
            n_labels: crate::data::LABELS.len(),
        }
    }
}

impl ModelConfig {
    /// A small model for tests (32 bands, channels 8/16/32): overfits a few examples in a
    /// minute on a laptop core.
    pub fn tiny() -> Self {
        Self {
            bands: BandConfig {
                n_bands: 32,
                ..BandConfig::default()
            },
            unet: UNetConfig::tiny(),
            query_dim: 16,
            n_labels: crate::data::LABELS.len(),
        }
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<()> {
        self.bands.validate()?;
        self.unet.validate()?;
        anyhow::ensure!(self.query_dim >= 1, "query_dim must be positive");
        anyhow::ensure!(self.n_labels >= 1, "n_labels must be positive");
        Ok(())
    }

    /// Network forward FLOPs per second of audio (processing rate, one channel), for chunks
    /// of `chunk_seconds` (attention grows with the chunk). See [`UNetConfig::flops`].
    pub fn flops_per_audio_second(&self, chunk_seconds: f64) -> f64 {
        let frames = (chunk_seconds * self.bands.frames_per_second()).round().max(1.0) as usize;
        self.unet.flops(self.bands.n_bands, frames) / chunk_seconds
    }

    /// Reads a JSON config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: Self =
            serde_json::from_str(&text).with_context(|| format!("{}: not a model config", path.display()))?;
        cfg.validate()
            .with_context(|| format!("{}: invalid model config", path.display()))?;
        Ok(cfg)
    }

    /// Writes the config as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The separator network: the U-Net (`unet.*`) and the query encoder (`query.*`). One
/// definition for training (build it from a `VarMap`-backed builder) and inference (from a
/// safetensors file).
#[derive(Debug)]
pub struct Network {
    cfg: ModelConfig,
    unet: UNet,
    query: QueryEncoder,
    device: Device,
}

impl Network {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            unet: UNet::new(&cfg.unet, cfg.bands.n_bands, cfg.query_dim, vb.pp("unet"))?,
            query: QueryEncoder::new(cfg.n_labels, cfg.query_dim, vb.pp("query"))?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The average velocity `u(z, r, t | cond, query)`: `z`, `cond` `(B, 1, F, T)` with
    /// `F = n_bands` and any `T >= 1`, `r`, `t` `(B,)`, `query` `(B, Q)` → `(B, 1, F, T)`.
    pub fn forward(&self, z: &Tensor, cond: &Tensor, r: &Tensor, t: &Tensor, query: &Tensor) -> Result<Tensor> {
        let f = z.dim(2)?;
        anyhow::ensure!(
            f == self.cfg.bands.n_bands,
            "input has {f} bands, the model expects {}",
            self.cfg.bands.n_bands
        );
        self.unet.forward(z, cond, r, t, query)
    }

    /// Query embeddings `(labels.len(), Q)` of label ids.
    pub fn label_query(&self, labels: &[usize], device: &Device) -> Result<Tensor> {
        self.query.labels(labels, device)
    }

    /// Query embeddings `(B, Q)` of reference clips' band features `(B, 1, F, Tq)`.
    pub fn example_query(&self, clip_features: &Tensor) -> Result<Tensor> {
        self.query.examples(clip_features)
    }
}

/// candle's closure error type from ours (the flow field returns `candle_core::Result`).
pub fn candle_err(e: anyhow::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("{e:#}"))
}
