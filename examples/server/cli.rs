//! Command-line options, parsed by hand (`--flag value` or `--flag=value`).

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ftp_proto::server::AnonymousPolicy;

/// The `--help` text.
pub const USAGE: &str = "\
Usage: server [OPTIONS]

A fast FTP server on tokio, driving the sans-IO ftp_proto::server::Session.

Options:
  --root DIR              directory to serve (default: the current directory)
  --listen ADDR           control address (default: 127.0.0.1:2121; port 0 picks a free one)
  --user NAME:PASSWORD    a read-write user (repeatable)
  --anonymous off|ro|upload|rw  anonymous logins: refused, read-only, read and upload new files only
                          (no overwrite, append, delete, rename or mkdir), or read-write (default: ro)
  --passive-ports LOW-HIGH  ports for passive data connections (default: any ephemeral port)
  --masquerade IP         IPv4 address to report in PASV replies (for NAT)
  --strict-crlf           require CRLF line ends (a bare LF is not accepted)
  --allow-fxp             let every --user account use data connections to/from other hosts than
                          the client (FXP); never anonymous users
  --fxp-user NAME         let this --user account use FXP (repeatable)
  --idle-timeout SECS     close sessions idle this long (default: 300)
  --data-timeout SECS     give up on a data connection idle this long (default: 60)
  --login-timeout SECS    close sessions not logged in this long after connecting; commands such as
                          NOOP do not extend it (default: 60)

FTP over TLS (FTPS, RFC 4217; off unless a certificate is given):
  --tls-cert FILE         PEM certificate chain (the server's certificate first); with --tls-key,
                          offers explicit FTPS: AUTH TLS, PBSZ, PROT, SSCN. Plaintext clients keep
                          working unless --require-tls
  --tls-key FILE          PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
  --require-tls           logins and data connections must be protected: USER before AUTH TLS gets
                          530, a transfer without PBSZ 0 + PROT P gets 521 (anonymous users included,
                          unless --tls-exempt-anonymous)
  --tls-exempt-anonymous  with --require-tls: anonymous users may log in and transfer in plaintext
  --implicit-tls-listen ADDR  also listen here for implicit FTPS (TLS from the first byte, data
                          protected by default; usually port 990); the same caps apply to both ports
  --allow-ccc             let CCC return a protected control connection to plaintext (for NAT
                          firewalls that read PASV replies), and REIN reset it; off: CCC gets 533
  --tls-handshake-timeout SECS  close a connection whose control TLS handshake takes longer
                          (default: 15)
  --tls-strict-eof        a protected upload must end with TLS close_notify; a bare TCP close (which
                          an attacker on the path can forge to cut the file short) gets 426 and is not
                          stored. Off by default, as vsftpd's strict_ssl_read_eof: many clients
                          close without close_notify

Limits and privileges:
  --max-connections N     control connections in all; more get 421 (default: 512)
  --max-connections-per-ip N  control connections from one IPv4 address or IPv6 /64 (default: 16)
  --max-passive-per-ip N  passive listeners open at once for one address; more get 425 (default: 8)
  --passive-bind-attempts N  random ports of --passive-ports tried per PASV (default: 16)
  --login-backoff-max SECS  longest gap between password checks for one address or user; the gap
                          doubles from 1 s with every failure (default: 60)
  --login-window SECS     forget an address's or user's failures after this long quiet (default: 900)
  --ban-after N           failed logins from one address that ban it; 0: never (default: 10)
  --ban-time SECS         how long a ban lasts: new connections get 421 (default: 600)
  --login-table-size N    addresses (and user names) whose failures are tracked (default: 65536)
  --run-as USER           after binding, switch to this user (and its group, no other groups)
  --landlock              confine the process to --root with Landlock (Linux >= 5.13, best effort,
                          logged; the default)
  --no-landlock           do not use Landlock
  --help                  show this text

Uploads and storage:
  --in-place-uploads      write uploads straight into the target file (truncating it at STOR), as
                          before; by default an upload goes to a hidden temporary file (.in.NAME.XXX)
                          renamed over the target only once complete, so an aborted or failed
                          upload never damages the old file
  --delete-failed-uploads delete an aborted upload to a new name instead of keeping the partial file
                          (kept by default so that REST + STOR can resume it)
  --max-file-size BYTES   uploads may not grow a file past this size: 552 (default: no limit)
  --min-free-space BYTES  refuse uploads (552) that would leave less free space on the file system
                          (default: 67108864, 64 MiB; 0 turns the check off)
  --max-transfers N       open file transfers (RETR, STOR, ...) at once, all sessions together; more
                          get 450 until one ends (default: 512)
  --max-listings N        directory listings (LIST, NLST, MLSD, STAT path) being read at once, all
                          sessions together; more get 450 until one ends (default: 128). A large
                          directory is read 1000 entries at a time, as the client takes them
";

/// What the server was asked to do.
#[derive(Debug)]
pub enum Parsed {
    /// Serve with these options (boxed: they are large next to `Help`).
    Run(Box<Options>),
    /// Print [`USAGE`] and exit.
    Help,
}

/// The server's settings.
#[derive(Debug)]
pub struct Options {
    pub root: PathBuf,
    pub listen: SocketAddr,
    pub users: Vec<(String, String)>,
    pub anonymous: AnonymousPolicy,
    pub passive_ports: Option<RangeInclusive<u16>>,
    pub masquerade: Option<Ipv4Addr>,
    pub strict_crlf: bool,
    pub allow_fxp: bool,
    pub fxp_users: Vec<String>,
    pub login_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub data_timeout: Option<Duration>,
    pub limits: LimitOptions,
    pub storage: StorageOptions,
    pub tls: TlsOptions,
}

/// FTP over TLS (the "FTP over TLS" part of [`USAGE`]). [`parse`] checks that the combination makes
/// sense: every other flag needs a certificate and its key.
#[derive(Debug, Default)]
pub struct TlsOptions {
    /// The certificate chain and private key (both or neither): TLS is offered iff they are given.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    pub require: bool,
    pub exempt_anonymous: bool,
    pub implicit_listen: Option<SocketAddr>,
    pub allow_ccc: bool,
    pub strict_eof: bool,
    /// `None`: [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Option<Duration>,
}

/// How long a control connection's TLS handshake may take: far above any honest client's (a few round
/// trips), and short enough that a client that never finishes one holds its connection slot briefly.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

impl TlsOptions {
    /// The handshake timeout in force.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
            .unwrap_or(DEFAULT_TLS_HANDSHAKE_TIMEOUT)
    }
}

