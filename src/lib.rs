//! splitflow: query-conditioned audio source separation.
//!
//! The pipeline reads as the module tree:
//! [`audio`] (decode, resample, encode) → [`dsp`] (STFT) → [`separate`] (separators, the
//! chunked engine, per-file processing and batches). The binary in `src/main.rs` only parses
//! flags ([`cli`]) and calls into this library.

pub mod atomic;
pub mod audio;
pub mod cli;
pub mod data;
pub mod demo;
pub mod dsp;
pub mod flow;
pub mod metrics;
pub mod model;
pub mod report;
pub mod score;
pub mod separate;
pub mod train;
pub mod viz;

/// Library result type. Errors carry context (file name, reason) and print on one line with
/// `{:#}`.
pub type Result<T> = anyhow::Result<T>;

/// candle allocates a fresh buffer for every tensor op. glibc's malloc serves large blocks
/// with mmap and, with its dynamic threshold, kept returning them to the kernel, which zeroes
/// the pages on the next mmap: half of a training step was system time. A fixed 32 MiB mmap
/// threshold (glibc's maximum) and no trimming keep the buffers in the heap for reuse.
/// Measured on a cpu-small training run: system time 12.2 s -> 5.3 s, wall 39 s -> 30 s.
/// (mimalloc was tried and was worse here: 31 s of system time, it purges eagerly.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; meant to be called before any other thread runs (the binary's first
    // statement, a benchmark's).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Restores the default action of SIGPIPE (Rust ignores it, so a write to a closed pipe became
/// a panic: `splitflow models | head -3` printed "failed printing to stdout: Broken pipe" and a
/// backtrace). With the default, output into a closed pipe ends the process quietly, as
/// coreutils and ripgrep do.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn quiet_broken_pipe() {
    // SAFETY: resetting a signal disposition to its default; called first thing in main.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn quiet_broken_pipe() {}
