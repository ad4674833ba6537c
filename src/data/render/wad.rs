//! Doom WAD files: the music lumps `D_*` of Freedoom.
//!
//! The format is a 12-byte header ("IWAD"/"PWAD", lump count, directory offset, little-endian)
//! and a directory of 16-byte entries (offset, size, 8-byte NUL-padded name). Reading it by
//! hand is a dozen lines; the WAD crates on crates.io are unmaintained game-engine loaders.

use anyhow::{Context, bail};

use crate::Result;

/// One lump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lump {
    pub name: String,
    pub data: Vec<u8>,
}

/// What a music lump holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MusicFormat {
    /// Standard MIDI file ("MThd").
    Midi,
    /// Doom's MUS format ("MUS\x1a").
    Mus,
    Other,
}

/// The format of a lump by its magic bytes.
pub fn music_format(data: &[u8]) -> MusicFormat {
    if data.starts_with(b"MThd") {
        MusicFormat::Midi
    } else if data.starts_with(b"MUS\x1a") {
        MusicFormat::Mus
    } else {
        MusicFormat::Other
    }
}

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// The lumps of a WAD whose names start with `prefix` (`what` names the file in errors).
pub fn lumps(wad: &[u8], prefix: &str, what: &str) -> Result<Vec<Lump>> {
    if wad.len() < 12 || !(wad.starts_with(b"IWAD") || wad.starts_with(b"PWAD")) {
        bail!("{what}: not a WAD file (no IWAD/PWAD header)");
    }
    let (count, dir) = (le32(wad, 4), le32(wad, 8));
    let end = count
        .checked_mul(16)
        .and_then(|n| n.checked_add(dir))
        .filter(|&e| e <= wad.len())
        .with_context(|| format!("{what}: directory ({count} entries at {dir}) past the end of the file"))?;
    let mut out = Vec::new();
    for e in wad[dir..end].chunks_exact(16) {
        let (pos, size) = (le32(e, 0), le32(e, 4));
        let name: String = e[8..16]
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| char::from(c))
            .collect();
        if !name.starts_with(prefix) {
            continue;
        }
        let data = pos
            .checked_add(size)
            .filter(|&x| x <= wad.len())
            .map(|x| wad[pos..x].to_vec())
            .with_context(|| format!("{what}: lump {name} past the end of the file"))?;
        out.push(Lump { name, data });
    }
    Ok(out)
}

/// Builds a WAD (used by tests and fixtures): `kind` is `b"IWAD"` or `b"PWAD"`.
pub fn write(kind: &[u8; 4], lumps: &[Lump]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut dir = Vec::new();
    for l in lumps {
        let pos = 12 + data.len();
        data.extend_from_slice(&l.data);
        dir.extend_from_slice(&(pos as u32).to_le_bytes());
        dir.extend_from_slice(&(l.data.len() as u32).to_le_bytes());
        let mut name = [0u8; 8];
        for (d, s) in name.iter_mut().zip(l.name.bytes()) {
            *d = s;
        }
        dir.extend_from_slice(&name);
    }
    let mut out = Vec::with_capacity(12 + data.len() + dir.len());
    out.extend_from_slice(kind);
    out.extend_from_slice(&(lumps.len() as u32).to_le_bytes());
    out.extend_from_slice(&((12 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&dir);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_prefix() {
        let ls = vec![
            Lump {
                name: "MAP01".into(),
                data: vec![1, 2, 3],
            },
            Lump {
                name: "D_RUNNIN".into(),
                data: b"MThd\0\0\0\x06".to_vec(),
            },
            Lump {
                name: "D_E1M1".into(),
                data: b"MUS\x1a..".to_vec(),
            },
        ];
        let w = write(b"PWAD", &ls);
        let got = lumps(&w, "D_", "t.wad").unwrap();
        assert_eq!(got, ls[1..].to_vec());
        assert_eq!(music_format(&got[0].data), MusicFormat::Midi);
        assert_eq!(music_format(&got[1].data), MusicFormat::Mus);
        assert!(lumps(b"NOTAWAD00000", "D_", "x").is_err());
        let mut bad = w.clone();
        bad[4] = 200; // lump count past the end
        assert!(lumps(&bad, "D_", "x").unwrap_err().to_string().contains("past the end"));
    }
}
