"""Python ftplib against the ftp-proto example server.

Usage: python3 ftplib_suite.py HOST PORT ROOT [TestClass[.test_method] ...]

ROOT is the directory the server serves: tests create their fixtures there directly and check uploads
there byte for byte. Each test works in its own directory under ROOT. The server is expected to run with
`--user alice:secret` (override with FTP_USER / FTP_PASSWORD); some classes need other options, named in
their docstrings, and are run by `tests/interop_ftplib.rs` against a server started with them. Without
class names, the classes for a default server (`--anonymous ro`) run.

The categories follow pyftpdlib's own functional suite: authentication, login and argument rules per
command, file-system commands, store, retrieve, listings, abort, timeouts, configurable options and corner
cases. Reply codes and texts are asserted exactly where the session documents them.
"""

import ftplib
import io
import itertools
import os
import random
import re
import shutil
import socket
import sys
import time
import unittest

if len(sys.argv) < 4:
    sys.exit(__doc__)
HOST = sys.argv[1]
PORT = int(sys.argv[2])
ROOT = sys.argv[3]
USER = os.environ.get("FTP_USER", "alice")
PASSWORD = os.environ.get("FTP_PASSWORD", "secret")
# Every socket read has this timeout, so a server that goes silent fails a test instead of hanging it.
TIMEOUT = 10

_counter = itertools.count()


def blob(size, seed):
    """Deterministic bytes that look random (every byte value, CR and LF included)."""
    return random.Random(seed).randbytes(size)


def text(lines, tag):
    return "".join(
        "%s line %d: the quick brown fox\n" % (tag, i) for i in range(lines)
    ).encode()


def set_mtime(path, stamp):
    """Sets the modification time from 'YYYYMMDDHHMMSS' (UTC)."""
    seconds = time.mktime(time.strptime(stamp, "%Y%m%d%H%M%S")) - time.timezone
    os.utime(path, (seconds, seconds))


def read_replies(sock_file, count):
    """Reads `count` complete replies from a raw control connection; returns their last lines."""
    replies = []
    while len(replies) < count:
        line = sock_file.readline()
        if not line:
            raise AssertionError("connection closed after replies %r" % replies)
        line = line.decode("latin-1")
        assert line.endswith("\r\n"), line
        if line[3:4] == "-":
            code = line[:3]
            while True:
                more = sock_file.readline().decode("latin-1")
                if not more:
                    raise AssertionError("EOF in multi-line reply")
                if more.startswith(code + " "):
                    line = more
                    break
        replies.append(line.rstrip("\r\n"))
    return replies


class FtpTest(unittest.TestCase):
    """Connects, logs in (as `login_as`) and works in a fresh directory under the root."""

    login_as = "writer"  # "writer", "anonymous" or None

    def setUp(self):
        self.name = "py-%s-%d" % (self._testMethodName, next(_counter))
        self.local = os.path.join(ROOT, self.name)
        os.mkdir(self.local)
        os.chmod(self.local, 0o755)
        self.ftp = self.connect()
        if self.login_as == "writer":
            self.assertEqual(self.ftp.login(USER, PASSWORD), "230 Login successful.")
        elif self.login_as == "anonymous":
            self.assertEqual(self.ftp.login(), "230 Login successful.")
        if self.login_as:
            self.ftp.cwd("/" + self.name)

    def tearDown(self):
        try:
            self.ftp.quit()
        except Exception:
            pass
        self.ftp.close()
        shutil.rmtree(self.local, ignore_errors=True)

    def connect(self):
        ftp = ftplib.FTP()
        greeting = ftp.connect(HOST, PORT, timeout=TIMEOUT)
        self.assertEqual(greeting, "220 ftp-proto ready")
        return ftp

    def path(self, rel):
        return os.path.join(self.local, rel)

    def put(self, rel, data, mode=0o644):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def disk(self, rel):
        with open(self.path(rel), "rb") as f:
            return f.read()

    def retr(self, name, rest=None, ftp=None):
        ftp = ftp or self.ftp
        out = bytearray()
        resp = ftp.retrbinary("RETR " + name, out.extend, rest=rest)
        self.assertEqual(resp, "226 Transfer complete.")
        return bytes(out)

    def stor(self, name, data, cmd="STOR", rest=None):
        resp = self.ftp.storbinary("%s %s" % (cmd, name), io.BytesIO(data), rest=rest)
        self.assertEqual(resp, "226 Transfer complete.")

    def assert_error(self, kind, reply, func, *args):
        with self.assertRaises(kind) as caught:
            func(*args)
        self.assertEqual(str(caught.exception), reply)

    def assert_perm(self, reply, func, *args):
        self.assert_error(ftplib.error_perm, reply, func, *args)

    def assert_noop(self, ftp=None):
        self.assertEqual((ftp or self.ftp).sendcmd("NOOP"), "200 NOOP ok.")


# ---------------------------------------------------------------------------------------------------
# Authentication


