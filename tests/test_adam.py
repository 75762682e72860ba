"""util/adam.Adam: the same numbers as torch.optim.Adam, state_dicts that load into each other, and
no torch._dynamo import in a training process."""

import subprocess
import sys

import torch
from torch import nn

from ccvae_tools.util.adam import Adam


def _net(channels_last: bool = False) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _steps(net, opt, n: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(5, 3, 8, 8, generator=g)
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_same_numbers_as_torch_adam_bit_for_bit():
    for channels_last in (False, True):
        ours, theirs = _net(channels_last), _net(channels_last)
        _steps(ours, Adam(ours.parameters(), lr=3e-3), 25)
        _steps(theirs, torch.optim.Adam(theirs.parameters(), lr=3e-3), 25)
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b)


def test_state_dicts_load_into_each_other_and_continue_identically():
    ours, theirs = _net(), _net()
    opt_a, opt_b = Adam(ours.parameters(), lr=1e-3), torch.optim.Adam(theirs.parameters(), lr=1e-3)
    _steps(ours, opt_a, 5)
    _steps(theirs, opt_b, 5)
    sd_a, sd_b = opt_a.state_dict(), opt_b.state_dict()
    assert sd_a["param_groups"] == sd_b["param_groups"]
    assert sd_a["state"].keys() == sd_b["state"].keys()
    # swap: torch's state into ours and ours into torch's, then 5 more steps each
    opt_a2, opt_b2 = Adam(ours.parameters(), lr=1e-3), torch.optim.Adam(theirs.parameters(), lr=1e-3)
    opt_a2.load_state_dict(sd_b)
    opt_b2.load_state_dict(sd_a)
    _steps(ours, opt_a2, 5, seed=2)
    _steps(theirs, opt_b2, 5, seed=2)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_a_state_for_other_parameters_is_refused():
    opt = Adam(_net().parameters())
    other = Adam(nn.Linear(2, 2).parameters())
    try:
        opt.load_state_dict(other.state_dict())
    except ValueError as e:
        assert "different set of parameters" in str(e)
    else:
        raise AssertionError("expected ValueError")


def test_training_never_imports_dynamo(tmp_path):
    """The point of the class: a training step (with the style adversary's optimiser too) does
    not pull in torch._dynamo (2.5 s of start-up on a 2-core CPU)."""
    code = (
        "import sys, torch\n"
        "from ccvae_tools.data.base import Label\n"
        "from ccvae_tools.model.network import CCVAE, ModelConfig\n"
        "from ccvae_tools.objective.adversary import StyleAdversaryTerm\n"
        "from ccvae_tools.objective.bound import ccvae_loss\n"
        "from ccvae_tools.util.adam import Adam\n"
        "m = CCVAE(ModelConfig(image_size=32, labels=[Label('a')], z_style=4))\n"
        "opt = Adam(m.parameters())\n"
        "adv = StyleAdversaryTerm(1.0, m)\n"
        "x = torch.rand(4, 3, 32, 32); y = torch.zeros(4, 1, dtype=torch.long); obs = torch.ones(4, 1, dtype=torch.bool)\n"
        "loss, terms = ccvae_loss(m, x, y, obs, draws=3)\n"
        "loss = loss + adv.loss(x, terms, y, obs, lambda: torch.autocast('cpu', enabled=False))\n"
        "opt.zero_grad(); loss.backward(); opt.step(); adv.after_step()\n"
        "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
