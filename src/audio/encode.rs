//! WAV output (hound), written atomically: a temp file beside the destination, renamed
//! into place only when complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use tempfile::NamedTempFile;

use super::SampleFormat;
use crate::Result;

/// Format of an output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub sample_rate: u32,
    pub channels: usize,
    /// `Int(8|16|24|32)` or `Float(32)`.
    pub format: SampleFormat,
}

impl OutputSpec {
    /// The equivalent hound spec, or an error for formats WAV output does not support.
    fn to_hound(self) -> Result<hound::WavSpec> {
        let (bits_per_sample, sample_format) = match self.format {
            SampleFormat::Int(b @ (8 | 16 | 24 | 32)) => (b, hound::SampleFormat::Int),
            SampleFormat::Float(32) => (32, hound::SampleFormat::Float),
            f => bail!("unsupported output sample format: {f} (use 8/16/24/32-bit int or 32-bit float)"),
        };
        ensure!(
            (1..=u16::MAX as usize).contains(&self.channels),
            "unsupported channel count for WAV output: {}",
            self.channels
        );
        ensure!(self.sample_rate > 0, "invalid output sample rate 0");
        Ok(hound::WavSpec {
            channels: self.channels as u16,
            sample_rate: self.sample_rate,
            bits_per_sample,
            sample_format,
        })
    }
}

/// Converts a float sample to a signed integer of `bits` bits (round to nearest, clipped).
///
/// The scale is `2^(bits-1)`, so -1.0 maps to the minimum value and +1.0 clips to the
/// maximum. NaN maps to 0. `bits` must be in 1..=32.
pub fn quantize(x: f32, bits: u16) -> i32 {
    debug_assert!((1..=32).contains(&bits));
    let scale = (1u64 << (bits - 1)) as f64;
    let v = (x as f64 * scale).round();
    // `as` saturates (and maps NaN to 0), so this is safe even for 32 bits.
    v.clamp(-scale, scale - 1.0) as i32
}

/// A WAV file being written to a temporary path; [`AtomicWavWriter::finish`] renames it to
/// its destination. Dropping it without `finish` deletes the temp file.
pub struct AtomicWavWriter {
    spec: OutputSpec,
    dest: PathBuf,
    /// hound writes through a `BufWriter` over the temp file's handle; the
    /// [`NamedTempFile`] itself owns the path and deletes it on drop.
    writer: hound::WavWriter<BufWriter<File>>,
    temp: NamedTempFile,
    /// Interleaving scratch buffer, reused between writes.
    scratch: Vec<i32>,
}

