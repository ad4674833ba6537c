//! Separator network benchmark: `cargo bench --bench model [-- CHUNK_SECONDS]`.
//!
//! For the default [`ModelConfig`] (random weights: speed does not depend on their values):
//! parameters, analytic GFLOP per second of audio, measured forward time per second of audio
//! (one mono pass over chunks of CHUNK_SECONDS, 10 by default), the band analysis and mask
//! application for 60 s of stereo 44.1 kHz, the implied real-time factor of a one-step
//! separation of that file (one mid-channel network pass), and one training step's
//! forward + backward on a batch of 4 × 3 s. Figures go to stdout; docs/model.md records them.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use splitflow::dsp::bands::Bands;
use splitflow::model::{ModelConfig, Network};

fn plane(b: usize, f: usize, t: usize, dev: &Device) -> splitflow::Result<Tensor> {
    Ok(Tensor::randn(0f32, 1f32, (b, 1, f, t), dev)?)
}

/// Median of `reps` timings of `f` (after one warm-up call), in seconds.
fn time<F: FnMut() -> splitflow::Result<()>>(reps: usize, mut f: F) -> splitflow::Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        f()?;
        v.push(s.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

fn main() -> splitflow::Result<()> {
    let chunk_s: f64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10.0);
    let dev = Device::Cpu;
    let cfg = ModelConfig::default();
    let vm = VarMap::new();
    let net = Network::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let params: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    let f = cfg.bands.n_bands;
    let fps = cfg.bands.frames_per_second();
    println!(
        "default model: {params} parameters ({:.1} MB f32)",
        params as f64 * 4.0 / 1e6
    );
    println!("config: {}", serde_json::to_string(&cfg)?);
    for s in [1.0, 3.0, 10.0, 60.0] {
        println!(
            "analytic forward: {:.3} GFLOP per audio second ({s} s chunks)",
            cfg.flops_per_audio_second(s) / 1e9
        );
    }

    // Forward, batch 1, one chunk.
    let frames = (chunk_s * fps).round() as usize;
    let z = plane(1, f, frames, &dev)?;
    let cond = plane(1, f, frames, &dev)?.abs()?;
    let r = Tensor::zeros(1, DType::F32, &dev)?;
    let t = Tensor::ones(1, DType::F32, &dev)?;
    let q = net.label_query(&[0], &dev)?;
    let secs = time(3, || {
        net.forward(&z, &cond, &r, &t, &q)?;
        Ok(())
    })?;
    let ms_per_s = secs * 1000.0 / chunk_s;
    let gflops = cfg.flops_per_audio_second(chunk_s) * chunk_s / secs / 1e9;
    println!(
        "forward: {chunk_s} s chunk ({frames} frames) in {secs:.3} s: {ms_per_s:.1} ms per audio second, {gflops:.1} GFLOP/s"
    );

    // DSP around the network for 60 s stereo 44.1 kHz: features of the 22.05 kHz mid channel,
    // the mask applied to both native channels.
    let bands = Bands::new(cfg.bands.clone())?;
    let n22 = 60 * 22_050;
    let n44 = 60 * 44_100;
    let mid: Vec<f32> = (0..n22).map(|i| ((i as f32) * 0.05).sin() * 0.1).collect();
    let chan: Vec<f32> = (0..n44).map(|i| ((i as f32) * 0.025).sin() * 0.1).collect();
    let s = Instant::now();
    let feats = bands.features(&mid);
    let feat_s = s.elapsed().as_secs_f64();
    let mask = vec![0.5f32; feats.values.len()];
    let s = Instant::now();
    for _ in 0..2 {
        bands.apply_mask(&chan, 44_100, &mask, feats.n_frames)?;
    }
    let apply_s = s.elapsed().as_secs_f64();
    println!("dsp: features of 60 s mono in {feat_s:.3} s, mask applied to 2 x 60 s at 44.1 kHz in {apply_s:.3} s");
    let total = 60.0 * ms_per_s / 1000.0 + feat_s + apply_s;
    println!(
        "implied 1-step separation of 60 s stereo 44.1 kHz: {total:.2} s (RTF {:.3}; resampling not included)",
        total / 60.0
    );

    // Training step: forward + MSE + backward, batch 4 x 3 s.
    let tf = (3.0 * fps).round() as usize;
    let z = plane(4, f, tf, &dev)?;
    let cond = plane(4, f, tf, &dev)?.abs()?;
    let target = plane(4, f, tf, &dev)?;
    let r = Tensor::new(&[0.0f32, 0.1, 0.2, 0.3], &dev)?;
    let t = Tensor::new(&[0.5f32, 0.6, 0.7, 0.8], &dev)?;
    let q = net.label_query(&[0, 3, 6, 9], &dev)?;
    let secs = time(2, || {
        let y = net.forward(&z, &cond, &r, &t, &q)?;
        let loss = (y - &target)?.sqr()?.mean_all()?;
        loss.backward()?;
        Ok(())
    })?;
    println!("train step: forward + backward, batch 4 x 3 s ({tf} frames): {secs:.3} s");
    Ok(())
}
