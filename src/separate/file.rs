//! One file through the whole pipeline, streamed: decode → (resample to the separator's rate)
//! → chunked engine → (resample back) → one target per query and the residual, written
//! atomically. Several queries share one decode, one resampling and one engine pass.
//!
//! Memory is bounded by one engine segment (per query) plus the resamplers' buffers, whatever
//! the file's length. The residual is the mixture minus the sum of the targets, computed
//! against the decoded mixture at the output rate: for integer outputs it is
//! `q(mixture) - Σ q(target)` in the integer domain, so the targets and the residual sum to the
//! (quantized) input exactly, sample for sample (unless the residual clips); for float output
//! they sum to the input within float rounding.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::{ChunkEngine, Query, Segment, Separator};
use crate::Result;
use crate::audio::encode::quantize;
use crate::audio::{
    AtomicAudioWriter, AudioInfo, AudioReader, Damage, Damaged, OutputSpec, Planar, SampleFormat, StreamResampler,
    frames,
};

/// Frames decoded per read.
const BLOCK: usize = 16_384;

/// Set by the Ctrl-C handler: running files stop at the next block and delete their temp
/// outputs, so an interrupted run leaves no half-written file.
pub static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Output format choices; `None` keeps the input's.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputOptions {
    pub sample_rate: Option<u32>,
    pub format: Option<SampleFormat>,
    pub overwrite: bool,
    /// What to do with a damaged input (fail, or keep what decodes).
    pub damaged: Damaged,
    /// Segmentation of long inputs; `None`: the separator's own ([`Separator::segment`]).
    pub segment: Option<Segment>,
}

/// Where one input's outputs go.
#[derive(Clone, Debug)]
pub struct FileJob {
    pub input: PathBuf,
    /// One output per query, in the order of the queries.
    pub targets: Vec<PathBuf>,
    /// The mixture minus the sum of the targets (`--residual`).
    pub residual: Option<PathBuf>,
    /// Outputs (targets, the residual) that already exist and are left as they are: an item
    /// that an interrupted run half did, completed by `--skip-existing`. The separation still
    /// runs (the residual is the mixture minus the targets), only the missing files are written.
    pub keep: Vec<PathBuf>,
}

impl FileJob {
    /// A job writing every output.
    pub fn new(input: PathBuf, targets: Vec<PathBuf>, residual: Option<PathBuf>) -> FileJob {
        FileJob {
            input,
            targets,
            residual,
            keep: Vec::new(),
        }
    }

    /// Its outputs: the targets, then the residual if any.
    pub fn outputs(&self) -> impl Iterator<Item = &PathBuf> {
        self.targets.iter().chain(&self.residual)
    }

    /// The first output (whose name decides the format of all of them).
    pub fn first_output(&self) -> &Path {
        self.outputs().next().map_or(Path::new(""), |p| p.as_path())
    }
}

/// What was done with one file.
#[derive(Clone, Debug)]
pub struct FileReport {
    pub info: AudioInfo,
    pub spec: OutputSpec,
    /// Input frames processed.
    pub frames: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// What a damaged input lost (with [`Damaged::Keep`]).
    pub damage: Option<Damage>,
}

impl FileReport {
    /// Processing time over audio duration.
    pub fn real_time_factor(&self) -> f64 {
        self.seconds / (self.frames as f64 / self.info.sample_rate as f64).max(1e-9)
    }
}

/// The format an output gets by default: the input's rate and channels, and its sample
/// format where WAV can store it (64-bit float becomes 32-bit float); lossy inputs, which
/// have no bit depth, become 16-bit like a CD (and like Demucs' default).
pub fn default_output_spec(info: &AudioInfo, opts: &OutputOptions) -> OutputSpec {
    let format = opts.format.unwrap_or(match info.sample_format {
        Some(SampleFormat::Int(b)) if [8, 16, 24, 32].contains(&b) => SampleFormat::Int(b),
        Some(SampleFormat::Int(b)) if b < 16 => SampleFormat::Int(16),
        Some(SampleFormat::Int(b)) if b < 24 => SampleFormat::Int(24),
        Some(SampleFormat::Int(_)) => SampleFormat::Int(32),
        Some(SampleFormat::Float(_)) => SampleFormat::Float(32),
        None => SampleFormat::Int(16),
    });
    OutputSpec {
        sample_rate: opts.sample_rate.unwrap_or(info.sample_rate),
        channels: info.channels,
        format,
    }
}

