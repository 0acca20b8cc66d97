//! FTP over TLS (RFC 4217) on the server session: `AUTH`, `PBSZ`, `PROT`, `CCC`, `SSCN`, `CPSV`, the
//! policy that makes TLS a condition, implicit FTPS, and the order of a protected transfer's actions,
//! against the simulated driver in `sim/` (whose TLS is a flag: see `tests/harness/mod.rs`).

mod sim;

use std::time::Duration;

use bytes::Bytes;
use ftp_proto::data::{DataAction, DataCompletion, LocalAction, TlsRole};
use ftp_proto::server::{Action, Completion, Config, ConnectionInfo, TlsPolicy};
use proptest::prelude::*;
use sim::{CLIENT, LOCAL, MemoryStore, Sim, Verdict};

/// A config with this TLS policy (and defaults otherwise).
fn config(tls: TlsPolicy) -> Config {
    let mut config = Config::default();
    config.tls = tls;
    config
}

/// A session offering TLS (not requiring it), greeting taken.
fn offered() -> Sim {
    let mut s = Sim::with_config(config(TlsPolicy::offered()));
    s.take_control();
    s
}

fn policy(edit: impl FnOnce(&mut TlsPolicy)) -> Sim {
    let mut tls = TlsPolicy::offered();
    edit(&mut tls);
    let mut s = Sim::with_config(config(tls));
    s.take_control();
    s
}

/// `AUTH TLS`, its handshake done by the simulated driver.
fn secure(s: &mut Sim) {
    assert_eq!(s.cmd("AUTH TLS"), "234 Proceed with negotiation.\r\n");
    assert!(s.session.is_control_secured());
    assert!(s.control_secured);
}

/// `AUTH TLS`, login as alice, `PBSZ 0`, `PROT P`, `TYPE I`.
fn protected_login(s: &mut Sim) {
    secure(s);
    s.login_writer();
    assert_eq!(s.cmd("PBSZ 0"), "200 PBSZ=0\r\n");
    assert_eq!(s.cmd("PROT P"), "200 Data connections are protected.\r\n");
    assert!(s.session.is_data_protected());
    assert!(s.cmd("TYPE I").starts_with("200 "));
}

/// An implicit-FTPS session (TLS from the first byte), greeting taken.
fn implicit(tls: TlsPolicy) -> Sim {
    let info = ConnectionInfo {
        local: LOCAL.parse().unwrap(),
        peer: CLIENT.parse().unwrap(),
    };
    let mut s = Sim::start_implicit(
        std::sync::Arc::new(config(tls)),
        info,
        MemoryStore::sample(),
        std::time::Instant::now(),
    );
    s.run();
    s.take_control();
    s
}

/// Feeds `input` and drains the session with the plain driver, recording every action in order (the
/// replies are taken: they are in the record).
fn recorded(s: &mut Sim, input: &[u8]) -> Vec<Action> {
    s.session.handle_control_input(s.now, input);
    let mut seen = Vec::new();
    s.drain_with(|server, action| {
        seen.push(action.clone());
        server.plan(action)
    });
    s.take_control();
    seen
}

