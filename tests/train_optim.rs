//! Optimiser pieces (src/train/optim.rs): AdamW, the schedule and clipping against PyTorch
//! reference numbers (scripts/reference/optim_reference.py), state round trips through a
//! safetensors file, EMA maths.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use splitflow::train::optim::{AdamW, AdamWConfig, Ema, clip_grad_norm, lr_at, named_vars};

const CPU: Device = Device::Cpu;

// Output of scripts/reference/optim_reference.py, torch 2.15.0+cu132 (CPU, f32).
const LRS: [f64; 7] = [
    0.05,
    0.1,
    0.1,
    0.08681980515339464,
    0.05500000000000001,
    0.023180194846605363,
    0.01,
];
const LOSSES: [f32; 7] = [
    0.80404264, 0.6966048, 0.5645053, 0.50000817, 0.45630357, 0.43050167, 0.4199592,
];
const NORMS: [f32; 7] = [
    0.8929317, 0.75497067, 0.45659617, 0.3816941, 0.3678259, 0.3397054, 0.33189735,
];
const W_AFTER: [f32; 42] = [
    0.5475,
    -0.2485,
    0.746,
    -0.547,
    0.149,
    0.44799998,
    0.6371094,
    -0.1458869,
    0.6384395,
    -0.44140548,
    0.052101046,
    0.5413166,
    0.61348677,
    -0.044672266,
    0.53348845,
    -0.33683142,
    0.0109866485,
    0.6094892,
    0.55816656,
    0.034624342,
    0.45584285,
    -0.24668579,
    0.015461063,
    0.6405595,
    0.51498306,
    0.07903522,
    0.409911,
    -0.19016592,
    0.029721547,
    0.64750063,
    0.4949567,
    0.09611613,
    0.38971663,
    -0.16670921,
    0.03701798,
    0.6470984,
    0.4858197,
    0.10304403,
    0.38054845,
    -0.1567458,
    0.0400714,
    0.64595556,
];
const B_AFTER: [f32; 14] = [
    0.14999999,
    -0.15,
    0.25012484,
    -0.050450914,
    0.3496451,
    0.04651656,
    0.42770168,
    0.1259952,
    0.46807733,
    0.17168728,
    0.48061186,
    0.18785815,
    0.48418805,
    0.19334593,
];
const SCHED_W3_T10: [f64; 11] = [
    0.3333333333333333,
    0.6666666666666666,
    1.0,
    1.0,
    0.9554359905560885,
    0.83057041083643,
    0.6501344202803414,
    0.44986557971965857,
    0.26942958916356996,
    0.14456400944391146,
    0.1,
];

