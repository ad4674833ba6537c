//! Harmonic/percussive source separation by median filtering (Fitzgerald 2010), the
//! classical baseline separator.
//!
//! Per channel, as `librosa.decompose.hpss(S, kernel_size, power, mask=True, margin=1)`
//! applied to the complex STFT:
//!
//! 1. `X = STFT(x)` (periodic Hann, centred, see [`crate::dsp::stft`]); `S = |X|`.
//! 2. `H = median of S along time` (`harmonic_kernel` frames), `P = median of S along
//!    frequency` (`percussive_kernel` bins). The median of an even-length window is its upper
//!    middle element (rank `k / 2`), and the window for index `i` covers
//!    `i - k/2 ..= i - k/2 + k - 1`, both as `scipy.ndimage.median_filter`. Edges use scipy's
//!    `mode="reflect"` (half-sample symmetric, `d c b a | a b c d | d c b a`), which is what
//!    librosa passes; windows longer than the axis keep reflecting, so one-frame inputs work.
//! 3. Soft masks `M_P = P^p / (H^p + P^p)`, `M_H = 1 - M_P` (`p = power`), evaluated as
//!    librosa's `softmask` (both terms divided by `max(H, P)` first, so large `p` cannot
//!    overflow). Where `max(H, P)` is below `f32::MIN_POSITIVE` (silence) both masks are 0.5.
//!    `p = ∞` gives binary masks (ties 0.5). The masks sum to one by construction, so the
//!    harmonic and percussive estimates add back up to the input (to float rounding).
//! 4. `iSTFT(M · X)`, trimmed to the input length.
//!
//! Channels are processed in parallel (rayon); the two median filters of one channel run
//! concurrently too. Both filters are running medians over a sorted window (`O(k)` per
//! output in the worst case, typically a few moves).
//!
//! ## Sample rate
//! [`Hpss::new`] uses its configuration as given at every rate. [`Hpss::default`] is
//! *rate-adaptive*: its configuration (n_fft 2048, hop 512, kernels 17/17, power 2) is the
//! reference at 44.1 kHz and [`Hpss::config_for_rate`] rescales it so the analysis keeps about
//! the same physical resolution: `n_fft` is the power of two nearest (in log scale) to
//! `2048 · rate / 44100` (≈ 46 ms: 1024 at 22.05 kHz, 2048 at 44.1/48 kHz, 4096 at 96 kHz),
//! `hop = n_fft / 4`, and the kernels are rescaled to the nearest odd length spanning the
//! same duration (≈ 197 ms harmonic) and the same bandwidth (≈ 366 Hz percussive). At
//! 44.1 kHz the adaptive configuration is exactly the reference one.

use rayon::prelude::*;

use super::{Query, Separator};
use crate::Result;
use crate::audio::Planar;
use crate::dsp::{Stft, StftConfig, WindowKind};

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

/// Rate at which an adaptive configuration is taken as given.
const REFERENCE_RATE: f64 = 44_100.0;

/// The part of the signal a query asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Harmonic,
    Percussive,
}

fn part(query: &Query) -> Result<Part> {
    match query.label() {
        Some("percussive" | "drums" | "percussion") => Ok(Part::Percussive),
        Some("harmonic" | "tonal") => Ok(Part::Harmonic),
        Some(other) => anyhow::bail!("hpss cannot separate '{other}'; it answers: percussive (drums), harmonic"),
        None => anyhow::bail!("hpss cannot take an example clip as query; it answers: percussive (drums), harmonic"),
    }
}

pub struct Hpss {
    cfg: HpssConfig,
    /// Whether `cfg` is a 44.1 kHz reference rescaled to the input rate.
    adaptive: bool,
}

impl Hpss {
    /// HPSS with exactly this configuration at every sample rate. Errors on `n_fft == 0`,
    /// `hop` outside `1..=n_fft`, zero kernels, or a power that is not > 0 (∞ is allowed).
    pub fn new(cfg: HpssConfig) -> Result<Self> {
        validate(&cfg)?;
        Ok(Self { cfg, adaptive: false })
    }

    /// HPSS whose configuration is the 44.1 kHz reference, rescaled to each input's rate
    /// (see the module docs). `Hpss::default()` is `rate_adaptive` with the default config.
    pub fn rate_adaptive(reference: HpssConfig) -> Result<Self> {
        validate(&reference)?;
        Ok(Self {
            cfg: reference,
            adaptive: true,
        })
    }

    /// The configuration as given (the 44.1 kHz reference when rate-adaptive).
    pub fn config(&self) -> &HpssConfig {
        &self.cfg
    }

    /// Whether the configuration is rescaled to the input rate.
    pub fn is_rate_adaptive(&self) -> bool {
        self.adaptive
    }

