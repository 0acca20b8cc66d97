"""Python ftplib.FTP_TLS against the ftp-proto example server with FTPS (RFC 4217).

Usage: python3 ftplib_tls_suite.py HOST PORT ROOT CA_FILE [TestClass[.test_method] ...]

The server is started by `tests/interop_tls.rs` with `--tls-cert`/`--tls-key` signed by CA_FILE and
`--user alice:secret` (override with FTP_USER / FTP_PASSWORD); some classes need more options, named in
their docstrings. ROOT is the served directory: tests put their fixtures there and check uploads there
byte for byte, each in a directory of its own.

Stock `ftplib.FTP_TLS` does not offer the control connection's TLS session on its data connections,
which a server that requires session reuse (this one, vsftpd's `require_ssl_reuse`, FileZilla Server)
refuses. `ReusingFTP_TLS` below is the usual fix (`session=self.sock.session`); stock `FTP_TLS` is
what `TestSessionReuse` expects to be refused.
"""

import ftplib
import io
import itertools
import os
import random
import shutil
import socket
import ssl
import sys
import unittest

if len(sys.argv) < 5:
    sys.exit(__doc__)
HOST = sys.argv[1]
PORT = int(sys.argv[2])
ROOT = sys.argv[3]
CA_FILE = sys.argv[4]
USER = os.environ.get("FTP_USER", "alice")
PASSWORD = os.environ.get("FTP_PASSWORD", "secret")
# Every socket read has this timeout, so a server that goes silent fails a test instead of hanging it.
TIMEOUT = 10

_counter = itertools.count()


def blob(size, seed):
    """Deterministic bytes that look random (every byte value, CR and LF included)."""
    return random.Random(seed).randbytes(size)


def context():
    """Trusts the test CA only, and checks the server's name (127.0.0.1 is in the certificate)."""
    ctx = ssl.create_default_context(cafile=CA_FILE)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session (or, once the
    control connection is plaintext again after CCC, the session kept in `saved_session`)."""

    saved_session = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = getattr(self.sock, "session", None) or self.saved_session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


class FreshContextFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections make a full handshake with a context of their own: a stranger
    that got to the data port first looks like this."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = context().wrap_socket(conn, server_hostname=self.host)
        return conn, size


class ForeignSessionFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections offer the TLS session of *another* control connection to the
    same server (`self.foreign`): valid for the server, but not this connection's."""

    foreign = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.foreign.context.wrap_socket(
                conn, server_hostname=self.host, session=self.foreign.sock.session
            )
        return conn, size


class TlsTest(unittest.TestCase):
    """Connects with `ReusingFTP_TLS`, secures the control connection, logs in, protects data
    connections and works in a fresh directory under the root."""

    protect = True

    def setUp(self):
        self.name = "py-%s-%d" % (self._testMethodName, next(_counter))
        self.local = os.path.join(ROOT, self.name)
        os.mkdir(self.local)
        os.chmod(self.local, 0o755)
        self.ftp = self.connect(ReusingFTP_TLS)
        self.assertEqual(self.ftp.auth(), "234 Proceed with negotiation.")
        self.assertEqual(self.ftp.login(USER, PASSWORD), "230 Login successful.")
        if self.protect:
            self.assertEqual(self.ftp.prot_p(), "200 Data connections are protected.")
        self.ftp.cwd("/" + self.name)

    def tearDown(self):
        try:
            self.ftp.quit()
        except Exception:
            pass
        self.ftp.close()
        shutil.rmtree(self.local, ignore_errors=True)

    def connect(self, kind):
        ftp = kind(context=context(), timeout=TIMEOUT)
        self.assertEqual(ftp.connect(HOST, PORT, timeout=TIMEOUT), "220 ftp-proto ready")
        return ftp

    def path(self, rel):
        return os.path.join(self.local, rel)

    def put(self, rel, data):
        with open(self.path(rel), "wb") as f:
            f.write(data)

    def disk(self, rel):
        with open(self.path(rel), "rb") as f:
            return f.read()

    def retr(self, name, ftp=None):
        out = bytearray()
        resp = (ftp or self.ftp).retrbinary("RETR " + name, out.extend)
        self.assertEqual(resp, "226 Transfer complete.")
        return bytes(out)

    def stor(self, name, data):
        resp = self.ftp.storbinary("STOR " + name, io.BytesIO(data))
        self.assertEqual(resp, "226 Transfer complete.")

    def assert_session_goes_on(self, ftp=None):
        ftp = ftp or self.ftp
        self.assertEqual(ftp.voidcmd("NOOP"), "200 NOOP ok.")
        self.assertEqual(ftp.pwd(), "/" + self.name)


