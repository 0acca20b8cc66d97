//! The request in progress, and the command exchanges of every request that needs no data connection.

use std::time::Instant;

use crate::command::{Command, ListArgs, OptsArg, Password, Pathname, Text, TransferType};
use crate::decimal::parse_u64;
use crate::listing::parse_mlsx_line;
use crate::reply::{Reply, ReplyCode, ReplyKind, parse_quoted_pathname};
use crate::time::Timestamp;

use super::Session;
use super::abort::AbortState;
use super::io::{ClientError, Event, Outcome, ProtocolError, Request, RequestId};
use super::security::{ClearStep, SecureStep};
use super::transfer::{Transfer, TransferKind};
use crate::feat::FeatureSet;

/// The request in progress.
#[derive(Debug)]
pub(super) struct Current {
    pub(super) id: RequestId,
    pub(super) op: Op,
    pub(super) abort: AbortState,
}

/// What the request in progress is doing.
#[derive(Debug)]
pub(super) enum Op {
    /// `USER`, `PASS`, `ACCT`.
    Login(Login),
    /// `RNFR` (while `to` is still to be sent) then `RNTO`.
    Rename { to: Option<Pathname> },
    /// One command whose final reply gives the outcome.
    Single(Expect),
    /// A raw command: its final reply is the outcome.
    Raw {
        preliminary: bool,
        /// What it does to the session's idea of the server's TYPE on success.
        effect: RawEffect,
    },
    /// `QUIT`.
    Quit,
    /// A transfer with a data connection.
    Transfer(Box<Transfer>),
    /// `AUTH TLS` and the control connection's handshake.
    SecureControl(SecureStep),
    /// `CCC` (after `PBSZ`/`PROT` if data protection is not set up yet).
    ClearControl(ClearStep),
}

impl Op {
    /// Whether the server has something running that `ABOR` can stop: a transfer command was sent, or a
    /// raw command got its preliminary reply.
    pub(super) fn is_abortable(&self) -> bool {
        match self {
            Op::Transfer(transfer) => transfer.command_sent(),
            Op::Raw { preliminary, .. } => *preliminary,
            Op::Login(_)
            | Op::Rename { .. }
            | Op::Single(_)
            | Op::Quit
            | Op::SecureControl(_)
            | Op::ClearControl(_) => false,
        }
    }
}

/// What a raw command does to the TYPE the session believes the server has, if the server accepts it.
#[derive(Debug, Clone, Copy)]
pub(super) enum RawEffect {
    None,
    /// `TYPE`: the conversion changes, as for [`Request::SetType`].
    SetsType(TransferType),
    /// `REIN` resets TYPE (RFC 959 §4.1.1), and some servers reset it on `USER`/`PASS`/`ACCT`.
    MayResetType,
    /// `PROT`: data connections are protected (`P`) or not from now on (FXP sends it raw).
    SetsProtection(bool),
}

impl RawEffect {
    /// What `command` does to the TYPE (or the data protection) the session believes the server has.
    /// Every command is named, so a new one is a compile error here until someone decides.
    fn of(command: &Command) -> RawEffect {
        match command {
            Command::Type(t) => RawEffect::SetsType(*t),
            Command::Prot(level) => {
                RawEffect::SetsProtection(*level == crate::command::ProtectionLevel::Private)
            }
            Command::Rein | Command::User(_) | Command::Pass(_) | Command::Acct(_) => {
                RawEffect::MayResetType
            }
            Command::Cwd(_)
            | Command::Cdup
            | Command::Smnt(_)
            | Command::Quit
            | Command::Port(_)
            | Command::Pasv
            | Command::Stru(_)
            | Command::Mode(_)
            | Command::Retr(_)
            | Command::Stor(_)
            | Command::Stou(_)
            | Command::Appe(_)
            | Command::Allo { .. }
            | Command::Rest(_)
            | Command::Rnfr(_)
            | Command::Rnto(_)
            | Command::Abor
            | Command::Dele(_)
            | Command::Rmd(_)
            | Command::Mkd(_)
            | Command::Pwd
            | Command::List(_)
            | Command::Nlst(_)
            | Command::Site(_)
            | Command::Syst
            | Command::Stat(_)
            | Command::Help(_)
            | Command::Noop
            | Command::Auth(_)
            | Command::Adat(_)
            | Command::Pbsz(_)
            | Command::Ccc
            | Command::Sscn(_)
            | Command::Cpsv
            | Command::Mic(_)
            | Command::Conf(_)
            | Command::Enc(_)
            | Command::Feat
            | Command::Opts(_)
            | Command::Eprt(_)
            | Command::Epsv(_)
            | Command::Lang(_)
            | Command::Size(_)
            | Command::Mdtm(_)
            | Command::Mlst(_)
            | Command::Mlsd(_)
            | Command::Host(_)
            | Command::Mfmt { .. }
            | Command::Unknown { .. } => RawEffect::None,
        }
    }
}

