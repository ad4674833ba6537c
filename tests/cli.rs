//! End-to-end runs of the `splitflow` binary on small generated audio.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::{read_wav, si_sdr, to_f64, write_wav};

fn splitflow() -> Command {
    Command::cargo_bin("splitflow").unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `splitflow separate --query QUERY --quiet -o OUT [EXTRA...] INPUTS...` with
/// `--model hpss` unless EXTRA names a model (the command-line mechanics are tested on the fast
/// classical separator; the bundled model has its own run below).
fn separate(query: &str, out: &Path, extra: &[&str], inputs: &[&Path]) -> std::process::Output {
    let mut cmd = splitflow();
    cmd.arg("separate");
    if !extra.contains(&"--model") {
        cmd.args(["--model", "hpss"]);
    }
    cmd.args(["--query", query, "--quiet", "-o"]).arg(out).args(extra);
    for i in inputs {
        cmd.arg(i);
    }
    cmd.output().unwrap()
}

/// Integer outputs (read as f64) of a stereo input: every channel of `target` has the input's length and
/// `target + residual` is the input, sample for sample (`what` names the item in failures).
fn assert_residual_completes(mix: &[Vec<f64>], target: &[Vec<f64>], residual: &[Vec<f64>], what: &str) {
    assert_eq!(mix.len(), 2, "{what}: stereo input");
    for c in 0..2 {
        assert_eq!(mix[c].len(), target[c].len(), "{what} channel {c}");
        for i in 0..mix[c].len() {
            assert_eq!(target[c][i] + residual[c][i], mix[c][i], "{what} channel {c} frame {i}");
        }
    }
}

/// SI-SDR (dB) of a 16-bit mixture and of a 16-bit drums estimate (as read by `read_wav`)
/// against the demo song's drums.
fn drums_si_sdr(song: &splitflow::demo::DemoSong, mix: Vec<Vec<f64>>, estimate: Vec<Vec<f64>>) -> (f64, f64) {
    let scale = |p: Vec<Vec<f64>>| {
        p.into_iter()
            .map(|c| c.into_iter().map(|v| v / 32768.0).collect())
            .collect::<Vec<_>>()
    };
    let drums = to_f64(&song.drums);
    (si_sdr(&drums, &scale(mix)), si_sdr(&drums, &scale(estimate)))
}

/// A 3 s demo song at 22.05 kHz, 16-bit stereo, in `dir`; returns the song.
fn demo(dir: &Path) -> splitflow::demo::DemoSong {
    let song = splitflow::demo::render(22_050, 3.0);
    write_wav(&dir.join("song.wav"), &song.mixture(), 22_050, 16, false);
    song
}

#[test]
fn separates_drums_keeps_format_and_residual_sums_to_input() {
    let tmp = tempfile::tempdir().unwrap();
    let song = demo(tmp.path());
    let out = tmp.path().join("out");
    let run = separate("drums", &out, &["--residual"], &[&tmp.path().join("song.wav")]);
    assert!(run.status.success(), "{}", stderr(&run));
    let (in_spec, mix) = read_wav(&tmp.path().join("song.wav"));
    let (t_spec, target) = read_wav(&out.join("song/drums.wav"));
    let (r_spec, residual) = read_wav(&out.join("song/no_drums.wav"));
    assert_eq!(t_spec, in_spec);
    assert_eq!(r_spec, in_spec);
    assert_residual_completes(&mix, &target, &residual, "song");
    // The drums estimate is closer to the true drums than the mixture is.
    let (base, est) = drums_si_sdr(&song, mix, target);
    eprintln!("drums SI-SDR: mixture {base:.2} dB, hpss {est:.2} dB");
    assert!(est - base > 4.0, "SI-SDR improvement {:.2} dB", est - base);
}

#[test]
fn keeps_24_bit_and_float_and_honours_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let song = splitflow::demo::render(48_000, 0.7);
    write_wav(&tmp.path().join("a24.wav"), &song.mixture(), 48_000, 24, false);
    write_wav(&tmp.path().join("f32.wav"), &song.mixture(), 48_000, 32, true);
    let out = tmp.path().join("o");
    let run = separate("harmonic", &out, &[], &[tmp.path()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let (s24, _) = read_wav(&out.join("a24/harmonic.wav"));
    assert_eq!(
        (s24.bits_per_sample, s24.sample_format, s24.sample_rate),
        (24, hound::SampleFormat::Int, 48_000)
    );
    let (sf, _) = read_wav(&out.join("f32/harmonic.wav"));
    assert_eq!((sf.bits_per_sample, sf.sample_format), (32, hound::SampleFormat::Float));

    let out2 = tmp.path().join("o2");
    let run = separate(
        "drums",
        &out2,
        &["--sample-rate", "16000", "--bit-depth", "16"],
        &[&tmp.path().join("a24.wav")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (s, p) = read_wav(&out2.join("a24/drums.wav"));
    assert_eq!((s.sample_rate, s.bits_per_sample, s.channels), (16_000, 16, 2));
    assert_eq!(
        p[0].len(),
        (song.drums[0].len() as u64 * 16_000).div_ceil(48_000) as usize
    );
}

#[test]
fn identity_through_resampling_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    // Band-limited content (below 7 kHz): resampling to 16 kHz and back must keep it.
    let rate = 44_100;
    let x: Vec<f32> = (0..rate * 2)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() + 0.2 * (2.0 * std::f32::consts::PI * 3100.0 * t).sin()
        })
        .collect();
    write_wav(&tmp.path().join("tone.wav"), &[x.clone(), x], rate as u32, 32, true);
    let out = tmp.path().join("o");
    let run = separate(
        "x",
        &out,
        &["--model", "identity@16000"],
        &[&tmp.path().join("tone.wav")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, inp) = read_wav(&tmp.path().join("tone.wav"));
    let (_, y) = read_wav(&out.join("tone/x.wav"));
    assert_eq!(inp[0].len(), y[0].len());
    // Ignore 50 ms at each end (the signal starts and stops abruptly there).
    let edge = rate / 20;
    let (mut sig, mut err) = (0.0, 0.0);
    for c in 0..2 {
        for i in edge..inp[c].len() - edge {
            sig += inp[c][i] * inp[c][i];
            err += (inp[c][i] - y[c][i]).powi(2);
        }
    }
    let db = 10.0 * (err / sig).log10();
    eprintln!("identity@16000 error: {db:.1} dB");
    assert!(db < -60.0, "round-trip error {db:.1} dB");
}

#[test]
fn batch_goes_on_past_bad_files_and_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    let song = splitflow::demo::render(22_050, 0.5);
    write_wav(&dir.join("good.wav"), &song.mixture(), 22_050, 16, false);
    std::fs::write(dir.join("text.wav"), "this is not audio\n").unwrap();
    std::fs::write(dir.join("empty.wav"), b"").unwrap();
    let out = tmp.path().join("o");
    let run = separate("drums", &out, &[], &[&dir]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(out.join("good/drums.wav").exists());
    assert!(
        !out.join("text").exists() && !out.join("empty").exists(),
        "no output for bad files"
    );
    assert!(err.contains("1 separated") && err.contains("2 failed"), "{err}");
    assert!(err.contains("text.wav") && err.contains("empty.wav"), "{err}");
    // No temp files left behind.
    let leftovers: Vec<_> = walk(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let out = tmp.path().join("o");
    let run = separate(
        "drums",
        &out,
        &["--residual", "--dry-run"],
        &[&tmp.path().join("song.wav")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains("song/drums.wav") && text.contains("song/no_drums.wav"),
        "{text}"
    );
    assert!(text.contains("22050 Hz, 2 ch, 16-bit int"), "{text}");
    assert!(!out.exists());

    // An input that cannot be decoded is listed as such and makes the dry run fail.
    std::fs::write(tmp.path().join("bad.wav"), b"RIFF....WAVEjunk").unwrap();
    let run = separate(
        "drums",
        &out,
        &["--dry-run"],
        &[&tmp.path().join("song.wav"), &tmp.path().join("bad.wav")],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("unreadable"));
    assert!(stderr(&run).contains("bad.wav"), "{}", stderr(&run));
    assert!(!out.exists());
}

#[test]
fn existing_outputs_are_kept_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let out = tmp.path().join("o");
    let target = out.join("song/drums.wav");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, "precious").unwrap();
    let base = || {
        let mut c = splitflow();
        c.args(["separate", "--model", "hpss", "-q", "drums", "--quiet", "-o"])
            .arg(&out)
            .arg(tmp.path().join("song.wav"));
        c
    };
    let run = base().output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("exists (use --overwrite or --skip-existing)"),
        "{}",
        stderr(&run)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

    let run = base().arg("--skip-existing").output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

    let run = base().arg("--overwrite").output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(read_wav(&target).0.sample_rate, 22_050);
}

/// `--skip-existing` completes an item that an interrupted run half did: the target is there,
/// the residual is missing. Only the residual is written, the target's bytes stay, and the two
/// still sum to the input (the separation is deterministic).
#[test]
fn skip_existing_completes_a_half_done_item() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let out = tmp.path().join("o");
    let song = tmp.path().join("song.wav");
    let run = separate("drums", &out, &["--residual"], &[&song]);
    assert!(run.status.success(), "{}", stderr(&run));
    let (target, residual) = (out.join("song/drums.wav"), out.join("song/no_drums.wav"));
    let target_bytes = std::fs::read(&target).unwrap();
    let residual_bytes = std::fs::read(&residual).unwrap();
    std::fs::remove_file(&residual).unwrap();

    let run = rerun_skip_existing(&out, std::slice::from_ref(&song));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("complete") && stderr(&run).contains("1 separated"),
        "{}",
        stderr(&run)
    );
    assert_eq!(std::fs::read(&target).unwrap(), target_bytes);
    assert_eq!(std::fs::read(&residual).unwrap(), residual_bytes);
    let (_, mix) = read_wav(&song);
    let (_, t) = read_wav(&target);
    let (_, r) = read_wav(&residual);
    for c in 0..2 {
        for i in 0..mix[c].len() {
            assert_eq!(t[c][i] + r[c][i], mix[c][i]);
        }
    }
}

