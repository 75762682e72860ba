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
