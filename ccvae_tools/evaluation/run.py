"""What `ccvae eval` does besides parsing its options and printing: open the data as the model's
input, check its splits, find (or train) the judge, run `evaluate_model` and store the metrics in
the weights file (docs/method.md section 5.8).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ccvae_tools.util.errors import CcvaeError, DataError, UsageError

SPLITS = {"train": 0, "valid": 1, "test": 2}
JUDGE_FOLDER = ".ccvae-judges"


def _train_options(meta: dict) -> dict:
    train = meta.get("ccvae.train")
    opts = train.get("options") if isinstance(train, dict) else None
    return opts if isinstance(opts, dict) else {}


def open_eval_data(data: Path, meta: dict, fmt: Optional[str], images: Optional[Path],
                   uncertain: Optional[str], workers: Optional[int] = None):
    """The data set decoded exactly as the model's input (its `ccvae.preprocess`), with the model's
    labels in the model's order: (catalog, decoded). DataError when the data lacks a model label."""
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


def check_splits(data: Path, decoded, split: str) -> None:
    """DataError when the split to evaluate on, or the train split (majority baseline, judge), is empty."""
    counts = {name: int((decoded.split == i).sum()) for name, i in SPLITS.items()}
    if counts[split] == 0:
        raise DataError(f"{data}: the {split} split is empty ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
                        f"choose another with --split")
    if counts["train"] == 0:
        raise DataError(f"{data}: the train split is empty; the majority baseline and the judge need it")


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


def run_eval(m, weights: Path, data: Path, catalog, decoded, split: int, *, judge_option: Optional[str],
             judge_epochs: Optional[int], max_images: Optional[int], seed: int, draws: int, samples: int,
             progress: Callable[[str], None], edit_map: str = "outward") -> dict:   # interventions.EDIT_MAPS[0]
    """The judge found or trained, the ground truth read where the data has it, `evaluate_model` run:
    the report of `ccvae eval --json` (model, data, judge, metrics, details, seconds)."""
    from ccvae_tools.evaluation.evaluate import evaluate_model
    from ccvae_tools.evaluation.judge import data_fingerprint, load_or_train_judge
    from ccvae_tools.evaluation.truth import load_continuous_truth, load_ground_truth

    fingerprint = data_fingerprint(decoded)
    path = judge_path(judge_option, weights, decoded.name, decoded.preprocess.size, fingerprint)
    judge = load_or_train_judge(path, decoded, epochs=judge_epochs, device=m.device, progress=progress)
    folders = [catalog.root] + ([data] if data.is_dir() else [data.parent])
    truth = load_ground_truth(folders, decoded.files, decoded.label_names)
    continuous = load_continuous_truth(folders, decoded.files, decoded.label_names)
    if truth is None and continuous is None:
        progress("eval: no ground truth (avatars.json + avatars.csv, or truth/characteristics.json + .csv) "
                 "in the data: capture skipped")
    report = evaluate_model(m, decoded, split=split, judge=judge, truth=truth, continuous=continuous,
                            max_images=max_images,
                            seed=seed, draws=draws, samples=samples, edit_map=edit_map, progress=progress)
    report["metrics"]["labelled_read"] = labelled_train_read(m, decoded, m.meta)
    return {"model": str(weights), "data": str(data),
            "judge": {"path": str(judge.path), "trained": bool(judge.trained),
                      "epochs": judge.meta.get("epochs"), "train_images": judge.meta.get("train_images")},
            **report}


def run_labelled_rows(decoded, meta: dict) -> np.ndarray | None:
    """The train images a run kept labels for (those with at least one known label), selected again
    from its options in the weights file as `ccvae train --sup-frac` selected them; None when the
    run had every train image labelled, or the file does not say."""
    from types import SimpleNamespace

    from ccvae_tools.data.base import TRAIN
    from ccvae_tools.data.shared import labelled_mask
    from ccvae_tools.util.ranges import finite_number

    opts = _train_options(meta)
    frac, seed = opts.get("sup_frac"), opts.get("seed")
    if not finite_number(frac) or not 0 < frac < 1:
        return None
    select = "random" if opts.get("sup_select") == "random" else "first"
    seed = int(seed) if finite_number(seed) and seed == int(seed) and seed >= 0 else 0
    chosen = SimpleNamespace(sup_frac=float(frac), sup_select=select, seed=seed)
    train = decoded.indices(TRAIN)
    kept = labelled_mask(decoded.labels, train, chosen) & ~np.isnan(decoded.labels).all(1)
    return train[kept[train]]


def labelled_train_read(m, decoded, meta: dict, most: int = 2000) -> dict | None:
    """The model's balanced accuracy per label on the train images its run kept labels for (up to
    `most` of them, at the posterior mean, as training's held-out pass reads):
    {"balanced_accuracy": ..., "images": how many are labelled}; None when the run had every train
    image labelled, or none."""
    from ccvae_tools.data.base import TRAIN
    from ccvae_tools.evaluation.metrics import label_metrics, majority_classes

    kept = run_labelled_rows(decoded, meta)
    if kept is None or not len(kept):
        return None
    rows = kept[:most]
    pred = m.classify(np.ascontiguousarray(decoded.images[rows]), draws=0).argmax(-1).numpy()
    majority = majority_classes(decoded.labels, decoded.indices(TRAIN))
    read = label_metrics(pred, decoded.labels[rows], majority, decoded.label_names)
    return {"balanced_accuracy": read["balanced_accuracy"], "images": int(len(kept))}


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
