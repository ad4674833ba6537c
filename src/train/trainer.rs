//! `splitflow train`: the training loop.
//!
//! Batches come from the mixture sampler ([`crate::data::sampler`]) on worker threads (worker
//! `w` builds batches `w, w + W, w + 2W, ...` and the loop takes them in order, so the stream is
//! the same for any number of workers). Each step: the flow objective on the batch, AdamW with
//! warm-up + cosine decay, global-norm clipping, EMA. Every `valid_every` steps the EMA weights
//! separate a fixed set of valid mixtures and SI-SDRi per label goes to the log; every
//! `checkpoint_every` steps (and at the end, or when `--max-minutes` runs out) the run folder
//! gets `state.safetensors` (weights, optimiser moments, EMA, step) for `--resume` and
//! `model.safetensors` (EMA weights) + `config.json` for `splitflow separate --model`.

use std::collections::{BTreeMap, HashMap};

/// Key of the step counter in state.safetensors.
const STEP_KEY: &str = "train.step";
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rayon::prelude::*;

use super::config::TrainConfig;
use super::optim::{AdamW, AdamWConfig, Ema, clip_grad_norm, lr_at, named_vars};
use crate::Result;
use crate::data::LABELS;
use crate::data::sampler::{Mix, MixtureSampler, SamplerConfig};
use crate::dsp::bands::Bands;
use crate::flow::objectives;
use crate::flow::sampling::Sampler;
use crate::metrics::si_sdr_channel;
use crate::model::package::{PackageConfig, RunFiles};
use crate::model::{Network, candle_err};
use crate::separate::neural::{Draws, sample_band_masks};
use crate::train::waveform::{self, Synth};

/// What `splitflow train` was asked to do.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub config: TrainConfig,
    pub out: PathBuf,
    pub resume: bool,
    /// Wall-clock budget; the run checkpoints and stops when it is spent.
    pub max_minutes: Option<f64>,
    /// Checkpoint and stop after this step, keeping the learning-rate schedule of
    /// `config.steps` (a later `--resume` continues exactly as if the run had not stopped).
    pub stop_at: Option<usize>,
    pub device: Device,
    /// Print a line per this many steps (0: only validation lines).
    pub log_every: usize,
    pub quiet: bool,
}

/// One training batch, built on a worker thread (CPU tensors).
pub struct Batch {
    /// Mixture features, (B, 1, F, T).
    pub cond: Tensor,
    /// Flow data: the target's band mask mapped to [-1, 1], (B, 1, F, T).
    pub x: Tensor,
    /// Target label per example.
    pub labels: Vec<usize>,
    /// Query-clip features of the first `n_example` examples, (n_example, 1, F, Tq).
    pub query_clips: Option<Tensor>,
    /// The target's compressed band magnitudes on the mixture's scale, (B, 1, F, T), for the
    /// signal loss ([`Bands::target_features`]).
    pub target: Option<Tensor>,
    /// For the waveform term: the mixture's STFT (real and imaginary parts, each (B, T,
    /// n_bins)) and the target waveform (B, L).
    pub wave: Option<(Tensor, Tensor, Tensor)>,
}

/// What [`make_batch`] builds: `batch_size` examples, the first `n_example` with example
/// queries, the targets' features when `targets` (signal loss), the mixture STFTs and target
/// waveforms when `waves` (waveform term).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    pub batch_size: usize,
    pub n_example: usize,
    pub targets: bool,
    pub waves: bool,
}

impl BatchShape {
    /// The batches `cfg` trains on.
    pub fn of(cfg: &TrainConfig) -> BatchShape {
        BatchShape {
            batch_size: cfg.batch_size,
            n_example: cfg.example_queries_per_batch(),
            targets: cfg.objective.signal_loss,
            waves: cfg.objective.waveform_sisdr > 0.0,
        }
    }
}

