//! Flow maths (src/flow) against analytic cases: the time convention, Euler/Heun orders,
//! mean-flow sampling with exact average velocities, the objectives' losses for exact and
//! wrong fields, W-CFM weights, seeded determinism.

use std::cell::RefCell;

use candle_core::{Device, Tensor, Var};
use splitflow::flow::objectives::{
    LossStats, Objective, ObjectiveConfig, TimeSampling, loss, signal_loss, wcfm_weights, weighted_loss,
};
use splitflow::flow::sampling::{Sampler, bridge, combine, discriminative, euler, heun, mean_flow, noise};
use splitflow::flow::{Field, conditional_velocity, interpolate, normal, rng, times};

const CPU: Device = Device::Cpu;

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    vec_of(a)
        .iter()
        .zip(vec_of(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn per_example(values: &[f32]) -> impl Fn(&Tensor) -> Tensor + '_ {
    move |like: &Tensor| {
        let mut shape = vec![1usize; like.rank()];
        shape[0] = values.len();
        Tensor::from_slice(values, shape, &CPU).unwrap()
    }
}

/// Data (2, 1, 3, 4) with values in [-1, 1].
fn data() -> Tensor {
    let v: Vec<f32> = (0..24).map(|i| ((i * 7 % 24) as f32 / 11.5) - 1.0).collect();
    Tensor::from_vec(v, (2, 1, 3, 4), &CPU).unwrap()
}

#[test]
fn time_convention_data_at_zero_noise_at_one_velocity_is_dz_dt() {
    let x = data();
    let eps = normal(&mut rng(3, 0), x.dims(), &CPU).unwrap();
    let at = |t: f64| interpolate(&x, &eps, &times(&[t, t], &CPU).unwrap()).unwrap();
    assert_eq!(max_abs_diff(&at(0.0), &x), 0.0, "z_0 must be the data");
    assert_eq!(max_abs_diff(&at(1.0), &eps), 0.0, "z_1 must be the noise");
    // Per-example times: example 0 at t = 0.25, example 1 at t = 0.75.
    let z = interpolate(&x, &eps, &times(&[0.25, 0.75], &CPU).unwrap()).unwrap();
    let expect = (x.broadcast_mul(&per_example(&[0.75, 0.25])(&x)).unwrap()
        + eps.broadcast_mul(&per_example(&[0.25, 0.75])(&x)).unwrap())
    .unwrap();
    assert!(max_abs_diff(&z, &expect) < 1e-6);
    // The CFM target is dz/dt (central differences; the path is linear so h can be large).
    let h = 0.05;
    let fd = ((at(0.3 + h) - at(0.3 - h)).unwrap() / (2.0 * h)).unwrap();
    let v = conditional_velocity(&x, &eps).unwrap();
    let err = max_abs_diff(&fd, &v);
    assert!(err < 1e-4, "finite difference vs eps - x: {err}");
}

/// The linear field v(z, t) = a z (every r): dz/dt = a z, so z(0) = z(1) exp(-a).
fn linear_field(a: f64) -> impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> {
    move |z: &Tensor, _r: &Tensor, _t: &Tensor| z * a
}

#[test]
fn euler_is_first_order_and_heun_second_order_on_a_linear_field() {
    let a = 1.5f64;
    let field = linear_field(a);
    let z1 = Tensor::new(&[[1.0f32, -2.0, 0.5]], &CPU).unwrap();
    let exact = (-a).exp();
    let mut euler_err = Vec::new();
    let mut heun_err = Vec::new();
    for n in [8usize, 16, 32, 64] {
        let h = 1.0 / n as f64;
        let e = vec_of(&euler(&field, &z1, n).unwrap());
        let hn = vec_of(&heun(&field, &z1, n).unwrap());
        // Closed forms of the two schemes on dz/dt = a z integrated backwards.
        let euler_factor = (1.0 - a * h).powi(n as i32);
        let heun_factor = (1.0 - a * h + (a * h).powi(2) / 2.0).powi(n as i32);
        assert!(
            (e[1] as f64 - -2.0 * euler_factor).abs() < 1e-5,
            "Euler n={n}: {}",
            e[1]
        );
        assert!(
            (hn[1] as f64 - -2.0 * heun_factor).abs() < 1e-5,
            "Heun n={n}: {}",
            hn[1]
        );
        euler_err.push((e[1] as f64 - -2.0 * exact).abs());
        heun_err.push((hn[1] as f64 - -2.0 * exact).abs());
    }
    for w in euler_err.windows(2) {
        let ratio = w[0] / w[1];
        assert!(
            (1.8..2.2).contains(&ratio),
            "Euler error ratio per halving {ratio} ({euler_err:?})"
        );
    }
    for w in heun_err.windows(2).take(2) {
        let ratio = w[0] / w[1];
        assert!(
            (3.6..4.4).contains(&ratio),
            "Heun error ratio per halving {ratio} ({heun_err:?})"
        );
    }
    eprintln!("errors at N = 8, 16, 32, 64: Euler {euler_err:?}, Heun {heun_err:?}");
    assert!(euler_err[0] > 0.05 && heun_err[3] < 2e-4, "{euler_err:?} {heun_err:?}");
}

/// Exact average velocity of the linear field v = a z:
/// u(z_t, r, t) = (z_t - z_r)/(t - r) = z_t (1 - exp(-a (t - r)))/(t - r)  (a at t = r).
fn exact_linear_average(a: f64) -> impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> {
    move |z: &Tensor, r: &Tensor, t: &Tensor| {
        let r: Vec<f32> = r.to_vec1()?;
        let t: Vec<f32> = t.to_vec1()?;
        let f: Vec<f32> = r
            .iter()
            .zip(&t)
            .map(|(&r, &t)| {
                let d = (t - r) as f64;
                if d.abs() < 1e-9 { a } else { (1.0 - (-a * d).exp()) / d }
            } as f32)
            .collect();
        let mut shape = vec![1usize; z.rank()];
        shape[0] = f.len();
        z.broadcast_mul(&Tensor::from_vec(f, shape, z.device())?)
    }
}

/// The straight-path field of point-mass data `x` (per example): u(z, r, t) = (z - x)/t for
/// every r (straight trajectories, so average = instantaneous velocity = ε - x).
fn straight_field(x: &Tensor) -> impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + '_ {
    move |z: &Tensor, _r: &Tensor, t: &Tensor| {
        let mut shape = vec![1usize; z.rank()];
        shape[0] = t.elem_count();
        (z - x)?.broadcast_div(&t.reshape(shape)?)
    }
}

