//! The chunked engine reproduces what the separator computes, for any length and chunking.

use splitflow::Result;
use std::sync::atomic::{AtomicUsize, Ordering};

use splitflow::audio::Planar;
use splitflow::separate::{ChunkEngine, Identity, Query, Segment, Separator, separate_all, separate_all_many};

/// Deterministic pseudo-random audio (xorshift), so the tests need no fixtures.
fn noise(channels: usize, frames: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..channels)
        .map(|_| {
            (0..frames)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect()
        })
        .collect()
}

fn max_err(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "channel count");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "frame count");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// A segment of 1000 frames with 150 overlap at rate 1000 Hz.
const SEG: Segment = Segment {
    length_secs: 1.0,
    overlap_secs: 0.15,
};
const RATE: u32 = 1000;

#[test]
fn identity_reproduces_input_for_all_shapes() {
    let q = Query::from_label("anything");
    // Shorter than a segment, exact multiples of hop / length, odd lengths, one frame.
    for &frames in &[
        1usize, 2, 7, 149, 150, 151, 999, 1000, 1001, 1700, 1850, 2551, 3400, 10_007,
    ] {
        for channels in [1usize, 2, 8] {
            let x = noise(channels, frames, frames as u64 + channels as u64);
            let y = separate_all(&Identity::default(), &q, &x, RATE, SEG).unwrap();
            let err = max_err(&x, &y);
            assert!(err <= 1e-6, "frames {frames} channels {channels}: error {err}");
        }
    }
}

#[test]
fn streaming_in_random_pieces_equals_one_shot() {
    let q = Query::from_label("x");
    let x = noise(2, 7_777, 3);
    let whole = separate_all(&Gain(0.5), &q, &x, RATE, SEG).unwrap();
    let qs = [q];
    let mut engine = ChunkEngine::with_segment(&Gain(0.5), &qs, RATE, 2, SEG);
    let mut out = vec![Vec::new(); 2];
    let mut pos = 0;
    let mut step = 1;
    while pos < 7_777 {
        let end = (pos + step).min(7_777);
        let piece: Vec<Vec<f32>> = x.iter().map(|c| c[pos..end].to_vec()).collect();
        for (o, p) in out.iter_mut().zip(engine.push(&piece).unwrap().remove(0)) {
            o.extend(p);
        }
        pos = end;
        step = step * 3 % 1_237 + 1;
    }
    for (o, p) in out.iter_mut().zip(engine.finish().unwrap().remove(0)) {
        o.extend(p);
    }
    assert_eq!(max_err(&whole, &out), 0.0);
    let half: Vec<Vec<f32>> = x.iter().map(|c| c.iter().map(|v| v * 0.5).collect()).collect();
    assert!(max_err(&half, &out) <= 1e-6);
}

#[test]
fn output_lags_input_by_at_most_one_segment() {
    let q = Query::from_label("x");
    let id = Identity::default();
    let qs = [q];
    let mut engine = ChunkEngine::with_segment(&id, &qs, RATE, 1, SEG);
    let mut emitted = 0;
    for i in 1..=40usize {
        let out = engine.push(&noise(1, 250, i as u64)).unwrap();
        emitted += out[0][0].len();
        assert!(
            i * 250 - emitted <= engine.segment_frames(),
            "lag too large at block {i}"
        );
    }
}

/// A separator whose output depends on the segment it sees (each segment's mean is removed),
/// so overlap-add must crossfade: the seam may not jump.
struct RemoveMean;
impl Separator for RemoveMean {
    fn name(&self) -> &str {
        "remove-mean"
    }
    fn check_query(&self, _: &Query) -> Result<()> {
        Ok(())
    }
    fn separate(&self, chunk: &[Vec<f32>], _: u32, _: &Query) -> Result<Vec<Vec<f32>>> {
        Ok(chunk
            .iter()
            .map(|c| {
                let m = c.iter().sum::<f32>() / c.len() as f32;
                c.iter().map(|v| v - m).collect()
            })
            .collect())
    }
}

#[test]
fn segments_crossfade_without_jumps() {
    // A ramp: every segment has a different mean, so per-segment outputs disagree in overlaps.
    let x = vec![(0..5_000).map(|i| i as f32 / 5_000.0).collect::<Vec<f32>>()];
    let y = separate_all(&RemoveMean, &Query::from_label("x"), &x, RATE, SEG).unwrap();
    // Without a crossfade the output would step by about hop/5000 = 0.17 at each seam; with the
    // linear crossfade the largest sample-to-sample change stays near the ramp's own slope plus
    // a fraction of that step spread over the overlap.
    let max_step = y[0].windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    assert!(max_step < 0.01, "largest jump {max_step}");
}

#[test]
fn rejects_wrong_channel_count() {
    let q = Query::from_label("x");
    let id = Identity::default();
    let qs = [q];
    let mut engine = ChunkEngine::with_segment(&id, &qs, RATE, 2, SEG);
    let err = engine.push(&noise(1, 10, 1)).unwrap_err();
    assert!(err.to_string().contains("expects 2 channels"), "{err}");
}

/// Multiplies by a constant: a linear, segment-independent separator.
struct Gain(f32);
impl Separator for Gain {
    fn name(&self) -> &str {
        "gain"
    }
    fn check_query(&self, _: &Query) -> Result<()> {
        Ok(())
    }
    fn separate(&self, chunk: &[Vec<f32>], _: u32, _: &Query) -> Result<Vec<Vec<f32>>> {
        Ok(chunk.iter().map(|c| c.iter().map(|v| v * self.0).collect()).collect())
    }
}

