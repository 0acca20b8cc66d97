//! The one loop of both example drivers: carry out the session's actions, re-arm the session's timer,
//! then wait (`tokio::select!`) for the next input: bytes on the control connection, a message from a
//! helper task, a request from the user's handle (the client's only), or the timer. What each input
//! means, and what carrying out means, is the driver's ([`Driver`]); the waiting is here.
//!
//! Shared by `#[path]` with the example server and the example client (and the tests that include the
//! client's driver), so it names nothing of either.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::control::ControlStream;

/// Bytes read from the control connection at a time (commands and replies are short; a longer line
/// just takes two reads).
pub const CONTROL_READ_SIZE: usize = 4096;

/// What a driver does with each input of [`run`].
pub trait Driver {
    /// What the helper tasks send over the driver's channel.
    type Message;
    /// What the user's handle submits (the client's requests).
    type Request;
    /// Whether to read on past the TCP urgent mark after a read (see [`read_past_urgent_mark`]), now:
    /// never while a TLS handshake is pending, whose bytes those would be.
    fn reads_past_urgent_mark(&self) -> bool {
        false
    }

    /// Drains and performs the session's actions and writes the control bytes (switching the control
    /// connection to TLS or back when the session says). `Break` ends the loop.
    async fn carry_out(&mut self, control: &mut ControlStream) -> ControlFlow<()>;
    /// The session's next deadline.
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// Bytes read from the control connection.
    fn on_input(&mut self, bytes: &[u8]);
    /// The control connection's end (or a read error); it is not read again.
    fn on_eof(&mut self);
    /// The session's deadline passed.
    fn on_timeout(&mut self);
    /// A helper task's message.
    fn on_message(&mut self, message: Self::Message);
    /// A request from the handle.
    fn on_request(&mut self, _request: Self::Request) {}
    /// The handle is gone; no request comes any more.
    fn on_handle_closed(&mut self) {}
}

/// Runs `driver` until [`Driver::carry_out`] breaks. `requests` is the handle's channel, if there is
/// one. The caller closes the connection.
pub async fn run<D: Driver>(
    driver: &mut D,
    control: &mut ControlStream,
    mut messages: UnboundedReceiver<D::Message>,
    mut requests: Option<UnboundedReceiver<D::Request>>,
) {
    let mut buffer = vec![0u8; CONTROL_READ_SIZE];
    let mut control_open = true;
    // One timer, moved as the session's deadline moves (not a new timer per chunk of a transfer).
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        if driver.carry_out(control).await.is_break() {
            return;
        }
        let deadline = driver.poll_timeout().map(Instant::from_std);
        if let Some(deadline) = deadline {
            // An elapsed timer would fire again at once: re-arm it even for the same instant.
            if timer.deadline() != deadline || timer.is_elapsed() {
                timer.as_mut().reset(deadline);
            }
        }
        tokio::select! {
            read = control.read(&mut buffer), if control_open => match read {
                Ok(0) | Err(_) => {
                    control_open = false;
                    driver.on_eof();
                }
                Ok(n) => {
                    driver.on_input(buffer.get(..n).unwrap_or_default());
                    // Only in plaintext: under TLS the socket's bytes are records, not commands.
                    if let (true, Some(tcp)) = (driver.reads_past_urgent_mark(), control.plain_tcp()) {
                        read_past_urgent_mark(tcp, &mut buffer, driver);
                    }
                }
            },
            Some(message) = messages.recv() => driver.on_message(message),
            request = next_request(&mut requests) => match request {
                Some(request) => driver.on_request(request),
                None => {
                    requests = None;
                    driver.on_handle_closed();
                }
            },
            () = &mut timer, if deadline.is_some() => driver.on_timeout(),
        }
    }
}

/// The handle's next request (`None` once it is gone); never ready without a handle.
async fn next_request<R>(requests: &mut Option<UnboundedReceiver<R>>) -> Option<R> {
    match requests {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads what is left after a short read, straight from the socket.
///
/// A read stops at the TCP urgent mark, and tokio takes a short read to mean the socket is drained, so
/// it waits for the next readiness edge. When a client sends `ABOR\r\n` with MSG_OOB (Python's ftplib
/// does), the urgent `\n` is already queued behind the mark and no edge ever comes: the session would wait
/// for the end of `ABOR` until the client gave up. A non-blocking read here picks it up.
fn read_past_urgent_mark<D: Driver>(tcp: &TcpStream, buffer: &mut [u8], driver: &mut D) {
    use std::io::Read;
    let socket = socket2::SockRef::from(tcp);
    for _ in 0..4 {
        match (&*socket).read(buffer) {
            Ok(n) if n > 0 => driver.on_input(buffer.get(..n).unwrap_or_default()),
            // End of stream, an error or nothing more: the next ordinary read reports it.
            _ => return,
        }
    }
}