#[test]
fn mean_flow_with_the_exact_average_velocity_is_exact_in_one_step() {
    // Straight path: one jump from the noise lands on the data.
    let x = data();
    let eps = noise(x.dims(), 11, 0, &CPU).unwrap();
    let field = straight_field(&x);
    for steps in [1, 2, 5] {
        let out = mean_flow(&field, &eps, steps).unwrap();
        assert!(max_abs_diff(&out, &x) < 1e-5, "{steps} steps");
    }
    // Curved: v = a z; one step equals the integral z(1) exp(-a), Euler(1) does not.
    let a = 1.5f64;
    let z1 = Tensor::new(&[[1.0f32, -2.0, 0.5]], &CPU).unwrap();
    let exact = (&z1 * (-a).exp()).unwrap();
    let u = exact_linear_average(a);
    assert!(max_abs_diff(&mean_flow(&u, &z1, 1).unwrap(), &exact) < 1e-6);
    assert!(max_abs_diff(&mean_flow(&u, &z1, 2).unwrap(), &exact) < 1e-6);
    // The same u at r = t is the instantaneous velocity: Euler(1) is off by |1 - a - e^-a|·|z|.
    let euler1 = euler(&u, &z1, 1).unwrap();
    assert!(max_abs_diff(&euler1, &exact) > 0.5);
}

fn cfg(objective: Objective) -> ObjectiveConfig {
    ObjectiveConfig {
        objective,
        ..ObjectiveConfig::default()
    }
}

fn run_loss(cfg: &ObjectiveConfig, field: &Field, x: &Tensor, seed: u64) -> (f32, LossStats) {
    let (l, stats) = loss(cfg, field, x, &mut rng(seed, 0)).unwrap();
    let v = l.to_scalar::<f32>().unwrap();
    assert_eq!(v, stats.loss);
    (v, stats)
}

#[test]
fn cfm_loss_vanishes_for_the_exact_conditional_velocity() {
    let x = data();
    let field = straight_field(&x);
    let (l, stats) = run_loss(&cfg(Objective::Cfm), &field, &x, 5);
    eprintln!("CFM loss of the exact conditional velocity: {l:e}");
    assert!(l < 1e-9, "CFM loss of the exact field {l}");
    assert_eq!((stats.n_fm, stats.n_interval), (2, 0));
    // The zero field: loss = mean |ε - x|², about E x² + 1.
    let zero = |z: &Tensor, _: &Tensor, _: &Tensor| z.zeros_like();
    let (l0, _) = run_loss(&cfg(Objective::Cfm), &zero, &x, 5);
    let eps = normal(&mut rng(5, 0), x.dims(), &CPU).unwrap();
    let expect = (eps - &x)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((l0 - expect).abs() < 1e-6, "zero field: {l0} vs {expect}");
}