class TestAuthentication(FtpTest):
    login_as = None

    def test_login_ok(self):
        self.assertEqual(self.ftp.login(USER, PASSWORD), "230 Login successful.")
        self.assertEqual(self.ftp.pwd(), "/")

    def test_bad_password_and_unknown_user_get_530(self):
        self.assert_perm("530 Login incorrect.", self.ftp.login, USER, "wrong")
        self.assert_perm("530 Login incorrect.", self.ftp.login, "nobody", PASSWORD)
        # Still not logged in, but the session accepts a correct login.
        self.assert_perm("530 Please login with USER and PASS.", self.ftp.pwd)
        self.assertEqual(self.ftp.login(USER, PASSWORD), "230 Login successful.")

    def test_three_failures_close_the_connection(self):
        for _ in range(2):
            self.assert_perm("530 Login incorrect.", self.ftp.login, USER, "wrong")
        self.assert_perm("530 Login incorrect.", self.ftp.login, USER, "wrong")
        self.assertEqual(
            self.ftp.getline(), "421 Too many failed logins, closing control connection."
        )
        self.assertEqual(self.ftp.file.readline(), "")  # EOF

    def test_password_is_case_sensitive(self):
        self.assert_perm("530 Login incorrect.", self.ftp.login, USER, PASSWORD.upper())

    def test_anonymous_logins(self):
        self.assertEqual(self.ftp.login(), "230 Login successful.")
        self.assertEqual(
            self.ftp.sendcmd("USER ftp"),
            "331 Anonymous login ok, send your email address as password.",
        )
        self.assertEqual(self.ftp.sendcmd("PASS"), "230 Login successful.")
        self.assertEqual(
            self.ftp.sendcmd("USER anonymous"),
            "331 Anonymous login ok, send your email address as password.",
        )
        self.assertEqual(self.ftp.sendcmd("PASS "), "230 Login successful.")

    def test_user_twice(self):
        self.assertEqual(self.ftp.sendcmd("USER " + USER), "331 Please specify the password.")
        self.assertEqual(self.ftp.sendcmd("USER " + USER), "331 Please specify the password.")
        self.assertEqual(self.ftp.sendcmd("PASS " + PASSWORD), "230 Login successful.")
        # USER while logged in logs out (RFC 959 4.1.1).
        self.assertEqual(self.ftp.sendcmd("USER " + USER), "331 Please specify the password.")
        self.assert_perm("530 Please login with USER and PASS.", self.ftp.pwd)
        self.assertEqual(self.ftp.sendcmd("PASS " + PASSWORD), "230 Login successful.")
        self.assertEqual(self.ftp.pwd(), "/")

    def test_wrong_order(self):
        self.assert_perm("503 Login with USER first.", self.ftp.sendcmd, "PASS " + PASSWORD)
        self.ftp.login(USER, PASSWORD)
        self.assert_perm("503 Already logged in.", self.ftp.sendcmd, "PASS " + PASSWORD)

    def test_rein(self):
        self.ftp.login(USER, PASSWORD)
        self.ftp.cwd("/")
        self.assertEqual(self.ftp.sendcmd("REIN"), "220 ftp-proto ready")
        self.assert_perm("530 Please login with USER and PASS.", self.ftp.pwd)
        self.ftp.login(USER, PASSWORD)
        self.assertEqual(self.ftp.pwd(), "/")


# ---------------------------------------------------------------------------------------------------
# Login and argument rules per command


class TestLoginRules(FtpTest):
    login_as = None

    NEED_LOGIN = [
        "PWD", "CWD /", "CDUP", "TYPE I", "MODE S", "STRU F", "PASV", "EPSV",
        "PORT 127,0,0,1,200,1", "EPRT |1|127.0.0.1|5000|", "REST 0", "RETR x", "STOR x",
        "APPE x", "STOU", "LIST", "NLST", "MLSD", "MLST", "STAT /", "SIZE x", "MDTM x",
        "DELE x", "MKD x", "RMD x", "RNFR x", "RNTO x", "MFMT 20200101000000 x", "ALLO 1", "STAT",
        "SITE HELP", "RETR", "MKD",
    ]

    def test_commands_before_login_get_530(self):
        for cmd in self.NEED_LOGIN:
            with self.subTest(cmd=cmd):
                self.assert_perm("530 Please login with USER and PASS.", self.ftp.sendcmd, cmd)
        # Nothing was created or touched.
        self.assertEqual(os.listdir(self.local), [])

    def test_commands_allowed_before_login(self):
        self.assertEqual(self.ftp.sendcmd("SYST"), "215 UNIX Type: L8")
        self.assertEqual(self.ftp.sendcmd("NOOP"), "200 NOOP ok.")
        self.assertTrue(self.ftp.sendcmd("FEAT").startswith("211-Features:"))
        self.assertTrue(self.ftp.sendcmd("HELP").startswith("214-"))
        self.assertEqual(self.ftp.sendcmd("OPTS UTF8 ON"), "200 Always in UTF8 mode.")
        self.assertEqual(self.ftp.sendcmd("HOST 127.0.0.1"), "220 Host accepted.")
        self.assert_perm("500 Unknown command.", self.ftp.sendcmd, "XYZZY")
        self.ftp.login(USER, PASSWORD)


