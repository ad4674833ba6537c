//! Pipeline benchmark: `cargo bench --bench pipeline [-- MINUTES]`.
//!
//! 1. Decode + resample (44.1 → 16 → 44.1 kHz) + chunked identity + write of a long stereo
//!    44.1 kHz 16-bit WAV (60 minutes by default): real-time factor and peak RSS of the
//!    `splitflow` binary, and the same for `sox` doing the two conversions when it is
//!    installed (the peer, measured in the same run).
//! 2. HPSS on 60 s of stereo 44.1 kHz: real-time factor and peak RSS.
//!
//! Figures go to stdout; docs/architecture.md records them with this command.

use std::process::Command;
use std::time::Instant;

/// Runs a command; returns (wall seconds, peak RSS of the child in MB).
fn measure(cmd: &mut Command) -> (f64, f64) {
    let start = Instant::now();
    let status = cmd.status().expect("cannot start command");
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "{cmd:?} failed: {status}");
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    // ru_maxrss is the largest child so far (KiB on Linux): run the biggest job first or
    // read it as an upper bound.
    (secs, usage.ru_maxrss as f64 / 1024.0)
}

fn main() -> splitflow::Result<()> {
    let minutes: f32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(60.0);
    let bin = env!("CARGO_BIN_EXE_splitflow");
    let dir = tempfile::tempdir()?;
    let long = dir.path().join("long.wav");
    let t = Instant::now();
    splitflow::demo::write_long(&long, minutes * 60.0)?;
    println!(
        "generated {minutes} min stereo 44.1 kHz 16-bit in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let audio_secs = minutes as f64 * 60.0;

    let (secs, rss) = measure(
        Command::new(bin)
            .args(["separate", "--quiet", "--query", "x", "--model", "identity@16000", "-o"])
            .arg(dir.path().join("out"))
            .arg(&long),
    );
    println!(
        "splitflow decode+resample 44.1->16->44.1 kHz+chunked identity+write, {minutes} min: {secs:.1} s, RTF {:.4}, peak RSS {rss:.0} MB",
        secs / audio_secs
    );
    std::fs::remove_dir_all(dir.path().join("out"))?;

    if Command::new("sox").arg("--version").output().is_ok() {
        let mid = dir.path().join("mid.wav");
        let back = dir.path().join("back.wav");
        let (s1, _) = measure(
            Command::new("sox")
                .arg(&long)
                .args(["-r", "16000", "-e", "float"])
                .arg(&mid)
                .args(["rate", "-v"]),
        );
        let (s2, _) = measure(
            Command::new("sox")
                .arg(&mid)
                .args(["-r", "44100", "-b", "16"])
                .arg(&back)
                .args(["rate", "-v"]),
        );
        let peer = s1 + s2;
        println!(
            "peer sox rate -v 44.1->16->44.1 kHz (two passes via a file), {minutes} min: {peer:.1} s, RTF {:.4}; splitflow/sox time ratio {:.2}",
            peer / audio_secs,
            secs / peer
        );
    } else {
        println!("peer sox not installed (apt-get install sox): no peer figure");
    }

    let short = dir.path().join("60s.wav");
    splitflow::demo::write_long(&short, 60.0)?;
    let (secs, rss) = measure(
        Command::new(bin)
            .args(["separate", "--quiet", "--query", "drums", "--model", "hpss", "-o"])
            .arg(dir.path().join("hpss"))
            .arg(&short),
    );
    println!(
        "splitflow hpss, 60 s stereo 44.1 kHz: {secs:.2} s, RTF {:.4}, peak RSS <= {rss:.0} MB",
        secs / 60.0
    );
    Ok(())
}
