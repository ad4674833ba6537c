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
}
