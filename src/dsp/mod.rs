//! Signal processing: the short-time Fourier transform and its inverse, and the separator's
//! band representation ([`bands`]).

pub mod bands;
pub mod stft;

pub use stft::{Spectrogram, Stft, StftConfig, WindowKind};
