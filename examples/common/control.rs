//! The control connection of both example drivers: plaintext until the session asks for TLS
//! (`AUTH TLS`, or implicit FTPS from the first byte), TLS until it asks for plaintext again (`CCC`).
//!
//! One value, read and written by the run loop, so that the switch happens between two reads: the
//! session decides when, and nothing read before the switch reaches the TLS layer or the reverse.
//!
//! Shared by `#[path]` with the example server and the example client (and the tests that include the
//! client's driver), so it names nothing of either.

#![allow(dead_code)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::tls::{ConnectionTls, ConnectorTls, Stream};

/// The control connection: a [`Stream`], or nothing once a failed switch lost it (every read and write
/// fails then).
pub struct ControlStream(Option<Stream>);

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "control connection lost")
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
}

impl ControlStream {
    /// A plaintext control connection (explicit FTPS starts here).
    pub fn plain(tcp: TcpStream) -> ControlStream {
        ControlStream(Some(Stream::Plain(tcp)))
    }

    /// The stream (`None` once lost).
    pub fn stream(&self) -> Option<&Stream> {
        self.0.as_ref()
    }

    /// The plaintext TCP connection, if there is no TLS on it.
    pub fn plain_tcp(&self) -> Option<&TcpStream> {
        match &self.0 {
            Some(Stream::Plain(tcp)) => Some(tcp),
            _ => None,
        }
    }

    /// Takes the plaintext TCP connection for a handshake; the stream is lost until it is put back.
    fn take_plain(&mut self) -> io::Result<TcpStream> {
        match self.0.take() {
            Some(Stream::Plain(tcp)) => Ok(tcp),
            _ => Err(broken()),
        }
    }

    /// Runs the TLS server handshake (after `234`, which must already be written), within `limit`.
    /// On failure the connection is lost.
    pub async fn accept_tls(&mut self, tls: &ConnectionTls, limit: Duration) -> io::Result<()> {
        let tcp = self.take_plain()?;
        // Boxed: a TLS handshake's state is large, and every session task would carry it inline.
        let handshake = tokio::time::timeout(limit, Box::pin(tls.accept_control(tcp)));
        let stream = handshake.await.map_err(|_| timed_out())??;
        self.0 = Some(Stream::TlsServer(Box::new(stream)));
        Ok(())
    }

    /// Runs the TLS client handshake (after the server's `234`, or first thing for implicit FTPS),
    /// within `limit`. On failure the connection is lost.
    pub async fn connect_tls(&mut self, tls: &ConnectorTls, limit: Duration) -> io::Result<()> {
        let tcp = self.take_plain()?;
        let handshake = tokio::time::timeout(limit, Box::pin(tls.connect_control(tcp)));
        let stream = handshake.await.map_err(|_| timed_out())??;
        self.0 = Some(Stream::TlsClient(Box::new(stream)));
        Ok(())
    }

    /// Ends TLS and goes on in plaintext (`CCC`): sends `close_notify`, waits (within `limit`) for the
    /// peer's, and keeps the TCP connection. Plaintext already: nothing to do.
    pub async fn end_tls(&mut self, limit: Duration) -> io::Result<()> {
        let tcp = match self.0.take() {
            Some(Stream::Plain(tcp)) => tcp,
            Some(Stream::TlsServer(mut tls)) => {
                tls.get_mut().1.send_close_notify();
                tls.flush().await?;
                let (tcp, connection) = tls.get_mut();
                let closing =
                    tokio::time::timeout(limit, Box::pin(read_close_notify(tcp, connection)));
                closing
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                tls.into_inner().0
            }
            Some(Stream::TlsClient(mut tls)) => {
                tls.get_mut().1.send_close_notify();
                tls.flush().await?;
                let (tcp, connection) = tls.get_mut();
                let closing =
                    tokio::time::timeout(limit, Box::pin(read_close_notify(tcp, connection)));
                closing
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                tls.into_inner().0
            }
            None => return Err(broken()),
        };
        self.0 = Some(Stream::Plain(tcp));
        Ok(())
    }
}

/// The largest TLS record on the wire: 2^14 bytes of plaintext plus the most a cipher adds.
const MAX_TLS_RECORD: usize = 16_384 + 2_048;

/// Reads the peer's records up to its `close_notify` straight from the socket, one record at a time,
/// so that nothing the peer sends after it (its first plaintext command may share the segment) is
/// taken into TLS and lost. Application data before the `close_notify` was sent before `CCC` was
/// answered: dropped.
async fn read_close_notify<D>(
    tcp: &mut TcpStream,
    connection: &mut rustls::ConnectionCommon<D>,
) -> io::Result<()> {
    loop {
        let state = connection
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut sink = vec![0u8; state.plaintext_bytes_to_read()];
        let _ = std::io::Read::read(&mut connection.reader(), &mut sink);
        if state.peer_has_closed() {
            return Ok(());
        }
        let mut header = [0u8; 5];
        tcp.read_exact(&mut header).await?;
        let [_, _, _, high, low] = header;
        let length = usize::from(u16::from_be_bytes([high, low]));
        if length > MAX_TLS_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a TLS record",
            ));
        }
        let mut record = header.to_vec();
        record.resize(header.len() + length, 0);
        if let Some(body) = record.get_mut(header.len()..) {
            tcp.read_exact(body).await?;
        }
        connection.read_tls(&mut record.as_slice())?;
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Some(stream) => Pin::new(stream).poll_read(cx, buf),
            None => Poll::Ready(Err(broken())),
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Some(stream) => Pin::new(stream).poll_write(cx, buf),
            None => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Some(stream) => Pin::new(stream).poll_flush(cx),
            None => Poll::Ready(Err(broken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Some(stream) => Pin::new(stream).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
