//! Where a client session is in its life: waiting for the server's greeting, ready, quitting, closed.
//! Every transition is a method here.

/// Where a client session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifecycle {
    /// Waiting for the server's 2xx greeting (a 120 only delays it): requests queue, nothing is sent.
    /// `quit_queued`: a [`Request::Quit`](super::Request::Quit) is queued already, so no more requests
    /// are taken; it is sent in its turn once the greeting arrives.
    AwaitingGreeting { quit_queued: bool },
    /// Greeted: commands are sent, requests are taken.
    Ready,
    /// Greeted, and `QUIT` is queued or sent: no more requests.
    Quitting,
    /// Ended (after [`Action::CloseControl`](super::Action::CloseControl)): every input is ignored.
    Closed,
}

impl Lifecycle {
    /// A fresh session.
    pub(super) fn new() -> Lifecycle {
        Lifecycle::AwaitingGreeting { quit_queued: false }
    }

    /// The greeting arrived: commands may be sent.
    pub(super) fn is_greeted(self) -> bool {
        match self {
            Lifecycle::Ready | Lifecycle::Quitting => true,
            Lifecycle::AwaitingGreeting { .. } | Lifecycle::Closed => false,
        }
    }

    /// New requests are taken: not closed, and no `QUIT` queued.
    pub(super) fn takes_requests(self) -> bool {
        match self {
            Lifecycle::AwaitingGreeting { quit_queued } => !quit_queued,
            Lifecycle::Ready => true,
            Lifecycle::Quitting | Lifecycle::Closed => false,
        }
    }

    /// The session ended.
    pub(super) fn is_closed(self) -> bool {
        self == Lifecycle::Closed
    }

    /// The server's 2xx greeting arrived.
    pub(super) fn greeted(&mut self) {
        *self = match *self {
            Lifecycle::AwaitingGreeting { quit_queued: false } => Lifecycle::Ready,
            Lifecycle::AwaitingGreeting { quit_queued: true } => Lifecycle::Quitting,
            // Only one greeting is routed as such; a closed session stays closed.
            state @ (Lifecycle::Ready | Lifecycle::Quitting | Lifecycle::Closed) => state,
        };
    }

    /// A `QUIT` was queued: no more requests.
    pub(super) fn quit_queued(&mut self) {
        *self = match *self {
            Lifecycle::AwaitingGreeting { .. } => Lifecycle::AwaitingGreeting { quit_queued: true },
            Lifecycle::Ready => Lifecycle::Quitting,
            state @ (Lifecycle::Quitting | Lifecycle::Closed) => state,
        };
    }

    /// The session ends. Returns whether it was open (so the caller closes it once).
    pub(super) fn close(&mut self) -> bool {
        let was_open = !self.is_closed();
        *self = Lifecycle::Closed;
        was_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quit_queued_before_the_greeting_waits_for_it() {
        let mut state = Lifecycle::new();
        assert!(state.takes_requests() && !state.is_greeted());
        state.quit_queued();
        assert!(!state.takes_requests() && !state.is_greeted());
        state.greeted();
        assert_eq!(state, Lifecycle::Quitting);
        assert!(state.is_greeted() && !state.takes_requests());
    }

    #[test]
    fn greeted_then_quit_then_closed() {
        let mut state = Lifecycle::new();
        state.greeted();
        assert_eq!(state, Lifecycle::Ready);
        assert!(state.is_greeted() && state.takes_requests());
        state.quit_queued();
        assert_eq!(state, Lifecycle::Quitting);
        assert!(state.close());
        assert!(state.is_closed() && !state.is_greeted() && !state.takes_requests());
        assert!(!state.close(), "closing twice is closing once");
        state.greeted();
        state.quit_queued();
        assert_eq!(state, Lifecycle::Closed, "nothing reopens a closed session");
    }
}
