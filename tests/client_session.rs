//! The client session against scripted servers: replies are fed as bytes, and the commands, data
//! actions and events that come out are checked. The last tests wire the client to this crate's
//! server session through an in-memory driver.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ftp_proto::client::{
    Action, ClientError, Config, ConnectionInfo, DataAction, DataCompletion, DataMode, Event,
    LocalAction, Outcome, ProtocolError, Request, RequestId, Session, TlsRole, UsageError,
};
use ftp_proto::command::{Command, FormatControl, Password, Pathname, Text, TransferType};
use ftp_proto::listing::{EntryKind, MlsxKind};
use ftp_proto::reply::ReplyError;
use ftp_proto::time::Timestamp;
use proptest::prelude::*;

const SERVER: &str = "198.51.100.1:21";
const CLIENT: &str = "192.0.2.7:50000";

fn info() -> ConnectionInfo {
    ConnectionInfo {
        local: CLIENT.parse().unwrap(),
        peer: SERVER.parse().unwrap(),
    }
}

fn path(s: &str) -> Pathname {
    Pathname::new(s).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn login(user: &str, password: &str) -> Request {
    Request::Login {
        user: Text::new(user).unwrap(),
        password: Some(Password::new(password).unwrap()),
        account: None,
    }
}

/// A client session with a scripted server: `reply` feeds server bytes, `sent` returns the commands
/// written since the last call, `data` the other actions, `completed` the results.
struct Script {
    session: Session,
    now: Instant,
    /// Commands not yet inspected.
    commands: String,
    /// Non-control actions not yet inspected.
    data_actions: Vec<Action>,
    /// Events not yet inspected.
    events: Vec<Event>,
}

impl Script {
    fn new() -> Script {
        Script::with_config(Config::default())
    }

    fn with_config(config: Config) -> Script {
        let now = Instant::now();
        Script {
            session: Session::new(Arc::new(config), info(), now),
            now,
            commands: String::new(),
            data_actions: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A session that got its greeting, over a control connection between these ends.
    fn greeted_over(info: ConnectionInfo) -> Script {
        let mut script = Script::new();
        script.session = Session::new(Arc::new(Config::default()), info, script.now);
        script.reply("220 ready\r\n");
        script.events();
        script
    }

    /// A session that got its greeting.
    fn greeted() -> Script {
        let mut script = Script::new();
        script.reply("220 ready\r\n");
        script.events();
        script
    }

    fn request(&mut self, request: Request) -> RequestId {
        self.session.request(self.now, request).unwrap()
    }

    fn reply(&mut self, wire: &str) {
        self.session.handle_control_input(self.now, wire.as_bytes());
    }

    fn complete(&mut self, id: RequestId, completion: DataCompletion) {
        self.session.handle_completion(self.now, id, completion);
    }

    fn data(&mut self, id: RequestId, chunk: &'static [u8]) {
        self.session
            .handle_data(self.now, id, Bytes::from_static(chunk));
    }

    /// Moves the session's output into the inspection buffers.
    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::SendControl(bytes) => {
                    self.commands.push_str(std::str::from_utf8(&bytes).unwrap())
                }
                other => self.data_actions.push(other),
            }
        }
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
    }

    /// Commands sent since the last call.
    fn sent(&mut self) -> String {
        self.drain();
        std::mem::take(&mut self.commands)
    }

    /// Data actions since the last call.
    fn data_actions(&mut self) -> Vec<Action> {
        self.drain();
        std::mem::take(&mut self.data_actions)
    }

    /// Events since the last call.
    fn events(&mut self) -> Vec<Event> {
        self.drain();
        std::mem::take(&mut self.events)
    }

    /// Completions since the last call (other events are dropped).
    fn completed(&mut self) -> Vec<(RequestId, Result<Outcome, ClientError>)> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Completed { id, result } => Some((id, result)),
                _ => None,
            })
            .collect()
    }

    /// The one completion since the last call, which must be `id`'s.
    fn result(&mut self, id: RequestId) -> Result<Outcome, ClientError> {
        let mut completed = self.completed();
        assert_eq!(completed.len(), 1, "{completed:?}");
        let (got, result) = completed.remove(0);
        assert_eq!(got, id);
        result
    }

    /// Plays the user's sink: acknowledges every chunk the session writes to it, and reports it stored
    /// when it is closed after the last write. Returns the bytes written; other actions are dropped.
    fn sink(&mut self) -> Vec<u8> {
        let mut written = Vec::new();
        loop {
            let actions = self.data_actions();
            if actions.is_empty() {
                return written;
            }
            for action in actions {
                match action {
                    Action::Local(LocalAction::Write { id, data }) => {
                        written.extend_from_slice(&data);
                        self.complete(id, DataCompletion::Written);
                    }
                    Action::Local(LocalAction::Close { id, aborted: false }) => {
                        self.complete(id, DataCompletion::Written)
                    }
                    _ => {}
                }
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.session.handle_timeout(self.now);
    }
}

fn reply_code(result: &Result<Outcome, ClientError>) -> Option<u16> {
    match result {
        Ok(Outcome::Done(reply)) | Err(ClientError::Reply(reply)) => Some(reply.code().get()),
        _ => None,
    }
}

// ---- greeting and login ----

#[test]
fn nothing_is_sent_before_the_greeting_and_120_delays_it() {
    let mut s = Script::new();
    let id = s.request(Request::Noop);
    assert_eq!(s.sent(), "");
    s.reply("120 Service ready in 1 minute\r\n");
    assert_eq!(s.sent(), "");
    s.reply("220 Now ready\r\n");
    assert_eq!(s.sent(), "NOOP\r\n");
    let events = s.events();
    assert!(
        matches!(&events[0], Event::Preliminary { id: None, reply } if reply.code().get() == 120)
    );
    assert!(matches!(&events[1], Event::Connected(reply) if reply.first_line() == b"Now ready"));
    assert!(s.session.is_connected());
    s.reply("200 NOOP ok\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(200));
}

/// A `QUIT` may be queued before the greeting: it refuses later requests at once, waits for the greeting
/// and its turn, and closes the session when answered.
#[test]
fn a_quit_queued_before_the_greeting_is_sent_in_its_turn() {
    let mut s = Script::new();
    let pwd = s.request(Request::Pwd);
    let quit = s.request(Request::Quit);
    assert_eq!(
        s.session.request(s.now, Request::Noop),
        Err(UsageError::Closed)
    );
    assert!(!s.session.is_connected() && !s.session.is_closed());
    assert_eq!(s.sent(), "");
    s.reply("220 ready\r\n");
    assert!(s.session.is_connected());
    assert_eq!(s.sent(), "PWD\r\n");
    s.reply("257 \"/\"\r\n");
    assert_eq!(s.result(pwd), Ok(Outcome::Path(b"/".to_vec())));
    assert_eq!(s.sent(), "QUIT\r\n");
    s.reply("221 bye\r\n");
    assert_eq!(reply_code(&s.result(quit)), Some(221));
    assert!(s.session.is_closed() && !s.session.is_connected());
    assert_eq!(s.data_actions(), [Action::CloseControl]);
}

#[test]
fn a_refusing_greeting_closes_the_session() {
    let mut s = Script::new();
    let id = s.request(Request::Noop);
    s.reply("530 Not allowed from your address\r\n");
    assert_eq!(s.sent(), "");
    assert_eq!(s.data_actions(), [Action::CloseControl]);
    let events = s.events();
    assert_eq!(
        events[0],
        Event::Completed {
            id,
            result: Err(ClientError::Closed)
        }
    );
    assert!(
        matches!(&events[1], Event::Closed { error: Some(ClientError::Reply(r)) } if r.code().get() == 530)
    );
    assert_eq!(
        s.session.request(s.now, Request::Noop),
        Err(UsageError::Closed)
    );
}

#[test]
fn login_with_password() {
    let mut s = Script::greeted();
    let id = s.request(login("alice", "secret"));
    assert_eq!(s.sent(), "USER alice\r\n");
    s.reply("331 Please specify the password.\r\n");
    assert_eq!(s.sent(), "PASS secret\r\n");
    s.reply("230 Login successful.\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(230));
}

#[test]
fn login_without_password_step() {
    let mut s = Script::greeted();
    let id = s.request(login("anonymous", "guest@"));
    s.reply("230 Welcome, anonymous\r\n");
    assert_eq!(s.sent(), "USER anonymous\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(230));
}

#[test]
fn login_refused() {
    let mut s = Script::greeted();
    let id = s.request(login("alice", "wrong"));
    s.reply("331 Password?\r\n530 Login incorrect.\r\n");
    assert_eq!(s.sent(), "USER alice\r\nPASS wrong\r\n");
    let result = s.result(id);
    assert!(matches!(result, Err(ClientError::Reply(_))));
    assert_eq!(reply_code(&result), Some(530));
    // The session goes on: the user may try again.
    let again = s.request(login("alice", "right"));
    s.reply("331 Password?\r\n230 ok\r\n");
    assert_eq!(reply_code(&s.result(again)), Some(230));
}

#[test]
fn login_with_account_and_empty_password() {
    let mut s = Script::greeted();
    let id = s.request(Request::Login {
        user: Text::new("bob").unwrap(),
        password: None,
        account: Some(Text::new("acct7").unwrap()),
    });
    s.reply("331 Password?\r\n332 Account?\r\n230 ok\r\n");
    assert_eq!(s.sent(), "USER bob\r\nPASS\r\nACCT acct7\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(230));

    // Without an account, a 332 ends the login with that reply.
    let id = s.request(login("carol", "pw"));
    s.reply("331 Password?\r\n332 Need account\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(332));
}

// ---- single commands ----

const VSFTPD_FEAT: &str = "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n \
                           SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n";

#[test]
fn feat_of_vsftpd() {
    let mut s = Script::greeted();
    let id = s.request(Request::Features);
    assert_eq!(s.sent(), "FEAT\r\n");
    s.reply(VSFTPD_FEAT);
    let Ok(Outcome::Features(features)) = s.result(id) else {
        panic!("no features");
    };
    assert!(features.epsv && features.eprt && features.rest_stream && features.size);
    assert!(features.mdtm && features.tvfs && features.utf8 && !features.mfmt);
    assert!(features.mlst.is_none() && features.supports("PASV"));
}

#[test]
fn multi_line_reply_fed_byte_by_byte() {
    let mut s = Script::greeted();
    let id = s.request(Request::Features);
    for byte in VSFTPD_FEAT.as_bytes() {
        assert!(s.completed().is_empty());
        s.session
            .handle_control_input(s.now, std::slice::from_ref(byte));
    }
    let Ok(Outcome::Features(features)) = s.result(id) else {
        panic!("no features");
    };
    assert_eq!(features.lines.len(), 8);
}

#[test]
fn typed_outcomes_of_single_commands() {
    let mut s = Script::greeted();
    let pwd = s.request(Request::Pwd);
    let mkd = s.request(Request::Mkdir(path("new dir")));
    let size = s.request(Request::Size(path("a.bin")));
    let mdtm = s.request(Request::Mdtm(path("a.bin")));
    let mlst = s.request(Request::Mlst(Some(path("a.bin"))));
    let syst = s.request(Request::System);
    let mfmt = s.request(Request::SetModified {
        path: path("a.bin"),
        time: Timestamp::parse_ftp(b"20240101000000").unwrap(),
    });
    s.reply("257 \"/home/say \"\"hi\"\"\" is the current directory\r\n");
    s.reply("257 \"/home/new dir\" created\r\n");
    s.reply("213 1048576\r\n");
    s.reply("213 20240229235959.5\r\n");
    s.reply("250-Listing a.bin\r\n type=file;size=3;modify=20240101000000; /a.bin\r\n250 End\r\n");
    s.reply("215 UNIX Type: L8\r\n");
    s.reply("213 Modify=20240101000000; a.bin\r\n");
    assert_eq!(
        s.sent(),
        "PWD\r\nMKD new dir\r\nSIZE a.bin\r\nMDTM a.bin\r\nMLST a.bin\r\nSYST\r\n\
         MFMT 20240101000000 a.bin\r\n"
    );
    let results = s.completed();
    let ids: Vec<_> = results.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [pwd, mkd, size, mdtm, mlst, syst, mfmt]);
    assert_eq!(
        results[0].1,
        Ok(Outcome::Path(b"/home/say \"hi\"".to_vec()))
    );
    assert_eq!(
        results[1].1,
        Ok(Outcome::Created(Some(b"/home/new dir".to_vec())))
    );
    assert_eq!(results[2].1, Ok(Outcome::Size(1_048_576)));
    let Ok(Outcome::Modified(time)) = &results[3].1 else {
        panic!("{:?}", results[3]);
    };
    assert_eq!(time.unix_seconds(), 1_709_251_199);
    let Ok(Outcome::Entry(entry)) = &results[4].1 else {
        panic!("{:?}", results[4]);
    };
    assert_eq!(
        (entry.name.as_slice(), entry.size),
        (&b"/a.bin"[..], Some(3))
    );
    assert_eq!(results[5].1, Ok(Outcome::System("UNIX Type: L8".into())));
    assert_eq!(reply_code(&results[6].1), Some(213));
}

#[test]
fn rename_sends_rnto_only_after_350() {
    let mut s = Script::greeted();
    let id = s.request(Request::Rename {
        from: path("old"),
        to: path("new"),
    });
    assert_eq!(s.sent(), "RNFR old\r\n");
    s.reply("350 Ready for RNTO.\r\n");
    assert_eq!(s.sent(), "RNTO new\r\n");
    s.reply("250 Rename successful.\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(250));

    let id = s.request(Request::Rename {
        from: path("missing"),
        to: path("new"),
    });
    s.reply("550 No such file.\r\n");
    assert_eq!(s.sent(), "RNFR missing\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(550));
}

#[test]
fn raw_commands_and_site() {
    let mut s = Script::greeted();
    let help = s.request(Request::Raw(Command::Help(None)));
    let site = s.request(Request::Site(Text::new("CHMOD 644 f").unwrap()));
    let bad = s.request(Request::Raw(Command::Stru(
        ftp_proto::command::Structure::Record,
    )));
    s.reply("214-The following commands are recognized.\r\n USER PASS\r\n214 Help OK.\r\n");
    s.reply("200 SITE CHMOD command ok.\r\n");
    s.reply("504 Only file structure is supported.\r\n");
    assert_eq!(s.sent(), "HELP\r\nSITE CHMOD 644 f\r\nSTRU R\r\n");
    let results = s.completed();
    assert_eq!(results[0].0, help);
    let Ok(Outcome::Done(reply)) = &results[0].1 else {
        panic!()
    };
    assert_eq!(reply.line_count(), 3);
    assert_eq!((results[1].0, reply_code(&results[1].1)), (site, Some(200)));
    assert_eq!(results[2].0, bad);
    assert!(matches!(results[2].1, Err(ClientError::Reply(_))));
}

/// Regression: after the 150 to a raw `STOR`/`RETR` (how FXP copies run) the reply timer was re-armed,
/// so every copy longer than the reply timeout was killed with the session.
#[test]
fn a_preliminary_reply_to_a_raw_command_suspends_the_reply_timer() {
    let mut s = Script::greeted();
    let id = s.request(Request::Raw(Command::Stor(path("copy.iso"))));
    assert_eq!(s.sent(), "STOR copy.iso\r\n");
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(60)),
        "timed until the first reply"
    );
    s.reply("150 Ok to send data.\r\n");
    assert_eq!(s.session.poll_timeout(), None);
    s.advance(Duration::from_secs(3600));
    assert!(!s.session.is_closed());
    s.reply("226 Transfer complete.\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(226));
    // The next command is timed again.
    s.request(Request::Noop);
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(60))
    );
}

/// Finishes a download whose data channel is being set up: checks the commands, feeds `body` and the
/// replies, plays the sink, and returns the bytes written to it.
fn finish_download(
    s: &mut Script,
    id: RequestId,
    expected_command: &str,
    body: &'static [u8],
) -> Vec<u8> {
    epsv(s, id, 5000);
    assert_eq!(s.sent(), expected_command);
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5000"),
        },
    );
    s.reply("150 Opening data connection.\r\n");
    s.data(id, body);
    s.complete(id, DataCompletion::EndOfData);
    s.reply("226 Transfer complete.\r\n");
    let written = s.sink();
    assert!(s.result(id).is_ok());
    written
}

/// Regression: a raw `REIN` (which resets TYPE, RFC 959 §4.1.1) or `USER`/`PASS` (some servers reset
/// TYPE on login) left the session believing the old TYPE, so binary downloads were converted, or
/// text ones not. Now the next transfer sends the session's TYPE again first.
#[test]
fn after_a_raw_rein_or_login_the_next_transfer_sends_type_again() {
    let mut s = Script::greeted();
    s.request(Request::SetType(TransferType::Image));
    s.reply("200 Switching to Binary mode.\r\n");
    s.completed();
    assert_eq!(s.sent(), "TYPE I\r\n");
    let resets = [
        (Command::Rein, "220 Service ready for new user.\r\n"),
        (
            Command::User(Text::new("bob").unwrap()),
            "331 Password?\r\n",
        ),
        (
            Command::Pass(Some(Password::new("pw").unwrap())),
            "230 Logged in.\r\n",
        ),
    ];
    for (command, reply) in resets {
        let raw = s.request(Request::Raw(command));
        s.sent();
        s.reply(reply);
        assert!(s.result(raw).is_ok());
        let id = s.request(Request::Retrieve {
            path: path("f"),
            offset: 0,
        });
        assert_eq!(s.sent(), "TYPE I\r\n", "TYPE before the data channel");
        s.reply("200 Switching to Binary mode.\r\n");
        let got = finish_download(&mut s, id, "RETR f\r\n", b"a\r\nb");
        assert_eq!(got, b"a\r\nb", "TYPE I: unchanged");
        // Once sent, TYPE is not repeated.
        let id = s.request(Request::Retrieve {
            path: path("g"),
            offset: 0,
        });
        finish_download(&mut s, id, "RETR g\r\n", b"");
    }
    assert_eq!(s.session.transfer_type(), TransferType::Image);
    // The same after a login request.
    let id = s.request(login("carol", "pw"));
    s.reply("230 Logged in.\r\n");
    assert!(s.result(id).is_ok());
    s.sent();
    let id = s.request(Request::Retrieve {
        path: path("h"),
        offset: 0,
    });
    assert_eq!(s.sent(), "TYPE I\r\n");
    s.reply("200 ok\r\n");
    finish_download(&mut s, id, "RETR h\r\n", b"");

    // A refused TYPE fails the transfer, and the next one tries again.
    let raw = s.request(Request::Raw(Command::Rein));
    s.reply("220 ready\r\n");
    assert!(s.result(raw).is_ok());
    let id = s.request(Request::Nlst { path: None });
    s.sent();
    s.reply("530 Please login with USER and PASS.\r\n");
    assert_eq!(reply_code(&s.result(id)), Some(530));
    s.request(Request::Nlst { path: None });
    assert_eq!(s.sent(), "TYPE I\r\n");
    s.reply("200 ok\r\n");
    assert_eq!(s.sent(), "EPSV\r\n");
    s.data_actions();
    s.completed();
    let _ = id;

    // In the default TYPE A, a reset changes nothing: no extra TYPE.
    let mut s = Script::greeted();
    let raw = s.request(Request::Raw(Command::Rein));
    s.reply("220 ready\r\n");
    assert!(s.result(raw).is_ok());
    s.sent();
    s.request(Request::Nlst { path: None });
    assert_eq!(s.sent(), "EPSV\r\n");
}

// ---- passive data connections ----

/// Runs EPSV for request `id`: checks the command, answers 229 and returns the address to connect to.
fn epsv(s: &mut Script, id: RequestId, port: u16) -> String {
    assert_eq!(s.sent(), "EPSV\r\n");
    s.reply(&format!(
        "229 Entering Extended Passive Mode (|||{port}|)\r\n"
    ));
    let actions = s.data_actions();
    let [Action::Data(DataAction::Connect { id: got, addr, tls })] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(*got, id);
    let protected = s.session.is_data_protected();
    assert_eq!(
        *tls,
        protected.then_some(TlsRole::Client),
        "TLS as PROT says"
    );
    addr.to_string()
}

#[test]
fn retrieve_with_rest() {
    let mut s = Script::greeted();
    let id = s.request(Request::Retrieve {
        path: path("big.iso"),
        offset: 1000,
    });
    assert_eq!(epsv(&mut s, id, 6446), "198.51.100.1:6446");
    // REST goes out with the Connect, before the connection is even open.
    assert_eq!(s.sent(), "REST 1000\r\n");
    s.reply("350 Restarting at 1000.\r\n");
    assert_eq!(s.sent(), "RETR big.iso\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6446"),
        },
    );
    assert_eq!(s.data_actions(), [Action::Data(DataAction::Receive { id })]);
    s.reply("150 Opening BINARY mode data connection for big.iso (2000 bytes).\r\n");
    s.data(id, b"\x00\x01\r\n");
    let write = |data| Action::Local(LocalAction::Write { id, data });
    assert_eq!(
        s.data_actions(),
        [
            write(Bytes::from_static(b"\x00\x01\n")),
            Action::Data(DataAction::Receive { id }),
        ],
        "TYPE A by default: CRLF became LF; a read overlaps the write"
    );
    s.data(id, b"tail");
    assert_eq!(
        s.data_actions(),
        [write(Bytes::from_static(b"tail"))],
        "the window (2) is full: no read until a write is acknowledged"
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.data_actions(), [Action::Data(DataAction::Receive { id })]);
    s.complete(id, DataCompletion::EndOfData);
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Close { id, aborted: false })],
        "the sink still writes"
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(
        s.data_actions(),
        [Action::Local(LocalAction::Close { id, aborted: false })]
    );
    let events = s.events();
    assert!(matches!(&events[0], Event::Preliminary { id: Some(i), .. } if *i == id));
    assert_eq!(
        events.last(),
        Some(&Event::Progress { id, bytes: 8 }),
        "the bytes on the wire, before the conversion"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Completed { .. })),
        "not complete before the 226"
    );
    s.reply("226 Transfer complete.\r\n");
    assert!(
        s.completed().is_empty(),
        "not complete before the sink is stored"
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.result(id), Ok(Outcome::Retrieved { bytes: 8 }));
}

