//! `splitflow data`: fetch the source packages, build the training corpus, preview mixtures.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar};

use crate::audio::encode::write_mono16;
use crate::data::build::{self, BuildOptions, PackageReport, Progress};
use crate::data::fetch::{self, Fetched};
use crate::data::render::RENDER_SETS;
use crate::data::sampler::{MixtureSampler, SamplerConfig};
use crate::data::sources::PACKAGES;
use crate::data::{LABELS, manifest};
use crate::viz::write_spectrogram_grid;

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download the source packages (`apt-get download`) into a cache folder.
    Fetch(FetchArgs),
    /// Build labelled mono 16-bit clips and a manifest from the fetched packages.
    Build(BuildArgs),
    /// Draw training mixtures and write them as WAVs plus a spectrogram grid (grid.png).
    Preview(PreviewArgs),
    /// Write a fixed evaluation set (mixtures, references, queries) in the layout
    /// `splitflow score` reads, at one target-to-interference ratio.
    Mixtures(MixturesArgs),
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Folder for the .deb files (created when missing).
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// Only these packages (comma-separated; default: all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub package: Option<Vec<String>>,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Folder with the fetched .deb files (or extracted package folders named after them).
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// Corpus folder: audio/LABEL/PACKAGE/*.wav, manifest.csv, manifest.jsonl.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Corpus sample rate in Hz.
    #[arg(long, value_name = "HZ", default_value_t = 22050, value_parser = clap::value_parser!(u32).range(8000..=48000))]
    pub rate: u32,
    /// Longest clip in seconds; longer files are cut.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub clip_secs: f64,
    /// Only the packages that provide these labels (comma-separated).
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Only these packages or render sets (comma-separated); opt-in packages and sets
    /// (freepats, widelands-music, naev-data, ambience, mixes-*) are built only when named.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub package: Option<Vec<String>>,
    /// Files decoded in parallel (default: all cores).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PreviewArgs {
    /// Corpus folder (with manifest.jsonl), as written by `data build`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Split to draw from.
    #[arg(long, default_value = "valid", value_parser = ["train", "valid", "test", "heldout"])]
    pub split: String,
    /// Number of examples.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub n: u32,
    /// Random seed (example i is sample (seed, i)).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Sampler settings as JSON (SamplerConfig; missing fields take the defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output folder: NN_mixture.wav, NN_target.wav, NN_query.wav, grid.png.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct MixturesArgs {
    /// Corpus folder (with manifest.jsonl), as written by `data build`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Split to draw from: test (held-out speakers, presets and files of the training
    /// packages) or heldout (packages train never hears: the figure for users' audio).
    #[arg(long, default_value = "test", value_parser = ["train", "valid", "test", "heldout"])]
    pub split: String,
    /// Target-to-interference ratio of every mixture, dB.
    #[arg(long, value_name = "DB", default_value_t = 0.0, allow_hyphen_values = true)]
    pub tir: f32,
    /// Mixtures per label.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub n: u32,
    /// Seconds per mixture.
    #[arg(long, value_name = "SECS", default_value_t = 6.0)]
    pub seconds: f32,
    /// Labels to include (default: every label the split has).
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// Random seed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Sampler settings as JSON (default: no augmentation, 1 to 3 interferers).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output folder: mixtures/TRACK.wav, references/TRACK/LABEL.wav, queries/TRACK.wav,
    /// and tracks.csv (track, label, interferers, TIR). Score an estimate folder with
    /// `splitflow score --references DIR/references --estimates EST --mixtures DIR/mixtures`.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: &DataArgs) -> i32 {
    match &args.command {
        DataCommand::Fetch(a) => run_fetch(a),
        DataCommand::Build(a) => run_build(a),
        DataCommand::Mixtures(a) => match run_mixtures(a) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
        DataCommand::Preview(a) => match run_preview(a) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
    }
}

/// A sampler config from `--config`, or `default`.
fn sampler_config(path: &Option<PathBuf>, default: SamplerConfig) -> crate::Result<SamplerConfig> {
    match path {
        None => Ok(default),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not a sampler config", p.display()))
        }
    }
}

