"""Preview pictures written during training: originals, reconstructions and label traversals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ccvae_tools.interventions import traverse
from ccvae_tools.util.atomic import atomic_write


def write_preview(model, batches, idx: np.ndarray, path: Path, max_labels: int = 8) -> None:
    """A PNG: originals and reconstructions, then one traversal row per label for the first image."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x, _, _ = batches.get(idx[:8])
        mu, _ = model.encode(x)
        rows = [x, model.decode(mu).float()]
        steps = x.shape[0]
        for i in range(min(max_labels, len(model.cfg.labels))):
            rows.append(model.decode(traverse(model, mu[:1], i, steps=steps)[0]).float())
    model.train(was_training)
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)   # C, rows*H, steps*W
    arr = (grid.clamp(0, 1) * 255).round().byte().cpu().numpy()
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    atomic_write(path, lambda f: img.save(f, format="PNG"))