#[test]
fn final_reply_before_eof_waits_for_the_data() {
    let mut s = Script::greeted();
    s.request(Request::SetType(TransferType::Image));
    s.reply("200 Switching to Binary mode.\r\n");
    s.completed();
    assert_eq!(s.sent(), "TYPE I\r\n");
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    epsv(&mut s, id, 5000);
    assert_eq!(s.sent(), "RETR f\r\n");
    // Data and replies in the "wrong" order: data first, 226 before EOF.
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5000"),
        },
    );
    let chunk = Bytes::from_static(b"a\r\nb");
    s.session.handle_data(s.now, id, chunk.clone());
    s.reply("150 Here it comes.\r\n226 Transfer complete.\r\n");
    assert!(s.completed().is_empty());
    s.complete(id, DataCompletion::EndOfData);
    let delivered = s.data_actions().into_iter().find_map(|a| match a {
        Action::Local(LocalAction::Write { data, .. }) => Some(data),
        _ => None,
    });
    let delivered = delivered.unwrap();
    assert_eq!(delivered, chunk, "TYPE I: unchanged");
    assert_eq!(delivered.as_ptr(), chunk.as_ptr(), "TYPE I: not copied");
    assert!(
        s.completed().is_empty(),
        "the write is not acknowledged yet"
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(
        s.data_actions(),
        [Action::Local(LocalAction::Close { id, aborted: false })]
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.result(id), Ok(Outcome::Retrieved { bytes: 4 }));
}

#[test]
fn epsv_refused_falls_back_to_pasv_for_good() {
    let mut s = Script::greeted();
    let first = s.request(Request::Nlst { path: None });
    assert_eq!(s.sent(), "EPSV\r\n");
    s.reply("500 Unknown command.\r\n");
    assert_eq!(s.sent(), "PASV\r\n");
    s.reply("227 Entering Passive Mode (10,0,0,5,19,137).\r\n");
    let actions = s.data_actions();
    // The private address in the 227 is ignored: the control connection's peer is used.
    assert_eq!(
        actions,
        [Action::Data(DataAction::Connect {
            id: first,
            addr: addr("198.51.100.1:5001"),
            tls: None,
        })]
    );
    assert_eq!(s.sent(), "NLST\r\n");
    s.complete(
        first,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5001"),
        },
    );
    s.reply("150 Here comes the listing.\r\n");
    s.data(first, b"a.txt\r\nb.txt\r\n");
    s.complete(first, DataCompletion::EndOfData);
    s.reply("226 Directory send OK.\r\n");
    assert_eq!(
        s.result(first),
        Ok(Outcome::Names(vec![b"a.txt".to_vec(), b"b.txt".to_vec()]))
    );
    s.data_actions();
    // The next transfer goes straight to PASV.
    let second = s.request(Request::Nlst {
        path: Some(path("sub")),
    });
    assert_eq!(s.sent(), "PASV\r\n");
    s.reply("227 Entering Passive Mode (10,0,0,5,19,138).\r\n");
    assert_eq!(s.sent(), "NLST sub\r\n");
    assert!(
        matches!(s.data_actions().as_slice(), [Action::Data(DataAction::Connect { id, .. })] if *id == second)
    );
}

#[test]
fn pasv_address_is_used_when_trusted() {
    let mut config = Config::default();
    config.trust_pasv_address = true;
    config.extended_first = false;
    let mut s = Script::with_config(config);
    s.reply("220 ready\r\n");
    let id = s.request(Request::List {
        path: None,
        now: Timestamp::UNIX_EPOCH,
    });
    assert_eq!(s.sent(), "PASV\r\n");
    s.reply("227 Entering Passive Mode (203,0,113,4,4,1)\r\n");
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Connect {
            id,
            addr: addr("203.0.113.4:1025"),
            tls: None,
        })]
    );
}

#[test]
fn store_with_chunks_and_window() {
    let mut s = Script::greeted();
    s.request(Request::SetType(TransferType::Image));
    s.reply("200 ok\r\n");
    s.completed();
    assert_eq!(s.sent(), "TYPE I\r\n");
    let id = s.request(Request::Store {
        path: path("up.bin"),
        offset: 0,
        append: false,
    });
    epsv(&mut s, id, 7000);
    assert_eq!(s.sent(), "STOR up.bin\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:7000"),
        },
    );
    assert_eq!(s.data_actions(), [], "no reading before the server's 150");
    s.reply("150 Ok to send data.\r\n");
    assert_eq!(
        s.data_actions(),
        [
            Action::Local(LocalAction::Read { id }),
            Action::Local(LocalAction::Read { id })
        ],
        "two chunks in flight"
    );
    s.data(id, b"first\n");
    s.data(id, b"second");
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Send {
                id,
                data: Bytes::from_static(b"first\n")
            }),
            Action::Data(DataAction::Send {
                id,
                data: Bytes::from_static(b"second")
            }),
        ]
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.data_actions(), [Action::Local(LocalAction::Read { id })]);
    s.complete(id, DataCompletion::EndOfData);
    assert_eq!(s.data_actions(), [], "the second chunk is not written yet");
    s.complete(id, DataCompletion::Written);
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: false }),
            Action::Local(LocalAction::Close { id, aborted: false }),
        ],
        "the source is done with; closing it needs no answer"
    );
    assert!(s.completed().is_empty(), "waits for the 226");
    s.reply("226 Transfer complete.\r\n");
    assert_eq!(s.result(id), Ok(Outcome::Stored { bytes: 12 }));
}

#[test]
fn store_resume_and_append() {
    let mut s = Script::greeted();
    let resume = s.request(Request::Store {
        path: path("f"),
        offset: 10,
        append: false,
    });
    epsv(&mut s, resume, 7001);
    assert_eq!(s.sent(), "REST 10\r\n");
    s.reply("350 Restarting at 10.\r\n");
    assert_eq!(s.sent(), "STOR f\r\n");
    s.reply("553 Could not create file.\r\n");
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close {
                id: resume,
                aborted: true
            }),
            Action::Local(LocalAction::Close {
                id: resume,
                aborted: true
            }),
        ]
    );
    assert_eq!(reply_code(&s.result(resume)), Some(553));

    let append = s.request(Request::Store {
        path: path("log"),
        offset: 10,
        append: true,
    });
    s.sent();
    s.reply("229 Entering Extended Passive Mode (|||7002|)\r\n");
    assert_eq!(s.sent(), "APPE log\r\n", "no REST with APPE");
    assert!(
        matches!(s.data_actions().as_slice(), [Action::Data(DataAction::Connect { id, .. })] if *id == append)
    );
}

#[test]
fn type_a_converts_both_ways() {
    let mut s = Script::greeted();
    let set = s.request(Request::SetType(TransferType::Ascii(
        FormatControl::NonPrint,
    )));
    assert_eq!(s.sent(), "TYPE A\r\n");
    s.reply("200 Switching to ASCII mode.\r\n");
    assert_eq!(reply_code(&s.result(set)), Some(200));
    assert_eq!(
        s.session.transfer_type(),
        TransferType::Ascii(FormatControl::NonPrint)
    );

    // Download: CRLF -> LF, also across chunk boundaries; a trailing CR is kept at the end.
    let get = s.request(Request::Retrieve {
        path: path("t.txt"),
        offset: 0,
    });
    epsv(&mut s, get, 6000);
    s.sent();
    s.complete(
        get,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6000"),
        },
    );
    s.reply("150 Opening ASCII mode data connection.\r\n");
    s.data(get, b"one\r");
    let mut delivered = s.sink();
    s.data(get, b"\ntwo\r");
    delivered.extend(s.sink());
    s.complete(get, DataCompletion::EndOfData);
    delivered.extend(s.sink());
    assert_eq!(delivered, b"one\ntwo\r");
    s.reply("226 ok\r\n");
    assert_eq!(s.result(get), Ok(Outcome::Retrieved { bytes: 9 }));

    // Upload: LF -> CRLF.
    let put = s.request(Request::Store {
        path: path("u.txt"),
        offset: 0,
        append: false,
    });
    epsv(&mut s, put, 6001);
    s.sent();
    s.complete(
        put,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6001"),
        },
    );
    s.reply("150 Ok to send data.\r\n");
    s.data(put, b"a\nb\n");
    let sent: Vec<_> = s
        .data_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Data(DataAction::Send { data, .. }) => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [Bytes::from_static(b"a\r\nb\r\n")]);
}

