//! Training throughput: `cargo bench --bench train [-- --config configs/cpu-small-disc.json]
//! [--steps N] [--shards N] [--no-torch]`.
//!
//! On a generated corpus (harmonic tones, noise, clicks and low sines under four labels, 4 s
//! clips) and the given training config (the bundled default's by default):
//!
//! * data: batches per second of the mixture sampler + features + ideal masks on one thread;
//! * step: one optimiser step (forward, backward, clipping, AdamW, EMA) on prepared batches,
//!   median over N steps after a warm-up;
//! * run: `splitflow train`'s whole loop (its data worker thread included) for N steps;
//! * PyTorch: benches/train_torch.py, the same network, batch, loss and optimiser in PyTorch
//!   with the same number of threads, in the same run (skipped with `--no-torch` or when
//!   `python3 -c "import torch"` fails).
//!
//! Figures: audio-seconds per second (batch × crop seconds / step time), GFLOP/s (analytic
//! forward FLOPs × 3 for forward + backward, [`splitflow::model::ModelConfig::flops_per_audio_second`]),
//! and the ratio to PyTorch. docs/training.md records them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::Device;
use splitflow::data::manifest::{ClipRow, write_jsonl};
use splitflow::data::sampler::MixtureSampler;
use splitflow::dsp::bands::Bands;
use splitflow::train::config::TrainConfig;
use splitflow::train::trainer::{BatchShape, TrainOptions, Trainee, make_batch, train};

const RATE: u32 = 22050;
const LABELS: [&str; 4] = ["speech", "water", "drums", "bass"];

fn clip(label: &str, seed: u64) -> Vec<f32> {
    let n = 4 * RATE as usize;
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let f0 = 110.0 + 37.0 * seed as f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let v = match label {
                "speech" => {
                    (1..6)
                        .map(|h| (std::f64::consts::TAU * f0 * h as f64 * t).sin() / h as f64)
                        .sum::<f64>()
                        * 0.2
                }
                "water" => 0.3 * noise(),
                "drums" => {
                    let ph = (t * 4.0).fract();
                    (-ph * 40.0).exp() * noise() * 0.8
                }
                _ => 0.5 * (std::f64::consts::TAU * (40.0 + seed as f64 * 3.0) * t).sin(),
            };
            v as f32
        })
        .collect()
}

