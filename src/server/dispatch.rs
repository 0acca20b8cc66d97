//! From a command line to the code that handles it: parsing, the login gate, the few commands allowed
//! while a transfer runs, and one exhaustive `match` over [`Command`].
//!
//! Every verb has exactly one arm here, so a new [`Command`] variant does not compile until it is given
//! one. Arms that take more than a line or two call a method in the module that owns the concept
//! (login, data channel, transfers, storage, information).

use std::net::SocketAddr;
use std::time::Instant;

use crate::command::{Command, EpsvArg, ListArgs, Structure, TransferMode, Verb};
use crate::path::VirtualPath;
use crate::reply::ReplyCode;

use super::io::Event;
use super::log_line::loggable;
use super::transfer::ListingFormat;
use super::{Input, Session, transfer};

impl Session {
    /// Handles one command line.
    pub(super) fn handle_line(&mut self, now: Instant, line: &[u8]) {
        self.event(Event::Command(loggable(line)));
        // RFC 959 §4.1.3: RNTO must come right after RNFR; anything else, even a bad line, forgets it.
        let rename_from = self.rename_from.take();
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(error) => {
                let needs_login = (error.verb())
                    .and_then(|verb| Verb::lookup(verb.as_bytes()))
                    .is_some_and(|verb| !verb.before_login);
                if needs_login && !self.is_logged_in() {
                    self.reply_not_logged_in();
                } else {
                    self.reply(error.reply_code(), format!("{error}."));
                }
                return;
            }
        };
        // An unknown verb is answered 500 before login too: it needs no login to be unknown.
        let needs_login = command.verb_info().is_some_and(|verb| !verb.before_login);
        if self.transfer.is_some() {
            self.command_during_transfer(command);
        } else if needs_login && !self.is_logged_in() {
            self.reply_not_logged_in();
        } else {
            self.dispatch(now, command, rename_from);
        }
    }

    /// The commands that may run while a transfer is in progress.
    fn command_during_transfer(&mut self, command: Command) {
        match command {
            Command::Abor => {
                self.abort_transfer();
                self.reply(
                    ReplyCode::TRANSFER_ABORTED,
                    "Connection closed; transfer aborted.",
                );
                self.reply(ReplyCode::CLOSING_DATA, "Abort successful.");
                // A `QUIT` that waited for the transfer is answered now that it is over.
                self.after_transfer();
            }
            Command::Stat(None) => self.transfer_status(),
            Command::Quit => self.quit_after_transfer(),
            // `process_queue` only lets the commands above through during a transfer.
            _ => self.reply(ReplyCode::BAD_SEQUENCE, "A transfer is in progress."),
        }
    }

    /// Runs a command a logged-in client (or any client, for those allowed before login) may give
    /// when no transfer is running. One arm per verb and no catch-all: a new [`Command`] variant must be
    /// given an arm here before the crate compiles.
    fn dispatch(&mut self, now: Instant, command: Command, rename_from: Option<VirtualPath>) {
        use Command::*;
        match command {
            // Login (login.rs).
            User(name) => self.handle_user(now, name),
            Pass(password) => self.pass(password),
            Acct(_) => self.reply(
                ReplyCode::COMMAND_NOT_IMPLEMENTED_SUPERFLUOUS,
                "ACCT not needed.",
            ),
            Rein => self.reinitialize(now),
            Host(_) => self.host(),
            Quit => self.quit(),
            // The working directory and the file commands (storage.rs).
            Pwd => self.print_working_directory(),
            Cwd(path) => self.change_directory(&path),
            Cdup => self.change_to_parent(),
            Smnt(_) => self.reply(ReplyCode::NOT_IMPLEMENTED, "SMNT not implemented."),
            Size(path) => self.size(&path),
            Mdtm(path) => self.modification_time(&path),
            Dele(path) => self.delete(&path),
            Mkd(path) => self.make_directory(&path),
            Rmd(path) => self.remove_directory(&path),
            Rnfr(path) => self.rename_source(&path),
            Rnto(to) => self.rename_target(&to, rename_from),
            Mfmt { time, path } => self.set_modification_time(&path, time),
            Allo { .. } => self.reply(
                ReplyCode::COMMAND_NOT_IMPLEMENTED_SUPERFLUOUS,
                "No storage allocation necessary.",
            ),
            // Transfer parameters and transfers (transfer_commands.rs).
            Type(t) => self.set_type(t),
            Stru(Structure::File) => self.reply(ReplyCode::COMMAND_OK, "Structure set to F."),
            Stru(_) => self.reply(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Only file structure is supported.",
            ),
            Mode(TransferMode::Stream) => self.reply(ReplyCode::COMMAND_OK, "Mode set to S."),
            Mode(_) => self.reply(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Only stream mode is supported.",
            ),
            Rest(offset) => self.restart_at(offset),
            Retr(path) => self.retrieve(&path),
            Stor(path) => self.store(&path, "STOR"),
            Appe(path) => self.store(&path, "APPE"),
            Stou(path) => self.store_unique(path.as_ref()),
            List(args) => self.list(args, "LIST", ListingFormat::Long),
            Nlst(args) => self.list(args, "NLST", ListingFormat::Names),
            Mlsd(path) => {
                let format = ListingFormat::Facts(self.mlst_facts, self.permissions());
                self.list(ListArgs::new(path), "MLSD", format)
            }
            Abor => self.reply(ReplyCode::CLOSING_DATA, "No transfer to abort."),
            // The data channel (data_channel.rs).
            Port(hp) => self.port(SocketAddr::V4(hp.socket_addr()), "PORT"),
            Eprt(addr) => self.port(addr, "EPRT"),
            Pasv => self.passive(false, None),
            Epsv(EpsvArg::All) => {
                self.epsv_all = true;
                self.reply(ReplyCode::COMMAND_OK, "EPSV ALL ok.");
            }
            Epsv(EpsvArg::Any) => self.passive(true, None),
            Epsv(EpsvArg::Protocol(p)) => self.passive(true, Some(p)),
            // Information (info.rs).
            Mlst(path) => self.mlst(path.as_ref()),
            Stat(None) => self.status(),
            Stat(Some(args)) => self.stat_path(&args),
            Syst => {
                let system = self.config.system_type.clone();
                self.reply(ReplyCode::SYSTEM_TYPE, system);
            }
            Noop => self.reply(ReplyCode::COMMAND_OK, "NOOP ok."),
            Help(topic) => self.help(topic.as_ref().map(|t| t.as_bytes())),
            Feat => self.features(),
            Opts(arg) => self.options(arg),
            Lang(tag) => self.language(tag.as_ref()),
            Site(_) => self.reply(ReplyCode::SYNTAX_ERROR, "Unknown SITE command."),
            // Security (RFC 2228, RFC 4217; security.rs). Only TLS is offered, which has no use for
            // the RFC 2228 mechanisms' own message protection.
            Auth(mechanism) => self.auth(&mechanism),
            Pbsz(_) => self.protection_buffer_size(),
            Prot(level) => self.protection_level(level),
            Ccc => self.clear_command_channel(),
            Adat(_) | Mic(_) | Conf(_) | Enc(_) => self.reply(
                ReplyCode::NOT_IMPLEMENTED,
                "Only AUTH TLS is offered; it needs no ADAT, MIC, CONF or ENC.",
            ),
            Sscn(on) => self.set_secure_client_negotiation(on),
            Cpsv => self.client_passive(),
            Unknown { .. } => self.reply(ReplyCode::SYNTAX_ERROR, "Unknown command."),
        }
    }
}

/// Whether a queued line may be handled while a transfer runs (RFC 959 §4.1.3): `ABOR`, and `QUIT` which
/// only marks the session to close after the transfer's reply. `STAT` is answered once the transfer's 150
/// is out, so replies never overtake it; everything else, `NOOP` included, waits for the 226. Once every
/// byte of an upload is in (`Closing`), the transfer can only complete: `ABOR` waits and then finds no
/// transfer to abort (RFC 959: 226 alone).
pub(super) fn is_transfer_time_command(input: &Input, phase: transfer::Phase) -> bool {
    use transfer::Phase;
    let Input::Line(line) = input else {
        return false;
    };
    let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = line.get(..verb_end).unwrap_or_default();
    let Some(verb) = Verb::lookup(verb).filter(|verb| verb.during_transfer) else {
        return false;
    };
    match verb.name {
        // Once an upload is closing, its data is in; an abort could no longer undo it.
        "ABOR" => phase != Phase::Closing,
        // `STAT path` is a listing, which waits; a bare `STAT` reports on the transfer.
        "STAT" => phase == Phase::Running && verb_end == line.len(),
        _ => true,
    }
}
