//! Least-squares projections onto delayed references (the BSS Eval distortion filters).
//!
//! For a segment of the references, the basis is every reference channel delayed by
//! `0..filter_len` samples. The Gram matrix of that basis,
//! `G[(p, a), (q, b)] = <x_p delayed by a, x_q delayed by b> = r_pq[b - a]`, and the right-hand
//! side `D[(p, a), e] = <x_p delayed by a, e> = r_pe[-a]` come from FFT cross-correlations; the
//! normal equations `(G + eps I) C = D` are solved with faer (Cholesky, with a partial-pivoting
//! LU fallback as numpy's `solve` would use). `C` holds, for every estimate channel `e`, one
//! `filter_len`-tap FIR filter per basis signal; the projection of `e` is the sum of the basis
//! signals filtered by them (computed later by FFT convolution of the segment).

use faer::prelude::*;
use faer::{Mat, Side};

use super::fft::lagged_xcorr;

/// `[source][channel]` views of one segment of a multichannel multi-source signal.
pub(crate) type Segment<'a> = Vec<Vec<&'a [f32]>>;

/// Distortion filters for one segment.
pub(crate) struct Filters {
    /// Number of taps.
    pub len: usize,
    /// Basis signals kept, as `(source, channel)`; identical channels of one source are kept once
    /// and all-zero channels are dropped (same subspace; keeping them would make the Gram matrix
    /// singular).
    pub basis: Vec<(usize, usize)>,
    /// For each source, the indices into `basis` of its own channels.
    pub own: Vec<Vec<usize>>,
    /// Projection on all references: `(basis.len() * len) x (n_src * n_chan)`, column
    /// `est * n_chan + chan` for estimate channel `(est, chan)`.
    pub all: Mat<f64>,
    /// Projection on source `j`'s own delayed channels: `own[j].len() * len` rows, same columns.
    pub own_filters: Vec<Mat<f64>>,
}

/// Solves the symmetric positive semi-definite system `g x = d`: Cholesky first, then LU with
/// partial pivoting (the numpy `solve` museval and mir_eval use), and as a last resort a
/// ridge-regularised Cholesky. Never panics on singular input.
pub(crate) fn solve_normal(g: &Mat<f64>, d: &Mat<f64>) -> Mat<f64> {
    if let Ok(llt) = g.llt(Side::Lower) {
        let x = llt.solve(d);
        if x.is_all_finite() {
            return x;
        }
    }
    let x = g.partial_piv_lu().solve(d);
    if x.is_all_finite() {
        return x;
    }
    let n = g.nrows();
    let trace: f64 = (0..n).map(|i| g[(i, i)]).sum();
    let mut ridge = (trace / n.max(1) as f64).max(f64::MIN_POSITIVE) * 1e-12;
    for _ in 0..12 {
        let reg = Mat::from_fn(n, n, |i, j| g[(i, j)] + if i == j { ridge } else { 0.0 });
        if let Ok(llt) = reg.llt(Side::Lower) {
            let x = llt.solve(d);
            if x.is_all_finite() {
                return x;
            }
        }
        ridge *= 1e3;
    }
    // Only reachable with non-finite input: propagate NaN rather than loop or panic.
    Mat::from_fn(n, d.ncols(), |_, _| f64::NAN)
}

/// Computes the distortion filters of a segment: projection of every estimate channel on all
/// delayed reference channels, and on each source's own delayed channels.
///
/// `eps` is added to the Gram diagonal (museval v4 adds machine epsilon; mir_eval v3 adds
/// nothing).
pub(crate) fn compute_filters(refs: &Segment, ests: &Segment, len: usize, eps: f64) -> Filters {
    let nsrc = refs.len();
    let nchan = refs.first().map_or(0, |s| s.len());
    // Basis: per source, channels that are not bitwise copies of an earlier channel.
    let mut basis: Vec<(usize, usize)> = Vec::new();
    let mut own = vec![Vec::new(); nsrc];
    for (j, chans) in refs.iter().enumerate() {
        for (c, sig) in chans.iter().enumerate() {
            // All-zero channels add nothing to the span (museval's `eps` gives them zero filters).
            let silent = sig.iter().all(|&x| x == 0.0);
            let dup = own[j].iter().any(|&k: &usize| refs[j][basis[k].1] == *sig);
            if !silent && !dup {
                own[j].push(basis.len());
                basis.push((j, c));
            }
        }
    }
    let nb = basis.len();
    let xs: Vec<&[f32]> = basis.iter().map(|&(j, c)| refs[j][c]).collect();
    let mut ys = xs.clone();
    ys.extend(ests.iter().flat_map(|chans| chans.iter().copied()));
    let ncols = nsrc * nchan;
    let mut pairs = Vec::with_capacity(nb * (nb + 1) / 2 + nb * ncols);
    for p in 0..nb {
        for q in p..nb {
            pairs.push((p, q));
        }
    }
    let n_gram = pairs.len();
    for p in 0..nb {
        for e in 0..ncols {
            pairs.push((p, nb + e));
        }
    }
    let corr = lagged_xcorr(&xs, &ys, &pairs, len - 1);
    let m = len - 1; // index of lag 0

    let dim = nb * len;
    let mut g = Mat::<f64>::zeros(dim, dim);
    for (&(p, q), r) in pairs[..n_gram].iter().zip(&corr) {
        for a in 0..len {
            for b in 0..len {
                let v = r[m + b - a];
                g[(p * len + a, q * len + b)] = v;
                g[(q * len + b, p * len + a)] = v;
            }
        }
    }
    for i in 0..dim {
        g[(i, i)] += eps;
    }
    let mut d = Mat::<f64>::zeros(dim, ncols);
    for (&(p, y), r) in pairs[n_gram..].iter().zip(&corr[n_gram..]) {
        let e = y - nb;
        for a in 0..len {
            d[(p * len + a, e)] = r[m - a];
        }
    }

    let all = solve_normal(&g, &d);
    if nsrc == 1 {
        // The own-source basis is the whole basis: same filters, and exactly zero interference.
        let own_filters = vec![all.clone()];
        return Filters {
            len,
            basis,
            own,
            all,
            own_filters,
        };
    }
    let own_filters = own
        .iter()
        .map(|idx| {
            let rows: Vec<usize> = idx.iter().flat_map(|&k| (k * len)..((k + 1) * len)).collect();
            let gj = Mat::from_fn(rows.len(), rows.len(), |i, j| g[(rows[i], rows[j])]);
            let dj = Mat::from_fn(rows.len(), ncols, |i, e| d[(rows[i], e)]);
            solve_normal(&gj, &dj)
        })
        .collect();
    Filters {
        len,
        basis,
        own,
        all,
        own_filters,
    }
}
