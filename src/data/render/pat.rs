//! GUS patches (`.pat`, the Gravis UltraSound format TiMidity plays) and the TiMidity
//! configuration that maps them to General MIDI programs and drum keys, converted to one
//! in-memory SoundFont 2 so that the renderer plays them through rustysynth like its other
//! banks. This is how the `freepats` package (its own recorded samples: pianos, guitars,
//! basses, strings, brass, reeds, a drum kit) becomes a third bank beside FluidR3_GM and
//! MuseScore_General.
//!
//! The conversion follows what TiMidity does with a patch: a melodic patch is one instrument
//! whose samples cover the keyboard by their frequency ranges (each MIDI key gets the sample
//! whose `[low, high]` range holds its frequency, else the one whose root is nearest), at the
//! sample's root frequency (root key plus a pitch correction in cents); a looped sample loops
//! (a ping-pong loop unrolled into a forward one); the GUS volume envelope (six rates and
//! levels, levels in steps of 0.376 dB) becomes the SoundFont attack, decay, sustain and
//! release; an unlooped sample plays without an envelope, as TiMidity plays it. Drum patches
//! play at their own pitch on their key (`drumset 0`). Vibrato, tremolo and panning are left
//! out (stems are mono).

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use super::sf3::u32_at;
use crate::Result;

const MODE_16BIT: u8 = 1;
const MODE_UNSIGNED: u8 = 2;
const MODE_LOOP: u8 = 4;
const MODE_PINGPONG: u8 = 8;
const MODE_REVERSE: u8 = 16;
const MODE_SUSTAIN: u8 = 32;
const MODE_ENVELOPE: u8 = 64;

/// Bytes before the first sample header: patch (129), instrument (63) and layer (47) headers.
const HEADER_BYTES: usize = 239;
/// Bytes of a sample header.
const SAMPLE_HEADER_BYTES: usize = 96;
/// dB per step of a GUS envelope level (TiMidity's volume table: 64 table steps per octave of
/// amplitude, four per level step).
const DB_PER_LEVEL: f64 = 6.0206 / 16.0;

/// One sample of a patch, its data as 16-bit PCM.
#[derive(Clone, Debug, PartialEq)]
pub struct PatSample {
    pub rate: u32,
    /// Frequency range it plays and the frequency it sounds at its own rate, Hz.
    pub low_hz: f64,
    pub high_hz: f64,
    pub root_hz: f64,
    /// Loop in sample points (`end` exclusive); `None` for an unlooped sample.
    pub looped: Option<(usize, usize)>,
    pub sustain: bool,
    pub envelope: bool,
    pub env_rates: [u8; 6],
    pub env_levels: [u8; 6],
    /// 1,024 = a semitone per key.
    pub scale_factor: u16,
    pub data: Vec<i16>,
}

impl PatSample {
    /// A sample of `data` at `rate` Hz sounding `root_hz`, playing the whole keyboard, with
    /// FreePats' usual envelope (an attack of 1.4 ms, held while the key is down when looped,
    /// a release of 0.47 s) and a semitone per key.
    pub fn new(rate: u32, root_hz: f64, data: Vec<i16>, looped: Option<(usize, usize)>) -> PatSample {
        PatSample {
            rate,
            low_hz: 8.176,
            high_hz: 12_543.854,
            root_hz,
            looped,
            sustain: looped.is_some(),
            envelope: true,
            env_rates: [63, 63, 63, 141, 63, 63],
            env_levels: [246, 246, 246, 0, 0, 0],
            scale_factor: 1024,
            data,
        }
    }
}