    /// The configuration used at `sample_rate`.
    pub fn config_for_rate(&self, sample_rate: u32) -> HpssConfig {
        if !self.adaptive || sample_rate == 0 {
            return self.cfg.clone();
        }
        let c = &self.cfg;
        let ratio = sample_rate as f64 / REFERENCE_RATE;
        let n_fft = (1usize << ((c.n_fft as f64 * ratio).log2().round().max(4.0) as u32)).max(16);
        let hop = ((n_fft as f64 * c.hop as f64 / c.n_fft as f64).round() as usize).clamp(1, n_fft);
        // Same duration across time: kernel * hop / rate.
        let harm_secs = c.harmonic_kernel as f64 * c.hop as f64 / REFERENCE_RATE;
        let harmonic_kernel = nearest_odd(harm_secs * sample_rate as f64 / hop as f64);
        // Same bandwidth across frequency: kernel * rate / n_fft.
        let perc_hz = c.percussive_kernel as f64 * REFERENCE_RATE / c.n_fft as f64;
        let percussive_kernel = nearest_odd(perc_hz * n_fft as f64 / sample_rate as f64);
        HpssConfig {
            n_fft,
            hop,
            harmonic_kernel,
            percussive_kernel,
            power: c.power,
        }
    }

    /// Both estimates at once from one STFT per channel: `(harmonic, percussive)`, each the
    /// shape of `chunk`; they add up to `chunk` to float rounding.
    pub fn separate_both(&self, chunk: &[Vec<f32>], sample_rate: u32) -> Result<(Planar, Planar)> {
        let (stft, cfg) = self.plan(sample_rate)?;
        let pairs: Vec<(Vec<f32>, Vec<f32>)> = chunk
            .par_iter()
            .map(|x| {
                let (spec, mask) = percussive_mask(&stft, &cfg, x);
                let p = apply(&stft, &spec, &mask, Part::Percussive, x.len());
                let h = apply(&stft, &spec, &mask, Part::Harmonic, x.len());
                (h, p)
            })
            .collect();
        Ok(pairs.into_iter().unzip())
    }

    fn plan(&self, sample_rate: u32) -> Result<(Stft, HpssConfig)> {
        anyhow::ensure!(!self.adaptive || sample_rate > 0, "hpss needs a positive sample rate");
        let cfg = self.config_for_rate(sample_rate);
        let stft = Stft::new(StftConfig {
            n_fft: cfg.n_fft,
            hop: cfg.hop,
            window: WindowKind::Hann,
            center: true,
        })?;
        Ok((stft, cfg))
    }
}

fn validate(cfg: &HpssConfig) -> Result<()> {
    anyhow::ensure!(cfg.n_fft >= 1, "hpss n_fft must be at least 1");
    anyhow::ensure!(
        cfg.hop >= 1 && cfg.hop <= cfg.n_fft,
        "hpss hop must be between 1 and n_fft ({}), got {}",
        cfg.n_fft,
        cfg.hop
    );
    anyhow::ensure!(
        cfg.harmonic_kernel >= 1 && cfg.percussive_kernel >= 1,
        "hpss median kernels must be at least 1"
    );
    anyhow::ensure!(cfg.power > 0.0, "hpss mask power must be positive, got {}", cfg.power);
    Ok(())
}

/// The odd integer nearest to `x`, at least 1.
fn nearest_odd(x: f64) -> usize {
    let k = 2.0 * ((x - 1.0) / 2.0).round() + 1.0;
    if k.is_finite() && k >= 1.0 { k as usize } else { 1 }
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
            adaptive: true,
        }
    }
}

impl Separator for Hpss {
    fn name(&self) -> &str {
        "hpss"
    }

    fn check_query(&self, query: &Query) -> Result<()> {
        part(query).map(|_| ())
    }

    fn labels(&self) -> Vec<String> {
        vec!["percussive".into(), "harmonic".into()]
    }

    fn separate(&self, chunk: &[Vec<f32>], sample_rate: u32, query: &Query) -> Result<Vec<Vec<f32>>> {
        let mut all = self.separate_many(chunk, sample_rate, std::slice::from_ref(query))?;
        Ok(all.pop().unwrap_or_default())
    }

    /// One STFT and one pair of median filters per channel serve every query.
    fn separate_many(&self, chunk: &[Vec<f32>], sample_rate: u32, queries: &[Query]) -> Result<Vec<Planar>> {
        let want = queries.iter().map(part).collect::<Result<Vec<_>>>()?;
        let (stft, cfg) = self.plan(sample_rate)?;
        let per_channel: Vec<Vec<Vec<f32>>> = chunk
            .par_iter()
            .map(|x| {
                let (spec, mask) = percussive_mask(&stft, &cfg, x);
                want.iter().map(|&w| apply(&stft, &spec, &mask, w, x.len())).collect()
            })
            .collect();
        Ok(super::per_query(per_channel, queries.len()))
    }
}

