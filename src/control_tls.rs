//! Where a control connection's TLS is (RFC 4217): one state machine for both sessions, which differ
//! only in who answers `AUTH TLS` and who asks.

/// The control connection's TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ControlTls {
    /// Plaintext.
    Plain,
    /// `234` sent or received: the driver runs the handshake, and no byte the session is handed meanwhile
    /// counts (it was not decrypted by that handshake).
    Handshaking,
    /// TLS is up (after `AUTH TLS`, or from the first byte with implicit FTPS).
    Secured,
}
