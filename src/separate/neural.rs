//! The neural separator: a trained flow-matching U-Net ([`crate::model::Network`]) behind the
//! [`Separator`] interface.
//!
//! Per chunk (at the file's own rate and channels): the channels' mean is resampled to the
//! model's processing rate and turned into band features; the sampler integrates the flow from
//! noise to a band mask (K samples averaged with `--samples K`); the mask is interpolated onto
//! each channel's full-band STFT at the native rate and applied there, so every channel keeps
//! its own phase and image, frequencies above the processing band are masked by the top band,
//! and target + residual is the input exactly (the residual is computed by subtraction).
//!
//! A model on disk is a folder with `config.json` (a training config, of which the `model` and
//! `objective` sections are used) and `model.safetensors` (the EMA weights); a training run's
//! folder is one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{MaskSpread, Query, Segment, Separator};
use crate::Result;
use crate::audio::Planar;
use crate::audio::resample::resample;
use crate::dsp::bands::Bands;
use crate::flow::objectives::Objective;
use crate::flow::sampling::{Sampler, combine};
use crate::model::package::{BUILTIN, Builtin, PackageConfig, RunFiles};
use crate::model::query::resolve_query;
use crate::model::{ModelConfig, Network, candle_err};

/// How to run a flow model.
#[derive(Clone, Debug)]
pub struct FlowOptions {
    /// Sampler kind (`meanflow`, `euler`, `heun`, `bridge`, `direct`); `None` picks the one the
    /// model was trained for (mean flow for SplitMeanFlow, Euler for CFM, the bridge for a
    /// bridge model, direct for the discriminative variant).
    pub sampler: Option<String>,
    /// Sampling steps; `None`: 1 for mean flow and the bridge, 4 for Euler/Heun.
    pub steps: Option<usize>,
    /// Samples drawn and averaged per chunk.
    pub samples: usize,
    /// Noise seed: same seed, same output.
    pub seed: u64,
    /// Scale of the starting noise in `[0, 1]` (see [`Sampler::draw_with_temperature`]).
    pub temperature: f64,
    pub device: Device,
}

/// Noise temperature used unless `--temperature` says otherwise (docs/model.md, "Quality":
/// measured on the valid and test mixtures).
pub const DEFAULT_TEMPERATURE: f64 = 1.0;

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            sampler: None,
            steps: None,
            samples: 1,
            seed: 0,
            temperature: DEFAULT_TEMPERATURE,
            device: Device::Cpu,
        }
    }
}

/// Queries that go through the network together (one batch) in [`FlowSeparator::band_masks`].
pub const QUERY_BATCH: usize = 4;

/// A loaded flow-matching separator.
pub struct FlowSeparator {
    name: String,
    net: Network,
    bands: Bands,
    sampler: Sampler,
    opts: FlowOptions,
    /// Embeddings of example clips already seen (query by example), by path.
    examples: Mutex<HashMap<PathBuf, Tensor>>,
}

/// The sampler for a model trained with `objective`, with the kind and steps `opts` asks for
/// (defaults: mean flow 1 step for SplitMeanFlow, Euler 4 steps for CFM, the bridge 1 step
/// for a bridge model, direct for the discriminative variant, which only runs direct). A
/// bridge model also runs `direct` (its first stage alone).
pub fn choose_sampler(objective: &Objective, opts: &FlowOptions) -> Result<Sampler> {
    let kind = match (objective, opts.sampler.as_deref()) {
        (_, Some(k)) => k,
        (Objective::Discriminative, None) => "direct",
        (Objective::Bridge { .. }, None) => "bridge",
        (Objective::SplitMeanFlow { .. }, None) => "meanflow",
        (Objective::Cfm, None) => "euler",
    };
    let steps = opts
        .steps
        .unwrap_or(if matches!(kind, "meanflow" | "bridge") { 1 } else { 4 });
    let spec = if kind == "direct" {
        kind.to_string()
    } else {
        format!("{kind}:{steps}")
    };
    let sampler: Sampler = spec.parse().map_err(|e| anyhow::anyhow!("sampler '{spec}': {e}"))?;
    sampler.for_objective(objective)
}

