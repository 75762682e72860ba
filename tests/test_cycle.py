"""The swap cycle (ours): its value, where its gradients go, and training with it; --init-from."""

from __future__ import annotations

import json

import pytest
import torch

from ccvae_tools.objective.cycle import swap_cycle_loss
from ccvae_tools.data.base import Label
from ccvae_tools.util.errors import UsageError
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.training.loop import train
from ccvae_tools.model.weights import load_model

from helpers.options import opts_for


def tiny_model() -> CCVAE:
    torch.manual_seed(0)
    return CCVAE(ModelConfig(image_size=32, labels=[Label("a"), Label("b"), Label("c", ["x", "y", "z"])],
                             z_style=3, widths=(4, 4, 8), hidden=16))


def test_swap_cycle_is_the_classifier_loss_of_the_decoded_swap():
    model = tiny_model()
    mu = torch.randn(5, model.cfg.z_dim)
    y = torch.tensor([[0, 1, 2], [1, 0, 0], [1, 1, 1], [0, 0, 2], [1, 0, 1]])
    observed = torch.ones(5, 3, dtype=torch.bool)
    observed[1, 2] = False                       # the donor of example 0 (perm[0] = 1) misses label c
    perm = torch.tensor([1, 2, 3, 4, 0])
    mu_c, mu_s = model.split(mu)
    loss = swap_cycle_loss(model, mu_c, mu_s, y, observed, perm, blur=False)
    # by hand: decode (donor's z_c, own z_s), encode, score the donor's observed labels
    x = model.decode(torch.cat([mu_c[perm], mu_s], -1))
    log_q = model.log_q_y(model.split(model.encode(x)[0])[0])
    per = log_q.gather(-1, y[perm].unsqueeze(-1)).squeeze(-1)
    expected = -(per * observed[perm]).sum(-1).mean()
    assert torch.allclose(loss, expected, atol=1e-5)


def test_swap_cycle_trains_the_decoder_only():
    model = tiny_model()
    mu = torch.randn(4, model.cfg.z_dim, requires_grad=True)
    y = torch.randint(0, 2, (4, 3))
    mu_c, mu_s = model.split(mu)
    swap_cycle_loss(model, mu_c, mu_s, y, torch.ones(4, 3, dtype=torch.bool), torch.tensor([3, 2, 1, 0])).backward()
    assert mu.grad is None                                                     # codes detached
    assert all(p.grad is None for p in model.encoder.parameters())            # encoder frozen
    assert model.cls_weight.grad is None and model.cls_bias.grad is None      # classifier frozen
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_training_with_the_swap_cycle_logs_it(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, swap_cycle=1.0, epochs=1, preview_every=0))
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["swap_cycle_loss"] > 0
    with pytest.raises(UsageError, match="swap-cycle"):
        opts_for(avatar_dir_200, tmp_path, swap_cycle=-1.0)


def test_init_from_starts_from_the_weights_and_takes_their_shape(avatar_dir_200, tmp_path):
    first = train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0, widths="8,8,16"))
    start, _ = load_model(first / "model.safetensors")
    tuned = train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0, lr=1e-12,
                           init_from=str(first / "model.safetensors")))
    model, meta = load_model(tuned / "model.safetensors")
    assert tuple(model.cfg.widths) == (8, 8, 16)                      # the shape came from the file
    for (name, a), b in zip(start.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name                  # lr ~ 0: the weights are the start
    assert meta["ccvae.train"]["options"]["init_from"] == "model.safetensors"   # the name: no folders travel
    with pytest.raises(UsageError, match="trained on the labels"):
        train(opts_for(avatar_dir_200, tmp_path, epochs=1, labels=["Smiling"],
                       init_from=str(first / "model.safetensors")))
    with pytest.raises(UsageError, match="no such weights file"):
        train(opts_for(avatar_dir_200, tmp_path, init_from=str(tmp_path / "nope.safetensors")))
