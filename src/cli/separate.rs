//! `splitflow separate`: plans the batch, runs it on a thread pool with progress bars, and
//! reports failures at the end.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::args::SeparateArgs;
use super::progress::{self, say};
use crate::audio::{AudioInfo, AudioReader};
use crate::separate::batch::{self, BatchOptions, Planned};
use crate::separate::file::{FileJob, OutputOptions, separate_file, write_uncertainty};
use crate::separate::log::{BatchLog, Entry, Status, unix_now};
use crate::separate::neural::FlowOptions;
use crate::separate::shard::Shard;
use crate::separate::{Negated, Query, Segment, Separator, default_model, load};

fn file_style() -> ProgressStyle {
    progress::bar("{prefix:>24!} [{bar:30}] {percent:>3}% {msg}", "=> ")
}

fn batch_style() -> ProgressStyle {
    progress::bar(
        "{prefix:>24!} [{bar:30}] {pos}/{len} files, {elapsed} elapsed, eta {eta}",
        "## ",
    )
}

/// The separator and queries the flags ask for.
struct Setup {
    sep: Box<dyn Separator>,
    queries: Vec<Query>,
    /// {query} of each output, in the order of `queries`.
    query_names: Vec<String>,
    /// {model} in output names.
    model_name: String,
}

/// The labels of a comma-separated list (`all`: every label the separator has).
fn label_list(text: &str, flag: &str, sep: &dyn Separator) -> crate::Result<Vec<String>> {
    let items: Vec<String> = text.split(',').map(|s| s.trim().to_lowercase()).collect();
    anyhow::ensure!(
        items.iter().all(|s| !s.is_empty()),
        "{flag} '{text}': empty label in the list"
    );
    if items.iter().any(|s| s == "all") {
        anyhow::ensure!(items.len() == 1, "{flag} '{text}': 'all' stands alone");
        anyhow::ensure!(flag == "--query", "{flag} all would leave nothing; use --query all");
        let labels = sep.labels();
        anyhow::ensure!(
            !labels.is_empty(),
            "model '{}' has no label list for --query all; name the queries",
            sep.name()
        );
        return Ok(labels);
    }
    Ok(items)
}

fn setup(args: &SeparateArgs) -> crate::Result<Setup> {
    check_segment(args)?;
    let device = args.device.candle()?;
    let flow = FlowOptions {
        sampler: args.sampler.clone(),
        steps: args.steps.map(|s| s as usize),
        samples: args.samples as usize,
        seed: args.seed,
        temperature: args.temperature.unwrap_or(crate::separate::neural::DEFAULT_TEMPERATURE),
        device,
    };
    let model = args.model.clone().unwrap_or_else(default_model);
    let mut sep = load(&model, &flow)?;
    let (queries, query_names): (Vec<Query>, Vec<String>) = match (&args.query, args.like.is_empty(), &args.exclude) {
        (Some(q), _, _) => label_list(q, "--query", &*sep)?
            .iter()
            .map(|l| {
                let q = Query::from_label(l);
                let name = q.name();
                (q, name)
            })
            .unzip(),
        (_, false, _) => args
            .like
            .iter()
            .map(|clip| {
                let q = Query::Example(clip.clone());
                let name = q.name();
                (q, name)
            })
            .unzip(),
        (_, _, Some(q)) => {
            let list = label_list(q, "--exclude", &*sep)?;
            sep = Box::new(Negated(sep));
            list.iter()
                .map(|l| {
                    let q = Query::from_label(l);
                    let name = format!("all_but_{}", q.name());
                    (q, name)
                })
                .unzip()
        }
        _ => anyhow::bail!("give --query, --like or --exclude"),
    };
    for (i, name) in query_names.iter().enumerate() {
        anyhow::ensure!(
            !query_names[..i].contains(name),
            "query '{name}' is given twice (each query names its own output)"
        );
    }
    for q in &queries {
        sep.check_query(q)?;
    }
    // A model folder's path would put separators into file names: use its last component.
    let model_name = std::path::Path::new(&model)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(model);
    Ok(Setup {
        sep,
        queries,
        query_names,
        model_name,
    })
}

