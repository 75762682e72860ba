"""The regulariser interface: a new term plugs into training through the registry alone; the loop
adds its loss, logs what it records, keeps its state across a resume, and the bound is untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ccvae_tools.training.state import STATE_FILE, load_state
from ccvae_tools.data.cache import load_decoded
from ccvae_tools.data.readers import open_catalog
from ccvae_tools.model.weights import load_model
from ccvae_tools.objective import registry
from ccvae_tools.objective.base import Regulariser
from ccvae_tools.training.loop import train
from helpers.options import opts_for


class StyleNormTerm(Regulariser):
    """A toy term: weight * mean |mu_s|^2, counting its own steps (state that must survive a resume)."""

    option = "style_decorrelate"          # borrows an existing weight option for the test

    def __init__(self, weight, model, **kw):
        super().__init__(weight, model, **kw)
        self.steps = 0

    def loss(self, x, terms, y, observed, autocast):
        norm = terms.mu_s.float().pow(2).sum(-1).mean()
        self.record(style_norm=float(norm.detach()))
        return self.weight * norm

    def after_step(self):
        self.steps += 1

    def state_dict(self):
        return {"style_norm_steps": torch.tensor(self.steps)}

    def load_state_dict(self, state):
        self.steps = int(state["style_norm_steps"])


@pytest.fixture
def only_the_toy_term(monkeypatch):
    monkeypatch.setattr(registry, "REGULARISERS", (StyleNormTerm,))


def _last_metrics(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def test_a_registered_term_is_trained_logged_and_resumed(only_the_toy_term, avatar_dir_200, tmp_path):
    plain = train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0))
    toy = train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0, style_decorrelate=10.0))
    assert "style_norm" not in _last_metrics(plain)
    logged = _last_metrics(toy)["style_norm"]
    assert logged > 0
    # the term pulls the style codes towards 0: the penalised run's z_s are smaller
    data = load_decoded(open_catalog(avatar_dir_200, size=32), cache_dir=tmp_path / "cache", workers=1)
    x = torch.from_numpy(np.array(data.images[:64])).float() / 255
    norms = []
    for run in (plain, toy):
        model, _ = load_model(run / "model.safetensors")
        with torch.no_grad():
            _, mu_s = model.split(model.encode(x)[0])
        norms.append(float(mu_s.pow(2).sum(-1).mean()))
    assert norms[1] < norms[0]
    state = load_state(toy / STATE_FILE)
    assert int(state["style_norm_steps"]) == state["global_step"]


def test_a_resumed_run_restores_the_terms_state(only_the_toy_term, avatar_dir_200, tmp_path):
    part = train(opts_for(avatar_dir_200, tmp_path, epochs=2, preview_every=0, style_decorrelate=1.0, max_steps=3))
    resumed = train(opts_for(avatar_dir_200, tmp_path), resume=str(part), overrides={"max_steps": 0})
    state = load_state(resumed / STATE_FILE)
    assert int(state["style_norm_steps"]) == state["global_step"] > 3
