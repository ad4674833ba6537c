//! Fused CPU kernels with hand-written backward passes: the training hot path of the
//! separator's networks.
//!
//! candle 0.11 builds a GroupNorm from ~12 element-wise ops, each a full pass over the tensor
//! with its own buffer, and differentiates each of them again (SiLU's backward alone is ~9
//! passes); reductions over dimensions other than the last run on one thread. A training step
//! of the U-Net spent most of its time there, not in the matrix products. Each kernel here is
//! one candle custom op with a backward written by hand:
//!
//! * [`conv2d`] (any kernel, per-axis stride, padding and dilation): per example, the patches unfolded into a scratch matrix (im2col) and one gemm
//!   with the bias as the initial value; backward `dW += dY·colsᵀ`, `dcols = Wᵀ·dY` folded
//!   back (col2im), `db = Σ dY`, the patches recomputed: no batch-sized unfolded tensor and
//!   no per-op zero-filled gradients.
//! * [`group_norm_act`]: GroupNorm (no affine of its own), a per-(example, channel) scale and
//!   shift (the GroupNorm affine and FiLM folded together), optionally SiLU: two passes
//!   forward, three backward, parallel over (example, group).
//! * [`upsample`]: nearest upsampling by integer factors, backward a block sum.
//!
//! Every kernel runs on the CPU only; on other devices the same functions compose candle ops
//! (which have GPU kernels), so one model definition serves both. The tests compare values and
//! gradients of both paths (tests/model_fused.rs).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, D, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// `fn NAME(args) -> R { body }`, with the body compiled twice: for AVX2 + FMA (run where the
/// CPU has them, detected at run time; std caches the answer) and for the baseline target.
/// Only the instruction set differs: Rust never contracts `a * b + c` into an FMA by itself,
/// so both give the same bits.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            $(#[$m])*
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                $(#[$m])*
                fn fast($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `fast` is compiled for (checked above).
                    return unsafe { fast($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> CResult<&'a [f32]> {
    let v = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// The data of a custom op's three contiguous inputs.
fn three<'a>(inputs: [(&'a CpuStorage, &Layout); 3], op: &str) -> CResult<[&'a [f32]; 3]> {
    let [a, b, c] = inputs;
    Ok([
        contiguous(a.0, a.1, op)?,
        contiguous(b.0, b.1, op)?,
        contiguous(c.0, c.1, op)?,
    ])
}

/// The f32 data of a contiguous CPU tensor's storage.
fn cpu_data<'a>(st: &'a Storage, l: &Layout, op: &str) -> CResult<&'a [f32]> {
    match st {
        Storage::Cpu(s) => contiguous(s, l, op),
        _ => candle_core::bail!("{op}: CPU tensors only"),
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor.
fn with_data<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> R) -> CResult<R> {
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    Ok(f(cpu_data(&st, l, op)?))
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im

/// Per-axis geometry of a 2-D convolution: stride, zero padding (each side) and dilation
/// along height and width (the kernel size comes from the weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub stride: (usize, usize),
    pub pad: (usize, usize),
    pub dilation: (usize, usize),
}

impl Geometry {
    /// The same stride and padding on both axes, no dilation.
    pub fn square(stride: usize, pad: usize) -> Self {
        Self {
            stride: (stride, stride),
            pad: (pad, pad),
            dilation: (1, 1),
        }
    }
}

/// One axis of a convolution: input size `n`, `k` taps `d` apart, stride `s`, zero padding
/// `p` on each side.
#[derive(Clone, Copy, Debug)]
struct Axis {
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
}

