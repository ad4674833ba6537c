//! Streaming decode of any supported file into planar f32 (symphonia).
//!
//! Supported: WAV (PCM int 8/16/24/32, float 32/64), AIFF, CAF, FLAC, MP3, Ogg Vorbis,
//! AAC and ALAC in MP4/M4A, Matroska; sample rates 8–192 kHz; any channel count.
//!
//! Error policy (every message is one line starting with the file path):
//! - a missing, unreadable, empty or non-audio file, or a directory, fails in
//!   [`AudioReader::open`];
//! - a file with a valid header and no frames fails in `open` with "contains no audio";
//! - NaN or infinite samples fail with "contains NaN or infinite samples at frame N";
//! - damage, one rule for every format ([`Damaged`]): undecodable packets, data the demuxer
//!   skipped (a jump in the timestamps of lossless packets: a corrupt FLAC frame), and a stream that
//!   ends before the length its header states (a truncated file; for lossy streams beyond a
//!   tolerance, [`estimate_tolerance`], only where the length is an estimate: MP3 without a
//!   LAME tag). By default ([`Damaged::Fail`]) the reader, at the first sign of damage,
//!   reads on to the end without returning audio and then fails with where the damage starts
//!   and how much is lost ("damaged: 3 undecodable packets (...) from 0:00.840; 1.160 s of
//!   2.000 s lost"); [`Damaged::Keep`] (`separate --allow-damaged`) returns what decodes and
//!   reports the same figures through [`AudioReader::damage`]; [`Damaged::KeepLossy`] is the
//!   corpus build's rule (lossy streams keep what decodes, lossless ones must be whole). More
//!   than [`MAX_BAD_PACKETS`] undecodable packets in a row end the stream there;
//!   a file where nothing decodes is always an error;
//! - a panic inside symphonia on malformed input is caught and reported as an error.

use std::cell::Cell;
use std::fs::File;
use std::panic::{AssertUnwindSafe, UnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use serde::Serialize;
use symphonia::core::audio::sample::SampleFormat as SymSampleFormat;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{Planar, SampleFormat};
use crate::Result;

/// Lowest supported sample rate, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8000;
/// Highest supported sample rate, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 192_000;
/// Undecodable packets in a row after which the rest of a stream counts as lost.
pub const MAX_BAD_PACKETS: usize = 16;

/// What a reader does with damaged audio (module docs, "Error policy").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Damaged {
    /// Damage is an error naming the position and the duration lost (the default).
    #[default]
    Fail,
    /// Keep what decodes; [`AudioReader::damage`] says what was lost.
    Keep,
    /// Lossy streams keep what decodes, damage in a lossless one is an error (the corpus
    /// build's rule since data rules v1).
    KeepLossy,
}

/// Frames a stream whose stated length is an estimate (an MP3 without a LAME tag: the length
/// comes from the bitrate) may fall short of it without counting as damaged: 1 % of it plus
/// 4,096 frames. Exact lengths (LAME-tagged MP3, Ogg granules, MP4 tables, lossless headers)
/// have no tolerance.
pub fn estimate_tolerance(stated: u64) -> u64 {
    stated / 100 + 4096
}

/// What was lost in a damaged stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Damage {
    /// Undecodable packets (skipped).
    pub bad_packets: usize,
    /// The first decoder error.
    pub first_error: String,
    /// Frames the demuxer skipped (jumps in the packet timestamps).
    pub skipped_frames: u64,
    /// Frames the undecodable packets held (their stated durations).
    pub bad_frames: u64,
    /// Frame (output position) where the damage starts.
    pub at_frame: u64,
    /// Frames decoded.
    pub decoded: u64,
    /// Frames lost: the stated length minus what decoded, or, without a stated length (or
    /// when more), the bad packets' and the skipped data's frames.
    pub lost_frames: u64,
    /// The length the header states.
    pub stated: Option<u64>,
    /// The stream ended before its stated length (beyond the lossy tolerance).
    pub ends_early: bool,
    /// The file is cut where its true length is not stated (an Ogg file without its last
    /// page): `lost_frames` is then only what is missing of the last page that is there.
    pub cut: bool,
}

