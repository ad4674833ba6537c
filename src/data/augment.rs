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
//! 3. optionally a **pitch/speed shift** of every source, uniform in `±pitch_semitones`
//!    (recordings and renders differ in tuning and tempo; a class is not one pitch);
//! 4. optionally (probability `reverb_p`) a **synthetic room**: the source convolved with a
//!    random impulse response — 2-12 ms of pre-delay, then Gaussian noise decaying by 60 dB
//!    over `RT60` (log-uniform in `reverb_rt60`) through a one-pole low-pass at 2-12 kHz (air
//!    and wall absorption), unit energy — mixed `1 − wet : wet` (`wet` uniform in
//!    `reverb_wet`). The impulse response is drawn from its own seed, so a chain stays a
//!    small description.
//!
//! The operations keep the length (speed change reads a longer or shorter window and resamples
//! it to the crop length), so a chain is drawn first, [`Chain::input_len`] says how many
//! samples to read, and [`Chain::apply`] returns exactly the crop length.
//!
//! Filters are the `biquad` crate's RBJ-cookbook biquads (f64 state: low cut-offs at 22 kHz
//! put poles near the unit circle), run as one cascade per run of filters; the speed change
//! is 4-point cubic interpolation.

use anyhow::anyhow;
use biquad::{Coefficients, Q_BUTTERWORTH_F64, ToHertz, Type};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::Result;