class TestArguments(FtpTest):
    NEED_ARGUMENT = [
        "CWD", "MKD", "RMD", "DELE", "RNFR", "RNTO", "SIZE", "MDTM", "TYPE", "MODE", "STRU",
        "PORT", "EPRT", "REST", "RETR", "STOR", "APPE", "ALLO", "OPTS", "SITE", "USER",
    ]
    NO_ARGUMENT = ["PWD", "CDUP", "PASV", "NOOP", "SYST", "FEAT", "REIN", "ABOR", "QUIT"]

    def test_missing_arguments_get_501(self):
        for verb in self.NEED_ARGUMENT:
            with self.subTest(verb=verb):
                self.assert_perm("501 %s needs an argument." % verb, self.ftp.sendcmd, verb)
        self.assertEqual(self.ftp.pwd(), "/" + self.name, "USER without a name changed nothing")

    def test_unexpected_arguments_get_501(self):
        for verb in self.NO_ARGUMENT:
            with self.subTest(verb=verb):
                self.assert_perm(
                    "501 %s takes no argument." % verb, self.ftp.sendcmd, verb + " x"
                )
        # QUIT with an argument did not quit, REIN did not log out.
        self.assertEqual(self.ftp.pwd(), "/" + self.name)

    def test_bad_arguments_get_501(self):
        for cmd in [
            "REST -1", "REST abc", "REST 1.5", "PORT 1,2,3", "PORT 300,0,0,1,1,1",
            "EPRT |1|127.0.0.1|0|", "TYPE X", "MODE Z", "STRU Q", "EPSV foo",
            "MFMT 20231301000000 x",
        ]:
            with self.subTest(cmd=cmd):
                with self.assertRaises(ftplib.error_perm) as caught:
                    self.ftp.sendcmd(cmd)
                self.assertTrue(str(caught.exception).startswith("501 "), caught.exception)
        self.assert_noop()

    def test_unsupported_parameters_get_504(self):
        for cmd in ["TYPE L 7", "TYPE E", "STRU P", "STRU R", "MODE B", "MODE C"]:
            with self.subTest(cmd=cmd):
                with self.assertRaises(ftplib.error_perm) as caught:
                    self.ftp.sendcmd(cmd)
                self.assertTrue(str(caught.exception).startswith("504 "), caught.exception)

    def test_parameter_commands(self):
        self.assertEqual(self.ftp.sendcmd("TYPE A"), "200 Switching to ASCII mode.")
        self.assertEqual(self.ftp.sendcmd("type i"), "200 Switching to Binary mode.")
        self.assertEqual(self.ftp.sendcmd("TYPE L 8"), "200 Switching to Binary mode.")
        self.assertEqual(self.ftp.sendcmd("STRU F"), "200 Structure set to F.")
        self.assertEqual(self.ftp.sendcmd("MODE S"), "200 Mode set to S.")
        self.assertEqual(self.ftp.sendcmd("ALLO 100"), "202 No storage allocation necessary.")
        self.assertEqual(self.ftp.sendcmd("HELP RETR"), "214 Syntax: RETR <SP> <pathname>")
        self.assert_perm("501 Unknown command.", self.ftp.sendcmd, "HELP XYZZY")
        self.assertEqual(
            self.ftp.sendcmd("REST 10"), "350 Restarting at 10. Send STORE or RETRIEVE."
        )

    def test_feat(self):
        feat = self.ftp.sendcmd("FEAT").split("\n")
        self.assertEqual(feat[0], "211-Features:")
        self.assertEqual(feat[-1], "211 End")
        for feature in ["EPRT", "EPSV", "MDTM", "PASV", "REST STREAM", "SIZE", "UTF8", "MFMT"]:
            self.assertIn(" " + feature, feat)
        mlst = [line for line in feat if line.startswith(" MLST ")]
        self.assertEqual(len(mlst), 1, feat)
        for fact in ["type*", "size*", "modify*", "perm*"]:
            self.assertIn(fact, mlst[0])


# ---------------------------------------------------------------------------------------------------
# File-system commands


class TestFilesystem(FtpTest):
    def test_pwd_cwd_cdup(self):
        os.mkdir(self.path("sub"))
        self.put("file.txt", b"x")
        self.assertEqual(self.ftp.pwd(), "/" + self.name)
        self.assertEqual(self.ftp.cwd("sub"), "250 Directory successfully changed.")
        self.assertEqual(self.ftp.pwd(), "/%s/sub" % self.name)
        self.assertEqual(self.ftp.sendcmd("CDUP"), "250 Directory successfully changed.")
        self.assertEqual(self.ftp.pwd(), "/" + self.name)
        self.assert_perm("550 Failed to change directory.", self.ftp.cwd, "file.txt")
        self.assert_perm("550 Failed to change directory.", self.ftp.cwd, "missing")
        self.assertEqual(self.ftp.pwd(), "/" + self.name)
        # Never above the root.
        self.ftp.cwd("/../../..")
        self.assertEqual(self.ftp.pwd(), "/")
        self.ftp.sendcmd("CDUP")
        self.assertEqual(self.ftp.pwd(), "/")

    def test_mkd_rmd(self):
        self.assertEqual(self.ftp.mkd("new dir"), "/%s/new dir" % self.name)
        self.assertTrue(os.path.isdir(self.path("new dir")))
        # A double quote in the name is doubled in the 257 reply (RFC 959), which ftplib undoes.
        self.assertEqual(self.ftp.mkd('say "hi"'), '/%s/say "hi"' % self.name)
        self.assertTrue(os.path.isdir(self.path('say "hi"')))
        self.assert_perm("550 File exists.", self.ftp.mkd, "new dir")
        self.put("new dir/inside", b"")
        with self.assertRaises(ftplib.error_perm) as caught:
            self.ftp.rmd("new dir")
        self.assertTrue(str(caught.exception).startswith("550 "))
        os.remove(self.path("new dir/inside"))
        self.assertEqual(self.ftp.rmd("new dir"), "250 Directory removed.")
        self.assertFalse(os.path.exists(self.path("new dir")))
        self.assert_perm("550 No such file or directory.", self.ftp.rmd, "new dir")
        self.put("plain", b"")
        with self.assertRaises(ftplib.error_perm):
            self.ftp.rmd("plain")
        self.assertTrue(os.path.isfile(self.path("plain")))

    def test_dele(self):
        self.put("doomed.bin", b"x")
        os.mkdir(self.path("dir"))
        self.assertEqual(self.ftp.delete("doomed.bin"), "250 File deleted.")
        self.assertFalse(os.path.exists(self.path("doomed.bin")))
        self.assert_perm("550 No such file or directory.", self.ftp.delete, "doomed.bin")
        with self.assertRaises(ftplib.error_perm):
            self.ftp.delete("dir")
        self.assertTrue(os.path.isdir(self.path("dir")))

    def test_rename(self):
        data = blob(5000, 1)
        self.put("old.bin", data)
        os.mkdir(self.path("dir"))
        self.assertEqual(self.ftp.rename("old.bin", "dir/new name.bin"), "250 Rename successful.")
        self.assertFalse(os.path.exists(self.path("old.bin")))
        self.assertEqual(self.disk("dir/new name.bin"), data)
        self.assertEqual(self.ftp.rename("dir", "renamed dir"), "250 Rename successful.")
        self.assertEqual(self.disk("renamed dir/new name.bin"), data)
        self.assert_perm("550 No such file or directory.", self.ftp.rename, "missing", "x")
        self.assert_perm("503 RNFR required first.", self.ftp.sendcmd, "RNTO x")
        # Anything between RNFR and RNTO cancels the rename.
        self.assertEqual(self.ftp.sendcmd("RNFR renamed dir"), "350 Ready for RNTO.")
        self.assert_noop()
        self.assert_perm("503 RNFR required first.", self.ftp.sendcmd, "RNTO other")
        self.assertTrue(os.path.isdir(self.path("renamed dir")))

    def test_size_and_mdtm(self):
        data = blob(123457, 2)
        self.put("sized.bin", data)
        set_mtime(self.path("sized.bin"), "20210304050607")
        os.mkdir(self.path("dir"))
        # SIZE needs TYPE I (the TYPE A size would need the whole file read).
        self.assert_perm("550 SIZE not allowed in ASCII mode.", self.ftp.size, "sized.bin")
        self.ftp.voidcmd("TYPE I")
        self.assertEqual(self.ftp.size("sized.bin"), len(data))
        self.assert_perm("550 Not a plain file.", self.ftp.size, "dir")
        self.assert_perm("550 No such file or directory.", self.ftp.size, "missing")
        self.assertEqual(self.ftp.sendcmd("MDTM sized.bin"), "213 20210304050607")
        self.assert_perm("550 No such file or directory.", self.ftp.sendcmd, "MDTM missing")

    def test_mfmt(self):
        self.put("stamp.txt", b"x")
        self.assertEqual(
            self.ftp.sendcmd("MFMT 20200102030405 stamp.txt"),
            "213 Modify=20200102030405; /%s/stamp.txt" % self.name,
        )
        self.assertEqual(self.ftp.sendcmd("MDTM stamp.txt"), "213 20200102030405")
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(os.stat(self.path("stamp.txt")).st_mtime))
        self.assertEqual(stamp, "20200102030405")

    def test_paths_stay_under_the_root(self):
        self.ftp.voidcmd("TYPE I")
        # `..` is clamped at the root: these name /etc/passwd under the served root, which is absent.
        self.assert_perm("550 No such file or directory.", self.ftp.size, "../../../../etc/passwd")
        self.assert_perm("550 No such file or directory.", self.ftp.size, "/../etc/passwd")
        # A symlink leading out of the root is refused.
        os.symlink("/etc", self.path("escape"))
        with self.assertRaises(ftplib.error_perm) as caught:
            self.retr("escape/passwd")
        self.assertTrue(str(caught.exception).startswith("550 "), caught.exception)
        with self.assertRaises(ftplib.error_perm):
            self.ftp.cwd("escape")
        self.assert_noop()


