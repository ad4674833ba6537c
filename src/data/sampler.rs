//! The mixture sampler: training examples drawn from one split of the corpus.
//!
//! One example ([`MixtureSampler::sample`]) is:
//!
//! 1. a **target label**, uniform over the labels present in the split (not weighted by
//!    minutes, so thin labels are seen as often as speech), optionally restricted by
//!    [`SamplerConfig::labels`];
//! 2. `interferers[0] ..= interferers[1]` **interferer labels**, distinct from the target and
//!    from each other and compatible with everything already drawn: `music` (a full mix) never
//!    meets an instrument label (drums, bass, piano, guitar, strings, winds) in one mixture,
//!    since either could be inside the other;
//! 3. for each source a **clip** of that label (weighted by duration within the label, or with
//!    [`SamplerConfig::group_power`] below 1 by its group's duration to that power) and a
//!    random **crop** of `seconds` (clips shorter than the crop are looped with random gaps,
//!    starting at a random phase); each source gets its own augmentation
//!    ([`crate::data::augment`]: random low-pass / EQ, a RandAugment policy, optionally a
//!    pitch/speed shift and a synthetic room reverb) and a random
//!    gain in `gain_db` (which sets the balance between interferers); a crop that is silent
//!    after augmentation (RMS below -70 dBFS) is drawn again;
//! 4. the interference (sum of the interferers) is scaled so that
//!    `10 log10(|target|² / |interference|²)` equals a ratio drawn uniformly in `tir_db`
//!    (exact up to f32 rounding, after augmentation);
//! 5. everything is scaled by one factor so the mixture peak sits at a level drawn in
//!    `peak_db` dBFS (no clipping; the ratio is unchanged);
//! 6. a **query** clip of the target label from another group (speaker, kit, preset or file)
//!    when the split has one, cropped to `query_seconds`, augmented independently and
//!    peak-normalised the same way.
//!
//! Determinism: every draw comes from a ChaCha8 generator seeded with `seed` on stream `index`,
//! so `(seed, index)` gives the same bits on any thread, in any order.
//!
//! Audio is read on demand (a hound reader seeks to the crop), or, with `preload`, kept in
//! memory as i16 for the whole split (2 bytes per sample: 2.3 GB for the full train split).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::data::LABELS;
use crate::data::augment::{Chain, OPS, Op, Params, uniform};
use crate::data::manifest::{self, ClipRow};

/// Labels that are parts of a full mix: never in one mixture with `music`.
pub const INSTRUMENT_LABELS: &[&str] = &["drums", "bass", "piano", "guitar", "strings", "winds"];

/// RMS (full scale 1.0) below which an augmented crop counts as silent: -70 dBFS.
pub const SILENCE_RMS: f64 = 3.162e-4;

/// Crops tried per clip, and clips tried per source, before a source counts as silent.
const TRIES: usize = 8;

