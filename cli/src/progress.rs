//! Progress bars on stderr, drawn only when stderr is a terminal: scripts and pipes see
//! nothing extra.

use core::time::Duration;
use std::io::{self, IsTerminal as _, Write as _};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether to draw progress bars.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ui {
    pub(crate) progress: bool,
}

impl Ui {
    /// Bars only on a terminal, and not when the user said `--no-progress`.
    pub(crate) fn detect(no_progress: bool) -> Self {
        Ui {
            progress: !no_progress && io::stderr().is_terminal(),
        }
    }

    /// A bar over `total` units (`bytes`: shown as sizes), or a spinner when the total is
    /// unknown.
    pub(crate) fn bar(&self, message: &str, total: Option<u64>, bytes: bool) -> Progress {
        if !self.progress {
            return Progress { bar: None };
        }
        let (template, bar) = match (total, bytes) {
            (Some(n), true) => (
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
                ProgressBar::new(n),
            ),
            (Some(n), false) => (
                "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} ({eta})",
                ProgressBar::new(n),
            ),
            (None, true) => (
                "{spinner} {msg} {bytes} ({bytes_per_sec})",
                ProgressBar::no_length(),
            ),
            (None, false) => (
                "{spinner} {msg} {human_pos} ({elapsed})",
                ProgressBar::no_length(),
            ),
        };
        // The templates are constants: a bad one is a bug, shown as a plain bar.
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(style);
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }
}

/// A progress bar, or nothing.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Prints a line on stderr without tearing the bar.
    pub(crate) fn warn(&self, line: &str) {
        let write = || {
            let _ = writeln!(io::stderr().lock(), "{line}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
