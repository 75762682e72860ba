"""Write a file all at once: a temp file in the same folder, fsync, then rename over the target.

The one atomic writer of the package (weights, images, run files, the decoded cache's small files,
the judge). A reader never sees a half-written file; on failure no temp file is left and an existing
file stays intact; errors are one line naming the file (disk full, permission, missing folder). The
file's mode follows the umask (not mkstemp's private 0600).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ccvae_tools.util.errors import CcvaeError


def write_error(path: Path, e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path}: disk full while writing; free some space or write elsewhere"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path}: cannot write here (permission denied or read-only); choose another folder"
    if e.errno == errno.EISDIR or path.is_dir():
        return f"{path}: is a folder; give a file name"
    return f"{path}: cannot write the file ({e.strerror or e})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None],
                 error: type[CcvaeError] | None = CcvaeError) -> Path:
    """Call write(f) on a binary temp file next to `path`, then rename it to `path`.

    An OSError becomes `error` with a one-line message; with error=None it is raised as it is (for
    callers that word the failure themselves or let a read-only folder pass). Any other exception,
    KeyboardInterrupt included, propagates; the temp file is removed in every case.
    """
    path = Path(path)
    if error is not None and not path.parent.is_dir():
        raise error(f"{path}: the folder {str(path.parent)!r} does not exist; create it first")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        if error is None:
            raise
        raise error(write_error(path, e)) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes,
                       error: type[CcvaeError] | None = CcvaeError) -> Path:
    return atomic_write(path, lambda f: f.write(data), error)
