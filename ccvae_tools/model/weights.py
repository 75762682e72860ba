"""The weights file: one `.safetensors` holding the state dict and every fact needed for inference.

Loading never runs code (safetensors has no pickle) and checks the header, the metadata and every
tensor shape before building the model. `read_header` needs no torch, so `ccvae info` stays fast.
"""

from __future__ import annotations

import json
import struct
from datetime import date
from pathlib import Path
from typing import Any

from ccvae_tools import __version__
from ccvae_tools.util.atomic import atomic_write
from ccvae_tools.util.errors import WeightsError

FORMAT_VERSION = "1"
REQUIRED = ("ccvae.format_version", "ccvae.config", "ccvae.labels", "ccvae.label_prior", "ccvae.preprocess")
JSON_KEYS = ("ccvae.config", "ccvae.labels", "ccvae.label_prior", "ccvae.preprocess", "ccvae.data",
             "ccvae.train", "ccvae.metrics")
MAX_HEADER = 100 * 1024 * 1024


def read_header(path: str | Path) -> dict[str, Any]:
    """Parse and check a safetensors header without torch. Returns {"tensors": ..., "metadata": ...}."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file (pass --model PATH or set CCVAE_MODEL)")
    if path.is_dir():
        raise WeightsError(f"{path}: is a directory, not a weights file (pass the .safetensors file inside it)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: empty or truncated file, not a safetensors weights file")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > MAX_HEADER or 8 + n > size:
            raise WeightsError(f"{path}: not a safetensors file (or truncated): bad header length")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError) as e:
        raise WeightsError(f"{path}: not a safetensors file: unreadable header ({e})") from None
    metadata = header.pop("__metadata__", None) or {}
    end = 0
    for name, info in header.items():
        try:
            begin, stop = info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise WeightsError(f"{path}: not a safetensors file: bad entry for tensor {name!r}") from None
        end = max(end, int(stop))
    if 8 + n + end > size:
        raise WeightsError(f"{path}: truncated weights file ({size} bytes, the header promises {8 + n + end}); "
                           "copy or download it again")
    return {"tensors": header, "metadata": metadata}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ccvae metadata of a weights file, JSON values decoded, validated. No torch needed."""
    path = Path(path)
    meta = read_header(path)["metadata"]
    if not any(k.startswith("ccvae.") for k in meta):
        raise WeightsError(f"{path}: a safetensors file, but not a ccvae model (no ccvae metadata); "
                           "train one with `ccvae train` or pass the shipped default")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise WeightsError(f"{path}: ccvae weights with missing metadata: {', '.join(missing)}")
    if meta["ccvae.format_version"] != FORMAT_VERSION:
        raise WeightsError(f"{path}: weights format version {meta['ccvae.format_version']!r}; this ccvae "
                           f"reads version {FORMAT_VERSION} (upgrade ccvae)")
    out: dict[str, Any] = dict(meta)
    for k in JSON_KEYS:
        if k in meta:
            try:
                out[k] = json.loads(meta[k])
            except ValueError:
                raise WeightsError(f"{path}: malformed metadata {k} (not JSON)") from None
    return out


def build_metadata(model, preprocess, data: dict | None = None, train: dict | None = None,
                   metrics: dict | None = None, title: str | None = None, license: str = "") -> dict[str, str]:
    """String-to-string metadata for `save_model`."""
    cfg = model.cfg
    prior = model.label_prior().tolist()
    labels = [{"name": lab.name, "classes": list(lab.classes), "dim": d}
              for lab, d in zip(cfg.labels, cfg.label_dims)]
    meta = {
        "format": "pt",
        "ccvae.format_version": FORMAT_VERSION,
        "ccvae.version": __version__,
        "ccvae.config": json.dumps(cfg.to_json()),
        "ccvae.labels": json.dumps(labels),
        "ccvae.label_prior": json.dumps({lab.name: prior[i][: lab.num_classes]
                                         for i, lab in enumerate(cfg.labels)}),
        "ccvae.preprocess": json.dumps(preprocess.to_json()),
        "ccvae.data": json.dumps(data or {}),
        "ccvae.train": json.dumps(train or {}),
        "ccvae.metrics": json.dumps(metrics or {}),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{cfg.architecture}/{cfg.image_size}px",
        "modelspec.implementation": "ccvae_tools",
        "modelspec.title": title or f"CCVAE {cfg.image_size}px, {len(cfg.labels)} labels",
        "modelspec.date": date.today().isoformat(),
        "modelspec.license": license,
    }
    return meta


def save_model(model, path: str | Path, metadata: dict[str, str]) -> Path:
    """Write the weights atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda f: f.write(save(tensors, metadata=metadata)), error=WeightsError)


def load_model(path: str | Path, device: str = "cpu"):
    """Build the model described by a weights file and load its tensors. Returns (model, metadata)."""
    from safetensors import safe_open

    from ccvae_tools.model.network import ARCHITECTURE, CCVAE, ModelConfig

    path = Path(path)
    meta = read_metadata(path)
    arch = meta["ccvae.config"].get("architecture") if isinstance(meta["ccvae.config"], dict) else None
    if arch != ARCHITECTURE:
        raise WeightsError(f"{path}: a model of architecture {arch!r}, which this ccvae cannot run "
                           f"(it runs {ARCHITECTURE!r})")
    try:
        cfg = ModelConfig.from_json(meta["ccvae.config"])
        model = CCVAE(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: malformed metadata ccvae.config ({e})") from None
    expected = model.state_dict()
    header = read_header(path)["tensors"]
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        raise WeightsError(f"{path}: tensors do not match a ccvae {cfg.architecture} model "
                           f"(missing: {missing[:3]}, unexpected: {extra[:3]})")
    state = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for k in expected:
                t = f.get_tensor(k)
                if tuple(t.shape) != tuple(expected[k].shape):
                    raise WeightsError(f"{path}: tensor {k} has shape {tuple(t.shape)}, the config "
                                       f"needs {tuple(expected[k].shape)}")
                state[k] = t
    except WeightsError:
        raise
    except Exception as e:  # safetensors raises its own error types for corrupt data
        raise WeightsError(f"{path}: unreadable weights ({e})") from None
    model.load_state_dict(state)
    model.eval()
    return model.to(device), meta
