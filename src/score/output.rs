//! Writing scores: an aligned table, museval-compatible JSON, CSV.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{Metric, TrackResult};
use crate::Result;

/// A value for people: three decimals, `nan`, `inf`, `-inf`.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:.3}")
    }
}

/// NaN and infinities have no JSON form: they become `null` (museval writes NaN, which most
/// JSON readers reject).
fn json_num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// Renders rows as columns padded to their widest cell; the first `left` columns are
/// left-aligned, the rest right-aligned.
pub fn table(header: &[String], rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .chain([&header.to_vec()])
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String]| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (s, &w))| {
                if i < left {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    let mut out = line(header) + "\n";
    for r in rows {
        out += &line(r);
        out.push('\n');
    }
    out
}

/// The score table: one row per (track, source), then per source the median and the mean
/// over tracks (when there is more than one track).
pub fn score_table(results: &[TrackResult], metrics: &[Metric]) -> String {
    let header: Vec<String> = ["track", "source"]
        .iter()
        .map(|s| s.to_string())
        .chain(metrics.iter().map(|m| m.name().to_string()))
        .collect();
    let mut rows = Vec::new();
    for t in results {
        for s in &t.sources {
            let mut r = vec![t.name.clone(), s.name.clone()];
            r.extend(metrics.iter().map(|&m| fmt_value(s.value(m))));
            rows.push(r);
        }
    }
    if results.len() > 1 {
        rows.extend(summary_rows(results, metrics));
    }
    table(&header, &rows, 2)
}

/// Per source, the rows `[median over tracks, SOURCE, values...]` and `[mean over tracks,
/// SOURCE, values...]` of [`super::aggregate`], formatted (the score table's last rows, and
/// the report's summary).
pub fn summary_rows(results: &[TrackResult], metrics: &[Metric]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (name, per) in super::aggregate(results, metrics) {
        for (label, pick) in [("median over tracks", 0), ("mean over tracks", 1)] {
            let mut r = vec![label.to_string(), name.clone()];
            r.extend(metrics.iter().map(|m| {
                let (med, mean) = per[m];
                fmt_value(if pick == 0 { med } else { mean })
            }));
            rows.push(r);
        }
    }
    rows
}

/// One track in museval's JSON layout (`targets[].frames[].metrics{SDR,ISR,SIR,SAR}`), with
/// two additions per target: `scores` (whole-signal metrics) and `medians` (per metric, over
/// frames).
pub fn track_json(t: &TrackResult, metrics: &[Metric]) -> Value {
    let rate = t.sample_rate as f64;
    let targets: Vec<Value> = t
        .sources
        .iter()
        .map(|s| {
            let frames: Vec<Value> = t
                .frames
                .iter()
                .enumerate()
                .map(|(i, &(start, len))| {
                    let m: serde_json::Map<String, Value> = s
                        .frames
                        .iter()
                        .map(|(metric, v)| (metric.museval_key().to_string(), json_num(v[i])))
                        .collect();
                    json!({"time": start as f64 / rate, "duration": len as f64 / rate, "metrics": m})
                })
                .collect();
            let scores: serde_json::Map<String, Value> = s
                .whole
                .iter()
                .map(|(m, &v)| (m.name().to_string(), json_num(v)))
                .collect();
            let medians: serde_json::Map<String, Value> = s
                .frames
                .keys()
                .map(|&m| (m.museval_key().to_string(), json_num(s.value(m))))
                .collect();
            json!({"name": s.name, "frames": frames, "scores": scores, "medians": medians})
        })
        .collect();
    let names: Vec<&str> = metrics.iter().map(|m| m.name()).collect();
    json!({"name": t.name, "sample_rate": t.sample_rate, "metrics": names, "targets": targets})
}

use crate::atomic::write as write_atomic;

/// JSON output: for one track, its museval object at `path`; for several, `path` is a folder
/// with one `TRACK.json` per track (museval's layout), plus `aggregate.json` holding the
/// median and mean over tracks.
pub fn write_json(path: &Path, results: &[TrackResult], metrics: &[Metric]) -> Result<()> {
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).map_err(anyhow::Error::from);
    // A folder (one that exists, or a path ending in a separator) always gets the folder
    // layout: one track must not replace the folder's name with a file.
    let folder = path.is_dir() || path.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR);
    if let [one] = results
        && !folder
    {
        return write_atomic(path, &pretty(&track_json(one, metrics))?);
    }
    for t in results {
        let file = path.join(format!("{}.json", t.name));
        write_atomic(&file, &pretty(&track_json(t, metrics))?)?;
    }
    let agg: BTreeMap<String, Value> = super::aggregate(results, metrics)
        .into_iter()
        .map(|(name, per)| {
            let m: serde_json::Map<String, Value> = per
                .iter()
                .map(|(m, &(med, mean))| {
                    (
                        m.name().to_string(),
                        json!({"median_over_tracks": json_num(med), "mean_over_tracks": json_num(mean)}),
                    )
                })
                .collect();
            (name, Value::Object(m))
        })
        .collect();
    let v = json!({
        "aggregation": "per track: NaN-ignoring median over frames; then median and mean over tracks",
        "tracks": results.len(),
        "sources": agg,
    });
    write_atomic(&path.join("aggregate.json"), &pretty(&v)?)
}

/// CSV: one row per (track, source), framewise metrics as their median over frames.
pub fn csv(results: &[TrackResult], metrics: &[Metric]) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let num = |v: f64| {
        if v.is_nan() {
            "NaN".to_string()
        } else if v.is_infinite() {
            if v > 0.0 { "inf".into() } else { "-inf".into() }
        } else {
            format!("{v}")
        }
    };
    let mut out = String::from("track,source");
    for m in metrics {
        out += ",";
        out += m.name();
    }
    out.push('\n');
    for t in results {
        for s in &t.sources {
            out += &format!("{},{}", quote(&t.name), quote(&s.name));
            for &m in metrics {
                out += ",";
                out += &num(s.value(m));
            }
            out.push('\n');
        }
    }
    out
}
