//! Getting a package's audio out: `.deb` → a staging folder tree → labelled members.
//!
//! A `.deb` is read with `dpkg-deb --fsys-tarfile` piped into the `tar` crate, and only the
//! members worth it ([`rules::wants_member`]: audio files and the named zip archives) are
//! written to the staging folder, so the 0ad and SuperTuxKart packages never land on disk whole.
//! The rest of the pipeline sees a plain folder tree, which is what the tests build by hand.
//! Zip archives (`.zip`, `.pk3`) in the tree are opened with the `zip` crate and only their
//! labelled audio members are extracted.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::rules::{self, Decision};
use crate::Result;

/// A labelled audio file of a package, ready to decode.
#[derive(Clone, Debug)]
pub struct Member {
    /// Path inside the package (`ARCHIVE!MEMBER` for archive members).
    pub path: String,
    /// Where it is on disk now.
    pub file: PathBuf,
    pub label: &'static str,
    pub group: String,
}

/// Members found in a tree, and what was dropped (reason → count).
#[derive(Debug, Default)]
pub struct Collected {
    pub members: Vec<Member>,
    pub drops: BTreeMap<&'static str, usize>,
    /// One-line errors (unreadable archives).
    pub errors: Vec<String>,
}

/// Extracts the wanted members of `deb` (see the module documentation) under `dest`.
pub fn extract_deb(deb: &Path, package: &str, dest: &Path) -> Result<()> {
    extract_deb_matching(deb, dest, &|path| rules::wants_member(package, path))
}

