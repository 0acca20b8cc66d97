//! The one way a log line reaches stderr.
//!
//! Log lines carry text that came from the network: user names, paths, command lines, reply texts. A
//! control byte in them (ESC, CR, a bare LF) would let a client forge log lines or drive the terminal of
//! whoever reads the log (`USER evil\x1b[31m...\rFAKE LINE`). Rather than trusting every call site to
//! escape each such field, [`write_line`] escapes the whole formatted line: a log line never contains a
//! legitimate control character, so escaping all of them is both safe and lossless to read.
//!
//! Backslashes are left alone, so text that was escaped already (the library escapes the command lines
//! of `Event::Command` itself) is not escaped twice into `\\x1b`.

use std::fmt::{self, Write as _};
use std::io::Write as _;

/// Logs a line of session `number` (`[#N] message`).
pub fn session(number: u64, message: fmt::Arguments<'_>) {
    write_line(format_args!("[#{number}] {message}"));
}

/// Logs a line about the server as a whole (`server: message`).
pub fn server(message: fmt::Arguments<'_>) {
    write_line(format_args!("server: {message}"));
}

/// Formats, escapes and writes one line to stderr, in one write (lines of concurrent sessions do not
/// interleave). A failed write to stderr is ignored: there is nowhere left to report it.
fn write_line(message: fmt::Arguments<'_>) {
    let mut line = escape(&message.to_string());
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Replaces every control character (C0, DEL and C1) by `\xNN` (or `\u{NNNN}` above 0xff).
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let code = u32::from(c);
            let _ = if code <= 0xff {
                write!(escaped, "\\x{code:02x}")
            } else {
                write!(escaped, "\\u{{{code:04x}}}")
            };
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(
            escape("evil\x1b[31mRED\rFAKE\nLINE\x7f\u{85}"),
            "evil\\x1b[31mRED\\x0dFAKE\\x0aLINE\\x7f\\x85"
        );
        assert_eq!(
            escape("plain /pub/a b.txt \\x41"),
            "plain /pub/a b.txt \\x41"
        );
    }
}
