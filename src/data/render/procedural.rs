//! The procedural song generator: seeded and deterministic (ChaCha8, stable across platforms).
//! A song has a tempo (60-170 BPM), a key (any of the 12, major or minor), a chord progression
//! from a list of common ones, and four parts: drums (channel 10; rock, four-on-the-floor,
//! half-time, shuffle or bossa pattern with fills), a bass line (roots, root-fifth, octaves
//! or walking), chords (sustained, stabs or arpeggios) and a melody (a scale walk in
//! repeated two-bar phrases). Programs are drawn from the GM families of the labels.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::midi::{DRUM_CHANNEL, Event, Msg, Song};

/// What the generator chose for a song (kept for the manifest and for mma charts).
#[derive(Clone, Debug, PartialEq)]
pub struct SongPlan {
    pub bpm: f64,
    /// Key root as a pitch class, 0 = C.
    pub key: u8,
    pub minor: bool,
    /// One chord per bar: root pitch class and quality.
    pub chords: Vec<Chord>,
}

/// A chord: root pitch class and quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chord {
    pub root: u8,
    pub quality: Quality,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    Major,
    Minor,
    Dominant7,
    Minor7,
    Major7,
}

impl Chord {
    /// Intervals above the root.
    pub fn intervals(&self) -> &'static [u8] {
        match self.quality {
            Quality::Major => &[0, 4, 7],
            Quality::Minor => &[0, 3, 7],
            Quality::Dominant7 => &[0, 4, 7, 10],
            Quality::Minor7 => &[0, 3, 7, 10],
            Quality::Major7 => &[0, 4, 7, 11],
        }
    }

    /// The chord symbol as MMA (and most charts) write it: `C`, `F#m`, `Bb7`, `Em7`, `Cmaj7`.
    pub fn name(&self) -> String {
        const NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
        let q = match self.quality {
            Quality::Major => "",
            Quality::Minor => "m",
            Quality::Dominant7 => "7",
            Quality::Minor7 => "m7",
            Quality::Major7 => "maj7",
        };
        format!("{}{q}", NAMES[usize::from(self.root % 12)])
    }
}

const MAJOR: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR: [u8; 7] = [0, 2, 3, 5, 7, 8, 10];

/// Progressions as scale degrees (0-based), four or eight bars.
const PROGRESSIONS_MAJOR: &[&[u8]] = &[
    &[0, 4, 5, 3],
    &[0, 5, 3, 4],
    &[1, 4, 0, 5],
    &[0, 3, 4, 3],
    &[5, 3, 0, 4],
    &[0, 0, 3, 3, 0, 0, 4, 3],
    &[0, 2, 3, 4],
];
const PROGRESSIONS_MINOR: &[&[u8]] = &[
    &[0, 5, 2, 6],
    &[0, 3, 4, 0],
    &[0, 6, 5, 6],
    &[0, 3, 6, 2],
    &[0, 5, 3, 4],
];

/// Draws a song plan of at least `secs` seconds (whole bars of 4/4).
pub fn plan(seed: u64, secs: f64) -> SongPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    plan_with(&mut rng, secs)
}

fn plan_with(rng: &mut ChaCha8Rng, secs: f64) -> SongPlan {
    let bpm = f64::from(rng.random_range(60u32..=170));
    let key = rng.random_range(0u8..12);
    let minor = rng.random_bool(0.4);
    let (scale, progs) = if minor {
        (MINOR, PROGRESSIONS_MINOR)
    } else {
        (MAJOR, PROGRESSIONS_MAJOR)
    };
    let prog = *progs.choose(rng).unwrap_or(&progs[0]);
    let sevenths = rng.random_bool(0.35);
    let bars = ((secs / (4.0 * 60.0 / bpm)).ceil() as usize).max(1);
    let chords = (0..bars)
        .map(|b| {
            let deg = usize::from(prog[b % prog.len()]);
            let root = (key + scale[deg]) % 12;
            // Triad quality from the scale: the third above the degree.
            let third = (scale[(deg + 2) % 7] + 12 - scale[deg]) % 12;
            let seventh = (scale[(deg + 6) % 7] + 12 - scale[deg]) % 12;
            let quality = match (third, sevenths, seventh) {
                (3, false, _) => Quality::Minor,
                (3, true, _) => Quality::Minor7,
                (_, false, _) => Quality::Major,
                (_, true, 10) => Quality::Dominant7,
                (_, true, _) => Quality::Major7,
            };
            Chord { root, quality }
        })
        .collect();
    SongPlan {
        bpm,
        key,
        minor,
        chords,
    }
}

struct Writer {
    events: Vec<Event>,
    beat: f64,
}

