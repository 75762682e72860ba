"""The compute device: --device auto|cpu|cuda|cuda:N|mps, checked against what this machine has."""

from __future__ import annotations

import os
import re

from ccvae_tools.util.errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_ENV = "CCVAE_DEVICE"


def check_device_name(option: str | None) -> str:
    """--device, else $CCVAE_DEVICE, else auto, lower-cased; one of DEVICE_CHOICES or cuda:N.
    Only the name is checked here (no torch); pick_device checks that the machine has it."""
    name = (option or os.environ.get(DEVICE_ENV, "") or "auto").strip().lower()
    if name in DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", name):
        return name
    raise UsageError(f"--device {name!r}: unknown device; use one of {', '.join(DEVICE_CHOICES)}")


def pick_device(name: str = "auto"):
    """auto picks CUDA, then MPS, then the CPU; an unavailable choice is a UsageError."""
    import torch

    name = check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: MPS is not available here (use --device cpu or auto)")
    return torch.device(name)


def channels_last(device) -> bool:
    """Whether convolutions run in the channels-last layout on `device`: on the CPU, where oneDNN's
    convolutions are faster that way (the paper network's training step 1.17x on a 2-core AVX2 CPU,
    docs/experiments.md "Training throughput"); elsewhere the plain layout until a GPU measures
    otherwise. The layout changes no value beyond the last bits of a sum's rounding."""
    return getattr(device, "type", str(device)) == "cpu"


def native_bf16() -> bool:
    """Whether this CPU has the bf16 instructions (AVX-512 BF16 or AMX) that oneDNN uses; without
    them bf16 autocast is emulated: 43 images/s against fp32's 369 for the paper network's step on a
    2-core AVX2 CPU (benchmarks/train_throughput.py)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