impl FlowSeparator {
    /// Loads a model folder (`config.json` + `model.safetensors`).
    pub fn load(dir: &Path, name: &str, opts: FlowOptions) -> Result<FlowSeparator> {
        let files = RunFiles::new(dir);
        let cfg = PackageConfig::load(&files.config())?;
        let weights = files.model();
        anyhow::ensure!(weights.is_file(), "{}: no such model file", weights.display());
        // SAFETY: the file is memory-mapped read-only; a concurrent writer would be a user error
        // that candle reports as a load failure at worst.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &opts.device) }
            .with_context(|| format!("{}: cannot read the weights", weights.display()))?;
        Self::from_parts(&cfg.model, &cfg.objective.objective, vb, name, opts)
            .with_context(|| format!("{}: weights do not match config.json", weights.display()))
    }

    /// Loads a model compiled into the binary.
    pub fn load_builtin(model: &'static Builtin, opts: FlowOptions) -> Result<FlowSeparator> {
        let origin = format!("built-in model {}", model.name);
        let cfg = PackageConfig::parse(model.config, &origin)?;
        let vb = VarBuilder::from_slice_safetensors(model.weights, DType::F32, &opts.device)
            .with_context(|| format!("{origin}: cannot read the weights"))?;
        Self::from_parts(&cfg.model, &cfg.objective.objective, vb, model.name, opts)
            .with_context(|| format!("{origin}: weights do not match its config"))
    }

    /// Builds the separator from a config and a VarBuilder holding the weights.
    pub fn from_parts(
        model: &ModelConfig,
        objective: &Objective,
        vb: VarBuilder,
        name: &str,
        opts: FlowOptions,
    ) -> Result<FlowSeparator> {
        let net = Network::new(model, vb)?;
        let bands = Bands::new(model.bands.clone())?;
        let sampler = choose_sampler(objective, &opts)?;
        Ok(FlowSeparator {
            name: name.to_string(),
            net,
            bands,
            sampler,
            opts,
            examples: Mutex::new(HashMap::new()),
        })
    }

    /// The sampler in use.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    fn rate(&self) -> u32 {
        self.bands.config().rate
    }

    /// Mono at the processing rate.
    fn to_processing(&self, chunk: &[Vec<f32>], rate: u32) -> Result<Vec<f32>> {
        let n = chunk.first().map_or(0, Vec::len);
        let mut mid = vec![0.0f32; n];
        for ch in chunk {
            for (m, v) in mid.iter_mut().zip(ch) {
                *m += v;
            }
        }
        let k = 1.0 / chunk.len().max(1) as f32;
        mid.iter_mut().for_each(|m| *m *= k);
        if rate == self.rate() {
            return Ok(mid);
        }
        Ok(resample(&[mid], rate, self.rate())?.pop().unwrap_or_default())
    }

    /// Query embedding (1, Q).
    fn query_embedding(&self, query: &Query) -> Result<Tensor> {
        match query {
            Query::Label(text) => {
                let id = resolve_query(text)?;
                self.net.label_query(&[id], &self.opts.device)
            }
            Query::Example(path) => {
                let mut cache = self
                    .examples
                    .lock()
                    .map_err(|_| anyhow::anyhow!("example cache poisoned"))?;
                if let Some(q) = cache.get(path) {
                    return Ok(q.clone());
                }
                let mut reader = crate::audio::AudioReader::open(path)?;
                let rate = reader.info().sample_rate;
                let audio = reader.read_to_end()?;
                anyhow::ensure!(
                    audio.first().is_some_and(|c| !c.is_empty()),
                    "{}: the query clip contains no audio",
                    path.display()
                );
                let mono = self.to_processing(&audio, rate)?;
                let f = self.bands.features(&mono);
                let feats = Tensor::from_vec(f.values, (1, 1, f.n_bands, f.n_frames), &self.opts.device)?;
                let q = self.net.example_query(&feats)?;
                cache.insert(path.clone(), q.clone());
                Ok(q)
            }
        }
    }

    /// Band mask (F x T, row-major) and its per-bin spread over the samples, for a mono signal
    /// at the processing rate.
    pub fn band_mask(&self, mono: &[f32], query: &Query) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let m = self
            .band_masks(mono, std::slice::from_ref(query))?
            .pop()
            .unwrap_or_default();
        Ok((m.mean, m.spread, m.n_frames))
    }

    /// [`FlowSeparator::band_mask`] for several queries in one batched pass of the network
    /// (the mixture's features computed once): one mask and spread per query.
    pub fn band_masks(&self, mono: &[f32], queries: &[Query]) -> Result<Vec<MaskSpread>> {
        let draws = Draws {
            seed: self.opts.seed,
            samples: if self.sampler.is_generative() {
                self.opts.samples.max(1)
            } else {
                1
            },
            temperature: self.opts.temperature,
        };
        let n_bands = self.bands.config().n_bands;
        let mut out = Vec::with_capacity(queries.len());
        // At most QUERY_BATCH rows per pass: activations grow with the batch, the speed-up
        // does not (docs/architecture.md).
        for group in queries.chunks(QUERY_BATCH) {
            let embeddings = group
                .iter()
                .map(|q| self.query_embedding(q))
                .collect::<Result<Vec<_>>>()?;
            let q = Tensor::cat(&embeddings, 0)?;
            let (masks, frames) = sample_band_masks(&self.net, &self.bands, &self.sampler, mono, &q, &draws)?;
            let (mean, spread) = combine(&masks)?;
            let rows = |t: &Tensor| -> Result<Vec<Vec<f32>>> {
                Ok(t.flatten_from(1)?.to_device(&Device::Cpu)?.to_vec2::<f32>()?)
            };
            out.extend(
                rows(&mean)?
                    .into_iter()
                    .zip(rows(&spread)?)
                    .map(|(mean, spread)| MaskSpread {
                        mean,
                        spread,
                        n_bands,
                        n_frames: frames,
                    }),
            );
        }
        Ok(out)
    }
}

