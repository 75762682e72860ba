"""info, labels, classify, reconstruct.

`info` and `labels` read the weights file's metadata only (no torch import: they answer in well
under half a second). `classify` and `reconstruct` load the model and process many images in
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
from ccvae_tools.cli.params import Commands, device_option, model_option
from ccvae_tools.util.errors import CcvaeError, UsageError, WeightsError

commands = Commands()
register = commands.register



# ----------------------------------------------------------------------------------------------
# the model card (metadata only)
# ----------------------------------------------------------------------------------------------

def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"  # pragma: no cover


def _count_parameters(tensors: dict) -> int:
    total = 0
    for info in tensors.values():
        try:
            total += math.prod(int(s) for s in info.get("shape", []))
        except (TypeError, ValueError, AttributeError):
            continue
    return total


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


TRAIN_KEYS = ("preset", "format", "image_size", "crop", "sup_frac", "sup_select", "batch_size", "lr",
              "z_style", "label_dim", "widths", "likelihood_scale", "draws", "classifier_weight", "style_adversary",
              "style_decorrelate", "kl_warmup", "swap_cycle", "init_from", "precision")


def model_card(path: Path) -> dict:
    """Everything `ccvae info` shows, as plain JSON-ready data. Reads the header only (no torch)."""
    from ccvae_tools.model.weights import read_header, read_metadata

    meta = read_metadata(path)
    tensors = read_header(path)["tensors"]
    try:
        cfg = _dict(meta["ccvae.config"])
        pre = _dict(meta["ccvae.preprocess"])
        prior = _dict(meta.get("ccvae.label_prior"))
        labels = []
        for lab in meta["ccvae.labels"]:
            name = str(lab["name"])
            classes = [str(c) for c in lab.get("classes", ["0", "1"])]
            p = prior.get(name) or []
            labels.append({"name": name, "classes": classes, "dim": int(lab.get("dim", 1)),
                           "prior": {c: float(v) for c, v in zip(classes, p)}})
        z_c = {lab["name"]: lab["dim"] for lab in labels}
        z_style = int(cfg.get("z_style", 0))
        train = _dict(meta.get("ccvae.train"))
        options = _dict(train.get("options"))
        metrics = _dict(meta.get("ccvae.metrics"))
        card = {
            "path": str(path),
            "file_size": path.stat().st_size,
            "title": meta.get("modelspec.title", ""),
            "architecture": meta.get("modelspec.architecture") or cfg.get("architecture", ""),
            "image_size": int(cfg.get("image_size", pre.get("size", 0))),
            "channels": int(cfg.get("channels", pre.get("channels", 0))),
            "preprocess": pre,
            "latent": {"z_dim": sum(z_c.values()) + z_style, "z_c": z_c, "z_style": z_style},
            "parameters": _count_parameters(tensors),
            "labels": labels,
            "data": _dict(meta.get("ccvae.data")),
            "train": {k: v for k, v in train.items() if k != "options"} | (
                {"options": {k: options[k] for k in TRAIN_KEYS if k in options}} if options else {}),
            "metrics": metrics,
            "license": meta.get("modelspec.license", ""),
            "date": meta.get("modelspec.date", ""),
            "version": meta.get("ccvae.version", ""),
            "format_version": meta.get("ccvae.format_version", ""),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"{path}: malformed ccvae metadata ({type(e).__name__}: {e})") from None
    return card


def _fmt_num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4g}"
    return str(v)


def _preprocess_text(pre: dict) -> str:
    size = pre.get("size", "?")
    if pre.get("crop") == "squash":
        how = "whole frame squashed to a square"
    elif pre.get("crop_size"):
        how = f"centre {pre['crop_size']}x{pre['crop_size']} crop"
    else:
        how = "largest centred square"
    return f"{how}, resized to {size}x{size} px"


def render_card(card: dict) -> str:
    """The human model card (plain text)."""
    lines: list[str] = []
    add = lines.append
    ch = card["channels"]
    add(card["title"] or Path(card["path"]).name)
    add(f"  file           {card['path']} ({_human_size(card['file_size'])})")
    add(f"  architecture   {card['architecture']}, {card['parameters']:,} parameters")
    add(f"  image          {card['image_size']}x{card['image_size']} px, "
        f"{'RGB' if ch == 3 else 'grayscale' if ch == 1 else f'{ch} channels'}")
    add(f"  preprocessing  {_preprocess_text(card['preprocess'])}")
    lat = card["latent"]
    dims = sorted(set(lat["z_c"].values()))
    per = f"{dims[0]} per label" if len(dims) == 1 else "per label: " + ", ".join(
        f"{k} {v}" for k, v in lat["z_c"].items())
    add(f"  latent         z = {lat['z_dim']}: z_c {sum(lat['z_c'].values())} ({per}), z_s {lat['z_style']}")
    add(f"  labels         {len(card['labels'])}")
    width = max((len(lab["name"]) for lab in card["labels"]), default=0)
    for lab in card["labels"]:
        prior = ", ".join(f"{c} {p:.2f}" for c, p in lab["prior"].items())
        classes = "binary" if lab["classes"] == ["0", "1"] else "classes " + "/".join(lab["classes"])
        add(f"    {lab['name']:<{width}}  {classes}" + (f"; prior {prior}" if prior else ""))
    data = card["data"]
    if data:
        parts = []
        if "images" in data:
            parts.append(f"{data['images']:,} images")
        if "train" in data:
            parts.append(f"{data['train']:,} train")
        if "labelled" in data:
            frac = data.get("labelled_fraction")
            parts.append(f"{data['labelled']:,} labelled" + (f" ({frac:.1%})" if isinstance(frac, (int, float))
                                                              else ""))
        add(f"  data           {data.get('name', '?')}" + (": " + ", ".join(parts) if parts else ""))
    train = card["train"]
    if train:
        parts = []
        if "epoch" in train and "epochs" in train and train["epoch"] != train["epochs"]:
            parts.append(f"epoch {train['epoch']} of {train['epochs']}")
        elif "epochs" in train:
            parts.append(f"{train['epochs']} epochs")
        for k in ("step", "images_seen", "seed"):
            if k in train:
                parts.append(f"{k.replace('_', ' ')} {train[k]:,}" if isinstance(train[k], int) and k != "seed"
                             else f"{k} {train[k]}")
        add(f"  training       {', '.join(parts)}")
        opts = train.get("options") or {}
        if opts:
            add("                 " + ", ".join(f"{k}={_fmt_num(v)}" for k, v in opts.items() if v is not None))
    metrics = card["metrics"]
    acc = _dict(metrics.get("accuracy"))
    if acc:
        base = _dict(metrics.get("majority_baseline"))
        bal = _dict(metrics.get("balanced_accuracy"))
        split = metrics.get("split", "held-out")
        n = metrics.get("images")
        add(f"  metrics        q(y|x) accuracy on {split}" + (f" ({n:,} images)" if isinstance(n, int) else "")
            + ", posterior mean")
        w = max(len(k) for k in acc)
        for name, a in acc.items():
            row = f"    {name:<{w}}  accuracy {a:.3f}"
            if name in bal:
                row += f"  balanced {bal[name]:.3f}"
            if name in base:
                row += f"  majority {base[name]:.3f}" + ("  (beats it)" if a > base[name] else "  (DOES NOT beat it)")
            add(row)
        extra = [f"{k} {metrics[k]:.4g}" for k in ("bound", "recon_l1") if isinstance(metrics.get(k), (int, float))]
        if extra:
            add(f"    {', '.join(extra)}")
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
        elif capture:
            wins = sum(1 for c in capture.values() if isinstance(c, dict) and c.get("z_c", 0) > c.get("z_s", 0))
            judged.append(f"capture: z_c above z_s for {wins} of {len(capture)} labels")
        if judged:
            add(f"    {'; '.join(judged)} (ccvae eval)")
    else:
        add("  metrics        none recorded")
    add(f"  licence        {card['license'] or 'not stated'}")
    version = f"ccvae {card['version']}" if card["version"] else "unknown"
    add(f"  version        {version}, weights format {card['format_version']}"
        + (f", {card['date']}" if card["date"] else ""))
    return "\n".join(lines)


def _weights_arg(weights: Optional[str], model: Optional[str]) -> Optional[str]:
    if weights is not None and model is not None and os.path.abspath(weights) != os.path.abspath(model):
        raise UsageError(f"two weights files given ({weights} and --model {model}); give one")
    return weights if weights is not None else model


@commands.command("info", epilog="""Examples:

  ccvae info                                (the shipped default model)

  ccvae info runs/00003-celeba-sup0.06      (a run folder: its model.safetensors)

  ccvae info -m my.safetensors --json | jq .metrics