/// Sampler settings (serde: every field optional, missing ones take the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerConfig {
    /// Sample rate of the corpus and of the output, Hz.
    pub rate: u32,
    /// Crop length of mixture and target, seconds.
    pub seconds: f32,
    /// Length of the query clip, seconds.
    pub query_seconds: f32,
    /// Target-to-interference ratio range, dB (uniform).
    pub tir_db: [f32; 2],
    /// Number of interferers, inclusive range (at least 1).
    pub interferers: [usize; 2],
    /// Random gain of each source before the ratio is set, dB (uniform): the balance between
    /// interferers.
    pub gain_db: [f32; 2],
    /// Mixture peak after normalisation, dBFS (uniform; at most 0).
    pub peak_db: [f32; 2],
    /// Probability of a low-pass on each source.
    pub lowpass_p: f32,
    /// Low-pass cut-off range, Hz (log-uniform).
    pub lowpass_hz: [f32; 2],
    /// Probability of each peaking EQ band.
    pub eq_p: f32,
    /// Number of peaking EQ band draws per source.
    pub eq_bands: usize,
    /// EQ centre range, Hz (log-uniform).
    pub eq_hz: [f32; 2],
    /// EQ gain range, dB.
    pub eq_gain_db: [f32; 2],
    /// RandAugment: operations per source.
    pub randaugment_n: usize,
    /// RandAugment: magnitude, 0 (off) ..= 10.
    pub randaugment_m: f32,
    /// RandAugment: the operations to draw from.
    pub ops: Vec<Op>,
    /// Pitch/speed shift of every source, semitones: uniform in `±pitch_semitones` (0 = off;
    /// on top of RandAugment's `speed`).
    pub pitch_semitones: f32,
    /// Labels whose sources are never pitch-shifted (e.g. `["bass"]`: a class defined by its
    /// register).
    pub pitch_skip: Vec<String>,
    /// Probability of a synthetic room reverb on each source (0 = off).
    pub reverb_p: f32,
    /// Reverb decay time (RT60) range, seconds (log-uniform).
    pub reverb_rt60: [f32; 2],
    /// Reverb wet share range (uniform; the dry share is `1 − wet`).
    pub reverb_wet: [f32; 2],
    /// Augment the query clip too (its own draw).
    pub augment_query: bool,
    /// Restrict target labels to these names (interferers may be any label).
    pub labels: Option<Vec<String>>,
    /// Load the split's audio into memory at `open` (i16) instead of reading crops on demand.
    pub preload: bool,
    /// Share of draws per package (the manifest's `package` column), within every label it
    /// provides alongside other packages: `{"procedural-ambience": 0.5}` gives the ambience
    /// set's clips half of each such label's draws (its clips weighted by duration among
    /// themselves, the other packages' clips sharing the rest). Packages not named keep their
    /// duration weight; a label the package alone provides is unaffected. Each share in
    /// (0, 1); the trainer refuses a key no train clip comes from
    /// ([`MixtureSampler::unmatched_shares`]).
    pub package_share: BTreeMap<String, f64>,
    /// Weight of each group (speaker, preset, kit, file: the manifest's `group`) within its
    /// label, as its total duration to this power: 1 draws every clip by its duration (a
    /// group by its minutes), 0 draws every group alike (clips by duration within it), so
    /// that a label's one long recording does not crowd out its many short ones. In [0, 1].
    pub group_power: f64,
    /// Probability that an example asks for a label the mixture lacks: the drawn target joins
    /// the interferers, the query is a clip of another label (one compatible with every source
    /// in the mixture), and the target is silence, so that the network learns to return
    /// nothing for a class that is not there instead of a generic foreground. In [0, 1); 0
    /// (the default) draws no extra random number, so earlier seeds give the same examples.
    pub absent_p: f32,
    /// Pair the examples: every odd index `2k + 1` is the mixture of index `2k` queried for
    /// its first interferer (that source the target, the drawn target among the interferers,
    /// the ratio recomputed, a query clip of the new label from another group), so a batch
    /// shows the network the same input with two queries and two answers. Falls back to an
    /// independent draw when the first interferer's label is not a target label. Not with
    /// `absent_p`.
    pub pair_queries: bool,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            rate: 22050,
            seconds: 3.0,
            query_seconds: 3.0,
            tir_db: [-10.0, 10.0],
            interferers: [1, 3],
            gain_db: [-6.0, 6.0],
            peak_db: [-12.0, -1.0],
            lowpass_p: 0.5,
            lowpass_hz: [3500.0, 10000.0],
            eq_p: 0.3,
            eq_bands: 2,
            eq_hz: [100.0, 8000.0],
            eq_gain_db: [-9.0, 9.0],
            randaugment_n: 2,
            randaugment_m: 5.0,
            ops: OPS.to_vec(),
            pitch_semitones: 0.0,
            pitch_skip: Vec::new(),
            reverb_p: 0.0,
            reverb_rt60: [0.15, 1.2],
            reverb_wet: [0.1, 0.5],
            augment_query: true,
            labels: None,
            preload: false,
            package_share: BTreeMap::new(),
            group_power: 1.0,
            absent_p: 0.0,
            pair_queries: false,
        }
    }
}

