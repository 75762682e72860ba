"""`ccvae eval`: held-out numbers for a model (docs/method.md section 5.8).

Classification of q(y|x) against the majority baseline, reconstruction and bound, characteristic
capture (data with ground-truth variants: generated avatars), and edits and conditional samples
scored by an independent judge (`ccvae_tools.evaluation.judge`). The evaluation itself, opening the
data, finding the judge and storing the metrics live in `ccvae_tools.evaluation` (`run`, `evaluate`);
this module parses the options and prints the result.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ccvae_tools.cli.params import DEVICE, EDIT_MAP_CHOICES, EDIT_MAP_HELP, MODEL, QUIET, Commands, choice, number, seed_option
from ccvae_tools.util.errors import CcvaeError, UsageError
from ccvae_tools.util.text import safe_text

commands = Commands()
register = commands.register


def _say(msg: str) -> None:
    from ccvae_tools.util.console import err

    err.print(safe_text(msg), markup=False, highlight=False)


# ----------------------------------------------------------------------------------------------
# the human tables
# ----------------------------------------------------------------------------------------------

def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_report(report: dict) -> list:
    """Rich renderables for stdout: a summary, one row per label, and the capture table."""
    mt = report["metrics"]
    out = _summary(report)
    out.append(_label_table(mt))
    if mt.get("labels_from_style"):
        out.append(_text("from z_s: the label read from z_s by a linear probe; near the majority column when z_s "
                         "leaves the label to z_c"))
    out += _capture(mt)
    out += _capture_continuous(mt)
    skipped = (report.get("details") or {}).get("capture_skipped")
    if skipped:
        out.append(_text("capture skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())))
    return out


def _text(line: str):
    """A line or cell as rich Text, made terminal-safe: label, class and data names come from files."""
    from rich.text import Text

    return Text(safe_text(line))


def _summary(report: dict) -> list:
    """The lines above the table: the set evaluated, reconstruction and bound, q(y|x), the judge."""
    mt = report["metrics"]
    out = [_text(f"{report.get('model', '')} on {report.get('data', '')}: {mt['split']} split, "
                 f"{mt['images']:,} images, seed {mt['seed']}"),
           _text(f"reconstruction L1 {_f(mt.get('recon_l1'), 4)}; bound L(x, y) {_f(mt.get('bound'), 1)} per image "
                 f"({_f(mt.get('bound_per_pixel'), 4)} per pixel, K = {mt.get('draws')})"),
           _text(f"q(y|x) mean accuracy {_f(mt.get('mean_accuracy'))}, balanced {_f(mt.get('mean_balanced_accuracy'))}, "
                 f"majority baseline {_f(mt.get('mean_majority_baseline'))}")]
    judge, edit, samples = mt.get("judge") or {}, mt.get("edit") or {}, mt.get("samples") or {}
    if judge:
        out.append(_text(f"judge mean accuracy {_f(judge.get('mean_accuracy'))} (on reconstructions "
                         f"{_f(judge.get('mean_recon_accuracy'))}); edits: success {_f(edit.get('mean_success'))}, "
                         f"leakage {_f(edit.get('mean_leakage'))}; samples: carried {_f(samples.get('mean_carried'))}, "
                         f"diversity {_f(samples.get('mean_diversity'), 4)}"))
    cons = mt.get("edit_consistent") or {}
    if cons:
        out.append(_text(f"consistent edits (plus the fewest other label changes that give a combination seen in "
                         f"training): success {_f(cons.get('mean_success'))}, leakage on the unchanged labels "
                         f"{_f(cons.get('mean_leakage'))}"))
    return out


def _label_table(mt: dict):
    """One row per label: q(y|x) against the majority, the label from z_s, and the judge's columns."""
    from rich import box
    from rich.table import Table

    judge, edit, samples = mt.get("judge") or {}, mt.get("edit") or {}, mt.get("samples") or {}
    cons = mt.get("edit_consistent") or {}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=None)
    cols = ["label", "accuracy", "balanced", "majority", "beats", "from z_s"]
    if judge:
        cols += ["judge", "judge recon", "edit success", "leakage", "consistent", "carried", "diversity",
                 "data div."]
    for c in cols:
        table.add_column(c, justify="left" if c == "label" else "right")
    for name, acc in mt.get("accuracy", {}).items():
        base = mt.get("majority_baseline", {}).get(name)
        row = [_text(name), _f(acc), _f(mt.get("balanced_accuracy", {}).get(name)), _f(base),
               "yes" if base is not None and acc > base else "no",
               _f(mt.get("labels_from_style", {}).get(name))]
        if judge:
            row += [_f(judge.get("accuracy", {}).get(name)), _f(judge.get("recon_accuracy", {}).get(name)),
                    _f(edit.get("success", {}).get(name)), _f(edit.get("leakage", {}).get(name)),
                    _f(cons.get("success", {}).get(name)),
                    _f(samples.get("carried", {}).get(name)), _f(samples.get("diversity", {}).get(name), 4),
                    _f(samples.get("data_diversity", {}).get(name), 4)]
        table.add_row(*row)
    return table


