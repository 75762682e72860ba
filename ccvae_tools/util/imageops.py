"""Small image operations on tensors, shared by the objective and the judge."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mild_blur(x: torch.Tensor) -> torch.Tensor:
    """A mild 3x3 binomial blur per channel (the kind of softness a VAE decoder adds)."""
    k1 = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    k = (k1[:, None] * k1[None, :]) / 16.0
    c = x.shape[1]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)
