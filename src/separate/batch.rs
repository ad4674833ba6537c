//! Batches: expanding the inputs (files, folders, recursively), naming outputs from a
//! template, and deciding per file whether to run, skip or fail before any work is done.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::file::FileJob;

/// File extensions picked up when scanning folders. Files named explicitly are tried
/// whatever their extension.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "m4a", "mp4", "aac", "alac", "aif", "aiff", "aifc", "caf", "mka",
    "mkv", "webm",
];

/// Default output file name template, relative to the output folder.
pub const DEFAULT_TEMPLATE: &str = "{track}/{query}.{ext}";

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expands inputs into files. Folders contribute their audio files (sorted; sub-folders only
/// with `recursive`). Returns the files and, separately, one error per input that yielded
/// nothing (missing path, folder without audio).
pub fn collect_inputs(inputs: &[PathBuf], recursive: bool) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        match std::fs::metadata(input) {
            Err(e) => errors.push((input.clone(), format!("{}: cannot read: {e}", input.display()))),
            Ok(m) if m.is_dir() => {
                let before = files.len();
                if let Err(e) = scan_dir(input, recursive, &mut files) {
                    errors.push((input.clone(), format!("{}: cannot list folder: {e}", input.display())));
                } else if files.len() == before {
                    let hint = if recursive {
                        ""
                    } else {
                        " (use --recursive for sub-folders)"
                    };
                    errors.push((
                        input.clone(),
                        format!("{}: folder contains no audio files{hint}", input.display()),
                    ));
                }
            }
            Ok(_) => files.push(input.clone()),
        }
    }
    (files, errors)
}

fn scan_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                scan_dir(&path, recursive, out)?;
            }
        } else if is_audio(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands an output template for one input. Placeholders: `{track}` (input file name without
/// extension), `{parent}` (name of the input's folder), `{query}` (the query; for the residual
/// `no_QUERY`, or `rest` after several queries: see [`residual_name`]), `{model}`, `{ext}` (the output format's extension, `wav` or `flac`).
pub fn expand_template(template: &str, input: &Path, query: &str, model: &str, ext: &str) -> PathBuf {
    let stem = input
        .file_stem()
        .map_or_else(|| "audio".into(), |s| s.to_string_lossy());
    let parent = input
        .canonicalize()
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    PathBuf::from(
        template
            .replace("{track}", &stem)
            .replace("{parent}", &parent)
            .replace("{query}", query)
            .replace("{model}", model)
            .replace("{ext}", ext),
    )
}

/// The placeholders [`expand_template`] knows.
pub const PLACEHOLDERS: &[&str] = &["{track}", "{parent}", "{query}", "{model}", "{ext}"];

/// Checks that a template names something usable: it has `{track}`, names a file, uses only
/// known placeholders (an unknown one would be written literally), and ends in `.{ext}`,
/// `.wav` or `.flac` (the formats outputs are written in: `{track}.mp3` would have held WAV
/// bytes under an MP3 name).
pub fn validate_template(template: &str) -> Result<(), String> {
    if !template.contains("{track}") {
        return Err(format!(
            "--filename '{template}' must contain {{track}}, or every input would write the same file"
        ));
    }
    if template.ends_with('/') || template.is_empty() {
        return Err(format!("--filename '{template}' must name a file"));
    }
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        let Some(j) = tail.find('}') else {
            return Err(format!("--filename '{template}': unclosed '{{'"));
        };
        let p = &tail[..=j];
        if !PLACEHOLDERS.contains(&p) {
            return Err(format!(
                "--filename '{template}': unknown placeholder {p} (known: {})",
                PLACEHOLDERS.join(" ")
            ));
        }
        rest = &tail[j + 1..];
    }
    let writable = template.ends_with(".{ext}") || crate::audio::FileFormat::of(Path::new(template)).is_some();
    if !writable {
        return Err(format!(
            "--filename '{template}' must end in .{{ext}}, .wav or .flac (the formats splitflow writes)"
        ));
    }
    Ok(())
}

/// How outputs are named and what happens to existing ones.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub out_dir: PathBuf,
    pub template: String,
    /// What `{ext}` expands to (`--format`).
    pub ext: String,
    pub residual: bool,
    pub skip_existing: bool,
    pub overwrite: bool,
}

/// The decision for one input.
#[derive(Clone, Debug)]
pub enum Planned {
    Run(FileJob),
    /// All outputs exist and `--skip-existing` was given (with some of them existing, the item
    /// runs with those in [`FileJob::keep`]).
    Skip {
        input: PathBuf,
        outputs: Vec<PathBuf>,
    },
    Fail {
        input: PathBuf,
        error: String,
    },
}

impl Planned {
    /// The input it is about.
    pub fn input(&self) -> &Path {
        match self {
            Planned::Run(job) => &job.input,
            Planned::Skip { input, .. } | Planned::Fail { input, .. } => input,
        }
    }
}

