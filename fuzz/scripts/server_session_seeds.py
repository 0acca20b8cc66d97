#!/usr/bin/env python3
"""Writes the seeds of the `server_session` fuzz target: realistic sessions in its op encoding.

Run from the repository root: `python3 fuzz/scripts/server_session_seeds.py`. The encoding is described in
fuzz/fuzz_targets/server_session.rs and fuzz/README.md; `sel` indexes the harness's list of actions waiting
for an answer, oldest first. Check a seed's transcript with
`FUZZ_TRACE=1 cargo +nightly fuzz run server_session fuzz/seeds/server_session/<name>`.
"""
import os

VERBS = [
    "USER", "PASS", "PASV", "EPSV", "PORT", "EPRT", "RETR", "STOR", "APPE", "STOU", "LIST", "NLST",
    "MLSD", "MLST", "ABOR", "STAT", "QUIT", "REST", "TYPE", "CWD", "CDUP", "PWD", "RNFR", "RNTO",
    "DELE", "MKD", "RMD", "SIZE", "MDTM", "MFMT", "REIN", "NOOP", "FEAT", "OPTS", "HELP", "SYST",
    "HOST", "ACCT", "MODE", "STRU", "ALLO", "SITE", "LANG", "PBSZ", "PROT", "AUTH", "XPWD", "XCUP",
]

# Config byte: bit 0 CRLF only, bits 1-2 window - 1, bits 3-4 anonymous (0 off, 1 read-only, 2 read-write),
# bit 5 FXP, bit 6 privileged ports, bit 7 IPv6.
DEFAULT = 0x12  # bare LF accepted, window 2, anonymous read-write, IPv4


def short(data):
    assert len(data) < 256
    return bytes([len(data)]) + data


def ctl(data):
    return b"\x00" + short(data)


def cmd(verb, arg=b""):
    if isinstance(arg, str):
        arg = arg.encode()
    return bytes([10, VERBS.index(verb)]) + short(arg)


def answer(sel=0, choice=0, params=b""):
    """Answers waiting action `sel`; choice < 128 gives the right kind of completion."""
    return bytes([2, sel, choice]) + params


def data(sel, chunk):
    return bytes([5, sel]) + short(chunk)


def eod(sel=0):
    return bytes([6, sel])


def advance(mode, amount=0):
    """mode 0: +amount ms, 1: +amount s, 2: to the deadline, 3: just before it."""
    return bytes([7, mode, amount])


EOF_OP = b"\x08"


def stale(sel, choice):
    return bytes([9, sel, choice])


# Parameters of the right answers.
def listening(port=50000):
    return port.to_bytes(2, "big")


CONNECTED = b"\x07"  # DataConnected from the client, port 1024 + 7 * 200
FILE_OPENED = b"\x03\x00"  # size 4096, the requested path


def metadata(kind=0, size=2, mtime=130):
    return bytes([kind, size, mtime])


def entries(*items, now=131):
    out = bytes([now, len(items)])
    for kind, name in items:
        out += metadata(kind) + short(name)
    return out


anon_login = cmd("USER", "anonymous") + cmd("PASS", "guest@example.com")

