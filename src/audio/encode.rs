//! WAV output (hound), written atomically: a temp file beside the destination, renamed
//! into place only when complete.
// INTERFACE STUB: owned by the audio helper; bodies to be written.

use std::path::Path;

use super::SampleFormat;
use crate::Result;

/// Format of an output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub sample_rate: u32,
    pub channels: usize,
    /// `Int(8|16|24|32)` or `Float(32)`.
    pub format: SampleFormat,
}

/// Converts a float sample to a signed integer of `bits` bits (round to nearest, clipped).
pub fn quantize(x: f32, bits: u16) -> i32 {
    let _ = (x, bits);
    todo!()
}

/// A WAV file being written to a temporary path; [`AtomicWavWriter::finish`] renames it to
/// its destination. Dropping it without `finish` deletes the temp file.
pub struct AtomicWavWriter {
    spec: OutputSpec,
}

impl AtomicWavWriter {
    /// Starts writing `dest` (its parent folder is created if missing).
    pub fn create(dest: &Path, spec: OutputSpec) -> Result<Self> {
        let _ = (dest, spec);
        todo!()
    }

    pub fn spec(&self) -> OutputSpec {
        self.spec
    }

    /// Writes planar float frames (quantized for integer formats).
    pub fn write_f32(&mut self, planar: &[Vec<f32>]) -> Result<()> {
        let _ = planar;
        todo!()
    }

    /// Writes planar integer frames (integer formats only; values already in range).
    pub fn write_i32(&mut self, planar: &[Vec<i32>]) -> Result<()> {
        let _ = planar;
        todo!()
    }

    /// Finalises the WAV header, syncs, and renames onto `dest`. With `overwrite == false`
    /// an existing destination is an error and is left untouched.
    pub fn finish(self, overwrite: bool) -> Result<()> {
        let _ = overwrite;
        todo!()
    }
}
