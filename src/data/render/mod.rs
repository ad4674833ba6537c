//! Rendered stems: procedural environmental sounds ([`ambience`], the `render-ambience` set)
//! and instrument stems: MIDI parts played one instrument at a time through SoundFont
//! presets of two General MIDI banks (FluidR3_GM and MuseScore_General, a different, sampled
//! bank converted from SoundFont 3 by [`sf3`]: melodic presets and bank-128 kits), plus the two
//! avldrums kits for drums, dry or with reverb, cut into labelled clips.
//!
//! Three *render sets*, each built and resumed like a package (`OUT/parts/render-*.jsonl` and
//! `.done`): `render-procedural` (songs from [`procedural`]), `render-freedoom` (the `D_*`
//! MIDI lumps of the Freedoom WADs, [`wad`]) and `render-mma` (MMA grooves over generated
//! chord charts, [`mma`]); a fourth, `render-ambience`, renders [`ambience`]'s patches. Every song is split into parts ([`midi::split_parts`]: one per
//! channel and GM program), every part is rendered [`PRESETS_PER_PART`] times, each with a
//! preset of its label's GM family (render k < number of banks: the part's own program in bank
//! k where that bank has it; after that, and for drums, a preset or kit drawn by hash) or a
//! drum kit, dry or with rustysynth's reverb (chosen by a hash of the job). The split
//! group is the preset (font + program) or the kit family, so test presets and kits are never
//! heard in training.
//!
//! The opt-in *mix sets* (`render-procedural-mixes`, `render-freedoom-mixes`,
//! `render-mma-mixes`; `--package mixes-procedural` etc.) render the same songs whole: mix `k`
//! of a song is the sum of its parts' render `k` (the same presets and reverb as those stems,
//! the song's own balance of velocities and controllers), labelled `music`, one split group per
//! song. The `music` label otherwise has one training package (ufoai's soundtrack); these give
//! it the instrument labels' hundreds of songs, banks and styles.
//!
//! The opt-in *FreePats sets* (`render-procedural-freepats`, `render-freedoom-freepats`,
//! `render-mma-freepats`; `--package freepats`) play the same songs with a third bank, the
//! `freepats` GUS patches converted to a SoundFont by [`pat`]: [`FREEPATS_RENDERS_PER_PART`]
//! renders a part, never more than its label has presets.

pub mod ambience;
pub mod midi;
pub mod mma;
pub mod pat;
pub mod procedural;
pub mod sf3;
pub mod synth;
pub mod wad;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};
use rayon::prelude::*;

use self::midi::{Part, Song};
use self::synth::{Font, RenderSettings, Voice};
use super::manifest::{ClipRow, fnv1a};
pub use super::part::RenderStats;
use super::part::{self, BuildOptions, Drops, PackageReport, Progress};
use super::{clip, extract};
use crate::Result;

/// Labels the renderer produces.
pub const INSTRUMENT_LABELS: &[&str] = &["drums", "bass", "piano", "guitar", "strings", "winds"];

/// Renders of each part (different presets) with the General MIDI banks.
pub const PRESETS_PER_PART: usize = 3;
/// Renders of each part with the FreePats bank: its own program, then one drawn.
pub const FREEPATS_RENDERS_PER_PART: usize = 2;
/// The TiMidity configuration of the `freepats` package.
pub const FREEPATS_CONFIG: &str = "etc/timidity/freepats.cfg";
/// Procedural songs and their length, seconds.
pub const PROCEDURAL_SONGS: u64 = 60;
pub const PROCEDURAL_SECS: f64 = 40.0;
/// Seconds of each Freedoom song used (they loop; the start holds every part).
pub const FREEDOOM_SECS: f64 = 75.0;
/// MMA grooves used (of 1,993) and the bars of each chart.
pub const MMA_GROOVES: usize = 90;
pub const MMA_SECS: f64 = 32.0;
/// Active-stretch detection in a stem: level below its peak, frame, longest bridged gap.
pub const STEM_THRESHOLD_DB: f32 = -40.0;
pub const STEM_FRAME_SECS: f64 = 0.02;
pub const STEM_GAP_SECS: f64 = 1.0;
/// Shortest rendered clip kept, seconds.
pub const MIN_RENDERED_CLIP_SECS: f64 = 1.0;
/// Stems are scaled to this peak before writing.
pub const STEM_PEAK: f32 = 0.7;

/// Where a render set's songs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SongSource {
    Procedural,
    Freedoom,
    Mma,
    /// Not songs: [`ambience`]'s environmental patches.
    Ambience,
}

/// What a render set writes from each song.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renders {
    /// Each part on its own, labelled by its GM family.
    Stems,
    /// The song whole (every labelled part, each render's presets), labelled `music`.
    Mixes,
}

