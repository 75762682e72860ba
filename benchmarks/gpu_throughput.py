"""Training-step throughput on one device, for benchmarks/gpu_check.sh (and its CPU dry run).

    python benchmarks/gpu_throughput.py --device cuda              # the GPU table
    python benchmarks/gpu_throughput.py --device cpu --dry-run     # every code path, tiny, on the CPU

Times `ccvae train`'s step (our objective, Adam, fp16 with the scaler where asked) on the paper
network (64 px, z = 18 + 27, K = 100 draws) with the batch already on the device, for each batch
size x precision x compile mode, and projects the paper's protocol (200 epochs of 162,770 CelebA
train images) from the step rate alone (no data loading, evaluation or checkpoints).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccvae_tools.data.base import Label  # noqa: E402
from ccvae_tools.model.network import CCVAE, ModelConfig  # noqa: E402
from ccvae_tools.objective.bound import training_loss  # noqa: E402
from ccvae_tools.util.adam import Adam  # noqa: E402
from ccvae_tools.util.device import channels_last  # noqa: E402

PAPER_IMAGES, PAPER_EPOCHS = 162_770, 200


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(device: torch.device, batch: int, precision: str, compile_mode: str, labelled_share: float = 0.5):
    """A closure doing one `ccvae train` step of `batch` images at `precision` (fp32 | bf16 | fp16):
    our objective with alpha = 100, our Adam, the model in the layout training uses; a
    `labelled_share` of the (image, label) cells observed."""
    torch.manual_seed(0)
    model = CCVAE(ModelConfig(image_size=64, labels=[Label(f"l{i}") for i in range(18)], z_style=27)).to(device)
    x = torch.rand(batch, 3, 64, 64, device=device)
    if channels_last(device):
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, 18), device=device)
    observed = torch.rand(batch, 18, device=device) < labelled_share
    net = torch.compile(model, mode=compile_mode) if compile_mode != "off" else model
    opt = Adam(model.parameters(), lr=1e-4)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            terms = net(x, y, observed, 100)
        loss = training_loss(terms, classifier_weight=100.0)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    return step


def time_step(step, batch: int, device: torch.device, warmup: int, steps: int) -> tuple[float, float]:
    """(images/s: `batch` over the median of `steps` timed calls of `step`, seconds the `warmup`
    calls took, compiling included)."""
    t = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warm = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times), warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default=None, help="batch sizes, comma-separated (default 200,1024; dry run 4,8)")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--compile", default="off,reduce-overhead",
                    help="compile modes, comma-separated: off, default, reduce-overhead (CUDA graphs), max-autotune")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dry-run", action="store_true", help="tiny batches and few steps (checks the code paths)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.dry_run:
        args.steps, args.warmup = 2, 1
    args.batches = args.batches or ("4,8" if args.dry_run else "200,1024")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}; torch {torch.__version__}")
    print("| batch | precision | compile | images/s | warm-up s | paper protocol, step only (hours) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for batch in (int(b) for b in args.batches.split(",")):
        for precision in args.precisions.split(","):
            for mode in args.compile.split(","):
                step = make_step(device, batch, precision, mode)
                rate, warm = time_step(step, batch, device, args.warmup, args.steps)
                hours = PAPER_EPOCHS * PAPER_IMAGES / rate / 3600
                print(f"| {batch} | {precision} | {mode} | {rate:,.0f} | {warm:.1f} | {hours:,.1f} |", flush=True)


if __name__ == "__main__":
    main()