const W0: [[f32; 3]; 2] = [[0.5, -0.3, 0.8], [-0.6, 0.2, 0.4]];
const B0: [f32; 2] = [0.1, -0.2];
const X: [[f32; 3]; 4] = [[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-2.0, 0.3, 0.7], [1.2, 1.1, -0.4]];
const Y: [[f32; 2]; 4] = [[0.3, -0.5], [-0.8, 0.9], [0.1, 0.2], [0.7, -0.1]];
const CONFIG: AdamWConfig = AdamWConfig {
    lr: 0.1,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.1,
};

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The reference problem: `mean((tanh(x wᵀ + b) − y)²)`.
fn problem_loss(w: &Var, b: &Var) -> Tensor {
    let x = Tensor::new(&X, &CPU).unwrap();
    let y = Tensor::new(&Y, &CPU).unwrap();
    let pred = x
        .matmul(&w.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(b.as_tensor())
        .unwrap();
    (pred.tanh().unwrap() - y).unwrap().sqr().unwrap().mean_all().unwrap()
}

/// One training step of the reference run: schedule, loss, clipping, AdamW. Returns
/// (lr, loss, norm).
fn train_step(opt: &mut AdamW, w: &Var, b: &Var, step: u64) -> (f64, f32, f32) {
    let lr = lr_at(step, 2, 6, 0.1, 0.01);
    opt.set_lr(lr);
    let loss = problem_loss(w, b);
    let mut grads = loss.backward().unwrap();
    let norm = clip_grad_norm(&mut grads, &opt.vars(), 0.5).unwrap();
    opt.step(&grads).unwrap();
    (lr, loss.to_scalar().unwrap(), norm)
}

fn reference_vars() -> (Var, Var) {
    (Var::new(&W0, &CPU).unwrap(), Var::new(&B0, &CPU).unwrap())
}

#[test]
fn adamw_schedule_and_clipping_match_pytorch() {
    let (w, b) = reference_vars();
    let mut opt = AdamW::new(vec![("b".into(), b.clone()), ("w".into(), w.clone())], CONFIG).unwrap();
    let mut worst = 0.0f32;
    for step in 0..7 {
        let (lr, loss, norm) = train_step(&mut opt, &w, &b, step as u64);
        assert!((lr - LRS[step]).abs() < 1e-12, "lr at {step}: {lr} vs {}", LRS[step]);
        assert!(
            (loss - LOSSES[step]).abs() < 2e-6,
            "loss at {step}: {loss} vs {}",
            LOSSES[step]
        );
        assert!(
            (norm - NORMS[step]).abs() < 2e-6,
            "norm at {step}: {norm} vs {}",
            NORMS[step]
        );
        let (wv, bv) = (values(w.as_tensor()), values(b.as_tensor()));
        for (i, (got, want)) in wv.iter().zip(&W_AFTER[6 * step..6 * step + 6]).enumerate() {
            assert!((got - want).abs() < 1e-5, "w[{i}] after step {step}: {got} vs {want}");
        }
        for (i, (got, want)) in bv.iter().zip(&B_AFTER[2 * step..2 * step + 2]).enumerate() {
            assert!((got - want).abs() < 1e-5, "b[{i}] after step {step}: {got} vs {want}");
        }
        let deviations = wv
            .iter()
            .zip(&W_AFTER[6 * step..])
            .chain(bv.iter().zip(&B_AFTER[2 * step..]));
        worst = deviations.fold(worst, |m, (g, w)| m.max((g - w).abs()));
    }
    eprintln!("largest parameter deviation from PyTorch over 7 steps: {worst:e}");
    assert_eq!(opt.step_count(), 7);
}

#[test]
fn schedule_matches_pytorch_sequential_linear_then_cosine() {
    for (step, want) in SCHED_W3_T10.iter().enumerate() {
        let got = lr_at(step as u64, 3, 10, 1.0, 0.1);
        assert!((got - want).abs() < 1e-12, "step {step}: {got} vs {want}");
    }
    assert_eq!(lr_at(25, 3, 10, 1.0, 0.1), 0.1, "floor after the end");
    assert_eq!(lr_at(0, 0, 10, 1.0, 0.1), 1.0, "no warm-up starts at the peak");
    assert_eq!(lr_at(7, 5, 5, 2.0, 0.1), 2.0, "total <= warmup holds the peak");
}

#[test]
fn clipping_scales_to_the_max_norm_and_leaves_small_gradients() {
    let a = Var::new(&[1.0f32, 2.0], &CPU).unwrap();
    let b = Var::new(&[[0.5f32]], &CPU).unwrap();
    // loss = 3 a₀ + 4 a₁ + 12 b: gradients (3, 4) and (12), norm 13.
    let c = Tensor::new(&[3.0f32, 4.0], &CPU).unwrap();
    let loss = ((a.as_tensor() * &c).unwrap().sum_all().unwrap() + (b.as_tensor() * 12.0).unwrap().sum_all().unwrap())
        .unwrap();
    let vars = [a.clone(), b.clone()];
    let mut grads = loss.backward().unwrap();
    let norm = clip_grad_norm(&mut grads, &vars, 100.0).unwrap();
    assert_eq!(norm, 13.0);
    assert_eq!(
        values(grads.get(a.as_tensor()).unwrap()),
        vec![3.0, 4.0],
        "below max: untouched"
    );
    let norm = clip_grad_norm(&mut grads, &vars, 1.3).unwrap();
    assert_eq!(norm, 13.0);
    let ga = values(grads.get(a.as_tensor()).unwrap());
    let gb = values(grads.get(b.as_tensor()).unwrap());
    let scale = 1.3 / (13.0 + 1e-6);
    assert!(
        (ga[0] - 3.0 * scale).abs() < 1e-6 && (ga[1] - 4.0 * scale).abs() < 1e-6 && (gb[0] - 12.0 * scale).abs() < 1e-6
    );
    let after = clip_grad_norm(&mut grads, &vars, 10.0).unwrap();
    assert!((after - 1.3).abs() < 1e-5, "norm after clipping {after}");
}

#[test]
fn optimizer_state_round_trip_resumes_the_identical_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let (w, b) = reference_vars();
    let mut opt = AdamW::new(vec![("b".into(), b.clone()), ("w".into(), w.clone())], CONFIG).unwrap();
    let mut ema = Ema::new(vec![("b".into(), b.clone()), ("w".into(), w.clone())], 0.9).unwrap();
    for step in 0..3 {
        train_step(&mut opt, &w, &b, step);
        ema.update().unwrap();
    }
    // Checkpoint: weights + optimiser state + EMA in one safetensors file.
    let mut ckpt: HashMap<String, Tensor> = opt.state().unwrap();
    ckpt.extend(ema.state());
    ckpt.insert("w".into(), w.as_tensor().copy().unwrap());
    ckpt.insert("b".into(), b.as_tensor().copy().unwrap());
    candle_core::safetensors::save(&ckpt, &path).unwrap();
    // Continue the original run.
    let mut original = Vec::new();
    for step in 3..7 {
        train_step(&mut opt, &w, &b, step);
        ema.update().unwrap();
        original.push((values(w.as_tensor()), values(b.as_tensor())));
    }
    // Resume from the file into fresh variables and optimiser.
    let loaded = candle_core::safetensors::load(&path, &CPU).unwrap();
    let w2 = Var::from_tensor(&loaded["w"]).unwrap();
    let b2 = Var::from_tensor(&loaded["b"]).unwrap();
    let named = vec![("b".to_string(), b2.clone()), ("w".to_string(), w2.clone())];
    // The hyper-parameters come from the training configuration; the state holds the rest.
    let mut opt2 = AdamW::new(named.clone(), CONFIG).unwrap();
    opt2.load_state(&loaded).unwrap();
    assert_eq!(opt2.step_count(), 3);
    let mut ema2 = Ema::new(named, 0.9).unwrap();
    ema2.load_state(&loaded).unwrap();
    for (i, step) in (3..7).enumerate() {
        train_step(&mut opt2, &w2, &b2, step);
        ema2.update().unwrap();
        let (wv, bv) = (values(w2.as_tensor()), values(b2.as_tensor()));
        assert!(
            wv.iter().zip(&original[i].0).all(|(p, q)| p.to_bits() == q.to_bits()),
            "w at step {step}"
        );
        assert!(
            bv.iter().zip(&original[i].1).all(|(p, q)| p.to_bits() == q.to_bits()),
            "b at step {step}"
        );
    }
    for (k, v) in ema.state() {
        assert_eq!(values(&v), values(&ema2.state()[&k]), "EMA {k}");
    }
    // A state lacking a parameter names it.
    let mut partial = opt2.state().unwrap();
    partial.remove("adamw.v.w");
    let err = opt2.load_state(&partial).unwrap_err().to_string();
    assert!(err.contains("adamw.v.w"), "{err}");
    let mut wrong = opt2.state().unwrap();
    wrong.insert("adamw.m.b".into(), Tensor::zeros(3, DType::F32, &CPU).unwrap());
    assert!(opt2.load_state(&wrong).unwrap_err().to_string().contains("shape"));
}

