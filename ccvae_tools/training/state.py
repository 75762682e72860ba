"""The resume state of a run (state.safetensors): what `--resume` needs beyond the weights (the
optimisers, counters, RNG states), in a format of our own that reading cannot turn into running code.

The state is a nested structure of dicts, lists, tuples, tensors, numbers, strings and None (the
model's and optimisers' state dicts, counters). It is written as one safetensors file: every tensor
under a numbered name ("t0", "t1", ...), and the structure as a JSON skeleton in the header's
metadata, each node tagged with its kind so that integer dict keys (an optimiser's parameter
numbers) and tuples come back as they were. Reading parses the header with the weights loader's
checks (sizes, depth, a regular file) and rebuilds the structure; no unpickling anywhere, unlike
torch.save, so a state file from elsewhere can at worst be refused with a one-line message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from ccvae_tools.model.weights import bounded_json, read_header
from ccvae_tools.util.atomic import atomic_write_bytes
from ccvae_tools.util.errors import TrainingError, WeightsError

STATE_FILE = "state.safetensors"
FORMAT = "ccvae-resume-state/1"


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write `state` atomically (a reader sees the old file or the new one, never half of one)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, tensors)
    meta = {"format": FORMAT, "state": json.dumps(skeleton)}
    atomic_write_bytes(path, save(tensors, metadata=meta))


def load_state(path: Path, required: dict[str, type] | None = None) -> dict[str, Any]:
    """The state `save_state` wrote, or a TrainingError naming the file and what is wrong with it;
    `required` names entries that must be there, each of its type."""
    bad = f"{path}: not a resume state this ccvae can read"
    try:
        header = read_header(path)
    except WeightsError as e:
        raise TrainingError(f"{bad} ({e}); start a new run, or --init-from the run's model.safetensors") from None
    meta = header["metadata"]
    if meta.get("format") != FORMAT or "state" not in meta:
        raise TrainingError(f"{bad} (its metadata does not say format {FORMAT})")
    try:
        skeleton = bounded_json(path, meta["state"], "resume state")
        tensors = load_file(path)
        state = _build(skeleton, tensors)
    except (WeightsError, ValueError, KeyError, TypeError) as e:
        raise TrainingError(f"{bad} ({e})") from None
    if not isinstance(state, dict):
        raise TrainingError(f"{bad} (its top level is not a mapping)")
    for key, kind in (required or {}).items():
        if not isinstance(state.get(key), kind) or (kind is int and isinstance(state.get(key), bool)):
            raise TrainingError(f"{bad} (its entry {key!r} is missing or not {kind.__name__})")
    return state


def _flatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON skeleton of `obj`; its tensors go into `tensors` (copied: safetensors wants each
    tensor contiguous and on its own storage)."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().to("cpu", copy=True).contiguous()
        return {"tensor": name}
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"resume state: a key {key!r} that is neither text nor a whole number")
        return {"dict": [[key, _flatten(value, tensors)] for key, value in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"tuple" if isinstance(obj, tuple) else "list": [_flatten(v, tensors) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"resume state: cannot store a {type(obj).__name__}")


def _build(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The structure a skeleton describes (the inverse of `_flatten`); ValueError when malformed."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError("a malformed node in the state's structure")
    (kind, body), = node.items()
    if kind == "tensor":
        if not isinstance(body, str) or body not in tensors:
            raise ValueError(f"the structure names a tensor {str(body)[:40]!r} the file does not hold")
        return tensors[body]
    if kind == "dict" and isinstance(body, list):
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int)) for p in body):
            raise ValueError("a malformed mapping in the state's structure")
        return {key: _build(value, tensors) for key, value in body}
    if kind in ("list", "tuple") and isinstance(body, list):
        items = [_build(v, tensors) for v in body]
        return tuple(items) if kind == "tuple" else items
    if kind == "value" and (body is None or isinstance(body, (bool, int, float, str))):
        return body
    raise ValueError(f"an unknown node {str(kind)[:40]!r} in the state's structure")