""")
def info_cmd(
    weights: Optional[str] = typer.Argument(None, help="Weights file (or --model; default as --model).",
                                            metavar="[WEIGHTS]", show_default=False),
    model: Optional[str] = model_option(),
    device: Optional[str] = device_option(hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print the card as one JSON object on stdout."),
) -> None:
    """Show the model card: labels, sizes, preprocessing, data, training, metrics (no torch needed)."""
    path = cli_io.resolve_model_path(_weights_arg(weights, model), "WEIGHTS" if weights else "--model")
    card = model_card(path)
    if as_json:
        cli_io.emit_json(card)
    else:
        sys.stdout.write(render_card(card) + "\n")


@commands.command("labels", epilog="""Examples:

  ccvae labels

  ccvae labels -m runs/00003-celeba-sup0.06/model.safetensors

  for l in $(ccvae labels); do ccvae traverse face.png --label "$l"; done
""")
def labels_cmd(
    model: Optional[str] = model_option(),
    device: Optional[str] = device_option(hidden=True),
) -> None:
    """Print the model's label names, one per line (no torch needed)."""
    _, meta = cli_io.read_model_metadata(model)
    names = cli_io.label_names_of(meta)
    sys.stdout.write("".join(n + "\n" for n in names))


# ----------------------------------------------------------------------------------------------
# classify
# ----------------------------------------------------------------------------------------------