# ---------------------------------------------------------------------------------------------------
# Store


class TestStore(FtpTest):
    def test_storbinary(self):
        data = blob(1536 * 1024 + 5, 3)
        self.stor("up.bin", data)
        self.assertEqual(self.disk("up.bin"), data)
        # Overwrite with a shorter file: truncated.
        self.stor("up.bin", data[:1000])
        self.assertEqual(self.disk("up.bin"), data[:1000])
        self.stor("empty.bin", b"")
        self.assertEqual(self.disk("empty.bin"), b"")

    def test_storbinary_in_active_mode(self):
        self.ftp.set_pasv(False)
        data = blob(300000, 4)
        self.stor("active.bin", data)
        self.assertEqual(self.disk("active.bin"), data)

    def test_storlines_converts_crlf_to_lf(self):
        lines = text(3000, "stored")
        resp = self.ftp.storlines("STOR lines.txt", io.BytesIO(lines))
        self.assertEqual(resp, "226 Transfer complete.")
        self.assertEqual(self.disk("lines.txt"), lines)

    def test_appe(self):
        first, second = blob(70000, 5), blob(80001, 6)
        self.stor("log.bin", first, cmd="APPE")
        self.assertEqual(self.disk("log.bin"), first)
        self.stor("log.bin", second, cmd="APPE")
        self.assertEqual(self.disk("log.bin"), first + second)

    def test_stou(self):
        self.put("ftp.upload", b"existing")
        self.ftp.voidcmd("TYPE I")
        names = []
        for seed in (7, 8):
            data = blob(10000, seed)
            host, port = self.ftp.makepasv()
            with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
                resp = self.ftp.sendcmd("STOU")
                match = re.fullmatch(r"150 FILE: (.+)", resp)
                self.assertTrue(match, resp)
                conn.sendall(data)
            self.assertEqual(self.ftp.voidresp(), "226 Transfer complete.")
            names.append(match.group(1))
            self.assertEqual(self.disk(match.group(1)), data)
        self.assertNotIn("ftp.upload", names)
        self.assertEqual(len(set(names)), 2, names)
        self.assertEqual(self.disk("ftp.upload"), b"existing")

    def test_rest_stor_resumes(self):
        data = blob(500000, 9)
        # The partial file has garbage past the restart point: resuming truncates there.
        self.put("resume.bin", data[:200000] + b"garbage")
        self.stor("resume.bin", data[200000:], rest=200000)
        self.assertEqual(self.disk("resume.bin"), data)

    def test_rest_past_the_end_is_refused(self):
        self.put("short.bin", b"12345")
        with self.assertRaises(ftplib.error_perm) as caught:
            self.stor("short.bin", b"more", rest=10)
        self.assertTrue(str(caught.exception).startswith("550 "), caught.exception)
        self.assertEqual(self.disk("short.bin"), b"12345")
        self.assert_noop()

    def test_store_errors(self):
        os.mkdir(self.path("dir"))
        for name in ["missing/x.bin", "dir"]:
            with self.subTest(name=name):
                with self.assertRaises(ftplib.error_perm) as caught:
                    self.stor(name, b"data")
                self.assertTrue(str(caught.exception).startswith("550 "), caught.exception)
        self.assertEqual(os.listdir(self.path("dir")), [])
        self.ftp.sendcmd("REST 5")
        self.assert_perm("550 REST not allowed with APPE.", self.stor, "x", b"", "APPE")
        self.assert_noop()


# ---------------------------------------------------------------------------------------------------
# Retrieve