#[test]
fn weight_decay_is_decoupled_and_skips_vectors() {
    // Zero gradients: m = v = 0, so the step is pure decay θ(1 − lr·wd) for matrices only.
    let w = Var::new(&[[2.0f32, -4.0]], &CPU).unwrap();
    let b = Var::new(&[3.0f32], &CPU).unwrap();
    let mut opt = AdamW::new(vec![("b".into(), b.clone()), ("w".into(), w.clone())], CONFIG).unwrap();
    // (A tensor product, not `* 0.0`: candle's backprop prunes affine ops with a zero factor.)
    let zero = Tensor::zeros(1, DType::F32, &CPU).unwrap();
    let sum = (w.as_tensor().sum_all().unwrap() + b.as_tensor().sum_all().unwrap()).unwrap();
    let loss = sum.reshape(1).unwrap().mul(&zero).unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(values(grads.get(w.as_tensor()).unwrap()), vec![0.0, 0.0]);
    opt.step(&grads).unwrap();
    let decay = 1.0 - 0.1f32 * 0.1;
    assert_eq!(values(w.as_tensor()), vec![2.0 * decay, -4.0 * decay]);
    assert_eq!(values(b.as_tensor()), vec![3.0]);
}

#[test]
fn ema_averages_swaps_and_round_trips() {
    let map = VarMap::new();
    let init = candle_nn::Init::Const(1.0);
    map.get((2,), "layer.weight", init, DType::F32, &CPU).unwrap();
    map.get((1,), "layer.bias", candle_nn::Init::Const(-1.0), DType::F32, &CPU)
        .unwrap();
    let named = named_vars(&map);
    assert_eq!(
        named.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["layer.bias", "layer.weight"]
    );
    let w = named[1].1.clone();
    let mut ema = Ema::new(named.clone(), 0.9).unwrap();
    w.set(&Tensor::new(&[2.0f32, 2.0], &CPU).unwrap()).unwrap();
    ema.update().unwrap(); // 0.9·1 + 0.1·2 = 1.1
    w.set(&Tensor::new(&[3.0f32, 3.0], &CPU).unwrap()).unwrap();
    ema.update().unwrap(); // 0.9·1.1 + 0.1·3 = 1.29
    let avg = values(&ema.state()["ema.layer.weight"]);
    assert!(avg.iter().all(|v| (v - 1.29).abs() < 1e-6), "{avg:?}");
    assert_eq!(values(&ema.weights()["layer.bias"]), vec![-1.0]);
    ema.swap().unwrap();
    assert!(
        values(w.as_tensor()).iter().all(|v| (v - 1.29).abs() < 1e-6),
        "EMA weights swapped in"
    );
    assert_eq!(values(&ema.state()["ema.layer.weight"]), vec![3.0, 3.0]);
    ema.swap().unwrap();
    assert_eq!(values(w.as_tensor()), vec![3.0, 3.0], "live weights back");
    let mut restored = Ema::new(named, 0.9).unwrap();
    restored.load_state(&ema.state()).unwrap();
    assert_eq!(values(&restored.state()["ema.layer.weight"]), avg);
    assert!(Ema::new(Vec::new(), 1.0).is_err());
}

