//! Per-source augmentation for the mixture sampler.
//!
//! Every source of a mixture (target, each interferer, the query clip) gets its own [`Chain`],
//! drawn from a seeded RNG:
//!
//! 1. a random **low-pass** (4th order: two Butterworth biquads, probability `lowpass_p`,
//!    cut-off log-uniform in `lowpass_hz`) and **EQ** (up to `eq_bands` peaking filters, each
//!    with probability `eq_p`, centre log-uniform in `eq_hz`, gain uniform in `eq_gain_db`):
//!    the corpus mixes 8 kHz telephone prompts with 44.1 kHz recordings, so without this the
//!    bandwidth alone would give the label away;
//! 2. a **RandAugment**-style policy: `n` operations drawn uniformly (with replacement) from
//!    [`OPS`], each at a strength drawn uniformly in `[0, m / 10]` of its largest setting (the
//!    magnitude `m` runs from 0 to 10; `m = 0` or `n = 0` turns the policy off).
//!
//! The operations keep the length (speed change reads a longer or shorter window and resamples
//! it to the crop length), so a chain is drawn first, [`Chain::input_len`] says how many
//! samples to read, and [`Chain::apply`] returns exactly the crop length.
//!
//! Filters are the `biquad` crate's RBJ-cookbook biquads (f64 state: low cut-offs at 22 kHz
//! put poles near the unit circle); resampling is rubato's polynomial resampler.

use anyhow::{Context, anyhow};
use biquad::{Biquad, Coefficients, DirectForm2Transposed, Q_BUTTERWORTH_F64, ToHertz, Type};
use rand::Rng;
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::data::sampler::SamplerConfig;

/// The RandAugment operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Speed (and pitch) change up to ±20 % at full strength.
    Speed,
    /// High-pass, cut-off up to 420 Hz.
    HighPass,
    /// Low or high shelf (300 Hz / 3 kHz), gain up to ±12 dB.
    Tilt,
    /// tanh saturation, drive up to 3 (relative to the peak).
    Drive,
    /// Amplitude modulation at 1..8 Hz, depth up to 0.6.
    Tremolo,
    /// Feedback echo, 30..150 ms, feedback up to 0.5.
    Echo,
    /// Up to three silenced stretches, each up to 20 % of the crop (10 ms fades).
    Dropout,
}

/// All operations, in the order they are drawn from.
pub const OPS: [Op; 7] = [
    Op::Speed,
    Op::HighPass,
    Op::Tilt,
    Op::Drive,
    Op::Tremolo,
    Op::Echo,
    Op::Dropout,
];

/// One processing step with its drawn parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    LowPass {
        hz: f64,
    },
    Peak {
        hz: f64,
        gain_db: f64,
    },
    HighPass {
        hz: f64,
    },
    Shelf {
        high: bool,
        gain_db: f64,
    },
    Drive {
        k: f64,
    },
    Tremolo {
        hz: f64,
        depth: f64,
        phase: f64,
    },
    Echo {
        delay_s: f64,
        feedback: f64,
    },
    /// Start and length as fractions of the crop.
    Dropout {
        start: f64,
        len: f64,
    },
}

/// A drawn augmentation: a speed ratio (input samples per output sample) and filter steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub speed: f64,
    pub steps: Vec<Step>,
}

/// Uniform in the range `r` (either order; a point when both ends are equal).
pub(crate) fn uniform(rng: &mut impl Rng, r: [f32; 2]) -> f64 {
    let (a, b) = (f64::from(r[0].min(r[1])), f64::from(r[0].max(r[1])));
    if b > a { rng.random_range(a..=b) } else { a }
}

fn log_uniform(rng: &mut impl Rng, r: [f32; 2]) -> f64 {
    let lo = r[0].min(r[1]).max(1.0);
    let hi = r[0].max(r[1]).max(1.0);
    uniform(rng, [lo.ln(), hi.ln()]).exp()
}

impl Chain {
    /// The identity.
    pub fn identity() -> Chain {
        Chain {
            speed: 1.0,
            steps: Vec::new(),
        }
    }

