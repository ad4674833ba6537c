//! The fused CPU kernels one by one: `cargo bench --bench kernels [-- --reps N] [--cpu]`.
//!
//! At the shapes of the default training config (configs/cpu-small-disc.json: batch 8, 64
//! bands x 176 padded frames, U-Net 12/24/48/64, so levels of 12 x 64 x 176 .. 64 x 8 x 22):
//! per level, the 3x3 convolution c -> c and the GroupNorm + FiLM + SiLU, forward alone and
//! forward + backward (the gradient of a sum, so every input's gradient is formed), median of N
//! repetitions after a warm-up, with GFLOP/s for the convolutions (2 FLOP per multiply-add,
//! x3 for forward + backward). Use RAYON_NUM_THREADS to pin the thread count; the step time
//! of a whole training step is `cargo bench --bench train` (docs/training.md "Throughput").
//! `--cpu` times by the process's CPU clock instead of the wall clock (for comparisons on a
//! machine another job shares; with one thread they agree on an idle machine).

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use splitflow::model::fused::{self, Geometry};

/// CPU seconds of the whole process (all threads): unlike wall time it does not count the
/// time another program holds the core, so figures taken beside a training run still compare.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Median of `reps` timings of `f` after a warm-up call: wall seconds, or CPU seconds with
/// `cpu`.
fn median<F: FnMut() -> candle_core::Result<()>>(reps: usize, cpu: bool, mut f: F) -> candle_core::Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (w, c) = (Instant::now(), cpu_seconds());
        f()?;
        v.push(if cpu {
            cpu_seconds() - c
        } else {
            w.elapsed().as_secs_f64()
        });
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize);
    let cpu = args.iter().any(|a| a == "--cpu");
    let dev = Device::Cpu;
    let batch = 8;
    println!(
        "batch {batch}, {} threads, median of {reps} ({} time)",
        rayon::current_num_threads(),
        if cpu { "CPU" } else { "wall" }
    );
    println!("| kernel | shape | forward ms | forward + backward ms | GFLOP/s (fwd + bwd) |");
    println!("|---|---|---:|---:|---:|");
    let (mut total_f, mut total_fb) = (0.0, 0.0);
    for (c, h, w) in [(12, 64, 176), (24, 32, 88), (48, 16, 44), (64, 8, 22)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, (batch, c, h, w), &dev)?)?;
        let wt = Var::from_tensor(&(Tensor::randn(0f32, 1f32, (c, c, 3, 3), &dev)? * 0.1)?)?;
        let b = Var::from_tensor(&Tensor::zeros(c, candle_core::DType::F32, &dev)?)?;
        let geo = Geometry::square(1, 1);
        let f = median(reps, cpu, || {
            fused::conv2d(x.as_tensor(), wt.as_tensor(), b.as_tensor(), geo).map(|_| ())
        })?;
        let fb = median(reps, cpu, || {
            let y = fused::conv2d(x.as_tensor(), wt.as_tensor(), b.as_tensor(), geo)?;
            y.sum_all()?.backward().map(|_| ())
        })?;
        let flop = 2.0 * 9.0 * (c * c * h * w * batch) as f64 * 3.0;
        println!(
            "| conv 3x3 | {c} x {h} x {w} | {:.2} | {:.2} | {:.1} |",
            f * 1e3,
            fb * 1e3,
            flop / fb / 1e9
        );
        let scale = Var::from_tensor(&Tensor::randn(1f32, 0.1f32, (batch, c), &dev)?)?;
        let shift = Var::from_tensor(&Tensor::randn(0f32, 0.1f32, (batch, c), &dev)?)?;
        let gf = median(reps, cpu, || {
            fused::group_norm_act(x.as_tensor(), scale.as_tensor(), shift.as_tensor(), 4, 1e-5, true).map(|_| ())
        })?;
        let gfb = median(reps, cpu, || {
            let y = fused::group_norm_act(x.as_tensor(), scale.as_tensor(), shift.as_tensor(), 4, 1e-5, true)?;
            y.sum_all()?.backward().map(|_| ())
        })?;
        println!(
            "| group norm + SiLU | {c} x {h} x {w} | {:.2} | {:.2} | – |",
            gf * 1e3,
            gfb * 1e3
        );
        total_f += f + gf;
        total_fb += fb + gfb;
    }
    println!(
        "| all of the above | | {:.2} | {:.2} | |",
        total_f * 1e3,
        total_fb * 1e3
    );
    Ok(())
}
