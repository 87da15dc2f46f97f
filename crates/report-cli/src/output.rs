//! Everything the command line prints goes through here, so text a vendor controls can never
//! forge a line or drive the terminal: control characters are shown escaped.

use std::fmt::Write as _;
use std::io::Write as _;

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

/// Prints one line on stdout. A closed pipe (`reports … | head`) is not an error worth a panic.
pub fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", clean(text));
    let _ = out.flush();
}

/// Prints one line on stderr.
pub fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(text));
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
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            clean("bad\nerror: forged\r\u{1b}[2J\u{7}\u{9b}"),
            "bad\\nerror: forged\\r\\u{1b}[2J\\u{7}\\u{9b}"
        );
    }
}