/// The banks a render set plays its parts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Banks {
    /// FluidR3_GM and MuseScore_General (melodic presets and kits) and the avldrums kits.
    GeneralMidi,
    /// The `freepats` GUS patches ([`pat`]): one more bank of recorded samples.
    Freepats,
}

impl Banks {
    /// How many times each part is rendered.
    pub fn renders_per_part(self) -> usize {
        match self {
            Banks::GeneralMidi => PRESETS_PER_PART,
            Banks::Freepats => FREEPATS_RENDERS_PER_PART,
        }
    }
}

/// A render set: built and resumed like a package.
#[derive(Clone, Copy, Debug)]
pub struct RenderSet {
    /// Part name (`parts/NAME.jsonl`, `audio/LABEL/NAME/`).
    pub name: &'static str,
    /// The `package` column of its rows: the MIDI source.
    pub package: &'static str,
    /// `--package X` selects the set.
    pub selected_by: &'static str,
    pub source: SongSource,
    pub licence: &'static str,
    /// The labels it renders (`--only` selects it by these).
    pub labels: &'static [&'static str],
    /// Built only when `--package` names it (not part of the default corpus).
    pub opt_in: bool,
    /// Stems or whole-song mixes.
    pub renders: Renders,
    /// The banks its parts are played with.
    pub banks: Banks,
}

const FONTS: &str = "FluidR3_GM: MIT; avldrums kits: CC-BY-SA-3.0";

/// The render sets, in build order.
pub const RENDER_SETS: &[RenderSet] = &[
    RenderSet {
        name: "render-procedural",
        package: "procedural",
        selected_by: "fluid-soundfont-gm",
        source: SongSource::Procedural,
        licence: FONTS,
        labels: INSTRUMENT_LABELS,
        opt_in: false,
        renders: Renders::Stems,
        banks: Banks::GeneralMidi,
    },
    RenderSet {
        name: "render-freedoom",
        package: "freedoom",
        selected_by: "freedoom",
        source: SongSource::Freedoom,
        licence: "music: BSD-3-Clause (Freedoom); FluidR3_GM: MIT; avldrums kits: CC-BY-SA-3.0",
        labels: INSTRUMENT_LABELS,
        opt_in: false,
        renders: Renders::Stems,
        banks: Banks::GeneralMidi,
    },
    RenderSet {
        name: "render-mma",
        package: "mma",
        selected_by: "mma",
        source: SongSource::Mma,
        licence: "grooves: GPL-2+ (MMA); FluidR3_GM: MIT; avldrums kits: CC-BY-SA-3.0",
        labels: INSTRUMENT_LABELS,
        opt_in: false,
        renders: Renders::Stems,
        banks: Banks::GeneralMidi,
    },
    RenderSet {
        name: "render-ambience",
        package: "procedural-ambience",
        selected_by: "ambience",
        source: SongSource::Ambience,
        licence: "generated by splitflow (no third-party material)",
        labels: ambience::AMBIENCE_LABELS,
        // Until a training run shows it helps on held-out packages (docs/training.md, run 18).
        opt_in: true,
        renders: Renders::Stems,
        banks: Banks::GeneralMidi,
    },
    RenderSet {
        name: "render-procedural-mixes",
        package: "procedural-mixes",
        selected_by: "mixes-procedural",
        source: SongSource::Procedural,
        licence: FONTS,
        labels: MIX_LABELS,
        opt_in: true,
        renders: Renders::Mixes,
        banks: Banks::GeneralMidi,
    },
    RenderSet {
        name: "render-freedoom-mixes",
        package: "freedoom-mixes",
        selected_by: "mixes-freedoom",
        source: SongSource::Freedoom,
        licence: "music: BSD-3-Clause (Freedoom); FluidR3_GM: MIT; avldrums kits: CC-BY-SA-3.0",
        labels: MIX_LABELS,
        opt_in: true,
        renders: Renders::Mixes,
        banks: Banks::GeneralMidi,
    },
    RenderSet {
        name: "render-mma-mixes",
        package: "mma-mixes",
        selected_by: "mixes-mma",
        source: SongSource::Mma,
        licence: "grooves: GPL-2+ (MMA); FluidR3_GM: MIT; avldrums kits: CC-BY-SA-3.0",
        labels: MIX_LABELS,
        opt_in: true,
        renders: Renders::Mixes,
        banks: Banks::GeneralMidi,
    },
    // The same songs played with the FreePats bank (opt-in: `--package freepats`).
    RenderSet {
        name: "render-procedural-freepats",
        package: "procedural",
        selected_by: "freepats",
        source: SongSource::Procedural,
        licence: FREEPATS_LICENCE,
        labels: INSTRUMENT_LABELS,
        opt_in: true,
        renders: Renders::Stems,
        banks: Banks::Freepats,
    },
    RenderSet {
        name: "render-freedoom-freepats",
        package: "freedoom",
        selected_by: "freepats",
        source: SongSource::Freedoom,
        licence: "music: BSD-3-Clause (Freedoom); FreePats: GPL-2+ with a composition exception",
        labels: INSTRUMENT_LABELS,
        opt_in: true,
        renders: Renders::Stems,
        banks: Banks::Freepats,
    },
    RenderSet {
        name: "render-mma-freepats",
        package: "mma",
        selected_by: "freepats",
        source: SongSource::Mma,
        licence: "grooves: GPL-2+ (MMA); FreePats: GPL-2+ with a composition exception",
        labels: INSTRUMENT_LABELS,
        opt_in: true,
        renders: Renders::Stems,
        banks: Banks::Freepats,
    },
];