pub fn run(args: &SeparateArgs) -> i32 {
    let Setup {
        sep,
        queries,
        query_names,
        model_name,
    } = match setup(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    if let Err(e) = batch::validate_template(&args.filename) {
        eprintln!("error: {e}");
        return 2;
    }
    let outputs_per_file = queries.len() + usize::from(args.residual);
    if outputs_per_file > 1 && !args.filename.contains("{query}") {
        eprintln!(
            "error: --filename '{}' must contain {{query}}: each file gets {outputs_per_file} outputs",
            args.filename
        );
        return 2;
    }
    // {query} in the log and the summary.
    let query_name = query_names.join(",");

    let (files, mut failures) = batch::collect_inputs(&args.inputs, args.recursive);
    let shard = match shard_of(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // A shard plans the whole batch (so that two inputs with one output collide in every
    // shard alike, not only in the one that holds both) and runs its own slice of it.
    let (files, mine) = match shard {
        Some(s) => {
            let mut all = files;
            all.sort();
            all.dedup();
            let mine: std::collections::HashSet<std::path::PathBuf> = s.select(all.clone()).into_iter().collect();
            (all, Some(mine))
        }
        None => (files, None),
    };
    let log = match args.log.as_deref().map(BatchLog::open).transpose() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let entry =
        |input: &std::path::Path, outputs: Vec<std::path::PathBuf>, status: Status, error: Option<String>| Entry {
            input: input.to_path_buf(),
            outputs,
            status,
            error,
            warning: None,
            seconds: None,
            rtf: None,
            audio_seconds: None,
            model: model_name.clone(),
            query: query_name.clone(),
            shard: shard.map(|s| s.to_string()),
            unix_time: unix_now(),
        };
    let write_log = |e: Entry| {
        if let Some(l) = &log
            && let Err(err) = l.append(&e)
        {
            eprintln!("warning: {err:#}");
        }
    };
    let opts = BatchOptions {
        out_dir: args.out.clone(),
        template: args.filename.clone(),
        ext: args.format.ext().to_string(),
        residual: args.residual,
        skip_existing: args.skip_existing,
        overwrite: args.overwrite,
    };
    let plan = batch::plan(&files, &query_names, &model_name, &opts)
        .into_iter()
        .filter(|p| mine.as_ref().is_none_or(|m| m.contains(p.input())));
    let mut jobs = Vec::new();
    let mut skipped = 0;
    for p in plan {
        match p {
            Planned::Run(job) => {
                if !args.quiet && !job.keep.is_empty() {
                    let kept: Vec<String> = job.keep.iter().map(|k| k.display().to_string()).collect();
                    eprintln!(
                        "complete {} ({} exists; writing the missing output)",
                        job.input.display(),
                        kept.join(", ")
                    );
                }
                jobs.push(job)
            }
            Planned::Skip { input, outputs } => {
                skipped += 1;
                if !args.quiet {
                    let all: Vec<String> = outputs.iter().map(|o| o.display().to_string()).collect();
                    eprintln!("skip {} ({} exist)", input.display(), all.join(", "));
                }
                if !args.dry_run {
                    write_log(entry(&input, outputs, Status::Skipped, None));
                }
            }
            Planned::Fail { input, error } => failures.push((input, error)),
        }
    }

    if args.dry_run {
        for job in &jobs {
            let format = match AudioReader::open(&job.input) {
                Ok(r) => {
                    let spec = crate::separate::file::output_spec(r.info(), &output_options(args), job.first_output());
                    format!("{} Hz, {} ch, {}", spec.sample_rate, spec.channels, spec.format)
                }
                Err(e) => {
                    failures.push((job.input.clone(), format!("{e:#}")));
                    format!("unreadable: {e:#}")
                }
            };
            println!("{} -> {} [{format}]", job.input.display(), output_list(job));
        }
        for (_, e) in &failures {
            eprintln!("error: {e}");
        }
        return i32::from(!failures.is_empty());
    }

    // SIGINT, SIGTERM (timeout, docker stop, systemd, Slurm) and SIGHUP: running files stop at
    // the next block and delete their temp files, files not started are left, the summary is
    // printed, and the exit status is 130.
    if let Err(e) = ctrlc::set_handler(|| {
        crate::separate::file::CANCELLED.store(true, std::sync::atomic::Ordering::Relaxed);
    }) {
        eprintln!("warning: cannot install the interrupt handler: {e}");
    }
    let stale = remove_stale_temps(&jobs, args.quiet, &mut failures);
    // Inputs that failed before running (missing, colliding outputs, ...).
    for (input, error) in &failures {
        write_log(entry(input, Vec::new(), Status::Failed, Some(error.clone())));
    }
    let new_folders: Vec<std::path::PathBuf> = jobs.iter().flat_map(batch::folders_to_create).collect();

    let mp = progress::multi(args.quiet);
    let total_bar = mp.add(
        ProgressBar::new(jobs.len() as u64)
            .with_style(batch_style())
            .with_prefix("batch"),
    );
    total_bar.enable_steady_tick(Duration::from_millis(250));
    let failures = Mutex::new(failures);
    let written = Mutex::new(0usize);
    let not_started = Mutex::new(0usize);
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(args.jobs as usize).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot start {} worker threads: {e}", args.jobs);
            return 2;
        }
    };
    let started = Instant::now();
    let out_opts = output_options(args);
    pool.install(|| {
        jobs.par_iter().for_each(|job| {
            let outputs: Vec<std::path::PathBuf> = job.outputs().cloned().collect();
            if cancelled() {
                *not_started.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                write_log(entry(&job.input, outputs, Status::Interrupted, None));
                return;
            }
            let started = Instant::now();
            let result = run_one(&*sep, &queries, job, &out_opts, args.uncertainty, &mp);
            match result {
                Ok(done) => {
                    *written.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    if let Some(w) = &done.warning {
                        say(&mp, w.clone());
                    }
                    if !args.quiet {
                        say(&mp, done.line.clone());
                    }
                    write_log(Entry {
                        seconds: Some(done.seconds),
                        rtf: (done.audio_seconds >= 1.0).then(|| done.seconds / done.audio_seconds),
                        audio_seconds: Some(done.audio_seconds),
                        warning: done.warning,
                        ..entry(&job.input, outputs, Status::Ok, None)
                    });
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    say(&mp, format!("error: {msg}"));
                    let status = if cancelled() {
                        Status::Interrupted
                    } else {
                        Status::Failed
                    };
                    write_log(Entry {
                        seconds: Some(started.elapsed().as_secs_f64()),
                        ..entry(&job.input, outputs, status, Some(msg.clone()))
                    });
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((job.input.clone(), msg));
                }
            }
            total_bar.inc(1);
        });
    });
    total_bar.finish_and_clear();
    // Folders this run made that stayed empty (items that failed or never started) go again.
    batch::remove_empty_folders(new_folders);

    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    let written = written.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut summary = format!("{written} separated");
    if skipped > 0 {
        summary += &format!(", {skipped} skipped");
    }
    summary += &format!(
        ", {} failed in {:.1} s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    summary += &format!(" ({query_name} with model {model_name})");
    if let Some(s) = shard {
        summary += &format!(" [shard {s}]");
    }
    if stale > 0 {
        summary += &format!(", {stale} stale temporary file(s) removed");
    }
    let interrupted = cancelled();
    if interrupted {
        let left = not_started.into_inner().unwrap_or_else(|e| e.into_inner());
        summary += &format!(" (interrupted: {left} not started; no partial file left)");
    }
    eprintln!("{summary}");
    for (_, e) in &failures {
        eprintln!("  failed: {e}");
    }
    if interrupted {
        130
    } else {
        i32::from(!failures.is_empty())
    }
}

fn cancelled() -> bool {
    crate::separate::file::CANCELLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Removes the temp files that a killed run (SIGKILL, power cut) left beside the outputs this
/// run is about to write, saying so; returns how many went. One that cannot be removed is a
/// failure of its input.
fn remove_stale_temps(jobs: &[FileJob], quiet: bool, failures: &mut Vec<(std::path::PathBuf, String)>) -> usize {
    let mut removed = 0;
    for job in jobs {
        for temp in job.outputs().flat_map(|o| crate::audio::stale_temp_files(o)) {
            match std::fs::remove_file(&temp) {
                Ok(()) => {
                    removed += 1;
                    if !quiet {
                        eprintln!("removed {} (left by an interrupted run)", temp.display());
                    }
                }
                Err(e) => failures.push((
                    job.input.clone(),
                    format!("{}: cannot remove stale temporary file: {e}", temp.display()),
                )),
            }
        }
    }
    removed
}

fn output_options(args: &SeparateArgs) -> OutputOptions {
    OutputOptions {
        sample_rate: args.sample_rate,
        format: args.bit_depth,
        overwrite: args.overwrite,
        damaged: if args.allow_damaged {
            crate::audio::Damaged::Keep
        } else {
            crate::audio::Damaged::Fail
        },
        segment: segment(args),
    }
}

/// `--segment` / `--overlap` as a segmentation (`None`: the separator's own). The default
/// overlap is 1 s, or a quarter of a segment shorter than 4 s.
fn segment(args: &SeparateArgs) -> Option<Segment> {
    if args.segment.is_none() && args.overlap.is_none() {
        return None;
    }
    let length_secs = args.segment.unwrap_or(Segment::default().length_secs);
    let overlap_secs = args.overlap.unwrap_or((length_secs / 4.0).min(1.0));
    Some(Segment {
        length_secs,
        overlap_secs,
    })
}

/// Refuses a segmentation the engine cannot run: segments under 0.1 s, or an overlap not
/// shorter than the segment.
fn check_segment(args: &SeparateArgs) -> crate::Result<()> {
    if let Some(s) = segment(args) {
        anyhow::ensure!(
            s.length_secs >= 0.1,
            "--segment {} s is too short (at least 0.1 s)",
            s.length_secs
        );
        anyhow::ensure!(
            s.overlap_secs < s.length_secs,
            "--overlap {} s must be shorter than the segment ({} s)",
            s.overlap_secs,
            s.length_secs
        );
    }
    Ok(())
}

/// What `run_one` reports of a separated file.
struct Done {
    /// The line to print.
    line: String,
    /// For a damaged input kept with `--allow-damaged`.
    warning: Option<String>,
    audio_seconds: f64,
    seconds: f64,
}

/// The shard `--shard` (and `--shards`) ask for.
fn shard_of(args: &SeparateArgs) -> Result<Option<Shard>, String> {
    match args.shard.as_deref() {
        None => Ok(None),
        Some("auto") => Shard::from_env(args.shards.map(|n| n as usize), |k| std::env::var(k).ok()).map(Some),
        Some(spec) => spec.parse().map(Some),
    }
}

/// The outputs of a job as printed: `a.wav + b.wav + rest.wav`.
fn output_list(job: &FileJob) -> String {
    let all: Vec<String> = job.outputs().map(|o| o.display().to_string()).collect();
    all.join(" + ")
}

/// Separates one file (every query) with its own progress bar.
fn run_one(
    sep: &dyn Separator,
    queries: &[Query],
    job: &FileJob,
    opts: &OutputOptions,
    uncertainty: bool,
    mp: &MultiProgress,
) -> crate::Result<Done> {
    let name = job
        .input
        .file_name()
        .map_or_else(|| job.input.display().to_string(), |n| n.to_string_lossy().into());
    let bar = mp.insert(0, ProgressBar::new(1).with_style(file_style()).with_prefix(name));
    let start = Instant::now();
    let progress = |info: &AudioInfo, frames: u64| {
        bar.set_length(info.frames.unwrap_or(0).max(frames).max(1));
        bar.set_position(frames);
        let audio = frames as f64 / info.sample_rate as f64;
        if audio > 0.0 {
            bar.set_message(format!(
                "{audio:.1} s audio, RTF {:.3}",
                start.elapsed().as_secs_f64() / audio
            ));
        }
    };
    let result = separate_file(sep, queries, job, opts, &progress);
    bar.finish_and_clear();
    mp.remove(&bar);
    let report = result?;
    let mut picture = String::new();
    if uncertainty {
        for (query, target) in queries.iter().zip(&job.targets) {
            let png = target.with_extension("uncertainty.png");
            if write_uncertainty(sep, query, &job.input, &png, opts.damaged, opts.segment)? {
                picture += &format!(" + {}", png.display());
            } else {
                picture = " (no uncertainty picture: the model is not generative)".into();
                break;
            }
        }
    }
    let warning = report.damage.as_ref().map(|d| {
        format!(
            "warning: {}: {} (kept what decodes)",
            job.input.display(),
            d.describe(report.info.sample_rate)
        )
    });
    let audio = report.frames as f64 / report.info.sample_rate as f64;
    // A real-time factor of a file shorter than a second measures start-up, not speed.
    let speed = if audio >= 1.0 {
        format!(", RTF {:.3}", report.real_time_factor())
    } else {
        format!(", {:.2} s", report.seconds)
    };
    let line = format!(
        "{} -> {}{picture} ({audio:.1} s audio{speed})",
        job.input.display(),
        output_list(job),
    );
    Ok(Done {
        line,
        warning,
        audio_seconds: audio,
        seconds: report.seconds,
    })
}
