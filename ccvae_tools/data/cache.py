"""The decoded cache: decode a catalog's images once, in parallel, into a memory-mapped uint8 array.

Layout: `<cache>/<key>/` holds `images.npy` (N, C, H, W), `labels.npy`, `split.npy` and
`manifest.json`. The folder key hashes what the pixels depend on: the data name, the preprocessing
and the source files with their sizes and mtimes. The labels and split are recorded in the manifest
with their own hash; when only they change (another label subset, another split seed), the three
small files are rewritten and the images are not decoded again. A `Decoded` set always takes its
labels and split from the catalog, so it is consistent even while another process rewrites them.

A build happens in `<key>.building-<host>-<pid>-<random>` next to the final folder and is renamed
into place when complete, so an interrupted build is never reused (the next build removes it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ccvae_tools.util import console
from ccvae_tools.util.atomic import atomic_write
from ccvae_tools.data.base import Catalog, Decoded, Preprocess
from ccvae_tools.util.errors import CcvaeError, DataError, UsageError
from ccvae_tools.data.images import load_image

FORMAT = 1
CACHE_FOLDER = ".ccvae-cache"
SERIAL_BELOW = 256          # smaller sets are decoded in-process (starting workers costs more)
SHOW_BAD = 3                # unreadable files named in a message

_Stat = tuple[int, int]     # (size in bytes, mtime_ns); (-1, 0) when the file cannot be stat'ed


# --- public --------------------------------------------------------------------------------------

def load_decoded(catalog: Catalog, cache_dir: Path | None = None, workers: int | None = None,
                 on_bad: str = "skip", rebuild: bool = False) -> Decoded:
    """The catalog's images decoded to uint8 (N, C, H, W), from the cache or built into it.

    on_bad="skip" leaves unreadable images out (one warning); on_bad="fail" raises DataError.
    workers: decoding processes (default: the CPUs this process may use). rebuild: ignore a cache.
    """
    if on_bad not in ("skip", "fail"):
        raise UsageError(f"on_bad must be 'skip' or 'fail', not {on_bad!r}")
    n = len(catalog.files)
    if n == 0:
        raise DataError(f"{catalog.root}: no images to decode; check the data folder")
    pre = catalog.preprocess
    paths = [os.fspath(p) for p in catalog.files]
    names = _relative_names(paths, catalog.root)
    stats = [_stat(p) for p in paths]
    key = images_key(catalog.name, pre, names, stats)

    folder, manifest = _find(catalog.root, cache_dir, key, rebuild)
    if manifest is None:
        if on_bad == "fail":
            missing = [i for i, (size, _) in enumerate(stats) if size < 0]
            if missing:
                _raise_bad({i: f"{names[i]}: no such file (or unreadable)" for i in missing}, n)
        manifest = _build(catalog, paths, names, stats, key, folder, workers, on_bad, replace=rebuild)

    skipped = {int(s["index"]): str(s["reason"]) for s in manifest["skipped"]}
    if skipped:
        if on_bad == "fail":
            _raise_bad(skipped, n)
        _warn_bad(skipped, names, folder)
    kept = np.setdiff1d(np.arange(n), np.fromiter(skipped, np.int64, len(skipped)))
    labels = np.ascontiguousarray(catalog.labels[kept], dtype=np.float32)
    split = np.ascontiguousarray(catalog.split[kept], dtype=np.int8)
    _record_labels(folder, manifest, catalog, labels, split)
    images = np.load(folder / "images.npy", mmap_mode="r")
    return Decoded(name=catalog.name, images=images, labels=labels, label_info=list(catalog.label_info),
                   split=split, preprocess=pre, files=[names[i] for i in kept])


def images_key(name: str, pre: Preprocess, names: list[str], stats: list[_Stat]) -> str:
    """Short hash of everything the decoded pixels depend on."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "name": name, "preprocess": pre.to_json()},
                        sort_keys=True).encode())
    for rel, (size, mtime) in zip(names, stats):
        h.update(f"\n{rel}\t{size}\t{mtime}".encode())
    return h.hexdigest()[:16]


def default_cache_dir(root: Path) -> Path:
    """`<root>/.ccvae-cache` when it can be written, else $XDG_CACHE_HOME/ccvae or ~/.cache/ccvae."""
    here = Path(root) / CACHE_FOLDER
    if _writable(here):
        return here
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ccvae"


# --- where the cache is ----------------------------------------------------------------------------

