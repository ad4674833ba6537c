//! BSS Eval: v4 (museval, time-invariant filters solved once) and v3 (mir_eval / MATLAB
//! `bss_eval_sources` and `bss_eval_images`, filters solved per evaluated segment).
//!
//! Decomposition of an estimate `ŝ` of source `j` (all sums run over channels and over the
//! segment extended by `filter_len - 1` samples, the convolution tail):
//!
//! - `s_true`: the reference image of source `j` on the segment (zero-padded);
//! - `P_j`: least-squares projection of `ŝ` on source `j`'s delayed channels (512 taps);
//! - `P_all`: least-squares projection of `ŝ` on all sources' delayed channels;
//! - `e_spat = P_j - s_true`, `e_interf = P_all - P_j`, `e_artif = ŝ - P_all`.
//!
//! Images criteria (v4 and `bss_eval_images`), in dB:
//! `SDR = 10 log10(Σ s_true² / Σ (ŝ - s_true)²)`, `ISR = 10 log10(Σ s_true² / Σ e_spat²)`,
//! `SIR = 10 log10(Σ P_j² / Σ e_interf²)`, `SAR = 10 log10(Σ P_all² / Σ e_artif²)`.
//!
//! Sources criteria (`bss_eval_sources`): `SDR = 10 log10(Σ P_j² / Σ (ŝ - P_j)²)`, SIR and SAR
//! as above, no ISR (NaN).
//!
//! A zero denominator gives `+inf` (museval's `_safe_db`).

use rayon::prelude::*;
use serde::Serialize;

use super::fft::{C64, Fft, fast_len};
use super::projection::{Filters, Segment, compute_filters};
use super::{any_source_silent, museval_frames, validate};
use crate::Result;

/// Distortion filter length (taps) used by every BSS Eval version.
pub const FILTER_LEN: usize = 512;

/// Scores of one source over the evaluated frames (dB; NaN where a frame is undefined).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceScores {
    /// Source to distortion ratio per frame.
    pub sdr: Vec<f64>,
    /// Image to spatial distortion ratio per frame (NaN for the `bss_eval_sources` variants).
    pub isr: Vec<f64>,
    /// Source to interference ratio per frame.
    pub sir: Vec<f64>,
    /// Source to artifacts ratio per frame.
    pub sar: Vec<f64>,
}

/// NaN-ignoring medians of one source's frame scores (museval's aggregation).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Aggregate {
    pub sdr: f64,
    pub isr: f64,
    pub sir: f64,
    pub sar: f64,
}

impl SourceScores {
    /// NaN-ignoring median over frames of each metric (NaN when no frame has a value).
    pub fn median(&self) -> Aggregate {
        Aggregate {
            sdr: super::nan_median(&self.sdr),
            isr: super::nan_median(&self.isr),
            sir: super::nan_median(&self.sir),
            sar: super::nan_median(&self.sar),
        }
    }
}

/// Result of a BSS Eval run.
#[derive(Debug, Clone, Serialize)]
pub struct BssEvalScores {
    /// One entry per reference source, in reference order.
    pub sources: Vec<SourceScores>,
    /// Evaluated frames as `(start, length)` in samples.
    pub frames: Vec<(usize, usize)>,
    /// For each frame, the estimate index matched to each reference source (the identity unless
    /// a permutation search was asked for; identity for undefined frames).
    pub permutation: Vec<Vec<usize>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Criteria {
    Images,
    Sources,
}

/// Spectra of the distortion filters at one convolution length.
struct FilterSpectra {
    fft: Fft,
    /// `[(col * n_basis + k) * bins ..]`
    all: Vec<C64>,
    /// per source: `[(col * n_own + kk) * bins ..]`
    own: Vec<Vec<C64>>,
}

fn filter_spectra(f: &Filters, seg_len: usize, ncols: usize) -> FilterSpectra {
    let fft = Fft::new(fast_len(seg_len + f.len - 1));
    let nb = fft.bins();
    let spectra = |mat: &faer::Mat<f64>, nbasis: usize| -> Vec<C64> {
        let mut out = vec![C64::default(); ncols * nbasis * nb];
        out.par_chunks_mut(nb).enumerate().for_each_init(
            || (vec![0.0f64; fft.n], fft.scratch()),
            |(buf, scratch), (idx, spec)| {
                let (col, k) = (idx / nbasis, idx % nbasis);
                buf.fill(0.0);
                for (a, v) in buf[..f.len].iter_mut().enumerate() {
                    *v = mat[(k * f.len + a, col)];
                }
                fft.forward(buf, spec, scratch);
            },
        );
        out
    };
    let all = spectra(&f.all, f.basis.len());
    let own = f
        .own
        .iter()
        .zip(&f.own_filters)
        .map(|(idx, m)| spectra(m, idx.len()))
        .collect();
    FilterSpectra { fft, all, own }
}

fn safe_db(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (num / den).log10()
    }
}