#[test]
fn split_mean_flow_loss_vanishes_for_exact_average_velocities_only() {
    let x = data();
    // Straight paths (point-mass data): FM and interval parts both exact.
    let field = straight_field(&x);
    let smf = cfg(Objective::SplitMeanFlow { fm_fraction: 0.5 });
    let (l, stats) = run_loss(&smf, &field, &x, 9);
    assert!(l < 1e-9, "SplitMeanFlow loss of the exact straight field {l}");
    assert_eq!((stats.n_fm, stats.n_interval), (1, 1));
    assert!(stats.fm_loss.is_some() && stats.interval_loss.is_some());

    // Curved flow (v = a z): the exact average velocity is interval-consistent; the
    // instantaneous velocity used as an average is not.
    let big: Vec<f32> = (0..64 * 6).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let xb = Tensor::from_vec(big, (64, 6), &CPU).unwrap();
    let interval_only = cfg(Objective::SplitMeanFlow { fm_fraction: 0.0 });
    let (exact, s) = run_loss(&interval_only, &exact_linear_average(1.5), &xb, 2);
    assert_eq!((s.n_fm, s.n_interval), (0, 64));
    assert!(s.fm_loss.is_none());
    assert!(exact < 1e-10, "exact average velocity: {exact}");
    let (wrong, _) = run_loss(&interval_only, &linear_field(1.5), &xb, 2);
    eprintln!("SplitMeanFlow interval loss: exact average velocity {exact:e}, instantaneous one {wrong:e}");
    assert!(wrong > 1e-3, "inconsistent field: {wrong}");
}

#[test]
fn split_mean_flow_targets_are_detached_and_follow_the_interval_identity() {
    // u(z, r, t) = θ z: with λ = (s-r)/(t-r), the target is θ z [1 - λ(t-s)θ], so
    // pred - target = λ (t-s) θ² z; with the target detached, dL/dθ = mean 2 (pred - target) z.
    let theta = Var::new(0.7f32, &CPU).unwrap();
    let calls = RefCell::new(Vec::new());
    let field = |z: &Tensor, r: &Tensor, t: &Tensor| {
        calls
            .borrow_mut()
            .push((z.detach(), r.to_vec1::<f32>()?, t.to_vec1::<f32>()?));
        z.broadcast_mul(theta.as_tensor())
    };
    let x = Tensor::from_vec((0..12).map(|i| i as f32 / 6.0 - 1.0).collect::<Vec<_>>(), (4, 3), &CPU).unwrap();
    let objective = cfg(Objective::SplitMeanFlow { fm_fraction: 0.0 });
    let (l, _) = loss(&objective, &field, &x, &mut rng(4, 0)).unwrap();
    let grad = l
        .backward()
        .unwrap()
        .get(theta.as_tensor())
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let calls = calls.into_inner();
    assert_eq!(calls.len(), 3, "two detached target evaluations and one prediction");
    let (zt, r, t) = &calls[0]; // the prediction u(z_t, r, t)
    let (z2, s, t2) = &calls[1]; // the detached u(z_t, s, t)
    assert_eq!((t, vec_of(zt)), (t2, vec_of(z2)));
    let (_, r3, s3) = &calls[2]; // the detached u(z_s, r, s)
    assert_eq!((r, s), (r3, s3));
    let (th, zt) = (0.7f64, vec_of(zt));
    let (mut expect_loss, mut expect_grad) = (0.0f64, 0.0f64);
    for i in 0..4 {
        assert!(r[i] < s[i] && s[i] < t[i], "r < s < t: {} {} {}", r[i], s[i], t[i]);
        let lam = (s[i] - r[i]) as f64 / (t[i] - r[i]) as f64;
        for j in 0..3 {
            let z = zt[i * 3 + j] as f64;
            let diff = lam * (t[i] - s[i]) as f64 * th * th * z;
            expect_loss += diff * diff / 12.0;
            expect_grad += 2.0 * diff * z / 12.0;
        }
    }
    assert!(((l.to_scalar::<f32>().unwrap() as f64) - expect_loss).abs() < 1e-6 * expect_loss.max(1e-3));
    assert!(
        ((grad as f64) - expect_grad).abs() < 1e-5 * expect_grad.abs().max(1e-3),
        "{grad} vs {expect_grad}"
    );
}

#[test]
fn wcfm_weights_have_mean_one_and_fall_with_distance() {
    // x = 0, noise rows constant c: mean squared distance c².
    let c = [0.0f32, 0.5, 1.0, 2.0];
    let x = Tensor::zeros((4, 5), candle_core::DType::F32, &CPU).unwrap();
    let n: Vec<f32> = c.iter().flat_map(|&v| [v; 5]).collect();
    let noise = Tensor::from_vec(n, (4, 5), &CPU).unwrap();
    let eps = 0.5;
    let w = wcfm_weights(&x, &noise, eps).unwrap();
    let raw: Vec<f64> = c.iter().map(|&v| (-(v as f64).powi(2) / eps).exp()).collect();
    let mean = raw.iter().sum::<f64>() / 4.0;
    for (wi, ri) in w.iter().zip(&raw) {
        assert!((wi - ri / mean).abs() < 1e-6, "{w:?}");
    }
    assert!((w.iter().sum::<f64>() / 4.0 - 1.0).abs() < 1e-12);
    assert!(
        w.windows(2).all(|p| p[0] > p[1]),
        "weights must fall with distance: {w:?}"
    );
    // Tiny eps: no underflow, the closest pair takes all the weight.
    let sharp = wcfm_weights(&x, &noise, 1e-6).unwrap();
    assert!((sharp[0] - 4.0).abs() < 1e-9 && sharp[3] == 0.0, "{sharp:?}");

    // In the loss: a huge eps is plain CFM; a finite one changes the value and reports weights.
    let xd = data();
    let zero = |z: &Tensor, _: &Tensor, _: &Tensor| z.zeros_like();
    let plain = run_loss(&cfg(Objective::Cfm), &zero, &xd, 8).0;
    let mut wide = cfg(Objective::Cfm);
    wide.wcfm_eps = Some(1e9);
    assert!((run_loss(&wide, &zero, &xd, 8).0 - plain).abs() < 1e-6);
    let mut sharp_cfg = cfg(Objective::Cfm);
    sharp_cfg.wcfm_eps = Some(0.1);
    let (weighted, stats) = run_loss(&sharp_cfg, &zero, &xd, 8);
    assert!(stats.weight_min < 1.0 && stats.weight_max > 1.0);
    // With the zero field the per-example loss is the W-CFM cost itself: weighting favours
    // the closer pair, so the weighted loss is below the plain one.
    assert!(weighted < plain, "{weighted} vs {plain}");
}