def _capture_table(columns: tuple[str, ...], left: int):
    """An empty capture table: the first `left` columns are names (left-aligned), the rest numbers."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i < left else "right")
    return table


def _capture(mt: dict) -> list:
    """The characteristic-capture table and its summary line (nothing without a capture block)."""
    capture = mt.get("capture")
    if not capture:
        return []
    ct = _capture_table(("characteristic", "variant", "class", "train", "test", "variants", "from z_c", "from z_s",
                         "chance"), left=2)
    for name, e in capture.items():
        for label, v in ((name, e), (f"{name} (coarse)", e.get("coarse"))):
            if not v:
                continue
            ct.add_row(_text(label), _text(str(v.get("variant"))), _text(_f(e.get("class"))), _f(v.get("train")),
                       _f(v.get("test")), _f(v.get("variants")), _f(v.get("z_c")), _f(v.get("z_s")),
                       _f(v.get("chance")))
    out = [_text("characteristic capture: the within-label variant predicted from z_c^i, from z_s, by chance"), ct]
    cs = mt.get("capture_summary")
    if cs:
        out.append(_text(f"z_c^i above z_s by at least {cs['margin']:.2f} for {cs['z_c_clearly_above']} of "
                         f"{cs['labels']} labels (above at all: {cs['z_c_above']}); z_s above z_c^i by as much: "
                         f"{cs['z_s_clearly_above']}"))
    return out


def _capture_continuous(mt: dict) -> list:
    """The continuous-capture table (typefaces: weight class within Bold, ...): R^2 / Spearman."""
    capture = mt.get("capture_continuous")
    if not capture:
        return []
    ct = _capture_table(("label", "characteristic", "class", "train", "test", "z_c R^2", "z_s R^2", "z_c rank",
                         "z_s rank"), left=2)
    for name, e in capture.items():
        for k, v in e["within"].items():
            if "skipped" in v:
                ct.add_row(_text(name), _text(e["column"]), _text(k), _f(v["train"]), _f(v["test"]),
                           _text(v["skipped"]), "", "", "")
                continue
            ct.add_row(_text(name), _text(e["column"]), _text(k), _f(v["train"]), _f(v["test"]), _f(v["z_c"]["r2"]),
                       _f(v["z_s"]["r2"]), _f(v["z_c"]["spearman"]), _f(v["z_s"]["spearman"]))
    return [_text("characteristic capture: the continuous characteristic within each class of its label, "
                  "regressed from z_c^i and from z_s (R^2, Spearman rank correlation)"), ct]


def _stdout_console():
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=None if tty else 100_000,
                   no_color=not tty, force_terminal=None if tty else False)


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------

@commands.command("eval", epilog="""Examples:

  ccvae eval data/avatars -m runs/00001-avatars-sup1/model.safetensors

  ccvae eval ~/data/celeba -m my.safetensors --json --max-images 2000 > eval.json

  ccvae eval data/avatars -m my.safetensors --write-metrics   (store the numbers in the weights file)

  ccvae eval data/avatars -m my.safetensors --judge judges/   (keep the judge classifier there)