def _input_tensor(m, batch):
    """uint8 images -> float [0, 1] on the model's device, channels-last on the CPU (faster convolutions)."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.stack(batch))
    if m.device.type == "cpu":
        enc = m.model.encoder
        if not getattr(enc, "_ccvae_channels_last", False):
            enc.to(memory_format=torch.channels_last)
            enc._ccvae_channels_last = True
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(m.device).float().div_(255.0)


def _probabilities(m, batch, draws: int, seed: int):
    """q(y_i|x) for a list of uint8 images: (B, L, K_max) numpy.

    With draws > 0 every image uses the same K noise vectors (seeded), so an image's result does
    not depend on the batch it is in or its position.
    """
    import torch

    x = _input_tensor(m, batch)
    with torch.inference_mode():
        mu, sigma = m.model.encode(x)
        mu_c, _ = m.model.split(mu)
        if draws <= 0:
            p = m.model.log_q_y(mu_c).exp()
        else:
            sig_c, _ = m.model.split(sigma)
            g = torch.Generator(device="cpu").manual_seed(seed)
            eps = torch.randn((draws, 1, mu_c.shape[-1]), generator=g).to(mu_c.device)
            p = m.model.log_q_y(mu_c.unsqueeze(0) + sig_c.unsqueeze(0) * eps).exp().mean(0)
    return p.float().cpu().numpy()


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

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("input", overflow="fold")
    for lab in labels:
        table.add_column(Text(f"P({lab.name})" if lab.num_classes == 2 else lab.name), justify="right")
    for r in results:
        cells: list[Any] = [Text(r["input"])]          # file names are not rich markup
        for lab in labels:
            v = r["probabilities"][lab.name]
            if isinstance(v, dict):
                c = r["predicted"][lab.name]
                cells.append(f"{c} {v[c]:.3f}")
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
    draws: int = typer.Option(100, "--draws", min=1, max=100_000,
                              help="K: codes drawn from q(z|x) to estimate q(y|x)."),
    mean: bool = typer.Option(False, "--mean", help="Use the posterior mean code only (faster)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the draws (the output is deterministic)."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, max=65536, help="Images per model batch."),
) -> None:
    """Per-label probabilities q(y_i | x) for each image: a table, or JSON lines with --json."""
    cli_io.check_input_paths(images)
    m = cli_io.open_model(model, device)
    labels = m.labels
    k = 0 if mean else draws
    results: list[dict] = []
    with _progress("classify", len(images)) as advance:
        for batch in cli_io.iter_inputs(images, m.preprocess, batch_size=batch_size):
            probs = _probabilities(m, [a for _, a in batch], k, seed)
            for (name, _), p in zip(batch, probs):
                r = _result(name, p, labels)
                if as_json:
                    cli_io.emit_json(r)
                else:
                    results.append(r)
            advance(len(batch))
    if not as_json:
        _stdout_console().print(_table(results, labels))


# ----------------------------------------------------------------------------------------------
# reconstruct
# ----------------------------------------------------------------------------------------------

def _reconstruct_targets(images: list[str], out: Optional[str], fmt: Optional[str]) -> list[str]:
    """The output of each input, checked before any work (folders exist, names distinct)."""
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
    seen: dict[str, str] = {}
    for src, t in zip(images, targets):
        key = os.path.normcase(os.path.abspath(t))
        if key in seen:
            raise UsageError(f"{seen[key]} and {src} would both be written to {t}; "
                             f"give the inputs different names or process them separately")
        seen[key] = src
        cli_io.check_output_path(t)
    return targets


@commands.command("reconstruct", epilog="""Examples:

  ccvae reconstruct face.png                 (writes face.recon.png, prints its path)

  ccvae reconstruct face.png -o recon.jpg

  ccvae reconstruct photos/*.jpg -o recons/  (the folder must exist)

  cat face.png | ccvae reconstruct - -o - > recon.png

  ccvae reconstruct face.png --sample --seed 3 -o sample3.png
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
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of --sample."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, max=65536, help="Images per model batch."),
) -> None:
    """Encode each image (posterior mean, or a draw with --sample) and decode it."""
    from ccvae_tools.data.images import to_pil

    cli_io.check_input_paths(images)
    targets = _reconstruct_targets(list(images), out, fmt)
    m = cli_io.open_model(model, device)
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    done = 0
    with _progress("reconstruct", len(images)) as advance:
        for batch in cli_io.iter_inputs(images, m.preprocess, batch_size=batch_size):
            x = _input_tensor(m, [a for _, a in batch])
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
                    sys.stdout.write(f"{written}\n")
                    sys.stdout.flush()
                done += 1
            advance(len(batch))
