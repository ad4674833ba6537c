//! The stem renderer on fixtures made here: a tiny SoundFont (one looped 441 Hz sine, GM
//! presets for piano, guitar, bass, strings, winds and two drum kits), MIDI files written with
//! `midly`, and a WAD holding a MIDI lump.

use std::path::Path;
use std::process::Command;

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use splitflow::data::manifest::{self, ClipRow, SPLITS};
use splitflow::data::render::midi::{self, Msg};
use splitflow::data::render::synth::{self, Font, RenderSettings};
use splitflow::data::render::{pat, procedural, sf3, wad};

fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    if data.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn list(kind: &[u8; 4], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut d = kind.to_vec();
    chunks.iter().for_each(|c| d.extend_from_slice(c));
    chunk(b"LIST", &d)
}

fn name20(s: &str) -> Vec<u8> {
    let mut n = [0u8; 20];
    n.iter_mut().zip(s.bytes()).for_each(|(d, c)| *d = c);
    n.to_vec()
}

const PRESETS: &[(u16, u16, &str)] = &[
    (0, 0, "Piano A"),
    (0, 1, "Piano B"),
    (0, 25, "Guitar"),
    (0, 33, "Bass A"),
    (0, 34, "Bass B"),
    (0, 40, "Violin"),
    (0, 56, "Trumpet"),
    (128, 0, "Standard"),
    (128, 16, "Power"),
];

/// A minimal SoundFont 2: one 44.1 kHz sample of 44 periods of a 441 Hz sine (looped), one
/// instrument playing it over the whole keyboard, and the presets above all using it.
fn tiny_sf2() -> Vec<u8> {
    let mut smpl = Vec::new();
    for i in 0..4400 + 46 {
        let v = if i < 4400 {
            (16000.0 * (2.0 * std::f64::consts::PI * i as f64 / 100.0).sin()) as i16
        } else {
            0
        };
        smpl.extend_from_slice(&v.to_le_bytes());
    }
    tiny_font(2, &smpl, [0, 4400, 100, 4400, 44100], 1)
}

/// The SoundFont of [`tiny_sf2`] around other sample data: `ifil` major version `major`, the
/// one sample header's start, end, loop start, loop end and rate, and its sample type.
fn tiny_font(major: u8, smpl: &[u8], header: [u32; 5], kind: u16) -> Vec<u8> {
    let info = list(
        b"INFO",
        &[
            chunk(b"ifil", &[major, 0, 1, 0]),
            chunk(b"isng", b"EMU8000\0"),
            chunk(b"INAM", b"tiny\0\0"),
        ],
    );
    let sdta = list(b"sdta", &[chunk(b"smpl", smpl)]);
    let n = PRESETS.len() as u16;
    let (mut phdr, mut pbag, mut pgen) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (bank, patch, name)) in PRESETS.iter().enumerate() {
        phdr.extend(name20(name));
        phdr.extend_from_slice(&patch.to_le_bytes());
        phdr.extend_from_slice(&bank.to_le_bytes());
        phdr.extend_from_slice(&(i as u16).to_le_bytes());
        phdr.extend_from_slice(&[0; 12]);
        pbag.extend_from_slice(&(i as u16).to_le_bytes());
        pbag.extend_from_slice(&0u16.to_le_bytes());
        pgen.extend_from_slice(&41u16.to_le_bytes()); // instrument
        pgen.extend_from_slice(&0u16.to_le_bytes());
    }
    phdr.extend(name20("EOP"));
    phdr.extend_from_slice(&[0, 0, 0, 0]);
    phdr.extend_from_slice(&n.to_le_bytes());
    phdr.extend_from_slice(&[0; 12]);
    pbag.extend_from_slice(&n.to_le_bytes());
    pbag.extend_from_slice(&0u16.to_le_bytes());
    pgen.extend_from_slice(&[0; 4]);
    let mut inst = name20("Sine");
    inst.extend_from_slice(&0u16.to_le_bytes());
    inst.extend(name20("EOI"));
    inst.extend_from_slice(&1u16.to_le_bytes());
    let ibag = [0u8, 0, 0, 0, 2, 0, 0, 0];
    // sampleModes = 1 (loop), then sampleID = 0 (last, as the format wants).
    let igen = [54u8, 0, 1, 0, 53, 0, 0, 0, 0, 0, 0, 0];
    let mut shdr = name20("sine");
    for v in header {
        shdr.extend_from_slice(&v.to_le_bytes());
    }
    shdr.extend_from_slice(&[69, 0, 0, 0]); // root key 69, correction 0, link 0
    shdr.extend_from_slice(&kind.to_le_bytes());
    shdr.extend(name20("EOS"));
    shdr.extend_from_slice(&[0; 26]);
    let pdta = list(
        b"pdta",
        &[
            chunk(b"phdr", &phdr),
            chunk(b"pbag", &pbag),
            chunk(b"pmod", &[0; 10]),
            chunk(b"pgen", &pgen),
            chunk(b"inst", &inst),
            chunk(b"ibag", &ibag),
            chunk(b"imod", &[0; 10]),
            chunk(b"igen", &igen),
            chunk(b"shdr", &shdr),
        ],
    );
    let mut body = b"sfbk".to_vec();
    body.extend(info);
    body.extend(sdta);
    body.extend(pdta);
    chunk(b"RIFF", &body)
}

