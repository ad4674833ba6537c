//! STFT / inverse STFT on realfft, torch.stft conventions (centred reflect padding,
//! `1 + len / hop` frames, window-sum-normalised overlap-add in the inverse).
// INTERFACE STUB: owned by the DSP helper; bodies to be written.

use realfft::num_complex::Complex32;

use crate::Result;

/// Analysis window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Periodic Hann (torch.hann_window default).
    Hann,
    /// Square root of periodic Hann.
    SqrtHann,
    /// Periodic Hamming.
    Hamming,
    /// All ones.
    Rectangular,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StftConfig {
    pub n_fft: usize,
    pub hop: usize,
    pub window: WindowKind,
    /// Reflect-pad by n_fft / 2 on both sides so frame t is centred on sample t * hop.
    pub center: bool,
}

/// A complex spectrogram, frame-major: `data[frame * n_bins + bin]`, `n_bins = n_fft/2 + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrogram {
    pub n_frames: usize,
    pub n_bins: usize,
    pub data: Vec<Complex32>,
}

/// Planned forward and inverse transforms for one configuration (reusable, `Sync`).
pub struct Stft {
    cfg: StftConfig,
}

impl Stft {
    pub fn new(cfg: StftConfig) -> Result<Self> {
        Ok(Self { cfg })
    }

    pub fn config(&self) -> &StftConfig {
        &self.cfg
    }

    /// Number of frames for a signal of `len` samples.
    pub fn n_frames(&self, len: usize) -> usize {
        let _ = len;
        todo!()
    }

    pub fn forward(&self, x: &[f32]) -> Spectrogram {
        let _ = x;
        todo!()
    }

    /// Inverse transform, trimmed/padded to `len` samples.
    pub fn inverse(&self, spec: &Spectrogram, len: usize) -> Vec<f32> {
        let _ = (spec, len);
        todo!()
    }
}