seeds = {
    "anonymous_retr": bytes([DEFAULT])
    + anon_login
    + cmd("SYST")
    + cmd("TYPE", "I")
    + cmd("PASV")
    + answer(0, 0, listening())
    + cmd("RETR", "pub/file.bin")
    + answer(0, 0, FILE_OPENED)
    + answer(0, 0, CONNECTED)
    + data(0, b"hello, world\n")
    + answer(1, 0)  # Written
    + data(0, b"more")
    + answer(1, 0)
    + eod(0)
    + eod(0)
    + cmd("QUIT"),
    "user_stor_ascii": bytes([DEFAULT])
    + cmd("USER", "alice")
    + cmd("PASS", "secret")
    + answer(0, 1)  # LoggedIn(ReadWrite)
    + cmd("PWD")
    + cmd("CWD", "upload")
    + answer(0, 0, metadata(1))
    + cmd("EPSV")
    + answer(0, 0, listening(40001))
    + cmd("STOR", "notes.txt")
    + answer(0, 0, FILE_OPENED)
    + answer(0, 0, CONNECTED)
    + data(0, b"line one\r\nline two\r")
    + answer(1, 0)
    + data(0, b"\nlast line\r\n")
    + answer(1, 0)
    + eod(0)
    + eod(0)
    + answer(0, 0)  # CloseFile: Done
    + cmd("SIZE", "notes.txt")  # 550 in ASCII mode, no request
    + cmd("TYPE", "I")
    + cmd("SIZE", "notes.txt")
    + answer(0, 0, metadata(0, 3))
    + cmd("MDTM", "notes.txt")
    + answer(0, 0, metadata(0, 3, 200))
    + cmd("QUIT"),
    "port_list_mlsd_nlst": bytes([DEFAULT])
    + anon_login
    + cmd("PORT", "127,0,0,1,200,10")
    + cmd("LIST", "-la")
    + answer(0, 0, entries((1, b"pub"), (0, b"README"), (2, b"latest")))
    + answer(0, 0, CONNECTED)
    + answer(0, 0)
    + cmd("EPRT", "|1|127.0.0.1|51001|")
    + cmd("MLSD")
    + answer(0, 0, entries((0, b"a b;c"), (1, b"dir")))
    + answer(0, 0, CONNECTED)
    + answer(0, 0)
    + cmd("OPTS", "MLST type;size;UNIX.mode;")
    + cmd("MLST", "README")
    + answer(0, 0, metadata(0x80))
    + cmd("PASV")
    + answer(0, 0, listening())
    + cmd("NLST")
    + answer(0, 0, entries((0, b"x"), (0, b"bad\r\nname")))
    + answer(0, 0, CONNECTED)
    + answer(0, 0)
    + cmd("STAT", "pub")
    + answer(0, 0, entries((0, b"inner")))
    + cmd("QUIT"),
    "abor_during_retr": bytes([DEFAULT])
    + anon_login
    + cmd("PASV")
    + answer(0, 0, listening())
    + cmd("REST", "100")
    + cmd("RETR", "big.iso")
    + answer(0, 0, FILE_OPENED)
    + answer(0, 0, CONNECTED)
    + data(0, b"x" * 200)
    + ctl(b"STAT\r\n")
    + ctl(b"\xff\xf4\xff\xf2ABOR\r\n")  # IAC IP, IAC DM (synch), ABOR
    + stale(0, 0)
    + cmd("NOOP")
    + cmd("QUIT"),
    "failed_logins": bytes([DEFAULT])
    + cmd("USER", "bob")
    + cmd("PASS", "wrong")
    + answer(0, 2)  # Denied
    + cmd("NOOP")  # queued behind the delayed 530
    + advance(2)
    + cmd("USER", "bob")
    + cmd("PASS", "wrong again")
    + answer(0, 2)
    + advance(2)
    + cmd("USER", "bob")
    + cmd("PASS")
    + answer(0, 2)
    + advance(2),
    "timeouts": bytes([DEFAULT])
    + anon_login
    + cmd("PASV")
    + answer(0, 0, listening())
    + cmd("RETR", "never.bin")
    + answer(0, 0, FILE_OPENED)
    + advance(3)
    + advance(2)  # 425: no data connection
    + cmd("NOOP")
    + advance(1, 20)
    + advance(2),  # 421 idle
    "pipelined_and_framing": bytes([0x0b])  # CRLF only, window 2, anonymous read-only
    + ctl(b"\xff\xfb\x01\xff\xfd\x03FEAT\r\nHELP\r\nHELP RETR\r\nUSER anonymous\r\nPASS x\r\n")
    + ctl(b"NOOP\nPWD\r\n" + b"A" * 70 + b"\r\nSTAT\r\nCDUP\r\n")
    + ctl(b"MKD x\r\nDELE y\r\nRNTO z\r\nSITE CHMOD 777 x\r\nLANG fr\r\nPBSZ 0\r\nPROT P\r\n")
    + ctl(b"MODE B\r\nSTRU R\r\nTYPE E\r\nALLO 10\r\nACCT x\r\nHOST example.com\r\nBOGUS\r\n")
    + ctl(b"CWD /../../etc\r\n")
    + answer(0, 128 + 13)  # Failed(NotFound)
    + ctl(b"CWD " + b"d/" * 10 + b"\r\n")
    + cmd("REIN")
    + EOF_OP,
    "rw_storage_ops": bytes([DEFAULT])
    + cmd("USER", "carol")
    + cmd("PASS", "pw")
    + answer(0, 1)
    + cmd("MKD", "new dir")
    + answer(0, 0)
    + cmd("RNFR", "new dir")
    + answer(0, 0, metadata(1))
    + cmd("RNTO", "renamed")
    + answer(0, 0)
    + cmd("DELE", "old.txt")
    + answer(0, 128 + 14)  # Failed(PermissionDenied)
    + cmd("RMD", "renamed")
    + answer(0, 128 + 17)  # Failed(NotEmpty)
    + cmd("MFMT", "20240101120000.5 renamed")
    + answer(0, 0)
    + cmd("EPSV", "ALL")
    + cmd("EPSV")
    + answer(0, 0, listening())
    + cmd("STOU")
    + answer(0, 0, b"\x00\x01")
    + answer(0, 128 + 6, b"\x01")  # DataConnected from a foreign address
    + cmd("EPSV")
    + answer(0, 0, listening())
    + cmd("APPE", "log.txt")
    + answer(0, 0, FILE_OPENED)
    + answer(0, 0, CONNECTED)
    + data(0, b"appended\n")
    + answer(1, 128 + 21)  # Failed(DataConnection)
    + cmd("QUIT"),
}

