//! Server policy: every limit and every choice a session makes on its own, with safe defaults.

use std::time::Duration;

use crate::framing::{FramerConfig, LineEnding};
use crate::path::PathLimits;

/// Whether and how anonymous users (`USER anonymous` or `USER ftp`) may log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnonymousPolicy {
    /// Anonymous logins get 530.
    Disabled,
    /// Anonymous users may read and list (the default: the classic public FTP site).
    ReadOnly,
    /// Anonymous users may also write. Rarely wise.
    ReadWrite,
    /// Anonymous users may read, list and upload new files, but not overwrite, append to, delete or
    /// rename anything, nor make directories ([`super::Access::UploadOnly`]): an upload drop box.
    UploadOnly,
}

/// FTP over TLS (RFC 4217): whether the session offers it, and what it requires it for.
///
/// The session decides *when* (after `234` to `AUTH TLS`, on a protected transfer's data connection);
/// the driver runs the handshakes, with its certificate ([`Action::SecureControl`],
/// [`DataAction::Secure`]). Build one with [`TlsPolicy::default`] (TLS not offered),
/// [`TlsPolicy::offered`] or [`TlsPolicy::required`], then change fields.
///
/// [`Action::SecureControl`]: super::Action::SecureControl
/// [`DataAction::Secure`]: crate::data::DataAction::Secure
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsPolicy {
    /// Whether `AUTH TLS` is accepted and `FEAT` lists `AUTH TLS`, `PBSZ`, `PROT` and `SSCN`. Only for
    /// a driver that has a certificate. Default `false` (`AUTH` gets 502).
    pub offered: bool,
    /// `USER` on a plaintext control connection gets 530 (except anonymous users when
    /// [`anonymous_exempt`](Self::anonymous_exempt)), so no password crosses the network in the
    /// clear. Default `false`.
    pub required_for_login: bool,
    /// A transfer with `PROT C` (the default protection) gets 521 (except anonymous users when
    /// [`anonymous_exempt`](Self::anonymous_exempt)). Default `false`.
    pub required_for_data: bool,
    /// Whether the two requirements above spare anonymous users, whose password is no secret and whose
    /// files are public. Default `false`.
    pub anonymous_exempt: bool,
    /// A protected data connection whose TLS handshake did not resume the control connection's session
    /// gets 425. Without this a third party that connects to a passive port first can take over the
    /// transfer (vsftpd's `require_ssl_reuse`, FileZilla Server's default). Default `true`. Does not
    /// apply after `SSCN ON`, where this server is the TLS client of the data connection, nor to users
    /// whose [`Grant`](super::Grant) allows foreign data addresses (FXP: the other end is another
    /// server, which cannot resume this connection's session).
    pub require_session_reuse: bool,
    /// Whether `CCC` may return the control connection to plaintext (some NAT firewalls need to read
    /// `PORT`/`PASV` replies), and whether `REIN` on a protected control connection may reset it to a
    /// new connection's state, plaintext included. Default `false`: `CCC` gets 533
    /// and `REIN` 502 while the control connection is protected.
    pub allow_clear_control: bool,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            offered: false,
            required_for_login: false,
            required_for_data: false,
            anonymous_exempt: false,
            require_session_reuse: true,
            allow_clear_control: false,
        }
    }
}

impl TlsPolicy {
    /// TLS offered, not required (explicit FTPS; plaintext clients keep working).
    pub fn offered() -> Self {
        TlsPolicy {
            offered: true,
            ..TlsPolicy::default()
        }
    }

    /// TLS offered and required for login and data, anonymous users included.
    pub fn required() -> Self {
        TlsPolicy {
            offered: true,
            required_for_login: true,
            required_for_data: true,
            ..TlsPolicy::default()
        }
    }
}

