"""The style adversary (ours): r(y | z_s) learns from detached codes, the penalty moves only the
encoder, is smallest when z_s tells r nothing, and a run with it resumes exactly."""

from __future__ import annotations

import json
import math

import torch
from safetensors.torch import load_file

from ccvae_tools.objective.adversary import StyleAdversary, adversary_loss, style_penalty
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.data.base import Label
from helpers.options import opts_for
from ccvae_tools.training.loop import train


def _mask(*classes: int) -> torch.Tensor:
    m = torch.zeros(len(classes), max(classes), dtype=torch.bool)
    for i, k in enumerate(classes):
        m[i, :k] = True
    return m


def test_adversary_loss_trains_r_only_and_penalty_moves_z_s_only():
    torch.manual_seed(0)
    adv = StyleAdversary(5, _mask(2, 3), hidden=16)
    z_s = torch.randn(8, 5, requires_grad=True)
    y = torch.tensor([[0, 2]] * 4 + [[1, 0]] * 4)
    observed = torch.ones(8, 2, dtype=torch.bool)
    adversary_loss(adv, z_s, y, observed).backward()
    assert z_s.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adv.parameters())
    adv.zero_grad(set_to_none=True)
    log_pi = torch.log(torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]))
    style_penalty(adv, z_s, log_pi, observed).backward()
    assert z_s.grad is not None and z_s.grad.abs().sum() > 0
    assert all(p.grad is None for p in adv.parameters())
    # the padded third class of the binary label never takes probability
    assert torch.isinf(adv(z_s)[:, 0, 2]).all()


def test_penalty_is_smallest_when_r_returns_the_label_prior():
    pi = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.3, 0.5]])
    log_pi = torch.log(pi)
    adv = StyleAdversary(4, _mask(2, 3), hidden=8)
    last = adv.net[-1]
    with torch.no_grad():                                  # r(.|z_s) = pi for every z_s
        last.weight.zero_()
        last.bias.copy_(torch.where(pi > 0, log_pi, torch.zeros_like(pi)).flatten())
    z_s = torch.randn(6, 4, requires_grad=True)
    observed = torch.tensor([[True, True]] * 3 + [[True, False]] * 3)
    pen = style_penalty(adv, z_s, log_pi, observed)
    entropy = [-(p[p > 0] * p[p > 0].log()).sum().item() for p in pi]
    assert math.isclose(pen.item(), entropy[0] + 0.5 * entropy[1], rel_tol=1e-5)
    with torch.no_grad():                                  # any other answer costs more
        last.bias.add_(torch.tensor([1.0, -1.0, 0.0, 0.5, 0.0, -0.5]))
    assert style_penalty(adv, z_s, log_pi, observed).item() > pen.item()
    # unobserved labels add nothing
    none = torch.zeros_like(observed)
    assert style_penalty(adv, z_s, log_pi, none).item() == 0.0
    assert adversary_loss(adv, z_s, torch.zeros(6, 2, dtype=torch.long), none).item() == 0.0


def test_bound_terms_carry_the_style_mean():
    cfg = ModelConfig(image_size=32, channels=3, labels=[Label("a", ("0", "1"))], label_dims=[1], z_style=6)
    model = CCVAE(cfg)
    x = torch.rand(2, 3, 32, 32)
    terms = model(x, torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.bool), 4)
    assert torch.equal(terms.mu_s, model.split(model.encode(x)[0])[1])


def test_run_with_the_adversary_resumes_exactly(avatar_dir_200, tmp_path):
    full = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0, style_adversary=10.0))
    part = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0, style_adversary=10.0, max_steps=6))
    resumed = train(opts_for(avatar_dir_200, tmp_path), resume=str(part), overrides={"max_steps": 0})
    a = load_file(full / "model.safetensors")
    b = load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(s) for s in (full / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(ln["adversary_loss"]) and ln["adversary_loss"] > 0 for ln in lines)
    base = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0))
    c = load_file(base / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)     # the penalty changed the training
    assert not any(k.startswith("adversary") or k.startswith("net.") for k in a)   # not in the weights
