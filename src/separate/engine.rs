//! The chunked engine: cuts a stream into overlapping segments, runs a [`Separator`] on each,
//! and joins the estimates by weighted overlap-add, so a file of any length runs in memory
//! bounded by one segment.
//!
//! Segment k covers input frames `[k*hop, k*hop + len)`, with `hop = len - overlap`. Each
//! estimate is multiplied by a trapezoidal weight (a linear ramp over the overlap at both
//! ends, flat in between, never zero) and the sum is divided by the sum of weights. In an
//! overlap the two ramps add to one, so neighbouring segments crossfade linearly; dividing by
//! the weight sum makes the first and last frames exact as well, so an identity separator
//! reproduces its input to float rounding. The last, partial segment (and a stream shorter than
//! one segment) goes to the separator at its own length, not zero-padded: a model that
//! normalises its input by the chunk's loudness, or attends over the whole chunk, would
//! otherwise see seconds of digital silence it never met in training (a 4 s file in a 10 s
//! segment is 60 % padding; docs/training.md, "Unpadded segments").

use super::{Query, Separator};
use crate::Result;
use crate::audio::Planar;

/// Segmentation of a stream, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Length of one segment.
    pub length_secs: f32,
    /// Overlap between consecutive segments (less than `length_secs`).
    pub overlap_secs: f32,
}

impl Default for Segment {
    fn default() -> Self {
        Self {
            length_secs: 10.0,
            overlap_secs: 1.0,
        }
    }
}

impl Segment {
    /// Segment length and overlap in frames at `rate` (length >= 1, overlap < length).
    pub fn frames(&self, rate: u32) -> (usize, usize) {
        let len = ((self.length_secs as f64 * rate as f64).round() as usize).max(1);
        let overlap = ((self.overlap_secs.max(0.0) as f64 * rate as f64).round() as usize).min(len - 1);
        (len, overlap)
    }
}

