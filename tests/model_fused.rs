//! The fused CPU kernels of src/model/fused.rs against candle's own ops: values and gradients
//! of the convolution (im2col + matmul vs `conv2d`), GroupNorm + scale/shift + SiLU (vs the
//! composed candle ops) and nearest ×2 upsampling (vs `upsample_nearest2d`), on shapes that
//! exercise padding borders, odd sizes and stride 2.

mod common;

use candle_core::{D, Device, Tensor, Var};
use splitflow::model::fused;

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
    ];
    for (i, &(b, ci, co, h, w, k, s, p)) in cases.iter().enumerate() {
        let seed = 10 * i as u32;
        let x = Var::from_tensor(&rand(&[b, ci, h, w], seed)).unwrap();
        let wt = Var::from_tensor(&rand(&[co, ci, k, k], seed + 1)).unwrap();
        let bias = Var::from_tensor(&rand(&[co], seed + 2)).unwrap();
        let ours = fused::conv2d(x.as_tensor(), wt.as_tensor(), bias.as_tensor(), s, p).unwrap();
        let theirs = x
            .as_tensor()
            .conv2d(wt.as_tensor(), p, s, 1, 1)
            .unwrap()
            .broadcast_add(&bias.as_tensor().reshape((1, co, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims(), "case {i}");
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-5 * max_abs(&theirs).max(1.0), "case {i}: forward differs by {d}");
        let probe = rand(theirs.dims(), seed + 3);
        let vars = [("x", &x), ("weight", &wt), ("bias", &bias)];
        assert_same_gradients(&format!("case {i}"), &vars, (&ours, &theirs), &probe, 1e-4);
    }
}

#[test]
fn conv2d_rejects_shapes_that_do_not_fit() {
    let x = rand(&[1, 2, 3, 3], 7);
    let bias = rand(&[4], 8);
    // Kernel larger than the padded plane.
    assert!(fused::conv2d(&x, &rand(&[4, 2, 5, 5], 9), &bias, 1, 0).is_err());
    // Channel count differs from the weight's.
    assert!(fused::conv2d(&x, &rand(&[4, 3, 3, 3], 9), &bias, 1, 1).is_err());
    // Bias of the wrong size.
    assert!(fused::conv2d(&x, &rand(&[4, 2, 3, 3], 9), &rand(&[3], 1), 1, 1).is_err());
}

/// The batch-parallel and the gemm-parallel schedules give the same result (one example vs
/// the same example inside a batch).
#[test]
fn conv2d_is_the_same_alone_and_inside_a_batch() {
    let xs = rand(&[3, 4, 9, 11], 21);
    let w = rand(&[5, 4, 3, 3], 22);
    let b = rand(&[5], 23);
    let batch = fused::conv2d(&xs, &w, &b, 1, 1).unwrap();
    for i in 0..3 {
        let one = fused::conv2d(&xs.narrow(0, i, 1).unwrap(), &w, &b, 1, 1).unwrap();
        assert!(max_abs_diff(&one, &batch.narrow(0, i, 1).unwrap()) < 1e-5);
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
fn upsample2_matches_candle_in_value_and_gradient() {
    let x = Var::from_tensor(&rand(&[2, 3, 4, 5], 9)).unwrap();
    let ours = fused::upsample2(x.as_tensor()).unwrap();
    let theirs = x.as_tensor().upsample_nearest2d(8, 10).unwrap();
    assert_eq!(max_abs_diff(&ours, &theirs), 0.0);
    let probe = rand(theirs.dims(), 11);
    let a = grads(&[&x], &ours, &probe);
    let b = grads(&[&x], &theirs, &probe);
    assert!(max_abs_diff(&a[0], &b[0]) < 1e-5);
}
