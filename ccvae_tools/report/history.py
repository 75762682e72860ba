"""A run folder's record of training, read for the report: metrics.jsonl (one line per held-out
evaluation, written by `training/loop.py`) and options.json (`training/runs.py`).

A run folder can come from anywhere (a copy, a download, a run killed mid-write), so nothing in it
is trusted: a line that is not a JSON object is skipped and counted, a value that is not a finite
number is a gap, a key that is missing is a gap too, and only the model's own labels are read
(a file naming 100,000 labels makes no 100,000 plots). The files are read to a bound.

    history = read_history(run_history_file(weights), ["Smiling", "Eyeglasses"])
    history.epochs, history.scalars["bound"], history.accuracy["Smiling"], history.majority["Smiling"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccvae_tools.util.files import NotRegularFile, open_regular, read_at_most
from ccvae_tools.util.ranges import finite_number

HISTORY_FILE = "metrics.jsonl"
OPTIONS_FILE = "options.json"
MAX_HISTORY_BYTES = 64 << 20          # some 20,000 epochs of a 40-label model
MAX_OPTIONS_BYTES = 1 << 20
# the curves drawn from each line: its key, what the page calls it
SCALARS = (("train_loss", "training loss"), ("bound", "held-out bound L(x, y)"),
           ("recon_l1", "held-out reconstruction L1"))


@dataclass
class History:
    """The curves of one run, one entry per evaluated epoch (None where a line lacks the value)."""

    epochs: list[float] = field(default_factory=list)
    scalars: dict[str, list[float | None]] = field(default_factory=dict)     # SCALARS' keys
    accuracy: dict[str, list[float | None]] = field(default_factory=dict)    # per label
    majority: dict[str, list[float | None]] = field(default_factory=dict)    # its majority baseline
    split: str = "held-out"
    skipped: int = 0                  # lines that were not a JSON object with an epoch

    def __len__(self) -> int:
        return len(self.epochs)

    def has(self, series: list[float | None]) -> bool:
        return any(v is not None for v in series)


def run_history_file(weights: Path) -> Path | None:
    """metrics.jsonl beside the weights (a run folder's model.safetensors), or None: a weights file
    on its own (a shipped model, a download) has no curves."""
    path = Path(weights).parent / HISTORY_FILE
    return path if path.is_file() else None


def _number(v: Any) -> float | None:
    return float(v) if finite_number(v) else None


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it is no regular file, unreadable or larger than `limit`."""
    try:
        with open_regular(path) as f:
            return read_at_most(f, limit)
    except (OSError, NotRegularFile):
        return None


def _lines(raw: bytes) -> tuple[list[dict], int]:
    """The JSON objects with a numeric epoch, the last one of each epoch kept (a resumed run may
    have written an epoch twice), in epoch order; and how many lines were skipped."""
    by_epoch: dict[float, dict] = {}
    skipped = 0
    for text in raw.decode("utf-8", "replace").splitlines():
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except (ValueError, RecursionError):    # cut off by a kill, not JSON, or nested past reason
            skipped += 1
            continue
        epoch = _number(line.get("epoch")) if isinstance(line, dict) else None
        if epoch is None:
            skipped += 1
            continue
        by_epoch[epoch] = line
    return [by_epoch[e] for e in sorted(by_epoch)], skipped


def _per_label(lines: list[dict], key: str, names: list[str]) -> dict[str, list[float | None]]:
    out = {}
    for name in names:
        out[name] = [_number(line[key].get(name)) if isinstance(line.get(key), dict) else None for line in lines]
    return out


def read_history(path: Path | None, label_names: list[str]) -> History | None:
    """The curves of metrics.jsonl for the model's labels `label_names`; None when there is no
    file, it cannot be read, or it has no usable line."""
    if path is None:
        return None
    raw = _read_bounded(path, MAX_HISTORY_BYTES)
    if raw is None:
        return None
    lines, skipped = _lines(raw)
    if not lines:
        return None
    split = lines[-1].get("split")
    return History(epochs=[float(line["epoch"]) for line in lines],
                   scalars={key: [_number(line.get(key)) for line in lines] for key, _ in SCALARS},
                   accuracy=_per_label(lines, "accuracy", label_names),
                   majority=_per_label(lines, "majority_baseline", label_names),
                   split=split if split in ("valid", "test") else "held-out", skipped=skipped)


def read_run_options(weights: Path) -> dict | None:
    """options.json of the run folder holding the weights (every option, as training resolved
    them), or None when there is none or it is not a JSON object."""
    raw = _read_bounded(Path(weights).parent / OPTIONS_FILE, MAX_OPTIONS_BYTES)
    if raw is None:
        return None
    try:
        options = json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    return options if isinstance(options, dict) else None