impl Writer {
    fn note(&mut self, channel: u8, key: u8, vel: u8, beat: f64, len_beats: f64) {
        let t = beat * self.beat;
        self.events.push(Event {
            time: t,
            channel,
            msg: Msg::NoteOn {
                key: key.min(127),
                vel: vel.clamp(1, 127),
            },
        });
        self.events.push(Event {
            time: t + len_beats * self.beat,
            channel,
            msg: Msg::NoteOff { key: key.min(127) },
        });
    }
    fn at0(&mut self, channel: u8, msg: Msg) {
        self.events.push(Event {
            time: 0.0,
            channel,
            msg,
        });
    }
}

/// GM drum keys.
const KICK: u8 = 36;
const SNARE: u8 = 38;
const HAT: u8 = 42;
const OPEN_HAT: u8 = 46;
const RIDE: u8 = 51;
const CRASH: u8 = 49;
const TOMS: [u8; 3] = [50, 47, 43];
const RIM: u8 = 37;

/// Generates a song of at least `secs` seconds; the same seed gives the same song.
pub fn generate(seed: u64, secs: f64) -> (SongPlan, Song) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = plan_with(&mut rng, secs);
    let mut w = Writer {
        events: Vec::new(),
        beat: 60.0 / p.bpm,
    };
    let pick = |rng: &mut ChaCha8Rng, lo: u8, hi: u8| rng.random_range(lo..=hi);
    let bass_prog = pick(&mut rng, 32, 39);
    let chord_prog = *[
        pick(&mut rng, 0, 7),
        pick(&mut rng, 24, 31),
        pick(&mut rng, 40, 51),
        pick(&mut rng, 56, 63),
    ]
    .choose(&mut rng)
    .unwrap_or(&0);
    let melody_prog = *[
        pick(&mut rng, 0, 7),
        pick(&mut rng, 24, 31),
        pick(&mut rng, 40, 51),
        pick(&mut rng, 56, 79),
        pick(&mut rng, 64, 79),
    ]
    .choose(&mut rng)
    .unwrap_or(&0);
    w.at0(1, Msg::Program(bass_prog));
    w.at0(2, Msg::Program(chord_prog));
    w.at0(3, Msg::Program(melody_prog));
    let bars = p.chords.len();

    // Drums.
    let style = rng.random_range(0..5);
    let hat = if rng.random_bool(0.3) { RIDE } else { HAT };
    for bar in 0..bars {
        let b0 = bar as f64 * 4.0;
        let fill = bar % 4 == 3 && rng.random_bool(0.5);
        if bar % 8 == 0 {
            w.note(DRUM_CHANNEL, CRASH, 100, b0, 1.0);
        }
        for step in 0..8 {
            let s = step as f64 * 0.5;
            let swing = if style == 3 && step % 2 == 1 { 0.17 } else { 0.0 };
            let t = b0 + s + swing;
            let v = rng.random_range(70u8..110);
            if fill && step >= 4 {
                let tom = TOMS[(step - 4).min(2)];
                w.note(DRUM_CHANNEL, if step == 7 { SNARE } else { tom }, v + 10, t, 0.5);
                continue;
            }
            match style {
                0 | 3 => {
                    if step == 0 || step == 4 || (step == 5 && rng.random_bool(0.3)) {
                        w.note(DRUM_CHANNEL, KICK, v + 10, t, 0.5);
                    }
                    if step == 2 || step == 6 {
                        w.note(DRUM_CHANNEL, SNARE, v + 5, t, 0.5);
                    }
                    w.note(DRUM_CHANNEL, hat, v - 20, t, 0.5);
                }
                1 => {
                    if step % 2 == 0 {
                        w.note(DRUM_CHANNEL, KICK, v + 10, t, 0.5);
                    }
                    if step == 2 || step == 6 {
                        w.note(DRUM_CHANNEL, SNARE, v, t, 0.5);
                    }
                    w.note(DRUM_CHANNEL, if step % 2 == 1 { OPEN_HAT } else { HAT }, v - 25, t, 0.5);
                }
                2 => {
                    if step == 0 || (step == 3 && rng.random_bool(0.5)) {
                        w.note(DRUM_CHANNEL, KICK, v + 10, t, 0.5);
                    }
                    if step == 4 {
                        w.note(DRUM_CHANNEL, SNARE, v + 10, t, 0.5);
                    }
                    if step % 2 == 0 {
                        w.note(DRUM_CHANNEL, hat, v - 20, t, 0.5);
                    }
                }
                _ => {
                    if step == 0 || step == 3 || step == 4 || step == 7 {
                        w.note(DRUM_CHANNEL, KICK, v, t, 0.5);
                    }
                    if [0, 3, 6].contains(&step) || (bar % 2 == 1 && [2, 5].contains(&step)) {
                        w.note(DRUM_CHANNEL, RIM, v - 10, t, 0.5);
                    }
                    w.note(DRUM_CHANNEL, hat, v - 30, t, 0.5);
                }
            }
        }
    }

    // Bass.
    let bass_style = rng.random_range(0..4);
    let scale = if p.minor { MINOR } else { MAJOR };
    for (bar, c) in p.chords.iter().enumerate() {
        let b0 = bar as f64 * 4.0;
        let root = 36 + c.root; // C2..B2
        let fifth = root + 7;
        let next = p.chords.get(bar + 1).map_or(root, |n| 36 + n.root);
        match bass_style {
            0 => {
                for q in 0..4 {
                    w.note(1, root, rng.random_range(80..110), b0 + q as f64, 0.9);
                }
            }
            1 => {
                for (q, k) in [root, fifth, root, fifth].into_iter().enumerate() {
                    w.note(1, k, rng.random_range(80..110), b0 + q as f64, 0.9);
                }
            }
            2 => {
                for e in 0..8 {
                    let k = if e % 2 == 0 { root } else { root + 12 };
                    w.note(1, k, rng.random_range(75..105), b0 + e as f64 * 0.5, 0.45);
                }
            }
            _ => {
                // Walking: root, a chord tone, a scale tone, a chromatic approach to the next root.
                let tone = root + c.intervals()[rng.random_range(1..c.intervals().len())];
                let step = 36 + (p.key + scale[rng.random_range(0..7)]) % 12;
                let approach = if next > root { next - 1 } else { next + 1 };
                for (q, k) in [root, tone, step, approach].into_iter().enumerate() {
                    w.note(1, k, rng.random_range(80..105), b0 + q as f64, 0.95);
                }
            }
        }
    }

    // Chords.
    let chord_style = rng.random_range(0..3);
    for (bar, c) in p.chords.iter().enumerate() {
        let b0 = bar as f64 * 4.0;
        let keys: Vec<u8> = c.intervals().iter().map(|i| 60 + (c.root + i) % 12).collect();
        match chord_style {
            0 => keys.iter().for_each(|&k| w.note(2, k, 70, b0, 3.9)),
            1 => {
                for q in [1.0, 3.0] {
                    let v = rng.random_range(65..95);
                    keys.iter().for_each(|&k| w.note(2, k, v, b0 + q, 0.6));
                }
            }
            _ => {
                for e in 0..8 {
                    let k = keys[e % keys.len()] + if e >= keys.len() * 2 { 12 } else { 0 };
                    w.note(2, k, rng.random_range(60..90), b0 + e as f64 * 0.5, 0.5);
                }
            }
        }
    }

    // Melody: a scale walk in two-bar phrases, each phrase played twice.
    let octave = 72;
    let mut deg: i32 = 0;
    let mut phrase: Vec<(f64, f64, i32)> = Vec::new();
    for bar in 0..bars {
        if bar % 4 == 0 {
            phrase.clear();
            let mut t = 0.0f64;
            while t < 8.0 {
                let len: f64 = *[0.5, 0.5, 1.0, 1.0, 1.5, 2.0].choose(&mut rng).unwrap_or(&1.0);
                if rng.random_bool(0.8) {
                    deg = (deg + rng.random_range(-2..=2)).clamp(-3, 9);
                    phrase.push((t, len.min(8.0 - t), deg));
                }
                t += len;
            }
        }
        let half = (bar % 2) as f64 * 4.0;
        let b0 = bar as f64 * 4.0 - half;
        for &(t, len, d) in phrase.iter().filter(|x| x.0 >= half && x.0 < half + 4.0) {
            let o = d.div_euclid(7);
            let k = octave + i32::from(p.key) + i32::from(scale[d.rem_euclid(7) as usize]) + 12 * o;
            w.note(3, k.clamp(0, 127) as u8, rng.random_range(70..110), b0 + t, len * 0.95);
        }
    }
    let mut song = Song { events: w.events };
    song.sort();
    (p, song)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chord_names() {
        let c = |root, quality| Chord { root, quality }.name();
        assert_eq!(c(0, Quality::Major), "C");
        assert_eq!(c(6, Quality::Minor), "F#m");
        assert_eq!(c(10, Quality::Dominant7), "Bb7");
        assert_eq!(c(4, Quality::Minor7), "Em7");
    }

    #[test]
    fn plan_is_diatonic() {
        for seed in 0..50 {
            let p = plan(seed, 30.0);
            let scale = if p.minor { MINOR } else { MAJOR };
            assert!((60.0..=170.0).contains(&p.bpm));
            assert!(p.chords.len() as f64 * 240.0 / p.bpm >= 30.0);
            for c in &p.chords {
                for i in c.intervals().iter().take(3) {
                    let pc = (c.root + i + 12 - p.key) % 12;
                    assert!(scale.contains(&pc), "seed {seed}: {} not in key {}", c.name(), p.key);
                }
            }
        }
    }
}