/// Scores `(sdr, isr, sir, sar)` for each `(true source, estimate)` pair on one segment, given
/// the segment views (all channels of the same length) and filters.
fn score_segment(
    refs: &Segment,
    ests: &Segment,
    f: &Filters,
    spec: &FilterSpectra,
    pairs: &[(usize, usize)],
    crit: Criteria,
) -> Vec<[f64; 4]> {
    let nsrc = refs.len();
    let nchan = refs[0].len();
    let w = refs[0][0].len();
    let out_len = w + f.len - 1;
    let fft = &spec.fft;
    let nb = fft.bins();
    let scale = 1.0 / fft.n as f64;
    let mut buf = vec![0.0f64; fft.n];
    let mut scratch = fft.scratch();
    let nbasis = f.basis.len();
    let mut bspec = vec![C64::default(); nbasis * nb];
    for (&(j, c), s) in f.basis.iter().zip(bspec.chunks_mut(nb)) {
        buf.fill(0.0);
        for (d, &x) in buf.iter_mut().zip(refs[j][c]) {
            *d = f64::from(x);
        }
        fft.forward(&mut buf, s, &mut scratch);
    }
    let mut acc = vec![C64::default(); nb];
    let mut p_all = vec![0.0f64; fft.n];
    let mut p_own = vec![0.0f64; fft.n];
    let mut project =
        |filters: &[C64], basis_idx: &mut dyn Iterator<Item = usize>, col: usize, n: usize, out: &mut [f64]| {
            acc.fill(C64::default());
            for (kk, k) in basis_idx.enumerate() {
                let h = &filters[(col * n + kk) * nb..(col * n + kk + 1) * nb];
                for ((a, x), y) in acc.iter_mut().zip(&bspec[k * nb..(k + 1) * nb]).zip(h) {
                    *a += x * y;
                }
            }
            fft.inverse(&mut acc, out, &mut scratch);
        };
    pairs
        .iter()
        .map(|&(jt, je)| {
            // Σ s², Σ (ŝ - s)², Σ (P_j - s)², Σ P_j², Σ (P_all - P_j)², Σ P_all², Σ (ŝ - P_all)², Σ (ŝ - P_j)²
            let mut e = [0.0f64; 8];
            for c in 0..nchan {
                let col = je * nchan + c;
                let own = &f.own[jt];
                project(&spec.own[jt], &mut own.iter().copied(), col, own.len(), &mut p_own);
                if nsrc == 1 {
                    p_all.copy_from_slice(&p_own);
                } else {
                    project(&spec.all, &mut (0..nbasis), col, nbasis, &mut p_all);
                }
                let s = refs[jt][c];
                let est = ests[je][c];
                for i in 0..out_len {
                    let (sv, ev) = if i < w {
                        (f64::from(s[i]), f64::from(est[i]))
                    } else {
                        (0.0, 0.0)
                    };
                    let po = p_own[i] * scale;
                    let pa = p_all[i] * scale;
                    e[0] += sv * sv;
                    e[1] += (ev - sv) * (ev - sv);
                    e[2] += (po - sv) * (po - sv);
                    e[3] += po * po;
                    e[4] += (pa - po) * (pa - po);
                    e[5] += pa * pa;
                    e[6] += (ev - pa) * (ev - pa);
                    e[7] += (ev - po) * (ev - po);
                }
            }
            match crit {
                Criteria::Images => [
                    safe_db(e[0], e[1]),
                    safe_db(e[0], e[2]),
                    safe_db(e[3], e[4]),
                    safe_db(e[5], e[6]),
                ],
                Criteria::Sources => [safe_db(e[3], e[7]), f64::NAN, safe_db(e[3], e[4]), safe_db(e[5], e[6])],
            }
        })
        .collect()
}