impl SamplerConfig {
    /// The augmentation settings, as [`Chain::draw`] takes them.
    pub fn augment(&self) -> Params<'_> {
        Params {
            lowpass_p: self.lowpass_p,
            lowpass_hz: self.lowpass_hz,
            eq_p: self.eq_p,
            eq_bands: self.eq_bands,
            eq_hz: self.eq_hz,
            eq_gain_db: self.eq_gain_db,
            randaugment_n: self.randaugment_n,
            randaugment_m: self.randaugment_m,
            ops: &self.ops,
            pitch_semitones: self.pitch_semitones,
            pitch_skip: &self.pitch_skip,
            reverb_p: self.reverb_p,
            reverb_rt60: self.reverb_rt60,
            reverb_wet: self.reverb_wet,
        }
    }

    /// Settings for evaluation mixtures (`data mixtures`, the quality benchmark): `seconds`
    /// long, no augmentation (no low-pass, EQ or RandAugment; plain query clips); the other
    /// ranges (interferers, gains, TIR) as the default.
    pub fn evaluation(seconds: f32) -> Self {
        SamplerConfig {
            seconds,
            lowpass_p: 0.0,
            eq_p: 0.0,
            randaugment_n: 0,
            pitch_semitones: 0.0,
            reverb_p: 0.0,
            augment_query: false,
            ..SamplerConfig::default()
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.rate >= 1000, "sampler rate {} Hz is too low", self.rate);
        ensure!(
            self.seconds > 0.0 && self.query_seconds > 0.0,
            "seconds and query_seconds must be positive"
        );
        ensure!(
            self.interferers[0] >= 1 && self.interferers[0] <= self.interferers[1],
            "interferers must be a range [lo, hi] with 1 <= lo <= hi, not {:?}",
            self.interferers
        );
        ensure!(
            self.peak_db.iter().all(|p| *p <= 0.0),
            "peak_db must be at most 0 dBFS, not {:?}",
            self.peak_db
        );
        ensure!(
            (0.0..=10.0).contains(&self.randaugment_m),
            "randaugment_m must be in 0..=10, not {}",
            self.randaugment_m
        );
        if let Some((p, v)) = self.package_share.iter().find(|(_, v)| !(**v > 0.0 && **v < 1.0)) {
            bail!("package_share: the share of '{p}' must be in (0, 1), not {v}");
        }
        ensure!(
            (0.0..=1.0).contains(&self.group_power),
            "group_power must be in 0..=1, not {}",
            self.group_power
        );
        ensure!(
            (0.0..1.0).contains(&self.absent_p),
            "absent_p must be in [0, 1), not {}",
            self.absent_p
        );
        ensure!(
            !(self.pair_queries && self.absent_p > 0.0),
            "pair_queries and absent_p exclude each other (a pair's second example needs a present target)"
        );
        ensure!(
            (0.0..=12.0).contains(&self.pitch_semitones),
            "pitch_semitones must be in 0..=12, not {}",
            self.pitch_semitones
        );
        ensure!(
            (0.0..=1.0).contains(&self.reverb_p)
                && self.reverb_rt60.iter().all(|t| (0.01..=5.0).contains(t))
                && self.reverb_wet.iter().all(|w| (0.0..=1.0).contains(w)),
            "reverb needs reverb_p in 0..=1, reverb_rt60 within 0.01..=5 s and reverb_wet within 0..=1, not {} / {:?} / {:?}",
            self.reverb_p,
            self.reverb_rt60,
            self.reverb_wet
        );
        let finite = [
            self.tir_db,
            self.gain_db,
            self.peak_db,
            self.lowpass_hz,
            self.eq_hz,
            self.eq_gain_db,
        ];
        ensure!(
            finite.iter().flatten().all(|v| v.is_finite()),
            "sampler ranges must be finite"
        );
        Ok(())
    }
}

/// One training example (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// `target + sum of interferers`, sample for sample; `cfg.seconds * cfg.rate` samples.
    pub mixture: Vec<f32>,
    /// The target as it sits in the mixture (after augmentation, gain and normalisation);
    /// silence when the queried label is absent ([`SamplerConfig::absent_p`]).
    pub target: Vec<f32>,
    /// Index in [`LABELS`]: the queried label.
    pub label: usize,
    /// Interferer labels (indices in [`LABELS`]).
    pub interferers: Vec<usize>,
    /// Another clip of the target label (`cfg.query_seconds * cfg.rate` samples).
    pub query: Vec<f32>,
    /// The drawn target-to-interference ratio, dB (`-inf` when the target is absent).
    pub tir_db: f32,
}

/// An example with each interferer kept apart and the clips it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Parts {
    pub label: usize,
    pub tir_db: f32,
    pub target: Vec<f32>,
    /// `(label, signal as it sits in the mixture)`.
    pub interferers: Vec<(usize, Vec<f32>)>,
    pub query: Vec<f32>,
    /// Indices into [`MixtureSampler::rows`]; no target row when the queried label is absent
    /// (its drawn target is then the first interferer).
    pub target_row: Option<usize>,
    pub interferer_rows: Vec<usize>,
    pub query_row: usize,
}

impl Parts {
    /// The mixture: `target[i] + interferers[0][i] + interferers[1][i] + ...` (in that order).
    pub fn mixture(&self) -> Vec<f32> {
        let mut m = self.target.clone();
        for (_, x) in &self.interferers {
            m.iter_mut().zip(x).for_each(|(a, b)| *a += *b);
        }
        m
    }

    pub fn into_mix(self) -> Mix {
        Mix {
            mixture: self.mixture(),
            label: self.label,
            interferers: self.interferers.iter().map(|(l, _)| *l).collect(),
            tir_db: self.tir_db,
            target: self.target,
            query: self.query,
        }
    }
}

/// Whether two labels may share a mixture: distinct, and not `music` with an instrument.
pub fn compatible(a: usize, b: usize) -> bool {
    let instrument = |l: usize| INSTRUMENT_LABELS.contains(&LABELS[l]);
    let music = |l: usize| LABELS[l] == "music";
    a != b && !(music(a) && instrument(b)) && !(music(b) && instrument(a))
}

