//! Turning one decoded file into clips: mono mixdown, silence trimming, cutting.

/// Mono mixdown: the mean of the channels. The corpus is mono because the separator trains on
/// mono sources (mixtures are made by summing clips).
pub fn mono(planar: &[Vec<f32>]) -> Vec<f32> {
    match planar {
        [] => Vec::new(),
        [one] => one.clone(),
        chans => {
            let n = chans.iter().map(Vec::len).min().unwrap_or(0);
            let k = 1.0 / chans.len() as f32;
            (0..n).map(|i| chans.iter().map(|c| c[i]).sum::<f32>() * k).collect()
        }
    }
}

/// Peak absolute value.
pub fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The range of `x` left after trimming leading and trailing samples below `threshold_db`
/// relative to the peak (with `margin` samples kept on each side); `None` when all of it is
/// silent.
pub fn trim_range(x: &[f32], threshold_db: f32, margin: usize) -> Option<std::ops::Range<usize>> {
    let p = peak(x);
    if p <= 1e-6 {
        return None;
    }
    let thr = p * 10f32.powf(threshold_db / 20.0);
    let first = x.iter().position(|v| v.abs() >= thr)?;
    let last = x.iter().rposition(|v| v.abs() >= thr)?;
    Some(first.saturating_sub(margin)..(last + 1 + margin).min(x.len()))
}

/// Cuts `x` into consecutive clips of at most `clip_len` samples; a shorter remainder is kept
/// only when it has at least `min_len` samples (so is a file shorter than `clip_len`).
pub fn cut(x: &[f32], clip_len: usize, min_len: usize) -> Vec<&[f32]> {
    let clip_len = clip_len.max(1);
    x.chunks(clip_len).filter(|c| c.len() >= min_len.max(1)).collect()
}

/// The active stretches of `x`: frames of `frame` samples whose peak reaches `threshold` (an
/// absolute level), joined across gaps shorter than `min_gap` frames, each range widened by
/// `margin` samples on both sides. Rendered stems use it to drop the bars an instrument rests.
pub fn active_segments(
    x: &[f32],
    threshold: f32,
    frame: usize,
    min_gap: usize,
    margin: usize,
) -> Vec<std::ops::Range<usize>> {
    let frame = frame.max(1);
    let active: Vec<bool> = x.chunks(frame).map(|c| peak(c) >= threshold).collect();
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    let mut cur: Option<(usize, usize)> = None; // first and last active frame
    for (i, &a) in active.iter().enumerate() {
        if !a {
            continue;
        }
        cur = match cur {
            Some((s, e)) if i - e <= min_gap.max(1) => Some((s, i)),
            Some((s, e)) => {
                out.push(s * frame..(e + 1) * frame);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((s, e)) = cur {
        out.push(s * frame..(e + 1) * frame);
    }
    out.into_iter()
        .map(|r| r.start.saturating_sub(margin)..(r.end + margin).min(x.len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_cuts() {
        let mut x = vec![0.0f32; 100];
        x.extend(std::iter::repeat_n(0.5, 50));
        x.extend(vec![0.0001; 100]);
        let r = trim_range(&x, -50.0, 0).unwrap();
        assert_eq!(r, 100..150);
        assert_eq!(trim_range(&x, -50.0, 10).unwrap(), 90..160);
        assert!(trim_range(&[0.0; 10], -50.0, 0).is_none());
        let c = cut(&[1.0; 25], 10, 6);
        assert_eq!(c.len(), 2);
        let c = cut(&[1.0; 27], 10, 6);
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![10, 10, 7]);
        assert_eq!(mono(&[vec![1.0, 0.0], vec![0.0, 1.0]]), vec![0.5, 0.5]);
    }

    #[test]
    fn active_segments_bridge_short_gaps_only() {
        // Sound in frames 0-1, a 1-frame gap, frames 3-4, a 4-frame gap, frame 9.
        let mut x = vec![0.0f32; 100];
        for f in [0, 1, 3, 4, 9] {
            x[f * 10 + 5] = 1.0;
        }
        assert_eq!(active_segments(&x, 0.5, 10, 2, 0), vec![0..50, 90..100]);
        assert_eq!(active_segments(&x, 0.5, 10, 5, 0), vec![0..100]);
        assert_eq!(active_segments(&x, 0.5, 10, 2, 3), vec![0..53, 87..100]);
        assert!(active_segments(&x, 2.0, 10, 2, 0).is_empty());
    }
}
