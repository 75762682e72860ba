"""The model card: what a weights file says about its model, as plain JSON-ready data.

It reads the safetensors header only, so it needs neither torch nor numpy (and imports neither):
`ccvae info` prints it in well under half a second. The CLI renders it as text (`cli/inspect.py`).

    card = model_card(Path("weights/avatars64.safetensors"), shown_options=("lr", "batch_size"))
    card["labels"][0]    # {"name": "Smiling", "classes": ["0", "1"], "dim": 1, "prior": {"0": 0.5, "1": 0.5}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ccvae_tools.model.weights import read_header, read_metadata
from ccvae_tools.util.errors import WeightsError


def model_card(path: Path, shown_options: Sequence[str]) -> dict:
    """Everything `ccvae info` shows about the weights file at `path`, as plain JSON-ready data.

    Of the training options recorded in the file, only `shown_options` (in that order) go into the
    card: the others are local details, such as the path of the training data. Malformed ccvae
    metadata is a one-line WeightsError.
    """
    meta = read_metadata(path)
    tensors = read_header(path)["tensors"]
    try:
        return _card(path, meta, tensors, shown_options)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"{path}: malformed ccvae metadata ({type(e).__name__}: {e})") from None


def _card(path: Path, meta: dict, tensors: dict, shown_options: Sequence[str]) -> dict:
    config = _dict(meta["ccvae.config"])
    preprocess = _dict(meta["ccvae.preprocess"])
    labels = _labels(meta["ccvae.labels"], _dict(meta.get("ccvae.label_prior")))
    latent = _latent(labels, int(config.get("z_style", 0)))
    return {
        "path": str(path),
        "file_size": path.stat().st_size,
        "title": meta.get("modelspec.title", ""),
        "architecture": meta.get("modelspec.architecture") or config.get("architecture", ""),
        # older files kept the image geometry in the preprocessing record only
        "image_size": int(config.get("image_size", preprocess.get("size", 0))),
        "channels": int(config.get("channels", preprocess.get("channels", 0))),
        "preprocess": preprocess,
        "latent": latent,
        "parameters": _count_parameters(tensors),
        "labels": labels,
        "data": _dict(meta.get("ccvae.data")),
        "train": _training(_dict(meta.get("ccvae.train")), shown_options),
        "metrics": _dict(meta.get("ccvae.metrics")),
        "license": meta.get("modelspec.license", ""),
        "date": meta.get("modelspec.date", ""),
        "version": meta.get("ccvae.version", ""),
        "format_version": meta.get("ccvae.format_version", ""),
    }


def _labels(records: list, prior: dict) -> list[dict]:
    """One entry per label: its classes, latent size and prior p(y_i) by class name."""
    labels = []
    for record in records:
        name = str(record["name"])
        classes = [str(c) for c in record.get("classes", ["0", "1"])]
        probabilities = prior.get(name) or []
        labels.append({"name": name, "classes": classes, "dim": int(record.get("dim", 1)),
                       "prior": {c: float(p) for c, p in zip(classes, probabilities)}})
    return labels


def _latent(labels: list[dict], z_style: int) -> dict:
    z_c = {lab["name"]: lab["dim"] for lab in labels}
    return {"z_dim": sum(z_c.values()) + z_style, "z_c": z_c, "z_style": z_style}


def _training(train: dict, shown_options: Sequence[str]) -> dict:
    """The training record, its options cut down to `shown_options` (and left out when it has none)."""
    options = _dict(train.get("options"))
    out = {k: v for k, v in train.items() if k != "options"}
    if options:
        out["options"] = {k: options[k] for k in shown_options if k in options}
    return out


def _count_parameters(tensors: dict) -> int:
    """The number of weights, from the header's tensor shapes (entries without a usable shape count 0)."""
    total = 0
    for info in tensors.values():
        try:
            total += math.prod(int(s) for s in info.get("shape", []))
        except (TypeError, ValueError, AttributeError):
            continue
    return total


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}