/// The raw TLS flags, before [`check_tls`] pairs and checks them.
#[derive(Default)]
struct TlsFlags {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    options: TlsOptions,
}

/// Connection, login and privilege limits (the "Limits and privileges" part of [`USAGE`]).
#[derive(Debug)]
pub struct LimitOptions {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_passive_per_ip: usize,
    pub passive_bind_attempts: usize,
    pub login_backoff_max: Duration,
    pub login_window: Duration,
    pub ban_after: u32,
    pub ban_time: Duration,
    pub login_table_size: usize,
    pub run_as: Option<String>,
    pub landlock: bool,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            max_connections: 512,
            max_connections_per_ip: 16,
            max_passive_per_ip: 8,
            passive_bind_attempts: 16,
            login_backoff_max: Duration::from_secs(60),
            login_window: Duration::from_secs(900),
            ban_after: 10,
            ban_time: Duration::from_secs(600),
            login_table_size: 65536,
            run_as: None,
            // Defence in depth, on where the kernel has it (logged either way).
            landlock: true,
        }
    }
}

/// The options of uploads and storage (`--in-place-uploads` ... `--max-listings`).
#[derive(Debug)]
pub struct StorageOptions {
    pub in_place_uploads: bool,
    pub delete_failed_uploads: bool,
    pub max_file_size: Option<u64>,
    pub min_free_space: u64,
    pub max_transfers: usize,
    pub max_listings: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            in_place_uploads: false,
            delete_failed_uploads: false,
            max_file_size: None,
            // Enough for the host's logs and its other programs to keep working when FTP users fill the
            // disk, yet small next to any volume one would serve uploads from.
            min_free_space: 64 * 1024 * 1024,
            // What tokio's 512 blocking threads allowed before transfers stopped holding one: no load that
            // worked then is refused now, while the descriptors and buffers of open transfers stay bounded.
            max_transfers: 512,
            // A listing holds a descriptor, one part of 1000 entries (~100-200 KiB with the formatted
            // window) and its directory's sorted names (~60 bytes each, 6 MB for 100 000): 128 of them stay
            // near 32 MiB for ordinary directories, and more than the sessions/s benchmark's 50 concurrent
            // clients ever list at once.
            max_listings: 128,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: PathBuf::from("."),
            listen: SocketAddr::from(([127, 0, 0, 1], 2121)),
            users: Vec::new(),
            anonymous: AnonymousPolicy::ReadOnly,
            passive_ports: None,
            masquerade: None,
            strict_crlf: false,
            allow_fxp: false,
            fxp_users: Vec::new(),
            login_timeout: None,
            idle_timeout: None,
            data_timeout: None,
            limits: LimitOptions::default(),
            storage: StorageOptions::default(),
            tls: TlsOptions::default(),
        }
    }
}