class TestRetrieve(FtpTest):
    def test_retrbinary(self):
        data = blob(4 * 1024 * 1024 + 3, 10)
        self.put("big.bin", data)
        self.put("empty.bin", b"")
        self.assertEqual(self.retr("big.bin"), data)
        self.assertEqual(self.retr("empty.bin"), b"")
        # Active mode too.
        self.ftp.set_pasv(False)
        self.assertEqual(self.retr("big.bin"), data)

    def test_retrlines(self):
        lines = text(2000, "retr")
        self.put("lines.txt", lines)
        got = []
        self.assertEqual(
            self.ftp.retrlines("RETR lines.txt", got.append), "226 Transfer complete."
        )
        self.assertEqual(got, lines.decode().split("\n")[:-1])

    def test_type_a_puts_crlf_on_the_wire(self):
        lines = text(1000, "wire") + b"no newline at the end"
        self.put("wire.txt", lines)
        self.ftp.voidcmd("TYPE A")
        conn = self.ftp.transfercmd("RETR wire.txt")
        received = bytearray()
        with conn:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received.extend(chunk)
        self.assertEqual(self.ftp.voidresp(), "226 Transfer complete.")
        self.assertEqual(bytes(received), lines.replace(b"\n", b"\r\n"))

    def test_rest_retr(self):
        data = blob(1000003, 11)
        self.put("resume.bin", data)
        for offset in [1, 65536, 500000, len(data) - 1, len(data)]:
            with self.subTest(offset=offset):
                self.assertEqual(self.retr("resume.bin", rest=offset), data[offset:])
        # Past the end.
        with self.assertRaises(ftplib.error_perm) as caught:
            self.retr("resume.bin", rest=len(data) + 1)
        self.assertTrue(str(caught.exception).startswith("550 "), caught.exception)
        # REST is used up by one transfer.
        self.assertEqual(self.retr("resume.bin"), data)

    def test_retrieve_errors(self):
        os.mkdir(self.path("dir"))
        self.assert_perm("550 No such file or directory.", self.retr, "missing.bin")
        with self.assertRaises(ftplib.error_perm) as caught:
            self.retr("dir")
        self.assertTrue(str(caught.exception).startswith("550 "), caught.exception)
        # Without PASV/PORT first.
        self.assert_error(
            ftplib.error_temp, "425 Use PORT, PASV, EPRT or EPSV first.",
            self.ftp.sendcmd, "RETR missing.bin",
        )
        self.assert_noop()


# ---------------------------------------------------------------------------------------------------
# Listings


class TestListing(FtpTest):
    def fixture(self):
        self.put("b file.bin", blob(4321, 12))
        self.put("a.txt", b"hello\n")
        os.mkdir(self.path("sub"))
        self.put("sub/inner.txt", b"inner")
        for rel in ["b file.bin", "a.txt", "sub"]:
            set_mtime(self.path(rel), "20210304050607")
        os.chmod(self.path("sub"), 0o755)

    def test_nlst_names_are_usable_by_retr(self):
        self.fixture()
        names = self.ftp.nlst()
        self.assertEqual(names, ["a.txt", "b file.bin", "sub"])
        for name in names:
            if os.path.isfile(self.path(name)):
                self.assertEqual(self.retr(name), self.disk(name))
        self.assertEqual(self.ftp.nlst("sub/inner.txt")[-1].split("/")[-1], "inner.txt")

    def test_list(self):
        self.fixture()
        lines = []
        self.assertEqual(self.ftp.retrlines("LIST", lines.append), "226 Directory send OK.")
        self.assertEqual(len(lines), 3, lines)
        expected = [
            ("-rw-r--r--", 6, "a.txt"),
            ("-rw-r--r--", 4321, "b file.bin"),
            ("drwxr-xr-x", None, "sub"),
        ]
        for line, (mode, size, name) in zip(lines, expected):
            pattern = r"%s +\d+ +\S+ +\S+ +(\d+) Mar 04  2021 %s" % (re.escape(mode), re.escape(name))
            match = re.fullmatch(pattern, line)
            self.assertTrue(match, "%r does not match %r" % (line, pattern))
            if size is not None:
                self.assertEqual(int(match.group(1)), size)
        # A file argument lists that file; `-la` style flags are accepted.
        lines = []
        self.ftp.retrlines("LIST a.txt", lines.append)
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].endswith(" a.txt"), lines)
        lines = []
        self.ftp.retrlines("LIST -la sub", lines.append)
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].endswith(" inner.txt"), lines)
        self.assert_perm("550 No such file or directory.", self.ftp.retrlines, "LIST missing", print)

    def test_mlsd_facts(self):
        self.fixture()
        entries = dict(self.ftp.mlsd())
        self.assertEqual(sorted(entries), ["a.txt", "b file.bin", "sub"])
        a, b, sub = entries["a.txt"], entries["b file.bin"], entries["sub"]
        self.assertEqual(a["type"], "file")
        self.assertEqual(a["size"], "6")
        self.assertEqual(b["size"], "4321")
        self.assertEqual(a["modify"], "20210304050607")
        self.assertEqual(sub["type"], "dir")
        self.assertEqual(sub["modify"], "20210304050607")
        self.assertNotIn("size", sub)
        # A read-write user may read, append, delete, rename and write files; list, enter, create
        # in, delete and rename directories.
        self.assertEqual(sorted(a["perm"]), sorted("radfw"))
        self.assertEqual(sorted(sub["perm"]), sorted("elcdfmp"))
        uniques = {a["unique"], b["unique"], sub["unique"]}
        self.assertEqual(len(uniques), 3)
        # OPTS MLST narrows the facts.
        self.assertEqual(self.ftp.sendcmd("OPTS MLST size;type;"), "200 MLST OPTS type;size;")
        entries = dict(self.ftp.mlsd())
        self.assertEqual(entries["a.txt"], {"type": "file", "size": "6"})
        self.assert_perm("550 No such file or directory.", lambda: list(self.ftp.mlsd("missing")))

    def test_mlst(self):
        self.fixture()
        reply = self.ftp.sendcmd("MLST a.txt").split("\n")
        self.assertEqual(reply[0], "250-Listing /%s/a.txt" % self.name)
        self.assertEqual(reply[-1], "250 End")
        self.assertEqual(len(reply), 3)
        facts, _, path = reply[1].partition("; ")
        self.assertTrue(reply[1].startswith(" type=file;size=6;modify=20210304050607;perm="), reply)
        self.assertEqual(path, "/%s/a.txt" % self.name)
        reply = self.ftp.sendcmd("MLST").split("\n")
        self.assertTrue(reply[1].startswith(" type=dir;"), reply)
        self.assert_perm("550 No such file or directory.", self.ftp.sendcmd, "MLST missing")

    def test_stat_path(self):
        self.fixture()
        reply = self.ftp.sendcmd("STAT .").split("\n")
        self.assertEqual(reply[0], "213-Status of /%s:" % self.name)
        self.assertEqual(reply[-1], "213 End of status.")
        self.assertEqual(len(reply), 5, reply)
        self.assertTrue(reply[1].endswith(" a.txt") and reply[1].startswith("-rw-r--r--"))
        self.assertTrue(reply[2].endswith(" b file.bin"))
        self.assertTrue(reply[3].endswith(" sub") and reply[3].startswith("d"))
        self.assert_perm("550 No such file or directory.", self.ftp.sendcmd, "STAT missing")
        status = self.ftp.sendcmd("STAT").split("\n")
        self.assertEqual(status[0], "211-FTP server status:")
        self.assertIn("Logged in as " + USER, status)
        self.assertEqual(status[-1], "211 End of status")

    def test_listings_in_active_mode(self):
        self.fixture()
        self.ftp.set_pasv(False)
        self.assertEqual(self.ftp.nlst(), ["a.txt", "b file.bin", "sub"])
        self.assertEqual(sorted(dict(self.ftp.mlsd())), ["a.txt", "b file.bin", "sub"])


