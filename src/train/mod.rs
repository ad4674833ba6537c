//! Training: the optimiser pieces ([`optim`]: AdamW with saveable state, learning-rate
//! schedule, gradient clipping, EMA weights).

pub mod config;
pub mod optim;
pub mod trainer;
pub mod waveform;