const FREEPATS_LICENCE: &str = "FreePats: GPL-2+ with a composition exception";

/// The label of a mix set's clips.
pub const MIX_LABELS: &[&str] = &["music"];

/// The render sets selected by the options: without `--package` every set that is not
/// opt-in; with it, the sets it names by their `selected_by` package or by their own name.
pub fn selected_sets(opts: &BuildOptions) -> Vec<&'static RenderSet> {
    RENDER_SETS
        .iter()
        .filter(|s| {
            opts.only_labels
                .as_ref()
                .is_none_or(|l| l.iter().any(|x| s.labels.contains(&x.as_str())))
        })
        .filter(|s| match &opts.only_packages {
            Some(l) => l.iter().any(|y| y == s.selected_by || y == s.name),
            None => !s.opt_in,
        })
        .collect()
}

/// Files under a package source (extracted folder or `.deb`) whose package path ends with
/// one of `suffixes`, extracted into `tmp` when needed.
fn package_files(cache: &Path, package: &str, suffixes: &[&str], tmp: &Path) -> Result<Vec<(String, PathBuf)>> {
    let src = part::find_source(cache, package)
        .with_context(|| format!("{}: no {package}_*.deb (run `splitflow data fetch`)", cache.display()))?;
    let root = if src.is_dir() {
        src
    } else {
        let root = tmp.join(package);
        extract::extract_deb_matching(&src, &root, &|p| {
            suffixes.is_empty() || suffixes.iter().any(|s| p.to_ascii_lowercase().ends_with(s))
        })?;
        root
    };
    let mut out = Vec::new();
    if root.exists() {
        for f in extract::files_under(&root)? {
            let rel = f.strip_prefix(&root).unwrap_or(&f).to_string_lossy().replace('\\', "/");
            if suffixes.is_empty() || suffixes.iter().any(|s| rel.to_ascii_lowercase().ends_with(s)) {
                out.push((rel, f));
            }
        }
    }
    Ok(out)
}

/// The voices for each label: melodic presets of the GM family from each bank, drum kits from
/// each bank and the avldrums fonts.
struct Voices {
    by_label: BTreeMap<&'static str, Vec<Voice>>,
    /// The melodic banks, in the order renders use their own programs.
    banks: Vec<String>,
}

impl Voices {
    /// How many groups (programs or kit families) `label` has.
    fn groups(&self, label: &str) -> usize {
        let mut g: Vec<&str> = self
            .by_label
            .get(label)
            .map(|v| v.iter().map(|x| x.group.as_str()).collect())
            .unwrap_or_default();
        g.dedup();
        g.len()
    }

    /// A voice for `part`: render `k` of it, hash `h`. Render k < banks uses the part's own
    /// program in bank k (at bank number 0) when it has it; others draw a group (program or
    /// kit family) uniformly, then a preset in it.
    fn pick(&self, part: &Part, k: usize, h: u64) -> Option<&Voice> {
        let cands = self.by_label.get(part.label)?;
        if let Some(font) = self.banks.get(k)
            && let Some(p) = part.program
            && let Some(v) = cands
                .iter()
                .find(|v| v.font.name == *font && v.bank == 0 && v.patch == p)
        {
            return Some(v);
        }
        let mut groups: Vec<&str> = cands.iter().map(|v| v.group.as_str()).collect();
        groups.dedup();
        let g = *groups.get((h % groups.len().max(1) as u64) as usize)?;
        let in_group: Vec<&Voice> = cands.iter().filter(|v| v.group == g).collect();
        in_group.get(((h >> 20) % in_group.len() as u64) as usize).copied()
    }
}

