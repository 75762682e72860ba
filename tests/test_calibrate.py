"""--calibrate-prior: after training, each class's p(z_c | y) is the Gaussian of the train codes of
that class (mean of mu, mean of sigma^2 + deviation^2), kept only where the classifier reads the new
mean as that class; model.safetensors carries it, the resume state does not; --preset paper is off."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ccvae_tools.interventions import edit
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.training.calibrate import calibrate_prior
from ccvae_tools.training.loop import train
from ccvae_tools.training.options import resolve_options
from ccvae_tools.training.state import load_state
from helpers.tiny_model import LABELS


class _Rows:
    """What training.batches.Batches.get gives: "images" (here the row numbers, which the model's
    encode below turns into chosen codes), labels (0 where missing) and observed."""

    def __init__(self, labels: np.ndarray):
        self.labels = torch.from_numpy(labels)

    def get(self, idx: np.ndarray):
        lab = self.labels[idx]
        return torch.from_numpy(idx), torch.nan_to_num(lab, nan=0.0).long(), ~torch.isnan(lab)


def _model_and_data(n: int = 48):
    """A tiny model whose encoder gives chosen codes: each label's code at +-(3 to 6), far beyond the
    table's starting +-2, with the labels agreeing but for a few, and some labels unknown."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, channels=3, labels=LABELS, z_style=4, widths=(8, 8, 8), hidden=16)
    m = CCVAE(cfg).eval()
    g = torch.Generator().manual_seed(1)
    side = (torch.rand(n, 3, generator=g) > 0.4).float()
    mu = torch.cat([(2 * side - 1) * (3 + 3 * torch.rand(n, 3, generator=g)), torch.randn(n, 4, generator=g)], 1)
    sigma = 0.1 + torch.rand(n, 7, generator=g)
    m.encode = lambda rows: (mu[rows], sigma[rows])
    labels = side.double().numpy()
    labels[:3] = 1 - labels[:3]              # a few the classifier reads the other way
    labels[::3, 0] = np.nan                  # some labels unknown: the classifier's reading counts
    return m, labels, mu, sigma


def _expected(m: CCVAE, labels: np.ndarray, mu: torch.Tensor, sigma: torch.Tensor, i: int, k: int):
    read = m.log_q_y(m.split(mu)[0]).argmax(-1)[:, i].numpy()
    cls = np.where(np.isnan(labels[:, i]), read, labels[:, i])
    rows = torch.from_numpy(cls == k)
    sl = m.label_slice(i)
    loc = mu[rows][:, sl].mean(0)
    scale = (sigma[rows][:, sl] ** 2 + (mu[rows][:, sl] - loc) ** 2).mean(0).sqrt()
    return loc, scale, int(rows.sum())


def test_each_class_gets_the_moments_of_its_codes():
    m, labels, mu, sigma = _model_and_data()
    with torch.no_grad():
        m.cls_bias[1, 1] = -8.0               # Eyeglasses: the classifier reads hardly any code as 1
    before = m.prior_loc.detach().clone()
    report = calibrate_prior(m, _Rows(labels), np.arange(len(labels)), batch_size=16)
    loc, scale = m.prior_params()
    for i, lab in enumerate(LABELS):
        for k in range(2):
            want_loc, want_scale, n = _expected(m, labels, mu, sigma, i, k)
            assert report[lab.name]["images"][k] == n
            if (i, k) == (1, 1):              # its new mean (about +4.5) is not read as 1: kept
                assert torch.equal(loc[i, k].detach(), before[i, k])
                continue
            assert torch.allclose(loc[i, k, :1], want_loc, atol=1e-4)
            assert torch.allclose(scale[i, k, :1], want_scale, atol=1e-4)
            assert abs(float(loc[i, k, 0].detach())) > 3


def test_an_edit_then_moves_a_class_mean_onto_the_other():
    m, labels, _, _ = _model_and_data()
    calibrate_prior(m, _Rows(labels), np.arange(len(labels)))
    loc, _ = m.prior_params()
    z = torch.zeros(1, m.cfg.z_dim)
    z[0, m.label_slice(2)] = loc[2, 0, :1].detach()
    moved = edit(m, z, {2: 1})
    assert torch.allclose(moved[0, m.label_slice(2)], loc[2, 1, :1].detach(), atol=1e-4)


def test_a_class_with_one_image_keeps_its_entry():
    m, labels, _, _ = _model_and_data(12)
    labels[:, 2] = 0.0
    labels[0, 2] = 1.0                       # Blond_Hair: a single positive
    before = m.prior_loc.detach()[2, 1].clone()
    report = calibrate_prior(m, _Rows(labels), np.arange(len(labels)))
    assert report["Blond_Hair"]["images"] == [11, 1]
    assert torch.equal(m.prior_loc.detach()[2, 1], before)


@pytest.fixture(scope="module")
def trained_run(avatar_celeba_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("calibrated")
    run = train(resolve_options(dict(data=str(avatar_celeba_dir), image_size=32, epochs=1, batch_size=16,
                                      z_style=4, draws=2, preview_every=0, workers=1, device="cpu",
                                      out=str(out), seed=0)))
    return run


def test_the_weights_carry_the_calibrated_table_and_the_state_the_trained_one(trained_run):
    weights = load_file(str(trained_run / "model.safetensors"))
    trained = load_state(trained_run / "state.safetensors")["model"]["prior_loc"]
    report = json.loads((trained_run / "prior_calibration.json").read_text())
    assert set(report) == {lab for lab in json.loads((trained_run / "options.json").read_text())["labels"]}
    after = torch.tensor([r["mean_after"] for r in report.values()])
    before = torch.tensor([r["mean_before"] for r in report.values()])
    assert torch.allclose(weights["prior_loc"][:, :2, 0], after, atol=1e-5)
    assert torch.allclose(trained[:, :2, 0], before, atol=1e-5)
    assert not torch.allclose(after, before)


def test_the_paper_preset_and_off_keep_the_table():
    assert resolve_options({"preset": "paper"}).calibrate_prior == "off"
    assert resolve_options({}).calibrate_prior == "codes"
