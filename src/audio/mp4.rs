//! Gapless MP4/M4A: the encoder delay and padding that symphonia 0.6 leaves in (it parses the
//! edit list but does not apply it). An AAC encoder primes the stream with about 1,024 frames
//! of silence (plus a decoder delay) and pads the last packet; the MP4 says what to keep in
//! its edit list (`moov/trak/edts/elst`: the media time where playback starts and the
//! duration to play) or, from iTunes and some other encoders, in the `iTunSMPB` tag
//! (`moov/udta/meta/ilst/----`: delay, padding, original length in hex). Only box headers are
//! read (seeking over the rest), so a large file costs a few small reads.

use std::io::{Read, Seek, SeekFrom};

/// What to keep of the decoded stream, in frames at the track's sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gapless {
    /// Frames to drop at the start (encoder delay).
    pub delay: u64,
    /// Frames to keep after that (the source's length), when stated.
    pub length: Option<u64>,
}

/// One box: its type and where its payload lies.
struct BoxHeader {
    kind: [u8; 4],
    start: u64,
    end: u64,
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

/// The boxes inside `[start, end)`.
fn children<R: Read + Seek>(r: &mut R, start: u64, end: u64) -> std::io::Result<Vec<BoxHeader>> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos + 8 <= end {
        r.seek(SeekFrom::Start(pos))?;
        let size = u64::from(read_u32(r)?);
        let mut kind = [0u8; 4];
        r.read_exact(&mut kind)?;
        let (header, size) = match size {
            1 => (16, read_u64(r)?),
            0 => (8, end - pos),
            s => (8, s),
        };
        if size < header || pos + size > end {
            break;
        }
        out.push(BoxHeader {
            kind,
            start: pos + header,
            end: pos + size,
        });
        pos += size;
    }
    Ok(out)
}

/// The payload of a (small) box.
fn payload<R: Read + Seek>(r: &mut R, b: &BoxHeader, max: u64) -> std::io::Result<Vec<u8>> {
    let len = (b.end - b.start).min(max);
    r.seek(SeekFrom::Start(b.start))?;
    let mut v = vec![0u8; len as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn find<'a>(boxes: &'a [BoxHeader], kind: &[u8; 4]) -> Option<&'a BoxHeader> {
    boxes.iter().find(|b| &b.kind == kind)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_be_bytes(a)
    })
}

/// The timescale of an `mvhd` or `mdhd` payload (full box: version, flags, then times).
fn timescale(p: &[u8]) -> Option<u32> {
    match p.first()? {
        1 => be32(p, 20),
        _ => be32(p, 12),
    }
}

/// The first edit of an `elst` payload that plays media: (segment duration in the movie
/// timescale, media time in the track's timescale).
fn first_edit(p: &[u8]) -> Option<(u64, i64)> {
    let version = *p.first()?;
    let count = be32(p, 4)?;
    let mut at = 8;
    for _ in 0..count.min(16) {
        let (dur, time) = if version == 1 {
            let d = be64(p, at)?;
            let t = be64(p, at + 8)? as i64;
            at += 20;
            (d, t)
        } else {
            let d = u64::from(be32(p, at)?);
            let t = i64::from(be32(p, at + 4)? as i32);
            at += 12;
            (d, t)
        };
        // media_time -1 is an empty edit (a pause before the media starts).
        if time >= 0 {
            return Some((dur, time));
        }
    }
    None
}

/// `iTunSMPB` from `moov/udta/meta/ilst`: (delay, padding, length) in frames.
fn itunsmpb<R: Read + Seek>(r: &mut R, moov: &[BoxHeader]) -> std::io::Result<Option<(u64, u64, u64)>> {
    let Some(udta) = find(moov, b"udta") else {
        return Ok(None);
    };
    let udta = children(r, udta.start, udta.end)?;
    let Some(meta) = find(&udta, b"meta") else {
        return Ok(None);
    };
    // `meta` is a full box: 4 bytes of version and flags before its children.
    let meta = children(r, meta.start + 4, meta.end)?;
    let Some(ilst) = find(&meta, b"ilst") else {
        return Ok(None);
    };
    for item in children(r, ilst.start, ilst.end)? {
        if &item.kind != b"----" {
            continue;
        }
        let parts = children(r, item.start, item.end)?;
        let name = match find(&parts, b"name") {
            Some(n) => payload(r, n, 64)?,
            None => continue,
        };
        if name.get(4..) != Some(b"iTunSMPB".as_slice()) {
            continue;
        }
        let Some(data) = find(&parts, b"data") else {
            continue;
        };
        let text = payload(r, data, 256)?;
        // 4 bytes type, 4 bytes locale, then the text.
        let text = String::from_utf8_lossy(text.get(8..).unwrap_or_default()).into_owned();
        let fields: Vec<u64> = text
            .split_whitespace()
            .filter_map(|f| u64::from_str_radix(f, 16).ok())
            .collect();
        if let [_, delay, padding, length, ..] = fields[..] {
            return Ok(Some((delay, padding, length)));
        }
    }
    Ok(None)
}

/// The gapless trim of the first audio track of an MP4 file, converted to frames at
/// `sample_rate`; `None` when the file states none (or is not an MP4 that can be read).
/// The edit list wins over `iTunSMPB`; an edit at media time 0 only caps the length.
pub fn gapless<R: Read + Seek>(r: &mut R, sample_rate: u32) -> Option<Gapless> {
    read_gapless(r, sample_rate).ok().flatten()
}

fn read_gapless<R: Read + Seek>(r: &mut R, sample_rate: u32) -> std::io::Result<Option<Gapless>> {
    let file_end = r.seek(SeekFrom::End(0))?;
    let top = children(r, 0, file_end)?;
    let Some(moov) = find(&top, b"moov") else {
        return Ok(None);
    };
    let moov = children(r, moov.start, moov.end)?;
    let movie_scale = match find(&moov, b"mvhd") {
        Some(b) => timescale(&payload(r, b, 32)?),
        None => None,
    };
    let rate = u64::from(sample_rate);
    for trak in moov.iter().filter(|b| &b.kind == b"trak") {
        let parts = children(r, trak.start, trak.end)?;
        let Some(mdia) = find(&parts, b"mdia") else {
            continue;
        };
        let mdia = children(r, mdia.start, mdia.end)?;
        let is_sound = match find(&mdia, b"hdlr") {
            Some(h) => payload(r, h, 12)?.get(8..12) == Some(b"soun".as_slice()),
            None => false,
        };
        if !is_sound {
            continue;
        }
        let media_scale = match find(&mdia, b"mdhd") {
            Some(b) => timescale(&payload(r, b, 32)?),
            None => None,
        };
        let edit = match find(&parts, b"edts") {
            Some(edts) => match find(&children(r, edts.start, edts.end)?, b"elst") {
                Some(elst) => first_edit(&payload(r, elst, 8 + 16 * 20)?),
                None => None,
            },
            None => None,
        };
        if let (Some((dur, time)), Some(ms), Some(vs)) = (edit, media_scale, movie_scale)
            && ms > 0
            && vs > 0
        {
            let delay = time as u64 * rate / u64::from(ms);
            let length = (dur > 0).then(|| dur * rate / u64::from(vs));
            return Ok(Some(Gapless { delay, length }).filter(|g| g.delay > 0 || g.length.is_some()));
        }
        if let Some((delay, _padding, length)) = itunsmpb(r, &moov)? {
            return Ok(Some(Gapless {
                delay,
                length: (length > 0).then_some(length),
            }));
        }
        return Ok(None);
    }
    Ok(None)
}
