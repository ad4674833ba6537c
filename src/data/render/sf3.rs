//! SoundFont 3 to SoundFont 2, so that rustysynth (which reads only .sf2) can play the
//! MuseScore General bank.
//!
//! An .sf3 is an .sf2 whose `smpl` chunk holds one Ogg Vorbis stream per sample. What the
//! MuseScore files do, checked on both of them (and as FluidSynth's `fluid_sffile.c` reads
//! them): a sample header's `start`/`end` are *byte* offsets of its stream in `smpl`; its loop
//! points are frame offsets *relative to the sample* (an .sf2 counts them from the start of
//! `smpl`); `sampleType` carries the flag 0x10; `ifil` is 3.x; odd-sized chunks may lack the
//! pad byte RIFF asks for. The conversion decodes every stream to 16-bit PCM, lays the samples
//! out one after the other with the 46 zero samples SoundFont 2 wants after each, rewrites
//! start, end and loops as absolute sample positions, clears the flag, names the terminal
//! records (`EOP`, `EOI`, `EOS`) and writes version 2.1. Every other byte of `pdta` is kept:
//! generator offsets count frames from the sample's start and stay valid.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use rayon::prelude::*;

use crate::Result;
use crate::audio::decode::AudioReader;

/// Flag of a compressed sample in `sampleType`.
const COMPRESSED: u16 = 0x10;
/// Size of a sample header record.
const SHDR: usize = 46;
/// Zero samples after each sample, as SoundFont 2 requires.
const PAD: usize = 46;

/// A RIFF chunk: its id and its data.
struct Chunk<'a> {
    id: [u8; 4],
    data: &'a [u8],
}

fn is_id(b: &[u8]) -> bool {
    b.len() >= 4 && b[..4].iter().all(|c| (0x20..0x7f).contains(c))
}

/// The chunks in `b`, back to back; an odd-sized chunk is followed by a pad byte only where
/// the file has one (a zero byte before the next id).
fn chunks(b: &[u8]) -> Result<Vec<Chunk<'_>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let id: [u8; 4] = b[at..at + 4].try_into().context("chunk id")?;
        let size = u32::from_le_bytes(b[at + 4..at + 8].try_into().context("chunk size")?) as usize;
        let end = at + 8 + size;
        ensure!(
            end <= b.len() && is_id(&id),
            "corrupt RIFF chunk at byte {at} (id {:?}, {size} bytes)",
            String::from_utf8_lossy(&id)
        );
        out.push(Chunk {
            id,
            data: &b[at + 8..end],
        });
        at = end;
        if !size.is_multiple_of(2) && b.get(at) == Some(&0) && is_id(b.get(at + 1..).unwrap_or(&[])) {
            at += 1;
        }
    }
    Ok(out)
}

pub(super) fn write_chunk(out: &mut Vec<u8>, id: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(id);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if !data.len().is_multiple_of(2) {
        out.push(0);
    }
}

pub(super) fn write_list(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    let mut d = kind.to_vec();
    d.extend_from_slice(body);
    write_chunk(out, b"LIST", &d);
}

pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Names the last record of a `size`-byte record table (its 20-byte name first) `name`.
fn name_terminal(table: &[u8], size: usize, name: &str) -> Vec<u8> {
    let mut t = table.to_vec();
    if t.len() >= size && t.len().is_multiple_of(size) {
        let last = t.len() - size;
        t[last..last + 20].fill(0);
        t[last..last + name.len()].copy_from_slice(name.as_bytes());
    }
    t
}

/// Whether `b` is a SoundFont with compressed (SoundFont 3) samples: `ifil` major version 3.
pub fn is_sf3(b: &[u8]) -> bool {
    let Ok(top) = riff_body(b) else { return false };
    let Ok(list) = chunks(top) else { return false };
    list.iter()
        .filter(|c| &c.id == b"LIST" && c.data.starts_with(b"INFO"))
        .flat_map(|c| chunks(&c.data[4..]).unwrap_or_default())
        .any(|c| &c.id == b"ifil" && c.data.first() == Some(&3))
}

fn riff_body(b: &[u8]) -> Result<&[u8]> {
    ensure!(
        b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"sfbk",
        "not a SoundFont (no RIFF sfbk header)"
    );
    Ok(&b[12..])
}

/// Converts the SoundFont 3 `sf3` into SoundFont 2 bytes; `name` is the file errors name.
/// Samples decode in parallel (rayon's current pool).
pub fn to_sf2(name: &Path, sf3: &[u8]) -> Result<Vec<u8>> {
    let err = |e: anyhow::Error| e.context(format!("{}: cannot convert the SoundFont 3", name.display()));
    convert(name, sf3).map_err(err)
}

