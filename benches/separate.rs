//! Neural separation benchmark: `cargo bench --bench separate [-- SECONDS] [--config FILE]`.
//!
//! Builds a model folder with the shipped base configuration (configs/base.json) and random
//! weights (speed does not depend on the values), writes SECONDS (default 60) of stereo
//! 44.1 kHz 16-bit audio, and times `splitflow separate --model DIR` end to end (decode,
//! resample to 22.05 kHz, features, sampler, mask at 44.1 kHz on both channels, write) for
//! mean flow 1 and 2 steps, Euler 4 and 8 steps, and 4 samples of 1 step: wall time, real-time
//! factor and peak RSS of each run (its own process). HPSS runs in the same session as the
//! peer. Figures go to stdout; docs/model.md records them with this command.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use splitflow::model::Network;
use splitflow::train::config::TrainConfig;

#[path = "common/measure.rs"]
mod measure;
use measure::measure;

fn main() -> splitflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(60.0);
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/base.json"));
    let bin = env!("CARGO_BIN_EXE_splitflow");
    let dir = tempfile::tempdir()?;

    let cfg = TrainConfig::load(&config)?;
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model)?;
    std::fs::copy(&config, model.join("config.json"))?;
    let varmap = VarMap::new();
    let _net = Network::new(&cfg.model, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    varmap.save(model.join("model.safetensors"))?;
    let params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    println!(
        "model {}: {params} parameters, {:.3} GFLOP per audio second (network, 10 s chunks)",
        config.display(),
        cfg.model.flops_per_audio_second(10.0) / 1e9
    );

    let song = dir.path().join("song.wav");
    splitflow::demo::write_long(&song, seconds)?;
    println!(
        "{seconds} s stereo 44.1 kHz 16-bit; threads: {}",
        rayon::current_num_threads()
    );
    println!("{:<22} {:>9} {:>8} {:>9}", "run", "seconds", "RTF", "peak MB");
    let runs: &[(&str, &[&str])] = &[
        ("hpss (peer)", &["--model", "hpss", "--query", "drums"]),
        ("meanflow:1", &["--sampler", "meanflow", "--steps", "1"]),
        ("meanflow:2", &["--sampler", "meanflow", "--steps", "2"]),
        ("euler:4", &["--sampler", "euler", "--steps", "4"]),
        ("euler:8", &["--sampler", "euler", "--steps", "8"]),
        (
            "meanflow:1 x4 samples",
            &["--sampler", "meanflow", "--steps", "1", "--samples", "4"],
        ),
    ];
    for (name, extra) in runs {
        let out = dir.path().join("out");
        let mut cmd = Command::new(bin);
        cmd.args(["separate", "--quiet", "--overwrite", "-o"]).arg(&out);
        if !extra.contains(&"--model") {
            cmd.arg("--model").arg(&model).args(["--query", "drums"]);
        }
        cmd.args(*extra).arg(&song);
        let (secs, rss) = measure(&mut cmd);
        println!("{name:<22} {secs:>9.2} {:>8.3} {rss:>9.0}", secs / f64::from(seconds));
    }
    Ok(())
}