/// Extracts the members of `deb` for which `wants(path)` holds (paths without the leading
/// `./`) under `dest`.
pub fn extract_deb_matching(deb: &Path, dest: &Path, wants: &dyn Fn(&str) -> bool) -> Result<()> {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{}: cannot run dpkg-deb", deb.display()))?;
    let stdout = child.stdout.take().context("dpkg-deb: no stdout")?;
    let mut archive = tar::Archive::new(stdout);
    let res = unpack_matching(&mut archive, dest, wants);
    // Drain so that dpkg-deb never blocks on a full pipe, then check how it ended.
    drop(archive);
    let out = child.wait_with_output()?;
    res.with_context(|| format!("{}", deb.display()))?;
    if !out.status.success() {
        bail!(
            "{}: dpkg-deb failed: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Extracts the wanted members of an npm tarball (`.tgz`: gzip over tar, members under
/// `package/`) under `dest`.
pub fn extract_tgz(tgz: &Path, package: &str, dest: &Path) -> Result<()> {
    let f = File::open(tgz).with_context(|| format!("{}: cannot open", tgz.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)));
    unpack_matching(&mut archive, dest, &|path| rules::wants_member(package, path))
        .with_context(|| format!("{}: not a readable npm tarball", tgz.display()))
}

/// Unpacks the regular files of a tar stream for which `wants(path)` holds (paths without the
/// leading `./`; any path with a `..` component is skipped) under `dest`.
fn unpack_matching<R: std::io::Read>(
    archive: &mut tar::Archive<R>,
    dest: &Path,
    wants: &dyn Fn(&str) -> bool,
) -> Result<()> {
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        if path.split('/').any(|c| c == "..") || !wants(&path) {
            continue;
        }
        let out = dest.join(&path);
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        entry.unpack(&out).with_context(|| path.clone())?;
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Every file under `root`, sorted by path.
pub fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    walk(root, &mut v).with_context(|| format!("{}", root.display()))?;
    Ok(v)
}

fn rel_path(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Labels the files of a package tree at `root`; archive members that get a label are
/// extracted into `staging` (which must exist).
pub fn collect(package: &str, root: &Path, staging: &Path) -> Result<Collected> {
    let mut files = Vec::new();
    walk(root, &mut files).with_context(|| format!("{}", root.display()))?;
    let mut c = Collected::default();
    for file in files {
        let path = rel_path(root, &file);
        let e = rules::ext(&path);
        if rules::ARCHIVE_EXTS.contains(&e.as_str()) {
            if rules::wants_archive(package, &path) {
                let got = if e == "cat" {
                    collect_cat(package, &path, &file, staging, &mut c)
                } else {
                    collect_zip(package, &path, &file, staging, &mut c)
                };
                if let Err(err) = got {
                    c.errors.push(format!("{err:#}"));
                }
            } else {
                *c.drops.entry("archive not used").or_default() += 1;
            }
            continue;
        }
        match rules::classify(package, &path) {
            Decision::Keep { label, group } => c.members.push(Member {
                path,
                file,
                label,
                group,
            }),
            Decision::Drop(why) => *c.drops.entry(why).or_default() += 1,
        }
    }
    Ok(c)
}

/// The WAV entries of an OpenTTD sound catalogue (`.cat`): a table of `(offset | 0x8000_0000,
/// size)` pairs (u32 little-endian; the first offset / 8 is the entry count), and at each
/// offset a name-length byte, the name (a description with author and licence), then `size`
/// bytes of RIFF/WAVE. Entry `i` is member `NN.wav` (two digits).
pub fn cat_entries(bytes: &[u8]) -> Result<Vec<(String, &[u8])>> {
    let word = |at: usize| -> Result<usize> {
        let b = bytes.get(at..at + 4).context("truncated table")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = (word(0)? & 0x7fff_ffff) / 8;
    anyhow::ensure!(n > 0 && n * 8 <= bytes.len(), "not a sound catalogue");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (at, size) = (word(i * 8)? & 0x7fff_ffff, word(i * 8 + 4)?);
        if size == 0 {
            continue;
        }
        let name_len = usize::from(
            *bytes
                .get(at)
                .with_context(|| format!("entry {i}: offset {at} past the end"))?,
        );
        let start = at + 1 + name_len;
        let data = bytes
            .get(start..start + size)
            .with_context(|| format!("entry {i}: {size} bytes at {start} past the end"))?;
        out.push((format!("{i:02}.wav"), data));
    }
    Ok(out)
}

fn collect_cat(package: &str, path: &str, file: &Path, staging: &Path, c: &mut Collected) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("{path}: cannot read"))?;
    let entries = cat_entries(&bytes).with_context(|| format!("{path}: not an OpenTTD sound catalogue"))?;
    for (i, (name, data)) in entries.into_iter().enumerate() {
        let out = staging.join(format!("cat{i:06}.wav"));
        add_member(package, format!("{path}!{name}"), out, c, |out| {
            std::fs::write(out, data).with_context(|| format!("{}", out.display()))
        })?;
    }
    Ok(())
}

/// Labels the archive member `full` and, when it is kept, writes it to `out` with `write` and
/// adds it to `c`; a dropped member only counts its reason.
fn add_member(
    package: &str,
    full: String,
    out: PathBuf,
    c: &mut Collected,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    match rules::classify(package, &full) {
        Decision::Keep { label, group } => {
            write(&out)?;
            c.members.push(Member {
                path: full,
                file: out,
                label,
                group,
            });
        }
        Decision::Drop(why) => *c.drops.entry(why).or_default() += 1,
    }
    Ok(())
}

fn collect_zip(package: &str, path: &str, file: &Path, staging: &Path, c: &mut Collected) -> Result<()> {
    let f = File::open(file).with_context(|| format!("{path}: cannot open"))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).with_context(|| format!("{path}: not a zip"))?;
    for i in 0..zip.len() {
        let mut m = zip.by_index(i).with_context(|| format!("{path}: member {i}"))?;
        if !m.is_file() {
            continue;
        }
        let inner = m.name().with_context(|| format!("{path}: member {i}"))?.to_string();
        let e = rules::ext(&inner);
        if !rules::AUDIO_EXTS.contains(&e.as_str()) && e != "opus" {
            continue;
        }
        let full = format!("{path}!{inner}");
        let out = staging.join(format!("zip{i:06}.{e}"));
        add_member(package, full.clone(), out, c, |out| {
            let mut w = File::create(out).with_context(|| format!("{}", out.display()))?;
            std::io::copy(&mut m, &mut w).with_context(|| full)?;
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod cat_tests {
    use super::*;

    #[test]
    fn sound_catalogue_entries_are_found_by_the_table() {
        // Three entries: a WAV, an empty placeholder, a second WAV.
        let wav = |tag: u8| {
            let mut w = b"RIFF".to_vec();
            w.extend_from_slice(&[4, 0, 0, 0, b'W', b'A', b'V', tag]);
            w
        };
        let mut body = Vec::new();
        let mut table = Vec::new();
        for (i, data) in [wav(b'1'), Vec::new(), wav(b'2')].iter().enumerate() {
            let at = 24 + body.len();
            table.extend_from_slice(&((at as u32) | 0x8000_0000).to_le_bytes());
            table.extend_from_slice(&(data.len() as u32).to_le_bytes());
            let name = format!("\"entry {i}\". License: CC0\0");
            body.push(name.len() as u8);
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
        }
        table.extend(body);
        let got = cat_entries(&table).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["00.wav", "02.wav"]);
        assert_eq!(got[0].1, &wav(b'1')[..]);
        assert_eq!(got[1].1, &wav(b'2')[..]);
        // A cut file is an error, not a short entry.
        let e = cat_entries(&table[..table.len() - 3]).unwrap_err();
        assert!(format!("{e:#}").contains("entry 2"), "{e:#}");
        assert!(cat_entries(b"xx").is_err());
    }
}
