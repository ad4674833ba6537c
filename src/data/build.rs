//! `data build`: packages → labelled mono 16-bit clips + manifest.
//!
//! Per package: find `CACHE/PKG_*.deb` (or a folder `CACHE/PKG/`, an already extracted tree,
//! which is what the tests use), extract its audio into a staging folder
//! ([`extract`](super::extract)), label every file ([`rules`](super::rules)), then decode each
//! kept file, mix it down to mono, resample it to the corpus rate, trim leading and trailing
//! silence (below [`TRIM_DB`] relative to the file's peak), cut it into clips of at most
//! `clip_secs`, and write them as 16-bit WAV under `OUT/audio/LABEL/PKG/`. The package's rows
//! go to `OUT/parts/PKG.jsonl`, then its report to `OUT/parts/PKG.done` (the done-marker,
//! written last). A rerun skips packages with a marker, so an interrupted build resumes with
//! the package it was in. Finally every part is merged into `OUT/manifest.csv` and
//! `OUT/manifest.jsonl` with splits assigned ([`manifest`](super::manifest)).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::clip;
use super::extract::{self, Member};
use super::manifest::{self, ClipRow};
pub use super::part::{
    BuildOptions, NoProgress, PackageReport, Progress, RenderStats, TRIM_DB, TRIM_MARGIN_SECS, find_source, staging_dir,
};
use super::part::{Drops, clip_stem, count_drop, finish_part, marker, part, worker_pool};
use super::render::{self, RENDER_SETS};
use super::rules;
use super::sources::{PACKAGES, Package, Role};
use crate::Result;
use crate::audio::AudioReader;
use crate::audio::encode::write_mono16;

/// Shortest clip kept for a label, seconds: speech words may be short, instrument one-shots
/// (a kick, a pluck) shorter still; everything else at least a second.
pub fn min_clip_secs(label: &str) -> f64 {
    match label {
        "speech" => 0.5,
        "drums" | "bass" | "piano" | "guitar" | "strings" | "winds" => 0.25,
        _ => 1.0,
    }
}

/// What `build` did.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub packages: Vec<PackageReport>,
    /// Packages that could not be built at all (missing .deb, extraction failed).
    pub failed: Vec<(String, String)>,
    /// The merged manifest.
    pub rows: Vec<ClipRow>,
}

/// Options a corpus was built with; a rerun must match them.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CorpusSettings {
    rate: u32,
    clip_secs: f64,
    trim_db: f32,
}

/// The recorded packages selected by the options.
pub fn selected_packages(opts: &BuildOptions) -> Vec<&'static Package> {
    PACKAGES
        .iter()
        .filter(|p| p.role == Role::Recorded)
        .filter(|p| {
            opts.only_labels
                .as_ref()
                .is_none_or(|l| p.labels.iter().any(|x| l.iter().any(|y| y == x)))
        })
        .filter(|p| p.selected_by(opts.only_packages.as_deref()))
        .collect()
}

fn check_settings(opts: &BuildOptions) -> Result<()> {
    let want = CorpusSettings {
        rate: opts.rate,
        clip_secs: opts.clip_secs,
        trim_db: TRIM_DB,
    };
    let path = opts.out.join("corpus.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let have: CorpusSettings =
            serde_json::from_str(&text).with_context(|| format!("{}: not a corpus settings file", path.display()))?;
        if have != want {
            bail!(
                "{}: this corpus was built with --rate {} --clip-secs {}; use those or another --out",
                opts.out.display(),
                have.rate,
                have.clip_secs
            );
        }
        return Ok(());
    }
    crate::atomic::write_with(&path, |w| Ok(serde_json::to_writer_pretty(w, &want)?))
}

