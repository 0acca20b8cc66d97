//! TLS for both example drivers (FTPS, RFC 4217), on rustls: certificates from PEM files, the
//! per-connection session caches that make data-connection session reuse mean something, and the one
//! stream type a data connection is, plaintext or TLS.
//!
//! # Session reuse, bound to the control connection
//!
//! An FTPS server must refuse a protected data connection whose TLS handshake did not resume the
//! control connection's session: otherwise whoever connects to a passive port first gets the file
//! (vsftpd's `require_ssl_reuse`). "Resumed *some* session" is not enough: a third party could resume a
//! session of its own with the same server. So each control connection gets its own session cache
//! ([`SessionCache`]), used by its own handshake and by those of its data connections and by nobody
//! else's, and no stateless ticket key is shared between connections: a data connection can only resume
//! a session this control connection's client made.
//!
//! A data connection's handshake may also store sessions (TLS 1.3 clients consume a ticket per
//! resumption, so the server hands out a fresh one on each resumed data connection). What a data
//! connection's handshake stores is kept apart and joins the cache only once that handshake has
//! finished and resumed ([`DataSessions`]): a refused stranger, or one whose handshake failed after
//! the server stored its session, never gets a session to come back with.
//!
//! Except on uploads: there the client only writes, and most clients (lftp and FileZilla on GnuTLS,
//! OpenSSL ones) never read the data connection, so the tickets a TLS 1.3 server sends after the
//! handshake sit unread in the client's socket when it closes it, and the client's kernel answers
//! the close with a reset that destroys the end of the upload before the server has read it (lftp
//! uploads failed with 426 that way). So a data connection's handshake sends tickets only for
//! transfers the client reads ([`ConnectionTls::send_data_tickets`]), as ProFTPD does (its issue
//! #959, after OpenSSL's #7948).
//!
//! On the client side every data connection offers the control connection's session, through a
//! session store of that control connection alone. TLS 1.3 tickets are used up one per resumption, as
//! rustls does; the data connection's own new ticket (servers send one after each resumption) is read
//! before the connection is closed, so an upload, which otherwise never reads, still refills the store
//! where the server sends one (OpenSSL servers do; this example server does not on uploads, above, so
//! against it a long run of uploads lives on the tickets of the control connection and of downloads).
//! rustls never offers a TLS 1.3 ticket twice, so such a server lets a client do only as many uploads
//! in a row as it has tickets to spare (ProFTPD 1.3.8 sends two at login: the third upload is refused);
//! [`ClientTls::tls12_only`] avoids that, since a TLS 1.2 session is resumed any number of times.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::StoresServerSessions;
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS 1.2 and 1.3 only: SSL 3, TLS 1.0 and 1.1 are broken or deprecated (RFC 8996).
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Sessions one control connection keeps: its own handshake's and those its data connections made.
/// Small: a client resumes the latest ones.
const SESSIONS_PER_CONNECTION: usize = 32;

/// TLS 1.3 tickets sent after the control connection's handshake: as many as a rustls client keeps
/// (8), since rustls uses each ticket once and upload data connections bring no new one (see
/// `send_data_tickets`).
const TICKETS_PER_HANDSHAKE: usize = 8;

/// TLS 1.3 tickets sent on a download's or listing's data connection: more than the one its
/// handshake used, so a client that uses each once gains one.
const TICKETS_PER_DATA_CONNECTION: usize = 2;

/// rustls' ring provider: no C toolchain beyond `cc`. rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange (aws-lc-rs has it); moving is a one-line change once CI builds aws-lc.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// The server's TLS: its certificate and key, loaded once.
#[derive(Clone)]
pub struct ServerTls {
    base: Arc<ServerConfig>,
    /// For `SSCN ON`, where this server is the TLS client of a data connection to another server.
    sscn_client: Arc<ClientConfig>,
}