/// A short name for each action, for order checks: a reply's code, or the action's kind.
fn names(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|action| match action {
            Action::SendControl(bytes) => String::from_utf8_lossy(&bytes[..3]).into_owned(),
            Action::Data(DataAction::Connect { tls, .. }) => format!("Connect {tls:?}"),
            Action::Data(DataAction::Accept { tls, .. }) => format!("Accept {tls:?}"),
            Action::Data(DataAction::Secure { role, .. }) => format!("Secure {role:?}"),
            Action::Data(DataAction::Send { .. }) => "Send".to_owned(),
            Action::Data(DataAction::Receive { .. }) => "Receive".to_owned(),
            Action::Data(DataAction::Close { .. }) => "Close".to_owned(),
            Action::Data(DataAction::Listen { .. }) => "Listen".to_owned(),
            Action::Local(LocalAction::Read { .. }) => "Read".to_owned(),
            Action::Local(LocalAction::Write { .. }) => "Write".to_owned(),
            Action::Local(LocalAction::Close { .. }) => "LocalClose".to_owned(),
            Action::Storage { .. } => "Storage".to_owned(),
            Action::SecureControl { .. } => "SecureControl".to_owned(),
            Action::ClearControl => "ClearControl".to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn position(names: &[String], name: &str) -> usize {
    names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no {name} in {names:?}"))
}

// ---- TLS not offered ----

#[test]
fn without_tls_auth_ccc_sscn_and_cpsv_get_502_and_pbsz_prot_503() {
    let mut s = Sim::new();
    s.take_control();
    assert!(s.cmd("AUTH TLS").starts_with("502 "));
    assert_eq!(s.handshakes, 0);
    assert!(s.cmd("CCC").starts_with("502 "));
    assert!(s.cmd("PBSZ 0").starts_with("503 "));
    assert!(s.cmd("PROT P").starts_with("503 "));
    s.login_anonymous();
    assert!(s.cmd("SSCN ON").starts_with("502 "));
    assert!(s.cmd("CPSV").starts_with("502 "));
    assert!(s.listeners.is_empty(), "a refused CPSV binds nothing");
    let feat = s.cmd("FEAT");
    for line in ["AUTH", "PBSZ", "PROT", "SSCN", "CCC"] {
        assert!(
            !feat.contains(line),
            "FEAT lists {line} without TLS: {feat}"
        );
    }
}

// ---- AUTH ----

#[test]
fn auth_tls_answers_234_then_asks_for_the_handshake() {
    let mut s = offered();
    s.session.handle_control_input(s.now, b"AUTH TLS\r\n");
    let reply = s.session.poll_action();
    assert_eq!(
        reply,
        Some(Action::SendControl(Bytes::from_static(
            b"234 Proceed with negotiation.\r\n"
        )))
    );
    let Some(Action::SecureControl { id }) = s.session.poll_action() else {
        panic!("the 234 is followed by SecureControl");
    };
    assert_eq!(s.session.poll_action(), None);
    assert!(!s.session.is_control_secured(), "not before the handshake");
    assert_eq!(s.session.poll_timeout(), s.session.poll_timeout());
    s.complete(s.now, id, Completion::ControlSecured);
    assert!(s.session.is_control_secured());
    assert!(!s.session.is_data_protected(), "AUTH TLS leaves PROT C");
    assert_eq!(s.session.poll_action(), None);
    assert!(s.cmd("NOOP").starts_with("200 "));
}

#[test]
fn auth_mechanisms() {
    for (mechanism, protects_data) in [
        ("TLS", false),
        ("TLS-C", false),
        ("tls", false),
        ("SSL", true),
        ("TLS-P", true),
    ] {
        let mut s = offered();
        let out = s.cmd(&format!("AUTH {mechanism}"));
        assert_eq!(out, "234 Proceed with negotiation.\r\n", "{mechanism}");
        assert!(s.session.is_control_secured(), "{mechanism}");
        assert_eq!(s.session.is_data_protected(), protects_data, "{mechanism}");
    }
    let mut s = offered();
    assert!(s.cmd("AUTH GSSAPI").starts_with("504 "));
    assert!(s.cmd("AUTH KERBEROS_V4").starts_with("504 "));
    assert_eq!(s.handshakes, 0);
    assert!(!s.session.is_control_secured());
}

#[test]
fn auth_once_secured_is_503() {
    let mut s = offered();
    secure(&mut s);
    assert!(s.cmd("AUTH TLS").starts_with("503 "));
    assert_eq!(s.handshakes, 1);
    let mut s = implicit(TlsPolicy::offered());
    assert!(s.cmd("AUTH TLS").starts_with("503 "));
    assert_eq!(s.handshakes, 0);
}

#[test]
fn auth_between_user_and_pass_is_503_and_the_login_goes_on() {
    let mut s = offered();
    assert!(s.cmd("USER alice").starts_with("331 "));
    assert!(s.cmd("AUTH TLS").starts_with("503 "));
    assert_eq!(s.handshakes, 0);
    assert!(s.cmd("PASS secret").starts_with("230 "));
}

#[test]
fn auth_after_login_is_accepted() {
    let mut s = offered();
    s.login_writer();
    secure(&mut s);
    assert_eq!(s.session.user(), Some("alice"));
    assert!(s.cmd("PWD").starts_with("257 "));
}

// ---- what the client sent before the handshake is never read ----

#[test]
fn commands_pipelined_behind_auth_are_dropped() {
    let mut s = offered();
    s.session
        .handle_control_input(s.now, b"AUTH TLS\r\nUSER alice\r\nPASS secret\r\n");
    let actions: Vec<Action> = std::iter::from_fn(|| s.session.poll_action()).collect();
    assert_eq!(names(&actions), ["234", "SecureControl"], "{actions:?}");
    let Action::SecureControl { id } = actions[1] else {
        unreachable!()
    };
    s.complete(s.now, id, Completion::ControlSecured);
    assert_eq!(s.session.poll_action(), None, "USER is never answered");
    assert_eq!(s.session.user(), None);
    assert_eq!(s.session.buffered_input_len(), 0);
    // The login works once it comes over TLS.
    s.login_writer();
}

#[test]
fn a_partial_line_before_the_handshake_is_dropped_too() {
    let mut s = offered();
    s.input(b"AUTH TLS\r\nUSE");
    assert_eq!(s.take_control(), "234 Proceed with negotiation.\r\n");
    assert!(s.session.is_control_secured());
    // Were "USE" kept, this would complete "USER alice".
    assert!(s.cmd("R alice").starts_with("500 "));
    assert_eq!(s.session.user(), None);
}

#[test]
fn lines_queued_before_auth_are_dropped_with_it() {
    let mut s = offered();
    let actions = recorded(&mut s, b"NOOP\r\nAUTH TLS\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(names(&actions), ["200", "234", "SecureControl"]);
    assert!(!s.closed, "the QUIT behind AUTH was dropped");
}

#[test]
fn input_during_the_handshake_is_ignored() {
    let mut s = offered();
    s.hold_handshake = true;
    assert_eq!(s.cmd("AUTH TLS"), "234 Proceed with negotiation.\r\n");
    assert!(s.handshake_held());
    // What reaches the session now was not decrypted by the handshake: never commands.
    for input in [
        &b"USER alice\r\nPASS secret\r\n"[..],
        b"QUIT\r\n",
        b"partial",
    ] {
        s.input(input);
        assert_eq!(s.take_control(), "");
        assert_eq!(s.session.buffered_input_len(), 0);
    }
    assert!(!s.closed);
    s.release();
    assert!(s.session.is_control_secured());
    assert_eq!(s.take_control(), "", "nothing from before is answered");
    assert!(s.cmd("USER alice").starts_with("331 "));
}

#[test]
fn control_eof_during_the_handshake_ends_the_session() {
    let mut s = offered();
    s.hold_handshake = true;
    s.cmd("AUTH TLS");
    s.session.handle_control_eof();
    s.run();
    assert!(s.is_closed());
    // The handshake's late answer finds a closed session.
    let Some(Action::SecureControl { id }) = s.stalled.pop() else {
        panic!("no held handshake");
    };
    assert_eq!(
        s.session
            .handle_completion(s.now, id, Completion::ControlSecured),
        Ok(())
    );
    assert!(s.session.poll_action().is_none());
}

#[test]
fn a_wrong_answer_to_the_handshake_is_turned_away() {
    let mut s = offered();
    s.hold_handshake = true;
    s.cmd("AUTH TLS");
    let Some(Action::SecureControl { id }) = s.stalled.pop() else {
        panic!("no held handshake");
    };
    for wrong in [
        Completion::Done,
        DataCompletion::Secured { resumed: true }.into(),
        DataCompletion::Written.into(),
    ] {
        let mistake = s.session.handle_completion(s.now, id, wrong).unwrap_err();
        assert_eq!(mistake.id, id);
    }
    assert!(!s.session.is_control_secured());
    assert_eq!(s.session.poll_action(), None);
    s.complete(s.now, id, Completion::ControlSecured);
    assert!(s.session.is_control_secured());
}

#[test]
fn the_login_deadline_still_runs_during_the_handshake() {
    let mut s = offered();
    s.hold_handshake = true;
    s.cmd("AUTH TLS");
    s.advance(Duration::from_secs(61));
    assert!(s.take_control().starts_with("421 "));
    assert!(s.is_closed());
}

// ---- PBSZ and PROT ----

#[test]
fn pbsz_and_prot_come_after_auth_in_that_order() {
    let mut s = offered();
    assert!(s.cmd("PBSZ 0").starts_with("503 "));
    assert!(s.cmd("PROT P").starts_with("503 "));
    secure(&mut s);
    assert!(s.cmd("PROT P").starts_with("503 "), "PROT before PBSZ");
    assert!(!s.session.is_data_protected());
    assert_eq!(s.cmd("PBSZ 0"), "200 PBSZ=0\r\n");
    assert_eq!(
        s.cmd("PBSZ 16384"),
        "200 PBSZ=0\r\n",
        "TLS has no buffer size"
    );
    assert_eq!(s.cmd("PROT P"), "200 Data connections are protected.\r\n");
    assert!(s.session.is_data_protected());
    assert!(s.cmd("PROT S").starts_with("536 "));
    assert!(s.cmd("PROT E").starts_with("536 "));
    assert!(
        s.session.is_data_protected(),
        "a refused level changes nothing"
    );
    assert_eq!(
        s.cmd("PROT C"),
        "200 Data connections are not protected.\r\n"
    );
    assert!(!s.session.is_data_protected());
    assert!(s.cmd("PROT X").starts_with("50"), "not a level");
}

// ---- CCC ----

#[test]
fn ccc_needs_tls_and_the_policy() {
    let mut s = offered();
    assert!(s.cmd("CCC").starts_with("503 "), "nothing to clear");
    secure(&mut s);
    assert!(s.cmd("CCC").starts_with("533 "), "refused by default");
    assert!(s.session.is_control_secured());
    assert_eq!(s.control_clears, 0);

    let mut s = policy(|p| p.allow_clear_control = true);
    secure(&mut s);
    s.login_writer();
    assert_eq!(s.cmd("PBSZ 0"), "200 PBSZ=0\r\n");
    assert!(s.cmd("PROT P").starts_with("200 "));
    let actions = recorded(&mut s, b"CCC\r\n");
    assert_eq!(names(&actions), ["200", "ClearControl"]);
    assert!(!s.session.is_control_secured());
    assert!(!s.control_secured);
    assert!(s.session.is_data_protected(), "data stays protected");
    assert_eq!(s.session.user(), Some("alice"), "still logged in");
    let again = s.cmd("CCC");
    assert!(again.starts_with("503 "), "already plaintext: {again:?}");
}

/// `CCC` between `USER` and `PASS` would send the password in the clear on a server that requires TLS
/// for logins; like `AUTH` there, it is refused.
#[test]
fn ccc_between_user_and_pass_is_refused() {
    let mut s = policy(|p| {
        p.required_for_login = true;
        p.allow_clear_control = true;
    });
    secure(&mut s);
    assert!(s.cmd("USER alice").starts_with("331 "));
    assert!(s.cmd("CCC").starts_with("503 "));
    assert!(s.session.is_control_secured());
    assert_eq!(s.control_clears, 0);
    assert!(s.cmd("PASS secret").starts_with("230 "));
}

// ---- SSCN and CPSV ----

#[test]
fn sscn_reports_and_switches_the_data_connections_tls_role() {
    let mut s = fxp_user();
    assert_eq!(s.cmd("SSCN"), "200 SSCN:SERVER METHOD\r\n");
    assert_eq!(s.cmd("SSCN ON"), "200 SSCN:CLIENT METHOD\r\n");
    assert_eq!(s.cmd("SSCN"), "200 SSCN:CLIENT METHOD\r\n");
    assert_eq!(s.cmd("SSCN OFF"), "200 SSCN:SERVER METHOD\r\n");
    assert!(s.cmd("SSCN MAYBE").starts_with("501 "));
}

/// A session offering TLS whose user `alice` may do FXP, logged in over TLS with `PROT P`.
fn fxp_user() -> Sim {
    let mut cfg = config(TlsPolicy::offered());
    cfg.allow_foreign_data_address = true;
    let mut s = Sim::with_config(cfg);
    s.take_control();
    protected_login(&mut s);
    s
}

#[test]
fn sscn_on_and_cpsv_are_only_for_users_allowed_fxp() {
    // As the TLS client the server cannot check that its peer resumed the control connection's
    // session: for anyone else, a stranger reaching the port first would get the file.
    let mut s = offered();
    protected_login(&mut s);
    assert!(s.cmd("SSCN ON").starts_with("534 "));
    assert!(s.cmd("CPSV").starts_with("534 "));
    assert_eq!(s.cmd("SSCN"), "200 SSCN:SERVER METHOD\r\n");
    assert_eq!(s.cmd("SSCN OFF"), "200 SSCN:SERVER METHOD\r\n");
    let mut s = offered();
    s.login_anonymous();
    assert!(s.cmd("SSCN ON").starts_with("534 "));
}

#[test]
fn cpsv_makes_the_server_the_tls_client_of_the_next_transfer_only() {
    let mut s = fxp_user();
    assert!(s.cmd("CPSV").starts_with("227 "));
    assert_eq!(s.cmd("SSCN"), "200 SSCN:CLIENT METHOD\r\n");
    // As the TLS client the server cannot check resumption: a fresh session is fine.
    s.tls_resumed = false;
    let out = s.cmd("RETR /pub/data.bin");
    assert!(out.ends_with("226 Transfer complete.\r\n"), "{out}");
    assert_eq!(s.data_tls, [Some(TlsRole::Client)]);
    assert_eq!(s.data_secures, [TlsRole::Client]);
    assert_eq!(s.take_data(), (0..=255u8).collect::<Vec<_>>());
    // CPSV was for that one transfer: the next is the TLS server again (and requires reuse).
    assert_eq!(s.cmd("SSCN"), "200 SSCN:SERVER METHOD\r\n");
    s.tls_resumed = true;
    assert!(s.cmd("PASV").starts_with("227 "));
    let out = s.cmd("RETR /pub/data.bin");
    assert!(out.ends_with("226 Transfer complete.\r\n"), "{out}");
    assert_eq!(s.data_secures, [TlsRole::Client, TlsRole::Server]);
    // With SSCN ON in force, CPSV leaves it on.
    assert_eq!(s.cmd("SSCN ON"), "200 SSCN:CLIENT METHOD\r\n");
    assert!(s.cmd("CPSV").starts_with("227 "));
    s.cmd("RETR /pub/data.bin");
    assert_eq!(s.cmd("SSCN"), "200 SSCN:CLIENT METHOD\r\n");
}

// ---- protected transfers ----

#[test]
fn a_protected_passive_download_connects_replies_150_then_secures_then_moves_bytes() {
    let mut s = offered();
    protected_login(&mut s);
    assert!(s.cmd("PASV").starts_with("227 "));
    let actions = recorded(&mut s, b"RETR /pub/data.bin\r\n");
    let order = names(&actions);
    let accept = position(&order, "Accept Some(Server)");
    let opening = position(&order, "150");
    let secure = position(&order, "Secure Server");
    let first_send = position(&order, "Send");
    assert!(accept < opening, "{order:?}");
    assert_eq!(secure, opening + 1, "Secure right after the 150: {order:?}");
    assert!(secure < first_send, "{order:?}");
    assert!(!order[..secure].iter().any(|n| n == "Read"), "{order:?}");
    assert_eq!(order.last().map(String::as_str), Some("226"));
    assert_eq!(s.take_data(), (0..=255u8).collect::<Vec<_>>());
    assert_eq!(s.data_secures, [TlsRole::Server]);
}

#[test]
fn a_protected_active_upload_connects_replies_150_then_secures_then_receives() {
    let mut s = offered();
    protected_login(&mut s);
    assert!(s.cmd("PORT 127,0,0,1,200,10").starts_with("200 "));
    s.upload = [&b"protected "[..], b"bytes"]
        .into_iter()
        .map(Bytes::from_static)
        .collect();
    let actions = recorded(&mut s, b"STOR /upload/p.txt\r\n");
    let order = names(&actions);
    let connect = position(&order, "Connect Some(Server)");
    let opening = position(&order, "150");
    let secure = position(&order, "Secure Server");
    let first_receive = position(&order, "Receive");
    assert!(connect < opening && opening + 1 == secure && secure < first_receive);
    assert_eq!(order.last().map(String::as_str), Some("226"));
    assert_eq!(s.file("/upload/p.txt"), Some(&b"protected bytes"[..]));
}

#[test]
fn protected_listings() {
    let mut s = offered();
    protected_login(&mut s);
    for verb in ["LIST", "NLST", "MLSD"] {
        s.cmd("EPSV");
        let out = s.cmd(&format!("{verb} /pub"));
        assert!(out.starts_with("150 ") && out.ends_with("226 Directory send OK.\r\n"));
        assert!(
            String::from_utf8(s.take_data())
                .unwrap()
                .contains("readme.txt")
        );
    }
    assert_eq!(s.data_tls, [Some(TlsRole::Server); 3]);
    assert_eq!(s.data_secures, [TlsRole::Server; 3]);
}

#[test]
fn a_data_connection_that_did_not_resume_the_tls_session_gets_425_and_the_session_goes_on() {
    let mut s = offered();
    protected_login(&mut s);
    s.tls_resumed = false;
    s.cmd("PASV");
    assert_eq!(
        s.cmd("RETR /pub/data.bin"),
        "150 Opening BINARY mode data connection for /pub/data.bin (256 bytes).\r\n\
         425 TLS session of data connection not resumed.\r\n"
    );
    assert!(s.take_data().is_empty(), "not a byte to the stranger");
    assert_eq!(s.data_closes, [true], "the connection is reset");
    assert_eq!(s.listener_closes, [true]);
    assert!(s.connections.is_empty() && s.listeners.is_empty());
    assert_eq!(s.store.file_closes, [true], "the file is let go of");
    assert!(s.cmd("NOOP").starts_with("200 "));
    // The next, resumed, connection works.
    s.tls_resumed = true;
    s.cmd("PASV");
    assert!(
        s.cmd("RETR /pub/data.bin")
            .ends_with("226 Transfer complete.\r\n")
    );
    assert_eq!(s.take_data().len(), 256);
}

#[test]
fn an_upload_whose_data_connection_did_not_resume_stores_nothing() {
    let mut s = offered();
    protected_login(&mut s);
    s.tls_resumed = false;
    s.upload = [Bytes::from_static(b"injected")].into_iter().collect();
    s.cmd("PASV");
    let out = s.cmd("STOR /upload/x");
    assert!(
        out.ends_with("425 TLS session of data connection not resumed.\r\n"),
        "{out}"
    );
    assert_eq!(s.file("/upload/x"), Some(&b""[..]), "opened, never written");
}

#[test]
fn without_required_session_reuse_a_fresh_tls_session_is_accepted() {
    let mut s = policy(|p| p.require_session_reuse = false);
    protected_login(&mut s);
    s.tls_resumed = false;
    s.cmd("PASV");
    assert!(
        s.cmd("RETR /pub/data.bin")
            .ends_with("226 Transfer complete.\r\n")
    );
}

#[test]
fn a_failed_data_handshake_is_425() {
    let mut s = offered();
    protected_login(&mut s);
    s.fail_secure = true;
    s.cmd("PASV");
    let out = s.cmd("RETR /pub/data.bin");
    assert!(out.starts_with("150 "));
    assert!(
        out.ends_with("425 Failed to establish data connection.\r\n"),
        "{out}"
    );
    assert!(s.cmd("NOOP").starts_with("200 "));
}

/// `PASV` and `command` (a protected download), the driver holding the data connection's `Secure`
/// in `s.stalled`: the transfer waits in its handshake.
fn start_with_the_handshake_held(s: &mut Sim, command: &str) {
    s.cmd("PASV");
    let line = format!("{command}\r\n");
    s.session.handle_control_input(s.now, line.as_bytes());
    s.drain_with(|server, action| match action {
        Action::Data(DataAction::Secure { .. }) => Verdict::Hold,
        _ => server.plan(action),
    });
}

#[test]
fn a_data_handshake_that_never_ends_times_out_with_425() {
    let mut s = offered();
    protected_login(&mut s);
    start_with_the_handshake_held(&mut s, "RETR /pub/data.bin");
    assert!(s.take_control().starts_with("150 "));
    s.advance(Duration::from_secs(61));
    assert_eq!(
        s.take_control(),
        "425 Failed to establish data connection.\r\n"
    );
    assert_eq!(s.data_closes, [true]);
    assert!(s.cmd("NOOP").starts_with("200 "));
    // The handshake's late answer is ignored.
    let Some(Action::Data(DataAction::Secure { id, .. })) = s.stalled.pop() else {
        panic!("no held Secure");
    };
    let late = DataCompletion::Secured { resumed: true }.into();
    assert_eq!(s.session.handle_completion(s.now, id, late), Ok(()));
    assert_eq!(s.session.poll_action(), None);
}

/// Found by the `server_session` fuzz target: a chunk handed to the session while its data connection
/// was being secured (never asked for: a driver's mistake, a read ahead) went straight out as a `Send`,
/// before the TLS handshake. Chunks are taken only once bytes flow.
#[test]
fn a_chunk_handed_over_during_the_data_handshake_is_dropped() {
    let mut s = offered();
    protected_login(&mut s);
    start_with_the_handshake_held(&mut s, "RETR /pub/readme.txt");
    let Some(secure @ Action::Data(DataAction::Secure { id, .. })) = s.stalled.pop() else {
        panic!("no held Secure");
    };
    s.session
        .handle_data(s.now, id, Bytes::from_static(b"read ahead"));
    assert_eq!(
        s.session.poll_action(),
        None,
        "nothing is sent before the handshake"
    );
    // The simulated driver answers the handshake (Secured, resumed) and serves the transfer.
    s.answer(secure);
    s.run();
    assert!(s.take_control().ends_with("226 Transfer complete.\r\n"));
    assert_eq!(s.take_data(), b"line one\nline two\n");
}

#[test]
fn abor_while_the_data_connection_is_securing() {
    let mut s = offered();
    protected_login(&mut s);
    start_with_the_handshake_held(&mut s, "RETR /pub/data.bin");
    assert!(s.take_control().starts_with("150 "));
    let out = s.cmd("ABOR");
    assert!(out.starts_with("426 ") && out.ends_with("226 Abort successful.\r\n"));
    assert!(s.cmd("NOOP").starts_with("200 "));
}

#[test]
fn a_secured_answer_out_of_turn_is_turned_away() {
    let mut s = offered();
    protected_login(&mut s);
    s.cmd("PASV");
    s.stall_accept = true;
    s.cmd("RETR /pub/data.bin");
    let Some(Action::Data(DataAction::Accept { id, .. })) = s.stalled.pop() else {
        panic!("no held Accept");
    };
    let early = DataCompletion::Secured { resumed: true }.into();
    assert!(s.session.handle_completion(s.now, id, early).is_err());
    assert_eq!(s.session.poll_action(), None);
}

// ---- the policy ----

#[test]
fn tls_required_for_login_refuses_user_in_plaintext() {
    let mut s = Sim::with_config(config(TlsPolicy::required()));
    s.take_control();
    assert!(s.cmd("USER alice").starts_with("530 "));
    assert!(s.cmd("PASS secret").starts_with("503 "), "USER was refused");
    assert!(s.cmd("USER anonymous").starts_with("530 "), "not exempt");
    secure(&mut s);
    s.login_writer();
}

#[test]
fn anonymous_users_may_be_exempt() {
    let mut s = policy(|p| {
        p.required_for_login = true;
        p.required_for_data = true;
        p.anonymous_exempt = true;
    });
    assert!(
        s.cmd("USER alice").starts_with("530 "),
        "only anonymous is exempt"
    );
    s.login_anonymous();
    s.cmd("PASV");
    assert!(
        s.cmd("RETR /pub/data.bin")
            .ends_with("226 Transfer complete.\r\n")
    );
    assert_eq!(s.data_tls, [None]);
}

#[test]
fn tls_required_for_data_refuses_prot_c_transfers_with_521() {
    let mut s = Sim::with_config(config(TlsPolicy::required()));
    s.take_control();
    secure(&mut s);
    s.login_writer();
    s.cmd("PASV");
    let out = s.cmd("RETR /pub/data.bin");
    assert!(out.starts_with("521 "), "{out}");
    assert!(
        s.storage_requests.is_empty(),
        "refused before the file is opened"
    );
    s.cmd("PBSZ 0");
    s.cmd("PROT P");
    assert!(s.cmd("LIST /pub").ends_with("226 Directory send OK.\r\n"));
    assert_eq!(
        s.cmd("PROT C"),
        "200 Data connections are not protected.\r\n"
    );
    s.cmd("PASV");
    assert!(s.cmd("NLST").starts_with("521 "));
    assert!(s.cmd("NOOP").starts_with("200 "));
}

#[test]
fn required_for_data_alone_lets_a_plaintext_login_in() {
    let mut s = policy(|p| p.required_for_data = true);
    s.login_writer();
    s.cmd("PASV");
    assert!(s.cmd("STOR /upload/x").starts_with("521 "));
}

// ---- implicit FTPS ----

#[test]
fn an_implicit_tls_session_is_secured_and_protected_from_the_start() {
    let mut s = implicit(TlsPolicy::required());
    assert!(s.session.is_control_secured());
    assert!(s.session.is_data_protected());
    s.login_writer();
    s.cmd("TYPE I");
    s.cmd("EPSV");
    assert!(
        s.cmd("RETR /pub/data.bin")
            .ends_with("226 Transfer complete.\r\n")
    );
    assert_eq!(s.data_tls, [Some(TlsRole::Server)]);
    assert_eq!(s.data_secures, [TlsRole::Server]);
    assert_eq!(
        s.handshakes, 0,
        "the driver ran the handshake before the session"
    );
    // PROT C needs no PBSZ here; then the policy refuses the transfer.
    assert!(s.cmd("PROT C").starts_with("200 "));
    s.cmd("EPSV");
    assert!(s.cmd("LIST").starts_with("521 "));
}

// ---- REIN ----

#[test]
fn rein_on_a_protected_control_connection_is_502_by_default() {
    let mut s = offered();
    protected_login(&mut s);
    assert!(s.cmd("REIN").starts_with("502 "));
    assert_eq!(s.session.user(), Some("alice"), "still logged in");
    assert!(s.session.is_control_secured() && s.session.is_data_protected());
    assert_eq!(s.control_clears, 0);
}

#[test]
fn rein_allowed_to_clear_the_control_connection_starts_over_in_plaintext() {
    let mut s = policy(|p| p.allow_clear_control = true);
    protected_login(&mut s);
    let actions = recorded(&mut s, b"REIN\r\n");
    assert_eq!(names(&actions), ["220", "ClearControl"]);
    assert!(!s.session.is_control_secured());
    assert!(!s.session.is_data_protected());
    assert_eq!(s.session.user(), None);
    let pbsz = s.cmd("PBSZ 0");
    assert!(
        pbsz.starts_with("503 "),
        "a new connection's state: {pbsz:?}"
    );
    // And it may secure itself again.
    secure(&mut s);
    assert_eq!(s.handshakes, 2);
}

#[test]
fn rein_on_a_plaintext_connection_needs_no_clear_control() {
    let mut s = offered();
    s.login_writer();
    let actions = recorded(&mut s, b"REIN\r\n");
    assert_eq!(names(&actions), ["220"]);
}

// ---- FEAT ----

fn feature_lines(s: &mut Sim) -> Vec<String> {
    s.cmd("FEAT")
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn feat_lists_tls_when_offered_and_ccc_only_when_allowed() {
    let mut s = offered();
    let lines = feature_lines(&mut s);
    for line in ["AUTH TLS", "PBSZ", "PROT", "SSCN"] {
        assert!(lines.iter().any(|l| l == line), "{line} missing: {lines:?}");
    }
    assert!(!lines.iter().any(|l| l == "CCC"), "{lines:?}");
    let mut s = policy(|p| p.allow_clear_control = true);
    let lines = feature_lines(&mut s);
    assert!(lines.iter().any(|l| l == "CCC"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "AUTH TLS"), "{lines:?}");
}

// ---- arbitrary conversations ----

/// Command lines for the proptest: the TLS commands, logins, transfers and their set-up.
const COMMANDS: &[&str] = &[
    "AUTH TLS",
    "AUTH SSL",
    "AUTH TLS-P",
    "AUTH XYZ",
    "PBSZ 0",
    "PROT P",
    "PROT C",
    "PROT S",
    "CCC",
    "SSCN ON",
    "SSCN OFF",
    "SSCN",
    "CPSV",
    "REIN",
    "USER alice",
    "PASS secret",
    "USER anonymous",
    "PASS x",
    "PASV",
    "EPSV",
    "PORT 127,0,0,1,200,10",
    "RETR /pub/data.bin",
    "STOR /upload/f",
    "LIST /pub",
    "FEAT",
    "NOOP",
    "ABOR",
];

/// One step: a command (alone, or with the next pipelined in the same chunk), a change in how the
/// simulated driver answers TLS handshakes, or time.
#[derive(Clone, Debug)]
enum TlsStep {
    Command(usize),
    Pipelined(usize, usize),
    Resumed(bool),
    FailSecure(bool),
    HoldHandshake(bool),
    Advance(u64),
}

fn tls_step() -> impl Strategy<Value = TlsStep> {
    prop_oneof![
        8 => (0..COMMANDS.len()).prop_map(TlsStep::Command),
        2 => (0..COMMANDS.len(), 0..COMMANDS.len()).prop_map(|(a, b)| TlsStep::Pipelined(a, b)),
        1 => any::<bool>().prop_map(TlsStep::Resumed),
        1 => any::<bool>().prop_map(TlsStep::FailSecure),
        1 => any::<bool>().prop_map(TlsStep::HoldHandshake),
        1 => (0u64..90).prop_map(TlsStep::Advance),
    ]
}

proptest! {
    /// Any mix of TLS and other commands, under any policy, with data handshakes that resume or not,
    /// fail or hang: no panic, the simulated driver's own checks hold (no bytes on a protected data
    /// connection before its handshake, `Secure` only on an open connection in its role), and the
    /// session still answers (or has closed with 421).
    #[test]
    fn tls_commands_never_break_the_session(
        steps in proptest::collection::vec(tls_step(), 0..40),
        bits in any::<u8>(),
        implicit_tls in any::<bool>(),
    ) {
        let mut tls = TlsPolicy::offered();
        tls.required_for_login = bits & 1 != 0;
        tls.required_for_data = bits & 2 != 0;
        tls.anonymous_exempt = bits & 4 != 0;
        tls.require_session_reuse = bits & 8 == 0;
        tls.allow_clear_control = bits & 16 != 0;
        tls.offered = bits & 32 == 0;
        let mut s = if implicit_tls { implicit(tls) } else {
            let mut s = Sim::with_config(config(tls));
            s.take_control();
            s
        };
        for step in steps {
            match step {
                TlsStep::Command(i) => { s.cmd(COMMANDS[i]); }
                TlsStep::Pipelined(a, b) => {
                    s.input(format!("{}\r\n{}\r\n", COMMANDS[a], COMMANDS[b]).as_bytes());
                }
                TlsStep::Resumed(on) => s.tls_resumed = on,
                TlsStep::FailSecure(on) => s.fail_secure = on,
                TlsStep::HoldHandshake(on) => {
                    s.hold_handshake = on;
                    if !on {
                        s.release_stalled();
                    }
                }
                TlsStep::Advance(secs) => s.advance(Duration::from_secs(secs)),
            }
            if s.is_closed() {
                break;
            }
            // The driver's view of the control connection's TLS is the session's, once no handshake
            // is held.
            if !s.handshake_held() {
                prop_assert_eq!(s.control_secured, s.session.is_control_secured());
            }
        }
        s.release();
        // Let queued input run first (failed logins wait out their delay; an AUTH among it drops what
        // follows it, by design), then ask.
        for _ in 0..4 {
            s.advance(Duration::from_secs(2));
        }
        s.take_control();
        s.input(b"NOOP\r\n");
        let mut out = s.take_control();
        for _ in 0..4 {
            s.advance(Duration::from_secs(2));
            out.push_str(&s.take_control());
        }
        prop_assert!(s.is_closed() || out.ends_with("200 NOOP ok.\r\n"), "{}", out);
    }
}

#[test]
fn rein_on_an_implicit_tls_session_keeps_tls_and_data_protection() {
    let mut s = implicit(TlsPolicy::offered());
    s.login_writer();
    assert!(s.cmd("PROT C").starts_with("200 "));
    let actions = recorded(&mut s, b"REIN\r\n");
    // A new implicit connection is TLS with PROT P: that is the state REIN returns to.
    assert_eq!(names(&actions), ["220"]);
    assert!(s.session.is_control_secured());
    assert!(s.session.is_data_protected());
    assert_eq!(s.session.user(), None);
    assert_eq!(s.control_clears, 0);
}

#[test]
fn a_user_allowed_fxp_needs_no_session_reuse_on_data_connections() {
    // The other end of a secure FXP copy is another server, which cannot resume this control
    // connection's session; such a user's passive connections may come from anywhere anyway.
    let mut s = fxp_user();
    assert_eq!(
        s.session.grant().map(|g| g.foreign_data_address),
        Some(true)
    );
    s.tls_resumed = false;
    assert!(s.cmd("PASV").starts_with("227 "));
    let out = s.cmd("RETR /pub/data.bin");
    assert!(out.ends_with("226 Transfer complete.\r\n"), "{out}");
    assert_eq!(s.take_data(), (0..=255u8).collect::<Vec<_>>());
}