/// Whether `t` still depends on any of `vars` through a recorded graph.
fn depends_on(t: &Tensor, vars: &[&Var]) -> bool {
    let grads = t.sum_all().unwrap().backward().unwrap();
    vars.iter().any(|v| grads.get(v.as_tensor()).is_some())
}

/// The optimiser's moments and the EMA's averages are plain values: no graph back to the
/// weights or to earlier steps (a recorded graph kept every step's tensors alive: a training
/// run of a 2.7 M-parameter net grew by 32 MB per step until it was killed).
#[test]
fn moments_and_averages_hold_no_graph() {
    let (w, b) = reference_vars();
    let mut opt = AdamW::new(vec![("b".to_string(), b.clone()), ("w".to_string(), w.clone())], CONFIG).unwrap();
    let mut ema = Ema::new(vec![("b".to_string(), b.clone()), ("w".to_string(), w.clone())], 0.9).unwrap();
    for step in 0..3 {
        train_step(&mut opt, &w, &b, step);
        ema.update().unwrap();
    }
    // The check itself sees a graph where there is one.
    assert!(depends_on(&(w.as_tensor() * 0.5).unwrap(), &[&w]));
    for (name, t) in opt.state().unwrap() {
        assert!(!depends_on(&t, &[&w, &b]), "{name} records a graph");
    }
    for (name, t) in ema.state() {
        assert!(!depends_on(&t, &[&w, &b]), "{name} records a graph");
    }
}