/// Trapezoidal crossfade weight of `len` frames with linear ramps of `overlap` frames.
fn crossfade_weight(len: usize, overlap: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let edge = i.min(len - 1 - i);
            if edge < overlap {
                (edge + 1) as f32 / (overlap + 1) as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// Streams audio through a separator segment by segment, for one query or several at once
/// (each segment goes through [`Separator::separate_many`] once; every query gets its own
/// overlap-add accumulator).
pub struct ChunkEngine<'a> {
    sep: &'a dyn Separator,
    queries: &'a [Query],
    rate: u32,
    len: usize,
    hop: usize,
    weight: Vec<f32>,
    /// Input not yet consumed; starts at the next segment's first frame.
    pending: Planar,
    /// Per query: weighted estimates over `[next segment start, + len)`.
    acc: Vec<Planar>,
    /// Weight sums over the same frames (alike for every query).
    wsum: Vec<f32>,
    /// Whether any segment has been processed.
    started: bool,
}

impl<'a> ChunkEngine<'a> {
    /// An engine for `channels`-channel audio at `rate` using the separator's own segmentation.
    pub fn new(sep: &'a dyn Separator, queries: &'a [Query], rate: u32, channels: usize) -> Self {
        Self::with_segment(sep, queries, rate, channels, sep.segment())
    }

    pub fn with_segment(
        sep: &'a dyn Separator,
        queries: &'a [Query],
        rate: u32,
        channels: usize,
        segment: Segment,
    ) -> Self {
        let (len, overlap) = segment.frames(rate);
        Self {
            sep,
            queries,
            rate,
            len,
            hop: len - overlap,
            weight: crossfade_weight(len, overlap),
            pending: vec![Vec::new(); channels],
            acc: vec![vec![vec![0.0; len]; channels]; queries.len()],
            wsum: vec![0.0; len],
            started: false,
        }
    }

    /// Frames of latency: output lags input by at most one segment.
    pub fn segment_frames(&self) -> usize {
        self.len
    }

    /// Runs the separator on the first `len` pending frames (fewer at the end of the stream:
    /// the partial segment as it is) and adds the weighted estimates to the accumulators.
    fn run_segment(&mut self) -> Result<()> {
        let n = crate::audio::frames(&self.pending).min(self.len);
        let chunk: Planar = self.pending.iter().map(|c| c[..n].to_vec()).collect();
        let ests = self.sep.separate_many(&chunk, self.rate, self.queries)?;
        anyhow::ensure!(
            ests.len() == self.queries.len(),
            "separator {} returned {} estimates for {} queries",
            self.sep.name(),
            ests.len(),
            self.queries.len()
        );
        for (acc, est) in self.acc.iter_mut().zip(&ests) {
            anyhow::ensure!(
                est.len() == chunk.len() && est.iter().all(|c| c.len() == n),
                "separator {} returned {} channels of {} frames for {} channels of {n}",
                self.sep.name(),
                est.len(),
                est.first().map_or(0, Vec::len),
                chunk.len(),
            );
            for (a, e) in acc.iter_mut().zip(est) {
                for ((a, &x), &w) in a.iter_mut().zip(e).zip(&self.weight) {
                    *a += w * x;
                }
            }
        }
        for (s, &w) in self.wsum.iter_mut().zip(&self.weight[..n]) {
            *s += w;
        }
        self.started = true;
        Ok(())
    }

    /// Removes and returns the first `n` finished output frames of every query, normalised
    /// by weight sum, and shifts the accumulators by `n`.
    fn emit(&mut self, n: usize, out: &mut [Planar]) {
        for (acc, out) in self.acc.iter_mut().zip(out.iter_mut()) {
            for (a, o) in acc.iter_mut().zip(out.iter_mut()) {
                o.extend(a[..n].iter().zip(&self.wsum).map(|(&a, &s)| a / s));
                a.drain(..n);
                a.resize(self.len, 0.0);
            }
        }
        self.wsum.drain(..n);
        self.wsum.resize(self.len, 0.0);
    }

    fn empty_output(&self) -> Vec<Planar> {
        vec![vec![Vec::new(); self.pending.len()]; self.queries.len()]
    }

    /// Feeds input frames; returns, per query, the output frames that are final (possibly
    /// none).
    pub fn push(&mut self, input: &[Vec<f32>]) -> Result<Vec<Planar>> {
        let mut out = self.empty_output();
        if input.iter().all(Vec::is_empty) {
            return Ok(out);
        }
        anyhow::ensure!(
            input.len() == self.pending.len(),
            "engine expects {} channels, got {}",
            self.pending.len(),
            input.len()
        );
        for (p, i) in self.pending.iter_mut().zip(input) {
            p.extend_from_slice(i);
        }
        while crate::audio::frames(&self.pending) >= self.len {
            self.run_segment()?;
            self.emit(self.hop, &mut out);
            for p in &mut self.pending {
                p.drain(..self.hop);
            }
        }
        Ok(out)
    }

    /// Ends the stream and returns, per query, the remaining output frames.
    pub fn finish(&mut self) -> Result<Vec<Planar>> {
        let mut out = self.empty_output();
        let rest = crate::audio::frames(&self.pending);
        if rest == 0 {
            return Ok(out);
        }
        // Frames still covered by the previous segment need no new one.
        let covered = self.started && rest <= self.len - self.hop;
        if !covered {
            self.run_segment()?;
        }
        self.emit(rest, &mut out);
        for p in &mut self.pending {
            p.clear();
        }
        Ok(out)
    }
}

/// Separates a whole in-memory signal through the engine, at the separator's processing rate
/// when it has one (resampled there and back, as the file pipeline does; the result has the
/// input's length).
pub fn separate_all(
    sep: &dyn Separator,
    query: &Query,
    audio: &[Vec<f32>],
    rate: u32,
    segment: Segment,
) -> Result<Planar> {
    let mut all = separate_all_many(sep, std::slice::from_ref(query), audio, rate, segment)?;
    Ok(all.pop().unwrap_or_default())
}

/// [`separate_all`] for several queries in one pass: one estimate per query, in order.
pub fn separate_all_many(
    sep: &dyn Separator,
    queries: &[Query],
    audio: &[Vec<f32>],
    rate: u32,
    segment: Segment,
) -> Result<Vec<Planar>> {
    if let Some(work) = sep.processing_rate().filter(|&r| r != rate) {
        let x = crate::audio::resample::resample(audio, rate, work)?;
        return separate_all_many(sep, queries, &x, work, segment)?
            .iter()
            .map(|y| {
                let mut back = crate::audio::resample::resample(y, work, rate)?;
                for (b, a) in back.iter_mut().zip(audio) {
                    b.resize(a.len(), 0.0);
                }
                Ok(back)
            })
            .collect();
    }
    let mut engine = ChunkEngine::with_segment(sep, queries, rate, audio.len(), segment);
    let mut out = engine.push(audio)?;
    for (o, t) in out.iter_mut().zip(engine.finish()?) {
        for (o, t) in o.iter_mut().zip(t) {
            o.extend(t);
        }
    }
    Ok(out)
}
