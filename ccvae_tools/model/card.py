"""The model card: what a weights file says about its model, as plain JSON-ready data.

It reads the safetensors header only, so it needs neither torch nor numpy (and imports neither):
`ccvae info` prints it in well under half a second. The CLI renders it as text (`cli/inspect.py`).
`hub_readme` renders the same metadata as a model hub's README.md (YAML front matter and Markdown),
so that a run folder can be uploaded to a hub as it is (`ccvae info --readme`).

    card = model_card(Path("weights/avatars64.safetensors"), shown_options=("lr", "batch_size"))
    card["labels"][0]    # {"name": "Smiling", "classes": ["0", "1"], "dim": 1, "prior": {"0": 0.5, "1": 0.5}}
    write_hub_readme(Path("runs/00000-avatars-sup1/model.safetensors"))    # -> .../README.md
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ccvae_tools.model.weights import read_header, read_metadata
from ccvae_tools.util.atomic import atomic_write
from ccvae_tools.util.errors import CcvaeError, WeightsError
from ccvae_tools.util.ranges import finite_number
from ccvae_tools.util.text import safe_text


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


def crop_in_words(crop: str | None, crop_size: int | None) -> str:
    """What `data/images.py` does to a frame before resizing it, for people (`ccvae info`, the ONNX spec): from the
    preprocessing a weights file records (its `crop` and `crop_size`)."""
    if crop == "squash":
        return "the whole frame squashed to a square"
    if crop_size:
        return f"the centred {crop_size} x {crop_size} px square cut (of the stored image)"
    return "the largest centred square cut"


def _count_parameters(tensors: dict) -> int:
    """The number of values in the file, from the header's tensor shapes (entries without a usable
    shape count 0): the parameter count `ccvae train` prints too (`network.num_parameters`)."""
    total = 0
    for info in tensors.values():
        try:
            total += math.prod(int(s) for s in info.get("shape", []))
        except (TypeError, ValueError, AttributeError):
            continue
    return total


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


# ----------------------------------------------------------------------------------------------
# the model-hub README: YAML front matter (Hugging Face's model-card metadata) and a Markdown body
# ----------------------------------------------------------------------------------------------

HUB_TAGS = ("ccvae", "vae", "variational-autoencoder", "disentanglement", "image-editing", "safetensors")
FRONT_MATTER = "---"
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# (where in ccvae.metrics, the hub's metric type, its name): the scalars a hub's model index shows
_SCALAR_METRICS = (
    (("mean_accuracy",), "accuracy", "mean accuracy"),
    (("mean_balanced_accuracy",), "balanced_accuracy", "mean balanced accuracy"),
    (("mean_majority_baseline",), "accuracy", "majority baseline (mean accuracy)"),
    (("recon_l1",), "l1", "reconstruction L1 per pixel"),
    (("bound",), "elbo", "bound per image (nats)"),
    (("edit", "mean_success"), "edit_success", "edit success (judged)"),
    (("edit_consistent", "mean_success"), "edit_success", "consistent edit success (judged)"),
)
_PER_LABEL_METRICS = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"))


def hub_readme(meta: dict) -> str:
    """The README.md a model hub shows for a weights file (decoded metadata, `read_metadata`): YAML
    front matter (licence, library_name, tags, datasets, metrics and their values) and a Markdown
    body (labels, metrics, how to use it). Every string of the file is untrusted: in the YAML it is
    a double-quoted scalar with everything but printable ASCII escaped (`yaml_scalar`), so no line
    break, `---` or quote can end it; in the Markdown it is made one safe line with all punctuation
    backslash-escaped (`_md`), so it is never markup or HTML."""
    return hub_front_matter(meta) + "\n" + _guarded(meta, _hub_body)


def with_front_matter(meta: dict, text: str) -> str:
    """`text` (a hand-written card) with its YAML front matter, if any, replaced by the file's."""
    return hub_front_matter(meta) + "\n" + split_front_matter(text)[1].lstrip("\n")


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(the YAML between the first two `---` lines, the rest); (None, text) when there is none."""
    lines = text.split("\n")
    if lines[0].rstrip() != FRONT_MATTER:
        return None, text
    for i, line in enumerate(lines[1:], start=1):
        if line.rstrip() == FRONT_MATTER:
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1:])
    return None, text


def hub_front_matter(meta: dict) -> str:
    """The `---` delimited YAML block of `hub_readme`, with its final line break."""
    return "\n".join([FRONT_MATTER, *yaml_lines(_guarded(meta, _hub_metadata)), FRONT_MATTER]) + "\n"


def _guarded(meta: dict, build):
    try:
        return build(meta)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"malformed ccvae metadata ({type(e).__name__}: {e})") from None


def _hub_metadata(meta: dict) -> dict:
    data_name = _dict(meta.get("ccvae.data")).get("name")
    entries = _hub_metrics(_dict(meta.get("ccvae.metrics")))
    out: dict = {**_hub_license(str(meta.get("modelspec.license", ""))), "library_name": "ccvae",
                 "pipeline_tag": "image-to-image", "tags": list(HUB_TAGS),
                 "datasets": [str(data_name)] if data_name else [],
                 "metrics": sorted({e["type"] for e in entries})}
    if entries:          # the hub's model index: a result needs a task, a data set and metrics
        split = _dict(meta.get("ccvae.metrics")).get("split")
        dataset = {"name": str(data_name or "unknown"), "type": str(data_name or "unknown"),
                   **({"split": str(split)} if split is not None else {})}
        out["model-index"] = [{"name": _title(meta), "results": [
            {"task": {"type": "image-classification", "name": "label classification q(y|x)"},
             "dataset": dataset, "metrics": entries}]}]
    return out


def _hub_license(text: str) -> dict:
    """A licence that looks like an id (mit, apache-2.0, cc-by-4.0) is taken as one; free text is
    `other`, with a slug of it as `license_name` (the hub wants an id there; the text itself is in
    the body); none stated is `unknown`, the hub's word for it."""
    plain = text.strip().lower()
    if not plain:
        return {"license": "unknown"}
    if _LICENSE_ID.fullmatch(plain):
        return {"license": plain}
    name = re.sub(r"[^a-z0-9.]+", "-", plain)[:64].strip("-.")
    return {"license": "other", "license_name": name or "custom"}