/// What the session does with the current request after an input.
#[derive(Debug)]
pub(super) enum Flow {
    /// It goes on.
    Continue,
    /// Its data connection failed mid-transfer: abort with `ABOR`, then fail with this error.
    Abort(ClientError),
    /// It is over.
    Done(Result<Outcome, ClientError>),
}

/// How a single command's positive final reply becomes an outcome.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect {
    Done,
    Features,
    System,
    Path,
    Created,
    Size,
    Modified,
    Entry,
    Type(TransferType),
}

/// Where a login is.
#[derive(Debug)]
pub(super) struct Login {
    /// Taken when `PASS` is sent.
    password: Option<Option<Password>>,
    /// Taken when `ACCT` is sent.
    account: Option<Text>,
}

/// The error for a reply that does not fit: the server's refusal if negative, a protocol error otherwise.
pub(super) fn refusal(reply: Reply) -> ClientError {
    if reply.code().is_negative() {
        ClientError::Reply(reply)
    } else {
        ClientError::Protocol(ProtocolError::UnexpectedReply(reply))
    }
}

impl Session {
    /// Starts request `id`: sends its first command (or, for an active-mode transfer, asks for a listener).
    ///
    /// The match names every request, with no fallback: a new [`Request`] is a compile error here
    /// until it is given its command, never a stray `NOOP` on the wire.
    pub(super) fn begin(&mut self, now: Instant, id: RequestId, request: Request) {
        let op = match request {
            Request::Login {
                user,
                password,
                account,
            } => {
                self.send(now, &Command::User(user));
                Op::Login(Login {
                    password: Some(password),
                    account,
                })
            }
            Request::Rename { from, to } => {
                self.send(now, &Command::Rnfr(from));
                Op::Rename { to: Some(to) }
            }
            Request::Quit => {
                self.send(now, &Command::Quit);
                Op::Quit
            }
            Request::Raw(command) => {
                let effect = RawEffect::of(&command);
                self.send(now, &command);
                Op::Raw {
                    preliminary: false,
                    effect,
                }
            }
            Request::List { path, now: today } => {
                let list = Command::List(ListArgs::new(path));
                self.begin_transfer(now, id, TransferKind::List(today), list, 0)
            }
            Request::Nlst { path } => {
                let nlst = Command::Nlst(ListArgs::new(path));
                self.begin_transfer(now, id, TransferKind::Nlst, nlst, 0)
            }
            Request::Mlsd { path } => {
                self.begin_transfer(now, id, TransferKind::Mlsd, Command::Mlsd(path), 0)
            }
            Request::Retrieve { path, offset } => {
                self.begin_transfer(now, id, TransferKind::Retrieve, Command::Retr(path), offset)
            }
            Request::Store {
                path,
                offset,
                append,
            } => {
                let store = if append {
                    Command::Appe(path)
                } else {
                    Command::Stor(path)
                };
                self.begin_transfer(now, id, TransferKind::Store { append }, store, offset)
            }
            Request::Features => self.begin_single(now, Command::Feat, Expect::Features),
            Request::Utf8On => {
                self.begin_single(now, Command::Opts(OptsArg::Utf8(true)), Expect::Done)
            }
            Request::System => self.begin_single(now, Command::Syst, Expect::System),
            Request::Pwd => self.begin_single(now, Command::Pwd, Expect::Path),
            Request::Cwd(path) => self.begin_single(now, Command::Cwd(path), Expect::Done),
            Request::Cdup => self.begin_single(now, Command::Cdup, Expect::Done),
            Request::Mkdir(path) => self.begin_single(now, Command::Mkd(path), Expect::Created),
            Request::Rmdir(path) => self.begin_single(now, Command::Rmd(path), Expect::Done),
            Request::Delete(path) => self.begin_single(now, Command::Dele(path), Expect::Done),
            Request::Size(path) => self.begin_single(now, Command::Size(path), Expect::Size),
            Request::Mdtm(path) => self.begin_single(now, Command::Mdtm(path), Expect::Modified),
            Request::SetModified { path, time } => {
                self.begin_single(now, Command::Mfmt { time, path }, Expect::Done)
            }
            Request::Mlst(path) => self.begin_single(now, Command::Mlst(path), Expect::Entry),
            Request::SetType(t) => self.begin_single(now, Command::Type(t), Expect::Type(t)),
            // An abort with nothing to overtake: a plain command in its turn.
            Request::Abort => self.begin_single(now, Command::Abor, Expect::Done),
            Request::Noop => self.begin_single(now, Command::Noop, Expect::Done),
            Request::Site(text) => self.begin_single(now, Command::Site(text), Expect::Done),
            Request::Host(name) => self.begin_single(now, Command::Host(name), Expect::Done),
            Request::SecureControl => self.begin_secure_control(now),
            Request::ClearControl => self.begin_clear_control(now),
        };
        self.current = Some(Current {
            id,
            op,
            abort: AbortState::None,
        });
    }

