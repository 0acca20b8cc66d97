//! Every `hostport` parser on arbitrary bytes.
//!
//! Oracles: whatever parses round-trips through the matching formatter (`PORT` text, `227` text with and
//! without the leading code, `EPRT` text, `229` text); a strict `PORT` argument is also a valid `227` text
//! for the same address; error kinds match the documented checks.
#![no_main]

use ftp_proto::hostport::{
    HostPort, HostPortError, epsv_reply_text, format_eprt, parse_eprt, parse_epsv_reply,
};
use libfuzzer_sys::fuzz_target;

fn check_host_port(hp: HostPort) {
    assert_eq!(HostPort::parse(hp.to_string().as_bytes()), Ok(hp));
    assert_eq!(
        HostPort::parse_pasv_reply(hp.pasv_reply_text().as_bytes()),
        Ok(hp)
    );
    let line = format!("227 {}", hp.pasv_reply_text());
    assert_eq!(
        HostPort::parse_pasv_reply(line.as_bytes()),
        Ok(hp),
        "{line}"
    );
    assert_eq!(HostPort::new(hp.ip(), hp.port()), hp);
}

fuzz_target!(|data: &[u8]| {
    match HostPort::parse(data) {
        Ok(hp) => {
            check_host_port(hp);
            assert_eq!(
                HostPort::parse_pasv_reply(data),
                Ok(hp),
                "strict form rejected by the lenient parser"
            );
        }
        Err(e) => assert!(
            matches!(e, HostPortError::Malformed | HostPortError::OutOfRange),
            "{e:?}"
        ),
    }

    if let Ok(hp) = HostPort::parse_pasv_reply(data) {
        check_host_port(hp);
    }

    match parse_eprt(data) {
        Ok(addr) => {
            assert_ne!(addr.port(), 0);
            let text = format_eprt(addr);
            assert_eq!(parse_eprt(text.as_bytes()), Ok(addr), "{text}");
            // The delimiter is the sender's choice: any other printable byte works too.
            let alternative = text.replace('|', "!");
            assert_eq!(
                parse_eprt(alternative.as_bytes()),
                Ok(addr),
                "{alternative}"
            );
            match HostPort::try_from(addr) {
                Ok(hp) => assert_eq!(std::net::SocketAddr::from(hp), addr),
                Err(e) => assert!(addr.is_ipv6() && e == HostPortError::FamilyMismatch),
            }
        }
        Err(HostPortError::UnsupportedProtocol(n)) => assert!(n != 1 && n != 2, "{n} is supported"),
        Err(_) => {}
    }

    if let Ok(port) = parse_epsv_reply(data) {
        assert_ne!(port, 0);
        assert_eq!(parse_epsv_reply(epsv_reply_text(port).as_bytes()), Ok(port));
        let line = format!("229 {}", epsv_reply_text(port));
        assert_eq!(parse_epsv_reply(line.as_bytes()), Ok(port));
    }
});