/// `separate --model hpss -q drums --residual --skip-existing -o OUT INPUTS...`, not quiet.
fn rerun_skip_existing(out: &Path, inputs: &[std::path::PathBuf]) -> std::process::Output {
    splitflow()
        .args(HPSS_DRUMS_RESIDUAL)
        .args(["--skip-existing", "-o"])
        .arg(out)
        .args(inputs)
        .output()
        .unwrap()
}

/// The command line of the interruption tests.
const HPSS_DRUMS_RESIDUAL: [&str; 6] = ["separate", "--model", "hpss", "-q", "drums", "--residual"];

/// Temp files under `dir` (any depth).
fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect()
}

/// A batch of eight 20 s files with `--jobs 1`, started in the background; returns once the
/// first temp file shows up under `out` (a file is being written).
fn start_long_batch(dir: &Path, out: &Path) -> std::process::Child {
    let song = splitflow::demo::render(44_100, 20.0);
    let mut inputs = Vec::new();
    for i in 0..8 {
        let p = dir.join(format!("song{i}.wav"));
        write_wav(&p, &song.mixture(), 44_100, 16, false);
        inputs.push(p);
    }
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_splitflow"))
        .args(HPSS_DRUMS_RESIDUAL)
        .args(["--jobs", "1", "-o"])
        .arg(out)
        .args(&inputs)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while temp_files(out).is_empty() {
        assert!(start.elapsed().as_secs() < 120, "no temp file appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child
}

/// SIGTERM (what `timeout`, `docker stop`, systemd and Slurm send) and SIGHUP stop a batch like
/// Ctrl-C: exit status 130, the summary says how many files were not started, no temp file is
/// left, and every output that exists is a whole WAV.
#[cfg(unix)]
#[test]
fn sigterm_and_sighup_leave_no_temp_files() {
    for signal in ["TERM", "HUP"] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let child = start_long_batch(tmp.path(), &out);
        let kill = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let done = child.wait_with_output().unwrap();
        let err = stderr(&done);
        assert_eq!(done.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(
            err.contains("interrupted:") && err.contains("not started"),
            "SIG{signal}: {err}"
        );
        assert!(temp_files(&out).is_empty(), "SIG{signal}: {:?}", temp_files(&out));
        for f in walk(&out) {
            assert_eq!(read_wav(&f).1[0].len(), 20 * 44_100, "{}", f.display());
        }
    }
}

/// After SIGKILL the temp file of the file being written stays; the next run (here with
/// `--skip-existing`) removes it, says so, and completes the batch.
#[cfg(unix)]
#[test]
fn temp_files_of_a_killed_run_are_removed_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut child = start_long_batch(tmp.path(), &out);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temp_files(&out);
    assert!(!left.is_empty());
    let inputs: Vec<_> = (0..8).map(|i| tmp.path().join(format!("song{i}.wav"))).collect();
    let run = rerun_skip_existing(&out, &inputs);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    for t in &left {
        assert!(err.contains(&format!("removed {}", t.display())), "{err}");
    }
    assert!(err.contains("stale temporary file(s) removed"), "{err}");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert_eq!(walk(&out).len(), 16);
}

#[test]
fn never_overwrites_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let before = std::fs::read(tmp.path().join("song.wav")).unwrap();
    let run = separate(
        "drums",
        tmp.path(),
        &["--overwrite", "--filename", "{track}.{ext}"],
        &[&tmp.path().join("song.wav")],
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("would overwrite input"), "{}", stderr(&run));
    assert_eq!(std::fs::read(tmp.path().join("song.wav")).unwrap(), before);
}