class TestNlstOfADirectory(FtpTest):
    """NLST with a directory argument: the names must work with RETR as they are (what `mget dir/*`
    in a command-line client relies on, RFC 959 4.1.3: "return information that can be used by a
    program to further process the files automatically")."""

    def test_names_from_nlst_of_a_subdirectory_are_retrievable(self):
        self.put("sub/x.bin", blob(1000, 13))
        self.put("sub/y.bin", blob(2000, 14))
        names = self.ftp.nlst("sub")
        self.assertEqual(len(names), 2, names)
        for name in names:
            self.assertEqual(self.retr(name), self.disk("sub/" + name.split("/")[-1]), name)


# ---------------------------------------------------------------------------------------------------
# Abort


class TestAbort(FtpTest):
    BIG = 24 * 1024 * 1024

    def big_file(self):
        # Far larger than the loopback socket buffers, so the transfer cannot be complete yet.
        self.put("big.bin", blob(self.BIG, 15))

    def start_retr(self):
        self.ftp.voidcmd("TYPE I")
        conn = self.ftp.transfercmd("RETR big.bin")
        received = 0
        while received < 65536:
            chunk = conn.recv(65536)
            self.assertTrue(chunk)
            received += len(chunk)
        return conn

    def test_abor_during_retr(self):
        self.big_file()
        conn = self.start_retr()
        self.ftp.putcmd("ABOR")
        self.assertEqual(self.ftp.getline(), "426 Connection closed; transfer aborted.")
        self.assertEqual(self.ftp.voidresp(), "226 Abort successful.")
        conn.close()
        self.assert_noop()
        # The session goes on transferring.
        self.put("small.bin", b"small")
        self.assertEqual(self.retr("small.bin"), b"small")

    def test_abor_with_telnet_ip_and_synch(self):
        # RFC 959's way: Telnet IP, then Synch (IAC DM), then ABOR, all in band.
        self.big_file()
        conn = self.start_retr()
        self.ftp.sock.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
        self.assertEqual(self.ftp.getline(), "426 Connection closed; transfer aborted.")
        self.assertEqual(self.ftp.voidresp(), "226 Abort successful.")
        conn.close()
        self.assert_noop()

    def test_abor_during_stor(self):
        self.ftp.voidcmd("TYPE I")
        conn = self.ftp.transfercmd("STOR partial.bin")
        conn.sendall(blob(100000, 16))
        self.ftp.putcmd("ABOR")
        self.assertEqual(self.ftp.getline(), "426 Connection closed; transfer aborted.")
        self.assertEqual(self.ftp.voidresp(), "226 Abort successful.")
        conn.close()
        self.assert_noop()
        self.stor("after.bin", b"after")
        self.assertEqual(self.disk("after.bin"), b"after")

    def test_abor_without_transfer(self):
        self.assertEqual(self.ftp.sendcmd("ABOR"), "226 No transfer to abort.")
        self.assert_noop()

    def test_abor_after_the_transfer_finished(self):
        self.put("small.bin", b"tiny")
        self.assertEqual(self.retr("small.bin"), b"tiny")
        self.assertEqual(self.ftp.sendcmd("ABOR"), "226 No transfer to abort.")

    def test_stat_during_transfer(self):
        self.big_file()
        conn = self.start_retr()
        self.ftp.putcmd("STAT")
        status = self.ftp.getmultiline()
        match = re.fullmatch(r"213 Status: RETR /%s/big.bin: (\d+) bytes transferred\." % self.name,
                             status)
        self.assertTrue(match, status)
        self.assertGreaterEqual(int(match.group(1)), 65536)
        self.assertLess(int(match.group(1)), self.BIG)
        self.ftp.putcmd("ABOR")
        self.assertEqual(self.ftp.getline(), "426 Connection closed; transfer aborted.")
        self.assertEqual(self.ftp.voidresp(), "226 Abort successful.")
        conn.close()
        self.assert_noop()


class TestOobAbort(TestAbort):
    """ftplib's own `FTP.abort()`: it sends `ABOR\\r\\n` with MSG_OOB, which makes the final LF TCP
    urgent data. A server must read urgent data inline (SO_OOBINLINE, as vsftpd and pyftpdlib do) or
    it never sees the end of the line."""

    def setUp(self):
        super().setUp()
        self.ftp.sock.settimeout(3)  # a server that misses the line end never answers: fail fast

    def test_ftplib_abort_during_retr(self):
        self.big_file()
        conn = self.start_retr()
        self.assertEqual(self.ftp.abort(), "426 Connection closed; transfer aborted.")
        self.assertEqual(self.ftp.voidresp(), "226 Abort successful.")
        conn.close()
        self.assert_noop()

    def test_ftplib_abort_without_transfer(self):
        self.assertEqual(self.ftp.abort(), "226 No transfer to abort.")
        self.assert_noop()


