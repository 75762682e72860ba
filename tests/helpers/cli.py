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
