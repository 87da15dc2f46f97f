//! Everything the command line prints goes through here, so text a vendor controls can never
//! forge a line or drive the terminal: control characters are shown escaped.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// `--log-file`: every printed line and every log event, with a timestamp.
static LOG: OnceLock<Mutex<File>> = OnceLock::new();

/// Appends to `path` from now on.
pub fn open_log(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = LOG.set(Mutex::new(file));
    Ok(())
}

/// Whether `--log-file` is on.
pub fn logging() -> bool {
    LOG.get().is_some()
}

fn log_line(text: &str) {
    if let Some(file) = LOG.get() {
        let line = format!(
            "{} {text}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        if let Ok(mut file) = file.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The log file as a writer for tracing's events (which carry their own timestamps).
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = LOG.get()
            && let Ok(mut file) = file.lock()
        {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`…), so it prints as
/// exactly one inert line.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A writer for log events (tracing) that escapes what a vendor's text could smuggle in: a
/// newline inside an event, a carriage return, control characters. With `colour`, the escape
/// sequences of the colours themselves are kept (tracing escapes those in field values).
pub struct CleanWriter<W> {
    inner: W,
    colour: bool,
}

impl<W: std::io::Write> CleanWriter<W> {
    pub fn new(inner: W, colour: bool) -> Self {
        CleanWriter { inner, colour }
    }
}

impl<W: std::io::Write> std::io::Write for CleanWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_ref(), ""),
        };
        let cleaned = if self.colour {
            body.split('\u{1b}')
                .map(clean)
                .collect::<Vec<_>>()
                .join("\u{1b}")
        } else {
            clean(body)
        };
        self.inner.write_all(cleaned.as_bytes())?;
        self.inner.write_all(newline.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Prints one line on stdout. A closed pipe (`reports … | head`) is not an error worth a panic.
pub fn stdout_line(text: &str) {
    let text = clean(text);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
    log_line(&text);
}

/// Prints one line on stderr.
pub fn stderr_line(text: &str) {
    let text = clean(text);
    let _ = writeln!(std::io::stderr().lock(), "{text}");
    log_line(&text);
}

/// Writes a line to the log file only (progress that `-q` keeps off the terminal).
pub fn log_only(text: &str) {
    log_line(&clean(text));
}

/// Prints lines on stderr, each cleaned on its own (for messages of several lines).
pub fn stderr_lines<'a>(lines: impl IntoIterator<Item = &'a str>) {
    for line in lines {
        stderr_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_events_cannot_forge_lines() {
        use std::io::Write;
        let mut out = Vec::new();
        CleanWriter::new(&mut out, false)
            .write_all(b"WARN state=x\nerror: forged\x1b[2J\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "WARN state=x\\nerror: forged\\u{1b}[2J\n"
        );
        let mut out = Vec::new();
        CleanWriter::new(&mut out, true)
            .write_all(b"\x1b[33mWARN\x1b[0m a\rb\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{1b}[33mWARN\u{1b}[0m a\\rb\n"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            clean("bad\nerror: forged\r\u{1b}[2J\u{7}\u{9b}"),
            "bad\\nerror: forged\\r\\u{1b}[2J\\u{7}\\u{9b}"
        );
    }
}
