//! One *part* of a corpus build: a package or a render set, built into `OUT/audio/LABEL/NAME/`
//! with its rows in `OUT/parts/NAME.jsonl` and its report in the done-marker
//! `OUT/parts/NAME.done` (written last). What `build.rs` (packages, merge) and `render/`
//! (render sets) share lives here, so neither imports the other's internals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::manifest::{self, ClipRow};
use super::rules;
use crate::Result;

/// Silence threshold for trimming, dB relative to the file's peak.
pub const TRIM_DB: f32 = -50.0;
/// Audio kept on each side of the trimmed range, seconds.
pub const TRIM_MARGIN_SECS: f64 = 0.02;

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub cache: PathBuf,
    pub out: PathBuf,
    /// Corpus sample rate, Hz.
    pub rate: u32,
    /// Longest clip, seconds.
    pub clip_secs: f64,
    /// Only packages that provide one of these labels (whole packages are built).
    pub only_labels: Option<Vec<String>>,
    /// Only these packages.
    pub only_packages: Option<Vec<String>>,
    /// Files decoded in parallel.
    pub jobs: usize,
}

/// What happened to one package.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PackageReport {
    pub package: String,
    /// Labelled source files.
    pub files: usize,
    pub clips: usize,
    /// Seconds of audio in the clips.
    pub seconds: f64,
    /// Reason → number of files (or clips) dropped.
    pub drops: BTreeMap<String, usize>,
    /// One-line errors (bad files); the package still counts as built.
    pub errors: Vec<String>,
    /// Wall time of the package, seconds.
    pub elapsed_s: f64,
    /// Built by an earlier run (done-marker found).
    #[serde(skip)]
    pub skipped: bool,
    /// Version of the package's rules it was built with ([`rules::package_version`]); a
    /// marker of another version is rebuilt.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Render sets: stems rendered and synthesizer time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderStats>,
}

fn first_version() -> u32 {
    1
}

/// Progress callbacks (the CLI draws bars; tests pass [`NoProgress`]).
pub trait Progress: Sync {
    fn stage(&self, _package: &str, _what: &str) {}
    fn start(&self, _package: &str, _files: usize) {}
    fn file_done(&self) {}
    fn error(&self, _line: &str) {}
    fn finish(&self, _report: &PackageReport) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The `.deb` of `package` in `cache` (`.tgz` for an npm package: `PKG_VERSION.tgz`), or a
/// folder `cache/package` holding its extracted tree.
pub fn find_source(cache: &Path, package: &str) -> Option<PathBuf> {
    let dir = cache.join(package);
    if dir.is_dir() {
        return Some(dir);
    }
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && (n.ends_with(".deb") || n.ends_with(".tgz")))
        })
        .collect();
    found.sort();
    found.pop()
}

pub(crate) fn marker(out: &Path, package: &str) -> PathBuf {
    out.join("parts").join(format!("{package}.done"))
}

pub(crate) fn part(out: &Path, package: &str) -> PathBuf {
    out.join("parts").join(format!("{package}.jsonl"))
}

/// The thread pool a build decodes or renders on: `jobs` threads (at least one).
pub fn worker_pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .context("cannot start worker threads")
}

/// A temporary staging folder `OUT/.work/PREFIX*` (deleted when dropped).
pub fn staging_dir(out: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let work = out.join(".work");
    std::fs::create_dir_all(&work).with_context(|| format!("{}", work.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&work)
        .with_context(|| format!("{}", work.display()))
}

/// Drops counted by worker threads: reason → count.
pub(crate) type Drops = Mutex<BTreeMap<String, usize>>;

/// Counts one drop for `why`.
pub(crate) fn count_drop(drops: &Drops, why: &str) {
    *drops
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(why.to_string())
        .or_default() += 1;
}

/// Collects a part's rows (errors and drops into its report), writes them and then its
/// done-marker (with clip count, seconds, elapsed time and the rules version filled in).
pub(crate) fn finish_part(
    out: &Path,
    name: &str,
    results: Vec<Result<Vec<ClipRow>>>,
    drops: Drops,
    mut rep: PackageReport,
    started: Instant,
) -> Result<PackageReport> {
    let mut rows = Vec::new();
    for r in results {
        match r {
            Ok(v) => rows.extend(v),
            Err(e) => rep.errors.push(format!("{e:#}")),
        }
    }
    for (k, v) in drops.into_inner().unwrap_or_else(|e| e.into_inner()) {
        *rep.drops.entry(k).or_default() += v;
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    rep.clips = rows.len();
    rep.seconds = rows.iter().map(|r| r.duration).sum();
    rep.elapsed_s = started.elapsed().as_secs_f64();
    rep.version = rules::package_version(name);
    manifest::write_jsonl(&part(out, name), &rows)?;
    let m = marker(out, name);
    crate::atomic::write_with(&m, |w| Ok(serde_json::to_writer_pretty(w, &rep)?))?;
    Ok(rep)
}

/// File-name-safe form of a member's stem, with a hash of its whole path for uniqueness.
pub(crate) fn clip_stem(path: &str) -> String {
    let name = path.rsplit(['/', '!']).next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    format!("{safe}-{:08x}", manifest::fnv1a(path) as u32)
}

/// Render-time figures of a set (kept in its done-marker).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RenderStats {
    pub songs: usize,
    pub stems: usize,
    /// Seconds of stem audio rendered, and CPU seconds spent in the synthesizer (summed over
    /// threads): their ratio is the speed per core in x realtime.
    pub rendered_s: f64,
    pub synth_cpu_s: f64,
}
