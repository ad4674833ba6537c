//! Split disjointness on a real corpus: set `SPLITFLOW_DATA` to a folder built by
//! `splitflow data build` (skipped when unset). The fixture corpus is checked in data_build.rs.

use std::collections::{BTreeMap, BTreeSet};

use splitflow::data::LABELS;
use splitflow::data::manifest::{self, ALL_SPLITS, HELDOUT, SPLITS};
use splitflow::data::sources;

#[test]
fn real_manifest_splits_are_disjoint_by_group() {
    let Ok(dir) = std::env::var("SPLITFLOW_DATA") else {
        eprintln!("SPLITFLOW_DATA not set: skipped");
        return;
    };
    let rows = manifest::read_jsonl(&std::path::Path::new(&dir).join("manifest.jsonl")).unwrap();
    assert!(!rows.is_empty());
    assert_eq!(manifest::split_conflicts(&rows), Vec::<String>::new());
    let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &rows {
        assert!(LABELS.contains(&r.label.as_str()), "{r:?}");
        assert!(ALL_SPLITS.contains(&r.split.as_str()), "{r:?}");
        // Held-out packages are held out whole; nothing else is.
        assert_eq!(r.split == HELDOUT, sources::is_heldout(&r.package, &r.label), "{r:?}");
        assert_eq!(r.rate, rows[0].rate);
        groups.entry(&r.label).or_default().insert(&r.group);
    }
    // Every label is scored on a package train never hears (issue 13), where one exists.
    for (label, packages) in sources::HELDOUT {
        if !packages.is_empty() {
            assert!(
                rows.iter().any(|r| r.label == *label && r.split == HELDOUT),
                "{label}: nothing held out"
            );
        }
    }
    for (label, g) in &groups {
        if g.len() >= 3 {
            for s in SPLITS {
                assert!(
                    rows.iter().any(|r| r.label == *label && r.split == s),
                    "{label}: nothing in {s}"
                );
            }
        }
    }
}