/// Parses the arguments (without the program name). The error is a message for the user.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut options = Options::default();
    let mut tls = TlsFlags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `--flag=value` is the same as `--flag value`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Parsed::Help),
            "--root" => options.root = PathBuf::from(value()?),
            "--listen" => options.listen = parse_value(&flag, &value()?)?,
            "--user" => options.users.push(parse_user(&value()?)?),
            "--anonymous" => options.anonymous = parse_anonymous(&value()?)?,
            "--passive-ports" => options.passive_ports = Some(parse_port_range(&value()?)?),
            "--masquerade" => options.masquerade = Some(parse_value(&flag, &value()?)?),
            "--idle-timeout" => options.idle_timeout = Some(parse_seconds(&flag, &value()?)?),
            "--data-timeout" => options.data_timeout = Some(parse_seconds(&flag, &value()?)?),
            "--login-timeout" => options.login_timeout = Some(parse_seconds(&flag, &value()?)?),
            "--fxp-user" => options.fxp_users.push(value()?),
            "--max-connections"
            | "--max-connections-per-ip"
            | "--max-passive-per-ip"
            | "--passive-bind-attempts"
            | "--login-backoff-max"
            | "--login-window"
            | "--ban-after"
            | "--ban-time"
            | "--login-table-size"
            | "--run-as" => parse_limit(&mut options.limits, &flag, &value()?)?,
            "--no-landlock" if inline_value.is_none() => options.limits.landlock = false,
            "--landlock" if inline_value.is_none() => options.limits.landlock = true,
            "--max-file-size" => {
                options.storage.max_file_size = Some(parse_value(&flag, &value()?)?)
            }
            "--min-free-space" => options.storage.min_free_space = parse_value(&flag, &value()?)?,
            "--max-transfers" => options.storage.max_transfers = parse_positive(&flag, &value()?)?,
            "--max-listings" => options.storage.max_listings = parse_positive(&flag, &value()?)?,
            "--tls-cert" => tls.cert = Some(PathBuf::from(value()?)),
            "--tls-key" => tls.key = Some(PathBuf::from(value()?)),
            "--implicit-tls-listen" => {
                tls.options.implicit_listen = Some(parse_value(&flag, &value()?)?)
            }
            "--tls-handshake-timeout" => {
                tls.options.handshake_timeout = Some(parse_period(&flag, &value()?)?)
            }
            "--strict-crlf"
            | "--allow-fxp"
            | "--no-landlock"
            | "--landlock"
            | "--in-place-uploads"
            | "--delete-failed-uploads"
            | "--require-tls"
            | "--tls-exempt-anonymous"
            | "--allow-ccc"
            | "--tls-strict-eof"
                if inline_value.is_some() =>
            {
                return Err(format!("{flag} takes no value"));
            }
            "--strict-crlf" => options.strict_crlf = true,
            "--in-place-uploads" => options.storage.in_place_uploads = true,
            "--delete-failed-uploads" => options.storage.delete_failed_uploads = true,
            "--allow-fxp" => options.allow_fxp = true,
            "--require-tls" => tls.options.require = true,
            "--tls-exempt-anonymous" => tls.options.exempt_anonymous = true,
            "--allow-ccc" => tls.options.allow_ccc = true,
            "--tls-strict-eof" => tls.options.strict_eof = true,
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    options.tls = check_tls(tls)?;
    if options.tls.implicit_listen == Some(options.listen) && options.listen.port() != 0 {
        return Err("--implicit-tls-listen: the same address as --listen".to_owned());
    }
    if let Some(name) = options
        .fxp_users
        .iter()
        .find(|name| !options.users.iter().any(|(user, _)| user == *name))
    {
        return Err(format!("--fxp-user: {name:?} is not a --user account"));
    }
    Ok(Parsed::Run(Box::new(options)))
}