/// The first SoundFont of `package` whose path ends with `suffix` (or its first one).
fn package_font(cache: &Path, package: &str, suffix: &str, tmp: &Path) -> Result<Font> {
    let files = package_files(cache, package, &[".sf2", ".sf3"], tmp)?;
    let (_, path) = files
        .iter()
        .find(|(rel, _)| rel.ends_with(suffix))
        .or(files.first())
        .with_context(|| format!("{package}: no .sf2 or .sf3 file"))?;
    Font::load(path)
}

/// The FreePats bank: the `freepats` package's GUS patches as a SoundFont ([`pat`]); patches
/// that cannot be read are counted and skipped.
fn freepats_font(cache: &Path, tmp: &Path, rep: &mut PackageReport) -> Result<Font> {
    let files = package_files(cache, "freepats", &[".pat", ".cfg"], tmp)?;
    let (_, cfg) = files
        .iter()
        .find(|(rel, _)| rel == FREEPATS_CONFIG)
        .with_context(|| format!("freepats: no {FREEPATS_CONFIG}"))?;
    let text = std::fs::read_to_string(cfg).with_context(|| format!("{}: cannot read", cfg.display()))?;
    let by_rel: BTreeMap<String, PathBuf> = files.into_iter().collect();
    let (bytes, skipped) = pat::config_to_sf2("freepats", &text, &by_rel)?;
    for why in &skipped {
        eprintln!("warning: freepats: {why} (skipped)");
    }
    count(rep, "freepats patch not readable", skipped.len());
    Font::from_sf2("freepats", &bytes, "freepats (converted from GUS patches)")
}

fn load_voices(cache: &Path, tmp: &Path, rep: &mut PackageReport, banks: Banks) -> Result<Voices> {
    let mut fonts = Vec::new();
    match banks {
        Banks::GeneralMidi => {
            fonts.push(package_font(cache, "fluid-soundfont-gm", "FluidR3_GM.sf2", tmp)?);
            match package_font(cache, "musescore-general-soundfont", "MuseScore_General_Full.sf3", tmp) {
                Ok(f) => fonts.push(f),
                Err(_) => count(rep, "MuseScore_General not in the cache", 1),
            }
        }
        Banks::Freepats => fonts.push(freepats_font(cache, tmp, rep)?),
    }
    let mut by_label: BTreeMap<&'static str, Vec<Voice>> = BTreeMap::new();
    let mut kits = Vec::new();
    for font in &fonts {
        for l in INSTRUMENT_LABELS {
            if *l != "drums" {
                by_label
                    .entry(l)
                    .or_default()
                    .extend(synth::melodic_voices(font, midi::label_programs(l)));
            }
        }
        kits.extend(synth::drum_kits(font));
    }
    if banks == Banks::GeneralMidi {
        match package_files(cache, "avldrums.lv2-soundfont", &[".sf2"], tmp) {
            Ok(files) => {
                for (_, f) in files {
                    kits.extend(synth::drum_kits(&Font::load(&f)?));
                }
            }
            Err(_) => *rep.drops.entry("avldrums kits not in the cache".into()).or_default() += 1,
        }
    }
    by_label.insert("drums", kits);
    for (l, v) in &mut by_label {
        if v.is_empty() {
            bail!("{}: the SoundFont has no preset for {l}", fonts[0].name);
        }
        v.sort_by(|a, b| {
            a.group
                .cmp(&b.group)
                .then(a.bank.cmp(&b.bank))
                .then(a.patch.cmp(&b.patch))
        });
    }
    Ok(Voices {
        by_label,
        banks: fonts.iter().map(|f| f.name.clone()).collect(),
    })
}

/// A song with the id its rows name as source file.
struct Source {
    id: String,
    song: Song,
}

fn count(rep: &mut PackageReport, why: &str, n: usize) {
    if n > 0 {
        *rep.drops.entry(why.to_string()).or_default() += n;
    }
}