/// Builds every selected package not built yet, then merges the manifest (over every built
/// package, selected or not).
pub fn build(opts: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport> {
    if opts.clip_secs.is_nan() || opts.clip_secs < 1.0 {
        bail!("--clip-secs must be at least 1");
    }
    std::fs::create_dir_all(opts.out.join("parts")).with_context(|| format!("{}", opts.out.display()))?;
    check_settings(opts)?;
    let mut report = BuildReport::default();
    for pkg in selected_packages(opts) {
        if let Some(r) = built_earlier(&opts.out, pkg.name)? {
            progress.finish(&r);
            report.packages.push(r);
            continue;
        }
        let Some(src) = find_source(&opts.cache, pkg.source()) else {
            report.failed.push((
                pkg.name.to_string(),
                format!(
                    "{}: no {}_*.deb (run `splitflow data fetch`)",
                    opts.cache.display(),
                    pkg.source()
                ),
            ));
            continue;
        };
        match build_package(pkg, &src, opts, progress) {
            Ok(r) => {
                progress.finish(&r);
                report.packages.push(r);
            }
            Err(e) => report.failed.push((pkg.name.to_string(), format!("{e:#}"))),
        }
    }
    for set in render::selected_sets(opts) {
        if let Some(r) = built_earlier(&opts.out, set.name)? {
            progress.finish(&r);
            report.packages.push(r);
            continue;
        }
        match render::build_set(set, opts, progress) {
            Ok(r) => {
                progress.finish(&r);
                report.packages.push(r);
            }
            Err(e) => report.failed.push((set.name.to_string(), format!("{e:#}"))),
        }
    }
    report.rows = merge(&opts.out)?;
    Ok(report)
}

/// The report of a part built earlier with the current rules, or `None` when it must be
/// (re)built; a part of an older rules version has its audio removed first.
fn built_earlier(out: &Path, name: &str) -> Result<Option<PackageReport>> {
    let m = marker(out, name);
    if !m.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&m).with_context(|| format!("{}", m.display()))?;
    let mut r: PackageReport = serde_json::from_str(&text).with_context(|| format!("{}", m.display()))?;
    if r.version != rules::package_version(name) {
        std::fs::remove_file(&m).with_context(|| format!("{}", m.display()))?;
        let audio = out.join("audio");
        for label in super::LABELS {
            let dir = audio.join(label).join(name);
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            }
        }
        return Ok(None);
    }
    r.skipped = true;
    Ok(Some(r))
}

/// Merges every `parts/*.jsonl` with a done-marker into the manifest, with splits assigned
/// (held-out packages first, [`crate::data::sources::HELDOUT`]).
pub fn merge(out: &Path) -> Result<Vec<ClipRow>> {
    let mut rows = Vec::new();
    let names = PACKAGES
        .iter()
        .map(|p| p.name)
        .chain(RENDER_SETS.iter().map(|s| s.name));
    for name in names {
        if marker(out, name).exists() {
            rows.extend(manifest::read_jsonl(&part(out, name))?);
        }
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    manifest::mark_heldout(&mut rows, crate::data::sources::is_heldout);
    manifest::assign_splits(&mut rows);
    manifest::write_csv(&out.join("manifest.csv"), &rows)?;
    manifest::write_jsonl(&out.join("manifest.jsonl"), &rows)?;
    Ok(rows)
}

/// Builds one package from its `.deb` or extracted folder `src`.
pub fn build_package(pkg: &Package, src: &Path, opts: &BuildOptions, progress: &dyn Progress) -> Result<PackageReport> {
    let started = Instant::now();
    let tmp = staging_dir(&opts.out, pkg.name)?;
    let root = if src.is_dir() {
        src.to_path_buf()
    } else {
        progress.stage(pkg.name, "extracting");
        let root = tmp.path().join("tree");
        if src.extension().is_some_and(|e| e == "tgz") {
            extract::extract_tgz(src, pkg.name, &root)?;
        } else {
            extract::extract_deb(src, pkg.name, &root)?;
        }
        root
    };
    progress.stage(pkg.name, "listing");
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&staging).with_context(|| format!("{}", staging.display()))?;
    let collected = if root.exists() {
        extract::collect(pkg.name, &root, &staging)?
    } else {
        extract::Collected::default()
    };
    let rep = PackageReport {
        package: pkg.name.to_string(),
        files: collected.members.len(),
        drops: collected.drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        errors: collected.errors.clone(),
        ..Default::default()
    };
    for e in &collected.errors {
        progress.error(e);
    }
    progress.start(pkg.name, collected.members.len());
    let pool = worker_pool(opts.jobs)?;
    let drops = Drops::default();
    // Files played as one (short syllables) or each on its own.
    let batches: Vec<&[Member]> = match rules::join_files(pkg.name) {
        Some(n) => collected.members.chunks(n).collect(),
        None => collected.members.chunks(1).collect(),
    };
    let results: Vec<Result<Vec<ClipRow>>> = pool.install(|| {
        batches
            .par_iter()
            .map(|b| {
                let r = process_batch(pkg, b, opts, &drops);
                if let Err(e) = &r {
                    progress.error(&format!("{e:#}"));
                }
                b.iter().for_each(|_| progress.file_done());
                r
            })
            .collect()
    });
    finish_part(&opts.out, pkg.name, results, drops, rep, started)
}

