"""The weights file: one `.safetensors` holding the state dict and every fact needed for inference.

Loading never runs code (safetensors has no pickle). A weights file is downloaded and shared, so
every byte of it is untrusted, and sizes are checked before anything is allocated:

- only a regular file is opened (a FIFO would hang, /dev/zero never ends: `util/files.py`);
- the header's length is bounded and fits in the file; its JSON nesting is bounded before it is
  parsed (`json.loads` recurses once per level); at most MAX_TENSORS tensors, each of a known dtype,
  with a shape of whole numbers, its byte count matching, the offsets tiling the data section;
- metadata values are strings, and the ccvae ones decode to JSON of the type ccvae writes
  (`read_metadata`); a ccvae model's tensors are floating point;
- the number of values the config implies (`network.state_size`) is compared with the tensors
  present before the network is built, then every name and shape, then every value is finite.

`read_header` and `read_metadata` need no torch, so `ccvae info` and `ccvae labels` stay fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from array import array
from datetime import date
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

from ccvae_tools import __version__
from ccvae_tools.util.atomic import atomic_write
from ccvae_tools.util.errors import WeightsError
from ccvae_tools.util.files import NotRegularFile, open_regular
from ccvae_tools.util.ranges import finite_number

FORMAT_VERSION = "1"
REQUIRED = ("ccvae.format_version", "ccvae.config", "ccvae.labels", "ccvae.label_prior", "ccvae.preprocess")
# the JSON value each ccvae metadata entry holds
JSON_TYPES = {"ccvae.config": dict, "ccvae.labels": list, "ccvae.label_prior": dict, "ccvae.preprocess": dict,
              "ccvae.data": dict, "ccvae.train": dict, "ccvae.metrics": dict}
JSON_KEYS = tuple(JSON_TYPES)
MAX_HEADER = 8 * 1024 * 1024     # bytes of header JSON; a ccvae header is about 20 KB
MAX_TENSORS = 1024               # a ccvae model has a few dozen
MAX_DEPTH = 64                   # JSON nesting, of the header and of each metadata value (ccvae's: 5 at most)
# bytes per value of each safetensors dtype; a ccvae model's tensors are one of FLOAT_DTYPES
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


# ----------------------------------------------------------------------------------------------
# the safetensors header (any safetensors file: the judge's too)
# ----------------------------------------------------------------------------------------------

def read_header(path: str | Path) -> dict[str, Any]:
    """Parse and check a safetensors header without torch. Returns {"tensors": ..., "metadata": ...}."""
    path = Path(path)
    with _open_weights(path) as f:
        size = _file_size(f)
        n = _header_length(path, f.read(8), size)
        raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WeightsError(f"{path}: not a safetensors file: its header is not UTF-8 text") from None
    header = bounded_json(path, text, "safetensors header")
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file: its header is {_shown(header)}, not an object")
    metadata = _string_metadata(path, header.pop("__metadata__", None))
    _check_tensors(path, header, 8 + n, size - 8 - n)
    return {"tensors": header, "metadata": metadata}


def _open_weights(path: Path) -> BinaryIO:
    """The file opened for reading: a regular file, never a FIFO or a device (one-line errors)."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file (pass --model PATH or set CCVAE_MODEL)") from None
    except NotRegularFile as e:
        if e.kind == "a folder":
            raise WeightsError(f"{path}: is a directory, not a weights file (pass the .safetensors file "
                               f"inside it)") from None
        raise WeightsError(f"{path}: is {e.kind}, not a weights file; give a regular .safetensors file") from None
    except PermissionError:
        raise WeightsError(f"{path}: permission denied; make the weights file readable") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the weights file ({e.strerror or e})") from None


def _file_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _header_length(path: Path, head: bytes, size: int) -> int:
    """The header's length from the first 8 bytes: at least 1, at most MAX_HEADER, inside the file."""
    if len(head) < 8:
        raise WeightsError(f"{path}: empty or truncated file, not a safetensors weights file")
    (n,) = struct.unpack("<Q", head)
    if n == 0 or n > MAX_HEADER:
        raise WeightsError(f"{path}: not a safetensors file: its first bytes give a header of {n:,} bytes "
                           f"(1 to {MAX_HEADER:,} expected)")
    if 8 + n > size:
        raise WeightsError(f"{path}: not a safetensors file (or truncated): a header of {n:,} bytes in a "
                           f"file of {size:,} bytes")
    return n