/// A SoundFont 3 holding tests/fixtures/tone.ogg (a 44.1 kHz Vorbis tone) as its one
/// compressed sample, with its loop at decoded frames 1000..3000 of the sample.
#[test]
fn sf3_samples_become_pcm_at_absolute_positions() {
    let ogg = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.ogg")).unwrap();
    let sf3 = tiny_font(3, &ogg, [0, ogg.len() as u32, 1000, 3000, 44100], 0x11);
    assert!(sf3::is_sf3(&sf3) && !sf3::is_sf3(&tiny_sf2()));
    let sf2 = sf3::to_sf2(Path::new("t.sf3"), &sf3).unwrap();
    assert!(!sf3::is_sf3(&sf2));
    let mut want = splitflow::audio::decode::AudioReader::open(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tone.ogg"
    )))
    .unwrap()
    .read_to_end()
    .unwrap()
    .swap_remove(0);
    want.iter_mut().for_each(|v| *v = (*v * 32767.0).round());
    let n = want.len();
    // The sample header: start 0, end = decoded frames, loops as absolute positions, mono.
    let at = |tag: &[u8]| sf2.windows(4).position(|w| w == tag).unwrap() + 8;
    let sh = at(b"shdr");
    let u32le = |o: usize| u32::from_le_bytes(sf2[o..o + 4].try_into().unwrap());
    assert_eq!(
        [u32le(sh + 20), u32le(sh + 24), u32le(sh + 28), u32le(sh + 32)],
        [0, n as u32, 1000, 3000]
    );
    assert_eq!(u16::from_le_bytes([sf2[sh + 44], sf2[sh + 45]]), 1);
    assert_eq!(&sf2[sh + 46..sh + 49], b"EOS");
    // The PCM is the decoded tone (16-bit), then 46 zero samples.
    let sm = at(b"smpl");
    let size = u32le(sm - 4) as usize;
    assert_eq!(size, 2 * (n + 46));
    let pcm: Vec<f32> = sf2[sm..sm + size]
        .chunks_exact(2)
        .map(|w| f32::from(i16::from_le_bytes([w[0], w[1]])))
        .collect();
    assert_eq!(&pcm[..n], &want[..]);
    assert!(pcm[n..].iter().all(|v| *v == 0.0));
    assert!(want.iter().map(|v| v.abs()).fold(0.0, f32::max) > 1000.0);
    // rustysynth loads it, and a note plays.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.sf3");
    std::fs::write(&path, &sf3).unwrap();
    let font = Font::load(&path).unwrap();
    assert_eq!(font.presets().len(), PRESETS.len());
    let voice = synth::melodic_voices(&font, 0..=7).swap_remove(0);
    let events = [
        midi::Event {
            time: 0.0,
            channel: 0,
            msg: Msg::NoteOn { key: 69, vel: 100 },
        },
        midi::Event {
            time: 0.5,
            channel: 0,
            msg: Msg::NoteOff { key: 69 },
        },
    ];
    let settings = RenderSettings {
        rate: 22050,
        reverb: None,
        tail_secs: 0.2,
    };
    let x = synth::render_part(&events, &voice, &settings).unwrap();
    assert!(rms(&x, 22050.0, 0.05, 0.45) > 0.01);
    // A corrupt stream is an error naming the file and the sample.
    let mut bad = sf3.clone();
    let s0 = bad.windows(4).position(|w| w == b"OggS").unwrap();
    bad[s0..s0 + 200].fill(7);
    let e = format!("{:#}", sf3::to_sf2(Path::new("bad.sf3"), &bad).unwrap_err());
    assert!(e.contains("bad.sf3") && e.contains("sample 0 (sine)"), "{e}");
}