class TestTlsTransfers(TlsTest):
    """Protected transfers, byte for byte, in both directions and both modes."""

    def test_control_connection_is_tls(self):
        self.assertIsInstance(self.ftp.sock, ssl.SSLSocket)
        self.assertIn(self.ftp.sock.version(), ("TLSv1.2", "TLSv1.3"))

    def test_retr_and_stor_passive(self):
        data = blob(3 * 1024 * 1024 + 17, 1)
        self.put("big.bin", data)
        self.assertEqual(self.retr("big.bin"), data)
        up = blob(2 * 1024 * 1024 + 5, 2)
        self.stor("up.bin", up)
        self.assertEqual(self.disk("up.bin"), up)
        self.put("empty.bin", b"")
        self.assertEqual(self.retr("empty.bin"), b"")
        self.stor("empty-up.bin", b"")
        self.assertEqual(self.disk("empty-up.bin"), b"")

    def test_retr_and_stor_active(self):
        self.ftp.set_pasv(False)
        data = blob(1024 * 1024 + 3, 3)
        self.put("big.bin", data)
        self.assertEqual(self.retr("big.bin"), data)
        up = blob(1024 * 1024 + 7, 4)
        self.stor("up.bin", up)
        self.assertEqual(self.disk("up.bin"), up)

    def test_many_transfers_on_one_session(self):
        # Every data connection resumes the control connection's session, uploads and downloads
        # mixed, more of them than the tickets the control handshake handed out.
        for i in range(20):
            data = blob(100_000 + i, 10 + i)
            self.stor("f%d.bin" % i, data)
            self.assertEqual(self.retr("f%d.bin" % i), data)
            self.assertEqual(self.disk("f%d.bin" % i), data)

    def test_mlsd_and_nlst(self):
        self.put("a.bin", blob(1234, 5))
        os.mkdir(self.path("sub"))
        facts = dict(self.ftp.mlsd(facts=["type", "size"]))
        self.assertEqual(facts["a.bin"]["type"], "file")
        self.assertEqual(facts["a.bin"]["size"], "1234")
        self.assertEqual(facts["sub"]["type"], "dir")
        self.assertEqual(sorted(self.ftp.nlst()), ["a.bin", "sub"])
        lines = []
        self.ftp.retrlines("LIST", lines.append)
        self.assertTrue(any(l.endswith(" a.bin") for l in lines), lines)

    def test_prot_c_goes_back_to_plaintext_data(self):
        data = blob(50_000, 6)
        self.put("clear.bin", data)
        self.assertEqual(self.ftp.prot_c(), "200 Data connections are not protected.")
        self.assertEqual(self.retr("clear.bin"), data)
        self.assertEqual(self.ftp.prot_p(), "200 Data connections are protected.")
        self.assertEqual(self.retr("clear.bin"), data)


class TestProtectionCommands(TlsTest):
    """PBSZ, PROT, AUTH and CCC replies (a server without --allow-ccc)."""

    protect = False

    def test_auth_twice_is_503(self):
        with self.assertRaises(ftplib.error_perm) as caught:
            self.ftp.voidcmd("AUTH TLS")
        self.assertTrue(str(caught.exception).startswith("503"), caught.exception)
        self.assert_session_goes_on()

    def test_prot_needs_pbsz(self):
        with self.assertRaises(ftplib.error_perm) as caught:
            self.ftp.voidcmd("PROT P")
        self.assertTrue(str(caught.exception).startswith("503"), caught.exception)
        self.assertEqual(self.ftp.voidcmd("PBSZ 0"), "200 PBSZ=0")
        for level in ("S", "E"):
            with self.assertRaises(ftplib.error_perm) as caught:
                self.ftp.voidcmd("PROT " + level)
            self.assertTrue(str(caught.exception).startswith("536"), caught.exception)
        self.assertEqual(self.ftp.voidcmd("PROT P"), "200 Data connections are protected.")

    def test_ccc_is_refused_without_allow_ccc(self):
        with self.assertRaises(ftplib.error_perm) as caught:
            self.ftp.voidcmd("CCC")
        self.assertTrue(str(caught.exception).startswith("533"), caught.exception)
        # Still TLS: the reply above and these came through it.
        self.assertIsInstance(self.ftp.sock, ssl.SSLSocket)
        self.assert_session_goes_on()

    def test_feat_lists_tls_before_and_after_auth(self):
        plain = ftplib.FTP()
        try:
            plain.connect(HOST, PORT, timeout=TIMEOUT)
            features = plain.sendcmd("FEAT")
        finally:
            plain.close()
        for feature in ("AUTH TLS", "PBSZ", "PROT"):
            self.assertIn(" " + feature, features)
        self.assertNotIn(" CCC", features)