#[test]
fn list_and_mlsd_are_parsed() {
    let mut s = Script::greeted();
    let now = Timestamp::parse_ftp(b"20240315120000").unwrap();
    let list = s.request(Request::List {
        path: Some(path("/pub")),
        now,
    });
    epsv(&mut s, list, 6100);
    assert_eq!(s.sent(), "LIST /pub\r\n");
    s.complete(
        list,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6100"),
        },
    );
    s.reply("150 Here comes the directory listing.\r\n");
    s.data(
        list,
        b"total 8\r\ndrwxr-xr-x    2 0  0  4096 Jan 02 13:04 incoming\r\n-rw-r--r--    1 0",
    );
    s.data(list, b"  0  1234 Jun 01  2023 read me.txt\r\n");
    s.complete(list, DataCompletion::EndOfData);
    s.reply("226 Directory send OK.\r\n");
    let Ok(Outcome::Listing(entries)) = s.result(list) else {
        panic!("no listing");
    };
    assert_eq!(entries.len(), 3);
    assert!(entries[0].is_err(), "total line");
    let dir = entries[1].as_ref().unwrap();
    assert_eq!(
        (dir.name.as_slice(), dir.kind),
        (&b"incoming"[..], EntryKind::Directory)
    );
    assert_eq!(
        dir.modified.unwrap().timestamp().to_ftp_string(),
        "20240102130400"
    );
    let file = entries[2].as_ref().unwrap();
    assert_eq!(
        (file.name.as_slice(), file.size),
        (&b"read me.txt"[..], Some(1234))
    );

    s.data_actions();
    let mlsd = s.request(Request::Mlsd { path: None });
    epsv(&mut s, mlsd, 6101);
    assert_eq!(s.sent(), "MLSD\r\n");
    s.reply("150 Opening data connection.\r\n226 Done.\r\n");
    s.complete(
        mlsd,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6101"),
        },
    );
    s.data(
        mlsd,
        b"type=cdir;modify=20240101000000; .\r\ntype=file;size=12;modify=20240102030405; a;b c\r\n",
    );
    s.complete(mlsd, DataCompletion::EndOfData);
    let Ok(Outcome::Facts(facts)) = s.result(mlsd) else {
        panic!("no facts");
    };
    let facts: Vec<_> = facts.into_iter().map(Result::unwrap).collect();
    assert_eq!(facts[0].kind, Some(MlsxKind::Cdir));
    assert_eq!(
        (facts[1].name.as_slice(), facts[1].size),
        (&b"a;b c"[..], Some(12))
    );
}

#[test]
fn listing_beyond_the_bound_fails() {
    let mut config = Config::default();
    config.max_listing_bytes = 10;
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let id = s.request(Request::Nlst { path: None });
    s.sent();
    s.reply("229 (|||6200|)\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6200"),
        },
    );
    s.reply("150 ok\r\n");
    s.data(id, b"0123456789");
    s.data(id, b"x");
    let actions = s.data_actions();
    assert_eq!(
        actions.last(),
        Some(&Action::Data(DataAction::Close { id, aborted: true }))
    );
    assert!(
        s.completed().is_empty(),
        "the server still owes its final reply"
    );
    s.reply("426 Failure writing network stream.\r\n");
    assert_eq!(
        s.result(id),
        Err(ClientError::ListingTooLarge { limit: 10 })
    );
    // In sync: the next request gets its own reply.
    let noop = s.request(Request::Noop);
    s.reply("200 ok\r\n");
    assert_eq!(reply_code(&s.result(noop)), Some(200));
}

/// Runs a listing request to its end with this body, on a fresh session with `config`.
fn finished_listing(
    config: Config,
    request: Request,
    body: Vec<u8>,
) -> Result<Outcome, ClientError> {
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let id = s.request(request);
    epsv(&mut s, id, 6200);
    s.sent();
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6200"),
        },
    );
    s.reply("150 ok\r\n");
    s.session.handle_data(s.now, id, Bytes::from(body));
    s.complete(id, DataCompletion::EndOfData);
    s.reply("226 ok\r\n");
    s.result(id)
}

/// Regression: the byte bound did not bound the parsed result: 16 MiB of `a\n` became 8.4 million
/// error entries (about 1 GiB). Every non-empty line, entry or not, now counts against
/// `max_listing_entries`.
#[test]
fn listing_with_too_many_lines_fails() {
    let list = Request::List {
        path: None,
        now: Timestamp::UNIX_EPOCH,
    };
    // The default bound, 200 000 lines, with unparseable ones.
    let result = finished_listing(Config::default(), list.clone(), b"a\n".repeat(200_001));
    assert!(
        matches!(
            result,
            Err(ClientError::ListingTooManyEntries { limit: 200_000 })
        ),
        "{:?}",
        result.map(|outcome| match outcome {
            Outcome::Listing(entries) => entries.len(),
            _ => 0,
        })
    );

    let mut config = Config::default();
    config.max_listing_entries = 2;
    let too_many = Err(ClientError::ListingTooManyEntries { limit: 2 });
    // Empty lines do not count; the bound itself is allowed.
    let result = finished_listing(config.clone(), list, b"total 0\r\n\r\n\r\nx\r\n".to_vec());
    assert!(matches!(result, Ok(Outcome::Listing(entries)) if entries.len() == 2));
    let nlst = Request::Nlst { path: None };
    assert_eq!(
        finished_listing(config.clone(), nlst.clone(), b"a\r\nb\r\n\r\n".to_vec()),
        Ok(Outcome::Names(vec![b"a".to_vec(), b"b".to_vec()]))
    );
    assert_eq!(
        finished_listing(config.clone(), nlst, b"a\nb\nc".to_vec()),
        too_many
    );
    let mlsd = Request::Mlsd { path: None };
    assert_eq!(
        finished_listing(
            config,
            mlsd,
            b"type=file; a\r\nnonsense\r\ntype=file; c\r\n".to_vec()
        ),
        too_many
    );
}

#[test]
fn empty_listing_answered_without_a_transfer() {
    let mut s = Script::greeted();
    let id = s.request(Request::Nlst {
        path: Some(path("*.none")),
    });
    epsv(&mut s, id, 6300);
    s.reply("226 No files found.\r\n");
    assert_eq!(s.result(id), Ok(Outcome::Names(Vec::new())));
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Close { id, aborted: true })]
    );
}

#[test]
fn retr_refused_with_550() {
    let mut s = Script::greeted();
    let id = s.request(Request::Retrieve {
        path: path("missing"),
        offset: 0,
    });
    epsv(&mut s, id, 6400);
    assert_eq!(s.sent(), "RETR missing\r\n");
    s.reply("550 Failed to open file.\r\n");
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: true }),
            Action::Local(LocalAction::Close { id, aborted: true }),
        ],
        "the sink is let go too, though nothing was written to it"
    );
    let result = s.result(id);
    assert_eq!(reply_code(&result), Some(550));
    // A late completion for the dead transfer is ignored.
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6400"),
        },
    );
    assert_eq!(s.data_actions(), []);
}

#[test]
fn epsv_refused_with_4xx_is_not_a_fallback() {
    let mut s = Script::greeted();
    let id = s.request(Request::Nlst { path: None });
    s.sent();
    s.reply("425 Cannot open passive connection.\r\n");
    assert_eq!(s.sent(), "");
    assert_eq!(reply_code(&s.result(id)), Some(425));
}

/// Regression: any 5xx to `EPSV` made the session fall back to `PASV` for good, even a 530 (not logged
/// in) or a 501. Only "not recognised/implemented" (500, 502) and, for an IPv4 connection, 522 are.
#[test]
fn only_500_502_and_522_make_epsv_fall_back() {
    for refusal in [
        "530 Please login with USER and PASS.",
        "501 Bad argument.",
        "550 No.",
    ] {
        let mut s = Script::greeted();
        let id = s.request(Request::Nlst { path: None });
        assert_eq!(s.sent(), "EPSV\r\n");
        s.reply(&format!("{refusal}\r\n"));
        assert_eq!(s.sent(), "", "{refusal}");
        assert!(
            matches!(s.result(id), Err(ClientError::Reply(_))),
            "{refusal}"
        );
        s.request(Request::Nlst { path: None });
        assert_eq!(s.sent(), "EPSV\r\n", "{refusal}: not remembered");
    }
    for fallback in [
        "500 Unknown command.",
        "502 Not implemented.",
        "522 Use (1)",
    ] {
        let mut s = Script::greeted();
        s.request(Request::Nlst { path: None });
        s.sent();
        s.reply(&format!("{fallback}\r\n"));
        assert_eq!(s.sent(), "PASV\r\n", "{fallback}");
    }
    // PASV cannot describe an IPv6 address: a 522 there is the answer.
    let mut s = Script::greeted_over(ConnectionInfo {
        local: addr("[2001:db8::7]:50000"),
        peer: addr("[2001:db8::1]:21"),
    });
    let id = s.request(Request::Nlst { path: None });
    s.sent();
    s.reply("522 Network protocol not supported, use (1)\r\n");
    assert_eq!(s.sent(), "");
    assert_eq!(reply_code(&s.result(id)), Some(522));
}

#[test]
fn only_500_502_and_522_make_eprt_fall_back() {
    let mut config = Config::default();
    config.mode = DataMode::Active;
    let start = |config: &Config| {
        let mut s = Script::with_config(config.clone());
        s.reply("220 hi\r\n");
        let id = s.request(Request::Nlst { path: None });
        s.complete(id, DataCompletion::Listening(addr("192.0.2.7:40000")));
        assert_eq!(s.sent(), "EPRT |1|192.0.2.7|40000|\r\n");
        (s, id)
    };
    let (mut s, id) = start(&config);
    s.reply("501 Illegal EPRT command.\r\n");
    assert_eq!(s.sent(), "");
    assert_eq!(reply_code(&s.result(id)), Some(501));
    let id = s.request(Request::Nlst { path: None });
    s.complete(id, DataCompletion::Listening(addr("192.0.2.7:40001")));
    assert_eq!(s.sent(), "EPRT |1|192.0.2.7|40001|\r\n", "not remembered");

    let (mut s, _) = start(&config);
    s.reply("522 Network protocol not supported, use (2)\r\n");
    assert_eq!(s.sent(), "PORT 192,0,2,7,156,64\r\n");
}

// ---- active mode ----

#[test]
fn active_mode_eprt_then_port_fallback() {
    let mut config = Config::default();
    config.mode = DataMode::Active;
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    assert_eq!(s.sent(), "");
    assert!(
        matches!(s.data_actions().as_slice(), [Action::Data(DataAction::Listen { id: i, .. })] if *i == id)
    );
    // An unspecified address is replaced by the control connection's local IP.
    s.complete(id, DataCompletion::Listening(addr("0.0.0.0:40000")));
    assert_eq!(s.sent(), "EPRT |1|192.0.2.7|40000|\r\n");
    s.reply("500 EPRT not understood\r\n");
    assert_eq!(s.sent(), "PORT 192,0,2,7,156,64\r\n");
    s.reply("200 PORT command successful.\r\n");
    assert_eq!(s.sent(), "RETR f\r\n");
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Accept {
            id,
            listener: id,
            tls: None,
        })],
        "the server's connection is taken once the command is out"
    );
    s.reply("150 Opening data connection.\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:20"),
        },
    );
    assert_eq!(s.data_actions(), [Action::Data(DataAction::Receive { id })]);
    s.complete(id, DataCompletion::EndOfData);
    s.reply("226 ok\r\n");
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: false }),
            Action::Local(LocalAction::Close { id, aborted: false }),
        ]
    );
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.result(id), Ok(Outcome::Retrieved { bytes: 0 }));

    // Remembered: PORT straight away. And a connection from a foreign host is refused.
    let id = s.request(Request::Retrieve {
        path: path("g"),
        offset: 0,
    });
    s.complete(id, DataCompletion::Listening(addr("192.0.2.7:40001")));
    assert_eq!(s.sent(), "PORT 192,0,2,7,156,65\r\n");
    s.reply("200 ok\r\n150 ok\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("203.0.113.66:20"),
        },
    );
    // The transfer command is running: ABOR and its NOOP sentinel resynchronise the control connection.
    assert_eq!(s.sent(), "RETR g\r\nABOR\r\nNOOP\r\n");
    s.reply("426 Connection closed; transfer aborted.\r\n226 Abort successful\r\n200 NOOP ok\r\n");
    assert_eq!(
        s.result(id),
        Err(ClientError::DataConnection(
            ErrorKind::PermissionDenied.into()
        ))
    );
}

#[test]
fn abort_while_the_listener_is_being_bound() {
    let mut config = Config::default();
    config.mode = DataMode::Active;
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let id = s.request(Request::Nlst { path: None });
    s.data_actions();
    let abort = s.request(Request::Abort);
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Close { id, aborted: true })]
    );
    assert_eq!(s.sent(), "ABOR\r\n");
    s.reply("225 No transfer to ABOR.\r\n");
    let results = s.completed();
    assert_eq!(results[0], (id, Err(ClientError::Aborted)));
    assert_eq!(
        (results[1].0, reply_code(&results[1].1)),
        (abort, Some(225))
    );
}

// ---- ABOR ----

/// A download in progress: EPSV done, RETR sent, 150 received, data flowing.
fn download_in_progress(s: &mut Script) -> RequestId {
    let id = s.request(Request::Retrieve {
        path: path("big"),
        offset: 0,
    });
    epsv(s, id, 6500);
    assert_eq!(s.sent(), "RETR big\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6500"),
        },
    );
    s.reply("150 Opening data connection.\r\n");
    s.data(id, b"some bytes");
    s.sink();
    s.events();
    id
}

#[test]
fn abort_during_download_426_then_226() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    let queued = s.request(Request::Noop);
    let abort = s.request(Request::Abort);
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: true }),
            Action::Local(LocalAction::Close { id, aborted: true }),
        ]
    );
    assert_eq!(
        s.sent(),
        "ABOR\r\nNOOP\r\n",
        "the abort overtakes the queued NOOP"
    );
    s.reply("426 Connection closed; transfer aborted.\r\n226 Abort successful.\r\n");
    assert!(s.completed().is_empty(), "waits for the sentinel");
    s.reply("200 NOOP ok.\r\n");
    let results = s.completed();
    assert_eq!(results[0], (id, Err(ClientError::Aborted)));
    assert_eq!(
        (results[1].0, reply_code(&results[1].1)),
        (abort, Some(226))
    );
    // Then the queued request runs, in sync.
    assert_eq!(s.sent(), "NOOP\r\n");
    s.reply("200 NOOP ok.\r\n");
    assert_eq!(reply_code(&s.result(queued)), Some(200));
    // Data for the aborted transfer is ignored.
    s.data(id, b"late");
    assert_eq!(s.data_actions(), []);
}

