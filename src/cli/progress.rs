//! Progress bars shared by every subcommand (indicatif): the bars are drawn on stderr unless
//! `--quiet`; lines printed while bars are drawn go above them.

use indicatif::{MultiProgress, ProgressDrawTarget, ProgressStyle};

/// A bar group drawing on stderr, or hidden with `quiet`.
pub fn multi(quiet: bool) -> MultiProgress {
    MultiProgress::with_draw_target(if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    })
}

/// Prints through the bars when they are drawn, else straight to stderr.
pub fn say(mp: &MultiProgress, line: String) {
    if mp.is_hidden() {
        eprintln!("{line}");
    } else {
        let _ = mp.println(line);
    }
}

/// A bar style from an indicatif template and the bar's fill characters.
pub fn bar(template: &str, chars: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars(chars)
}

/// A spinner style from an indicatif template.
pub fn spinner(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}