/// A format-1 MIDI file at 120 BPM (480 ticks a beat): a piano on channel 1 in 0-1 s, a bass
/// (program 33) on channel 2 in 2-3 s, drums on channel 10 in 4-5 s, and a lead synth
/// (program 80, no label) on channel 4 in 0-5 s.
fn three_part_midi() -> Vec<u8> {
    let ev = |delta: u32, kind| TrackEvent {
        delta: u28::new(delta),
        kind,
    };
    let midi = |ch: u8, message| TrackEventKind::Midi {
        channel: u4::new(ch),
        message,
    };
    let on = |k: u8| MidiMessage::NoteOn {
        key: u7::new(k),
        vel: u7::new(100),
    };
    let off = |k: u8| MidiMessage::NoteOff {
        key: u7::new(k),
        vel: u7::new(0),
    };
    let prog = |p: u8| MidiMessage::ProgramChange { program: u7::new(p) };
    let tempo = vec![
        ev(0, TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000)))),
        ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
    ];
    // Two notes of half a second each from `start` beats, on one channel.
    let notes = |ch: u8, program: Option<u8>, key: u8, start: u32| {
        let mut t = Vec::new();
        if let Some(p) = program {
            t.push(ev(0, midi(ch, prog(p))));
        }
        t.push(ev(start * 480, midi(ch, on(key))));
        t.push(ev(480, midi(ch, off(key))));
        t.push(ev(0, midi(ch, on(key + 4))));
        t.push(ev(480, midi(ch, off(key + 4))));
        t.push(ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)));
        t
    };
    let mut lead = vec![
        ev(0, midi(3, prog(80))),
        ev(0, midi(3, on(72))),
        ev(4800, midi(3, off(72))),
    ];
    lead.push(ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)));
    let smf = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(u15::new(480))),
        tracks: vec![
            tempo,
            notes(0, Some(0), 60, 0),
            notes(1, Some(33), 40, 4),
            notes(9, None, 36, 8),
            lead,
        ],
    };
    let mut out = Vec::new();
    smf.write_std(&mut out).unwrap();
    out
}

fn rms(x: &[f32], rate: f64, from: f64, to: f64) -> f64 {
    // Past the end of a stem is silence.
    let (a, b) = (
        ((from * rate) as usize).min(x.len()),
        ((to * rate) as usize).min(x.len()),
    );
    (x[a..b].iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / (b - a).max(1) as f64).sqrt()
}

