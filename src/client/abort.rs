//! Aborting the request in progress with `ABOR` (RFC 959 §4.1.3).
//!
//! RFC 959 gives the server two ways to answer `ABOR`: if the aborted command was still running, `426`
//! (for it) and then `226` (for `ABOR`); if it had already completed, just `226` (many servers say `225`).
//! But the client cannot know which case the server saw: the transfer's own final `226` may cross the
//! `ABOR` on the wire, and then the server owes `226` (transfer) and `225`/`226` (abort), which looks the
//! same as the first case's second half. Guessing wrong would pair every later reply with the wrong
//! command.
//!
//! So when a reply to the aborted command may still be owed, the session sends `NOOP` right after `ABOR`
//! as a sentinel: every reply before `NOOP`'s `200` belongs to the abort, whichever case occurred, and the
//! one just before it is the answer to `ABOR`. When nothing else is owed, one reply answers `ABOR`.

use std::time::Instant;

use crate::command::Command;
use crate::reply::{Reply, ReplyCode};

use super::Session;
use super::io::{ClientError, Outcome, ProtocolError, RequestId};
use super::ops::{Current, Flow, Op};

/// Whether and how the current request is being aborted.
#[derive(Debug)]
pub(super) enum AbortState {
    /// No abort.
    None,
    /// The user asked (request `.0`), but the server has nothing to abort yet: start when it has, or cancel
    /// at the next step.
    Requested(RequestId),
    /// `ABOR` is sent.
    Running(Box<AbortExchange>),
}

impl AbortState {
    pub(super) fn is_running(&self) -> bool {
        matches!(self, AbortState::Running(_))
    }

    pub(super) fn is_requested(&self) -> bool {
        matches!(self, AbortState::Requested(_))
    }

    /// The user's `Abort` request waiting on this one, if any.
    pub(super) fn request_id(&self) -> Option<RequestId> {
        match self {
            AbortState::None => None,
            AbortState::Requested(id) => Some(*id),
            AbortState::Running(exchange) => exchange.id,
        }
    }
}

/// An `ABOR` on the wire, waiting for its replies.
#[derive(Debug)]
pub(super) struct AbortExchange {
    /// The user's `Abort` request; `None` when the session aborts by itself (a broken data connection).
    pub(super) id: Option<RequestId>,
    /// What the aborted request completes with.
    op_error: ClientError,
    /// `NOOP` was sent after `ABOR`.
    sentinel: bool,
    /// Final replies received since `ABOR`.
    finals: usize,
    /// The final reply before the latest one (with a sentinel, the answer to `ABOR` once `NOOP`'s arrives).
    previous: Option<Reply>,
    /// With a sentinel, the first final reply: the aborted command's own answer.
    first: Option<Reply>,
    /// The `Abort` request's result, once known.
    pub(super) result: Option<Result<Outcome, ClientError>>,
}

impl Session {
    /// Handles [`Request::Abort`](super::Request::Abort) when something is in progress that it may
    /// overtake. Returns the abort's id, or `None` if it should simply be queued.
    pub(super) fn abort_current(&mut self, now: Instant) -> Option<RequestId> {
        let current = self.current.as_ref()?;
        let can_wait = match &current.op {
            Op::Transfer(_) | Op::Raw { .. } => matches!(current.abort, AbortState::None),
            Op::Login(_)
            | Op::Rename { .. }
            | Op::Single(_)
            | Op::Quit
            | Op::SecureControl(_)
            | Op::ClearControl(_) => false,
        };
        if !can_wait {
            return None;
        }
        let id = self.next_id();
        let mut current = self.current.take()?;
        if current.op.is_abortable() {
            self.start_abort(now, &mut current, Some(id), ClientError::Aborted);
            self.current = Some(current);
        } else {
            current.abort = AbortState::Requested(id);
            if self.outstanding == 0 {
                // Nothing asked of the server yet (an active-mode listener being bound): cancel now; the
                // `ABOR` then goes in its own turn.
                self.finish(now, current, Err(ClientError::Aborted));
            } else {
                self.current = Some(current);
            }
        }
        Some(id)
    }

    /// Sends `ABOR` (and the `NOOP` sentinel if a reply may still be owed), closes the data connection and
    /// gives up the transfer's local end.
    pub(super) fn start_abort(
        &mut self,
        now: Instant,
        current: &mut Current,
        id: Option<RequestId>,
        op_error: ClientError,
    ) {
        if let Op::Transfer(transfer) = &mut current.op {
            self.close_transfer(current.id, transfer);
        }
        let sentinel = self.outstanding > 0;
        self.send(now, &Command::Abor);
        if sentinel {
            self.send(now, &Command::Noop);
        }
        current.abort = AbortState::Running(Box::new(AbortExchange {
            id,
            op_error,
            sentinel,
            finals: 0,
            previous: None,
            first: None,
            result: None,
        }));
    }

    /// A reply while `ABOR` runs.
    pub(super) fn abort_reply(&mut self, current: &mut Current, reply: Reply) -> Flow {
        let AbortState::Running(exchange) = &mut current.abort else {
            return Flow::Continue;
        };
        if reply.code().is_positive_preliminary() {
            return Flow::Continue;
        }
        exchange.finals += 1;
        if exchange.finals == 1 && exchange.sentinel {
            exchange.first = Some(reply.clone());
        }
        let done = !exchange.sentinel
            || exchange.finals >= 3
            || (exchange.finals >= 2 && reply.code() == ReplyCode::COMMAND_OK);
        if !done {
            exchange.previous = Some(reply);
            return Flow::Continue;
        }
        let abor_reply = if exchange.sentinel {
            exchange.previous.take()
        } else {
            Some(reply.clone())
        };
        exchange.result = Some(match abor_reply {
            Some(r) if r.code().is_positive_completion() => Ok(Outcome::Done(r)),
            Some(r) if r.code().is_negative() => Err(ClientError::Reply(r)),
            Some(r) => Err(ClientError::Protocol(ProtocolError::UnexpectedReply(r))),
            None => Err(ClientError::Protocol(ProtocolError::UnexpectedReply(reply))),
        });
        // The sentinel's answer is the last reply owed: whatever the server chose not to send, it won't.
        self.outstanding = 0;
        self.stop_reply_timer();
        Flow::Done(Err(aborted_error(exchange)))
    }
}

/// What an aborted request fails with. When the session aborted by itself because the data connection
/// broke, and the aborted command's own answer is a refusal other than the usual 426 (a server that
/// refuses `RETR` with 550 may reset the data connection it had accepted before the 550 arrives), the
/// refusal says more than "connection reset": report it.
fn aborted_error(exchange: &mut AbortExchange) -> ClientError {
    let refusal = exchange
        .first
        .take()
        .filter(|r| r.code().is_negative() && r.code() != ReplyCode::TRANSFER_ABORTED);
    match (&exchange.op_error, refusal) {
        (ClientError::DataConnection(_), Some(reply)) if exchange.id.is_none() => {
            ClientError::Reply(reply)
        }
        _ => exchange.op_error.clone(),
    }
}