/// The format of an output at `dest`: [`default_output_spec`], except that FLAC, which holds
/// 8- to 24-bit integers, gets 24-bit for float and 32-bit inputs unless `--bit-depth` says
/// otherwise (then the writer refuses what FLAC cannot hold).
pub fn output_spec(info: &AudioInfo, opts: &OutputOptions, dest: &Path) -> OutputSpec {
    let mut spec = default_output_spec(info, opts);
    if crate::audio::FileFormat::of(dest) == Some(crate::audio::FileFormat::Flac)
        && opts.format.is_none()
        && matches!(spec.format, SampleFormat::Float(_) | SampleFormat::Int(32))
    {
        spec.format = SampleFormat::Int(24);
    }
    spec
}

/// Appends `src` to `dst` channel by channel.
fn append(dst: &mut Planar, src: Planar) {
    for (d, s) in dst.iter_mut().zip(src) {
        d.extend(s);
    }
}

/// Target estimates (one per query) paired with the mixture they came from, resampled to
/// the output rate and written.
struct Sink {
    /// Decoded mixture frames whose targets have not come out of the engine yet.
    mixture: Vec<VecDeque<f32>>,
    /// Output-rate conversion of each target and of the mixture; `None` when the rates agree.
    to_out: Option<(Vec<StreamResampler>, StreamResampler)>,
    spec: OutputSpec,
    /// One per query; `None` when that target is kept ([`FileJob::keep`]).
    targets: Vec<Option<AtomicAudioWriter>>,
    residual: Option<AtomicAudioWriter>,
}

