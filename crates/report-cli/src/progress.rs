//! Progress on stderr: a live bar on a terminal, plain lines otherwise, nothing with --quiet.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};
use report_core::Status;

use crate::counting::Received;
use crate::output::{clean, log_only, stderr_line};

/// Shows a job's progress.
pub struct Reporter {
    vendor: &'static str,
    bar: Option<ProgressBar>,
    plain: bool,
    last: String,
    download: Option<ByteProgress>,
}

/// How a download has gone so far, for its rate and ETA.
struct ByteProgress {
    began: Instant,
    /// When the last plain line was printed.
    printed: Option<Instant>,
}

/// Plain progress lines of a download come at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

impl Reporter {
    /// A bar when stderr is a terminal, plain lines when not, nothing when `quiet`.
    pub fn new(vendor: &'static str, quiet: bool) -> Self {
        if quiet {
            return Reporter {
                vendor,
                bar: None,
                plain: false,
                last: String::new(),
                download: None,
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
                download: None,
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
            download: None,
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

    /// The download begins: its rate is measured from now.
    pub fn start_download(&mut self) {
        self.phase("downloading");
        self.download = Some(ByteProgress {
            began: Instant::now(),
            printed: None,
        });
    }

    /// Shows a download's bytes, rate and ETA (called a few times a second while it runs).
    pub fn bytes(&mut self, received: &Received) {
        let bytes = received.bytes.load(Ordering::Relaxed);
        let total = received.total.load(Ordering::Relaxed);
        let offset = received.offset.load(Ordering::Relaxed);
        let progress = self.download.get_or_insert_with(|| ByteProgress {
            began: Instant::now(),
            printed: None,
        });
        let elapsed = progress.began.elapsed().as_secs_f64();
        let rate = (bytes.saturating_sub(offset) as f64 / elapsed.max(0.001)) as u64;
        if let Some(bar) = &self.bar {
            if bar.length() == Some(100) && total > 0 {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.green} {prefix:<9} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_length(total);
                bar.reset_eta();
            }
            if total > 0 {
                bar.set_position(bytes.min(total));
            } else {
                bar.set_message(format!("downloading {}", HumanBytes(bytes)));
            }
            return;
        }
        if progress
            .printed
            .is_some_and(|at| at.elapsed() < PLAIN_EVERY)
        {
            return;
        }
        progress.printed = Some(Instant::now());
        let mut line = format!("{}: downloading {}", self.vendor, HumanBytes(bytes));
        if total > 0 {
            line.push_str(&format!(" of {}", HumanBytes(total)));
        }
        line.push_str(&format!(", {}/s", HumanBytes(rate)));
        if total > bytes && rate > 0 {
            let eta = Duration::from_secs((total - bytes) / rate);
            line.push_str(&format!(", eta {}", HumanDuration(eta)));
        }
        self.line(&line);
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