_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = str.maketrans("[{]}", "\x01\x01\xff\xff")


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text, found without parsing it and without
    recursion, in time linear in its length (string operations only).

    Escaped backslashes and quotes are dropped first, so that every quote left opens or closes a
    string; what lies between the strings is reduced to its brackets, each +1 or -1, and the depth
    is the largest running sum. For a text that is not JSON the number means little, but then
    `json.loads` fails at the first error, and up to there it counts what json.loads would.
    """
    plain = text.replace("\\\\", "").replace('\\"', "")
    between = "".join(plain.split('"')[0::2])
    steps = _NOT_BRACKET.sub("", between).translate(_STEPS).encode("latin-1")
    return max(accumulate(array("b", steps)), default=0)


def bounded_json(path: Path, text: str, what: str) -> Any:
    """`json.loads(text)`, refused first when it nests deeper than MAX_DEPTH (json.loads recurses once
    per level: a header of brackets 200,000 deep would end in a RecursionError)."""
    if json_depth(text) > MAX_DEPTH:
        raise WeightsError(f"{path}: malformed {what}: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as e:              # JSONDecodeError, or a number of more than 4300 digits
        raise WeightsError(f"{path}: malformed {what} (not JSON: {e})") from None


def _shown(value: Any) -> str:
    """A JSON value as an error message names it: its kind, and short scalars as they are."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return f"the number {value:.6g}" if isinstance(value, float) else f"the number {str(value)[:40]}"


def _string_metadata(path: Path, meta: Any) -> dict[str, str]:
    """`__metadata__`: absent, or an object of strings (the safetensors format says so)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: malformed safetensors header: __metadata__ is {_shown(meta)}, "
                           f"not an object of strings")
    for key, value in meta.items():
        if not isinstance(value, str):
            raise WeightsError(f"{path}: malformed metadata {key}: {_shown(value)} where a string belongs")
    return meta


def _whole(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_tensors(path: Path, tensors: dict[str, Any], start: int, data_size: int) -> None:
    """Every tensor entry sound, and together they tile the data section (`data_size` bytes from byte
    `start` of the file) exactly, as safetensors requires: nothing overlaps, nothing is left between
    or after them, nothing lies past the end."""
    if len(tensors) > MAX_TENSORS:
        raise WeightsError(f"{path}: {len(tensors):,} tensors, more than a ccvae model has ({MAX_TENSORS:,} "
                           f"at most); not a ccvae weights file")
    spans = sorted((*_tensor_span(path, name, info), name) for name, info in tensors.items())
    end = max((stop for _, stop, _ in spans), default=0)
    if end > data_size:
        raise WeightsError(f"{path}: truncated weights file ({start + data_size:,} bytes, the header promises "
                           f"{start + end:,}); copy or download it again")
    at = 0
    for begin, stop, name in spans:
        if begin != at:
            raise WeightsError(f"{path}: malformed safetensors header: tensor {name!r} starts at byte {begin:,} "
                               f"of the data, not {at:,} (tensors overlap or leave a gap)")
        at = stop
    if at != data_size:
        raise WeightsError(f"{path}: malformed safetensors file: {data_size - at:,} bytes after the last tensor")


def _tensor_span(path: Path, name: str, info: Any) -> tuple[int, int]:
    """(begin, end) of one tensor's bytes, after checking its entry: a known dtype, a shape of whole
    numbers, two offsets begin <= end, and as many bytes between them as dtype and shape need."""
    bad = f"{path}: malformed safetensors header: tensor {name!r}"
    if not isinstance(info, dict):
        raise WeightsError(f"{bad} is {_shown(info)}, not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise WeightsError(f"{bad} has the dtype {_shown(dtype)}, not one of {', '.join(DTYPE_BYTES)}")
    if not isinstance(shape, list) or not all(_whole(d) for d in shape):
        raise WeightsError(f"{bad}: its shape is {_shown(shape)}, not an array of whole numbers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_whole(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise WeightsError(f"{bad}: its data_offsets are {_shown(offsets)}, not two whole numbers "
                           f"0 <= begin <= end")
    need = math.prod(shape) * DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != need:
        raise WeightsError(f"{bad} has {offsets[1] - offsets[0]:,} bytes, but {dtype} values of shape "
                           f"{tuple(shape)} take {need:,}")
    return offsets[0], offsets[1]


# ----------------------------------------------------------------------------------------------
# the ccvae metadata
# ----------------------------------------------------------------------------------------------

def read_metadata(path: str | Path, header: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ccvae metadata of a weights file, JSON values decoded, validated. No torch needed.
    `header`: what `read_header(path)` returned, when the caller has it already."""
    path = Path(path)
    header = header if header is not None else read_header(path)
    meta = header["metadata"]
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
    for key, kind in JSON_TYPES.items():
        if key in meta:
            out[key] = bounded_json(path, meta[key], f"metadata {key}")
            if not isinstance(out[key], kind):
                raise WeightsError(f"{path}: malformed metadata {key}: {_shown(out[key])} where ccvae writes "
                                   f"{_shown(kind())}")
    _check_records(path, out)
    _check_float_tensors(path, header["tensors"])
    return out


