//! Audio output, written atomically: a temp file beside the destination, renamed into place
//! only when complete. WAV (hound) or FLAC ([`super::flac`], 8 to 24 bits), chosen by the
//! destination's extension ([`FileFormat::of`]).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use tempfile::NamedTempFile;

use super::SampleFormat;
use crate::Result;

/// The file formats outputs can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Wav,
    Flac,
}

impl FileFormat {
    /// All of them, for messages.
    pub const ALL: [FileFormat; 2] = [FileFormat::Wav, FileFormat::Flac];

    /// The file extension (also what `--format` takes).
    pub fn ext(self) -> &'static str {
        match self {
            FileFormat::Wav => "wav",
            FileFormat::Flac => "flac",
        }
    }

    /// The format an extension names (`wav`, `wave`, `flac`; any case).
    pub fn from_ext(ext: &str) -> Option<FileFormat> {
        match ext.to_ascii_lowercase().as_str() {
            "wav" | "wave" => Some(FileFormat::Wav),
            "flac" => Some(FileFormat::Flac),
            _ => None,
        }
    }

    /// The format a destination path asks for by its extension.
    pub fn of(path: &Path) -> Option<FileFormat> {
        path.extension().and_then(|e| e.to_str()).and_then(FileFormat::from_ext)
    }
}

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

/// A WAV file being written to a temporary path; [`AtomicAudioWriter::finish`] renames it to
/// its destination. Dropping it without `finish` deletes the temp file.
pub struct AtomicAudioWriter {
    spec: OutputSpec,
    dest: PathBuf,
    /// The encoder, writing through a handle of the temp file; the [`NamedTempFile`] itself
    /// owns the path and deletes it on drop.
    writer: Body,
    temp: NamedTempFile,
    /// Interleaving scratch buffer, reused between writes.
    scratch: Vec<i32>,
}

/// The encoder behind an [`AtomicAudioWriter`].
enum Body {
    Wav(hound::WavWriter<BufWriter<File>>),
    Flac(Box<super::flac::FlacWriter>),
}

impl AtomicAudioWriter {
    /// Starts writing `dest` (its parent folder is created if missing), as FLAC when its
    /// extension is `.flac`, else as WAV.
    ///
    /// The temp file is `.<file name>.<6 random letters/digits>.tmp` in the destination folder, so the final
    /// rename never crosses file systems.
    pub fn create(dest: &Path, spec: OutputSpec) -> Result<Self> {
        let flac = FileFormat::of(dest) == Some(FileFormat::Flac);
        let hspec = spec.to_hound().with_context(|| dest.display().to_string())?;
        let flac_bits = match spec.format {
            SampleFormat::Int(b) if flac && super::flac::BITS.contains(&b) => b,
            f if flac => bail!(
                "{}: FLAC stores 8- to 24-bit integer samples, not {f} (use --bit-depth 16 or 24, or a .wav name)",
                dest.display()
            ),
            _ => 0,
        };
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file path", dest.display()))?;
        let dir = crate::atomic::folder_of(dest);
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
        let writer = if flac {
            Body::Flac(Box::new(
                super::flac::FlacWriter::new(file, spec.sample_rate, spec.channels, flac_bits)
                    .with_context(|| dest.display().to_string())?,
            ))
        } else {
            Body::Wav(
                hound::WavWriter::new(BufWriter::new(file), hspec)
                    .with_context(|| format!("{}: cannot write WAV header", dest.display()))?,
            )
        };
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
        match (self.spec.format, &mut self.writer) {
            (SampleFormat::Float(_), Body::Wav(w)) => (0..n)
                .flat_map(|i| planar.iter().map(move |c| c[i]))
                .try_for_each(|s| w.write_sample(s))
                .map_err(anyhow::Error::from),
            (SampleFormat::Float(_), Body::Flac(_)) => bail!("FLAC holds no float samples"),
            (SampleFormat::Int(bits), _) => {
                self.scratch.clear();
                self.scratch
                    .extend((0..n).flat_map(|i| planar.iter().map(move |c| quantize(c[i], bits))));
                self.write_scratch(bits)
            }
        }
        .with_context(|| format!("{}: write failed", self.dest.display()))
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

    /// Writes the interleaved integers in `scratch` (with the sample width hound expects).
    fn write_scratch(&mut self, bits: u16) -> Result<()> {
        match &mut self.writer {
            Body::Wav(w) => match bits {
                8 => self.scratch.iter().try_for_each(|&s| w.write_sample(s as i8)),
                16 => self.scratch.iter().try_for_each(|&s| w.write_sample(s as i16)),
                _ => self.scratch.iter().try_for_each(|&s| w.write_sample(s)),
            }
            .map_err(anyhow::Error::from),
            Body::Flac(f) => f.write_interleaved(&self.scratch),
        }
    }

    /// Finalises the WAV header, syncs, and renames onto `dest`. With `overwrite == false`
    /// an existing destination is an error and is left untouched (the temp file is removed).
    pub fn finish(self, overwrite: bool) -> Result<()> {
        let Self { dest, writer, temp, .. } = self;
        let ctx = || format!("{}: cannot finish writing", dest.display());
        // Writes the final header and flushes the BufWriter into the temp file.
        match writer {
            Body::Wav(w) => w.finalize().map_err(anyhow::Error::from),
            Body::Flac(f) => f.finish(),
        }
        .with_context(ctx)?;
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

/// Temp files that an [`AtomicAudioWriter`] for `dest` leaves behind when its process is killed
/// before it can clean up (SIGKILL, a power cut): `.<file name>.<6 letters or digits>.tmp`
/// (or, from older versions, without the second dot)
/// beside `dest`. A run about to write `dest` removes them ([`AtomicAudioWriter::create`]
/// names its own the same way, so only call this before writing).
pub fn stale_temp_files(dest: &Path) -> Vec<PathBuf> {
    let Some(name) = dest.file_name() else {
        return Vec::new();
    };
    let dir = crate::atomic::folder_of(dest);
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
    let mut w = AtomicAudioWriter::create(path, spec)?;
    w.write_f32(&[x.to_vec()])?;
    w.finish(true)
}