impl Damage {
    /// One line: what, from where, how much lost (`rate` turns frames into seconds).
    pub fn describe(&self, rate: u32) -> String {
        let secs = |f: u64| f as f64 / f64::from(rate.max(1));
        let mut what = Vec::new();
        if self.bad_packets > 0 {
            what.push(format!(
                "{} undecodable packet{} ({})",
                self.bad_packets,
                if self.bad_packets == 1 { "" } else { "s" },
                self.first_error
            ));
        }
        if self.skipped_frames > 0 {
            what.push(format!("{:.3} s of data skipped", secs(self.skipped_frames)));
        }
        if self.ends_early {
            if self.bad_packets == 0 && !self.first_error.is_empty() {
                what.push(format!("the stream ends early ({})", self.first_error));
            } else {
                what.push("the stream ends early".into());
            }
        }
        if self.cut {
            what.push("the file is cut (no end-of-stream page)".into());
            return format!(
                "damaged: {} at {}; the rest is lost",
                what.join(", "),
                clock(secs(self.decoded))
            );
        }
        let of = self.stated.map(|n| format!(" of {:.3} s", secs(n))).unwrap_or_default();
        format!(
            "damaged: {} from {}; {:.3} s{of} lost",
            what.join(", "),
            clock(secs(self.at_frame)),
            secs(self.lost_frames)
        )
    }
}

/// A time as `m:ss.mmm` (damage positions, `splitflow info`'s durations).
pub fn clock(secs: f64) -> String {
    let (m, s) = ((secs / 60.0).floor(), secs - 60.0 * (secs / 60.0).floor());
    format!("{m:.0}:{s:06.3}")
}

thread_local! {
    /// Set while a symphonia call runs under [`quiet_catch`].
    static IN_SYMPHONIA: Cell<bool> = const { Cell::new(false) };
}

/// `catch_unwind` for symphonia calls: a panic on malformed input becomes an error, and the
/// hook from [`install_panic_hook`] does not print it.
fn quiet_catch<T>(f: impl FnOnce() -> T + UnwindSafe) -> std::thread::Result<T> {
    IN_SYMPHONIA.with(|c| c.set(true));
    let r = catch_unwind(f);
    IN_SYMPHONIA.with(|c| c.set(false));
    r
}

/// Installs a panic hook that stays silent for panics caught around symphonia calls (they are
/// reported as one-line decode errors instead) and prints every other panic as before.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_SYMPHONIA.with(Cell::get) {
            default(info);
        }
    }));
}

/// What `splitflow info` prints about a file.
#[derive(Clone, Debug, Serialize)]
pub struct AudioInfo {
    pub path: PathBuf,
    /// Container, e.g. "WAV", "FLAC", "MP3", "Ogg", "MP4", "AIFF".
    pub container: String,
    /// Codec, e.g. "PCM", "FLAC", "MP3", "Vorbis", "AAC", "ALAC".
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Native sample format; `None` for lossy codecs, which have no bit depth.
    pub sample_format: Option<SampleFormat>,
    /// Length in frames when the container states it.
    pub frames: Option<u64>,
}

impl AudioInfo {
    /// Duration in seconds when the length is known.
    pub fn duration_secs(&self) -> Option<f64> {
        self.frames.map(|n| n as f64 / self.sample_rate as f64)
    }
}

/// A decoder over one file that yields planar f32 frames in bounded memory.
///
/// Only the current decoded packet is held in memory, whatever the file's length.
pub struct AudioReader {
    info: AudioInfo,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    /// Whether the codec is lossy (bad packets may be skipped).
    lossy: bool,
    /// Whether the stated length is an estimate (MP3 without a LAME tag).
    length_estimated: bool,
    /// The last decoded packet, planar; frames from `pos` on are not yet returned.
    buf: Planar,
    pos: usize,
    /// Frames decoded so far (including those still in `buf`).
    decoded: u64,
    /// Set once the stream has ended or failed; later reads return 0 or the error.
    done: Option<std::result::Result<(), String>>,
    policy: Damaged,
    /// Damage seen so far (`bad_packets == 0 && skipped_frames == 0`: none yet).
    damage: Damage,
    /// Whether damage was seen (then with [`Damaged::Fail`] no more audio is returned).
    damaged: bool,
    /// Timestamp the next packet should have (gap detection); `None` before the first.
    next_ts: Option<i64>,
    /// The file is cut: its last Ogg page does not end the stream.
    cut: bool,
    /// Decoded frames still to drop at the start (MP4 encoder delay, [`super::mp4`]).
    trim_skip: u64,
    /// Frames to return at most (MP4 edit length); the rest is encoder padding.
    trim_limit: Option<u64>,
}