/// The settings a [`Chain`] is drawn from: the augmentation fields of the sampler's
/// configuration (`SamplerConfig::augment` in `sampler.rs`), documented there. A view, so this
/// module does not depend on the sampler.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a> {
    pub lowpass_p: f32,
    pub lowpass_hz: [f32; 2],
    pub eq_p: f32,
    pub eq_bands: usize,
    pub eq_hz: [f32; 2],
    pub eq_gain_db: [f32; 2],
    pub randaugment_n: usize,
    pub randaugment_m: f32,
    pub ops: &'a [Op],
    pub pitch_semitones: f32,
    pub pitch_skip: &'a [String],
    pub reverb_p: f32,
    pub reverb_rt60: [f32; 2],
    pub reverb_wet: [f32; 2],
}

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
    /// Synthetic room (see the module docs).
    Reverb {
        rt60: f64,
        wet: f64,
        predelay_s: f64,
        damp_hz: f64,
        seed: u64,
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

/// Log-uniform in a range of positive values (no floor at 1, unlike [`log_uniform`]).
fn log_uniform_f64(rng: &mut impl Rng, r: [f32; 2]) -> f64 {
    let (lo, hi) = (f64::from(r[0].min(r[1])).max(1e-6), f64::from(r[0].max(r[1])).max(1e-6));
    if hi > lo {
        rng.random_range(lo.ln()..=hi.ln()).exp()
    } else {
        lo
    }
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

    /// Draws a chain for a source of `label` from `p` (`lowpass_*`, `eq_*`, `randaugment_*`,
    /// `ops`, `pitch_*`, `reverb_*`); the number of RNG calls depends only on `p`, the label
    /// and the draws themselves.
    pub fn draw(rng: &mut impl Rng, p: &Params<'_>, label: &str) -> Chain {
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
        if p.pitch_semitones > 0.0 && !p.pitch_skip.iter().any(|l| l == label) {
            let st = uniform(rng, [-p.pitch_semitones, p.pitch_semitones]);
            c.speed *= 2f64.powf(st / 12.0);
        }
        if p.reverb_p > 0.0 && rng.random::<f32>() < p.reverb_p {
            c.steps.push(Step::Reverb {
                rt60: log_uniform_f64(rng, p.reverb_rt60),
                wet: uniform(rng, p.reverb_wet),
                predelay_s: rng.random_range(0.002..0.012),
                damp_hz: rng.random_range(2000.0..12000.0),
                seed: rng.random(),
            });
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
            change_speed(&x, self.speed, out_len)
        };
        y.resize(out_len, 0.0);
        let fs = f64::from(rate);
        // Runs of consecutive filters are applied as one cascade, in one pass over the
        // signal (the same arithmetic per filter, in the same order).
        let mut cascade: Vec<Coefficients<f64>> = Vec::new();
        for step in &self.steps {
            if !step.is_filter() {
                run_cascade(&mut y, &cascade);
                cascade.clear();
            }
            match *step {
                Step::LowPass { hz } => {
                    let lp = biquad(Type::LowPass, fs, hz.min(0.45 * fs), Q_BUTTERWORTH_F64)?;
                    cascade.extend([lp, lp]);
                }
                Step::Peak { hz, gain_db } => {
                    cascade.push(biquad(Type::PeakingEQ(gain_db), fs, hz.min(0.45 * fs), 1.0)?)
                }
                Step::HighPass { hz } => cascade.push(biquad(Type::HighPass, fs, hz, Q_BUTTERWORTH_F64)?),
                Step::Shelf { high, gain_db } => cascade.push(if high {
                    biquad(
                        Type::HighShelf(gain_db),
                        fs,
                        3000.0_f64.min(0.45 * fs),
                        Q_BUTTERWORTH_F64,
                    )?
                } else {
                    biquad(Type::LowShelf(gain_db), fs, 300.0, Q_BUTTERWORTH_F64)?
                }),
                Step::Drive { k } => {
                    let peak = y.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                    if k > 1e-3 && peak > 0.0 {
                        let (k, norm) = (k as f32, peak / tanh_exp(k as f32));
                        y.iter_mut().for_each(|v| *v = tanh_exp(k * *v / peak) * norm);
                    }
                }
                Step::Tremolo { hz, depth, phase } => {
                    // sin(w i + phase) by rotating a unit phasor (f64: drift ~1e-12 over a crop),
                    // re-normalised every 4,096 samples.
                    let w = std::f64::consts::TAU * hz / fs;
                    let (sw, cw) = w.sin_cos();
                    let (mut sn, mut cs) = phase.sin_cos();
                    for (i, v) in y.iter_mut().enumerate() {
                        let g = 1.0 - depth * 0.5 * (1.0 + sn);
                        *v *= g as f32;
                        (sn, cs) = (sn * cw + cs * sw, cs * cw - sn * sw);
                        if i % 4096 == 4095 {
                            let r = (sn * sn + cs * cs).sqrt();
                            (sn, cs) = (sn / r, cs / r);
                        }
                    }
                }
                Step::Echo { delay_s, feedback } => {
                    let d = ((delay_s * fs) as usize).max(1);
                    let g = feedback as f32;
                    for i in d..y.len() {
                        y[i] += g * y[i - d];
                    }
                }
                Step::Reverb {
                    rt60,
                    wet,
                    predelay_s,
                    damp_hz,
                    seed,
                } => {
                    let ir = room_response(fs, rt60, predelay_s, damp_hz.min(0.45 * fs), seed);
                    convolve_mix(&mut y, &ir, 1.0 - wet as f32, wet as f32)?;
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
        run_cascade(&mut y, &cascade);
        Ok(y)
    }
}

impl Step {
    /// Whether the step is a biquad filter (run as part of a cascade).
    fn is_filter(&self) -> bool {
        matches!(
            self,
            Step::LowPass { .. } | Step::Peak { .. } | Step::HighPass { .. } | Step::Shelf { .. }
        )
    }
}

/// The RBJ-cookbook biquad of type `t` at `f0` Hz (rate `fs`, quality `q`).
fn biquad(t: Type<f64>, fs: f64, f0: f64, q: f64) -> Result<Coefficients<f64>> {
    Coefficients::<f64>::from_params(t, fs.hz(), f0.hz(), q)
        .map_err(|e| anyhow!("biquad {t:?} at {f0:.1} Hz (rate {fs}): {e:?}"))
}

/// tanh as `1 - 2 / (e^2x + 1)` with one `exp` (libm's `tanhf` goes through `expm1f` and was
/// a tenth of the sampler's time at full strength); absolute error below 2e-7, ±1 at the
/// extremes (an infinite `e^2x` gives 1, a zero one -1).
fn tanh_exp(x: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
}

/// Runs `y` through the biquads of `cascade` in order (transposed direct form II, f64 state),
/// all in one pass: each sample goes through every filter before the next sample, so the
/// filters' recursions overlap in the pipeline instead of each taking a pass of its own.
fn run_cascade(y: &mut [f32], cascade: &[Coefficients<f64>]) {
    if cascade.is_empty() {
        return;
    }
    let mut st = vec![[0f64; 2]; cascade.len()];
    for v in y.iter_mut() {
        let mut x = f64::from(*v);
        for (c, s) in cascade.iter().zip(st.iter_mut()) {
            let out = c.b0 * x + s[0];
            s[0] = c.b1 * x - c.a1 * out + s[1];
            s[1] = c.b2 * x - c.a2 * out;
            x = out;
        }
        *v = x as f32;
    }
}

/// A synthetic room impulse response at `fs` Hz (see the module docs): `predelay_s` of
/// silence, then Gaussian noise with an exponential envelope falling 60 dB in `rt60` seconds
/// (cut at -60 dB), low-passed by one pole at `damp_hz`, scaled to unit energy.
pub fn room_response(fs: f64, rt60: f64, predelay_s: f64, damp_hz: f64, seed: u64) -> Vec<f32> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pre = (predelay_s * fs) as usize;
    let tail = ((rt60 * fs) as usize).max(1);
    // exp(-ln(1000) n / tail): amplitude -60 dB at n = tail.
    let k = -(1000f64.ln()) / tail as f64;
    let a = (-std::f64::consts::TAU * damp_hz / fs).exp();
    let mut ir = vec![0f32; pre + tail];
    let (mut state, mut env, decay) = (0f64, 1f64, k.exp());
    for v in ir[pre..].iter_mut() {
        let noise: f64 = StandardNormal.sample(&mut rng);
        state = (1.0 - a) * noise + a * state;
        *v = (state * env) as f32;
        env *= decay;
    }
    let energy = ir.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
    if energy > 0.0 {
        let g = (1.0 / energy.sqrt()) as f32;
        ir.iter_mut().for_each(|v| *v *= g);
    }
    ir
}

/// The buffers [`convolve_mix`] keeps per thread: time signal, the two spectra, FFT scratch.
struct ConvBufs {
    buf: Vec<f32>,
    a: Vec<realfft::num_complex::Complex<f32>>,
    spec_h: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
}

impl ConvBufs {
    const fn new() -> ConvBufs {
        ConvBufs {
            buf: Vec::new(),
            a: Vec::new(),
            spec_h: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

/// `y <- dry * y + wet * (y * h)[..y.len()]`: the first `y.len()` samples of the linear
/// convolution, by real FFTs whose plans and buffers are kept per thread (fresh half-megabyte
/// buffers per source cost page faults).
fn convolve_mix(y: &mut [f32], h: &[f32], dry: f32, wet: f32) -> Result<()> {
    use realfft::RealFftPlanner;
    use realfft::num_complex::Complex;
    use std::cell::RefCell;
    if y.is_empty() || h.is_empty() {
        y.iter_mut().for_each(|v| *v *= dry);
        return Ok(());
    }
    thread_local! {
        // The planner keeps its plans: building one computes its twiddles (a quarter of the
        // sampler's time when planned afresh per source).
        static PLANNER: RefCell<RealFftPlanner<f32>> = RefCell::new(RealFftPlanner::new());
        static BUFS: RefCell<ConvBufs> = const { RefCell::new(ConvBufs::new()) };
    }
    let n = (y.len() + h.len() - 1).next_power_of_two();
    let (fwd, inv) = PLANNER.with(|p| {
        let mut p = p.borrow_mut();
        (p.plan_fft_forward(n), p.plan_fft_inverse(n))
    });
    BUFS.with(|b| -> Result<()> {
        let ConvBufs {
            buf,
            a,
            spec_h,
            scratch,
        } = &mut *b.borrow_mut();
        let zero = Complex::new(0.0, 0.0);
        buf.resize(n, 0.0);
        a.resize(n / 2 + 1, zero);
        spec_h.resize(n / 2 + 1, zero);
        scratch.resize(fwd.get_scratch_len().max(inv.get_scratch_len()), zero);
        for (v, spec) in [(&*y, &mut *a), (h, &mut *spec_h)] {
            buf[..v.len()].copy_from_slice(v);
            buf[v.len()..].fill(0.0);
            fwd.process_with_scratch(buf, spec, scratch)
                .map_err(|e| anyhow!("reverb FFT: {e}"))?;
        }
        a.iter_mut().zip(spec_h.iter()).for_each(|(p, q)| *p *= q);
        // The inverse wants real DC and Nyquist bins; rounding leaves tiny imaginary parts.
        a[0].im = 0.0;
        a[n / 2].im = 0.0;
        inv.process_with_scratch(a, buf, scratch)
            .map_err(|e| anyhow!("reverb inverse FFT: {e}"))?;
        let g = wet / n as f32;
        for (v, w) in y.iter_mut().zip(buf.iter()) {
            *v = dry * *v + g * w;
        }
        Ok(())
    })
}

/// Resamples `x` by `1 / speed` (so `speed > 1` plays faster and higher) to `out_len` samples:
/// output sample `i` is the cubic (4-point Lagrange) interpolation of `x` at `i * speed`, the
/// edges held. No anti-aliasing filter (like a polynomial resampler): the shifts are small.
fn change_speed(x: &[f32], speed: f64, out_len: usize) -> Vec<f32> {
    if x.is_empty() {
        return vec![0.0; out_len];
    }
    let last = x.len() as isize - 1;
    const SIXTH: f32 = 1.0 / 6.0;
    let lagrange = |f: f32, y: [f32; 4]| {
        let (fm1, fm2, fp1) = (f - 1.0, f - 2.0, f + 1.0);
        let (a, b) = (f * fm1, fp1 * fm2);
        (-a * fm2 * y[0] + a * fp1 * y[3]) * SIXTH + (b * fm1 * y[1] - b * f * y[2]) * 0.5
    };
    (0..out_len)
        .map(|i| {
            let t = i as f64 * speed;
            let k = t as isize;
            let f = (t - k as f64) as f32;
            let y = if k >= 1 && k + 2 <= last {
                let j = k as usize;
                [x[j - 1], x[j], x[j + 1], x[j + 2]]
            } else {
                // The edges: hold the first and last samples.
                let at = |k: isize| x[k.clamp(0, last) as usize];
                [at(k - 1), at(k), at(k + 1), at(k + 2)]
            };
            lagrange(f, y)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    // Tests only: the chains are drawn from the sampler's real defaults.
    use crate::data::sampler::SamplerConfig;

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

    /// Schroeder backward integration of `ir²` in dB, the decay rate fitted from -5 to -25 dB
    /// and extrapolated to 60 dB (a T20 measurement).
    fn t20(ir: &[f32], fs: f64) -> f64 {
        let mut edc: Vec<f64> = ir
            .iter()
            .rev()
            .scan(0.0, |acc, v| {
                *acc += f64::from(*v).powi(2);
                Some(*acc)
            })
            .collect();
        edc.reverse();
        let db: Vec<f64> = edc.iter().map(|e| 10.0 * (e / edc[0]).log10()).collect();
        let at = |level: f64| db.iter().position(|d| *d <= level).unwrap() as f64 / fs;
        3.0 * (at(-25.0) - at(-5.0))
    }

    #[test]
    fn room_response_has_the_drawn_decay_predelay_and_unit_energy() {
        let fs = 22050.0;
        for (seed, &rt60) in [0.2f64, 0.5, 1.2].iter().enumerate() {
            let ir = room_response(fs, rt60, 0.01, 6000.0, seed as u64);
            let energy: f64 = ir.iter().map(|v| f64::from(*v).powi(2)).sum();
            assert!((energy - 1.0).abs() < 1e-4, "energy {energy}");
            let pre = (0.01 * fs) as usize;
            assert!(ir[..pre].iter().all(|v| *v == 0.0));
            assert!(ir[pre..pre + 20].iter().any(|v| *v != 0.0));
            assert_eq!(ir.len(), pre + (rt60 * fs) as usize);
            let t = t20(&ir, fs);
            assert!((t / rt60 - 1.0).abs() < 0.15, "RT60 {rt60}: measured {t}");
            assert_eq!(ir, room_response(fs, rt60, 0.01, 6000.0, seed as u64));
            assert_ne!(ir, room_response(fs, rt60, 0.01, 6000.0, seed as u64 + 7));
        }
    }

    #[test]
    fn one_pass_cascade_and_phasor_tremolo_match_their_direct_forms() {
        use biquad::{Biquad, DirectForm2Transposed};
        let x: Vec<f32> = (0..20_000).map(|i| ((i * 7919 % 2003) as f32 / 1001.0) - 1.0).collect();
        let fs = 22050.0;
        let steps = vec![
            Step::LowPass { hz: 5000.0 },
            Step::Peak {
                hz: 900.0,
                gain_db: 6.0,
            },
            Step::Tremolo {
                hz: 5.0,
                depth: 0.5,
                phase: 1.0,
            },
            Step::HighPass { hz: 150.0 },
            Step::Shelf {
                high: true,
                gain_db: -4.0,
            },
        ];
        let got = Chain { speed: 1.0, steps }.apply(x.clone(), x.len(), 22050).unwrap();
        let run = |y: &mut Vec<f32>, t: Type<f64>, f0: f64, q: f64| {
            let c = Coefficients::<f64>::from_params(t, fs.hz(), f0.hz(), q).unwrap();
            let mut f = DirectForm2Transposed::<f64>::new(c);
            y.iter_mut().for_each(|v| *v = f.run(f64::from(*v)) as f32);
        };
        let mut want = x.clone();
        run(&mut want, Type::LowPass, 5000.0, Q_BUTTERWORTH_F64);
        run(&mut want, Type::LowPass, 5000.0, Q_BUTTERWORTH_F64);
        run(&mut want, Type::PeakingEQ(6.0), 900.0, 1.0);
        let w = std::f64::consts::TAU * 5.0 / fs;
        for (i, v) in want.iter_mut().enumerate() {
            *v *= (1.0 - 0.25 * (1.0 + (w * i as f64 + 1.0).sin())) as f32;
        }
        run(&mut want, Type::HighPass, 150.0, Q_BUTTERWORTH_F64);
        run(&mut want, Type::HighShelf(-4.0), 3000.0, Q_BUTTERWORTH_F64);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-5, "sample {i}: {a} vs {b}");
        }
    }

    #[test]
    fn tanh_by_one_exp_matches_libm() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            assert!((tanh_exp(x) - x.tanh()).abs() < 2e-7, "{x}");
        }
        assert_eq!((tanh_exp(100.0), tanh_exp(-100.0)), (1.0, -1.0));
    }

    #[test]
    fn fft_convolution_matches_the_direct_sum() {
        let x: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let h: Vec<f32> = (0..77).map(|i| ((i * 53 % 29) as f32 / 14.0) - 1.0).collect();
        // Twice on the same thread (the kept buffers must not leak into the next call), and
        // a shorter signal after a longer one.
        for len in [300, 300, 120] {
            let x = &x[..len];
            let mut y = x.to_vec();
            convolve_mix(&mut y, &h, 0.25, 0.5).unwrap();
            assert_eq!(y.len(), x.len());
            for (n, v) in y.iter().enumerate() {
                let conv: f32 = (0..=n.min(h.len() - 1)).map(|k| h[k] * x[n - k]).sum();
                let want = 0.25 * x[n] + 0.5 * conv;
                assert!((v - want).abs() < 1e-4, "sample {n}: {v} vs {want}");
            }
        }
    }

    #[test]
    fn reverb_step_keeps_length_and_a_dry_mix_is_the_identity() {
        let x = tone(440.0, 11025);
        let step = |wet| Chain {
            speed: 1.0,
            steps: vec![Step::Reverb {
                rt60: 0.6,
                wet,
                predelay_s: 0.005,
                damp_hz: 8000.0,
                seed: 3,
            }],
        };
        assert_eq!(step(0.0).apply(x.clone(), 11025, 22050).unwrap(), x);
        let y = step(0.5).apply(x.clone(), 11025, 22050).unwrap();
        assert_eq!(y.len(), 11025);
        assert!(y.iter().all(|v| v.is_finite()));
        // An impulse comes out as dry impulse plus the scaled room response.
        let mut imp = vec![0f32; 22050];
        imp[0] = 1.0;
        let r = step(0.5).apply(imp, 22050, 22050).unwrap();
        let ir = room_response(22050.0, 0.6, 0.005, 8000.0, 3);
        assert!((r[0] - 0.5).abs() < 1e-5);
        for n in 1..ir.len().min(22050) {
            assert!((r[n] - 0.5 * ir[n]).abs() < 1e-4, "sample {n}");
        }
    }

    #[test]
    fn pitch_shift_spans_the_configured_semitones() {
        use rand::SeedableRng;
        let p = SamplerConfig {
            lowpass_p: 0.0,
            eq_p: 0.0,
            randaugment_n: 0,
            pitch_semitones: 3.0,
            ..SamplerConfig::default()
        };
        let semis: Vec<f64> = (0..400)
            .map(|seed| {
                let c = Chain::draw(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &p.augment(), "piano");
                12.0 * c.speed.log2()
            })
            .collect();
        assert!(semis.iter().all(|s| s.abs() <= 3.0 + 1e-9));
        assert!(semis.iter().any(|s| *s > 2.7) && semis.iter().any(|s| *s < -2.7));
        // A skipped label keeps its pitch.
        let skip = SamplerConfig {
            pitch_skip: vec!["bass".into()],
            ..p.clone()
        };
        for seed in 0..50 {
            let c = Chain::draw(
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                &skip.augment(),
                "bass",
            );
            assert_eq!(c.speed, 1.0);
            let d = Chain::draw(
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                &skip.augment(),
                "piano",
            );
            assert_eq!(
                d,
                Chain::draw(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &p.augment(), "piano")
            );
        }
        // Both off by default: no draw moves the speed and none adds a room.
        let off = SamplerConfig {
            randaugment_n: 0,
            ..SamplerConfig::default()
        };
        for seed in 0..50 {
            let c = Chain::draw(
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                &off.augment(),
                "piano",
            );
            assert_eq!(c.speed, 1.0);
            assert!(c.steps.iter().all(|s| !matches!(s, Step::Reverb { .. })));
        }
    }

    #[test]
    fn drawn_chain_is_deterministic_and_length_preserving() {
        use rand::SeedableRng;
        let p = SamplerConfig {
            lowpass_p: 1.0,
            eq_p: 1.0,
            randaugment_n: 6,
            randaugment_m: 10.0,
            pitch_semitones: 3.0,
            reverb_p: 0.5,
            ..SamplerConfig::default()
        };
        for seed in 0..20 {
            let a = Chain::draw(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &p.augment(), "piano");
            let b = Chain::draw(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &p.augment(), "piano");
            assert_eq!(a, b);
            assert!(a.steps.len() >= 3);
            let y = a.apply(tone(440.0, a.input_len(6615)), 6615, 22050).unwrap();
            assert_eq!(y.len(), 6615);
            assert!(y.iter().all(|v| v.is_finite()));
        }
    }
}
