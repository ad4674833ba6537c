//! The stated length of an Ogg stream when symphonia gives none: symphonia 0.6 learns an Ogg
//! file's length by reading its pages, and a corrupt page in the middle leaves it unknown (the
//! stream then simply ends there). The granule position of the file's last page of the first
//! logical stream is that length (Vorbis: frames), so a cut-short decode can still be seen.

use std::io::{Read, Seek, SeekFrom};

/// Bytes read from the end of the file looking for the last page (a page is at most 65,307).
const TAIL: u64 = 1 << 17;

/// The last page of the logical stream that the file's first page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastPage {
    /// Its granule position: the stream's length in frames (Vorbis).
    pub granule: u64,
    /// Whether it is flagged as the end of the stream (else the file is cut, and the true
    /// length is longer).
    pub end_of_stream: bool,
}

/// The [`LastPage`]; `None` when there is no such page or it states no position.
pub fn last_page<R: Read + Seek>(r: &mut R) -> Option<LastPage> {
    read_last_page(r).ok().flatten()
}

fn read_last_page<R: Read + Seek>(r: &mut R) -> std::io::Result<Option<LastPage>> {
    let mut head = [0u8; 27];
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut head)?;
    if &head[..4] != b"OggS" {
        return Ok(None);
    }
    let serial = &head[14..18];
    let len = r.seek(SeekFrom::End(0))?;
    let from = len.saturating_sub(TAIL);
    r.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    r.take(TAIL).read_to_end(&mut tail)?;
    let mut i = tail.len().saturating_sub(27);
    loop {
        if &tail[i..i + 4] == b"OggS" && tail[i + 4] == 0 && &tail[i + 14..i + 18] == serial {
            let mut g = [0u8; 8];
            g.copy_from_slice(&tail[i + 6..i + 14]);
            let granule = i64::from_le_bytes(g);
            if granule >= 0 {
                return Ok(Some(LastPage {
                    granule: granule as u64,
                    end_of_stream: tail[i + 5] & 4 != 0,
                }));
            }
        }
        if i == 0 {
            return Ok(None);
        }
        i -= 1;
    }
}