#[test]
fn abort_answered_with_226_alone() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    let abort = s.request(Request::Abort);
    s.sent();
    s.reply("226 ABOR command successful.\r\n200 NOOP ok.\r\n");
    let results = s.completed();
    assert_eq!(results[0], (id, Err(ClientError::Aborted)));
    assert_eq!(
        (results[1].0, reply_code(&results[1].1)),
        (abort, Some(226))
    );
    let next = s.request(Request::Pwd);
    s.reply("257 \"/\"\r\n");
    assert_eq!(s.result(next), Ok(Outcome::Path(b"/".to_vec())));
}

#[test]
fn abort_crossing_the_transfers_own_226() {
    // The server finished (226) just as ABOR arrived, then answered ABOR with 225.
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    let abort = s.request(Request::Abort);
    s.sent();
    s.reply("226 Transfer complete.\r\n225 No transfer to ABOR.\r\n200 NOOP ok.\r\n");
    let results = s.completed();
    assert_eq!(results[0], (id, Err(ClientError::Aborted)));
    assert_eq!(
        (results[1].0, reply_code(&results[1].1)),
        (abort, Some(225))
    );
    assert_eq!(s.session.current_request(), None);
}

#[test]
fn abort_after_the_final_reply_needs_no_sentinel() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    s.reply("226 Transfer complete.\r\n");
    let abort = s.request(Request::Abort);
    assert_eq!(s.sent(), "ABOR\r\n");
    s.reply("225 ABOR ok; data channel closed.\r\n");
    let results = s.completed();
    assert_eq!(results[0], (id, Err(ClientError::Aborted)));
    assert_eq!(
        (results[1].0, reply_code(&results[1].1)),
        (abort, Some(225))
    );
}

#[test]
fn abort_with_nothing_running_is_a_plain_command() {
    let mut s = Script::greeted();
    let abort = s.request(Request::Abort);
    assert_eq!(s.sent(), "ABOR\r\n");
    s.reply("225 No transfer to abort.\r\n");
    assert_eq!(reply_code(&s.result(abort)), Some(225));
}

#[test]
fn abort_requested_during_setup_cancels_at_the_next_step() {
    let mut s = Script::greeted();
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 5,
    });
    assert_eq!(s.sent(), "EPSV\r\n");
    let abort = s.request(Request::Abort);
    assert_eq!(s.sent(), "", "nothing to abort at the server yet");
    s.reply("229 (|||6600|)\r\n");
    // Cancelled before REST/RETR; then ABOR in its own turn.
    assert_eq!(s.sent(), "ABOR\r\n");
    s.reply("225 No transfer.\r\n");
    let results = s.completed();
    assert_eq!(results[0], (id, Err(ClientError::Aborted)));
    assert_eq!(
        (results[1].0, reply_code(&results[1].1)),
        (abort, Some(225))
    );
}

#[test]
fn broken_data_connection_aborts_the_transfer() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    s.complete(
        id,
        DataCompletion::Failed(ErrorKind::ConnectionReset.into()),
    );
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: true }),
            Action::Local(LocalAction::Close { id, aborted: true }),
        ]
    );
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    s.reply("426 Transfer aborted.\r\n226 Abort ok.\r\n200 NOOP ok.\r\n");
    assert_eq!(
        s.result(id),
        Err(ClientError::DataConnection(
            ErrorKind::ConnectionReset.into()
        ))
    );
}

/// Regression (found against the example server): it accepts the passive connection, refuses `RETR`
/// with 550 and resets the connection; the reset reached the client before the 550, and the download
/// failed with "connection reset" instead of the server's reason.
#[test]
fn refusal_that_resets_the_data_connection_reports_the_refusal() {
    let mut s = Script::greeted();
    let id = s.request(Request::Retrieve {
        path: path("missing"),
        offset: 0,
    });
    epsv(&mut s, id, 6500);
    assert_eq!(s.sent(), "RETR missing\r\n");
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6500"),
        },
    );
    s.data_actions();
    s.complete(
        id,
        DataCompletion::Failed(ErrorKind::ConnectionReset.into()),
    );
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    s.reply("550 No such file.\r\n225 No transfer to abort.\r\n200 NOOP ok.\r\n");
    let result = s.result(id);
    let Err(ClientError::Reply(reply)) = &result else {
        panic!("{result:?}");
    };
    assert_eq!(reply.code().get(), 550);
    // The session is in step: the next command gets its own reply.
    let pwd = s.request(Request::Pwd);
    assert_eq!(s.sent(), "PWD\r\n");
    s.reply("257 \"/\"\r\n");
    assert_eq!(s.result(pwd), Ok(Outcome::Path(b"/".to_vec())));
}

#[test]
fn failed_connect_while_rest_is_pending_undoes_the_rest() {
    let mut s = Script::greeted();
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 99,
    });
    epsv(&mut s, id, 6700);
    assert_eq!(s.sent(), "REST 99\r\n");
    s.complete(
        id,
        DataCompletion::Failed(ErrorKind::ConnectionRefused.into()),
    );
    s.reply("350 Restarting at 99.\r\n");
    // RETR is never sent; REST 0 makes sure the offset cannot apply to a later transfer.
    assert_eq!(s.sent(), "REST 0\r\n");
    s.reply("350 Restarting at 0.\r\n");
    assert_eq!(
        s.result(id),
        Err(ClientError::DataConnection(
            ErrorKind::ConnectionRefused.into()
        ))
    );
}

// ---- timeouts ----

#[test]
fn reply_timeout_closes_the_session() {
    let mut s = Script::greeted();
    let id = s.request(Request::Pwd);
    let queued = s.request(Request::Noop);
    s.sent();
    let deadline = s.session.poll_timeout().unwrap();
    assert_eq!(deadline, s.now + Duration::from_secs(60));
    s.advance(Duration::from_secs(59));
    assert!(s.completed().is_empty());
    s.advance(Duration::from_secs(1));
    assert_eq!(s.data_actions(), [Action::CloseControl]);
    let events = s.events();
    assert_eq!(
        events[0],
        Event::Completed {
            id,
            result: Err(ClientError::Timeout)
        }
    );
    assert_eq!(
        events[1],
        Event::Completed {
            id: queued,
            result: Err(ClientError::Closed)
        }
    );
    assert_eq!(
        events[2],
        Event::Closed {
            error: Some(ClientError::Timeout)
        }
    );
    assert!(s.session.is_closed() && s.session.poll_timeout().is_none());
}

#[test]
fn greeting_timeout() {
    let mut s = Script::new();
    s.advance(Duration::from_secs(60));
    assert_eq!(s.data_actions(), [Action::CloseControl]);
    assert_eq!(
        s.events(),
        [Event::Closed {
            error: Some(ClientError::Timeout)
        }]
    );
}

#[test]
fn the_data_timer_replaces_the_reply_timer_while_data_flows() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    // The 226 may take as long as the file: only progress on the data connection is timed.
    for _ in 0..5 {
        s.advance(Duration::from_secs(50));
        s.data(id, b"more");
        s.sink();
    }
    assert!(!s.session.is_closed());
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(60))
    );
    s.advance(Duration::from_secs(60));
    assert!(!s.session.is_closed());
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: true }),
            Action::Local(LocalAction::Close { id, aborted: true }),
        ]
    );
}

/// Regression: a stalled data connection closed the whole session and failed every queued request.
/// Now it is handled like a broken one: the transfer is aborted (ABOR and its NOOP sentinel) and fails
/// with `Timeout`; the session goes on.
#[test]
fn a_data_timeout_aborts_only_the_transfer() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    let queued = s.request(Request::Pwd);
    s.advance(Duration::from_secs(60));
    assert!(!s.session.is_closed());
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: true }),
            Action::Local(LocalAction::Close { id, aborted: true }),
        ]
    );
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    assert!(s.completed().is_empty(), "waits for the sentinel");
    s.reply("426 Transfer aborted.\r\n226 Abort ok.\r\n200 NOOP ok.\r\n");
    assert_eq!(s.result(id), Err(ClientError::Timeout));
    assert_eq!(s.sent(), "PWD\r\n");
    s.reply("257 \"/\"\r\n");
    assert_eq!(s.result(queued), Ok(Outcome::Path(b"/".to_vec())));

    // A passive connection that never opens, before any reply to RETR: the same.
    let mut config = Config::default();
    config.data_timeout = Duration::from_secs(20);
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    epsv(&mut s, id, 6600);
    assert_eq!(s.sent(), "RETR f\r\n");
    s.advance(Duration::from_secs(20));
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    s.reply("425 Can't open data connection.\r\n225 No transfer.\r\n200 ok\r\n");
    assert_eq!(s.result(id), Err(ClientError::Timeout));

    // An active-mode listener the driver never reports: nothing was sent, the transfer just fails.
    let mut config = Config::default();
    config.mode = DataMode::Active;
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let id = s.request(Request::Nlst { path: None });
    s.advance(Duration::from_secs(60));
    assert_eq!(s.result(id), Err(ClientError::Timeout));
    assert_eq!(s.sent(), "");
    assert!(!s.session.is_closed());
}

/// Each timer is stopped where its reason ends, so none outlives it: not the data timer after the data
/// ended or the transfer completed, not the reply timer once nothing is owed, and nothing after close.
#[test]
fn no_timer_outlives_its_reason() {
    let mut config = Config::default();
    config.data_timeout = Duration::from_secs(20); // the reply timeout is 60 s
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    s.events();
    assert_eq!(s.session.poll_timeout(), None, "idle: nothing is owed");
    let id = s.request(Request::Nlst { path: None });
    epsv(&mut s, id, 6300);
    s.sent();
    let peer = addr("198.51.100.1:6300");
    s.complete(id, DataCompletion::Connected { peer });
    s.reply("150 ok\r\n");
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(20)),
        "only the data is timed while it flows"
    );
    s.advance(Duration::from_secs(10));
    s.data(id, b"a\r\n");
    // A listing has no local end: at EOF only the final reply is timed, from now.
    s.advance(Duration::from_secs(10));
    s.complete(id, DataCompletion::EndOfData);
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(60))
    );
    s.reply("226 ok\r\n");
    assert!(s.result(id).is_ok());
    assert_eq!(s.session.poll_timeout(), None, "after the listing");
    s.data_actions();

    // A download: after its 226 and its sink's flush, nothing is timed.
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    finish_download(&mut s, id, "RETR f\r\n", b"data");
    assert_eq!(s.session.poll_timeout(), None, "after the download");

    // An aborted download: once the sentinel's answer came, nothing is owed.
    let id = download_in_progress(&mut s);
    s.request(Request::Abort);
    s.reply("426 aborted\r\n226 ok\r\n200 ok\r\n");
    assert_eq!(s.completed().len(), 2);
    assert_eq!(s.session.poll_timeout(), None, "after the abort");
    s.advance(Duration::from_secs(3600));
    assert!(!s.session.is_closed());
    s.data(id, b"late");
    assert_eq!(
        s.session.poll_timeout(),
        None,
        "a late chunk starts nothing"
    );

    // QUIT: the session closes, and every timer with it.
    s.request(Request::Quit);
    s.reply("221 bye\r\n");
    assert!(s.session.is_closed());
    assert_eq!(s.session.poll_timeout(), None, "after close");
}

#[test]
fn after_eof_the_final_reply_is_timed_again() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    s.advance(Duration::from_secs(30));
    s.complete(id, DataCompletion::EndOfData);
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(60))
    );
}

// ---- the download's sink ----

/// A download whose write to the user's sink fails is aborted like one whose connection broke.
#[test]
fn a_failing_sink_aborts_the_download() {
    let mut s = Script::greeted();
    let id = download_in_progress(&mut s);
    s.data(id, b"more");
    assert_eq!(
        s.data_actions(),
        [
            Action::Local(LocalAction::Write {
                id,
                data: Bytes::from_static(b"more")
            }),
            Action::Data(DataAction::Receive { id }),
        ]
    );
    s.complete(id, DataCompletion::Failed(ErrorKind::StorageFull.into()));
    assert_eq!(
        s.data_actions(),
        [
            Action::Data(DataAction::Close { id, aborted: true }),
            Action::Local(LocalAction::Close { id, aborted: true }),
        ]
    );
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    s.reply("426 Transfer aborted.\r\n226 Abort ok.\r\n200 NOOP ok.\r\n");
    assert_eq!(
        s.result(id),
        Err(ClientError::DataConnection(ErrorKind::StorageFull.into()))
    );
}

/// The server's 226 is not the end of a download: the sink must be stored too. If it cannot be (its
/// flush fails, or takes longer than the data timeout), the download fails, without an `ABOR`: the
/// server has finished.
#[test]
fn a_download_fails_if_its_sink_cannot_be_stored() {
    for slow in [false, true] {
        let mut s = Script::greeted();
        let id = download_in_progress(&mut s);
        s.complete(id, DataCompletion::EndOfData);
        assert_eq!(
            s.data_actions(),
            [
                Action::Data(DataAction::Close { id, aborted: false }),
                Action::Local(LocalAction::Close { id, aborted: false }),
            ]
        );
        s.reply("226 Transfer complete.\r\n");
        assert!(s.completed().is_empty());
        assert_eq!(
            s.session.poll_timeout(),
            Some(s.now + Duration::from_secs(60)),
            "the flush is timed"
        );
        let error = if slow {
            s.advance(Duration::from_secs(60));
            ClientError::Timeout
        } else {
            s.complete(id, DataCompletion::Failed(ErrorKind::StorageFull.into()));
            ClientError::DataConnection(ErrorKind::StorageFull.into())
        };
        assert_eq!(s.result(id), Err(error));
        assert_eq!(s.sent(), "");
        assert_eq!(s.data_actions(), [], "the sink was closed once");
        assert!(!s.session.is_closed());
        // A late answer changes nothing.
        s.complete(id, DataCompletion::Written);
        assert!(s.events().is_empty());
    }
}