/// A parsed patch: its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    pub samples: Vec<PatSample>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Parses a GUS patch (`GF1PATCH110` or `GF1PATCH100`, one instrument, its first layer).
pub fn parse(b: &[u8], what: &str) -> Result<Patch> {
    if b.len() < HEADER_BYTES || !(b.starts_with(b"GF1PATCH110") || b.starts_with(b"GF1PATCH100")) {
        bail!("{what}: not a GUS patch (no GF1PATCH header)");
    }
    if b[82] > 1 || b[151] > 1 {
        bail!(
            "{what}: {} instruments, {} layers (one of each is supported)",
            b[82],
            b[151]
        );
    }
    let n = usize::from(b[198]);
    let mut at = HEADER_BYTES;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let h = b
            .get(at..at + SAMPLE_HEADER_BYTES)
            .with_context(|| format!("{what}: sample {i}: header past the end of the file"))?;
        let size = u32_at(h, 8) as usize;
        let body_at = at + SAMPLE_HEADER_BYTES;
        let body = b
            .get(body_at..body_at + size)
            .with_context(|| format!("{what}: sample {i}: {size} bytes of data past the end of the file"))?;
        let modes = h[55];
        let wide = modes & MODE_16BIT != 0;
        let unsigned = modes & MODE_UNSIGNED != 0;
        let mut data: Vec<i16> = if wide {
            body.chunks_exact(2)
                .map(|c| {
                    let v = u16::from_le_bytes([c[0], c[1]]);
                    (if unsigned { v ^ 0x8000 } else { v }) as i16
                })
                .collect()
        } else {
            body.iter()
                .map(|&v| {
                    let v = if unsigned { v ^ 0x80 } else { v };
                    i16::from(v as i8) << 8
                })
                .collect()
        };
        let width = if wide { 2 } else { 1 };
        let (mut ls, mut le) = (u32_at(h, 12) as usize / width, u32_at(h, 16) as usize / width);
        let len = data.len();
        le = le.min(len);
        if modes & MODE_REVERSE != 0 {
            data.reverse();
            (ls, le) = (len - le, len - ls.min(len));
        }
        let mut looped = (modes & (MODE_LOOP | MODE_PINGPONG) != 0 && ls + 1 < le).then_some((ls, le));
        if modes & MODE_PINGPONG != 0
            && let Some((s, e)) = looped
        {
            // Forward then backward: one forward loop over the segment and its mirror.
            let mirror: Vec<i16> = data[s..e].iter().rev().copied().collect();
            data.truncate(e);
            data.extend(mirror);
            looped = Some((s, data.len()));
        }
        if data.is_empty() {
            bail!("{what}: sample {i} is empty");
        }
        let rate = u32::from(u16_at(h, 20));
        let root_hz = f64::from(u32_at(h, 30)) / 1000.0;
        if rate == 0 || root_hz <= 0.0 {
            bail!("{what}: sample {i}: rate {rate} Hz, root {root_hz} Hz");
        }
        let mut env_rates = [0u8; 6];
        env_rates.copy_from_slice(&h[37..43]);
        let mut env_levels = [0u8; 6];
        env_levels.copy_from_slice(&h[43..49]);
        samples.push(PatSample {
            rate,
            low_hz: f64::from(u32_at(h, 22)) / 1000.0,
            high_hz: f64::from(u32_at(h, 26)) / 1000.0,
            root_hz,
            looped,
            sustain: modes & MODE_SUSTAIN != 0,
            envelope: modes & MODE_ENVELOPE != 0,
            env_rates,
            env_levels,
            scale_factor: u16_at(h, 58),
            data,
        });
        at = body_at + size;
    }
    if samples.is_empty() {
        bail!("{what}: no samples");
    }
    Ok(Patch { samples })
}

/// The `bank 0` and `drumset 0` entries of a TiMidity configuration: `(program or key,
/// patch path)` with the `dir` prefix applied (leading `/` removed, `.pat` added if missing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub programs: Vec<(u8, String)>,
    pub drums: Vec<(u8, String)>,
}

/// Parses a TiMidity configuration (`dir`, `bank N`, `drumset N`, `NUM PATCH [options]`;
/// `#` comments; other banks and commands ignored).
pub fn parse_config(text: &str) -> Config {
    #[derive(PartialEq)]
    enum Section {
        None,
        Bank0,
        Drums0,
        Other,
    }
    let mut dir = String::new();
    let mut section = Section::None;
    let mut cfg = Config::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(first), second) = (words.next(), words.next()) else {
            continue;
        };
        match (first, second) {
            ("dir", Some(d)) => dir = d.trim_start_matches('/').trim_end_matches('/').to_string(),
            ("bank", Some(n)) => section = if n == "0" { Section::Bank0 } else { Section::Other },
            ("drumset", Some(n)) => section = if n == "0" { Section::Drums0 } else { Section::Other },
            (num, Some(file)) => {
                let Ok(num) = num.parse::<u8>() else { continue };
                if num > 127 {
                    continue;
                }
                let file = if file.to_ascii_lowercase().ends_with(".pat") {
                    file.to_string()
                } else {
                    format!("{file}.pat")
                };
                let path = if dir.is_empty() || file.starts_with('/') {
                    file.trim_start_matches('/').to_string()
                } else {
                    format!("{dir}/{file}")
                };
                match section {
                    Section::Bank0 => cfg.programs.push((num, path)),
                    Section::Drums0 => cfg.drums.push((num, path)),
                    Section::None | Section::Other => {}
                }
            }
            _ => {}
        }
    }
    cfg
}

