//! Several queries in one run: `cargo bench --bench queries [-- SECONDS] [--model NAME]`.
//!
//! Writes SECONDS (default 60) of stereo 44.1 kHz 16-bit audio and separates 1, 4 and 12
//! queries with the bundled default model (or `--model NAME`), each two ways, every run its
//! own process: one run with `--query a,b,...` (decoded, resampled and featurised once, the
//! queries batched through the network) beside the peer, one run per query as before. Prints
//! wall time, real-time factor and peak RSS of each, and the ratio of the two wall times.
//! docs/architecture.md records the figures with this command.

use std::process::Command;

use splitflow::data::LABELS;

#[path = "common/measure.rs"]
mod measure;
use measure::measure;

fn main() -> splitflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let seconds: f32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(60.0);
    let model = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(splitflow::separate::default_model);
    let bin = env!("CARGO_BIN_EXE_splitflow");
    let dir = tempfile::tempdir()?;
    let song = dir.path().join("song.wav");
    splitflow::demo::write_long(&song, seconds)?;
    println!(
        "{seconds} s stereo 44.1 kHz 16-bit, model {model}; threads: {}",
        rayon::current_num_threads()
    );
    println!(
        "{:<8} {:<26} {:>9} {:>8} {:>9}",
        "queries", "run", "seconds", "RTF", "peak MB"
    );
    let run = |queries: &[&str], out: &str| -> (f64, f64) {
        let mut cmd = Command::new(bin);
        cmd.args(["separate", "--quiet", "--overwrite", "--model", &model, "-o"])
            .arg(dir.path().join(out))
            .arg("--query")
            .arg(queries.join(","))
            .arg(&song)
            .stderr(std::process::Stdio::null());
        measure(&mut cmd)
    };
    let show = |n: usize, what: &str, (secs, rss): (f64, f64)| {
        println!(
            "{n:<8} {what:<26} {secs:>9.2} {:>8.3} {rss:>9.0}",
            secs / f64::from(seconds)
        );
    };
    for n in [1usize, 4, 12] {
        let queries: Vec<&str> = LABELS.iter().copied().cycle().skip(2).take(n).collect();
        let together = run(&queries, "together");
        show(n, "one run, --query a,b,..", together);
        if n == 1 {
            continue;
        }
        let (mut secs, mut rss) = (0.0, 0.0f64);
        for q in &queries {
            let (s, r) = run(&[q], "apart");
            secs += s;
            rss = rss.max(r);
        }
        show(n, "one run per query (peer)", (secs, rss));
        println!("{n:<8} {:<26} {:>9.2}x", "speed-up over the peer", secs / together.0);
    }
    Ok(())
}