/// `transfer_window` bounds a download's reads and unacknowledged writes together.
#[test]
fn a_download_window_of_one_alternates_reads_and_writes() {
    let mut config = Config::default();
    config.transfer_window = 1;
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    s.request(Request::SetType(TransferType::Image));
    s.reply("200 ok\r\n");
    s.completed();
    s.sent();
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    epsv(&mut s, id, 6800);
    s.sent();
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:6800"),
        },
    );
    let receive = || Action::Data(DataAction::Receive { id });
    assert_eq!(s.data_actions(), [receive()]);
    s.data(id, b"abc");
    let write = Action::Local(LocalAction::Write {
        id,
        data: Bytes::from_static(b"abc"),
    });
    assert_eq!(s.data_actions(), [write]);
    s.data(id, b"unasked");
    assert_eq!(s.data_actions(), [], "a chunk nobody asked for is ignored");
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.data_actions(), [receive()]);
    s.complete(id, DataCompletion::Written);
    assert_eq!(s.data_actions(), [], "nothing was written: a stray answer");
    s.complete(id, DataCompletion::EndOfData);
    s.reply("150 ok\r\n226 ok\r\n");
    assert_eq!(s.sink(), b"");
    assert_eq!(s.result(id), Ok(Outcome::Retrieved { bytes: 3 }));
}

// ---- garbage and closing ----

#[test]
fn garbage_closes_the_session() {
    let mut s = Script::greeted();
    let id = s.request(Request::Pwd);
    s.reply("HTTP/1.1 400 Bad Request\r\n");
    let events = s.events();
    assert!(matches!(
        &events[0],
        Event::Completed { id: i, result: Err(ClientError::Protocol(ProtocolError::MalformedReply(_))) } if *i == id
    ));
    assert!(matches!(
        &events[1],
        Event::Closed {
            error: Some(ClientError::Protocol(_))
        }
    ));
    assert!(s.session.is_closed());
    assert_eq!(
        s.session.request(s.now, Request::Noop),
        Err(UsageError::Closed)
    );
}

#[test]
fn a_reply_too_long_fails_only_its_request() {
    let mut config = Config::default();
    config.reply_limits.max_reply_bytes = 100;
    config.reply_limits.max_line_len = 64;
    let mut s = Script::with_config(config);
    s.reply("220 hi\r\n");
    let feat = s.request(Request::Features);
    let pwd = s.request(Request::Pwd);
    let noop = s.request(Request::Noop);
    s.reply("211-Features:\r\n");
    for _ in 0..20 {
        s.reply(" SOMETHING\r\n");
    }
    s.reply("211 End\r\n");
    assert_eq!(
        s.result(feat),
        Err(ClientError::Protocol(ProtocolError::MalformedReply(
            ReplyError::ReplyTooLong
        )))
    );
    assert_eq!(s.sent(), "FEAT\r\nPWD\r\n");
    s.reply(&format!("257 \"/{}\"\r\n", "x".repeat(100)));
    assert_eq!(
        s.result(pwd),
        Err(ClientError::Protocol(ProtocolError::MalformedReply(
            ReplyError::LineTooLong
        )))
    );
    s.reply("200 ok\r\n");
    assert_eq!(reply_code(&s.result(noop)), Some(200));
    assert!(!s.session.is_closed());
    // Answering nothing, it is ignored.
    s.reply(&format!("200 {}\r\n", "x".repeat(100)));
    assert!(s.events().is_empty());
    assert!(!s.session.is_closed());
}

/// Empty lines between replies (some servers end a reply with an extra CRLF) are skipped, however
/// the bytes are split.
#[test]
fn empty_lines_between_replies_are_skipped() {
    let mut s = Script::new();
    s.reply("\r\n220 hi\r\n\r\n\n");
    let pwd = s.request(Request::Pwd);
    s.reply("\r");
    s.reply("\n\r");
    s.reply("\n257 \"/\"\r\n\r");
    assert_eq!(s.result(pwd), Ok(Outcome::Path(b"/".to_vec())));
    // Inside a multi-line reply an empty line is text.
    let feat = s.request(Request::Features);
    s.reply("\n\r\n211-Features:\r\n\r\n EPSV\r\n211 End\r\n");
    let result = s.result(feat);
    let Ok(Outcome::Features(features)) = result else {
        panic!("{result:?}");
    };
    assert!(features.epsv && features.lines.len() == 1);
    // A CR followed by something else is not skipped: it is garbage.
    s.request(Request::Noop);
    s.reply("\rx 200 ok\r\n");
    assert!(s.session.is_closed());
}

#[test]
fn unexpected_and_unsolicited_replies() {
    let mut s = Script::greeted();
    s.reply("200 Nobody asked\r\n");
    assert!(matches!(
        s.events().as_slice(),
        [Event::UnsolicitedReply(_)]
    ));
    let id = s.request(Request::Pwd);
    s.reply("350 What?\r\n");
    assert!(matches!(
        s.result(id),
        Err(ClientError::Protocol(ProtocolError::UnexpectedReply(_)))
    ));
    let id = s.request(Request::Pwd);
    s.reply("257 no quotes here\r\n");
    assert!(matches!(
        s.result(id),
        Err(ClientError::Protocol(ProtocolError::BadReplyText(_)))
    ));
    let id = s.request(Request::Size(path("f")));
    s.reply("213 99999999999999999999999\r\n");
    assert!(matches!(
        s.result(id),
        Err(ClientError::Protocol(ProtocolError::BadReplyText(_)))
    ));
    let id = s.request(Request::Nlst { path: None });
    s.reply("229 Entering Extended Passive Mode (nothing)\r\n");
    assert!(matches!(
        s.result(id),
        Err(ClientError::Protocol(ProtocolError::BadReplyText(_)))
    ));
    assert!(!s.session.is_closed());
}

#[test]
fn service_closing_421_at_any_time() {
    let mut s = Script::greeted();
    let id = s.request(Request::Cwd(path("x")));
    s.reply("421 Timeout.\r\n");
    let events = s.events();
    assert_eq!(
        reply_code(&match &events[0] {
            Event::Completed { result, .. } => result.clone(),
            other => panic!("{other:?}"),
        }),
        Some(421)
    );
    assert!(matches!(events[0], Event::Completed { id: i, .. } if i == id));
    assert!(matches!(
        &events[1],
        Event::Closed {
            error: Some(ClientError::Reply(_))
        }
    ));
}

#[test]
fn quit_and_eof() {
    let mut s = Script::greeted();
    let id = s.request(Request::Quit);
    assert_eq!(
        s.session.request(s.now, Request::Noop),
        Err(UsageError::Closed)
    );
    assert_eq!(s.sent(), "QUIT\r\n");
    s.reply("221 Goodbye.\r\n");
    assert_eq!(s.data_actions(), [Action::CloseControl]);
    let events = s.events();
    assert_eq!(
        reply_code(&match &events[0] {
            Event::Completed { id: i, result } if *i == id => result.clone(),
            other => panic!("{other:?}"),
        }),
        Some(221)
    );
    assert_eq!(events[1], Event::Closed { error: None });

    let mut s = Script::greeted();
    let id = s.request(Request::Raw(Command::Quit));
    s.session.handle_control_eof();
    assert_eq!(s.result(id), Ok(Outcome::Disconnected));

    let mut s = Script::greeted();
    let id = s.request(Request::Pwd);
    s.session.handle_control_eof();
    assert_eq!(s.result(id), Err(ClientError::Closed));
}

#[test]
fn the_queue_is_bounded() {
    let mut config = Config::default();
    config.max_pending_requests = 2;
    let mut s = Script::with_config(config);
    s.request(Request::Noop);
    s.request(Request::Noop);
    assert_eq!(
        s.session.request(s.now, Request::Noop),
        Err(UsageError::QueueFull { limit: 2 })
    );
    s.reply("220 hi\r\n");
    assert_eq!(s.session.queued_requests(), 1, "one started, one waits");
    assert!(s.session.request(s.now, Request::Noop).is_ok());
}

// ---- chunking never matters ----

/// The server's side of a whole session, in two parts: before and after the data of the NLST (the
/// session sends the next command only once the NLST completed, which needs its data's EOF).
const SERVER_BEFORE_DATA: &str = "120 wait\r\n220-Welcome\r\n to the test\r\n220 ready\r\n\
    331 Password?\r\n230 ok\r\n\r\n\n\
    211-Features:\r\n EPSV\r\n MLST type*;size*;\r\n UTF8\r\n211 End\r\n\
    257 \"/home\"\r\n\
    350 ready\r\n250 renamed\r\n\
    213 20240101000000\r\n\
    250-Listing\r\n type=file;size=3; /x\r\n250 End\r\n\
    229 Entering Extended Passive Mode (|||4000|)\r\n150 Here it comes\r\n";
const SERVER_AFTER_DATA: &str = "226 Done\r\n550 nope\r\n221 bye\r\n";

/// Feeds `stream` in chunks of the given sizes (cycled).
fn feed_split(session: &mut Session, now: Instant, mut stream: &[u8], chunk_sizes: &[usize]) {
    let mut sizes = chunk_sizes.iter().cycle();
    while !stream.is_empty() {
        let size = (*sizes.next().unwrap()).clamp(1, stream.len());
        let (chunk, rest) = stream.split_at(size);
        session.handle_control_input(now, chunk);
        stream = rest;
    }
}

/// Runs the scripted session, feeding the server's bytes in the given chunk sizes; returns every
/// action and event.
fn run_split(chunk_sizes: &[usize]) -> (Vec<Action>, Vec<Event>) {
    let now = Instant::now();
    let mut session = Session::new(Arc::new(Config::default()), info(), now);
    let requests = [
        login("u", "p"),
        Request::Features,
        Request::Pwd,
        Request::Rename {
            from: path("a"),
            to: path("b"),
        },
        Request::Mdtm(path("x")),
        Request::Mlst(Some(path("x"))),
        Request::Nlst { path: None },
        Request::Cwd(path("nowhere")),
        Request::Quit,
    ];
    let ids: Vec<_> = requests
        .into_iter()
        .map(|r| session.request(now, r).unwrap())
        .collect();
    feed_split(
        &mut session,
        now,
        SERVER_BEFORE_DATA.as_bytes(),
        chunk_sizes,
    );
    let nlst = ids[6];
    session.handle_completion(
        now,
        nlst,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:4000"),
        },
    );
    session.handle_data(now, nlst, Bytes::from_static(b"x\r\n"));
    session.handle_completion(now, nlst, DataCompletion::EndOfData);
    feed_split(&mut session, now, SERVER_AFTER_DATA.as_bytes(), chunk_sizes);
    let actions = std::iter::from_fn(|| session.poll_action()).collect();
    let events = std::iter::from_fn(|| session.poll_event()).collect();
    (actions, events)
}

#[test]
fn the_scripted_session_completes_everything() {
    let (actions, events) = run_split(&[usize::MAX]);
    let completed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Completed { result, .. } => Some(result.is_ok()),
            _ => None,
        })
        .collect();
    // Everything succeeds except the CWD (550).
    assert_eq!(
        completed,
        [true, true, true, true, true, true, true, false, true]
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::UnsolicitedReply(_)))
    );
    assert_eq!(actions.last(), Some(&Action::CloseControl));
    assert!(matches!(events.last(), Some(Event::Closed { error: None })));
}

proptest! {
    #[test]
    fn chunking_never_changes_actions_or_events(
        sizes in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let whole = run_split(&[usize::MAX]);
        prop_assert_eq!(run_split(&sizes), whole);
    }

    #[test]
    fn arbitrary_server_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        split in 1usize..50,
    ) {
        let now = Instant::now();
        let mut session = Session::new(Arc::new(Config::default()), info(), now);
        let _ = session.request(now, login("u", "p"));
        let _ = session.request(now, Request::Retrieve { path: path("f"), offset: 3 });
        let _ = session.request(now, Request::Features);
        // Let every reply be plausible: prefix a greeting, then the random bytes.
        session.handle_control_input(now, b"220 hi\r\n");
        for chunk in bytes.chunks(split) {
            session.handle_control_input(now, chunk);
            while session.poll_action().is_some() {}
        }
        session.handle_control_eof();
        prop_assert!(session.is_closed());
        let completed = std::iter::from_fn(|| session.poll_event())
            .filter(|e| matches!(e, Event::Completed { .. }))
            .count();
        prop_assert_eq!(completed, 3, "exactly one completion per request");
    }
}

/// One step of a random conversation: a server reply, a user request, a driver answer, time passing.
#[derive(Clone, Debug)]
enum Step {
    Reply(&'static str),
    Request(usize),
    Complete(usize),
    Data(&'static [u8]),
    Advance(u64),
}

const REPLIES: &[&str] = &[
    "110 MARK 1 = 2\r\n",
    "120 soon\r\n",
    "150 Opening\r\n",
    "125 Already open\r\n",
    "200 ok\r\n",
    "220 hi\r\n",
    "226 done\r\n",
    "225 no transfer\r\n",
    "227 Entering Passive Mode (10,0,0,1,4,1)\r\n",
    "229 Entering Extended Passive Mode (|||4000|)\r\n",
    "230 in\r\n",
    "211-Features:\r\n EPSV\r\n211 End\r\n",
    "213 20240101000000\r\n",
    "213 12\r\n",
    "250-Listing\r\n type=file; /x\r\n250 End\r\n",
    "257 \"/x\"\r\n",
    "331 pw\r\n",
    "332 acct\r\n",
    "350 pending\r\n",
    "425 no data\r\n",
    "426 aborted\r\n",
    "500 what\r\n",
    "502 not implemented\r\n",
    "550 no\r\n",
    "227 garbage\r\n",
    "421 bye\r\n",
    "nonsense\r\n",
    // FTPS: AUTH's go-ahead (with a reply glued to it), PBSZ's answer, refusals of AUTH and PROT.
    "234 Proceed\r\n",
    "234 Proceed\r\n200 injected\r\n",
    "200 PBSZ=0\r\n",
    "504 unknown mechanism\r\n",
    "534 refused\r\n",
    "533 CCC refused\r\n",
];

fn random_request(i: usize) -> Request {
    match i % 14 {
        0 => login("u", "p"),
        1 => Request::Features,
        2 => Request::Pwd,
        3 => Request::Retrieve {
            path: path("f"),
            offset: (i % 3) as u64,
        },
        4 => Request::Store {
            path: path("f"),
            offset: (i % 2) as u64,
            append: i % 5 == 0,
        },
        5 => Request::List {
            path: None,
            now: Timestamp::UNIX_EPOCH,
        },
        6 => Request::Mlsd { path: None },
        7 => Request::Abort,
        8 => Request::Rename {
            from: path("a"),
            to: path("b"),
        },
        9 => Request::Raw(Command::Stor(path("x"))),
        10 => Request::SetType(TransferType::Image),
        12 => Request::SecureControl,
        13 => Request::ClearControl,
        _ => Request::Size(path("f")),
    }
}

fn random_completion(i: usize) -> DataCompletion {
    match i % 8 {
        0 => DataCompletion::Connected {
            peer: addr("198.51.100.1:4000"),
        },
        1 => DataCompletion::Connected {
            peer: addr("203.0.113.1:20"),
        },
        2 => DataCompletion::Listening(addr("0.0.0.0:40000")),
        3 => DataCompletion::EndOfData,
        4 => DataCompletion::Written,
        6 => DataCompletion::Secured { resumed: true },
        7 => DataCompletion::Secured { resumed: false },
        _ => DataCompletion::Failed(ErrorKind::ConnectionReset.into()),
    }
}

const CHUNKS: &[&[u8]] = &[b"x\r\n", b"", b"\r", b"data"];

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::sample::select(REPLIES).prop_map(Step::Reply),
        2 => (0usize..100).prop_map(Step::Request),
        2 => (0usize..100).prop_map(Step::Complete),
        1 => prop::sample::select(CHUNKS).prop_map(Step::Data),
        1 => (0u64..90).prop_map(Step::Advance),
    ]
}