/// Scales by the number its query names and counts the segments it is asked about, so a test
/// can tell one pass for all queries from one pass per query.
#[derive(Default)]
struct LabelGain {
    calls: AtomicUsize,
}
impl Separator for LabelGain {
    fn name(&self) -> &str {
        "label-gain"
    }
    fn check_query(&self, _: &Query) -> Result<()> {
        Ok(())
    }
    fn separate(&self, chunk: &[Vec<f32>], _: u32, q: &Query) -> Result<Vec<Vec<f32>>> {
        let g: f32 = q.label().unwrap_or("1").parse()?;
        Ok(chunk.iter().map(|c| c.iter().map(|v| v * g).collect()).collect())
    }
    fn separate_many(&self, chunk: &[Vec<f32>], rate: u32, queries: &[Query]) -> Result<Vec<Planar>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        queries.iter().map(|q| self.separate(chunk, rate, q)).collect()
    }
}

/// [`LabelGain`] at a processing rate of 800 Hz: the file pipeline resamples around it.
#[derive(Default)]
struct At800(LabelGain);
impl Separator for At800 {
    fn name(&self) -> &str {
        "at-800"
    }
    fn processing_rate(&self) -> Option<u32> {
        Some(800)
    }
    fn check_query(&self, _: &Query) -> Result<()> {
        Ok(())
    }
    fn separate(&self, c: &[Vec<f32>], r: u32, q: &Query) -> Result<Vec<Vec<f32>>> {
        self.0.separate(c, r, q)
    }
    fn separate_many(&self, c: &[Vec<f32>], r: u32, queries: &[Query]) -> Result<Vec<Planar>> {
        self.0.separate_many(c, r, queries)
    }
}

#[test]
fn several_queries_in_one_pass_equal_one_at_a_time() {
    let x = noise(2, 4_321, 9);
    let queries: Vec<Query> = ["0.25", "2", "-1"].iter().map(|l| Query::from_label(l)).collect();
    let (plain, resampled) = (LabelGain::default(), At800::default());
    let many = separate_all_many(&plain, &queries, &x, RATE, SEG).unwrap();
    // 4,321 frames in segments of 1,000 with hop 850: 5 segments, each asked once for all
    // three queries.
    assert_eq!(plain.calls.load(Ordering::Relaxed), 5);
    let many_resampled = separate_all_many(&resampled, &queries, &x, RATE, SEG).unwrap();
    for (i, q) in queries.iter().enumerate() {
        assert_eq!(max_err(&separate_all(&plain, q, &x, RATE, SEG).unwrap(), &many[i]), 0.0);
        let one = separate_all(&resampled, q, &x, RATE, SEG).unwrap();
        assert_eq!(
            max_err(&one, &many_resampled[i]),
            0.0,
            "query {q:?} through the resamplers"
        );
        let g: f32 = q.label().unwrap().parse().unwrap();
        let want: Vec<Vec<f32>> = x.iter().map(|c| c.iter().map(|v| v * g).collect()).collect();
        assert!(max_err(&want, &many[i]) <= 1e-5, "query {q:?}");
    }
}

#[test]
fn partial_segments_reach_the_separator_unpadded() {
    // A constant minus the mean of what the separator sees is 0 only if it sees no zero
    // padding: a file shorter than one segment, and the last partial segment of a longer one.
    let (len, _) = SEG.frames(RATE);
    for frames in [len / 3, len + len / 2, 3 * len + 7] {
        let x = vec![vec![0.5f32; frames]; 2];
        let y = separate_all(&RemoveMean, &Query::from_label("x"), &x, RATE, SEG).unwrap();
        assert_eq!(y[0].len(), frames);
        let worst = y.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        assert!(worst < 1e-5, "{frames} frames: largest output {worst}");
    }
}

/// Records the length of every block `mask_spread` is asked for, one mask frame per block.
struct BlockLengths(std::sync::Mutex<Vec<usize>>);
impl Separator for BlockLengths {
    fn name(&self) -> &str {
        "block-lengths"
    }
    fn check_query(&self, _: &Query) -> Result<()> {
        Ok(())
    }
    fn separate(&self, chunk: &[Vec<f32>], _: u32, _: &Query) -> Result<Vec<Vec<f32>>> {
        Ok(chunk.to_vec())
    }
    fn mask_spread(&self, chunk: &[Vec<f32>], _: u32, _: &Query) -> Option<Result<splitflow::separate::MaskSpread>> {
        self.0.lock().unwrap().push(chunk[0].len());
        Some(Ok(splitflow::separate::MaskSpread {
            mean: vec![0.5],
            spread: vec![0.1],
            n_bands: 1,
            n_frames: 1,
        }))
    }
}

#[test]
fn uncertainty_blocks_follow_the_segment_length() {
    use splitflow::audio::Damaged;
    use splitflow::separate::file::write_uncertainty;
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("in.wav");
    let rate = 8_000u32;
    // 2.5 s: two whole 1 s segments and a half one; one 10 s block by default.
    splitflow::audio::encode::write_mono16(&wav, &noise(1, 20_000, 3)[0], rate).unwrap();
    let q = Query::from_label("x");
    let one_s = Segment {
        length_secs: 1.0,
        overlap_secs: 0.25,
    };
    for (segment, want) in [(Some(one_s), vec![8_000, 8_000, 4_000]), (None, vec![20_000])] {
        let sep = BlockLengths(Default::default());
        let png = tmp.path().join("u.png");
        assert!(write_uncertainty(&sep, &q, &wav, &png, Damaged::Fail, segment).unwrap());
        assert_eq!(*sep.0.lock().unwrap(), want, "blocks for {segment:?}");
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
