"""Tiny training options: a 32 px model that trains on the generated fixtures in seconds."""

from __future__ import annotations

from pathlib import Path

from ccvae_tools.training.options import TrainOptions, resolve_options

TINY = dict(image_size=32, epochs=2, batch_size=32, draws=8, lr=1e-3, z_style=4, preview_every=1,
            workers=1, device="cpu")


def opts_for(data: Path, tmp: Path, **kw) -> TrainOptions:
    """TINY options on `data`, with the run folders and the cache under `tmp`; `kw` overrides."""
    return resolve_options({**TINY, "data": str(data), "out": str(tmp / "runs"),
                            "cache_dir": str(tmp / "cache"), **kw})