def _find(root: Path, cache_dir: Path | None, key: str, rebuild: bool) -> tuple[Path, dict | None]:
    """The entry folder to use and its manifest when it is complete and valid (else None)."""
    if cache_dir is not None:
        base = Path(cache_dir)
        if not _writable(base):
            existing = None if rebuild else _valid(base / key, key)
            if existing is not None:
                return base / key, existing          # a read-only cache that already fits
            raise DataError(f"{base}: cannot create or write the cache folder; choose another one")
        return base / key, None if rebuild else _valid(base / key, key)
    if not rebuild:                                  # a valid entry next to the data wins, even read-only
        here = Path(root) / CACHE_FOLDER / key
        found = _valid(here, key)
        if found is not None:
            return here, found
    base = default_cache_dir(root)
    if not _writable(base):
        raise DataError(f"{base}: cannot create or write the cache folder; give another cache folder")
    return base / key, None if rebuild else _valid(base / key, key)


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _valid(folder: Path, key: str) -> dict | None:
    """The manifest of a complete entry for `key`, or None (missing, older format, damaged)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT or manifest.get("key") != key:
            return None
        images = np.load(folder / "images.npy", mmap_mode="r")
        ok = (images.dtype == np.uint8 and list(images.shape) == manifest["shape"]
              and images.shape[0] == manifest["count"] - len(manifest["skipped"]))
        del images
        return manifest if ok else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- building --------------------------------------------------------------------------------------

def _build(catalog: Catalog, paths: list[str], names: list[str], stats: list[_Stat], key: str,
           final: Path, workers: int | None, on_bad: str, replace: bool) -> dict:
    """Decode into a temporary folder next to `final`, then rename it into place."""
    base = final.parent
    _remove_stale(base)
    pre = catalog.preprocess
    n, c, s = len(names), pre.channels, pre.size
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.building-{_host()}-{os.getpid()}-", dir=base))
    try:
        npy = tmp / "images.npy"
        _allocate(npy, (n, c, s, s))
        bad = _decode_all(paths, names, npy, pre, _workers(workers), on_bad == "fail")
        if bad and on_bad == "fail":
            _raise_bad(bad, n)
        if len(bad) == n:
            _raise_bad(bad, n, everything=True)
        if bad:
            _drop_rows(npy, sorted(bad), n)
        _fsync(npy)
        kept = n - len(bad)
        manifest = {
            "format": FORMAT,
            "key": key,
            "name": catalog.name,
            "root": str(catalog.root),
            "preprocess": pre.to_json(),
            "shape": [kept, c, s, s],
            "count": n,
            "kept": kept,
            "skipped": [{"index": i, "file": names[i], "reason": bad[i]} for i in sorted(bad)],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": [[rel, size, mtime] for rel, (size, mtime) in zip(names, stats)],
        }
        keep = np.setdiff1d(np.arange(n), np.asarray(sorted(bad), dtype=np.int64))
        _write_labels(tmp, manifest, catalog, catalog.labels[keep].astype(np.float32),
                      catalog.split[keep].astype(np.int8))
        return _publish(tmp, final, key, manifest, replace)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"{base}: disk full while building the image cache; free space or choose "
                            f"another cache folder") from None
        raise DataError(f"{base}: cannot write the image cache ({e.strerror or e}); choose another "
                        f"cache folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _allocate(npy: Path, shape: tuple[int, int, int, int]) -> None:
    """Create the .npy file with its blocks reserved, so a full disk fails here and not in an mmap."""
    need = math.prod(shape)
    free = shutil.disk_usage(npy.parent).free
    if need + (64 << 20) > free:
        raise DataError(f"{npy.parent.parent}: the image cache needs {need / 1e9:.2f} GB but only "
                        f"{free / 1e9:.2f} GB is free; free space or choose another cache folder")
    mm = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=shape)
    offset = mm.offset
    del mm
    if hasattr(os, "posix_fallocate"):
        fd = os.open(npy, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, offset + need)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
        finally:
            os.close(fd)


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _decode_all(paths: list[str], names: list[str], npy: Path, pre: Preprocess, workers: int,
                stop_on_bad: bool) -> dict[int, str]:
    """Decode every image into row i of `npy`, with a progress bar; return {index: reason} of the
    unreadable ones (only the first unreadable chunk's when `stop_on_bad`)."""
    n = len(paths)
    parallel = workers > 1 and n >= SERIAL_BELOW
    step = max(8, min(256, math.ceil(n / (workers * 8)))) if parallel else 64
    tasks = [(i, paths[i:i + step], names[i:i + step]) for i in range(0, n, step)]
    bad: dict[int, str] = {}
    if parallel:
        done = _decode_in_pool(tasks, npy, pre, workers, stop_on_bad, bad)
        if done is None:
            return bad
        tasks = [t for t in tasks if t[0] not in done]
    with console.progress("decoding images", sum(len(t[1]) for t in tasks)) as advance:
        _worker_init(str(npy), pre)
        try:
            for task in tasks:
                _, count, errors = _decode_chunk(task)
                bad.update(errors)
                advance(count)
                if errors and stop_on_bad:
                    break
        finally:
            _worker_done()
    return bad


def _decode_in_pool(tasks: list[tuple[int, list[str], list[str]]], npy: Path, pre: Preprocess,
                    workers: int, stop_on_bad: bool, bad: dict[int, str]) -> set[int] | None:
    """Decode in worker processes. None when finished; else the chunks done before the pool broke.

    The workers start (fork, on Linux) before the progress bar starts its drawing thread.
    """
    done: set[int] = set()
    pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=_mp_context(),
                               initializer=_worker_init, initargs=(str(npy), pre, os.getpid()))
    try:
        futures = [pool.submit(_decode_chunk, t) for t in tasks]
        with console.progress("decoding images", sum(len(t[1]) for t in tasks)) as advance:
            for fut in as_completed(futures):
                start, count, errors = fut.result()
                done.add(start)
                bad.update(errors)
                advance(count)
                if errors and stop_on_bad:
                    break
        return None
    except BrokenProcessPool:
        console.warn("the decoding worker processes stopped unexpectedly (a script that decodes should "
                     "guard its main code with `if __name__ == '__main__':`); decoding the rest here")
        return done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _mp_context() -> multiprocessing.context.BaseContext:
    """fork where it is safe (Linux, one thread: fast, no re-import of __main__), else spawn."""
    if sys.platform.startswith("linux") and _threads() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 2


