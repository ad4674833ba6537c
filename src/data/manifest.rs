//! The corpus manifest (one row per clip) and the train / valid / test split.
//!
//! The split is a function of the row's group (speaker or voice for speech, kit or preset for
//! instruments, source file for everything else), so no group is in two splits. Each group
//! belongs to the label it has most audio of; per label, groups are taken largest first (ties
//! in FNV-1a hash order) and each goes to the split furthest below its share of the label's
//! duration (80 / 10 / 10 %), so valid and test each get about a tenth of every label's minutes;
//! then every label with at least three groups gets at least one group in valid and one in
//! test (the smallest group of the split with the most groups moves). Deterministic: the same
//! rows give the same splits.
//!
//! Before that, [`mark_heldout`] puts whole packages (per label) into a fourth split,
//! `heldout`: recording chains the train split never hears, the figure that predicts a user's
//! audio (`splitflow data mixtures --split heldout`). A group with one held-out row is held out
//! whole, so the four splits stay disjoint by group.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::Result;

/// One clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipRow {
    /// WAV path relative to the corpus folder.
    pub path: String,
    pub label: String,
    /// Seconds.
    pub duration: f64,
    /// Sample rate, Hz.
    pub rate: u32,
    /// Debian package.
    pub package: String,
    /// Path of the source file inside the package (`ARCHIVE!MEMBER` inside archives).
    pub source_file: String,
    /// Speaker / voice (speech), kit or preset (instruments), source file (everything else).
    pub group: String,
    pub licence: String,
    /// `train`, `valid`, `test` or `heldout` (empty until assigned).
    #[serde(default)]
    pub split: String,
}

/// The manifest columns, in CSV order.
pub const COLUMNS: &[&str] = &[
    "path",
    "label",
    "duration",
    "rate",
    "package",
    "source_file",
    "group",
    "licence",
    "split",
];

/// The splits assigned by group share ([`assign_splits`]).
pub const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// The split of held-out packages ([`mark_heldout`]).
pub const HELDOUT: &str = "heldout";

/// Every split a manifest row may carry.
pub const ALL_SPLITS: [&str; 4] = ["train", "valid", "test", HELDOUT];

/// 64-bit FNV-1a: stable across platforms and releases, unlike `DefaultHasher`.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Share of each label's duration wanted in train, valid and test.
pub const SPLIT_SHARES: [f64; 3] = [0.8, 0.1, 0.1];

/// Sets split `heldout` on every row whose `(package, label)` satisfies `held` and on every
/// other row of the same group; clears the split of all other rows (for [`assign_splits`]).
pub fn mark_heldout(rows: &mut [ClipRow], held: impl Fn(&str, &str) -> bool) {
    let groups: BTreeSet<String> = rows
        .iter()
        .filter(|r| held(&r.package, &r.label))
        .map(|r| r.group.clone())
        .collect();
    for r in rows.iter_mut() {
        r.split = if groups.contains(&r.group) {
            HELDOUT.to_string()
        } else {
            String::new()
        };
    }
}

/// Assigns `split` on every row not already `heldout`; see the module documentation.
pub fn assign_splits(rows: &mut [ClipRow]) {
    // Seconds per group and label; a group belongs to the label it has most audio of.
    let mut secs: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.split != HELDOUT) {
        *secs.entry(&r.group).or_default().entry(&r.label).or_default() += r.duration;
    }
    let mut by_label: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for (g, labels) in &secs {
        let total: f64 = labels.values().sum();
        let label = labels
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map_or("", |(l, _)| *l);
        by_label.entry(label).or_default().push((g, total));
    }
    let mut split: BTreeMap<&str, usize> = BTreeMap::new();
    for groups in by_label.values_mut() {
        // Largest first (hash order among equals), each to the split furthest below its share.
        groups.sort_by(|a, b| b.1.total_cmp(&a.1).then(fnv1a(a.0).cmp(&fnv1a(b.0))));
        let total: f64 = groups.iter().map(|g| g.1).sum();
        let mut have = [0.0f64; 3];
        for &(g, d) in groups.iter() {
            let s = (0..3)
                .max_by(|&a, &b| {
                    let (da, db) = (SPLIT_SHARES[a] * total - have[a], SPLIT_SHARES[b] * total - have[b]);
                    da.total_cmp(&db).then(b.cmp(&a))
                })
                .unwrap_or(0);
            have[s] += d;
            split.insert(g, s);
        }
        if groups.len() < 3 {
            continue;
        }
        // Every label with three groups reaches valid and test: move the smallest group of
        // the split with the most groups.
        for want in [1, 2] {
            let n = |s: usize, split: &BTreeMap<&str, usize>| groups.iter().filter(|g| split[g.0] == s).count();
            if n(want, &split) > 0 {
                continue;
            }
            let from = (0..3).filter(|&s| s != want).max_by_key(|&s| n(s, &split)).unwrap_or(0);
            if let Some(&(g, _)) = groups.iter().rev().find(|g| split[g.0] == from) {
                split.insert(g, want);
            }
        }
    }
    let split: BTreeMap<String, usize> = split.into_iter().map(|(g, s)| (g.to_string(), s)).collect();
    for r in rows.iter_mut().filter(|r| r.split != HELDOUT) {
        r.split = SPLITS[split.get(&r.group).copied().unwrap_or(0)].to_string();
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes rows as CSV with a header (atomically: a temporary file renamed into place).
pub fn write_csv(path: &Path, rows: &[ClipRow]) -> Result<()> {
    crate::atomic::write_with(path, |w| {
        writeln!(w, "{}", COLUMNS.join(","))?;
        for r in rows {
            let f = [
                csv_field(&r.path),
                csv_field(&r.label),
                format!("{:.3}", r.duration),
                r.rate.to_string(),
                csv_field(&r.package),
                csv_field(&r.source_file),
                csv_field(&r.group),
                csv_field(&r.licence),
                csv_field(&r.split),
            ];
            writeln!(w, "{}", f.join(","))?;
        }
        Ok(())
    })
}

/// Writes rows as JSON lines (atomically).
pub fn write_jsonl(path: &Path, rows: &[ClipRow]) -> Result<()> {
    crate::atomic::write_with(path, |w| {
        for r in rows {
            serde_json::to_writer(&mut *w, r)?;
            writeln!(w)?;
        }
        Ok(())
    })
}

/// Reads JSON lines written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> Result<Vec<ClipRow>> {
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).with_context(|| format!("{}: line {}", path.display(), i + 1))?);
    }
    Ok(rows)
}