/// Configuration shared by all sessions of a server (wrap it in an `Arc`).
///
/// Build it with `Config::default()` and change the fields you need; the struct is `#[non_exhaustive]` so
/// that new settings can be added without breaking you.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The 220 greeting text.
    pub greeting: String,
    /// The 221 text sent on `QUIT`.
    pub goodbye: String,
    /// The 215 answer to `SYST`. `UNIX Type: L8` makes clients expect `ls -l` listings.
    pub system_type: String,
    /// Anonymous logins.
    pub anonymous: AnonymousPolicy,
    /// Whether users logged in with [`Completion::LoggedIn`](super::Completion::LoggedIn) may use data
    /// addresses other than the client's: `PORT`/`EPRT` to another host, and passive connections from
    /// one (server-to-server FXP). Off by default: otherwise the server can be used to attack third
    /// parties (the "FTP bounce", RFC 2577 §3) and a passive listener can be taken over (RFC 2577 §5).
    ///
    /// This is only the default for authenticated users: a driver that answers
    /// [`Completion::Granted`](super::Completion::Granted) decides per user with
    /// [`Grant::foreign_data_address`](super::Grant::foreign_data_address), and anonymous sessions never
    /// get foreign data addresses, whatever this says.
    pub allow_foreign_data_address: bool,
    /// Allow `PORT`/`EPRT` to ports below 1024. Off by default (RFC 2577 §3).
    pub allow_privileged_data_port: bool,
    /// Delay before answering a failed login with 530 (slows down password guessing). Default 1 s.
    pub failed_login_delay: Duration,
    /// After this many failed logins the session answers 421 and closes. Default 3.
    pub max_login_failures: u32,
    /// A session with no complete command for this long gets 421 and is closed; does not run during a
    /// transfer. Default 300 s (vsftpd's `idle_session_timeout`).
    pub idle_timeout: Duration,
    /// A session not logged in this long after it started gets 421 and is closed. Default 60 s (ProFTPD's
    /// `TimeoutLogin`). Commands (`NOOP`, a failed `PASS`, ...) do not extend it, so a client that never
    /// logs in cannot hold a connection for long however busy it keeps it; it still runs while a password
    /// check or a failed login's delay is under way. A logout (`REIN`, or `USER` while logged in) starts
    /// it again; once logged in it does not apply.
    pub login_timeout: Duration,
    /// How long to wait for a data connection, and for progress on one. Default 60 s.
    pub data_timeout: Duration,
    /// Control-line framing: maximum line length (default 4096 bytes) and whether a bare LF ends a line.
    pub framer: FramerConfig,
    /// Bounds on the pathnames the session resolves.
    pub path_limits: PathLimits,
    /// Bytes of complete command lines held while the session is busy (pipelining). Past this the client is
    /// flooding us: 421 and close. Default 64 KiB.
    pub max_pending_commands: usize,
    /// Directory entries asked of the driver for one listing. Default 100 000.
    pub max_listing_entries: usize,
    /// Events ([`super::Event`]) kept for [`super::Session::poll_event`]; past this, new ones are dropped and
    /// counted. Default 1024: plenty for a driver that drains them after each input.
    pub max_queued_events: usize,
    /// Chunks of a transfer in flight at once (read but not yet written). Two keep the file and the socket
    /// busy at the same time; more only uses memory. Default 2.
    pub transfer_window: usize,
    /// FTP over TLS. Default: not offered.
    pub tls: TlsPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "ftp-proto ready".to_owned(),
            goodbye: "Goodbye.".to_owned(),
            system_type: "UNIX Type: L8".to_owned(),
            anonymous: AnonymousPolicy::ReadOnly,
            allow_foreign_data_address: false,
            allow_privileged_data_port: false,
            failed_login_delay: Duration::from_secs(1),
            max_login_failures: 3,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(60),
            framer: FramerConfig::default(),
            path_limits: PathLimits::default(),
            max_pending_commands: 64 * 1024,
            max_listing_entries: 100_000,
            max_queued_events: 1024,
            transfer_window: 2,
            tls: TlsPolicy::default(),
        }
    }
}

impl Config {
    /// Whether a bare LF ends a command line (the default, as vsftpd and Pure-FTPd accept).
    pub fn accepts_bare_lf(&self) -> bool {
        self.framer.line_ending == LineEnding::CrLfOrLf
    }
}
