//! The training configuration: one JSON file (configs/*.json) holds everything a run needs,
//! so a checkpoint's `config.json` reproduces it.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::data::manifest::HELDOUT;
use crate::data::sampler::SamplerConfig;
use crate::flow::objectives::ObjectiveConfig;
use crate::flow::sampling::Sampler;
use crate::model::ModelConfig;

/// A training run's configuration. Every field has a default, so a config file names only
/// what it changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The network (representation, U-Net, query embeddings).
    pub model: ModelConfig,
    /// Training objective (CFM, SplitMeanFlow, discriminative; W-CFM weighting).
    pub objective: ObjectiveConfig,
    /// Mixture sampler for the training batches (the valid set uses the same settings).
    pub data: SamplerConfig,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Total optimiser steps (the cosine schedule reaches `lr_floor` there).
    pub steps: usize,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub lr_floor: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f64,
    /// EMA decay of the weights used for validation and the exported model.
    pub ema_decay: f64,
    /// Fraction of each batch queried by an example clip instead of the label.
    pub example_query_fraction: f64,
    /// Weight of the loss pulling example-clip embeddings onto their label's embedding.
    pub query_align_weight: f64,
    /// Save a checkpoint every N steps.
    pub checkpoint_every: usize,
    /// Also keep the EMA weights every N steps (0: never) as `snapshots/step-NNNNNN/`, each
    /// a model folder of its own (`config.json` + `model.safetensors`), so a long run's
    /// checkpoints can be scored afterwards and the best one picked on held-out audio.
    pub snapshot_every: usize,
    /// Validate every N steps.
    pub valid_every: usize,
    /// Fixed validation mixtures (drawn once from `valid_split`).
    pub valid_examples: usize,
    /// Split the validation mixtures come from: `valid` (held-out groups of the training
    /// packages) or `heldout` (packages train never hears). Only logged: no checkpoint is
    /// chosen by it.
    pub valid_split: String,
    /// Sampler used for validation separations (e.g. "meanflow:1", "euler:4", "direct").
    pub valid_sampler: String,
    /// Batch-building worker threads.
    pub workers: usize,
    /// Data-parallel shards of each batch: each shard's forward and backward pass runs on its
    /// own thread and the gradients are summed (1: the whole batch in one pass, the ops
    /// parallel inside). On two cores, 2 shards ran faster (docs/training.md "Throughput").
    pub shards: usize,
    /// Seed of the data stream, the noise and the initial weights.
    pub seed: u64,
    /// Start from the weights of this model folder (`config.json` + `model.safetensors`, e.g.
    /// a shipped model or a finished run) instead of seeded random ones: a fine-tune. Its
    /// network config must equal `model`. Read when a run starts, not on `--resume`.
    pub init: Option<std::path::PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelConfig::default(),
            objective: ObjectiveConfig::default(),
            data: SamplerConfig::default(),
            batch_size: 8,
            steps: 20_000,
            warmup: 200,
            lr: 1e-3,
            lr_floor: 1e-5,
            weight_decay: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            grad_clip: 1.0,
            ema_decay: 0.999,
            example_query_fraction: 0.25,
            query_align_weight: 0.1,
            checkpoint_every: 200,
            snapshot_every: 0,
            valid_every: 200,
            valid_examples: 48,
            valid_split: "valid".into(),
            valid_sampler: "meanflow:1".into(),
            workers: 1,
            shards: 1,
            seed: 0,
            init: None,
        }
    }
}

impl TrainConfig {
    /// Reads a JSON config; unknown keys are an error naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let cfg: TrainConfig =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid training config", path.display()))?;
        cfg.check()
            .with_context(|| format!("{}: invalid training config", path.display()))?;
        Ok(cfg)
    }

    /// Examples of each batch queried by an example clip (the first ones of the batch).
    pub fn example_queries_per_batch(&self) -> usize {
        (self.batch_size as f64 * self.example_query_fraction).round() as usize
    }

    /// Range checks that serde cannot express.
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        anyhow::ensure!(self.steps >= 1, "steps must be at least 1");
        anyhow::ensure!(
            self.lr > 0.0 && self.lr_floor >= 0.0,
            "lr must be > 0 and lr_floor >= 0"
        );
        anyhow::ensure!((0.0..1.0).contains(&self.ema_decay), "ema_decay must be in [0, 1)");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.example_query_fraction),
            "example_query_fraction must be in [0, 1]"
        );
        anyhow::ensure!(
            self.checkpoint_every >= 1 && self.valid_every >= 1,
            "checkpoint_every and valid_every must be >= 1"
        );
        anyhow::ensure!(self.workers >= 1, "workers must be at least 1");
        anyhow::ensure!(
            (1..=self.batch_size).contains(&self.shards),
            "shards must be between 1 and batch_size ({}), got {}",
            self.batch_size,
            self.shards
        );
        anyhow::ensure!(
            ["valid", "test", HELDOUT].contains(&self.valid_split.as_str()),
            "valid_split must be valid, test or heldout, got '{}'",
            self.valid_split
        );
        anyhow::ensure!(
            self.data.absent_p == 0.0 || self.objective.waveform_sisdr == 0.0,
            "data.absent_p needs objective.waveform_sisdr 0: the SI-SDR of a silent (absent) target is undefined"
        );
        anyhow::ensure!(
            !self.data.pair_queries || self.batch_size.is_multiple_of(2),
            "data.pair_queries needs an even batch_size (each pair shares a batch), not {}",
            self.batch_size
        );
        self.valid_sampler()?;
        Ok(())
    }

    /// The validation sampler, with the model's noise scale for a bridge; an error when it
    /// does not suit the objective.
    pub fn valid_sampler(&self) -> Result<Sampler> {
        self.valid_sampler
            .parse::<Sampler>()
            .and_then(|s| s.for_objective(&self.objective.objective))
            .map_err(|e| anyhow::anyhow!("valid_sampler: {e}"))
    }
}
