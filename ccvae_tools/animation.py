"""Traversal loops as animation frames: the pictures of `ccvae gif`, `ccvae traverse -o x.gif` and the
studio's GIF download, made in one place.

    pictures, durations = traversal_loop(m, z, [label] * len(z), frames=48, fps=15, scale=2)
    data = render.encode(pictures, "GIF", durations)
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ccvae_tools import render
from ccvae_tools.interventions import loop_path, ping_pong_holds

HOLD_MS = 400        # extra time on the two ends of the walk, so that a viewer sees where it turns


def traversal_loop(m: Any, z: torch.Tensor, label_per_tile: list[int], frames: int, fps: int, span: float = 2.0,
                   scale: int = 2, resample: str = "nearest", titles: Optional[list[str]] = None,
                   probability: bool = False, columns: int = 0) -> tuple[list, list[int]]:
    """Frames and their durations (ms): one tile per (code z[t], label label_per_tile[t]), each looping
    from its own code through the label's walk and back (`loop_path`), all tiles in step.

    `m` is a `LoadedModel`; with `titles` each tile is captioned, and with `probability` it also shows
    q(label | frame's code) under the tile.
    """
    model = m.model
    paths = torch.stack([loop_path(model, z[t], i, frames, span) for t, i in enumerate(label_per_tile)])
    flat = paths.reshape(-1, z.shape[1])
    decoded = m.decode(flat)
    decoded = decoded.reshape(len(label_per_tile), frames, *decoded.shape[1:])
    probs = m.classify_codes(flat).reshape(len(label_per_tile), frames, -1, model.kmax).cpu() \
        if probability else None
    cols = columns or len(label_per_tile)
    pictures = []
    for f in range(frames):
        tiles = []
        for t, i in enumerate(label_per_tile):
            if titles is None:
                tiles.append(render.tile_image(decoded[t, f], scale, resample))
                continue
            note = _probability_note(model.cfg.labels[i], probs[t, f, i]) if probs is not None else None
            tiles.append(render.captioned(decoded[t, f], titles[t], note, scale, resample))
        pictures.append(render.mosaic(tiles, cols))
    step = round(1000 / fps)
    durations = [step] * frames
    for h in ping_pong_holds(frames):
        durations[h] = step + HOLD_MS
    return pictures, durations


def _probability_note(label: Any, p: torch.Tensor) -> str:
    """'p=0.93' for a binary label, else its likeliest class and that class's probability."""
    if label.num_classes == 2:
        return f"p={float(p[1]):.2f}"
    return f"{label.classes[int(p[: label.num_classes].argmax())]} {float(p.max()):.2f}"
