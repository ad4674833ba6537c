//! The damage harness: thousands of mutated copies of the decoder fixtures, in every input
//! format, through `splitflow info`, `separate` and `score` (the release binary, one process
//! per run): counts of clean results, clean errors (exit 1 or 2 with a line naming the file:
//! an error, or `info`'s row of a damaged file), panics, hangs (past the time limit) and
//! crashes (killed by a signal), and the
//! peak memory of a run. Not a test (it takes minutes); docs/reliability.md has its figures.
//!
//! ```text
//! cargo build --release
//! cargo bench --bench damage -- [--n 200] [--seed 1] [--limit-s 20] [--bin target/release/splitflow]
//! ```
//!
//! Mutations, in turn: 1-16 flipped bits anywhere, a cut anywhere, the first 12-256 bytes of
//! another fixture spliced in front of the rest, a size field made huge (a WAV chunk, an MP4
//! box, an Ogg segment count: 0xFFFFFFF0), a run of 64-1024 garbage bytes. Besides: a WAV
//! whose header claims a 4 GB data chunk, one claiming 65,535 channels, one claiming 1 Hz.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    n: usize,
    seed: u64,
    limit: Duration,
    bin: PathBuf,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Args {
        n: get("--n").and_then(|v| v.parse().ok()).unwrap_or(200),
        seed: get("--seed").and_then(|v| v.parse().ok()).unwrap_or(1),
        limit: Duration::from_secs_f64(get("--limit-s").and_then(|v| v.parse().ok()).unwrap_or(20.0)),
        bin: get("--bin")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/splitflow")),
    }
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
    fn below(&mut self, n: usize) -> usize {
        self.next() % n.max(1)
    }
}

/// A 16-bit stereo WAV of `frames` frames of a tone, with `header` edits applied.
fn wav(frames: u32, edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let data_len = frames * 4;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&44_100u32.to_le_bytes());
    b.extend_from_slice(&(44_100u32 * 4).to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let v = ((i as f32 * 0.0627).sin() * 12_000.0) as i16;
        b.extend_from_slice(&v.to_le_bytes());
        b.extend_from_slice(&(-v).to_le_bytes());
    }
    edit(&mut b);
    b
}

/// Offsets of 4-byte size fields to make huge: after a WAV/AIFF chunk id, an MP4 box's size,
/// an Ogg page's segment table.
fn size_fields(b: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    for i in 0..b.len().saturating_sub(8) {
        let id = &b[i..i + 4];
        if [b"data", b"fmt ", b"COMM", b"SSND", b"RIFF"].iter().any(|k| id == *k) {
            out.push(i + 4);
        }
        if [b"moov", b"trak", b"mdat", b"stsz", b"stco", b"mdia", b"stbl"]
            .iter()
            .any(|k| id == *k)
            && i >= 4
        {
            out.push(i - 4);
        }
        if id == b"OggS" && i + 27 < b.len() {
            out.push(i + 22);
        }
    }
    out
}

fn mutate(good: &[u8], other: &[u8], kind: usize, rng: &mut Rng) -> Vec<u8> {
    let mut b = good.to_vec();
    match kind % 5 {
        0 => {
            for _ in 0..1 + rng.below(16) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 => {
            let k = (12 + rng.below(245)).min(other.len()).min(b.len());
            b[..k].copy_from_slice(&other[..k]);
        }
        3 => {
            let fields = size_fields(&b);
            if fields.is_empty() {
                let i = rng.below(b.len().saturating_sub(4));
                b[i..i + 4].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
            } else {
                let at = fields[rng.below(fields.len())];
                let huge = if b.starts_with(b"RIFF") || b.starts_with(b"OggS") {
                    0xFFFF_FFF0u32.to_le_bytes()
                } else {
                    0xFFFF_FFF0u32.to_be_bytes()
                };
                b[at..at + 4].copy_from_slice(&huge);
            }
        }
        _ => {
            let i = rng.below(b.len());
            let end = (i + 64 + rng.below(960)).min(b.len());
            for v in &mut b[i..end] {
                *v = rng.next() as u8;
            }
        }
    }
    b
}

#[derive(Default)]
struct Tally {
    runs: usize,
    ok: usize,
    clean_errors: usize,
    panics: usize,
    hangs: usize,
    crashes: usize,
    unclear_errors: usize,
    max_rss_kb: u64,
    max_secs: f64,
    total_secs: f64,
    examples: Vec<String>,
}

/// Peak resident memory (VmHWM, kB) of a running process.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs one command with a time limit; classifies the outcome.
fn run(cmd: &mut Command, file: &Path, limit: Duration, tally: &mut Tally) {
    let start = Instant::now();
    // Outputs are a few lines; a pipe holds 64 kB, so reading after the exit cannot block it.
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start the binary: {e}"),
    };
    let pid = child.id();
    let mut rss = 0;
    let status = loop {
        if let Some(kb) = vm_hwm(pid) {
            rss = rss.max(kb);
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("wait: {e}"),
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let mut err = String::new();
    let mut said = String::new();
    {
        use std::io::Read;
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut said);
        }
    }
    tally.runs += 1;
    tally.max_rss_kb = tally.max_rss_kb.max(rss);
    tally.max_secs = tally.max_secs.max(secs);
    tally.total_secs += secs;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let note = |what: &str, tally: &mut Tally| {
        if tally.examples.len() < 8 {
            tally
                .examples
                .push(format!("{what}: {name}: {}", err.lines().last().unwrap_or("")));
        }
    };
    match status {
        None => {
            tally.hangs += 1;
            note("hang", tally);
        }
        Some(s) => match s.code() {
            Some(0) => tally.ok += 1,
            Some(1 | 2) if err.contains("panicked") => {
                tally.panics += 1;
                note("panic", tally);
            }
            Some(1 | 2) => {
                // An error line (or, for info, the row of a damaged file) names the file.
                let named = err.lines().chain(said.lines()).any(|l| l.contains(&name));
                if named {
                    tally.clean_errors += 1;
                } else {
                    tally.unclear_errors += 1;
                    note("unclear error", tally);
                }
            }
            Some(101) => {
                tally.panics += 1;
                note("panic", tally);
            }
            _ => {
                tally.crashes += 1;
                note("crash", tally);
            }
        },
    }
}

