//! MIDI as the renderer sees it: a time-ordered list of channel events in seconds ([`Song`]),
//! read from Standard MIDI Files with the `midly` crate, and split into instrument parts
//! ([`split_parts`]): one part per channel and GM program (drums: channel 10), each labelled
//! from the vocabulary by its GM family ([`gm_label`]).

use anyhow::Context;
use midly::{Format, MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

use crate::Result;

/// The GM drum channel (channel 10, counted from 1).
pub const DRUM_CHANNEL: u8 = 9;

/// A channel message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    NoteOn {
        key: u8,
        vel: u8,
    },
    NoteOff {
        key: u8,
    },
    Controller {
        cc: u8,
        value: u8,
    },
    Program(u8),
    /// 14-bit, 8192 = centre.
    PitchBend(u16),
}

/// A channel message at a time in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub time: f64,
    pub channel: u8,
    pub msg: Msg,
}

/// A piece of music: events sorted by time (stable, so file order is kept at equal times).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Song {
    pub events: Vec<Event>,
}

impl Song {
    /// Sorts the events by time, keeping the order of simultaneous ones.
    pub fn sort(&mut self) {
        self.events.sort_by(|a, b| a.time.total_cmp(&b.time));
    }

    /// Time of the last event, seconds.
    pub fn duration(&self) -> f64 {
        self.events.last().map_or(0.0, |e| e.time)
    }

    /// The events before `secs` (notes still sounding then are released at `secs`).
    pub fn truncated(&self, secs: f64) -> Song {
        let mut events: Vec<Event> = self.events.iter().filter(|e| e.time < secs).copied().collect();
        let mut on = std::collections::BTreeSet::new();
        for e in &events {
            match e.msg {
                Msg::NoteOn { key, vel } if vel > 0 => {
                    on.insert((e.channel, key));
                }
                Msg::NoteOn { key, .. } | Msg::NoteOff { key } => {
                    on.remove(&(e.channel, key));
                }
                _ => {}
            }
        }
        events.extend(on.into_iter().map(|(channel, key)| Event {
            time: secs,
            channel,
            msg: Msg::NoteOff { key },
        }));
        Song { events }
    }
}

/// Parses a Standard MIDI File (format 0, 1 or 2; metrical or timecode timing; tempo changes
/// anywhere). `what` names the file in errors.
pub fn parse_smf(bytes: &[u8], what: &str) -> Result<Song> {
    let smf = Smf::parse(bytes).with_context(|| format!("{what}: not a standard MIDI file"))?;
    // Absolute ticks per track (format 2 tracks play one after another).
    let mut tracks: Vec<Vec<(u64, TrackEventKind)>> = Vec::new();
    let mut offset = 0u64;
    for t in &smf.tracks {
        let mut tick = offset;
        let mut v = Vec::with_capacity(t.len());
        for e in t {
            tick += u64::from(e.delta.as_int());
            v.push((tick, e.kind));
        }
        if smf.header.format == Format::Sequential {
            offset = tick;
        }
        tracks.push(v);
    }
    let secs_per_tick_fixed = match smf.header.timing {
        Timing::Metrical(_) => None,
        Timing::Timecode(fps, sub) => Some(1.0 / (f64::from(fps.as_f32()) * f64::from(sub.max(1)))),
    };
    let tpq = match smf.header.timing {
        Timing::Metrical(t) => f64::from(t.as_int().max(1)),
        Timing::Timecode(..) => 1.0,
    };
    // Tempo map: (tick, microseconds per quarter), from every track.
    let mut tempi: Vec<(u64, u32)> = tracks
        .iter()
        .flatten()
        .filter_map(|(tick, k)| match k {
            TrackEventKind::Meta(MetaMessage::Tempo(t)) => Some((*tick, t.as_int())),
            _ => None,
        })
        .collect();
    tempi.sort_by_key(|t| t.0);
    let to_secs = |tick: u64| -> f64 {
        if let Some(s) = secs_per_tick_fixed {
            return tick as f64 * s;
        }
        let (mut t0, mut us, mut acc) = (0u64, 500_000u32, 0.0f64);
        for &(tt, tempo) in &tempi {
            if tt >= tick {
                break;
            }
            acc += (tt - t0) as f64 * f64::from(us) / 1e6 / tpq;
            t0 = tt;
            us = tempo;
        }
        acc + (tick - t0) as f64 * f64::from(us) / 1e6 / tpq
    };
    let mut song = Song::default();
    for (tick, kind) in tracks.into_iter().flatten() {
        let TrackEventKind::Midi { channel, message } = kind else {
            continue;
        };
        let msg = match message {
            MidiMessage::NoteOn { key, vel } => Msg::NoteOn {
                key: key.as_int(),
                vel: vel.as_int(),
            },
            MidiMessage::NoteOff { key, .. } => Msg::NoteOff { key: key.as_int() },
            MidiMessage::Controller { controller, value } => Msg::Controller {
                cc: controller.as_int(),
                value: value.as_int(),
            },
            MidiMessage::ProgramChange { program } => Msg::Program(program.as_int()),
            MidiMessage::PitchBend { bend } => Msg::PitchBend(bend.0.as_int()),
            _ => continue,
        };
        song.events.push(Event {
            time: to_secs(tick),
            channel: channel.as_int(),
            msg,
        });
    }
    song.sort();
    Ok(song)
}

