"""`ccvae eval`: held-out numbers for a model (quality.md, Science).

Classification of q(y|x) against the majority baseline, reconstruction and bound, characteristic
capture (data with ground-truth variants: generated avatars), and edits and conditional samples
scored by an independent judge (`ccvae_tools.evaluation.judge`). The metric code lives in
`ccvae_tools.evaluation.evaluate`; this module opens the model and the data, finds or trains the judge, prints
and optionally stores the result in the weights file.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ccvae_tools.cli.params import DEVICE, MODEL, Commands
from ccvae_tools.util.errors import CcvaeError, DataError, UsageError

commands = Commands()
register = commands.register

SPLITS = {"train": 0, "valid": 1, "test": 2}
JUDGE_FOLDER = ".ccvae-judges"


def _say(msg: str) -> None:
    from ccvae_tools.util.console import err

    err.print(msg, markup=False, highlight=False)


def _train_options(meta: dict) -> dict:
    train = meta.get("ccvae.train")
    opts = train.get("options") if isinstance(train, dict) else None
    return opts if isinstance(opts, dict) else {}


def open_eval_data(data: Path, meta: dict, fmt: Optional[str], images: Optional[Path],
                   uncertain: Optional[str], workers: Optional[int] = None):
    """The data set decoded exactly as the model's input (its `ccvae.preprocess`), with the model's
    labels in the model's order. DataError when the data lacks a model label."""
    import dataclasses

    from ccvae_tools.data.base import Label, Preprocess
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog

    pre = Preprocess.from_json(meta["ccvae.preprocess"])
    model_labels = [Label.from_json(d) for d in meta["ccvae.labels"]]
    names = [lab.name for lab in model_labels]
    opts = _train_options(meta)
    fmt = fmt or opts.get("format") or "auto"
    uncertain = uncertain or opts.get("uncertain") or "ignore"
    crop = "squash" if pre.crop == "squash" else (str(pre.crop_size) if pre.crop_size else "center")
    try:
        catalog = open_catalog(data, fmt=fmt, labels=names, size=pre.size, crop=crop, uncertain=uncertain,
                               images_dir=images)
    except UsageError as e:
        if "unknown label" not in str(e):
            raise
        raise DataError(f"{data} does not have the model's labels: {e}; the model's labels are "
                        f"{', '.join(names)}") from None
    for got, want in zip(catalog.label_info, model_labels):
        if got.num_classes != want.num_classes:
            raise DataError(f"{data}: label {want.name} has {got.num_classes} classes in the data "
                            f"({'/'.join(got.classes)}) but {want.num_classes} in the model "
                            f"({'/'.join(want.classes)})")
    # decode with the model's own preprocessing (crop, size, channels), labels spelled as the model's
    catalog = dataclasses.replace(catalog, preprocess=pre, label_info=model_labels)
    return catalog, load_decoded(catalog, workers=workers)


def judge_path(option: Optional[str], weights: Path, data_name: str, size: int, fingerprint: str) -> Path:
    """--judge FILE.safetensors, --judge FOLDER, or next to the weights in JUDGE_FOLDER (else the user
    cache). The file name carries the data fingerprint, so judges of several data sets coexist."""
    name = f"judge-{data_name}-{size}px-{fingerprint[:10]}.safetensors"
    if option:
        p = Path(os.path.expanduser(option))
        if p.suffix.lower() == ".safetensors":
            if not p.parent.is_dir():
                raise CcvaeError(f"--judge {option}: the folder {str(p.parent)!r} does not exist; create it first")
            return p
        if p.exists() and not p.is_dir():
            raise UsageError(f"--judge {option}: not a folder and not a .safetensors file")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CcvaeError(f"--judge {option}: cannot create the folder ({e.strerror or e})") from None
        return p / name
    # next to the weights, in a hidden folder: a `weights/*.safetensors` glob (packaging, `ccvae info
    # FOLDER` hints) never mistakes a judge for a model
    here = weights.parent / JUDGE_FOLDER
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK | os.X_OK):
            return here / f"{weights.stem}.{name}"
    except OSError:
        pass
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = (Path(xdg) if xdg else Path.home() / ".cache") / "ccvae" / "judges"
    base.mkdir(parents=True, exist_ok=True)
    return base / name