proptest! {
    /// Whatever the server says and the driver answers, in any order: no panic, every request gets
    /// exactly one completion, and the session ends closed. With FTPS in the mix: nothing is sent
    /// while the control connection's handshake runs, and a data connection's handshake is asked for
    /// only on a connection the driver reported open, in the client's role.
    #[test]
    fn random_conversations_keep_the_one_completion_rule(
        steps in proptest::collection::vec(step_strategy(), 0..60),
        active in any::<bool>(),
        implicit_tls in any::<bool>(),
        protect_data in any::<bool>(),
    ) {
        let mut config = Config::default();
        if active {
            config.mode = DataMode::Active;
        }
        config.protect_data = protect_data;
        let start = Instant::now();
        let mut now = start;
        let mut session = if implicit_tls {
            Session::with_implicit_tls(Arc::new(config), info(), now)
        } else {
            Session::new(Arc::new(config), info(), now)
        };
        let mut requested = 0;
        // The control connection's handshake asked for and not answered yet.
        let mut handshake = None;
        // Data connections the driver reported open.
        let mut connected = std::collections::BTreeSet::new();
        for step in steps {
            match step {
                Step::Reply(wire) => session.handle_control_input(now, wire.as_bytes()),
                Step::Request(i) => {
                    if session.request(now, random_request(i)).is_ok() {
                        requested += 1;
                    }
                }
                Step::Complete(i) => {
                    if let Some(id) = session.current_request() {
                        let completion = random_completion(i);
                        match completion {
                            DataCompletion::Secured { .. } | DataCompletion::Failed(_)
                                if handshake == Some(id) => handshake = None,
                            DataCompletion::Connected { .. } => {
                                connected.insert(id);
                            }
                            _ => {}
                        }
                        session.handle_completion(now, id, completion);
                    }
                }
                Step::Data(chunk) => {
                    if let Some(id) = session.current_request() {
                        session.handle_data(now, id, Bytes::from_static(chunk));
                    }
                }
                Step::Advance(secs) => {
                    now += Duration::from_secs(secs);
                    session.handle_timeout(now);
                }
            }
            if let Some(deadline) = session.poll_timeout() {
                prop_assert!(deadline >= start);
            }
            while let Some(action) = session.poll_action() {
                match action {
                    Action::SecureControl { id } => {
                        prop_assert_eq!(Some(id), session.current_request());
                        handshake = Some(id);
                    }
                    Action::SendControl(bytes) => prop_assert!(
                        handshake.is_none(),
                        "{:?} sent during the handshake",
                        bytes
                    ),
                    Action::Data(DataAction::Secure { id, role }) => {
                        prop_assert!(connected.contains(&id), "Secure before Connected");
                        prop_assert_eq!(role, TlsRole::Client);
                    }
                    _ => {}
                }
            }
            if session.is_closed() {
                handshake = None;
            }
        }
        session.handle_control_eof();
        prop_assert!(session.is_closed());
        let events: Vec<_> = std::iter::from_fn(|| session.poll_event()).collect();
        let mut completed: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Completed { id, .. } => Some(id.get()),
                _ => None,
            })
            .collect();
        let count = completed.len();
        completed.sort_unstable();
        completed.dedup();
        prop_assert_eq!(completed.len(), count, "a request completed twice: {:?}", events);
        prop_assert_eq!(count, requested, "{:?}", events);
    }
}

// ---- FTP over TLS (RFC 4217) ----

/// The `234` to `AUTH TLS`.
const PROCEED: &str = "234 Proceed with negotiation.\r\n";

/// A greeted session whose control connection `AUTH TLS` secured.
fn secured_with(config: Config) -> Script {
    let mut s = Script::with_config(config);
    s.reply("220 ready\r\n");
    s.events();
    let id = s.request(Request::SecureControl);
    assert_eq!(s.sent(), "AUTH TLS\r\n");
    s.reply(PROCEED);
    assert_eq!(s.data_actions(), [Action::SecureControl { id }]);
    s.complete(id, DataCompletion::Secured { resumed: false });
    assert_eq!(reply_code(&s.result(id)), Some(234));
    assert!(s.session.is_control_secured());
    s
}

fn secured() -> Script {
    secured_with(Config::default())
}

/// `PBSZ 0` and `PROT P`, answered `200`, before a transfer's `EPSV`.
fn protect(s: &mut Script) {
    assert_eq!(s.sent(), "PBSZ 0\r\n");
    s.reply("200 PBSZ=0\r\n");
    assert_eq!(s.sent(), "PROT P\r\n");
    s.reply("200 Data connections are protected.\r\n");
    assert!(s.session.is_data_protected());
}

#[test]
fn secure_control_sends_auth_tls_and_completes_after_the_handshake() {
    let mut s = Script::greeted();
    let id = s.request(Request::SecureControl);
    assert_eq!(s.sent(), "AUTH TLS\r\n");
    s.reply(PROCEED);
    assert_eq!(s.data_actions(), [Action::SecureControl { id }]);
    assert!(s.completed().is_empty(), "not before the handshake");
    assert!(!s.session.is_control_secured());
    assert!(s.session.poll_timeout().is_some(), "the handshake is timed");
    s.complete(id, DataCompletion::Secured { resumed: false });
    let Ok(Outcome::Done(reply)) = s.result(id) else {
        panic!("no 234 outcome");
    };
    assert_eq!(reply.code().get(), 234);
    assert!(s.session.is_control_secured());
    assert!(
        !s.session.is_data_protected(),
        "PROT P comes with the first transfer"
    );
    assert!(s.data_actions().is_empty());
    // A second answer to the handshake changes nothing.
    s.complete(id, DataCompletion::Secured { resumed: true });
    assert!(s.events().is_empty() && s.data_actions().is_empty());
}

#[test]
fn a_refused_auth_fails_the_request_and_the_session_stays_in_plaintext() {
    for refusal in [
        "504 Unknown AUTH mechanism\r\n",
        "502 AUTH not supported\r\n",
        "534 Policy\r\n",
        "431 Unavailable\r\n",
        "500 What?\r\n",
    ] {
        let mut s = Script::greeted();
        let id = s.request(Request::SecureControl);
        s.sent();
        s.reply(refusal);
        let result = s.result(id);
        assert_eq!(
            reply_code(&result),
            Some(refusal[..3].parse().unwrap()),
            "{result:?}"
        );
        assert!(matches!(result, Err(ClientError::Reply(_))));
        assert!(s.data_actions().is_empty(), "no handshake");
        assert!(!s.session.is_control_secured());
        // Later transfers stay plaintext: no PBSZ, no PROT, no TLS on the data connection.
        let get = s.request(Request::Retrieve {
            path: path("f"),
            offset: 0,
        });
        assert_eq!(s.sent(), "EPSV\r\n", "{refusal}");
        s.reply("229 Entering Extended Passive Mode (|||5000|)\r\n");
        assert_eq!(
            s.data_actions(),
            [Action::Data(DataAction::Connect {
                id: get,
                addr: addr("198.51.100.1:5000"),
                tls: None,
            })]
        );
    }
}

#[test]
fn a_2xx_other_than_234_is_no_go_ahead_for_the_handshake() {
    let mut s = Script::greeted();
    let id = s.request(Request::SecureControl);
    s.sent();
    s.reply("200 Whatever\r\n");
    assert!(matches!(
        s.result(id),
        Err(ClientError::Protocol(ProtocolError::UnexpectedReply(_)))
    ));
    assert!(s.data_actions().is_empty());
    assert!(!s.session.is_control_secured());
}

/// A man in the middle may append replies to the `234` in the same segment; the client must not take
/// them for protected replies. The bytes after the `234`, in its chunk and during the handshake, are
/// dropped, and nothing is sent before the handshake is done.
#[test]
fn replies_after_the_234_and_during_the_handshake_are_dropped() {
    let mut s = Script::greeted();
    let id = s.request(Request::SecureControl);
    let pwd = s.request(Request::Pwd);
    assert_eq!(s.sent(), "AUTH TLS\r\n");
    s.reply("234 Proceed.\r\n257 \"/injected\"\r\n250 partial");
    assert_eq!(s.data_actions(), [Action::SecureControl { id }]);
    assert_eq!(s.sent(), "", "nothing is sent during the handshake");
    s.reply("257 \"/injected too\"\r\n");
    assert!(s.events().is_empty(), "{:?}", s.events);
    s.complete(id, DataCompletion::Secured { resumed: false });
    assert_eq!(reply_code(&s.result(id)), Some(234));
    assert_eq!(s.sent(), "PWD\r\n");
    s.reply("257 \"/real\"\r\n");
    assert_eq!(s.result(pwd), Ok(Outcome::Path(b"/real".to_vec())));
    assert!(
        !s.events
            .iter()
            .any(|e| matches!(e, Event::UnsolicitedReply(_)))
    );
}

#[test]
fn a_handshake_that_never_ends_times_out_and_closes_the_session() {
    let mut config = Config::default();
    config.reply_timeout = Duration::from_secs(10);
    let mut s = Script::with_config(config);
    s.reply("220 ready\r\n");
    let id = s.request(Request::SecureControl);
    s.reply(PROCEED);
    s.data_actions();
    s.advance(Duration::from_secs(11));
    assert!(s.session.is_closed());
    let completed = s.completed();
    assert_eq!(completed, [(id, Err(ClientError::Timeout))]);
}

/// The control connection is unusable after a failed handshake: the session closes rather than send
/// commands (in plaintext, into a broken TLS connection) whose replies it would never read.
#[test]
fn a_failed_handshake_closes_the_session() {
    let mut s = Script::greeted();
    let id = s.request(Request::SecureControl);
    let pwd = s.request(Request::Pwd);
    assert_eq!(s.sent(), "AUTH TLS\r\n");
    s.reply(PROCEED);
    assert_eq!(s.data_actions(), [Action::SecureControl { id }]);
    let error = ftp_proto::data::DataError::new(ErrorKind::InvalidData);
    s.complete(id, DataCompletion::Failed(error));
    assert_eq!(s.sent(), "", "nothing more is sent");
    assert_eq!(s.data_actions(), [Action::CloseControl]);
    assert!(s.session.is_closed());
    let completed = s.completed();
    assert_eq!(
        completed,
        [
            (id, Err(ClientError::DataConnection(error))),
            (pwd, Err(ClientError::Closed)),
        ]
    );
}

#[test]
fn pbsz_and_prot_go_once_before_the_first_protected_transfer() {
    let mut s = secured();
    let get = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    protect(&mut s);
    assert_eq!(s.sent(), "EPSV\r\n");
    s.reply("229 Entering Extended Passive Mode (|||5000|)\r\n");
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Connect {
            id: get,
            addr: addr("198.51.100.1:5000"),
            tls: Some(TlsRole::Client),
        })]
    );
    assert_eq!(s.sent(), "RETR f\r\n");
    s.complete(
        get,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5000"),
        },
    );
    // The client starts its handshake at once, and reads nothing before it is done.
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Secure {
            id: get,
            role: TlsRole::Client,
        })]
    );
    s.data(get, b"plaintext before the handshake");
    assert!(s.data_actions().is_empty());
    s.reply("150 Opening BINARY mode data connection.\r\n");
    assert!(s.data_actions().is_empty());
    s.complete(get, DataCompletion::Secured { resumed: true });
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Receive { id: get })]
    );
    s.data(get, b"secret");
    s.complete(get, DataCompletion::EndOfData);
    s.reply("226 Transfer complete.\r\n");
    assert_eq!(s.sink(), b"secret");
    assert_eq!(s.result(get), Ok(Outcome::Retrieved { bytes: 6 }));

    // The second transfer goes straight to its data channel, still protected.
    let list = s.request(Request::Nlst { path: None });
    assert_eq!(s.sent(), "EPSV\r\n");
    s.reply("229 Entering Extended Passive Mode (|||5001|)\r\n");
    assert!(matches!(
        s.data_actions().as_slice(),
        [Action::Data(DataAction::Connect { id, tls: Some(TlsRole::Client), .. })] if *id == list
    ));
}

#[test]
fn a_protected_upload_waits_for_its_handshake_before_reading_the_source() {
    let mut s = secured();
    let put = s.request(Request::Store {
        path: path("up"),
        offset: 0,
        append: false,
    });
    protect(&mut s);
    epsv(&mut s, put, 5000);
    assert_eq!(s.sent(), "STOR up\r\n");
    s.reply("150 Ok to send data.\r\n");
    s.complete(
        put,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5000"),
        },
    );
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Secure {
            id: put,
            role: TlsRole::Client,
        })],
        "no read of the source before the handshake"
    );
    s.complete(put, DataCompletion::Secured { resumed: false });
    assert_eq!(
        s.data_actions(),
        [
            Action::Local(LocalAction::Read { id: put }),
            Action::Local(LocalAction::Read { id: put }),
        ]
    );
}

#[test]
fn a_refused_prot_fails_the_transfer_and_never_falls_back_to_plaintext() {
    let mut s = secured();
    let get = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    assert_eq!(s.sent(), "PBSZ 0\r\n");
    s.reply("200 PBSZ=0\r\n");
    assert_eq!(s.sent(), "PROT P\r\n");
    s.reply("534 Protection level refused.\r\n");
    assert_eq!(reply_code(&s.result(get)), Some(534));
    assert_eq!(s.sent(), "", "no EPSV, no transfer in plaintext");
    assert_eq!(
        s.data_actions(),
        [Action::Local(LocalAction::Close {
            id: get,
            aborted: true
        })],
        "no data connection; the sink is let go of"
    );
    assert!(!s.session.is_data_protected());
    // A refused PBSZ fails the next one the same way.
    let list = s.request(Request::List {
        path: None,
        now: Timestamp::UNIX_EPOCH,
    });
    assert_eq!(s.sent(), "PBSZ 0\r\n");
    s.reply("503 PBSZ refused.\r\n");
    assert_eq!(reply_code(&s.result(list)), Some(503));
    assert_eq!(s.sent(), "");
    assert!(s.data_actions().is_empty());
}

#[test]
fn without_protect_data_no_pbsz_is_sent_and_data_stays_plaintext() {
    let mut config = Config::default();
    config.protect_data = false;
    let mut s = secured_with(config);
    let get = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    assert_eq!(s.sent(), "EPSV\r\n");
    s.reply("229 Entering Extended Passive Mode (|||5000|)\r\n");
    assert!(matches!(
        s.data_actions().as_slice(),
        [Action::Data(DataAction::Connect { id, tls: None, .. })] if *id == get
    ));
}

