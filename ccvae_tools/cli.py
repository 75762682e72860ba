"""The `ccvae` command line: a thin layer over plain functions.

Heavy modules (torch above all) are imported inside the commands, so that `ccvae --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ccvae_tools import __version__
from ccvae_tools.errors import CcvaeError

app = typer.Typer(
    name="ccvae",
    help="Edit what a label means in an image, with a Characteristic Capturing VAE (CCVAE, ICLR 2021).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Make and check data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


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


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------

@data_app.command("avatars", epilog="""Examples:

  ccvae data avatars data/avatars --n 20000 --seed 0

  ccvae data avatars /tmp/tiny --n 200 --size 32 --workers 2
""")
def data_avatars(
    out: Path = typer.Argument(..., help="Folder to write (CelebA layout)."),
    n: int = typer.Option(20000, "--n", "-n", min=1, help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same images."),
    size: int = typer.Option(64, "--size", min=8, max=1024, help="Image side in pixels."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes (0: one per core)."),
    valid_frac: float = typer.Option(0.1, "--valid-frac", min=0.0, max=0.5, help="Share for validation."),
    test_frac: float = typer.Option(0.1, "--test-frac", min=0.0, max=0.5, help="Share for test."),
) -> None:
    """Generate cartoon faces with known attributes (DiceBear avataaars art), in CelebA layout."""
    from ccvae_tools.data.avatars import generate_avatars

    path = generate_avatars(out, n=n, seed=seed, size=size, workers=workers,
                            valid_frac=valid_frac, test_frac=test_frac)
    print(path)


@data_app.command("check", epilog="""Examples:

  ccvae data check ~/data/celeba

  ccvae data check ~/data/CheXpert-v1.0-small --format chexpert --uncertain ones

  ccvae data check labels.csv --images photos/ --json
""")
def data_check(
    data: Path = typer.Argument(..., help="Data folder or CSV file."),
    fmt: str = typer.Option("auto", "--format", help="auto | celeba | chexpert | folder"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated label names."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder for a folder + CSV data set."),
    uncertain: str = typer.Option("ignore", "--uncertain", help="CheXpert -1 cells: ignore | ones | zeros"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Validate a data folder and print its report (counts, label rates, unreadable files)."""
    from ccvae_tools.data.readers import open_catalog
    from ccvae_tools.data.report import make_report

    catalog = open_catalog(data, fmt=fmt, labels=_split_list(labels), images_dir=images, uncertain=uncertain)
    report = make_report(catalog, check_files=True)
    if as_json:
        import json
        print(json.dumps(report.to_json()))
    else:
        report.render()
    if report.fatal:
        raise typer.Exit(1)


def _split_list(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI: one clear line on stderr and exit 1 (failed run) or 2 (bad usage) on errors."""
    import click

    from ccvae_tools.console import debug_enabled

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="ccvae", standalone_mode=False)
    except click.exceptions.Exit as e:  # pragma: no cover - click returns it in non-standalone mode
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        print("ccvae: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("ccvae: interrupted", file=sys.stderr)
        sys.exit(130)
    except CcvaeError as e:
        if debug_enabled():
            raise
        print(f"ccvae: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except Exception as e:
        if debug_enabled():
            raise
        print(f"ccvae: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
