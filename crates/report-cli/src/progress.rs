//! Progress on stderr: a live bar on a terminal, plain lines otherwise, nothing with --quiet.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use report_core::Status;

use crate::output::{clean, log_only, stderr_line};

/// Shows a job's progress.
pub struct Reporter {
    vendor: &'static str,
    bar: Option<ProgressBar>,
    plain: bool,
    last: String,
}

impl Reporter {
    /// A bar when stderr is a terminal, plain lines when not, nothing when `quiet`.
    pub fn new(vendor: &'static str, quiet: bool) -> Self {
        if quiet {
            return Reporter {
                vendor,
                bar: None,
                plain: false,
                last: String::new(),
            };
        }
        if std::io::stderr().is_terminal() {
            Self::with_bar(vendor, ProgressBar::new(100))
        } else {
            Reporter {
                vendor,
                bar: None,
                plain: true,
                last: String::new(),
            }
        }
    }

    /// A reporter drawing on `bar` (e.g. one line of a `MultiProgress`).
    pub fn with_bar(vendor: &'static str, bar: ProgressBar) -> Self {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} {prefix:<9} [{bar:30.cyan/blue}] {pos:>3}% {elapsed:>4} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_length(100);
        bar.set_prefix(vendor);
        bar.enable_steady_tick(Duration::from_millis(120));
        Reporter {
            vendor,
            bar: Some(bar),
            plain: false,
            last: String::new(),
        }
    }

    /// Shows a status.
    pub fn status(&mut self, status: &Status) {
        let (percent, text) = describe(status);
        if let Some(bar) = &self.bar {
            if let Some(p) = percent {
                bar.set_position(p);
            }
            bar.set_message(clean(&text));
        }
        let line = match percent {
            Some(p) => format!("{}: {text} ({p}%)", self.vendor),
            None => format!("{}: {text}", self.vendor),
        };
        if line != self.last {
            self.line(&line);
            self.last = line;
        }
    }

    /// Shows a phase of the job (e.g. downloading).
    pub fn phase(&mut self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(clean(text));
        }
        self.line(&format!("{}: {text}", self.vendor));
    }

    /// Ends the display with a final line.
    pub fn finish(&mut self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(100);
            bar.finish_with_message(clean(text));
        }
        self.line(&format!("{}: {text}", self.vendor));
    }

    /// A plain progress line on stderr; with a bar or `-q`, in the log file only.
    fn line(&self, text: &str) {
        if self.plain {
            plain_line(text);
        } else {
            log_only(text);
        }
    }

    /// Ends the display after a failure.
    pub fn abandon(&mut self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.abandon_with_message(clean(text));
        }
    }
}

/// A progress line for logs and pipes, with the local time in front.
fn plain_line(text: &str) {
    stderr_line(&format!(
        "{} {text}",
        chrono::Local::now().format("%H:%M:%S")
    ));
}

/// Percent (if known) and a short text for a status.
pub fn describe(status: &Status) -> (Option<u64>, String) {
    match status {
        Status::Pending(p) => {
            let percent = p
                .fraction
                .map(|f| (f.clamp(0.0, 1.0) * 100.0).round() as u64);
            let mut text = if p.vendor_state.is_empty() {
                "pending".to_string()
            } else {
                p.vendor_state.clone()
            };
            if let Some(m) = &p.message {
                text.push_str(&format!(": {m}"));
            }
            if let Some(eta) = p.eta {
                text.push_str(&format!(" (expected {})", eta.format("%H:%M:%S UTC")));
            }
            (percent, text)
        }
        Status::Ready(_) => (Some(100), "ready".into()),
        Status::Failed { message, .. } => (None, format!("failed: {message}")),
        Status::Cancelled => (None, "cancelled".into()),
        _ => (None, status.name().into()),
    }
}