""")
def eval_cmd(
    data: Path = typer.Argument(..., help="Data folder or CSV (any format `ccvae data check` reads)."),
    model: Optional[str] = MODEL,
    device: Optional[str] = DEVICE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    split: str = typer.Option("test", "--split", help="test | valid | train: the images to evaluate on."),
    judge_opt: Optional[str] = typer.Option(None, "--judge", metavar="PATH",
                                            help="Judge file (.safetensors) or folder (default: next to the "
                                                 "weights); trained on the data's train split when missing "
                                                 "or not matching."),
    max_images: Optional[int] = number(None, "--max-images", minimum=1, maximum=10 ** 9,
                                       help="Use at most N images of the split (seeded choice; default "
                                            "all). Edits use at most 500."),
    seed: int = seed_option("Seed of every random choice (results are deterministic)."),
    write: bool = typer.Option(False, "--write-metrics",
                               help="Store the metrics block in the weights file (ccvae.metrics)."),
    edit_map: str = choice(EDIT_MAP_CHOICES[0], "--edit-map", choices=EDIT_MAP_CHOICES, help=EDIT_MAP_HELP),
    samples: int = number(64, "--samples", minimum=2, maximum=4096, help="Conditional samples per label and class."),
    draws: int = number(100, "--draws", minimum=1, maximum=10_000, help="K: draws for the bound's q^(y|x)."),
    judge_epochs: Optional[int] = number(None, "--judge-epochs", minimum=1, maximum=1000,
                                         help="Epochs of the judge (default: about 1000 steps, 3-30 epochs)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="auto | celeba | chexpert | folder "
                                                              "(default: as the model was trained)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder for a folder + CSV data set."),
    uncertain: Optional[str] = typer.Option(None, "--uncertain", help="CheXpert -1: ignore | ones | zeros "
                                                                      "(default: as the model was trained)."),
    workers: Optional[int] = number(None, "--workers", minimum=1, maximum=1024,
                                    help="Processes for decoding the cache."),
    quiet: bool = QUIET,
) -> None:
    """Evaluate a model on held-out data: label accuracy, reconstruction, bound, characteristic capture,
    and edits and samples judged by an independent classifier."""
    from ccvae_tools.cli import io as cli_io
    from ccvae_tools.evaluation.run import SPLITS, check_splits, open_eval_data, run_eval, write_metrics

    if split not in SPLITS:
        raise UsageError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    path, meta = cli_io.read_model_metadata(model)
    if write and not os.access(path.parent, os.W_OK | os.X_OK):
        raise CcvaeError(f"--write-metrics: cannot write in {path.parent} (the weights file's folder)")
    stat_before = path.stat()
    catalog, decoded = open_eval_data(data, meta, fmt, images, uncertain, workers)
    check_splits(data, decoded, split)
    m = cli_io.open_model(str(path), device)
    report = run_eval(m, path, data, catalog, decoded, SPLITS[split], judge_option=judge_opt,
                      judge_epochs=judge_epochs, max_images=max_images, seed=seed, draws=draws, samples=samples,
                      edit_map=edit_map, progress=_say)
    if write:
        write_metrics(path, report["metrics"], stat_before)
        _say(f"eval: wrote the metrics into {path} (ccvae.metrics)")
    if as_json:
        cli_io.emit_json(report)
    else:
        console = _stdout_console()
        for r in render_report(report):
            console.print(r)
    cli_io.say_model(path, quiet)
    _weak_spots(report, m.meta)


def _weak_spots(report: dict, meta: dict) -> None:
    """The weak-spot lines after the tables (on stderr, so that --json stays one object on stdout)."""
    from ccvae_tools.evaluation.weak_spots import eval_weak_spots
    from ccvae_tools.util.console import info

    for line in eval_weak_spots(report["metrics"], meta):
        info(f"weak spot: {line}")