/// Draw weights of the rows `idx` (one label): each clip's duration, scaled by its group's
/// total duration to the power `group_power - 1` (so a group weighs its duration to
/// `group_power`), then, for every package of `share` that provides some but not all of the
/// label's clips, its clips scaled to that share of the label's total weight (the other clips
/// scaled to share the rest).
fn draw_weights(rows: &[ClipRow], idx: &[usize], share: &BTreeMap<String, f64>, group_power: f64) -> Vec<f64> {
    let mut w: Vec<f64> = idx.iter().map(|i| rows[*i].duration.max(1e-3)).collect();
    if group_power != 1.0 {
        let mut total: HashMap<&str, f64> = HashMap::new();
        for (i, x) in idx.iter().zip(&w) {
            *total.entry(rows[*i].group.as_str()).or_default() += x;
        }
        for (i, x) in idx.iter().zip(w.iter_mut()) {
            *x *= total[rows[*i].group.as_str()].powf(group_power - 1.0);
        }
    }
    for (pkg, s) in share {
        let mine: f64 = idx
            .iter()
            .zip(&w)
            .filter(|(i, _)| rows[**i].package == *pkg)
            .map(|(_, x)| x)
            .sum();
        let total: f64 = w.iter().sum();
        if mine <= 0.0 || mine >= total {
            continue;
        }
        let (k_mine, k_other) = (s / mine, (1.0 - s) / (total - mine));
        for (i, x) in idx.iter().zip(w.iter_mut()) {
            *x *= if rows[*i].package == *pkg { k_mine } else { k_other };
        }
    }
    w
}

/// Draws examples from one split of a corpus; `Send + Sync`, so one sampler can feed many
/// threads.
pub struct MixtureSampler {
    cfg: SamplerConfig,
    dir: PathBuf,
    rows: Vec<ClipRow>,
    group_of: Vec<u32>,
    /// Per label: row indices and the running sum of their durations.
    by_label: Vec<(Vec<usize>, Vec<f64>)>,
    /// Labels a target is drawn from.
    targets: Vec<usize>,
    audio: Option<Vec<Vec<i16>>>,
}

