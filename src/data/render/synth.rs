//! Rendering one instrument part with one SoundFont preset: a `rustysynth::Synthesizer` per
//! stem, driven with the part's events directly at the corpus rate (rustysynth's own MIDI
//! sequencer keeps its events private and plays every channel into one mix).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use super::midi::{DRUM_CHANNEL, Event, Msg};
use crate::Result;

/// A loaded SoundFont and the name it goes by in groups (`FluidR3_GM`).
#[derive(Clone)]
pub struct Font {
    pub name: String,
    pub sf: Arc<SoundFont>,
}

impl Font {
    /// Loads an `.sf2` file, or an `.sf3` converted to SoundFont 2 first ([`super::sf3`]:
    /// rustysynth reads only .sf2).
    pub fn load(path: &Path) -> Result<Font> {
        let bytes = std::fs::read(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let bytes = if super::sf3::is_sf3(&bytes) {
            super::sf3::to_sf2(path, &bytes)?
        } else {
            bytes
        };
        let name = path
            .file_stem()
            .map_or_else(|| "soundfont".into(), |s| s.to_string_lossy().into_owned());
        Font::from_sf2(&name, &bytes, &path.display().to_string())
    }

    /// A SoundFont 2 held in memory (`what` names it in errors), called `name` in groups.
    pub fn from_sf2(name: &str, bytes: &[u8], what: &str) -> Result<Font> {
        let sf = SoundFont::new(&mut std::io::Cursor::new(bytes))
            .map_err(|e| anyhow::anyhow!("{what}: not a usable SoundFont: {e:?}"))?;
        Ok(Font {
            name: name.to_string(),
            sf: Arc::new(sf),
        })
    }

    /// `(bank, patch, name)` of every preset.
    pub fn presets(&self) -> Vec<(u16, u8, String)> {
        let mut v: Vec<_> = self
            .sf
            .get_presets()
            .iter()
            .map(|p| {
                (
                    p.get_bank_number().clamp(0, 65535) as u16,
                    p.get_patch_number().clamp(0, 127) as u8,
                    p.get_name().trim().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// A preset to render with: the font, its bank (128 and up = a drum kit on the percussion
/// channel) and patch, and the split group it belongs to.
#[derive(Clone)]
pub struct Voice {
    pub font: Font,
    pub bank: u16,
    pub patch: u8,
    pub name: String,
    /// Split group: `FONT/pNNN` for melodic presets (bank variants of a program share their
    /// samples, so they share a group), `FONT/kit/FAMILY` for drum kits (`Standard 3` is in
    /// `Standard`).
    pub group: String,
}

/// The kit family of a drum kit name: `Standard 3` → `Standard`, `TR-808` → `TR-808`.
pub fn kit_family(name: &str) -> String {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((family, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => family.trim_end().to_string(),
        _ => name.to_string(),
    }
}

/// The melodic presets of `font` whose program is in `programs` (any bank below 128), except
/// MuseScore's "Expr." variants, whose loudness follows controller 2 (breath), which the MIDI
/// parts do not send.
pub fn melodic_voices(font: &Font, programs: std::ops::RangeInclusive<u8>) -> Vec<Voice> {
    font.presets()
        .into_iter()
        .filter(|(bank, patch, name)| *bank < 128 && programs.contains(patch) && !name.contains("Expr."))
        .map(|(bank, patch, name)| Voice {
            group: format!("{}/p{patch:03}", font.name),
            font: font.clone(),
            bank,
            patch,
            name,
        })
        .collect()
}

/// The drum kits of `font`: its bank-128 presets, or, for a font that is a single kit at bank
/// 0 (the avldrums kits), that preset. A metronome and the marching kits (their own key maps,
/// not the GM drum map the parts use) are left out.
pub fn drum_kits(font: &Font) -> Vec<Voice> {
    let all = font.presets();
    let gm_kit = |name: &str| {
        let n = name.to_ascii_lowercase();
        !n.contains("metronome") && !n.contains("march")
    };
    let kits: Vec<_> = all.iter().filter(|p| p.0 >= 128 && gm_kit(&p.2)).cloned().collect();
    let kits = if kits.is_empty() && all.len() == 1 { all } else { kits };
    kits.into_iter()
        .map(|(bank, patch, name)| Voice {
            group: format!("{}/kit/{}", font.name, kit_family(&name)),
            font: font.clone(),
            bank,
            patch,
            name,
        })
        .collect()
}

/// How a stem is rendered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderSettings {
    pub rate: u32,
    /// `Some(send)` renders with rustysynth's reverb (and chorus) at this reverb send
    /// (CC 91, 0-127) instead of the part's own; `None` renders dry.
    pub reverb: Option<u8>,
    /// Seconds rendered after the last event (release and reverb tails).
    pub tail_secs: f64,
}

/// Renders `events` (one part) with `voice` into a mono signal (mean of rustysynth's stereo
/// output). Program and bank changes in `events` are ignored; every other message is sent on
/// the channel the preset needs (the percussion channel for bank >= 128, else channel 0).
pub fn render_part(events: &[Event], voice: &Voice, s: &RenderSettings) -> Result<Vec<f32>> {
    let mut settings = SynthesizerSettings::new(s.rate as i32);
    settings.enable_reverb_and_chorus = s.reverb.is_some();
    let mut synth = Synthesizer::new(&voice.font.sf, &settings)
        .map_err(|e| anyhow::anyhow!("{}: cannot start a synthesizer: {e:?}", voice.font.name))?;
    let (ch, bank) = if voice.bank >= 128 {
        (i32::from(DRUM_CHANNEL), i32::from(voice.bank - 128))
    } else {
        (0, i32::from(voice.bank))
    };
    synth.process_midi_message(ch, 0xB0, 0x00, bank.min(127));
    synth.process_midi_message(ch, 0xC0, i32::from(voice.patch), 0);
    if let Some(send) = s.reverb {
        synth.process_midi_message(ch, 0xB0, 0x5B, i32::from(send.min(127)));
    }
    let rate = f64::from(s.rate);
    let end = events.last().map_or(0.0, |e| e.time) + s.tail_secs;
    let total = (end * rate).ceil() as usize;
    let (mut left, mut right) = (vec![0f32; total], vec![0f32; total]);
    let mut pos = 0usize;
    for e in events {
        let at = ((e.time * rate).round() as usize).min(total);
        if at > pos {
            synth.render(&mut left[pos..at], &mut right[pos..at]);
            pos = at;
        }
        match e.msg {
            Msg::NoteOn { key, vel } => synth.note_on(ch, i32::from(key), i32::from(vel)),
            Msg::NoteOff { key } => synth.note_off(ch, i32::from(key)),
            Msg::Controller { cc: 0 | 32 | 0x5B, .. } if s.reverb.is_some() => {}
            Msg::Controller { cc: 0 | 32, .. } => {}
            Msg::Controller { cc, value } => synth.process_midi_message(ch, 0xB0, i32::from(cc), i32::from(value)),
            Msg::Program(_) => {}
            Msg::PitchBend(v) => synth.process_midi_message(ch, 0xE0, i32::from(v & 0x7f), i32::from(v >> 7)),
        }
    }
    if total > pos {
        synth.render(&mut left[pos..], &mut right[pos..]);
    }
    Ok(left.iter().zip(&right).map(|(l, r)| 0.5 * (l + r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_families() {
        assert_eq!(kit_family("Standard 3"), "Standard");
        assert_eq!(kit_family("Standard"), "Standard");
        assert_eq!(kit_family("TR-808"), "TR-808");
        assert_eq!(kit_family("Orchestra Kit"), "Orchestra Kit");
        assert_eq!(kit_family("Black_Pearl_4pc"), "Black_Pearl_4pc");
    }
}