fn make_corpus(dir: &Path) -> splitflow::Result<()> {
    let mut rows = Vec::new();
    for (li, label) in LABELS.iter().enumerate() {
        for k in 0..4 {
            let split = if k == 3 { "valid" } else { "train" };
            let path = format!("audio/{label}/{k}.wav");
            let full = dir.join(&path);
            std::fs::create_dir_all(full.parent().expect("has a parent"))?;
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: RATE,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&full, spec)?;
            for v in clip(label, (li * 4 + k) as u64 + 1) {
                w.write_sample((v.clamp(-1.0, 1.0) * 32767.0) as i16)?;
            }
            w.finalize()?;
            rows.push(ClipRow {
                path,
                label: label.to_string(),
                duration: 4.0,
                rate: RATE,
                package: "bench".into(),
                source_file: format!("{label}{k}.wav"),
                group: format!("{label}{k}"),
                licence: "CC0".into(),
                split: split.into(),
            });
        }
    }
    write_jsonl(&dir.join("manifest.jsonl"), &rows)?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> splitflow::Result<()> {
    // The binary's allocator settings (a training run's system time depends on them).
    splitflow::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let config = PathBuf::from(arg(&args, "--config").unwrap_or_else(|| "configs/cpu-small-disc.json".into()));
    let steps: usize = arg(&args, "--steps").and_then(|s| s.parse().ok()).unwrap_or(12);
    let torch = !args.iter().any(|a| a == "--no-torch");
    let mut cfg = TrainConfig::load(&config)?;
    if let Some(n) = arg(&args, "--shards").and_then(|s| s.parse().ok()) {
        cfg.shards = n;
    }
    cfg.checkpoint_every = usize::MAX / 2;
    cfg.valid_every = usize::MAX / 2;
    cfg.valid_examples = 1;
    let threads = rayon::current_num_threads();
    let crop = f64::from(cfg.data.seconds);
    let audio_per_step = cfg.batch_size as f64 * crop;
    let flops_step = 3.0 * cfg.model.flops_per_audio_second(crop) * audio_per_step;
    println!(
        "config {}: batch {} x {crop} s in {} shard(s), {threads} threads, {:.2} GFLOP per step (forward x 3)",
        config.display(),
        cfg.batch_size,
        cfg.shards,
        flops_step / 1e9
    );

    let dir = tempfile::tempdir()?;
    make_corpus(dir.path())?;
    let sampler = MixtureSampler::open(dir.path(), "train", cfg.data.clone())?;
    let bands = Bands::new(cfg.model.bands.clone())?;

    // Data on one thread.
    let s = Instant::now();
    let batches = (0..steps as u64)
        .map(|b| make_batch(&sampler, &bands, BatchShape::of(&cfg), cfg.seed, b))
        .collect::<splitflow::Result<Vec<_>>>()?;
    let data_s = s.elapsed().as_secs_f64() / steps as f64;
    println!(
        "data:    {:.3} s per batch on one thread ({:.0} audio-s/s)",
        data_s,
        audio_per_step / data_s
    );

    // Optimiser steps on prepared batches.
    let dev = Device::Cpu;
    let mut tr = Trainee::new(&cfg, &dev)?;
    let params: usize = tr.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let mut times = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let s = Instant::now();
        tr.step(&cfg, b, i, &dev)?;
        if i > 0 {
            times.push(s.elapsed().as_secs_f64());
        }
    }
    let step_s = median(times);
    let ours = audio_per_step / step_s;
    println!(
        "step:    {step_s:.3} s ({params} parameters): {ours:.1} audio-s/s, {:.1} GFLOP/s",
        flops_step / step_s / 1e9
    );

    // The whole training loop.
    let out = dir.path().join("run");
    let run = |n: usize| -> splitflow::Result<f64> {
        let _ = std::fs::remove_dir_all(&out);
        let opts = TrainOptions {
            data: dir.path().to_path_buf(),
            config: cfg.clone(),
            out: out.clone(),
            resume: false,
            max_minutes: None,
            stop_at: Some(n),
            device: Device::Cpu,
            log_every: 0,
            quiet: true,
        };
        Ok(train(&opts)?.seconds)
    };
    let warm = 2;
    let t_small = run(warm)?;
    let t_big = run(warm + steps)?;
    let run_s = (t_big - t_small) / steps as f64;
    println!(
        "run:     {run_s:.3} s per step in `splitflow train`: {:.1} audio-s/s",
        audio_per_step / run_s
    );

    if torch {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_torch.py");
        let res = Command::new("python3")
            .arg(&script)
            .arg("--config")
            .arg(&config)
            .arg("--steps")
            .arg(steps.to_string())
            .arg("--threads")
            .arg(threads.to_string())
            .output();
        match res {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let step_t: Option<f64> = text
                    .lines()
                    .find_map(|l| l.strip_prefix("step_seconds "))
                    .and_then(|v| v.trim().parse().ok());
                for l in text.lines() {
                    println!("pytorch: {l}");
                }
                if let Some(t) = step_t {
                    println!(
                        "pytorch: {:.1} audio-s/s, {:.1} GFLOP/s; ours / pytorch = {:.2}x",
                        audio_per_step / t,
                        flops_step / t / 1e9,
                        t / step_s
                    );
                }
            }
            Ok(o) => println!(
                "pytorch: skipped ({})",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("failed")
            ),
            Err(e) => println!("pytorch: skipped ({e})"),
        }
    }
    Ok(())
}