impl MixtureSampler {
    /// Reads `corpus_dir/manifest.jsonl` and keeps the rows of `split`.
    pub fn open(corpus_dir: &Path, split: &str, cfg: SamplerConfig) -> Result<Self> {
        cfg.validate()?;
        let manifest_path = corpus_dir.join("manifest.jsonl");
        let rows: Vec<ClipRow> = manifest::read_jsonl(&manifest_path)?
            .into_iter()
            .filter(|r| r.split == split)
            .collect();
        ensure!(
            !rows.is_empty(),
            "{}: no clips in split '{split}'",
            manifest_path.display()
        );
        let mut group_of = Vec::with_capacity(rows.len());
        let mut groups: HashMap<&str, u32> = HashMap::new();
        let mut by_label: Vec<(Vec<usize>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); LABELS.len()];
        for (i, r) in rows.iter().enumerate() {
            let Some(l) = LABELS.iter().position(|x| *x == r.label) else {
                bail!(
                    "{}: {}: unknown label '{}' (one of: {})",
                    manifest_path.display(),
                    r.path,
                    r.label,
                    LABELS.join(", ")
                );
            };
            ensure!(
                r.rate == cfg.rate,
                "{}: {}: rate {} Hz, the sampler runs at {} Hz",
                manifest_path.display(),
                r.path,
                r.rate,
                cfg.rate
            );
            let n = groups.len() as u32;
            group_of.push(*groups.entry(r.group.as_str()).or_insert(n));
            by_label[l].0.push(i);
        }
        for (idx, cum) in by_label.iter_mut() {
            let w = draw_weights(&rows, idx, &cfg.package_share, cfg.group_power);
            let mut sum = 0.0;
            cum.extend(w.iter().map(|x| {
                sum += x;
                sum
            }));
        }
        if let Some(n) = cfg.pitch_skip.iter().find(|n| !LABELS.contains(&n.as_str())) {
            bail!("pitch_skip: unknown label '{n}' (one of: {})", LABELS.join(", "));
        }
        let present: Vec<usize> = (0..LABELS.len()).filter(|l| !by_label[*l].0.is_empty()).collect();
        let wanted: Vec<usize> = match &cfg.labels {
            None => present.clone(),
            Some(names) => {
                let mut v = Vec::new();
                for n in names {
                    let Some(l) = LABELS.iter().position(|x| x == n) else {
                        bail!("unknown label '{n}' (one of: {})", LABELS.join(", "));
                    };
                    ensure!(
                        present.contains(&l),
                        "{}: label '{n}' has no clips in split '{split}'",
                        manifest_path.display()
                    );
                    v.push(l);
                }
                v
            }
        };
        let targets: Vec<usize> = wanted
            .into_iter()
            .filter(|t| present.iter().any(|o| compatible(*t, *o)))
            .collect();
        ensure!(
            !targets.is_empty(),
            "{}: split '{split}' has no target label with a compatible interferer label",
            manifest_path.display()
        );
        let audio = if cfg.preload {
            let a: Result<Vec<Vec<i16>>> = rows
                .par_iter()
                .map(|r| read_all(&corpus_dir.join(&r.path), cfg.rate))
                .collect();
            Some(a?)
        } else {
            None
        };
        Ok(MixtureSampler {
            cfg,
            dir: corpus_dir.to_path_buf(),
            rows,
            group_of,
            by_label,
            targets,
            audio,
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// The split's manifest rows ([`Parts`] refers to them by index).
    pub fn rows(&self) -> &[ClipRow] {
        &self.rows
    }

    /// The packages this split's rows come from (the manifest's `package` column), sorted.
    pub fn packages(&self) -> BTreeSet<&str> {
        self.rows.iter().map(|r| r.package.as_str()).collect()
    }

    /// The `package_share` keys that name no package of this split's rows (a typo, or the
    /// set column instead of the package column): they change no draw.
    pub fn unmatched_shares(&self) -> Vec<&str> {
        let packages = self.packages();
        self.cfg
            .package_share
            .keys()
            .map(String::as_str)
            .filter(|p| !packages.contains(p))
            .collect()
    }

    /// Labels targets are drawn from (indices in [`LABELS`]).
    pub fn target_labels(&self) -> &[usize] {
        &self.targets
    }

    /// The example for `(seed, index)`; the same pair always gives the same bits.
    pub fn sample(&self, seed: u64, index: u64) -> Result<Mix> {
        Ok(self.sample_parts(seed, index)?.into_mix())
    }

    /// [`sample`](Self::sample) with the interferers apart and the source rows.
    pub fn sample_parts(&self, seed: u64, index: u64) -> Result<Parts> {
        if self.cfg.pair_queries && !index.is_multiple_of(2) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(index);
            let first = self.draw(seed, index - 1)?;
            if let Some(parts) = self.swap_query(&mut rng, first)? {
                return Ok(parts);
            }
        }
        self.draw(seed, index)
    }

    /// The pair partner of `parts` ([`SamplerConfig::pair_queries`]): the same mixture with its
    /// first interferer as the target; `None` when that label is not a target label or there
    /// is no interferer.
    fn swap_query(&self, rng: &mut ChaCha8Rng, mut parts: Parts) -> Result<Option<Parts>> {
        let (Some(&(label, _)), Some(&row), Some(target_row)) = (
            parts.interferers.first(),
            parts.interferer_rows.first(),
            parts.target_row,
        ) else {
            return Ok(None);
        };
        if !self.targets.contains(&label) {
            return Ok(None);
        }
        let (_, new_target) = std::mem::replace(&mut parts.interferers[0], (parts.label, Vec::new()));
        parts.interferers[0].1 = std::mem::replace(&mut parts.target, new_target);
        parts.interferer_rows[0] = target_row;
        parts.target_row = Some(row);
        parts.label = label;
        let e_n: f64 = interference(&parts.interferers, parts.target.len())
            .iter()
            .map(|v| v * v)
            .sum();
        parts.tir_db = (10.0 * (energy(&parts.target) / e_n.max(1e-30)).log10()) as f32;
        (parts.query_row, parts.query) = self.query_clip(rng, label, Some(row))?;
        Ok(Some(parts))
    }

    /// Labels with train clips that may join every label of `chosen` in a mixture.
    fn compatible_labels(&self, chosen: &[usize]) -> Vec<usize> {
        (0..LABELS.len())
            .filter(|l| !self.by_label[*l].0.is_empty() && chosen.iter().all(|c| compatible(*c, *l)))
            .collect()
    }

    /// A query clip of `label` (`query_seconds`, its peak drawn from `peak_db`): from another
    /// group than the target clip `target_row` when the split has one. Returns its row too.
    fn query_clip(&self, rng: &mut ChaCha8Rng, label: usize, target_row: Option<usize>) -> Result<(usize, Vec<f32>)> {
        let cfg = &self.cfg;
        let qlen = (f64::from(cfg.query_seconds) * f64::from(cfg.rate)).round() as usize;
        let exclude = target_row
            .map(|t| self.group_of[t])
            .filter(|g| self.by_label[label].0.iter().any(|r| self.group_of[*r] != *g));
        let (row, mut query) = self.source(rng, label, exclude, qlen, cfg.augment_query)?;
        let qpeak = query.iter().fold(0.0f32, |p, v| p.max(v.abs()));
        let qs = (db_to_amp(uniform(rng, cfg.peak_db)) / f64::from(qpeak)) as f32;
        query.iter_mut().for_each(|v| *v *= qs);
        Ok((row, query))
    }

    /// One independent example: the draw of `(seed, index)`.
    fn draw(&self, seed: u64, index: u64) -> Result<Parts> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        let cfg = &self.cfg;
        let len = (f64::from(cfg.seconds) * f64::from(cfg.rate)).round() as usize;
        let label = self.targets[rng.random_range(0..self.targets.len())];
        let k = rng.random_range(cfg.interferers[0]..=cfg.interferers[1]);
        let mut chosen = vec![label];
        for _ in 0..k {
            let pool = self.compatible_labels(&chosen);
            if pool.is_empty() {
                break;
            }
            chosen.push(pool[rng.random_range(0..pool.len())]);
        }
        let (target_row, mut target) = self.source(&mut rng, label, None, len, true)?;
        let mut interferers = Vec::with_capacity(chosen.len() - 1);
        let mut interferer_rows = Vec::with_capacity(chosen.len() - 1);
        for &l in &chosen[1..] {
            let (row, mut x) = self.source(&mut rng, l, None, len, true)?;
            let g = db_to_amp(uniform(&mut rng, cfg.gain_db)) as f32;
            x.iter_mut().for_each(|v| *v *= g);
            interferers.push((l, x));
            interferer_rows.push(row);
        }
        let g = db_to_amp(uniform(&mut rng, cfg.gain_db)) as f32;
        target.iter_mut().for_each(|v| *v *= g);
        let tir_db = uniform(&mut rng, cfg.tir_db) as f32;
        // Scale the interference to the drawn ratio (energies in f64).
        let sum = interference(&interferers, len);
        let e_n: f64 = sum.iter().map(|v| v * v).sum();
        let e_t = energy(&target);
        let a = (e_t / (e_n * 10f64.powf(f64::from(tir_db) / 10.0))).sqrt();
        ensure!(
            a.is_finite() && a > 0.0,
            "interference scale {a} (target energy {e_t}, interference {e_n})"
        );
        let peak = target
            .iter()
            .zip(&sum)
            .fold(0.0f64, |p, (t, n)| p.max((f64::from(*t) + a * n).abs()));
        let s = db_to_amp(uniform(&mut rng, cfg.peak_db)) / peak;
        target.iter_mut().for_each(|v| *v = (f64::from(*v) * s) as f32);
        for (_, x) in &mut interferers {
            x.iter_mut().for_each(|v| *v = (f64::from(*v) * a * s) as f32);
        }
        let (query_row, query) = self.query_clip(&mut rng, label, Some(target_row))?;
        let mut parts = Parts {
            label,
            tir_db,
            target,
            interferers,
            query,
            target_row: Some(target_row),
            interferer_rows,
            query_row,
        };
        if cfg.absent_p > 0.0 && rng.random::<f32>() < cfg.absent_p {
            self.make_absent(&mut rng, &mut parts, &chosen)?;
        }
        Ok(parts)
    }

