"""Where messages and progress go: stderr only (stdout carries data). No colour or bars off a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)


def debug_enabled() -> bool:
    return os.environ.get("CCVAE_DEBUG", "") not in ("", "0")


def info(msg: str) -> None:
    err.print(msg)


def warn(msg: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {msg}" if err.is_terminal else f"warning: {msg}")


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator["callable"]:
    """Yield `advance(n=1)`. A rich bar on a terminal; on a non-terminal, nothing is drawn."""
    if not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    cols = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