class _Tensors:
    """A state dict from a file, in the shape `weights.save_model` takes (anything with state_dict())."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def state_dict(self) -> dict:
        return self.tensors


def write_metrics(path: Path, metrics: dict, stat_before: os.stat_result | None = None) -> None:
    """Rewrite the weights file's `ccvae.metrics` metadata atomically, every tensor and every other
    metadata entry unchanged. Refuses when the file changed since `stat_before` (a training run
    wrote a new checkpoint meanwhile: these numbers are not about it)."""
    from safetensors.torch import load_file

    from ccvae_tools.model.weights import read_header, read_metadata, save_model

    if stat_before is not None:
        now = path.stat()
        if (now.st_mtime_ns, now.st_size) != (stat_before.st_mtime_ns, stat_before.st_size):
            raise CcvaeError(f"{path}: the weights file changed during the evaluation; metrics not "
                             f"written (run ccvae eval again)")
    raw = dict(read_header(path)["metadata"])
    raw["ccvae.metrics"] = json.dumps(metrics, allow_nan=False)
    tensors = load_file(str(path))
    save_model(_Tensors(tensors), path, raw)
    read_metadata(path)            # the file we wrote reads back


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
    from rich import box
    from rich.table import Table
    from rich.text import Text

    mt = report["metrics"]
    out: list = []
    head = (f"{report.get('model', '')} on {report.get('data', '')}: {mt['split']} split, {mt['images']:,} images, "
            f"seed {mt['seed']}")
    out.append(Text(head))
    out.append(Text(f"reconstruction L1 {_f(mt.get('recon_l1'), 4)}; bound L(x, y) {_f(mt.get('bound'), 1)} per image "
                    f"({_f(mt.get('bound_per_pixel'), 4)} per pixel, K = {mt.get('draws')})"))
    out.append(Text(f"q(y|x) mean accuracy {_f(mt.get('mean_accuracy'))}, balanced {_f(mt.get('mean_balanced_accuracy'))}, "
                    f"majority baseline {_f(mt.get('mean_majority_baseline'))}"))
    judge = mt.get("judge") or {}
    edit = mt.get("edit") or {}
    samples = mt.get("samples") or {}
    if judge:
        out.append(Text(f"judge mean accuracy {_f(judge.get('mean_accuracy'))} (on reconstructions "
                        f"{_f(judge.get('mean_recon_accuracy'))}); edits: success {_f(edit.get('mean_success'))}, "
                        f"leakage {_f(edit.get('mean_leakage'))}; samples: carried {_f(samples.get('mean_carried'))}, "
                        f"diversity {_f(samples.get('mean_diversity'), 4)}"))
    cons = mt.get("edit_consistent") or {}
    if cons:
        out.append(Text(f"consistent edits (plus the fewest other label changes that give a combination seen in "
                        f"training): success {_f(cons.get('mean_success'))}, leakage on the unchanged labels "
                        f"{_f(cons.get('mean_leakage'))}"))

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=None)
    cols = ["label", "accuracy", "balanced", "majority", "beats", "from z_s"]
    if judge:
        cols += ["judge", "judge recon", "edit success", "leakage", "consistent", "carried", "diversity",
                 "data div."]
    for c in cols:
        table.add_column(c, justify="left" if c == "label" else "right")
    for name, acc in mt.get("accuracy", {}).items():
        base = mt.get("majority_baseline", {}).get(name)
        row = [Text(name), _f(acc), _f(mt.get("balanced_accuracy", {}).get(name)), _f(base),
               "yes" if base is not None and acc > base else "no",
               _f(mt.get("labels_from_style", {}).get(name))]
        if judge:
            row += [_f(judge.get("accuracy", {}).get(name)), _f(judge.get("recon_accuracy", {}).get(name)),
                    _f(edit.get("success", {}).get(name)), _f(edit.get("leakage", {}).get(name)),
                    _f(cons.get("success", {}).get(name)),
                    _f(samples.get("carried", {}).get(name)), _f(samples.get("diversity", {}).get(name), 4),
                    _f(samples.get("data_diversity", {}).get(name), 4)]
        table.add_row(*row)
    out.append(table)
    if mt.get("labels_from_style"):
        out.append(Text("from z_s: the label read from z_s by a linear probe; near the majority column when z_s "
                        "leaves the label to z_c"))

    capture = mt.get("capture")
    if capture:
        ct = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for c in ("characteristic", "variant", "class", "train", "test", "variants", "from z_c", "from z_s", "chance"):
            ct.add_column(c, justify="left" if c in ("characteristic", "variant") else "right")
        for name, e in capture.items():
            for label, v in ((name, e), (f"{name} (coarse)", e.get("coarse"))):
                if not v:
                    continue
                ct.add_row(Text(label), Text(str(v.get("variant"))), _f(e.get("class")), _f(v.get("train")),
                           _f(v.get("test")), _f(v.get("variants")), _f(v.get("z_c")), _f(v.get("z_s")),
                           _f(v.get("chance")))
        out.append(Text("characteristic capture: the within-label variant predicted from z_c^i, from z_s, by chance"))
        out.append(ct)
        cs = mt.get("capture_summary")
        if cs:
            out.append(Text(f"z_c^i above z_s by at least {cs['margin']:.2f} for {cs['z_c_clearly_above']} of "
                            f"{cs['labels']} labels (above at all: {cs['z_c_above']}); z_s above z_c^i by as much: "
                            f"{cs['z_s_clearly_above']}"))
    skipped = (report.get("details") or {}).get("capture_skipped")
    if skipped:
        out.append(Text("capture skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())))
    return out


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
    max_images: Optional[int] = typer.Option(None, "--max-images", min=1,
                                             help="Use at most N images of the split (seeded choice; default "
                                                  "all). Edits use at most 500."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random choice (results are deterministic)."),
    write: bool = typer.Option(False, "--write-metrics",
                               help="Store the metrics block in the weights file (ccvae.metrics)."),
    samples: int = typer.Option(64, "--samples", min=2, max=4096,
                                help="Conditional samples per label and class."),
    draws: int = typer.Option(100, "--draws", min=1, max=10_000, help="K: draws for the bound's q^(y|x)."),
    judge_epochs: Optional[int] = typer.Option(None, "--judge-epochs", min=1, max=1000,
                                               help="Epochs of the judge (default: about 1000 steps, 3-30 epochs)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="auto | celeba | chexpert | folder "
                                                              "(default: as the model was trained)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder for a folder + CSV data set."),
    uncertain: Optional[str] = typer.Option(None, "--uncertain", help="CheXpert -1: ignore | ones | zeros "
                                                                      "(default: as the model was trained)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes for decoding the cache."),
) -> None:
    """Evaluate a model on held-out data: label accuracy, reconstruction, bound, characteristic capture,
    and edits and samples judged by an independent classifier."""
    from ccvae_tools.cli import io as cli_io

    if split not in SPLITS:
        raise UsageError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    path, meta = cli_io.read_model_metadata(model)
    if write and not os.access(path.parent, os.W_OK | os.X_OK):
        raise CcvaeError(f"--write-metrics: cannot write in {path.parent} (the weights file's folder)")
    stat_before = path.stat()
    catalog, decoded = open_eval_data(data, meta, fmt, images, uncertain, workers)
    split_id = SPLITS[split]
    counts = {name: int((decoded.split == i).sum()) for name, i in SPLITS.items()}
    if counts[split] == 0:
        raise DataError(f"{data}: the {split} split is empty ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
                        f"choose another with --split")
    if counts["train"] == 0:
        raise DataError(f"{data}: the train split is empty; the majority baseline and the judge need it")

    from ccvae_tools.evaluation.evaluate import evaluate_model, load_ground_truth
    from ccvae_tools.evaluation.judge import data_fingerprint, load_or_train_judge

    m = cli_io.open_model(str(path), device)
    fp = data_fingerprint(decoded)
    jpath = judge_path(judge_opt, path, decoded.name, decoded.preprocess.size, fp)
    judge = load_or_train_judge(jpath, decoded, epochs=judge_epochs, device=m.device, progress=_say)
    folders = [catalog.root] + ([data] if data.is_dir() else [data.parent])
    truth = load_ground_truth(folders, decoded.files, decoded.label_names)
    if truth is None:
        _say("eval: no ground-truth variants (avatars.json + avatars.csv) in the data: capture skipped")
    report = evaluate_model(m, decoded, split=split_id, judge=judge, truth=truth, max_images=max_images,
                            seed=seed, draws=draws, samples=samples, progress=_say)
    report = {"model": str(path), "data": str(data),
              "judge": {"path": str(judge.path), "trained": bool(judge.trained),
                        "epochs": judge.meta.get("epochs"), "train_images": judge.meta.get("train_images")},
              **report}
    if write:
        write_metrics(path, report["metrics"], stat_before)
        _say(f"eval: wrote the metrics into {path} (ccvae.metrics)")
    if as_json:
        cli_io.emit_json(report)
    else:
        console = _stdout_console()
        for r in render_report(report):
            console.print(r)
