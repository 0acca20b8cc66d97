//! A deliberately dumb blocking FTP client (std only), independent of the crate: it fetches listing
//! bodies byte for byte, exactly as a server sends them, to capture the fixtures in
//! `tests/fixtures/listings/`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    server: SocketAddr,
}

impl Raw {
    /// Connects, reads the greeting and logs in.
    pub fn login(server: SocketAddr, user: &str, password: &str) -> Raw {
        let stream = TcpStream::connect(server).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut raw = Raw {
            reader: BufReader::new(stream),
            writer,
            server,
        };
        assert_eq!(raw.reply().0, 220);
        assert_eq!(raw.command(&format!("USER {user}")).0, 331);
        assert_eq!(raw.command(&format!("PASS {password}")).0, 230);
        raw
    }

    /// One reply (multi-line aware): its code and all its lines.
    pub fn reply(&mut self) -> (u16, String) {
        let first = self.line();
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .expect("reply code");
        let mut text = first.clone();
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.line();
                text.push('\n');
                text.push_str(&line);
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a reply line");
        assert!(!line.is_empty(), "control connection closed");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    pub fn command(&mut self, line: &str) -> (u16, String) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
        self.reply()
    }

    /// `EPSV`, then `command` (e.g. `LIST`), returning the data connection's bytes untouched.
    pub fn listing(&mut self, command: &str) -> Vec<u8> {
        let (code, text) = self.command("EPSV");
        assert_eq!(code, 229, "{text}");
        let port: u16 = text
            .split('|')
            .nth(3)
            .and_then(|p| p.parse().ok())
            .expect("EPSV port");
        let mut data = TcpStream::connect(SocketAddr::new(self.server.ip(), port)).expect("data");
        data.set_read_timeout(Some(TIMEOUT)).unwrap();
        let (code, text) = self.command(command);
        assert!(code == 150 || code == 125, "{command}: {text}");
        let mut body = Vec::new();
        data.read_to_end(&mut body).expect("read the listing");
        let (code, text) = self.reply();
        assert!(code == 226 || code == 250, "{command}: {text}");
        body
    }

    pub fn quit(mut self) {
        let _ = self.command("QUIT");
    }
}
