//! Mixture sampler throughput: `cargo run --example sampler_speed -- CORPUS [SPLIT] [N] [ONLY]`.
//!
//! Draws N examples (default 300) of the default config (3 s crops, 3 s query) from SPLIT
//! (default train) with 1 and 2 threads, reading crops on demand, then the same with the split
//! preloaded into memory (`preload`, only when SPLIT is not train: the train split is 2.3 GB as
//! i16), then on one thread with the timbre augmentations added to the defaults (pitch ±3
//! semitones, reverb on half the sources) and with every augmentation at full strength
//! (low-pass and EQ on every source, RandAugment 3 ops at magnitude 10, pitch ±3, reverb on
//! every source). Prints examples and mixture audio-seconds per wall second and per CPU second (the
//! second is what one core gives, also on a busy machine); docs/data.md records the figures
//! with this command.

use std::time::Instant;

use splitflow::data::sampler::{MixtureSampler, SamplerConfig};

/// CPU seconds (user + system) this process has used.
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// (examples per wall second, examples per CPU second).
fn rate(s: &MixtureSampler, n: u64, threads: u64) -> splitflow::Result<(f64, f64)> {
    let (t, c) = (Instant::now(), cpu_s());
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                sc.spawn(move || -> splitflow::Result<()> {
                    for i in (k..n).step_by(threads as usize) {
                        s.sample(1, i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked"))))
    })?;
    Ok((n as f64 / t.elapsed().as_secs_f64(), n as f64 / (cpu_s() - c)))
}

fn main() -> splitflow::Result<()> {
    // The allocator settings of the binary (and so of the trainer's workers).
    splitflow::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let corpus = args.first().map_or("/work/corpus", String::as_str);
    let split = args.get(1).map_or("train", String::as_str);
    let n: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(300);
    let mut modes = vec![false];
    if split != "train" {
        modes.push(true);
    }
    let full = SamplerConfig {
        lowpass_p: 1.0,
        eq_p: 1.0,
        randaugment_n: 3,
        randaugment_m: 10.0,
        pitch_semitones: 3.0,
        reverb_p: 1.0,
        ..SamplerConfig::default()
    };
    let mut runs: Vec<(&str, SamplerConfig, Vec<u64>)> = modes
        .into_iter()
        .map(|preload| {
            let cfg = SamplerConfig {
                preload,
                ..SamplerConfig::default()
            };
            (
                if preload { "preloaded i16" } else { "read on demand" },
                cfg,
                vec![1, 2],
            )
        })
        .collect();
    let timbre = SamplerConfig {
        pitch_semitones: 3.0,
        reverb_p: 0.5,
        ..SamplerConfig::default()
    };
    runs.push(("read on demand, default + pitch ±3 + reverb 0.5", timbre, vec![1]));
    runs.push(("read on demand, every augmentation at full strength", full, vec![1]));
    // A fourth argument keeps only the runs whose description contains it (e.g. "full").
    if let Some(only) = args.get(3) {
        runs.retain(|r| r.0.contains(only.as_str()));
    }
    for (what, cfg, threads) in runs {
        let t = Instant::now();
        let secs = f64::from(cfg.seconds);
        let s = MixtureSampler::open(std::path::Path::new(corpus), split, cfg)?;
        let open_s = t.elapsed().as_secs_f64();
        // Warm the page cache and the allocator once.
        rate(&s, 20, 1)?;
        for threads in threads {
            let (wall, cpu) = rate(&s, n, threads)?;
            println!(
                "{split} ({} clips), {what}: {threads} thread(s): {wall:.1} examples/s of {secs} s, {cpu:.1} per CPU second = {:.0} audio-s per CPU second (open {open_s:.2} s)",
                s.rows().len(),
                cpu * secs,
            );
        }
    }
    Ok(())
}