# Per-process state of a decoding worker (set by the pool initializer, so it works under spawn).
_TARGET: np.memmap | None = None
_PRE: Preprocess | None = None


def _worker_init(npy: str, pre: Preprocess, parent: int | None = None) -> None:
    """Open the target for decoding; in a pool worker (`parent` given), also end with the parent."""
    global _TARGET, _PRE
    if parent is not None:
        _exit_with(parent)
    _TARGET = np.load(npy, mmap_mode="r+")
    _PRE = pre


def _exit_with(parent: int) -> None:
    """End this worker when the process that started it is gone. A parent killed with SIGKILL cannot
    stop its pool, and forked workers hold the pool's pipes open themselves, so they would never see
    it go: a thread here notices the new parent (the orphan's adopter) within half a second."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="ccvae-parent-watch", daemon=True).start()


def _worker_done() -> None:
    global _TARGET
    if _TARGET is not None:
        _TARGET.flush()
    _TARGET = None


def _decode_chunk(task: tuple[int, list[str], list[str]]) -> tuple[int, int, dict[int, str]]:
    """Decode one run of images straight into the shared memory map."""
    start, paths, names = task
    assert _TARGET is not None and _PRE is not None
    errors: dict[int, str] = {}
    for k, (path, rel) in enumerate(zip(paths, names)):
        try:
            _TARGET[start + k] = load_image(path, _PRE, name=rel)
        except CcvaeError as e:
            errors[start + k] = str(e)
    return start, len(paths), errors


def _drop_rows(npy: Path, bad: list[int], n: int) -> None:
    """Remove rows in place: move the kept rows up, then shrink the header's shape and the file."""
    mm = np.load(npy, mmap_mode="r+")
    row_shape = mm.shape[1:]
    dst = bad[0]
    edges = bad + [n]
    for lo, hi in zip(edges[:-1], edges[1:]):       # runs of kept rows between unreadable ones
        src = lo + 1
        while src < hi:
            stop = min(hi, src + 1024)
            mm[dst:dst + stop - src] = mm[src:stop]
            dst += stop - src
            src = stop
    mm.flush()
    del mm
    _set_rows(npy, n - len(bad), row_shape)


def _set_rows(npy: Path, rows: int, row_shape: tuple[int, ...]) -> None:
    """Rewrite the .npy header for `rows` rows, keeping its length, and cut the file after them."""
    with open(npy, "r+b") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, fortran, dtype = read(f)
        offset = f.tell()
        prefix = 10 if major == 1 else 12           # magic, version, header length
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
                  "shape": (rows, *row_shape)}
        text = "{" + "".join(f"{k!r}: {v!r}, " for k, v in sorted(header.items())) + "}"
        room = offset - prefix - 1
        assert len(text) <= room
        f.seek(prefix)
        f.write((text + " " * (room - len(text)) + "\n").encode("latin1"))
        f.truncate(offset + rows * math.prod(row_shape) * dtype.itemsize)


