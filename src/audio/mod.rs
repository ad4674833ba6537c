//! Audio in and out: streaming decode (symphonia), sample-rate conversion (rubato) and
//! atomic WAV output (hound).

pub mod decode;
pub mod encode;
pub mod flac;
pub mod mp4;
pub mod ogg;
pub mod resample;

pub use decode::{AudioInfo, AudioReader, Damage, Damaged};
pub use encode::{AtomicAudioWriter, FileFormat, OutputSpec, stale_temp_files};
pub use resample::StreamResampler;

use serde::Serialize;

/// Planar audio: one `Vec<f32>` per channel, all of the same length, nominal range [-1, 1].
pub type Planar = Vec<Vec<f32>>;

/// How samples are stored in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SampleFormat {
    /// Signed (or offset unsigned) integer PCM with this many bits.
    Int(u16),
    /// IEEE float with this many bits (32 or 64).
    Float(u16),
}

impl std::fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleFormat::Int(b) => write!(f, "{b}-bit int"),
            SampleFormat::Float(b) => write!(f, "{b}-bit float"),
        }
    }
}

/// Number of frames in a planar buffer (0 when it has no channels).
pub fn frames(p: &[Vec<f32>]) -> usize {
    p.first().map_or(0, Vec::len)
}
