//! Decoding: committed fixtures (compressed formats, damaged files) and generated WAVs.

mod common;

use std::path::{Path, PathBuf};

use splitflow::audio::{AudioReader, Damaged, SampleFormat};

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
    // Corrupt, non-audio and empty files, and truncated files (whose header states a longer
    // length), are errors at open or while reading.
    for name in [
        "corrupt.flac",
        "text.wav",
        "empty.wav",
        "truncated.flac",
        "truncated.wav",
        "truncated.mp3",
    ] {
        let path = fixture(name);
        match decode_error(&path) {
            Some(e) => assert_error_names(&e, &path),
            None => panic!("{name}: decoded without error"),
        }
    }
    let msg = format!("{:#}", decode_error(&fixture("truncated.wav")).unwrap());
    assert!(
        msg.contains("damaged: the stream ends early from 0:00.247; 0.253 s of 0.500 s lost"),
        "{msg}"
    );
    let msg = format!("{:#}", decode_error(&fixture("corrupt.flac")).unwrap());
    assert!(
        msg.contains("0.096 s of data skipped from 0:00.096; 0.096 s of 0.500 s lost"),
        "{msg}"
    );
    let msg = format!("{:#}", decode_error(&fixture("empty.wav")).unwrap());
    assert!(msg.contains("empty file"), "{msg}");
    let msg = format!("{:#}", decode_error(&fixture("text.wav")).unwrap());
    assert!(msg.contains("not a supported audio file"), "{msg}");

    // With Damaged::Keep a truncated MP3 decodes what is there (about half of the 0.5 s), and
    // the damage says how much is missing: decoded + lost = the stated length.
    let mut r = AudioReader::open_with(&fixture("truncated.mp3"), Damaged::Keep).unwrap();
    let x = read_all(&mut r).unwrap();
    let n = x[0].len();
    assert!((5000..20000).contains(&n), "truncated.mp3: {n} frames");
    assert!(tone_fraction(&x[0], 44100, 440.0) > 0.9);
    let d = r.damage().expect("damage reported");
    assert!(
        d.ends_early && d.decoded == n as u64 && d.lost_frames == 22_050 - n as u64,
        "{d:?}"
    );
}

/// One damage rule for every format: a cut (70 % of the bytes kept) and a run of garbage in
/// the middle of MP3, Ogg, FLAC, M4A (AAC and ALAC) and WAV files are errors by default that
/// name the position and the seconds lost; `Damaged::Keep` returns the rest with the same
/// figures, and decoded + lost is the stated length. (Garbage inside MP3 or PCM sample data
/// decodes as noise without any sign, so those two are cut only.)
#[test]
fn damage_is_an_error_unless_kept_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("pcm.wav");
    common::write_wav(&wav, &[vec![0.25f32; 8000]], 8000, 16, false);
    // (file, cut, garbage in the middle)
    let cases: Vec<(std::path::PathBuf, bool, bool)> = vec![
        (fixture("tone.mp3"), true, false),
        (fixture("tone.flac"), true, true),
        (fixture("tone_aac.m4a"), false, true),
        (fixture("tone_alac.m4a"), false, true),
        (fixture("chirp.ogg"), false, true),
        (wav, true, false),
    ];
    for (good, cut, garbage) in cases {
        let bytes = std::fs::read(&good).unwrap();
        let mut damaged = Vec::new();
        if cut {
            damaged.push(("cut", bytes[..bytes.len() * 7 / 10].to_vec()));
        }
        if garbage {
            let mut b = bytes.clone();
            let at = b.len() * 6 / 10;
            for (i, v) in b[at..at + 200].iter_mut().enumerate() {
                *v = (i * 37 % 251) as u8;
            }
            damaged.push(("garbage", b));
        }
        for (how, b) in damaged {
            let name = good.file_name().unwrap().to_string_lossy();
            let path = dir.path().join(format!("{how}_{name}"));
            std::fs::write(&path, &b).unwrap();
            let e = decode_error(&path).unwrap_or_else(|| panic!("{how} {name}: no error"));
            let msg = format!("{e:#}");
            assert_error_names(&e, &path);
            assert!(
                msg.contains("damaged: ") && msg.contains(" from 0:0") && msg.contains(" s lost"),
                "{how} {name}: {msg}"
            );
            let mut r = AudioReader::open_with(&path, Damaged::Keep).unwrap();
            let x = read_all(&mut r).unwrap();
            let d = r.damage().unwrap_or_else(|| panic!("{how} {name}: no damage"));
            assert!(
                d.lost_frames > 0 && d.decoded == x[0].len() as u64,
                "{how} {name}: {d:?}"
            );
            let stated = r.info().frames.unwrap();
            assert!(d.decoded + d.lost_frames >= stated, "{how} {name}: {d:?}");
            // The message of the strict reader is the same description.
            assert!(msg.contains(&d.describe(r.info().sample_rate)), "{msg}");
        }
    }
}