# Inputs that once failed, kept in fuzz/regressions/server_session/ (see its README).
regressions = {
    # A transfer times out after a QUIT was queued behind it, later than the idle deadline too:
    # 425, 221, CloseControl, then a 421 "Timeout" reply after the close.
    "timeout-quit-then-idle": bytes([DEFAULT])
    + anon_login
    + cmd("PASV")
    + answer(0, 0, listening())
    + cmd("RETR", "file")
    + cmd("QUIT")  # queued: allowed during a transfer, answered after it
    + answer(0, 0, FILE_OPENED)  # -> AcceptData; the client never connects
    + advance(1, 49),  # past the 10 s data timeout and the 30 s idle timeout
    # A 40 s download that makes progress every 8 s (within the 10 s data timeout) ends with 226; the idle
    # deadline (30 s after RETR) has passed, so the very next timer gives 421 and closes the session.
    "idle-timeout-right-after-long-transfer": bytes([DEFAULT])
    + anon_login
    + cmd("PASV")
    + answer(0, 0, listening())
    + cmd("RETR", "big.iso")
    + answer(0, 0, FILE_OPENED)
    + answer(0, 0, CONNECTED)  # 150, ReadFile x2
    + (advance(1, 8) + data(0, b"x" * 100) + answer(1, 0)) * 5
    + eod(0)
    + eod(0)  # 226
    + advance(0, 0),  # the due idle timer: 421
    # The same after a storage request the driver takes 40 s to answer.
    "idle-timeout-right-after-slow-request": bytes([DEFAULT])
    + anon_login
    + cmd("CWD", "slow/nfs")
    + advance(1, 40)  # no timer runs while the request is out
    + answer(0, 0, metadata(1))  # 250
    + advance(0, 0),  # 421
}

reg_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "regressions", "server_session")
os.makedirs(reg_dir, exist_ok=True)
for name, seed in regressions.items():
    with open(os.path.join(reg_dir, name), "wb") as f:
        f.write(seed)

out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seeds", "server_session")
os.makedirs(out_dir, exist_ok=True)
for name, seed in seeds.items():
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(seed)
print(f"wrote {len(seeds)} seeds to {os.path.normpath(out_dir)}")