#[test]
fn discriminative_objective_and_sampler_call_the_network_at_zero() {
    let x = data();
    let seen = RefCell::new(Vec::new());
    let field = |z: &Tensor, r: &Tensor, t: &Tensor| {
        seen.borrow_mut()
            .push((vec_of(z), r.to_vec1::<f32>()?, t.to_vec1::<f32>()?));
        z.ones_like()? * 0.25
    };
    let (l, stats) = run_loss(&cfg(Objective::Discriminative), &field, &x, 1);
    let expect = (x.affine(-1.0, 0.25).unwrap().sqr().unwrap().mean_all().unwrap())
        .to_scalar::<f32>()
        .unwrap();
    assert!((l - expect).abs() < 1e-7);
    assert_eq!(stats.weight_min, 1.0);
    let out = discriminative(&field, &[2, 1, 3, 4], &CPU).unwrap();
    assert_eq!(out.dims(), &[2, 1, 3, 4]);
    let out2 = Sampler::Direct.run(&field, &x).unwrap();
    assert_eq!(vec_of(&out2), vec![0.25; 24]);
    for (z, r, t) in seen.into_inner() {
        assert!(z.iter().all(|&v| v == 0.0));
        assert_eq!((r, t), (vec![0.0; 2], vec![0.0; 2]));
    }
}

#[test]
fn weighted_loss_weighs_each_bin_and_ones_change_nothing() {
    let x = data();
    let n = x.elem_count();
    // Error 0.25 - x per bin: weight 1 everywhere is the plain loss, bit for bit, for every
    // objective.
    let field = |z: &Tensor, _: &Tensor, _: &Tensor| z.ones_like()? * 0.25;
    let ones = x.ones_like().unwrap();
    for obj in [
        Objective::Discriminative,
        Objective::Cfm,
        Objective::SplitMeanFlow { fm_fraction: 0.5 },
    ] {
        let c = cfg(obj.clone());
        let (plain, _) = loss(&c, &field, &x, &mut rng(3, 0)).unwrap();
        let (w1, _) = weighted_loss(&c, &field, &x, Some(&ones), &mut rng(3, 0)).unwrap();
        assert_eq!(
            plain.to_scalar::<f32>().unwrap(),
            w1.to_scalar::<f32>().unwrap(),
            "{obj:?}"
        );
    }
    // Discriminative: the loss is the weighted mean of the squared errors.
    let w: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
    let err: Vec<f32> = vec_of(&x).iter().map(|v| (0.25 - v) * (0.25 - v)).collect();
    let b = x.dim(0).unwrap();
    let expect: f32 = err.iter().zip(&w).map(|(e, w)| e * w).sum::<f32>() / n as f32;
    let wt = Tensor::from_vec(w, x.dims(), &CPU).unwrap();
    let (l, _) = weighted_loss(&cfg(Objective::Discriminative), &field, &x, Some(&wt), &mut rng(3, 0)).unwrap();
    let l = l.to_scalar::<f32>().unwrap();
    assert!((l - expect).abs() < 1e-6, "{l} vs {expect} (batch {b})");
    // A weight of another shape is refused; the config checks the exponent.
    let bad = Tensor::ones(3, candle_core::DType::F32, &CPU).unwrap();
    assert!(weighted_loss(&cfg(Objective::Cfm), &field, &x, Some(&bad), &mut rng(3, 0)).is_err());
    for p in [0.0, -1.0, f64::NAN] {
        let c = ObjectiveConfig {
            magnitude_weight: Some(p),
            ..cfg(Objective::Cfm)
        };
        assert!(c.validate().is_err(), "{p}");
    }
}

