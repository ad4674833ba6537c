//! The model package: a folder that `splitflow separate --model DIR` loads and `splitflow
//! train` writes (a run folder is a package): `config.json`, the training config that made
//! it, of which inference reads the network (`model`) and the objective (`objective`);
//! `model.safetensors`, the weights; for bundled models `card.json`. The trainer adds its
//! own files (state, logs, curves) under the same [`RunFiles`] paths.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::Result;
use crate::flow::objectives::ObjectiveConfig;
use crate::model::ModelConfig;

/// Paths inside a run folder. A run folder is also a model folder: `config.json` +
/// `model.safetensors` are what `splitflow separate --model DIR` reads.
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn new(dir: &Path) -> RunFiles {
        RunFiles { dir: dir.to_path_buf() }
    }
    /// Whether `dir` holds a model (its config; the weights are checked on loading).
    pub fn is_model(dir: &Path) -> bool {
        RunFiles::new(dir).config().is_file()
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.safetensors")
    }
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// The model folder of the EMA weights kept at `step` (`snapshot_every`).
    pub fn snapshot(&self, step: usize) -> PathBuf {
        self.dir.join("snapshots").join(format!("step-{step:06}"))
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log.csv")
    }
    pub fn valid_log(&self) -> PathBuf {
        self.dir.join("valid.csv")
    }
    pub fn curves(&self) -> PathBuf {
        self.dir.join("curves.png")
    }
    pub fn valid_curve(&self) -> PathBuf {
        self.dir.join("valid.png")
    }
}

/// What inference needs from a package's `config.json`: the network and the objective (the
/// training keys are the trainer's, checked by `TrainConfig::load`; absent keys take the
/// same defaults as there).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PackageConfig {
    pub model: ModelConfig,
    pub objective: ObjectiveConfig,
}

impl PackageConfig {
    /// Reads and checks `config.json` of a package.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks the text of a `config.json`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: PackageConfig =
            serde_json::from_str(text).with_context(|| format!("{origin}: not a valid model config"))?;
        cfg.model
            .validate()
            .and_then(|_| cfg.objective.validate())
            .with_context(|| format!("{origin}: invalid model config"))?;
        Ok(cfg)
    }
}

/// A model package compiled into the binary: the bundled models of the checkout's `models/`
/// travel inside `splitflow` itself, so an installed binary needs no data folder and never
/// reads the source tree it was built from.
pub struct Builtin {
    pub name: &'static str,
    /// Text of its `config.json`.
    pub config: &'static str,
    /// Text of its `card.json`.
    pub card: &'static str,
    /// Its `model.safetensors`.
    pub weights: &'static [u8],
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            config: include_str!(concat!("../../models/", $name, "/config.json")),
            card: include_str!(concat!("../../models/", $name, "/card.json")),
            weights: include_bytes!(concat!("../../models/", $name, "/model.safetensors")),
        }
    };
}

/// The bundled models (models/NAME in the checkout), in name order.
pub const BUILTIN: &[Builtin] = &[builtin!("splitflow-small"), builtin!("splitflow-small-direct")];