/// `--filename` may not leave `-o`: `..` through a folder that does not exist yet, `..` past
/// the output folder, an absolute template. Nothing is written and the input is untouched.
#[test]
fn outputs_never_leave_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let input_dir = tmp.path().join("in");
    std::fs::create_dir_all(&input_dir).unwrap();
    demo(&input_dir);
    let song = input_dir.join("song.wav");
    let before = std::fs::read(&song).unwrap();
    let abs = format!("{}/{{track}}_abs.{{ext}}", tmp.path().display());
    for (out, template) in [
        (input_dir.join("new"), "../{track}.{ext}"),
        (tmp.path().join("out2"), "{track}/../../../{track}_esc.{ext}"),
        (tmp.path().join("out3"), "{track}/../../{track}_up.{ext}"),
        (tmp.path().join("out4"), abs.as_str()),
    ] {
        let run = separate("drums", &out, &["--overwrite", "--filename", template], &[&song]);
        assert_eq!(run.status.code(), Some(1), "{template}: {}", stderr(&run));
        assert!(
            stderr(&run).contains("outside the output folder"),
            "{template}: {}",
            stderr(&run)
        );
        assert_eq!(std::fs::read(&song).unwrap(), before, "{template}");
    }
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(left.iter().all(|n| !n.ends_with(".wav")), "{left:?}");
    assert!(std::fs::read_dir(&input_dir).unwrap().count() <= 2, "written into in/");
    // `..` that stays inside -o is fine.
    let ok = tmp.path().join("ok");
    let run = separate("drums", &ok, &["--filename", "{track}/../{track}_x.{ext}"], &[&song]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(ok.join("song_x.wav").is_file());
}

/// Output into a pipe closed early (`splitflow info ... | head -1`) ends quietly, no panic.
#[test]
fn a_closed_pipe_is_a_quiet_end() {
    use std::io::BufRead;
    // 3,000 lines (~400 KB) of `info --json`: far more than a pipe buffers, so the writer
    // meets the closed pipe.
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let song = tmp.path().join("song.wav");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_splitflow"))
        .args(["info", "--json"])
        .args(std::iter::repeat_n(&song, 3000))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the pipe is closed with output still to come.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!first.is_empty());
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}

/// Templates are checked before anything is written: target and residual on one path, an
/// unknown placeholder, a non-WAV extension.
/// FLAC output: `--format flac` (and `{ext}`) or a `.flac` name; 24-bit and float inputs keep
/// every bit through the identity model (float becomes 24-bit), target + residual = input;
/// `--format mp3` and `--bit-depth 32` with FLAC are refused before anything is written.
#[test]
fn flac_output_by_format_or_name() {
    let tmp = tempfile::tempdir().unwrap();
    let song = splitflow::demo::render(44_100, 1.0);
    let wav = tmp.path().join("song.wav");
    write_wav(&wav, &song.mixture(), 44_100, 24, false);
    let out = tmp.path().join("o");
    let run = separate(
        "x",
        &out,
        &["--model", "identity", "--format", "flac", "--residual"],
        &[&wav],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, mix) = read_wav(&wav);
    let decode = |p: &Path| {
        let mut r = splitflow::audio::AudioReader::open(p).unwrap();
        assert_eq!(r.info().codec, "FLAC");
        let bits = match r.info().sample_format {
            Some(splitflow::audio::SampleFormat::Int(b)) => b,
            f => panic!("{f:?}"),
        };
        let scale = (1u64 << (bits - 1)) as f64;
        let x = r.read_to_end().unwrap();
        let ints: Vec<Vec<f64>> = x
            .iter()
            .map(|c| c.iter().map(|&v| (f64::from(v) * scale).round()).collect())
            .collect();
        (bits, ints)
    };
    let (bits, target) = decode(&out.join("song/x.flac"));
    let (_, residual) = decode(&out.join("song/no_x.flac"));
    assert_eq!(bits, 24);
    assert_eq!(target, mix);
    assert!(residual.iter().flatten().all(|&v| v == 0.0));

    // A float input through a .flac name: 24-bit.
    let float = tmp.path().join("float.wav");
    write_wav(&float, &song.mixture(), 44_100, 32, true);
    let run = separate(
        "x",
        &out,
        &["--model", "identity", "--filename", "{track}.flac"],
        &[&float],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (bits, x) = decode(&out.join("float.flac"));
    assert_eq!(bits, 24);
    let want = song.mixture();
    let err = x[0]
        .iter()
        .zip(&want[0])
        .map(|(a, b)| (a / 8_388_608.0 - f64::from(*b)).abs())
        .fold(0.0, f64::max);
    // Half a 24-bit step, plus the float rounding of the chunked identity.
    assert!(err <= 1.5 / 8_388_608.0, "max error {err}");

    let run = separate("x", &out, &["--model", "identity", "--format", "mp3"], &[&wav]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("'mp3' is not a format splitflow writes (wav, flac)"),
        "{}",
        stderr(&run)
    );
    let o2 = tmp.path().join("o2");
    let run = separate(
        "x",
        &o2,
        &["--model", "identity", "--format", "flac", "--bit-depth", "32"],
        &[&wav],
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("FLAC stores 8- to 24-bit integer samples"),
        "{}",
        stderr(&run)
    );
    assert!(!o2.exists(), "{:?}", walk(&o2));
}

#[test]
fn bad_templates_fail_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let song = tmp.path().join("song.wav");
    let out = tmp.path().join("o");
    for (template, why) in [
        ("{track}.{ext}", "must contain {query}: each file gets 2 outputs"),
        ("{track}_{foo}.{ext}", "unknown placeholder {foo}"),
        ("{track}.mp3", "must end in .{ext}, .wav or .flac"),
    ] {
        let run = separate("drums", &out, &["--residual", "--filename", template], &[&song]);
        assert_eq!(run.status.code(), Some(2), "{template}: {}", stderr(&run));
        assert!(stderr(&run).contains(why), "{template}: {}", stderr(&run));
    }
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
}