fn slice_segment<'a>(sig: &Segment<'a>, start: usize, len: usize) -> Segment<'a> {
    sig.iter()
        .map(|chans| chans.iter().map(|c| &c[start..start + len]).collect())
        .collect()
}

pub(crate) fn view(sig: &[Vec<Vec<f32>>]) -> Segment<'_> {
    sig.iter()
        .map(|chans| chans.iter().map(|c| c.as_slice()).collect())
        .collect()
}

fn mono_view(sig: &[Vec<f32>]) -> Segment<'_> {
    sig.iter().map(|c| vec![c.as_slice()]).collect()
}

/// Per-frame results `[source] -> [sdr, isr, sir, sar]` plus permutation, assembled.
fn assemble(nsrc: usize, frames: Vec<(usize, usize)>, per_frame: Vec<(Vec<[f64; 4]>, Vec<usize>)>) -> BssEvalScores {
    let mut sources = vec![SourceScores::default(); nsrc];
    let mut permutation = Vec::with_capacity(per_frame.len());
    for (scores, perm) in per_frame {
        for (s, v) in sources.iter_mut().zip(&scores) {
            s.sdr.push(v[0]);
            s.isr.push(v[1]);
            s.sir.push(v[2]);
            s.sar.push(v[3]);
        }
        permutation.push(perm);
    }
    BssEvalScores {
        sources,
        frames,
        permutation,
    }
}

/// BSS Eval v4, as `museval.evaluate(references, estimates, win=window, hop=hop, mode="v4")`.
///
/// `references` and `estimates` are `[source][channel][sample]`, all of one length (pad or
/// truncate estimates first, as museval does; see [`super::pad_or_truncate`]). Estimate `j` is
/// scored against reference `j` (no permutation search, as in museval). The 512-tap distortion
/// filters are solved once on the whole signal (v4); the decomposition and the images criteria
/// (SDR, ISR, SIR, SAR) are then computed per frame of `window` samples every `hop` samples. A
/// trailing partial frame is dropped; a signal shorter than one window gives one frame over the
/// whole signal. In a frame where any reference or estimate source is all zeros (every channel),
/// every source gets NaN. museval uses `window = hop = 1 s` (44100 at 44.1 kHz); aggregate with
/// [`SourceScores::median`].
pub fn bss_eval_v4(
    references: &[Vec<Vec<f32>>],
    estimates: &[Vec<Vec<f32>>],
    window: usize,
    hop: usize,
) -> Result<BssEvalScores> {
    let (refs, ests) = (view(references), view(estimates));
    let (nsrc, nchan, n) = validate(&refs, &ests)?;
    let frames = museval_frames(n, window, hop)?;
    let identity: Vec<usize> = (0..nsrc).collect();
    let silent: Vec<bool> = frames
        .par_iter()
        .map(|&(s, l)| any_source_silent(&refs, s, l) || any_source_silent(&ests, s, l))
        .collect();
    let nan = || (vec![[f64::NAN; 4]; nsrc], identity.clone());
    if silent.iter().all(|&s| s) {
        let per_frame = frames.iter().map(|_| nan()).collect();
        return Ok(assemble(nsrc, frames, per_frame));
    }
    let filters = compute_filters(&refs, &ests, FILTER_LEN, f64::EPSILON);
    let frame_len = frames[0].1;
    let spec = filter_spectra(&filters, frame_len, nsrc * nchan);
    let pairs: Vec<(usize, usize)> = (0..nsrc).map(|j| (j, j)).collect();
    let per_frame = frames
        .par_iter()
        .zip(&silent)
        .map(|(&(s, l), &quiet)| {
            if quiet {
                return nan();
            }
            let r = slice_segment(&refs, s, l);
            let e = slice_segment(&ests, s, l);
            (
                score_segment(&r, &e, &filters, &spec, &pairs, Criteria::Images),
                identity.clone(),
            )
        })
        .collect();
    Ok(assemble(nsrc, frames, per_frame))
}