/// Builds the batch with index `batch` of the stream `seed` (examples `batch * B ..`) of the
/// given shape.
pub fn make_batch(sampler: &MixtureSampler, bands: &Bands, shape: BatchShape, seed: u64, batch: u64) -> Result<Batch> {
    let BatchShape {
        batch_size,
        n_example,
        targets,
        waves,
    } = shape;
    let (mut res, mut ims, mut waveforms) = (Vec::new(), Vec::new(), Vec::new());
    let mut tgts = Vec::new();
    let mut conds = Vec::with_capacity(batch_size);
    let mut xs = Vec::with_capacity(batch_size);
    let mut clips = Vec::new();
    let mut labels = Vec::with_capacity(batch_size);
    for i in 0..batch_size {
        let mix = sampler.sample(seed, batch * batch_size as u64 + i as u64)?;
        let (cond, x) = example_tensors(bands, &mix)?;
        if targets {
            let t = bands.target_features(&mix.mixture, &mix.target)?;
            tgts.push(Tensor::from_vec(t, cond.dims(), &Device::Cpu)?);
        }
        if waves {
            let spec = bands.stft().forward(&mix.mixture);
            let dims = (spec.n_frames, spec.n_bins);
            res.push(Tensor::from_vec(
                spec.data.iter().map(|c| c.re).collect(),
                dims,
                &Device::Cpu,
            )?);
            ims.push(Tensor::from_vec(
                spec.data.iter().map(|c| c.im).collect(),
                dims,
                &Device::Cpu,
            )?);
            waveforms.push(Tensor::new(mix.target.as_slice(), &Device::Cpu)?);
        }
        conds.push(cond);
        xs.push(x);
        if i < n_example {
            clips.push(features_tensor(bands, &mix.query)?);
        }
        labels.push(mix.label);
    }
    let query_clips = if clips.is_empty() {
        None
    } else {
        Some(Tensor::stack(&clips, 0)?)
    };
    Ok(Batch {
        cond: Tensor::stack(&conds, 0)?,
        x: Tensor::stack(&xs, 0)?,
        labels,
        query_clips,
        target: if targets { Some(Tensor::stack(&tgts, 0)?) } else { None },
        wave: if waves {
            Some((
                Tensor::stack(&res, 0)?,
                Tensor::stack(&ims, 0)?,
                Tensor::stack(&waveforms, 0)?,
            ))
        } else {
            None
        },
    })
}

/// Per-bin loss weights from the conditioning features (`|X_band|^power`): `features^exponent`
/// normalised to mean 1 per example ([`ObjectiveConfig::magnitude_weight`] with `exponent =
/// magnitude_weight / power`).
///
/// [`ObjectiveConfig::magnitude_weight`]: crate::flow::objectives::ObjectiveConfig::magnitude_weight
pub fn magnitude_weight(cond: &Tensor, exponent: f64) -> Result<Tensor> {
    let w = cond.clamp(0f32, f32::MAX)?.powf(exponent)?;
    let mean = w.flatten_from(1)?.mean_keepdim(1)?.clamp(1e-8f32, f32::MAX)?;
    let shape: Vec<usize> = std::iter::once(w.dim(0)?)
        .chain(std::iter::repeat_n(1, w.rank() - 1))
        .collect();
    Ok(w.broadcast_div(&mean.reshape(shape)?)?)
}

/// Band features of a mono clip as a (1, F, T) tensor.
pub fn features_tensor(bands: &Bands, mono: &[f32]) -> Result<Tensor> {
    let f = bands.features(mono);
    Ok(Tensor::from_vec(f.values, (1, f.n_bands, f.n_frames), &Device::Cpu)?)
}

/// (conditioning features, flow data) of one mixture, each (1, F, T).
pub fn example_tensors(bands: &Bands, mix: &Mix) -> Result<(Tensor, Tensor)> {
    let cond = features_tensor(bands, &mix.mixture)?;
    let mask = bands.ideal_mask(&mix.mixture, &mix.target)?;
    let y: Vec<f32> = mask.iter().map(|m| 2.0 * m - 1.0).collect();
    let shape = cond.dims().to_vec();
    Ok((cond, Tensor::from_vec(y, shape, &Device::Cpu)?))
}