impl ServerTls {
    /// Loads a PEM certificate chain and private key.
    pub fn load(cert: &Path, key: &Path) -> io::Result<ServerTls> {
        let pem = |e: rustls::pki_types::pem::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(pem)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem)?;
        if chain.is_empty() {
            let what = format!("no certificate in {}", cert.display());
            return Err(io::Error::new(io::ErrorKind::InvalidData, what));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(pem)?;
        let mut base = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_error)?;
        // No stateless tickets: a ticket key shared by every connection would let any client's ticket
        // resume on any data connection. Sessions live in each control connection's own cache.
        base.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
        let sscn_client = insecure_client_config(VERSIONS)?;
        Ok(ServerTls {
            base: Arc::new(base),
            sscn_client: Arc::new(sscn_client),
        })
    }

    /// The TLS of one new control connection, with a session cache of its own.
    pub fn for_connection(&self) -> ConnectionTls {
        let cache = Arc::new(SessionCache::default());
        let mut control = (*self.base).clone();
        control.session_storage = Arc::new(DataSessions::control(Arc::clone(&cache)));
        ConnectionTls {
            control: Arc::new(control),
            base: Arc::clone(&self.base),
            cache,
            // Its own session store too: one user's sessions with other servers are never offered
            // on another user's connections.
            sscn_client: Arc::new(with_own_sessions(&self.sscn_client)),
            data_tickets: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// One control connection's TLS on the server: the acceptor of its own handshake, and of its data
/// connections, which may resume only its sessions.
#[derive(Clone)]
pub struct ConnectionTls {
    control: Arc<ServerConfig>,
    base: Arc<ServerConfig>,
    cache: Arc<SessionCache>,
    sscn_client: Arc<ClientConfig>,
    /// Whether data connections' handshakes send TLS 1.3 tickets (shared by the clones).
    data_tickets: Arc<AtomicBool>,
}

impl ConnectionTls {
    /// Whether the next data connections' handshakes send TLS 1.3 session tickets: `true` (the
    /// default) for downloads and listings, which the client reads, `false` for uploads, where
    /// unread tickets would make the client's close a reset that loses the end of the upload (see
    /// the module's documentation). The server says so when it opens the transfer's file, before
    /// the data connection's handshake.
    pub fn send_data_tickets(&self, send: bool) {
        self.data_tickets.store(send, Ordering::Relaxed);
    }

    /// The control connection's handshake (after `AUTH TLS`, or at once for implicit FTPS).
    pub async fn accept_control(&self, tcp: TcpStream) -> io::Result<TlsServerStream> {
        TlsAcceptor::from(Arc::clone(&self.control))
            .accept(tcp)
            .await
    }

    /// A data connection's handshake as the TLS server. Returns the stream and whether it resumed a
    /// session of this control connection; only then does what its handshake stored become resumable
    /// (see [`DataSessions`]).
    async fn accept_data(&self, tcp: TcpStream) -> io::Result<(DataStream, bool)> {
        let sessions = Arc::new(DataSessions::data(Arc::clone(&self.cache)));
        let mut config = (*self.base).clone();
        config.session_storage = Arc::clone(&sessions) as Arc<dyn StoresServerSessions>;
        config.send_tls13_tickets = match self.data_tickets.load(Ordering::Relaxed) {
            true => TICKETS_PER_DATA_CONNECTION,
            false => 0,
        };
        let stream = TlsAcceptor::from(Arc::new(config)).accept(tcp).await?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        if resumed {
            sessions.commit();
        }
        Ok((Stream::TlsServer(Box::new(stream)), resumed))
    }
}

/// A control connection's TLS stream on the server.
pub type TlsServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// A control connection's TLS stream on the client.
pub type TlsClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The sessions of one control connection, by session id or ticket, least recently used first out.
///
/// Least recently *used*, not oldest: most clients (OpenSSL's, GnuTLS', Python's) offer the very
/// session of the control connection's handshake on every data connection, while each download's
/// handshake stores tickets of its own that they never use. Oldest-first evicted the control
/// connection's session after a few downloads, and every later data connection got 425.
#[derive(Default)]
struct SessionCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    values: HashMap<Vec<u8>, Vec<u8>>,
    order: VecDeque<Vec<u8>>,
}

impl SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if inner.values.insert(key.clone(), value).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > SESSIONS_PER_CONNECTION {
            if let Some(oldest) = inner.order.pop_front() {
                inner.values.remove(&oldest);
            }
        }
        true
    }

    /// The session under `key`, which becomes the most recently used.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut inner = self.inner.lock().ok()?;
        let value = inner.values.get(key).cloned()?;
        // At most SESSIONS_PER_CONNECTION keys: a linear search is cheap.
        if let Some(at) = inner.order.iter().position(|k| k.as_slice() == key) {
            if let Some(used) = inner.order.remove(at) {
                inner.order.push_back(used);
            }
        }
        Some(value)
    }
}