/// STFT of `x` and the percussive soft mask, frame-major like the spectrogram.
fn percussive_mask(stft: &Stft, cfg: &HpssConfig, x: &[f32]) -> (crate::dsp::Spectrogram, Vec<f32>) {
    let spec = stft.forward(x);
    let (nf, nb) = (spec.n_frames, spec.n_bins);
    let mag: Vec<f32> = spec.data.iter().map(|c| c.norm()).collect();
    let (harm, perc) = rayon::join(
        || median_along_time(&mag, nf, nb, cfg.harmonic_kernel),
        || median_along_freq(&mag, nf, nb, cfg.percussive_kernel),
    );
    let p = cfg.power;
    let mask = perc.iter().zip(&harm).map(|(&pv, &hv)| soft_mask(pv, hv, p)).collect();
    (spec, mask)
}

/// `x^p / (x^p + r^p)`, as librosa's `softmask` (split 0.5 where both vanish).
#[inline]
fn soft_mask(x: f32, r: f32, p: f32) -> f32 {
    let z = x.max(r);
    if z.is_nan() {
        return f32::NAN;
    }
    if z < f32::MIN_POSITIVE {
        // Silence in both: split evenly.
        return 0.5;
    }
    if p.is_infinite() {
        return if x > r {
            1.0
        } else if x < r {
            0.0
        } else {
            0.5
        };
    }
    let (a, b) = (x / z, r / z);
    let (a, b) = if p == 2.0 {
        (a * a, b * b)
    } else if p == 1.0 {
        (a, b)
    } else {
        (a.powf(p), b.powf(p))
    };
    a / (a + b)
}

/// `iSTFT(M · X)` with `M = mask` for the percussive part and `1 - mask` for the harmonic.
fn apply(stft: &Stft, spec: &crate::dsp::Spectrogram, mask: &[f32], want: Part, len: usize) -> Vec<f32> {
    let mut out = spec.clone();
    match want {
        Part::Percussive => out.data.iter_mut().zip(mask).for_each(|(c, &m)| *c *= m),
        Part::Harmonic => out.data.iter_mut().zip(mask).for_each(|(c, &m)| *c *= 1.0 - m),
    }
    stft.inverse(&out, len)
}

/// Index into an axis of `n >= 1` samples under scipy's `mode="reflect"` (half-sample
/// symmetric, repeated for indices far outside).
fn sym_index(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period);
    if m >= n as isize {
        (period - 1 - m) as usize
    } else {
        m as usize
    }
}

/// For a median of length `k` over an axis of `n`: the axis index of every position the
/// windows visit; the window of output `i` is `ext[i..i + k]`.
fn extended_indices(n: usize, k: usize) -> Vec<usize> {
    (0..n + k - 1)
        .map(|q| sym_index(q as isize - (k / 2) as isize, n))
        .collect()
}

/// Replaces one occurrence of `old` by `new` in the sorted slice `buf`, keeping it sorted
/// (total order on f32, so NaNs cannot break it).
#[inline]
fn replace_sorted(buf: &mut [f32], old: f32, new: f32) {
    use std::cmp::Ordering::{Greater, Less};
    let mut i = buf.partition_point(|v| v.total_cmp(&old) == Less);
    debug_assert!(i < buf.len() && buf[i].to_bits() == old.to_bits());
    if new.total_cmp(&old) == Greater {
        while i + 1 < buf.len() && buf[i + 1].total_cmp(&new) == Less {
            buf[i] = buf[i + 1];
            i += 1;
        }
    } else {
        while i > 0 && buf[i - 1].total_cmp(&new) == Greater {
            buf[i] = buf[i - 1];
            i -= 1;
        }
    }
    buf[i] = new;
}

/// Median filter of a frame-major `nf × nb` array along frequency (within each frame).
fn median_along_freq(mag: &[f32], nf: usize, nb: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; nf * nb];
    if nf == 0 || nb == 0 {
        return out;
    }
    let ext = extended_indices(nb, k);
    let mut win = vec![0.0f32; k];
    for (row, o) in mag.chunks_exact(nb).zip(out.chunks_exact_mut(nb)) {
        for (w, &e) in win.iter_mut().zip(&ext) {
            *w = row[e];
        }
        win.sort_unstable_by(f32::total_cmp);
        o[0] = win[k / 2];
        for b in 1..nb {
            replace_sorted(&mut win, row[ext[b - 1]], row[ext[b + k - 1]]);
            o[b] = win[k / 2];
        }
    }
    out
}

