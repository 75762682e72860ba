"""info, labels, classify, reconstruct.

`info` and `labels` read the weights file's metadata only (no torch import: they answer in well
under half a second); `info --readme` writes it as a model hub's README.md (`model/card.py`).
`classify` and `reconstruct` load the model and process many images in
batches in one process, decoding them in a thread pool while the model runs.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ccvae_tools.cli import io as cli_io
from ccvae_tools.cli.params import FORCE, QUIET, Commands, device_option, model_option, number, seed_option
from ccvae_tools.util.errors import CcvaeError, UsageError, WeightsError
from ccvae_tools.util.text import safe_text

commands = Commands()
register = commands.register


# ----------------------------------------------------------------------------------------------
# the model card (metadata only; the card itself is built by ccvae_tools.model.card)
# ----------------------------------------------------------------------------------------------

def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"  # pragma: no cover


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def render_card(card: dict) -> str:
    """The human model card (plain text): one block per part of `model_card`'s dict, in a fixed order.

    Every line is made terminal-safe (`safe_text`): the card quotes the weights file's own strings
    (title, label and class names, data name, licence), and a file can be downloaded from anywhere.
    """
    lines = [card["title"] or Path(card["path"]).name]
    lines += _model_lines(card)
    lines += _label_lines(card["labels"])
    lines += _part(card, _data_lines, "data", "ccvae.data")
    lines += _part(card, _training_lines, "train", "ccvae.train")
    lines += _part(card, _metrics_lines, "metrics", "ccvae.metrics")
    lines += _provenance_lines(card)
    return "\n".join(safe_text(line) for line in lines)


def _part(card: dict, render, field: str, key: str) -> list[str]:
    """The lines of one free-form record of the file (data, training, metrics): a value of a type
    ccvae does not write there (a string where a count belongs) is a one-line error naming the key."""
    try:
        return render(card[field])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"{card['path']}: malformed metadata {key} ({type(e).__name__}: {e})") from None


def _json_ready(value: Any) -> Any:
    """The card as JSON can carry it: NaN and infinities, which a file's metadata may hold and JSON
    cannot, become null. (The weights reader bounds how deep the values nest.)"""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _model_lines(card: dict) -> list[str]:
    """File, architecture, image geometry, preprocessing and latent layout."""
    ch = card["channels"]
    colour = "RGB" if ch == 3 else "grayscale" if ch == 1 else f"{ch} channels"
    lat = card["latent"]
    dims = sorted(set(lat["z_c"].values()))
    per_label = f"{dims[0]} per label" if len(dims) == 1 else "per label: " + ", ".join(
        f"{k} {v}" for k, v in lat["z_c"].items())
    return [
        f"  file           {card['path']} ({_human_size(card['file_size'])})",
        f"  architecture   {card['architecture']}, {card['parameters']:,} parameters",
        f"  image          {card['image_size']}x{card['image_size']} px, {colour}",
        f"  preprocessing  {_preprocess_text(card['preprocess'])}",
        f"  latent         z = {lat['z_dim']}: z_c {sum(lat['z_c'].values())} ({per_label}), z_s {lat['z_style']}",
    ]


def _label_lines(labels: list[dict]) -> list[str]:
    lines = [f"  labels         {len(labels)}"]
    names = [safe_text(lab["name"]) for lab in labels]           # as shown, so that the columns line up
    width = max(map(len, names), default=0)
    for name, lab in zip(names, labels):
        prior = ", ".join(f"{c} {p:.2f}" for c, p in lab["prior"].items())
        classes = "binary" if lab["classes"] == ["0", "1"] else "classes " + "/".join(lab["classes"])
        lines.append(f"    {name:<{width}}  {classes}" + (f"; prior {prior}" if prior else ""))
    return lines


def _data_lines(data: dict) -> list[str]:
    if not data:
        return []
    counts = []
    if "images" in data:
        counts.append(f"{data['images']:,} images")
    if "train" in data:
        counts.append(f"{data['train']:,} train")
    if "labelled" in data:
        frac = data.get("labelled_fraction")
        counts.append(f"{data['labelled']:,} labelled" + (f" ({frac:.1%})" if isinstance(frac, (int, float)) else ""))
    return [f"  data           {data.get('name', '?')}" + (": " + ", ".join(counts) if counts else "")]


def _training_lines(train: dict) -> list[str]:
    if not train:
        return []
    progress = []
    if "epoch" in train and "epochs" in train and train["epoch"] != train["epochs"]:
        progress.append(f"epoch {train['epoch']} of {train['epochs']}")   # a checkpoint before the end
    elif "epochs" in train:
        progress.append(f"{train['epochs']} epochs")
    for k in ("step", "images_seen", "seed"):
        if k in train:
            progress.append(f"{k.replace('_', ' ')} {train[k]:,}" if isinstance(train[k], int) and k != "seed"
                            else f"{k} {train[k]}")
    lines = [f"  training       {', '.join(progress)}"]
    options = train.get("options") or {}
    if options:
        lines.append("                 " + ", ".join(f"{k}={_fmt_num(v)}" for k, v in options.items() if v is not None))
    return lines


def _metrics_lines(metrics: dict) -> list[str]:
    """Held-out accuracy per label against the majority baseline, then what `ccvae eval` judged."""
    accuracy = _dict(metrics.get("accuracy"))
    if not accuracy:
        return ["  metrics        none recorded"]
    baseline = _dict(metrics.get("majority_baseline"))
    balanced = _dict(metrics.get("balanced_accuracy"))
    split = metrics.get("split", "held-out")
    n = metrics.get("images")
    lines = [f"  metrics        q(y|x) accuracy on {split}" + (f" ({n:,} images)" if isinstance(n, int) else "")
             + ", posterior mean"]
    width = max(len(k) for k in accuracy)
    for name, a in accuracy.items():
        row = f"    {name:<{width}}  accuracy {a:.3f}"
        if name in balanced:
            row += f"  balanced {balanced[name]:.3f}"
        if name in baseline:
            verdict = "  (beats it)" if a > baseline[name] else "  (DOES NOT beat it)"
            row += f"  majority {baseline[name]:.3f}{verdict}"
        lines.append(row)
    extra = [f"{k} {metrics[k]:.4g}" for k in ("bound", "recon_l1") if isinstance(metrics.get(k), (int, float))]
    if extra:
        lines.append(f"    {', '.join(extra)}")
    judged = _judged(metrics)
    if judged:
        lines.append(f"    {'; '.join(judged)} (ccvae eval)")
    return lines


def _judged(metrics: dict) -> list[str]:
    """The edit and capture results of `ccvae eval`, one phrase each."""
    judged = []
    for key, name in (("edit", "edits judged"), ("edit_consistent", "consistent edits")):
        e = _dict(metrics.get(key))
        if isinstance(e.get("mean_success"), (int, float)):
            judged.append(f"{name}: success {e['mean_success']:.3f}, leakage {e.get('mean_leakage', float('nan')):.3f}")
    capture = _dict(metrics.get("capture"))
    summary = _dict(metrics.get("capture_summary"))
    if summary.get("labels"):
        judged.append(f"capture: z_c above z_s by >= {summary.get('margin', 0):.2f} for "
                      f"{summary.get('z_c_clearly_above')} of {summary['labels']} labels")
    elif capture:   # a card without the summary: count the labels where z_c beats z_s at all
        wins = sum(1 for c in capture.values() if isinstance(c, dict) and c.get("z_c", 0) > c.get("z_s", 0))
        judged.append(f"capture: z_c above z_s for {wins} of {len(capture)} labels")
    return judged


def _provenance_lines(card: dict) -> list[str]:
    version = f"ccvae {card['version']}" if card["version"] else "unknown"
    return [f"  licence        {card['license'] or 'not stated'}",
            f"  version        {version}, weights format {card['format_version']}"
            + (f", {card['date']}" if card["date"] else "")]


def _fmt_num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4g}"
    return str(v)


def _preprocess_text(pre: dict) -> str:
    from ccvae_tools.model.card import crop_in_words

    size = pre.get("size", "?")
    return f"{crop_in_words(pre.get('crop'), pre.get('crop_size'))}, resized to {size}x{size} px"


def _weights_arg(weights: Optional[str], model: Optional[str]) -> Optional[str]:
    if weights is not None and model is not None and os.path.abspath(weights) != os.path.abspath(model):
        raise UsageError(f"two weights files given ({weights} and --model {model}); give one")
    return weights if weights is not None else model


@commands.command("info", epilog="""Examples:

  ccvae info                                (the shipped default model)

  ccvae info runs/00003-celeba-sup0.06      (a run folder: its model.safetensors)

  ccvae info -m my.safetensors --json | jq .metrics

  ccvae info runs/00003-celeba-sup0.06 --readme README.md     (a model hub's README.md)

  ccvae info fonts32 --readme weights/README.fonts32.md --keep-body    (only its front matter)
""")
def info_cmd(
    weights: Optional[str] = typer.Argument(None, help="Weights file (or --model; default as --model).",
                                            metavar="[WEIGHTS]", show_default=False),
    model: Optional[str] = model_option(),
    device: Optional[str] = device_option(hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print the card as one JSON object on stdout."),
    readme: Optional[str] = typer.Option(None, "--readme", metavar="FILE",
                                         help="Write the card as a model hub's README.md (YAML front matter: "
                                              "licence, tags, data set, metrics) to FILE, or - for stdout."),
    keep_body: bool = typer.Option(False, "--keep-body",
                                   help="With --readme FILE: keep FILE's text, write only its front matter."),
    quiet: bool = QUIET,
) -> None:
    """Show the model card: labels, sizes, preprocessing, data, training, metrics (no torch needed)."""
    path = cli_io.resolve_model_path(_weights_arg(weights, model), "WEIGHTS" if weights else "--model")
    if readme is not None or keep_body:
        _write_readme(path, readme, keep_body, as_json)
        cli_io.say_model(path, quiet)
        return
    from ccvae_tools.model.card import model_card
    from ccvae_tools.training.options import card_options

    card = model_card(path, shown_options=card_options())
    if as_json:
        cli_io.emit_json(_json_ready(card))
    else:
        sys.stdout.write(render_card(card) + "\n")
    cli_io.say_model(path, quiet)


def _write_readme(path: Path, readme: Optional[str], keep_body: bool, as_json: bool) -> None:
    """`info --readme`: the hub README on stdout (-) or written to a file, whose path is printed."""
    from ccvae_tools.model.card import hub_readme, write_hub_readme
    from ccvae_tools.model.weights import read_metadata

    if as_json or readme is None or (keep_body and readme == "-"):
        raise UsageError("--readme FILE writes the card as Markdown; --json and --keep-body without a FILE "
                         "do not go with it")
    if readme == "-":
        sys.stdout.write(hub_readme(read_metadata(path)))
        return
    written = write_hub_readme(path, cli_io.check_output_path(readme), keep_body=keep_body)
    sys.stdout.write(f"{safe_text(written)}\n")


@commands.command("labels", epilog="""Examples:

  ccvae labels

  ccvae labels -m runs/00003-celeba-sup0.06/model.safetensors

  for l in $(ccvae labels); do ccvae traverse face.png --label "$l"; done
""")
def labels_cmd(
    model: Optional[str] = model_option(),
    device: Optional[str] = device_option(hidden=True),
    quiet: bool = QUIET,
) -> None:
    """Print the model's label names, one per line (no torch needed)."""
    path, meta = cli_io.read_model_metadata(model)
    names = cli_io.label_names_of(meta)
    sys.stdout.write("".join(safe_text(n) + "\n" for n in names))     # names from the file: made safe
    cli_io.say_model(path, quiet)


# ----------------------------------------------------------------------------------------------
# classify
# ----------------------------------------------------------------------------------------------

def _result(name: str, probs, labels) -> dict:
    out_p: dict[str, Any] = {}
    pred: dict[str, str] = {}
    for i, lab in enumerate(labels):
        k = lab.num_classes
        row = [min(1.0, max(0.0, float(v))) for v in probs[i, :k]]
        if k == 2:
            out_p[lab.name] = round(row[1], 6)
        else:
            out_p[lab.name] = {c: round(v, 6) for c, v in zip(lab.classes, row)}
        pred[lab.name] = lab.classes[max(range(k), key=lambda j: row[j])]
    return {"input": name, "probabilities": out_p, "predicted": pred}


PROGRESS_FROM = 32      # inputs; fewer finish too fast for a bar to help


def _progress(what: str, n: int):
    """A bar on stderr (terminal only) for many inputs; nothing for a few."""
    import contextlib

    from ccvae_tools.util.console import progress

    if n < PROGRESS_FROM:
        return contextlib.nullcontext(lambda k=1: None)
    return progress(what, total=n)


def _stdout_console():
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(file=sys.stdout, highlight=False, soft_wrap=False,
                   width=None if tty else 100_000, no_color=not tty, force_terminal=False if not tty else None)


def _table(results: list[dict], labels) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def cell(s: str) -> Text:        # file, label and class names: not rich markup, made terminal-safe
        return Text(safe_text(s))

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("input", overflow="fold")
    for lab in labels:
        table.add_column(cell(f"P({lab.name})" if lab.num_classes == 2 else lab.name), justify="right")
    for r in results:
        cells: list[Any] = [cell(r["input"])]
        for lab in labels:
            v = r["probabilities"][lab.name]
            if isinstance(v, dict):
                c = r["predicted"][lab.name]
                cells.append(cell(f"{c} {v[c]:.3f}"))
            else:
                cells.append(f"{v:.3f}")
        table.add_row(*cells)
    return table


@commands.command("classify", epilog="""Examples:

  ccvae classify face.png

  ccvae classify photos/*.jpg --mean --json > probs.jsonl

  cat face.jpg | ccvae classify - --json

  ccvae classify -m my.safetensors a.png b.png --draws 500
""")
def classify_cmd(
    images: List[str] = typer.Argument(..., help="Image files ('-': image bytes on stdin).", metavar="IMG",
                                       show_default=False),
    model: Optional[str] = model_option(),
    device: Optional[str] = device_option(),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per input line on stdout."),
    draws: int = number(100, "--draws", minimum=1, maximum=100_000,
                        help="K: codes drawn from q(z|x) to estimate q(y|x)."),
    mean: bool = typer.Option(False, "--mean", help="Use the posterior mean code only (faster)."),
    seed: int = seed_option("Seed of the draws (the output is deterministic)."),
    batch_size: int = number(512, "--batch-size", minimum=1, maximum=65536, help="Images per model batch."),
    quiet: bool = QUIET,
) -> None:
    """Per-label probabilities q(y_i | x) for each image: a table, or JSON lines with --json."""
    cli_io.check_input_paths(images)
    m = cli_io.open_model(model, device)
    import numpy as np

    labels = m.labels
    k = 0 if mean else draws
    results: list[dict] = []
    with _progress("classify", len(images)) as advance:
        for batch in cli_io.iter_inputs(images, m.preprocess, batch_size=batch_size):
            # the API's q(y|x) and its noise convention; each input batch goes through the model whole
            probs = m.classify(np.stack([a for _, a in batch]), draws=k, seed=seed, batch_size=batch_size).numpy()
            for (name, _), p in zip(batch, probs):
                r = _result(name, p, labels)
                if as_json:
                    cli_io.emit_json(r)
                else:
                    results.append(r)
            advance(len(batch))
    if not as_json:
        _stdout_console().print(_table(results, labels))
    cli_io.say_model(m.path, quiet)


# ----------------------------------------------------------------------------------------------
# reconstruct
# ----------------------------------------------------------------------------------------------

def _reconstruct_targets(images: list[str], out: Optional[str], fmt: Optional[str], force: bool) -> list[str]:
    """The output of each input, checked before any work (folders exist, names distinct, no input
    replaced unless `force`: `cli_io.check_targets`)."""
    ext = (fmt or "png").lower().lstrip(".")
    if ext == "jpeg":
        ext = "jpg"
    if len(images) == 1:
        if out is None:
            target = cli_io.default_output(images[0], "recon", ext)
        elif out == "-":
            target = "-"
        elif os.path.isdir(out):
            target = os.path.join(out, os.path.basename(cli_io.default_output(images[0], "recon", ext)))
        else:
            target = out
        if target != "-":
            cli_io.format_for(target, fmt)
            cli_io.check_output_path(target)
        else:
            cli_io.format_for("-", fmt)
            cli_io.check_stdout_binary()
        cli_io.check_targets([target], images, force)
        return [target]
    if out == "-":
        raise UsageError(f"-o -: image bytes on stdout take one input, not {len(images)}; "
                         f"give -o FOLDER or no -o")
    if fmt is not None:
        cli_io.format_for("-", fmt)
    if out is not None and not os.path.isdir(out):
        if os.path.exists(out) or Path(out).suffix.lower() in cli_io.FORMATS:
            raise UsageError(f"-o {out}: with {len(images)} inputs, -o must be a folder")
        raise CcvaeError(f"-o {out}: no such folder; create it first (with several inputs -o is a folder)")
    targets = []
    for src in images:
        name = cli_io.default_output(src, "recon", ext)
        targets.append(os.path.join(out, os.path.basename(name)) if out is not None else name)
    cli_io.check_targets(targets, images, force)
    for t in targets:
        cli_io.check_output_path(t)
    return targets


@commands.command("reconstruct", epilog="""Examples:

  ccvae reconstruct face.png                 (writes face.recon.png, prints its path)

  ccvae reconstruct face.png -o recon.jpg

  ccvae reconstruct photos/*.jpg -o recons/  (the folder must exist)

  cat face.png | ccvae reconstruct - -o - > recon.png

  ccvae reconstruct face.png --sample --seed 3 -o sample3.png

  Two inputs that would be written to one name (d1/face.png d2/face.png -o out/) are refused before
  any work: give them different names or reconstruct them separately. An output that is one of the
  inputs is refused unless --force.
""")
def reconstruct_cmd(
    images: List[str] = typer.Argument(..., help="Image files ('-': image bytes on stdin).", metavar="IMG",
                                       show_default=False),
    out: Optional[str] = typer.Option(None, "--out", "-o",
                                      help="Output file (one input), folder (several), or '-' for stdout; "
                                           "default: NAME.recon.png next to each input."),
    fmt: Optional[str] = typer.Option(None, "--format", help="png | jpg | webp | gif (for -o - and folders)."),
    model: Optional[str] = model_option(),
    device: Optional[str] = device_option(),
    sample: bool = typer.Option(False, "--sample", help="Decode a draw z ~ q(z|x) instead of the posterior mean."),
    seed: int = seed_option("Seed of --sample."),
    batch_size: int = number(512, "--batch-size", minimum=1, maximum=65536, help="Images per model batch."),
    force: bool = FORCE,
    quiet: bool = QUIET,
) -> None:
    """Encode each image (posterior mean, or a draw with --sample) and decode it."""
    from ccvae_tools.data.images import to_pil

    cli_io.check_input_paths(images)
    targets = _reconstruct_targets(list(images), out, fmt, force)
    m = cli_io.open_model(model, device)
    import numpy as np
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    done = 0
    with _progress("reconstruct", len(images)) as advance:
        for batch in cli_io.iter_inputs(images, m.preprocess, batch_size=batch_size):
            x = m.encoder_input(np.stack([a for _, a in batch]))
            with torch.inference_mode():
                mu, sigma = m.model.encode(x)
                if sample:  # one draw per image in input order: independent of the batch size
                    eps = torch.stack([torch.randn(mu.shape[-1], generator=g) for _ in range(len(batch))])
                    mu = mu + sigma * eps.to(mu.device)
            recon = m.decode(mu)
            for arr in recon:
                target = targets[done]
                written = cli_io.write_image_output(to_pil(arr), target, fmt)
                if written is not None:
                    sys.stdout.write(f"{safe_text(written)}\n")
                    sys.stdout.flush()
                done += 1
            advance(len(batch))
    cli_io.say_model(m.path, quiet)
