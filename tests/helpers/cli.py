"""Run the CLI in this process, as tests need it."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import warnings


class _Stdin:
    """A piped stdin holding `data` (not a terminal), as `cat file | ccvae ... -` gives."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def run_cli(argv, capsys, stdin: bytes | None = None, warnings_shown: bool = False) -> tuple[int, str, str]:
    """Run `ccvae ARGV` in this process: (exit code, stdout, stderr); `stdin`: the bytes piped in.
    With `warnings_shown`, the Python warnings of the run are on stderr, as a real process prints
    them (pytest would otherwise collect them out of sight)."""
    from ccvae_tools.cli import main

    capsys.readouterr()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = _Stdin(stdin)
    with warnings.catch_warnings(record=True) if warnings_shown else contextlib.nullcontext([]) as caught:
        if warnings_shown:
            _python_default_filters()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.stdin = saved
    out, err = capsys.readouterr()
    if warnings_shown:
        err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return code, out, err


def _python_default_filters() -> None:
    """What Python shows by default outside __main__: every warning but the deprecations."""
    warnings.simplefilter("always")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


def assert_one_line(code: int, err: str, codes: tuple[int, ...], *needles: str) -> str:
    """The run failed cleanly: exit code in `codes`, one line `ccvae: error: ...` on stderr naming
    every needle, no traceback and no `internal error`. Returns the line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in codes, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ccvae: error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


_PYTHON_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ", re.MULTILINE)     # as warnings.formatwarning writes


def assert_clean_exit(code: int, out: str, err: str, preamble: bool = False) -> None:
    """What any command line may end in (issue 12, item 5): success (0), or a failed run (1) or
    bad usage (2) told in exactly one line `ccvae: error: ...` on stderr, with no traceback, no
    `internal error` and nothing a terminal acts on; text on the streams is terminal-safe too, and
    no Python warning is printed (run with `run_cli(..., warnings_shown=True)`). With `preamble`,
    lines the command printed as it went (its own report) may come before the error line."""
    from helpers.hostile import unsafe_chars

    assert code in (0, 1, 2), (code, err)
    assert not unsafe_chars(out + err, allow="\n"), (unsafe_chars(out + err, allow="\n"), err)
    assert not _PYTHON_WARNING.search(err), err
    if code == 0:
        return
    lines = (err[:-1] if err.endswith("\n") else err).split("\n")
    if preamble:
        assert not any(line.startswith("ccvae:") for line in lines[:-1]), err
    else:
        assert len(lines) == 1, err
    assert lines[-1].startswith("ccvae: error: ") and lines[-1] != "ccvae: error: ", err
    assert "internal error" not in err and "Traceback" not in err, err