/// A SoundFont volume envelope, seconds and centibels of attenuation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Envelope {
    pub attack_s: f64,
    pub decay_s: f64,
    pub sustain_cb: f64,
    pub release_s: f64,
}

/// Level steps per second of a GUS envelope rate byte: a 6-bit increment shifted by three
/// bits per range step below 3 (TiMidity's `convert_envelope_rate`), in level steps of the
/// 0-255 scale.
fn level_steps_per_s(rate: u8) -> f64 {
    let inc = u32::from(rate & 63) << (3 * (3 - u32::from(rate >> 6)));
    // TiMidity: inc x 44,100 x 512 envelope units per second, 2^22 units per level step.
    f64::from(inc) * 44_100.0 * 512.0 / f64::from(1u32 << 22)
}

/// Seconds a SoundFont decay or release stage (defined over 100 dB) takes at `rate`.
fn stage_100db_s(rate: u8) -> f64 {
    let steps = level_steps_per_s(rate);
    if steps <= 0.0 {
        return 20.0;
    }
    (100.0 / DB_PER_LEVEL / steps).clamp(0.005, 20.0)
}

/// The SoundFont envelope of a sample (see the module documentation).
pub fn envelope(s: &PatSample, drum: bool) -> Envelope {
    if !s.envelope || s.looped.is_none() {
        // TiMidity drops the envelope of an unlooped sample: it plays out.
        return Envelope {
            attack_s: 0.001,
            decay_s: 0.0,
            sustain_cb: 0.0,
            release_s: if drum { 2.0 } else { 1.0 },
        };
    }
    let [r0, r1, r2, r3, ..] = s.env_rates;
    let [l0, l1, l2, ..] = s.env_levels.map(f64::from);
    let attack_s = if level_steps_per_s(r0) > 0.0 {
        (l0 / level_steps_per_s(r0)).clamp(0.001, 5.0)
    } else {
        0.001
    };
    let (decay_rate, floor) = if s.sustain {
        (if (l0 - l1).abs() >= (l1 - l2).abs() { r1 } else { r2 }, l2)
    } else {
        // Without sustain the envelope goes on into its release stages while the key is held.
        (r3, 0.0)
    };
    let sustain_cb = ((l0 - floor).max(0.0) * DB_PER_LEVEL * 10.0).min(1440.0);
    Envelope {
        attack_s,
        decay_s: if sustain_cb > 0.0 {
            stage_100db_s(decay_rate)
        } else {
            0.0
        },
        sustain_cb,
        release_s: stage_100db_s(r3),
    }
}

/// The key of a frequency, fractional (A4 = 440 Hz = 69).
fn key_of(hz: f64) -> f64 {
    69.0 + 12.0 * (hz / 440.0).log2()
}

/// For each MIDI key, the index of the sample that plays it: the one whose range holds the
/// key's frequency, else the one whose root is nearest (in pitch).
pub fn key_map(samples: &[PatSample]) -> [usize; 128] {
    let mut map = [0usize; 128];
    for (k, m) in map.iter_mut().enumerate() {
        let f = 440.0 * 2f64.powf((k as f64 - 69.0) / 12.0);
        *m = samples
            .iter()
            .position(|s| s.low_hz <= f && f <= s.high_hz)
            .unwrap_or_else(|| {
                let mut best = 0;
                for (i, s) in samples.iter().enumerate() {
                    if (key_of(s.root_hz) - k as f64).abs() < (key_of(samples[best].root_hz) - k as f64).abs() {
                        best = i;
                    }
                }
                best
            });
    }
    map
}

// SoundFont 2 generator numbers.
const GEN_ATTACK: u16 = 34;
const GEN_DECAY: u16 = 36;
const GEN_SUSTAIN: u16 = 37;
const GEN_RELEASE: u16 = 38;
const GEN_INSTRUMENT: u16 = 41;
const GEN_KEY_RANGE: u16 = 43;
const GEN_SAMPLE_ID: u16 = 53;
const GEN_SAMPLE_MODES: u16 = 54;
const GEN_SCALE_TUNING: u16 = 56;
const GEN_ROOT_KEY: u16 = 58;

fn timecents(s: f64) -> u16 {
    ((1200.0 * s.max(0.001).log2()).round().clamp(-12000.0, 8000.0) as i16) as u16
}

fn name20(name: &str) -> [u8; 20] {
    let mut n = [0u8; 20];
    for (d, c) in n.iter_mut().take(19).zip(name.bytes().filter(u8::is_ascii)) {
        *d = c;
    }
    n
}

