//! Separation quality benchmark:
//! `cargo bench --bench quality -- --data CORPUS [--model NAME|DIR] [--disc DIR] [--n 4]
//! [--seconds 4] [--tir 0,-5,5] [--split test] [--out DIR] [--no-emb]`.
//!
//! Draws `n` mixtures per label from the corpus split (held-out speakers, presets and files;
//! no augmentation) at each target-to-interference ratio, runs every setting on the same
//! mixtures and scores each estimate against the reference target:
//! - the flow model (default: the bundled default model) with mean flow 1 and 2 steps, Euler 4
//!   and 8 steps, 4 samples of 1 step averaged, and query by example (a clip of the same label
//!   from another recording) instead of the label;
//! - the discriminative variant (`--disc`, a model folder trained with that objective);
//! - peers: HPSS for drums, RNNoise (nnnoiseless) for speech, the unprocessed mixture;
//! - upper bounds: the oracle ideal ratio mask on the full STFT (power ratio, 1024/256) and the
//!   oracle band mask of the model's own representation.
//!
//! Metrics: SI-SDRi (torchmetrics SI-SDR, no zero-mean), SDRi (museval v4, median over 1 s
//! frames), MR-STFT (auraloss defaults) and emb_mse (CREPE tiny embeddings; CREPE being slow
//! on the CPU, only at 0 dB, for the settings in `EMB_SETTINGS`, on 2 mixtures per label). Figures: tables
//! on stdout (mean over the mixtures of a label; "average" = mean over labels), and in `--out`
//! (default target/quality): results.csv (one row per mixture and setting), summary.json,
//! tir.png (average SI-SDRi against TIR per setting), labels.png (SI-SDRi per label and
//! setting at 0 dB, as a heatmap) and spectrograms.png (mixture / meanflow:1, discriminative and oracle estimates / reference).
//! docs/model.md records the figures with this command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use splitflow::Result;
use splitflow::audio::encode::write_mono16;
use splitflow::data::LABELS;
use splitflow::data::sampler::{Mix, MixtureSampler, SamplerConfig};
use splitflow::dsp::bands::Bands;
use splitflow::dsp::{Stft, StftConfig};
use splitflow::metrics::{MrStftConfig, bss_eval_v4, emb_mse, mrstft, si_sdri};
use splitflow::model::crepe::Crepe;
use splitflow::model::package::RunFiles;
use splitflow::separate::neural::{FlowOptions, FlowSeparator};
use splitflow::separate::{Query, Separator, separate_all};
use splitflow::train::config::TrainConfig;
use splitflow::viz::{Axes, write_line_chart, write_matrix, write_spectrogram_grid};

struct Args {
    data: PathBuf,
    split: String,
    model: String,
    disc: Option<PathBuf>,
    n: u64,
    seconds: f32,
    tirs: Vec<f32>,
    seed: u64,
    out: PathBuf,
    /// Skip emb_mse (CREPE) for a quick run.
    no_emb: bool,
}

fn parse_args() -> Result<Args> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let data = get("--data")
        .map(PathBuf::from)
        .context("--data CORPUS is required (a folder written by `splitflow data build`, with manifest.jsonl)")?;
    let tirs = get("--tir")
        .unwrap_or_else(|| "0,-5,5".into())
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<f32>()
                .with_context(|| format!("--tir: '{t}' is not a number"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Args {
        data,
        split: get("--split").unwrap_or_else(|| "test".into()),
        model: get("--model").unwrap_or_else(splitflow::separate::default_model),
        disc: get("--disc").map(PathBuf::from),
        n: get("--n").map(|v| v.parse()).transpose()?.unwrap_or(4),
        seconds: get("--seconds").map(|v| v.parse()).transpose()?.unwrap_or(4.0),
        tirs,
        seed: get("--seed").map(|v| v.parse()).transpose()?.unwrap_or(0),
        out: get("--out")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quality")),
        no_emb: args.iter().any(|a| a == "--no-emb"),
    })
}

/// Folder of a model given by path or by bundled name (the checkout's models/NAME: the bench
/// runs in the source tree).
fn model_dir(name: &str) -> Result<PathBuf> {
    [
        PathBuf::from(name),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name),
    ]
    .into_iter()
    .find(|dir| RunFiles::is_model(dir))
    .with_context(|| format!("{name}: not a bundled model or a model folder (config.json + model.safetensors)"))
}

/// One evaluation mixture.
struct Item {
    tir: f32,
    label: usize,
    index: u64,
    mix: Mix,
    /// The query clip written to disk (query by example reads a file).
    query_path: PathBuf,
}