#[test]
fn parses_midi_and_renders_each_part_as_its_own_stem() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("Tiny.sf2");
    std::fs::write(&sf, tiny_sf2()).unwrap();
    let font = Font::load(&sf).unwrap();
    assert_eq!(font.presets().len(), PRESETS.len());

    let song = midi::parse_smf(&three_part_midi(), "three.mid").unwrap();
    let ons: Vec<(f64, u8)> = song
        .events
        .iter()
        .filter(|e| matches!(e.msg, Msg::NoteOn { .. }))
        .map(|e| (e.time, e.channel))
        .collect();
    // 120 BPM: beat 4 is 2 s, beat 8 is 4 s.
    assert!(
        ons.contains(&(0.0, 0)) && ons.contains(&(2.0, 1)) && ons.contains(&(4.5, 9)),
        "{ons:?}"
    );
    let (parts, unlabelled) = midi::split_parts(&song);
    assert_eq!(unlabelled, 1, "the program-80 note has no label");
    let labels: Vec<_> = parts.iter().map(|p| (p.label, p.channel, p.program)).collect();
    assert_eq!(
        labels,
        [("piano", 0, Some(0)), ("bass", 1, Some(33)), ("drums", 9, None)]
    );

    let rate = 22050.0;
    let settings = RenderSettings {
        rate: 22050,
        reverb: None,
        tail_secs: 0.5,
    };
    let windows = [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)];
    for (part, (from, to)) in parts.iter().zip(windows) {
        let voice = if part.label == "drums" {
            synth::drum_kits(&font).into_iter().next().unwrap()
        } else {
            synth::melodic_voices(&font, midi::label_programs(part.label))
                .into_iter()
                .next()
                .unwrap()
        };
        let x = synth::render_part(&part.events, &voice, &settings).unwrap();
        assert!(
            x.len() as f64 >= (to + 0.5) * rate,
            "{}: {} samples",
            part.label,
            x.len()
        );
        let inside = rms(&x, rate, from + 0.05, to - 0.05);
        assert!(inside > 0.01, "{}: rms {inside} while playing", part.label);
        for (a, b) in windows.iter().filter(|w| w.0 != from) {
            let outside = rms(&x, rate, a + 0.1, b - 0.05);
            assert!(outside < inside * 1e-3, "{}: rms {outside} in {a}-{b} s", part.label);
        }
        // The sine (441 Hz at key 69) at the pitch of the first note: twice its frequency in
        // zero crossings a second.
        let key = part
            .events
            .iter()
            .find_map(|e| match e.msg {
                Msg::NoteOn { key, .. } => Some(key),
                _ => None,
            })
            .unwrap();
        let want = 2.0 * 441.0 * 2f64.powf((f64::from(key) - 69.0) / 12.0);
        let w = &x[((from + 0.05) * rate) as usize..((from + 0.45) * rate) as usize];
        let zc = w.windows(2).filter(|p| (p[0] < 0.0) != (p[1] < 0.0)).count() as f64 / 0.4;
        assert!(
            (zc - want).abs() < want * 0.1,
            "{} key {key}: {zc} crossings/s, want {want}",
            part.label
        );
    }
    // Reverb adds a tail after the last note-off; the dry render is silent there.
    let voice = synth::melodic_voices(&font, 0..=7).remove(0);
    let wet = RenderSettings {
        reverb: Some(127),
        tail_secs: 1.5,
        ..settings
    };
    let dry = RenderSettings {
        tail_secs: 1.5,
        ..settings
    };
    let xw = synth::render_part(&parts[0].events, &voice, &wet).unwrap();
    let xd = synth::render_part(&parts[0].events, &voice, &dry).unwrap();
    assert!(rms(&xw, rate, 1.1, 1.6) > 10.0 * rms(&xd, rate, 1.1, 1.6) + 1e-6);
}

#[test]
fn procedural_generator_is_deterministic_and_varied() {
    let (p1, s1) = procedural::generate(3, 20.0);
    let (p2, s2) = procedural::generate(3, 20.0);
    assert_eq!((p1.clone(), s1.clone()), (p2, s2));
    let (p3, s3) = procedural::generate(4, 20.0);
    assert_ne!(s1, s3);
    assert!(
        s1.duration() >= 19.0 && s1.duration() < 20.0 + 240.0 / p1.bpm,
        "{}",
        s1.duration()
    );
    let (parts, _) = midi::split_parts(&s1);
    let labels: Vec<_> = parts.iter().map(|p| p.label).collect();
    assert!(labels.contains(&"drums") && labels.contains(&"bass"), "{labels:?}");
    assert!(parts.len() >= 3, "{labels:?}");
    // Tempi and keys vary over seeds.
    let plans: Vec<_> = (0..40).map(|s| procedural::plan(s, 10.0)).collect();
    let keys: std::collections::BTreeSet<u8> = plans.iter().map(|p| p.key).collect();
    let bpm = plans.iter().map(|p| p.bpm);
    let (lo, hi) = bpm.clone().fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    assert!(keys.len() >= 8 && hi - lo > 50.0, "keys {keys:?}, bpm {lo}..{hi}");
    assert_ne!(p1, p3);
}

fn build(cache: &Path, out: &Path, package: &str) -> std::process::Output {
    build_jobs(cache, out, package, 2)
}

fn build_jobs(cache: &Path, out: &Path, package: &str, jobs: u32) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_splitflow"))
        .args([
            "data",
            "build",
            "--quiet",
            "-j",
            &jobs.to_string(),
            "--package",
            package,
        ])
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// The fixture cache of the freedoom render set: the tiny SoundFont as FluidR3_GM and a WAD
/// with a three-part MIDI lump, a MUS lump and a map.
fn freedoom_fixture(cache: &Path) {
    let sf = cache.join("fluid-soundfont-gm/usr/share/sounds/sf2/FluidR3_GM.sf2");
    std::fs::create_dir_all(sf.parent().unwrap()).unwrap();
    std::fs::write(&sf, tiny_sf2()).unwrap();
    let doom = cache.join("freedoom/usr/share/games/doom");
    std::fs::create_dir_all(&doom).unwrap();
    let lumps = vec![
        wad::Lump {
            name: "MAP01".into(),
            data: vec![0; 32],
        },
        wad::Lump {
            name: "D_TEST".into(),
            data: three_part_midi(),
        },
        wad::Lump {
            name: "D_OLD".into(),
            data: b"MUS\x1a\0\0".to_vec(),
        },
    ];
    std::fs::write(doom.join("freedoom2.wad"), wad::write(b"IWAD", &lumps)).unwrap();
}

