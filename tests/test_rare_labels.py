"""Rare labels: --balance-labelled draws labelled images of rare classes more often (and as
reproducibly as the plain order), --pseudo-labels trains on the model's confident answers only."""

from __future__ import annotations

import json

import numpy as np
import torch

from ccvae_tools.objective.consistency import consistency_loss
from ccvae_tools.objective.pseudo import pseudo_label_loss
from ccvae_tools.training.batches import epoch_order, repeat_factors
from ccvae_tools.training.loop import train
from ccvae_tools.training.options import TrainOptions
from helpers.options import opts_for
from ccvae_tools.data.base import Label
from ccvae_tools.model.network import CCVAE, ModelConfig


def test_repeat_factors_favour_the_rare_class_and_leave_common_ones():
    labels = np.array([[1, 0]] * 2 + [[0, 1]] * 18, dtype=np.float32)       # label 0: 10 % positive
    labels[5, 1] = np.nan                                                     # a missing cell is ignored
    factors = repeat_factors(labels, threshold=0.25)
    assert np.allclose(factors[:2], np.sqrt(0.25 / 0.1))                      # the rare positives
    assert np.allclose(factors[2:], 1.0)                                      # 90 % and 95 % classes: as they come


def test_balanced_order_draws_rare_positives_more_often_and_reproducibly():
    n, n_lab = 400, 40
    labels = np.zeros((n, 1), dtype=np.float32)
    labels[:4, 0] = 1                                                         # 4 of the 40 labelled: 10 %
    labelled = np.zeros(n, dtype=bool)
    labelled[:n_lab] = True
    train_idx = np.arange(n)
    plain = TrainOptions(batch_size=20, labelled_per_batch=10, balance_labelled=0.0, seed=2)
    balanced = TrainOptions(batch_size=20, labelled_per_batch=10, balance_labelled=0.5, seed=2)

    def positive_share(opts):
        order = epoch_order(train_idx, labelled, opts, 0, labels)
        drawn = order[labelled[order]]
        return float(np.isin(drawn, np.arange(4)).mean()), order

    share_plain, _ = positive_share(plain)
    share_balanced, order = positive_share(balanced)
    assert abs(share_plain - 0.1) < 0.02
    assert share_balanced > 0.15                                              # sqrt(5) as often: about 20 %
    assert np.array_equal(order, epoch_order(train_idx, labelled, balanced, 0, labels))
    unlabelled = order[~labelled[order]]
    assert sorted(unlabelled.tolist()) == list(range(n_lab, n))               # still one pass over the rest


def test_pseudo_labels_count_only_confident_unobserved_labels():
    torch.manual_seed(0)
    model = CCVAE(ModelConfig(image_size=32, channels=3, labels=[Label("a"), Label("b")], z_style=4,
                              widths=(8, 8, 8), hidden=16))
    mu_c = torch.zeros(4, model.cfg.z_char)
    mu_c[:2] = 1000.0                                  # far from the boundary: confident for every label
    observed = torch.tensor([[True, False], [False, False], [False, False], [False, False]])
    loss, share = pseudo_label_loss(model, mu_c, observed)
    log_q = model.log_q_y(mu_c).max(-1).values
    confident = (log_q >= np.log(0.95)) & ~observed
    assert confident[0, 1] and confident[1].all() and not confident[2:].any()
    assert torch.isclose(loss, -(log_q * confident).sum() / 4)
    assert torch.isclose(share, confident.sum() / (~observed).sum())


def test_a_run_with_pseudo_labels_logs_their_share(avatar_dir_200, tmp_path):
    opts = opts_for(avatar_dir_200, tmp_path, sup_frac=0.2, pseudo_labels=10.0, epochs=1)
    run = train(opts)
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= line["pseudo_label_share"] <= 1.0 and np.isfinite(line["pseudo_label_loss"])


def _tiny_model(labels=(Label("a"), Label("b"))):
    torch.manual_seed(0)
    return CCVAE(ModelConfig(image_size=32, channels=3, labels=list(labels), z_style=4,
                             widths=(8, 8, 8), hidden=16))


def test_consistency_is_the_entropy_of_the_answer_without_a_shift_and_skips_observed_labels():
    model = _tiny_model()
    x = torch.rand(3, 3, 32, 32)
    mu_c = model.split(model.encode(x)[0])[0]
    observed = torch.tensor([[True, True], [True, False], [False, False]])
    loss = consistency_loss(model, x, mu_c, observed, np.random.default_rng(0), shift=0)
    q = model.log_q_y(mu_c).exp()
    entropy = -(q * q.log()).sum(-1)                   # (B, L): the cross-entropy of q with itself
    assert torch.isclose(loss, (entropy * ~observed).sum() / 3, atol=1e-6)
    everything = torch.ones(3, 2, dtype=torch.bool)
    assert consistency_loss(model, x, mu_c, everything, np.random.default_rng(0)) == 0


def test_consistency_is_finite_beside_a_label_with_more_classes():
    # the binary label's padding classes sit at log q = -inf, beside the 3-class label's third
    model = _tiny_model((Label("a"), Label("letter", classes=("x", "y", "z"))))
    x = torch.rand(2, 3, 32, 32)
    mu_c = model.split(model.encode(x)[0])[0]
    loss = consistency_loss(model, x, mu_c, torch.zeros(2, 2, dtype=torch.bool), np.random.default_rng(0))
    assert torch.isfinite(loss) and loss > 0


def test_consistency_trains_through_the_shifted_pass_only():
    model = _tiny_model()
    x = torch.rand(2, 3, 32, 32)
    mu_c = model.split(model.encode(x)[0])[0]
    loss = consistency_loss(model, x, mu_c, torch.zeros(2, 2, dtype=torch.bool), np.random.default_rng(1))
    (grad_of_target,) = torch.autograd.grad(loss, mu_c, allow_unused=True, retain_graph=True)
    assert grad_of_target is None                      # the unshifted answer is the target, held fixed
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_a_run_with_consistency_logs_its_term(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, sup_frac=0.2, consistency=10.0, epochs=1))
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(line["consistency_loss"]) and line["consistency_loss"] > 0