/// Pairs the certificate with its key, and refuses TLS flags that would do nothing (or not what they
/// say) without one: a server started with `--require-tls` and no certificate would refuse every
/// login, one with `--implicit-tls-listen` would never complete a handshake.
fn check_tls(flags: TlsFlags) -> Result<TlsOptions, String> {
    let TlsFlags {
        cert,
        key,
        mut options,
    } = flags;
    options.cert_and_key = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err("--tls-cert needs --tls-key (the certificate's private key)".into());
        }
        (None, Some(_)) => {
            return Err("--tls-key needs --tls-cert (the certificate it belongs to)".into());
        }
    };
    if options.cert_and_key.is_none() {
        let needs_certificate = [
            ("--require-tls", options.require),
            ("--tls-exempt-anonymous", options.exempt_anonymous),
            ("--implicit-tls-listen", options.implicit_listen.is_some()),
            ("--allow-ccc", options.allow_ccc),
            ("--tls-strict-eof", options.strict_eof),
            (
                "--tls-handshake-timeout",
                options.handshake_timeout.is_some(),
            ),
        ];
        if let Some((flag, _)) = needs_certificate.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{flag} needs TLS: give a certificate and its key with --tls-cert FILE --tls-key FILE"
            ));
        }
    }
    if options.exempt_anonymous && !options.require {
        return Err(
            "--tls-exempt-anonymous only makes sense with --require-tls (TLS is optional otherwise)"
                .into(),
        );
    }
    Ok(options)
}

/// One of the "Limits and privileges" flags that take a value.
fn parse_limit(limits: &mut LimitOptions, flag: &str, text: &str) -> Result<(), String> {
    match flag {
        "--max-connections" => limits.max_connections = parse_count(flag, text)?,
        "--max-connections-per-ip" => limits.max_connections_per_ip = parse_count(flag, text)?,
        "--max-passive-per-ip" => limits.max_passive_per_ip = parse_count(flag, text)?,
        "--passive-bind-attempts" => limits.passive_bind_attempts = parse_count(flag, text)?,
        "--login-backoff-max" => limits.login_backoff_max = parse_period(flag, text)?,
        "--login-window" => limits.login_window = parse_period(flag, text)?,
        "--ban-after" => limits.ban_after = parse_value(flag, text)?,
        "--ban-time" => limits.ban_time = parse_period(flag, text)?,
        "--login-table-size" => limits.login_table_size = parse_count(flag, text)?,
        "--run-as" if !text.is_empty() => limits.run_as = Some(text.to_owned()),
        _ => return Err(format!("{flag}: cannot understand {text:?}")),
    }
    Ok(())
}

/// The longest period a limit flag accepts: 30 days. Far beyond any sensible setting, and instants a
/// period ahead can never overflow.
const MAX_PERIOD_SECS: u64 = 30 * 24 * 3600;

/// Seconds for a limit flag: at least 1, at most [`MAX_PERIOD_SECS`].
fn parse_period(flag: &str, text: &str) -> Result<Duration, String> {
    let period = parse_seconds(flag, text)?;
    if period.as_secs() > MAX_PERIOD_SECS {
        return Err(format!(
            "{flag}: at most {MAX_PERIOD_SECS} seconds, got {text:?}"
        ));
    }
    Ok(period)
}

/// A count that must be at least 1 (a cap of 0 would refuse everything).
fn parse_count(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag}: expected a whole number > 0, got {text:?}")),
    }
}

fn parse_value<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: cannot understand {text:?}"))
}

fn parse_positive(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag}: expected a whole number > 0, got {text:?}")),
    }
}

fn parse_user(text: &str) -> Result<(String, String), String> {
    let (name, password) = text
        .split_once(':')
        .ok_or_else(|| format!("--user: expected NAME:PASSWORD, got {text:?}"))?;
    if name.is_empty() {
        return Err("--user: the name is empty".to_owned());
    }
    // These names mean an anonymous login to the session (RFC 1635): no password would be checked.
    if name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp") {
        return Err(format!(
            "--user: {name:?} is reserved for anonymous login, see --anonymous"
        ));
    }
    Ok((name.to_owned(), password.to_owned()))
}

fn parse_anonymous(text: &str) -> Result<AnonymousPolicy, String> {
    match text {
        "off" => Ok(AnonymousPolicy::Disabled),
        "ro" => Ok(AnonymousPolicy::ReadOnly),
        "upload" => Ok(AnonymousPolicy::UploadOnly),
        "rw" => Ok(AnonymousPolicy::ReadWrite),
        _ => Err(format!(
            "--anonymous: expected off, ro, upload or rw, got {text:?}"
        )),
    }
}

fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let error = || format!("--passive-ports: expected LOW-HIGH (1-65535), got {text:?}");
    let (low, high) = text.split_once('-').ok_or_else(error)?;
    let low: u16 = low.parse().map_err(|_| error())?;
    let high: u16 = high.parse().map_err(|_| error())?;
    if low == 0 || low > high {
        return Err(error());
    }
    Ok(low..=high)
}

fn parse_seconds(flag: &str, text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{flag}: expected a whole number of seconds > 0, got {text:?}"
        )),
    }
}