#[test]
fn rendered_stems_are_the_same_whatever_the_job_count() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    freedoom_fixture(&cache);
    let (a, b) = (dir.path().join("j1"), dir.path().join("j2"));
    assert!(build_jobs(&cache, &a, "freedoom", 1).status.success());
    assert!(build_jobs(&cache, &b, "freedoom", 2).status.success());
    let rows = manifest::read_jsonl(&a.join("manifest.jsonl")).unwrap();
    assert_eq!(rows.len(), 9);
    assert_eq!(
        std::fs::read(a.join("manifest.jsonl")).unwrap(),
        std::fs::read(b.join("manifest.jsonl")).unwrap()
    );
    for r in &rows {
        assert!(
            std::fs::read(a.join(&r.path)).unwrap() == std::fs::read(b.join(&r.path)).unwrap(),
            "{} differs between -j 1 and -j 2",
            r.path
        );
    }
}

#[test]
fn builds_stems_from_wad_midi_lumps_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    freedoom_fixture(&cache);

    let o = build(&cache, &out, "freedoom");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&o.stdout));
    let rows = manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap();
    let labels: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels.into_iter().collect::<Vec<_>>(), ["bass", "drums", "piano"]);
    for r in &rows {
        assert_eq!(r.package, "freedoom");
        assert!(
            r.source_file
                .starts_with("usr/share/games/doom/freedoom2.wad!D_TEST ch"),
            "{r:?}"
        );
        assert!(
            r.path.starts_with(&format!("audio/{}/render-freedoom/", r.label)),
            "{r:?}"
        );
        // Each part plays 1 s: one clip of 1 s plus release, reverb tail and margins.
        assert!((0.95..3.6).contains(&r.duration), "{r:?}");
        let want = match r.label.as_str() {
            "drums" => "FluidR3_GM/kit/",
            "bass" => "FluidR3_GM/p03",
            _ => "FluidR3_GM/p00",
        };
        assert!(r.group.starts_with(want), "{r:?}");
        let w = hound::WavReader::open(out.join(&r.path)).unwrap();
        assert_eq!((w.spec().channels, w.spec().sample_rate), (1, 22050));
    }
    // Three parts, three presets each (one bank here: the third is drawn): nine stems, one
    // clip each.
    assert_eq!(rows.len(), 9, "{rows:#?}");
    let done = std::fs::read_to_string(out.join("parts/render-freedoom.done")).unwrap();
    assert!(done.contains("MUS lump") && done.contains("\"stems\": 9"), "{done}");
    assert!(manifest::split_conflicts(&rows).is_empty());

    let o = build(&cache, &out, "freedoom");
    assert!(o.status.success());
    assert_eq!(manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap(), rows);

    // Without the SoundFont the set fails with a one-line reason and exit 1.
    let o = build(&dir.path().join("empty"), &dir.path().join("c2"), "mma");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fluid-soundfont-gm"));
}

fn row(label: &str, group: &str, duration: f64) -> ClipRow {
    ClipRow {
        path: format!("{group}/{duration}.wav"),
        label: label.into(),
        duration,
        rate: 22050,
        package: "p".into(),
        source_file: "f".into(),
        group: group.into(),
        licence: "l".into(),
        split: String::new(),
    }
}

