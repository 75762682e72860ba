"""The report's pictures, made with the interventions and `render` as the commands make them:
traversal strips (`ccvae traverse FACES --label L`), samples per class (`ccvae sample --set L=k`),
a swap grid (`ccvae swap FACES --grid`) and one sheet of every label's walk (the summary PNG).

`m` is a loaded model (`model/api.LoadedModel`); faces are uint8 images (N, C, H, W) at the model's
size: some of DATA's held-out images or shipped examples, else images the model draws itself
(`faces_or_draws`), so that a weights file alone still gets every picture. Every draw is seeded.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ccvae_tools import render
from ccvae_tools.interventions import conditional_sample, swap, traverse
from ccvae_tools.util.text import safe_text

TRAVERSAL_FACES = 3          # rows of each label's traversal strip
SWAP_FACES = 4               # images of the swap grid
PER_CLASS = 6                # samples of each class of each label
MIN_TILE = 64                # tiles of smaller models are upscaled (nearest) to at least this


def tile_scale(size: int) -> int:
    """The whole upscaling factor that makes a `size` px tile at least MIN_TILE px."""
    return max(1, -(-MIN_TILE // max(1, size)))


def faces_or_draws(m, faces: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """Up to `n` of the faces given, or, with none, `n` images decoded from the model's own prior
    (labels drawn from p(y), z_s from N(0, I)): a shipped weights file comes with no data."""
    if faces is not None and len(faces):
        return np.ascontiguousarray(faces[:n])
    z = conditional_sample(m.model, n, {}, generator=torch.Generator().manual_seed(seed))
    return m.decode(z)


def traversal_strips(m, faces: np.ndarray, steps: int = 9, span: float = 2.0, scale: int = 1
                     ) -> list[tuple[str, Image.Image]]:
    """(label name, picture) per label: one row per face, the face, its reconstruction, then the
    walk along that label's path (the layout of `ccvae traverse`)."""
    z = m.codes(faces)
    recon = m.decode(z)
    out = []
    for i, name in enumerate(m.label_names):
        walk = m.decode(traverse(m.model, z, i, steps, span).reshape(-1, z.shape[1]))
        walk = walk.reshape(len(z), steps, *walk.shape[1:])
        rows = [[faces[b], recon[b], *walk[b]] for b in range(len(z))]
        out.append((name, render.grid(rows, scale=scale)))
    return out


def class_samples(m, per_class: int = PER_CLASS, seed: int = 0, scale: int = 1
                  ) -> list[tuple[str, list[tuple[str, Image.Image]]]]:
    """(label name, [(class name, picture)]) per label: `per_class` conditional samples with the
    label set to each class. Every class of a label uses the same seed, so that the other labels and
    z_s are drawn the same and column j differs between the classes in that label only."""
    out = []
    for i, lab in enumerate(m.labels):
        codes = [conditional_sample(m.model, per_class, {i: k}, generator=torch.Generator().manual_seed(seed + i))
                 for k in range(lab.num_classes)]
        images = m.decode(torch.cat(codes))
        images = images.reshape(lab.num_classes, per_class, *images.shape[1:])
        out.append((lab.name, [(cls, render.grid([list(images[k])], scale=scale))
                               for k, cls in enumerate(lab.classes)]))
    return out


def swap_grid(m, faces: np.ndarray, scale: int = 1) -> Image.Image:
    """Every pair (the layout of `ccvae swap --grid`): the top row and the left column are the faces;
    cell (r, c) is face c's code with every label's z_c taken from face r."""
    z = m.codes(faces)
    n = len(z)
    codes = swap(m.model, z[None, :, :].expand(n, n, -1), z[:, None, :].expand(n, n, -1))
    dec = m.decode(codes.reshape(n * n, -1)).reshape(n, n, *faces.shape[1:])
    blank = np.full_like(faces[0], 255)
    rows = [[blank, *faces]] + [[faces[r], *dec[r]] for r in range(n)]
    return render.grid(rows, scale=scale)


def label_sheet(m, face: np.ndarray, steps: int = 9, span: float = 2.0, scale: int = 1) -> Image.Image:
    """One face's walk along every label, a row each, its label name at the left (names from the
    weights file, made safe and short)."""
    z = m.codes(face[None])
    rows = []
    for i in range(len(m.label_names)):
        rows.append(list(m.decode(traverse(m.model, z, i, steps, span)[0])))
    return render.grid(rows, scale=scale, captions=[safe_text(n, 24) for n in m.label_names])