def _check_float_tensors(path: Path, tensors: dict[str, Any]) -> None:
    """A ccvae model's tensors are floating point; int8 or bool values would be used as numbers."""
    for name, info in tensors.items():
        if info["dtype"] not in FLOAT_DTYPES:
            raise WeightsError(f"{path}: tensor {name!r} holds {info['dtype']} values; a ccvae model's tensors "
                               f"are floating point ({', '.join(FLOAT_DTYPES)})")


# What the records of the metadata hold, where present: field -> (test, what it must be). The card,
# `ccvae labels` and the loader read these fields; a value of another type is one line naming it.
_TEXT = (lambda v: isinstance(v, str), "a string")
_COUNT = (lambda v: _whole(v, 1), "a whole number >= 1")
_COUNTS = (lambda v: isinstance(v, list) and all(_whole(x, 1) for x in v), "an array of whole numbers >= 1")
_CHANNELS = (lambda v: _whole(v) and v in (1, 3), "1 or 3")
CONFIG_FIELDS = {
    "image_size": _COUNT, "channels": _CHANNELS, "label_dims": _COUNTS, "widths": _COUNTS, "hidden": _COUNT,
    "labels": (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "an array of objects"),
    "z_style": (lambda v: _whole(v), "a whole number >= 0"),
    "likelihood_scale": (lambda v: finite_number(v) and v > 0, "a finite number > 0"),
    "likelihood": _TEXT, "architecture": _TEXT}
LABEL_FIELDS = {"name": _TEXT, "dim": _COUNT,
                "classes": (lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v),
                            "a non-empty array of strings")}
PREPROCESS_FIELDS = {"size": _COUNT, "channels": _CHANNELS,
                     "crop": (lambda v: v in ("center", "squash"), "center or squash"),
                     "crop_size": (lambda v: v is None or _whole(v, 1), "null or a whole number >= 1")}


def _check_fields(path: Path, where: str, record: dict, fields: dict, required: tuple[str, ...]) -> None:
    for name in required:
        if name not in record:
            raise WeightsError(f"{path}: malformed metadata {where}: it has no {name}")
    for name, (test, what) in fields.items():
        if name in record and not test(record[name]):
            raise WeightsError(f"{path}: malformed metadata {where}: {name} is {_shown(record[name])}, "
                               f"not {what}")


