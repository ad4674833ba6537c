//! RNNoise (Valin 2018) as a speech separator, through the `nnnoiseless` crate (a pure-Rust
//! port of Xiph's RNNoise with its shipped weights). It is the speech-denoising peer the
//! benchmarks compare the flow model against, and a usable model of its own:
//! `splitflow separate talk.wav --model rnnoise --query speech`.

use nnnoiseless::DenoiseState;
use rayon::prelude::*;

use super::{Query, Segment, Separator};
use crate::Result;

/// RNNoise works on 48 kHz 16-bit-scaled samples, 480 at a time (10 ms).
const RATE: u32 = 48_000;
const FRAME: usize = DenoiseState::FRAME_SIZE;
const PCM_SCALE: f32 = 32_768.0;

/// RNNoise speech extraction (any channel count: each channel on its own).
#[derive(Clone, Debug, Default)]
pub struct Rnnoise;

/// Denoises one channel of 48 kHz audio in [-1, 1]. RNNoise's output lags its input by one
/// frame (its synthesis overlap-adds the previous frame), so the input is padded by a frame
/// and the first output frame dropped: output sample i lines up with input sample i.
pub fn denoise(x: &[f32]) -> Vec<f32> {
    let mut state = DenoiseState::new();
    let frames = x.len().div_ceil(FRAME) + 1;
    let mut input = vec![0f32; frames * FRAME];
    input.iter_mut().zip(x).for_each(|(d, s)| *d = s * PCM_SCALE);
    let mut out = vec![0f32; frames * FRAME];
    for (o, i) in out.chunks_exact_mut(FRAME).zip(input.chunks_exact(FRAME)) {
        state.process_frame(o, i);
    }
    out[FRAME..FRAME + x.len()].iter().map(|v| v / PCM_SCALE).collect()
}

impl Separator for Rnnoise {
    fn name(&self) -> &str {
        "rnnoise"
    }

    fn processing_rate(&self) -> Option<u32> {
        Some(RATE)
    }

    fn segment(&self) -> Segment {
        // The recurrent state needs a few hundred milliseconds to settle: long segments keep
        // restarts (one per segment) rare.
        Segment {
            length_secs: 30.0,
            overlap_secs: 1.0,
        }
    }

    fn labels(&self) -> Vec<String> {
        vec!["speech".into()]
    }

    fn check_query(&self, query: &Query) -> Result<()> {
        let speech = query
            .label()
            .and_then(|l| crate::model::query::resolve_query(l).ok())
            .is_some_and(|id| crate::data::LABELS[id] == "speech");
        anyhow::ensure!(
            speech,
            "model 'rnnoise' answers one query: speech (also voice, vocals, talking); got '{}'",
            query.name()
        );
        Ok(())
    }

    fn separate(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Result<Vec<Vec<f32>>> {
        self.check_query(query)?;
        anyhow::ensure!(
            sample_rate == RATE,
            "rnnoise works at {RATE} Hz, got {sample_rate} Hz (the engine resamples to processing_rate)"
        );
        Ok(chunk.par_iter().map(|x| denoise(x)).collect())
    }
}
