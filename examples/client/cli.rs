//! Command-line arguments, parsed by hand: a command, its operands, and flags anywhere
//! (`--flag value` or `--flag=value`).

use std::path::PathBuf;
use std::time::Duration;

use ftp_proto::url::FtpUrl;

/// The `--help` text.
pub const USAGE: &str = "\
Usage: client [OPTIONS] COMMAND ...

An FTP client on tokio, driving the sans-IO ftp_proto::client::Session.

Commands:
  ls URL                 list a directory (MLSD when the server offers MLST, else LIST)
  get URL [LOCAL]        download a file (LOCAL: a file or directory; default: the URL's file name)
  put LOCAL URL          upload a file (a URL ending in / gets LOCAL's file name)
  mirror URL LOCALDIR    download a directory tree (MLSD, falling back to LIST)

URLs: ftp://[user[:password]@]host[:port]/path[;type=a|i|d] (RFC 1738; anonymous without a user)
      ftps://...             implicit FTPS: TLS from the first byte (default port 990)

FTP over TLS (RFC 4217):
  --tls                  explicit FTPS on an ftp:// URL: AUTH TLS before logging in; a server that
                         refuses it is an error (never a fallback to plaintext). With TLS, data
                         connections are protected too (PBSZ 0, PROT P) and resume the control
                         connection's TLS session, as servers requiring session reuse demand
  --ca-file FILE         trust the CA certificate(s) in FILE (PEM) instead of the system's: a
                         private CA, or a self-signed server certificate
  --insecure             do not check the server's certificate at all (tests only: anyone on the
                         path can read and change the session, password included)
  --tls-max VERSION      1.2 (default) or 1.3: the highest TLS version offered. rustls uses each
                         TLS 1.3 session ticket once, and servers that require session reuse but
                         send no ticket on upload data connections (ProFTPD 1.3.8, the example
                         server) refuse data connections once the few tickets of the login are
                         used up; a TLS 1.2 session resumes any number of times. 1.3 suits
                         servers that send tickets on every data connection (vsftpd)

Options:
  --resume               get: continue a partial local file; put: continue a partial remote file
                         (REST; binary mode only)
  --active               active data connections (EPRT/PORT) instead of passive (EPSV/PASV)
  --ascii                TYPE A: text transfers with line-end conversion (default: binary)
  --no-epsv              use only PASV/PORT, not the RFC 2428 EPSV/EPRT
  --timeout SECS         connect, reply and data timeout (default: 60)
  -h, --help             show this text

Exit status: 0 on success, 1 on failure, 2 on a usage error.
";

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// `ls URL`.
    List { url: FtpUrl },
    /// `get URL [LOCAL]`.
    Get { url: FtpUrl, local: Option<PathBuf> },
    /// `put LOCAL URL`.
    Put { local: PathBuf, url: FtpUrl },
    /// `mirror URL LOCALDIR`.
    Mirror { url: FtpUrl, local: PathBuf },
}

impl Command {
    /// The command's URL.
    pub fn url(&self) -> &FtpUrl {
        match self {
            Command::List { url }
            | Command::Get { url, .. }
            | Command::Put { url, .. }
            | Command::Mirror { url, .. } => url,
        }
    }
}

/// The flags.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub resume: bool,
    pub active: bool,
    pub ascii: bool,
    pub no_epsv: bool,
    pub timeout: Option<Duration>,
    /// `--tls`: explicit FTPS.
    pub tls: bool,
    /// `--ca-file FILE`.
    pub ca_file: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
    /// `--tls-max`: TLS 1.2 at most unless `--tls-max 1.3` (see `--help` for why).
    pub tls12_only: bool,
    /// `--tls-max` was given.
    pub tls_max_given: bool,
}

impl Flags {
    /// Whether the session runs TLS: `--tls`, or an `ftps://` URL.
    pub fn uses_tls(&self, url: &FtpUrl) -> bool {
        self.tls || url.is_implicit_tls()
    }
}

/// What the user asked for.
#[derive(Debug)]
pub enum Parsed {
    /// Run this command with these flags.
    Run(Command, Flags),
    /// Print [`USAGE`] and exit.
    Help,
}

