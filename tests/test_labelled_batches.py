"""--labelled-per-batch: every batch holds k labelled examples; the order is reproducible (exact
resume), the paper's schedule is untouched when k = 0, and bad combinations are refused.
--augment-shift: labelled rows move by whole pixels, unlabelled rows stay, a resumed run draws the
same shifts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ccvae_tools.training.batches import epoch_order
from ccvae_tools.util.imageops import shift_images
from ccvae_tools.training.loop import train
from ccvae_tools.training.options import TrainOptions, resolve_options
from ccvae_tools.util.errors import UsageError
from helpers.options import opts_for


def _setup(n=100, n_lab=7):
    train_idx = np.arange(n)
    labelled = np.zeros(n, dtype=bool)
    labelled[:n_lab] = True
    return train_idx, labelled


def test_every_batch_holds_k_labelled_and_each_unlabelled_example_once():
    train_idx, labelled = _setup()
    opts = TrainOptions(batch_size=10, labelled_per_batch=3, seed=1)
    order = epoch_order(train_idx, labelled, opts, epoch=0)
    batches = [order[i: i + 10] for i in range(0, len(order), 10)]
    assert [int(labelled[b].sum()) for b in batches] == [3] * len(batches)
    unlabelled = order[~labelled[order]]
    assert sorted(unlabelled.tolist()) == list(range(7, 100))           # one pass over the unlabelled
    assert np.array_equal(order, epoch_order(train_idx, labelled, opts, epoch=0))
    assert not np.array_equal(order, epoch_order(train_idx, labelled, opts, epoch=1))
    # the labelled examples are spread within a batch, not always in front
    assert any(not labelled[b[0]] for b in batches)


def test_k_zero_is_the_papers_schedule():
    train_idx, labelled = _setup()
    plain = TrainOptions(batch_size=10, seed=1)
    order = epoch_order(train_idx, labelled, plain, epoch=2)
    assert sorted(order.tolist()) == list(range(100))                    # each example once
    expected = np.random.default_rng([1, 2]).permutation(train_idx)
    assert np.array_equal(order, expected)


def test_fully_labelled_data_keeps_the_plain_order():
    train_idx = np.arange(30)
    everything = np.ones(30, dtype=bool)
    order = epoch_order(train_idx, everything, TrainOptions(batch_size=10, labelled_per_batch=4), epoch=0)
    assert sorted(order.tolist()) == list(range(30))


def test_bad_combinations_are_refused():
    with pytest.raises(UsageError, match="give one"):
        resolve_options({"labelled_per_batch": 8, "sup_oversample": 3.0})
    with pytest.raises(UsageError, match="below --batch-size"):
        resolve_options({"labelled_per_batch": 64, "batch_size": 64})
    with pytest.raises(UsageError, match="labelled-per-batch"):
        resolve_options({"labelled_per_batch": -1})


def test_a_run_with_labelled_batches_resumes_exactly(avatar_dir_200, tmp_path):
    kw = dict(epochs=2, preview_every=0, sup_frac=0.1, labelled_per_batch=8, augment_shift=2)
    full = train(opts_for(avatar_dir_200, tmp_path, **kw))
    part = train(opts_for(avatar_dir_200, tmp_path, **kw, max_steps=5))
    resumed = train(opts_for(avatar_dir_200, tmp_path), resume=str(part), overrides={"max_steps": 0})
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train(opts_for(avatar_dir_200, tmp_path, **{**kw, "labelled_per_batch": 0}))
    c = load_file(plain / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)
    options = json.loads((full / "options.json").read_text())
    assert options["labelled_per_batch"] == 8 and options["augment_shift"] == 2


def test_a_shift_moves_labelled_rows_by_whole_pixels_and_leaves_the_rest():
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    observed = torch.tensor([[True, False], [False, False], [False, True], [False, False], [True, True],
                             [False, False]])
    out = shift_images(x, observed.any(-1), 2, np.random.default_rng(3))
    for row in (1, 3, 5):
        assert torch.equal(out[row], x[row])
    moved = 0
    for row in (0, 2, 4):
        # each labelled row is the original moved by some (dy, dx) in [-2, 2]^2: its inner part matches
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(out[row, :, 2:6, 2:6], x[row, :, 2 + dy:6 + dy, 2 + dx:6 + dx])]
        assert len(hits) == 1
        moved += hits[0] != (0, 0)
    assert moved >= 1
    same = shift_images(x, observed.any(-1), 2, np.random.default_rng(3))
    assert torch.equal(out, same)
    assert torch.equal(shift_images(x, observed.any(-1), 0, np.random.default_rng(3)), x)


def test_the_paper_preset_keeps_the_papers_schedule():
    assert resolve_options({"preset": "paper"}).labelled_per_batch == 0