/// Batches from `workers` threads, in stream order.
struct Loader {
    receivers: Vec<Receiver<Result<Batch>>>,
    next: usize,
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Loader {
    fn start(sampler: Arc<MixtureSampler>, bands: Arc<Bands>, cfg: &TrainConfig, first: u64) -> Loader {
        let workers = cfg.workers.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (tx, rx) = sync_channel(2);
            let (sampler, bands, stop) = (sampler.clone(), bands.clone(), stop.clone());
            let (shape, seed) = (BatchShape::of(cfg), cfg.seed);
            handles.push(std::thread::spawn(move || {
                let mut b = first + w as u64;
                while !stop.load(Ordering::Relaxed) {
                    let batch = make_batch(&sampler, &bands, shape, seed, b);
                    if tx.send(batch).is_err() {
                        break;
                    }
                    b += workers as u64;
                }
            }));
            receivers.push(rx);
        }
        Loader {
            receivers,
            next: 0,
            stop,
            handles,
        }
    }

    fn next(&mut self) -> Result<Batch> {
        let rx = &self.receivers[self.next % self.receivers.len()];
        self.next += 1;
        rx.recv().map_err(|_| anyhow::anyhow!("a data worker stopped"))?
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The fixed validation set: mixtures drawn once from the validation split.
pub struct ValidSet {
    pub mixes: Vec<Mix>,
}

impl ValidSet {
    pub fn draw(sampler: &MixtureSampler, n: usize, seed: u64) -> Result<ValidSet> {
        let mixes = (0..n as u64)
            .map(|i| sampler.sample(seed, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(ValidSet { mixes })
    }
}

/// Separates one mono mixture at the processing rate with `net` (one band mask from `sampler`
/// by the separator's own [`sample_band_masks`], applied to the mixture's STFT), for
/// validation.
pub fn separate_mono(
    net: &Network,
    bands: &Bands,
    sampler: &Sampler,
    mixture: &[f32],
    label: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>> {
    let query = net.label_query(&[label], device)?;
    let draws = Draws {
        seed,
        samples: 1,
        temperature: 1.0,
    };
    let (masks, frames) = sample_band_masks(net, bands, sampler, mixture, &query, &draws)?;
    let mask = masks[0].flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
    bands.apply_mask(mixture, bands.config().rate, &mask, frames)
}

/// Mean SI-SDR improvement per label over the valid set (label name → (dB, count)).
pub fn validate(
    net: &Network,
    bands: &Bands,
    sampler: &Sampler,
    valid: &ValidSet,
    device: &Device,
) -> Result<BTreeMap<String, (f64, usize)>> {
    let mut per_label: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (i, mix) in valid.mixes.iter().enumerate() {
        let est = separate_mono(net, bands, sampler, &mix.mixture, mix.label, i as u64, device)?;
        let gain = si_sdr_channel(&mix.target, &est, false) - si_sdr_channel(&mix.target, &mix.mixture, false);
        let e = per_label.entry(LABELS[mix.label].to_string()).or_insert((0.0, 0));
        if gain.is_finite() {
            e.0 += gain;
            e.1 += 1;
        }
    }
    for v in per_label.values_mut() {
        if v.1 > 0 {
            v.0 /= v.1 as f64;
        }
    }
    Ok(per_label)
}

/// Mean over labels of the per-label means.
pub fn label_average(per_label: &BTreeMap<String, (f64, usize)>) -> f64 {
    let vals: Vec<f64> = per_label.values().filter(|v| v.1 > 0).map(|v| v.0).collect();
    if vals.is_empty() {
        f64::NAN
    } else {
        vals.iter().sum::<f64>() / vals.len() as f64
    }
}

/// Writes `tensors` as safetensors atomically (temp file + rename).
fn save_atomic(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot rename into place", path.display()))?;
    Ok(())
}

/// Keeps the header and the rows of `path` whose first field (the step) is at most `step`.
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for (i, line) in text.lines().enumerate() {
        let s = line.split(',').next().and_then(|v| v.parse::<usize>().ok());
        if i == 0 || s.is_some_and(|s| s <= step) {
            kept += line;
            kept.push('\n');
        }
    }
    crate::atomic::write(path, kept.as_bytes())
}

fn append_line(path: &Path, header: &str, line: &str) -> Result<()> {
    use std::io::Write;
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    if new {
        writeln!(f, "{header}")?;
    }
    writeln!(f, "{line}").with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// What a finished (or stopped) run reports.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub steps_done: usize,
    pub seconds: f64,
    pub last_loss: f64,
    pub last_valid: Option<BTreeMap<String, (f64, usize)>>,
    pub stopped_by_budget: bool,
}

/// Runs (or resumes) a training run.
pub fn train(opts: &TrainOptions) -> Result<TrainReport> {
    let cfg = &opts.config;
    cfg.check()?;
    let files = RunFiles { dir: opts.out.clone() };
    if !opts.resume && files.state().exists() {
        anyhow::bail!(
            "{}: a run is already there; pass --resume to continue it or choose another --out",
            files.dir.display()
        );
    }

    let train_set = Arc::new(
        MixtureSampler::open(&opts.data, "train", cfg.data.clone())
            .with_context(|| format!("{}: cannot open the train split", opts.data.display()))?,
    );
    let unmatched = train_set.unmatched_shares();
    if !unmatched.is_empty() {
        let known: Vec<&str> = train_set.packages().into_iter().collect();
        anyhow::bail!(
            "{}: data.package_share names {} that no train clip comes from (the manifest's package column: {})",
            opts.data.display(),
            unmatched
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        );
    }
    // Validation scores present targets only (absent-label examples, `absent_p`, have no
    // SI-SDR) and every mixture once (no `pair_queries`), so its figures stay comparable.
    let valid_data = SamplerConfig {
        absent_p: 0.0,
        pair_queries: false,
        ..cfg.data.clone()
    };
    let valid_sampler = MixtureSampler::open(&opts.data, &cfg.valid_split, valid_data)
        .with_context(|| format!("{}: cannot open the {} split", opts.data.display(), cfg.valid_split))?;
    let valid = ValidSet::draw(&valid_sampler, cfg.valid_examples, cfg.seed ^ 0x05ee_d0f7_a11d)?;
    // The run folder is made once the data is known to be usable: a start that fails on the
    // corpus or the config leaves nothing behind.
    std::fs::create_dir_all(&files.dir).with_context(|| format!("{}: cannot create", files.dir.display()))?;
    let cfg_json = serde_json::to_string_pretty(cfg)?;
    crate::atomic::write(&files.config(), cfg_json.as_bytes())?;
    let bands = Arc::new(Bands::new(cfg.model.bands.clone())?);
    let valid_flow: Sampler = cfg.valid_sampler()?;

    let dev = &opts.device;
    let mut tr = Trainee::new(cfg, dev)?;
    let mut step = 0usize;
    if opts.resume && files.state().exists() {
        let state = candle_core::safetensors::load(files.state(), dev)
            .with_context(|| format!("{}: cannot read the checkpoint", files.state().display()))?;
        step = load_state(&tr.varmap, &mut tr.opt, &mut tr.ema, &state)
            .with_context(|| format!("{}: checkpoint does not match the config", files.state().display()))?;
        if !opts.quiet {
            eprintln!("resuming {} at step {step}", files.dir.display());
        }
        // Steps logged after the checkpoint are trained again: drop their lines.
        for log in [files.log(), files.valid_log()] {
            truncate_log(&log, step)?;
        }
    }

    let mut loader = Loader::start(train_set, bands.clone(), cfg, step as u64);
    let start = Instant::now();
    let budget = opts.max_minutes.map(|m| m * 60.0);
    let mut last_loss = f64::NAN;
    let mut last_valid = None;
    let mut stopped_by_budget = false;
    let mut window = (0.0f64, 0usize, Instant::now());

    let last_step = cfg.steps.min(opts.stop_at.unwrap_or(usize::MAX));
    while step < last_step {
        if let Some(b) = budget
            && start.elapsed().as_secs_f64() >= b
        {
            stopped_by_budget = true;
            break;
        }
        let batch = loader.next()?;
        let (loss_val, norm) = tr.step(cfg, &batch, step, dev)?;
        step += 1;
        last_loss = loss_val;
        window.0 += loss_val;
        window.1 += 1;

        append_line(
            &files.log(),
            "step,loss,grad_norm,lr,seconds",
            &format!(
                "{step},{loss_val:.6},{norm:.4},{:.3e},{:.1}",
                tr.opt.lr(),
                start.elapsed().as_secs_f64()
            ),
        )?;
        if opts.log_every > 0 && step.is_multiple_of(opts.log_every) && !opts.quiet {
            let secs = window.2.elapsed().as_secs_f64();
            eprintln!(
                "step {step:>6}  loss {:.4}  lr {:.2e}  {:.2} steps/s  {:.1} examples/s",
                window.0 / window.1 as f64,
                tr.opt.lr(),
                window.1 as f64 / secs,
                (window.1 * cfg.batch_size) as f64 / secs
            );
            window = (0.0, 0, Instant::now());
        }
        if step.is_multiple_of(cfg.valid_every) || step == cfg.steps {
            tr.ema.swap()?;
            let scores = validate(&tr.net, &bands, &valid_flow, &valid, dev);
            tr.ema.swap()?;
            let scores = scores?;
            let avg = label_average(&scores);
            let cells: Vec<String> = LABELS
                .iter()
                .map(|l| scores.get(*l).map(|v| format!("{:.3}", v.0)).unwrap_or_default())
                .collect();
            append_line(
                &files.valid_log(),
                &format!("step,average,{}", LABELS.join(",")),
                &format!("{step},{avg:.3},{}", cells.join(",")),
            )?;
            if !opts.quiet {
                eprintln!(
                    "step {step:>6}  valid SI-SDRi {avg:.2} dB (label average, {})",
                    cfg.valid_sampler
                );
            }
            last_valid = Some(scores);
            let _ = plot_curves(&files);
        }
        if step.is_multiple_of(cfg.checkpoint_every) {
            save_checkpoint(&files, &tr.varmap, &tr.opt, &tr.ema, step)?;
        }
        if cfg.snapshot_every > 0 && step.is_multiple_of(cfg.snapshot_every) {
            save_snapshot(&files, cfg_json.as_bytes(), &tr.ema, step)?;
        }
    }
    drop(loader);
    save_checkpoint(&files, &tr.varmap, &tr.opt, &tr.ema, step)?;
    let _ = plot_curves(&files);
    Ok(TrainReport {
        steps_done: step,
        seconds: start.elapsed().as_secs_f64(),
        last_loss,
        last_valid,
        stopped_by_budget,
    })
}

/// A network with its optimiser state: what a training step updates.
pub struct Trainee {
    pub varmap: VarMap,
    pub net: Network,
    pub opt: AdamW,
    pub ema: Ema,
    /// The trainable variables (for clipping).
    pub vars: Vec<candle_core::Var>,
    /// The masked inverse STFT of the waveform term (when it is on).
    synth: Option<Synth>,
}

impl Trainee {
    /// The network of `cfg` with seeded initial weights on `dev`, AdamW and the EMA of `cfg`.
    pub fn new(cfg: &TrainConfig, dev: &Device) -> Result<Trainee> {
        let varmap = VarMap::new();
        let vb = crate::model::init::seeded_var_builder(&varmap, cfg.seed, DType::F32, dev);
        let net = Network::new(&cfg.model, vb)?;
        if let Some(init) = &cfg.init {
            load_init(&varmap, &cfg.model, init, dev)?;
        }
        let opt = AdamW::new(
            named_vars(&varmap),
            AdamWConfig {
                lr: cfg.lr,
                beta1: cfg.beta1,
                beta2: cfg.beta2,
                eps: 1e-8,
                weight_decay: cfg.weight_decay,
            },
        )?;
        let ema = Ema::new(named_vars(&varmap), cfg.ema_decay)?;
        let vars = named_vars(&varmap).into_iter().map(|(_, v)| v).collect();
        let synth = if cfg.objective.waveform_sisdr > 0.0 {
            Some(Synth::new(&Bands::new(cfg.model.bands.clone())?, dev)?)
        } else {
            None
        };
        Ok(Trainee {
            varmap,
            net,
            opt,
            ema,
            vars,
            synth,
        })
    }

    /// One optimiser step on `batch`: the objective (plus the query-alignment loss), backward,
    /// clipping, AdamW at the schedule's learning rate for `step`, EMA. Returns the loss and the
    /// gradient norm before clipping (NaN when clipping is off).
    pub fn step(&mut self, cfg: &TrainConfig, batch: &Batch, step: usize, dev: &Device) -> Result<(f64, f32)> {
        let b = batch.labels.len();
        let shards = cfg.shards.clamp(1, b.max(1));
        // Noise and times from a stream of this step (and shard) alone, so a run paused and
        // resumed at any step follows the uninterrupted run exactly.
        let rng = |k: usize| {
            let seed = cfg.seed.wrapping_add(step as u64 * 0x9e37_79b9);
            rand_chacha::ChaCha8Rng::seed_from_u64(if k == 0 {
                seed
            } else {
                seed ^ (k as u64).wrapping_mul(0xa076_1d64_78bd_642f)
            })
        };
        // Each shard's forward and backward on its own thread (one shard: the whole batch on
        // this one), gradients summed in shard order (the result does not depend on
        // scheduling).
        let bounds: Vec<(usize, usize)> = (0..shards).map(|k| (k * b / shards, (k + 1) * b / shards)).collect();
        let parts = bounds
            .par_iter()
            .enumerate()
            .map(|(k, &range)| -> Result<(f64, candle_core::backprop::GradStore)> {
                let loss = self.shard_loss(cfg, batch, range, &mut rng(k), dev)?;
                Ok((f64::from(loss.to_scalar::<f32>()?), loss.backward()?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut parts = parts.into_iter();
        let (mut loss_val, mut grads) = parts.next().ok_or_else(|| anyhow::anyhow!("empty batch"))?;
        for (l, g) in parts {
            loss_val += l;
            for v in &self.vars {
                if let Some(gk) = g.get(v.as_tensor()) {
                    let sum = match grads.get(v.as_tensor()) {
                        Some(g0) => (g0 + gk)?,
                        None => gk.clone(),
                    };
                    grads.insert(v.as_tensor(), sum);
                }
            }
        }
        anyhow::ensure!(
            loss_val.is_finite(),
            "step {step}: the loss is {loss_val}; lower lr or check the data"
        );
        let grads = &mut grads;
        let (opt, ema, vars) = (&mut self.opt, &mut self.ema, &self.vars);
        let norm = if cfg.grad_clip > 0.0 {
            clip_grad_norm(grads, vars, cfg.grad_clip)?
        } else {
            f32::NAN
        };
        opt.set_lr(lr_at(
            step as u64,
            cfg.warmup as u64,
            cfg.steps as u64,
            cfg.lr,
            cfg.lr_floor,
        ));
        opt.step(grads)?;
        ema.update()?;
        Ok((loss_val, norm))
    }

    /// The loss of the examples `range` of `batch`, weighted by their share of the batch, so
    /// the shards' losses (and gradients) sum to the whole batch's: the objective (per-example
    /// means averaged) plus the query-alignment loss of the example-queried examples among
    /// them.
    fn shard_loss(
        &self,
        cfg: &TrainConfig,
        batch: &Batch,
        (start, end): (usize, usize),
        rng: &mut rand_chacha::ChaCha8Rng,
        dev: &Device,
    ) -> Result<Tensor> {
        let net = &self.net;
        let (b, n) = (batch.labels.len(), end - start);
        let n_example = cfg.example_queries_per_batch().min(b);
        let (ex0, ex1) = (start.min(n_example), end.min(n_example));
        let part = |t: &Tensor| -> Result<Tensor> { Ok(t.narrow(0, start, n)?.to_device(dev)?) };
        let cond = part(&batch.cond)?;
        let x = part(&batch.x)?;
        let q_label = net.label_query(&batch.labels[start..end], dev)?;
        let (query, align) = match &batch.query_clips {
            Some(clips) if ex1 > ex0 => {
                let q_ex = net.example_query(&clips.narrow(0, ex0, ex1 - ex0)?.to_device(dev)?)?;
                let q_lab = q_label.narrow(0, 0, ex1 - ex0)?;
                let align = (&q_ex - q_lab.detach())?.sqr()?.mean_all()?;
                let rest = q_label.narrow(0, ex1 - ex0, n - (ex1 - ex0))?;
                let share = (ex1 - ex0) as f64 / n_example as f64;
                (
                    Tensor::cat(&[&q_ex, &rest], 0)?,
                    Some((align * (share * cfg.query_align_weight))?),
                )
            }
            _ => (q_label, None),
        };
        // The last prediction, for the waveform term (the discriminative objective evaluates
        // the field once).
        let last = std::cell::RefCell::new(None);
        let field = |z: &Tensor, r: &Tensor, t: &Tensor| {
            let y = net.forward(z, &cond, r, t, &query).map_err(candle_err)?;
            *last.borrow_mut() = Some(y.clone());
            Ok(y)
        };
        let weight = cfg
            .objective
            .magnitude_weight
            .map(|p| magnitude_weight(&cond, p / f64::from(cfg.model.bands.power)))
            .transpose()?;
        let (flow_loss, _stats) = match &batch.target {
            Some(target) if cfg.objective.signal_loss => objectives::signal_loss(
                &field,
                &cond,
                &part(target)?,
                f64::from(cfg.model.bands.power),
                cfg.model.bands.mask_max,
            )?,
            _ => objectives::weighted_loss(&cfg.objective, &field, &x, weight.as_ref(), rng)?,
        };
        let flow_loss = match (&self.synth, &batch.wave) {
            (Some(synth), Some((re, im, target))) => {
                let pred = last
                    .borrow_mut()
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("the objective did not evaluate the network"))?;
                let mask = crate::flow::mask_of(&pred, cfg.model.bands.mask_max, true)?;
                let target = part(target)?;
                let est = synth.masked_waveform(&mask, &part(re)?, &part(im)?, target.dim(1)?)?;
                (flow_loss + (waveform::neg_si_sdr(&est, &target)? * cfg.objective.waveform_sisdr)?)?
            }
            _ => flow_loss,
        };
        let flow_loss = if n == b {
            flow_loss
        } else {
            (flow_loss * (n as f64 / b as f64))?
        };
        Ok(match align {
            Some(a) => (&flow_loss + a)?,
            None => flow_loss,
        })
    }
}

/// Writes state.safetensors (resume) and model.safetensors (EMA weights, for inference).
fn save_checkpoint(files: &RunFiles, varmap: &VarMap, opt: &AdamW, ema: &Ema, step: usize) -> Result<()> {
    let mut state: HashMap<String, Tensor> = named_vars(varmap)
        .into_iter()
        .map(|(name, var)| (format!("weights.{name}"), var.as_tensor().clone()))
        .collect();
    state.extend(opt.state()?);
    state.extend(ema.state());
    state.insert(STEP_KEY.into(), Tensor::new(&[step as u32], &Device::Cpu)?);
    save_atomic(&files.state(), &state)?;
    save_atomic(&files.model(), &ema.weights())?;
    Ok(())
}

/// Keeps the EMA weights of `step` as a model folder of their own (`RunFiles::snapshot`): the
/// run's config.json (`cfg_json`, the bytes written at the start) beside them, both atomically.
fn save_snapshot(files: &RunFiles, cfg_json: &[u8], ema: &Ema, step: usize) -> Result<()> {
    let snap = RunFiles::new(&files.snapshot(step));
    std::fs::create_dir_all(&snap.dir).with_context(|| format!("{}: cannot create", snap.dir.display()))?;
    crate::atomic::write(&snap.config(), cfg_json)?;
    save_atomic(&snap.model(), &ema.weights())?;
    Ok(())
}

/// Sets every variable of `varmap` from the model folder `dir` (a fine-tune's start): its
/// network config must equal `model` and it must hold a tensor of the variable's shape for
/// every name.
fn load_init(varmap: &VarMap, model: &crate::model::ModelConfig, dir: &Path, dev: &Device) -> Result<()> {
    let files = RunFiles::new(dir);
    let pkg = PackageConfig::load(&files.config()).with_context(|| format!("init {}", dir.display()))?;
    anyhow::ensure!(
        &pkg.model == model,
        "init {}: its network config differs from this run's `model`",
        dir.display()
    );
    let weights = candle_core::safetensors::load(files.model(), dev)
        .with_context(|| format!("{}: cannot read the init weights", files.model().display()))?;
    for (name, var) in named_vars(varmap) {
        let t = weights
            .get(&name)
            .ok_or_else(|| anyhow::anyhow!("{}: no weights for '{name}'", files.model().display()))?;
        anyhow::ensure!(
            t.dims() == var.dims(),
            "{}: '{name}' has shape {:?}, the network wants {:?}",
            files.model().display(),
            t.dims(),
            var.dims()
        );
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Restores weights, optimiser and EMA from a state map; returns the step.
fn load_state(varmap: &VarMap, opt: &mut AdamW, ema: &mut Ema, state: &HashMap<String, Tensor>) -> Result<usize> {
    for (name, var) in named_vars(varmap) {
        let t = state
            .get(&format!("weights.{name}"))
            .ok_or_else(|| anyhow::anyhow!("no weights for '{name}'"))?;
        var.set(&t.to_device(var.device())?)?;
    }
    opt.load_state(state)?;
    ema.load_state(state)?;
    let step = state
        .get(STEP_KEY)
        .ok_or_else(|| anyhow::anyhow!("no step"))?
        .to_vec1::<u32>()?;
    Ok(step.first().copied().unwrap_or(0) as usize)
}

/// Loss and validation curves as a PNG next to the logs.
fn plot_curves(files: &RunFiles) -> Result<()> {
    let read = |path: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(path)
            .map(|s| {
                s.lines()
                    .skip(1)
                    .map(|l| l.split(',').map(str::to_string).collect())
                    .collect()
            })
            .unwrap_or_default()
    };
    let log = read(&files.log());
    // Loss smoothed over windows of ~1 % of the run so the curve is readable.
    let pts: Vec<(f64, f64)> = log
        .iter()
        .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
        .collect();
    let w = (pts.len() / 100).max(1);
    let loss: Vec<(f64, f64)> = pts
        .chunks(w)
        .map(|c| (c[c.len() - 1].0, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64))
        .collect();
    let valid: Vec<(f64, f64)> = read(&files.valid_log())
        .iter()
        .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
        .collect();
    let axes = |title, y| crate::viz::Axes { title, x: "step", y };
    crate::viz::write_line_chart(
        &files.curves(),
        &axes("training loss", "loss (objective units)"),
        &[("loss", loss)],
    )?;
    crate::viz::write_line_chart(
        &files.valid_curve(),
        &axes("validation: SI-SDR improvement, label average", "SI-SDRi (dB)"),
        &[("SI-SDRi", valid)],
    )
}
