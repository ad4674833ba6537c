//! Signal processing: the short-time Fourier transform and its inverse.

pub mod stft;

pub use stft::{Spectrogram, Stft, StftConfig, WindowKind};