fn songs(
    set: &RenderSet,
    opts: &BuildOptions,
    tmp: &Path,
    rep: &mut PackageReport,
    progress: &dyn Progress,
) -> Result<Vec<Source>> {
    match set.source {
        SongSource::Procedural => Ok((0..PROCEDURAL_SONGS)
            .map(|seed| {
                let (p, song) = procedural::generate(seed, PROCEDURAL_SECS);
                Source {
                    id: format!(
                        "procedural seed {seed} ({:.0} bpm, key {}{})",
                        p.bpm,
                        p.key,
                        if p.minor { "m" } else { "" }
                    ),
                    song,
                }
            })
            .collect()),
        SongSource::Freedoom => {
            let mut out = Vec::new();
            for (rel, f) in package_files(&opts.cache, "freedoom", &[".wad"], tmp)? {
                let bytes = std::fs::read(&f).with_context(|| format!("{}", f.display()))?;
                for lump in wad::lumps(&bytes, "D_", &rel)? {
                    let id = format!("{rel}!{}", lump.name);
                    match wad::music_format(&lump.data) {
                        wad::MusicFormat::Midi => match midi::parse_smf(&lump.data, &id) {
                            Ok(s) => out.push(Source {
                                id,
                                song: s.truncated(FREEDOOM_SECS),
                            }),
                            Err(e) => rep.errors.push(format!("{e:#}")),
                        },
                        wad::MusicFormat::Mus => count(rep, "MUS lump (not converted)", 1),
                        wad::MusicFormat::Other => count(rep, "lump is not music", 1),
                    }
                }
            }
            Ok(out)
        }
        SongSource::Mma => {
            let files = package_files(&opts.cache, "mma", &[], tmp)?;
            let root = files
                .iter()
                .find(|(rel, _)| rel == "usr/bin/mma")
                .and_then(|(_, f)| f.parent()?.parent()?.parent().map(Path::to_path_buf))
                .context("mma: no usr/bin/mma in the package")?;
            progress.stage(set.name, "mma -G (groove database)");
            let mma = match mma::Mma::prepare(&root) {
                Ok(m) => m,
                Err(e) => {
                    // A warning, not an error: the other sets still make a complete corpus.
                    eprintln!("warning: {}: mma skipped: {e:#}", set.name);
                    count(rep, "mma skipped (python3 or MMA failed)", 1);
                    return Ok(Vec::new());
                }
            };
            let mut grooves = mma.grooves()?;
            grooves.sort_by_key(|g| fnv1a(g));
            grooves.truncate(MMA_GROOVES);
            grooves.sort();
            progress.stage(set.name, &format!("mma: {} grooves to MIDI", grooves.len()));
            let work = tmp.join("mma-charts");
            std::fs::create_dir_all(&work).with_context(|| format!("{}", work.display()))?;
            let got: Vec<(String, Result<Song>)> = grooves
                .par_iter()
                .map(|g| {
                    let plan = procedural::plan(fnv1a(g), MMA_SECS);
                    let id = format!("mma groove {g} ({:.0} bpm)", plan.bpm);
                    let song = mma.render(g, &plan, &work).and_then(|b| midi::parse_smf(&b, &id));
                    (id, song)
                })
                .collect();
            let mut out = Vec::new();
            for (id, s) in got {
                match s {
                    Ok(song) => out.push(Source { id, song }),
                    Err(_) => count(rep, "mma groove failed", 1),
                }
            }
            Ok(out)
        }
        SongSource::Ambience => Ok(Vec::new()),
    }
}

/// One stem to render.
struct Job<'a> {
    src: &'a Source,
    part: Part,
    voice: &'a Voice,
    reverb: Option<u8>,
    /// Which of the part's renders this is (0 .. the set's [`Banks::renders_per_part`]).
    k: usize,
}

/// The stems of `sources`: every labelled part, `renders` renders each (with `cap`, no more
/// than its label has groups).
fn stem_jobs<'a>(
    sources: &'a [Source],
    voices: &'a Voices,
    rep: &mut PackageReport,
    renders: usize,
    cap: bool,
) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for src in sources {
        let (parts, unlabelled) = midi::split_parts(&src.song);
        count(rep, "notes of unlabelled programs", unlabelled);
        for part in parts {
            let n = if cap {
                renders.min(voices.groups(part.label))
            } else {
                renders
            };
            for k in 0..n {
                let h = fnv1a(&format!("{}|{}|{:?}|{k}", src.id, part.channel, part.program));
                let Some(voice) = voices.pick(&part, k, h) else {
                    count(rep, "no preset for the label", 1);
                    continue;
                };
                let reverb = (h >> 40) % 2 == 1;
                jobs.push(Job {
                    src,
                    part: part.clone(),
                    voice,
                    reverb: reverb.then_some(40 + ((h >> 44) % 88) as u8),
                    k,
                });
            }
        }
    }
    jobs
}

