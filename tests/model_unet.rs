//! The separator network (src/model): shapes, persistence, determinism, conditioning,
//! gradients, query text resolution. Uses the tiny config.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use splitflow::data::LABELS;
use splitflow::model::{Layout, ModelConfig, Network, resolve_query};

/// The tiny config and its alternatives: full band resolution with dilated band convolutions,
/// the 1-D net over time with the bands as channels, and the band-normalised input plane.
fn variants() -> Vec<(&'static str, ModelConfig)> {
    let tiny = ModelConfig::tiny();
    let mut full = tiny.clone();
    full.unet.down_freq = false;
    full.unet.freq_dilation = vec![1, 2, 4];
    let mut time = tiny.clone();
    time.unet.layout = Layout::Time;
    time.unet.channels = vec![16, 32, 32];
    let mut norm = tiny.clone();
    norm.unet.input_norm = true;
    vec![
        ("freq_time", tiny),
        ("full_band_dilated", full),
        ("time", time),
        ("input_norm", norm),
    ]
}

fn build(cfg: &ModelConfig) -> (VarMap, Network) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let net = Network::new(cfg, vb).unwrap();
    (vm, net)
}

/// Deterministic pseudo-random tensor in [-1, 1).
fn input(shape: (usize, usize, usize, usize), seed: u32) -> Tensor {
    common::uniform_tensor(&[shape.0, shape.1, shape.2, shape.3], seed)
}

fn times(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

struct Case {
    z: Tensor,
    cond: Tensor,
    r: Tensor,
    t: Tensor,
    q: Tensor,
}

fn case(net: &Network, b: usize, frames: usize, labels: &[usize]) -> Case {
    let f = net.config().bands.n_bands;
    Case {
        z: input((b, 1, f, frames), 1),
        cond: input((b, 1, f, frames), 2).abs().unwrap(),
        r: times(&vec![0.25; b]),
        t: times(&vec![0.75; b]),
        q: net.label_query(labels, &Device::Cpu).unwrap(),
    }
}

fn run(net: &Network, c: &Case) -> Tensor {
    net.forward(&c.z, &c.cond, &c.r, &c.t, &c.q).unwrap()
}

#[test]
fn output_shape_for_odd_lengths() {
    for (name, cfg) in variants() {
        let (_, net) = build(&cfg);
        for &frames in &[1usize, 7, 86, 301] {
            let c = case(&net, 2, frames, &[0, 5]);
            let y = run(&net, &c);
            assert_eq!(y.dims(), &[2, 1, 32, frames], "{name}");
            let s = y.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(s.is_finite() && s > 0.0, "{name}, frames {frames}: sum |y| = {s}");
        }
    }
    let (_, net) = build(&ModelConfig::tiny());
    // Wrong band count and mismatched shapes are errors, not panics.
    let c = case(&net, 1, 5, &[0]);
    let z = input((1, 1, 16, 5), 3);
    assert!(net.forward(&z, &z, &c.r, &c.t, &c.q).is_err());
    assert!(net.forward(&c.z, &input((1, 1, 32, 6), 3), &c.r, &c.t, &c.q).is_err());
    assert!(net.label_query(&[LABELS.len()], &Device::Cpu).is_err());
}

#[test]
fn default_config_builds_and_runs() {
    let cfg = ModelConfig::default();
    let (vm, net) = build(&cfg);
    let params: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    assert!(params > 500_000 && params < 5_000_000, "{params} parameters");
    let c = case(&net, 1, 9, &[3]);
    assert_eq!(run(&net, &c).dims(), &[1, 1, 128, 9]);
}

#[test]
fn batch_items_are_independent() {
    // GroupNorm (not BatchNorm): an item's output does not depend on the rest of the batch.
    for (name, cfg) in variants() {
        let (_, net) = build(&cfg);
        let c = case(&net, 3, 20, &[0, 1, 2]);
        let all = run(&net, &c);
        let one = Case {
            z: c.z.narrow(0, 1, 1).unwrap(),
            cond: c.cond.narrow(0, 1, 1).unwrap(),
            r: c.r.narrow(0, 1, 1).unwrap(),
            t: c.t.narrow(0, 1, 1).unwrap(),
            q: c.q.narrow(0, 1, 1).unwrap(),
        };
        assert!(
            max_diff(&all.narrow(0, 1, 1).unwrap(), &run(&net, &one)) < 1e-5,
            "{name}"
        );
    }
}

#[test]
fn save_load_round_trip_is_exact_and_deterministic() {
    let cfg = ModelConfig::tiny();
    let (vm, net) = build(&cfg);
    let c = case(&net, 2, 23, &[4, 9]);
    let y1 = run(&net, &c);
    let y2 = run(&net, &c);
    assert_eq!(max_diff(&y1, &y2), 0.0, "forward is not deterministic");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    vm.save(&path).unwrap();
    let cfg_path = dir.path().join("net.json");
    cfg.save(&cfg_path).unwrap();
    let cfg2 = ModelConfig::load(&cfg_path).unwrap();
    assert_eq!(cfg2, cfg);
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu).unwrap() };
    let net2 = Network::new(&cfg2, vb).unwrap();
    let c2 = Case {
        q: net2.label_query(&[4, 9], &Device::Cpu).unwrap(),
        ..c
    };
    assert_eq!(max_diff(&y1, &run(&net2, &c2)), 0.0);
    // A fresh random init differs: the comparison above is not vacuous.
    let (_, other) = build(&cfg);
    let c3 = Case {
        q: other.label_query(&[4, 9], &Device::Cpu).unwrap(),
        ..c2
    };
    assert!(max_diff(&y1, &run(&other, &c3)) > 1e-4);
    // The file holds f32 weights and little else.
    let bytes = std::fs::metadata(&path).unwrap().len() as usize;
    let params: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    assert!(bytes >= 4 * params && bytes < 4 * params + 64 * 1024);
}

