"""A tiny CCVAE weights file for command tests (no training needed: it is made in a second)."""

from __future__ import annotations

from pathlib import Path

import torch

from ccvae_tools.data.base import Label, Preprocess
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.model.weights import build_metadata, save_model

LABELS = [Label("Smiling"), Label("Eyeglasses"), Label("Blond_Hair")]


def make_tiny_weights(path: Path, channels: int = 3, size: int = 32, seed: int = 0) -> Path:
    """Random-init 32 px model with 3 binary labels; label 1 (Eyeglasses) gets a wide prior range."""
    torch.manual_seed(seed)
    cfg = ModelConfig(image_size=size, channels=channels, labels=LABELS, z_style=4,
                      widths=(8, 8, 8) if size == 32 else (), hidden=16)
    m = CCVAE(cfg)
    with torch.no_grad():
        m.prior_loc[1, 0, 0] = -6.0
        m.prior_loc[1, 1, 0] = 6.0
        m.prior_raw_scale[1] = 2.0
        m.decoder.fc.weight.mul_(10.0)   # codes and pictures that visibly differ, as in a trained model
        m.encoder.loc.weight.mul_(50.0)
    m.set_label_prior(torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    meta = build_metadata(m, Preprocess(size, channels, "center", None), data={"name": "tiny"},
                          train={"epochs": 0}, title="tiny test model")
    return save_model(m, path, meta)