/// Decodes a file to mono at the corpus rate.
fn decode_mono(m: &Member, rate: u32) -> Result<Vec<f32>> {
    let mut reader = AudioReader::open_with(&m.file, crate::audio::Damaged::KeepLossy)?;
    let from = reader.info().sample_rate;
    let planar = reader.read_to_end()?;
    let x = clip::mono(&planar);
    std::mem::drop(planar);
    if from == rate {
        return Ok(x);
    }
    Ok(crate::audio::resample::resample(&[x], from, rate)?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// Silence between joined files, seconds.
pub const JOIN_GAP_SECS: f64 = 0.15;

/// Clips of one file, or of several files played one after another (each trimmed, with
/// [`JOIN_GAP_SECS`] between them; see [`rules::join_files`]).
fn process_batch(pkg: &Package, batch: &[Member], opts: &BuildOptions, drops: &Drops) -> Result<Vec<ClipRow>> {
    let count_drop = |why: &str| count_drop(drops, why);
    let [first, ..] = batch else {
        return Ok(Vec::new());
    };
    let rate = opts.rate as f64;
    let margin = (TRIM_MARGIN_SECS * rate) as usize;
    let mut x = Vec::new();
    for m in batch {
        let y = match decode_mono(m, opts.rate) {
            Ok(y) => y,
            // A file with a header and no samples is a drop, not an error.
            Err(e) if format!("{e:#}").contains("contains no audio") => {
                count_drop("no audio");
                continue;
            }
            // A well-formed file in a codec or sample format the decoder lacks (a package
            // property, the same on every run): a drop with its reason. A corrupt file stays
            // an error.
            Err(e) if format!("{e:#}").contains("unsupported feature") => {
                count_drop("unsupported audio format");
                continue;
            }
            Err(e) => return Err(e.context(format!("{}: {}", pkg.name, m.path))),
        };
        let Some(range) = clip::trim_range(&y, TRIM_DB, margin) else {
            count_drop("silent");
            continue;
        };
        if !x.is_empty() {
            x.extend(std::iter::repeat_n(0.0, (JOIN_GAP_SECS * rate) as usize));
        }
        x.extend_from_slice(&y[range]);
    }
    let m = match batch {
        [one] => one.clone(),
        [.., last] => Member {
            path: format!("{} .. {} ({} files)", first.path, last.path, batch.len()),
            ..first.clone()
        },
        [] => return Ok(Vec::new()),
    };
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let x = &x[..];
    let min_len = (min_clip_secs(m.label) * rate).round() as usize;
    if x.len() < min_len {
        count_drop("too short");
        return Ok(Vec::new());
    }
    let file_peak = clip::peak(x);
    let silent = file_peak * 10f32.powf(TRIM_DB / 20.0);
    let clip_len = (opts.clip_secs * rate).round() as usize;
    let dir = opts.out.join("audio").join(m.label).join(pkg.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let stem = clip_stem(&m.path);
    let mut rows = Vec::new();
    for (k, c) in clip::cut(x, clip_len, min_len).into_iter().enumerate() {
        if clip::peak(c) < silent {
            count_drop("silent clip");
            continue;
        }
        let name = format!("{stem}-{k:03}.wav");
        write_mono16(&dir.join(&name), c, opts.rate)?;
        rows.push(ClipRow {
            path: format!("audio/{}/{}/{name}", m.label, pkg.name),
            label: m.label.to_string(),
            duration: c.len() as f64 / rate,
            rate: opts.rate,
            package: pkg.name.to_string(),
            source_file: m.path.clone(),
            group: m.group.clone(),
            licence: pkg.licence.to_string(),
            split: String::new(),
        });
    }
    Ok(rows)
}
