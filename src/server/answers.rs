//! Which driver answers fit what the session asked: a [`Completion`] of the wrong kind (a `Written` for
//! an `Authenticate`, `Metadata` for a file being opened) is the driver's mistake. It is reported to the
//! driver as an [`UnexpectedCompletion`] and changes nothing; it never becomes a reply to the peer,
//! which could not have caused it.
//!
//! Answers to requests the session no longer waits for (a transfer aborted meanwhile, a password check
//! that came after the login deadline) are not mistakes: the driver could not know. Those are ignored.

use crate::data::DataCompletion;

use super::io::{Completion, RequestId};
use super::storage::Then;
use super::transfer::Phase;
use super::{Pending, Session};

/// A driver answered a request with a [`Completion`] that cannot answer it, e.g. `Written` for an
/// [`Action::Authenticate`](super::Action::Authenticate). The session ignored the answer and still waits
/// for one that fits; the peer saw nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request {id:?} waits for {expected}, not {got}")]
pub struct UnexpectedCompletion {
    /// The request answered.
    pub id: RequestId,
    /// What would have answered it.
    pub expected: &'static str,
    /// The kind of completion given.
    pub got: &'static str,
}

/// What the session waits for from one request, for the check and its message.
struct Expected {
    what: &'static str,
    fits: fn(&Completion) -> bool,
    /// Whether `Entries`/`EntriesPart` may answer, on top of `fits` (a transfer that is no listing, or
    /// a listing that asked for no part, takes none).
    entries_allowed: bool,
}

impl Expected {
    fn new(what: &'static str, fits: fn(&Completion) -> bool) -> Self {
        Expected {
            what,
            fits,
            entries_allowed: true,
        }
    }

    fn admits(&self, completion: &Completion) -> bool {
        let entries = matches!(
            completion,
            Completion::Entries { .. } | Completion::EntriesPart { .. }
        );
        (self.fits)(completion) && (self.entries_allowed || !entries)
    }
}

impl Session {
    /// Checks that `completion` can answer request `id`, if the session waits for that request.
    pub(super) fn check_answer(
        &self,
        id: RequestId,
        completion: &Completion,
    ) -> Result<(), UnexpectedCompletion> {
        let Some(expected) = self.expected(id) else {
            return Ok(());
        };
        if expected.admits(completion) {
            return Ok(());
        }
        Err(UnexpectedCompletion {
            id,
            expected: expected.what,
            got: kind(completion),
        })
    }

    /// What request `id` may be answered with; `None` if the session does not wait for it.
    fn expected(&self, id: RequestId) -> Option<Expected> {
        if let Some(transfer) = self.transfer.as_ref().filter(|t| t.id == id) {
            let mut step = transfer_step(transfer.phase);
            // Entries answer only a listing that asked for them.
            step.entries_allowed = transfer.awaits_entries();
            return Some(step);
        }
        match self.pending.as_ref()? {
            Pending::Login { id: awaited, .. } if *awaited == id => Some(Expected::new(
                "LoggedIn, Granted, Denied or Failed (an Authenticate)",
                |c| {
                    matches!(
                        c,
                        Completion::LoggedIn(_)
                            | Completion::Granted(_)
                            | Completion::Denied
                            | Completion::Failed(_)
                    )
                },
            )),
            Pending::Listen { id: awaited, .. } if *awaited == id => Some(Expected::new(
                "Data(Listening) or a failure (a Listen)",
                |c| matches!(c, Completion::Data(DataCompletion::Listening(_))) || is_failure(c),
            )),
            Pending::Storage { id: awaited, then } if *awaited == id => Some(storage_answer(then)),
            Pending::Handshake { id: awaited } if *awaited == id => Some(Expected::new(
                "ControlSecured (a SecureControl; a failed handshake closes the connection)",
                |c| matches!(c, Completion::ControlSecured),
            )),
            _ => None,
        }
    }
}

