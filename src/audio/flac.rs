//! FLAC output, streamed (flacenc encodes the frames; this module writes them as they come):
//! `fLaC` and a STREAMINFO block first, as a placeholder of the final size, then one frame per
//! 4,096 frames of audio, and at the end the STREAMINFO again with the total length, the
//! frame sizes and the MD5 of the samples. Memory is one block whatever the length; integer
//! samples of 8 to 24 bits (FLAC as flacenc writes it).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};

use anyhow::{Context, anyhow, ensure};
use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, Stream, StreamInfo};
use flacenc::config;
use flacenc::error::Verify;
use flacenc::source::{Context as Md5Context, Fill, FrameBuf};

use crate::Result;

/// Frames per FLAC frame (libFLAC's default for 44.1/48 kHz).
pub const BLOCK_SIZE: usize = 4096;

/// Bits per sample FLAC output can store.
pub const BITS: std::ops::RangeInclusive<u16> = 8..=24;

/// A FLAC stream being written to `file`.
pub struct FlacWriter {
    file: BufWriter<File>,
    config: flacenc::error::Verified<config::Encoder>,
    /// Verbatim subframes only: the fallback for a frame the predictive coder botched.
    verbatim: flacenc::error::Verified<config::Encoder>,
    bits: usize,
    info: StreamInfo,
    md5: Md5Context,
    channels: usize,
    /// Interleaved samples not yet encoded (fewer than one block).
    pending: Vec<i32>,
    frame_number: usize,
    framebuf: FrameBuf,
}

fn flac_err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("FLAC encoder: {e:?}")
}

/// `fLaC` + the STREAMINFO block (the only metadata block) for `info`.
fn header(info: &StreamInfo) -> Result<Vec<u8>> {
    let stream = Stream::with_stream_info(info.clone());
    let mut sink = ByteSink::new();
    stream.write(&mut sink).map_err(flac_err)?;
    Ok(sink.into_inner())
}

impl FlacWriter {
    /// Starts a stream in `file` (positioned at its start).
    pub fn new(file: File, sample_rate: u32, channels: usize, bits: u16) -> Result<Self> {
        ensure!(
            BITS.contains(&bits),
            "FLAC output stores 8- to 24-bit integer samples, not {bits}-bit (use --bit-depth 16 or 24, or WAV)"
        );
        ensure!(
            (1..=8).contains(&channels),
            "FLAC output has 1 to 8 channels, not {channels} (use WAV)"
        );
        let mut info = StreamInfo::new(sample_rate as usize, channels, bits as usize).map_err(flac_err)?;
        info.set_block_sizes(BLOCK_SIZE, BLOCK_SIZE).map_err(flac_err)?;
        let placeholder = {
            let mut p = info.clone();
            p.set_frame_sizes(0, 0).map_err(flac_err)?;
            p
        };
        let config = config::Encoder::default()
            .into_verified()
            .map_err(|(_, e)| flac_err(e))?;
        let mut plain = config::Encoder::default();
        plain.subframe_coding.use_fixed = false;
        plain.subframe_coding.use_lpc = false;
        let verbatim = plain.into_verified().map_err(|(_, e)| flac_err(e))?;
        let mut file = BufWriter::new(file);
        // A placeholder of the same size, rewritten by `finish`.
        file.write_all(&header(&placeholder)?)?;
        Ok(FlacWriter {
            file,
            config,
            verbatim,
            bits: bits as usize,
            info,
            md5: Md5Context::new(bits as usize, channels),
            channels,
            pending: Vec::with_capacity(BLOCK_SIZE * channels),
            frame_number: 0,
            framebuf: FrameBuf::with_size(channels, BLOCK_SIZE).map_err(flac_err)?,
        })
    }

    /// Appends interleaved integer samples (in range for the bit depth).
    pub fn write_interleaved(&mut self, samples: &[i32]) -> Result<()> {
        let block = BLOCK_SIZE * self.channels;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (block - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == block {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    /// Encodes the pending samples as one frame (a full block, or the shorter last one).
    fn encode_pending(&mut self) -> Result<()> {
        let frames = self.pending.len() / self.channels;
        if frames == 0 {
            return Ok(());
        }
        // A shorter last block fills part of the buffer; the frame takes the filled size.
        self.framebuf.fill_interleaved(&self.pending).map_err(flac_err)?;
        self.md5.fill_interleaved(&self.pending).map_err(flac_err)?;
        let mut frame = flacenc::encode_fixed_size_frame(&self.config, &self.framebuf, self.frame_number, &self.info)
            .map_err(flac_err)?;
        // flacenc 0.5's Rice parameter search sums residuals in 32 bits: on loud 24-bit audio
        // it can overflow and pick a parameter that makes the frame huge (a 415 kB frame for
        // 4,096 stereo frames, which ffmpeg and symphonia refuse although it is valid). A
        // frame larger than its samples stored plainly is encoded again verbatim.
        let plain_bits = self.channels * (self.bits + 1) * frames + 8 * 64;
        if frame.count_bits() > plain_bits {
            frame = flacenc::encode_fixed_size_frame(&self.verbatim, &self.framebuf, self.frame_number, &self.info)
                .map_err(flac_err)?;
        }
        self.info.update_frame_info(&frame);
        let mut sink = ByteSink::new();
        frame.write(&mut sink).map_err(flac_err)?;
        self.file.write_all(sink.as_slice())?;
        self.frame_number += 1;
        self.pending.clear();
        Ok(())
    }

    /// Encodes what is pending, rewrites the STREAMINFO with the final figures, flushes.
    pub fn finish(mut self) -> Result<()> {
        self.encode_pending()?;
        // Fixed blocking: the minimum block size leaves out the (shorter) last block.
        self.info.set_block_sizes(BLOCK_SIZE, BLOCK_SIZE).map_err(flac_err)?;
        if self.frame_number == 0 {
            // No audio: frame sizes 0 mean "unknown".
            self.info.set_frame_sizes(0, 0).map_err(flac_err)?;
        }
        self.info.set_md5_digest(&self.md5.md5_digest());
        let head = header(&self.info)?;
        self.file.flush()?;
        let file = self.file.get_mut();
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&head).context("cannot rewrite the FLAC header")?;
        file.flush()?;
        Ok(())
    }
}
