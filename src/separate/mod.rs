//! Separation: the [`Separator`] interface, the classical HPSS baseline, the chunked
//! overlap-add engine that streams a whole file through a separator, and batch processing.

pub mod batch;
pub mod engine;
pub mod file;
pub mod hpss;
pub mod log;
pub mod neural;
pub mod rnnoise;
pub mod shard;

pub use engine::{ChunkEngine, Segment, separate_all, separate_all_many};
pub use hpss::Hpss;

use std::path::PathBuf;

use crate::Result;
use crate::audio::Planar;

/// Names accepted by [`by_name`], with a line each for `--help` and error messages.
pub const SEPARATORS: &[(&str, &str)] = &[
    (
        "hpss",
        "median-filter harmonic/percussive separation; queries: percussive (drums), harmonic",
    ),
    (
        "rnnoise",
        "RNNoise speech denoiser (nnnoiseless, 48 kHz); query: speech",
    ),
    (
        "identity",
        "copies the input (identity@RATE resamples to RATE and back); for testing and benchmarks",
    ),
];

/// Builds a separator from its name (see [`SEPARATORS`]).
pub fn by_name(name: &str) -> Result<Box<dyn Separator>> {
    match name {
        "hpss" => Ok(Box::new(Hpss::default())),
        "identity" => Ok(Box::new(Identity::default())),
        "rnnoise" => Ok(Box::new(rnnoise::Rnnoise)),
        _ => {
            if let Some(rate) = name.strip_prefix("identity@") {
                let rate: u32 = rate
                    .parse()
                    .ok()
                    .filter(|r| (1000..=384_000).contains(r))
                    .ok_or_else(|| anyhow::anyhow!("model '{name}': '{rate}' is not a sample rate in Hz"))?;
                return Ok(Box::new(Identity { rate: Some(rate) }));
            }
            let known: Vec<&str> = SEPARATORS.iter().map(|(n, _)| *n).collect();
            anyhow::bail!("unknown model '{name}'; available: {}", known.join(", "))
        }
    }
}

/// Builds a separator from a name: a built-in ([`SEPARATORS`]), a bundled model
/// ([`neural::bundled_models`]: compiled in or under `$SPLITFLOW_MODELS`) or the path of a model
/// folder (`config.json` + `model.safetensors`, e.g. a training run).
pub fn load(name: &str, opts: &neural::FlowOptions) -> Result<Box<dyn Separator>> {
    let builtin = SEPARATORS.iter().any(|(n, _)| *n == name) || name.starts_with("identity@");
    if builtin {
        anyhow::ensure!(
            opts.device.is_cpu(),
            "model '{name}' runs on the CPU only; drop --device or choose a neural model"
        );
        return by_name(name);
    }
    if let Some(model) = neural::bundled_models().into_iter().find(|m| m.name == name) {
        return Ok(Box::new(model.load(opts.clone())?));
    }
    let path = std::path::Path::new(name);
    if crate::model::package::RunFiles::is_model(path) {
        let short = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.into());
        return Ok(Box::new(neural::FlowSeparator::load(path, &short, opts.clone())?));
    }
    let mut known: Vec<String> = neural::bundled_models().into_iter().map(|m| m.name).collect();
    known.extend(SEPARATORS.iter().map(|(n, _)| n.to_string()));
    let looked = match neural::models_env_dir() {
        Some(dir) => format!("the models compiled in and in $SPLITFLOW_MODELS ({})", dir.display()),
        None => "the models compiled in ($SPLITFLOW_MODELS is not set)".to_string(),
    };
    let as_path = if path.is_dir() {
        format!("the folder {name} has no config.json")
    } else {
        format!("no model folder {name}")
    };
    anyhow::bail!(
        "unknown model '{name}': not among {looked}, and {as_path}; available: {}",
        known.join(", ")
    )
}

/// The model `separate` uses without `--model` (built into the binary, so always there).
pub fn default_model() -> String {
    DEFAULT_MODEL.to_string()
}

/// Name of the bundled default model (models/NAME, compiled in).
pub const DEFAULT_MODEL: &str = "splitflow-small-direct";

/// What the user asks to extract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A source label or a free-text name for one (`drums`, `voice`, `percussive`, ...).
    Label(String),
    /// An example clip of the wanted kind of sound (query by example).
    Example(PathBuf),
}

impl Query {
    /// The label text as the user typed it, trimmed and lower-cased (`None` for an example).
    pub fn label(&self) -> Option<&str> {
        match self {
            Query::Label(s) => Some(s),
            Query::Example(_) => None,
        }
    }

    /// Builds a label query, normalising case and surrounding space.
    pub fn from_label(s: &str) -> Self {
        Query::Label(s.trim().to_lowercase())
    }

    /// Short name used in output file names: the label, or `like-STEM` for an example clip.
    pub fn name(&self) -> String {
        match self {
            Query::Label(s) => s.replace(['/', '\\'], "_"),
            Query::Example(p) => format!(
                "like-{}",
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "clip".into())
            ),
        }
    }
}

/// A source separator: a chunk of audio at the separator's rate plus a query in, the
/// estimate of the queried source out (same shape as the chunk).
///
/// Implementations must be deterministic for a given input and may be called from several
/// threads at once (one file per thread).
pub trait Separator: Send + Sync {
    /// Short name shown to the user.
    fn name(&self) -> &str;