/// Which noise draws [`sample_band_masks`] integrates.
#[derive(Clone, Copy, Debug)]
pub struct Draws {
    /// Seed of the first draw (draw `i` uses stream `i` of this seed).
    pub seed: u64,
    /// Number of draws.
    pub samples: usize,
    /// Scale of the starting noise in `[0, 1]`.
    pub temperature: f64,
}

/// Band masks in `[0, 1]` (one `K x 1 x F x T` tensor per draw) that `sampler` makes from
/// `net` for a mono signal at the bands' rate, and the frame count `T`. `queries` holds `K`
/// query embeddings (labels or example clips, `K x Q`) on the device the network runs on; the
/// `K` rows go through the network as one batch, each from the noise it would get alone. One
/// definition serves separation ([`FlowSeparator::band_masks`]) and the trainer's validation.
pub fn sample_band_masks(
    net: &Network,
    bands: &Bands,
    sampler: &Sampler,
    mono: &[f32],
    queries: &Tensor,
    draws: &Draws,
) -> Result<(Vec<Tensor>, usize)> {
    let f = bands.features(mono);
    let frames = f.n_frames;
    let dev = queries.device();
    let rows = queries.dim(0)?;
    let one = Tensor::from_vec(f.values, (1, 1, f.n_bands, frames), dev)?;
    let cond = if rows == 1 {
        one.clone()
    } else {
        one.repeat((rows, 1, 1, 1))?
    };
    let field = |z: &Tensor, r: &Tensor, t: &Tensor| net.forward(z, &cond, r, t, queries).map_err(candle_err);
    let masks = sampler
        .draw_rows(
            &field,
            one.dims(),
            rows,
            draws.seed,
            draws.samples,
            draws.temperature,
            dev,
        )?
        .into_iter()
        // Mask in [0, mask_max] from the flow's [-1, 1] representation.
        .map(|y| crate::flow::mask_of(&y, bands.config().mask_max, false))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((masks, frames))
}

impl Separator for FlowSeparator {
    fn name(&self) -> &str {
        &self.name
    }

    fn segment(&self) -> Segment {
        Segment {
            length_secs: 10.0,
            overlap_secs: 1.0,
        }
    }

    fn check_query(&self, query: &Query) -> Result<()> {
        self.query_embedding(query).map(|_| ())
    }

    fn labels(&self) -> Vec<String> {
        crate::data::LABELS.iter().map(|l| l.to_string()).collect()
    }