/// rustls' view of a [`SessionCache`] for one handshake. A ticket may be resumed more than once (as
/// OpenSSL's stateless tickets can): FTP clients offer the control connection's session on every data
/// connection.
///
/// A data connection's handshake does not write to the cache: what it stores (its TLS 1.3 tickets, a
/// TLS 1.2 session id) is staged here and reaches the cache only through [`Self::commit`], once the
/// handshake has finished *and* resumed. rustls stores a session as soon as it has the client's
/// Finished, before the handshake can still fail; a stranger that reached a passive port first could
/// otherwise make its handshake fail on purpose after that point and leave a session of its own in the
/// victim's cache, to resume on the next transfer.
struct DataSessions {
    cache: Arc<SessionCache>,
    /// `Some` for a data connection's handshake: what it stored, not yet in the cache.
    staged: Option<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
}

impl std::fmt::Debug for DataSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSessions").finish_non_exhaustive()
    }
}

impl DataSessions {
    fn control(cache: Arc<SessionCache>) -> Self {
        DataSessions {
            cache,
            staged: None,
        }
    }

    fn data(cache: Arc<SessionCache>) -> Self {
        DataSessions {
            cache,
            staged: Some(Mutex::new(HashMap::new())),
        }
    }

    /// The data connection's handshake finished and resumed a session of this control connection:
    /// what it stored may be resumed from now on.
    fn commit(&self) {
        let Some(staged) = &self.staged else {
            return;
        };
        if let Ok(mut staged) = staged.lock() {
            for (key, value) in staged.drain() {
                self.cache.put(key, value);
            }
        }
    }
}

