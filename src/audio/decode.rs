//! Streaming decode of any supported file into planar f32 (symphonia).
// INTERFACE STUB: owned by the audio helper; bodies to be written.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Planar, SampleFormat};
use crate::Result;

/// What `splitflow info` prints about a file.
#[derive(Clone, Debug, Serialize)]
pub struct AudioInfo {
    pub path: PathBuf,
    /// Container, e.g. "WAV", "FLAC", "MP3", "Ogg", "MP4", "AIFF".
    pub container: String,
    /// Codec, e.g. "PCM", "FLAC", "MP3", "Vorbis", "AAC", "ALAC".
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Native sample format; `None` for lossy codecs, which have no bit depth.
    pub sample_format: Option<SampleFormat>,
    /// Length in frames when the container states it.
    pub frames: Option<u64>,
}

impl AudioInfo {
    /// Duration in seconds when the length is known.
    pub fn duration_secs(&self) -> Option<f64> {
        self.frames.map(|n| n as f64 / self.sample_rate as f64)
    }
}

/// A decoder over one file that yields planar f32 frames in bounded memory.
pub struct AudioReader {
    info: AudioInfo,
}

impl AudioReader {
    /// Opens and probes `path`. Errors name the file and the reason.
    pub fn open(path: &Path) -> Result<Self> {
        let _ = path;
        todo!()
    }

    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// Appends up to `max_frames` decoded frames to `out` (one Vec per channel; `out` is
    /// resized to the channel count when empty). Returns the number of frames appended;
    /// 0 means end of stream.
    pub fn read(&mut self, out: &mut Planar, max_frames: usize) -> Result<usize> {
        let _ = (out, max_frames);
        todo!()
    }
}