    /// Sends a request's one command, whose final reply becomes the outcome as `expect` says.
    fn begin_single(&mut self, now: Instant, command: Command, expect: Expect) -> Op {
        self.send(now, &command);
        Op::Single(expect)
    }

    /// A reply to the current request's last command (no abort running).
    pub(super) fn op_reply(&mut self, now: Instant, current: &mut Current, reply: Reply) -> Flow {
        let id = current.id;
        let abort_requested = current.abort.is_requested();
        if let Op::Transfer(transfer) = &mut current.op {
            return self.transfer_reply(now, id, transfer, reply, abort_requested);
        }
        if reply.code().is_positive_preliminary() {
            // RFC 959 §4.2: a preliminary reply; the final one follows.
            if let Op::Raw { preliminary, .. } = &mut current.op {
                *preliminary = true;
                self.suspend_reply_timer();
            }
            let id = Some(id);
            self.push_event(Event::Preliminary { id, reply });
            return Flow::Continue;
        }
        match &mut current.op {
            Op::Login(login) => self.login_reply(now, login, reply),
            Op::Rename { to } => match to.take() {
                Some(to) if reply.code() == ReplyCode::FILE_ACTION_PENDING => {
                    self.send(now, &Command::Rnto(to));
                    Flow::Continue
                }
                Some(_) => Flow::Done(Err(refusal(reply))),
                None => Flow::Done(self.expected(Expect::Done, reply)),
            },
            Op::Single(expect) => {
                let expect = *expect;
                Flow::Done(self.expected(expect, reply))
            }
            Op::Raw { effect, .. } => {
                if reply.code().is_negative() {
                    return Flow::Done(Err(ClientError::Reply(reply)));
                }
                match *effect {
                    RawEffect::SetsType(t) if reply.code().is_positive_completion() => {
                        self.type_set(t)
                    }
                    RawEffect::MayResetType => self.type_may_be_reset(),
                    RawEffect::SetsProtection(on) if reply.code().is_positive_completion() => {
                        self.security.data_protected = on;
                    }
                    RawEffect::SetsType(_) | RawEffect::SetsProtection(_) | RawEffect::None => {}
                }
                Flow::Done(Ok(Outcome::Done(reply)))
            }
            Op::Quit => Flow::Done(self.expected(Expect::Done, reply)),
            Op::SecureControl(step) => self.secure_control_reply(now, id, step, reply),
            Op::ClearControl(step) => self.clear_control_reply(now, step, reply),
            Op::Transfer(_) => Flow::Continue, // handled above
        }
    }