impl AtomicWavWriter {
    /// Starts writing `dest` (its parent folder is created if missing).
    ///
    /// The temp file is `.<file name>.<6 random letters/digits>.tmp` in the destination folder, so the final
    /// rename never crosses file systems.
    pub fn create(dest: &Path, spec: OutputSpec) -> Result<Self> {
        let hspec = spec.to_hound().with_context(|| dest.display().to_string())?;
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file path", dest.display()))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp").rand_bytes(TEMP_RANDOM_LEN);
        // tempfile creates 0600 files; an output should get the usual 0644 (less the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let temp = builder
            .tempfile_in(dir)
            .with_context(|| format!("{}: cannot create temporary file", dest.display()))?;
        let file = temp
            .as_file()
            .try_clone()
            .with_context(|| format!("{}: cannot open temporary file", dest.display()))?;
        let writer = hound::WavWriter::new(BufWriter::new(file), hspec)
            .with_context(|| format!("{}: cannot write WAV header", dest.display()))?;
        Ok(Self {
            spec,
            dest: dest.to_path_buf(),
            writer,
            temp,
            scratch: Vec::new(),
        })
    }

    /// The output format.
    pub fn spec(&self) -> OutputSpec {
        self.spec
    }

    /// The final destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Checks that `planar` has the right channel count and equal-length channels; returns
    /// the frame count.
    fn check_planar<T>(&self, planar: &[Vec<T>]) -> Result<usize> {
        ensure!(
            planar.len() == self.spec.channels,
            "{}: expected {} channels to write, got {}",
            self.dest.display(),
            self.spec.channels,
            planar.len()
        );
        let n = planar.first().map_or(0, Vec::len);
        ensure!(
            planar.iter().all(|c| c.len() == n),
            "{}: channels to write have different lengths",
            self.dest.display()
        );
        Ok(n)
    }

    /// Writes planar float frames (quantized for integer formats).
    pub fn write_f32(&mut self, planar: &[Vec<f32>]) -> Result<()> {
        let n = self.check_planar(planar)?;
        let res = match self.spec.format {
            SampleFormat::Float(_) => (0..n)
                .flat_map(|i| planar.iter().map(move |c| c[i]))
                .try_for_each(|s| self.writer.write_sample(s)),
            SampleFormat::Int(bits) => {
                self.scratch.clear();
                self.scratch
                    .extend((0..n).flat_map(|i| planar.iter().map(move |c| quantize(c[i], bits))));
                self.write_scratch(bits)
            }
        };
        res.with_context(|| format!("{}: write failed", self.dest.display()))
    }

    /// Writes planar integer frames (integer formats only; values already in range).
    pub fn write_i32(&mut self, planar: &[Vec<i32>]) -> Result<()> {
        let n = self.check_planar(planar)?;
        let SampleFormat::Int(bits) = self.spec.format else {
            bail!(
                "{}: cannot write integer samples to a {} file",
                self.dest.display(),
                self.spec.format
            );
        };
        self.scratch.clear();
        self.scratch
            .extend((0..n).flat_map(|i| planar.iter().map(move |c| c[i])));
        self.write_scratch(bits)
            .with_context(|| format!("{}: write failed", self.dest.display()))
    }

    /// Writes the interleaved integers in `scratch` with the sample width hound expects.
    fn write_scratch(&mut self, bits: u16) -> std::result::Result<(), hound::Error> {
        let w = &mut self.writer;
        match bits {
            8 => self.scratch.iter().try_for_each(|&s| w.write_sample(s as i8)),
            16 => self.scratch.iter().try_for_each(|&s| w.write_sample(s as i16)),
            _ => self.scratch.iter().try_for_each(|&s| w.write_sample(s)),
        }
    }

    /// Finalises the WAV header, syncs, and renames onto `dest`. With `overwrite == false`
    /// an existing destination is an error and is left untouched (the temp file is removed).
    pub fn finish(self, overwrite: bool) -> Result<()> {
        let Self { dest, writer, temp, .. } = self;
        let ctx = || format!("{}: cannot finish writing", dest.display());
        // Writes the final header and flushes the BufWriter into the temp file.
        writer.finalize().with_context(ctx)?;
        temp.as_file().sync_all().with_context(ctx)?;
        let res = if overwrite {
            temp.persist(&dest)
        } else {
            temp.persist_noclobber(&dest)
        };
        // On failure the returned NamedTempFile is dropped here, deleting the temp file.
        res.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{}: already exists (not overwritten)", dest.display())
            } else {
                anyhow::anyhow!("{}: cannot rename into place: {}", dest.display(), e.error)
            }
        })?;
        Ok(())
    }
}

/// Length of the random part of a temp file's name (tempfile's default).
const TEMP_RANDOM_LEN: usize = 6;

/// Temp files that an [`AtomicWavWriter`] for `dest` leaves behind when its process is killed
/// before it can clean up (SIGKILL, a power cut): `.<file name>.<6 letters or digits>.tmp`
/// (or, from older versions, without the second dot)
/// beside `dest`. A run about to write `dest` removes them ([`AtomicWavWriter::create`]
/// names its own the same way, so only call this before writing).
pub fn stale_temp_files(dest: &Path) -> Vec<PathBuf> {
    let (Some(name), dir) = (dest.file_name(), dest.parent()) else {
        return Vec::new();
    };
    let dir = match dir {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = format!(".{}", name.to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            // Before 2026-12-01 the random part followed the name without a dot.
            n.strip_prefix(&prefix)
                .map(|rest| rest.strip_prefix('.').unwrap_or(rest))
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|r| r.len() == TEMP_RANDOM_LEN && r.chars().all(|c| c.is_ascii_alphanumeric()))
                && e.file_type().is_ok_and(|t| t.is_file())
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Writes mono `x` as a 16-bit WAV at `rate` (atomically, replacing `path`): evaluation sets,
/// previews, query clips.
pub fn write_mono16(path: &Path, x: &[f32], rate: u32) -> Result<()> {
    let spec = OutputSpec {
        sample_rate: rate,
        channels: 1,
        format: SampleFormat::Int(16),
    };
    let mut w = AtomicWavWriter::create(path, spec)?;
    w.write_f32(&[x.to_vec()])?;
    w.finish(true)
}
