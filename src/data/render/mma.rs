//! Grooves of MMA (Musical MIDI Accompaniment, a Python program): each groove is played over
//! a generated chord chart and written as a MIDI file with one instrument per channel. MMA runs
//! from the extracted package tree with `python3` (like `dpkg-deb`, an external program of the
//! build); without `python3` the mma songs are skipped with a warning.
//!
//! MMA draws random timing, velocity and note skips (`RTime`, `RVolume`, `RSkip`) from
//! Python's unseeded `random`: each chart starts with `RndSeed` (a hash of the groove) and
//! Python runs with `PYTHONHASHSEED=0`, so the same groove gives the same MIDI bytes on every
//! build (two builds once differed in 32 clips of this set).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::procedural::SongPlan;
use crate::Result;
use crate::data::manifest::fnv1a;

/// An extracted mma package (`root` = the package tree).
pub struct Mma {
    script: PathBuf,
    home: PathBuf,
}

impl Mma {
    /// Finds MMA in an extracted package tree and builds its groove database (`mma -G`, which
    /// writes `.mmaDB` files into the tree; a few seconds).
    pub fn prepare(root: &Path) -> Result<Mma> {
        let script = root.join("usr/bin/mma");
        let home = root.join("usr/share/mma");
        if !script.is_file() || !home.join("MMA").is_dir() {
            bail!("{}: no usr/bin/mma and usr/share/mma/MMA", root.display());
        }
        let m = Mma { script, home };
        let out = m
            .command()
            .arg("-G")
            .output()
            .context("cannot run python3 (needed for mma)")?;
        if !out.status.success() {
            bail!("mma -G failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(m)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("python3");
        c.arg(&self.script)
            .env("MMA_HOME", &self.home)
            .env("PYTHONHASHSEED", "0");
        c
    }

    /// The grooves defined in the standard library (`DefGroove NAME` lines), sorted.
    pub fn grooves(&self) -> Result<Vec<String>> {
        let dir = self.home.join("lib/stdlib");
        let mut names = Vec::new();
        for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "mma") {
                continue;
            }
            let text =
                String::from_utf8_lossy(&std::fs::read(&p).with_context(|| format!("{}", p.display()))?).into_owned();
            for line in text.lines() {
                let mut w = line.split_whitespace();
                if w.next().is_some_and(|k| k.eq_ignore_ascii_case("defgroove"))
                    && let Some(n) = w.next()
                {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Plays `groove` over the chords of `plan` and returns the MIDI file's bytes.
    pub fn render(&self, groove: &str, plan: &SongPlan, work: &Path) -> Result<Vec<u8>> {
        // Grooves render in parallel: the hash keeps names that differ only in punctuation
        // apart.
        let safe: String = groove.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let stem = format!("{safe}-{:016x}", fnv1a(groove));
        let chart = work.join(format!("{stem}.mma"));
        let mid = work.join(format!("{stem}.mid"));
        std::fs::write(&chart, chart_text(groove, plan)).with_context(|| format!("{}", chart.display()))?;
        let out = self
            .command()
            .arg("-f")
            .arg(&mid)
            .arg(&chart)
            .output()
            .context("cannot run python3 (needed for mma)")?;
        if !out.status.success() || !mid.is_file() {
            let msg = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            let line = msg.lines().find(|l| l.contains("Error")).unwrap_or("no MIDI written");
            bail!("mma groove {groove}: {}", line.trim());
        }
        std::fs::read(&mid).with_context(|| format!("{}", mid.display()))
    }
}

/// An MMA chart: random seed, tempo, groove, one chord per bar.
pub fn chart_text(groove: &str, plan: &SongPlan) -> String {
    let seed = fnv1a(groove) % 1_000_000_007;
    let mut s = format!("RndSeed {seed}\nTempo {}\nGroove {groove}\n", plan.bpm.round());
    for (i, c) in plan.chords.iter().enumerate() {
        s += &format!("{} {}\n", i + 1, c.name());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_seed_mma_by_the_groove() {
        let plan = super::super::procedural::plan(3, 8.0);
        let a = chart_text("Rhumba", &plan);
        assert_eq!(a, chart_text("Rhumba", &plan));
        let first = a.lines().next().unwrap_or("");
        assert!(first.starts_with("RndSeed "), "{a}");
        assert_ne!(first, chart_text("Rhumba1", &plan).lines().next().unwrap_or(""));
        assert!(a.contains("\nGroove Rhumba\n"), "{a}");
    }
}
