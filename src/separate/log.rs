//! `separate --log FILE.jsonl`: one JSON object per input and line (input, outputs, status,
//! error, warning, seconds, real-time factor, model, query, shard, finish time), appended with one
//! write per line to a file opened for appending, so the logs of shards writing to a shared
//! folder can be concatenated (`cat shard-*.jsonl`) and read by anything that reads JSON lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;

use crate::Result;

/// What became of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Separated; its outputs are written.
    Ok,
    /// Every output existed (`--skip-existing`).
    Skipped,
    /// An error (the `error` field says which).
    Failed,
    /// Not started, or stopped, because the run was interrupted.
    Interrupted,
}

/// One line of the log.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub input: PathBuf,
    pub outputs: Vec<PathBuf>,
    pub status: Status,
    pub error: Option<String>,
    /// A damaged input kept with `--allow-damaged`: what it lost.
    pub warning: Option<String>,
    /// Wall-clock seconds spent on it.
    pub seconds: Option<f64>,
    /// Processing time over audio duration (`None` under a second of audio).
    pub rtf: Option<f64>,
    /// Seconds of audio.
    pub audio_seconds: Option<f64>,
    pub model: String,
    pub query: String,
    /// `I/N` when the run is a shard.
    pub shard: Option<String>,
    /// When the line was written, seconds since 1970 (UTC).
    pub unix_time: f64,
}

/// An open log.
pub struct BatchLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl BatchLog {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> Result<BatchLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the log for appending", path.display()))?;
        Ok(BatchLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends one entry as one line, in one write.
    pub fn append(&self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
            .with_context(|| format!("{}: cannot write the log", self.path.display()))
    }
}

/// Seconds since 1970 now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