/// A SoundFont 2 being written: sample data and the preset tables.
#[derive(Default)]
struct Sf2 {
    smpl: Vec<u8>,
    points: u32,
    shdr: Vec<u8>,
    n_samples: u16,
    inst: Vec<u8>,
    ibag: Vec<u8>,
    igen: Vec<u8>,
    n_igen: u16,
    n_ibag: u16,
    n_inst: u16,
    phdr: Vec<u8>,
    pbag: Vec<u8>,
    pgen: Vec<u8>,
    n_pgen: u16,
    n_pbag: u16,
}

impl Sf2 {
    /// Adds a sample (with the 46 zero points SoundFont 2 wants after it): its index.
    fn sample(&mut self, name: &str, s: &PatSample, drum: bool) -> Result<u16> {
        let start = self.points;
        let len = u32::try_from(s.data.len()).context("sample too long")?;
        for v in &s.data {
            self.smpl.extend_from_slice(&v.to_le_bytes());
        }
        self.smpl.extend(std::iter::repeat_n(0u8, 46 * 2));
        self.points = start + len + 46;
        let (ls, le) = s.looped.map_or((0, len), |(a, b)| (a as u32, b as u32));
        let key = key_of(s.root_hz);
        let (pitch, correction) = if drum {
            (60u8, 0i8)
        } else {
            let k = key.round().clamp(0.0, 127.0);
            (k as u8, ((k - key) * 100.0).round().clamp(-99.0, 99.0) as i8)
        };
        self.shdr.extend_from_slice(&name20(name));
        for v in [start, start + len, start + ls, start + le, s.rate] {
            self.shdr.extend_from_slice(&v.to_le_bytes());
        }
        self.shdr.push(pitch);
        self.shdr.push(correction as u8);
        self.shdr.extend_from_slice(&0u16.to_le_bytes());
        self.shdr.extend_from_slice(&1u16.to_le_bytes());
        let i = self.n_samples;
        self.n_samples = self.n_samples.checked_add(1).context("too many samples")?;
        Ok(i)
    }

    /// Adds an instrument zone: its generators (key range first, sample last).
    fn zone(&mut self, gens: &[(u16, u16)]) -> Result<()> {
        self.ibag.extend_from_slice(&self.n_igen.to_le_bytes());
        self.ibag.extend_from_slice(&0u16.to_le_bytes());
        self.n_ibag = self.n_ibag.checked_add(1).context("too many zones")?;
        for (op, amount) in gens {
            self.igen.extend_from_slice(&op.to_le_bytes());
            self.igen.extend_from_slice(&amount.to_le_bytes());
        }
        self.n_igen = self
            .n_igen
            .checked_add(gens.len() as u16)
            .context("too many generators")?;
        Ok(())
    }

    /// The generators of a zone playing sample `id` on keys `lo..=hi`.
    fn zone_for(&mut self, id: u16, s: &PatSample, lo: u8, hi: u8, drum: bool) -> Result<()> {
        let e = envelope(s, drum);
        let mut g = vec![
            (GEN_KEY_RANGE, u16::from(lo) | (u16::from(hi) << 8)),
            (GEN_ATTACK, timecents(e.attack_s)),
        ];
        if e.sustain_cb > 0.0 {
            g.push((GEN_DECAY, timecents(e.decay_s)));
            g.push((GEN_SUSTAIN, e.sustain_cb.round() as u16));
        }
        g.push((GEN_RELEASE, timecents(e.release_s)));
        if s.looped.is_some() {
            g.push((GEN_SAMPLE_MODES, 1));
        }
        if drum {
            // Native pitch on its own key.
            g.push((GEN_ROOT_KEY, u16::from(lo)));
        } else if s.scale_factor != 1024 && s.scale_factor > 0 {
            g.push((
                GEN_SCALE_TUNING,
                (u32::from(s.scale_factor) * 100 / 1024).min(1200) as u16,
            ));
        }
        g.push((GEN_SAMPLE_ID, id));
        self.zone(&g)
    }

    fn begin_instrument(&mut self, name: &str) -> Result<u16> {
        self.inst.extend_from_slice(&name20(name));
        self.inst.extend_from_slice(&self.n_ibag.to_le_bytes());
        let i = self.n_inst;
        self.n_inst = self.n_inst.checked_add(1).context("too many instruments")?;
        Ok(i)
    }

