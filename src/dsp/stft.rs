//! STFT / inverse STFT on realfft, following `torch.stft` / `torch.istft` conventions.
//!
//! Conventions (all shared with torch unless noted):
//!
//! * The window has length `n_fft` and is *periodic* (`torch.hann_window(n, periodic=True)`):
//!   Hann `w[n] = 0.5 - 0.5 cos(2πn/N)`, Hamming `0.54 - 0.46 cos(2πn/N)`, SqrtHann the square
//!   root of Hann, Rectangular all ones.
//! * The forward transform is unnormalised (`normalized=False`, `onesided=True`):
//!   `X[t, k] = Σ_n w[n] x_pad[t*hop + n] e^{-2πi kn/N}`, with `n_bins = n_fft/2 + 1`.
//! * `center: true` pads `n_fft / 2` samples on both sides by reflection (no edge repeat,
//!   `torch`'s `pad_mode="reflect"`), so frame `t` is centred on sample `t * hop`. The frame
//!   count is `1 + (len + 2*(n_fft/2) - n_fft) / hop`, i.e. `1 + len / hop` for even `n_fft`
//!   (`1 + (len - 1) / hop` for odd `n_fft`, as torch).
//! * **Short-signal fallback (not torch):** torch refuses reflect padding when the pad is not
//!   shorter than the signal. Here reflection is *repeated* (the signal is extended as the
//!   periodic sequence `x0 x1 .. x(L-1) x(L-2) .. x1 x0 x1 ..` of period `2(L-1)`, which is
//!   what `numpy.pad(mode="reflect")` does for long pads); a one-sample signal is extended as
//!   a constant. So any length `>= 1` works and gives at least one frame; for signals longer
//!   than the pad this is exactly torch's reflect padding. Length 0 gives 0 frames.
//! * `center: false`: `1 + (len - n_fft) / hop` frames; a signal with `0 < len < n_fft` is
//!   zero-padded at the end to one frame (torch errors). Samples after the last frame are
//!   not covered and come back as zeros from the inverse.
//! * The inverse is `torch.istft`: each frame is inverse-FFT'd (scaled by `1/n_fft`),
//!   multiplied by the window, overlap-added, and divided by the overlap-added squared
//!   window. Where that envelope is below `1e-11` (e.g. the very first samples of a
//!   non-centred Hann STFT) the output is 0 instead of an error. The result is trimmed (or
//!   zero-padded) to the requested length. Imaginary parts of the DC and Nyquist bins are
//!   ignored, as by `irfft`.
//!
//! With `center: true` and `hop <= n_fft / 2` every window used here satisfies the NOLA
//! condition, so `inverse(forward(x), x.len()) == x` up to float rounding.

use std::sync::Arc;

use realfft::num_complex::{Complex32, Complex64};
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::Result;

/// Analysis window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Periodic Hann (torch.hann_window default).
    Hann,
    /// Square root of periodic Hann.
    SqrtHann,
    /// Periodic Hamming.
    Hamming,
    /// All ones.
    Rectangular,
}

impl WindowKind {
    /// The periodic window of length `n`, as f32.
    pub fn build(self, n: usize) -> Vec<f32> {
        self.build_f64(n).into_iter().map(|w| w as f32).collect()
    }

