//! `splitflow score`.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget};
use rayon::prelude::*;

use super::args::ScoreArgs;
use crate::score::{self, ScoreOptions, SourceFiles, Track, TrackResult, default_metrics, output};

/// The tracks to score, the references that failed to match, and how many were skipped
/// (`--skip-missing`).
fn tracks(args: &ScoreArgs) -> crate::Result<(Vec<Track>, Vec<String>, usize)> {
    if let (Some(r), Some(e)) = (&args.reference, &args.estimate) {
        let name = r
            .file_stem()
            .map_or_else(|| "track".into(), |s| s.to_string_lossy().into_owned());
        let track = Track {
            name: name.clone(),
            sources: vec![SourceFiles {
                name,
                reference: r.clone(),
                estimate: e.clone(),
            }],
            mixture: args.mixture.clone(),
        };
        return Ok((vec![track], Vec::new(), 0));
    }
    match (&args.references, &args.estimates) {
        (Some(r), Some(e)) => {
            let (tracks, errors, skipped) =
                score::match_folders(r, e, args.mixtures.as_deref(), args.sources, args.skip_missing)?;
            anyhow::ensure!(
                !tracks.is_empty() || skipped == 0,
                "{}: no reference under {} has an estimate here",
                e.display(),
                r.display()
            );
            Ok((tracks, errors, skipped))
        }
        _ => anyhow::bail!("give --reference and --estimate, or --references and --estimates"),
    }
}

pub fn run(args: &ScoreArgs) -> i32 {
    if !(args.window > 0.0 && args.hop > 0.0) {
        eprintln!("error: --window and --hop must be positive seconds");
        return 2;
    }
    let (tracks, mut failures, skipped) = match tracks(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let with_mixture = args.mixture.is_some() || args.mixtures.is_some();
    let metrics = args.metrics.clone().unwrap_or_else(|| default_metrics(with_mixture));
    if let Some(m) = metrics.iter().find(|m| m.needs_mixture() && !with_mixture) {
        eprintln!("error: {} needs the mixture (--mixture or --mixtures)", m.name());
        return 2;
    }
    let opts = ScoreOptions {
        metrics: metrics.clone(),
        window_secs: args.window,
        hop_secs: args.hop,
        resample: args.resample,
        zero_mean: args.zero_mean,
        mrstft_preset: args.mrstft_preset.clone(),
    };
    let crepe = if metrics.contains(&score::Metric::EmbMse) {
        match score::load_crepe(args.crepe_model.as_deref()) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("error: {e:#}");
                return 2;
            }
        }
    } else {
        None
    };
    let bar = if args.quiet || tracks.len() < 2 {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(tracks.len() as u64), ProgressDrawTarget::stderr())
    };
    bar.set_style(super::progress::bar(
        "scoring [{bar:30}] {pos}/{len} tracks, {elapsed} elapsed, eta {eta}",
        "## ",
    ));
    let errors = Mutex::new(Vec::new());
    let work = || -> Vec<TrackResult> {
        tracks
            .par_iter()
            .filter_map(|t| {
                let r = score::score_track(t, &opts, crepe.as_ref());
                bar.inc(1);
                match r {
                    Ok(r) => Some(r),
                    Err(e) => {
                        errors.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{e:#}"));
                        None
                    }
                }
            })
            .collect()
    };
    let results = match args.jobs {
        Some(j) => match rayon::ThreadPoolBuilder::new().num_threads(j as usize).build() {
            Ok(pool) => pool.install(work),
            Err(e) => {
                eprintln!("error: cannot start {j} worker threads: {e}");
                return 2;
            }
        },
        None => work(),
    };
    bar.finish_and_clear();
    failures.extend(errors.into_inner().unwrap_or_else(|e| e.into_inner()));

    for t in &results {
        for w in &t.warnings {
            eprintln!("warning: {w}");
        }
    }
    if !results.is_empty() {
        print!("{}", output::score_table(&results, &metrics));
    }
    if let Some(path) = &args.json
        && let Err(e) = output::write_json(path, &results, &metrics)
    {
        failures.push(format!("{}: cannot write JSON: {e:#}", path.display()));
    }
    if let Some(path) = &args.csv
        && let Err(e) = crate::atomic::write(path, output::csv(&results, &metrics).as_bytes())
    {
        failures.push(format!("{}: cannot write CSV: {e:#}", path.display()));
    }
    if skipped > 0 {
        eprintln!("{skipped} references without an estimate skipped (--skip-missing)");
    }
    if !failures.is_empty() {
        eprintln!("{} scored, {} failed:", results.len(), failures.len());
        for f in &failures {
            eprintln!("  failed: {f}");
        }
    }
    i32::from(!failures.is_empty())
}