/// All permutations of `0..n` in lexicographic order (itertools.permutations order).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut out = vec![p.clone()];
    while let Some(i) = (1..n).rev().find(|&i| p[i - 1] < p[i]) {
        // p[i] > p[i - 1], so a larger element exists at or after i.
        let j = (i..n).rev().find(|&j| p[j] > p[i - 1]).unwrap_or(i);
        p.swap(i - 1, j);
        p[i..].reverse();
        out.push(p.clone());
    }
    out
}

/// Largest source count for which the permutation search is allowed (8! = 40320 candidates).
pub const MAX_PERMUTATION_SOURCES: usize = 8;

/// BSS Eval v3 on one segment: filters solved on the segment itself, optional permutation
/// search maximising the mean SIR (first maximum in lexicographic order, as mir_eval).
fn v3_segment(
    refs: &Segment,
    ests: &Segment,
    compute_permutation: bool,
    crit: Criteria,
) -> (Vec<[f64; 4]>, Vec<usize>) {
    let nsrc = refs.len();
    let nchan = refs[0].len();
    let w = refs[0][0].len();
    let filters = compute_filters(refs, ests, FILTER_LEN, 0.0);
    let spec = filter_spectra(&filters, w, nsrc * nchan);
    if !compute_permutation {
        let pairs: Vec<(usize, usize)> = (0..nsrc).map(|j| (j, j)).collect();
        return (
            score_segment(refs, ests, &filters, &spec, &pairs, crit),
            (0..nsrc).collect(),
        );
    }
    let pairs: Vec<(usize, usize)> = (0..nsrc).flat_map(|jt| (0..nsrc).map(move |je| (jt, je))).collect();
    let all = score_segment(refs, ests, &filters, &spec, &pairs, crit);
    let score = |jt: usize, je: usize| all[jt * nsrc + je];
    let mut best: Option<(f64, Vec<usize>)> = None;
    for perm in permutations(nsrc) {
        let mean_sir = perm.iter().enumerate().map(|(jt, &je)| score(jt, je)[2]).sum::<f64>() / nsrc as f64;
        if best.as_ref().is_none_or(|(b, _)| mean_sir > *b) {
            best = Some((mean_sir, perm));
        }
    }
    let perm = best.map_or_else(|| (0..nsrc).collect(), |(_, p)| p);
    let scores = perm.iter().enumerate().map(|(jt, &je)| score(jt, je)).collect();
    (scores, perm)
}