fn run_mixtures(args: &MixturesArgs) -> crate::Result<()> {
    let mut cfg = sampler_config(&args.config, SamplerConfig::evaluation(args.seconds))?;
    cfg.tir_db = [args.tir, args.tir];
    anyhow::ensure!(
        cfg.absent_p == 0.0,
        "absent_p must be 0 for evaluation mixtures: a silent reference cannot be scored"
    );
    anyhow::ensure!(
        !cfg.pair_queries,
        "pair_queries must be off for evaluation mixtures: each mixture is written once"
    );
    let labels: Vec<String> = match &args.labels {
        Some(l) => l.clone(),
        None => {
            let all = MixtureSampler::open(&args.data, &args.split, cfg.clone())?;
            all.target_labels().iter().map(|l| LABELS[*l].to_string()).collect()
        }
    };
    let rate = cfg.rate;
    let mut table = String::from("track,label,interferers,tir_db\n");
    for label in &labels {
        let sampler = MixtureSampler::open(
            &args.data,
            &args.split,
            SamplerConfig {
                labels: Some(vec![label.clone()]),
                ..cfg.clone()
            },
        )
        .with_context(|| format!("label '{label}'"))?;
        for i in 0..args.n {
            let m = sampler.sample(args.seed, u64::from(i))?;
            let track = format!("{label}_{i:03}");
            for dir in [
                args.out.join("mixtures"),
                args.out.join("references").join(&track),
                args.out.join("queries"),
            ] {
                std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
            }
            write_mono16(
                &args.out.join("mixtures").join(format!("{track}.wav")),
                &m.mixture,
                rate,
            )?;
            write_mono16(
                &args.out.join("references").join(&track).join(format!("{label}.wav")),
                &m.target,
                rate,
            )?;
            write_mono16(&args.out.join("queries").join(format!("{track}.wav")), &m.query, rate)?;
            let others: Vec<&str> = m.interferers.iter().map(|l| LABELS[*l]).collect();
            table += &format!("{track},{label},{},{:.2}\n", others.join("+"), m.tir_db);
        }
    }
    crate::atomic::write(&args.out.join("tracks.csv"), table.as_bytes())?;
    println!(
        "wrote {} mixtures ({} labels x {}) at {:+.1} dB to {}",
        labels.len() * args.n as usize,
        labels.len(),
        args.n,
        args.tir,
        args.out.display()
    );
    Ok(())
}

fn run_preview(args: &PreviewArgs) -> crate::Result<()> {
    let cfg = sampler_config(&args.config, SamplerConfig::default())?;
    let rate = cfg.rate;
    let sampler = MixtureSampler::open(&args.data, &args.split, cfg)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let mut rows: Vec<(String, Vec<f32>, u32)> = Vec::new();
    for i in 0..args.n {
        let m = sampler.sample(args.seed, u64::from(i))?;
        let label = LABELS[m.label];
        let others: Vec<&str> = m.interferers.iter().map(|l| LABELS[*l]).collect();
        for (what, x) in [("mixture", &m.mixture), ("target", &m.target), ("query", &m.query)] {
            write_mono16(&args.out.join(format!("{i:02}_{what}.wav")), x, rate)?;
        }
        println!(
            "{i:02}  target {label:<8} interferers {:<28} TIR {:+6.2} dB",
            others.join(","),
            m.tir_db
        );
        rows.push((
            format!("{i:02} mixture: {label} + {}", others.join(" + ")),
            m.mixture,
            rate,
        ));
        rows.push((
            format!("{i:02} target: {label} (TIR {:+.1} dB)", m.tir_db),
            m.target,
            rate,
        ));
    }
    let grid = args.out.join("grid.png");
    write_spectrogram_grid(&grid, &rows)?;
    println!(
        "wrote {} examples and {} to {}",
        args.n,
        grid.display(),
        args.out.display()
    );
    Ok(())
}