    fn separate(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Result<Vec<Vec<f32>>> {
        let mut all = self.separate_many(chunk, sample_rate, std::slice::from_ref(query))?;
        Ok(all.pop().unwrap_or_default())
    }

    fn separate_many(&self, chunk: &[Vec<f32>], sample_rate: u32, queries: &[Query]) -> Result<Vec<Planar>> {
        let mono = self.to_processing(chunk, sample_rate)?;
        let masks = self.band_masks(&mono, queries)?;
        let frames = masks.first().map_or(0, |m| m.n_frames);
        let masks: Vec<&[f32]> = masks.iter().map(|m| m.mean.as_slice()).collect();
        // Per channel, one STFT for every query's mask; then regrouped per query.
        let per_channel = chunk
            .iter()
            .map(|ch| self.bands.apply_masks(ch, sample_rate, &masks, frames))
            .collect::<Result<Vec<_>>>()?;
        Ok(super::per_query(per_channel, queries.len()))
    }

    fn mask_spread(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Option<Result<MaskSpread>> {
        Some(self.to_processing(chunk, sample_rate).and_then(|mono| {
            let (mean, spread, n_frames) = self.band_mask(&mono, query)?;
            Ok(MaskSpread {
                mean,
                spread,
                n_bands: self.bands.config().n_bands,
                n_frames,
            })
        }))
    }
}

/// `$SPLITFLOW_MODELS` when set: a folder whose model sub-folders (`config.json` +
/// `model.safetensors`) are listed beside the built-in models and replace one of the same name.
pub fn models_env_dir() -> Option<PathBuf> {
    std::env::var_os("SPLITFLOW_MODELS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where a bundled model comes from.
#[derive(Clone)]
pub enum ModelSource {
    /// Compiled into the binary ([`crate::model::package::BUILTIN`]).
    Builtin(&'static Builtin),
    /// A model folder under [`models_env_dir`].
    Folder(PathBuf),
}

/// A model that `--model NAME` finds by name.
#[derive(Clone)]
pub struct BundledModel {
    pub name: String,
    pub source: ModelSource,
}

impl BundledModel {
    /// Where it is, as `splitflow models` prints it.
    pub fn location(&self) -> String {
        match &self.source {
            ModelSource::Builtin(_) => "built in".into(),
            ModelSource::Folder(dir) => dir.display().to_string(),
        }
    }

    /// Its `card.json`, parsed (`None` when absent or not JSON).
    pub fn card(&self) -> Option<serde_json::Value> {
        let text = match &self.source {
            ModelSource::Builtin(b) => b.card.to_string(),
            ModelSource::Folder(dir) => std::fs::read_to_string(dir.join("card.json")).ok()?,
        };
        serde_json::from_str(&text).ok()
    }

    /// Its `config.json`, checked.
    pub fn config(&self) -> Result<PackageConfig> {
        match &self.source {
            ModelSource::Builtin(b) => PackageConfig::parse(b.config, &format!("built-in model {}", b.name)),
            ModelSource::Folder(dir) => PackageConfig::load(&RunFiles::new(dir).config()),
        }
    }

    /// Loads it for separation.
    pub fn load(&self, opts: FlowOptions) -> Result<FlowSeparator> {
        match &self.source {
            ModelSource::Builtin(b) => FlowSeparator::load_builtin(b, opts),
            ModelSource::Folder(dir) => FlowSeparator::load(dir, &self.name, opts),
        }
    }
}

/// The models `--model NAME` finds by name, in name order: the built-in ones, then the model
/// folders of [`models_env_dir`] (which replace a built-in one of the same name).
pub fn bundled_models() -> Vec<BundledModel> {
    let mut out: Vec<BundledModel> = BUILTIN
        .iter()
        .map(|b| BundledModel {
            name: b.name.to_string(),
            source: ModelSource::Builtin(b),
        })
        .collect();
    let folders = models_env_dir()
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| RunFiles::is_model(&e.path()));
    for e in folders {
        let model = BundledModel {
            name: e.file_name().to_string_lossy().into_owned(),
            source: ModelSource::Folder(e.path()),
        };
        out.retain(|m| m.name != model.name);
        out.push(model);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