/// Builds one render set (see the module documentation) into `opts.out`.
pub fn build_set(set: &RenderSet, opts: &BuildOptions, progress: &dyn Progress) -> Result<PackageReport> {
    if set.source == SongSource::Ambience {
        return build_ambience(set, opts, progress);
    }
    let started = Instant::now();
    let tmp = part::staging_dir(&opts.out, set.name)?;
    let mut rep = PackageReport {
        package: set.name.to_string(),
        ..Default::default()
    };
    progress.stage(set.name, "loading SoundFonts");
    let voices = load_voices(&opts.cache, tmp.path(), &mut rep, set.banks)?;
    let pool = part::worker_pool(opts.jobs)?;
    progress.stage(set.name, "reading songs");
    let sources = pool.install(|| songs(set, opts, tmp.path(), &mut rep, progress))?;
    let renders = set.banks.renders_per_part();
    // The General MIDI sets keep three renders whatever their presets (the corpus the bundled
    // models were trained on); FreePats, with one kit, renders drum parts once.
    let cap = set.banks == Banks::Freepats;
    let jobs = stem_jobs(&sources, &voices, &mut rep, renders, cap);
    let mixes = match set.renders {
        Renders::Stems => Vec::new(),
        Renders::Mixes => mix_jobs(&sources, &jobs, renders),
    };
    rep.files = match set.renders {
        Renders::Stems => jobs.len(),
        Renders::Mixes => mixes.len(),
    };
    progress.start(set.name, rep.files);
    let drops = Drops::default();
    let stats = Mutex::new(RenderStats {
        songs: sources.len(),
        stems: rep.files,
        ..Default::default()
    });
    let results = match set.renders {
        Renders::Stems => run_jobs(&pool, &jobs, progress, |j| {
            render_job(set, j, opts, &drops, &stats).with_context(|| format!("{}: {}", set.name, j.src.id))
        }),
        Renders::Mixes => run_jobs(&pool, &mixes, progress, |m| {
            render_mix(set, m, opts, &drops, &stats).with_context(|| format!("{}: {}", set.name, m.src.id))
        }),
    };
    rep.render = Some(stats.into_inner().unwrap_or_else(|e| e.into_inner()));
    part::finish_part(&opts.out, set.name, results, drops, rep, started)
}

/// Runs `f` over `jobs` on `pool`, reporting each error and each finished job to `progress`.
fn run_jobs<T: Sync>(
    pool: &rayon::ThreadPool,
    jobs: &[T],
    progress: &dyn Progress,
    f: impl Fn(&T) -> Result<Vec<ClipRow>> + Sync,
) -> Vec<Result<Vec<ClipRow>>> {
    pool.install(|| {
        jobs.par_iter()
            .map(|j| {
                let r = f(j);
                if let Err(e) = &r {
                    progress.error(&format!("{e:#}"));
                }
                progress.file_done();
                r
            })
            .collect()
    })
}

/// Renders one stem's signal (unscaled), adding its synthesis time to `stats`.
fn render_stem(j: &Job, opts: &BuildOptions, stats: &Mutex<RenderStats>) -> Result<Vec<f32>> {
    let t0 = Instant::now();
    let settings = RenderSettings {
        rate: opts.rate,
        reverb: j.reverb,
        tail_secs: if j.reverb.is_some() { 2.5 } else { 1.0 },
    };
    let x = synth::render_part(&j.part.events, j.voice, &settings)?;
    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
    s.synth_cpu_s += t0.elapsed().as_secs_f64();
    s.rendered_s += x.len() as f64 / f64::from(opts.rate);
    Ok(x)
}

fn render_job(
    set: &RenderSet,
    j: &Job,
    opts: &BuildOptions,
    drops: &Drops,
    stats: &Mutex<RenderStats>,
) -> Result<Vec<ClipRow>> {
    let x = render_stem(j, opts, stats)?;
    let label = j.part.label;
    let program = j
        .part
        .program
        .map_or_else(|| "drums".to_string(), |p| format!("prog{p}"));
    let fx = match j.reverb {
        Some(s) => format!("reverb {s}"),
        None => "dry".into(),
    };
    let source_file = format!(
        "{} ch{} {program} -> {}.sf2 {}:{} {} {fx}",
        j.src.id,
        j.part.channel + 1,
        j.voice.font.name,
        j.voice.bank,
        j.voice.patch,
        j.voice.name
    );
    write_stem(set, label, &source_file, &j.voice.group, x, opts, drops)
}

/// One whole-song mix: render `k` of every labelled part of `src`.
struct Mix<'a> {
    src: &'a Source,
    k: usize,
    parts: Vec<&'a Job<'a>>,
}

/// The mixes of a mix set: for each song (in order) and render `k`, its stems of render `k`.
fn mix_jobs<'a>(sources: &'a [Source], jobs: &'a [Job<'a>], renders: usize) -> Vec<Mix<'a>> {
    let mut out = Vec::new();
    for src in sources {
        for k in 0..renders {
            let parts: Vec<&Job> = jobs.iter().filter(|j| std::ptr::eq(j.src, src) && j.k == k).collect();
            if !parts.is_empty() {
                out.push(Mix { src, k, parts });
            }
        }
    }
    out
}

