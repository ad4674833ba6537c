//! `splitflow report`: one self-contained HTML page per batch of separations, to look at and
//! listen to. Per track: the mixture, every estimate and (with `--references`) its reference,
//! each with an `<audio>` player linking to the file (relative to the page) and a spectrogram
//! embedded as a PNG data URI on one colour scale per track, and the scores `splitflow score`
//! gives for the same folders. The page is rendered from one minijinja template
//! (`report.html`, auto-escaped).
//!
//! Matching, as `splitflow score` does it: every audio file under the estimates folder is an
//! estimate; `DIR/TRACK/NAME.EXT` belongs to track `TRACK` (a file directly under the folder is
//! its own track); its reference is the file of the same relative path (any audio extension)
//! under the references folder, and the mixture is `TRACK.EXT` or `TRACK/mixture.EXT` under
//! the mixtures folder. Estimates without a reference (the residual `rest`, `no_drums`) are
//! shown unscored.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rayon::prelude::*;
use serde::Serialize;

use crate::Result;
use crate::audio::AudioReader;
use crate::score::{self, Metric, ScoreOptions, SourceFiles, Track, TrackResult, output::fmt_value};
use crate::viz::{PooledSpectrogram, pooled_spectrogram, spectrogram_pngs};

/// Spectrogram pictures, in pixels.
pub const PICTURE_WIDTH: usize = 900;
pub const PICTURE_HEIGHT: usize = 120;

const TEMPLATE: &str = include_str!("report.html");

/// What to report on.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub mixtures: PathBuf,
    pub estimates: PathBuf,
    pub references: Option<PathBuf>,
    /// The HTML file to write; links to the audio are relative to its folder.
    pub out: PathBuf,
    pub title: String,
    /// Score the sources of a track together (`splitflow score --sources`).
    pub sources: bool,
    pub score: ScoreOptions,
}

/// One estimate of a track, as found on disk.
#[derive(Clone, Debug)]
struct Item {
    name: String,
    estimate: PathBuf,
    reference: Option<PathBuf>,
}

/// A track: its mixture and estimates.
#[derive(Clone, Debug)]
struct Group {
    name: String,
    mixture: Option<PathBuf>,
    items: Vec<Item>,
}

/// The tracks under the estimates folder, in path order, and one error per track without a
/// mixture.
fn groups(opts: &ReportOptions) -> Result<(Vec<Group>, Vec<String>)> {
    let rels = score::relative_audio_files(&opts.estimates)?;
    let mut by_track: BTreeMap<PathBuf, Group> = BTreeMap::new();
    for rel in rels {
        let stem = rel.with_extension("");
        let key = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => stem.clone(),
        };
        let group = by_track.entry(key.clone()).or_insert_with(|| Group {
            name: key.to_string_lossy().into_owned(),
            mixture: None,
            items: Vec::new(),
        });
        if group.mixture.is_none() {
            group.mixture = score::find_mixture(&opts.mixtures, &stem);
        }
        group.items.push(Item {
            name: rel
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            estimate: opts.estimates.join(&rel),
            reference: opts.references.as_deref().and_then(|r| score::find_like(r, &rel)),
        });
    }
    let mut errors = Vec::new();
    for g in by_track.values() {
        if g.mixture.is_none() {
            errors.push(format!(
                "track {}: no mixture under {}",
                g.name,
                opts.mixtures.display()
            ));
        }
    }
    Ok((by_track.into_values().collect(), errors))
}

/// One audio file on the page.
#[derive(Serialize, Debug)]
struct FileView {
    /// Link to the file, relative to the page, percent-encoded.
    href: String,
    /// The spectrogram as a `data:image/png;base64,` URI.
    picture: String,
    /// `2:03.5, 44.1 kHz, 2 ch`.
    about: String,
    /// Nyquist frequency of the picture's top edge, kHz.
    top_khz: String,
    /// Duration (the picture's right edge), seconds.
    seconds: String,
}

#[derive(Serialize, Debug)]
struct ItemView {
    name: String,
    estimate: FileView,
    reference: Option<FileView>,
    /// One formatted value per metric (empty without a reference).
    scores: Vec<String>,
}

#[derive(Serialize, Debug)]
struct TrackView {
    name: String,
    mixture: Option<FileView>,
    items: Vec<ItemView>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Serialize, Debug)]
struct SummaryRow {
    label: String,
    source: String,
    values: Vec<String>,
}