/// Canonical form of a path that may not exist yet (nor its parents): made absolute, then
/// walked component by component: `.` is dropped, every prefix that exists is canonicalised
/// (symbolic links resolved) before a `..` steps up from it, and `..` below a missing folder
/// removes that name. So `in/new/../a.wav` is `in/a.wav` whether or not `in/new` exists.
pub fn normalise(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut cur = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => cur.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if let Ok(real) = cur.canonicalize() {
                    cur = real;
                }
                cur.pop();
            }
            Component::Normal(name) => {
                cur.push(name);
                if let Ok(real) = cur.canonicalize() {
                    cur = real;
                }
            }
        }
    }
    cur
}

/// `{query}` of the residual: `no_QUERY` for one query, `rest` (the mixture minus every
/// target) for several.
pub fn residual_name(queries: &[String]) -> String {
    match queries {
        [one] => format!("no_{one}"),
        _ => "rest".to_string(),
    }
}

/// Plans a batch: output names (one target per entry of `queries`, their `{query}` names, and
/// the residual), outputs outside the output folder (a `--filename` with `..` or an absolute
/// path), collisions between the outputs of one input and between inputs, outputs that would
/// overwrite an input, and existing outputs. Paths are compared in [`normalise`]d form, before
/// anything is written.
pub fn plan(files: &[PathBuf], queries: &[String], model: &str, opts: &BatchOptions) -> Vec<Planned> {
    let inputs: HashMap<PathBuf, &PathBuf> = files.iter().map(|f| (normalise(f), f)).collect();
    let root = normalise(&opts.out_dir);
    let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
    let rest = residual_name(queries);
    files
        .iter()
        .map(|input| {
            let name = |q: &str| {
                opts.out_dir
                    .join(expand_template(&opts.template, input, q, model, &opts.ext))
            };
            let targets: Vec<PathBuf> = queries.iter().map(|q| name(q)).collect();
            let residual = opts.residual.then(|| name(&rest));
            let outputs: Vec<PathBuf> = targets.iter().cloned().chain(residual.clone()).collect();
            // Each output's normalised path, computed once (it walks the file system).
            let keys: Vec<PathBuf> = outputs.iter().map(|o| normalise(o)).collect();
            for (i, key) in keys.iter().enumerate() {
                if let Some(j) = keys[..i].iter().position(|k| k == key) {
                    let what = |k: usize| {
                        queries
                            .get(k)
                            .map_or_else(|| "the residual".to_string(), |q| format!("'{q}'"))
                    };
                    return Planned::Fail {
                        input: input.clone(),
                        error: format!(
                            "{}: {} and {} would both be {} (add {{query}} to --filename)",
                            input.display(),
                            what(j),
                            what(i),
                            outputs[i].display()
                        ),
                    };
                }
            }
            for (out, key) in outputs.iter().zip(&keys) {
                if !key.starts_with(&root) || *key == root {
                    return Planned::Fail {
                        input: input.clone(),
                        error: format!(
                            "{}: output {} is outside the output folder {} (--filename must stay inside -o)",
                            input.display(),
                            key.display(),
                            opts.out_dir.display()
                        ),
                    };
                }
                if let Some(src) = inputs.get(key) {
                    return Planned::Fail {
                        input: input.clone(),
                        error: format!(
                            "{}: output {} would overwrite input {}",
                            input.display(),
                            out.display(),
                            src.display()
                        ),
                    };
                }
                if let Some(other) = claimed.get(key) {
                    return Planned::Fail {
                        input: input.clone(),
                        error: format!(
                            "{}: output {} is also the output of {} (add {{parent}} to --filename)",
                            input.display(),
                            out.display(),
                            other.display()
                        ),
                    };
                }
            }
            for key in keys {
                claimed.insert(key, input.clone());
            }
            let existing: Vec<&PathBuf> = outputs.iter().filter(|p| p.exists()).collect();
            if !existing.is_empty() && !opts.overwrite {
                if opts.skip_existing && existing.len() == outputs.len() {
                    return Planned::Skip {
                        input: input.clone(),
                        outputs,
                    };
                }
                if opts.skip_existing {
                    // Half done (an interrupted run): write only what is missing.
                    let keep = existing.into_iter().cloned().collect();
                    return Planned::Run(FileJob {
                        keep,
                        ..FileJob::new(input.clone(), targets, residual)
                    });
                }
                return Planned::Fail {
                    input: input.clone(),
                    error: format!(
                        "{}: output {} exists (use --overwrite or --skip-existing)",
                        input.display(),
                        existing[0].display()
                    ),
                };
            }
            Planned::Run(FileJob::new(input.clone(), targets, residual))
        })
        .collect()
}

/// The folders that writing `job`'s outputs would create (they do not exist yet): after the
/// batch, those that stayed empty (items that failed) are removed.
pub fn folders_to_create(job: &FileJob) -> Vec<PathBuf> {
    job.outputs()
        .flat_map(|o| {
            o.ancestors()
                .skip(1)
                .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        })
        .map(Path::to_path_buf)
        .collect()
}

/// Removes those of `folders` ([`folders_to_create`] of every item) that are empty, deepest
/// first so a parent comes after its children; after the whole batch, so no other item is
/// writing into them.
pub fn remove_empty_folders(mut folders: Vec<PathBuf>) {
    folders.sort_by(|a, b| b.components().count().cmp(&a.components().count()).then(a.cmp(b)));
    folders.dedup();
    for d in folders {
        let _ = std::fs::remove_dir(d);
    }
}
