//! Harmonic/percussive source separation by median filtering (Fitzgerald 2010), the
//! classical baseline separator.
// INTERFACE STUB: owned by the DSP helper; bodies to be written.

use super::{Query, Separator};
use crate::Result;

/// HPSS parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct HpssConfig {
    pub n_fft: usize,
    pub hop: usize,
    /// Median length across time (frames) for the harmonic enhancement.
    pub harmonic_kernel: usize,
    /// Median length across frequency (bins) for the percussive enhancement.
    pub percussive_kernel: usize,
    /// Soft-mask exponent (2 = Wiener-like).
    pub power: f32,
}

pub struct Hpss {
    cfg: HpssConfig,
}

impl Hpss {
    pub fn new(cfg: HpssConfig) -> Result<Self> {
        Ok(Self { cfg })
    }

    pub fn config(&self) -> &HpssConfig {
        &self.cfg
    }
}

impl Default for Hpss {
    fn default() -> Self {
        Self {
            cfg: HpssConfig {
                n_fft: 2048,
                hop: 512,
                harmonic_kernel: 17,
                percussive_kernel: 17,
                power: 2.0,
            },
        }
    }
}

impl Separator for Hpss {
    fn name(&self) -> &str {
        "hpss"
    }
    fn check_query(&self, query: &Query) -> Result<()> {
        let _ = query;
        todo!()
    }
    fn separate(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Result<Vec<Vec<f32>>> {
        let _ = (chunk, sample_rate, query);
        todo!()
    }
}