/// How a setting makes an estimate of the target from a mixture.
enum Method {
    Mixture,
    OracleStft,
    OracleBands(Bands),
    /// A separator asked for the item's label (or its example clip when `by_example`).
    Separator {
        sep: Box<dyn Separator>,
        by_example: bool,
        labels: Option<&'static str>,
    },
}

struct Setting {
    name: String,
    method: Method,
}

impl Setting {
    fn applies(&self, label: usize) -> bool {
        match &self.method {
            Method::Separator { labels: Some(l), .. } => LABELS[label] == *l,
            _ => true,
        }
    }

    fn estimate(&self, item: &Item, rate: u32, stft: &Stft) -> Result<Vec<f32>> {
        let m = &item.mix;
        match &self.method {
            Method::Mixture => Ok(m.mixture.clone()),
            Method::OracleStft => Ok(oracle_irm(stft, &m.mixture, &m.target)),
            Method::OracleBands(bands) => {
                let mask = bands.ideal_mask(&m.mixture, &m.target)?;
                let frames = bands.n_frames(m.mixture.len());
                bands.apply_mask(&m.mixture, rate, &mask, frames)
            }
            Method::Separator { sep, by_example, .. } => {
                let query = if *by_example {
                    Query::Example(item.query_path.clone())
                } else {
                    Query::from_label(LABELS[item.label])
                };
                let out = separate_all(
                    sep.as_ref(),
                    &query,
                    std::slice::from_ref(&m.mixture),
                    rate,
                    sep.segment(),
                )?;
                Ok(out.into_iter().next().unwrap_or_default())
            }
        }
    }
}

/// Oracle ideal ratio mask on the STFT (power ratio |S|² / (|S|² + |N|²), N = mixture − target):
/// the upper bound of any real-valued time-frequency mask at this resolution.
fn oracle_irm(stft: &Stft, mixture: &[f32], target: &[f32]) -> Vec<f32> {
    let noise: Vec<f32> = mixture.iter().zip(target).map(|(m, s)| m - s).collect();
    let mut x = stft.forward(mixture);
    let s = stft.forward(target);
    let n = stft.forward(&noise);
    for ((x, s), n) in x.data.iter_mut().zip(&s.data).zip(&n.data) {
        let (ps, pn) = (s.norm_sqr(), n.norm_sqr());
        *x *= ps / (ps + pn + 1e-12);
    }
    stft.inverse(&x, mixture.len())
}

/// Scores of one estimate.
#[derive(Clone, Copy, Default)]
struct Scores {
    si_sdri: f64,
    sdri: f64,
    mrstft: f64,
    emb_mse: f64,
}

const METRICS: [&str; 4] = ["SI-SDRi", "SDRi", "MR-STFT", "emb_mse"];

impl Scores {
    fn get(&self, k: usize) -> f64 {
        [self.si_sdri, self.sdri, self.mrstft, self.emb_mse][k]
    }
}

fn median_sdr(reference: &[f32], estimate: &[f32], rate: u32) -> Result<f64> {
    let r = bss_eval_v4(
        &[vec![reference.to_vec()]],
        &[vec![estimate.to_vec()]],
        rate as usize,
        rate as usize,
    )?;
    Ok(r.sources[0].median().sdr)
}

/// Settings scored with emb_mse, at TIR 0 dB and on the first `EMB_PER_LABEL` mixtures of each
/// label only: CREPE costs ~2 s of CPU per 4 s clip (~30 GFLOP), the other metrics together
/// ~0.1 s.
const EMB_PER_LABEL: u64 = 2;
const EMB_SETTINGS: &[&str] = &[
    "mixture",
    "oracle IRM (STFT)",
    "meanflow:1",
    "meanflow:1 T=0",
    "discriminative",
];

fn score(item: &Item, est: &[f32], mix_sdr: f64, rate: u32, crepe: Option<&Crepe>) -> Result<Scores> {
    let (r, e, m) = (
        vec![item.mix.target.clone()],
        vec![est.to_vec()],
        vec![item.mix.mixture.clone()],
    );
    Ok(Scores {
        si_sdri: si_sdri(&r, &e, &m, false)?,
        sdri: median_sdr(&item.mix.target, est, rate)? - mix_sdr,
        mrstft: mrstft(&r, &e, &MrStftConfig::auraloss_default())?,
        emb_mse: match crepe {
            Some(c) => emb_mse(&r, &e, rate, c)?,
            None => f64::NAN,
        },
    })
}

