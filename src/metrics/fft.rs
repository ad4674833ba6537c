//! FFT helpers for the BSS Eval projections: lagged cross-correlations (blockwise, so a 4-minute
//! track never needs one giant transform) and plan handling for the FFT convolutions.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

pub(crate) type C64 = Complex<f64>;

/// Smallest even `m >= n` of the form `2^a 3^b 5^c` (`a >= 1`): a length the mixed-radix FFT
/// handles quickly.
pub(crate) fn fast_len(n: usize) -> usize {
    let n = n.max(2);
    let mut best = n.next_power_of_two();
    let mut p5 = 1usize;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut m = p35 * 2;
            while m < n {
                m *= 2;
            }
            best = best.min(m);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

/// A forward/inverse real FFT pair of one length, with helpers that own no buffers.
pub(crate) struct Fft {
    pub n: usize,
    fwd: Arc<dyn RealToComplex<f64>>,
    inv: Arc<dyn ComplexToReal<f64>>,
}

impl Fft {
    pub fn new(n: usize) -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        Self {
            n,
            fwd: planner.plan_fft_forward(n),
            inv: planner.plan_fft_inverse(n),
        }
    }

    pub fn bins(&self) -> usize {
        self.n / 2 + 1
    }

    pub fn scratch(&self) -> Vec<C64> {
        let len = self.fwd.get_scratch_len().max(self.inv.get_scratch_len());
        vec![C64::default(); len]
    }

    /// Forward transform of `input` (length `n`, used as scratch) into `out` (`n/2+1` bins).
    pub fn forward(&self, input: &mut [f64], out: &mut [C64], scratch: &mut [C64]) {
        self.fwd
            .process_with_scratch(input, out, scratch)
            .expect("internal FFT buffer lengths");
    }

    /// Unnormalised inverse transform (result is `n` times the true inverse). `spec` is used as
    /// scratch; the imaginary parts of its DC and Nyquist bins are ignored.
    pub fn inverse(&self, spec: &mut [C64], out: &mut [f64], scratch: &mut [C64]) {
        spec[0].im = 0.0;
        if let Some(last) = spec.last_mut() {
            last.im = 0.0;
        }
        self.inv
            .process_with_scratch(spec, out, scratch)
            .expect("internal FFT buffer lengths");
    }
}

/// Lagged cross-correlations of many signal pairs.
///
/// For each `(i, j)` in `pairs`, returns `r` of length `2 * max_lag + 1` with
/// `r[max_lag + k] = sum_n xs[i][n + k] * ys[j][n]` for `k` in `-max_lag..=max_lag`, treating
/// the signals as zero outside `0..len` (linear, not circular, correlation). All signals must
/// have the same length.
///
/// The sum over `n` is split into blocks; each block contributes `X_ext * conj(Y_block)` in the
/// frequency domain (the `x` block extended by `max_lag` samples on both sides), the spectra are
/// summed over blocks (in parallel), and one inverse FFT per pair gives the lags.
pub(crate) fn lagged_xcorr(xs: &[&[f32]], ys: &[&[f32]], pairs: &[(usize, usize)], max_lag: usize) -> Vec<Vec<f64>> {
    let n = xs.first().or(ys.first()).map_or(0, |s| s.len());
    let span = 2 * max_lag;
    let nfft = if n + span <= 1 << 16 {
        fast_len(n + span)
    } else {
        1 << 15
    };
    let block = nfft - span;
    let nblocks = n.div_ceil(block).max(1);
    let fft = Fft::new(nfft);
    let nb = fft.bins();
    let groups = (rayon::current_num_threads() * 2).clamp(1, nblocks);

    let partial: Vec<Vec<C64>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut acc = vec![C64::default(); pairs.len() * nb];
            let mut buf = vec![0.0f64; nfft];
            let mut xspec = vec![C64::default(); xs.len() * nb];
            let mut yspec = vec![C64::default(); ys.len() * nb];
            let mut scratch = fft.scratch();
            for b in (g * nblocks / groups)..((g + 1) * nblocks / groups) {
                let start = b * block;
                let len = block.min(n.saturating_sub(start));
                // x: samples start-max_lag .. start+len+max_lag
                let lo = start.saturating_sub(max_lag);
                let hi = (start + len + max_lag).min(n);
                let off = lo + max_lag - start;
                for (x, spec) in xs.iter().zip(xspec.chunks_mut(nb)) {
                    buf.fill(0.0);
                    for (d, &s) in buf[off..off + (hi - lo)].iter_mut().zip(&x[lo..hi]) {
                        *d = f64::from(s);
                    }
                    fft.forward(&mut buf, spec, &mut scratch);
                }
                for (y, spec) in ys.iter().zip(yspec.chunks_mut(nb)) {
                    buf.fill(0.0);
                    for (d, &s) in buf[max_lag..max_lag + len].iter_mut().zip(&y[start..start + len]) {
                        *d = f64::from(s);
                    }
                    fft.forward(&mut buf, spec, &mut scratch);
                }
                for (p, &(i, j)) in pairs.iter().enumerate() {
                    let xa = &xspec[i * nb..(i + 1) * nb];
                    let ya = &yspec[j * nb..(j + 1) * nb];
                    for ((a, x), y) in acc[p * nb..(p + 1) * nb].iter_mut().zip(xa).zip(ya) {
                        a.re += x.re * y.re + x.im * y.im;
                        a.im += x.im * y.re - x.re * y.im;
                    }
                }
            }
            acc
        })
        .collect();

    let mut acc = vec![C64::default(); pairs.len() * nb];
    for part in &partial {
        for (a, p) in acc.iter_mut().zip(part) {
            *a += *p;
        }
    }
    drop(partial);
    let scale = 1.0 / nfft as f64;
    acc.par_chunks_mut(nb)
        .map(|spec| {
            let mut out = vec![0.0f64; nfft];
            let mut scratch = fft.scratch();
            fft.inverse(spec, &mut out, &mut scratch);
            let mut r = vec![0.0f64; span + 1];
            r[max_lag] = out[0] * scale;
            for k in 1..=max_lag {
                r[max_lag + k] = out[k] * scale;
                r[max_lag - k] = out[nfft - k] * scale;
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_len_is_smooth_and_minimal() {
        assert_eq!(fast_len(1), 2);
        assert_eq!(fast_len(1000), 1000);
        assert_eq!(fast_len(1001), 1024);
        assert_eq!(fast_len(44611), 45000);
    }

    #[test]
    fn xcorr_matches_direct_sum() {
        // 3000 samples: one block; 70000 samples: several blocks.
        for &n in &[3000usize, 70000] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
            let y: Vec<f32> = (0..n).map(|i| ((i * 104729) % 97) as f32 / 48.0 - 1.0).collect();
            let lag = 40isize;
            let r = lagged_xcorr(&[&x, &y], &[&y], &[(0, 0), (1, 0)], lag as usize);
            for k in [-lag, -17, -1, 0, 1, 5, lag] {
                for (p, a) in [&x, &y].iter().enumerate() {
                    let mut d = 0.0f64;
                    for i in 0..n as isize {
                        let j = i + k;
                        if j >= 0 && j < n as isize {
                            d += f64::from(a[j as usize]) * f64::from(y[i as usize]);
                        }
                    }
                    let got = r[p][(lag + k) as usize];
                    assert!((got - d).abs() < 1e-9 * d.abs().max(1.0), "n {n} lag {k}: {got} vs {d}");
                }
            }
        }
    }
}
