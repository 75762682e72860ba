"""report: one self-contained HTML page about a model (`ccvae_tools/report/`), and a summary PNG.

This module settles which weights, which data, which images and where the page goes, runs
`ccvae eval`'s evaluation when DATA is given (`evaluation/run.py`, as `ccvae eval` does), renders
the card and the eval tables as `ccvae info` and `ccvae eval` print them, and hands all of it to
`report.build.build_report`; the page itself is made in `report/page.py`.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ccvae_tools.cli import io as cli_io
from ccvae_tools.cli.params import DEVICE, MODEL, QUIET, Commands, number, seed_option
from ccvae_tools.util.errors import UsageError, WeightsError
from ccvae_tools.util.text import safe_text

commands = Commands()
register = commands.register


def _arguments(args: Optional[List[str]], model: Optional[str]) -> tuple[Optional[str], Optional[Path], str]:
    """(the weights as given, DATA, where the weights came from): RUN|WEIGHTS [DATA], or with
    --model the one argument DATA."""
    args = list(args or [])
    if model is not None:
        if len(args) > 1:
            raise UsageError(f"--model {model} names the weights; give at most DATA as an argument, "
                             f"not {len(args)} arguments")
        return model, Path(args[0]) if args else None, "--model"
    if len(args) > 2:
        raise UsageError(f"give RUN|WEIGHTS and at most DATA, not {len(args)} arguments")
    return (args[0] if args else None), (Path(args[1]) if len(args) == 2 else None), "RUN|WEIGHTS"


def _outputs(output: str, png: Optional[str], inputs: list[str]) -> list[str]:
    """The files to write, checked before any work: folders exist, none is an input, two names."""
    targets = [output] + ([png] if png else [])
    if png is not None and Path(png).suffix.lower() != ".png":
        raise UsageError(f"--png {png}: the summary figure is a PNG; give a .png name")
    if png is not None and os.path.abspath(png) == os.path.abspath(output):
        raise UsageError(f"-o and --png both name {output}; give two files")
    for t in targets:
        cli_io.check_output_path(t)
        cli_io.check_targets([t], inputs)
    return targets


def _card_text(path: Path) -> str:
    """The card as `ccvae info` prints it (or the line saying why it cannot be shown)."""
    from ccvae_tools.cli.inspect import render_card
    from ccvae_tools.model.card import model_card
    from ccvae_tools.training.options import card_options

    try:
        return render_card(model_card(path, shown_options=card_options()))
    except WeightsError as e:            # the model loads, but a free-form record of its card is malformed
        return f"the card cannot be shown: {e}"


def _eval_text(report: dict) -> str:
    """The tables of `ccvae eval` as plain text (no colour), as it prints them."""
    from rich.console import Console

    from ccvae_tools.cli.evaluate import render_report

    console = Console(file=io.StringIO(), record=True, width=170, color_system=None, highlight=False)
    for part in render_report(report):
        console.print(part)
    return console.export_text()


def _say(msg: str) -> None:
    from ccvae_tools.util.console import info

    info(msg)


def _shipped_faces(m) -> tuple[Any, str]:
    """The example images shipped beside a shipped model (weights/examples), if any."""
    examples = cli_io.shipped_examples(Path(m.path))
    if not examples:
        return None, ""
    import numpy as np

    from ccvae_tools.report.pictures import SWAP_FACES

    chosen = [str(p) for p in examples[:SWAP_FACES]]
    faces = np.stack([a for _, a in cli_io.read_inputs(chosen, m.preprocess)])
    return faces, f"The images are examples shipped with the model ({', '.join(Path(p).name for p in chosen)})."


@commands.command("report", epilog="""Examples:

  ccvae report runs/00003-avatars-sup1                 (writes report.html)

  ccvae report runs/00003-avatars-sup1 data/avatars -o report.html --png summary.png

  ccvae report avatars64 -o avatars64.html             (a weights file alone: no curves, the rest)

  ccvae report -m my.safetensors data/avatars --max-images 500 --judge judges/

  The page is one file: images and plots embedded, no script, nothing loaded from elsewhere.
  With DATA it runs `ccvae eval` on it (see `ccvae eval --help` for the options shared with it)
  and charts its tables. Needs the extra: pip install 'ccvae-tools[report]'.
