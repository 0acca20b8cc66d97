"""A pyftpdlib server for the client interop tests (tests/client_interop.rs).

Usage: python3 pyftpd_server.py ROOT ANON_ROOT USER PASSWORD [--no-mlst] [--tls CERT KEY]

Listens on 127.0.0.1, on a port the system picks, and prints `listening on 127.0.0.1:PORT` once it
accepts connections. USER gets read-write access to ROOT, anonymous users read-only access to
ANON_ROOT. `--no-mlst` removes MLST/MLSD (FEAT no longer offers them), so that clients must parse LIST.
`--tls CERT KEY` serves explicit FTPS (RFC 4217) with pyftpdlib's TLS_FTPHandler (needs pyOpenSSL):
AUTH TLS before the login, and PROT P for every transfer, are required.
Stops when its standard input closes, so it never outlives the test that started it.
"""

import logging
import os
import sys
import threading

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    root, anon_root, user, password = sys.argv[1:5]
    options = sys.argv[5:]
    no_mlst = "--no-mlst" in options
    tls = None
    if "--tls" in options:
        at = options.index("--tls")
        tls = options[at + 1 : at + 3]
    # DEBUG: every command (`<- PASV`) goes to stderr, where the test can check what was sent.
    logging.basicConfig(level=logging.DEBUG)

    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, root, perm="elradfmwMT")
    authorizer.add_anonymous(anon_root)

    if tls:
        from pyftpdlib.handlers import TLS_FTPHandler as Base
    else:
        Base = FTPHandler

    class Handler(Base):
        pass

    if tls:
        Handler.certfile, Handler.keyfile = tls
        Handler.tls_control_required = True
        Handler.tls_data_required = True

    Handler.authorizer = authorizer
    Handler.banner = "pyftpdlib ready for ftp-proto"
    Handler.timeout = 60
    # A refused password is answered at once (the default waits 3 s against guessing).
    Handler.auth_failed_timeout = 0.05
    if no_mlst:
        Handler.proto_cmds = {
            name: spec
            for name, spec in Base.proto_cmds.items()
            if name not in ("MLST", "MLSD")
        }

    server = FTPServer(("127.0.0.1", 0), Handler)
    host, port = server.address[:2]
    print(f"listening on {host}:{port}", flush=True)

    # The test keeps our stdin open; when it goes away (even killed), stop serving.
    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
