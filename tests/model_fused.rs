//! The fused CPU kernels of src/model/fused.rs against candle's own ops: values and gradients
//! of the convolution (im2col + matmul vs `conv2d`), GroupNorm + scale/shift + SiLU (vs the
//! composed candle ops) and nearest upsampling (vs `upsample_nearest2d`), on shapes that
//! exercise padding borders, odd sizes, stride 2, non-square kernels, per-axis strides and
//! dilations.

mod common;

use candle_core::{D, Device, Tensor, Var};
use splitflow::model::fused;
use splitflow::model::fused::Geometry;

fn rand(shape: &[usize], seed: u32) -> Tensor {
    common::uniform_tensor(shape, seed)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Gradients of `sum(f(vars) · probe)` with respect to each var.
fn grads(vars: &[&Var], y: &Tensor, probe: &Tensor) -> Vec<Tensor> {
    let loss = (y * probe).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    vars.iter().map(|v| g.get(v.as_tensor()).unwrap().clone()).collect()
}

/// The gradients of `sum(y · probe)` through `ours` and `theirs` agree for every var, within
/// `tol` relative to the largest (at least 1).
fn assert_same_gradients(
    case: &str,
    vars: &[(&str, &Var)],
    (ours, theirs): (&Tensor, &Tensor),
    probe: &Tensor,
    tol: f32,
) {
    let vs: Vec<&Var> = vars.iter().map(|v| v.1).collect();
    let g_ours = grads(&vs, ours, probe);
    let g_theirs = grads(&vs, theirs, probe);
    for ((name, _), (a, b)) in vars.iter().zip(g_ours.iter().zip(&g_theirs)) {
        let d = max_abs_diff(a, b);
        assert!(
            d < tol * max_abs(b).max(1.0),
            "{case}: gradient of {name} differs by {d} (max {})",
            max_abs(b)
        );
    }
}

#[test]
fn conv2d_matches_candle_in_value_and_gradient() {
    // (B, C_in, C_out, H, W, k, stride, pad)
    let cases = [
        (2, 3, 5, 7, 9, 3, 1, 1),
        (1, 4, 2, 8, 6, 1, 1, 0),
        (3, 2, 4, 8, 10, 2, 2, 0),
        (1, 1, 3, 2, 3, 3, 1, 1), // planes smaller than the kernel's reach
        (2, 2, 2, 5, 5, 5, 1, 2),
        // Planes whose patches exceed one tile (128 Ki floats): 11 tiles of 7 output rows
        // and one of 3, alone (tiles in parallel) and in a batch (tiles in order); stride 2.
        (1, 16, 6, 73, 130, 3, 1, 1),
        (3, 16, 6, 73, 130, 3, 1, 1),
        (2, 16, 4, 75, 131, 3, 2, 1),
    ];
    for (i, &(b, ci, co, h, w, k, s, p)) in cases.iter().enumerate() {
        // With one stride and padding for both axes the reference is candle's conv2d + bias.
        conv_matches_reference(
            &format!("case {i}"),
            [b, ci, co, h, w, k, k],
            Geometry::square(s, p),
            10 * i as u32,
        );
    }
}

/// The fused convolution against [`fused::conv2d_reference`] on random data of the given
/// sizes `[B, C_in, C_out, H, W, kh, kw]`: values, and the gradients of all three inputs.
fn conv_matches_reference(case: &str, [b, ci, co, h, w, kh, kw]: [usize; 7], g: Geometry, seed: u32) {
    let x = Var::from_tensor(&rand(&[b, ci, h, w], seed)).unwrap();
    let wt = Var::from_tensor(&rand(&[co, ci, kh, kw], seed + 1)).unwrap();
    let bias = Var::from_tensor(&rand(&[co], seed + 2)).unwrap();
    let ours = fused::conv2d(x.as_tensor(), wt.as_tensor(), bias.as_tensor(), g).unwrap();
    let theirs = fused::conv2d_reference(x.as_tensor(), wt.as_tensor(), bias.as_tensor(), g).unwrap();
    assert_eq!(ours.dims(), theirs.dims(), "{case}");
    let d = max_abs_diff(&ours, &theirs);
    assert!(d < 1e-5 * max_abs(&theirs).max(1.0), "{case}: forward differs by {d}");
    let probe = rand(theirs.dims(), seed + 3);
    let vars = [("x", &x), ("weight", &wt), ("bias", &bias)];
    assert_same_gradients(case, &vars, (&ours, &theirs), &probe, 1e-4);
}

#[test]
fn conv2d_rejects_shapes_that_do_not_fit() {
    let x = rand(&[1, 2, 3, 3], 7);
    let bias = rand(&[4], 8);
    // Kernel larger than the padded plane.
    assert!(fused::conv2d(&x, &rand(&[4, 2, 5, 5], 9), &bias, Geometry::square(1, 0)).is_err());
    // Channel count differs from the weight's.
    assert!(fused::conv2d(&x, &rand(&[4, 3, 3, 3], 9), &bias, Geometry::square(1, 1)).is_err());
    // Bias of the wrong size.
    assert!(fused::conv2d(&x, &rand(&[4, 2, 3, 3], 9), &rand(&[3], 1), Geometry::square(1, 1)).is_err());
}

/// The batch-parallel and the gemm-parallel schedules give the same result (one example vs
/// the same example inside a batch).
#[test]
fn conv2d_is_the_same_alone_and_inside_a_batch() {
    let xs = rand(&[3, 4, 9, 11], 21);
    let w = rand(&[5, 4, 3, 3], 22);
    let b = rand(&[5], 23);
    let batch = fused::conv2d(&xs, &w, &b, Geometry::square(1, 1)).unwrap();
    for i in 0..3 {
        let one = fused::conv2d(&xs.narrow(0, i, 1).unwrap(), &w, &b, Geometry::square(1, 1)).unwrap();
        assert!(max_abs_diff(&one, &batch.narrow(0, i, 1).unwrap()) < 1e-5);
    }
    // The same for a plane cut into tiles: the parallel tiles of one example equal the
    // in-order tiles of the batch bit for bit (the same products over the same tiles).
    let xs = rand(&[2, 16, 73, 130], 24);
    let w = rand(&[6, 16, 3, 3], 25);
    let b = rand(&[6], 26);
    let batch = fused::conv2d(&xs, &w, &b, Geometry::square(1, 1)).unwrap();
    for i in 0..2 {
        let one = fused::conv2d(&xs.narrow(0, i, 1).unwrap(), &w, &b, Geometry::square(1, 1)).unwrap();
        assert_eq!(max_abs_diff(&one, &batch.narrow(0, i, 1).unwrap()), 0.0);
    }
}

#[test]
fn group_norm_act_matches_the_composed_ops_in_value_and_gradient() {
    // (B, C, H, W, groups, silu)
    let cases = [
        (2, 8, 5, 7, 4, true),
        (3, 6, 4, 4, 3, false),
        (1, 4, 1, 9, 1, true),
        (2, 12, 6, 3, 12, true),
    ];
    for (i, &(b, c, h, w, g, silu)) in cases.iter().enumerate() {
        let seed = 100 + 10 * i as u32;
        // An offset and scale so the normalisation matters.
        let x = Var::from_tensor(&((rand(&[b, c, h, w], seed) * 3.0).unwrap() + 0.7).unwrap()).unwrap();
        let scale = Var::from_tensor(&(rand(&[b, c], seed + 1) + 1.0).unwrap()).unwrap();
        let shift = Var::from_tensor(&rand(&[b, c], seed + 2)).unwrap();
        let ours = fused::group_norm_act(x.as_tensor(), scale.as_tensor(), shift.as_tensor(), g, 1e-5, silu).unwrap();
        let theirs =
            fused::group_norm_act_reference(x.as_tensor(), scale.as_tensor(), shift.as_tensor(), g, 1e-5, silu)
                .unwrap();
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-5, "case {i}: forward differs by {d}");
        let probe = rand(theirs.dims(), seed + 3);
        let vars = [("x", &x), ("scale", &scale), ("shift", &shift)];
        assert_same_gradients(&format!("case {i}"), &vars, (&ours, &theirs), &probe, 2e-4);
    }
}