/// The path of `file` relative to the folder `base`, both made absolute and canonical, with
/// each component percent-encoded for an `href`.
fn relative_href(file: &Path, base: &Path) -> Result<String> {
    let file = file
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", file.display()))?;
    let base = base
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", base.display()))?;
    let (f, b): (Vec<Component>, Vec<Component>) = (file.components().collect(), base.components().collect());
    let common = f.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), b.len() - common).collect();
    parts.extend(
        f[common..]
            .iter()
            .map(|c| percent_encode(&c.as_os_str().to_string_lossy())),
    );
    Ok(parts.join("/"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Decodes `path` into a mono mix and describes it.
fn mono(path: &Path) -> Result<(Vec<f32>, u32, String, f64)> {
    let mut reader = AudioReader::open(path)?;
    let info = reader.info().clone();
    let mut mix = Vec::new();
    let mut block = vec![Vec::new(); info.channels];
    loop {
        block.iter_mut().for_each(Vec::clear);
        if reader.read(&mut block, 65_536)? == 0 {
            break;
        }
        let k = 1.0 / info.channels.max(1) as f32;
        mix.extend((0..block[0].len()).map(|i| block.iter().map(|c| c[i]).sum::<f32>() * k));
    }
    let secs = mix.len() as f64 / f64::from(info.sample_rate);
    let about = format!(
        "{}:{:04.1}, {} kHz, {} ch",
        (secs / 60.0).floor() as u64,
        secs % 60.0,
        f64::from(info.sample_rate) / 1000.0,
        info.channels
    );
    Ok((mix, info.sample_rate, about, secs))
}

/// The files of one track on the page, their spectrograms on one colour scale.
fn file_views(paths: &[&Path], page_dir: &Path) -> Result<Vec<FileView>> {
    let mut pooled: Vec<PooledSpectrogram> = Vec::with_capacity(paths.len());
    let mut about = Vec::with_capacity(paths.len());
    // One decoded file at a time: memory is one mono signal plus the small pooled pictures.
    for p in paths {
        let (x, rate, a, secs) = mono(p)?;
        pooled.push(pooled_spectrogram(&x, PICTURE_WIDTH, PICTURE_HEIGHT).with_context(|| format!("{}", p.display()))?);
        about.push((a, rate, secs));
    }
    let pngs = spectrogram_pngs(&pooled)?;
    paths
        .iter()
        .zip(pngs)
        .zip(about)
        .map(|((p, png), (about, rate, secs))| {
            Ok(FileView {
                href: relative_href(p, page_dir)?,
                picture: format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(png)
                ),
                about,
                top_khz: format!("{:.1}", f64::from(rate) / 2000.0),
                seconds: format!("{secs:.1}"),
            })
        })
        .collect()
}

/// Scores of a group: one `splitflow score` track per estimate with a reference, or one for
/// the group with `--sources`. Returns (source name → formatted values), the results, errors.
fn score_group(g: &Group, opts: &ReportOptions) -> (BTreeMap<String, Vec<String>>, Vec<TrackResult>, Vec<String>) {
    let scored: Vec<SourceFiles> = g
        .items
        .iter()
        .filter_map(|i| {
            i.reference.as_ref().map(|r| SourceFiles {
                name: i.name.clone(),
                reference: r.clone(),
                estimate: i.estimate.clone(),
            })
        })
        .collect();
    let tracks: Vec<Track> = if opts.sources {
        vec![Track {
            name: g.name.clone(),
            sources: scored,
            mixture: g.mixture.clone(),
        }]
        .into_iter()
        .filter(|t| !t.sources.is_empty())
        .collect()
    } else {
        scored
            .into_iter()
            .map(|s| Track {
                name: format!("{}/{}", g.name, s.name),
                sources: vec![s],
                mixture: g.mixture.clone(),
            })
            .collect()
    };
    let mut values = BTreeMap::new();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for t in &tracks {
        match score::score_track(t, &opts.score, None) {
            Ok(r) => {
                for s in &r.sources {
                    values.insert(
                        s.name.clone(),
                        opts.score.metrics.iter().map(|&m| fmt_value(s.value(m))).collect(),
                    );
                }
                results.push(r);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    (values, results, errors)
}

/// What [`write_report`] did.
#[derive(Debug)]
pub struct Written {
    pub tracks: usize,
    pub estimates: usize,
    pub scored: usize,
    /// One line per problem (a track without mixture, a file that failed to decode or score);
    /// the page shows them too.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub bytes: usize,
}

/// Builds the page and writes it atomically to `opts.out`.
pub fn write_report(opts: &ReportOptions) -> Result<Written> {
    anyhow::ensure!(
        !opts.score.metrics.contains(&Metric::EmbMse),
        "emb_mse is not shown in reports; use splitflow score"
    );
    let (groups, mut errors) = groups(opts)?;
    anyhow::ensure!(
        !groups.is_empty(),
        "{}: no audio files to report on",
        opts.estimates.display()
    );
    let page_dir = crate::atomic::folder_of(&opts.out);
    std::fs::create_dir_all(page_dir).with_context(|| format!("{}: cannot create folder", page_dir.display()))?;
    let views: Vec<(TrackView, Vec<TrackResult>)> = groups
        .par_iter()
        .map(|g| {
            let mut paths: Vec<&Path> = Vec::new();
            paths.extend(g.mixture.as_deref());
            for i in &g.items {
                paths.push(&i.estimate);
                paths.extend(i.reference.as_deref());
            }
            let mut errors = Vec::new();
            let files = match file_views(&paths, page_dir) {
                Ok(f) => Some(f),
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    None
                }
            };
            let (values, results, score_errors) = score_group(g, opts);
            errors.extend(score_errors);
            let warnings = results.iter().flat_map(|r| r.warnings.clone()).collect();
            let mut files = files.map(|f| f.into_iter());
            let mut next = || files.as_mut().and_then(Iterator::next);
            let mixture = if g.mixture.is_some() { next() } else { None };
            let items = g
                .items
                .iter()
                .filter_map(|i| {
                    let estimate = next();
                    let reference = if i.reference.is_some() { next() } else { None };
                    Some(ItemView {
                        name: i.name.clone(),
                        estimate: estimate?,
                        reference,
                        scores: values.get(&i.name).cloned().unwrap_or_default(),
                    })
                })
                .collect();
            (
                TrackView {
                    name: g.name.clone(),
                    mixture,
                    items,
                    errors,
                    warnings,
                },
                results,
            )
        })
        .collect();
    let metrics: Vec<&str> = opts.score.metrics.iter().map(|m| m.name()).collect();
    let (tracks, results): (Vec<TrackView>, Vec<Vec<TrackResult>>) = views.into_iter().unzip();
    let results = results.concat();
    // Over tracks, when there is more than one (one track's table says it all): the score
    // table's own summary rows.
    let summary: Vec<SummaryRow> = if groups.len() > 1 && results.len() > 1 {
        score::output::summary_rows(&results, &opts.score.metrics)
            .into_iter()
            .map(|mut row| {
                let values = row.split_off(2);
                let source = row.pop().unwrap_or_default();
                SummaryRow {
                    label: row.pop().unwrap_or_default(),
                    source,
                    values,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    errors.extend(tracks.iter().flat_map(|t| t.errors.clone()));
    let warnings: Vec<String> = tracks.iter().flat_map(|t| t.warnings.clone()).collect();
    let estimates = tracks.iter().map(|t| t.items.len()).sum();
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)?;
    let html = env.get_template("report.html")?.render(minijinja::context! {
        title => &opts.title,
        metrics => metrics,
        tracks => minijinja::value::Serde(&tracks),
        summary => minijinja::value::Serde(&summary),
        errors => minijinja::value::Serde(&errors),
        scored => results.len(),
        version => env!("CARGO_PKG_VERSION"),
        window => opts.score.window_secs,
        hop => opts.score.hop_secs,
        range_db => crate::viz::SPECTROGRAM_RANGE_DB,
    })?;
    crate::atomic::write(&opts.out, html.as_bytes())
        .with_context(|| format!("{}: cannot write the report", opts.out.display()))?;
    Ok(Written {
        tracks: tracks.len(),
        estimates,
        scored: results.len(),
        errors,
        warnings,
        bytes: html.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_are_relative_and_encoded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a b/c#d");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("drums?.wav");
        std::fs::write(&f, b"").unwrap();
        let page = tmp.path().join("page");
        std::fs::create_dir_all(&page).unwrap();
        assert_eq!(relative_href(&f, &page).unwrap(), "../a%20b/c%23d/drums%3F.wav");
        assert_eq!(relative_href(&f, &dir).unwrap(), "drums%3F.wav");
    }
}
