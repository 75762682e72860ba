"""Plumbing shared by every model command: which weights, which labels, which inputs, where outputs go.

Nothing heavy is imported at module level (no torch, numpy or PIL): `ccvae --help`, `ccvae info`
and `ccvae labels` import this module and must stay fast.

    path = resolve_model_path(model_opt)                  # --model > $CCVAE_MODEL > shipped default
    m = open_model(model_opt, device_opt)                 # api.LoadedModel (imports torch)
    say_model(m.path, quiet)                              # "model: PATH" on stderr, after the work
    i = match_label("blond hair", m.label_names)          # loose, case-insensitive
    i, k = parse_assignment("smiling=1", m.labels)        # (label index, class index)
    for name, arr in read_inputs(["a.png", "-"], m.preprocess): ...
    write_image_output(frames, "out.gif", None, durations=[80] * len(frames))
    print(default_output("face.png", "smiling", "gif"))   # face.smiling.gif (the suffix made a slug)
    check_targets(["out/face.edit.png"], ["d/face.png"], force=False)   # collisions, inputs overwritten
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccvae_tools.data import names
from ccvae_tools.data.names import label_key
from ccvae_tools.util.atomic import atomic_write_bytes as _atomic_write_bytes
from ccvae_tools.util.device import check_device_name
from ccvae_tools.util.errors import CcvaeError, DataError, UsageError, WeightsError
from ccvae_tools.util.text import safe_json, safe_text, slug

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

    from ccvae_tools.model.api import LoadedModel
    from ccvae_tools.data.base import Preprocess

DEFAULT_WEIGHTS = "avatars64.safetensors"
MODEL_ENV = "CCVAE_MODEL"
STDIN_NAME = "<stdin>"

# output formats: extension -> PIL format
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}

# when read_inputs warns (the image works, but the result will likely be poor)
UPSCALE_WARN = 2.0          # the model's side over the source's usable side
ASPECT_WARN = 1.5           # long side over short side
WARN_EACH = 3               # per kind of warning, the first few inputs are named, then a count


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------

SHIPPED_NAME = re.compile(r"[a-z][a-z0-9_-]{0,40}")     # a shipped model's name: the file's stem


def shipped_weights_dirs() -> list[Path]:
    """Where the shipped weights may be, in order: a source checkout, then installed data."""
    import sysconfig

    here = Path(__file__).resolve().parents[2]             # the folder holding the package (cli/io.py)
    out = [here / "weights"]
    prefixes = [sys.prefix]
    try:
        prefixes.append(sysconfig.get_path("data"))         # the scheme's data folder (= prefix mostly)
    except (KeyError, ValueError):  # pragma: no cover - exotic schemes
        pass
    try:
        import site

        prefixes.append(site.getuserbase())                 # pip install --user
    except Exception:  # noqa: BLE001 - site may be stripped in embedded Pythons  # pragma: no cover
        pass
    for p in prefixes:
        cand = Path(p) / "share" / "ccvae" / "weights"
        if cand not in out:
            out.append(cand)
    return out


def default_model_candidates() -> list[Path]:
    """Where the shipped default weights may be, in order."""
    return [d / DEFAULT_WEIGHTS for d in shipped_weights_dirs()]


def shipped_model(name: str) -> Path | None:
    """A shipped model by name (`-m fonts32` for weights/fonts32.safetensors), or None."""
    if not SHIPPED_NAME.fullmatch(name):
        return None
    for d in shipped_weights_dirs():
        if (d / f"{name}.safetensors").is_file():
            return d / f"{name}.safetensors"
    return None


def shipped_examples(model_path: Path) -> list[Path]:
    """The example images shipped beside a shipped model: weights/examples/<name>/ (or the name without
    its trailing digits: fonts32 -> examples/fonts/), and for the default model weights/examples/*.png.
    A model of one's own has none (`ccvae studio --examples DIR` names some)."""
    folder = model_path.parent / "examples"
    stem = model_path.stem
    for name in (stem, stem.rstrip("0123456789")):
        if name and SHIPPED_NAME.fullmatch(name) and (folder / name).is_dir():
            return sorted((folder / name).glob("*.png"))
    if model_path.name == DEFAULT_WEIGHTS:
        return sorted(folder.glob("*.png"))
    return []


def resolve_model_path(option: str | os.PathLike | None, source: str = "--model") -> Path:
    """The weights file to use: `--model` (a path, or the name of a shipped model such as fonts32),
    else $CCVAE_MODEL, else the shipped default.

    A path given explicitly must exist (WeightsError naming where it came from, `source`); a run
    folder holding model.safetensors stands for that file. When no default is installed the error
    says where it looked and how to pass one.
    """
    for given, where in ((option, source), (os.environ.get(MODEL_ENV, ""), MODEL_ENV)):
        if given is not None and str(given) != "":
            path = Path(os.path.expanduser(str(given)))
            shipped = None if path.exists() else shipped_model(str(given))
            return shipped if shipped is not None else _existing(path, where)
    candidates = default_model_candidates()
    for cand in candidates:
        if cand.is_file():
            return cand
    where = ", ".join(str(c) for c in candidates)
    raise WeightsError(f"no weights given and no default weights installed (looked for {where}); "
                       f"pass --model PATH or set {MODEL_ENV}")


def _existing(path: Path, source: str) -> Path:
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file (from {source}); check the path")
    if path.is_dir():
        if (path / "model.safetensors").is_file():          # a run folder of `ccvae train`
            return path / "model.safetensors"
        found = sorted(path.glob("*.safetensors"))
        hint = f" such as {found[0]}" if found else ""
        raise WeightsError(f"{path}: is a folder (from {source}); pass the .safetensors file{hint}")
    return path


def read_model_metadata(model_opt: str | None) -> tuple[Path, dict[str, Any]]:
    """(path, decoded metadata) of the resolved weights file, validated. No torch."""
    from ccvae_tools.model.weights import read_metadata

    path = resolve_model_path(model_opt)
    return path, read_metadata(path)


def open_model(model_opt: str | None, device_opt: str | None) -> "LoadedModel":
    """Resolve and load the weights (validated, no pickle) onto the chosen device. Imports torch."""
    path = resolve_model_path(model_opt)
    device = check_device_name(device_opt)
    from ccvae_tools.model.api import load

    return load(path, device=device)


def model_name(path: Path) -> str:
    """How the `model:` line names weights: a shipped model by its name (the default said to be
    it), any other file by its path."""
    try:
        shipped = path.resolve().parent in {d.resolve() for d in shipped_weights_dirs()}
    except (OSError, RuntimeError):      # a loop of links: not one of ours
        shipped = False
    if not shipped or not SHIPPED_NAME.fullmatch(path.stem):
        return str(path)
    return f"{path.stem} (the shipped default)" if path.name == DEFAULT_WEIGHTS else f"{path.stem} (shipped)"


def say_model(path: Path, quiet: bool = False) -> None:
    """`model: NAME` on stderr (stdout carries data), unless `quiet`: which weights a command used,
    since --model, $CCVAE_MODEL and the shipped default can each supply them. Commands call it once
    their work is done, so that a failed run stays one line on stderr. The name is made safe."""
    if not quiet:
        from ccvae_tools.util.console import info

        info(f"model: {model_name(path)}")


def label_names_of(meta: dict[str, Any]) -> list[str]:
    """Ordered label names from decoded metadata (ccvae.labels)."""
    return [str(d["name"]) for d in meta.get("ccvae.labels", [])]


# ----------------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------------

def match_label(name: str, labels: Sequence[str]) -> int:
    """Index of `name` among a model's labels, matched loosely (`data.names.match_label`)."""
    labels = [str(x) for x in labels]
    listing = f"labels of this model: {', '.join(labels)} (see `ccvae labels`)"
    return names.match_label(name, labels, listing=listing,
                             none="this model has no labels")


_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off")


def _label_fields(lab: Any) -> tuple[str, list[str]]:
    """(name, classes) of a Label object or a metadata dict {"name", "classes"}."""
    if isinstance(lab, dict):
        return str(lab["name"]), [str(c) for c in lab.get("classes", ("0", "1"))]
    return str(lab.name), [str(c) for c in lab.classes]


def parse_class(value: str, label: Any) -> int:
    """Class index of `value` for one label (0/1, true/false, yes/no for binary; a class name or index)."""
    name, classes = _label_fields(label)
    v = str(value).strip()
    low = v.lower()
    for k, c in enumerate(classes):                   # a class name (exactly, then loosely)
        if v == c:
            return k
    for k, c in enumerate(classes):
        if label_key(c) == label_key(v) and label_key(v):
            return k
    if len(classes) == 2:
        if low in _TRUE:
            return 1
        if low in _FALSE:
            return 0
    elif re.fullmatch(r"\d+", low) and int(low) < len(classes):
        return int(low)
    if len(classes) == 2:
        valid = "0/1, true/false, yes/no" + ("" if classes == ["0", "1"] else f", {'/'.join(classes)}")
    else:
        valid = f"a class name ({', '.join(classes)}) or 0..{len(classes) - 1}"
    raise UsageError(f"{name}={v}: not a value of label {name!r}; use {valid}")


def parse_assignment(text: str, labels_info: Sequence[Any]) -> tuple[int, int]:
    """'smiling=1' -> (label index, class index). UsageError naming the valid labels or values."""
    if "=" not in text:
        raise UsageError(f"{text!r}: expected LABEL=VALUE, e.g. smiling=1")
    name, _, value = text.partition("=")
    if not name.strip() or not value.strip():
        raise UsageError(f"{text!r}: expected LABEL=VALUE, e.g. smiling=1")
    names = [_label_fields(lab)[0] for lab in labels_info]
    i = match_label(name.strip(), names)
    return i, parse_class(value, labels_info[i])


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------

class _Warnings:
    """Collects input warnings: names the first few of each kind, then counts the rest."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, kind: str, msg: str) -> None:
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= WARN_EACH:
            _warn(msg)

    def close(self) -> None:
        for kind, n in self.counts.items():
            if n > WARN_EACH:
                _warn(f"... and {n - WARN_EACH} more input(s) {kind}")


def _warn(msg: str) -> None:
    from ccvae_tools.util.console import err, warn

    if err.is_terminal:
        warn(msg)
    else:  # one line per warning off a terminal (rich would wrap it at 80 columns)
        print(f"warning: {safe_text(msg)}", file=sys.stderr, flush=True)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _check_stdin() -> None:
    if sys.stdin is None:
        raise UsageError("'-' reads image bytes from stdin, but there is no stdin")
    if _is_terminal(sys.stdin):
        raise UsageError("'-' reads image bytes from stdin, but stdin is a terminal; pipe an image in "
                         "(ccvae ... - < face.png)")


def _read_stdin() -> bytes:
    """The image bytes on stdin, at most `data.images.MAX_IMAGE_BYTES` (`< /dev/zero` ends at once)."""
    from ccvae_tools.data.images import read_stream

    _check_stdin()
    return read_stream(getattr(sys.stdin, "buffer", None) or sys.stdin, STDIN_NAME)


def input_warnings(data: bytes, name: str, pre: "Preprocess") -> list[tuple[str, str]]:
    """(kind, message) for an image far from what the model saw in training (it still works)."""
    from PIL import Image

    from ccvae_tools.data.images import decoding

    found: list[tuple[str, str]] = []
    try:
        with decoding(), Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            mode = img.mode
            gray_palette = False
            if mode == "P":
                pal = img.getpalette() or []
                gray_palette = bool(pal) and all(pal[i] == pal[i + 1] == pal[i + 2]
                                                 for i in range(0, len(pal) - 2, 3))
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001
                orientation = 1
    except Exception:  # noqa: BLE001 - load_image reports unreadable images with its own message
        return found
    if min(w, h) < 1:
        return found
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    short, long_ = min(w, h), max(w, h)
    usable = short
    if pre.crop == "center" and pre.crop_size is not None:
        usable = min(short, pre.crop_size)
    factor = pre.size / usable
    if factor > UPSCALE_WARN:
        found.append(("upscaled", f"{name}: {w}x{h} px is upscaled {factor:.1f}x to the model's {pre.size}x{pre.size}; "
                  f"expect a blurry result (use a larger image)"))
    if long_ / short >= ASPECT_WARN:
        what = ("only its centre square is used" if pre.crop == "center"
                else f"it is squashed to {pre.size}x{pre.size}")
        found.append(("far from square", f"{name}: {w}x{h} px is far from square; {what} (crop it to the face first)"))
    gray = mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F") or gray_palette
    if pre.channels == 3 and gray:
        found.append(("grayscale", f"{name}: a grayscale image for a colour (RGB) model; it is used as gray RGB"))
    elif pre.channels == 1 and not gray:
        found.append(("in colour", f"{name}: a colour image for a grayscale model; it is converted to grayscale"))
    return found


def check_input_paths(inputs: Sequence[str]) -> None:
    """Fail before any work when a path is missing, a folder, a socket, a block device or too large
    to be an image (typos show up at once). A pipe (`<(cat face.png)`, a FIFO) or a character device
    passes: it is read as stdin is, to the same limit (`iter_inputs`)."""
    from ccvae_tools.data.images import check_image_path

    for src in inputs:
        if src == "-":
            _check_stdin()
            continue
        p = Path(src)
        if p.is_dir():
            raise DataError(f"{src}: is a folder, not an image file; give the path of an image "
                            f"(e.g. {src.rstrip('/')}/*.jpg)")
        check_image_path(p, src, streams=True)


def _read_streams(inputs: Sequence[str]) -> dict[str, bytes]:
    """The bytes of each input that is a stream (`-`, a pipe, a device), read here, once each, before
    the decoding threads start: a pipe can be read only once, and a thread waiting on its writer
    would keep Ctrl-C from ending the command. Each is bounded as stdin is (MAX_IMAGE_BYTES)."""
    from ccvae_tools.data.images import read_image_bytes
    from ccvae_tools.util.files import names_stream

    out: dict[str, bytes] = {}
    for src in inputs:
        if src in out:
            continue
        if src == "-":
            out[src] = _read_stdin()
        elif names_stream(src):
            out[src] = read_image_bytes(Path(src), src, streams=True)
    return out


def _load_one(src: str, data: bytes | None, pre: "Preprocess") -> tuple["np.ndarray", list[tuple[str, str]]]:
    from ccvae_tools.data.images import load_image, read_image_bytes

    name = STDIN_NAME if src == "-" else src
    if data is None:            # a regular file (streams were read by `_read_streams`)
        data = read_image_bytes(Path(src), name)
    arr = load_image(data, pre, name=name)
    return arr, input_warnings(data, name, pre)


def iter_inputs(inputs: Sequence[str], pre: "Preprocess", batch_size: int = 256,
                workers: int | None = None) -> Iterator[list[tuple[str, "np.ndarray"]]]:
    """Batches of (name, uint8 (C, H, W)) in input order, decoded in a thread pool.

    `-` is image bytes on stdin (read once, named "<stdin>"); a pipe or a device is read once too.
    Any unusable input raises a one-line DataError (missing files and folders before any decoding).
    Warnings go to stderr.
    """
    inputs = [str(s) for s in inputs]
    if not inputs:
        raise UsageError("no input images given")
    check_input_paths(inputs)
    streamed = _read_streams(inputs)
    warns = _Warnings()
    batch_size = max(1, int(batch_size))
    n_workers = workers if workers is not None else min(8, (os.cpu_count() or 1) + 1)

    def one(src: str) -> tuple["np.ndarray", list[tuple[str, str]]]:
        return _load_one(src, streamed.get(src), pre)

    def emit(names: list[str], results: list) -> list[tuple[str, "np.ndarray"]]:
        out = []
        for c, (arr, found) in zip(names, results):        # warnings in input order, from this thread
            for kind, msg in found:
                warns.add(kind, msg)
            out.append((STDIN_NAME if c == "-" else c, arr))
        return out

    try:
        if n_workers <= 1 or len(inputs) == 1:
            for s in range(0, len(inputs), batch_size):
                chunk = inputs[s: s + batch_size]
                yield emit(chunk, [one(c) for c in chunk])
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                # keep one batch in flight ahead of the consumer, so decoding overlaps the model
                pending = None
                for s in range(0, len(inputs) + batch_size, batch_size):
                    chunk = inputs[s: s + batch_size]
                    nxt = (chunk, [pool.submit(one, c) for c in chunk]) if chunk else None
                    if pending is not None:
                        names, futs = pending
                        try:
                            arrs = [f.result() for f in futs]
                        except BaseException:
                            if nxt is not None:
                                for f in nxt[1]:
                                    f.cancel()
                            raise
                        yield emit(names, arrs)
                    pending = nxt
                    if nxt is None:
                        break
    finally:
        warns.close()


def read_inputs(inputs: Sequence[str], pre: "Preprocess", workers: int | None = None
                ) -> list[tuple[str, "np.ndarray"]]:
    """All inputs as (name, uint8 (C, H, W)) per `pre`; see `iter_inputs`."""
    out: list[tuple[str, np.ndarray]] = []
    for batch in iter_inputs(inputs, pre, batch_size=max(1, len(inputs)), workers=workers):
        out.extend(batch)
    return out


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------

def _supported() -> str:
    return ", ".join(FORMATS)


def format_for(out: str, fmt: str | None = None) -> str:
    """PIL format name for an output: by extension for files, `fmt` (default PNG) for stdout '-'."""
    if fmt is not None:
        key = "." + str(fmt).lower().lstrip(".")
        if key not in FORMATS:
            raise UsageError(f"--format {fmt!r}: unknown image format; use one of "
                             f"{', '.join(k[1:] for k in FORMATS)}")
        fmt_name = FORMATS[key]
    else:
        fmt_name = None
    if out == "-":
        return fmt_name or "PNG"
    ext = Path(out).suffix.lower()
    if ext not in FORMATS:
        shown = f"unknown image extension {ext!r}" if ext else "no image extension"
        raise UsageError(f"{out}: {shown}; end the name with one of {_supported()}")
    if fmt_name is not None and fmt_name != FORMATS[ext]:
        raise UsageError(f"{out}: the extension {ext} does not match --format {fmt}; use one or the other")
    return FORMATS[ext]


def check_output_path(out: str) -> Path:
    """Refuse early (before any work) an output whose folder is missing or that is a folder itself."""
    path = Path(out)
    folder = path.parent
    if out.endswith(("/", os.sep)) or path.is_dir():
        raise CcvaeError(f"{out}: is a folder; give a file name (e.g. {path / 'out.png'})")
    if not folder.is_dir():
        raise CcvaeError(f"{out}: the folder {str(folder)!r} does not exist; create it first")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` all at once (see ccvae_tools.util.atomic), after the early output checks."""
    return _atomic_write_bytes(check_output_path(str(path)), data)


def check_stdout_binary() -> None:
    """Refuse image bytes for a terminal (they would only garble the screen); call before the work."""
    if _is_terminal(sys.stdout):
        raise UsageError("refusing to write image bytes to a terminal; redirect stdout (> out.png) "
                         "or pass -o FILE")


def write_stdout_bytes(data: bytes) -> None:
    """Image bytes to stdout (binary); refused when stdout is a terminal."""
    check_stdout_binary()
    out = sys.stdout
    buf = getattr(out, "buffer", None)
    if buf is None:  # pragma: no cover - a text-only stdout replacement
        raise CcvaeError("stdout cannot take binary data here; pass -o FILE")
    buf.write(data)
    buf.flush()


def write_image_output(img: Any, out: str, fmt: str | None = None,
                       durations: int | Sequence[int] | None = None) -> Path | None:
    """Write one image or a list of frames to `out` (by extension) or to stdout ('-'); atomic.

    - files: .png .jpg .jpeg .webp .gif; frames + .gif = an animated GIF looping forever,
      `durations` in ms (one int, or one per frame; default 100); frames + a still format = error.
    - '-': the bytes on stdout, in `fmt` (default PNG, or GIF for several frames).
    Returns the path written, or None for stdout. Errors are one-line CcvaeError/UsageError.
    Note: PIL merges consecutive identical GIF frames into one (adding their durations).
    """
    n_frames = len(img) if isinstance(img, (list, tuple)) else 1
    if out == "-" and fmt is None and n_frames > 1:
        fmt = "gif"
    if out != "-":
        check_output_path(out)
    pil_fmt = format_for(out, fmt)
    if n_frames > 1 and pil_fmt != "GIF":
        where = "stdout" if out == "-" else out
        raise UsageError(f"{where}: {n_frames} frames cannot go in a still {pil_fmt} image; "
                         f"write a .gif (or --format gif) for an animation")
    from ccvae_tools.render import encode

    data = encode(img, pil_fmt, durations)
    if out == "-":
        write_stdout_bytes(data)
        return None
    return atomic_write_bytes(out, data)


NAME_MAX = 255           # bytes in one file name (ext4, APFS, NTFS in characters)


def default_output(input_name: str, suffix: str, ext: str) -> str:
    """A name next to the input: ('face.png', 'smiling', 'gif') -> 'face.smiling.gif'.

    For stdin ('-' or '<stdin>'): 'ccvae-<suffix>.<ext>' in the current folder; for a pipe or a
    device ('/dev/fd/63' from `<(cat face.png)`): '63.<suffix>.<ext>' in the current folder, as
    /dev/fd/ cannot be written. The suffix (often built from label names, which come from the
    weights file) and the extension are made slugs (`util/text.py`), so the name stays in the
    input's folder; a long input name is shortened so that the whole name fits in one file name.
    """
    from ccvae_tools.util.files import names_stream

    suffix, ext = slug(suffix, fallback="out"), slug(str(ext).lstrip("."), fallback="png")
    if input_name in ("-", STDIN_NAME, ""):
        return f"ccvae-{suffix}.{ext}"
    p = Path(Path(input_name).name) if names_stream(input_name) else Path(input_name)
    stem = p.stem
    while stem and len(os.fsencode(f"{stem}.{suffix}.{ext}")) > NAME_MAX:
        stem = stem[:-1]
    return str(p.with_name(f"{stem}.{suffix}.{ext}"))


def _is_input(target: str, inputs: Sequence[str]) -> bool:
    """Whether writing `target` would replace one of the input files (links and hard links too)."""
    if target == "-" or not os.path.exists(target):
        return False
    for src in inputs:
        try:
            if src not in ("-", STDIN_NAME) and os.path.samefile(target, src):
                return True
        except OSError:     # an input that went away: it cannot be replaced
            continue
    return False


def check_targets(targets: Sequence[str], inputs: Sequence[str], force: bool = False) -> None:
    """Refuse, before any work, outputs that would lose work (UsageError, one line):

    - two outputs with one name (`targets[i]` is made from `inputs[i]` when there are as many):
      `ccvae edit d1/face.png d2/face.png -o out/` is refused, not written twice to out/face.edit.png;
    - unless `force`, an output that is one of the inputs (`-o face.png` for face.png).
    """
    paired = len(targets) == len(inputs)            # targets[i] is made from inputs[i]
    seen: dict[str, str] = {}
    for i, t in enumerate(targets):
        if t == "-":
            continue
        key = os.path.normcase(os.path.abspath(t))
        if key in seen:
            who = f"{seen[key]} and {inputs[i]}" if paired else "two outputs"
            raise UsageError(f"{who} would both be written to {t}; "
                             f"give the inputs different names or process them separately")
        seen[key] = inputs[i] if paired else t
    if force:
        return
    for t in targets:
        if _is_input(t, inputs):
            raise UsageError(f"{t}: is one of the inputs; give another output name, "
                             f"or --force to replace it")


def emit_json(obj: Any) -> None:
    """One JSON object per line on stdout (flushed, so consumers can stream)."""
    # names stay exact for the reader of the JSON, but control and bidi characters are \u-escaped
    sys.stdout.write(safe_json(json.dumps(obj, ensure_ascii=False, allow_nan=False)) + "\n")
    sys.stdout.flush()
