"""The `ccvae` app and its entry point: every command module registers its commands here.

Heavy modules (torch above all) are imported inside the commands, so that `ccvae --help` stays fast.
To add a command: write it in a module of this package on a `Commands` registry (cli/params.py) and
add the module to `_register_all`.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from ccvae_tools import __version__
from ccvae_tools.util.errors import CcvaeError, message

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
    from ccvae_tools.cli import data, evaluate, inspect, intervene, train

    for module in (train, inspect, intervene, evaluate, data):     # the order of `ccvae --help`
        module.register(target)


_register_all(app)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI: one clear line on stderr and exit 1 (failed run) or 2 (bad usage) on errors.

    Typer/click handle their own usage errors (exit 2) in standalone mode; ours arrive here.
    """
    from ccvae_tools.util.console import debug_enabled

    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="ccvae", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("ccvae: interrupted", file=sys.stderr)
        sys.exit(130)
    except CcvaeError as e:
        if debug_enabled():
            raise
        print(f"ccvae: error: {message(e)}", file=sys.stderr)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except Exception as e:
        if debug_enabled():
            raise
        print(f"ccvae: internal error: {type(e).__name__}: {message(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        sys.exit(1)
