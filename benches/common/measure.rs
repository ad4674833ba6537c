//! Timing a child process: wall seconds and its own peak RSS (shared by the benches that run
//! the binary).

use std::process::Command;
use std::time::Instant;

/// Runs a command to completion; (wall seconds, peak RSS in MB of that process).
// The child is reaped by wait4 (which also reports its own peak RSS), not Child::wait.
#[allow(clippy::zombie_processes)]
pub fn measure(cmd: &mut Command) -> (f64, f64) {
    let start = Instant::now();
    let child = cmd.spawn().expect("cannot start command");
    let mut status = 0;
    // SAFETY: wait4 writes only the status and the rusage struct we pass, for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (secs, usage.ru_maxrss as f64 / 1024.0)
}
