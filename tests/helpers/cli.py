"""Run the CLI in this process, as tests need it."""

from __future__ import annotations


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Run `ccvae ARGV` in this process: (exit code, stdout, stderr)."""
    from ccvae_tools.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


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