#[test]
fn splits_balance_minutes_per_label_and_stay_disjoint() {
    let mut rows = Vec::new();
    let mut s: u64 = 12345;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    // speech: few large groups of many clips; drums: 40 groups of very different sizes.
    for g in 0..12 {
        for _ in 0..(20.0 + 200.0 * next()) as usize {
            rows.push(row("speech", &format!("spk{g}"), 2.0 + 8.0 * next()));
        }
    }
    for g in 0..40 {
        for _ in 0..(1.0 + 30.0 * next() * next()) as usize {
            rows.push(row("drums", &format!("kit{g}"), 10.0));
        }
    }
    let mut a = rows.clone();
    manifest::assign_splits(&mut a);
    assert!(manifest::split_conflicts(&a).is_empty());
    for label in ["speech", "drums"] {
        let t = manifest::minutes_table(&a);
        let m = t.iter().find(|(l, _)| l == label).unwrap().1;
        for (i, s) in SPLITS.iter().enumerate().skip(1) {
            let share = m[i] / m[4];
            assert!((0.07..0.13).contains(&share), "{label} {s}: {share:.3}");
        }
    }
    // Deterministic, and independent of row order.
    let mut b = rows.clone();
    b.reverse();
    manifest::assign_splits(&mut b);
    b.reverse();
    assert_eq!(a, b);
}

#[test]
fn mix_sets_render_each_song_whole_as_music_one_group_per_song() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    freedoom_fixture(&cache);
    let (a, b) = (dir.path().join("j1"), dir.path().join("j2"));
    let o = build_jobs(&cache, &a, "mixes-freedoom", 1);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(build_jobs(&cache, &b, "mixes-freedoom", 2).status.success());
    assert_eq!(
        std::fs::read(a.join("manifest.jsonl")).unwrap(),
        std::fs::read(b.join("manifest.jsonl")).unwrap()
    );
    let rows = manifest::read_jsonl(&a.join("manifest.jsonl")).unwrap();
    let song = "usr/share/games/doom/freedoom2.wad!D_TEST";
    let mut renders = std::collections::BTreeSet::new();
    for r in &rows {
        assert_eq!(
            std::fs::read(a.join(&r.path)).unwrap(),
            std::fs::read(b.join(&r.path)).unwrap(),
            "{} differs between -j 1 and -j 2",
            r.path
        );
        assert_eq!((r.label.as_str(), r.package.as_str()), ("music", "freedoom-mixes"));
        assert!(r.path.starts_with("audio/music/render-freedoom-mixes/"), "{r:?}");
        // Every render of the song in one group: a test song is never heard in training.
        assert_eq!(r.group, format!("mix {song}"));
        let k = r
            .source_file
            .strip_prefix(&format!("{song} mix "))
            .and_then(|s| s.strip_suffix(" (3 parts)"))
            .unwrap_or_else(|| panic!("{r:?}"));
        renders.insert(k.to_string());
    }
    assert_eq!(renders.into_iter().collect::<Vec<_>>(), ["0", "1", "2"]);
    // Mix 0 plays the song whole: piano (key 60) in 0-1 s, bass (key 40) in 2-3 s, drums in
    // 4-5 s, each at its own time and pitch. Its clips, in order, from the first onset.
    let mut x = Vec::new();
    for r in rows.iter().filter(|r| r.source_file.contains(" mix 0 ")) {
        let mut w = hound::WavReader::open(a.join(&r.path)).unwrap();
        x.extend(w.samples::<i16>().map(|s| f32::from(s.unwrap()) / 32768.0));
    }
    let rate = 22050.0;
    let onset = x.iter().position(|v| v.abs() > 1e-3).unwrap() as f64 / rate;
    assert!(x.len() as f64 / rate >= onset + 5.0, "{} s", x.len() as f64 / rate);
    let at = |from: f64, to: f64| rms(&x, rate, onset + from, onset + to);
    let playing = [at(0.05, 0.95), at(2.05, 2.95), at(4.05, 4.95)];
    let quiet = at(1.6, 1.9).max(at(3.6, 3.9));
    for p in playing {
        assert!(
            p > 0.01 && p > 30.0 * quiet,
            "playing {playing:?}, between parts {quiet}"
        );
    }
    let crossings = |from: f64| {
        let w = &x[((onset + from) * rate) as usize..((onset + from + 0.4) * rate) as usize];
        w.windows(2).filter(|p| (p[0] < 0.0) != (p[1] < 0.0)).count() as f64 / 0.4
    };
    for (from, key) in [(0.05, 60.0), (2.05, 40.0)] {
        let want = 2.0 * 441.0 * 2f64.powf((key - 69.0) / 12.0);
        let zc = crossings(from);
        assert!(
            (zc - want).abs() < want * 0.1,
            "key {key} at {from} s: {zc} crossings/s, want {want}"
        );
    }
}