def _hub_metrics(metrics: dict) -> list[dict]:
    """The model index's metrics: per-label accuracies, then the scalars; finite numbers only."""
    entries = []
    for key, what in _PER_LABEL_METRICS:
        for label, value in _dict(metrics.get(key)).items():
            if finite_number(value):
                entries.append({"type": key, "name": f"{label} {what}", "value": value})
    for path, kind, name in _SCALAR_METRICS:
        value = _metric_at(metrics, path)
        if value is not None:
            entries.append({"type": kind, "name": name, "value": value})
    return entries


def _metric_at(metrics: dict, path: tuple[str, ...]) -> float | int | None:
    """The number at `path` in the metrics record; None where there is none (or not a finite number)."""
    value: Any = metrics
    for key in path:
        value = _dict(value).get(key)
    return value if finite_number(value) else None


def _title(meta: dict) -> str:
    return str(meta.get("modelspec.title") or "CCVAE model")


# -- a minimal YAML writer: PyYAML is not a dependency, and this small subset is all a card needs

_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}


def yaml_scalar(value: Any) -> str:
    """One YAML scalar that YAML 1.1 and 1.2 readers (PyYAML, the hub's) read back as `value`.

    Strings are always double-quoted, and every character but printable ASCII is escaped (`\\n`,
    `\\u2028`, `\\U0001f600`), so a string can never end its line, its quotes or the front matter.
    Floats are written in full (repr) with a `.` in their mantissa: PyYAML reads `1e-05` as a string.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
        mantissa, e, exponent = repr(value).partition("e")
        return mantissa + ("" if "." in mantissa else ".0") + e + exponent
    return '"' + "".join(_yaml_char(c) for c in str(value)) + '"'


def _yaml_char(c: str) -> str:
    if c in '"\\':
        return "\\" + c
    if " " <= c <= "~":
        return c
    code = ord(c)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _yaml_key(key: Any) -> str:
    key = str(key)
    plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
    return key if plain else yaml_scalar(key)


def yaml_lines(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML of nested dicts and lists of scalars, two spaces per level."""
    pad = "  " * indent
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, item in items:
        head = f"{pad}{_yaml_key(key)}:" if isinstance(value, dict) else f"{pad}-"
        if isinstance(item, (dict, list)) and item:
            inner = yaml_lines(item, indent + 1)
            if isinstance(value, dict):
                lines += [head, *inner]
            else:                      # "- first: 1" with the item's other keys under its first
                lines += [f"{head} {inner[0].lstrip()}", *inner[1:]]
        else:
            empty = "{}" if isinstance(item, dict) else "[]" if isinstance(item, list) else yaml_scalar(item)
            lines.append(f"{head} {empty}")
    return lines


# -- the Markdown body

_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _md(text: Any) -> str:
    """A string of the file as inert Markdown text: one terminal-safe line (`safe_text`: line breaks
    and control characters shown escaped), every ASCII punctuation mark backslash-escaped (CommonMark
    allows it for all of them), so no `<`, `|`, `[`, `*` or backtick is read as markup or HTML."""
    return _MD_PUNCTUATION.sub(r"\\\1", safe_text(text))