    fn preset(&mut self, name: &str, program: u8, bank: u16, instrument: u16) {
        self.phdr.extend_from_slice(&name20(name));
        self.phdr.extend_from_slice(&u16::from(program).to_le_bytes());
        self.phdr.extend_from_slice(&bank.to_le_bytes());
        self.phdr.extend_from_slice(&self.n_pbag.to_le_bytes());
        self.phdr.extend_from_slice(&[0u8; 12]);
        self.pbag.extend_from_slice(&self.n_pgen.to_le_bytes());
        self.pbag.extend_from_slice(&0u16.to_le_bytes());
        self.n_pbag += 1;
        self.pgen.extend_from_slice(&GEN_INSTRUMENT.to_le_bytes());
        self.pgen.extend_from_slice(&instrument.to_le_bytes());
        self.n_pgen += 1;
    }

    fn finish(mut self, bank_name: &str) -> Vec<u8> {
        // Terminal records.
        self.phdr.extend_from_slice(&name20("EOP"));
        self.phdr.extend_from_slice(&[0u8; 4]);
        self.phdr.extend_from_slice(&self.n_pbag.to_le_bytes());
        self.phdr.extend_from_slice(&[0u8; 12]);
        self.pbag.extend_from_slice(&self.n_pgen.to_le_bytes());
        self.pbag.extend_from_slice(&0u16.to_le_bytes());
        self.pgen.extend_from_slice(&[0u8; 4]);
        self.inst.extend_from_slice(&name20("EOI"));
        self.inst.extend_from_slice(&self.n_ibag.to_le_bytes());
        self.ibag.extend_from_slice(&self.n_igen.to_le_bytes());
        self.ibag.extend_from_slice(&0u16.to_le_bytes());
        self.igen.extend_from_slice(&[0u8; 4]);
        self.shdr.extend_from_slice(&name20("EOS"));
        self.shdr.extend_from_slice(&[0u8; 26]);
        let mut info = Vec::new();
        super::sf3::write_chunk(&mut info, b"ifil", &[2, 0, 1, 0]);
        super::sf3::write_chunk(&mut info, b"isng", b"EMU8000\0");
        // Zero-terminated and of even length (rustysynth reads the size given, no pad byte).
        let mut name = bank_name.as_bytes().to_vec();
        name.push(0);
        if !name.len().is_multiple_of(2) {
            name.push(0);
        }
        super::sf3::write_chunk(&mut info, b"INAM", &name);
        let mut sdta = Vec::new();
        super::sf3::write_chunk(&mut sdta, b"smpl", &self.smpl);
        let mut pdta = Vec::new();
        super::sf3::write_chunk(&mut pdta, b"phdr", &self.phdr);
        super::sf3::write_chunk(&mut pdta, b"pbag", &self.pbag);
        super::sf3::write_chunk(&mut pdta, b"pmod", &[0u8; 10]);
        super::sf3::write_chunk(&mut pdta, b"pgen", &self.pgen);
        super::sf3::write_chunk(&mut pdta, b"inst", &self.inst);
        super::sf3::write_chunk(&mut pdta, b"ibag", &self.ibag);
        super::sf3::write_chunk(&mut pdta, b"imod", &[0u8; 10]);
        super::sf3::write_chunk(&mut pdta, b"igen", &self.igen);
        super::sf3::write_chunk(&mut pdta, b"shdr", &self.shdr);
        let mut body = b"sfbk".to_vec();
        super::sf3::write_list(&mut body, b"INFO", &info);
        super::sf3::write_list(&mut body, b"sdta", &sdta);
        super::sf3::write_list(&mut body, b"pdta", &pdta);
        let mut out = Vec::new();
        super::sf3::write_chunk(&mut out, b"RIFF", &body);
        out
    }
}

/// A preset name from a patch path: `Tone_000/033_Finger_Bass.pat` → `Finger Bass`.
pub fn patch_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.strip_suffix(".pat").unwrap_or(file);
    let stem = match stem.split_once('_') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => stem,
    };
    stem.replace('_', " ")
}

