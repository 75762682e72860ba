"""The `ccvae` app and its entry point: every command module registers its commands here.

Heavy modules (torch above all) are imported inside the commands, so that `ccvae --help` stays fast.
To add a command: write it in a module of this package on a `Commands` registry (cli/params.py) and
add the module to `_register_all`.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import List, Optional

import typer

from ccvae_tools import __version__
from ccvae_tools.util.errors import CcvaeError, Interrupted, message

app = typer.Typer(
    name="ccvae",
    help="Edit what a label means in an image, with a Characteristic Capturing VAE (CCVAE, ICLR 2021).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"ccvae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (or CCVAE_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if debug:
        os.environ["CCVAE_DEBUG"] = "1"


def _register_all(target: typer.Typer) -> None:
    from ccvae_tools.cli import data, evaluate, export, inspect, intervene, report, studio, train

    for module in (train, inspect, intervene, evaluate, report, export, data, studio):  # the order of `ccvae --help`
        module.register(target)


_register_all(app)


@functools.cache
def _command():
    """The click command tree of the app, built once: building it reads every command's signature
    (most of an in-process run's time: tests and the fuzz test run the CLI thousands of times)."""
    return typer.main.get_command(app)


def _click_exceptions():
    """click's exception classes: typer >= 0.2x vendors click as `typer._click`, older typer uses
    click itself."""
    try:
        from typer._click import exceptions
    except ImportError:                                   # pragma: no cover - older typer
        from click import exceptions
    return exceptions


def _usage_line(error) -> str:
    """A click usage error (unknown option, bad value, missing argument) as our one line, with the
    command whose --help tells the right usage. click's own form is three lines: usage, hint, error."""
    text = message(error.format_message())
    ctx = getattr(error, "ctx", None)
    if ctx is None:
        return f"ccvae: error: {text}"
    return f"ccvae: error: {text} (see '{message(ctx.command_path)} --help')"


def _os_error_line(error: OSError) -> str | None:
    """An OS error about a named file (a name too long, a folder that cannot be searched, a loop of
    links) as our one line naming the file; None for one that names none. Any path given on the
    command line can meet these in whichever `exists()` or `open()` first looks at it, so they are
    told here, once, rather than at each of those places."""
    if error.filename is None:
        return None
    names = " -> ".join(str(n) for n in (error.filename, error.filename2) if n is not None)
    return f"ccvae: error: {message(names)}: {message(error.strerror or error)}"


def _fail(line: str, code: int) -> None:
    print(line, file=sys.stderr)
    sys.exit(code)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI: one clear line on stderr and exit 1 (failed run) or 2 (bad usage) on errors.

    click runs outside its standalone mode, so that its usage errors reach us too (printed as one
    line, exit 2, like ours) and `typer.Exit(n)` comes back as its code (commands return None).
    click turns Ctrl-C into the code 130.
    """
    from ccvae_tools.util.console import debug_enabled

    click_errors = _click_exceptions()
    try:
        code = _command().main(args=argv, prog_name="ccvae", standalone_mode=False)
    except SystemExit:
        raise
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except click_errors.ClickException as e:
        if isinstance(e, getattr(click_errors, "NoArgsIsHelpError", ())):
            e.show()                                      # `ccvae`, `ccvae data`: the help, exit 2
            sys.exit(e.exit_code)
        if isinstance(e, click_errors.UsageError):
            _fail(_usage_line(e), e.exit_code)
        _fail(f"ccvae: error: {message(e.format_message())}", e.exit_code)
    except Interrupted as e:                              # training's own Ctrl-C: what was saved
        _fail(f"ccvae: interrupted: {message(e)}", e.exit_code)
    except CcvaeError as e:
        if debug_enabled():
            raise
        _fail(f"ccvae: error: {message(e)}", e.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except Exception as e:
        if debug_enabled():
            raise
        line = _os_error_line(e) if isinstance(e, OSError) else None
        _fail(line or f"ccvae: internal error: {type(e).__name__}: {message(e)} (run with --debug for the "
                      f"traceback)", 1)
    code = code if isinstance(code, int) and not isinstance(code, bool) else 0
    if code == 130:
        _fail("ccvae: interrupted", 130)
    if code:
        sys.exit(code)