fn main() {
    let args = parse_args();
    assert!(
        args.bin.is_file(),
        "{}: build it first (cargo build --release)",
        args.bin.display()
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let work = tempfile::tempdir().expect("temp dir");
    let mut goods: Vec<(String, Vec<u8>)> = [
        "tone.mp3",
        "tone.flac",
        "tone.ogg",
        "chirp.ogg",
        "tone_aac.m4a",
        "chirp_aac.m4a",
        "tone_alac.m4a",
        "tone.aiff",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(fixtures.join(f)).expect("fixture")))
    .collect();
    goods.push(("tone.wav".into(), wav(22_050, |_| {})));
    let reference = work.path().join("reference.wav");
    std::fs::write(&reference, wav(22_050, |_| {})).expect("write");

    // The named cases.
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        (
            "claims_4gb_data.wav".into(),
            wav(22_050, |b| b[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes())),
        ),
        (
            "claims_65535_channels.wav".into(),
            wav(22_050, |b| b[22..24].copy_from_slice(&u16::MAX.to_le_bytes())),
        ),
        (
            "claims_1_hz.wav".into(),
            wav(22_050, |b| b[24..28].copy_from_slice(&1u32.to_le_bytes())),
        ),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ args.seed);
    for (gi, (name, good)) in goods.iter().enumerate() {
        let other = &goods[(gi + 1) % goods.len()].1;
        for i in 0..args.n {
            let ext = name.rsplit('.').next().unwrap_or("bin");
            let stem = name.trim_end_matches(&format!(".{ext}"));
            cases.push((format!("{stem}_{i}.{ext}"), mutate(good, other, i, &mut rng)));
        }
    }
    println!(
        "damage harness: {} files ({} mutations of each of {} fixtures + 3 named), 3 commands each, limit {:.0} s",
        cases.len(),
        args.n,
        goods.len(),
        args.limit.as_secs_f64()
    );
    let started = Instant::now();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let path = work.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = work.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        run(
            Command::new(&args.bin).arg("info").arg(&path),
            &path,
            args.limit,
            tallies.entry("info").or_default(),
        );
        run(
            Command::new(&args.bin)
                .args(["separate", "--model", "hpss", "-q", "drums", "--quiet", "-o"])
                .arg(&out)
                .arg(&path),
            &path,
            args.limit,
            tallies.entry("separate").or_default(),
        );
        run(
            Command::new(&args.bin)
                .args(["score", "--reference"])
                .arg(&reference)
                .arg("--estimate")
                .arg(&path),
            &path,
            args.limit,
            tallies.entry("score").or_default(),
        );
        let _ = std::fs::remove_file(&path);
        if (i + 1) % 200 == 0 {
            eprintln!(
                "{} / {} files, {:.0} s",
                i + 1,
                cases.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{:<9} {:>6} {:>6} {:>12} {:>8} {:>6} {:>8} {:>8} {:>12} {:>10} {:>9}",
        "command", "runs", "ok", "clean error", "unclear", "panic", "hang", "crash", "peak RSS MB", "max s", "mean s"
    );
    for (cmd, t) in &tallies {
        println!(
            "{:<9} {:>6} {:>6} {:>12} {:>8} {:>6} {:>8} {:>8} {:>12.1} {:>10.2} {:>9.3}",
            cmd,
            t.runs,
            t.ok,
            t.clean_errors,
            t.unclear_errors,
            t.panics,
            t.hangs,
            t.crashes,
            t.max_rss_kb as f64 / 1024.0,
            t.max_secs,
            t.total_secs / t.runs.max(1) as f64
        );
    }
    for (cmd, t) in &tallies {
        for e in &t.examples {
            println!("  {cmd}: {e}");
        }
    }
    println!("total {:.0} s", started.elapsed().as_secs_f64());
}
