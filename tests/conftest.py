"""Shared fixtures: small generated avatar sets in the CelebA layout (made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def avatar_celeba_dir(tmp_path_factory) -> Path:
    """20 avatars, 32 x 32 px, seed 0, in the CelebA layout (with avatars.csv and avatars.json)."""
    from ccvae_tools.data.avatars import generate_avatars

    return generate_avatars(tmp_path_factory.mktemp("avatars") / "set20", n=20, seed=0, size=32,
                            workers=1)


@pytest.fixture(scope="session")
def avatar_dir_200(tmp_path_factory) -> Path:
    """200 avatars, 32 x 32 px, seed 0 (made only when a test asks for it: about a second)."""
    from ccvae_tools.data.avatars import generate_avatars

    return generate_avatars(tmp_path_factory.mktemp("avatars") / "set200", n=200, seed=0, size=32,
                            workers=1)


@pytest.fixture()
def clean_env(monkeypatch):
    """No CCVAE_DEBUG or CCVAE_MODEL from the caller's shell, and the CPU (for `usefixtures`)."""
    monkeypatch.delenv("CCVAE_DEBUG", raising=False)
    monkeypatch.delenv("CCVAE_MODEL", raising=False)
    monkeypatch.setenv("CCVAE_DEVICE", "cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny weights file (`helpers.tiny_model.make_tiny_weights`: 3 labels, 32 px RGB)."""
    from helpers.tiny_model import make_tiny_weights

    return make_tiny_weights(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> Path:
    """A 40 x 40 RGB noise image as a PNG file."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    return path