    /// RFC 959 §6 login sequence: `USER` → 230 | 331 → `PASS` → 230 | 332 → `ACCT` → 230.
    fn login_reply(&mut self, now: Instant, login: &mut Login, reply: Reply) -> Flow {
        if !reply.code().is_negative() {
            self.type_may_be_reset();
        }
        match reply.code() {
            code if code.is_positive_completion() => Flow::Done(Ok(Outcome::Done(reply))),
            ReplyCode::NEED_PASSWORD => match login.password.take() {
                Some(password) => {
                    self.send(now, &Command::Pass(password));
                    Flow::Continue
                }
                None => Flow::Done(Err(refusal(reply))), // a second 331: the server is confused
            },
            ReplyCode::NEED_ACCOUNT => match login.account.take() {
                Some(account) => {
                    self.send(now, &Command::Acct(account));
                    Flow::Continue
                }
                None => Flow::Done(Err(ClientError::Reply(reply))),
            },
            _ => Flow::Done(Err(refusal(reply))),
        }
    }

    /// Turns a single command's final reply into its outcome.
    fn expected(&mut self, expect: Expect, reply: Reply) -> Result<Outcome, ClientError> {
        if reply.code().kind() != ReplyKind::PositiveCompletion {
            return Err(refusal(reply));
        }
        let bad_text = |reply| ClientError::Protocol(ProtocolError::BadReplyText(reply));
        let text = reply.first_line().trim_ascii();
        match expect {
            Expect::Done => Ok(Outcome::Done(reply)),
            Expect::Features => Ok(Outcome::Features(FeatureSet::from_reply(&reply))),
            Expect::System => Ok(Outcome::System(String::from_utf8_lossy(text).into_owned())),
            Expect::Path => match parse_quoted_pathname(reply.first_line()) {
                Some(path) => Ok(Outcome::Path(path)),
                None => Err(bad_text(reply)),
            },
            Expect::Created => Ok(Outcome::Created(parse_quoted_pathname(reply.first_line()))),
            Expect::Size => match parse_u64(text) {
                Some(size) => Ok(Outcome::Size(size)),
                None => Err(bad_text(reply)),
            },
            Expect::Modified => match Timestamp::parse_ftp(text) {
                Some(time) => Ok(Outcome::Modified(time)),
                None => Err(bad_text(reply)),
            },
            Expect::Entry => {
                // RFC 3659 §7.2: the entry is the inner line of a multi-line 250 reply.
                let inner = reply.line_count().saturating_sub(1);
                let entry = reply
                    .lines()
                    .take(inner)
                    .skip(1)
                    .find_map(|line| parse_mlsx_line(line).ok());
                match entry {
                    Some(entry) => Ok(Outcome::Entry(entry)),
                    None => Err(bad_text(reply)),
                }
            }
            Expect::Type(t) => {
                self.type_set(t);
                Ok(Outcome::Done(reply))
            }
        }
    }

    /// The server accepted `TYPE t`.
    pub(super) fn type_set(&mut self, t: TransferType) {
        self.transfer_type = t;
        self.type_unconfirmed = false;
    }

    /// The server accepted a command after which it may be back in its default TYPE (A N) or may not
    /// (RFC 959 keeps TYPE across `USER`; some servers reset it on login, all on `REIN`). Rather than
    /// guess, the session keeps the TYPE it was asked for and sends it again before the next transfer.
    /// Not needed when that TYPE is the default: then both possibilities agree.
    pub(super) fn type_may_be_reset(&mut self) {
        if self.transfer_type != TransferType::DEFAULT {
            self.type_unconfirmed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_split_by_kind() {
        let reply = |code| Reply::new(ReplyCode::new(code).unwrap(), "x");
        assert!(matches!(refusal(reply(550)), ClientError::Reply(_)));
        assert!(matches!(refusal(reply(421)), ClientError::Reply(_)));
        assert!(matches!(
            refusal(reply(350)),
            ClientError::Protocol(ProtocolError::UnexpectedReply(_))
        ));
    }
}
