//! `Command::parse` on arbitrary bytes (one framed line).
//!
//! Oracle: a parsed command encodes to one line (`VERB[ arg]\r\n`, no other CR, LF or NUL) that parses
//! back to the same command; a rejected line maps to 500, 501 or 522.
#![no_main]

use ftp_proto::command::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match Command::parse(line) {
        Ok(command) => {
            let wire = command.to_bytes();
            let body = wire.strip_suffix(b"\r\n").expect("encoding ends with CRLF");
            assert!(
                !body.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                "CR, LF or NUL inside the encoding of {command:?}: {wire:?}"
            );
            assert_eq!(
                Command::parse(body).as_ref(),
                Ok(&command),
                "re-parse of {body:?}"
            );
            // The verb is what the encoding starts with.
            assert!(body.starts_with(command.verb().as_bytes()));
            let mut appended = b"prefix".to_vec();
            command.encode(&mut appended);
            assert_eq!(appended.get(6..), Some(&wire[..]));
        }
        Err(error) => {
            let code = error.reply_code().get();
            assert!(matches!(code, 500 | 501 | 522), "{error:?} maps to {code}");
            // Only an unrecognisable line lacks a verb.
            assert_eq!(error.verb().is_none(), code == 500, "{error:?}");
        }
    }
});