class TestSessionReuse(TlsTest):
    """A protected data connection that does not resume this control connection's TLS session is
    refused with 425, and the session goes on."""

    def refused(self, ftp):
        data = blob(300_000, 7)
        self.put("secret.bin", data)
        got = bytearray()
        # The handshake itself succeeds (a full one); the server then refuses the connection, so
        # reading it fails or ends early, and the reply is 425.
        with self.assertRaises((ftplib.error_temp, OSError)) as caught:
            ftp.retrbinary("RETR secret.bin", got.extend)
        if not isinstance(caught.exception, ftplib.error_temp):
            with self.assertRaises(ftplib.error_temp) as caught:
                ftp.voidresp()
        self.assertEqual(
            str(caught.exception), "425 TLS session of data connection not resumed."
        )
        self.assertNotEqual(bytes(got), data)
        self.assertEqual(len(got), 0)

    def test_stock_ftplib_is_refused(self):
        ftp = self.connect(ftplib.FTP_TLS)
        try:
            ftp.auth()
            ftp.login(USER, PASSWORD)
            ftp.prot_p()
            ftp.cwd("/" + self.name)
            self.refused(ftp)
            self.assert_session_goes_on(ftp)
        finally:
            ftp.close()

    def test_fresh_context_is_refused_then_a_resumed_one_works(self):
        ftp = self.connect(FreshContextFTP_TLS)
        try:
            ftp.auth()
            ftp.login(USER, PASSWORD)
            ftp.prot_p()
            ftp.cwd("/" + self.name)
            self.refused(ftp)
            self.assert_session_goes_on(ftp)
        finally:
            ftp.close()
        # This class's own connection, which resumes, still works after the refusals.
        self.assertEqual(self.retr("secret.bin"), self.disk("secret.bin"))

    def test_session_of_another_control_connection_is_refused(self):
        # `self.ftp` made a TLS session with this server, and resumed it on a data connection; a
        # second control connection offers it on its own data connection. The server must tell
        # whose session it is.
        self.put("mine.bin", b"mine")
        self.assertEqual(self.retr("mine.bin"), b"mine")
        ftp = self.connect(ForeignSessionFTP_TLS)
        ftp.foreign = self.ftp
        try:
            ftp.auth()
            ftp.login(USER, PASSWORD)
            ftp.prot_p()
            ftp.cwd("/" + self.name)
            self.refused(ftp)
            self.assert_session_goes_on(ftp)
        finally:
            ftp.close()
        # The session's owner still resumes it.
        self.assertEqual(self.retr("mine.bin"), b"mine")


class TestClearControl(TlsTest):
    """`--allow-ccc`: CCC returns the control connection to plaintext; protected data goes on."""

    def test_ccc_then_plaintext_control_and_protected_data(self):
        data = blob(200_000, 8)
        self.put("after-ccc.bin", data)
        self.assertEqual(self.retr("after-ccc.bin"), data)
        # Data connections resume the control connection's session, which goes with its TLS layer:
        # keep it for them.
        self.ftp.saved_session = self.ftp.sock.session
        self.assertEqual(self.ftp.ccc(), "200 Control connection is plaintext now.")
        # ftplib keeps the socket object, without its TLS layer.
        self.assertIsNone(self.ftp.sock.version())
        self.assert_session_goes_on()
        self.assertEqual(self.retr("after-ccc.bin"), data)
        up = blob(150_000, 9)
        self.stor("up-after-ccc.bin", up)
        self.assertEqual(self.disk("up-after-ccc.bin"), up)
        self.assertEqual(self.ftp.prot_c(), "200 Data connections are not protected.")
        self.assertEqual(self.retr("after-ccc.bin"), data)


class TestRequireTls(unittest.TestCase):
    """`--require-tls`: no login and no transfer in plaintext."""

    def test_plaintext_login_is_530_and_tls_login_works(self):
        plain = ftplib.FTP()
        try:
            plain.connect(HOST, PORT, timeout=TIMEOUT)
            with self.assertRaises(ftplib.error_perm) as caught:
                plain.login(USER, PASSWORD)
            self.assertTrue(str(caught.exception).startswith("530"), caught.exception)
            with self.assertRaises(ftplib.error_perm) as caught:
                plain.login()
            self.assertTrue(str(caught.exception).startswith("530"), caught.exception)
        finally:
            plain.close()
        ftp = ReusingFTP_TLS(context=context(), timeout=TIMEOUT)
        try:
            ftp.connect(HOST, PORT, timeout=TIMEOUT)
            ftp.auth()
            self.assertEqual(ftp.login(USER, PASSWORD), "230 Login successful.")
            # PROT C (the default): transfers are refused with 521.
            with self.assertRaises(ftplib.error_perm) as caught:
                ftp.nlst()
            self.assertTrue(str(caught.exception).startswith("521"), caught.exception)
            ftp.prot_p()
            ftp.nlst()
            self.assertEqual(ftp.voidcmd("NOOP"), "200 NOOP ok.")
        finally:
            ftp.close()


DEFAULT = [TestTlsTransfers, TestProtectionCommands, TestSessionReuse]

if __name__ == "__main__":
    names = sys.argv[5:]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names, sys.modules[__name__])
    else:
        suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in DEFAULT)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    if result.testsRun == 0:
        print("no tests ran")
        sys.exit(2)
    sys.exit(0 if result.wasSuccessful() else 1)