    /// Draws a chain from the augmentation fields of `p` (`lowpass_*`, `eq_*`,
    /// `randaugment_*`, `ops`); the number of RNG calls depends only on `p` and the draws themselves.
    pub fn draw(rng: &mut impl Rng, p: &SamplerConfig) -> Chain {
        let mut c = Chain::identity();
        if rng.random::<f32>() < p.lowpass_p {
            c.steps.push(Step::LowPass {
                hz: log_uniform(rng, p.lowpass_hz),
            });
        }
        for _ in 0..p.eq_bands {
            if rng.random::<f32>() < p.eq_p {
                let hz = log_uniform(rng, p.eq_hz);
                c.steps.push(Step::Peak {
                    hz,
                    gain_db: uniform(rng, p.eq_gain_db),
                });
            }
        }
        let m = f64::from(p.randaugment_m.clamp(0.0, 10.0)) / 10.0;
        if m > 0.0 && !p.ops.is_empty() {
            for _ in 0..p.randaugment_n {
                let op = p.ops[rng.random_range(0..p.ops.len())];
                let s = m * rng.random::<f64>();
                let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                match op {
                    Op::Speed => c.speed *= (1.0 + 0.2 * s).powf(sign),
                    Op::HighPass => c.steps.push(Step::HighPass { hz: 20.0 + 400.0 * s }),
                    Op::Tilt => c.steps.push(Step::Shelf {
                        high: rng.random::<bool>(),
                        gain_db: 12.0 * s * sign,
                    }),
                    Op::Drive => c.steps.push(Step::Drive { k: 3.0 * s }),
                    Op::Tremolo => c.steps.push(Step::Tremolo {
                        hz: rng.random_range(1.0..8.0),
                        depth: 0.6 * s,
                        phase: rng.random_range(0.0..std::f64::consts::TAU),
                    }),
                    Op::Echo => c.steps.push(Step::Echo {
                        delay_s: rng.random_range(0.03..0.15),
                        feedback: 0.5 * s,
                    }),
                    Op::Dropout => {
                        for _ in 0..rng.random_range(1..=3) {
                            let len = 0.2 * s * rng.random::<f64>();
                            c.steps.push(Step::Dropout {
                                start: rng.random::<f64>() * (1.0 - len),
                                len,
                            });
                        }
                    }
                }
            }
        }
        c
    }

    /// Samples to read so that [`apply`](Self::apply) yields `out_len` samples.
    pub fn input_len(&self, out_len: usize) -> usize {
        if self.speed == 1.0 {
            out_len
        } else {
            // Margin for the interpolator's support at the end.
            (out_len as f64 * self.speed).ceil() as usize + 8
        }
    }

    /// Applies the chain to `x` (of length [`input_len`](Self::input_len)) and returns
    /// `out_len` samples.
    pub fn apply(&self, x: Vec<f32>, out_len: usize, rate: u32) -> Result<Vec<f32>> {
        let mut y = if self.speed == 1.0 {
            x
        } else {
            change_speed(&x, self.speed, out_len)?
        };
        y.resize(out_len, 0.0);
        let fs = f64::from(rate);
        for step in &self.steps {
            match *step {
                Step::LowPass { hz } => {
                    let hz = hz.min(0.45 * fs);
                    biquad_run(&mut y, Type::LowPass, fs, hz, Q_BUTTERWORTH_F64)?;
                    biquad_run(&mut y, Type::LowPass, fs, hz, Q_BUTTERWORTH_F64)?;
                }
                Step::Peak { hz, gain_db } => biquad_run(&mut y, Type::PeakingEQ(gain_db), fs, hz.min(0.45 * fs), 1.0)?,
                Step::HighPass { hz } => biquad_run(&mut y, Type::HighPass, fs, hz, Q_BUTTERWORTH_F64)?,
                Step::Shelf { high, gain_db } => {
                    let (t, hz) = if high {
                        (Type::HighShelf(gain_db), 3000.0_f64.min(0.45 * fs))
                    } else {
                        (Type::LowShelf(gain_db), 300.0)
                    };
                    biquad_run(&mut y, t, fs, hz, Q_BUTTERWORTH_F64)?;
                }
                Step::Drive { k } => {
                    let peak = y.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                    if k > 1e-3 && peak > 0.0 {
                        let (k, norm) = (k as f32, peak / (k as f32).tanh());
                        y.iter_mut().for_each(|v| *v = (k * *v / peak).tanh() * norm);
                    }
                }
                Step::Tremolo { hz, depth, phase } => {
                    let w = std::f64::consts::TAU * hz / fs;
                    for (i, v) in y.iter_mut().enumerate() {
                        let g = 1.0 - depth * 0.5 * (1.0 + (w * i as f64 + phase).sin());
                        *v *= g as f32;
                    }
                }
                Step::Echo { delay_s, feedback } => {
                    let d = ((delay_s * fs) as usize).max(1);
                    let g = feedback as f32;
                    for i in d..y.len() {
                        y[i] += g * y[i - d];
                    }
                }
                Step::Dropout { start, len } => {
                    let n = y.len() as f64;
                    let (a, b) = ((start * n) as usize, (((start + len) * n) as usize).min(y.len()));
                    let fade = ((0.01 * fs) as usize).max(1);
                    for (i, v) in y.iter_mut().enumerate().take(b + fade).skip(a.saturating_sub(fade)) {
                        // Linear ramps of `fade` samples into and out of the silenced stretch.
                        let g = if i < a {
                            (a - i) as f32 / fade as f32
                        } else if i >= b {
                            (i + 1 - b) as f32 / fade as f32
                        } else {
                            0.0
                        };
                        *v *= g.min(1.0);
                    }
                }
            }
        }
        Ok(y)
    }
}