    /// Turns `parts` into an example whose queried label is not in the mixture (see
    /// [`SamplerConfig::absent_p`]); leaves it as it is when no label with train clips is
    /// compatible with every source of `chosen`. The mixture is unchanged.
    fn make_absent(&self, rng: &mut ChaCha8Rng, parts: &mut Parts, chosen: &[usize]) -> Result<()> {
        let pool = self.compatible_labels(chosen);
        if pool.is_empty() {
            return Ok(());
        }
        let absent = pool[rng.random_range(0..pool.len())];
        let (query_row, query) = self.query_clip(rng, absent, None)?;
        let silence = vec![0.0; parts.target.len()];
        let target = std::mem::replace(&mut parts.target, silence);
        parts.interferers.insert(0, (parts.label, target));
        if let Some(row) = parts.target_row.take() {
            parts.interferer_rows.insert(0, row);
        }
        parts.label = absent;
        parts.query = query;
        parts.query_row = query_row;
        parts.tir_db = f32::NEG_INFINITY;
        Ok(())
    }

    /// Picks a clip of `label` (not of group `exclude`), crops and augments it; redraws silent
    /// crops. Returns the row and `len` samples.
    fn source(
        &self,
        rng: &mut ChaCha8Rng,
        label: usize,
        exclude: Option<u32>,
        len: usize,
        augment: bool,
    ) -> Result<(usize, Vec<f32>)> {
        let mut last = String::new();
        for _ in 0..TRIES {
            let row = self.pick(rng, label, exclude);
            for _ in 0..TRIES {
                let chain = if augment {
                    Chain::draw(rng, &self.cfg.augment(), LABELS[label])
                } else {
                    Chain::identity()
                };
                let raw = self.crop(rng, row, chain.input_len(len))?;
                let y = chain.apply(raw, len, self.cfg.rate)?;
                if (energy(&y) / len as f64).sqrt() >= SILENCE_RMS {
                    return Ok((row, y));
                }
            }
            last = self.rows[row].path.clone();
        }
        bail!(
            "{}: label '{}': {} crops in a row were silent (last clip {last})",
            self.dir.display(),
            LABELS[label],
            TRIES * TRIES
        )
    }