fn v3_run(
    refs: &Segment,
    ests: &Segment,
    n: usize,
    framing: Option<(usize, usize)>,
    compute_permutation: bool,
    crit: Criteria,
) -> Result<BssEvalScores> {
    let nsrc = refs.len();
    if compute_permutation && nsrc > MAX_PERMUTATION_SOURCES {
        anyhow::bail!("permutation search over {nsrc} sources is too costly (at most {MAX_PERMUTATION_SOURCES})");
    }
    let frames = match framing {
        None => vec![(0, n)],
        Some((window, hop)) => {
            if window == 0 || hop == 0 {
                anyhow::bail!("window and hop must be positive (got window {window}, hop {hop})");
            }
            // mir_eval: nwin = floor((n - window + hop) / hop); fewer than 2 → whole signal.
            let nwin = if n + hop >= window { (n + hop - window) / hop } else { 0 };
            if nwin < 2 {
                vec![(0, n)]
            } else {
                (0..nwin).map(|k| (k * hop, window)).collect()
            }
        }
    };
    let identity: Vec<usize> = (0..nsrc).collect();
    let per_frame = frames
        .par_iter()
        .map(|&(s, l)| {
            let r = slice_segment(refs, s, l);
            let e = slice_segment(ests, s, l);
            if any_source_silent(&r, 0, l) || any_source_silent(&e, 0, l) {
                (vec![[f64::NAN; 4]; nsrc], identity.clone())
            } else {
                v3_segment(&r, &e, compute_permutation, crit)
            }
        })
        .collect();
    Ok(assemble(nsrc, frames, per_frame))
}

/// mir_eval `bss_eval_sources` (BSS Eval v3, MATLAB-compatible) on mono sources
/// `[source][sample]`: whole-signal SDR, SIR, SAR with a 512-tap time-invariant distortion
/// filter. With `compute_permutation` (mir_eval's default) every estimate is tried against every
/// reference and the permutation with the best mean SIR is kept. The SDR here is the
/// "filtered" SDR (`torchmetrics.signal_distortion_ratio` with `filter_length=512` gives the same
/// value for the matched pair). One frame; ISR is NaN.
pub fn bss_eval_sources(
    references: &[Vec<f32>],
    estimates: &[Vec<f32>],
    compute_permutation: bool,
) -> Result<BssEvalScores> {
    let (refs, ests) = (mono_view(references), mono_view(estimates));
    let (_, _, n) = validate(&refs, &ests)?;
    v3_run(&refs, &ests, n, None, compute_permutation, Criteria::Sources)
}

/// mir_eval `bss_eval_sources_framewise`: [`bss_eval_sources`] on every frame of `window`
/// samples every `hop` samples that fits entirely (filters solved per frame, as BSS Eval v3).
/// If fewer than two frames fit, the whole-signal result is returned as one frame (mir_eval).
/// Frames where a reference or estimate source is all zeros are NaN.
pub fn bss_eval_sources_framewise(
    references: &[Vec<f32>],
    estimates: &[Vec<f32>],
    window: usize,
    hop: usize,
    compute_permutation: bool,
) -> Result<BssEvalScores> {
    let (refs, ests) = (mono_view(references), mono_view(estimates));
    let (_, _, n) = validate(&refs, &ests)?;
    v3_run(
        &refs,
        &ests,
        n,
        Some((window, hop)),
        compute_permutation,
        Criteria::Sources,
    )
}

/// mir_eval `bss_eval_images` (BSS Eval v3) on `[source][channel][sample]`: whole-signal SDR,
/// ISR, SIR, SAR of source images with a multichannel 512-tap time-invariant filter, optional
/// permutation search (best mean SIR).
pub fn bss_eval_images(
    references: &[Vec<Vec<f32>>],
    estimates: &[Vec<Vec<f32>>],
    compute_permutation: bool,
) -> Result<BssEvalScores> {
    let (refs, ests) = (view(references), view(estimates));
    let (_, _, n) = validate(&refs, &ests)?;
    v3_run(&refs, &ests, n, None, compute_permutation, Criteria::Images)
}

/// mir_eval `bss_eval_images_framewise`: [`bss_eval_images`] per frame (filters solved per
/// frame), frames as in [`bss_eval_sources_framewise`].
pub fn bss_eval_images_framewise(
    references: &[Vec<Vec<f32>>],
    estimates: &[Vec<Vec<f32>>],
    window: usize,
    hop: usize,
    compute_permutation: bool,
) -> Result<BssEvalScores> {
    let (refs, ests) = (view(references), view(estimates));
    let (_, _, n) = validate(&refs, &ests)?;
    v3_run(
        &refs,
        &ests,
        n,
        Some((window, hop)),
        compute_permutation,
        Criteria::Images,
    )
}
