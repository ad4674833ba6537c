//! Procedural environmental sounds: wind, water, engines and animals from seeded models, the
//! `render-ambience` set. The allowed packages hold a few minutes and a few dozen source files
//! of these labels (docs/data.md), so a model hears a handful of recordings, not the classes.
//! Each *patch* here is one seed: a model (and its variant) with every parameter drawn, and a
//! recording chain (distance low-pass, band-limit, room, saturation), rendered for
//! [`PATCH_SECS`]; one patch is one group of the split, so test patches are never heard in
//! training.
//!
//! - wind: coloured noise through a band-pass whose centre follows a gust process (an
//!   Ornstein-Uhlenbeck walk), with whistles (narrow resonances tracking the gusts), low rumble
//!   and leaf rustle;
//! - water: bubbles after Minnaert / van den Doel (a damped sine at 3.26 m·Hz / radius with a
//!   rising pitch) at Poisson rates: streams, rain (impact clicks and bubbles over hiss), drips,
//!   surf (swells of roar and foam), waterfalls, pouring;
//! - engine: combustion engines (a firing pulse train at rpm / 60 x cylinders / 2 through
//!   exhaust resonances and a muffler, per-cylinder levels, an rpm that follows a throttle),
//!   electric motors (rotor harmonics and a whine), propellers (blade-pass modulated noise over
//!   a piston engine) and turbines (roar and a spool whine);
//! - animal: scenes of 1-4 callers of one kind: birds (songs of 2-5 syllable kinds: sweeps,
//!   trills, chirps, in phrases), insects (cricket chirps, cicada buzzes, flying buzz), frogs
//!   (pulse-train croaks ringing formants, peeps) or a mammal species by source and filter
//!   (a sawtooth at a pitch contour plus breath through gliding formants: moos, bleats,
//!   howls, meows, barks, growls).
//!
//! Deterministic: ChaCha8 streams seeded by (label, patch), no floating-point reductions in a
//! thread-dependent order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::manifest::fnv1a;

/// Labels the set renders.
pub const AMBIENCE_LABELS: &[&str] = &["wind", "water", "engine", "animal"];
/// Patches per label and their length.
pub const PATCHES_PER_LABEL: u64 = 60;
pub const PATCH_SECS: f64 = 30.0;

/// A rendered patch: what it is (the manifest's `source_file`) and its samples.
pub struct Rendered {
    pub description: String,
    pub samples: Vec<f32>,
}

/// Renders patch `seed` of `label` (one of [`AMBIENCE_LABELS`]) for `secs` at `rate`.
pub fn render(label: &str, seed: u64, secs: f64, rate: u32) -> Option<Rendered> {
    let mut rng = ChaCha8Rng::seed_from_u64(fnv1a(&format!("ambience|{label}|{seed}")));
    let n = (secs * f64::from(rate)).round() as usize;
    let r = rate as f32;
    let (what, mut x) = match label {
        "wind" => wind(&mut rng, n, r),
        "water" => water(&mut rng, n, r),
        "engine" => engine(&mut rng, n, r),
        "animal" => animal(&mut rng, n, r),
        _ => return None,
    };
    let chain = recording_chain(&mut rng, &mut x, r);
    Some(Rendered {
        description: format!("ambience {label} patch {seed}: {what}{chain}"),
        samples: x,
    })
}

// ---------------------------------------------------------------------------------------
// Building blocks

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo * (hi / lo).powf(rng.random::<f32>())
}

fn white(rng: &mut ChaCha8Rng) -> f32 {
    2.0 * rng.random::<f32>() - 1.0
}

fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

/// Pink noise (Paul Kellet's economy filter over white noise).
#[derive(Default)]
struct Pink([f32; 3]);

impl Pink {
    fn next(&mut self, w: f32) -> f32 {
        let b = &mut self.0;
        b[0] = 0.99765 * b[0] + w * 0.099_046;
        b[1] = 0.96300 * b[1] + w * 0.296_516_4;
        b[2] = 0.57000 * b[2] + w * 1.052_691_3;
        (b[0] + b[1] + b[2] + w * 0.1848) * 0.25
    }
}

/// Brown (red) noise: a leaky integrator of white noise.
#[derive(Default)]
struct Brown(f32);

impl Brown {
    fn next(&mut self, w: f32) -> f32 {
        self.0 = 0.996 * self.0 + 0.06 * w;
        self.0
    }
}

/// An oscillator's phase in cycles, `[0, 1)`.
#[derive(Clone, Copy, Default)]
struct Phase(f32);

impl Phase {
    /// Advances one sample at `f` Hz (held under 0.45 `rate`, below Nyquist) and returns the
    /// new phase.
    fn step(&mut self, f: f32, rate: f32) -> f32 {
        self.0 = (self.0 + f.min(0.45 * rate) / rate).fract();
        self.0
    }

    /// `sin(2π phase)` after a [`Phase::step`].
    fn sin(&mut self, f: f32, rate: f32) -> f32 {
        (std::f32::consts::TAU * self.step(f, rate)).sin()
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Low,
    High,
    Band,
}

/// An RBJ biquad (transposed direct form II) whose coefficients can change between samples.
#[derive(Clone, Copy, Default)]
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    z: [f32; 2],
}

impl Biquad {
    fn new(shape: Shape, f: f32, q: f32, rate: f32) -> Self {
        let mut bq = Self::default();
        bq.set(shape, f, q, rate);
        bq
    }