/// What answers a transfer in each phase.
fn transfer_step(phase: Phase) -> Expected {
    match phase {
        Phase::Opening => Expected::new(
            "FileOpened, Entries, EntriesPart or a failure (an OpenRead, OpenWrite or List)",
            |c| {
                matches!(
                    c,
                    Completion::FileOpened { .. }
                        | Completion::Entries { .. }
                        | Completion::EntriesPart { .. }
                ) || is_failure(c)
            },
        ),
        Phase::Connecting => {
            Expected::new("Data(Connected) or a failure (a Connect or Accept)", |c| {
                matches!(c, Completion::Data(DataCompletion::Connected { .. })) || is_failure(c)
            })
        }
        Phase::Securing => Expected::new("Data(Secured) or a failure (a Secure)", |c| {
            matches!(c, Completion::Data(DataCompletion::Secured { .. })) || is_failure(c)
        }),
        Phase::Running => Expected::new(
            "Data(Written), Data(EndOfData), Entries, EntriesPart or a failure (a transfer's \
                   Send, Receive, Read, Write or ReadEntries)",
            |c| {
                matches!(
                    c,
                    Completion::Data(DataCompletion::Written | DataCompletion::EndOfData)
                        | Completion::Entries { .. }
                        | Completion::EntriesPart { .. }
                ) || is_failure(c)
            },
        ),
        Phase::Closing => Expected::new(
            "Data(Written) or a failure (an upload's Local(Close), or its last Send or Write)",
            |c| matches!(c, Completion::Data(DataCompletion::Written)) || is_failure(c),
        ),
    }
}

/// What answers a command's storage request.
fn storage_answer(then: &Then) -> Expected {
    match then {
        Then::ChangeDirectory(_)
        | Then::ReportSize
        | Then::ReportModified
        | Then::RememberRenameSource(_)
        | Then::ReportFacts(_) => Expected::new("Metadata or Failed (a Stat)", |c| {
            matches!(c, Completion::Metadata(_) | Completion::Failed(_))
        }),
        Then::ReportListing { .. } => Expected::new(
            "Entries, EntriesPart or Failed (a List or ReadEntries)",
            |c| {
                matches!(
                    c,
                    Completion::Entries { .. }
                        | Completion::EntriesPart { .. }
                        | Completion::Failed(_)
                )
            },
        ),
        Then::Reply(..) => Expected::new(
            "Done or Failed (a Delete, MakeDirectory, RemoveDirectory, Rename or SetModified)",
            |c| matches!(c, Completion::Done | Completion::Failed(_)),
        ),
    }
}

/// A storage or data failure: either may end any step.
fn is_failure(completion: &Completion) -> bool {
    matches!(
        completion,
        Completion::Failed(_) | Completion::Data(DataCompletion::Failed(_))
    )
}

/// The completion's kind, for the error message.
fn kind(completion: &Completion) -> &'static str {
    match completion {
        Completion::LoggedIn(_) => "LoggedIn",
        Completion::Granted(_) => "Granted",
        Completion::Denied => "Denied",
        Completion::Metadata(_) => "Metadata",
        Completion::Entries { .. } => "Entries",
        Completion::EntriesPart { .. } => "EntriesPart",
        Completion::FileOpened { .. } => "FileOpened",
        Completion::Done => "Done",
        Completion::Failed(_) => "Failed",
        Completion::Data(DataCompletion::Listening(_)) => "Data(Listening)",
        Completion::ControlSecured => "ControlSecured",
        Completion::Data(DataCompletion::Connected { .. }) => "Data(Connected)",
        Completion::Data(DataCompletion::Secured { .. }) => "Data(Secured)",
        Completion::Data(DataCompletion::Written) => "Data(Written)",
        Completion::Data(DataCompletion::EndOfData) => "Data(EndOfData)",
        Completion::Data(DataCompletion::Failed(_)) => "Data(Failed)",
    }
}
