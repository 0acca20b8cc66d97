//! What a command line looks like in the log ([`Event::Command`](super::Event::Command)).
//!
//! The log is read by people and tools, and the peer chooses every byte of a line: a password must not
//! reach it, and neither may bytes that forge a second log line or drive the terminal it is viewed on.
//! Kept apart from the dispatch so that the one redaction rule has one home.

/// Verbs whose argument is a secret: a password, an account (often a second password), and RFC 2228
/// security data (authentication tokens).
const SECRET_VERBS: [&str; 3] = ["PASS", "ACCT", "ADAT"];

/// The line as it may appear in a log: the argument of a [`SECRET_VERBS`] verb is masked, and control
/// characters are escaped so that the line stays one line and cannot drive a terminal.
pub(super) fn loggable(line: &[u8]) -> String {
    // A prefix, not the parsed verb: `PASS\tsecret` or `PASSWORD secret` do not parse, and their
    // argument is just as secret.
    let prefix = line.get(..4).unwrap_or_default();
    if let Some(verb) = SECRET_VERBS
        .iter()
        .find(|verb| prefix.eq_ignore_ascii_case(verb.as_bytes()))
    {
        return format!("{verb} ****");
    }
    let mut out = String::with_capacity(line.len());
    for c in String::from_utf8_lossy(line).chars() {
        if is_unsafe_in_log(c) {
            let code = u32::from(c);
            if code < 0x80 {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters a log line must not carry raw: C0 controls (CR and LF would forge a line, ESC drives
/// terminals), DEL, C1 controls (U+009B is a one-character CSI), Unicode line and paragraph separators,
/// and the bidirectional controls that can make a line read as something else.
fn is_unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}
