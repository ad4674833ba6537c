//! `splitflow report`.

use super::args::ReportArgs;
use crate::report::{ReportOptions, write_report};
use crate::score::{ScoreOptions, default_metrics};

pub fn run(args: &ReportArgs) -> i32 {
    for (flag, dir) in [
        ("--mixtures", Some(&args.mixtures)),
        ("--estimates", Some(&args.estimates)),
        ("--references", args.references.as_ref()),
    ] {
        if let Some(d) = dir
            && !d.is_dir()
        {
            eprintln!("error: {flag} {}: not a folder", d.display());
            return 2;
        }
    }
    let opts = ReportOptions {
        mixtures: args.mixtures.clone(),
        estimates: args.estimates.clone(),
        references: args.references.clone(),
        out: args.out.clone(),
        title: args.title.clone(),
        sources: args.sources,
        score: ScoreOptions {
            metrics: args.metrics.clone().unwrap_or_else(|| default_metrics(true)),
            window_secs: 1.0,
            hop_secs: 1.0,
            resample: args.resample,
            zero_mean: false,
            mrstft_preset: "auraloss".into(),
        },
    };
    match write_report(&opts) {
        Ok(w) => {
            for warning in &w.warnings {
                eprintln!("warning: {warning}");
            }
            eprintln!(
                "{}: {} tracks, {} estimates, {} scored, {:.1} MB",
                args.out.display(),
                w.tracks,
                w.estimates,
                w.scored,
                w.bytes as f64 / 1e6
            );
            for e in &w.errors {
                eprintln!("  failed: {e}");
            }
            i32::from(!w.errors.is_empty())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
