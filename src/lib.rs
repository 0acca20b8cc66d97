//! # ftp-proto: the FTP protocol as sans-IO state machines
//!
//! This crate implements FTP (RFC 959 and its extensions: RFC 1123, 2228, 2389, 2428, 2640, 3659, 4217, 7151)
//! without doing any I/O. Its state machines consume bytes and events and emit *actions* — send these bytes
//! on the control connection, open a passive data listener, connect the data channel to an address, read
//! this path, write this chunk, arm a timer — so the same protocol code runs under tokio, async-std, a thread
//! per connection, an embedded runtime or a deterministic test harness. Nothing in the crate opens a socket,
//! touches a file, reads a clock or spawns a task.
//!
//! ## Layers
//!
//! | module | what it does |
//! |---|---|
//! | [`command`] | typed [`command::Command`]: nom parser and encoder for every RFC verb |
//! | [`reply`] | reply codes, multi-line replies, a streaming reply parser for clients |
//! | [`feat`] | the `FEAT` reply (RFC 2389) as one model, formatted by the server and parsed by the client |
//! | [`hostport`] | `PORT`/`PASV` and `EPRT`/`EPSV` address forms |
//! | [`framing`] | the control-connection line framer: CRLF, Telnet IAC, length bound |
//! | [`transcode`] | TYPE A/I data conversion, streaming across chunk boundaries |
//! | [`data`] | the data channel both sessions share: data-connection and local-end actions, their answers |
//! | [`path`] | virtual paths that never climb above `/` |
//! | [`listing`] | `LIST`/`NLST`/`MLSD` formatting (server) and parsing (client) |
//! | [`time`] | RFC 3659 timestamps without a clock |
//! | [`server`] | the server [`server::Session`] state machine |
//! | [`client`] | the client [`client::Session`] state machine, and FXP between two servers |
//! | [`url`] | `ftp://user:password@host:port/path;type=i` URLs (RFC 1738) |
//!
//! The codec modules know nothing of sessions, and sessions know nothing of sockets, files or clocks.
//!
//! ## Parsing and encoding
//!
//! ```
//! use ftp_proto::command::{Command, Pathname};
//! use ftp_proto::reply::{Reply, ReplyCode};
//!
//! let cmd = Command::parse(b"RETR pub/notes.txt").unwrap();
//! assert_eq!(cmd, Command::Retr(Pathname::new("pub/notes.txt").unwrap()));
//!
//! let reply = Reply::multiline(ReplyCode::SYSTEM_STATUS, ["Features:", " EPSV", "End"]);
//! assert_eq!(reply.to_bytes(), b"211-Features:\r\n EPSV\r\n211 End\r\n");
//! ```
//!
//! ## Driving a server session by hand
//!
//! A driver feeds the session what happens (control bytes, answers to its requests, data chunks, the time)
//! and carries out what it asks. After **every** `handle_*` call, drain `poll_action` until it returns
//! `None`, then read `poll_timeout`. A transfer speaks the vocabulary of [`data`]: the session asks for
//! the data connection with [`data::DataAction`] and for its open file with [`data::LocalAction`], and
//! the driver answers both with [`data::DataCompletion`]. Here the "driver" is a few lines that answer
//! from memory:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use bytes::Bytes;
//! use ftp_proto::data::{DataAction, DataCompletion, LocalAction};
//! use ftp_proto::server::{Action, Completion, Config, ConnectionInfo, Session, StorageRequest};
//!
//! let info = ConnectionInfo {
//!     local: "127.0.0.1:21".parse().unwrap(),
//!     peer: "127.0.0.1:40000".parse().unwrap(),
//! };
//! let now = Instant::now();
//! let mut session = Session::new(Arc::new(Config::default()), info, now);
//! session.handle_control_input(now, b"USER anonymous\r\nPASS me@\r\nTYPE I\r\nPASV\r\nRETR hello.txt\r\n");
//!
//! let file = Bytes::from_static(b"Hello, world!\n");
//! let mut control = Vec::new();
//! let mut data = Vec::new();
//! let mut file_sent = false;
//! let mut listener = None; // the id the session gave its passive listener
//! let mut closed = Vec::new(); // the listener and data connection it let go of
//! while let Some(action) = session.poll_action() {
//!     match action {
//!         Action::SendControl(bytes) => control.extend_from_slice(&bytes),
//!         Action::Storage { id, request: StorageRequest::OpenRead { path, .. } } => {
//!             assert_eq!(path.as_bytes(), b"/hello.txt");
//!             let size = Some(file.len() as u64);
//!             session.handle_completion(now, id, Completion::FileOpened { size, path })?;
//!         }
//!         Action::Data(DataAction::Listen { id, .. }) => {
//!             listener = Some(id);
//!             let bound = "127.0.0.1:50000".parse().unwrap();
//!             session.handle_completion(now, id, DataCompletion::Listening(bound).into())?;
//!         }
//!         Action::Data(DataAction::Accept { id, listener: from, tls }) => {
//!             assert_eq!(Some(from), listener);
//!             assert_eq!(tls, None); // PROT C: no TLS on this data connection
//!             let peer = "127.0.0.1:40001".parse().unwrap();
//!             session.handle_completion(now, id, DataCompletion::Connected { peer }.into())?;
//!         }
//!         Action::Local(LocalAction::Read { id }) if !file_sent => {
//!             file_sent = true;
//!             session.handle_data(now, id, file.clone()); // TYPE I: passed through without a copy
//!         }
//!         Action::Local(LocalAction::Read { id }) => {
//!             session.handle_completion(now, id, DataCompletion::EndOfData.into())?;
//!         }
//!         Action::Data(DataAction::Send { id, data: chunk }) => {
//!             data.extend_from_slice(&chunk);
//!             session.handle_completion(now, id, DataCompletion::Written.into())?;
//!         }
//!         Action::Data(DataAction::Close { id, aborted }) => closed.push((id, aborted)),
//!         Action::Local(LocalAction::Close { .. }) => {} // a download's close needs no answer
//!         other => panic!("not in this example: {other:?}"),
//!     }
//! }
//! let control = String::from_utf8(control).unwrap();
//! assert!(control.contains("227 Entering Passive Mode (127,0,0,1,195,80)."));
//! assert!(control.ends_with("226 Transfer complete.\r\n"));
//! assert_eq!(data, b"Hello, world!\n");
//! // The transfer's data connection, then the listener it came through, both closed cleanly.
//! assert_eq!(closed.len(), 2);
//! assert!(closed.iter().all(|&(_, aborted)| !aborted));
//! assert_eq!(closed.last().map(|&(id, _)| id), listener);
//! assert!(session.poll_timeout().is_some()); // the idle timer
//! # Ok::<(), ftp_proto::server::UnexpectedCompletion>(())
//! ```
//!
//! `handle_completion` returns an error only for a driver's mistake (an answer of the wrong kind, such
//! as `Written` for an `Authenticate`); the session then ignores that answer and nothing reaches the
//! peer.
//!
//! The bundled `examples/server` is a complete tokio driver with storage on the local file system.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Never panic on input: no unwrap, expect, indexing or explicit panic in library code (tests may).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod client;
pub mod command;
mod control_tls;
pub mod data;
mod decimal;
pub mod feat;
pub mod framing;
pub mod hostport;
pub mod listing;
pub mod path;
pub mod reply;
pub mod server;
pub mod time;
mod timer;
pub mod transcode;
pub mod url;
