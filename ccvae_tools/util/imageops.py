"""Small image operations on tensors, shared by the objective, the judge, training and the baseline."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def mild_blur(x: torch.Tensor) -> torch.Tensor:
    """A mild 3x3 binomial blur per channel (the kind of softness a VAE decoder adds)."""
    k1 = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    k = (k1[:, None] * k1[None, :]) / 16.0
    c = x.shape[1]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)


def shift_images(x: torch.Tensor, which: torch.Tensor, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """x with each row where `which` (B,) is true moved by a random whole-pixel offset in
    [-max_shift, max_shift] along each axis, the edge pixels repeated into the gap; the other rows
    as they are. The offsets come from `rng` (numpy, seeded by the caller), so that they are the same
    on any device and a resumed run draws the same ones."""
    rows = which.nonzero().squeeze(-1).tolist()
    if max_shift <= 0 or not rows:
        return x
    m, (h, w) = max_shift, x.shape[-2:]
    offsets = rng.integers(-m, m + 1, size=(len(rows), 2))
    padded = F.pad(x[rows], (m, m, m, m), mode="replicate")
    out = x.clone()
    for j, (row, (dy, dx)) in enumerate(zip(rows, offsets.tolist())):
        out[row] = padded[j, :, m + dy: m + dy + h, m + dx: m + dx + w]
    return out
