"""`ccvae train`: the command over `ccvae_tools.training`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ccvae_tools.cli.params import Commands, split_list

commands = Commands()
register = commands.register


@commands.command("train", epilog="""Examples:

  ccvae train ~/data/celeba --preset paper --sup-frac 0.06

  ccvae data avatars data/avatars --n 20000 && ccvae train data/avatars --preset avatars

  ccvae train labels.csv --labels smiling,glasses --epochs 30 --image-size 64

  ccvae train data/avatars --init-from weights/avatars64.safetensors --epochs 3   (fine-tune)

  ccvae train --resume auto            (continue the newest interrupted run under runs/)

  torchrun --nproc-per-node 4 -m ccvae_tools train ~/data/celeba --preset paper --device cuda
""")
def train_cmd(
    data: Optional[Path] = typer.Argument(None, help="Data folder or CSV (not needed with --resume)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="auto | celeba | chexpert | folder"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated label names (default: all, "
                                         "or the paper's 18 on CelebA)."),
    sup_frac: Optional[float] = typer.Option(None, "--sup-frac", help="Labelled fraction of the train split."),
    sup_select: Optional[str] = typer.Option(None, "--sup-select",
                                             help="first (the paper: the first fraction) | random (seeded)"),
    sup_oversample: Optional[float] = typer.Option(None, "--sup-oversample",
                                                   help="Times each labelled image is seen per epoch (1: paper)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (all GPUs together)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate."),
    z_style: Optional[int] = typer.Option(None, "--z-style", help="Style latent size d_s."),
    label_dim: Optional[int] = typer.Option(None, "--label-dim", help="Latent size d_i of each label's block."),
    widths: Optional[str] = typer.Option(None, "--widths", help="Channels of the encoder's stride-2 "
                                         "convolutions (the decoder mirrors them), e.g. 64,64,64,128 at 64 px "
                                         "(default: the paper's 32,32,64,128)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="32, 64 or 128."),
    crop: Optional[str] = typer.Option(None, "--crop", help="auto | center | squash | N (centre crop size)"),
    uncertain: Optional[str] = typer.Option(None, "--uncertain", help="CheXpert -1: ignore | ones | zeros"),
    likelihood_scale: Optional[float] = typer.Option(None, "--likelihood-scale", help="Laplace scale b of p(x|z)."),
    draws: Optional[int] = typer.Option(None, "--draws", help="K: draws for q^(y|x) (default 100)."),
    classifier_weight: Optional[float] = typer.Option(
        None, "--classifier-weight", help="alpha: extra weight on log q^(y|x) in the loss (default 100; "
        "0 = the paper's objective, as --preset paper)."),
    style_adversary: Optional[float] = typer.Option(
        None, "--style-adversary", help="lambda: train z_s to hide the labels from an adversary that reads "
        "them from z_s (ours; default 0 = off)."),
    style_decorrelate: Optional[float] = typer.Option(
        None, "--style-decorrelate", help="lambda: penalise the share of each label that a linear read-out of "
        "z_s explains in the batch (R^2; ours; default 0 = off)."),
    kl_warmup: Optional[float] = typer.Option(
        None, "--kl-warmup", help="Epochs over which the latent cost of the loss rises from 0 to 1 (ours; "
        "default 0 = off)."),
    swap_cycle: Optional[float] = typer.Option(
        None, "--swap-cycle", help="gamma: train the decoder to draw the labels of swapped codes, as the "
        "model's own classifier reads them (ours; default 0 = off)."),
    init_from: Optional[str] = typer.Option(
        None, "--init-from", metavar="WEIGHTS", help="Start from a weights file (fine-tuning); the "
        "network's shape and labels come from it."),
    device: Optional[str] = typer.Option(None, "--device", envvar="CCVAE_DEVICE", help="auto | cpu | cuda | mps"),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 | bf16 | fp16 (CUDA)"),
    out: Optional[str] = typer.Option(None, "--out", help="Folder of run folders (default runs)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="RUN folder, or auto: continue it exactly."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of everything random."),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | avatars"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Evaluate every N epochs."),
    preview_every: Optional[int] = typer.Option(None, "--preview-every", help="Preview images every N epochs."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N steps in total."),
    checkpoint_minutes: Optional[float] = typer.Option(None, "--checkpoint-minutes",
                                                       help="Checkpoint every N minutes too (0: every step)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for decoding the cache."),
    on_bad: Optional[str] = typer.Option(None, "--on-bad", help="Unreadable images: skip | fail"),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Where to keep the decoded cache."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Resolve and write the options, then stop."),
) -> None:
    """Train a CCVAE on a data folder; writes a numbered run folder with model.safetensors."""
    from ccvae_tools.util.errors import UsageError
    from ccvae_tools.training.loop import resolve_options, train

    if data is None and resume is None:
        raise UsageError("give a DATA folder to train on, or --resume RUN|auto")
    explicit = dict(data=str(data) if data is not None else None, format=fmt, labels=split_list(labels),
                    sup_frac=sup_frac, sup_select=sup_select, sup_oversample=sup_oversample, epochs=epochs,
                    batch_size=batch_size, lr=lr, z_style=z_style, label_dim=label_dim, widths=widths, image_size=image_size,
                    crop=crop, uncertain=uncertain, likelihood_scale=likelihood_scale, draws=draws,
                    classifier_weight=classifier_weight, style_adversary=style_adversary,
                    style_decorrelate=style_decorrelate,
                    kl_warmup=kl_warmup, swap_cycle=swap_cycle, init_from=init_from,
                    device=device, precision=precision, out=out, seed=seed, preset=preset,
                    eval_every=eval_every, preview_every=preview_every, max_steps=max_steps,
                    checkpoint_minutes=checkpoint_minutes,
                    workers=workers, on_bad=on_bad, cache_dir=cache_dir)
    opts = resolve_options(explicit)
    given = {k: v for k, v in explicit.items() if v is not None and k != "data"}
    run = train(opts, resume=resume, dry_run=dry_run, overrides=given)
    if run is not None:
        print(run)
