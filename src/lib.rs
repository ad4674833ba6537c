//! splitflow: query-conditioned audio source separation.
//!
//! The pipeline reads as the module tree:
//! [`audio`] (decode, resample, encode) → [`dsp`] (STFT) → [`separate`] (separators, the
//! chunked engine, per-file processing and batches). The binary in `src/main.rs` only parses
//! flags ([`cli`]) and calls into this library.

pub mod audio;
pub mod cli;
pub mod data;
pub mod demo;
pub mod dsp;
pub mod flow;
pub mod metrics;
pub mod model;
pub mod score;
pub mod separate;
pub mod train;
pub mod viz;

/// Library result type. Errors carry context (file name, reason) and print on one line with
/// `{:#}`.
pub type Result<T> = anyhow::Result<T>;