def _publish(tmp: Path, final: Path, key: str, manifest: dict, replace: bool) -> dict:
    """Rename the finished build into place. Returns the manifest of what now lives there."""
    try:
        os.rename(tmp, final)
        _fsync(final.parent)
        return manifest
    except OSError:
        if not final.exists():
            raise
    if not replace:
        theirs = _valid(final, key)                 # another process finished the same build first
        if theirs is not None:
            return theirs
    old = Path(tempfile.mkdtemp(prefix=f"{key}.old-{_host()}-{os.getpid()}-", dir=final.parent))
    try:
        os.replace(final, old)                      # move the stale or damaged entry aside ...
        os.rename(tmp, final)                       # ... and put the new one in its place
        _fsync(final.parent)
    finally:
        shutil.rmtree(old, ignore_errors=True)
    return manifest


def _remove_stale(base: Path) -> None:
    """Delete leftovers of interrupted builds on this host (their process is gone)."""
    host = _host()
    for entry in base.iterdir() if base.is_dir() else []:
        parts = entry.name.split(".", 1)
        if len(parts) != 2 or not parts[1].startswith(("building-", "old-")):
            continue
        fields = parts[1].split("-")                 # building, host..., pid, random
        try:
            pid = int(fields[-2])
        except (IndexError, ValueError):
            continue
        if "-".join(fields[1:-2]) == host and not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _host() -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname()) or "host"


# --- labels and split --------------------------------------------------------------------------------

def _labels_key(catalog: Catalog) -> str:
    h = hashlib.sha256(json.dumps([lab.to_json() for lab in catalog.label_info]).encode())
    h.update(np.ascontiguousarray(catalog.labels, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(catalog.split, dtype=np.int8).tobytes())
    return h.hexdigest()[:16]


def _write_labels(folder: Path, manifest: dict, catalog: Catalog, labels: np.ndarray,
                  split: np.ndarray) -> None:
    """Write labels.npy, split.npy and manifest.json (each replaced atomically by util.atomic).
    An OSError is raised as it is (error=None): `_build` words a full disk itself, and
    `_record_labels` leaves a read-only cache as it is."""
    manifest["labels_key"] = _labels_key(catalog)
    manifest["labels"] = [lab.to_json() for lab in catalog.label_info]
    atomic_write(folder / "labels.npy", lambda f: np.save(f, labels), error=None)
    atomic_write(folder / "split.npy", lambda f: np.save(f, split), error=None)
    atomic_write(folder / "manifest.json",
                 lambda f: f.write(json.dumps(manifest, separators=(",", ":")).encode()), error=None)


def _record_labels(folder: Path, manifest: dict, catalog: Catalog, labels: np.ndarray,
                   split: np.ndarray) -> None:
    """Bring the entry's labels up to date; a read-only cache is left as it is."""
    if manifest.get("labels_key") == _labels_key(catalog):
        return
    try:
        _write_labels(folder, dict(manifest), catalog, labels, split)
    except OSError:
        pass


# --- small helpers -------------------------------------------------------------------------------------

def _relative_names(paths: list[str], root: Path) -> list[str]:
    """Paths relative to root with "/" separators where they lie under it, else as given."""
    prefix = os.path.join(os.fspath(root), "")
    cut = len(prefix)
    slash = os.sep != "/"
    return [(p[cut:].replace(os.sep, "/") if slash else p[cut:]) if p.startswith(prefix) else p
            for p in paths]


def _stat(path: str | Path) -> _Stat:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, 0)
    return (st.st_size, st.st_mtime_ns)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _first(bad: dict[int, str]) -> list[int]:
    return sorted(bad)[:SHOW_BAD]


def _raise_bad(bad: dict[int, str], n: int, everything: bool = False) -> None:
    first = _first(bad)
    more = f" (and {len(bad) - len(first)} more)" if len(bad) > len(first) else ""
    reasons = "; ".join(bad[i] for i in first)
    if everything:
        raise DataError(f"none of the {n} images can be read: {reasons}{more}")
    raise DataError(f"{len(bad)} of {n} images cannot be read: {reasons}{more}; fix or remove "
                    f"them, or let unreadable images be skipped")


def _warn_bad(bad: dict[int, str], names: list[str], folder: Path) -> None:
    first = _first(bad)
    shown = ", ".join(names[i] for i in first) + (", ..." if len(bad) > len(first) else "")
    console.warn(f"left out {len(bad)} of {len(names)} images that cannot be read: {shown} "
                 f"(first: {bad[first[0]]}; all in {folder / 'manifest.json'})")
