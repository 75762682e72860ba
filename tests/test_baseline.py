"""The supervised-only baseline trains the encoder and classifier on the labelled images alone."""

from __future__ import annotations

import numpy as np
import torch

from ccvae_tools.data.base import TRAIN, VALID
from ccvae_tools.data.cache import load_decoded
from ccvae_tools.data.readers import open_catalog
from ccvae_tools.evaluation import baseline
from ccvae_tools.model.network import CCVAE, ModelConfig


def test_baseline_learns_from_labelled_images_only(avatar_dir_200, tmp_path):
    data = load_decoded(open_catalog(avatar_dir_200, size=32), cache_dir=tmp_path / "cache", workers=1)
    train_idx = data.indices(TRAIN)
    labelled = train_idx[:40]
    labels = np.full_like(data.labels, np.nan)
    labels[labelled] = data.labels[labelled]                  # only these may be seen
    cfg = ModelConfig(image_size=32, channels=3, labels=list(data.label_info), z_style=4, widths=(8, 8, 16),
                      hidden=32)
    torch.manual_seed(0)
    fresh = CCVAE(cfg)
    x = baseline._images(data, labelled)
    with torch.no_grad():
        before = float(baseline._classifier_loss(fresh, x, labels[labelled]))
    model = baseline.train_supervised(cfg, data, labels, labelled, steps=100, batch_size=20, lr=3e-3)
    with torch.no_grad():
        after = float(baseline._classifier_loss(model, x, labels[labelled]))
    assert after < 0.7 * before
    assert all(torch.equal(a, b) for a, b in zip(fresh.decoder.parameters(), model.decoder.parameters()))
    metrics = baseline.baseline_metrics(model, data, data.indices(VALID), train_idx)
    assert set(metrics["accuracy"]) == {lab.name for lab in data.label_info}
    assert 0.0 <= metrics["mean_accuracy"] <= 1.0


def test_images_keep_the_order_asked_for(avatar_dir_200, tmp_path):
    data = load_decoded(open_catalog(avatar_dir_200, size=32), cache_dir=tmp_path / "cache", workers=1)
    idx = np.array([5, 1, 9, 1])
    got = baseline._images(data, idx)
    want = torch.from_numpy(np.array(data.images[[5, 1, 9, 1]])).float() / 255
    assert torch.equal(got, want)