#[test]
fn unknown_query_and_model_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    demo(tmp.path());
    let run = splitflow()
        .args(["separate", "--model", "hpss", "-q", "kazoo"])
        .arg(tmp.path().join("song.wav"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(
        err.contains("'kazoo'") && err.contains("percussive") && err.contains("harmonic"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let run = splitflow()
        .args(["separate", "-q", "drums", "--model", "nope"])
        .arg(tmp.path().join("song.wav"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("unknown model 'nope'")
            && stderr(&run).contains("compiled in")
            && stderr(&run).contains("available: ")
            && stderr(&run).contains(splitflow::separate::DEFAULT_MODEL)
            && stderr(&run).contains("hpss"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn folders_need_audio_and_recursion_is_opt_in() {
    let tmp = tempfile::tempdir().unwrap();
    let song = splitflow::demo::render(22_050, 0.3);
    let nested = tmp.path().join("top/sub");
    write_wav(&nested.join("deep.wav"), &song.mixture(), 22_050, 16, false);
    std::fs::write(tmp.path().join("top/notes.txt"), "hi").unwrap();
    let out = tmp.path().join("o");
    let run = separate("drums", &out, &[], &[&tmp.path().join("top")]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(err.contains("folder contains no audio files (use --recursive"), "{err}");
    let run = separate("drums", &out, &["-r"], &[&tmp.path().join("top")]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.join("deep/drums.wav").exists());
}

/// Every kind of bad input gives one clear line naming the file, and a non-zero exit; odd
/// but valid inputs are processed.
#[test]
fn bad_inputs_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("empty.wav"), b"").unwrap();
    std::fs::write(d.join("text.wav"), "hello, I am text\n".repeat(20)).unwrap();
    std::fs::write(d.join("unknown.xyz"), [7u8; 3000]).unwrap();
    write_wav(&d.join("zero.wav"), &[vec![]], 44_100, 16, false);
    let mut nan = vec![0.1f32; 1000];
    nan[500] = f32::NAN;
    write_wav(&d.join("nan.wav"), &[nan], 44_100, 32, true);
    let mut inf = vec![0.1f32; 1000];
    inf[10] = f32::INFINITY;
    write_wav(&d.join("inf.wav"), &[inf], 44_100, 32, true);
    // A WAV whose data was cut short.
    let song = splitflow::demo::render(22_050, 0.5);
    write_wav(&d.join("full.wav"), &song.mixture(), 22_050, 16, false);
    let bytes = std::fs::read(d.join("full.wav")).unwrap();
    std::fs::write(d.join("truncated.wav"), &bytes[..30]).unwrap();
    let not_a_dir = d.join("full.wav").join("inside.wav");
    let missing = d.join("missing.wav");

    for bad in [
        "empty.wav",
        "text.wav",
        "unknown.xyz",
        "zero.wav",
        "nan.wav",
        "inf.wav",
        "truncated.wav",
    ] {
        let out = d.join(format!("out-{bad}"));
        let run = separate("drums", &out, &[], &[&d.join(bad)]);
        assert_eq!(run.status.code(), Some(1), "{bad}: {}", stderr(&run));
        let err = stderr(&run);
        let line = err
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("{bad}: no error line in {err}"));
        assert!(line.contains(bad), "{bad}: {line}");
        assert!(!err.contains("panicked"), "{bad}: {err}");
        assert!(walk(&out).is_empty(), "{bad}: wrote {:?}", walk(&out));
    }
    for p in [&not_a_dir, &missing] {
        let run = separate("drums", &d.join("o"), &[], &[p]);
        assert_eq!(run.status.code(), Some(1));
        assert!(stderr(&run).contains(&*p.to_string_lossy()), "{}", stderr(&run));
    }
    let nan_err = stderr(
        &splitflow()
            .args(["separate", "--model", "hpss", "-q", "drums", "--quiet"])
            .arg(d.join("nan.wav"))
            .output()
            .unwrap(),
    );
    assert!(nan_err.contains("NaN") && nan_err.contains("500"), "{nan_err}");

    // A codec the build cannot decode is named (it was "unsupported codec (0x1001)").
    let opus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tone.opus");
    let run = separate("drums", &d.join("o"), &[], &[&opus]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("tone.opus: unsupported codec: Opus"),
        "{}",
        stderr(&run)
    );
    // A back end this build lacks is named as the flag is spelled.
    let run = splitflow()
        .args(["separate", "--device", "cuda", "-q", "drums"])
        .arg(d.join("full.wav"))
        .output()
        .unwrap();
    if !run.status.success() {
        assert!(
            stderr(&run).contains("--device cuda:") && !stderr(&run).contains("Cuda"),
            "{}",
            stderr(&run)
        );
    }
}

#[test]
fn one_sample_and_eight_channels_are_processed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_wav(&d.join("one.wav"), &[vec![0.25]], 44_100, 16, false);
    let song = splitflow::demo::render(22_050, 0.4);
    let eight: Vec<Vec<f32>> = (0..8)
        .map(|c| song.mixture()[c % 2].iter().map(|v| v * (c + 1) as f32 / 8.0).collect())
        .collect();
    write_wav(&d.join("eight.wav"), &eight, 22_050, 16, false);
    let out = d.join("o");
    let run = separate(
        "drums",
        &out,
        &["--residual"],
        &[&d.join("one.wav"), &d.join("eight.wav")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (s, one) = read_wav(&out.join("one/drums.wav"));
    assert_eq!((s.channels, one[0].len()), (1, 1));
    let (_, res) = read_wav(&out.join("one/no_drums.wav"));
    assert_eq!(one[0][0] + res[0][0], (0.25f64 * 32768.0).round());
    let (s, p) = read_wav(&out.join("eight/drums.wav"));
    assert_eq!((s.channels, p[7].len()), (8, eight[0].len()));
    // No real-time factor for files under a second (it measured start-up: "RTF 14519.9").
    let run = splitflow()
        .args(["separate", "--model", "hpss", "-q", "drums", "--overwrite", "-o"])
        .arg(&out)
        .arg(d.join("one.wav"))
        .output()
        .unwrap();
    let err = stderr(&run);
    assert!(err.contains("(0.0 s audio, ") && !err.contains("RTF"), "{err}");
}

#[test]
fn info_describes_files_and_reports_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let song = splitflow::demo::render(48_000, 1.5);
    write_wav(&tmp.path().join("a.wav"), &song.mixture(), 48_000, 24, false);
    std::fs::write(tmp.path().join("b.wav"), "text").unwrap();
    let run = splitflow()
        .arg("info")
        .arg(tmp.path().join("a.wav"))
        .arg(tmp.path().join("b.wav"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&run.stdout);
    let row = text
        .lines()
        .find(|l| l.contains("a.wav"))
        .unwrap_or_else(|| panic!("{text}"));
    for want in ["WAV", "PCM", "48000 Hz", "2", "24-bit int", "0:01.500"] {
        assert!(row.contains(want), "missing {want} in {row}");
    }
    assert!(stderr(&run).contains("b.wav"), "{}", stderr(&run));

    let run = splitflow()
        .args(["info", "--json"])
        .arg(tmp.path().join("a.wav"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["sample_rate"], 48_000);
    assert_eq!(v["channels"], 2);
    assert_eq!(v["frames"], 72_000);
    assert_eq!(v["decoded_frames"], 72_000);
    assert_eq!(v["status"], "ok");

    // info decodes to the end: a truncated file gets a row that says what is lost, and rc 1.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let run = splitflow()
        .arg("info")
        .arg(tmp.path().join("a.wav"))
        .arg(fixtures.join("truncated.mp3"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&run.stdout);
    let header = text.lines().next().unwrap_or_default();
    assert!(header.contains("sample format") && header.contains("status"), "{text}");
    let row = text.lines().find(|l| l.contains("truncated.mp3")).unwrap_or_default();
    assert!(
        row.contains("lossy") && row.contains("damaged: the stream ends early from 0:00.210; 0.290 s of 0.500 s lost"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("a.wav") && l.ends_with("ok")), "{text}");
}

/// The committed compressed fixtures through the whole CLI: good ones are separated with the
/// right format (AAC gapless: as long as its source), damaged ones fail with their name and
/// leave no folder; `--allow-damaged` separates a truncated MP3 with a warning.
#[test]
fn compressed_fixtures_through_the_cli() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let good = [
        "tone.mp3",
        "tone.flac",
        "tone.ogg",
        "tone_aac.m4a",
        "tone_alac.m4a",
        "tone.aiff",
    ];
    let mut cmd = splitflow();
    cmd.args(["separate", "--model", "hpss", "-q", "harmonic", "--quiet", "-o"])
        .arg(&out);
    for f in good.iter().chain(&["corrupt.flac", "truncated.flac", "truncated.mp3"]) {
        // Copies named after the format, so that tone.mp3 and tone.flac get separate outputs.
        let copy = tmp
            .path()
            .join(f.replace('.', "_") + "." + f.rsplit('.').next().unwrap());
        std::fs::copy(fixtures.join(f), &copy).unwrap();
        cmd.arg(copy);
    }
    let run = cmd.output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(err.contains("6 separated, 3 failed"), "{err}");
    for bad in ["corrupt_flac", "truncated_flac", "truncated_mp3"] {
        assert!(
            err.lines()
                .any(|l| l.contains("failed:") && l.contains(bad) && l.contains("damaged:") && l.contains("s lost")),
            "{bad}: {err}"
        );
        assert!(!out.join(bad).exists(), "{bad}: folder left behind");
    }
    // Lossless inputs keep their bit depth; lossy ones become 16-bit.
    let (alac, _) = read_wav(&out.join("tone_alac_m4a/harmonic.wav"));
    assert_eq!((alac.bits_per_sample, alac.sample_rate), (16, 22_050));
    let (aac, p) = read_wav(&out.join("tone_aac_m4a/harmonic.wav"));
    assert_eq!((aac.bits_per_sample, aac.sample_rate, aac.channels), (16, 44_100, 2));
    assert!(p[0].iter().any(|v| v.abs() > 1000.0), "AAC output is silent");
    let (flac, _) = read_wav(&out.join("tone_flac/harmonic.wav"));
    assert_eq!((flac.bits_per_sample, flac.sample_rate), (24, 48_000));
    let (mp3, _) = read_wav(&out.join("tone_mp3/harmonic.wav"));
    assert_eq!((mp3.bits_per_sample, mp3.sample_rate), (16, 44_100));
    assert_eq!(p[0].len(), 22_050, "AAC keeps its encoder delay");

    let run = splitflow()
        .args(["separate", "--model", "hpss", "-q", "harmonic", "--allow-damaged", "-o"])
        .arg(&out)
        .arg(tmp.path().join("truncated_mp3.mp3"))
        .output()
        .unwrap();
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("warning: ") && err.contains("the stream ends early from 0:00.210; 0.290 s of 0.500 s lost"),
        "{err}"
    );
    let (_, kept) = read_wav(&out.join("truncated_mp3/harmonic.wav"));
    assert_eq!(kept[0].len(), 9_263);
}

#[test]
fn colliding_track_names_fail_instead_of_overwriting() {
    let tmp = tempfile::tempdir().unwrap();
    let song = splitflow::demo::render(22_050, 0.3);
    write_wav(&tmp.path().join("a/song.wav"), &song.mixture(), 22_050, 16, false);
    write_wav(&tmp.path().join("b/song.wav"), &song.mixture(), 22_050, 16, false);
    let out = tmp.path().join("o");
    let run = separate(
        "drums",
        &out,
        &[],
        &[&tmp.path().join("a/song.wav"), &tmp.path().join("b/song.wav")],
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("is also the output of"), "{}", stderr(&run));
    let run = separate(
        "drums",
        &out,
        &["--filename", "{parent}/{track}/{query}.{ext}"],
        &[&tmp.path().join("a/song.wav"), &tmp.path().join("b/song.wav")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.join("a/song/drums.wav").exists() && out.join("b/song/drums.wav").exists());
}

#[test]
fn identity_at_native_rate_is_exact_for_float() {
    let tmp = tempfile::tempdir().unwrap();
    // 25 s: several engine segments, an odd length, stereo float.
    let song = splitflow::demo::render(8_000, 25.0);
    let mut x = song.mixture();
    for c in &mut x {
        c.push(0.123);
    }
    write_wav(&tmp.path().join("f.wav"), &x, 8_000, 32, true);
    let out = tmp.path().join("o");
    let run = separate(
        "x",
        &out,
        &["--model", "identity", "--residual"],
        &[&tmp.path().join("f.wav")],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, y) = read_wav(&out.join("f/x.wav"));
    let (_, r) = read_wav(&out.join("f/no_x.wav"));
    for c in 0..2 {
        assert_eq!(y[c].len(), x[c].len());
        for i in 0..x[c].len() {
            assert!((y[c][i] - x[c][i] as f64).abs() <= 1e-6, "channel {c} frame {i}");
            assert!(r[c][i].abs() <= 1e-6);
        }
    }
}

/// The installed binary alone: `splitflow` copied into an empty folder, run from another empty
/// folder without `$SPLITFLOW_MODELS`, so nothing of the checkout (its models/ included) is
/// found by path.
fn installed_alone(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = tmp.join("bin");
    let work = tmp.join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let exe = bin.join("splitflow");
    std::fs::copy(env!("CARGO_BIN_EXE_splitflow"), &exe).unwrap();
    (exe, work)
}

/// The bundled default model (models/splitflow-small-direct, compiled in) end to end, run by the
/// binary alone ([`installed_alone`]): `separate` without `--model` uses it (named in the
/// summary), keeps the format, target + residual == input sample for sample, pulls the demo
/// drums out better than the mixture, and handles a 0.5 s file; `splitflow models` marks it as
/// the default and built in.
#[test]
fn bundled_default_model_separates_without_model_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (exe, work) = installed_alone(tmp.path());
    let song = splitflow::demo::render(44_100, 4.0);
    write_wav(&work.join("song.wav"), &song.mixture(), 44_100, 16, false);
    let short = splitflow::demo::render(48_000, 0.5);
    write_wav(&work.join("short.wav"), &short.mixture(), 48_000, 24, false);
    let run = std::process::Command::new(&exe)
        .current_dir(&work)
        .env_remove("SPLITFLOW_MODELS")
        .args([
            "separate",
            "-q",
            "drums",
            "--residual",
            "-o",
            "out",
            "song.wav",
            "short.wav",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("2 separated") && err.contains(&format!("with model {}", splitflow::separate::DEFAULT_MODEL)),
        "{err}"
    );
    let out = work.join("out");
    for (name, rate, bits, frames) in [("song", 44_100, 16, 4 * 44_100), ("short", 48_000, 24, 24_000)] {
        let (in_spec, mix) = read_wav(&work.join(format!("{name}.wav")));
        let (t_spec, target) = read_wav(&out.join(format!("{name}/drums.wav")));
        let (_, residual) = read_wav(&out.join(format!("{name}/no_drums.wav")));
        assert_eq!(t_spec, in_spec);
        assert_eq!((t_spec.sample_rate, t_spec.bits_per_sample), (rate, bits));
        assert!(target[..2].iter().all(|c| c.len() == frames), "{name}: {frames} frames");
        assert_residual_completes(&mix, &target, &residual, name);
        if name == "song" {
            let (base, est) = drums_si_sdr(&song, mix, target);
            eprintln!("demo drums SI-SDR: mixture {base:.2} dB, bundled model {est:.2} dB");
            assert!(
                est - base > MIN_BUNDLED_DRUMS_GAIN_DB,
                "SI-SDR improvement {:.2} dB",
                est - base
            );
        }
    }
    let models = std::process::Command::new(&exe)
        .current_dir(&work)
        .env_remove("SPLITFLOW_MODELS")
        .arg("models")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&models.stdout);
    assert!(
        listing.contains(&format!("{} (default)  (built in)", splitflow::separate::DEFAULT_MODEL))
            && listing.contains("splitflow-small  (built in)"),
        "{listing}"
    );
}

/// `$SPLITFLOW_MODELS` adds model folders by name (and replaces a compiled-in one of the same
/// name); an unknown name says where it was looked for.
#[test]
fn models_folder_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let (exe, work) = installed_alone(tmp.path());
    demo(&work);
    let extra = tmp.path().join("extra");
    let mine = extra.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/splitflow-small-direct");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(bundled.join(f), mine.join(f)).unwrap();
    }
    let run = |args: &[&str]| {
        std::process::Command::new(&exe)
            .current_dir(&work)
            .env("SPLITFLOW_MODELS", &extra)
            .args(args)
            .output()
            .unwrap()
    };
    let listing = run(&["models"]);
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.contains(&format!("mine  ({})", mine.display())) && listing.contains("splitflow-small  (built in)"),
        "{listing}"
    );
    let sep = run(&["separate", "-q", "drums", "--model", "mine", "-o", "out", "song.wav"]);
    assert!(sep.status.success(), "{}", stderr(&sep));
    assert!(stderr(&sep).contains("with model mine"), "{}", stderr(&sep));
    assert!(work.join("out/song/drums.wav").is_file());

    let missing = run(&["separate", "-q", "drums", "--model", "nope", "-o", "out2", "song.wav"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = stderr(&missing);
    assert!(
        err.contains("unknown model 'nope'")
            && err.contains(&format!("$SPLITFLOW_MODELS ({})", extra.display()))
            && err.contains("mine"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!work.join("out2").exists());
}

/// What the bundled model must gain on the demo drums (SI-SDR, dB). Measured: +0.95 dB for the
/// first model (1,500 steps), +2.23 dB (-2.93 -> -0.70 dB) for the 3,500-step one, +1.58 dB
/// (-2.93 -> -1.35 dB) for the magnitude-weighted default of 2026-12-01 (better on every
/// corpus set, docs/model.md "Quality"; the demo is one synthetic song), +6.90 dB (-2.93 ->
/// +3.97 dB) for the corpus-v2 default (8,000 steps, docs/training.md run 8).
const MIN_BUNDLED_DRUMS_GAIN_DB: f64 = 5.0;

/// N shards of a batch cover every file exactly once, for several N (more shards than files
/// included), whatever order the files come in.
#[test]
fn shards_cover_every_file_exactly_once() {
    use splitflow::separate::shard::Shard;
    for files in [0usize, 1, 7, 50] {
        let list: Vec<std::path::PathBuf> = (0..files).rev().map(|i| format!("in/f{i:03}.wav").into()).collect();
        for count in [1usize, 2, 3, 8, 64] {
            let mut seen: Vec<std::path::PathBuf> = Vec::new();
            let mut sizes = Vec::new();
            for index in 0..count {
                let part = Shard { index, count }.select(list.clone());
                sizes.push(part.len());
                seen.extend(part);
            }
            seen.sort();
            let mut want = list.clone();
            want.sort();
            assert_eq!(seen, want, "{files} files, {count} shards");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{files} files, {count} shards: {sizes:?}");
        }
    }
    assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
    for bad in ["4/4", "1", "a/3", "0/0", "-1/2"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    fn env<'a>(pairs: &'a [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "5"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_MIN", "3"),
    ];
    assert_eq!(Shard::from_env(None, env(&slurm)), Ok(Shard { index: 2, count: 4 }));
    let k8s = [("JOB_COMPLETION_INDEX", "1")];
    assert_eq!(Shard::from_env(Some(3), env(&k8s)), Ok(Shard { index: 1, count: 3 }));
    assert!(Shard::from_env(None, env(&k8s)).unwrap_err().contains("--shards"));
    assert!(
        Shard::from_env(None, env(&[]))
            .unwrap_err()
            .contains("neither SLURM_ARRAY_TASK_ID")
    );
}

/// `separate --model hpss -q drums --quiet --skip-existing -o` (the output folder follows).
const HPSS_DRUMS_QUIET_SKIP: [&str; 8] = [
    "separate",
    "--model",
    "hpss",
    "-q",
    "drums",
    "--quiet",
    "--skip-existing",
    "-o",
];

/// `--shard` through the CLI: three shard runs (one through `--shard auto` and Slurm's
/// variables) write every output once, and their `--log` lines, concatenated, name each input
/// once with status ok and the outputs written; a rerun logs them as skipped.
#[test]
fn sharded_runs_and_their_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let song = splitflow::demo::render(22_050, 1.2);
    let inputs: Vec<std::path::PathBuf> = (0..5)
        .map(|i| {
            let p = tmp.path().join(format!("t{i}.wav"));
            write_wav(&p, &song.mixture(), 22_050, 16, false);
            p
        })
        .collect();
    let out = tmp.path().join("out");
    for i in 0..3 {
        let log = tmp.path().join(format!("shard{i}.jsonl"));
        let mut cmd = splitflow();
        cmd.args(["separate", "--model", "hpss", "-q", "drums", "--quiet", "-o"])
            .arg(&out)
            .arg("--log")
            .arg(&log)
            .args(&inputs);
        if i == 2 {
            cmd.args(["--shard", "auto"])
                .env("SLURM_ARRAY_TASK_ID", "2")
                .env("SLURM_ARRAY_TASK_COUNT", "3");
        } else {
            cmd.args(["--shard", &format!("{i}/3")]);
        }
        let run = cmd.output().unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        assert!(stderr(&run).contains(&format!("[shard {i}/3]")), "{}", stderr(&run));
    }
    assert_eq!(walk(&out).len(), 5, "{:?}", walk(&out));
    let mut lines = Vec::new();
    for i in 0..3 {
        lines.extend(
            std::fs::read_to_string(tmp.path().join(format!("shard{i}.jsonl")))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    let mut named: Vec<String> = lines.iter().map(|v| v["input"].as_str().unwrap().to_string()).collect();
    named.sort();
    let mut want: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    want.sort();
    assert_eq!(named, want);
    for v in &lines {
        assert_eq!(v["status"], "ok", "{v}");
        assert_eq!(v["model"], "hpss");
        assert_eq!(v["query"], "drums");
        let out0 = v["outputs"][0].as_str().unwrap();
        assert!(Path::new(out0).is_file(), "{v}");
        assert!(
            v["seconds"].as_f64().unwrap() > 0.0 && v["rtf"].as_f64().is_some(),
            "{v}"
        );
    }
    let log = tmp.path().join("again.jsonl");
    let run = splitflow()
        .args(HPSS_DRUMS_QUIET_SKIP)
        .arg(&out)
        .arg("--log")
        .arg(&log)
        .args(&inputs)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let again = std::fs::read_to_string(&log).unwrap();
    assert_eq!(again.lines().count(), 5);
    assert!(again.lines().all(|l| l.contains("\"status\":\"skipped\"")), "{again}");

    let run = splitflow()
        .args(["separate", "--model", "hpss", "-q", "drums", "--shard", "auto", "-o"])
        .arg(&out)
        .args(&inputs)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("--shard auto: neither"), "{}", stderr(&run));

    // Two inputs with one output, in different shards: as in one run, the second is refused
    // (not skipped as "existing" after the first shard wrote it).
    let (a, b) = (tmp.path().join("a/t.wav"), tmp.path().join("b/t.wav"));
    for p in [&a, &b] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(&inputs[0], p).unwrap();
    }
    let o = tmp.path().join("o");
    let shard = |i: usize| {
        splitflow()
            .args(HPSS_DRUMS_QUIET_SKIP)
            .arg(&o)
            .args(["--shard", &format!("{i}/2")])
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap()
    };
    assert!(shard(0).status.success());
    let second = shard(1);
    assert_eq!(second.status.code(), Some(1));
    assert!(stderr(&second).contains("is also the output of"), "{}", stderr(&second));
}

/// `--query a,b,c` decodes once and writes one output per query, each equal to what that
/// query gives alone; the residual `rest` is the mixture minus every target, exactly.
#[test]
fn several_queries_in_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let song = demo(tmp.path());
    let input = tmp.path().join("song.wav");
    let model = ["--model", splitflow::separate::DEFAULT_MODEL];
    let out = tmp.path().join("many");
    let log = tmp.path().join("log.jsonl");
    let mut extra = vec!["--residual", "--log", log.to_str().unwrap()];
    extra.extend(model);
    let run = separate("drums, Bass,speech", &out, &extra, &[&input]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(walk(&out).len(), 4, "{:?}", walk(&out));
    let (_, mix) = read_wav(&input);
    let mut sum = vec![vec![0i64; mix[0].len()]; 2];
    for q in ["drums", "bass", "speech"] {
        let (_, many) = read_wav(&out.join(format!("song/{q}.wav")));
        let alone_dir = tmp.path().join(format!("alone-{q}"));
        let run = separate(q, &alone_dir, &model, &[&input]);
        assert!(run.status.success(), "{}", stderr(&run));
        let (_, alone) = read_wav(&alone_dir.join(format!("song/{q}.wav")));
        // Batched network passes may round differently: at most one 16-bit step.
        let worst = many
            .iter()
            .flatten()
            .zip(alone.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "{q}: differs from the query alone by {worst} steps");
        for c in 0..2 {
            for (s, v) in sum[c].iter_mut().zip(&many[c]) {
                *s += *v as i64;
            }
        }
        if q == "drums" {
            let (base, est) = drums_si_sdr(&song, mix.clone(), many);
            assert!(est > base + 1.0, "drums {est:.2} dB vs mixture {base:.2} dB");
        }
    }
    let (_, rest) = read_wav(&out.join("song/rest.wav"));
    for c in 0..2 {
        for i in 0..mix[c].len() {
            assert_eq!(sum[c][i] + rest[c][i] as i64, mix[c][i] as i64, "channel {c} frame {i}");
        }
    }
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["query"], "drums,bass,speech");
    assert_eq!(line["outputs"].as_array().unwrap().len(), 4);

    // `all`: every label the model has (hpss: percussive and harmonic, which sum to the input).
    let all = tmp.path().join("all");
    let run = separate("all", &all, &["--residual"], &[&input]);
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, p) = read_wav(&all.join("song/percussive.wav"));
    let (_, h) = read_wav(&all.join("song/harmonic.wav"));
    let (_, rest) = read_wav(&all.join("song/rest.wav"));
    assert!(
        rest.iter().flatten().all(|v| v.abs() <= 2.0),
        "hpss parts do not sum to the input"
    );
    assert!(p[0].iter().zip(&h[0]).any(|(a, b)| a != b));

    // Several clips by example, several exclusions.
    let clips = tmp.path().join("clips");
    std::fs::create_dir(&clips).unwrap();
    write_wav(&clips.join("kick.wav"), &song.drums, 22_050, 16, false);
    write_wav(&clips.join("keys.wav"), &song.mixture(), 22_050, 16, false);
    let like = tmp.path().join("like");
    let run = splitflow()
        .args(["separate", "--quiet", "--like"])
        .arg(clips.join("kick.wav"))
        .arg("--like")
        .arg(clips.join("keys.wav"))
        .arg("-o")
        .arg(&like)
        .arg(&input)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(like.join("song/like-kick.wav").is_file() && like.join("song/like-keys.wav").is_file());
    let ex = tmp.path().join("ex");
    let run = splitflow()
        .args([
            "separate",
            "--quiet",
            "--model",
            "hpss",
            "--exclude",
            "drums,harmonic",
            "-o",
        ])
        .arg(&ex)
        .arg(&input)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, no_drums) = read_wav(&ex.join("song/all_but_drums.wav"));
    // hpss: everything but the percussive part is the harmonic part.
    let worst = no_drums[0]
        .iter()
        .zip(&h[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 2.0, "all_but_drums differs from harmonic by {worst}");
    assert!(ex.join("song/all_but_harmonic.wav").is_file());

    // Usage errors, before anything is written.
    let bad = tmp.path().join("bad");
    for (query, extra, why) in [
        ("drums,drums", vec![], "query 'drums' is given twice"),
        ("drums,", vec![], "empty label"),
        ("all,drums", vec![], "'all' stands alone"),
        (
            "drums,harmonic",
            vec!["--filename", "{track}.{ext}"],
            "must contain {query}",
        ),
        ("drums,bass", vec![], "hpss cannot separate 'bass'"),
        ("all", vec!["--model", "identity"], "no label list"),
    ] {
        let run = separate(query, &bad, &extra, &[&input]);
        assert_eq!(run.status.code(), Some(2), "{query}: {}", stderr(&run));
        assert!(stderr(&run).contains(why), "{query}: {}", stderr(&run));
    }
    let run = splitflow()
        .args(["separate", "--model", "hpss", "--exclude", "all", "-o"])
        .arg(&bad)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("use --query all"), "{}", stderr(&run));
    assert!(!bad.exists());
}

#[test]
fn segment_and_overlap_flags_cut_the_input_and_refuse_bad_values() {
    let tmp = tempfile::tempdir().unwrap();
    let song = demo(tmp.path());
    let input = tmp.path().join("song.wav");
    let out = tmp.path().join("out");
    // 1 s segments with 0.25 s crossfades over the 3 s song: four segments, the last partial.
    let run = separate(
        "drums",
        &out,
        &["--residual", "--segment", "1", "--overlap", "0.25"],
        &[&input],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let (_, mix) = read_wav(&input);
    let (_, target) = read_wav(&out.join("song/drums.wav"));
    let (_, residual) = read_wav(&out.join("song/no_drums.wav"));
    assert_residual_completes(&mix, &target, &residual, "1 s segments");
    let (base, est) = drums_si_sdr(&song, mix, target);
    assert!(
        est - base > 3.0,
        "SI-SDR improvement {:.2} dB with 1 s segments",
        est - base
    );
    for (args, expect) in [
        (
            &["--segment", "1", "--overlap", "1"][..],
            "--overlap 1 s must be shorter",
        ),
        (&["--segment", "0.05"][..], "too short"),
        (&["--overlap", "abc"][..], "not a number of seconds"),
    ] {
        let run = separate("drums", &tmp.path().join("bad"), args, &[&input]);
        assert!(!run.status.success(), "{args:?} was accepted");
        assert!(stderr(&run).contains(expect), "{args:?}: {}", stderr(&run));
    }
    assert!(!tmp.path().join("bad").exists() || walk(&tmp.path().join("bad")).is_empty());
}