    /// A row of `label`, weighted by duration, avoiding group `exclude` (rejection sampling,
    /// then a scan of the other groups' clips when rejection keeps failing).
    fn pick(&self, rng: &mut ChaCha8Rng, label: usize, exclude: Option<u32>) -> usize {
        let (idx, cum) = &self.by_label[label];
        let total = cum[cum.len() - 1];
        for _ in 0..32 {
            let u = rng.random::<f64>() * total;
            let i = cum.partition_point(|c| *c <= u).min(idx.len() - 1);
            if exclude != Some(self.group_of[idx[i]]) {
                return idx[i];
            }
        }
        let others: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|r| exclude != Some(self.group_of[*r]))
            .collect();
        if others.is_empty() {
            idx[rng.random_range(0..idx.len())]
        } else {
            others[rng.random_range(0..others.len())]
        }
    }

    /// `need` samples of row `row`: a random window, or the clip looped with random gaps when it
    /// is shorter than `need`.
    fn crop(&self, rng: &mut ChaCha8Rng, row: usize, need: usize) -> Result<Vec<f32>> {
        const SCALE: f32 = 1.0 / 32768.0;
        if let Some(audio) = &self.audio {
            let a = &audio[row];
            if a.len() >= need {
                let off = rng.random_range(0..=a.len() - need);
                return Ok(a[off..off + need].iter().map(|v| f32::from(*v) * SCALE).collect());
            }
            let clip: Vec<f32> = a.iter().map(|v| f32::from(*v) * SCALE).collect();
            return Ok(tile(rng, &clip, need, self.cfg.rate));
        }
        let path = self.dir.join(&self.rows[row].path);
        let mut r = open_wav(&path, self.cfg.rate)?;
        let n = r.duration() as usize;
        let (off, take) = if n >= need {
            (rng.random_range(0..=n - need), need)
        } else {
            (0, n)
        };
        r.seek(off as u32)
            .with_context(|| format!("{}: seek", path.display()))?;
        // hound has parsed the header and positioned the reader at the crop; one read of the
        // raw little-endian samples is faster than hound's per-sample iterator.
        let mut bytes = vec![0u8; 2 * take];
        r.into_inner()
            .read_exact(&mut bytes)
            .with_context(|| format!("{}: ends early (wanted {take} samples at {off})", path.display()))?;
        let clip: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) * SCALE)
            .collect();
        ensure!(!clip.is_empty(), "{}: no samples", path.display());
        Ok(if n >= need {
            clip
        } else {
            tile(rng, &clip, need, self.cfg.rate)
        })
    }
}

/// `need` samples of `clip` repeated: the first copy starts at a random phase (possibly cut),
/// then copies follow with random gaps of up to min(clip length, 0.5 s).
fn tile(rng: &mut ChaCha8Rng, clip: &[f32], need: usize, rate: u32) -> Vec<f32> {
    let mut out = vec![0.0f32; need];
    let n = clip.len();
    let max_gap = n.min(rate as usize / 2);
    let mut pos = -(rng.random_range(0..n) as i64);
    while pos < need as i64 {
        for (j, v) in clip.iter().enumerate() {
            let k = pos + j as i64;
            if k >= 0 && (k as usize) < need {
                out[k as usize] = *v;
            }
        }
        pos += (n + rng.random_range(0..=max_gap)) as i64;
    }
    out
}

fn open_wav(path: &Path, rate: u32) -> Result<hound::WavReader<std::io::BufReader<std::fs::File>>> {
    let r = hound::WavReader::open(path).with_context(|| format!("{}", path.display()))?;
    let s = r.spec();
    ensure!(
        s.channels == 1 && s.bits_per_sample == 16 && s.sample_format == hound::SampleFormat::Int,
        "{}: expected 16-bit mono PCM, found {} channels, {} bits {:?}",
        path.display(),
        s.channels,
        s.bits_per_sample,
        s.sample_format
    );
    ensure!(
        s.sample_rate == rate,
        "{}: rate {} Hz, the sampler runs at {rate} Hz",
        path.display(),
        s.sample_rate
    );
    Ok(r)
}

fn read_all(path: &Path, rate: u32) -> Result<Vec<i16>> {
    let mut r = open_wav(path, rate)?;
    let v: Vec<i16> = r
        .samples::<i16>()
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{}", path.display()))?;
    ensure!(!v.is_empty(), "{}: no samples", path.display());
    Ok(v)
}