/// Median filter of a frame-major `nf × nb` array along time (per bin). Keeps one sorted
/// window per bin and walks the frames, so memory access stays row-contiguous.
fn median_along_time(mag: &[f32], nf: usize, nb: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; nf * nb];
    if nf == 0 || nb == 0 {
        return out;
    }
    let ext = extended_indices(nf, k);
    let mut wins = vec![0.0f32; nb * k];
    for (b, win) in wins.chunks_exact_mut(k).enumerate() {
        for (w, &e) in win.iter_mut().zip(&ext) {
            *w = mag[e * nb + b];
        }
        win.sort_unstable_by(f32::total_cmp);
    }
    for t in 0..nf {
        if t > 0 {
            let old = &mag[ext[t - 1] * nb..][..nb];
            let new = &mag[ext[t + k - 1] * nb..][..nb];
            for ((win, &o), &n) in wins.chunks_exact_mut(k).zip(old).zip(new) {
                replace_sorted(win, o, n);
            }
        }
        for (o, win) in out[t * nb..(t + 1) * nb].iter_mut().zip(wins.chunks_exact(k)) {
            *o = win[k / 2];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct median filter (scipy semantics) on a frame-major array.
    fn naive(mag: &[f32], nf: usize, nb: usize, k: usize, along_time: bool) -> Vec<f32> {
        let mut out = vec![0.0; nf * nb];
        for t in 0..nf {
            for b in 0..nb {
                let mut w: Vec<f32> = (0..k)
                    .map(|j| {
                        let off = j as isize - (k / 2) as isize;
                        if along_time {
                            mag[sym_index(t as isize + off, nf) * nb + b]
                        } else {
                            mag[t * nb + sym_index(b as isize + off, nb)]
                        }
                    })
                    .collect();
                w.sort_by(f32::total_cmp);
                out[t * nb + b] = w[k / 2];
            }
        }
        out
    }

    fn pseudo(n: usize) -> Vec<f32> {
        let mut s = 0x1234_5678u32;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Some exact repeats to exercise ties.
                if i % 7 == 0 {
                    0.25
                } else {
                    (s >> 8) as f32 / (1u32 << 24) as f32
                }
            })
            .collect()
    }

    #[test]
    fn sym_index_is_scipy_reflect() {
        // scipy reflect of [a b c]: ... c b a | a b c | c b a | a b c ...
        let got: Vec<usize> = (-6..9).map(|i| sym_index(i, 3)).collect();
        assert_eq!(got, vec![0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2]);
        assert!((-5..5).all(|i| sym_index(i, 1) == 0));
    }

    #[test]
    fn running_medians_match_naive() {
        for &(nf, nb) in &[(1usize, 1usize), (1, 9), (3, 5), (20, 33), (40, 7)] {
            let mag = pseudo(nf * nb);
            for k in [1usize, 2, 3, 4, 5, 17, 31] {
                assert_eq!(
                    median_along_time(&mag, nf, nb, k),
                    naive(&mag, nf, nb, k, true),
                    "time {nf}x{nb} k{k}"
                );
                assert_eq!(
                    median_along_freq(&mag, nf, nb, k),
                    naive(&mag, nf, nb, k, false),
                    "freq {nf}x{nb} k{k}"
                );
            }
        }
    }

    #[test]
    fn masks_sum_to_one_and_split_silence() {
        for (x, r) in [
            (0.0f32, 0.0f32),
            (1.0, 0.0),
            (0.0, 1.0),
            (3.0, 4.0),
            (1e-30, 1e30),
            (1e30, 1e30),
        ] {
            for p in [0.5f32, 1.0, 2.0, 7.0, f32::INFINITY] {
                let m = soft_mask(x, r, p);
                assert!((0.0..=1.0).contains(&m), "{x} {r} {p}: {m}");
                assert!((m + soft_mask(r, x, p) - 1.0).abs() <= 1e-6, "{x} {r} {p}");
            }
        }
        assert_eq!(soft_mask(0.0, 0.0, 2.0), 0.5);
        assert!((soft_mask(3.0, 4.0, 2.0) - 9.0 / 25.0).abs() < 1e-7);
    }

    #[test]
    fn adaptive_config() {
        let h = Hpss::default();
        assert_eq!(&h.config_for_rate(44_100), h.config());
        let c = h.config_for_rate(22_050);
        assert_eq!(
            (c.n_fft, c.hop, c.harmonic_kernel, c.percussive_kernel),
            (1024, 256, 17, 17)
        );
        let c = h.config_for_rate(48_000);
        assert_eq!((c.n_fft, c.hop), (2048, 512));
        assert_eq!(c.harmonic_kernel % 2, 1);
        let c = h.config_for_rate(96_000);
        assert_eq!(c.n_fft, 4096);
        let c = h.config_for_rate(8_000);
        assert_eq!(c.n_fft, 512);
        assert!(c.harmonic_kernel >= 1 && c.percussive_kernel >= 1);
        let fixed = Hpss::new(h.config().clone()).unwrap();
        assert_eq!(fixed.config_for_rate(22_050).n_fft, 2048);
    }
}