""")
def report_cmd(
    args: Optional[List[str]] = typer.Argument(None, metavar="RUN|WEIGHTS [DATA]", show_default=False,
                                               help="A run folder of `ccvae train` or a weights file (a shipped "
                                                    "name such as avatars64; default as --model), then a data "
                                                    "set to evaluate on (optional). With --model: DATA only."),
    output: str = typer.Option("report.html", "--output", "-o", help="The HTML page to write."),
    png: Optional[str] = typer.Option(None, "--png", metavar="FILE",
                                      help="Also write one summary figure (curves, accuracy, traversals) as a PNG."),
    split: str = typer.Option("test", "--split", help="With DATA: test | valid | train, the images evaluated."),
    max_images: Optional[int] = number(None, "--max-images", minimum=1, maximum=10 ** 9,
                                       help="With DATA: evaluate at most N images of the split (default all)."),
    judge_opt: Optional[str] = typer.Option(None, "--judge", metavar="PATH",
                                            help="With DATA: the judge file or folder, as for `ccvae eval`."),
    judge_epochs: Optional[int] = number(None, "--judge-epochs", minimum=1, maximum=1000,
                                         help="With DATA: epochs of a judge trained now."),
    samples: int = number(64, "--samples", minimum=2, maximum=4096,
                          help="With DATA: conditional samples per label and class the judge reads."),
    fmt: Optional[str] = typer.Option(None, "--format", help="auto | celeba | chexpert | folder "
                                                              "(default: as the model was trained)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder for a folder + CSV data set."),
    seed: int = seed_option("Seed of the evaluation and of every picture (the page is deterministic)."),
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """Write one self-contained HTML page about a model: training curves, eval charts, pictures, options, card."""
    from ccvae_tools.report.plots import require_matplotlib

    require_matplotlib()                      # before any work: the one line naming the extra
    target, data, source = _arguments(args, model)
    from ccvae_tools.evaluation.run import SPLITS

    if split not in SPLITS:
        raise UsageError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    path = cli_io.resolve_model_path(target, source)
    targets = _outputs(output, png, [str(path)] + ([str(data)] if data is not None else []))
    card_text = _card_text(path)
    m, eval_report, faces, note = _model_and_eval(path, data, device, split, judge_opt, judge_epochs, max_images,
                                                  seed, samples, fmt, images)
    from ccvae_tools.report.build import build_report, summary_png
    from ccvae_tools.report.page import render_page

    r = build_report(m, card_text=card_text, model_name=cli_io.model_name(path), eval_report=eval_report,
                     eval_text=_eval_text(eval_report) if eval_report else "", faces=faces, faces_note=note,
                     data_name=str(data) if data is not None else None, seed=seed)
    written = [cli_io.atomic_write_bytes(targets[0], render_page(r).encode("utf-8"))]
    if png is not None:
        written.append(cli_io.atomic_write_bytes(png, summary_png(r, m)))
    sys.stdout.write("".join(f"{safe_text(p)}\n" for p in written))
    cli_io.say_model(path, quiet)


def _model_and_eval(path: Path, data: Optional[Path], device, split: str, judge_opt, judge_epochs, max_images,
                    seed: int, samples: int, fmt, images):
    """The loaded model; with DATA, `ccvae eval`'s report on it and the first images of the split
    (else the shipped examples, else none: the model draws its own)."""
    from ccvae_tools.model.weights import read_metadata

    if data is None:
        m = cli_io.open_model(str(path), device)
        faces, note = _shipped_faces(m)
        return m, None, faces, note
    from ccvae_tools.evaluation.run import SPLITS, check_splits, open_eval_data, run_eval
    from ccvae_tools.report.pictures import SWAP_FACES

    catalog, decoded = open_eval_data(data, read_metadata(path), fmt, images, None)
    check_splits(data, decoded, split)
    m = cli_io.open_model(str(path), device)
    report = run_eval(m, path, data, catalog, decoded, SPLITS[split], judge_option=judge_opt,
                      judge_epochs=judge_epochs, max_images=max_images, seed=seed, draws=100, samples=samples,
                      progress=_say)
    rows = decoded.indices(SPLITS[split])[:SWAP_FACES]
    return m, report, decoded.images[rows], f"The images are the first {len(rows)} of DATA's {split} split."