#[test]
fn queries_and_times_change_the_output() {
    let (_, net) = build(&ModelConfig::tiny());
    let c = case(&net, 1, 30, &[0]);
    let y = run(&net, &c);
    let other_label = Case {
        q: net.label_query(&[8], &Device::Cpu).unwrap(),
        ..case(&net, 1, 30, &[0])
    };
    assert!(max_diff(&y, &run(&net, &other_label)) > 1e-4);
    let other_t = Case {
        t: times(&[0.5]),
        ..case(&net, 1, 30, &[0])
    };
    assert!(max_diff(&y, &run(&net, &other_t)) > 1e-4);
    let other_r = Case {
        r: times(&[0.75]),
        ..case(&net, 1, 30, &[0])
    };
    assert!(max_diff(&y, &run(&net, &other_r)) > 1e-4);
    let other_cond = Case {
        cond: input((1, 1, 32, 30), 9).abs().unwrap(),
        ..case(&net, 1, 30, &[0])
    };
    assert!(max_diff(&y, &run(&net, &other_cond)) > 1e-4);
}

#[test]
fn label_and_example_queries_are_unit_vectors_in_one_space() {
    let (_, net) = build(&ModelConfig::tiny());
    let q = net.label_query(&[0, 1, 11], &Device::Cpu).unwrap();
    assert_eq!(q.dims(), &[3, 16]);
    let clips = input((2, 1, 32, 40), 5).abs().unwrap();
    let e = net.example_query(&clips).unwrap();
    assert_eq!(e.dims(), &[2, 16]);
    for t in [&q, &e] {
        let norms: Vec<f32> = t.sqr().unwrap().sum(1).unwrap().sqrt().unwrap().to_vec1().unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    }
    // Different clips embed differently; a one-frame clip works.
    let d = max_diff(&e.narrow(0, 0, 1).unwrap(), &e.narrow(0, 1, 1).unwrap());
    assert!(d > 1e-4);
    assert_eq!(net.example_query(&input((1, 1, 32, 1), 6)).unwrap().dims(), &[1, 16]);
    // An example embedding drives the separator like a label embedding.
    let c = Case {
        q: e,
        ..case(&net, 2, 10, &[0, 0])
    };
    assert_eq!(run(&net, &c).dims(), &[2, 1, 32, 10]);
}

#[test]
fn gradients_reach_every_parameter() {
    for (name, cfg) in variants() {
        gradients_reach_every_parameter_of(name, &cfg);
    }
}

fn gradients_reach_every_parameter_of(name: &str, cfg: &ModelConfig) {
    let (vm, net) = build(cfg);
    let target = input((2, 1, 32, 13), 7);
    let c = case(&net, 2, 13, &[2, 6]);
    let clips = input((2, 1, 32, 17), 8).abs().unwrap();
    // Labels for item 0, an example for item 1, so both query paths get gradients.
    let q = Tensor::cat(
        &[
            net.label_query(&[2], &Device::Cpu).unwrap(),
            net.example_query(&clips).unwrap().narrow(0, 1, 1).unwrap(),
        ],
        0,
    )
    .unwrap();
    let y = net.forward(&c.z, &c.cond, &c.r, &c.t, &q).unwrap();
    let loss = (y - &target).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut missing = Vec::new();
    for (name, var) in data.iter() {
        let v: &Var = var;
        match grads.get(v.as_tensor()) {
            Some(g) => {
                let s = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                if !(s > 0.0 && s.is_finite()) {
                    missing.push(format!("{name} (|grad| sum {s})"));
                }
            }
            None => missing.push(format!("{name} (no grad)")),
        }
    }
    assert!(missing.is_empty(), "{name}: parameters without gradient: {missing:?}");
    assert!(data.len() > 50, "{name}: only {} variables", data.len());
}