/// The chirp of `chirp_aac.m4a` (make_fixtures.sh): 0.5 sin(2 pi (200 t + 1000 t^2)).
fn chirp(n: usize, rate: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            0.5 * (2.0 * std::f64::consts::PI * (200.0 * t + 1000.0 * t * t)).sin()
        })
        .collect()
}

/// Gapless AAC (ffmpeg's encoder, which states its 1,024-frame delay and the padding in the
/// MP4 edit list): the output is as long as the source, and its cross-correlation with the
/// source peaks at lag 0 (symphonia alone gives 45,056 frames, 1,024 late).
#[test]
fn aac_in_mp4_is_gapless() {
    let mut r = AudioReader::open(&fixture("chirp_aac.m4a")).unwrap();
    assert_eq!(r.info().frames, Some(44_100));
    let x = read_all(&mut r).unwrap();
    assert_eq!(x[0].len(), 44_100);
    let src = chirp(44_100, 44_100.0);
    let xcorr = |lag: i64| -> f64 {
        (0..src.len() as i64)
            .filter_map(|i| {
                let j = i + lag;
                (0..src.len() as i64)
                    .contains(&j)
                    .then(|| src[i as usize] * f64::from(x[0][j as usize]))
            })
            .sum()
    };
    let best = (-2048..=2048).max_by(|&a, &b| xcorr(a).total_cmp(&xcorr(b))).unwrap();
    assert_eq!(best, 0, "cross-correlation peaks at lag {best}");
    // The tone fixture too: 0.5 s in, 0.5 s out.
    let mut r = AudioReader::open(&fixture("tone_aac.m4a")).unwrap();
    assert_eq!(read_all(&mut r).unwrap()[0].len(), 22_050);
}

/// An MP4 box: size, type, payload.
fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// The iTunSMPB tag (iTunes' gapless info) when there is no edit list: delay, padding and
/// length are read from the hex fields; the edit list wins when both are there.
#[test]
fn itunsmpb_gives_the_trim_without_an_edit_list() {
    use splitflow::audio::mp4::{Gapless, gapless};
    let hdlr = mp4_box(b"hdlr", &[0, 0, 0, 0, 0, 0, 0, 0, b's', b'o', b'u', b'n', 0, 0, 0, 0]);
    let mut mdhd = vec![0u8; 24];
    mdhd[12..16].copy_from_slice(&44_100u32.to_be_bytes());
    let mdia = mp4_box(b"mdia", &[mp4_box(b"mdhd", &mdhd), hdlr].concat());
    let mut mvhd = vec![0u8; 24];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
    let text = b" 00000000 00000840 000001C0 000000000000AC44 00000000";
    let name = mp4_box(b"name", &[&[0u8; 4][..], b"iTunSMPB"].concat());
    let data = mp4_box(b"data", &[&[0u8, 0, 0, 1, 0, 0, 0, 0][..], text].concat());
    let mean = mp4_box(b"mean", &[&[0u8; 4][..], b"com.apple.iTunes"].concat());
    let item = mp4_box(b"----", &[mean, name, data].concat());
    let meta = mp4_box(b"meta", &[&[0u8; 4][..], &mp4_box(b"ilst", &item)].concat());
    let udta = mp4_box(b"udta", &meta);
    let trak = |edts: &[u8]| mp4_box(b"trak", &[edts, &mdia].concat());
    let moov = |trak: Vec<u8>| {
        let mut file = mp4_box(b"ftyp", b"M4A \0\0\0\0");
        file.extend(mp4_box(
            b"moov",
            &[mp4_box(b"mvhd", &mvhd), trak, udta.clone()].concat(),
        ));
        std::io::Cursor::new(file)
    };
    assert_eq!(
        gapless(&mut moov(trak(&[])), 44_100),
        Some(Gapless {
            delay: 0x840,
            length: Some(44_100)
        })
    );
    // An edit list: media time 1024 (track timescale), duration 500 ms (movie timescale).
    let mut elst = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
    elst.extend_from_slice(&500u32.to_be_bytes());
    elst.extend_from_slice(&1024u32.to_be_bytes());
    elst.extend_from_slice(&[0, 1, 0, 0]);
    let edts = mp4_box(b"edts", &mp4_box(b"elst", &elst));
    assert_eq!(
        gapless(&mut moov(trak(&edts)), 44_100),
        Some(Gapless {
            delay: 1024,
            length: Some(22_050)
        })
    );
    // Not an MP4 at all.
    assert_eq!(
        gapless(&mut std::io::Cursor::new(b"RIFF0000WAVE".to_vec()), 44_100),
        None
    );
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
