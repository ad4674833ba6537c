//! WAV output (AtomicAudioWriter) and WAV decoding: round trips, atomic replacement, edge
//! cases generated on the fly.

use std::path::{Path, PathBuf};

use splitflow::audio::encode::quantize;
use splitflow::audio::{AtomicAudioWriter, AudioReader, OutputSpec, SampleFormat};

/// Deterministic test signal in [-0.99, 0.99], different per channel.
fn signal(channels: usize, frames: usize) -> Vec<Vec<f32>> {
    let mut s = 0x2545f4914f6cdd1du64;
    (0..channels)
        .map(|_| {
            (0..frames)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s % 19801) as f32 / 10000.0) - 0.99
                })
                .collect()
        })
        .collect()
}

/// Reads the whole file in blocks of 4096 frames.
fn read_all(r: &mut AudioReader) -> splitflow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    loop {
        let n = r.read(&mut out, 4096)?;
        assert!(n <= 4096);
        if n == 0 {
            return Ok(out);
        }
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The error's one-line message, checked to start with `path`.
fn error_for(err: anyhow::Error, path: &Path) -> String {
    let msg = format!("{err:#}");
    println!("{msg}");
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'), "{msg:?}");
    msg
}

fn open_err(path: &Path) -> String {
    match AudioReader::open(path).and_then(|mut r| read_all(&mut r)) {
        Ok(_) => panic!("{}: decoded without error", path.display()),
        Err(e) => error_for(e, path),
    }
}

/// Writes a WAV with hound directly (for inputs AtomicAudioWriter refuses to make).
fn hound_wav(path: &Path, rate: u32, channels: u16, float: bool, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        if float {
            w.write_sample(s).unwrap();
        } else {
            w.write_sample(quantize(s, 16) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A 64-bit float WAV, written byte by byte (hound cannot write f64).
fn f64_wav(path: &Path, rate: u32, channels: u16, interleaved: &[f64]) {
    let data_len = (interleaved.len() * 8) as u32;
    let mut b = Vec::new();
    b.extend(b"RIFF");
    b.extend((36 + data_len).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(16u32.to_le_bytes());
    b.extend(3u16.to_le_bytes()); // WAVE_FORMAT_IEEE_FLOAT
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend((rate * channels as u32 * 8).to_le_bytes());
    b.extend((channels * 8).to_le_bytes());
    b.extend(64u16.to_le_bytes());
    b.extend(b"data");
    b.extend(data_len.to_le_bytes());
    for v in interleaved {
        b.extend(v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn quantize_rounds_and_clips() {
    assert_eq!(quantize(0.0, 16), 0);
    assert_eq!(quantize(-1.0, 16), -32768);
    assert_eq!(quantize(1.0, 16), 32767);
    assert_eq!(quantize(0.5, 16), 16384);
    assert_eq!(quantize(1.4 / 32768.0, 16), 1);
    assert_eq!(quantize(1.6 / 32768.0, 16), 2);
    assert_eq!(quantize(-1.6 / 32768.0, 16), -2);
    assert_eq!(quantize(3.0, 8), 127);
    assert_eq!(quantize(-3.0, 8), -128);
    assert_eq!(quantize(-1.0, 24), -8_388_608);
    assert_eq!(quantize(1.0, 24), 8_388_607);
    assert_eq!(quantize(-1.0, 32), i32::MIN);
    assert_eq!(quantize(1.0, 32), i32::MAX);
    assert_eq!(quantize(f32::NAN, 16), 0);
    assert_eq!(quantize(f32::INFINITY, 16), 32767);
}

#[test]
fn wav_round_trips() {
    use SampleFormat::*;
    let dir = tempfile::tempdir().unwrap();
    for (format, channels, rate) in [
        (Int(16), 1, 44100),
        (Int(16), 2, 8000),
        (Int(24), 2, 48000),
        (Int(8), 2, 8000),
        (Int(32), 1, 22050),
        (Float(32), 8, 192000),
        (Int(16), 8, 192000),
        (Float(32), 1, 8000),
    ] {
        let path = dir.path().join(format!("rt_{format}_{channels}_{rate}.wav"));
        let spec = OutputSpec {
            sample_rate: rate,
            channels,
            format,
        };
        let n = 10007; // odd, more than two 4096-frame reads
        let x = signal(channels, n);
        let mut w = AtomicAudioWriter::create(&path, spec).unwrap();
        assert_eq!(w.spec(), spec);
        // Write in two uneven pieces.
        let (a, b): (Vec<Vec<f32>>, Vec<Vec<f32>>) = x.iter().map(|c| (c[..3001].to_vec(), c[3001..].to_vec())).unzip();
        w.write_f32(&a).unwrap();
        w.write_f32(&b).unwrap();
        w.finish(false).unwrap();

        let mut r = AudioReader::open(&path).unwrap();
        let info = r.info();
        assert_eq!(info.path, path);
        assert_eq!(info.container, "WAV");
        assert_eq!(info.codec, "PCM");
        assert_eq!(info.sample_rate, rate);
        assert_eq!(info.channels, channels);
        assert_eq!(info.sample_format, Some(format), "{path:?}");
        assert_eq!(info.frames, Some(n as u64));
        assert!((info.duration_secs().unwrap() - n as f64 / rate as f64).abs() < 1e-9);
        let y = read_all(&mut r).unwrap();
        assert_eq!(y.len(), channels);
        let lsb = match format {
            Int(b) => 1.0 / (1u64 << (b - 1)) as f32,
            Float(_) => 0.0,
        };
        for (cx, cy) in x.iter().zip(&y) {
            assert_eq!(cy.len(), n);
            let worst = cx.iter().zip(cy).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(
                worst <= lsb,
                "{format} {channels}ch {rate}: error {worst} > 1 LSB {lsb}"
            );
        }
    }
}

#[test]
fn write_i32_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i24.wav");
    let spec = OutputSpec {
        sample_rate: 44100,
        channels: 2,
        format: SampleFormat::Int(24),
    };
    let ints = vec![vec![-8_388_608, -1, 0, 1, 8_388_607], vec![5, 4, 3, 2, 1]];
    let mut w = AtomicAudioWriter::create(&path, spec).unwrap();
    w.write_i32(&ints).unwrap();
    w.finish(false).unwrap();
    let y = read_all(&mut AudioReader::open(&path).unwrap()).unwrap();
    for (ci, cy) in ints.iter().zip(&y) {
        let back: Vec<i32> = cy.iter().map(|v| (v * 8_388_608.0).round() as i32).collect();
        assert_eq!(&back, ci);
    }
}

#[test]
fn finish_without_overwrite_keeps_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.wav");
    std::fs::write(&dest, b"precious").unwrap();
    let spec = OutputSpec {
        sample_rate: 8000,
        channels: 1,
        format: SampleFormat::Int(16),
    };
    let mut w = AtomicAudioWriter::create(&dest, spec).unwrap();
    w.write_f32(&[vec![0.1; 100]]).unwrap();
    // While writing, only the hidden temp file sits beside the destination.
    let during = files_in(dir.path());
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(
        during.iter().any(|f| f.starts_with(".out.wav") && f.ends_with(".tmp")),
        "{during:?}"
    );
    let msg = error_for(w.finish(false).unwrap_err(), &dest);
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
    assert_eq!(files_in(dir.path()), vec!["out.wav"]);

    // With overwrite, it is replaced.
    let mut w = AtomicAudioWriter::create(&dest, spec).unwrap();
    w.write_f32(&[vec![0.25; 100]]).unwrap();
    w.finish(true).unwrap();
    let y = read_all(&mut AudioReader::open(&dest).unwrap()).unwrap();
    assert_eq!(y[0], vec![0.25; 100]);
    assert_eq!(files_in(dir.path()), vec!["out.wav"]);
}

#[test]
fn dropping_a_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("nested/deeper/out.wav");
    let spec = OutputSpec {
        sample_rate: 48000,
        channels: 2,
        format: SampleFormat::Float(32),
    };
    let mut w = AtomicAudioWriter::create(&dest, spec).unwrap();
    w.write_f32(&signal(2, 1000)).unwrap();
    assert_eq!(files_in(&dir.path().join("nested/deeper")).len(), 1);
    drop(w);
    assert!(files_in(&dir.path().join("nested/deeper")).is_empty());
}

#[test]
fn writer_rejects_bad_specs_and_input() {
    use SampleFormat::*;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.wav");
    for format in [Int(12), Int(20), Float(64), Float(16)] {
        let spec = OutputSpec {
            sample_rate: 44100,
            channels: 2,
            format,
        };
        let Err(e) = AtomicAudioWriter::create(&dest, spec) else {
            panic!("{format} accepted");
        };
        error_for(e, &dest);
    }
    let spec = OutputSpec {
        sample_rate: 44100,
        channels: 2,
        format: Float(32),
    };
    let mut w = AtomicAudioWriter::create(&dest, spec).unwrap();
    assert!(w.write_i32(&[vec![1], vec![2]]).is_err());
    assert!(w.write_f32(&[vec![0.0]]).is_err()); // one channel for two
    assert!(w.write_f32(&[vec![0.0], vec![]]).is_err()); // ragged
    drop(w);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn nan_and_inf_are_errors_with_the_frame_index() {
    let dir = tempfile::tempdir().unwrap();
    for (name, frame, bad) in [
        ("nan.wav", 7000usize, f32::NAN),
        ("inf.wav", 0, f32::INFINITY),
        ("neginf.wav", 1234, f32::NEG_INFINITY),
    ] {
        let path = dir.path().join(name);
        let mut x = vec![0.1f32; 2 * 10000];
        x[2 * frame + 1] = bad; // right channel
        hound_wav(&path, 44100, 2, true, &x);
        let msg = open_err(&path);
        assert!(
            msg.contains(&format!("contains NaN or infinite samples at frame {frame}")),
            "{msg}"
        );
    }
}

#[test]
fn float64_wav_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f64.wav");
    let x: Vec<f64> = (0..2000).map(|i| (i as f64 * 0.01).sin() * 0.9).collect();
    f64_wav(&path, 96000, 2, &x);
    let mut r = AudioReader::open(&path).unwrap();
    assert_eq!(r.info().sample_format, Some(SampleFormat::Float(64)));
    assert_eq!(r.info().channels, 2);
    let y = read_all(&mut r).unwrap();
    assert_eq!(y[0].len(), 1000);
    for i in 0..1000 {
        assert!((y[0][i] as f64 - x[2 * i]).abs() < 1e-6);
        assert!((y[1][i] as f64 - x[2 * i + 1]).abs() < 1e-6);
    }
}

#[test]
fn zero_length_and_single_sample_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("zero.wav");
    hound_wav(&empty, 44100, 2, false, &[]);
    let msg = open_err(&empty);
    assert!(msg.contains("contains no audio"), "{msg}");

    let one = dir.path().join("one.wav");
    hound_wav(&one, 44100, 1, false, &[0.5]);
    let mut r = AudioReader::open(&one).unwrap();
    assert_eq!(r.info().frames, Some(1));
    let y = read_all(&mut r).unwrap();
    assert_eq!(y, vec![vec![0.5]]);
}

#[test]
fn sample_rates_outside_the_range_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [4000u32, 7999, 192001, 384000] {
        let path = dir.path().join(format!("rate{rate}.wav"));
        hound_wav(&path, rate, 1, false, &[0.0; 100]);
        let msg = open_err(&path);
        assert!(msg.contains("outside the supported range"), "{msg}");
    }
}

#[test]
fn paths_that_are_not_files() {
    let dir = tempfile::tempdir().unwrap();
    let msg = open_err(dir.path());
    assert!(msg.contains("directory"), "{msg}");
    let missing: PathBuf = dir.path().join("missing.wav");
    let msg = open_err(&missing);
    assert!(msg.contains("cannot open"), "{msg}");
}

#[test]
fn read_into_wrong_channel_count_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("st.wav");
    hound_wav(&path, 8000, 2, false, &[0.0; 200]);
    let mut r = AudioReader::open(&path).unwrap();
    let mut out = vec![Vec::new()];
    assert!(r.read(&mut out, 10).is_err());
    let mut out = Vec::new();
    assert_eq!(r.read(&mut out, 0).unwrap(), 0);
    assert_eq!(out.len(), 2);
    assert_eq!(r.read(&mut out, 60).unwrap(), 60);
    assert_eq!(r.read(&mut out, 1000).unwrap(), 40);
    assert_eq!(r.read(&mut out, 1000).unwrap(), 0);
}

/// FLAC output (by the `.flac` extension): 8-, 16- and 24-bit, 1 to 8 channels, lengths around
/// the 4,096-frame block (0, 1, a block, a block and one) decode back bit for bit with the
/// length its STREAMINFO states; what FLAC cannot hold (float, 32-bit, 9 channels) is refused
/// before anything is written.
#[test]
fn flac_round_trips_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, channels, frames) in [
        (16u16, 2usize, 10_000usize),
        (24, 1, 4096),
        (24, 2, 4097),
        (8, 8, 3000),
        (16, 1, 1),
    ] {
        let dest = dir.path().join(format!("b{bits}c{channels}n{frames}.flac"));
        let spec = OutputSpec {
            sample_rate: 44_100,
            channels,
            format: SampleFormat::Int(bits),
        };
        let x = signal(channels, frames);
        let ints: Vec<Vec<i32>> = x
            .iter()
            .map(|c| c.iter().map(|&v| quantize(v, bits)).collect())
            .collect();
        let mut w = AtomicAudioWriter::create(&dest, spec).unwrap();
        // In uneven pieces, so blocks straddle the writes.
        let mut at = 0usize;
        for piece in [1usize, 999, 5000, usize::MAX] {
            let end = at.saturating_add(piece).min(frames);
            let part: Vec<Vec<i32>> = ints.iter().map(|c| c[at..end].to_vec()).collect();
            w.write_i32(&part).unwrap();
            at = end;
        }
        w.finish(false).unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(&bytes[..4], b"fLaC");
        let mut r = AudioReader::open(&dest).unwrap();
        assert_eq!(r.info().codec, "FLAC");
        assert_eq!(r.info().sample_format, Some(SampleFormat::Int(bits)));
        assert_eq!(r.info().frames, Some(frames as u64));
        let y = read_all(&mut r).unwrap();
        let scale = (1u64 << (bits - 1)) as f32;
        for (c, (yc, ic)) in y.iter().zip(&ints).enumerate() {
            let back: Vec<i32> = yc.iter().map(|&v| (v * scale).round() as i32).collect();
            assert_eq!(&back, ic, "{bits}-bit {channels} ch {frames} frames, channel {c}");
        }
    }
    // Loud 24-bit music: flacenc's Rice search overflows on some blocks (a 370 MB file for
    // 1 s, which symphonia and ffmpeg cannot read); those blocks go verbatim instead.
    let song = splitflow::demo::render(44_100, 1.0).mixture();
    let dest = dir.path().join("song24.flac");
    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 2,
        format: SampleFormat::Int(24),
    };
    let mut w = AtomicAudioWriter::create(&dest, spec).unwrap();
    w.write_f32(&song).unwrap();
    w.finish(false).unwrap();
    let size = std::fs::metadata(&dest).unwrap().len();
    assert!(
        size < 44_100 * 2 * 3,
        "{size} bytes, more than the samples stored plainly"
    );
    let y = read_all(&mut AudioReader::open(&dest).unwrap()).unwrap();
    for (yc, xc) in y.iter().zip(&song) {
        for (a, b) in yc.iter().zip(xc) {
            assert_eq!((a * 8_388_608.0).round() as i32, quantize(*b, 24));
        }
    }

    for (format, channels) in [
        (SampleFormat::Float(32), 2),
        (SampleFormat::Int(32), 2),
        (SampleFormat::Int(16), 9),
    ] {
        let dest = dir.path().join("bad.flac");
        let spec = OutputSpec {
            sample_rate: 44_100,
            channels,
            format,
        };
        let msg = error_for(AtomicAudioWriter::create(&dest, spec).err().unwrap(), &dest);
        assert!(msg.contains("FLAC"), "{msg}");
        assert!(!dest.exists());
    }
}