impl StoresServerSessions for DataSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(staged) = &self.staged else {
            return self.cache.put(key, value);
        };
        match staged.lock() {
            Ok(mut staged) if staged.len() < SESSIONS_PER_CONNECTION => {
                staged.insert(key, value);
                true
            }
            _ => false,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let staged = (self.staged.as_ref()).and_then(|s| s.lock().ok()?.get(key).cloned());
        staged.or_else(|| self.cache.get(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// The client's TLS: whom it trusts.
#[derive(Clone)]
pub struct ClientTls {
    base: Arc<ClientConfig>,
    /// Whom it trusts, to build the config again for other versions (`None`: anyone, `--insecure`).
    roots: Option<Arc<RootCertStore>>,
}

impl ClientTls {
    /// Trusts the CA certificates in `ca_file` (PEM), or the system's if `None`; with `insecure`,
    /// trusts any certificate (for tests against self-signed servers; say so loudly).
    pub fn new(ca_file: Option<&Path>, insecure: bool) -> io::Result<ClientTls> {
        if insecure {
            return ClientTls::build(None, VERSIONS);
        }
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let pem = |e: rustls::pki_types::pem::Error| {
                    io::Error::new(io::ErrorKind::InvalidData, e)
                };
                for cert in CertificateDer::pem_file_iter(path).map_err(pem)? {
                    roots.add(cert.map_err(pem)?).map_err(tls_error)?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot parse is skipped, as browsers do.
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            let what = "no trusted CA certificate (give --ca-file)";
            return Err(io::Error::new(io::ErrorKind::NotFound, what));
        }
        ClientTls::build(Some(Arc::new(roots)), VERSIONS)
    }

    /// The same trust, with TLS 1.2 at most. rustls uses each TLS 1.3 session ticket once (as RFC 8446
    /// §C.4 asks), so a data connection resumes the control connection's session only while the server
    /// has handed out tickets to spare: servers that send them at login and on downloads but not on
    /// uploads (ProFTPD 1.3.8, two at login; this example server, four) refuse the upload after the
    /// last one. A TLS 1.2 session is resumed any number of times.
    pub fn tls12_only(&self) -> io::Result<ClientTls> {
        ClientTls::build(self.roots.clone(), &[&rustls::version::TLS12])
    }

    fn build(
        roots: Option<Arc<RootCertStore>>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> io::Result<ClientTls> {
        let config = match &roots {
            None => insecure_client_config(versions)?,
            Some(roots) => ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .map_err(tls_error)?
                .with_root_certificates(Arc::clone(roots))
                .with_no_client_auth(),
        };
        Ok(ClientTls {
            base: Arc::new(config),
            roots,
        })
    }

    /// The TLS of one control connection to `host`, with a session store of its own.
    pub fn for_connection(&self, host: &str) -> io::Result<ConnectorTls> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let sessions = Arc::new(CountingSessions {
            inner: rustls::client::ClientSessionMemoryCache::new(SESSIONS_PER_CONNECTION),
            unresumable: AtomicU64::new(0),
        });
        let mut config = (*self.base).clone();
        config.resumption = rustls::client::Resumption::store(Arc::clone(&sessions) as _);
        Ok(ConnectorTls {
            config: Arc::new(config),
            name,
            sessions,
        })
    }
}

/// One control connection's client session store: rustls' own, counting the handshakes that found
/// no session at all to offer (so that a refused data connection can be explained).
#[derive(Debug)]
struct CountingSessions {
    inner: rustls::client::ClientSessionMemoryCache,
    unresumable: AtomicU64,
}

impl rustls::client::ClientSessionStore for CountingSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value);
    }

    /// rustls asks for a TLS 1.2 session only when it has no TLS 1.3 ticket: `None` here means the
    /// handshake offers nothing to resume.
    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        let session = self.inner.tls12_session(server_name);
        if session.is_none() {
            self.unresumable.fetch_add(1, Ordering::Relaxed);
        }
        session
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// A client config with a session store of its own (one per control connection).
fn with_own_sessions(base: &ClientConfig) -> ClientConfig {
    let mut config = base.clone();
    let store = rustls::client::ClientSessionMemoryCache::new(SESSIONS_PER_CONNECTION);
    config.resumption = rustls::client::Resumption::store(Arc::new(store));
    config
}

/// One control connection's TLS on the client.
#[derive(Clone)]
pub struct ConnectorTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    sessions: Arc<CountingSessions>,
}

impl ConnectorTls {
    /// How many handshakes of this control connection (its own first one included) had no session
    /// to offer: with TLS 1.3, a data connection's once the server's tickets are used up.
    pub fn unresumable_handshakes(&self) -> u64 {
        self.sessions.unresumable.load(Ordering::Relaxed)
    }

    /// The control connection's handshake.
    pub async fn connect_control(&self, tcp: TcpStream) -> io::Result<TlsClientStream> {
        TlsConnector::from(Arc::clone(&self.config))
            .connect(self.name.clone(), tcp)
            .await
    }

    async fn connect_data(&self, tcp: TcpStream) -> io::Result<(DataStream, bool)> {
        let stream = TlsConnector::from(Arc::clone(&self.config))
            .connect(self.name.clone(), tcp)
            .await?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok((Stream::TlsClient(Box::new(stream)), resumed))
    }
}

/// What a data task needs to secure its connection: the server side's acceptor (on the server), the
/// client side's connector (on the client, and on the server for `SSCN ON`).
#[derive(Clone)]
pub enum DataTls {
    /// The server's: the control connection's [`ConnectionTls`].
    Server(ConnectionTls),
    /// The client's: the control connection's [`ConnectorTls`].
    Client(ConnectorTls),
}