# Only the tests defined in TestOobAbort run for it (not the inherited in-band ones twice).
for _name in list(vars(TestAbort)):
    if _name.startswith("test_"):
        setattr(TestOobAbort, _name, None)


# ---------------------------------------------------------------------------------------------------
# Configurable options (each class runs against a server started with the options it names)


class TestAnonymousReadOnly(FtpTest):
    """Server: `--anonymous ro` (the default)."""

    login_as = "anonymous"

    def test_reads_work(self):
        data = blob(100000, 17)
        self.put("pub.bin", data)
        self.assertEqual(self.retr("pub.bin"), data)
        self.assertEqual(self.ftp.nlst(), ["pub.bin"])
        self.assertEqual(sorted(dict(self.ftp.mlsd())["pub.bin"]["perm"]), ["r"])

    def test_writes_are_refused_with_550(self):
        self.put("keep.bin", b"keep")
        denied = "550 Permission denied."
        self.assert_perm(denied, self.stor, "new.bin", b"data")
        self.assert_perm(denied, self.stor, "keep.bin", b"data", "APPE")
        self.assert_perm(denied, self.ftp.sendcmd, "STOU")
        self.assert_perm(denied, self.ftp.mkd, "dir")
        self.assert_perm(denied, self.ftp.rmd, "dir")
        self.assert_perm(denied, self.ftp.delete, "keep.bin")
        self.assert_perm(denied, self.ftp.sendcmd, "RNFR keep.bin")
        self.assert_perm(denied, self.ftp.sendcmd, "MFMT 20200101000000 keep.bin")
        self.assertEqual(os.listdir(self.local), ["keep.bin"])
        self.assertEqual(self.disk("keep.bin"), b"keep")


class TestAnonymousOff(FtpTest):
    """Server: `--anonymous off`."""

    login_as = None

    def test_anonymous_is_refused(self):
        for name in ["anonymous", "ftp", "ANONYMOUS"]:
            with self.subTest(name=name):
                self.assert_perm(
                    "530 Anonymous access is not allowed.", self.ftp.sendcmd, "USER " + name
                )
        self.assert_perm("503 Login with USER first.", self.ftp.sendcmd, "PASS x@y")
        self.assertEqual(self.ftp.login(USER, PASSWORD), "230 Login successful.")


class TestAnonymousReadWrite(FtpTest):
    """Server: `--anonymous rw`."""

    login_as = "anonymous"

    def test_anonymous_may_write(self):
        data = blob(50000, 18)
        self.stor("anon.bin", data)
        self.assertEqual(self.disk("anon.bin"), data)
        self.assertEqual(self.ftp.mkd("anon dir"), "/%s/anon dir" % self.name)


# ---------------------------------------------------------------------------------------------------
# Timeouts (servers started with short timers)


class TestIdleTimeout(FtpTest):
    """Server: `--idle-timeout 2`."""

    def expect_421(self, ftp):
        ftp.sock.settimeout(8)
        self.assertEqual(ftp.getline(), "421 Timeout: closing control connection.")
        self.assertEqual(ftp.file.readline(), "")  # EOF

    def test_idle_session_gets_421(self):
        self.expect_421(self.ftp)

    def test_idle_before_login_gets_421(self):
        ftp = self.connect()
        try:
            self.expect_421(ftp)
        finally:
            ftp.close()

    def test_commands_keep_the_session_alive(self):
        for _ in range(6):
            time.sleep(0.5)
            self.assert_noop()
        self.expect_421(self.ftp)


class TestIdleAfterTransfer(FtpTest):
    """Server: `--idle-timeout 2`. The idle timer does not run during a transfer, so a transfer longer
    than the idle timeout must not end the session: after its 226 the client has a full idle period."""

    def test_slow_upload_longer_than_the_idle_timeout(self):
        self.ftp.voidcmd("TYPE I")
        conn = self.ftp.transfercmd("STOR slow.bin")
        data = blob(30 * 1000, 19)
        for i in range(30):  # about 3 s
            conn.sendall(data[i * 1000:(i + 1) * 1000])
            time.sleep(0.1)
        conn.close()
        self.assertEqual(self.ftp.voidresp(), "226 Transfer complete.")
        time.sleep(0.5)  # a client thinking for a moment, well within the idle timeout
        self.assert_noop()
        self.assertEqual(self.disk("slow.bin"), data)


class TestDataTimeout(FtpTest):
    """Server: `--data-timeout 2`."""

    def test_pasv_then_retr_without_connecting_gets_425(self):
        self.put("file.bin", b"content")
        self.ftp.voidcmd("TYPE I")
        self.ftp.makepasv()
        self.ftp.sock.settimeout(8)
        self.assert_error(
            ftplib.error_temp, "425 Failed to establish data connection.",
            self.ftp.sendcmd, "RETR file.bin",
        )
        self.assert_noop()
        self.assertEqual(self.retr("file.bin"), b"content")

    def test_port_to_a_closed_port_gets_425(self):
        self.put("file.bin", b"content")
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        self.assertEqual(
            self.ftp.sendcmd("PORT 127,0,0,1,%d,%d" % (port >> 8, port & 255)),
            "200 PORT command successful.",
        )
        self.ftp.sock.settimeout(8)
        self.assert_error(
            ftplib.error_temp, "425 Failed to establish data connection.",
            self.ftp.sendcmd, "RETR file.bin",
        )
        self.assert_noop()

    def test_stalled_upload_gets_426(self):
        self.ftp.voidcmd("TYPE I")
        conn = self.ftp.transfercmd("STOR stalled.bin")
        conn.sendall(b"a few bytes, then nothing")
        self.ftp.sock.settimeout(8)
        self.assert_error(
            ftplib.error_temp, "426 Data connection timed out; transfer aborted.",
            self.ftp.voidresp,
        )
        conn.close()
        self.assert_noop()