/// Checks that no group is in two splits; returns the offending groups.
pub fn split_conflicts(rows: &[ClipRow]) -> Vec<String> {
    let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in rows {
        seen.entry(&r.group).or_default().insert(&r.split);
    }
    seen.into_iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(g, _)| g.to_string())
        .collect()
}

/// Minutes per label and split: `(label, [train, valid, test, heldout, total])`.
pub fn minutes_table(rows: &[ClipRow]) -> Vec<(String, [f64; 5])> {
    let mut t: BTreeMap<String, [f64; 5]> = BTreeMap::new();
    for r in rows {
        let e = t.entry(r.label.clone()).or_default();
        if let Some(i) = ALL_SPLITS.iter().position(|s| *s == r.split) {
            e[i] += r.duration / 60.0;
        }
        e[4] += r.duration / 60.0;
    }
    t.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, group: &str) -> ClipRow {
        ClipRow {
            path: format!("{group}.wav"),
            label: label.into(),
            duration: 1.0,
            rate: 22050,
            package: "p".into(),
            source_file: "f".into(),
            group: group.into(),
            licence: "l".into(),
            split: String::new(),
        }
    }

    #[test]
    fn each_label_with_three_groups_reaches_every_split() {
        let mut rows: Vec<ClipRow> = (0..3).map(|i| row("a", &format!("g{i}"))).collect();
        rows.extend((0..40).map(|i| row("b", &format!("h{i}"))));
        rows.push(row("b", "g0"));
        assign_splits(&mut rows);
        for label in ["a", "b"] {
            for s in SPLITS {
                assert!(rows.iter().any(|r| r.label == label && r.split == s), "{label} {s}");
            }
        }
        assert!(split_conflicts(&rows).is_empty());
    }

    #[test]
    fn heldout_packages_take_whole_groups_and_stay_out_of_the_other_splits() {
        let mut rows: Vec<ClipRow> = (0..30).map(|i| row("a", &format!("g{i}"))).collect();
        for r in rows.iter_mut().take(5) {
            r.package = "q".into();
        }
        // A group shared by a held-out row and a row of another label and package.
        let mut shared = row("b", "g0");
        shared.package = "p".into();
        rows.push(shared);
        rows.extend((0..10).map(|i| row("b", &format!("h{i}"))));
        mark_heldout(&mut rows, |p, l| p == "q" && l == "a");
        assign_splits(&mut rows);
        let held: Vec<&ClipRow> = rows.iter().filter(|r| r.split == HELDOUT).collect();
        assert_eq!(held.len(), 6);
        assert!(held.iter().all(|r| r.package == "q" || r.group == "g0"));
        assert!(split_conflicts(&rows).is_empty());
        for label in ["a", "b"] {
            for s in SPLITS {
                assert!(rows.iter().any(|r| r.label == label && r.split == s), "{label} {s}");
            }
        }
        // Re-marking clears the old assignment first: the result does not depend on it.
        let before = rows.clone();
        mark_heldout(&mut rows, |p, l| p == "q" && l == "a");
        assign_splits(&mut rows);
        assert_eq!(rows, before);
        let t = minutes_table(&rows);
        let a = t.iter().find(|(l, _)| l == "a").unwrap().1;
        assert_eq!(a[3], 5.0 / 60.0);
        assert!((a[..4].iter().sum::<f64>() - a[4]).abs() < 1e-12);
    }
}