/// A SoundFont 2 holding `programs` (bank 0, one preset per program) and `drums` (one kit,
/// `kit_name`, at bank 128 preset 0, a zone per key).
pub fn to_sf2(
    bank_name: &str,
    programs: &[(u8, String, Patch)],
    drums: &[(u8, Patch)],
    kit_name: &str,
) -> Result<Vec<u8>> {
    let mut sf = Sf2::default();
    for (program, name, patch) in programs {
        let inst = sf.begin_instrument(name)?;
        let ids = patch
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| sf.sample(&format!("p{program:03}s{i}"), s, false))
            .collect::<Result<Vec<u16>>>()?;
        let map = key_map(&patch.samples);
        let mut lo = 0usize;
        for k in 1..=128 {
            if k == 128 || map[k] != map[lo] {
                let i = map[lo];
                sf.zone_for(ids[i], &patch.samples[i], lo as u8, (k - 1) as u8, false)?;
                lo = k;
            }
        }
        sf.preset(name, *program, 0, inst);
    }
    if !drums.is_empty() {
        let inst = sf.begin_instrument(kit_name)?;
        for (key, patch) in drums {
            // The sample TiMidity would pick for this key (range, else nearest root).
            let s = &patch.samples[key_map(&patch.samples)[usize::from(*key)]];
            let id = sf.sample(&format!("d{key:03}"), s, true)?;
            sf.zone_for(id, s, *key, *key, true)?;
        }
        sf.preset(kit_name, 0, 128, inst);
    }
    if sf.n_inst == 0 {
        bail!("{bank_name}: no patches");
    }
    Ok(sf.finish(bank_name))
}

/// Reads a TiMidity configuration and the patches it names from `files` (package path →
/// file on disk) into a SoundFont 2: the bank's bytes and the patches that could not be read
/// (`path: why`, skipped).
pub fn config_to_sf2(
    bank_name: &str,
    cfg_text: &str,
    files: &BTreeMap<String, std::path::PathBuf>,
) -> Result<(Vec<u8>, Vec<String>)> {
    let cfg = parse_config(cfg_text);
    let mut skipped = Vec::new();
    let mut read = |path: &str| -> Option<Patch> {
        let Some(file) = files.get(path) else {
            skipped.push(format!("{path}: not in the package"));
            return None;
        };
        match std::fs::read(file)
            .map_err(anyhow::Error::from)
            .and_then(|b| parse(&b, path))
        {
            Ok(p) => Some(p),
            Err(e) => {
                skipped.push(format!("{e:#}"));
                None
            }
        }
    };
    let mut programs = Vec::new();
    for (p, path) in &cfg.programs {
        if let Some(patch) = read(path) {
            programs.push((*p, patch_name(path), patch));
        }
    }
    let mut drums = Vec::new();
    for (k, path) in &cfg.drums {
        if let Some(patch) = read(path) {
            drums.push((*k, patch));
        }
    }
    let kit = format!("{bank_name} Standard");
    Ok((to_sf2(bank_name, &programs, &drums, &kit)?, skipped))
}