fn biquad_run(y: &mut [f32], t: Type<f64>, fs: f64, f0: f64, q: f64) -> Result<()> {
    let c = Coefficients::<f64>::from_params(t, fs.hz(), f0.hz(), q)
        .map_err(|e| anyhow!("biquad {t:?} at {f0:.1} Hz (rate {fs}): {e:?}"))?;
    let mut f = DirectForm2Transposed::<f64>::new(c);
    for v in y.iter_mut() {
        *v = f.run(f64::from(*v)) as f32;
    }
    Ok(())
}

/// Resamples `x` by `1 / speed` (so `speed > 1` plays faster and higher) to `out_len` samples.
fn change_speed(x: &[f32], speed: f64, out_len: usize) -> Result<Vec<f32>> {
    let chunk = x.len().max(1);
    let mut r = Async::<f32>::new_poly(1.0 / speed, 1.0, PolynomialDegree::Cubic, chunk, 1, FixedAsync::Input)
        .context("speed change resampler")?;
    let want = r.process_all_needed_output_len(x.len());
    let input = vec![x.to_vec()];
    let mut out = vec![vec![0.0f32; want]];
    let inp = SequentialSliceOfVecs::new(&input, 1, x.len()).context("speed change input")?;
    let mut outp = SequentialSliceOfVecs::new_mut(&mut out, 1, want).context("speed change output")?;
    let (_, written) = r
        .process_all_into_buffer(&inp, &mut outp, x.len(), None)
        .context("speed change")?;
    let mut y = out.swap_remove(0);
    y.truncate(written.min(out_len));
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (std::f64::consts::TAU * hz * i as f64 / 22050.0).sin() as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn lowpass_removes_high_tone_and_keeps_low_tone() {
        let c = Chain {
            speed: 1.0,
            steps: vec![Step::LowPass { hz: 2000.0 }],
        };
        let lo = c.apply(tone(300.0, 22050), 22050, 22050).unwrap();
        let hi = c.apply(tone(8000.0, 22050), 22050, 22050).unwrap();
        // 4th-order Butterworth: -3 dB per section at the cut-off, 24 dB/octave above.
        assert!((rms(&lo[2000..]) / std::f64::consts::FRAC_1_SQRT_2 - 1.0).abs() < 0.01);
        assert!(rms(&hi[2000..]) < 0.01 * std::f64::consts::FRAC_1_SQRT_2);
    }

    #[test]
    fn speed_change_shifts_frequency_and_keeps_length() {
        let c = Chain {
            speed: 1.25,
            steps: vec![],
        };
        let n = 22050;
        let x = tone(400.0, c.input_len(n));
        let y = c.apply(x, n, 22050).unwrap();
        assert_eq!(y.len(), n);
        // Count rising zero crossings after the first 100 samples: 400 Hz played 1.25x faster
        // is 500 Hz, so 500 * 21950 / 22050 = 497.7 crossings.
        let ups = y.windows(2).skip(100).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!((ups as f64 - 497.7).abs() <= 1.5, "{ups}");
    }

    #[test]
    fn drawn_chain_is_deterministic_and_length_preserving() {
        use rand::SeedableRng;
        let p = SamplerConfig {
            lowpass_p: 1.0,
            eq_p: 1.0,
            randaugment_n: 6,
            randaugment_m: 10.0,
            ..SamplerConfig::default()
        };
        for seed in 0..20 {
            let a = Chain::draw(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &p);
            let b = Chain::draw(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &p);
            assert_eq!(a, b);
            assert!(a.steps.len() >= 3);
            let y = a.apply(tone(440.0, a.input_len(6615)), 6615, 22050).unwrap();
            assert_eq!(y.len(), 6615);
            assert!(y.iter().all(|v| v.is_finite()));
        }
    }
}
