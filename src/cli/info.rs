//! `splitflow info`: what each file is, checked by decoding it to the end (like `flac -t`):
//! a damaged file (undecodable packets, skipped data, a stream shorter than its header says)
//! gets a row with the same figures that make `separate` refuse it, and the exit status 1.

use super::args::InfoArgs;
use crate::audio::decode::clock;
use crate::audio::{AudioInfo, AudioReader, Damage, Damaged};

/// One file, decoded to the end.
struct Row {
    info: AudioInfo,
    /// Frames that decoded.
    decoded: u64,
    damage: Option<Damage>,
}

impl Row {
    /// The header's duration, or the decoded one when the header states none.
    fn duration(&self) -> String {
        match self.info.duration_secs() {
            Some(s) => clock(s),
            None => format!(
                "{} (decoded)",
                clock(self.decoded as f64 / self.info.sample_rate as f64)
            ),
        }
    }

    fn status(&self) -> String {
        self.damage
            .as_ref()
            .map_or_else(|| "ok".into(), |d| d.describe(self.info.sample_rate))
    }
}

/// Opens and decodes `path` to the end, keeping damage to report it.
fn check(path: &std::path::Path) -> crate::Result<Row> {
    let mut r = AudioReader::open_with(path, Damaged::Keep)?;
    let mut block = Vec::new();
    let mut decoded = 0u64;
    loop {
        block.iter_mut().for_each(Vec::clear);
        let n = r.read(&mut block, 1 << 16)?;
        if n == 0 {
            break;
        }
        decoded += n as u64;
    }
    Ok(Row {
        info: r.info().clone(),
        decoded,
        damage: r.damage().cloned(),
    })
}

pub fn run(args: &InfoArgs) -> i32 {
    let mut failed = 0;
    let mut rows = Vec::new();
    for path in &args.files {
        match check(path) {
            Ok(r) => {
                failed += usize::from(r.damage.is_some());
                rows.push(r)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if args.json {
        for row in &rows {
            let info = &row.info;
            let mut v = serde_json::to_value(info).unwrap_or_default();
            v["duration_secs"] = info.duration_secs().into();
            v["sample_format"] = info.sample_format.map(|f| f.to_string()).into();
            v["decoded_frames"] = row.decoded.into();
            v["damage"] = serde_json::to_value(&row.damage).unwrap_or_default();
            v["status"] = row.status().into();
            println!("{v}");
        }
    } else if !rows.is_empty() {
        let table: Vec<[String; 8]> = rows
            .iter()
            .map(|r| {
                let i = &r.info;
                [
                    i.path.display().to_string(),
                    i.container.clone(),
                    i.codec.clone(),
                    format!("{} Hz", i.sample_rate),
                    i.channels.to_string(),
                    i.sample_format.map_or_else(|| "lossy".into(), |f| f.to_string()),
                    r.duration(),
                    r.status(),
                ]
            })
            .collect();
        let header = [
            "file",
            "container",
            "codec",
            "rate",
            "channels",
            "sample format",
            "duration",
            "status",
        ]
        .map(String::from);
        let widths: Vec<usize> = (0..8)
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