    fn set(&mut self, shape: Shape, f: f32, q: f32, rate: f32) {
        let f = f.clamp(10.0, 0.45 * rate);
        let w = std::f32::consts::TAU * f / rate;
        let (s, c) = w.sin_cos();
        let alpha = s / (2.0 * q.max(0.05));
        let a0 = 1.0 + alpha;
        let b = match shape {
            Shape::Low => [(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0],
            Shape::High => [(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0],
            Shape::Band => [alpha, 0.0, -alpha],
        };
        self.b = b.map(|v| v / a0);
        self.a = [-2.0 * c / a0, (1.0 - alpha) / a0];
    }

    fn run(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// A mean-reverting random walk (Ornstein-Uhlenbeck): `mean`, time constant `tau` seconds,
/// stationary deviation `sd`.
struct Walk {
    x: f32,
    mean: f32,
    k: f32,
    step: f32,
}

impl Walk {
    fn new(mean: f32, tau: f32, sd: f32, rate: f32) -> Self {
        let k = 1.0 / (tau * rate);
        Self {
            x: mean,
            mean,
            k,
            // Uniform steps of variance step²/3: the stationary variance sd² needs
            // step² / 3 = 2 k sd².
            step: sd * (6.0 * k).sqrt(),
        }
    }

    fn next(&mut self, rng: &mut ChaCha8Rng) -> f32 {
        self.x += self.k * (self.mean - self.x) + self.step * white(rng);
        self.x
    }
}

/// Coefficients are refreshed every this many samples.
const BLOCK: usize = 32;

// ---------------------------------------------------------------------------------------
// Wind

fn wind(rng: &mut ChaCha8Rng, n: usize, r: f32) -> (String, Vec<f32>) {
    let lo = log_uniform(rng, 70.0, 500.0);
    let hi = lo * uniform(rng, 2.5, 14.0);
    let q = uniform(rng, 0.4, 2.5);
    let gamma = uniform(rng, 1.0, 2.5);
    let mut gust = Walk::new(
        uniform(rng, 0.3, 0.7),
        uniform(rng, 0.4, 5.0),
        uniform(rng, 0.12, 0.35),
        r,
    );
    let pink_share = uniform(rng, 0.0, 1.0);
    let n_whistles = rng.random_range(0..=3usize);
    let whistles: Vec<(f32, f32, f32)> = (0..n_whistles)
        .map(|_| {
            (
                log_uniform(rng, 250.0, 2500.0),
                uniform(rng, 15.0, 60.0),
                uniform(rng, 0.05, 0.4),
            )
        })
        .collect();
    let rumble = if chance(rng, 0.6) { uniform(rng, 0.1, 0.8) } else { 0.0 };
    let rumble_f = uniform(rng, 40.0, 160.0);
    let rustle = if chance(rng, 0.45) {
        uniform(rng, 0.05, 0.5)
    } else {
        0.0
    };
    let rustle_f = uniform(rng, 1500.0, 6000.0);
    let mut flutter = Walk::new(0.0, 0.02, 1.0, r);

    let (mut pink, mut brown, mut brown2) = (Pink::default(), Brown::default(), Brown::default());
    let mut body = Biquad::new(Shape::Band, lo, q, r);
    let mut ws: Vec<Biquad> = whistles.iter().map(|w| Biquad::new(Shape::Band, w.0, w.1, r)).collect();
    let mut rum = Biquad::new(Shape::Low, rumble_f, 0.7, r);
    let mut rus = Biquad::new(Shape::High, rustle_f, 0.7, r);
    let mut out = vec![0f32; n];
    let mut g = 0.0f32;
    for (i, o) in out.iter_mut().enumerate() {
        let gi = gust.next(rng).clamp(0.06, 1.6);
        if i % BLOCK == 0 {
            g = gi;
            let u = g.min(1.0);
            body.set(Shape::Band, lo * (hi / lo).powf(u), q, r);
            for (b, w) in ws.iter_mut().zip(&whistles) {
                b.set(Shape::Band, w.0 * (0.6 + 0.8 * u), w.1, r);
            }
        }
        let w = white(rng);
        let src = pink_share * pink.next(w) * 3.0 + (1.0 - pink_share) * brown.next(w) * 4.0;
        let mut y = body.run(src) * g.powf(gamma);
        for (b, wh) in ws.iter_mut().zip(&whistles) {
            y += b.run(white(rng)) * wh.2 * 6.0 * g * g;
        }
        y += rumble * rum.run(brown2.next(white(rng))) * 4.0 * g;
        y += rustle * rus.run(white(rng)) * g * (0.5 + 0.5 * flutter.next(rng).abs()).min(1.5);
        *o = y;
    }
    let what = format!(
        "wind {lo:.0}-{hi:.0} Hz, {n_whistles} whistle(s){}{}",
        if rumble > 0.0 { ", rumble" } else { "" },
        if rustle > 0.0 { ", rustle" } else { "" }
    );
    (what, out)
}

// ---------------------------------------------------------------------------------------
// Water

/// One bubble: a damped sine whose pitch rises as it decays (van den Doel).
struct Bubble {
    phase: f32,
    f: f32,
    rise: f32,
    amp: f32,
    decay: f32,
}

impl Bubble {
    /// A bubble of radius `radius` metres, level `amp`, pitch rise `xi` (0 = none).
    fn new(radius: f32, amp: f32, xi: f32, r: f32) -> Self {
        let f = (3.26 / radius).min(0.4 * r);
        let d = 0.043 * f + 0.0014 * f.powf(1.5);
        Self {
            phase: 0.0,
            f,
            rise: 1.0 + xi * d / r,
            amp,
            decay: (-d / r).exp(),
        }
    }

    fn next(&mut self, r: f32) -> f32 {
        let y = self.amp * self.phase.sin();
        self.phase += std::f32::consts::TAU * self.f / r;
        if self.phase > std::f32::consts::TAU {
            self.phase -= std::f32::consts::TAU;
        }
        self.f = (self.f * self.rise).min(0.45 * r);
        self.amp *= self.decay;
        y
    }
}

/// A bubble population: Poisson arrivals at a rate per second, radii log-uniform.
struct Bubbles {
    live: Vec<Bubble>,
    rmin: f32,
    rmax: f32,
    alpha: f32,
    xi: (f32, f32),
}

impl Bubbles {
    fn new(rmin: f32, rmax: f32) -> Self {
        Self {
            live: Vec::new(),
            rmin,
            rmax,
            alpha: 1.0,
            xi: (0.0, 0.0),
        }
    }

    /// Draws the level-radius exponent and the range of pitch rises.
    fn varied(mut self, rng: &mut ChaCha8Rng) -> Self {
        self.alpha = uniform(rng, 0.3, 1.4);
        self.xi = (0.0, uniform(rng, 0.0, 0.6));
        self
    }

    /// One sample with arrivals at `rate_hz`, each bubble scaled by `level`.
    fn next(&mut self, rng: &mut ChaCha8Rng, rate_hz: f32, level: f32, r: f32) -> f32 {
        let mut births = rate_hz / r;
        while births > 0.0 {
            if rng.random::<f32>() < births.min(1.0) {
                let radius = log_uniform(rng, self.rmin, self.rmax);
                let amp = level * (radius / self.rmax).powf(self.alpha) * uniform(rng, 0.2, 1.0);
                let xi = uniform(rng, self.xi.0, self.xi.1);
                self.live.push(Bubble::new(radius, amp, xi, r));
            }
            births -= 1.0;
        }
        let mut y = 0.0;
        for b in &mut self.live {
            y += b.next(r);
        }
        self.live.retain(|b| b.amp > 1e-4 * level.max(1e-3));
        y
    }
}

fn water(rng: &mut ChaCha8Rng, n: usize, r: f32) -> (String, Vec<f32>) {
    const KINDS: [&str; 6] = ["stream", "rain", "drips", "surf", "waterfall", "pouring"];
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let mut out = vec![0f32; n];
    let (mut pink, mut brown) = (Pink::default(), Brown::default());
    let what = match kind {
        "stream" => {
            let rate = log_uniform(rng, 80.0, 1500.0);
            let rmin = log_uniform(rng, 0.5e-3, 2e-3);
            let mut bubbles = Bubbles::new(rmin, rmin * uniform(rng, 2.0, 8.0)).varied(rng);
            let mut activity = Walk::new(1.0, uniform(rng, 0.3, 3.0), uniform(rng, 0.1, 0.5), r);
            let flow = uniform(rng, 0.0, 0.5);
            let mut lp = Biquad::new(Shape::Low, uniform(rng, 300.0, 2000.0), 0.7, r);
            for o in out.iter_mut() {
                let a = activity.next(rng).max(0.05);
                *o = bubbles.next(rng, rate * a, 1.0, r) + flow * lp.run(pink.next(white(rng))) * 3.0 * a;
            }
            format!("stream, {rate:.0} bubbles per s")
        }
        "rain" => {
            let rate = log_uniform(rng, 30.0, 3000.0);
            let bubble_p = uniform(rng, 0.05, 0.6);
            let mut bubbles = Bubbles::new(0.4e-3, log_uniform(rng, 1e-3, 3e-3)).varied(rng);
            let click_len = (uniform(rng, 0.0005, 0.004) * r) as usize;
            let mut click_hp = Biquad::new(Shape::High, uniform(rng, 800.0, 5000.0), 0.7, r);
            let mut surface = chance(rng, 0.4)
                .then(|| Biquad::new(Shape::Band, uniform(rng, 400.0, 3000.0), uniform(rng, 2.0, 10.0), r));
            let hiss = uniform(rng, 0.0, 0.4);
            let mut hiss_hp = Biquad::new(Shape::High, uniform(rng, 2000.0, 7000.0), 0.7, r);
            let mut intensity = Walk::new(1.0, uniform(rng, 2.0, 10.0), uniform(rng, 0.1, 0.4), r);
            let mut clicks: Vec<(usize, f32)> = Vec::new();
            for o in out.iter_mut() {
                let a = intensity.next(rng).max(0.1);
                if rng.random::<f32>() < rate * a / r {
                    clicks.push((click_len.max(2), uniform(rng, 0.1, 1.0)));
                }
                let mut c = 0.0;
                for (left, amp) in &mut clicks {
                    c += *amp * white(rng) * (*left as f32 / click_len.max(2) as f32);
                    *left -= 1;
                }
                clicks.retain(|k| k.0 > 0);
                let mut y = click_hp.run(c);
                if let Some(s) = &mut surface {
                    y = 0.5 * y + 2.0 * s.run(y);
                }
                let b = bubbles.next(rng, rate * a * bubble_p, 0.6, r);
                *o = y + b + hiss * hiss_hp.run(white(rng)) * a;
            }
            format!("rain, {rate:.0} drops per s")
        }
        "drips" => {
            let rate = log_uniform(rng, 0.3, 8.0);
            let rmin = log_uniform(rng, 1e-3, 4e-3);
            let mut bubbles = Bubbles::new(rmin, rmin * uniform(rng, 1.2, 3.0)).varied(rng);
            bubbles.xi = (uniform(rng, 0.1, 0.5), uniform(rng, 0.5, 2.0));
            let bed = uniform(rng, 0.0, 0.05);
            for o in out.iter_mut() {
                *o = bubbles.next(rng, rate, 1.0, r) + bed * pink.next(white(rng));
            }
            format!("drips, {rate:.1} per s")
        }
        "surf" => {
            let period = uniform(rng, 4.0, 14.0);
            let sharp = uniform(rng, 1.0, 4.0);
            let cut = uniform(rng, 200.0, 900.0);
            let mut roar = Biquad::new(Shape::Low, cut, 0.7, r);
            let mut foam_hp = Biquad::new(Shape::High, uniform(rng, 1500.0, 5000.0), 0.7, r);
            let foam = uniform(rng, 0.1, 0.8);
            let mut bubbles = Bubbles::new(0.5e-3, 4e-3).varied(rng);
            let mut phase = rng.random::<f32>();
            let mut this_period = period;
            let mut e = 0.0;
            for (i, o) in out.iter_mut().enumerate() {
                phase += 1.0 / (this_period * r);
                if phase >= 1.0 {
                    phase -= 1.0;
                    this_period = period * uniform(rng, 0.7, 1.3);
                }
                if i % BLOCK == 0 {
                    e = (0.5 - 0.5 * (std::f32::consts::TAU * phase).cos()).powf(sharp);
                    roar.set(Shape::Low, cut + 2500.0 * e, 0.7, r);
                }
                let w = white(rng);
                let y = roar.run(brown.next(w) * 3.0 + pink.next(w)) * (0.15 + e);
                *o = y + foam * foam_hp.run(white(rng)) * e * e + bubbles.next(rng, 400.0 * e, 0.4, r);
            }
            format!("surf, {period:.1} s swells")
        }
        "waterfall" => {
            let cut = uniform(rng, 800.0, 7000.0);
            let mut lp = Biquad::new(Shape::Low, cut, 0.7, r);
            let mut hp = Biquad::new(Shape::High, uniform(rng, 30.0, 300.0), 0.7, r);
            let brown_share = uniform(rng, 0.0, 1.0);
            let mut level = Walk::new(1.0, uniform(rng, 0.5, 4.0), uniform(rng, 0.03, 0.15), r);
            let mut bubbles = Bubbles::new(0.5e-3, 5e-3).varied(rng);
            let density = log_uniform(rng, 200.0, 3000.0);
            for o in out.iter_mut() {
                let w = white(rng);
                let src = brown_share * brown.next(w) * 4.0 + (1.0 - brown_share) * pink.next(w);
                *o = hp.run(lp.run(src)) * level.next(rng) + bubbles.next(rng, density, 0.3, r);
            }
            format!("waterfall, low-pass {cut:.0} Hz")
        }
        _ => {
            // Pouring: a stream of bubbles into a vessel whose resonance rises as it fills.
            let fill = uniform(rng, 4.0, 15.0);
            let f0 = uniform(rng, 150.0, 500.0);
            let f1 = f0 * uniform(rng, 3.0, 8.0);
            let qv = uniform(rng, 3.0, 12.0);
            let mut res = Biquad::new(Shape::Band, f0, qv, r);
            let mut bubbles = Bubbles::new(1e-3, 6e-3).varied(rng);
            let rate = log_uniform(rng, 200.0, 2000.0);
            let mut t = 0.0f32;
            for (i, o) in out.iter_mut().enumerate() {
                t += 1.0 / r;
                if t > fill {
                    t = 0.0;
                }
                if i % BLOCK == 0 {
                    res.set(Shape::Band, f0 * (f1 / f0).powf(t / fill), qv, r);
                }
                let src = pink.next(white(rng)) * 2.0 + bubbles.next(rng, rate, 0.5, r);
                *o = src + 3.0 * res.run(src);
            }
            format!("pouring, {fill:.1} s fills")
        }
    };
    (what, out)
}

// ---------------------------------------------------------------------------------------
// Engines

/// A throttle in [0, 1]: held, revved in bursts or driven in slow ramps, and an rpm that lags
/// behind it.
struct Throttle {
    mode: u8,
    target: f32,
    u: f32,
    lag: f32,
    hold: usize,
}

impl Throttle {
    fn new(rng: &mut ChaCha8Rng, r: f32) -> Self {
        Self {
            mode: rng.random_range(0..3u8),
            target: uniform(rng, 0.0, 0.4),
            u: 0.0,
            lag: 1.0 / (uniform(rng, 0.2, 1.5) * r),
            hold: 0,
        }
    }

    fn next(&mut self, rng: &mut ChaCha8Rng, r: f32) -> f32 {
        if self.hold == 0 {
            let (lo, hi, secs) = match self.mode {
                0 => (0.0, 0.25, (1.0, 4.0)),
                1 => (0.0, 1.0, (0.3, 1.5)),
                _ => (0.1, 0.9, (2.0, 8.0)),
            };
            self.target = uniform(rng, lo, hi);
            self.hold = (uniform(rng, secs.0, secs.1) * r) as usize;
        }
        self.hold -= 1;
        self.u += (self.target - self.u) * self.lag;
        self.u
    }
}

/// A piston engine: the firing pulses of `cylinders` at rpm through exhaust resonances.
struct Piston {
    cylinders: usize,
    levels: Vec<f32>,
    idle: f32,
    max: f32,
    phase: f32,
    k: usize,
    exc: f32,
    decay: f32,
    noise: f32,
    /// Exhaust resonances and their gains.
    res: Vec<(Biquad, f32)>,
    /// The pulse's own bandwidth (combustion pulses are not clicks).
    pulse: Biquad,
    muffler: Biquad,
    muffler_f: f32,
    mech: Biquad,
    mech_gain: f32,
}

impl Piston {
    fn new(rng: &mut ChaCha8Rng, r: f32) -> Self {
        const CYLS: [usize; 9] = [1, 2, 2, 3, 4, 4, 4, 6, 8];
        let cylinders = CYLS[rng.random_range(0..CYLS.len())];
        let spread = uniform(rng, 0.0, 0.35);
        let idle = uniform(rng, 550.0, 1200.0);
        let max = idle * uniform(rng, 2.5, 7.0);
        let n_res = rng.random_range(1..=4);
        let res = (0..n_res)
            .map(|_| {
                let f = log_uniform(rng, 60.0, 1500.0);
                let q = uniform(rng, 1.5, 8.0);
                (Biquad::new(Shape::Band, f, q, r), uniform(rng, 0.3, 1.0))
            })
            .collect();
        let muffler_f = log_uniform(rng, 150.0, 2500.0);
        Self {
            cylinders,
            levels: (0..cylinders).map(|_| 1.0 - spread * rng.random::<f32>()).collect(),
            idle,
            max,
            phase: 0.0,
            k: 0,
            exc: 0.0,
            decay: (-1.0 / (uniform(rng, 0.0005, 0.004) * r)).exp(),
            noise: uniform(rng, 0.0, 0.6),
            res,
            pulse: Biquad::new(Shape::Low, log_uniform(rng, 800.0, 5000.0), 0.7, r),
            muffler: Biquad::new(Shape::Low, muffler_f, 0.7, r),
            muffler_f,
            mech: Biquad::new(Shape::High, uniform(rng, 2000.0, 6000.0), 0.7, r),
            mech_gain: uniform(rng, 0.0, 0.15),
        }
    }

    fn describe(&self) -> String {
        format!("{} cyl, {:.0}-{:.0} rpm", self.cylinders, self.idle, self.max)
    }

    /// One sample at throttle `u`; `retune` refreshes the load-dependent filters.
    fn next(&mut self, rng: &mut ChaCha8Rng, u: f32, retune: bool, r: f32) -> f32 {
        let rpm = self.idle + (self.max - self.idle) * u;
        let fire = rpm / 60.0 * self.cylinders as f32 / 2.0;
        self.phase += fire / r;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
            self.k = (self.k + 1) % self.cylinders;
            self.exc += self.levels[self.k] * uniform(rng, 0.85, 1.15) * (0.4 + 0.6 * u);
        }
        self.exc *= self.decay;
        let e = self.pulse.run(self.exc * (1.0 + self.noise * white(rng)));
        if retune {
            self.muffler.set(Shape::Low, self.muffler_f * (1.0 + 1.5 * u), 0.7, r);
        }
        let mut y = 0.3 * self.muffler.run(e);
        for (b, g) in &mut self.res {
            y += *g * b.run(e);
        }
        y + self.mech_gain * self.mech.run(white(rng)) * (0.3 + u)
    }
}

fn engine(rng: &mut ChaCha8Rng, n: usize, r: f32) -> (String, Vec<f32>) {
    const KINDS: [&str; 6] = ["piston", "piston", "piston", "electric", "propeller", "turbine"];
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let mut out = vec![0f32; n];
    let mut throttle = Throttle::new(rng, r);
    let what = match kind {
        "piston" => {
            let mut p = Piston::new(rng, r);
            for (i, o) in out.iter_mut().enumerate() {
                let u = throttle.next(rng, r);
                *o = p.next(rng, u, i % BLOCK == 0, r);
            }
            format!("piston engine, {}", p.describe())
        }
        "electric" => {
            let max_hz = uniform(rng, 30.0, 300.0);
            let harmonics: Vec<(f32, f32)> = (0..rng.random_range(2..8))
                .map(|_| (rng.random_range(1..12) as f32, uniform(rng, 0.1, 1.0)))
                .collect();
            let whine_k = uniform(rng, 10.0, 60.0);
            let whine = uniform(rng, 0.05, 0.5);
            let switching = if chance(rng, 0.5) {
                Some((uniform(rng, 1500.0, 8000.0), uniform(rng, 0.01, 0.08)))
            } else {
                None
            };
            let mut hiss = Biquad::new(Shape::Band, uniform(rng, 500.0, 4000.0), 1.0, r);
            let hiss_gain = uniform(rng, 0.0, 0.3);
            let (mut ph, mut phw, mut phs) = (Phase::default(), Phase::default(), Phase::default());
            for o in out.iter_mut() {
                let u = 0.05 + 0.95 * throttle.next(rng, r);
                let f = max_hz * u;
                let ph = ph.step(f, r);
                let whine_sin = phw.sin((f * whine_k).min(0.4 * r), r);
                let mut y = 0.0;
                for (h, g) in &harmonics {
                    y += g * (std::f32::consts::TAU * ph * h).sin();
                }
                y = y * 0.3 * u + whine * u * whine_sin;
                if let Some((fs, gs)) = switching {
                    y += gs * phs.sin(fs, r);
                }
                *o = y + hiss_gain * hiss.run(white(rng)) * u;
            }
            format!("electric motor, up to {max_hz:.0} Hz")
        }
        "propeller" => {
            let blades = rng.random_range(2..=5) as f32;
            let depth = uniform(rng, 0.3, 1.0);
            let mut p = Piston::new(rng, r);
            let under = uniform(rng, 0.1, 0.8);
            let mut air = Biquad::new(Shape::Low, uniform(rng, 400.0, 3000.0), 0.7, r);
            let mut pink = Pink::default();
            let mut ph = Phase::default();
            for (i, o) in out.iter_mut().enumerate() {
                let u = throttle.next(rng, r);
                let rpm = p.idle + (p.max - p.idle) * u;
                let m = (1.0 + depth * (std::f32::consts::TAU * ph.step(rpm / 60.0 * blades, r)).cos()).powi(2);
                let y = air.run(pink.next(white(rng))) * 4.0 * m * (0.2 + u);
                *o = y + under * p.next(rng, u, i % BLOCK == 0, r);
            }
            format!("propeller, {blades} blades over a {}", p.describe())
        }
        _ => {
            let whine_f = uniform(rng, 1500.0, 8000.0);
            let whine = uniform(rng, 0.02, 0.3);
            let cut = uniform(rng, 400.0, 3000.0);
            let mut roar = Biquad::new(Shape::Low, cut, 0.7, r);
            let mut hp = Biquad::new(Shape::High, uniform(rng, 40.0, 200.0), 0.7, r);
            let (mut pink, mut brown) = (Pink::default(), Brown::default());
            let mut wobble = Walk::new(0.0, 0.5, 0.003, r);
            let (mut ph, mut ph2) = (Phase::default(), Phase::default());
            for (i, o) in out.iter_mut().enumerate() {
                let u = 0.3 + 0.7 * throttle.next(rng, r);
                if i % BLOCK == 0 {
                    roar.set(Shape::Low, cut * (0.5 + u), 0.7, r);
                }
                let w = white(rng);
                let y = hp.run(roar.run(pink.next(w) + 2.0 * brown.next(w))) * 2.0 * u;
                let f = whine_f * u * (1.0 + wobble.next(rng));
                *o = y + whine * u * (ph.sin(f, r) + 0.3 * ph2.sin(1.5 * f, r));
            }
            format!("turbine, whine {whine_f:.0} Hz")
        }
    };
    (what, out)
}

// ---------------------------------------------------------------------------------------
// Animals

/// A raised-cosine attack and release envelope over `len` samples (`a` and `d` as fractions).
fn call_env(i: usize, len: usize, a: f32, d: f32) -> f32 {
    let t = i as f32 / len.max(1) as f32;
    let up = if t < a {
        0.5 - 0.5 * (std::f32::consts::PI * t / a).cos()
    } else {
        1.0
    };
    let down = if t > 1.0 - d {
        0.5 - 0.5 * (std::f32::consts::PI * (1.0 - t) / d).cos()
    } else {
        1.0
    };
    up * down
}

/// A band-limited sawtooth (PolyBLEP): the glottal-like source of calls.
#[derive(Default)]
struct Saw(f32);

impl Saw {
    fn next(&mut self, f: f32, r: f32) -> f32 {
        let dt = (f / r).clamp(1e-5, 0.45);
        self.0 = (self.0 + dt).fract();
        let t = self.0;
        let mut y = 2.0 * t - 1.0;
        if t < dt {
            let x = t / dt;
            y -= x + x - x * x - 1.0;
        } else if t > 1.0 - dt {
            let x = (t - 1.0) / dt;
            y -= x * x + x + x + 1.0;
        }
        y
    }
}

/// Start times (samples) of calls at mean gap `gap` seconds (each gap uniform in 0.3-1.7x
/// that), the first within `first` seconds, until `n`.
fn schedule(rng: &mut ChaCha8Rng, n: usize, r: f32, first: f32, gap: f32) -> Vec<usize> {
    let mut t = uniform(rng, 0.0, first) * r;
    let mut v = Vec::new();
    while (t as usize) < n {
        v.push(t as usize);
        t += gap * uniform(rng, 0.3, 1.7) * r;
    }
    v
}

/// One bird's song: a repertoire of 2-5 syllable kinds (sweeps, trills, chirps) in phrases.
fn bird(rng: &mut ChaCha8Rng, out: &mut [f32], r: f32, gain: f32, first: f32) {
    let base = log_uniform(rng, 1500.0, 6500.0);
    let syllables: Vec<(f32, f32, f32, f32, f32, f32)> = (0..rng.random_range(2..=5))
        .map(|_| {
            (
                uniform(rng, 0.02, 0.22),          // duration, s
                base * log_uniform(rng, 0.6, 1.6), // start frequency
                base * log_uniform(rng, 0.5, 2.0), // end frequency
                if chance(rng, 0.35) {
                    uniform(rng, 15.0, 90.0)
                } else {
                    0.0
                }, // trill rate
                uniform(rng, 0.02, 0.25),          // trill depth
                uniform(rng, 0.0, 0.3),            // second harmonic
            )
        })
        .collect();
    let repeat = chance(rng, 0.5);
    let gap = uniform(rng, 0.01, 0.12);
    let (p_lo, p_hi) = (rng.random_range(2..6usize), rng.random_range(6..16usize));
    let rest = uniform(rng, 0.6, 4.0);
    let mut ph = Phase::default();
    for start in schedule(rng, out.len(), r, first, rest) {
        let mut t = start;
        let count = rng.random_range(p_lo..=p_hi);
        let one = rng.random_range(0..syllables.len());
        let level = gain * uniform(rng, 0.6, 1.0);
        for k in 0..count {
            let s = syllables[if repeat { one } else { k % syllables.len() }];
            let len = (s.0 * r) as usize;
            for i in 0..len {
                let Some(o) = out.get_mut(t + i) else { break };
                let u = i as f32 / len as f32;
                let mut f = s.1 * (s.2 / s.1).powf(u);
                if s.3 > 0.0 {
                    f *= 1.0 + s.4 * (std::f32::consts::TAU * s.3 * i as f32 / r).sin();
                }
                let ph = ph.step(f, r);
                let y = (std::f32::consts::TAU * ph).sin() + s.5 * (2.0 * std::f32::consts::TAU * ph).sin();
                *o += level * call_env(i, len, 0.2, 0.3) * y;
            }
            t += len + (gap * uniform(rng, 0.7, 1.3) * r) as usize;
        }
    }
}

/// Insects: cricket chirps (pulses of a pure carrier), cicada / katydid buzzes (band noise
/// pulsed at 100-600 Hz) or a flying buzz (a wandering sawtooth through resonances).
fn insect(rng: &mut ChaCha8Rng, out: &mut [f32], r: f32, gain: f32, first: f32) -> &'static str {
    let n = out.len();
    match rng.random_range(0..3) {
        0 => {
            let fc = log_uniform(rng, 2500.0, 7000.0);
            let pulse = uniform(rng, 0.008, 0.025);
            let rate = uniform(rng, 15.0, 60.0).min(0.7 / pulse);
            let per = rng.random_range(2..=8usize);
            let period = uniform(rng, 0.3, 1.5).max(per as f32 / rate + 0.1);
            let mut ph = Phase::default();
            for start in schedule(rng, n, r, first, period) {
                for k in 0..per {
                    let t0 = start + (k as f32 / rate * r) as usize;
                    let len = (pulse * r) as usize;
                    for i in 0..len {
                        let Some(o) = out.get_mut(t0 + i) else { break };
                        let f = fc * (1.0 - 0.04 * i as f32 / len as f32);
                        *o += gain * call_env(i, len, 0.3, 0.5) * ph.sin(f, r);
                    }
                }
            }
            "cricket"
        }
        1 => {
            let fc = log_uniform(rng, 2500.0, 8000.0);
            let mut band = Biquad::new(Shape::Band, fc, uniform(rng, 2.0, 8.0), r);
            let am = uniform(rng, 100.0, 600.0);
            let phrase = uniform(rng, 1.0, 8.0);
            let mut ph = Phase::default();
            for start in schedule(rng, n, r, first, phrase * 1.5) {
                let len = (phrase * uniform(rng, 0.5, 1.0) * r) as usize;
                for i in 0..len {
                    let Some(o) = out.get_mut(start + i) else { break };
                    let m = (0.5 + 0.5 * ph.sin(am, r)).powi(3);
                    *o += gain * 4.0 * call_env(i, len, 0.15, 0.2) * m * band.run(white(rng));
                }
            }
            "cicada"
        }
        _ => {
            let mut f0 = Walk::new(log_uniform(rng, 150.0, 600.0), uniform(rng, 0.2, 1.5), 0.0, r);
            f0.step = f0.mean * 0.08 * (6.0 * f0.k).sqrt();
            let mut near = Walk::new(0.5, uniform(rng, 0.5, 3.0), 0.35, r);
            let mut saw = Saw::default();
            let mut res = [
                Biquad::new(Shape::Band, uniform(rng, 400.0, 1500.0), 3.0, r),
                Biquad::new(Shape::Band, uniform(rng, 1500.0, 5000.0), 3.0, r),
            ];
            for o in out.iter_mut() {
                let s = saw.next(f0.next(rng), r);
                let a = near.next(rng).clamp(0.05, 1.2);
                *o += gain * a * a * (res[0].run(s) + 0.6 * res[1].run(s));
            }
            "buzzing insect"
        }
    }
}

/// A frog: croaks (a pulse train, each pulse ringing two or three formants) or peeps (rising
/// tones).
fn frog(rng: &mut ChaCha8Rng, out: &mut [f32], r: f32, gain: f32, first: f32) {
    let n = out.len();
    let every = uniform(rng, 0.3, 2.5);
    if chance(rng, 0.7) {
        let rate = log_uniform(rng, 20.0, 200.0);
        let dur = uniform(rng, 0.08, 0.8);
        let mut formants: Vec<Biquad> = (0..rng.random_range(2..=3))
            .map(|k| {
                Biquad::new(
                    Shape::Band,
                    log_uniform(rng, 300.0, 1200.0) * (1.0 + k as f32),
                    uniform(rng, 4.0, 12.0),
                    r,
                )
            })
            .collect();
        for start in schedule(rng, n, r, first, every) {
            let len = (dur * uniform(rng, 0.8, 1.2) * r) as usize;
            let mut next = 0.0f32;
            for i in 0..len {
                let Some(o) = out.get_mut(start + i) else { break };
                let x = if i as f32 >= next {
                    next += r / rate * uniform(rng, 0.9, 1.1);
                    1.0
                } else {
                    0.0
                };
                let y: f32 = formants.iter_mut().map(|b| b.run(x)).sum();
                *o += gain * 6.0 * call_env(i, len, 0.1, 0.3) * y;
            }
        }
    } else {
        let (f1, f2) = (log_uniform(rng, 1800.0, 3000.0), log_uniform(rng, 2500.0, 4000.0));
        let dur = uniform(rng, 0.08, 0.25);
        let mut ph = Phase::default();
        for start in schedule(rng, n, r, first, every) {
            let len = (dur * r) as usize;
            for i in 0..len {
                let Some(o) = out.get_mut(start + i) else { break };
                let f = f1 + (f2 - f1) * i as f32 / len as f32;
                *o += gain * call_env(i, len, 0.2, 0.3) * ph.sin(f, r);
            }
        }
    }
}

/// A mammal's calls by source and filter: a sawtooth at a pitch contour plus breath noise,
/// through three formants that glide during the call; moos, bleats (tremolo), howls (slow
/// slides), meows (formants opening and closing), barks (short, noisy, repeated) and growls
/// (rough, low).
fn mammal(rng: &mut ChaCha8Rng, out: &mut [f32], r: f32, gain: f32, first: f32) -> &'static str {
    const KINDS: [(&str, f32, f32, f32, f32); 6] = [
        // name, f0 range (Hz), call length range (s)
        ("moo", 70.0, 220.0, 0.8, 2.5),
        ("bleat", 180.0, 500.0, 0.3, 1.0),
        ("howl", 250.0, 900.0, 1.2, 3.5),
        ("meow", 350.0, 900.0, 0.3, 1.2),
        ("bark", 250.0, 900.0, 0.06, 0.25),
        ("growl", 60.0, 160.0, 0.5, 2.0),
    ];
    let (name, lo, hi, d_lo, d_hi) = KINDS[rng.random_range(0..KINDS.len())];
    let f0 = log_uniform(rng, lo, hi);
    let size = log_uniform(rng, 0.6, 1.6); // formants scale with the vocal tract
    let fmt = [
        log_uniform(rng, 300.0, 1000.0) * size,
        log_uniform(rng, 900.0, 2500.0) * size,
        log_uniform(rng, 2000.0, 4000.0) * size,
    ];
    let noise = match name {
        "bark" => uniform(rng, 0.3, 0.7),
        "growl" => uniform(rng, 0.2, 0.5),
        _ => uniform(rng, 0.0, 0.25),
    };
    let tremolo = if name == "bleat" { uniform(rng, 5.0, 12.0) } else { 0.0 };
    let rough = if name == "growl" { uniform(rng, 20.0, 45.0) } else { 0.0 };
    let burst = if name == "bark" {
        rng.random_range(1..=5usize)
    } else {
        1
    };
    let gap = if name == "bark" {
        uniform(rng, 0.6, 3.0)
    } else {
        uniform(rng, 1.0, 5.0)
    };
    let mut saw = Saw::default();
    let mut bank = fmt.map(|f| Biquad::new(Shape::Band, f, 5.0, r));
    for start in schedule(rng, out.len(), r, first, gap) {
        let mut t = start;
        for _ in 0..burst {
            let len = (uniform(rng, d_lo, d_hi) * r) as usize;
            // Contour: rise-fall for most, a fall for barks, a slow slide for howls.
            let (rise, fall) = match name {
                "bark" => (1.15, 0.7),
                "howl" => (log_uniform(rng, 1.1, 1.6), log_uniform(rng, 0.6, 0.95)),
                _ => (log_uniform(rng, 1.0, 1.3), log_uniform(rng, 0.7, 1.0)),
            };
            let open = uniform(rng, 0.6, 1.3);
            let (mut ph_t, mut ph_r) = (Phase::default(), Phase::default());
            for i in 0..len {
                let Some(o) = out.get_mut(t + i) else { break };
                let u = i as f32 / len as f32;
                let c = if u < 0.3 {
                    rise.powf(u / 0.3)
                } else {
                    rise * (fall / rise).powf((u - 0.3) / 0.7)
                };
                if i % BLOCK == 0 {
                    // Meows open then close the mouth: formants rise then fall.
                    let m = if name == "meow" {
                        0.7 + 0.6 * (std::f32::consts::PI * u).sin()
                    } else {
                        open
                    };
                    for (b, f) in bank.iter_mut().zip(fmt) {
                        b.set(Shape::Band, f * m, 5.0, r);
                    }
                }
                let mut s = saw.next(f0 * c, r) * (1.0 - noise) + 2.0 * noise * white(rng);
                if tremolo > 0.0 {
                    s *= 0.6 + 0.4 * ph_t.sin(tremolo, r);
                }
                if rough > 0.0 {
                    s *= 0.5 + 0.5 * ph_r.sin(rough, r).abs();
                }
                let y = bank[0].run(s) + 0.7 * bank[1].run(s) + 0.4 * bank[2].run(s);
                *o += gain * call_env(i, len, 0.1, 0.25) * y;
            }
            t += len + (uniform(rng, 0.08, 0.3) * r) as usize;
        }
    }
    name
}

/// An animal scene: 1-4 callers of one kind (birds, insects, frogs or a mammal species), each
/// at its own distance, over a faint bed of noise.
fn animal(rng: &mut ChaCha8Rng, n: usize, r: f32) -> (String, Vec<f32>) {
    const KINDS: [&str; 5] = ["birds", "birds", "insects", "frogs", "mammal"];
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let callers = rng.random_range(1..=4usize);
    let mut out = vec![0f32; n];
    let mut names: Vec<&str> = Vec::new();
    for c in 0..callers {
        // The first caller is near and starts at once; the others farther, later.
        let gain = if c == 0 { 1.0 } else { log_uniform(rng, 0.15, 0.8) };
        let first = if c == 0 { 0.05 } else { 3.0 };
        match kind {
            "birds" => bird(rng, &mut out, r, gain, first),
            "insects" => names.push(insect(rng, &mut out, r, gain, first)),
            "frogs" => frog(rng, &mut out, r, gain, first),
            _ => names.push(mammal(rng, &mut out, r, gain, first)),
        }
    }
    let bed = log_uniform(rng, 0.002, 0.02);
    let mut pink = Pink::default();
    for o in out.iter_mut() {
        *o += bed * pink.next(white(rng));
    }
    names.dedup();
    let what = if names.is_empty() {
        format!("{callers} {kind}")
    } else {
        format!("{callers} {kind} ({})", names.join(", "))
    };
    (what, out)
}

// ---------------------------------------------------------------------------------------
// Recording chains

/// A small Schroeder/Freeverb room: parallel damped combs into series all-passes.
fn room(x: &mut [f32], size: f32, damp: f32, wet: f32, r: f32) {
    const COMBS: [f32; 6] = [0.0297, 0.0371, 0.0411, 0.0437, 0.0253, 0.0269];
    const ALLPASS: [f32; 3] = [0.005, 0.0017, 0.0126];
    let scale = 0.6 + 0.8 * size;
    let feedback = 0.7 + 0.27 * size;
    let mut combs: Vec<(Vec<f32>, usize, f32)> = COMBS
        .iter()
        .map(|d| (vec![0f32; ((d * scale * r) as usize).max(1)], 0, 0.0))
        .collect();
    let mut aps: Vec<(Vec<f32>, usize)> = ALLPASS
        .iter()
        .map(|d| (vec![0f32; ((d * r) as usize).max(1)], 0))
        .collect();
    for v in x.iter_mut() {
        let input = *v * 0.1;
        let mut y = 0.0;
        for (buf, i, lp) in &mut combs {
            let out = buf[*i];
            *lp = out * (1.0 - damp) + *lp * damp;
            buf[*i] = input + *lp * feedback;
            *i = (*i + 1) % buf.len();
            y += out;
        }
        for (buf, i) in &mut aps {
            let b = buf[*i];
            let o = -y + b;
            buf[*i] = y + b * 0.5;
            *i = (*i + 1) % buf.len();
            y = o;
        }
        *v = (1.0 - wet) * *v + wet * y;
    }
}

/// Applies a random recording chain to `x`; returns its description (", LINK" per link).
fn recording_chain(rng: &mut ChaCha8Rng, x: &mut [f32], r: f32) -> String {
    let mut what = String::new();
    // Level normalised first so saturation and the room see comparable signals.
    let p = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if p > 0.0 {
        x.iter_mut().for_each(|v| *v /= p);
    }
    // Clears the filters' start-up transient (and the walks' first values).
    let fade = ((0.05 * r) as usize).min(x.len());
    for (i, v) in x[..fade].iter_mut().enumerate() {
        *v *= i as f32 / fade as f32;
    }
    if chance(rng, 0.4) {
        let f = log_uniform(rng, 1500.0, 8000.0);
        let mut a = Biquad::new(Shape::Low, f, 0.7, r);
        let mut b = Biquad::new(Shape::Low, f, 0.7, r);
        x.iter_mut().for_each(|v| *v = b.run(a.run(*v)));
        what += &format!(", distant (low-pass {f:.0} Hz)");
    }
    if chance(rng, 0.15) {
        let (lo, hi) = (uniform(rng, 150.0, 500.0), uniform(rng, 3000.0, 6000.0));
        let mut a = Biquad::new(Shape::High, lo, 0.7, r);
        let mut b = Biquad::new(Shape::Low, hi, 0.7, r);
        x.iter_mut().for_each(|v| *v = b.run(a.run(*v)));
        what += &format!(", band-limited {lo:.0}-{hi:.0} Hz");
    }
    if chance(rng, 0.2) {
        let drive = uniform(rng, 1.5, 4.0);
        let norm = drive.tanh();
        x.iter_mut().for_each(|v| *v = (drive * *v).tanh() / norm);
        what += &format!(", saturated x{drive:.1}");
    }
    if chance(rng, 0.4) {
        let (size, damp, wet) = (rng.random::<f32>(), uniform(rng, 0.1, 0.7), uniform(rng, 0.15, 0.5));
        room(x, size, damp, wet, r);
        what += &format!(", room {size:.2} wet {wet:.2}");
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn patches_are_deterministic_finite_and_distinct() {
        for label in AMBIENCE_LABELS {
            let a = render(label, 3, 2.0, 22050).expect("a label of the set");
            let b = render(label, 3, 2.0, 22050).expect("a label of the set");
            let c = render(label, 4, 2.0, 22050).expect("a label of the set");
            assert_eq!(a.samples, b.samples, "{label}: same seed, same samples");
            assert_eq!(a.description, b.description);
            assert_eq!(a.samples.len(), 44100);
            assert!(a.samples.iter().all(|v| v.is_finite()), "{label}");
            assert!(rms(&a.samples) > 1e-3, "{label}: silent ({})", a.description);
            assert_ne!(a.samples, c.samples, "{label}: other seed");
        }
        assert!(render("speech", 0, 1.0, 22050).is_none());
    }

    #[test]
    fn every_seed_of_a_label_renders_sound() {
        // The models' parameter ranges never produce silence or a blow-up.
        for label in AMBIENCE_LABELS.iter().filter(|l| **l != "animal") {
            for seed in 0..PATCHES_PER_LABEL {
                let p = render(label, seed, 0.5, 8000).expect("a label of the set");
                assert!(
                    p.samples.iter().all(|v| v.is_finite() && v.abs() < 50.0),
                    "{}",
                    p.description
                );
                assert!(rms(&p.samples[2000..]) > 1e-4, "{}", p.description);
            }
        }
    }

    #[test]
    fn every_animal_scene_calls_for_much_of_its_length() {
        // Calls come and go; over 6 s every scene is active (20 ms frames within 30 dB of
        // its loudest) for at least a tenth of the time, so its clips survive the build's
        // segmentation into active stretches.
        let r = 16000;
        for seed in 0..PATCHES_PER_LABEL {
            let p = render("animal", seed, 6.0, r).expect("animal is in the set");
            assert!(
                p.samples.iter().all(|v| v.is_finite() && v.abs() < 50.0),
                "{}",
                p.description
            );
            let frames: Vec<f32> = p.samples.chunks(320).map(rms).collect();
            let top = frames.iter().fold(0f32, |m, v| m.max(*v));
            let active = frames.iter().filter(|v| **v > top * 0.0316).count() as f32 / frames.len() as f32;
            assert!(top > 1e-3 && active > 0.1, "{:.2} active: {}", active, p.description);
        }
    }

    #[test]
    fn a_cricket_chirps_at_its_carrier() {
        // Find a cricket patch; the 5 ms around its loudest sample lie inside a pulse (8-25
        // ms long): their zero crossings give a carrier of 2.5-7 kHz.
        let r = 32000;
        let p = (0..200u64)
            .filter_map(|s| render("animal", s, 2.0, r))
            .find(|p| p.description.contains("(cricket") && !p.description.contains("low-pass"))
            .expect("a cricket patch among 200 seeds");
        let (peak, _) = p
            .samples
            .iter()
            .enumerate()
            .fold((0, 0f32), |b, (i, v)| if v.abs() > b.1 { (i, v.abs()) } else { b });
        let at = peak.saturating_sub(80).min(p.samples.len() - 160);
        let frame = &p.samples[at..at + 160];
        let crossings = frame.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        let f = crossings as f32 / 2.0 / 0.005;
        assert!((2000.0..7500.0).contains(&f), "{f} Hz: {}", p.description);
    }

    #[test]
    fn a_bubble_rings_at_the_minnaert_frequency() {
        // A 2 mm bubble: 3.26 / 0.002 = 1630 Hz; count zero crossings over its first 10 ms.
        let r = 44100.0;
        let mut b = Bubble::new(0.002, 1.0, 0.0, r);
        let x: Vec<f32> = (0..441).map(|_| b.next(r)).collect();
        let crossings = x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        let f = crossings as f32 / 2.0 / 0.01;
        assert!((f - 1630.0).abs() < 100.0, "{f} Hz");
        // and decays: d = 0.043 f + 0.0014 f^1.5 = 162 /s, so after 10 ms e^-1.62 = 0.2.
        let tail = x[400..].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(tail < 0.3 && tail > 0.1, "{tail}");
    }

    #[test]
    fn the_firing_rate_of_a_piston_engine_is_rpm_times_cylinders_over_two() {
        let r = 22050.0;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut p = Piston::new(&mut rng, r);
        p.cylinders = 4;
        p.levels = vec![1.0; 4];
        p.idle = 1200.0;
        // 1200 rpm, 4 cylinders: 40 firings per second.
        let mut fired = 0;
        let mut last_k = p.k;
        for _ in 0..(r as usize) {
            p.next(&mut rng, 0.0, false, r);
            if p.k != last_k {
                fired += 1;
                last_k = p.k;
            }
        }
        assert!((39..=41).contains(&fired), "{fired}");
    }
}
