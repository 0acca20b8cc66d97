//! ftp-proto: the FTP protocol as sans-IO state machines.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod command;
pub mod framing;
pub mod hostport;
pub mod listing;
pub mod path;
pub mod reply;
pub mod server;
pub mod time;
pub mod transcode;
pub mod url;