    /// The periodic window of length `n`, as f64.
    pub fn build_f64(self, n: usize) -> Vec<f64> {
        let cos = |i: usize| (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
        (0..n)
            .map(|i| match self {
                WindowKind::Hann => 0.5 - 0.5 * cos(i),
                WindowKind::SqrtHann => (0.5 - 0.5 * cos(i)).max(0.0).sqrt(),
                WindowKind::Hamming => 0.54 - 0.46 * cos(i),
                WindowKind::Rectangular => 1.0,
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StftConfig {
    /// FFT size and window length (>= 1).
    pub n_fft: usize,
    /// Frame advance in samples (1 ..= n_fft).
    pub hop: usize,
    pub window: WindowKind,
    /// Reflect-pad by n_fft / 2 on both sides so frame t is centred on sample t * hop.
    pub center: bool,
}

impl StftConfig {
    /// Centred frames with a periodic Hann window (torch.stft's usual setting).
    pub fn hann(n_fft: usize, hop: usize) -> Self {
        StftConfig {
            n_fft,
            hop,
            window: WindowKind::Hann,
            center: true,
        }
    }
}

/// A complex spectrogram, frame-major: `data[frame * n_bins + bin]`, `n_bins = n_fft/2 + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrogram {
    pub n_frames: usize,
    pub n_bins: usize,
    pub data: Vec<Complex32>,
}

impl Spectrogram {
    /// The bins of frame `t`.
    pub fn frame(&self, t: usize) -> &[Complex32] {
        &self.data[t * self.n_bins..(t + 1) * self.n_bins]
    }

    /// The bins of frame `t`, mutably.
    pub fn frame_mut(&mut self, t: usize) -> &mut [Complex32] {
        &mut self.data[t * self.n_bins..(t + 1) * self.n_bins]
    }
}

/// Planned forward and inverse transforms for one configuration (reusable, `Send + Sync`:
/// plans are shared, scratch buffers are allocated per call).
///
/// Input, output and spectrogram are f32; the FFTs and the overlap-add run in f64, so a
/// round trip is exact to about one f32 rounding (~1e-7 of the peak) for any size.
pub struct Stft {
    cfg: StftConfig,
    window: Vec<f32>,
    window64: Vec<f64>,
    fwd: Arc<dyn RealToComplex<f64>>,
    inv: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Index of the repeated-reflection extension of a signal of `len >= 1` samples at `i`
/// (`i` may be negative or past the end). See the module docs.
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    if m >= len as isize {
        (period - m) as usize
    } else {
        m as usize
    }
}

impl Stft {
    /// Plans the transforms. Errors if `n_fft == 0`, `hop == 0` or `hop > n_fft`.
    pub fn new(cfg: StftConfig) -> Result<Self> {
        anyhow::ensure!(cfg.n_fft >= 1, "STFT size must be at least 1");
        anyhow::ensure!(
            cfg.hop >= 1 && cfg.hop <= cfg.n_fft,
            "STFT hop must be between 1 and n_fft ({}), got {}",
            cfg.n_fft,
            cfg.hop
        );
        let mut planner = RealFftPlanner::<f64>::new();
        let window64 = cfg.window.build_f64(cfg.n_fft);
        Ok(Self {
            cfg,
            window: window64.iter().map(|&w| w as f32).collect(),
            window64,
            fwd: planner.plan_fft_forward(cfg.n_fft),
            inv: planner.plan_fft_inverse(cfg.n_fft),
        })
    }

    pub fn config(&self) -> &StftConfig {
        &self.cfg
    }

    /// Number of frequency bins, `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.cfg.n_fft / 2 + 1
    }

    /// The analysis/synthesis window.
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Padding added on each side before framing (`n_fft / 2` when centred, else 0).
    fn pad(&self) -> usize {
        if self.cfg.center { self.cfg.n_fft / 2 } else { 0 }
    }

    /// Number of frames for a signal of `len` samples (see the module docs).
    pub fn n_frames(&self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        let padded = len + 2 * self.pad();
        if padded < self.cfg.n_fft {
            1
        } else {
            1 + (padded - self.cfg.n_fft) / self.cfg.hop
        }
    }

    /// The signal as framed: centred signals reflect-padded (repeated reflection for short
    /// ones), everything zero-padded at the end to cover the last frame.
    fn padded(&self, x: &[f32], n_frames: usize) -> Vec<f32> {
        let pad = self.pad();
        let total = (n_frames - 1) * self.cfg.hop + self.cfg.n_fft;
        let mut out = Vec::with_capacity(total);
        if pad > 0 {
            let len = x.len();
            out.extend((0..pad).map(|j| x[reflect_index(j as isize - pad as isize, len)]));
            out.extend_from_slice(x);
            out.extend((0..pad).map(|j| x[reflect_index((len + j) as isize, len)]));
        } else {
            out.extend_from_slice(x);
        }
        out.resize(total, 0.0);
        out
    }

    /// Forward transform (see the module docs for conventions).
    pub fn forward(&self, x: &[f32]) -> Spectrogram {
        let mut spec = Spectrogram {
            n_frames: 0,
            n_bins: self.n_bins(),
            data: Vec::new(),
        };
        self.forward_into(x, &mut spec);
        spec
    }

    /// Forward transform into `spec`, reusing its allocation.
    pub fn forward_into(&self, x: &[f32], spec: &mut Spectrogram) {
        let n_fft = self.cfg.n_fft;
        let n_bins = self.n_bins();
        let n_frames = self.n_frames(x.len());
        spec.n_frames = n_frames;
        spec.n_bins = n_bins;
        spec.data.clear();
        spec.data.resize(n_frames * n_bins, Complex32::new(0.0, 0.0));
        if n_frames == 0 {
            return;
        }
        let padded = self.padded(x, n_frames);
        let mut frame = vec![0.0f64; n_fft];
        let mut bins = self.fwd.make_output_vec();
        let mut scratch = self.fwd.make_scratch_vec();
        for (t, out) in spec.data.chunks_exact_mut(n_bins).enumerate() {
            let src = &padded[t * self.cfg.hop..t * self.cfg.hop + n_fft];
            for ((f, &s), &w) in frame.iter_mut().zip(src).zip(&self.window64) {
                *f = s as f64 * w;
            }
            // Lengths match the plan by construction, so this cannot fail.
            self.fwd
                .process_with_scratch(&mut frame, &mut bins, &mut scratch)
                .expect("realfft forward: buffer lengths match the plan");
            for (o, b) in out.iter_mut().zip(&bins) {
                *o = Complex32::new(b.re as f32, b.im as f32);
            }
        }
    }

    /// Inverse transform, trimmed/padded to `len` samples.
    ///
    /// # Panics
    /// If `spec.n_bins != n_fft / 2 + 1` or `spec.data.len() != n_frames * n_bins`.
    pub fn inverse(&self, spec: &Spectrogram, len: usize) -> Vec<f32> {
        let mut out = Vec::new();
        self.inverse_into(spec, len, &mut out);
        out
    }

    /// Inverse transform into `out` (cleared and resized to `len`).
    ///
    /// # Panics
    /// As [`Stft::inverse`].
    pub fn inverse_into(&self, spec: &Spectrogram, len: usize, out: &mut Vec<f32>) {
        let n_fft = self.cfg.n_fft;
        let hop = self.cfg.hop;
        let n_bins = self.n_bins();
        assert_eq!(
            spec.n_bins, n_bins,
            "spectrogram has {} bins, STFT expects {n_bins}",
            spec.n_bins
        );
        assert_eq!(
            spec.data.len(),
            spec.n_frames * n_bins,
            "spectrogram data length does not match its shape"
        );
        out.clear();
        out.resize(len, 0.0);
        if spec.n_frames == 0 || len == 0 {
            return;
        }
        let total = (spec.n_frames - 1) * hop + n_fft;
        let mut ola = vec![0.0f64; total];
        let mut env = vec![0.0f64; total];
        let mut bins = self.inv.make_input_vec();
        let mut frame = vec![0.0f64; n_fft];
        let mut scratch = self.inv.make_scratch_vec();
        // Synthesis window with irfft's 1/n_fft folded in, and the squared window.
        let wsyn: Vec<f64> = self.window64.iter().map(|w| w / n_fft as f64).collect();
        let wsq: Vec<f64> = self.window64.iter().map(|w| w * w).collect();
        for (t, src) in spec.data.chunks_exact(n_bins).enumerate() {
            for (b, s) in bins.iter_mut().zip(src) {
                *b = Complex64::new(s.re as f64, s.im as f64);
            }
            bins[0].im = 0.0;
            if n_fft.is_multiple_of(2) {
                bins[n_bins - 1].im = 0.0;
            }
            self.inv
                .process_with_scratch(&mut bins, &mut frame, &mut scratch)
                .expect("realfft inverse: buffer lengths match the plan");
            let start = t * hop;
            for ((o, &f), &w) in ola[start..start + n_fft].iter_mut().zip(&frame).zip(&wsyn) {
                *o += f * w;
            }
            for (e, &w2) in env[start..start + n_fft].iter_mut().zip(&wsq) {
                *e += w2;
            }
        }
        let pad = self.pad();
        let avail = total.saturating_sub(pad).min(len);
        for (i, y) in out[..avail].iter_mut().enumerate() {
            let e = env[i + pad];
            *y = if e > 1e-11 { (ola[i + pad] / e) as f32 } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_index_matches_numpy_reflect() {
        // np.pad([0,1,2], 5, mode="reflect") -> [1,0,1,2,1, 0,1,2, 1,0,1,2,1]
        let got: Vec<usize> = (-5..8).map(|i| reflect_index(i, 3)).collect();
        assert_eq!(got, vec![1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]);
        assert!((-4..4).all(|i| reflect_index(i, 1) == 0));
        let got: Vec<usize> = (-3..5).map(|i| reflect_index(i, 2)).collect();
        assert_eq!(got, vec![1, 0, 1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn stft_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Stft>();
    }
}