/// Parses the arguments (without the program name). The error is a message for the user.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut flags = Flags {
        tls12_only: true,
        ..Flags::default()
    };
    let mut operands = Vec::new();
    let mut args = args.into_iter();
    let mut only_operands = false;
    while let Some(arg) = args.next() {
        if only_operands || !arg.starts_with('-') || arg == "-" {
            operands.push(arg);
            continue;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let takes_no_value = |flags_value: bool| -> Result<bool, String> {
            match inline_value {
                Some(_) => Err(format!("{flag} takes no value")),
                None => Ok(flags_value),
            }
        };
        match flag.as_str() {
            "--" => only_operands = true,
            "-h" | "--help" => return Ok(Parsed::Help),
            "--resume" => flags.resume = takes_no_value(true)?,
            "--active" => flags.active = takes_no_value(true)?,
            "--ascii" => flags.ascii = takes_no_value(true)?,
            "--no-epsv" => flags.no_epsv = takes_no_value(true)?,
            "--tls" => flags.tls = takes_no_value(true)?,
            "--insecure" => flags.insecure = takes_no_value(true)?,
            "--tls-max" => {
                let value = inline_value
                    .or_else(|| args.next())
                    .ok_or("--tls-max needs a value")?;
                flags.tls_max_given = true;
                flags.tls12_only = match value.as_str() {
                    "1.2" => true,
                    "1.3" => false,
                    _ => return Err(format!("--tls-max: expected 1.2 or 1.3, got {value:?}")),
                };
            }
            "--ca-file" => {
                let value = inline_value
                    .or_else(|| args.next())
                    .ok_or("--ca-file needs a value")?;
                flags.ca_file = Some(PathBuf::from(value));
            }
            "--timeout" => {
                let value = inline_value
                    .or_else(|| args.next())
                    .ok_or("--timeout needs a value")?;
                flags.timeout = Some(parse_seconds(&value)?);
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    let command = command(operands)?;
    let url = command.url();
    if (flags.ca_file.is_some() || flags.insecure || flags.tls_max_given) && !flags.uses_tls(url) {
        return Err(
            "--ca-file, --insecure and --tls-max need TLS: add --tls, or use an ftps:// URL".into(),
        );
    }
    if flags.ca_file.is_some() && flags.insecure {
        return Err("--ca-file and --insecure contradict each other".into());
    }
    Ok(Parsed::Run(command, flags))
}

fn command(operands: Vec<String>) -> Result<Command, String> {
    let mut operands = operands.into_iter();
    let name = operands.next().ok_or("no command given")?;
    let rest: Vec<String> = operands.collect();
    let arity = |min: usize, max: usize| {
        if rest.len() < min || rest.len() > max {
            Err(format!("wrong number of operands for {name:?}"))
        } else {
            Ok(())
        }
    };
    match name.as_str() {
        "ls" => {
            arity(1, 1)?;
            Ok(Command::List {
                url: url(&rest[0])?,
            })
        }
        "get" => {
            arity(1, 2)?;
            Ok(Command::Get {
                url: url(&rest[0])?,
                local: rest.get(1).map(PathBuf::from),
            })
        }
        "put" => {
            arity(2, 2)?;
            Ok(Command::Put {
                local: PathBuf::from(&rest[0]),
                url: url(&rest[1])?,
            })
        }
        "mirror" => {
            arity(2, 2)?;
            Ok(Command::Mirror {
                url: url(&rest[0])?,
                local: PathBuf::from(&rest[1]),
            })
        }
        _ => Err(format!("unknown command {name:?}")),
    }
}

fn url(text: &str) -> Result<FtpUrl, String> {
    FtpUrl::parse(text).map_err(|error| format!("{text:?}: {error}"))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "--timeout: expected a whole number of seconds > 0, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Parsed, String> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn flags_go_anywhere() {
        let Ok(Parsed::Run(Command::Get { url, local }, flags)) =
            args("--active get ftp://h/f --timeout=5 out --resume")
        else {
            panic!("not parsed");
        };
        assert_eq!(url.port(), 21);
        assert_eq!(local, Some(PathBuf::from("out")));
        assert!(flags.active && flags.resume && !flags.ascii);
        assert_eq!(flags.timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn usage_errors() {
        assert!(args("").is_err());
        assert!(args("ls").is_err());
        assert!(args("put only-one").is_err());
        assert!(args("get http://h/f").is_err());
        assert!(args("get ftp://h/f --timeout 0").is_err());
        assert!(args("get ftp://h/f --frobnicate").is_err());
        assert!(args("get ftp://h/f --resume=yes").is_err());
        assert!(matches!(args("ls ftp://h/ --help"), Ok(Parsed::Help)));
    }

    #[test]
    fn tls_flags() {
        let Ok(Parsed::Run(command, flags)) = args("ls --tls --ca-file ca.pem ftp://h/") else {
            panic!("not parsed");
        };
        assert!(flags.tls && !flags.insecure && flags.uses_tls(command.url()));
        assert_eq!(flags.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(command.url().port(), 21);

        // ftps:// is implicit FTPS on port 990, without --tls.
        let Ok(Parsed::Run(command, flags)) = args("get --insecure ftps://h/f") else {
            panic!("not parsed");
        };
        assert!(!flags.tls && flags.insecure && flags.uses_tls(command.url()));
        assert_eq!(command.url().port(), 990);

        // Trust settings without TLS would protect nothing: refused rather than ignored.
        assert!(args("ls --insecure ftp://h/").is_err());
        assert!(args("ls --ca-file=ca.pem ftp://h/").is_err());
        assert!(args("ls --tls --ca-file").is_err());
        assert!(args("ls --tls=yes ftp://h/").is_err());
        assert!(args("ls --tls --insecure --ca-file ca.pem ftp://h/").is_err());

        let Ok(Parsed::Run(_, flags)) = args("ls --tls --tls-max 1.2 ftp://h/") else {
            panic!("not parsed");
        };
        assert!(flags.tls12_only);
        let Ok(Parsed::Run(_, flags)) = args("ls --tls-max=1.3 ftps://h/") else {
            panic!("not parsed");
        };
        assert!(!flags.tls12_only);
        let Ok(Parsed::Run(_, flags)) = args("ls --tls ftp://h/") else {
            panic!("not parsed");
        };
        assert!(flags.tls12_only, "TLS 1.2 at most by default");
        assert!(args("ls --tls --tls-max 1.1 ftp://h/").is_err());
        assert!(args("ls --tls-max 1.2 ftp://h/").is_err());
    }
}
