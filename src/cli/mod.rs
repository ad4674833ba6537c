//! The command line: flags in [`args`], one module per subcommand. Exit status: 0 success,
//! 1 when any file failed, 2 for invalid usage.

pub mod args;
pub mod data;
mod info;
mod models;
mod progress;
mod report;
mod score;
mod separate;
mod train;

use clap::Parser;

pub use args::Cli;

/// Parses `std::env::args` and runs the command; returns the process exit status.
pub fn main() -> i32 {
    crate::audio::decode::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match &cli.command {
        args::Command::Separate(a) => separate::run(a),
        args::Command::Info(a) => info::run(a),
        args::Command::Score(a) => score::run(a),
        args::Command::Report(a) => report::run(a),
        args::Command::Data(a) => data::run(a),
        args::Command::Train(a) => train::run(a),
        args::Command::Models(a) => models::run(a),
    }
}