#[test]
fn an_implicit_tls_session_protects_its_first_transfer() {
    let now = Instant::now();
    let mut s = Script::new();
    s.session = Session::with_implicit_tls(Arc::new(Config::default()), info(), now);
    assert!(s.session.is_control_secured());
    s.reply("220 ready\r\n");
    let id = s.request(Request::Nlst { path: None });
    protect(&mut s);
    epsv(&mut s, id, 5000);
    // AUTH on an implicit connection would be TLS inside TLS: refused before anything is sent.
    let auth = s.session.request(s.now, Request::SecureControl);
    assert_eq!(auth, Err(ftp_proto::client::UsageError::AlreadySecured));
}

#[test]
fn a_protected_active_transfer_secures_the_accepted_connection() {
    let mut config = Config::default();
    config.mode = DataMode::Active;
    let mut s = secured_with(config);
    let id = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    protect(&mut s);
    assert!(matches!(
        s.data_actions().as_slice(),
        [Action::Data(DataAction::Listen { id: i, .. })] if *i == id
    ));
    s.complete(id, DataCompletion::Listening(addr("0.0.0.0:40000")));
    assert_eq!(s.sent(), "EPRT |1|192.0.2.7|40000|\r\n");
    s.reply("200 EPRT command successful.\r\n");
    assert_eq!(s.sent(), "RETR f\r\n");
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Accept {
            id,
            listener: id,
            tls: Some(TlsRole::Client),
        })]
    );
    s.complete(
        id,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:20"),
        },
    );
    assert_eq!(
        s.data_actions(),
        [Action::Data(DataAction::Secure {
            id,
            role: TlsRole::Client,
        })]
    );
    s.complete(id, DataCompletion::Secured { resumed: true });
    assert_eq!(s.data_actions(), [Action::Data(DataAction::Receive { id })]);
}

#[test]
fn a_failed_data_handshake_fails_the_transfer_and_the_session_goes_on() {
    let mut s = secured();
    let get = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    protect(&mut s);
    epsv(&mut s, get, 5000);
    assert_eq!(s.sent(), "RETR f\r\n");
    s.complete(
        get,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5000"),
        },
    );
    s.data_actions();
    s.reply("150 Opening.\r\n");
    let error = ftp_proto::data::DataError::new(ErrorKind::InvalidData);
    s.complete(get, DataCompletion::Failed(error));
    // The server is running RETR: ABOR (and its sentinel) resynchronise the control connection.
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    s.reply("426 Aborted.\r\n226 Abort successful.\r\n200 NOOP ok.\r\n");
    assert_eq!(
        s.result(get),
        Err(ClientError::DataConnection(error)),
        "the handshake's failure"
    );
    let noop = s.request(Request::Noop);
    assert_eq!(s.sent(), "NOOP\r\n");
    s.reply("200 ok\r\n");
    assert!(s.result(noop).is_ok());
}

#[test]
fn clear_control_sends_ccc_and_ends_tls_on_200() {
    let mut s = secured();
    let get = s.request(Request::Nlst { path: None });
    protect(&mut s);
    epsv(&mut s, get, 5000);
    s.sent();
    s.reply("226 Nothing to list.\r\n");
    s.completed();
    s.data_actions();
    let ccc = s.request(Request::ClearControl);
    let noop = s.request(Request::Noop);
    assert_eq!(s.sent(), "CCC\r\n");
    s.reply("200 Control connection is plaintext now.\r\n");
    assert_eq!(s.data_actions(), [Action::ClearControl]);
    assert_eq!(
        s.sent(),
        "NOOP\r\n",
        "the next command comes after the ClearControl"
    );
    assert!(!s.session.is_control_secured());
    assert!(
        s.session.is_data_protected(),
        "data connections stay protected"
    );
    s.reply("200 ok\r\n");
    let completed = s.completed();
    assert_eq!(reply_code(&completed[0].1), Some(200));
    assert_eq!((completed[0].0, completed[1].0), (ccc, noop));

    // Refused: TLS stays. (Data protection is set up first: after CCC the server would refuse it.)
    let mut s = secured();
    let ccc = s.request(Request::ClearControl);
    protect(&mut s);
    assert_eq!(s.sent(), "CCC\r\n");
    s.reply("533 CCC refused.\r\n");
    assert_eq!(reply_code(&s.result(ccc)), Some(533));
    assert!(s.data_actions().is_empty());
    assert!(s.session.is_control_secured());
}

#[test]
fn a_data_handshake_that_never_ends_times_out_and_only_the_transfer_fails() {
    let mut config = Config::default();
    config.data_timeout = Duration::from_secs(5);
    let mut s = secured_with(config);
    let get = s.request(Request::Retrieve {
        path: path("f"),
        offset: 0,
    });
    protect(&mut s);
    epsv(&mut s, get, 5000);
    assert_eq!(s.sent(), "RETR f\r\n");
    s.complete(
        get,
        DataCompletion::Connected {
            peer: addr("198.51.100.1:5000"),
        },
    );
    s.data_actions();
    s.reply("150 Opening.\r\n");
    s.advance(Duration::from_secs(6));
    assert!(!s.session.is_closed());
    assert_eq!(s.sent(), "ABOR\r\nNOOP\r\n");
    let close = Action::Data(DataAction::Close {
        id: get,
        aborted: true,
    });
    assert!(s.data_actions().contains(&close));
    s.reply("426 Aborted.\r\n226 Abort successful.\r\n200 NOOP ok.\r\n");
    assert_eq!(s.result(get), Err(ClientError::Timeout));
    // The handshake's late answer changes nothing.
    s.complete(get, DataCompletion::Secured { resumed: true });
    assert!(s.data_actions().is_empty() && s.events().is_empty());
}

/// Found by the `client_session` fuzz target: a server that answered `200` to `CCC` on a plaintext
/// connection made the session tell its driver to end a TLS session there was none of.
#[test]
fn ccc_accepted_on_a_plaintext_connection_asks_the_driver_for_nothing() {
    let mut s = Script::greeted();
    let ccc = s.request(Request::ClearControl);
    assert_eq!(s.sent(), "CCC\r\n");
    s.reply("200 Whatever you say.\r\n");
    assert_eq!(reply_code(&s.result(ccc)), Some(200));
    assert!(s.data_actions().is_empty(), "no ClearControl");
    assert!(!s.session.is_control_secured());
}

#[test]
fn the_order_of_a_protected_transfer_is_connect_secure_then_data_whatever_the_replies() {
    // The 150 may come before or after the connection and its handshake: the data waits for the
    // handshake either way, and the transfer completes only with the data's end and the 226.
    for early_150 in [false, true] {
        let mut s = secured();
        let get = s.request(Request::Retrieve {
            path: path("f"),
            offset: 0,
        });
        protect(&mut s);
        epsv(&mut s, get, 5000);
        s.sent();
        if early_150 {
            s.reply("150 Opening.\r\n");
        }
        s.complete(
            get,
            DataCompletion::Connected {
                peer: addr("198.51.100.1:5000"),
            },
        );
        let secure = Action::Data(DataAction::Secure {
            id: get,
            role: TlsRole::Client,
        });
        assert_eq!(s.data_actions(), [secure]);
        if !early_150 {
            s.reply("150 Opening.\r\n");
        }
        s.reply("226 Done.\r\n");
        assert!(s.completed().is_empty(), "the data has not flowed");
        s.complete(get, DataCompletion::Secured { resumed: true });
        s.complete(get, DataCompletion::EndOfData);
        s.sink();
        assert_eq!(s.result(get), Ok(Outcome::Retrieved { bytes: 0 }));
    }
}

// ---- the client against this crate's server, through an in-memory driver ----

/// The client wired to this crate's server session: the shared harness's client–server pair.
#[path = "harness/mod.rs"]
mod harness;

mod wired {
    use super::harness::{MemoryStore, Pair};
    use super::*;
    use ftp_proto::server::{Config as ServerConfig, TlsPolicy};
    use std::collections::VecDeque;

    fn modified() -> Timestamp {
        Timestamp::parse_ftp(b"20240102030405").unwrap()
    }

    /// An empty file system whose entries all report `modified()`, read five bytes at a time (to make
    /// many chunks).
    fn store() -> MemoryStore {
        let mut store = MemoryStore::new();
        store.mtime = modified();
        store.listed_at = modified();
        store.chunk_size = 5;
        store
    }

    fn login_world(config: Config) -> Pair {
        let mut world = Pair::new(config, store());
        let result = world.run(login("alice", "secret"));
        assert_eq!(reply_code(&result), Some(230));
        assert!(matches!(world.client.events[0], Event::Connected(_)));
        world.client.events.clear();
        world
    }

    #[test]
    fn a_whole_session_against_the_server() {
        let mut w = login_world(Config::default());
        let Ok(Outcome::Features(features)) = w.run(Request::Features) else {
            panic!("no FEAT");
        };
        assert!(features.epsv && features.eprt && features.rest_stream && features.mfmt);
        assert!(
            features
                .mlst
                .as_ref()
                .is_some_and(|facts| !facts.is_empty())
        );
        assert_eq!(
            w.run(Request::Mkdir(path("docs"))),
            Ok(Outcome::Created(Some(b"/docs".to_vec())))
        );
        assert!(w.run(Request::Cwd(path("docs"))).is_ok());
        assert_eq!(w.run(Request::Pwd), Ok(Outcome::Path(b"/docs".to_vec())));
        assert!(w.run(Request::SetType(TransferType::Image)).is_ok());

        // Upload in chunks, then resume it from byte 6.
        w.client.upload = VecDeque::from([
            Bytes::from_static(b"hello "),
            Bytes::from_static(b"world\n"),
        ]);
        let stored = w.run(Request::Store {
            path: path("hello.txt"),
            offset: 0,
            append: false,
        });
        assert_eq!(stored, Ok(Outcome::Stored { bytes: 12 }));
        assert_eq!(w.server.file("/docs/hello.txt").unwrap(), b"hello world\n");
        w.client.upload = VecDeque::from([Bytes::from_static(b"there\n")]);
        let resumed = w.run(Request::Store {
            path: path("hello.txt"),
            offset: 6,
            append: false,
        });
        assert_eq!(resumed, Ok(Outcome::Stored { bytes: 6 }));
        assert_eq!(w.server.file("/docs/hello.txt").unwrap(), b"hello there\n");
        assert_eq!(
            w.run(Request::Size(path("hello.txt"))),
            Ok(Outcome::Size(12))
        );

        // Download all of it, then from byte 6.
        assert_eq!(
            w.run(Request::Retrieve {
                path: path("hello.txt"),
                offset: 0
            }),
            Ok(Outcome::Retrieved { bytes: 12 })
        );
        assert_eq!(std::mem::take(&mut w.client.downloaded), b"hello there\n");
        w.run(Request::Retrieve {
            path: path("hello.txt"),
            offset: 6,
        })
        .unwrap();
        assert_eq!(std::mem::take(&mut w.client.downloaded), b"there\n");

        // TYPE A: the server sends CRLF, the client turns it back into LF; and the other way round.
        assert!(
            w.run(Request::SetType(TransferType::Ascii(
                FormatControl::NonPrint
            )))
            .is_ok()
        );
        let ascii = w.run(Request::Retrieve {
            path: path("hello.txt"),
            offset: 0,
        });
        assert_eq!(
            ascii,
            Ok(Outcome::Retrieved { bytes: 13 }),
            "one CR added on the wire"
        );
        assert_eq!(std::mem::take(&mut w.client.downloaded), b"hello there\n");
        w.client.upload = VecDeque::from([Bytes::from_static(b"a\nb"), Bytes::from_static(b"\n")]);
        let stored = w.run(Request::Store {
            path: path("lines.txt"),
            offset: 0,
            append: false,
        });
        assert_eq!(stored, Ok(Outcome::Stored { bytes: 6 }));
        assert_eq!(w.server.file("/docs/lines.txt").unwrap(), b"a\nb\n");
        assert!(w.run(Request::SetType(TransferType::Image)).is_ok());

        // Listings, parsed.
        let Ok(Outcome::Listing(entries)) = w.run(Request::List {
            path: None,
            now: modified(),
        }) else {
            panic!("no LIST");
        };
        let names: Vec<_> = entries
            .iter()
            .map(|e| e.as_ref().unwrap().name.clone())
            .collect();
        assert_eq!(names, [b"hello.txt".to_vec(), b"lines.txt".to_vec()]);
        assert_eq!(entries[0].as_ref().unwrap().size, Some(12));
        let Ok(Outcome::Facts(facts)) = w.run(Request::Mlsd {
            path: Some(path("/")),
        }) else {
            panic!("no MLSD");
        };
        let docs = facts[0].as_ref().unwrap();
        assert_eq!(
            (docs.name.as_slice(), docs.kind.clone()),
            (&b"docs"[..], Some(MlsxKind::Dir))
        );
        assert_eq!(
            w.run(Request::Nlst { path: None }),
            Ok(Outcome::Names(vec![
                b"hello.txt".to_vec(),
                b"lines.txt".to_vec()
            ]))
        );
        let Ok(Outcome::Entry(entry)) = w.run(Request::Mlst(Some(path("hello.txt")))) else {
            panic!("no MLST");
        };
        assert_eq!((entry.size, entry.modified), (Some(12), Some(modified())));

        // File operations.
        assert!(
            w.run(Request::Rename {
                from: path("hello.txt"),
                to: path("hi.txt")
            })
            .is_ok()
        );
        assert_eq!(
            w.run(Request::Mdtm(path("hi.txt"))),
            Ok(Outcome::Modified(modified()))
        );
        assert!(w.run(Request::Delete(path("lines.txt"))).is_ok());
        let missing = w.run(Request::Retrieve {
            path: path("lines.txt"),
            offset: 0,
        });
        assert_eq!(reply_code(&missing), Some(550));
        assert!(
            w.run(Request::Noop).is_ok(),
            "still in sync after a refused transfer"
        );

        assert_eq!(reply_code(&w.run(Request::Quit)), Some(221));
        assert!(w.client.is_closed() && w.server.is_closed());
        assert_eq!(w.client.events.last(), Some(&Event::Closed { error: None }));
    }

    #[test]
    fn active_mode_against_the_server() {
        let mut config = Config::default();
        config.mode = DataMode::Active;
        let mut w = login_world(config);
        w.server
            .add_file("/f.bin", (0u8..=255).collect::<Vec<u8>>());
        w.run(Request::SetType(TransferType::Image)).unwrap();
        let result = w.run(Request::Retrieve {
            path: path("f.bin"),
            offset: 0,
        });
        assert_eq!(result, Ok(Outcome::Retrieved { bytes: 256 }));
        assert_eq!(w.client.downloaded, (0u8..=255).collect::<Vec<_>>());
    }

