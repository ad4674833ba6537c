//! `splitflow train`: reads the config, runs [`crate::train::trainer::train`], prints where the
//! model went.

use super::args::TrainArgs;
use crate::train::config::TrainConfig;
use crate::train::trainer::{TrainOptions, label_average, train};

fn options(args: &TrainArgs) -> crate::Result<TrainOptions> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    if let Some(m) = args.max_minutes {
        anyhow::ensure!(
            m > 0.0 && m.is_finite(),
            "--max-minutes must be a positive number of minutes"
        );
    }
    Ok(TrainOptions {
        data: args.data.clone(),
        config,
        out: args.out.clone(),
        resume: args.resume,
        max_minutes: args.max_minutes,
        stop_at: args.stop_at,
        device: args.device.candle()?,
        log_every: args.log_every,
        quiet: args.quiet,
    })
}

pub fn run(args: &TrainArgs) -> i32 {
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    match train(&opts) {
        Ok(report) => {
            let valid = report
                .last_valid
                .as_ref()
                .map(|v| format!(", valid SI-SDRi {:.2} dB", label_average(v)))
                .unwrap_or_default();
            eprintln!(
                "{} at step {} after {:.1} min (loss {:.4}{valid}); model: {}",
                if report.stopped_by_budget {
                    "stopped (time budget)"
                } else if report.steps_done < opts.config.steps {
                    "stopped (--stop-at)"
                } else {
                    "done"
                },
                report.steps_done,
                report.seconds / 60.0,
                report.last_loss,
                opts.out.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