impl std::fmt::Debug for AudioReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioReader")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Formats an error for `path` on one line: `path: message`.
fn err_at(path: &Path, msg: impl std::fmt::Display) -> anyhow::Error {
    let msg = msg.to_string().replace(['\n', '\r'], " ");
    anyhow!("{}: {}", path.display(), msg)
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Display name of a container, from symphonia's format short name.
fn container_name(short: &str) -> String {
    match short {
        "wave" => "WAV",
        "aiff" => "AIFF",
        "caf" => "CAF",
        "flac" => "FLAC",
        "mp1" => "MP1",
        "mp2" => "MP2",
        "mp3" => "MP3",
        "ogg" => "Ogg",
        "isomp4" => "MP4",
        "matroska" | "mkv" => "MKV",
        "aac" => "ADTS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Display name of a codec, from symphonia's codec short name.
fn codec_name(short: &str) -> String {
    match short {
        s if s.starts_with("pcm") => "PCM",
        s if s.starts_with("adpcm") => "ADPCM",
        "flac" => "FLAC",
        "mp1" => "MP1",
        "mp2" => "MP2",
        "mp3" => "MP3",
        "vorbis" => "Vorbis",
        "aac" => "AAC",
        "alac" => "ALAC",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Whether a codec (by symphonia short name) is lossy.
fn is_lossy(short: &str) -> bool {
    matches!(short, "mp1" | "mp2" | "mp3" | "aac" | "vorbis") || short.starts_with("adpcm")
}

/// Native sample format of a lossless stream.
fn native_format(params: &AudioCodecParameters) -> Option<SampleFormat> {
    use SymSampleFormat::*;
    let from_format = params.sample_format.map(|f| match f {
        U8 | S8 => SampleFormat::Int(8),
        U16 | S16 => SampleFormat::Int(16),
        U24 | S24 => SampleFormat::Int(24),
        U32 | S32 => SampleFormat::Int(32),
        F32 => SampleFormat::Float(32),
        F64 => SampleFormat::Float(64),
    });
    // The codec tells float PCM apart (WAV/AIFF readers leave `sample_format` unset).
    match short_name_of(params) {
        Some(s) if s.starts_with("pcm_f32") => return Some(SampleFormat::Float(32)),
        Some(s) if s.starts_with("pcm_f64") => return Some(SampleFormat::Float(64)),
        _ => {}
    }
    // bits_per_sample is the precise depth (e.g. 20-bit FLAC stored in S32).
    match (from_format, params.bits_per_sample) {
        (Some(SampleFormat::Float(b)), _) => Some(SampleFormat::Float(b)),
        (_, Some(bits)) if bits > 0 => Some(SampleFormat::Int(bits as u16)),
        (f, _) => f,
    }
}

/// Bit depth from an ALAC magic cookie (`ALACSpecificConfig`, possibly preceded by `frma`
/// and `alac` atom headers); symphonia's ALAC decoder does not report it.
fn alac_bit_depth(params: &AudioCodecParameters) -> Option<u16> {
    if short_name_of(params) != Some("alac") {
        return None;
    }
    let mut buf: &[u8] = params.extra_data.as_deref()?;
    for atom in [b"frma", b"alac"] {
        if buf.get(4..8) == Some(&atom[..]) {
            buf = buf.get(12..)?;
        }
    }
    // frameLength (u32), compatibleVersion (u8), bitDepth (u8), ...
    if buf.len() < 24 {
        return None;
    }
    buf.get(5).map(|&b| u16::from(b)).filter(|&b| b > 0)
}

/// symphonia's short name for the codec of `params`, when a decoder is registered for it.
/// "unsupported codec: Opus (convert it to FLAC or WAV first)" for a codec symphonia knows by
/// id but cannot decode; the id for one it does not know.
fn unsupported_codec(id: symphonia::core::codecs::audio::AudioCodecId) -> String {
    use symphonia::core::codecs::audio::well_known::*;
    let name = match id {
        CODEC_ID_OPUS => "Opus",
        CODEC_ID_SPEEX => "Speex",
        CODEC_ID_MUSEPACK => "Musepack",
        CODEC_ID_MP1 => "MPEG-1 Layer I",
        CODEC_ID_MP2 => "MPEG-1 Layer II",
        CODEC_ID_AC3 => "AC-3 (Dolby Digital)",
        CODEC_ID_EAC3 => "E-AC-3 (Dolby Digital Plus)",
        CODEC_ID_AC4 => "AC-4",
        CODEC_ID_DCA => "DTS",
        CODEC_ID_ATRAC1 | CODEC_ID_ATRAC3 | CODEC_ID_ATRAC3PLUS | CODEC_ID_ATRAC9 => "ATRAC",
        CODEC_ID_WMA => "WMA",
        CODEC_ID_RA10 | CODEC_ID_RA20 => "RealAudio",
        CODEC_ID_ADPCM_G722 | CODEC_ID_ADPCM_G726 | CODEC_ID_ADPCM_G726LE => "G.72x ADPCM",
        _ => return format!("unsupported codec (id {id}); convert it to FLAC or WAV first"),
    };
    format!("unsupported codec: {name} (this build cannot decode it; convert it to FLAC or WAV first)")
}

fn short_name_of(params: &AudioCodecParameters) -> Option<&'static str> {
    symphonia::default::get_codecs()
        .get_audio_decoder(params.codec)
        .map(|d| d.codec.info.short_name)
}

impl AudioReader {
    /// Opens and probes `path`. Errors name the file and the reason.
    ///
    /// Decodes the first packet, so a file that holds no audio, or whose first packet is
    /// undecodable, fails here rather than on the first [`read`](Self::read).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Damaged::Fail)
    }

    /// [`open`](Self::open) with a damage policy.
    pub fn open_with(path: &Path, policy: Damaged) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| err_at(path, format!("cannot open: {e}")))?;
        if meta.is_dir() {
            bail!(err_at(path, "is a directory, not an audio file"));
        }
        if meta.len() == 0 {
            bail!(err_at(path, "empty file (0 bytes)"));
        }
        let file = File::open(path).map_err(|e| err_at(path, format!("cannot open: {e}")))?;
        Self::from_source(
            path,
            Box::new(file),
            path.extension().and_then(|e| e.to_str()),
            policy,
            true,
        )
    }

    /// Opens audio held in memory (an archive member, a SoundFont 3 sample); `name` is the
    /// path errors and [`AudioInfo`] give, `ext` a format hint ("ogg").
    pub fn from_bytes(name: &Path, bytes: Vec<u8>, ext: Option<&str>, policy: Damaged) -> Result<Self> {
        if bytes.is_empty() {
            bail!(err_at(name, "empty file (0 bytes)"));
        }
        Self::from_source(name, Box::new(std::io::Cursor::new(bytes)), ext, policy, false)
    }

    fn from_source(
        path: &Path,
        source: Box<dyn symphonia::core::io::MediaSource>,
        ext: Option<&str>,
        policy: Damaged,
        is_file: bool,
    ) -> Result<Self> {
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = ext {
            hint.with_extension(ext);
        }
        let probed = quiet_catch(AssertUnwindSafe(|| {
            symphonia::default::get_probe().probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        }));
        let format = match probed {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => bail!(err_at(path, format!("not a supported audio file ({e})"))),
            Err(p) => bail!(err_at(
                path,
                format!("not a supported audio file (probe crashed: {})", panic_message(&*p))
            )),
        };
        let container = container_name(format.format_info().short_name);
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| err_at(path, "contains no audio track"))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| err_at(path, "contains no audio track"))?
            .clone();
        let track_id = track.id;
        let frames = track.num_frames;
        let length_estimated = format.format_info().short_name == "mp3" && track.delay.is_none();

        let sample_rate = params
            .sample_rate
            .ok_or_else(|| err_at(path, "sample rate is not stated"))?;
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            bail!(err_at(
                path,
                format!(
                    "sample rate {sample_rate} Hz is outside the supported range \
                     {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
                )
            ));
        }
        if frames == Some(0) {
            bail!(err_at(path, "contains no audio"));
        }
        // Gapless MP4: the encoder delay and padding come off (symphonia keeps them).
        let gapless = if is_file && container == "MP4" {
            File::open(path)
                .ok()
                .and_then(|mut f| super::mp4::gapless(&mut f, sample_rate))
        } else {
            None
        };
        let frames = gapless.and_then(|g| g.length).or(frames);
        // An Ogg file whose pages symphonia could not all read states no length: its last
        // page does (a corrupt page then shows as a stream that ends early).
        let ogg_last = match frames {
            None if is_file && container == "Ogg" => {
                File::open(path).ok().and_then(|mut f| super::ogg::last_page(&mut f))
            }
            _ => None,
        };
        let frames = frames.or(ogg_last.map(|p| p.granule));
        let cut = ogg_last.is_some_and(|p| !p.end_of_stream);

        let codecs = symphonia::default::get_codecs();
        let short = short_name_of(&params).ok_or_else(|| err_at(path, unsupported_codec(params.codec)))?;
        let made = quiet_catch(AssertUnwindSafe(|| {
            codecs.make_audio_decoder(&params, &AudioDecoderOptions::default())
        }));
        let decoder = match made {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => bail!(err_at(path, format!("cannot decode {short} audio ({e})"))),
            Err(p) => bail!(err_at(
                path,
                format!("cannot decode {short} audio ({})", panic_message(&*p))
            )),
        };
        let lossy = is_lossy(short);
        let channels = params.channels.as_ref().map_or(0, |c| c.count());

        let mut reader = Self {
            info: AudioInfo {
                path: path.to_path_buf(),
                container,
                codec: codec_name(short),
                sample_rate,
                channels,
                // The decoder's parameters are more complete (e.g. ALAC's bit depth is in
                // its magic cookie, which the container does not parse).
                sample_format: if lossy {
                    None
                } else {
                    native_format(decoder.codec_params())
                        .or_else(|| native_format(&params))
                        .or_else(|| alac_bit_depth(&params).map(SampleFormat::Int))
                },
                frames,
            },
            format,
            decoder,
            track_id,
            lossy,
            length_estimated,
            buf: Vec::new(),
            pos: 0,
            decoded: 0,
            done: None,
            policy,
            damage: Damage::default(),
            damaged: false,
            next_ts: None,
            cut,
            trim_skip: gapless.map_or(0, |g| g.delay),
            trim_limit: gapless.and_then(|g| g.length),
        };
        // Prime: decode the first packet (this also learns the channel count when the
        // container does not state it).
        if !reader.fill()? {
            bail!(err_at(path, "contains no audio"));
        }
        if reader.info.channels == 0 {
            bail!(err_at(path, "contains no audio channels"));
        }
        Ok(reader)
    }

    /// Information about the file.
    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// What damage the stream had, once it has been read to the end with a policy that keeps
    /// what decodes (`None`: none, or not read to the end yet).
    pub fn damage(&self) -> Option<&Damage> {
        (self.damaged && matches!(self.done, Some(Ok(())))).then_some(&self.damage)
    }

    /// Whether damage in this stream is kept rather than an error.
    fn keeps_damage(&self) -> bool {
        match self.policy {
            Damaged::Fail => false,
            Damaged::Keep => true,
            Damaged::KeepLossy => self.lossy,
        }
    }

    /// Records damage starting at the current position.
    fn note_damage(&mut self) {
        if !self.damaged {
            self.damaged = true;
            self.damage.at_frame = self.decoded;
        }
    }

    /// Decodes the rest of the file into memory (for whole-signal work such as scoring).
    pub fn read_to_end(&mut self) -> Result<Planar> {
        let mut out: Planar = vec![Vec::new(); self.info.channels];
        while self.read(&mut out, 1 << 16)? > 0 {}
        Ok(out)
    }

    /// Appends up to `max_frames` decoded frames to `out` (one Vec per channel; `out` is
    /// resized to the channel count when empty). Returns the number of frames appended;
    /// 0 means end of stream.
    pub fn read(&mut self, out: &mut Planar, max_frames: usize) -> Result<usize> {
        let ch = self.info.channels;
        if out.is_empty() {
            out.resize(ch, Vec::new());
        }
        if out.len() != ch {
            bail!(err_at(
                &self.info.path,
                format!("read into {} channels, file has {ch}", out.len())
            ));
        }
        let mut n = 0;
        while n < max_frames {
            let avail = super::frames(&self.buf) - self.pos;
            if avail == 0 {
                if !self.fill()? {
                    break;
                }
                continue;
            }
            let take = avail.min(max_frames - n);
            for (o, b) in out.iter_mut().zip(&self.buf) {
                o.extend_from_slice(&b[self.pos..self.pos + take]);
            }
            self.pos += take;
            n += take;
        }
        Ok(n)
    }

    /// Decodes the next non-empty packet into `buf`. Returns false at end of stream.
    fn fill(&mut self) -> Result<bool> {
        match &self.done {
            Some(Ok(())) => return Ok(false),
            Some(Err(e)) => bail!("{e}"),
            None => {}
        }
        let res = self.fill_inner();
        match &res {
            Ok(false) => self.done = Some(Ok(())),
            Err(e) => self.done = Some(Err(format!("{e:#}"))),
            Ok(true) => {}
        }
        res
    }

    fn fill_inner(&mut self) -> Result<bool> {
        let path = self.info.path.clone();
        let mut bad_in_row = 0usize;
        loop {
            let at = self.decoded;
            let next = quiet_catch(AssertUnwindSafe(|| self.format.next_packet()));
            let packet = match next {
                Ok(Ok(Some(p))) => p,
                // End of stream; for chained Ogg streams, the first stream is the file.
                Ok(Ok(None)) | Ok(Err(SymError::ResetRequired)) => return self.end(),
                // The data ends early (truncated file): the length check in `end` sees it.
                Ok(Err(SymError::IoError(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.end();
                }
                // The container breaks off after some audio: the rest counts as lost.
                Ok(Err(e)) if at > 0 => {
                    self.note_damage();
                    if self.damage.first_error.is_empty() {
                        self.damage.first_error = format!("container: {e}");
                    }
                    self.damage.ends_early = true;
                    return self.end();
                }
                Ok(Err(e)) => bail!(err_at(&path, format!("cannot read audio at frame {at}: {e}"))),
                Err(p) => bail!(err_at(
                    &path,
                    format!(
                        "cannot read audio at frame {at}: demuxer crashed: {}",
                        panic_message(&*p)
                    )
                )),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            // A demuxer that meets a corrupt frame or page skips to the next one (FLAC, Ogg):
            // the timestamps jump. (A packet's timestamps advance by its decoded length, delay
            // and padding included.)
            let pts = packet.pts.get();
            if let Some(want) = self.next_ts
                && pts > want
            {
                self.note_damage();
                self.damage.skipped_frames += (pts - want) as u64;
            }
            self.next_ts = Some(pts.saturating_add(packet.block_dur().get().min(i64::MAX as u64) as i64));
            let decoded = quiet_catch(AssertUnwindSafe(|| {
                self.decoder
                    .decode(&packet)
                    .map(|buf| (buf.frames(), buf.spec().channels().count()))
            }));
            let (frames, channels) = match decoded {
                Ok(Ok(x)) => x,
                // Once audio has decoded, an "unsupported feature" is corrupt data too (a
                // damaged AAC packet reads as a program config or a coupling element).
                Ok(Err(e @ (SymError::DecodeError(_) | SymError::IoError(_))))
                | Ok(Err(e @ SymError::Unsupported(_)))
                    if at > 0 || !matches!(e, SymError::Unsupported(_)) =>
                {
                    self.note_damage();
                    if self.damage.bad_packets == 0 {
                        self.damage.first_error = e.to_string();
                    }
                    self.damage.bad_packets += 1;
                    self.damage.bad_frames += packet.dur.get();
                    bad_in_row += 1;
                    if bad_in_row > MAX_BAD_PACKETS {
                        if self.policy == Damaged::KeepLossy {
                            // The corpus rule: such a file is left out.
                            bail!(err_at(
                                &path,
                                format!("corrupt audio data at frame {at} ({bad_in_row} bad packets in a row: {e})")
                            ));
                        }
                        // The rest of the stream counts as lost.
                        return self.end();
                    }
                    continue;
                }
                Ok(Err(e)) => bail!(err_at(&path, format!("cannot decode audio at frame {at}: {e}"))),
                Err(p) => bail!(err_at(
                    &path,
                    format!(
                        "corrupt audio data at frame {at} (decoder crashed: {})",
                        panic_message(&*p)
                    )
                )),
            };
            bad_in_row = 0;
            if frames == 0 {
                continue;
            }
            if self.info.channels == 0 {
                self.info.channels = channels;
            } else if channels != self.info.channels {
                bail!(err_at(
                    &path,
                    format!(
                        "channel count changes from {} to {channels} at frame {at}",
                        self.info.channels
                    )
                ));
            }
            self.decoder.last_decoded().copy_to_vecs_planar::<f32>(&mut self.buf);
            self.pos = 0;
            if let Some(i) = (0..frames).find(|&i| self.buf.iter().any(|c| !c[i].is_finite())) {
                bail!(err_at(
                    &path,
                    format!("contains NaN or infinite samples at frame {}", at + i as u64)
                ));
            }
            // Gapless trim: encoder delay off the front, padding off the end.
            let start = self.trim_skip.min(frames as u64) as usize;
            self.trim_skip -= start as u64;
            let end = match self.trim_limit {
                Some(limit) => frames.min(start + limit.saturating_sub(self.decoded) as usize),
                None => frames,
            };
            if start > 0 || end < frames {
                for c in &mut self.buf {
                    c.truncate(end.max(start));
                    c.drain(..start);
                }
            }
            let kept = end.saturating_sub(start);
            if kept == 0 {
                if self.trim_limit.is_some_and(|l| self.decoded >= l) {
                    return self.end();
                }
                continue;
            }
            self.decoded += kept as u64;
            if self.damaged && !self.keeps_damage() {
                // Failing: read on to measure the loss, return nothing more.
                self.buf.iter_mut().for_each(Vec::clear);
                continue;
            }
            return Ok(true);
        }
    }

    /// End of stream: checks the length against the header, then fails on damage unless the
    /// policy keeps it. Nothing decoded is always an error.
    fn end(&mut self) -> Result<bool> {
        self.buf.iter_mut().for_each(Vec::clear);
        self.pos = 0;
        let stated = self.info.frames.filter(|&n| !self.length_is_placeholder(n));
        let allowed_short = if self.length_estimated {
            stated.map_or(0, estimate_tolerance)
        } else {
            0
        };
        if let Some(n) = stated
            && self.decoded + allowed_short < n
        {
            self.note_damage();
            // Where the damage started: the first bad packet, or here.
            let explained = self.damage.skipped_frames + self.damage.bad_frames;
            self.damage.ends_early |= explained + allowed_short < n - self.decoded;
        }
        if self.cut {
            self.note_damage();
            self.damage.cut = true;
        }
        if self.decoded == 0 && self.damaged {
            bail!(err_at(
                &self.info.path,
                format!("no decodable audio ({})", self.summary())
            ));
        }
        if self.damaged {
            self.damage.decoded = self.decoded;
            self.damage.stated = stated;
            let explained = self.damage.skipped_frames + self.damage.bad_frames;
            self.damage.lost_frames = match stated {
                Some(n) => n.saturating_sub(self.decoded).max(explained),
                None => explained,
            };
            if !self.keeps_damage() {
                bail!(err_at(
                    &self.info.path,
                    format!(
                        "{} (separate --allow-damaged keeps what decodes)",
                        self.damage.describe(self.info.sample_rate)
                    )
                ));
            }
        }
        Ok(false)
    }

    /// The damage so far, for the "nothing decoded" error.
    fn summary(&self) -> String {
        if self.damage.bad_packets > 0 {
            format!("{} bad packets: {}", self.damage.bad_packets, self.damage.first_error)
        } else {
            "the stream ends before any audio".into()
        }
    }

    /// Whether a stated length is a streaming writer's "unknown length" placeholder (a WAV
    /// data chunk of about 4 GiB), which is not checked.
    fn length_is_placeholder(&self, stated: u64) -> bool {
        let bytes_per_sample = match self.info.sample_format {
            Some(SampleFormat::Int(b) | SampleFormat::Float(b)) => u64::from(b).div_ceil(8),
            None => 2,
        };
        stated * self.info.channels as u64 * bytes_per_sample >= 0xFFFF_0000
    }
}