#[test]
fn group_norm_act_output_is_normalised_per_group() {
    let x = ((rand(&[2, 4, 8, 8], 5) * 4.0).unwrap() + 3.0).unwrap();
    let ones = Tensor::ones((2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let zeros = ones.zeros_like().unwrap();
    let y = fused::group_norm_act(&x, &ones, &zeros, 2, 1e-5, false).unwrap();
    let g = y.reshape((2, 2, 128)).unwrap();
    let mean = g.mean(D::Minus1).unwrap();
    let var = g.sqr().unwrap().mean(D::Minus1).unwrap();
    assert!(max_abs(&mean) < 1e-5);
    assert!(max_abs_diff(&var, &var.ones_like().unwrap()) < 1e-3);
}

#[test]
fn upsample_matches_candle_in_value_and_gradient() {
    for (i, &(fy, fx)) in [(2, 2), (1, 2), (3, 1), (2, 3)].iter().enumerate() {
        let x = Var::from_tensor(&rand(&[2, 3, 4, 5], 9 + i as u32)).unwrap();
        let ours = fused::upsample(x.as_tensor(), (fy, fx)).unwrap();
        let theirs = x.as_tensor().upsample_nearest2d(4 * fy, 5 * fx).unwrap();
        assert_eq!(max_abs_diff(&ours, &theirs), 0.0, "factors {fy}x{fx}");
        // candle differentiates uniform factors only: broadcast + reshape otherwise.
        let composed = x
            .as_tensor()
            .reshape((2, 3, 4, 1, 5, 1))
            .unwrap()
            .broadcast_as((2, 3, 4, fy, 5, fx))
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((2, 3, 4 * fy, 5 * fx))
            .unwrap();
        let theirs = if fy == fx { theirs } else { composed };
        let probe = rand(theirs.dims(), 11);
        let a = grads(&[&x], &ours, &probe);
        let b = grads(&[&x], &theirs, &probe);
        assert!(max_abs_diff(&a[0], &b[0]) < 1e-5, "factors {fy}x{fx}");
    }
    let x = rand(&[1, 1, 2, 2], 3);
    assert_eq!(max_abs_diff(&fused::upsample(&x, (1, 1)).unwrap(), &x), 0.0);
    assert!(fused::upsample(&x, (0, 2)).is_err());
}

/// `y[n, o, i, j] = bias[o] + Σ x[n, c, i·sh + a·dh − ph, j·sw + b·dw − pw] · w[o, c, a, b]`
/// over the taps that land inside, by plain loops.
fn direct_conv(x: &Tensor, w: &Tensor, bias: &Tensor, g: Geometry) -> Tensor {
    let (n, c, h, wd) = x.dims4().unwrap();
    let (co, _, kh, kw) = w.dims4().unwrap();
    let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let wv: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let bv: Vec<f32> = bias.to_vec1().unwrap();
    let out = |len: usize, k: usize, s: usize, p: usize, d: usize| (len + 2 * p - d * (k - 1) - 1) / s + 1;
    let ho = out(h, kh, g.stride.0, g.pad.0, g.dilation.0);
    let wo = out(wd, kw, g.stride.1, g.pad.1, g.dilation.1);
    let mut y = vec![0f32; n * co * ho * wo];
    for b in 0..n {
        for o in 0..co {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bv[o];
                    for ch in 0..c {
                        for a in 0..kh {
                            for t in 0..kw {
                                let iy = (i * g.stride.0 + a * g.dilation.0) as isize - g.pad.0 as isize;
                                let ix = (j * g.stride.1 + t * g.dilation.1) as isize - g.pad.1 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((b * c + ch) * h + iy as usize) * wd + ix as usize;
                                acc += xv[xi] * wv[((o * c + ch) * kh + a) * kw + t];
                            }
                        }
                    }
                    y[((b * co + o) * ho + i) * wo + j] = acc;
                }
            }
        }
    }
    Tensor::from_vec(y, (n, co, ho, wo), &Device::Cpu).unwrap()
}