fn convert(name: &Path, sf3: &[u8]) -> Result<Vec<u8>> {
    let top = chunks(riff_body(sf3)?)?;
    let list = |kind: &[u8; 4]| -> Result<Vec<Chunk<'_>>> {
        let c = top
            .iter()
            .find(|c| &c.id == b"LIST" && c.data.starts_with(kind))
            .with_context(|| format!("no LIST {}", String::from_utf8_lossy(kind)))?;
        chunks(&c.data[4..])
    };
    let info = list(b"INFO")?;
    let sdta = list(b"sdta")?;
    let pdta = list(b"pdta")?;
    let smpl = sdta.iter().find(|c| &c.id == b"smpl").context("no smpl chunk")?.data;
    let shdr = pdta.iter().find(|c| &c.id == b"shdr").context("no shdr chunk")?.data;
    ensure!(
        shdr.len() >= SHDR && shdr.len().is_multiple_of(SHDR),
        "shdr chunk of {} bytes",
        shdr.len()
    );
    let n = shdr.len() / SHDR - 1;

    // Each sample as 16-bit PCM, and its loop points relative to its start.
    let decoded: Vec<Result<(Vec<i16>, u32, u32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = &shdr[i * SHDR..(i + 1) * SHDR];
            let (start, end) = (u32_at(r, 20) as usize, u32_at(r, 24) as usize);
            let (lstart, lend) = (u32_at(r, 28), u32_at(r, 32));
            let kind = u16::from_le_bytes([r[44], r[45]]);
            let label = String::from_utf8_lossy(&r[..20]).trim_end_matches('\0').to_string();
            if kind & COMPRESSED != 0 {
                ensure!(
                    start <= end && end <= smpl.len(),
                    "sample {i} ({label}): bytes {start}..{end} outside smpl"
                );
                let stream = smpl[start..end].to_vec();
                let what = name.join(format!("sample {i} ({label})"));
                let mut rd = AudioReader::from_bytes(&what, stream, Some("ogg"), crate::audio::Damaged::KeepLossy)?;
                let planar = rd.read_to_end()?;
                let mono = planar.into_iter().next().unwrap_or_default();
                let pcm = mono
                    .iter()
                    .map(|v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
                    .collect();
                Ok((pcm, lstart, lend))
            } else {
                // An uncompressed sample in an SF3: 16-bit words, absolute loop points.
                ensure!(
                    start <= end && end * 2 <= smpl.len(),
                    "sample {i} ({label}): words {start}..{end} outside smpl"
                );
                let pcm = smpl[start * 2..end * 2]
                    .chunks_exact(2)
                    .map(|w| i16::from_le_bytes([w[0], w[1]]))
                    .collect();
                let rel = |v: u32| v.saturating_sub(start as u32);
                Ok((pcm, rel(lstart), rel(lend)))
            }
        })
        .collect();

    let mut new_smpl: Vec<u8> = Vec::new();
    let mut new_shdr: Vec<u8> = Vec::with_capacity(shdr.len());
    let mut pos: u32 = 0;
    for (i, d) in decoded.into_iter().enumerate() {
        let (pcm, lstart, lend) = d?;
        let r = &shdr[i * SHDR..(i + 1) * SHDR];
        let frames = pcm.len() as u32;
        let clampf = |v: u32| v.min(frames);
        let mut rec = r.to_vec();
        rec[20..24].copy_from_slice(&pos.to_le_bytes());
        rec[24..28].copy_from_slice(&(pos + frames).to_le_bytes());
        rec[28..32].copy_from_slice(&(pos + clampf(lstart)).to_le_bytes());
        rec[32..36].copy_from_slice(&(pos + clampf(lend)).to_le_bytes());
        let kind = u16::from_le_bytes([r[44], r[45]]) & !COMPRESSED;
        rec[44..46].copy_from_slice(&kind.to_le_bytes());
        new_shdr.extend_from_slice(&rec);
        for v in pcm.iter().copied().chain(std::iter::repeat_n(0, PAD)) {
            new_smpl.extend_from_slice(&v.to_le_bytes());
        }
        pos = pos
            .checked_add(frames + PAD as u32)
            .context("more than 2^32 sample frames")?;
    }
    let mut term = vec![0u8; SHDR];
    term[..3].copy_from_slice(b"EOS");
    new_shdr.extend_from_slice(&term);

    let mut info_body = Vec::new();
    for c in &info {
        if &c.id == b"ifil" {
            write_chunk(&mut info_body, b"ifil", &[2, 0, 1, 0]);
        } else {
            write_chunk(&mut info_body, &c.id, c.data);
        }
    }
    let mut sdta_body = Vec::new();
    write_chunk(&mut sdta_body, b"smpl", &new_smpl);
    let mut pdta_body = Vec::new();
    for c in &pdta {
        let data = match &c.id {
            b"shdr" => new_shdr.clone(),
            b"phdr" => name_terminal(c.data, 38, "EOP"),
            b"inst" => name_terminal(c.data, 22, "EOI"),
            _ => c.data.to_vec(),
        };
        write_chunk(&mut pdta_body, &c.id, &data);
    }
    let mut body = b"sfbk".to_vec();
    write_list(&mut body, b"INFO", &info_body);
    write_list(&mut body, b"sdta", &sdta_body);
    write_list(&mut body, b"pdta", &pdta_body);
    let mut out = Vec::with_capacity(body.len() + 8);
    write_chunk(&mut out, b"RIFF", &body);
    if out.len() < 12 {
        bail!("empty SoundFont");
    }
    Ok(out)
}
