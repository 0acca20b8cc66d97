//! Client policy: how data connections are made, how long to wait, and every bound, with safe defaults.

use std::time::Duration;

use crate::reply::ReplyParserLimits;

/// Who opens the data connection (RFC 959 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DataMode {
    /// The client connects to the server (`EPSV`, falling back to `PASV`). Works through client-side
    /// NAT and firewalls, hence the default.
    #[default]
    Passive,
    /// The server connects to the client (`EPRT`, falling back to `PORT` for IPv4).
    Active,
}

/// Configuration shared by client sessions (wrap it in an `Arc`).
///
/// Build it with `Config::default()` and change the fields you need; the struct is `#[non_exhaustive]` so
/// that new settings can be added without breaking you.
///
/// ```
/// use std::time::Duration;
/// use ftp_proto::client::{Config, DataMode};
///
/// let mut config = Config::default();
/// config.mode = DataMode::Active;
/// config.reply_timeout = Duration::from_secs(20);
/// assert_eq!(config.max_listing_bytes, 16 * 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Passive (default) or active data connections.
    pub mode: DataMode,
    /// Try `EPSV`/`EPRT` (RFC 2428) before `PASV`/`PORT`. Default `true`: the extended forms work over
    /// IPv6 and through NAT. When the server does not know them (500, 502), or refuses the address family
    /// (522) while `PASV`/`PORT` can carry it (IPv4), the session falls back for the rest of its life.
    /// Other refusals (530, 501, 550, ...) fail the transfer only.
    pub extended_first: bool,
    /// Connect to the address a `227` reply names. Default `false`: like Python's `ftplib`, the session
    /// connects to the control connection's peer IP with the reply's port, because servers behind NAT
    /// often announce a private address, and a hostile server could otherwise aim the client at a third
    /// host (RFC 2577 §3).
    pub trust_pasv_address: bool,
    /// How long to wait for each reply; when it runs out the session closes. Default 60 s. Suspended
    /// while a transfer's data flows (then `data_timeout` applies), restarted when the data ends; and
    /// suspended after a preliminary (1xx) reply to a [`Request::Raw`](super::Request::Raw) command (an FXP
    /// copy: the session cannot see its progress) until the final reply. [`Request::Abort`](
    /// super::Request::Abort) ends such a wait.
    pub reply_timeout: Duration,
    /// How long to wait for the data connection to open and for each step of progress on it or on the
    /// transfer's local end (a write to the user's sink, its final flush); when it runs out the transfer
    /// is aborted and fails with [`ClientError::Timeout`](super::ClientError::Timeout), but the session
    /// goes on. Default 60 s.
    pub data_timeout: Duration,
    /// Bounds of the reply parser. Default 8 KiB lines and 1 MiB replies (see [`ReplyParserLimits`]).
    pub reply_limits: ReplyParserLimits,
    /// The largest `LIST`/`NLST`/`MLSD` body collected, in bytes. Default 16 MiB: some 100 000 entries of
    /// `ls -l`, while one session cannot be made to hold unbounded memory.
    pub max_listing_bytes: usize,
    /// The most lines of a `LIST`/`NLST`/`MLSD` body, each an entry (a name for `NLST`) or an error in
    /// the outcome; empty lines do not count. More fail the request with
    /// [`ClientError::ListingTooManyEntries`](super::ClientError::ListingTooManyEntries). Default
    /// 200 000: twice the `ls -l` entries [`max_listing_bytes`](Config::max_listing_bytes) is sized for,
    /// while the parsed outcome stays near 32 MiB plus the body's bytes (without it, 16 MiB of `a\n`
    /// would be 8 million entries, about 1 GiB).
    pub max_listing_entries: usize,
    /// Requests that may wait for their turn, the running one not counted. A new request passes through
    /// the queue even on an idle session, so `0` refuses every request. Default 64: plenty for pipelined
    /// scripts, and a runaway caller gets
    /// [`UsageError::QueueFull`](super::UsageError::QueueFull) instead of growing memory.
    pub max_pending_requests: usize,
    /// Chunks of a transfer in flight at once: for an upload, asked of the source and not yet written to
    /// the data connection; for a download, asked of the data connection and not yet written to the
    /// user's sink. Default 2: one read and one write can overlap; more only uses memory. `0` counts as
    /// 1. A slow sink (or data connection) holds the other end back: memory stays bounded.
    pub transfer_window: usize,
    /// Once the control connection is protected ([`Request::SecureControl`](super::Request::SecureControl)
    /// or implicit FTPS), send `PBSZ 0` and `PROT P` before the first transfer and run TLS on every data
    /// connection. Default `true`: with `false`, files and listings cross in plaintext.
    pub protect_data: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: DataMode::Passive,
            extended_first: true,
            trust_pasv_address: false,
            reply_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(60),
            reply_limits: ReplyParserLimits::default(),
            max_listing_bytes: 16 * 1024 * 1024,
            max_listing_entries: 200_000,
            max_pending_requests: 64,
            transfer_window: 2,
            protect_data: true,
        }
    }
}