impl Sink {
    fn write(&mut self, targets: &[Planar], mixture: &[Vec<f32>]) -> Result<()> {
        if targets.first().is_none_or(|t| frames(t) == 0) {
            return Ok(());
        }
        match self.spec.format {
            SampleFormat::Int(bits) => {
                let qt: Vec<Vec<Vec<i32>>> = targets
                    .iter()
                    .map(|t| {
                        t.iter()
                            .map(|c| c.iter().map(|&v| quantize(v, bits)).collect())
                            .collect()
                    })
                    .collect();
                if let Some(res) = &mut self.residual {
                    // In the integer domain: the outputs sum to the quantized input exactly.
                    let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
                    let qr: Vec<Vec<i32>> = mixture
                        .iter()
                        .enumerate()
                        .map(|(c, m)| {
                            m.iter()
                                .enumerate()
                                .map(|(i, &m)| {
                                    let sum: i64 = qt.iter().map(|t| t[c][i] as i64).sum();
                                    (quantize(m, bits) as i64 - sum).clamp(lo, hi) as i32
                                })
                                .collect()
                        })
                        .collect();
                    res.write_i32(&qr)?;
                }
                for (w, q) in self.targets.iter_mut().zip(&qt) {
                    if let Some(w) = w {
                        w.write_i32(q)?;
                    }
                }
            }
            SampleFormat::Float(_) => {
                if let Some(res) = &mut self.residual {
                    let r: Planar = mixture
                        .iter()
                        .enumerate()
                        .map(|(c, m)| {
                            m.iter()
                                .enumerate()
                                .map(|(i, &m)| targets.iter().fold(m, |acc, t| acc - t[c][i]))
                                .collect()
                        })
                        .collect();
                    res.write_f32(&r)?;
                }
                for (w, t) in self.targets.iter_mut().zip(targets) {
                    if let Some(w) = w {
                        w.write_f32(t)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes target frames at the input rate (the same count for every query), pairs them with
    /// as many mixture frames, and writes them at the output rate. Target frames beyond the
    /// mixture (resampler rounding at the very end) are dropped.
    fn push(&mut self, targets: Vec<Planar>) -> Result<()> {
        let n = targets
            .iter()
            .map(|t| frames(t))
            .min()
            .unwrap_or(0)
            .min(self.mixture.first().map_or(0, VecDeque::len));
        let mix: Planar = self.mixture.iter_mut().map(|m| m.drain(..n).collect()).collect();
        let targets: Vec<Planar> = targets
            .into_iter()
            .map(|t| {
                t.into_iter()
                    .map(|mut c| {
                        c.truncate(n);
                        c
                    })
                    .collect()
            })
            .collect();
        match &mut self.to_out {
            None => self.write(&targets, &mix),
            Some((rt, rm)) => {
                let t = rt
                    .iter_mut()
                    .zip(&targets)
                    .map(|(r, t)| r.process(t))
                    .collect::<Result<Vec<_>>>()?;
                let m = rm.process(&mix)?;
                self.write(&t, &m)
            }
        }
    }

    /// Ends the stream: pads the targets with silence if the engine returned fewer frames
    /// than were decoded, flushes the output resamplers, and renames the files into place.
    fn finish(mut self, overwrite: bool) -> Result<()> {
        let left = self.mixture.first().map_or(0, VecDeque::len);
        if left > 0 {
            let silence = vec![vec![vec![0.0; left]; self.mixture.len()]; self.targets.len()];
            self.push(silence)?;
        }
        if let Some((mut rt, mut rm)) = self.to_out.take() {
            let t = rt.iter_mut().map(|r| r.finish()).collect::<Result<Vec<_>>>()?;
            let m = rm.finish()?;
            self.write(&t, &m)?;
        }
        for t in self.targets.into_iter().flatten() {
            t.finish(overwrite)?;
        }
        if let Some(r) = self.residual {
            r.finish(overwrite)?;
        }
        Ok(())
    }
}

/// Separates one file for every query in one pass (decoded, resampled and segmented once).
/// `progress` is called after each block with the file's info and the number of input frames
/// decoded so far.
pub fn separate_file(
    sep: &dyn Separator,
    queries: &[Query],
    job: &FileJob,
    opts: &OutputOptions,
    progress: &dyn Fn(&AudioInfo, u64),
) -> Result<FileReport> {
    anyhow::ensure!(
        !queries.is_empty() && queries.len() == job.targets.len(),
        "{}: {} queries for {} target files",
        job.input.display(),
        queries.len(),
        job.targets.len()
    );
    let start = std::time::Instant::now();
    let mut reader = AudioReader::open_with(&job.input, opts.damaged)?;
    let info = reader.info().clone();
    let (rate, channels) = (info.sample_rate, info.channels);
    let spec = output_spec(&info, opts, job.first_output());
    let proc_rate = sep.processing_rate().unwrap_or(rate);

    let create = |p: &Path| -> Result<Option<AtomicAudioWriter>> {
        if job.keep.iter().any(|k| k == p) {
            return Ok(None);
        }
        AtomicAudioWriter::create(p, spec)
            .map(Some)
            .with_context(|| format!("{}: cannot write output", p.display()))
    };
    let resamplers = |from: u32, to: u32| -> Result<Vec<StreamResampler>> {
        (0..queries.len())
            .map(|_| StreamResampler::new(from, to, channels))
            .collect()
    };
    let mut sink = Sink {
        mixture: vec![VecDeque::new(); channels],
        to_out: if spec.sample_rate == rate {
            None
        } else {
            Some((
                resamplers(rate, spec.sample_rate)?,
                StreamResampler::new(rate, spec.sample_rate, channels)?,
            ))
        },
        spec,
        targets: job.targets.iter().map(|t| create(t)).collect::<Result<_>>()?,
        residual: job.residual.as_deref().map(create).transpose()?.flatten(),
    };
    let mut down = StreamResampler::new(rate, proc_rate, channels)?;
    let mut up = resamplers(proc_rate, rate)?;
    let segment = opts.segment.unwrap_or_else(|| sep.segment());
    let mut engine = ChunkEngine::with_segment(sep, queries, proc_rate, channels, segment);
    let back = |up: &mut [StreamResampler], est: Vec<Planar>| -> Result<Vec<Planar>> {
        up.iter_mut().zip(&est).map(|(u, e)| u.process(e)).collect()
    };

    let mut block: Planar = vec![Vec::with_capacity(BLOCK); channels];
    let mut total = 0u64;
    loop {
        anyhow::ensure!(
            !CANCELLED.load(Ordering::Relaxed),
            "{}: interrupted",
            job.input.display()
        );
        block.iter_mut().for_each(Vec::clear);
        let n = reader.read(&mut block, BLOCK)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        for (m, b) in sink.mixture.iter_mut().zip(&block) {
            m.extend(b);
        }
        let est = engine.push(&down.process(&block)?)?;
        sink.push(back(&mut up, est)?)?;
        progress(&info, total);
    }
    anyhow::ensure!(total > 0, "{}: contains no audio", job.input.display());
    let mut rest = engine.push(&down.finish()?)?;
    for (r, t) in rest.iter_mut().zip(engine.finish()?) {
        append(r, t);
    }
    let mut est = back(&mut up, rest)?;
    for (e, u) in est.iter_mut().zip(up.iter_mut()) {
        append(e, u.finish()?);
    }
    sink.push(est)?;
    sink.finish(opts.overwrite)?;
    Ok(FileReport {
        info,
        spec,
        frames: total,
        seconds: start.elapsed().as_secs_f64(),
        damage: reader.damage().cloned(),
    })
}

/// Writes the uncertainty picture of a generative separator for `input` to `png`: the band
/// mask averaged over the samples and its per-bin spread (standard deviation over samples),
/// computed on consecutive blocks of one segment each (`segment`, default the separator's: the
/// same context length the separation used; memory stays bounded). Returns `false` when the
/// separator has no such picture.
pub fn write_uncertainty(
    sep: &dyn Separator,
    query: &Query,
    input: &Path,
    png: &Path,
    damaged: Damaged,
    segment: Option<Segment>,
) -> Result<bool> {
    let mut reader = AudioReader::open_with(input, damaged)?;
    let rate = reader.info().sample_rate;
    let channels = reader.info().channels;
    let (block_len, _) = segment.unwrap_or_else(|| sep.segment()).frames(rate);
    let mut all = super::MaskSpread::default();
    let mut block: Planar = vec![Vec::with_capacity(block_len); channels];
    let mut total = 0usize;
    loop {
        block.iter_mut().for_each(Vec::clear);
        let n = reader.read(&mut block, block_len)?;
        if n == 0 {
            break;
        }
        total += n;
        match sep.mask_spread(&block, rate, query) {
            None => return Ok(false),
            Some(part) => all.append(&part.with_context(|| format!("{}: uncertainty", input.display()))?),
        }
    }
    anyhow::ensure!(all.n_frames > 0, "{}: contains no audio", input.display());
    let top = all.spread.iter().copied().fold(0.0f32, f32::max).max(1e-3);
    let secs = total as f64 / f64::from(rate);
    let panel = |title: String, values, range, unit: &str| crate::viz::Heatmap {
        title,
        values,
        n_rows: all.n_bands,
        n_cols: all.n_frames,
        range,
        x: (0.0, secs),
        y: (0.0, all.n_bands as f64),
        x_label: "time (s)".into(),
        y_label: "mel band (0 = lowest)".into(),
        unit: unit.into(),
    };
    let maps = [
        panel(
            format!("{}: band mask, mean over the samples", query.name()),
            &all.mean,
            (0.0, 1.0),
            "mask (0-1)",
        ),
        panel(
            "spread over the samples (standard deviation)".into(),
            &all.spread,
            (0.0, top),
            "std of the mask",
        ),
    ];
    crate::viz::write_heatmap_grid(png, &maps)?;
    Ok(true)
}