def _check_records(path: Path, meta: dict[str, Any]) -> None:
    """The fields of ccvae.config, of each label (ccvae.labels and the config's) and of ccvae.preprocess;
    the preprocessing must make the images the config's network takes."""
    config, pre = meta["ccvae.config"], meta["ccvae.preprocess"]
    _check_fields(path, "ccvae.config", config, CONFIG_FIELDS, ("labels",))
    for i, record in enumerate(config["labels"]):
        _check_fields(path, f"ccvae.config labels[{i}]", record, LABEL_FIELDS, ("name", "classes"))
    for i, record in enumerate(meta["ccvae.labels"]):
        if not isinstance(record, dict):
            raise WeightsError(f"{path}: malformed metadata ccvae.labels[{i}]: {_shown(record)}, not an object")
        _check_fields(path, f"ccvae.labels[{i}]", record, LABEL_FIELDS, ("name",))
    _check_fields(path, "ccvae.preprocess", pre, PREPROCESS_FIELDS, ("size", "channels", "crop"))
    for mine, theirs in (("size", "image_size"), ("channels", "channels")):
        if theirs in config and pre[mine] != config[theirs]:
            raise WeightsError(f"{path}: malformed metadata: ccvae.preprocess {mine} {pre[mine]} does not match "
                               f"ccvae.config {theirs} {config[theirs]}")


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
    """Build the model described by a weights file and load its tensors. Returns (model, metadata).

    The network is built only once the file is known to hold as many values as its config implies
    (`_model_config`), so a header claiming a huge network is refused before anything is allocated.
    """
    from ccvae_tools.model.network import CCVAE

    path = Path(path)
    header = read_header(path)
    meta = read_metadata(path, header)
    cfg = _model_config(path, meta["ccvae.config"], header["tensors"])
    try:
        model = CCVAE(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: malformed metadata ccvae.config ({e})") from None
    expected = model.state_dict()
    _check_shapes(path, cfg, expected, header["tensors"])
    model.load_state_dict(_read_tensors(path, model, expected))
    model.eval()
    return model.to(device), meta


def _model_config(path: Path, config: dict, tensors: dict[str, Any]):
    """The ModelConfig of ccvae.config, once its architecture is ours and the number of values it
    implies (`network.state_size`, arithmetic only) is the number the file holds."""
    from ccvae_tools.model.network import ARCHITECTURE, ModelConfig, state_size

    arch = config.get("architecture")
    if arch != ARCHITECTURE:
        raise WeightsError(f"{path}: a model of architecture {arch!r}, which this ccvae cannot run "
                           f"(it runs {ARCHITECTURE!r})")
    try:
        cfg = ModelConfig.from_json(config)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: malformed metadata ccvae.config ({e})") from None
    want, have = state_size(cfg), sum(math.prod(t["shape"]) for t in tensors.values())
    if want != have:
        raise WeightsError(f"{path}: the tensors do not have the shapes ccvae.config gives: it describes "
                           f"{want:,} values, the file holds {have:,}")
    return cfg


def _check_shapes(path: Path, cfg, expected: dict, tensors: dict[str, Any]) -> None:
    """The file's tensors are the network's, by name and shape (from the header: nothing read yet)."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise WeightsError(f"{path}: tensors do not match a ccvae {cfg.architecture} model "
                           f"(missing: {missing[:3]}, unexpected: {extra[:3]})")
    for name, t in expected.items():
        shape = tuple(tensors[name]["shape"])
        if shape != tuple(t.shape):
            raise WeightsError(f"{path}: tensor {name} has shape {shape}, the config needs {tuple(t.shape)}")


def _read_tensors(path: Path, model, expected: dict) -> dict:
    from safetensors import safe_open

    state = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in expected:
                state[name] = f.get_tensor(name)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for corrupt data
        raise WeightsError(f"{path}: unreadable weights ({e})") from None
    for name, t in state.items():
        _check_finite(path, name, t, model)
    return state


def _check_finite(path: Path, name: str, t, model) -> None:
    """NaN or infinite values would give black images and NaN probabilities without a word. The one
    exception: log pi is -inf for the classes a label lacks (the padding up to K_max)."""
    import torch

    bad = ~torch.isfinite(t)
    if name == "log_pi":
        bad &= ~(torch.isneginf(t) & ~model.class_mask)
    if bool(bad.any()):
        raise WeightsError(f"{path}: tensor {name} holds {int(bad.sum()):,} NaN or infinite values; the "
                           f"weights are broken (did the training diverge?)")
