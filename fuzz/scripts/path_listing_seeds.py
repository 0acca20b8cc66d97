#!/usr/bin/env python3
"""Writes the seeds of the `path` and `listing` fuzz targets (run from the repository root).

`path`: `[max_len] [max_depth] [cwd length] [cwd] [name length] [name] [path ...]` (255 = default limits).
`listing`: an even first byte, eight bytes of "now" (seconds after 0000-01-01, big-endian), listing text;
or an odd first byte, "now", an options byte (fact bits 0-5, perm read 0x40, write 0x80) and an entry
(see `arbitrary_entry` in fuzz/fuzz_targets/listing.rs).
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seeds")
MIN_SECS = -62167219200  # 0000-01-01T00:00:00Z
NOW = 1710504000  # 2024-03-15T12:00:00Z


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def short(b):
    assert len(b) < 256
    return bytes([len(b)]) + b


def when(secs):
    return struct.pack(">Q", secs - MIN_SECS)


def entry(kind, flags, size, mode, nlink, mtime, nanos, owner, group, unique, target, name):
    """flags: 1 modified, 2 with nanoseconds, 4 unique, 8 symlink target."""
    out = bytes([kind, flags]) + struct.pack(">QIQ", size, mode, nlink)
    if flags & 1:
        out += when(mtime)
        if flags & 2:
            out += struct.pack(">I", nanos)
    return out + short(owner) + short(group) + short(unique) + short(target) + short(name)


write("path", "traversal", bytes([255, 255]) + short(b"/pub/linux") + short(b"kernel") + b"../../../../etc//passwd")
write("path", "relative_dots", bytes([40, 6]) + short(b"a/b/c") + short(b"...") + b"./x/../y/./z/")
write("path", "too_long", bytes([10, 3]) + short(b"/home") + short(b"f") + b"1234567890/abc")
write("path", "too_deep", bytes([79, 2]) + short(b"/a/b") + short(b"..") + b"c/d")
write("path", "nul_and_backslash", bytes([64, 8]) + short(b"/x") + short(b"a\\b") + b"..\\..\\%2e%2e/\x00")

write(
    "listing",
    "unix_lines",
    b"\x00"
    + when(NOW)
    + b"total 8\r\n-rw-r--r--   1 ftp      ftp          1234 Jan 02 13:04 notes.txt\r\n"
    + b"lrwxrwxrwx 1 0 0 11 Jun 01  2023 latest -> release-1.2\r\n"
    + b"crw-rw-rw-   1 root     root       1,   3 Jan  2  2020 null\r\n"
    + b"-rw-r--r--  1 user  staff  1234 Jan  2 13:04:05 2024 precise\r\n",
)
write(
    "listing",
    "dos_eplf",
    b"\x00"
    + when(NOW)
    + b"12-31-2023  11:59AM                 1234 file name.txt\r\n"
    + b"01-02-24  01:04PM       <DIR>          dir\n+i8388621.48594,m825718503,r,s280,\tdjb.html\r\n",
)
write(
    "listing",
    "mlsd",
    b"\x00"
    + when(NOW)
    + b"type=file;size=1234;modify=20240102130405;perm=r; notes.txt\r\nType=cdir;Perm=el; /pub\r\n"
    + b" type=OS.unix=slink:/x;unique=803g2f; a b;c\r\n",
)
write(
    "listing",
    "file_recent",
    b"\x01" + when(NOW) + bytes([0x3F | 0x40])
    + entry(0, 1 | 4, 1234, 0o644, 1, NOW - 3 * 86400, 0, b"alice", b"staff", b"803g2f", b"", b"notes.txt"),
)
write(
    "listing",
    "symlink_old",
    b"\x03" + when(NOW) + bytes([0x0F | 0xC0])
    + entry(2, 1 | 2 | 8, 11, 0o777, 1, NOW - 400 * 86400, 500000000, b"root", b"root", b"", b"release-1.2", b"latest"),
)
write(
    "listing",
    "dir_spaces_crlf",
    b"\x05" + when(NOW) + bytes([0x2D])
    + entry(1, 0, 4096, 0o2755, 2, 0, 0, b"", b"ftp users", b"x y", b"", b" a b\r\nc "),
)
print("wrote the path and listing seeds")