#[test]
fn samplers_are_deterministic_by_seed_bit_for_bit() {
    let a = 0.8;
    let field = |z: &Tensor, r: &Tensor, t: &Tensor| {
        // A nonlinear field depending on r and t, to exercise every argument.
        let mut shape = vec![1usize; z.rank()];
        shape[0] = r.elem_count();
        let rt = (r + t)?.reshape(shape)?;
        z.tanh()?.broadcast_mul(&(rt * a)?.exp()?)
    };
    let shape = [3, 16];
    for sampler in ["euler:4", "heun:3", "meanflow:2", "meanflow:1"] {
        let s: Sampler = sampler.parse().unwrap();
        let one = s.draw(&field, &shape, 42, 2, &CPU).unwrap();
        let two = s.draw(&field, &shape, 42, 2, &CPU).unwrap();
        let other = s.draw(&field, &shape, 43, 2, &CPU).unwrap();
        for (p, q) in one.iter().zip(&two) {
            let (p, q) = (vec_of(p), vec_of(q));
            assert!(p.iter().zip(&q).all(|(a, b)| a.to_bits() == b.to_bits()), "{sampler}");
        }
        assert!(
            max_abs_diff(&one[0], &other[0]) > 1e-3,
            "{sampler}: seeds 42 and 43 agree"
        );
        assert!(
            max_abs_diff(&one[0], &one[1]) > 1e-3,
            "{sampler}: samples 0 and 1 agree"
        );
    }
    // The loss draws are seeded as well.
    let x = data();
    let smf = cfg(Objective::SplitMeanFlow { fm_fraction: 0.5 });
    assert_eq!(
        run_loss(&smf, &field, &x, 77).0.to_bits(),
        run_loss(&smf, &field, &x, 77).0.to_bits()
    );
    assert_ne!(run_loss(&smf, &field, &x, 77).0, run_loss(&smf, &field, &x, 78).0);
}

#[test]
fn noise_is_standard_normal() {
    let n = vec_of(&noise(&[100_000], 1, 0, &CPU).unwrap());
    let mean = n.iter().map(|&v| v as f64).sum::<f64>() / n.len() as f64;
    let var = n.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n.len() as f64;
    assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean}, var {var}");
}

#[test]
fn combine_gives_mean_and_population_spread() {
    let s: Vec<Tensor> = [1.0f32, 2.0, 3.0]
        .iter()
        .map(|&v| Tensor::new(&[[v, 2.0 * v]], &CPU).unwrap())
        .collect();
    let (mean, std) = combine(&s).unwrap();
    assert_eq!(vec_of(&mean), vec![2.0, 4.0]);
    let sd = (2.0f32 / 3.0).sqrt();
    let got = vec_of(&std);
    assert!(
        (got[0] - sd).abs() < 1e-6 && (got[1] - 2.0 * sd).abs() < 1e-6,
        "{got:?}"
    );
    let (_, single) = combine(&s[..1]).unwrap();
    assert_eq!(vec_of(&single), vec![0.0, 0.0]);
    assert!(combine(&[]).is_err());
}

#[test]
fn sampler_names_parse_print_and_serialise() {
    for (text, s) in [
        ("euler:4", Sampler::Euler { steps: 4 }),
        ("heun:2", Sampler::Heun { steps: 2 }),
        ("meanflow:1", Sampler::MeanFlow { steps: 1 }),
        ("direct", Sampler::Direct),
    ] {
        assert_eq!(text.parse::<Sampler>().unwrap(), s);
        assert_eq!(s.to_string(), text);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Sampler>(&json).unwrap(), s);
    }
    assert_eq!(Sampler::Heun { steps: 3 }.evaluations(), 6);
    for bad in ["euler", "euler:0", "euler:x", "rk4:3", ""] {
        let err = bad.parse::<Sampler>().unwrap_err().to_string();
        assert!(err.contains("sampler"), "{bad}: {err}");
    }
}

