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

use super::tls::{ConnectionTls, ConnectorTls, TlsClientStream, TlsServerStream};

/// The control connection.
pub enum ControlStream {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS, this end the server.
    TlsServer(Box<TlsServerStream>),
    /// TLS, this end the client.
    TlsClient(Box<TlsClientStream>),
    /// Lost in a failed switch: every read and write fails.
    Broken,
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "control connection lost")
}

impl ControlStream {
    /// The TCP connection underneath (`None` once broken).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ControlStream::Plain(tcp) => Some(tcp),
            ControlStream::TlsServer(tls) => Some(tls.get_ref().0),
            ControlStream::TlsClient(tls) => Some(tls.get_ref().0),
            ControlStream::Broken => None,
        }
    }

    /// The plaintext TCP connection, if there is no TLS on it.
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            ControlStream::Plain(tcp) => Some(tcp),
            _ => None,
        }
    }

    /// Runs the TLS server handshake (after `234`, which must already be written), within `limit`.
    /// On failure the connection is lost ([`ControlStream::Broken`]).
    pub async fn accept_tls(&mut self, tls: &ConnectionTls, limit: Duration) -> io::Result<()> {
        let ControlStream::Plain(tcp) = std::mem::replace(self, ControlStream::Broken) else {
            return Err(broken());
        };
        let stream = tokio::time::timeout(limit, tls.accept_control(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        *self = ControlStream::TlsServer(Box::new(stream));
        Ok(())
    }

    /// Runs the TLS client handshake (after the server's `234`, or first thing for implicit FTPS),
    /// within `limit`. On failure the connection is lost ([`ControlStream::Broken`]).
    pub async fn connect_tls(&mut self, tls: &ConnectorTls, limit: Duration) -> io::Result<()> {
        let ControlStream::Plain(tcp) = std::mem::replace(self, ControlStream::Broken) else {
            return Err(broken());
        };
        let stream = tokio::time::timeout(limit, tls.connect_control(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        *self = ControlStream::TlsClient(Box::new(stream));
        Ok(())
    }

    /// Ends TLS and goes on in plaintext (`CCC`): sends `close_notify`, waits (within `limit`) for the
    /// peer's, and keeps the TCP connection. Plaintext already: nothing to do.
    pub async fn end_tls(&mut self, limit: Duration) -> io::Result<()> {
        let tcp = match std::mem::replace(self, ControlStream::Broken) {
            ControlStream::Plain(tcp) => tcp,
            ControlStream::TlsServer(mut tls) => {
                tls.get_mut().1.send_close_notify();
                tokio::time::timeout(limit, finish_tls(&mut *tls))
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                tls.into_inner().0
            }
            ControlStream::TlsClient(mut tls) => {
                tls.get_mut().1.send_close_notify();
                tokio::time::timeout(limit, finish_tls(&mut *tls))
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                tls.into_inner().0
            }
            ControlStream::Broken => return Err(broken()),
        };
        *self = ControlStream::Plain(tcp);
        Ok(())
    }
}

/// Flushes our `close_notify` and reads until the peer's (which a TLS stream reports as the end).
async fn finish_tls<S: AsyncRead + AsyncWrite + Unpin>(tls: &mut S) -> io::Result<()> {
    tls.flush().await?;
    let mut buffer = [0u8; 512];
    loop {
        // Anything the peer sent before its `close_notify` was sent before `CCC` was answered: dropped.
        if tls.read(&mut buffer).await? == 0 {
            return Ok(());
        }
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            ControlStream::TlsServer(tls) => Pin::new(tls).poll_read(cx, buf),
            ControlStream::TlsClient(tls) => Pin::new(tls).poll_read(cx, buf),
            ControlStream::Broken => Poll::Ready(Err(broken())),
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ControlStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            ControlStream::TlsServer(tls) => Pin::new(tls).poll_write(cx, buf),
            ControlStream::TlsClient(tls) => Pin::new(tls).poll_write(cx, buf),
            ControlStream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            ControlStream::TlsServer(tls) => Pin::new(tls).poll_flush(cx),
            ControlStream::TlsClient(tls) => Pin::new(tls).poll_flush(cx),
            ControlStream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            ControlStream::TlsServer(tls) => Pin::new(tls).poll_shutdown(cx),
            ControlStream::TlsClient(tls) => Pin::new(tls).poll_shutdown(cx),
            ControlStream::Broken => Poll::Ready(Ok(())),
        }
    }
}
