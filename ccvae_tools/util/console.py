"""Where messages and progress go: stderr only (stdout carries data). No colour or bars off a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from rich.console import Console

from ccvae_tools.util.text import safe_markup, safe_text

# no emoji codes: ":warning:" in a file name prints as itself
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def debug_enabled() -> bool:
    return os.environ.get("CCVAE_DEBUG", "") not in ("", "0")


def info(msg: str) -> None:
    """A message on stderr; it may quote names from files, so it is made safe and not read as markup."""
    err.print(safe_text(msg), markup=False)


def warn(msg: str) -> None:
    if err.is_terminal:
        err.print(f"[yellow]warning:[/yellow] {safe_markup(msg)}")
    else:
        err.print(f"warning: {safe_text(msg)}", markup=False)


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