/// Renders a mix (the sum of its stems, unscaled, so the song keeps its own balance) and
/// writes it as `music` clips grouped by song.
fn render_mix(
    set: &RenderSet,
    m: &Mix,
    opts: &BuildOptions,
    drops: &Drops,
    stats: &Mutex<RenderStats>,
) -> Result<Vec<ClipRow>> {
    let mut mix: Vec<f32> = Vec::new();
    for j in &m.parts {
        let x = render_stem(j, opts, stats)?;
        if x.len() > mix.len() {
            mix.resize(x.len(), 0.0);
        }
        mix.iter_mut().zip(&x).for_each(|(a, v)| *a += v);
    }
    let source_file = format!("{} mix {} ({} parts)", m.src.id, m.k, m.parts.len());
    write_stem(
        set,
        MIX_LABELS[0],
        &source_file,
        &format!("mix {}", m.src.id),
        mix,
        opts,
        drops,
    )
}

/// Scales a rendered stem to [`STEM_PEAK`], cuts its active stretches into clips and writes
/// them under `audio/LABEL/SET/`: the rows of the clips (none for a silent stem).
fn write_stem(
    set: &RenderSet,
    label: &str,
    source_file: &str,
    group: &str,
    mut x: Vec<f32>,
    opts: &BuildOptions,
    drops: &Drops,
) -> Result<Vec<ClipRow>> {
    let count_drop = |why: &str| part::count_drop(drops, why);
    let p = clip::peak(&x);
    if p < 1e-5 {
        count_drop("silent stem");
        return Ok(Vec::new());
    }
    let g = STEM_PEAK / p;
    x.iter_mut().for_each(|v| *v *= g);
    let rate = f64::from(opts.rate);
    let thr = STEM_PEAK * 10f32.powf(STEM_THRESHOLD_DB / 20.0);
    let frame = (STEM_FRAME_SECS * rate).round() as usize;
    let segments = clip::active_segments(
        &x,
        thr,
        frame,
        (STEM_GAP_SECS / STEM_FRAME_SECS).round() as usize,
        (part::TRIM_MARGIN_SECS * rate) as usize,
    );
    let stem = part::clip_stem(source_file);
    let dir = opts.out.join("audio").join(label).join(set.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let clip_len = (opts.clip_secs * rate).round() as usize;
    let min_len = (MIN_RENDERED_CLIP_SECS * rate).round() as usize;
    let mut rows = Vec::new();
    let mut n = 0;
    for seg in segments {
        for c in clip::cut(&x[seg], clip_len, min_len) {
            if clip::peak(c) < thr {
                count_drop("silent clip");
                continue;
            }
            let name = format!("{stem}-{n:03}.wav");
            n += 1;
            crate::audio::encode::write_mono16(&dir.join(&name), c, opts.rate)?;
            rows.push(ClipRow {
                path: format!("audio/{label}/{}/{name}", set.name),
                label: label.to_string(),
                duration: c.len() as f64 / rate,
                rate: opts.rate,
                package: set.package.to_string(),
                source_file: source_file.to_string(),
                group: group.to_string(),
                licence: set.licence.to_string(),
                split: String::new(),
            });
        }
    }
    if rows.is_empty() {
        count_drop("stem without a clip of 1 s");
    }
    Ok(rows)
}

/// Builds the `render-ambience` set: [`ambience::PATCHES_PER_LABEL`] patches of each of its
/// labels, each its own group.
fn build_ambience(set: &RenderSet, opts: &BuildOptions, progress: &dyn Progress) -> Result<PackageReport> {
    build_patches(set, opts, progress, ambience::PATCHES_PER_LABEL, ambience::PATCH_SECS)
}

/// [`build_ambience`] with `patches` per label of `secs` each.
fn build_patches(
    set: &RenderSet,
    opts: &BuildOptions,
    progress: &dyn Progress,
    patches: u64,
    secs: f64,
) -> Result<PackageReport> {
    let started = Instant::now();
    let jobs: Vec<(&str, u64)> = set
        .labels
        .iter()
        .filter(|l| opts.only_labels.as_ref().is_none_or(|o| o.iter().any(|x| x == *l)))
        .flat_map(|l| (0..patches).map(move |s| (*l, s)))
        .collect();
    let mut rep = PackageReport {
        package: set.name.to_string(),
        files: jobs.len(),
        ..Default::default()
    };
    let pool = part::worker_pool(opts.jobs)?;
    progress.start(set.name, jobs.len());
    let drops = Drops::default();
    let stats = Mutex::new(RenderStats {
        songs: jobs.len(),
        stems: jobs.len(),
        ..Default::default()
    });
    let results = run_jobs(&pool, &jobs, progress, |&(label, seed)| {
        let t0 = Instant::now();
        ambience::render(label, seed, secs, opts.rate)
            .with_context(|| format!("{}: no model for {label}", set.name))
            .and_then(|p| {
                {
                    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                    s.synth_cpu_s += t0.elapsed().as_secs_f64();
                    s.rendered_s += p.samples.len() as f64 / f64::from(opts.rate);
                }
                let group = format!("ambience {label} {seed}");
                write_stem(set, label, &p.description, &group, p.samples, opts, &drops)
            })
    });
    rep.render = Some(stats.into_inner().unwrap_or_else(|e| e.into_inner()));
    part::finish_part(&opts.out, set.name, results, drops, rep, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::part::NoProgress;

    fn build(out: &Path, jobs: usize) -> (Vec<ClipRow>, Vec<(String, Vec<u8>)>) {
        let opts = BuildOptions {
            cache: out.join("no-cache"),
            out: out.to_path_buf(),
            rate: 8000,
            clip_secs: 2.0,
            only_labels: None,
            only_packages: Some(vec!["ambience".into()]),
            jobs,
        };
        std::fs::create_dir_all(out.join("parts")).expect("parts folder");
        let set = selected_sets(&opts);
        assert_eq!(set.len(), 1, "--package ambience selects the one set");
        let rep = build_patches(set[0], &opts, &NoProgress, 2, 5.0).expect("builds");
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert_eq!(rep.files, 8, "2 patches x 4 labels");
        let rows = crate::data::manifest::read_jsonl(&out.join("parts/render-ambience.jsonl")).expect("part");
        let audio = rows
            .iter()
            .map(|r| (r.path.clone(), std::fs::read(out.join(&r.path)).expect("clip written")))
            .collect();
        (rows, audio)
    }

    #[test]
    fn freepats_sets_are_opt_in_and_selected_by_the_package_or_their_name() {
        let opts = |p: Option<&[&str]>| BuildOptions {
            cache: PathBuf::new(),
            out: PathBuf::new(),
            rate: 22050,
            clip_secs: 10.0,
            only_labels: None,
            only_packages: p.map(|l| l.iter().map(|s| s.to_string()).collect()),
            jobs: 1,
        };
        let names = |o: &BuildOptions| selected_sets(o).iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(&opts(None)),
            ["render-procedural", "render-freedoom", "render-mma"]
        );
        assert_eq!(
            names(&opts(Some(&["freepats"]))),
            [
                "render-procedural-freepats",
                "render-freedoom-freepats",
                "render-mma-freepats"
            ]
        );
        assert_eq!(
            names(&opts(Some(&["render-mma-freepats", "mma"]))),
            ["render-mma", "render-mma-freepats"]
        );
        for s in RENDER_SETS {
            assert_eq!(s.banks == Banks::Freepats, s.name.ends_with("-freepats"), "{}", s.name);
        }
        assert_eq!(Banks::GeneralMidi.renders_per_part(), PRESETS_PER_PART);
    }

    #[test]
    fn ambience_set_is_the_same_whatever_the_job_count_and_one_group_per_patch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rows1, audio1) = build(&dir.path().join("a"), 1);
        let (rows2, audio2) = build(&dir.path().join("b"), 2);
        assert_eq!(rows1, rows2);
        assert_eq!(audio1, audio2);
        let mut groups = BTreeMap::<&str, std::collections::BTreeSet<&str>>::new();
        for r in &rows1 {
            assert!(
                r.path.starts_with(&format!("audio/{}/render-ambience/", r.label)),
                "{}",
                r.path
            );
            assert_eq!(r.package, "procedural-ambience");
            assert!(
                r.duration >= MIN_RENDERED_CLIP_SECS && r.duration <= 2.0 + 1e-9,
                "{}",
                r.duration
            );
            assert!(
                r.source_file.starts_with(&format!("ambience {} patch ", r.label)),
                "{}",
                r.source_file
            );
            groups.entry(r.label.as_str()).or_default().insert(r.group.as_str());
        }
        for l in ambience::AMBIENCE_LABELS {
            assert_eq!(groups.get(l).map(|g| g.len()), Some(2), "{l}: {groups:?}");
        }
        // A label filter outside the set's labels leaves it out, and so does a build that
        // does not name it.
        let all = BuildOptions {
            cache: dir.path().into(),
            out: dir.path().into(),
            rate: 8000,
            clip_secs: 2.0,
            only_labels: None,
            only_packages: None,
            jobs: 1,
        };
        let names: Vec<&str> = selected_sets(&all).iter().map(|s| s.name).collect();
        assert_eq!(names, ["render-procedural", "render-freedoom", "render-mma"]);
        let opts = BuildOptions {
            cache: dir.path().into(),
            out: dir.path().into(),
            rate: 8000,
            clip_secs: 2.0,
            only_labels: Some(vec!["speech".into()]),
            only_packages: Some(vec!["ambience".into()]),
            jobs: 1,
        };
        assert!(selected_sets(&opts).is_empty());
    }
}
