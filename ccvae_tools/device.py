"""The compute device: --device auto|cpu|cuda|cuda:N|mps, checked against what this machine has."""

from __future__ import annotations

from ccvae_tools.errors import UsageError


def pick_device(name: str = "auto"):
    """auto picks CUDA, then MPS, then the CPU; an unavailable choice is a UsageError."""
    import torch

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