#[test]
fn objective_config_reads_from_json_and_is_validated() {
    let c: ObjectiveConfig = serde_json::from_str(
        r#"{"objective": {"kind": "split_mean_flow", "fm_fraction": 0.25}, "wcfm_eps": 0.5,
            "time": {"kind": "uniform"}}"#,
    )
    .unwrap();
    assert_eq!(c.objective, Objective::SplitMeanFlow { fm_fraction: 0.25 });
    assert_eq!((c.wcfm_eps, c.time.clone()), (Some(0.5), TimeSampling::Uniform));
    c.validate().unwrap();
    let d: ObjectiveConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(d.objective, Objective::Cfm);
    assert_eq!(d.time, TimeSampling::LogitNormal { mean: 0.0, std: 1.0 });
    assert!(serde_json::from_str::<ObjectiveConfig>(r#"{"objective": {"kind": "ddpm"}}"#).is_err());
    let bad = [
        cfg(Objective::SplitMeanFlow { fm_fraction: 1.5 }),
        ObjectiveConfig {
            wcfm_eps: Some(0.0),
            ..cfg(Objective::Cfm)
        },
        ObjectiveConfig {
            wcfm_eps: Some(1.0),
            ..cfg(Objective::Discriminative)
        },
        ObjectiveConfig {
            time: TimeSampling::LogitNormal { mean: 0.0, std: 0.0 },
            ..cfg(Objective::Cfm)
        },
        // The signal loss is for the discriminative objective, and weighs bins itself.
        ObjectiveConfig {
            signal_loss: true,
            ..cfg(Objective::Cfm)
        },
        ObjectiveConfig {
            signal_loss: true,
            magnitude_weight: Some(1.0),
            ..cfg(Objective::Discriminative)
        },
    ];
    ObjectiveConfig {
        signal_loss: true,
        ..cfg(Objective::Discriminative)
    }
    .validate()
    .unwrap();
    for b in bad {
        assert!(b.validate().is_err(), "{b:?}");
    }
    // Drawn times stay inside (0, 1) and follow the distribution's mean.
    let mut g = rng(0, 0);
    let u: Vec<f64> = (0..20_000).map(|_| TimeSampling::Uniform.draw(&mut g)).collect();
    assert!(u.iter().all(|&t| t > 0.0 && t < 1.0));
    assert!((u.iter().sum::<f64>() / u.len() as f64 - 0.5).abs() < 0.01);
    let ln = TimeSampling::LogitNormal { mean: -1.0, std: 0.5 };
    let mut logits: Vec<f64> = (0..20_000)
        .map(|_| {
            let t = ln.draw(&mut g);
            (t / (1.0 - t)).ln()
        })
        .collect();
    logits.sort_by(f64::total_cmp);
    assert!((logits[10_000] + 1.0).abs() < 0.03, "median logit {}", logits[10_000]);
}

/// The signal loss scores the masked mixture: zero (up to the power's floor) when the output
/// is the mask that turns the mixture's band magnitudes into the target's, masks above 1
/// included up to `mask_max`; the straight-through clamp keeps a gradient where the raw
/// output left `[0, mask_max]`.
#[test]
fn signal_loss_scores_the_masked_mixture_and_learns_outside_the_range() {
    let power = 0.3;
    let mix: Vec<f32> = (0..12).map(|i| 0.2 + 0.3 * i as f32).collect();
    let m: Vec<f32> = (0..12).map(|i| 0.125 * i as f32).collect(); // 0 .. 1.375
    let cond = Tensor::from_vec(
        mix.iter().map(|v| v.powf(power)).collect::<Vec<_>>(),
        (1, 1, 3, 4),
        &CPU,
    )
    .unwrap();
    let target = Tensor::from_vec(
        mix.iter().zip(&m).map(|(v, m)| (v * m).powf(power)).collect::<Vec<_>>(),
        (1, 1, 3, 4),
        &CPU,
    )
    .unwrap();
    let y = Tensor::from_vec(m.iter().map(|m| 2.0 * m - 1.0).collect::<Vec<_>>(), (1, 1, 3, 4), &CPU).unwrap();
    let exact = |_: &Tensor, _: &Tensor, _: &Tensor| Ok(y.clone());
    let (l, _) = signal_loss(&exact, &cond, &target, f64::from(power), 1.5).unwrap();
    let l = l.to_scalar::<f32>().unwrap();
    // Only the power's floor remains, in the m = 0 bin: ((1e-4 · 0.2)^0.3)² / 12 bins.
    let floor = (1e-4f32 * 0.2).powf(power).powi(2) / 12.0;
    assert!((l - floor).abs() < 0.05 * floor, "exact mask: loss {l}, floor {floor}");
    // With mask_max 1 the bins asking for more than 1 cannot be reached: a clear loss.
    let (l1, _) = signal_loss(&exact, &cond, &target, f64::from(power), 1.0).unwrap();
    assert!(l1.to_scalar::<f32>().unwrap() > 10.0 * l, "mask_max 1 should cost");
    // An output far below the range (mask −1) still gets a gradient pushing it up.
    let v = Var::from_tensor(&Tensor::full(-3f32, (1, 1, 3, 4), &CPU).unwrap()).unwrap();
    let field = |_: &Tensor, _: &Tensor, _: &Tensor| Ok(v.as_tensor().clone());
    let (loss_v, _) = signal_loss(&field, &cond, &target, f64::from(power), 1.5).unwrap();
    let g = loss_v.backward().unwrap();
    let grad = vec_of(g.get(v.as_tensor()).unwrap());
    assert!(
        grad[1..].iter().all(|&d| d < 0.0),
        "the gradient must push every bin with a positive target up: {grad:?}"
    );
}

#[test]
fn batched_rows_start_from_the_noise_each_row_gets_alone() {
    let field = |z: &Tensor, r: &Tensor, t: &Tensor| {
        let mut shape = vec![1usize; z.rank()];
        shape[0] = r.elem_count();
        let rt = (r + t)?.reshape(shape)?;
        z.tanh()?.broadcast_mul(&(rt * 0.8)?.exp()?)
    };
    let one = [1, 2, 8];
    for sampler in ["euler:3", "meanflow:1", "direct"] {
        let s: Sampler = sampler.parse().unwrap();
        let alone = s.draw_with_temperature(&field, &one, 5, 2, 0.7, &CPU).unwrap();
        let rows = s.draw_rows(&field, &one, 4, 5, 2, 0.7, &CPU).unwrap();
        assert_eq!(rows.len(), 2);
        for (a, r) in alone.iter().zip(&rows) {
            assert_eq!(r.dims(), &[4, 2, 8], "{sampler}");
            for row in 0..4 {
                let r = r.narrow(0, row, 1).unwrap();
                assert_eq!(max_abs_diff(a, &r), 0.0, "{sampler}, row {row}");
            }
        }
    }
}

/// The recorded calls of a field: `(z, r, t)` flattened, one entry per call.
type Calls = RefCell<Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>>;

/// A field that records its inputs and answers `direct` at `z = 0`, `t = 0` and `pred` at
/// every other call (the bridge's two roles of one network).
fn two_role_field<'a>(
    direct: &'a Tensor,
    pred: &'a Tensor,
    seen: &'a Calls,
) -> impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + 'a {
    move |z: &Tensor, r: &Tensor, t: &Tensor| {
        let (zv, rv, tv) = (vec_of(z), r.to_vec1::<f32>()?, t.to_vec1::<f32>()?);
        let n = z.dim(0)?;
        let per = zv.len() / n;
        // Row by row: a row at z = 0, t = 0 is a direct call.
        let rows = (0..n)
            .map(|i| {
                let at_zero = tv[i] == 0.0 && zv[i * per..(i + 1) * per].iter().all(|&v| v == 0.0);
                if at_zero { direct.get(i) } else { pred.get(i) }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        seen.borrow_mut().push((zv, rv, tv));
        Tensor::stack(&rows, 0)
    }
}

/// The bridge loss: one detached direct call on the whole batch, then the direct rows at
/// `z = 0`, `t = 0` and the bridge rows at `z_t = (1 − t) x + t (x̂ + σ ε)`; zero for a field
/// that predicts the data in both roles, and the mean squared error of each role otherwise.
#[test]
fn bridge_loss_starts_from_the_direct_estimate_and_scores_the_data() {
    // Four examples so that direct_fraction 0.25 puts exactly one in the direct part.
    let x = Tensor::cat(&[data(), data().affine(-0.5, 0.1).unwrap()], 0).unwrap();
    let objective = |sigma, direct_fraction| ObjectiveConfig {
        objective: Objective::Bridge { sigma, direct_fraction },
        time: TimeSampling::Grid { n: 2 },
        ..ObjectiveConfig::default()
    };
    let c = objective(0.3, 0.25);
    c.validate().unwrap();
    let seen = RefCell::new(Vec::new());
    let exact = two_role_field(&x, &x, &seen);
    let (l, stats) = run_loss(&c, &exact, &x, 3);
    assert_eq!(l, 0.0);
    assert_eq!((stats.n_interval, stats.n_fm), (1, 3));
    let calls = seen.borrow().clone();
    assert_eq!(calls.len(), 2, "one direct call, one bridge call");
    assert!(calls[0].0.iter().all(|&v| v == 0.0) && calls[0].2.iter().all(|&t| t == 0.0));
    let (z, r, t) = &calls[1];
    assert_eq!(r, t);
    assert_eq!(t[0], 0.0);
    assert!(z[..12].iter().all(|&v| v == 0.0), "the direct row sees z = 0");
    // The bridge rows: z_t − (1 − t) x − t x̂ = t σ ε with ε the objective's first draw.
    let eps = vec_of(&normal(&mut rng(3, 0), &[4, 1, 3, 4], &CPU).unwrap());
    let xv = vec_of(&x);
    for (i, &ti) in t.iter().enumerate().skip(1) {
        let ti = ti as f64;
        assert!((ti - 0.5).abs() < 1e-6 || (ti - 1.0).abs() < 1e-4, "grid time {ti}");
        for j in i * 12..(i + 1) * 12 {
            let expect = (1.0 - ti) * xv[j] as f64 + ti * (xv[j] as f64 + 0.3 * eps[j] as f64);
            assert!((z[j] as f64 - expect).abs() < 1e-5, "z[{j}] {} vs {expect}", z[j]);
        }
    }
    // A wrong direct estimate only moves the bridge's start; a wrong prediction is scored
    // per role: the direct rows against the direct answer, the bridge rows against theirs.
    let off = x.affine(1.0, 0.5).unwrap();
    let seen = RefCell::new(Vec::new());
    let (l, stats) = run_loss(&c, &two_role_field(&off, &x, &seen), &x, 3);
    assert!((l - 0.25 / 4.0).abs() < 1e-6, "{l}");
    assert_eq!((stats.interval_loss, stats.fm_loss), (Some(0.25), Some(0.0)));
    let seen = RefCell::new(Vec::new());
    let (l, _) = run_loss(&c, &two_role_field(&x, &off, &seen), &x, 3);
    assert!((l - 0.75 * 0.25).abs() < 1e-6, "{l}");
    // The same seed draws the same noise and times; without direct rows every row bridges.
    let seen2 = RefCell::new(Vec::new());
    run_loss(&objective(0.3, 0.0), &two_role_field(&x, &x, &seen2), &x, 3);
    assert!(seen2.borrow()[1].2.iter().all(|&t| t > 0.0));
    for bad in [objective(0.0, 0.25), objective(0.3, 1.0), objective(f64::NAN, 0.0)] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let wcfm = ObjectiveConfig {
        wcfm_eps: Some(1.0),
        ..objective(0.3, 0.25)
    };
    assert!(wcfm.validate().is_err());
    let waveform = ObjectiveConfig {
        waveform_sisdr: 0.1,
        ..objective(0.3, 0.25)
    };
    waveform.validate().unwrap();
}

/// The bridge sampler: the direct estimate, the start `y = x̂ + σ n` at t = 1, then
/// `z_r = (1 − r) x̃ + r y`; exact in any number of steps for a field that predicts the data,
/// the direct estimate itself when the prediction is the start's own direct part.
#[test]
fn bridge_sampler_refines_the_direct_estimate() {
    let x = data();
    let x_hat = x.affine(0.5, 0.2).unwrap();
    let n = noise(&[2, 1, 3, 4], 7, 0, &CPU).unwrap();
    for steps in [1, 2, 4] {
        let seen = RefCell::new(Vec::new());
        let out = bridge(&two_role_field(&x_hat, &x, &seen), &n, steps, 0.4).unwrap();
        assert!(max_abs_diff(&out, &x) < 1e-6, "{steps} steps");
        let calls = seen.into_inner();
        assert_eq!(calls.len(), steps + 1);
        let y = (&x_hat + (&n * 0.4).unwrap()).unwrap();
        assert!(max_abs_diff(&Tensor::from_vec(calls[1].0.clone(), (2, 1, 3, 4), &CPU).unwrap(), &y) < 1e-6);
        let grid: Vec<f32> = (0..steps).map(|k| 1.0 - k as f32 / steps as f32).collect();
        let ts: Vec<f32> = calls[1..].iter().map(|c| c.2[0]).collect();
        assert_eq!(ts, grid);
        if steps == 2 {
            // The second step sees z_0.5 = 0.5 x̃ + 0.5 y.
            let half = ((&x * 0.5).unwrap() + (&y * 0.5).unwrap()).unwrap();
            assert!(
                max_abs_diff(
                    &Tensor::from_vec(calls[2].0.clone(), (2, 1, 3, 4), &CPU).unwrap(),
                    &half
                ) < 1e-6
            );
        }
    }
    let s = Sampler::Bridge { steps: 2, sigma: 0.4 };
    assert_eq!(s.evaluations(), 3);
    assert!(s.is_generative());
    let seen = RefCell::new(Vec::new());
    let via_run = s.run(&two_role_field(&x_hat, &x, &seen), &n).unwrap();
    assert!(max_abs_diff(&via_run, &x) < 1e-6);
}

/// `bridge:N` parses with no noise of its own and takes the model's; each sampler only runs
/// on the models that have what it needs.
#[test]
fn samplers_match_the_objective_they_need() {
    let b: Sampler = "bridge:2".parse().unwrap();
    assert_eq!(b, Sampler::Bridge { steps: 2, sigma: 0.0 });
    assert_eq!(b.to_string(), "bridge:2");
    let model = Objective::Bridge {
        sigma: 0.25,
        direct_fraction: 0.25,
    };
    assert_eq!(
        b.for_objective(&model).unwrap(),
        Sampler::Bridge { steps: 2, sigma: 0.25 }
    );
    assert_eq!(Sampler::Direct.for_objective(&model).unwrap(), Sampler::Direct);
    assert_eq!(
        Sampler::Direct.for_objective(&Objective::Discriminative).unwrap(),
        Sampler::Direct
    );
    let euler = Sampler::Euler { steps: 4 };
    assert_eq!(euler.for_objective(&Objective::Cfm).unwrap(), euler);
    for (s, o) in [
        (b, Objective::Discriminative),
        (b, Objective::Cfm),
        (euler, model.clone()),
        (euler, Objective::Discriminative),
        (Sampler::Direct, Objective::Cfm),
    ] {
        let err = s.for_objective(&o).unwrap_err().to_string();
        assert!(err.contains(&format!("sampler '{s}'")), "{err}");
    }
    // Grid times: the uniform sampler's own times, each as often.
    let mut g = rng(0, 1);
    let ts: Vec<f64> = (0..4000).map(|_| TimeSampling::Grid { n: 4 }.draw(&mut g)).collect();
    for k in 1..=4 {
        let share = ts.iter().filter(|&&t| (t - k as f64 / 4.0).abs() < 1e-4).count() as f64 / 4000.0;
        assert!((share - 0.25).abs() < 0.03, "t = {k}/4: {share}");
    }
}