# ---------------------------------------------------------------------------------------------------
# Corner cases


class TestCornerCases(FtpTest):
    def test_port_to_another_address_is_refused(self):
        for cmd, reply in [
            ("PORT 127,0,0,2,200,1", "501 Illegal PORT command: the address is not yours."),
            ("PORT 10,0,0,1,200,1", "501 Illegal PORT command: the address is not yours."),
            ("EPRT |1|127.0.0.2|51200|", "501 Illegal EPRT command: the address is not yours."),
            ("PORT 127,0,0,1,0,21", "501 Illegal PORT command: privileged port."),
        ]:
            with self.subTest(cmd=cmd):
                self.assert_perm(reply, self.ftp.sendcmd, cmd)
        # No data channel was set up by the refused commands.
        self.assert_error(
            ftplib.error_temp, "425 Use PORT, PASV, EPRT or EPSV first.",
            self.ftp.sendcmd, "LIST",
        )

    def test_data_connection_from_another_address_is_refused(self):
        self.put("secret.bin", b"not for thieves")
        self.ftp.voidcmd("TYPE I")
        host, port = self.ftp.makepasv()
        thief = socket.socket()
        try:
            thief.bind(("127.0.0.2", 0))
        except OSError as e:
            self.skipTest("cannot bind 127.0.0.2: %s" % e)
        thief.settimeout(TIMEOUT)
        thief.connect((host, port))
        self.assert_error(
            ftplib.error_temp, "425 Data connection from a foreign address refused.",
            self.ftp.sendcmd, "RETR secret.bin",
        )
        thief.settimeout(TIMEOUT)
        try:
            stolen = thief.recv(100)
        except ConnectionResetError:
            stolen = b""
        self.assertEqual(stolen, b"")
        thief.close()
        self.assert_noop()
        self.assertEqual(self.retr("secret.bin"), b"not for thieves")

    def test_quick_connect_disconnect_50_times(self):
        for i in range(50):
            sock = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
            if i % 2:
                self.assertEqual(sock.recv(100), b"220 ftp-proto ready\r\n")
            if i % 5 == 0:
                sock.sendall(b"USER ")  # half a command, then gone
            sock.close()
        ftp = self.connect()
        self.assertEqual(ftp.login(USER, PASSWORD), "230 Login successful.")
        self.assert_noop(ftp)
        ftp.quit()

    def test_quit_during_transfer_answers_226_then_221(self):
        data = blob(3 * 1024 * 1024, 20)
        self.put("quit.bin", data)
        self.ftp.voidcmd("TYPE I")
        conn = self.ftp.transfercmd("RETR quit.bin")
        received = bytearray(conn.recv(65536))
        self.ftp.putcmd("QUIT")
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received.extend(chunk)
        conn.close()
        self.assertEqual(bytes(received), data)
        self.assertEqual(self.ftp.getline(), "226 Transfer complete.")
        self.assertEqual(self.ftp.getline(), "221 Goodbye.")
        self.assertEqual(self.ftp.file.readline(), "")  # EOF

    def test_pipelined_commands(self):
        sock = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
        with sock, sock.makefile("rb") as replies:
            read_replies(replies, 1)
            sock.sendall(
                ("USER %s\r\nPASS %s\r\nTYPE I\r\nCWD /%s\r\nPWD\r\nNOOP\r\nSYST\r\nBOGUS\r\n"
                 % (USER, PASSWORD, self.name)).encode()
            )
            got = read_replies(replies, 8)
            self.assertEqual(
                got,
                [
                    "331 Please specify the password.",
                    "230 Login successful.",
                    "200 Switching to Binary mode.",
                    "250 Directory successfully changed.",
                    '257 "/%s" is the current directory.' % self.name,
                    "200 NOOP ok.",
                    "215 UNIX Type: L8",
                    "500 Unknown command.",
                ],
            )
            # A transfer in the middle of a pipeline: replies keep their order.
            data = blob(200000, 21)
            self.put("piped.bin", data)
            sock.sendall(b"EPSV\r\n")
            (epsv,) = read_replies(replies, 1)
            port = int(re.search(r"\(\|\|\|(\d+)\|\)", epsv).group(1))
            conn = socket.create_connection((HOST, port), timeout=TIMEOUT)
            sock.sendall(b"RETR piped.bin\r\nNOOP\r\nSIZE piped.bin\r\nQUIT\r\n")
            received = bytearray()
            with conn:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received.extend(chunk)
            self.assertEqual(bytes(received), data)
            got = read_replies(replies, 5)
            self.assertEqual(got[0][:4], "150 ")
            self.assertEqual(
                got[1:],
                ["226 Transfer complete.", "200 NOOP ok.", "213 %d" % len(data), "221 Goodbye."],
            )
            self.assertEqual(replies.readline(), b"")

    def test_long_line_and_bad_bytes_leave_the_session_usable(self):
        self.ftp.sock.sendall(b"NOOP " + b"x" * 10000 + b"\r\n")
        self.assertEqual(self.ftp.getline(), "500 Command line too long.")
        self.assert_noop()
        self.ftp.sock.sendall(b"\x00\xff\xfe\r\n")
        self.assertTrue(self.ftp.getline().startswith("500 "))
        self.assert_noop()
        self.ftp.sock.sendall(b"noop\r\n")
        self.assertEqual(self.ftp.getline(), "200 NOOP ok.")

    def test_unicode_names(self):
        name = "\u00e9t\u00e9 \u2603.txt"
        data = "snow \u2603\n".encode()
        self.ftp.encoding = "utf-8"
        self.stor(name, data)
        self.assertEqual(self.disk(name), data)
        self.assertEqual(self.ftp.nlst(), [name])
        self.assertEqual(self.retr(name), data)


# The classes run against a default server when no names are given.
DEFAULT = [
    TestAuthentication, TestLoginRules, TestArguments, TestFilesystem, TestStore, TestRetrieve,
    TestListing, TestAbort, TestAnonymousReadOnly, TestCornerCases,
]

if __name__ == "__main__":
    names = sys.argv[4:]
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