/// A FreePats-like package in the cache: a TiMidity configuration naming a piano, two
/// basses, a guitar, a cello, a trumpet, a kick and a snare (sines, written by `pat::write`) and a patch
/// that is not a GUS patch.
fn freepats_fixture(cache: &Path) {
    let root = cache.join("freepats");
    let cfg = root.join("etc/timidity/freepats.cfg");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        "dir /usr/share/midi/freepats\ndrumset 0\n 36\tDrum_000/036_Kick.pat\n 40 Drum_000/040_Snare.pat\n\
         bank 0\n 0\tTone_000/000_Piano.pat amp=120\n 33 Tone_000/033_Finger_Bass.pat\n\
         34 Tone_000/034_Pick_Bass.pat\n 41 Tone_000/041_Viola.pat\n 25 Tone_000/025_Steel_Guitar.pat\n\
         42 Tone_000/042_Cello.pat\n 56 Tone_000/056_Trumpet.pat\n",
    )
    .unwrap();
    let sine = |root: f64, looped: bool| {
        // Looped: 0.5 s; one-shots: 1.5 s, so that a part of two notes makes a clip of 1 s.
        let n = if looped { 11_025 } else { 33_075 };
        let data: Vec<i16> = (0..n)
            .map(|i| (8000.0 * (std::f64::consts::TAU * root * i as f64 / 22_050.0).sin()) as i16)
            .collect();
        let period = 22_050.0 / root;
        let lp = looped.then_some((5_000, 5_000 + (period * 20.0).round() as usize));
        pat::Patch {
            samples: vec![pat::PatSample::new(22_050, root, data, lp)],
        }
    };
    let dir = root.join("usr/share/midi/freepats");
    for (file, root_hz, looped) in [
        ("Tone_000/000_Piano.pat", 261.63, false),
        ("Tone_000/033_Finger_Bass.pat", 82.41, true),
        ("Tone_000/034_Pick_Bass.pat", 110.0, true),
        ("Tone_000/025_Steel_Guitar.pat", 196.0, false),
        ("Tone_000/042_Cello.pat", 130.81, true),
        ("Tone_000/056_Trumpet.pat", 466.16, true),
        ("Drum_000/036_Kick.pat", 60.0, false),
        ("Drum_000/040_Snare.pat", 200.0, false),
    ] {
        let f = dir.join(file);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, pat::write(&sine(root_hz, looped))).unwrap();
    }
    std::fs::write(dir.join("Tone_000/041_Viola.pat"), b"not a patch").unwrap();
}

#[test]
fn freepats_render_set_plays_the_songs_with_the_gus_patches() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("corpus"));
    freedoom_fixture(&cache);
    freepats_fixture(&cache);
    let o = build(&cache, &out, "render-freedoom-freepats");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&o.stdout));
    // The unreadable patch is named and skipped; the rest of the bank renders.
    assert!(
        stderr.contains("041_Viola.pat") && stderr.contains("not a GUS patch"),
        "{stderr}"
    );
    let rows = manifest::read_jsonl(&out.join("manifest.jsonl")).unwrap();
    let mut groups: Vec<(&str, &str)> = rows.iter().map(|r| (r.label.as_str(), r.group.as_str())).collect();
    groups.sort();
    groups.dedup();
    // Piano: its own program, the bank's only piano, once; bass: its own program (33), then
    // one drawn from the two; drums: the one kit, once. Nothing from the GM banks.
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(groups.contains(&("piano", "freepats/p000")), "{groups:?}");
    assert!(groups.contains(&("bass", "freepats/p033")), "{groups:?}");
    assert!(
        groups.contains(&("drums", "freepats/kit/freepats Standard")),
        "{groups:?}"
    );
    for r in &rows {
        assert_eq!(r.package, "freedoom");
        assert!(
            r.path
                .starts_with(&format!("audio/{}/render-freedoom-freepats/", r.label)),
            "{r:?}"
        );
        assert!(r.source_file.contains("-> freepats.sf2 "), "{r:?}");
        assert!((0.95..3.6).contains(&r.duration), "{r:?}");
    }
    assert!(manifest::split_conflicts(&rows).is_empty());
    // Without the package the set fails with a one-line reason naming it.
    let bare = dir.path().join("bare");
    freedoom_fixture(&bare);
    let o = build(&bare, &dir.path().join("c2"), "render-freedoom-freepats");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("freepats"));
}