impl Axis {
    /// Extent of the dilated kernel.
    fn span(&self) -> usize {
        self.d * (self.k - 1) + 1
    }
    fn fits(&self) -> bool {
        self.k > 0 && self.s > 0 && self.d > 0 && self.n + 2 * self.p >= self.span()
    }
    fn out(&self) -> usize {
        (self.n + 2 * self.p - self.span()) / self.s + 1
    }
    /// The input index of tap `t` for output `o`, if inside.
    fn src(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.s + t * self.d).checked_sub(self.p).filter(|&i| i < self.n)
    }
    /// Output positions (of `no`) whose tap `t` lands inside: `[lo, hi)`.
    fn valid(&self, t: usize, no: usize) -> (usize, usize) {
        let off = t * self.d;
        let lo = self.p.saturating_sub(off).div_ceil(self.s);
        // Largest o with o·s + off − p <= n − 1.
        let hi = if self.n + self.p > off {
            ((self.n + self.p - off - 1) / self.s + 1).min(no)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// Geometry of a convolution over `c` channel planes: rows (`y`) and columns (`x`).
#[derive(Clone, Copy, Debug)]
struct Patches {
    c: usize,
    y: Axis,
    x: Axis,
}

impl Patches {
    fn out(&self) -> (usize, usize) {
        (self.y.out(), self.x.out())
    }
    fn taps(&self) -> usize {
        self.y.k * self.x.k
    }
}

multiversion! {
    /// Unfolds output rows `oy0..oy1` of one `(h, w)` channel plane into its `kh·kw` rows of
    /// `(oy1 - oy0)·wo` values.
    fn unfold_plane(g: &Patches, plane: &[f32], rows: &mut [f32], oy0: usize, oy1: usize) {
        let wo = g.x.out();
        let (w, ax) = (g.x.n, g.x);
        let p = (oy1 - oy0) * wo;
        for ky in 0..g.y.k {
            for kx in 0..ax.k {
                let row = &mut rows[(ky * ax.k + kx) * p..][..p];
                let (x_lo, x_hi) = ax.valid(kx, wo);
                for oy in oy0..oy1 {
                    let out = &mut row[(oy - oy0) * wo..][..wo];
                    let Some(iy) = g.y.src(oy, ky) else {
                        out.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * w..][..w];
                    out[..x_lo].fill(0.0);
                    out[x_hi..].fill(0.0);
                    if x_hi == x_lo {
                        continue;
                    }
                    let off = kx * ax.d;
                    if ax.s == 1 {
                        let ix0 = x_lo + off - ax.p;
                        out[x_lo..x_hi].copy_from_slice(&src[ix0..ix0 + (x_hi - x_lo)]);
                    } else {
                        for (ox, o) in out.iter_mut().enumerate().take(x_hi).skip(x_lo) {
                            *o = src[ox * ax.s + off - ax.p];
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Adds the `kh·kw` rows of output rows `oy0..oy1` of one channel back into its `(h, w)`
    /// plane (the adjoint of [`unfold_plane`]; the plane is not cleared first).
    fn fold_plane(g: &Patches, rows: &[f32], plane: &mut [f32], oy0: usize, oy1: usize) {
        let wo = g.x.out();
        let (w, ax) = (g.x.n, g.x);
        let p = (oy1 - oy0) * wo;
        for ky in 0..g.y.k {
            for kx in 0..ax.k {
                let row = &rows[(ky * ax.k + kx) * p..][..p];
                let (x_lo, x_hi) = ax.valid(kx, wo);
                if x_hi == x_lo {
                    continue;
                }
                let off = kx * ax.d;
                for oy in oy0..oy1 {
                    let Some(iy) = g.y.src(oy, ky) else { continue };
                    let src = &row[(oy - oy0) * wo..][..wo];
                    let dst = &mut plane[iy * w..][..w];
                    if ax.s == 1 {
                        let ix0 = x_lo + off - ax.p;
                        for (d, s) in dst[ix0..ix0 + (x_hi - x_lo)].iter_mut().zip(&src[x_lo..x_hi]) {
                            *d += s;
                        }
                    } else {
                        for (ox, s) in src.iter().enumerate().take(x_hi).skip(x_lo) {
                            dst[ox * ax.s + off - ax.p] += s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major matrix operand of [`matmul`]: its values, the stride between its stored rows,
/// and whether it is stored transposed.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    ld: usize,
    t: bool,
}

impl<'a> Operand<'a> {
    /// A contiguous `(rows × cols)` matrix as stored (`t`: it holds the transpose).
    fn dense(data: &'a [f32], cols: usize, t: bool) -> Self {
        Self { data, ld: cols, t }
    }
    /// (row stride, column stride) of the logical matrix, and the length it needs for
    /// `rows × cols` logical values.
    fn strides(&self, rows: usize, cols: usize) -> (isize, isize, usize) {
        if self.t {
            (1, self.ld as isize, (cols - 1) * self.ld + rows)
        } else {
            (self.ld as isize, 1, (rows - 1) * self.ld + cols)
        }
    }
}

/// `dst (m × n) = [dst +] a (m × k) · b (k × n)`, `dst` row-major with row stride `ld_dst`, or
/// stored transposed (`(n × m)`, row stride `ld_dst`) when `dst_t`. gemm computes in the
/// destination's column-major orientation (a row-major destination is the transposed
/// product), and packs an operand whose rows are not contiguous in that orientation: the
/// caller picks the storage that leaves the large operand unpacked.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    (ld_dst, dst_t): (usize, bool),
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let (a_rs, a_cs, a_len) = a.strides(m, k);
    let (b_rs, b_cs, b_len) = b.strides(k, n);
    let (d_rs, d_cs, d_len) = Operand {
        data: &[],
        ld: ld_dst,
        t: dst_t,
    }
    .strides(m, n);
    assert!(dst.len() >= d_len && a.data.len() >= a_len && b.data.len() >= b_len);
    // SAFETY: the slices hold the m×n, m×k and k×n matrices the strides describe (asserted
    // above); dst does not alias a or b (a &mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs,
            d_rs,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Scratch floats per tile of unfolded patches: 128 Ki floats (512 KiB) keep a tile of the
/// im2col matrix in a core's L2 between its unfolding and its matrix product.
const TILE_FLOATS: usize = 128 * 1024;

/// A convolution `C_in → C_out` with geometry `g` (`g.c = C_in`), as one custom op over
/// `(x, weight, bias)`. Per example, the output rows are cut into tiles whose unfolded patches
/// (im2col) fit [`TILE_FLOATS`]; each tile is unfolded into a scratch matrix and multiplied by
/// the weight matrix (gemm), so the patches never leave the cache and no batch-sized unfolded
/// tensor exists; the backward recomputes them tile by tile. With at least as many examples
/// as threads the examples run in parallel (tiles in order, each gemm on one thread);
/// otherwise the forward runs the tiles in parallel and the backward's gemms use every thread.
struct Conv {
    g: Patches,
    c_out: usize,
}

impl Conv {
    fn pointwise(&self) -> bool {
        let one = |a: &Axis| a.k == 1 && a.s == 1 && a.p == 0;
        one(&self.g.y) && one(&self.g.x)
    }
    fn sizes(&self) -> (usize, usize, usize) {
        let (ho, wo) = self.g.out();
        (self.g.c * self.g.taps(), ho * wo, self.g.c * self.g.y.n * self.g.x.n)
    }
    /// Parallel over examples (each gemm single-threaded) when the batch fills the threads.
    fn schedule(batch: usize) -> (bool, gemm::Parallelism) {
        let threads = rayon::current_num_threads();
        if threads > 1 && batch >= threads {
            (true, gemm::Parallelism::None)
        } else if threads > 1 {
            (false, gemm::Parallelism::Rayon(threads))
        } else {
            (false, gemm::Parallelism::None)
        }
    }
    /// The output-row ranges of the tiles (one tile for a 1×1 convolution, which needs no
    /// patches).
    fn tiles(&self) -> Vec<(usize, usize)> {
        let (ho, wo) = self.g.out();
        let rows = if self.pointwise() {
            ho
        } else {
            (TILE_FLOATS / (self.sizes().0 * wo).max(1)).clamp(1, ho.max(1))
        };
        (0..ho).step_by(rows.max(1)).map(|a| (a, (a + rows).min(ho))).collect()
    }
    /// The patches of output rows `oy0..oy1` of one example, `(C_in·kh·kw) × ((oy1 - oy0)·wo)`
    /// (`x` itself for a 1×1 convolution).
    fn patches<'a>(&self, xb: &'a [f32], cols: &'a mut Vec<f32>, (oy0, oy1): (usize, usize)) -> &'a [f32] {
        if self.pointwise() {
            return xb;
        }
        let wo = self.g.x.out();
        let (kk, hw) = (self.g.taps(), self.g.y.n * self.g.x.n);
        let tp = (oy1 - oy0) * wo;
        cols.resize(self.g.c * kk * tp, 0.0);
        for (c, rows) in cols.chunks_mut(kk * tp).enumerate() {
            unfold_plane(&self.g, &xb[c * hw..][..hw], rows, oy0, oy1);
        }
        cols
    }
    /// The convolution whose output is this one's input gradient, for stride 1 on both axes
    /// (and padding within the dilated kernel's reach): input `C_out` planes of `ho × wo`,
    /// the same taps and dilation, padding `span − 1 − p` per axis, `C_in` outputs.
    fn transposed(&self) -> Option<Conv> {
        let flip = |a: &Axis, n_out: usize| -> Option<Axis> {
            (a.s == 1 && a.p < a.span()).then(|| Axis {
                n: n_out,
                k: a.k,
                s: 1,
                p: a.span() - 1 - a.p,
                d: a.d,
            })
        };
        if self.pointwise() {
            return None;
        }
        let (ho, wo) = self.g.out();
        let g = Patches {
            c: self.c_out,
            y: flip(&self.g.y, ho)?,
            x: flip(&self.g.x, wo)?,
        };
        (g.y.out() == self.g.y.n && g.x.out() == self.g.x.n).then_some(Conv { g, c_out: self.g.c })
    }
    /// The weight of [`Conv::transposed`]: `W'[ci][co][ky][kx] = W[co][ci][kh-1-ky][kw-1-kx]`,
    /// a `C_in × (C_out·kh·kw)` matrix.
    fn flipped_weight(&self, w: &[f32]) -> Vec<f32> {
        let (co, ci, kh, kw) = (self.c_out, self.g.c, self.g.y.k, self.g.x.k);
        let mut out = vec![0f32; w.len()];
        for o in 0..co {
            for i in 0..ci {
                for ky in 0..kh {
                    for kx in 0..kw {
                        out[((i * co + o) * kh + ky) * kw + kx] =
                            w[((o * ci + i) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)];
                    }
                }
            }
        }
        out
    }
    /// The forward of one tile of one example: `dst = bias + W · patches(tile)`, `dst` the
    /// tile's `C_out` rows of `(tile.1 - tile.0)·wo` values, `ld` apart; `bias: None` when
    /// `dst` already holds it.
    #[allow(clippy::too_many_arguments)]
    fn forward_tile(
        &self,
        dst: &mut [f32],
        ld: usize,
        xb: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        cols: &mut Vec<f32>,
        tile: (usize, usize),
        par: gemm::Parallelism,
    ) {
        let (kdim, p, _) = self.sizes();
        let tp = (tile.1 - tile.0) * self.g.x.out();
        for (r, &b) in bias.unwrap_or_default().iter().enumerate() {
            dst[r * ld..r * ld + tp].fill(b);
        }
        let rhs = self.patches(xb, cols, tile);
        // A 1×1 convolution has one tile, the whole plane: its patches are x, p apart.
        let rhs_ld = if self.pointwise() { p } else { tp };
        matmul(
            dst,
            (ld, false),
            (self.c_out, tp, kdim),
            Operand::dense(w, kdim, false),
            Operand {
                data: rhs,
                ld: rhs_ld,
                t: false,
            },
            true,
            par,
        );
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "splitflow-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let [x, w, bias] = three([(s1, l1), (s2, l2), (s3, l3)], self.name())?;
        let batch = l1.dims()[0];
        let (_, p, xlen) = self.sizes();
        let co = self.c_out;
        let (par_batch, _) = Self::schedule(batch);
        let tiles = self.tiles();
        let wo = self.g.x.out();
        // The output starts as the bias (one pass, no zero fill first).
        let mut y = Vec::with_capacity(batch * co * p);
        for _ in 0..batch {
            for &b in bias {
                y.extend(std::iter::repeat_n(b, p));
            }
        }
        let in_place = |yb: &mut [f32], xb: &[f32], cols: &mut Vec<f32>, tile: (usize, usize), par| {
            self.forward_tile(&mut yb[tile.0 * wo..], p, xb, w, None, cols, tile, par);
        };
        if par_batch {
            y.par_chunks_mut(co * p)
                .zip(x.par_chunks(xlen))
                .for_each_init(Vec::new, |cols, (yb, xb)| {
                    for &tile in &tiles {
                        in_place(yb, xb, cols, tile, gemm::Parallelism::None);
                    }
                });
        } else if tiles.len() > 1 {
            // Tiles in parallel, each into its own (C_out × tile) block, then copied in place.
            for (yb, xb) in y.chunks_mut(co * p).zip(x.chunks(xlen)) {
                let blocks: Vec<Vec<f32>> = tiles
                    .par_iter()
                    .map_init(Vec::new, |cols, &tile| {
                        let tp = (tile.1 - tile.0) * wo;
                        let mut block = vec![0f32; co * tp];
                        self.forward_tile(&mut block, tp, xb, w, Some(bias), cols, tile, gemm::Parallelism::None);
                        block
                    })
                    .collect();
                for (&tile, block) in tiles.iter().zip(&blocks) {
                    let tp = (tile.1 - tile.0) * wo;
                    for (row, src) in yb.chunks_mut(p).zip(block.chunks(tp)) {
                        row[tile.0 * wo..][..tp].copy_from_slice(src);
                    }
                }
            }
        } else {
            let (_, par) = Self::schedule(batch);
            let mut cols = Vec::new();
            for (yb, xb) in y.chunks_mut(co * p).zip(x.chunks(xlen)) {
                in_place(yb, xb, &mut cols, tiles[0], par);
            }
        }
        let (ho, wo) = self.g.out();
        Ok((CpuStorage::F32(y), Shape::from((batch, co, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let ts = [x.contiguous()?, w.contiguous()?, grad.contiguous()?];
        let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
        let data = guards
            .iter()
            .map(|(st, l)| cpu_data(st, l, name))
            .collect::<CResult<Vec<_>>>()?;
        let (xv, wv, gv) = (data[0], data[1], data[2]);
        let batch = x.dim(0)?;
        let (kdim, p, xlen) = self.sizes();
        let co = self.c_out;
        let (kk, hw) = (self.g.taps(), self.g.y.n * self.g.x.n);
        let wo = self.g.x.out();
        let (par_batch, par) = Self::schedule(batch);
        let tiles = self.tiles();
        // Per example its own dWᵀ and db (summed in example order afterwards, so the result
        // does not depend on how the work was split: runs stay reproducible bit for bit).
        let mut dx = vec![0f32; batch * xlen];
        let mut dw_all = vec![0f32; batch * co * kdim];
        let mut db_all = vec![0f32; batch * co];
        // One example: ((dx, x), dY) and its (dW, db).
        type Example<'a> = (((&'a mut [f32], &'a [f32]), &'a [f32]), (&'a mut [f32], &'a mut [f32]));
        // dX of a stride-1 convolution is itself a stride-1 convolution of dY with the kernel
        // flipped and its channels swapped: unfolded like the forward (a K = C_out·kh·kw
        // product) instead of Wᵀ·dY (K = C_out, an output kh·kw times the input) folded back.
        let transposed = self.transposed();
        let flipped = transposed.as_ref().map(|_| self.flipped_weight(wv));
        let work = |(cols, dcols): &mut (Vec<f32>, Vec<f32>), (((dxb, xb), gb), (dwb, dbb)): Example| {
            for (d, row) in dbb.iter_mut().zip(gb.chunks(p)) {
                *d = row_sum(row);
            }
            for (i, &tile) in tiles.iter().enumerate() {
                let (start, tp) = (tile.0 * wo, (tile.1 - tile.0) * wo);
                let dy = Operand {
                    data: &gb[start..],
                    ld: p,
                    t: false,
                };
                let patches = self.patches(xb, cols, tile);
                // dW += dY[:, tile] · patches(tile)ᵀ, kept as dWᵀ (C_in·kh·kw × C_out): gemm
                // then reads the patches as they lie instead of packing them; d(patches) = Wᵀ ·
                // dY[:, tile].
                let (pd, pld) = if self.pointwise() {
                    (&patches[start..], p)
                } else {
                    (patches, tp)
                };
                matmul(
                    dwb,
                    (co, true),
                    (co, kdim, tp),
                    dy,
                    Operand {
                        data: pd,
                        ld: pld,
                        t: true,
                    },
                    i > 0,
                    par,
                );
                if self.pointwise() {
                    matmul(
                        &mut dxb[start..],
                        (p, false),
                        (kdim, tp, co),
                        Operand::dense(wv, kdim, true),
                        dy,
                        false,
                        par,
                    );
                } else if transposed.is_none() {
                    dcols.resize(kdim * tp, 0.0);
                    matmul(
                        dcols,
                        (tp, false),
                        (kdim, tp, co),
                        Operand::dense(wv, kdim, true),
                        dy,
                        false,
                        par,
                    );
                    for (c, plane) in dxb.chunks_mut(hw).enumerate() {
                        fold_plane(&self.g, &dcols[c * kk * tp..][..kk * tp], plane, tile.0, tile.1);
                    }
                }
            }
            if let (Some(t), Some(wt)) = (&transposed, &flipped) {
                let w_in = t.g.x.out();
                for tile in t.tiles() {
                    // dx starts as zeros (its allocation), so no bias fill.
                    t.forward_tile(&mut dxb[tile.0 * w_in..], hw, gb, wt, None, dcols, tile, par);
                }
            }
        };
        if par_batch {
            dx.par_chunks_mut(xlen)
                .zip(xv.par_chunks(xlen))
                .zip(gv.par_chunks(co * p))
                .zip(dw_all.par_chunks_mut(co * kdim).zip(db_all.par_chunks_mut(co)))
                .for_each_init(|| (Vec::new(), Vec::new()), work);
        } else {
            let mut scratch = (Vec::new(), Vec::new());
            for item in dx
                .chunks_mut(xlen)
                .zip(xv.chunks(xlen))
                .zip(gv.chunks(co * p))
                .zip(dw_all.chunks_mut(co * kdim).zip(db_all.chunks_mut(co)))
            {
                work(&mut scratch, item);
            }
        }
        let sum = |all: &[f32], n: usize| -> Vec<f32> {
            let mut out = all[..n].to_vec();
            for part in all.chunks(n).skip(1) {
                out.iter_mut().zip(part).for_each(|(o, v)| *o += v);
            }
            out
        };
        let (dw_t, db) = (sum(&dw_all, co * kdim), sum(&db_all, co));
        let mut dw = vec![0f32; co * kdim];
        for (r, row) in dw_t.chunks(co).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                dw[o * kdim + r] = v;
            }
        }
        drop(guards);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

multiversion! {
    /// `Σ row` in lanes (see `stats`), as f32.
    fn row_sum(row: &[f32]) -> f32 {
        chunked_sum(row, |x| x) as f32
    }
}

/// 2-D convolution of `x (B, C_in, H, W)` with `weight (C_out, C_in, kh, kw)` and `bias
/// (C_out)` under the per-axis `geo`: on the CPU one fused op (per-example unfold + gemm, the
/// backward by hand), on other devices [`conv2d_reference`].
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: &Tensor, geo: Geometry) -> CResult<Tensor> {
    if !x.device().is_cpu() {
        return conv2d_reference(x, weight, bias, geo);
    }
    let g = patches(x, weight, bias, geo)?;
    let c_out = weight.dim(0)?;
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, Conv { g, c_out })
}

/// Checks the shapes fit and returns the convolution's geometry.
fn patches(x: &Tensor, weight: &Tensor, bias: &Tensor, geo: Geometry) -> CResult<Patches> {
    let (co, ci, kh, kw) = weight.dims4()?;
    let (_, c, h, w) = x.dims4()?;
    if c != ci || bias.dims() != [co] {
        candle_core::bail!(
            "conv2d: input {:?}, weight {:?}, bias {:?} do not fit",
            x.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    // Axis 0 (rows) or 1 (columns) of the per-axis geometry.
    let axis = |n: usize, k: usize, i: usize| {
        let pick = |t: (usize, usize)| if i == 0 { t.0 } else { t.1 };
        Axis {
            n,
            k,
            s: pick(geo.stride),
            p: pick(geo.pad),
            d: pick(geo.dilation),
        }
    };
    let (y, xa) = (axis(h, kh, 0), axis(w, kw, 1));
    if !y.fits() || !xa.fits() {
        candle_core::bail!("conv2d: kernel {kh}x{kw} under {geo:?} does not fit a {h}x{w} plane");
    }
    Ok(Patches { c, y, x: xa })
}

/// The same convolution composed of candle ops (any device; the fused op's reference in the
/// tests): candle's `conv2d` when both axes share stride, padding and dilation; otherwise
/// explicit zero padding, the kernel dilated by inserting zeros, a stride-1 convolution and
/// the strided outputs picked from it.
pub fn conv2d_reference(x: &Tensor, weight: &Tensor, bias: &Tensor, geo: Geometry) -> CResult<Tensor> {
    let g = patches(x, weight, bias, geo)?;
    let co = weight.dim(0)?;
    let bias = bias.reshape((1, co, 1, 1))?;
    let Geometry { stride, pad, dilation } = geo;
    if stride.0 == stride.1 && pad.0 == pad.1 && dilation.0 == dilation.1 {
        return x.conv2d(weight, pad.0, stride.0, dilation.0, 1)?.broadcast_add(&bias);
    }
    let x = x.pad_with_zeros(2, pad.0, pad.0)?.pad_with_zeros(3, pad.1, pad.1)?;
    let mut w = weight.clone();
    for (axis, a) in [(2, g.y), (3, g.x)] {
        if a.d > 1 {
            let mut shape = w.dims().to_vec();
            shape.insert(axis + 1, 1);
            let spaced = w.reshape(shape)?.pad_with_zeros(axis + 1, 0, a.d - 1)?;
            let mut merged = w.dims().to_vec();
            merged[axis] = a.k * a.d;
            w = spaced.reshape(merged)?.narrow(axis, 0, a.span())?;
        }
    }
    let mut y = x.conv2d(&w.contiguous()?, 0, 1, 1, 1)?;
    for (axis, a) in [(2, g.y), (3, g.x)] {
        if a.s > 1 {
            let no = a.out();
            let have = y.dim(axis)?;
            let y_full = y
                .pad_with_zeros(axis, 0, no * a.s - have.min(no * a.s))?
                .narrow(axis, 0, no * a.s)?;
            let mut shape = y_full.dims().to_vec();
            shape[axis] = no;
            shape.insert(axis + 1, a.s);
            y = y_full.reshape(shape)?.narrow(axis + 1, 0, 1)?.squeeze(axis + 1)?;
        }
    }
    y.broadcast_add(&bias)
}

// ---------------------------------------------------------------------------------------------
// GroupNorm + scale/shift + SiLU

struct GroupNormAct {
    groups: usize,
    eps: f64,
    silu: bool,
}

/// `e^x` without branches or calls, so that loops over slices vectorise (libm's `expf` is a
/// scalar call per element): `x = n·ln 2 + r` with `|r| <= ln 2 / 2` (`n` rounded by the
/// 1.5·2^23 addition, no `floor` call), Cephes' degree-6 polynomial for `e^r`, `2^n` built in
/// the exponent bits. `x` is clamped to [-87, 88] (no infinities, no subnormal scale); relative
/// error under 3e-7 there (tests/model_fused.rs).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p =
        ((((1.987_569_2e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid(u: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-u))
}

/// Lanes of the chunked reductions below: partial sums in `LANES` independent accumulators (so
/// the loops vectorise), each chunk of `LANES · 32` values folded into f64 totals, in a fixed
/// order (the result does not depend on threads).
const LANES: usize = 16;
const CHUNK: usize = LANES * 32;

/// Mean and 1/std of one group's values: the mean first, then the mean squared deviation
/// (f32 lanes per chunk, f64 across chunks).
#[inline(always)]
fn stats(v: &[f32], eps: f64) -> (f32, f32) {
    let n = v.len() as f64;
    let mean = (chunked_sum(v, |x| x) / n) as f32;
    let var = chunked_sum(v, |x| {
        let d = x - mean;
        d * d
    }) / n;
    (mean, (1.0 / (var + eps).sqrt()) as f32)
}

/// `Σ f(x)` over `v`: f32 lanes per chunk of `CHUNK` values, f64 across chunks.
#[inline(always)]
fn chunked_sum(v: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    let mut total = 0f64;
    for chunk in v.chunks(CHUNK) {
        let mut acc = [0f32; LANES];
        lanes(&mut acc, chunk, f);
        total += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
    }
    total
}

/// `acc[l] += f(x)` over `xs` in lanes (`xs.len()` need not divide by `LANES`).
#[inline(always)]
fn lanes(acc: &mut [f32; LANES], xs: &[f32], f: impl Fn(f32) -> f32) {
    let mut it = xs.chunks_exact(LANES);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    for (a, &x) in acc.iter_mut().zip(it.remainder()) {
        *a += f(x);
    }
}

multiversion! {
    /// One group of the forward: `out = act(x̂ · scale + shift)` per channel of the group
    /// (`x` holds `scale.len()` channel planes).
    fn group_forward(out: &mut [f32], xs: &[f32], scale: &[f32], shift: &[f32], eps: f64, silu: bool) {
        let (mean, rstd) = stats(xs, eps);
        let hw = xs.len() / scale.len();
        for (j, (&s, &t)) in scale.iter().zip(shift).enumerate() {
            let (a, sh) = (s * rstd, t - mean * rstd * s);
            let (oc, xc) = (&mut out[j * hw..][..hw], &xs[j * hw..][..hw]);
            if silu {
                for (o, &x) in oc.iter_mut().zip(xc) {
                    let u = x * a + sh;
                    *o = u * sigmoid(u);
                }
            } else {
                for (o, &x) in oc.iter_mut().zip(xc) {
                    *o = x * a + sh;
                }
            }
        }
    }
}

multiversion! {
    /// One group of the backward: `dx` of the group into `dxg`, and `(dscale, dshift)` per
    /// channel.
    #[allow(clippy::too_many_arguments)]
    fn group_backward(
        dxg: &mut [f32],
        xs: &[f32],
        gs: &[f32],
        scale: &[f32],
        shift: &[f32],
        eps: f64,
        silu: bool,
    ) -> Vec<(f32, f32)> {
        let (mean, rstd) = stats(xs, eps);
        let hw = xs.len() / scale.len();
        let mut out = Vec::with_capacity(scale.len());
        // Pass 1: the gradient w.r.t. the normalised value, into dx; the scale/shift gradients and
        // the two group sums the normalisation's backward needs (in lanes per chunk, see `stats`).
        let (mut m1, mut m2) = (0f64, 0f64);
        for (j, (&s, &t)) in scale.iter().zip(shift).enumerate() {
            let (xc, gc, dc) = (&xs[j * hw..][..hw], &gs[j * hw..][..hw], &mut dxg[j * hw..][..hw]);
            let (mut ds, mut dt) = (0f64, 0f64);
            for ((dk, xk), gk) in dc.chunks_mut(CHUNK).zip(xc.chunks(CHUNK)).zip(gc.chunks(CHUNK)) {
                let mut acc = [[0f32; LANES]; 4];
                let body = |acc: &mut [[f32; LANES]; 4], l: usize, d: &mut f32, x: f32, g: f32| {
                    let xh = (x - mean) * rstd;
                    let gu = if silu {
                        let u = xh * s + t;
                        let sg = sigmoid(u);
                        g * sg * (1.0 + u * (1.0 - sg))
                    } else {
                        g
                    };
                    let dxh = gu * s;
                    acc[0][l] += gu * xh;
                    acc[1][l] += gu;
                    acc[2][l] += dxh;
                    acc[3][l] += dxh * xh;
                    *d = dxh;
                };
                let mut d_it = dk.chunks_exact_mut(LANES);
                let (mut x_it, mut g_it) = (xk.chunks_exact(LANES), gk.chunks_exact(LANES));
                for ((d, x), g) in (&mut d_it).zip(&mut x_it).zip(&mut g_it) {
                    for l in 0..LANES {
                        body(&mut acc, l, &mut d[l], x[l], g[l]);
                    }
                }
                let rest = d_it
                    .into_remainder()
                    .iter_mut()
                    .zip(x_it.remainder())
                    .zip(g_it.remainder());
                for (l, ((d, &x), &g)) in rest.enumerate() {
                    body(&mut acc, l, d, x, g);
                }
                let sum = |a: &[f32; LANES]| a.iter().map(|&v| f64::from(v)).sum::<f64>();
                ds += sum(&acc[0]);
                dt += sum(&acc[1]);
                m1 += sum(&acc[2]);
                m2 += sum(&acc[3]);
            }
            out.push((ds as f32, dt as f32));
        }
        let n = xs.len() as f64;
        let (m1, m2) = ((m1 / n) as f32, (m2 / n) as f32);
        // Pass 2: dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)).
        for (d, &x) in dxg.iter_mut().zip(xs) {
            let xh = (x - mean) * rstd;
            *d = rstd * (*d - m1 - xh * m2);
        }
        out
    }
}

impl GroupNormAct {
    fn dims(&self, l: &Layout) -> CResult<(usize, usize, usize)> {
        let d = l.dims();
        if d.len() < 2 || !d[1].is_multiple_of(self.groups) {
            candle_core::bail!("group norm: {} groups do not divide the shape {d:?}", self.groups);
        }
        Ok((d[0], d[1], d[2..].iter().product()))
    }
}

impl CustomOp3 for GroupNormAct {
    fn name(&self) -> &'static str {
        "splitflow-group-norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let [x, scale, shift] = three([(s1, l1), (s2, l2), (s3, l3)], self.name())?;
        let (_, c, hw) = self.dims(l1)?;
        let cg = c / self.groups;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(cg * hw)
            .zip(x.par_chunks(cg * hw))
            .enumerate()
            .for_each(|(i, (o, xs))| {
                let c0 = (i / self.groups) * c + (i % self.groups) * cg;
                let (sc, sh) = (&scale[c0..c0 + cg], &shift[c0..c0 + cg]);
                group_forward(o, xs, sc, sh, self.eps, self.silu);
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, c, hw) = self.dims(x.layout())?;
        let cg = c / self.groups;
        let name = self.name();
        let ts = [
            x.contiguous()?,
            scale.contiguous()?,
            shift.contiguous()?,
            grad.contiguous()?,
        ];
        let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
        let data = guards
            .iter()
            .map(|(st, l)| cpu_data(st, l, name))
            .collect::<CResult<Vec<_>>>()?;
        let (dx, dscale, dshift) = self.backward(data[0], data[1], data[2], data[3], c, cg, hw);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dscale, scale.shape(), dev)?),
            Some(Tensor::from_vec(dshift, shift.shape(), dev)?),
        ))
    }
}

impl GroupNormAct {
    /// `(dx, dscale, dshift)` for the data of `x`, `scale`, `shift` and the output gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        xv: &[f32],
        sc: &[f32],
        sh: &[f32],
        gr: &[f32],
        c: usize,
        cg: usize,
        hw: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let n_groups = xv.len() / (cg * hw);
        let mut dx = vec![0f32; xv.len()];
        // Per group: (dscale, dshift) of its channels.
        let per: Vec<Vec<(f32, f32)>> = dx
            .par_chunks_mut(cg * hw)
            .zip(xv.par_chunks(cg * hw).zip(gr.par_chunks(cg * hw)))
            .enumerate()
            .map(|(i, (dxg, (xs, gs)))| {
                let c0 = (i / self.groups) * c + (i % self.groups) * cg;
                let (sc, sh) = (&sc[c0..c0 + cg], &sh[c0..c0 + cg]);
                group_backward(dxg, xs, gs, sc, sh, self.eps, self.silu)
            })
            .collect();
        let mut dscale = vec![0f32; n_groups * cg];
        let mut dshift = vec![0f32; n_groups * cg];
        for (i, g) in per.iter().enumerate() {
            for (j, &(ds, dt)) in g.iter().enumerate() {
                dscale[i * cg + j] = ds;
                dshift[i * cg + j] = dt;
            }
        }
        (dx, dscale, dshift)
    }
}

/// `act(GroupNorm(x) · scale + shift)` for `x (B, C, ...)` with `groups` groups (no affine of
/// its own), `scale`, `shift` `(B, C)`, `act` SiLU when `silu`, else the identity. One fused
/// kernel on the CPU; candle ops elsewhere.
pub fn group_norm_act(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> CResult<Tensor> {
    if x.device().is_cpu() {
        let op = GroupNormAct { groups, eps, silu };
        return x
            .contiguous()?
            .apply_op3(&scale.contiguous()?, &shift.contiguous()?, op);
    }
    group_norm_act_reference(x, scale, shift, groups, eps, silu)
}

/// [`group_norm_act`] composed of candle ops (any device; the tests' reference).
pub fn group_norm_act_reference(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> CResult<Tensor> {
    let dims = x.dims().to_vec();
    let (b, c) = (dims[0], dims[1]);
    let g = x.reshape((b, groups, ()))?;
    let mean = g.mean_keepdim(D::Minus1)?;
    let centred = g.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let xh = centred.broadcast_div(&(var + eps)?.sqrt()?)?.reshape(dims.as_slice())?;
    let mut bshape = vec![b, c];
    bshape.resize(dims.len(), 1);
    let y = xh
        .broadcast_mul(&scale.reshape(bshape.as_slice())?)?
        .broadcast_add(&shift.reshape(bshape.as_slice())?)?;
    if silu { y.silu() } else { Ok(y) }
}

// ---------------------------------------------------------------------------------------------
// Nearest upsampling

struct Upsample {
    fy: usize,
    fx: usize,
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "splitflow-upsample"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let (b, c, h, w) = l.shape().dims4()?;
        let (fy, fx) = (self.fy, self.fx);
        let mut out = vec![0f32; fy * fx * x.len()];
        out.par_chunks_mut(fy * fx * w).enumerate().for_each(|(r, o)| {
            let src = &x[r * w..][..w];
            let (first, rest) = o.split_at_mut(fx * w);
            for (run, &v) in first.chunks_exact_mut(fx).zip(src) {
                run.fill(v);
            }
            for copy in rest.chunks_exact_mut(fx * w) {
                copy.copy_from_slice(first);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, c, fy * h, fx * w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let w = arg.dim(3)?;
        let (fy, fx) = (self.fy, self.fx);
        let dx = with_data(grad, self.name(), |g| {
            let mut dx = vec![0f32; g.len() / (fy * fx)];
            dx.par_chunks_mut(w).zip(g.par_chunks(fy * fx * w)).for_each(|(d, gs)| {
                for copy in gs.chunks_exact(fx * w) {
                    // Element by element, in order (the same sums as a 2×2 kernel's
                    // `a + b + c + d`).
                    for (d, run) in d.iter_mut().zip(copy.chunks_exact(fx)) {
                        for v in run {
                            *d += v;
                        }
                    }
                }
            });
            dx
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// Nearest-neighbour upsampling of `(B, C, h, w)` by `(fy, fx)` (positive factors): a kernel on
/// the CPU; elsewhere broadcast and reshape (whose gradient is a plain sum, where candle's
/// `upsample_nearest2d` backward runs one small convolution per channel).
pub fn upsample(x: &Tensor, (fy, fx): (usize, usize)) -> CResult<Tensor> {
    if fy == 0 || fx == 0 {
        candle_core::bail!("upsample: factors must be positive, got {fy}x{fx}");
    }
    if fy == 1 && fx == 1 {
        return Ok(x.clone());
    }
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(Upsample { fy, fx });
    }
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, fy, w, fx))?
        .contiguous()?
        .reshape((b, c, fy * h, fx * w))
}