/// The interferers' sum, sample for sample, in f64 (`len` samples).
fn interference(interferers: &[(usize, Vec<f32>)], len: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; len];
    for (_, x) in interferers {
        sum.iter_mut().zip(x).for_each(|(s, v)| *s += f64::from(*v));
    }
    sum
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum()
}

fn db_to_amp(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn music_never_meets_instruments() {
        let l = |n: &str| LABELS.iter().position(|x| *x == n).unwrap();
        assert!(!compatible(l("music"), l("drums")));
        assert!(!compatible(l("piano"), l("music")));
        assert!(!compatible(l("speech"), l("speech")));
        assert!(compatible(l("music"), l("speech")));
        assert!(compatible(l("drums"), l("bass")));
    }

    #[test]
    fn group_power_weighs_groups_by_their_duration_to_that_power() {
        let row = |group: &str, d: f64| ClipRow {
            path: String::new(),
            label: "engine".into(),
            duration: d,
            rate: 22050,
            package: "p".into(),
            source_file: String::new(),
            group: group.into(),
            licence: String::new(),
            split: "train".into(),
        };
        // Group a: 12 s in three clips (8 + 2 + 2); group b: one clip of 3 s.
        let rows = vec![row("a", 8.0), row("b", 3.0), row("a", 2.0), row("a", 2.0)];
        let idx = [0, 1, 2, 3];
        let share = BTreeMap::new();
        assert_eq!(draw_weights(&rows, &idx, &share, 1.0), vec![8.0, 3.0, 2.0, 2.0]);
        let group = |w: &[f64]| (w[0] + w[2] + w[3]) / w[1];
        // Power 0: both groups alike, clips by duration within a; 0.5: sqrt(12) / sqrt(3) = 2.
        let w0 = draw_weights(&rows, &idx, &share, 0.0);
        assert!(
            (group(&w0) - 1.0).abs() < 1e-12 && (w0[0] / w0[2] - 4.0).abs() < 1e-12,
            "{w0:?}"
        );
        let w5 = draw_weights(&rows, &idx, &share, 0.5);
        assert!((group(&w5) - 2.0).abs() < 1e-12, "{w5:?}");
        let bad = SamplerConfig {
            group_power: 1.5,
            ..SamplerConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn package_share_sets_each_packages_part_of_a_label() {
        let row = |pkg: &str, d: f64| ClipRow {
            path: String::new(),
            label: "wind".into(),
            duration: d,
            rate: 22050,
            package: pkg.into(),
            source_file: String::new(),
            group: String::new(),
            licence: String::new(),
            split: "train".into(),
        };
        // 9 s synthetic in two clips, 1 s recorded in two clips.
        let rows = vec![row("synth", 6.0), row("rec", 0.25), row("synth", 3.0), row("rec", 0.75)];
        let idx = [0, 1, 2, 3];
        let none = draw_weights(&rows, &idx, &BTreeMap::new(), 1.0);
        assert_eq!(none, vec![6.0, 0.25, 3.0, 0.75]);
        let half = BTreeMap::from([("synth".to_string(), 0.5)]);
        let w = draw_weights(&rows, &idx, &half, 1.0);
        let total: f64 = w.iter().sum();
        // Half the weight each, durations kept as the weights within a package.
        assert!(((w[0] + w[2]) / total - 0.5).abs() < 1e-12, "{w:?}");
        assert!(
            (w[0] / w[2] - 2.0).abs() < 1e-12 && (w[3] / w[1] - 3.0).abs() < 1e-12,
            "{w:?}"
        );
        // A label the package alone provides, or a package absent from it, is unchanged.
        assert_eq!(draw_weights(&rows, &[0, 2], &half, 1.0), vec![6.0, 3.0]);
        assert_eq!(draw_weights(&rows, &[1, 3], &half, 1.0), vec![0.25, 0.75]);
        let bad = SamplerConfig {
            package_share: BTreeMap::from([("synth".to_string(), 1.0)]),
            ..SamplerConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn tile_loops_a_short_clip_with_gaps() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let clip = vec![1.0f32; 100];
        let out = tile(&mut rng, &clip, 1000, 22050);
        assert_eq!(out.len(), 1000);
        let ones = out.iter().filter(|v| **v == 1.0).count();
        // At least every other stretch of 200 samples holds one copy (gaps <= clip length).
        assert!((400..1000).contains(&ones), "{ones}");
    }

    #[test]
    fn default_config_round_trips_through_json() {
        let c = SamplerConfig::default();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<SamplerConfig>(&s).unwrap(), c);
        let partial: SamplerConfig = serde_json::from_str(r#"{"tir_db":[-5,5]}"#).unwrap();
        assert_eq!(partial.tir_db, [-5.0, 5.0]);
        assert_eq!(partial.rate, 22050);
    }
}