    /// Sample rate the separator works at; `None` means it works at any rate (the file's).
    fn processing_rate(&self) -> Option<u32> {
        None
    }

    /// Preferred segmentation of long inputs for the chunked engine.
    fn segment(&self) -> Segment {
        Segment::default()
    }

    /// Checks that the separator can answer `query`; the error lists what it can answer.
    fn check_query(&self, query: &Query) -> Result<()>;

    /// Estimates the queried source in `chunk` (planar, `sample_rate`). The result has the
    /// same number of channels and frames as `chunk`.
    fn separate(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Result<Vec<Vec<f32>>>;

    /// Estimates every query's source in `chunk`: one result per query, in order, each as
    /// [`Separator::separate`] gives it. A separator overrides this to share what the queries
    /// have in common (the mixture's features and spectrogram, one batched network pass).
    fn separate_many(&self, chunk: &[Vec<f32>], sample_rate: u32, queries: &[Query]) -> Result<Vec<Planar>> {
        queries.iter().map(|q| self.separate(chunk, sample_rate, q)).collect()
    }

    /// The labels `--query all` expands to (empty: the separator has no fixed list).
    fn labels(&self) -> Vec<String> {
        Vec::new()
    }

    /// For generative separators: the mask of `chunk` averaged over the samples and its
    /// per-bin spread (standard deviation), as (mean, spread, bands, frames), band-major.
    /// `None` when the separator has no such picture.
    fn mask_spread(&self, _chunk: &[Vec<f32>], _sample_rate: u32, _query: &Query) -> Option<Result<MaskSpread>> {
        None
    }
}

/// A band mask averaged over samples and its per-bin spread ([`Separator::mask_spread`]).
#[derive(Clone, Debug, Default)]
pub struct MaskSpread {
    /// `n_bands × n_frames`, band-major.
    pub mean: Vec<f32>,
    pub spread: Vec<f32>,
    pub n_bands: usize,
    pub n_frames: usize,
}

impl MaskSpread {
    /// Appends `other` in time (same number of bands).
    pub fn append(&mut self, other: &MaskSpread) {
        if self.n_frames == 0 {
            *self = other.clone();
            return;
        }
        let cat = |a: &[f32], b: &[f32]| -> Vec<f32> {
            (0..self.n_bands)
                .flat_map(|f| {
                    a[f * self.n_frames..(f + 1) * self.n_frames]
                        .iter()
                        .chain(&b[f * other.n_frames..(f + 1) * other.n_frames])
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        self.mean = cat(&self.mean, &other.mean);
        self.spread = cat(&self.spread, &other.spread);
        self.n_frames += other.n_frames;
    }
}

/// The identity separator: returns its input. Used to test the engine end to end (what goes
/// in must come out) and to benchmark the I/O pipeline without a model.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// Processing rate to request (exercises the resamplers); `None` works at the file's rate.
    pub rate: Option<u32>,
}

impl Separator for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn processing_rate(&self) -> Option<u32> {
        self.rate
    }
    fn check_query(&self, _query: &Query) -> Result<()> {
        Ok(())
    }
    fn separate(&self, chunk: &[Vec<f32>], _sr: u32, _q: &Query) -> Result<Vec<Vec<f32>>> {
        Ok(chunk.to_vec())
    }
}

/// Everything but the query: wraps a separator and returns `chunk - estimate` (`--exclude`).
pub struct Negated(pub Box<dyn Separator>);

impl Separator for Negated {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn processing_rate(&self) -> Option<u32> {
        self.0.processing_rate()
    }
    fn segment(&self) -> Segment {
        self.0.segment()
    }
    fn check_query(&self, query: &Query) -> Result<()> {
        self.0.check_query(query)
    }
    fn mask_spread(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Option<Result<MaskSpread>> {
        self.0.mask_spread(chunk, sample_rate, query).map(|r| {
            r.map(|mut m| {
                m.mean.iter_mut().for_each(|v| *v = 1.0 - *v);
                m
            })
        })
    }
    fn labels(&self) -> Vec<String> {
        self.0.labels()
    }
    fn separate(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Result<Vec<Vec<f32>>> {
        Ok(minus(chunk, &self.0.separate(chunk, sample_rate, query)?))
    }
    fn separate_many(&self, chunk: &[Vec<f32>], sample_rate: u32, queries: &[Query]) -> Result<Vec<Planar>> {
        Ok(self
            .0
            .separate_many(chunk, sample_rate, queries)?
            .iter()
            .map(|est| minus(chunk, est))
            .collect())
    }
}

/// Estimates computed channel by channel (`[channel][query]`) regrouped per query
/// (`[query][channel]`), as [`Separator::separate_many`] returns them.
pub(crate) fn per_query(per_channel: Vec<Vec<Vec<f32>>>, queries: usize) -> Vec<Planar> {
    let mut out: Vec<Planar> = vec![Vec::with_capacity(per_channel.len()); queries];
    for channel in per_channel {
        for (o, est) in out.iter_mut().zip(channel) {
            o.push(est);
        }
    }
    out
}

/// `chunk - estimate`, channel by channel.
fn minus(chunk: &[Vec<f32>], est: &[Vec<f32>]) -> Planar {
    chunk
        .iter()
        .zip(est)
        .map(|(x, e)| x.iter().zip(e).map(|(x, e)| x - e).collect())
        .collect()
}