    #[test]
    fn abort_against_the_server() {
        let mut w = login_world(Config::default());
        w.server.add_file("/big", vec![b'x'; 1000]);
        w.run(Request::SetType(TransferType::Image)).unwrap();
        w.client.abort_after = Some(20);
        let result = w.run(Request::Retrieve {
            path: path("big"),
            offset: 0,
        });
        assert_eq!(result, Err(ClientError::Aborted));
        assert!(w.client.downloaded.len() < 1000);
        // The abort's own completion: the server's 226 after its 426.
        let abort = w
            .client
            .events
            .iter()
            .find_map(|e| match e {
                Event::Completed { result, .. } => Some(result.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(reply_code(&abort), Some(226));
        // Client and server agree on what comes next.
        assert_eq!(w.run(Request::Pwd), Ok(Outcome::Path(b"/".to_vec())));
        assert!(w.run(Request::Noop).is_ok());
    }

    // ---- FTPS end to end: the client's SecureControl and protected transfers against the server ----

    fn tls_server(edit: impl FnOnce(&mut TlsPolicy)) -> ServerConfig {
        let mut tls = TlsPolicy::required();
        edit(&mut tls);
        let mut config = ServerConfig::default();
        config.tls = tls;
        config
    }

    /// A pair whose client secured the control connection and logged in as alice, in TYPE I.
    fn secured_world(config: Config, server: ServerConfig) -> Pair {
        let mut w = Pair::with_server_config(config, server, store());
        assert_eq!(reply_code(&w.run(Request::SecureControl)), Some(234));
        assert!(w.client.session.is_control_secured() && w.server.session.is_control_secured());
        assert!(w.client.control_secured && w.server.control_secured);
        assert_eq!(reply_code(&w.run(login("alice", "secret"))), Some(230));
        w.run(Request::SetType(TransferType::Image)).unwrap();
        w.client.events.clear();
        w
    }

    #[test]
    fn protected_transfers_against_a_server_that_requires_tls() {
        let mut w = Pair::with_server_config(Config::default(), tls_server(|_| {}), store());
        // In plaintext the server refuses the login.
        assert_eq!(reply_code(&w.run(login("alice", "secret"))), Some(530));
        assert_eq!(reply_code(&w.run(Request::SecureControl)), Some(234));
        assert_eq!(reply_code(&w.run(login("alice", "secret"))), Some(230));
        w.run(Request::SetType(TransferType::Image)).unwrap();

        w.client.upload =
            VecDeque::from([Bytes::from_static(b"top "), Bytes::from_static(b"secret\n")]);
        let stored = w.run(Request::Store {
            path: path("s.txt"),
            offset: 0,
            append: false,
        });
        assert_eq!(stored, Ok(Outcome::Stored { bytes: 11 }));
        assert_eq!(w.server.file("/s.txt").unwrap(), b"top secret\n");
        assert!(w.client.session.is_data_protected() && w.server.session.is_data_protected());
        let got = w.run(Request::Retrieve {
            path: path("s.txt"),
            offset: 4,
        });
        assert_eq!(got, Ok(Outcome::Retrieved { bytes: 7 }));
        assert_eq!(std::mem::take(&mut w.client.downloaded), b"secret\n");
        let Ok(Outcome::Listing(entries)) = w.run(Request::List {
            path: None,
            now: modified(),
        }) else {
            panic!("no LIST");
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(
            w.run(Request::Nlst { path: None }),
            Ok(Outcome::Names(vec![b"s.txt".to_vec()]))
        );
        // Every data connection was TLS, with the client as the TLS client.
        assert_eq!(w.client.data_tls, [Some(TlsRole::Client); 4]);
        assert_eq!(w.client.data_secures, [TlsRole::Client; 4]);
        assert_eq!(w.server.data_tls, [Some(TlsRole::Server); 4]);
        assert_eq!(w.server.data_secures, [TlsRole::Server; 4]);
        assert_eq!(w.failed_data_handshakes, 0);
        assert_eq!(reply_code(&w.run(Request::Quit)), Some(221));
        assert!(w.client.is_closed() && w.server.is_closed());
    }

    #[test]
    fn protected_active_mode_against_the_server() {
        let mut config = Config::default();
        config.mode = DataMode::Active;
        let mut w = secured_world(config, tls_server(|_| {}));
        w.server
            .add_file("/f.bin", (0u8..=255).collect::<Vec<u8>>());
        let result = w.run(Request::Retrieve {
            path: path("f.bin"),
            offset: 0,
        });
        assert_eq!(result, Ok(Outcome::Retrieved { bytes: 256 }));
        assert_eq!(w.client.downloaded, (0u8..=255).collect::<Vec<_>>());
        assert_eq!(w.client.data_tls, [Some(TlsRole::Client)]);
        assert_eq!(w.server.data_tls, [Some(TlsRole::Server)]);
    }

    #[test]
    fn a_data_connection_that_did_not_resume_is_refused_end_to_end() {
        let mut w = secured_world(Config::default(), tls_server(|_| {}));
        w.server.add_file("/f", &b"confidential"[..]);
        w.server.tls_resumed = false;
        let result = w.run(Request::Retrieve {
            path: path("f"),
            offset: 0,
        });
        assert_eq!(reply_code(&result), Some(425), "{result:?}");
        assert!(w.client.downloaded.is_empty(), "not a byte crossed");
        assert!(w.run(Request::Noop).is_ok(), "both ends still agree");
        w.server.tls_resumed = true;
        let result = w.run(Request::Retrieve {
            path: path("f"),
            offset: 0,
        });
        assert_eq!(result, Ok(Outcome::Retrieved { bytes: 12 }));
    }

    #[test]
    fn a_plaintext_client_gets_521_from_a_server_that_requires_protection() {
        let mut config = Config::default();
        config.protect_data = false;
        let mut w = secured_world(config, tls_server(|_| {}));
        let result = w.run(Request::Nlst { path: None });
        assert_eq!(reply_code(&result), Some(521), "{result:?}");
        assert!(w.server.data_tls.is_empty(), "no data connection was made");
        assert!(w.run(Request::Pwd).is_ok());
    }

    #[test]
    fn implicit_ftps_against_the_server() {
        let mut w = Pair::implicit(Config::default(), tls_server(|_| {}), store());
        assert_eq!(reply_code(&w.run(login("alice", "secret"))), Some(230));
        w.server.add_file("/f", &b"implicit"[..]);
        let result = w.run(Request::Retrieve {
            path: path("f"),
            offset: 0,
        });
        assert_eq!(result, Ok(Outcome::Retrieved { bytes: 8 }));
        assert_eq!(w.server.handshakes, 0);
        assert_eq!(w.server.data_secures, [TlsRole::Server]);
        // AUTH on an implicit connection: refused by the session itself, which goes on.
        let auth = w
            .client
            .session
            .request(w.client.now, Request::SecureControl);
        assert_eq!(auth, Err(ftp_proto::client::UsageError::AlreadySecured));
        assert!(w.run(Request::Noop).is_ok());
    }

    #[test]
    fn clear_control_against_a_server_that_allows_it() {
        let mut w = secured_world(
            Config::default(),
            tls_server(|p| {
                p.allow_clear_control = true;
                p.required_for_data = true;
            }),
        );
        assert!(w.run(Request::Nlst { path: None }).is_ok());
        assert_eq!(reply_code(&w.run(Request::ClearControl)), Some(200));
        assert!(!w.client.control_secured && !w.server.control_secured);
        assert!(!w.client.session.is_control_secured());
        // Data connections stay protected; the control connection goes on in plaintext.
        assert!(w.run(Request::Nlst { path: None }).is_ok());
        assert_eq!(w.client.data_tls, [Some(TlsRole::Client); 2]);
        assert!(w.run(Request::Pwd).is_ok());
    }

    #[test]
    fn clear_control_refused_keeps_tls() {
        let mut w = secured_world(Config::default(), tls_server(|_| {}));
        assert_eq!(reply_code(&w.run(Request::ClearControl)), Some(533));
        assert!(w.client.control_secured && w.server.control_secured);
        assert!(w.run(Request::Noop).is_ok());
    }

    #[test]
    fn a_server_without_tls_refuses_auth_and_the_client_goes_on_in_plaintext() {
        let mut w = Pair::new(Config::default(), store());
        let result = w.run(Request::SecureControl);
        assert_eq!(reply_code(&result), Some(502));
        assert_eq!(reply_code(&w.run(login("alice", "secret"))), Some(230));
        assert!(w.run(Request::Nlst { path: None }).is_ok());
        assert_eq!(w.client.data_tls, [None]);
        assert_eq!(w.server.data_tls, [None]);
        assert_eq!(w.server.handshakes, 0);
    }
}

#[test]
fn host_names_are_checked_before_sending() {
    use ftp_proto::client::UsageError;
    use ftp_proto::command::Text;
    let mut s = Script::greeted();
    for bad in [
        "ftp.example.com:21",
        "[::1]:21",
        "-bad-.example",
        "\u{e9}t\u{e9}",
    ] {
        let request = Request::Host(Text::new(bad).unwrap());
        assert_eq!(
            s.session.request(s.now, request),
            Err(UsageError::InvalidHost),
            "{bad}"
        );
    }
    assert!(
        s.session
            .request(s.now, Request::Host(Text::new("ftp.example.com").unwrap()))
            .is_ok()
    );
}

/// The driver contract: a spurious `handle_timeout` (early, repeated, or with a time from the past)
/// changes nothing; the real deadline still fires.
#[test]
fn spurious_timeouts_are_harmless() {
    let mut s = Script::greeted();
    let id = s.request(login("alice", "secret"));
    assert_eq!(s.sent(), "USER alice\r\n");
    let deadline = s.session.poll_timeout().expect("the reply timer runs");
    for now in [
        s.now,
        s.now,
        s.now.checked_sub(Duration::from_secs(60)).unwrap_or(s.now),
        deadline - Duration::from_millis(1),
    ] {
        s.session.handle_timeout(now);
        assert!(s.data_actions().is_empty());
        assert_eq!(s.sent(), "");
        assert!(s.events().is_empty());
        assert_eq!(s.session.poll_timeout(), Some(deadline));
    }
    // The conversation goes on as if nothing happened.
    s.reply("331 password\r\n");
    assert_eq!(s.sent(), "PASS secret\r\n");
    s.reply("230 ok\r\n");
    assert!(s.result(id).is_ok());
}

/// Some servers send CR CR LF in ASCII mode; every CR before the LF is a line end, in NLST as in LIST.
#[test]
fn nlst_names_lose_every_cr_before_the_lf() {
    let nlst = Request::Nlst { path: None };
    assert_eq!(
        finished_listing(Config::default(), nlst, b"a\r\r\nb c\r\n".to_vec()),
        Ok(Outcome::Names(vec![b"a".to_vec(), b"b c".to_vec()]))
    );
}

#[test]
fn secure_control_on_a_protected_or_securing_connection_is_refused_at_once() {
    use ftp_proto::client::UsageError;
    // Queued twice: the second is refused before anything is sent.
    let mut s = Script::greeted();
    s.request(Request::SecureControl);
    let again = s.session.request(s.now, Request::SecureControl);
    assert_eq!(again, Err(UsageError::AlreadySecured));
    assert_eq!(s.sent(), "AUTH TLS\r\n");
    // Secured: refused too, and no `AUTH TLS` goes out over TLS.
    let mut s = secured();
    let again = s.session.request(s.now, Request::SecureControl);
    assert_eq!(again, Err(UsageError::AlreadySecured));
    assert_eq!(s.sent(), "");
}

#[test]
fn clear_control_before_any_transfer_sets_up_data_protection_first() {
    // Otherwise PBSZ/PROT could no longer be sent (servers refuse them in plaintext) and the next
    // transfer would go in the clear.
    let mut s = secured();
    let ccc = s.request(Request::ClearControl);
    protect(&mut s);
    assert_eq!(s.sent(), "CCC\r\n");
    s.reply("200 Control connection is plaintext now.\r\n");
    assert_eq!(s.data_actions(), [Action::ClearControl]);
    assert_eq!(reply_code(&s.result(ccc)), Some(200));
    let get = s.request(Request::Nlst { path: None });
    assert_eq!(s.sent(), "EPSV\r\n", "no PBSZ/PROT again");
    s.reply("229 Entering Extended Passive Mode (|||5000|)\r\n");
    let actions = s.data_actions();
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Data(DataAction::Connect {
                tls: Some(TlsRole::Client),
                ..
            })]
        ),
        "{actions:?}"
    );
    let _ = get;

    // PROT refused on the way: CCC is not sent, and TLS stays.
    let mut s = secured();
    let ccc = s.request(Request::ClearControl);
    assert_eq!(s.sent(), "PBSZ 0\r\n");
    s.reply("200 PBSZ=0\r\n");
    assert_eq!(s.sent(), "PROT P\r\n");
    s.reply("534 No.\r\n");
    assert_eq!(reply_code(&s.result(ccc)), Some(534));
    assert_eq!(s.sent(), "");
    assert!(s.session.is_control_secured());
}

#[test]
fn requests_queued_behind_a_failed_secure_control_are_not_sent_in_plaintext() {
    let mut s = Script::greeted();
    let auth = s.request(Request::SecureControl);
    let login = s.request(Request::Login {
        user: Text::new("alice").unwrap(),
        password: Some(Password::new("secret").unwrap()),
        account: None,
    });
    let quit = s.request(Request::Quit);
    assert_eq!(s.sent(), "AUTH TLS\r\n");
    s.reply("502 AUTH not supported\r\n");
    let completed = s.completed();
    assert_eq!(completed.len(), 2, "{completed:?}");
    assert_eq!(
        (completed[0].0, reply_code(&completed[0].1)),
        (auth, Some(502))
    );
    assert_eq!(completed[1], (login, Err(ClientError::NotProtected)));
    // The QUIT still says goodbye; no USER or PASS ever went out.
    assert_eq!(s.sent(), "QUIT\r\n");
    s.reply("221 Bye\r\n");
    assert!(s.result(quit).is_ok());
}

#[test]
fn raw_security_commands_are_refused() {
    use ftp_proto::client::UsageError;
    use ftp_proto::command::ProtectionLevel;
    let mut s = Script::greeted();
    for command in [Command::Auth(Text::new("TLS").unwrap()), Command::Ccc] {
        let refused = s.session.request(s.now, Request::Raw(command.clone()));
        assert_eq!(refused, Err(UsageError::SecurityCommand), "{command:?}");
    }
    // REIN is fine in plaintext, not once TLS is up (the server may end TLS or reset PROT).
    assert!(
        s.session
            .request(s.now, Request::Raw(Command::Rein))
            .is_ok()
    );
    let mut s = secured();
    let refused = s.session.request(s.now, Request::Raw(Command::Rein));
    assert_eq!(refused, Err(UsageError::SecurityCommand));
    assert_eq!(s.sent(), "");
    // A raw PROT (FXP sends it) is allowed, and the session follows it.
    let prot = s.request(Request::Raw(Command::Prot(ProtectionLevel::Private)));
    assert_eq!(s.sent(), "PROT P\r\n");
    s.reply("200 Data connections are protected.\r\n");
    assert!(s.result(prot).is_ok());
    assert!(s.session.is_data_protected());
}
