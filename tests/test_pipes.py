"""Shell idioms (issue 26, item 3): an image given as a pipe (`<(cat face.png)`, which is /dev/fd/N,
or a named FIFO) or a character device is read as stdin is, to the same limit, not refused; /dev/zero
and endless pipes still stop at the limit, with one line. Every pipe is made here (os.mkfifo, os.pipe)
and fed by a thread that gives up after a deadline, so that a failure cannot hang the suite."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ccvae_tools.data import images
from helpers.cli import assert_one_line, run_cli

pytestmark = [pytest.mark.usefixtures("clean_env"),
              pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.isdir("/dev/fd"),
                                 reason="no FIFOs or /dev/fd here")]

DEADLINE = 30.0            # seconds a writer waits for its reader before giving up


def _feed_fifo(fifo: Path, data: bytes) -> threading.Thread:
    """A thread that opens `fifo` for writing once a reader has it open, writes `data`, and closes."""
    def write() -> None:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:        # O_NONBLOCK: ENXIO until a reader is there (a plain open would wait for ever)
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                time.sleep(0.01)
                continue
            os.set_blocking(fd, True)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _feed_pipe(data: bytes | None) -> tuple[str, int, threading.Thread]:
    """(/dev/fd/N path, read end, writer thread) of an os.pipe: the thread writes `data` and closes
    its end; with None it writes zeros until the reader is gone (an endless pipe)."""
    r, w = os.pipe()

    def write() -> None:
        try:
            with os.fdopen(w, "wb") as f:
                if data is not None:
                    f.write(data)
                    return
                chunk = bytes(1 << 16)
                end = time.monotonic() + DEADLINE
                while time.monotonic() < end:
                    f.write(chunk)
        except (BrokenPipeError, OSError):
            pass                       # the reader closed its end: what an endless pipe meets
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return f"/dev/fd/{r}", r, thread


def _classify(capsys, tiny, *inputs) -> tuple[int, list[dict], str]:
    code, out, err = run_cli(["classify", "-m", tiny, "--mean", "--json", "-q", *inputs], capsys)
    return code, [json.loads(line) for line in out.splitlines()], err


def test_a_named_fifo_is_read_like_the_file_it_carries(tiny, face, tmp_path, capsys):
    fifo = tmp_path / "face.fifo"
    os.mkfifo(fifo)
    writer = _feed_fifo(fifo, face.read_bytes())
    code, rows, err = _classify(capsys, tiny, fifo, fifo)        # named twice: read once, used twice
    writer.join(DEADLINE)
    assert code == 0 and err == "", err
    _, direct, _ = _classify(capsys, tiny, face)
    assert [r["input"] for r in rows] == [str(fifo)] * 2
    assert rows[0]["probabilities"] == rows[1]["probabilities"] == direct[0]["probabilities"]


def test_a_dev_fd_pipe_is_read_and_its_default_output_goes_in_the_current_folder(tiny, face, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, r, writer = _feed_pipe(face.read_bytes())
    try:
        code, out, err = run_cli(["edit", path, "-m", tiny, "--set", "smiling=1", "-q"], capsys)
    finally:
        writer.join(DEADLINE)
        os.close(r)
    assert code == 0 and err == "", err
    written = Path(out.strip())
    assert written == Path(f"{r}.edit.png") and written.is_file()     # not /dev/fd/N.edit.png
    code, _, _ = run_cli(["edit", face, "-m", tiny, "--set", "smiling=1", "-q", "-o", "direct.png"], capsys)
    assert code == 0 and written.read_bytes() == Path("direct.png").read_bytes()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_stops_at_the_limit_quickly(tiny, capsys, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1 << 20)     # the limit stdin has, made small
    started = time.monotonic()
    code, out, err = run_cli(["classify", "-m", tiny, "/dev/zero"], capsys)
    assert time.monotonic() - started < DEADLINE
    assert_one_line(code, err, (1,), "/dev/zero", "more than 1 MB")
    code, out, stdin_err = run_cli(["classify", "-m", tiny, "-"], capsys, stdin=bytes((1 << 20) + 1))
    assert_one_line(code, stdin_err, (1,), "<stdin>", "more than 1 MB")       # the same limit, the same line


def test_an_endless_pipe_stops_at_the_limit(tiny, capsys, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1 << 20)
    path, r, writer = _feed_pipe(None)
    try:
        code, out, err = run_cli(["classify", "-m", tiny, path], capsys)
    finally:
        os.close(r)                  # the writer then meets a broken pipe and ends
        writer.join(DEADLINE)
    assert_one_line(code, err, (1,), path, "more than 1 MB")
    assert not writer.is_alive()


def test_a_terminal_named_as_an_image_is_refused(tiny, capsys):
    leader, follower = os.openpty()
    try:
        code, out, err = run_cli(["classify", "-m", tiny, os.ttyname(follower)], capsys)
    finally:
        os.close(leader)
        os.close(follower)
    assert_one_line(code, err, (1,), "is a terminal, not an image file")


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_process_substitution_in_a_real_shell(tiny, face, tmp_path):
    """`ccvae classify <(cat face.png)` as typed in bash: the pipe bash hands over is read."""
    command = f'"{sys.executable}" -m ccvae_tools classify -m "{tiny}" --mean --json <(cat "{face}")'
    env = {k: v for k, v in os.environ.items() if k not in ("CCVAE_DEBUG", "CCVAE_MODEL")}
    r = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["input"].startswith("/dev/fd/") and set(row["probabilities"]) == {"Smiling", "Eyeglasses",
                                                                                  "Blond_Hair"}
