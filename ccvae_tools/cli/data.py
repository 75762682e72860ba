"""`ccvae data avatars` and `ccvae data check`: make and check data sets."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ccvae_tools.cli.params import Commands, number, seed_option, split_list
from ccvae_tools.util.errors import DataError
from ccvae_tools.util.text import safe_text

commands = Commands(group="data", help="Make and check data sets.")
register = commands.register


@commands.command("avatars", epilog="""Examples:

  ccvae data avatars data/avatars --n 20000 --seed 0

  ccvae data avatars /tmp/tiny --n 200 --size 32 --workers 2
""")
def data_avatars(
    out: Path = typer.Argument(..., help="Folder to write (CelebA layout)."),
    n: int = number(20000, "--n", "-n", minimum=1, maximum=10_000_000, help="Number of images."),
    seed: int = seed_option("Seed: the same seed gives the same images."),
    size: int = number(64, "--size", minimum=8, maximum=1024, help="Image side in pixels."),
    workers: int = number(0, "--workers", minimum=0, maximum=1024, help="Processes (0: one per core)."),
    valid_frac: float = number(0.1, "--valid-frac", minimum=0.0, maximum=0.5, help="Share for validation."),
    test_frac: float = number(0.1, "--test-frac", minimum=0.0, maximum=0.5, help="Share for test."),
) -> None:
    """Generate cartoon faces with known attributes (DiceBear avataaars art), in CelebA layout."""
    from ccvae_tools.data.avatars import generate_avatars

    path = generate_avatars(out, n=n, seed=seed, size=size, workers=workers,
                            valid_frac=valid_frac, test_frac=test_frac)
    print(safe_text(path))


@commands.command("fonts", epilog="""Examples:

  ccvae data fonts data/fonts                          (every font in the system font folders)

  ccvae data fonts data/dejavu --fonts /usr/share/fonts/truetype/dejavu --chars abgkqRS

  ccvae data fonts data/fonts && ccvae train data/fonts --image-size 32
""")
def data_fonts(
    out: Path = typer.Argument(..., help="New folder to write (fonts.csv, images/, truth/, fonts.json)."),
    fonts: Optional[List[Path]] = typer.Option(None, "--fonts", help="Font file or folder (several allowed; "
                                               "default: the system font folders)."),
    chars: Optional[str] = typer.Option(None, "--chars", help="Characters to render, at most 20 (default: "
                                        "abdefghkmnpqrstuvwyz)."),
    size: int = number(32, "--size", minimum=8, maximum=512, help="Image side in pixels."),
    seed: int = seed_option("Seed of the split by family."),
    valid_frac: float = number(0.15, "--valid-frac", minimum=0.0, maximum=0.5,
                               help="Share of families for validation."),
    test_frac: float = number(0.15, "--test-frac", minimum=0.0, maximum=0.5, help="Share of families for test."),
) -> None:
    """Render typefaces as labelled grayscale images (Bold, Italic, Monospace, Condensed, Serif, char)."""
    from ccvae_tools.data.fonts import DEFAULT_CHARS, generate_fonts
    from ccvae_tools.util.console import info

    # its messages name font files, whose names come from anywhere: through the safe console
    path = generate_fonts(out, fonts, chars=chars or DEFAULT_CHARS, size=size, seed=seed,
                          valid_frac=valid_frac, test_frac=test_frac, say=info)
    print(safe_text(path))


@commands.command("check", epilog="""Examples:

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

    catalog = open_catalog(data, fmt=fmt, labels=split_list(labels), images_dir=images, uncertain=uncertain)
    report = make_report(catalog, check_files=True)
    if as_json:
        import json
        print(json.dumps(report.to_json()))
    else:
        report.render()
    if report.fatal:          # the report said why; the run still ends in the one error line
        raise DataError(f"{data}: the data cannot be trained on: {'; '.join(report.problems)}")