/// Per-axis kernels, strides and dilations: the fused op against the composed reference
/// (explicit padding, zero-interleaved kernel, subsampled stride-1 output), values and
/// gradients; and the reference itself against candle where candle can express the case.
#[test]
fn conv2d_with_per_axis_geometry_matches_the_reference() {
    let geo = |stride, pad, dilation| Geometry { stride, pad, dilation };
    // (B, C_in, C_out, H, W, kh, kw, geometry)
    let cases = [
        (2, 3, 4, 6, 9, 1, 3, geo((1, 1), (0, 1), (1, 1))),
        (1, 2, 3, 16, 7, 3, 3, geo((1, 1), (4, 1), (4, 1))),
        (2, 4, 2, 8, 10, 1, 2, geo((1, 2), (0, 0), (1, 1))),
        (1, 2, 2, 5, 6, 3, 1, geo((1, 1), (2, 0), (2, 1))), // dilated reach = plane height
        (2, 3, 5, 9, 8, 3, 3, geo((1, 1), (8, 1), (8, 1))), // taps land outside but one
        (1, 2, 3, 7, 9, 3, 3, geo((2, 2), (1, 1), (2, 2))),
    ];
    for (i, &(b, ci, co, h, w, kh, kw, g)) in cases.iter().enumerate() {
        conv_matches_reference(&format!("case {i}"), [b, ci, co, h, w, kh, kw], g, 300 + 10 * i as u32);
    }
    // The reference's own anisotropic branch against a direct loop over the definition.
    for (i, &(b, ci, co, h, w, kh, kw, g)) in cases.iter().enumerate() {
        let seed = 500 + 10 * i as u32;
        let (x, wt, bias) = (
            rand(&[b, ci, h, w], seed),
            rand(&[co, ci, kh, kw], seed + 1),
            rand(&[co], seed + 2),
        );
        let want = direct_conv(&x, &wt, &bias, g);
        let got = fused::conv2d_reference(&x, &wt, &bias, g).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5, "case {i}");
    }
    // Output sizes: a stride-2 axis with an odd input.
    let y = fused::conv2d(
        &rand(&[1, 1, 7, 4], 5),
        &rand(&[1, 1, 1, 2], 6),
        &rand(&[1], 7),
        geo((1, 2), (0, 0), (1, 1)),
    )
    .unwrap();
    assert_eq!(y.dims(), [1, 1, 7, 2]);
    // A dilated kernel longer than the padded plane is refused.
    assert!(
        fused::conv2d(
            &rand(&[1, 1, 4, 4], 5),
            &rand(&[1, 1, 3, 3], 6),
            &rand(&[1], 7),
            geo((1, 1), (0, 0), (2, 2))
        )
        .is_err()
    );
}

/// The branch-free exp of the fused kernels against `f32::exp`: relative error under 3e-7 on
/// [-87, 88] (a dense grid and the ends), the clamp beyond, finite at the ends, NaN kept.
#[test]
fn exp_fast_matches_libm() {
    let mut worst = 0f64;
    for i in 0..=1_750_000 {
        let x = -87.0 + i as f32 * 1e-4;
        let (got, want) = (fused::exp_fast(x), x.exp());
        let rel = ((f64::from(got) - f64::from(want)) / f64::from(want)).abs();
        worst = worst.max(rel);
    }
    assert!(worst < 3e-7, "worst relative error {worst:e}");
    assert_eq!(fused::exp_fast(0.0), 1.0);
    assert_eq!(fused::exp_fast(200.0), fused::exp_fast(88.0));
    assert_eq!(fused::exp_fast(-200.0), fused::exp_fast(-87.0));
    assert!(fused::exp_fast(88.0).is_finite() && fused::exp_fast(-87.0) > 0.0);
    assert!(fused::exp_fast(f32::NAN).is_nan());
}
