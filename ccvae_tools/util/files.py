"""Files a user names (weights, images), opened so that they can neither hang the program nor fill
its memory: only regular files are opened, unless the caller reads streams, and what is read is bounded.

A FIFO opened for reading waits for a writer, and `/dev/zero` or `/dev/urandom` never end; a path
naming one of them would hang a command or read until memory runs out. `open_regular` opens without
blocking and looks at what it opened (so the check and the read are of the same file); `read_at_most`
stops one byte past a limit, so that a stream (stdin) cannot be larger than the caller allows.

Input images are also read from pipes, as the shell hands them over (`<(cat face.png)` is
/dev/fd/63, a pipe; `mkfifo`): with `streams=True` a FIFO or a character device is opened too, and
read like stdin, to the caller's limit (`/dev/zero` then ends at the limit, not in a full memory).
A FIFO is opened waiting for its writer, as `cat` would: one opened without waiting reads as empty
when its writer comes a moment later. A terminal is refused (it would wait for typing).

    with open_regular(path) as f:          # FileNotFoundError, PermissionError, NotRegularFile(kind)
        data = read_at_most(f, 64 << 20)   # None when the file holds more than that
    with open_regular(path, streams=True) as f: ...     # also a pipe or a device, never a terminal

Imports nothing of the package.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

# a FIFO then opens at once instead of waiting for a writer (no effect on regular files)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_FLAGS = os.O_RDONLY | _NONBLOCK | getattr(os, "O_BINARY", 0)

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class NotRegularFile(Exception):
    """The path names something other than a regular file; `kind` says what ("a folder", ...)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def kind_of(mode: int) -> str:
    """What a file mode (`os.stat(p).st_mode`) is, in words: "a regular file", "a folder", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def is_stream(mode: int) -> bool:
    """Whether a file mode is one `open_regular(..., streams=True)` reads as a stream: a FIFO or
    a character device (what `<(...)`, `mkfifo` and /dev/zero give)."""
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def names_stream(path: str | os.PathLike) -> bool:
    """Whether `path` names a FIFO or a character device (False for what cannot be looked at)."""
    try:
        return is_stream(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_regular(path: str | os.PathLike, streams: bool = False) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (symbolic links followed), or with
    `streams` a FIFO or a character device that is not a terminal (read it with `read_at_most`).

    Raises what `open` raises for a missing or unreadable path (FileNotFoundError, PermissionError,
    other OSError), and NotRegularFile for a folder, a block device or a socket, and without
    `streams` for a FIFO or a character device too, never waiting; with `streams` a terminal is
    refused and a FIFO is waited on until its writer opens it.
    """
    def allowed(mode: int) -> bool:
        return stat.S_ISREG(mode) or (streams and is_stream(mode))

    mode = os.stat(path).st_mode              # sockets cannot be opened at all: say what they are
    if not allowed(mode):
        raise NotRegularFile(kind_of(mode))
    fd = os.open(path, _FLAGS & ~_NONBLOCK if stat.S_ISFIFO(mode) else _FLAGS)
    try:
        mode = os.fstat(fd).st_mode           # what was opened, should the path have changed since
        if not allowed(mode):
            raise NotRegularFile(kind_of(mode))
        if not stat.S_ISREG(mode):
            if os.isatty(fd):
                raise NotRegularFile("a terminal")
            if _NONBLOCK:                     # read to its end (or the limit), not to the first gap
                os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_at_most(stream: BinaryIO, limit: int) -> bytes | None:
    """All of `stream`'s bytes, or None when it holds more than `limit` (it is read no further)."""
    data = stream.read(limit + 1)
    if isinstance(data, str):                 # a text stream standing in for stdin
        data = data.encode("latin-1")
    return None if len(data) > limit else bytes(data)
