//! The waveform term of the loss (src/train/waveform.rs): the masked inverse STFT written in
//! candle ops against the separator's own `Bands::apply_mask`, the SI-SDR against the metric,
//! and the gradient reaching the mask.

mod common;

use candle_core::{Device, Tensor, Var};
use splitflow::dsp::bands::{BandConfig, Bands};
use splitflow::metrics::si_sdr_channel;
use splitflow::train::waveform::{Synth, neg_si_sdr};

fn signal(n: usize, seed: u64) -> Vec<f32> {
    common::lcg(n, seed).iter().map(|v| (0.3 * v) as f32).collect()
}

/// The mixture STFT of `x` as (1, T, bins) real and imaginary tensors.
fn stft(bands: &Bands, x: &[f32]) -> (Tensor, Tensor, usize) {
    let spec = bands.stft().forward(x);
    let dims = (1, spec.n_frames, spec.n_bins);
    let re = Tensor::from_vec(spec.data.iter().map(|c| c.re).collect(), dims, &Device::Cpu).unwrap();
    let im = Tensor::from_vec(spec.data.iter().map(|c| c.im).collect(), dims, &Device::Cpu).unwrap();
    (re, im, spec.n_frames)
}

/// The masked waveform of one example as samples.
fn waveform(synth: &Synth, mask: &Tensor, re: &Tensor, im: &Tensor, len: usize) -> Vec<f32> {
    synth
        .masked_waveform(mask, re, im, len)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |a, x| a.max(x.abs()))
}

#[test]
fn masked_waveform_matches_apply_mask() {
    let bands = Bands::new(BandConfig::default()).unwrap();
    let nb = bands.config().n_bands;
    let synth = Synth::new(&bands, &Device::Cpu).unwrap();
    for (case, len) in [(0u64, 22050usize), (1, 9999), (2, 700)] {
        let x = signal(len, 10 + case);
        let (re, im, frames) = stft(&bands, &x);
        // All ones: the mixture itself.
        let ones = Tensor::ones((1, 1, nb, frames), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = waveform(&synth, &ones, &re, &im, len);
        assert_eq!(y.len(), len);
        let err = y.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-4 * max_abs(&x).max(1.0), "case {case}: identity off by {err}");
        // A random band mask: what the separator writes.
        let m: Vec<f32> = common::lcg(nb * frames, 99 + case)
            .iter()
            .map(|v| (0.5 + 0.5 * v) as f32)
            .collect();
        let want = bands.apply_mask(&x, bands.config().rate, &m, frames).unwrap();
        let mask = Tensor::from_vec(m, (1, 1, nb, frames), &Device::Cpu).unwrap();
        let got = waveform(&synth, &mask, &re, &im, len);
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(
            err < 1e-4 * max_abs(&want).max(1.0),
            "case {case}: masked output off by {err}"
        );
    }
}

#[test]
fn neg_si_sdr_matches_the_metric_and_its_gradient_reaches_the_mask() {
    let (s0, s1) = (signal(4000, 1), signal(4000, 2));
    let e0: Vec<f32> = s0.iter().zip(signal(4000, 3)).map(|(a, n)| 0.7 * a + 0.2 * n).collect();
    let e1: Vec<f32> = s1
        .iter()
        .zip(signal(4000, 4))
        .map(|(a, n)| -1.3 * a + 0.9 * n)
        .collect();
    let want = -(si_sdr_channel(&s0, &e0, false) + si_sdr_channel(&s1, &e1, false)) / 2.0;
    let t = |a: &[f32], b: &[f32]| Tensor::from_vec([a, b].concat(), (2, 4000), &Device::Cpu).unwrap();
    let got = neg_si_sdr(&t(&e0, &e1), &t(&s0, &s1))
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((f64::from(got) - want).abs() < 1e-3, "{got} vs {want}");
    assert!(
        neg_si_sdr(
            &t(&e0, &e1),
            &Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap()
        )
        .is_err()
    );

    // Gradient: a mask of one half, the loss against the target; a finite difference on one
    // band agrees with the analytic derivative.
    let bands = Bands::new(BandConfig::default()).unwrap();
    let nb = bands.config().n_bands;
    let synth = Synth::new(&bands, &Device::Cpu).unwrap();
    let (target, noise) = (signal(8000, 5), signal(8000, 6));
    let mix: Vec<f32> = target.iter().zip(&noise).map(|(a, b)| a + b).collect();
    let (re, im, frames) = stft(&bands, &mix);
    let reference = Tensor::new(target.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let loss = |m: &Tensor| neg_si_sdr(&synth.masked_waveform(m, &re, &im, 8000).unwrap(), &reference).unwrap();
    let base: Vec<f32> = common::lcg(nb * frames, 7)
        .iter()
        .map(|v| (0.5 + 0.3 * v) as f32)
        .collect();
    let mask = Var::from_tensor(&Tensor::from_vec(base.clone(), (1, 1, nb, frames), &Device::Cpu).unwrap()).unwrap();
    let grads = loss(mask.as_tensor()).backward().unwrap();
    let g: Vec<f32> = grads
        .get(mask.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0));
    let i = 20 * frames + frames / 2; // band 20, middle frame
    let h = 1e-2f32;
    let at = |d: f32| {
        let mut v = base.clone();
        v[i] += d;
        f64::from(
            loss(&Tensor::from_vec(v, (1, 1, nb, frames), &Device::Cpu).unwrap())
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    let fd = (at(h) - at(-h)) / (2.0 * f64::from(h));
    assert!(
        (fd - f64::from(g[i])).abs() < 0.05 * fd.abs().max(1e-3),
        "finite difference {fd} vs gradient {}",
        g[i]
    );
}
