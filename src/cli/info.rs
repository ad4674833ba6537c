//! `splitflow info`.

use super::args::InfoArgs;
use crate::audio::{AudioInfo, AudioReader};

fn duration(info: &AudioInfo) -> String {
    match info.duration_secs() {
        Some(s) => {
            let (m, s) = ((s / 60.0).floor(), s % 60.0);
            format!("{m:.0}:{s:06.3}")
        }
        None => "?".into(),
    }
}

pub fn run(args: &InfoArgs) -> i32 {
    let mut failed = 0;
    let mut rows = Vec::new();
    for path in &args.files {
        match AudioReader::open(path) {
            Ok(r) => rows.push(r.info().clone()),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if args.json {
        for info in &rows {
            let mut v = serde_json::to_value(info).unwrap_or_default();
            v["duration_secs"] = info.duration_secs().into();
            v["sample_format"] = info.sample_format.map(|f| f.to_string()).into();
            println!("{v}");
        }
    } else if !rows.is_empty() {
        let table: Vec<[String; 7]> = rows
            .iter()
            .map(|i| {
                [
                    i.path.display().to_string(),
                    i.container.clone(),
                    i.codec.clone(),
                    format!("{} Hz", i.sample_rate),
                    i.channels.to_string(),
                    i.sample_format.map_or_else(|| "lossy".into(), |f| f.to_string()),
                    duration(i),
                ]
            })
            .collect();
        let header = ["file", "format", "codec", "rate", "channels", "samples", "duration"].map(String::from);
        let widths: Vec<usize> = (0..7)
            .map(|c| {
                table
                    .iter()
                    .chain([&header])
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&header).chain(&table) {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
            println!("{}", cells.join("  ").trim_end());
        }
    }
    i32::from(failed > 0)
}