/// Writes `patch` as a GUS patch with 16-bit signed samples: what [`parse`] reads back
/// (frequencies to the millihertz). For fixtures and round trips.
pub fn write(patch: &Patch) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_BYTES];
    b[..22].copy_from_slice(b"GF1PATCH110\0ID#000002\0");
    b[82] = 1;
    b[151] = 1;
    b[198] = patch.samples.len().min(255) as u8;
    for s in patch.samples.iter().take(255) {
        let mut h = [0u8; SAMPLE_HEADER_BYTES];
        let (ls, le) = s.looped.unwrap_or((0, s.data.len()));
        h[8..12].copy_from_slice(&((s.data.len() * 2) as u32).to_le_bytes());
        h[12..16].copy_from_slice(&((ls * 2) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&((le * 2) as u32).to_le_bytes());
        h[20..22].copy_from_slice(&(s.rate.min(65_535) as u16).to_le_bytes());
        for (at, hz) in [(22, s.low_hz), (26, s.high_hz), (30, s.root_hz)] {
            h[at..at + 4].copy_from_slice(&((hz * 1000.0).round() as u32).to_le_bytes());
        }
        h[37..43].copy_from_slice(&s.env_rates);
        h[43..49].copy_from_slice(&s.env_levels);
        h[55] = MODE_16BIT
            | if s.looped.is_some() { MODE_LOOP } else { 0 }
            | if s.sustain { MODE_SUSTAIN } else { 0 }
            | if s.envelope { MODE_ENVELOPE } else { 0 };
        h[58..60].copy_from_slice(&s.scale_factor.to_le_bytes());
        b.extend_from_slice(&h);
        for v in &s.data {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit sine at `root` Hz, 0.5 s at 22,050 Hz, playing `lo..=hi` Hz, with freepats'
    /// piano envelope; looped over whole periods near its end when `looped`.
    fn sine(root: f64, lo: f64, hi: f64, looped: bool) -> PatSample {
        let rate = 22_050u32;
        let n = rate as usize / 2;
        let data: Vec<i16> = (0..n)
            .map(|i| (8000.0 * (std::f64::consts::TAU * root * i as f64 / f64::from(rate)).sin()) as i16)
            .collect();
        let period = f64::from(rate) / root;
        let le = (n as f64 * 0.9) as usize;
        let ls = (le as f64 - ((n as f64 * 0.5) / period).floor() * period).round() as usize;
        PatSample {
            low_hz: lo,
            high_hz: hi,
            ..PatSample::new(rate, root, data, looped.then_some((ls, le)))
        }
    }

    fn patch(samples: Vec<PatSample>) -> Patch {
        Patch { samples }
    }

    #[test]
    fn a_written_patch_reads_back_and_keys_map_by_frequency_range() {
        let p = patch(vec![sine(220.0, 8.0, 300.0, true), sine(440.0, 300.0, 9000.0, false)]);
        let b = write(&p);
        let q = parse(&b, "t.pat").expect("parses");
        assert_eq!(q, p);
        let (ls, le) = q.samples[0].looped.expect("looped");
        assert_eq!(le, 9922);
        assert!(ls < le && le - ls > 5000);
        let map = key_map(&q.samples);
        // 300 Hz lies between key 62 (294 Hz) and 63 (311 Hz).
        assert_eq!((map[0], map[62], map[63], map[127]), (0, 0, 1, 1));
        // Without a range holding the key's frequency, the nearest root plays it.
        let gap = patch(vec![sine(110.0, 100.0, 120.0, true), sine(880.0, 800.0, 900.0, true)]);
        let map = key_map(&gap.samples);
        assert_eq!((map[20], map[60], map[70], map[120]), (0, 0, 1, 1));
        // Truncated data and a foreign header are errors naming the file.
        let e = parse(&b[..b.len() - 10], "cut.pat").expect_err("truncated");
        assert!(format!("{e:#}").contains("cut.pat"), "{e:#}");
        assert!(parse(b"RIFF....", "x.pat").is_err());
    }

    #[test]
    fn reads_8_bit_unsigned_reversed_and_ping_pong_samples() {
        let mut b = write(&patch(vec![sine(440.0, 8.0, 9000.0, true)]));
        // Rewrite as 8-bit unsigned: four points 0x80 0xff 0x00 0x80, ping-pong over 1..3.
        let body = [0x80u8, 0xff, 0x00, 0x80];
        b.truncate(HEADER_BYTES + SAMPLE_HEADER_BYTES);
        let h = HEADER_BYTES;
        b[h + 8..h + 12].copy_from_slice(&4u32.to_le_bytes());
        b[h + 12..h + 16].copy_from_slice(&1u32.to_le_bytes());
        b[h + 16..h + 20].copy_from_slice(&3u32.to_le_bytes());
        b[h + 55] = MODE_UNSIGNED | MODE_LOOP | MODE_PINGPONG;
        b.extend_from_slice(&body);
        let s = &parse(&b, "u8.pat").expect("parses").samples[0];
        // 0x80 -> 0, 0xff -> 127 << 8, 0x00 -> -128 << 8; the loop 1..3 and its mirror.
        assert_eq!(s.data, vec![0, 32512, -32768, -32768, 32512]);
        assert_eq!(s.looped, Some((1, 5)));
        b[h + 55] = MODE_UNSIGNED | MODE_REVERSE;
        let s = &parse(&b, "rev.pat").expect("parses").samples[0];
        assert_eq!(s.data, vec![0, -32768, 32512, 0]);
        assert_eq!(s.looped, None);
    }

    #[test]
    fn envelope_follows_the_gus_rates() {
        let e = envelope(&sine(440.0, 8.0, 9000.0, true), false);
        // Rate 141 = range 2, increment 13 << 3 = 104: 104 x 5.383 level steps a second, a
        // 100 dB release (266 steps of 0.376 dB) in 0.475 s; rate 63 at range 0 attacks in
        // 246 / (63 << 9 x 5.383) = 1.4 ms; the sustain holds the attack's level.
        assert!((e.release_s - 0.475).abs() < 0.005, "{e:?}");
        assert!((e.attack_s - 0.0014).abs() < 0.0002, "{e:?}");
        assert_eq!(e.sustain_cb, 0.0);
        // freepats' finger bass: decays by stage 2 (rate 197 = range 3, 5) to level 8.
        let mut bass = sine(440.0, 8.0, 9000.0, true);
        bass.env_rates = [63, 63, 197, 136, 63, 63];
        bass.env_levels = [246, 246, 8, 8, 8, 8];
        let e = envelope(&bass, false);
        assert!((e.sustain_cb - 238.0 * DB_PER_LEVEL * 10.0).abs() < 1e-9, "{e:?}");
        assert!((e.decay_s - 266.0 / (5.0 * 5.383)).abs() < 0.05, "{e:?}");
        // Unlooped: no envelope, the sample plays out (longer for drums).
        let one_shot = sine(440.0, 8.0, 9000.0, false);
        assert_eq!(envelope(&one_shot, true).release_s, 2.0);
        assert_eq!(envelope(&one_shot, false).sustain_cb, 0.0);
    }

    #[test]
    fn reads_a_timidity_config() {
        let cfg = parse_config(
            "dir /usr/share/midi/freepats\n# comment\ndrumset 0\n 35\tDrum_000/035_Kick_1.pat amp=100\n\
             bank 0\n 0\tTone_000/000_Acoustic_Grand_Piano.pat amp=120 pan=center\n 33 Tone_000/033_Finger_Bass\n\
             bank 8\n 0 Tone_008/x.pat\n",
        );
        assert_eq!(
            cfg.drums,
            vec![(35, "usr/share/midi/freepats/Drum_000/035_Kick_1.pat".into())]
        );
        assert_eq!(
            cfg.programs,
            vec![
                (
                    0,
                    "usr/share/midi/freepats/Tone_000/000_Acoustic_Grand_Piano.pat".into()
                ),
                (33, "usr/share/midi/freepats/Tone_000/033_Finger_Bass.pat".into()),
            ]
        );
        assert_eq!(patch_name("Tone_000/033_Finger_Bass.pat"), "Finger Bass");
    }

    /// The frequency of `x` (Hz at `rate`) from its upward zero crossings.
    fn pitch(x: &[f32], rate: f64) -> f64 {
        let ups: Vec<usize> = (1..x.len()).filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0).collect();
        let (a, b) = (ups[0], ups[ups.len() - 1]);
        (ups.len() - 1) as f64 * rate / (b - a) as f64
    }

    #[test]
    fn the_converted_bank_plays_each_key_at_its_pitch() {
        use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};
        // Two samples 3 cents off their keys (A3 = 220 Hz, A4 = 440 Hz), split at 300 Hz.
        let bass = patch(vec![
            sine(220.0 * 2f64.powf(3.0 / 1200.0), 8.0, 300.0, true),
            sine(440.0 * 2f64.powf(3.0 / 1200.0), 300.0, 9000.0, true),
        ]);
        let kick = patch(vec![sine(150.0, 8.0, 9000.0, false)]);
        let sf2 = to_sf2("bank", &[(33, "Bass".into(), bass)], &[(36, kick)], "bank Standard").expect("sf2");
        let sf = std::sync::Arc::new(SoundFont::new(&mut std::io::Cursor::new(&sf2)).expect("rustysynth reads it"));
        let names: Vec<(i32, i32, String)> = sf
            .get_presets()
            .iter()
            .map(|p| (p.get_bank_number(), p.get_patch_number(), p.get_name().to_string()))
            .collect();
        assert!(names.contains(&(0, 33, "Bass".into())) && names.contains(&(128, 0, "bank Standard".into())));
        let rate = 22_050.0;
        let play = |ch: i32, program: i32, key: i32| -> Vec<f32> {
            let mut settings = SynthesizerSettings::new(rate as i32);
            settings.enable_reverb_and_chorus = false;
            let mut s = Synthesizer::new(&sf, &settings).expect("synth");
            s.process_midi_message(ch, 0xC0, program, 0);
            s.note_on(ch, key, 100);
            let (mut l, mut r) = (vec![0f32; 11_025], vec![0f32; 11_025]);
            s.render(&mut l, &mut r);
            l
        };
        // Keys 57 (220 Hz) and 69 (440 Hz) from their own samples, 64 (329.6 Hz) and 45
        // (110 Hz) transposed from them: each within 0.3 % of its pitch.
        for (key, hz) in [(57, 220.0), (69, 440.0), (64, 329.63), (45, 110.0)] {
            let x = play(0, 33, key);
            let f = pitch(&x[2000..], rate);
            assert!((f / hz - 1.0).abs() < 0.003, "key {key}: {f:.2} Hz, want {hz}");
        }
        // The kick plays at its own pitch on key 36, and nothing else sounds on the kit.
        let x = play(9, 0, 36);
        let f = pitch(&x[200..5000], rate);
        assert!((f / 150.0 - 1.0).abs() < 0.01, "kick {f:.2} Hz");
        assert!(play(9, 0, 38).iter().all(|v| *v == 0.0));
    }
}
