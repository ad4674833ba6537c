//! Decoding: committed fixtures (compressed formats, damaged files) and generated WAVs.

use std::path::{Path, PathBuf};

use splitflow::audio::{AudioReader, SampleFormat};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Reads the whole file in blocks of 4096 frames.
fn read_all(r: &mut AudioReader) -> splitflow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    loop {
        let before = out.first().map_or(0, Vec::len);
        let n = r.read(&mut out, 4096)?;
        assert!(n <= 4096);
        assert_eq!(out.first().map_or(0, Vec::len), before + n);
        if n == 0 {
            return Ok(out);
        }
    }
}

/// Fraction of the signal's energy at `freq` (single DFT bin over whole periods).
fn tone_fraction(x: &[f32], rate: u32, freq: f64) -> f64 {
    let (mut re, mut im, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in x.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64;
        re += v as f64 * ph.cos();
        im += v as f64 * ph.sin();
        total += (v as f64).powi(2);
    }
    2.0 * (re * re + im * im) / x.len() as f64 / total
}

/// Asserts that `err` is one line starting with the file's path.
fn assert_error_names(err: &anyhow::Error, path: &Path) {
    let msg = format!("{err:#}");
    println!("{msg}");
    assert!(
        msg.starts_with(&path.display().to_string()),
        "error does not start with the path: {msg}"
    );
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
}

struct Good {
    file: &'static str,
    container: &'static str,
    codec: &'static str,
    rate: u32,
    channels: usize,
    format: Option<SampleFormat>,
    /// Tolerance on the 0.5 s length, in frames (about one codec frame; two for AAC in MP4,
    /// whose encoder delay symphonia does not trim because it ignores MP4 edit lists).
    tolerance: usize,
}

