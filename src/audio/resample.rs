//! Streaming sample-rate conversion (rubato sinc), delay-compensated so that output sample
//! k lines up with input time k / rate_out.
// INTERFACE STUB: owned by the audio helper; bodies to be written.

use super::Planar;
use crate::Result;

/// Number of output frames for `n_in` input frames: ceil(n_in * to / from).
pub fn output_len(n_in: u64, from: u32, to: u32) -> u64 {
    (n_in * to as u64).div_ceil(from as u64)
}

/// Resamples a stream chunk by chunk. Identity when the rates are equal.
pub struct StreamResampler {
    from: u32,
    to: u32,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32, channels: usize) -> Result<Self> {
        let _ = channels;
        Ok(Self { from, to })
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// Pushes input frames; returns the output frames that are ready (possibly none).
    pub fn process(&mut self, input: &[Vec<f32>]) -> Result<Planar> {
        let _ = input;
        todo!()
    }

    /// Ends the stream: returns the remaining frames so that the total output is exactly
    /// `output_len(total input frames)`.
    pub fn finish(&mut self) -> Result<Planar> {
        todo!()
    }
}

/// Resamples a whole signal at once (`output_len` frames out).
pub fn resample(input: &[Vec<f32>], from: u32, to: u32) -> Result<Planar> {
    let mut r = StreamResampler::new(from, to, input.len())?;
    let mut out = r.process(input)?;
    let tail = r.finish()?;
    for (o, t) in out.iter_mut().zip(tail) {
        o.extend(t);
    }
    Ok(out)
}
