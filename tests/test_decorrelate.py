"""Style decorrelation (ours): the penalty is the R^2 of each label regressed on z_s within the batch,
computed as a least-squares fit would; it ignores scale and unobserved labels, its gradient lowers
it, and `ccvae train --style-decorrelate` uses and logs it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ccvae_tools.objective import decorrelate
from ccvae_tools.objective.decorrelate import decorrelation_penalty, style_label_r2
from ccvae_tools.util.errors import UsageError
from ccvae_tools.training.loop import train
from ccvae_tools.training.options import resolve_options
from ccvae_tools.model.weights import read_metadata
from helpers.options import opts_for


def _ols_r2(z: np.ndarray, t: np.ndarray) -> float:
    """R^2 of t on z (with an intercept) from a least-squares fit: 1 - SS_res / SS_tot."""
    a = np.c_[z, np.ones(len(z))]
    coef, *_ = np.linalg.lstsq(a, t, rcond=None)
    res = t - a @ coef
    return 1.0 - float(res @ res) / float(((t - t.mean()) ** 2).sum())


def _batch(n=200, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.stack([torch.randint(0, 2, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)], 1)
    z[:, 0] += 3.0 * y[:, 0]                  # label 0 written into z_s
    z[:, 1] += (y[:, 1] == 2).double()        # label 1's class 2 too
    mask = torch.tensor([[True, True, False], [True, True, True]])
    return z, y, torch.ones(n, 2, dtype=torch.bool), mask


def test_r2_matches_a_least_squares_fit(monkeypatch):
    monkeypatch.setattr(decorrelate, "RIDGE", 0.0)
    z, y, observed, mask = _batch()
    r2 = style_label_r2(z, y, observed, mask)
    zn, yn = z.numpy(), y.numpy()
    assert r2[0].item() == pytest.approx(_ols_r2(zn, (yn[:, 0] == 1).astype(float)), abs=1e-6)
    three = np.mean([_ols_r2(zn, (yn[:, 1] == k).astype(float)) for k in range(3)])
    assert r2[1].item() == pytest.approx(three, abs=1e-6)
    assert decorrelation_penalty(z, y, observed, mask).item() == pytest.approx(r2.sum().item())


def test_r2_sees_a_label_in_z_s_and_ignores_scale():
    z, y, observed, mask = _batch(n=400)
    r2 = style_label_r2(z, y, observed, mask)
    assert r2[0] > 0.5 and r2[1] < r2[0]
    assert torch.allclose(style_label_r2(1e-3 * z, y, observed, mask), r2)
    g = torch.Generator().manual_seed(1)
    free = torch.randn(400, 6, generator=g, dtype=torch.float64)      # knows nothing of the labels
    assert style_label_r2(free, y, observed, mask).max() < 0.05


def test_unobserved_labels_are_left_out():
    z, y, observed, mask = _batch()
    observed[100:, 0] = False
    scrambled = y.clone()
    scrambled[100:, 0] = 1 - scrambled[100:, 0]          # values where unobserved do not matter
    a = style_label_r2(z, y, observed, mask)
    assert torch.equal(a, style_label_r2(z, scrambled, observed, mask))
    sub = style_label_r2(z[:100] - z.mean(0), y[:100], torch.ones(100, 2, dtype=torch.bool), mask)
    assert a[0].item() == pytest.approx(sub[0].item(), rel=0.1)   # same label, the observed rows only
    few = torch.zeros_like(observed)
    assert decorrelate.min_rows(6) == 12 and decorrelate.min_rows(2) == decorrelate.MIN_OBSERVED
    few[: decorrelate.min_rows(6) - 1] = True        # fewer rows than 2 d_s: a fit would explain noise
    assert torch.equal(style_label_r2(z, y, few, mask), torch.zeros(2, dtype=z.dtype))
    few[: decorrelate.min_rows(6)] = True
    assert (style_label_r2(z, y, few, mask) > 0).all()


def test_gradient_lowers_the_penalty():
    z, y, observed, mask = _batch()
    z = z.clone().requires_grad_(True)
    before = decorrelation_penalty(z, y, observed, mask)
    before.backward()
    with torch.no_grad():
        after = decorrelation_penalty(z - 0.5 * z.grad, y, observed, mask)
    assert after < before


def test_option_is_checked(tmp_path):
    with pytest.raises(UsageError, match="style-decorrelate"):
        resolve_options({"style_decorrelate": -1.0})


def test_training_uses_logs_and_records_it(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0, style_decorrelate=20.0))
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(math.isfinite(ln["style_r2"]) and ln["style_r2"] > 0 for ln in lines)
    opts = read_metadata(run / "model.safetensors")["ccvae.train"]["options"]
    assert opts["style_decorrelate"] == 20.0
    base = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0, max_steps=3))
    with_it = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0, max_steps=3, style_decorrelate=20.0))
    from safetensors.torch import load_file
    a, b = load_file(base / "model.safetensors"), load_file(with_it / "model.safetensors")
    assert not all(torch.equal(a[k], b[k]) for k in a)      # the penalty changed the training


def test_batches_too_small_for_the_penalty_are_announced(avatar_dir_200, tmp_path, capsys):
    train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0, max_steps=1, batch_size=6,
                   style_decorrelate=1.0))
    assert "never acts" in capsys.readouterr().err


def _pooled_case():
    """64 codes of 6 dimensions, two binary labels, the first written into the code."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (64, 2), generator=g)
    x[:, 0] += 2.0 * y[:, 0]
    return x, y, torch.ones(2, 2, dtype=torch.bool)


def _two_process_gradient(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as td
    from ccvae_tools.objective.decorrelate import gather_batch

    td.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    x, y, mask = _pooled_case()
    weight = torch.eye(6, dtype=torch.float64).requires_grad_(True)   # a parameter both processes share
    rows = slice(0, 30) if rank == 0 else slice(30, 64)             # unequal shares
    z, yy, ob = gather_batch(x[rows] @ weight, y[rows], torch.ones(64, 2, dtype=torch.bool)[rows])
    (world * decorrelation_penalty(z, yy, ob, mask)).backward()
    grad = weight.grad.clone()
    td.all_reduce(grad)
    grad /= world                                                   # what DDP does to a parameter
    if rank == 0:
        torch.save({"grad": grad, "y": yy, "z": z.detach()}, out)
    td.destroy_process_group()


def test_processes_pool_the_batch_and_get_the_whole_batch_gradient(tmp_path):
    """Under torchrun the penalty is that of the whole batch, and so is its gradient."""
    import torch.multiprocessing as mp

    out = tmp_path / "grad.pt"
    mp.spawn(_two_process_gradient, args=(2, f"file://{tmp_path / 'rendezvous'}", str(out)), nprocs=2)
    got = torch.load(out, weights_only=True)
    x, y, mask = _pooled_case()
    assert torch.equal(got["y"], y) and torch.allclose(got["z"], x)
    weight = torch.eye(6, dtype=torch.float64).requires_grad_(True)
    decorrelation_penalty(x @ weight, y, torch.ones(64, 2, dtype=torch.bool), mask).backward()
    assert torch.allclose(got["grad"], weight.grad, atol=1e-10)