impl DataTls {
    /// Runs the data connection's handshake in `role`. Returns the stream and whether it resumed
    /// the control connection's session.
    pub async fn secure(
        &self,
        role: ftp_proto::data::TlsRole,
        tcp: TcpStream,
    ) -> io::Result<(DataStream, bool)> {
        use ftp_proto::data::TlsRole;
        match (self, role) {
            (DataTls::Server(tls), TlsRole::Server) => tls.accept_data(tcp).await,
            (DataTls::Client(tls), TlsRole::Client) => tls.connect_data(tcp).await,
            // `SSCN ON`: the server sends the ClientHello to the other server of an FXP pair, with no
            // name to check (the peer was authenticated by the user's own login to it).
            (DataTls::Server(tls), TlsRole::Client) => {
                let name = ServerName::try_from("ftp-data.invalid")
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let stream = TlsConnector::from(Arc::clone(&tls.sscn_client))
                    .connect(name, tcp)
                    .await?;
                let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                Ok((Stream::TlsClient(Box::new(stream)), resumed))
            }
            (DataTls::Client(_), TlsRole::Server) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a client has no certificate to be a TLS server with",
            )),
        }
    }
}

/// A connection, control or data: plaintext, or TLS in either role.
pub enum Stream {
    /// Plaintext (a data connection with `PROT C`).
    Plain(TcpStream),
    /// TLS, this end the server.
    TlsServer(Box<TlsServerStream>),
    /// TLS, this end the client.
    TlsClient(Box<TlsClientStream>),
}

/// A data connection.
pub type DataStream = Stream;

impl Stream {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::TlsServer(tls) => tls.get_ref().0,
            Stream::TlsClient(tls) => tls.get_ref().0,
        }
    }

    /// Reads (and so processes) whatever TLS records already arrived, without waiting: a TLS 1.3 server
    /// sends a new session ticket after each handshake, which a connection that only writes (an upload)
    /// would otherwise never read.
    pub async fn read_pending_records(&mut self) {
        if let Stream::TlsClient(_) = self {
            let mut byte = [0u8; 1];
            let _ = tokio::time::timeout(
                Duration::ZERO,
                tokio::io::AsyncReadExt::read(self, &mut byte),
            )
            .await;
        }
    }

    /// After this end was shut down (`close_notify` and FIN sent), a TLS client reads on until the
    /// peer's end, at most `limit`: records the server sent during an upload (its TLS 1.3 session
    /// tickets) are processed, so the session store is refilled, and nothing is left unread when the
    /// socket is closed. Closing a socket with unread bytes makes the kernel reset the connection,
    /// throwing away the end of the upload still queued to send (vsftpd then answers 426 "Failure
    /// reading network stream"). A server closes its end once it has read the client's.
    pub async fn read_until_peer_closes(&mut self, limit: Duration) {
        if let Stream::TlsClient(_) = self {
            let mut buffer = [0u8; 1024];
            let drain = async {
                while let Ok(1..) = tokio::io::AsyncReadExt::read(self, &mut buffer).await {}
            };
            let _ = tokio::time::timeout(limit, drain).await;
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A TLS stream that ends without `close_notify` reads as `UnexpectedEof`: the data channel
        // decides whether that ends the file (`Settings::strict_tls_eof`).
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::TlsServer(tls) => Pin::new(tls).poll_read(cx, buf),
            Stream::TlsClient(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::TlsServer(tls) => Pin::new(tls).poll_write(cx, buf),
            Stream::TlsClient(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::TlsServer(tls) => Pin::new(tls).poll_flush(cx),
            Stream::TlsClient(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::TlsServer(tls) => Pin::new(tls).poll_shutdown(cx),
            Stream::TlsClient(tls) => Pin::new(tls).poll_shutdown(cx),
        }
    }
}

/// A client config that accepts any certificate: `--insecure`, and the server's `SSCN` client role.
fn insecure_client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> io::Result<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(with_own_sessions(&config))
}

/// Accepts any certificate, but still checks the handshake's signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