fn mean(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        f64::NAN
    } else {
        f.iter().sum::<f64>() / f.len() as f64
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    std::fs::create_dir_all(args.out.join("queries"))?;
    let dir = model_dir(&args.model)?;
    let cfg = TrainConfig::load(&RunFiles::new(&dir).config())?;
    let flow = |sampler: &str, steps: usize, samples: usize, temperature: f64| -> Result<Box<dyn Separator>> {
        let opts = FlowOptions {
            sampler: Some(sampler.into()),
            steps: Some(steps),
            samples,
            temperature,
            ..FlowOptions::default()
        };
        Ok(Box::new(FlowSeparator::load(&dir, &args.model, opts)?))
    };
    let sep = |sep: Box<dyn Separator>| Method::Separator {
        sep,
        by_example: false,
        labels: None,
    };
    let mut settings = vec![
        Setting {
            name: "mixture".into(),
            method: Method::Mixture,
        },
        Setting {
            name: "oracle IRM (STFT)".into(),
            method: Method::OracleStft,
        },
        Setting {
            name: format!("oracle band mask ({} bands)", cfg.model.bands.n_bands),
            method: Method::OracleBands(Bands::new(cfg.model.bands.clone())?),
        },
        Setting {
            name: "meanflow:1 by example".into(),
            method: Method::Separator {
                sep: flow("meanflow", 1, 1, 1.0)?,
                by_example: true,
                labels: None,
            },
        },
    ];
    // (name, sampler, steps, samples, temperature), inserted before "by example".
    let flows = [
        ("meanflow:1", "meanflow", 1, 1, 1.0),
        ("meanflow:2", "meanflow", 2, 1, 1.0),
        ("euler:4", "euler", 4, 1, 1.0),
        ("euler:8", "euler", 8, 1, 1.0),
        ("meanflow:1 x4 samples", "meanflow", 1, 4, 1.0),
        ("meanflow:1 T=0.5", "meanflow", 1, 1, 0.5),
        ("meanflow:1 T=0", "meanflow", 1, 1, 0.0),
    ];
    for (i, (name, sampler, steps, samples, temperature)) in flows.into_iter().enumerate() {
        let method = sep(flow(sampler, steps, samples, temperature)?);
        settings.insert(
            3 + i,
            Setting {
                name: name.into(),
                method,
            },
        );
    }
    if let Some(d) = &args.disc {
        let s = FlowSeparator::load(d, "discriminative", FlowOptions::default())?;
        settings.push(Setting {
            name: "discriminative".into(),
            method: sep(Box::new(s)),
        });
    }
    settings.push(Setting {
        name: "hpss (drums)".into(),
        method: Method::Separator {
            sep: splitflow::separate::by_name("hpss")?,
            by_example: false,
            labels: Some("drums"),
        },
    });
    settings.push(Setting {
        name: "rnnoise (speech)".into(),
        method: Method::Separator {
            sep: splitflow::separate::by_name("rnnoise")?,
            by_example: false,
            labels: Some("speech"),
        },
    });

    // The mixtures: n per label of the split, at each TIR.
    let eval_cfg = SamplerConfig::evaluation(args.seconds);
    let rate = eval_cfg.rate;
    let all = MixtureSampler::open(&args.data, &args.split, eval_cfg.clone())?;
    let labels: Vec<usize> = all.target_labels().to_vec();
    let mut items = Vec::new();
    for &tir in &args.tirs {
        for &label in &labels {
            let sampler = MixtureSampler::open(
                &args.data,
                &args.split,
                SamplerConfig {
                    labels: Some(vec![LABELS[label].into()]),
                    tir_db: [tir, tir],
                    ..eval_cfg.clone()
                },
            )?;
            for index in 0..args.n {
                let mix = sampler.sample(args.seed, index)?;
                let query_path = args
                    .out
                    .join("queries")
                    .join(format!("{}_{index:03}.wav", LABELS[label]));
                write_mono16(&query_path, &mix.query, rate)?;
                items.push(Item {
                    tir,
                    label,
                    index,
                    mix,
                    query_path,
                });
            }
        }
    }
    println!(
        "model {} ({}), {} mixtures ({} labels x {} x TIR {:?} dB) of {} s from {} split '{}'; threads {}",
        args.model,
        dir.display(),
        items.len(),
        labels.len(),
        args.n,
        args.tirs,
        args.seconds,
        args.data.display(),
        args.split,
        rayon::current_num_threads()
    );

    let stft = Stft::new(StftConfig::hann(1024, 256))?;
    let crepe = Crepe::tiny()?;
    // results[setting][item] and the estimate kept for the pictures.
    let mut results: Vec<Vec<Option<Scores>>> = Vec::new();
    let mut seconds_per_setting = Vec::new();
    let mix_sdr: Vec<f64> = items
        .par_iter()
        .map(|it| median_sdr(&it.mix.target, &it.mix.mixture, rate))
        .collect::<Result<_>>()?;
    let mut pictures: BTreeMap<(usize, String), Vec<f32>> = BTreeMap::new();
    for s in &settings {
        let t0 = Instant::now();
        let row: Vec<Option<(Scores, Vec<f32>)>> = items
            .par_iter()
            .zip(&mix_sdr)
            .map(|(it, &msdr)| {
                if !s.applies(it.label) {
                    return Ok(None);
                }
                let est = s
                    .estimate(it, rate, &stft)
                    .with_context(|| format!("{}: {}", s.name, LABELS[it.label]))?;
                let emb = (!args.no_emb
                    && it.tir == 0.0
                    && it.index < EMB_PER_LABEL
                    && EMB_SETTINGS.contains(&s.name.as_str()))
                .then_some(&crepe);
                Ok(Some((score(it, &est, msdr, rate, emb)?, est)))
            })
            .collect::<Result<_>>()?;
        seconds_per_setting.push(t0.elapsed().as_secs_f64());
        for (i, r) in row.iter().enumerate() {
            let it = &items[i];
            if let Some((_, est)) = r
                && it.index == 0
                && it.tir == 0.0
                && ["speech", "drums", "bass", "piano"].contains(&LABELS[it.label])
                && ["meanflow:1", "discriminative", "oracle IRM (STFT)"].contains(&s.name.as_str())
            {
                pictures.insert((i, s.name.clone()), est.clone());
            }
        }
        results.push(row.into_iter().map(|r| r.map(|(sc, _)| sc)).collect());
        eprintln!("{:<28} done in {:.1} s", s.name, t0.elapsed().as_secs_f64());
    }

    // Per-mixture rows.
    let mut csv = String::from("setting,tir_db,label,index,interferers,si_sdri,sdri,mrstft,emb_mse\n");
    for (s, row) in settings.iter().zip(&results) {
        for (it, r) in items.iter().zip(row) {
            if let Some(sc) = r {
                let others: Vec<&str> = it.mix.interferers.iter().map(|l| LABELS[*l]).collect();
                csv += &format!(
                    "{},{},{},{},{},{:.4},{:.4},{:.5},{:.6}\n",
                    s.name,
                    it.tir,
                    LABELS[it.label],
                    it.index,
                    others.join("+"),
                    sc.si_sdri,
                    sc.sdri,
                    sc.mrstft,
                    sc.emb_mse
                );
            }
        }
    }
    std::fs::write(args.out.join("results.csv"), csv)?;

    // Means per (setting, tir, label) and over labels.
    let per_label = |si: usize, tir: f32, label: usize, k: usize| -> f64 {
        let v: Vec<f64> = items
            .iter()
            .zip(&results[si])
            .filter(|(it, _)| it.tir == tir && it.label == label)
            .filter_map(|(_, r)| r.map(|s| s.get(k)))
            .collect();
        mean(&v)
    };
    // Mean over the labels a setting applies to (all of them, or a single-label peer's one).
    let average = |si: usize, tir: f32, k: usize| -> f64 {
        mean(
            &labels
                .iter()
                .filter(|&&l| settings[si].applies(l))
                .map(|&l| per_label(si, tir, l, k))
                .collect::<Vec<_>>(),
        )
    };
    let mut summary = serde_json::Map::new();
    for &tir in &args.tirs {
        println!("\n## TIR {tir:+} dB: mean over labels (single-label peers: their label)\n");
        println!("| setting | SI-SDRi dB | SDRi dB | MR-STFT | emb_mse | seconds (all TIRs) |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (si, s) in settings.iter().enumerate() {
            let v: Vec<f64> = (0..4).map(|k| average(si, tir, k)).collect();
            let emb = if v[3].is_finite() {
                format!("{:.4}", v[3])
            } else {
                "–".into()
            };
            println!(
                "| {} | {:.2} | {:.2} | {:.3} | {emb} | {:.1} |",
                s.name, v[0], v[1], v[2], seconds_per_setting[si]
            );
        }
        println!("\n## TIR {tir:+} dB: SI-SDRi per label (dB)\n");
        let names: Vec<&str> = labels.iter().map(|&l| LABELS[l]).collect();
        println!("| setting | {} |", names.join(" | "));
        println!("|---|{}", "---:|".repeat(names.len()));
        for (si, s) in settings.iter().enumerate() {
            let cells: Vec<String> = labels
                .iter()
                .map(|&l| {
                    let v = per_label(si, tir, l, 0);
                    if v.is_finite() { format!("{v:.2}") } else { "".into() }
                })
                .collect();
            println!("| {} | {} |", s.name, cells.join(" | "));
            let mut entry = serde_json::Map::new();
            for (k, m) in METRICS.iter().enumerate() {
                let per: serde_json::Map<String, serde_json::Value> = labels
                    .iter()
                    .filter(|&&l| s.applies(l))
                    .map(|&l| (LABELS[l].to_string(), serde_json::json!(per_label(si, tir, l, k))))
                    .collect();
                entry.insert(
                    m.to_string(),
                    serde_json::json!({"average": average(si, tir, k), "labels": per}),
                );
            }
            summary
                .entry(format!("tir {tir:+}"))
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
                .map(|o| o.insert(s.name.clone(), serde_json::Value::Object(entry)));
        }
    }
    let meta = serde_json::json!({
        "command": format!("cargo bench --bench quality -- --data {} --model {} --n {} --seconds {} --tir {}",
            args.data.display(), args.model, args.n, args.seconds,
            args.tirs.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")),
        "mixtures": items.len(),
        "seconds_per_setting": settings.iter().map(|s| s.name.clone()).zip(seconds_per_setting.iter().copied()).collect::<BTreeMap<_, _>>(),
    });
    summary.insert("meta".into(), meta);
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(summary))?,
    )?;

    // Pictures.
    let mut tirs = args.tirs.clone();
    tirs.sort_by(f32::total_cmp);
    let series: Vec<(String, Vec<(f64, f64)>)> = settings
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.name.starts_with("hpss") && !s.name.starts_with("rnnoise"))
        .map(|(si, s)| {
            (
                s.name.clone(),
                tirs.iter().map(|&t| (t as f64, average(si, t, 0))).collect(),
            )
        })
        .collect();
    write_line_chart(
        &args.out.join("tir.png"),
        &Axes {
            title: "SI-SDR improvement against the mixture's TIR (label mean)",
            x: "TIR of the mixture (dB)",
            y: "SI-SDRi (dB)",
        },
        &series,
    )?;
    if args.tirs.contains(&0.0) {
        let shown: Vec<usize> = (0..settings.len())
            .filter(|&si| labels.iter().all(|&l| settings[si].applies(l)))
            .collect();
        let names: Vec<&str> = shown.iter().map(|&si| settings[si].name.as_str()).collect();
        let columns: Vec<&str> = labels.iter().map(|&l| LABELS[l]).collect();
        let values: Vec<f64> = shown
            .iter()
            .flat_map(|&si| labels.iter().map(move |&l| (si, l)))
            .map(|(si, l)| per_label(si, 0.0, l, 0))
            .collect();
        write_matrix(
            &args.out.join("labels.png"),
            "SI-SDR improvement per label at TIR 0 dB (mean over mixtures)",
            &names,
            &columns,
            &values,
            (-5.0, 20.0),
            "SI-SDRi (dB)",
        )?;
    }
    let mut rows: Vec<(String, Vec<f32>, u32)> = Vec::new();
    let mut shown_items: Vec<usize> = pictures.keys().map(|(i, _)| *i).collect();
    shown_items.dedup();
    for i in shown_items {
        let it = &items[i];
        let l = LABELS[it.label];
        rows.push((
            format!("{l}: mixture (TIR {:+.0} dB)", it.tir),
            it.mix.mixture.clone(),
            rate,
        ));
        for name in ["meanflow:1", "discriminative", "oracle IRM (STFT)"] {
            if let Some(est) = pictures.get(&(i, name.to_string())) {
                rows.push((format!("{l}: {name} estimate"), est.clone(), rate));
            }
        }
        rows.push((format!("{l}: reference"), it.mix.target.clone(), rate));
    }
    if !rows.is_empty() {
        write_spectrogram_grid(&args.out.join("spectrograms.png"), &rows)?;
    }
    println!(
        "\nwrote {}/{{results.csv, summary.json, tir.png, labels.png, spectrograms.png}} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