#[test]
fn text_queries_resolve_through_synonyms() {
    let id = |s: &str| LABELS[resolve_query(s).unwrap()];
    assert_eq!(id("speech"), "speech");
    assert_eq!(id("Voice"), "speech");
    assert_eq!(id("  VOCALS "), "speech");
    assert_eq!(id("talking"), "speech");
    assert_eq!(id("rain"), "water");
    assert_eq!(id("Rivers"), "water");
    assert_eq!(id("waves"), "water");
    assert_eq!(id("wind"), "wind");
    assert_eq!(id("winds"), "winds");
    assert_eq!(id("violins"), "strings");
    assert_eq!(id("dogs"), "animal");
    assert_eq!(id("birdsong"), "animal");
    assert_eq!(id("Acoustic   Guitar"), "guitar");
    assert_eq!(id("basses"), "bass");
    assert_eq!(id("cars"), "engine");
    for (i, l) in LABELS.iter().enumerate() {
        assert_eq!(resolve_query(l).unwrap(), i);
    }
    let err = resolve_query("kazoo orchestra").unwrap_err().to_string();
    assert!(err.contains("\"kazoo orchestra\""), "{err}");
    for l in LABELS {
        assert!(err.contains(l), "error does not list {l}: {err}");
    }
    assert!(resolve_query("").is_err());
}

#[test]
fn gemm_conv_matches_candle_conv2d() {
    use splitflow::model::conv::GemmConv2d;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    for (i, &(ci, co, k, s, h, w)) in [
        (3, 8, 3, 1, 9, 14),
        (5, 4, 1, 1, 6, 7),
        (4, 6, 2, 2, 8, 10),
        (2, 3, 5, 1, 7, 5),
    ]
    .iter()
    .enumerate()
    {
        let conv = GemmConv2d::new(ci, co, k, s, vb.pp(format!("c{i}"))).unwrap();
        let x = input((2, ci, h, w), i as u32 + 11);
        let want = candle_nn::Module::forward(&conv.as_candle().unwrap(), &x).unwrap();
        let got = conv.forward(&x).unwrap();
        assert_eq!(got.dims(), want.dims());
        assert!(max_diff(&got, &want) < 1e-5, "case {i}: {}", max_diff(&got, &want));
    }
    assert!(GemmConv2d::new(2, 2, 2, 1, vb.pp("bad")).is_err());
}

#[test]
fn band_normalised_plane_cancels_the_recording_gain() {
    use splitflow::model::unet::band_normalised;
    let (b, f, t) = (2, 16, 40);
    // Band envelopes well above the floor: 0.5..1.5 with a per-band offset.
    let cond = ((input((b, 1, f, t), 7).abs().unwrap() * 0.5).unwrap() + 1.0).unwrap();
    let base = band_normalised(&cond).unwrap();
    // Each band's frames average 1 once its mean dominates the floor (0.1 of the plane's mean).
    let means = base
        .mean_keepdim(3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for m in &means {
        assert!((m - 1.0 / 1.1).abs() < 0.02, "band mean {m}");
    }
    // A global gain cancels exactly.
    let scaled = band_normalised(&(&cond * 3.7).unwrap()).unwrap();
    assert!(max_diff(&base, &scaled) < 1e-5);
    // A static EQ (gains 0.5..2 per band, the compressed features of a +-20 dB EQ at p = 0.3
    // would be 0.25..4; these stay where the floor matters little) changes cond by up to 100 %
    // but the normalised plane by under 12 % (the floor is what remains).
    let g: Vec<f32> = (0..f).map(|i| 0.5 * 4f32.powf(i as f32 / (f - 1) as f32)).collect();
    let g = Tensor::from_vec(g, (1, 1, f, 1), &Device::Cpu).unwrap();
    let eq = cond.broadcast_mul(&g).unwrap();
    let coloured = band_normalised(&eq).unwrap();
    let rel = max_diff(&base, &coloured) / base.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(rel < 0.12, "relative change {rel}");
    assert!(max_diff(&cond, &eq) > 0.5);
    // Near-silent bands stay near 0 instead of being lifted to 1.
    let quiet = Tensor::cat(
        &[
            cond.narrow(2, 0, f - 1).unwrap(),
            (cond.narrow(2, f - 1, 1).unwrap() * 1e-4).unwrap(),
        ],
        2,
    )
    .unwrap();
    let q = band_normalised(&quiet).unwrap().narrow(2, f - 1, 1).unwrap();
    assert!(q.max_all().unwrap().to_scalar::<f32>().unwrap() < 0.01);
}