#[test]
fn good_fixtures_decode_to_the_right_tones() {
    use SampleFormat::*;
    let cases = [
        Good {
            file: "tone.mp3",
            container: "MP3",
            codec: "MP3",
            rate: 44100,
            channels: 2,
            format: None,
            tolerance: 1152,
        },
        Good {
            file: "tone.flac",
            container: "FLAC",
            codec: "FLAC",
            rate: 48000,
            channels: 2,
            format: Some(Int(24)),
            tolerance: 0,
        },
        Good {
            file: "tone.ogg",
            container: "Ogg",
            codec: "Vorbis",
            rate: 44100,
            channels: 2,
            format: None,
            tolerance: 2048,
        },
        Good {
            file: "tone_aac.m4a",
            container: "MP4",
            codec: "AAC",
            rate: 44100,
            channels: 2,
            format: None,
            tolerance: 2048,
        },
        Good {
            file: "tone_alac.m4a",
            container: "MP4",
            codec: "ALAC",
            rate: 22050,
            channels: 2,
            format: Some(Int(16)),
            tolerance: 0,
        },
        Good {
            file: "tone.aiff",
            container: "AIFF",
            codec: "PCM",
            rate: 22050,
            channels: 1,
            format: Some(Int(16)),
            tolerance: 0,
        },
    ];
    for c in cases {
        let path = fixture(c.file);
        let mut r = AudioReader::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        let info = r.info().clone();
        println!("{}: {info:?}", c.file);
        assert_eq!(info.path, path);
        assert_eq!(info.container, c.container, "{}", c.file);
        assert_eq!(info.codec, c.codec, "{}", c.file);
        assert_eq!(info.sample_rate, c.rate, "{}", c.file);
        assert_eq!(info.channels, c.channels, "{}", c.file);
        assert_eq!(info.sample_format, c.format, "{}", c.file);
        let x = read_all(&mut r).unwrap();
        assert_eq!(x.len(), c.channels);
        let n = x[0].len();
        let want = c.rate as usize / 2;
        assert!(n.abs_diff(want) <= c.tolerance, "{}: {n} frames, want {want}", c.file);
        if let Some(frames) = info.frames {
            assert!(
                frames.abs_diff(n as u64) as usize <= c.tolerance,
                "{}: info.frames {frames}, decoded {n}",
                c.file
            );
        }
        // Lossless formats decode to exactly the stated length.
        if c.tolerance == 0 {
            assert_eq!(info.frames, Some(n as u64), "{}", c.file);
        }
        // Pitch and level of the middle 80% (lossy codecs smear the abrupt start and end).
        for (ch, freq) in [440.0, 1000.0].into_iter().take(c.channels).enumerate() {
            let mid = &x[ch][n / 10..n - n / 10];
            let rms = (mid.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
            let frac = tone_fraction(mid, c.rate, freq);
            println!(
                "  channel {ch}: {freq} Hz holds {:.1}% of the energy, RMS {rms:.3}",
                frac * 100.0
            );
            assert!(
                frac > 0.98,
                "{}: channel {ch} is not a {freq} Hz tone ({frac:.3})",
                c.file
            );
            // A sine of amplitude 0.5 has an RMS of 0.354.
            assert!((0.32..0.38).contains(&rms), "{}: channel {ch} RMS {rms}", c.file);
        }
        // After the end, reads keep returning 0.
        assert_eq!(r.read(&mut vec![Vec::new(); c.channels], 10).unwrap(), 0);
    }
}

/// Opens and reads the whole file; the error if either fails.
fn decode_error(path: &Path) -> Option<anyhow::Error> {
    AudioReader::open(path).and_then(|mut r| read_all(&mut r)).err()
}

#[test]
fn damaged_fixtures_fail_cleanly() {
    // Corrupt, non-audio and empty files, and truncated lossless files (whose header states
    // a longer length), are errors at open or while reading.
    for name in [
        "corrupt.flac",
        "text.wav",
        "empty.wav",
        "truncated.flac",
        "truncated.wav",
    ] {
        let path = fixture(name);
        match decode_error(&path) {
            Some(e) => assert_error_names(&e, &path),
            None => panic!("{name}: decoded without error"),
        }
    }
    let msg = format!("{:#}", decode_error(&fixture("truncated.wav")).unwrap());
    assert!(msg.contains("truncated or corrupt"), "{msg}");
    let msg = format!("{:#}", decode_error(&fixture("empty.wav")).unwrap());
    assert!(msg.contains("empty file"), "{msg}");
    let msg = format!("{:#}", decode_error(&fixture("text.wav")).unwrap());
    assert!(msg.contains("not a supported audio file"), "{msg}");

    // A truncated MP3 decodes what is there (about half of the 0.5 s).
    let mut r = AudioReader::open(&fixture("truncated.mp3")).unwrap();
    let x = read_all(&mut r).unwrap();
    let n = x[0].len();
    assert!((5000..20000).contains(&n), "truncated.mp3: {n} frames");
    assert!(tone_fraction(&x[0], 44100, 440.0) > 0.9);
}

#[test]
fn reader_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<AudioReader>();
}

/// Randomly damaged copies of every good fixture decode or fail with an error naming the
/// file; a panic inside symphonia must not escape. Set SPLITFLOW_FUZZ_N for more rounds.
#[test]
fn damaged_copies_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x853c49e6748fea9bu64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    for name in [
        "tone.mp3",
        "tone.flac",
        "tone.ogg",
        "tone_aac.m4a",
        "tone_alac.m4a",
        "tone.aiff",
    ] {
        let good = std::fs::read(fixture(name)).unwrap();
        for i in 0..std::env::var("SPLITFLOW_FUZZ_N").map_or(25, |v| v.parse().unwrap()) {
            let mut bad = good.clone();
            match i % 3 {
                // Scattered byte changes, anywhere (headers included).
                0 => (0..8).for_each(|_| {
                    let j = rand() % bad.len();
                    bad[j] = rand() as u8;
                }),
                // A run of garbage.
                1 => {
                    let j = rand() % bad.len();
                    let end = (j + 64 + rand() % 512).min(bad.len());
                    bad[j..end].iter_mut().for_each(|b| *b = rand() as u8);
                }
                // Cut anywhere.
                _ => bad.truncate(rand() % bad.len()),
            }
            let path = dir.path().join(format!("{i}_{name}"));
            std::fs::write(&path, &bad).unwrap();
            if let Some(e) = decode_error(&path) {
                let msg = format!("{e:#}");
                assert!(msg.starts_with(&path.display().to_string()), "{msg}");
                assert!(!msg.contains('\n'), "{msg:?}");
            }
        }
    }
}