/// Every `--package` name is a package, or (with `sets`, for `build`) selects a render set:
/// one that needs no package (`ambience`) or a set by its name (`render-freedoom-freepats`).
fn check_packages(list: &Option<Vec<String>>, sets: bool) -> Result<(), String> {
    let mut names: Vec<&str> = PACKAGES.iter().map(|k| k.name).collect();
    if sets {
        for s in RENDER_SETS {
            for n in [s.selected_by, s.name] {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    for p in list.iter().flatten() {
        if !names.contains(&p.as_str()) {
            return Err(format!("unknown package '{p}' (one of: {})", names.join(", ")));
        }
    }
    Ok(())
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn run_fetch(args: &FetchArgs) -> i32 {
    if let Err(e) = check_packages(&args.package, false) {
        eprintln!("error: {e}");
        return 2;
    }
    if let Err(e) = std::fs::create_dir_all(&args.cache) {
        eprintln!("error: {}: {e}", args.cache.display());
        return 1;
    }
    // Opt-in packages only when named; a package read from another's .deb fetches that one.
    let mut names: Vec<&str> = PACKAGES
        .iter()
        .filter(|p| p.selected_by(args.package.as_deref()))
        .map(|p| p.source())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(*n));
    if let Err(e) = fetch::ensure_lists(&args.cache, &names) {
        eprintln!("warning: {e:#}");
    }
    let started = Instant::now();
    let (mut total, mut new_bytes, mut failed) = (0u64, 0u64, Vec::new());
    for name in &names {
        match fetch::fetch_one(&args.cache, name) {
            Fetched::Present { bytes, .. } => {
                total += bytes;
                println!("{name:<34} {:>10}  (present)", mb(bytes));
            }
            Fetched::Downloaded { bytes, .. } => {
                total += bytes;
                new_bytes += bytes;
                println!("{name:<34} {:>10}  downloaded", mb(bytes));
            }
            Fetched::Failed(e) => {
                eprintln!("error: {e}");
                failed.push(e);
            }
        }
    }
    println!(
        "{} packages, {} in {} ({} downloaded in {:.1} s), {} failed",
        names.len() - failed.len(),
        mb(total),
        args.cache.display(),
        mb(new_bytes),
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    i32::from(!failed.is_empty())
}

struct Bars {
    mp: MultiProgress,
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
    errors: Mutex<usize>,
}

impl Bars {
    fn say(&self, line: String) {
        super::progress::say(&self.mp, line);
    }
    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f(b);
        }
    }
}

impl Progress for Bars {
    fn stage(&self, package: &str, what: &str) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = slot.take() {
            b.finish_and_clear();
        }
        let b = self.mp.add(ProgressBar::new_spinner().with_prefix(package.to_string()));
        b.set_style(super::progress::spinner("{prefix:>30!} {spinner} {msg} {elapsed}"));
        b.set_message(what.to_string());
        b.enable_steady_tick(Duration::from_millis(250));
        *slot = Some(b);
    }
    fn start(&self, package: &str, files: usize) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = slot.take() {
            b.finish_and_clear();
        }
        let b = self
            .mp
            .add(ProgressBar::new(files as u64).with_prefix(package.to_string()));
        b.set_style(super::progress::bar(
            "{prefix:>30!} [{bar:30}] {pos}/{len} files, {elapsed}, eta {eta}",
            "=> ",
        ));
        b.enable_steady_tick(Duration::from_millis(250));
        *slot = Some(b);
    }
    fn file_done(&self) {
        self.with_bar(|b| b.inc(1));
    }
    fn error(&self, line: &str) {
        *self.errors.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.say(format!("error: {line}"));
    }
    fn finish(&self, r: &PackageReport) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
        if !self.quiet || !r.errors.is_empty() {
            self.say(package_line(r));
        }
    }
}

fn package_line(r: &PackageReport) -> String {
    let drops: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut line = format!(
        "{}: {} files -> {} clips, {:.1} min",
        r.package,
        r.files,
        r.clips,
        r.seconds / 60.0
    );
    if !drops.is_empty() {
        line += &format!("; dropped: {}", drops.join(", "));
    }
    if !r.errors.is_empty() {
        line += &format!("; {} errors", r.errors.len());
    }
    if r.skipped {
        line += " (built earlier)";
    } else {
        line += &format!(" ({:.0} s)", r.elapsed_s);
    }
    line
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn run_build(args: &BuildArgs) -> i32 {
    if let Err(e) = check_packages(&args.package, true) {
        eprintln!("error: {e}");
        return 2;
    }
    for l in args.only.iter().flatten() {
        if !LABELS.contains(&l.as_str()) {
            eprintln!("error: unknown label '{l}' (one of: {})", LABELS.join(", "));
            return 2;
        }
    }
    if !(1.0..=600.0).contains(&args.clip_secs) {
        eprintln!("error: --clip-secs must be between 1 and 600");
        return 2;
    }
    let opts = BuildOptions {
        cache: args.cache.clone(),
        out: args.out.clone(),
        rate: args.rate,
        clip_secs: args.clip_secs,
        only_labels: args.only.clone(),
        only_packages: args.package.clone(),
        jobs: args.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
    };
    let bars = Bars {
        mp: super::progress::multi(args.quiet),
        bar: Mutex::new(None),
        quiet: args.quiet,
        errors: Mutex::new(0),
    };
    let started = Instant::now();
    let report = match build::build(&opts, &bars) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 1;
        }
    };
    for (p, e) in &report.failed {
        eprintln!("error: {p}: {e}");
    }
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "label", "train", "valid", "test", "heldout", "total"
    );
    let table = manifest::minutes_table(&report.rows);
    let mut sum = [0.0; 5];
    for (label, m) in &table {
        println!(
            "{label:<8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            m[0], m[1], m[2], m[3], m[4]
        );
        for i in 0..5 {
            sum[i] += m[i];
        }
    }
    println!(
        "{:<8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  (minutes)",
        "all", sum[0], sum[1], sum[2], sum[3], sum[4]
    );
    // Files that failed in this run or in parts built by an earlier run (their reports keep
    // the errors), so a rerun over the same inputs ends the same way.
    let live = *bars.errors.lock().unwrap_or_else(|e| e.into_inner());
    let errors = live.max(report.packages.iter().map(|p| p.errors.len()).sum());
    println!(
        "{} clips, {:.2} h, {} on disk in {}; {} packages failed, {} files failed; {:.1} s",
        report.rows.len(),
        sum[4] / 60.0,
        mb(dir_bytes(&args.out.join("audio"))),
        args.out.display(),
        report.failed.len(),
        errors,
        started.elapsed().as_secs_f64()
    );
    i32::from(!report.failed.is_empty() || errors > 0)
}