def _hub_body(meta: dict) -> str:
    config, pre = _dict(meta["ccvae.config"]), _dict(meta["ccvae.preprocess"])
    labels = _labels(meta["ccvae.labels"], _dict(meta.get("ccvae.label_prior")))
    latent = _latent(labels, int(config.get("z_style", 0)))
    size = int(config.get("image_size", pre.get("size", 0)))
    colour = "RGB" if int(config.get("channels", pre.get("channels", 3))) == 3 else "grayscale"
    lines = [f"# {_md(_title(meta))}", "",
             "A Characteristic Capturing VAE (CCVAE; Joy et al., ICLR 2021) made with ccvae_tools: each label owns",
             "a block z_c of the latent code, so moving that block edits the label in an image and keeps the",
             "rest (the style, z_s).", "",
             f"- image: {size} x {size} px, {colour}",
             f"- latent: z = {latent['z_dim']}: z_c {latent['z_dim'] - latent['z_style']} (the labels' blocks), "
             f"z_s {latent['z_style']} (style)",
             *_data_line(_dict(meta.get("ccvae.data"))),
             f"- licence: {_md(meta.get('modelspec.license') or 'not stated')}",
             f"- made with ccvae {_md(meta.get('ccvae.version', '?'))}, weights format "
             f"{_md(meta.get('ccvae.format_version', '?'))}"
             + (f", {_md(meta['modelspec.date'])}" if meta.get("modelspec.date") else ""), ""]
    lines += _labels_table(labels) + _metrics_table(labels, _dict(meta.get("ccvae.metrics"))) + _use_lines()
    return "\n".join(lines)


def _data_line(data: dict) -> list[str]:
    if not data:
        return []
    counts = [f"{data[k]:,} {k}" for k in ("images", "labelled") if finite_number(data.get(k))]
    return [f"- data: {_md(data.get('name', '?'))}" + (f" ({', '.join(counts)})" if counts else "")]


def _labels_table(labels: list[dict]) -> list[str]:
    rows = ["## Labels", "", "| label | classes | z_c dims | prior p(y) |", "| --- | --- | --- | --- |"]
    for lab in labels:
        prior = ", ".join(f"{_md(c)} {p:.2f}" for c, p in lab["prior"].items())
        rows.append(f"| {_md(lab['name'])} | {_md('/'.join(lab['classes']))} | {lab['dim']} | {prior} |")
    return rows + [""]


def _metrics_table(labels: list[dict], metrics: dict) -> list[str]:
    accuracy = _dict(metrics.get("accuracy"))
    if not accuracy:
        return ["## Metrics", "", "None recorded yet: `ccvae eval DATA -m model.safetensors --write-metrics` "
                "stores them in the file.", ""]
    columns = (("accuracy", accuracy), ("balanced", _dict(metrics.get("balanced_accuracy"))),
               ("majority baseline", _dict(metrics.get("majority_baseline"))))
    n = metrics.get("images")
    rows = ["## Metrics", "", f"q(y|x) at the posterior mean, on the {_md(metrics.get('split', 'held-out'))} split"
            + (f" ({n:,} images)" if finite_number(n) else "") + ":", "",
            "| label | " + " | ".join(name for name, _ in columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for lab in labels:
        cells = [f"{col[lab['name']]:.4f}" if finite_number(col.get(lab["name"])) else "" for _, col in columns]
        rows.append(f"| {_md(lab['name'])} | " + " | ".join(cells) + " |")
    scalars = [f"{name} {_metric_at(metrics, path):.4g}" for path, _, name in _SCALAR_METRICS
               if _metric_at(metrics, path) is not None]
    return rows + (["", ", ".join(scalars) + "."] if scalars else []) + [""]


def _use_lines() -> list[str]:
    return ["## Use", "", "```bash", "pip install ccvae-tools",
            "ccvae info model.safetensors                        # the card stored in the file",
            "ccvae edit face.png -m model.safetensors --set LABEL=1 --compare",
            "ccvae studio -m model.safetensors --open            # a slider per label",
            "ccvae export model.safetensors --onnx onnx/         # ONNX files for use without torch",
            "```", ""]


def write_hub_readme(weights: str | Path, out: str | Path | None = None, keep_body: bool = False) -> Path:
    """Write `hub_readme` of a weights file to `out` (default: README.md next to it), atomically:
    with it, the folder is ready to upload to a model hub as it is. `keep_body`: `out` is a
    hand-written card; only its front matter is written (or replaced), its text kept."""
    weights = Path(weights)
    target = Path(out) if out is not None else weights.parent / "README.md"
    meta = read_metadata(weights)
    text = with_front_matter(meta, _read_card(target)) if keep_body else hub_readme(meta)
    return atomic_write(target, lambda f: f.write(text.encode("utf-8")))


def _read_card(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CcvaeError(f"{path}: no such card to keep the text of; leave out --keep-body to write "
                         f"a new one") from None
    except UnicodeDecodeError:
        raise CcvaeError(f"{path}: not UTF-8 text; a model card is a UTF-8 Markdown file") from None
    except OSError as e:
        raise CcvaeError(f"{path}: cannot read the card ({e.strerror or e})") from None