/// The label of a General MIDI program (0-127) on a melodic channel: piano 0-7, guitar 24-31,
/// bass 32-39, strings 40-51 (strings and ensembles), winds 56-79 (brass, reed, pipe); `None`
/// for the families with no label (chromatic percussion, organ, synth leads and pads, ethnic,
/// percussive, sound effects).
pub fn gm_label(program: u8) -> Option<&'static str> {
    match program {
        0..=7 => Some("piano"),
        24..=31 => Some("guitar"),
        32..=39 => Some("bass"),
        40..=51 => Some("strings"),
        56..=79 => Some("winds"),
        _ => None,
    }
}

/// The GM programs of a label (empty for `drums` and labels that are no GM family).
pub fn label_programs(label: &str) -> std::ops::RangeInclusive<u8> {
    match label {
        "piano" => 0..=7,
        "guitar" => 24..=31,
        "bass" => 32..=39,
        "strings" => 40..=51,
        "winds" => 56..=79,
        #[allow(clippy::reversed_empty_ranges)]
        _ => 1..=0,
    }
}

/// One instrument part of a song: the notes one channel plays with one program.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub channel: u8,
    /// GM program the notes were played with; `None` on the drum channel.
    pub program: Option<u8>,
    pub label: &'static str,
    /// Number of notes.
    pub notes: usize,
    /// Its note events plus the channel's controllers and pitch bends (no program or bank
    /// changes: the renderer selects the preset itself), in time order, original channel.
    pub events: Vec<Event>,
}

/// Splits a song into parts (see [`Part`]); notes are routed by the program in effect at
/// their note-on, note-offs follow their note-on, controllers and pitch bends go to every
/// part of their channel. Also returns the number of notes on channels with no label.
pub fn split_parts(song: &Song) -> (Vec<Part>, usize) {
    type Key = (u8, Option<u8>);
    let key_of = |ch: u8, prog: &[u8; 16]| -> Key {
        if ch == DRUM_CHANNEL {
            (ch, None)
        } else {
            (ch, Some(prog[usize::from(ch)]))
        }
    };
    // Pass 1: which parts each channel has.
    let mut prog = [0u8; 16];
    let mut keys: Vec<Key> = Vec::new();
    for e in &song.events {
        match e.msg {
            Msg::Program(p) => prog[usize::from(e.channel & 15)] = p,
            Msg::NoteOn { vel, .. } if vel > 0 => {
                let k = key_of(e.channel & 15, &prog);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            _ => {}
        }
    }
    let mut parts: Vec<Part> = keys
        .iter()
        .map(|&(channel, program)| Part {
            channel,
            program,
            label: match program {
                None => "drums",
                Some(p) => gm_label(p).unwrap_or(""),
            },
            notes: 0,
            events: Vec::new(),
        })
        .collect();
    // Pass 2: route the events.
    let mut prog = [0u8; 16];
    let mut sounding: std::collections::HashMap<(u8, u8), Vec<usize>> = std::collections::HashMap::new();
    for e in &song.events {
        let ch = e.channel & 15;
        match e.msg {
            Msg::Program(p) => prog[usize::from(ch)] = p,
            Msg::NoteOn { key, vel } if vel > 0 => {
                let k = key_of(ch, &prog);
                if let Some(i) = keys.iter().position(|x| *x == k) {
                    parts[i].events.push(*e);
                    parts[i].notes += 1;
                    sounding.entry((ch, key)).or_default().push(i);
                }
            }
            Msg::NoteOn { key, .. } | Msg::NoteOff { key } => {
                if let Some(i) = sounding
                    .get_mut(&(ch, key))
                    .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
                {
                    parts[i].events.push(Event {
                        msg: Msg::NoteOff { key },
                        ..*e
                    });
                }
            }
            // Bank select is the renderer's business.
            Msg::Controller { cc: 0 | 32, .. } => {}
            Msg::Controller { .. } | Msg::PitchBend(_) => {
                for (i, k) in keys.iter().enumerate() {
                    if k.0 == ch {
                        parts[i].events.push(*e);
                    }
                }
            }
        }
    }
    let unlabelled = parts.iter().filter(|p| p.label.is_empty()).map(|p| p.notes).sum();
    parts.retain(|p| !p.label.is_empty() && p.notes > 0);
    (parts, unlabelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gm_families() {
        assert_eq!(gm_label(0), Some("piano"));
        assert_eq!(gm_label(8), None);
        assert_eq!(gm_label(33), Some("bass"));
        assert_eq!(gm_label(48), Some("strings"));
        assert_eq!(gm_label(52), None);
        assert_eq!(gm_label(79), Some("winds"));
        assert_eq!(gm_label(80), None);
        for l in ["piano", "guitar", "bass", "strings", "winds"] {
            assert!(label_programs(l).all(|p| gm_label(p) == Some(l)), "{l}");
        }
        assert_eq!(label_programs("drums").count(), 0);
    }
}
