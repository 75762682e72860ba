"""`ccvae eval`: the metric functions on known cases, the judge, and the command end to end.

Kept fast: metric functions on tiny arrays, the judge on 200 avatars at 32 px (a few seconds), one
model trained for a single epoch, and one command run through a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ccvae_tools.evaluation import metrics as ev
from ccvae_tools.evaluation.truth import capture_class
from helpers.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
EASY = ("Wearing_Hat", "Eyeglasses", "Pale_Skin")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small convolutions: threads only add overhead (and contention on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("CCVAE_DEBUG", raising=False)
    monkeypatch.delenv("CCVAE_MODEL", raising=False)
    monkeypatch.setenv("CCVAE_DEVICE", "cpu")


# ----------------------------------------------------------------------------------------------
# metric functions on known cases
# ----------------------------------------------------------------------------------------------

def test_perfect_classifier_scores_one():
    truth = np.array([[0, 1], [1, 0], [1, 1], [0, 0], [1, 1]], dtype=np.float32)
    m = ev.classification_metrics(truth.astype(int), truth, np.array([1, 1]), ["a", "b"])
    assert m["accuracy"] == {"a": 1.0, "b": 1.0}
    assert m["balanced_accuracy"] == {"a": 1.0, "b": 1.0}
    assert m["mean_accuracy"] == 1.0 and m["mean_balanced_accuracy"] == 1.0


def test_constant_classifier_scores_the_majority_baseline():
    rng = np.random.default_rng(0)
    truth = (rng.random((200, 2)) < np.array([0.3, 0.8])).astype(np.float32)
    truth[5, 0] = np.nan                                     # a missing label is left out
    majority = np.array([0, 1])
    pred = np.broadcast_to(majority, truth.shape)
    m = ev.classification_metrics(pred, truth, majority, ["rare", "common"])
    for name in ("rare", "common"):
        assert m["accuracy"][name] == pytest.approx(m["majority_baseline"][name], abs=0)
        assert m["balanced_accuracy"][name] == 0.5
    assert m["count"]["rare"] == 199
    assert m["majority_baseline"]["rare"] == pytest.approx(float((truth[~np.isnan(truth[:, 0]), 0] == 0).mean()))


def test_capture_perfect_code_and_random_style():
    rng = np.random.default_rng(1)
    v_tr = rng.integers(0, 5, 400)
    v_te = rng.integers(0, 5, 200)
    names = np.array(["round", "kurt", "wayfarers", "sunglasses", "prescription01"], dtype=object)
    zc_tr = v_tr[:, None] + 0.05 * rng.standard_normal((400, 1))
    zc_te = v_te[:, None] + 0.05 * rng.standard_normal((200, 1))
    zs_tr, zs_te = rng.standard_normal((400, 6)), rng.standard_normal((200, 6))
    s = ev.capture_scores(zc_tr, zs_tr, names[v_tr], zc_te, zs_te, names[v_te])
    assert s["z_c"] >= 0.98
    assert s["chance"] == pytest.approx(ev.chance_level(names[v_tr], names[v_te]))
    assert 0.1 <= s["chance"] <= 0.35
    assert abs(s["z_s"] - s["chance"]) < 0.12                  # random style codes: about chance
    assert s["variants"] == 5 and s["train"] == 400 and s["test"] == 200


def test_capture_summary_counts_clear_wins_by_the_margin():
    cap = {"a": {"z_c": 0.60, "z_s": 0.40}, "b": {"z_c": 0.52, "z_s": 0.50}, "c": {"z_c": 0.30, "z_s": 0.45},
           "d": {"z_c": 0.50, "z_s": 0.45}, "e": {"z_c": None, "z_s": 0.2}}
    s = ev.capture_summary(cap, margin=0.05)
    assert s["labels"] == 4 and s["z_c_clearly_above"] == 2 and s["z_c_above"] == 3 and s["z_s_clearly_above"] == 1
    assert s["mean_z_c"] == pytest.approx(0.48) and s["mean_z_s"] == pytest.approx(0.45)


def test_balanced_probe_finds_a_rare_class_the_plain_fit_leaves_to_the_majority():
    # one overlapping feature, 5 % positives: the plain fit calls everything negative, the balanced
    # fit (each class weighing the same) trades some negatives for most of the positives
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.05).astype(int)
    x = (y + rng.normal(0, 0.6, len(y)))[:, None]
    recall = lambda pred: [float((pred[y == c] == c).mean()) for c in (0, 1)]
    plain = recall(ev.fit_softmax_regression(x, y, 2)(x))
    balanced = recall(ev.fit_softmax_regression(x, y, 2, balanced=True)(x))
    assert plain[1] < 0.5 < balanced[1] and balanced[0] > 0.7
    assert np.mean(balanced) > np.mean(plain) + 0.1


def test_capture_edge_cases():
    # one train variant: always guessed; unseen test variants count as errors
    assert ev.capture_accuracy(np.zeros((3, 1)), ["a"] * 3, np.zeros((2, 1)), ["a", "b"]) == 0.5
    assert ev.chance_level(["a", "a", "b"], ["b", "b", "a", "c"]) == 0.25
    assert ev.coarse_variants(["round/#ff5c5c", "kurt/#262e33"]).tolist() == ["round", "kurt"]
    assert ev.coarse_variants(["#ffdbb4", "#fce5d3"]) is None


def test_capture_class_picks_the_class_with_variants():
    labels = np.array([1, 1, 0, 0, np.nan])
    smile = np.array(["smile", "tongue", "sad", "serious", "smile"], dtype=object)
    assert capture_class(labels, smile, 2) == 1
    beard = np.array(["none", "none", "beardLight/#2c1b18", "moustacheFancy/#c93305", "none"], dtype=object)
    assert capture_class(labels, beard, 2) == 0            # No_Beard: the beard lives in class 0
    assert capture_class(labels, np.array(["x"] * 5, dtype=object), 2) == "skip"


def test_leakage_success_and_carried():
    rng = np.random.default_rng(2)
    p1 = rng.random((10, 3))
    before = np.stack([1 - p1, p1], axis=-1)
    after = before.copy()
    after[:, 0] = after[:, 0, ::-1]                            # only the edited label changes
    assert ev.leakage(before, after, 0) == 0.0
    moved = after.copy()
    moved[:, 2, 1] = np.clip(moved[:, 2, 1] + 0.2, 0, 1)
    moved[:, 2, 0] = 1 - moved[:, 2, 1]
    expect = np.abs(moved[:, 2, 1] - before[:, 2, 1]).mean() / 2   # one of two other labels moved
    assert ev.leakage(before, moved, 0) == pytest.approx(expect)
    target = (before[:, 0].argmax(-1) + 1) % 2
    assert ev.edit_success(after, 0, target) == 1.0
    assert ev.edit_success(before, 0, target) == 0.0
    assert ev.carried_share(np.tile([[[0.2, 0.8]]], (4, 1, 1)), 0, 1) == 1.0
    assert np.isnan(ev.leakage(before[:, :1], after[:, :1], 0))      # no other label


def test_leakage_leaves_out_labels_changed_on_purpose():
    before = np.tile([[[0.9, 0.1]]], (4, 3, 1)).astype(float)
    after = before.copy()
    after[:, :2] = [0.1, 0.9]                                  # labels 0 (edited) and 1 (changed with it) move
    changed = np.zeros((4, 3), dtype=bool)
    changed[:, 1] = True
    assert ev.leakage(before, after, 0) == pytest.approx(0.8 / 2)
    assert ev.leakage(before, after, 0, changed) == 0.0
    assert np.isnan(ev.leakage(before[:, :2], after[:, :2], 0, changed[:, :2]))   # nothing left to measure


def test_consistent_targets_take_the_fewest_changes_to_a_seen_combination():
    # labels: Black_Hair, Gray_Hair, Wearing_Hat. Seen: black hair, grey hair, a hat (no hair shows)
    train = np.array([[1, 0, 0]] * 5 + [[0, 1, 0]] * 3 + [[0, 0, 1]] * 2 + [[np.nan, 0, 0]], dtype=float)
    combos, counts = ev.label_combinations(train)
    assert combos.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0]] and counts.tolist() == [2, 3, 5]
    current = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    # Gray_Hair -> 1: the black-haired face loses its black; the hat-wearer also loses the hat
    goal = ev.consistent_targets(current, 1, np.array([1, 1, 0]), combos, counts)
    assert goal[:2].tolist() == [[0, 1, 0], [0, 1, 0]]
    # grey -> not grey: two combinations are one change away; the more frequent one (black) wins
    assert goal[2].tolist() == [1, 0, 0]
    # a combination that is already consistent changes the edited label alone
    seen = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    g = ev.consistent_targets(np.array([[0, 1]]), 0, 1, seen, np.ones(4, dtype=np.int64))
    assert g.tolist() == [[1, 1]]
    # a target class no training row has: the edit is left alone
    g = ev.consistent_targets(np.array([[0, 1]]), 0, 1, np.array([[0, 0]]), np.array([3]))
    assert g.tolist() == [[1, 1]]


def test_diversity():
    same = np.full((8, 3, 4, 4), 77, dtype=np.uint8)
    assert ev.sample_diversity(same) == 0.0
    half = np.zeros((2, 1, 2, 2), dtype=np.uint8)
    half[1] = 255
    assert ev.sample_diversity(half) == pytest.approx(0.25)    # values 0 and 1: variance 1/4


# ----------------------------------------------------------------------------------------------
# the judge
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def decoded200(avatar_dir_200):
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog

    return load_decoded(open_catalog(avatar_dir_200, size=32), workers=1)


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("judges")


@pytest.fixture(scope="module")
def judge200(decoded200, judge_dir):
    """Trained once; saved where `ccvae eval --judge judge_dir` looks, so the command reuses it."""
    from ccvae_tools.evaluation.run import judge_path
    from ccvae_tools.evaluation.judge import data_fingerprint, load_or_train_judge

    path = judge_path(str(judge_dir), Path("unused.safetensors"), decoded200.name, 32, data_fingerprint(decoded200))
    return load_or_train_judge(path, decoded200)


def test_judge_learns_easy_labels(decoded200, judge200):
    from ccvae_tools.data.base import TEST, TRAIN
    from ccvae_tools.evaluation.metrics import majority_classes

    assert judge200.trained and judge200.path.suffix == ".safetensors"
    tr, te = decoded200.indices(TRAIN), decoded200.indices(TEST)
    maj = majority_classes(decoded200.labels, tr)
    names = decoded200.label_names
    train_m = ev.classification_metrics(judge200.predict(decoded200.images[tr]), decoded200.labels[tr], maj, names)
    test_m = ev.classification_metrics(judge200.predict(decoded200.images[te]), decoded200.labels[te], maj, names)
    for name in EASY:                                          # it learns the training set
        assert train_m["accuracy"][name] > max(0.95, train_m["majority_baseline"][name])
    assert any(test_m["accuracy"][n] > test_m["majority_baseline"][n] for n in EASY), test_m
    p = judge200.probs(decoded200.images[te[:3]])
    assert p.shape == (3, len(names), 2) and np.allclose(p.sum(-1), 1.0, atol=1e-5)


def test_judge_is_reused_and_retrained_on_mismatch(decoded200, judge200, tmp_path):
    import dataclasses
    import shutil

    from ccvae_tools.evaluation.judge import data_fingerprint, judge_matches, load_or_train_judge, read_judge_meta

    path = tmp_path / "j.safetensors"
    shutil.copy(judge200.path, path)
    with open(path, "rb") as f:                                # a safetensors file, not a pickle
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    assert header["__metadata__"]["format"] == "pt"
    meta = read_judge_meta(path)
    assert meta["fingerprint"] and meta["image_size"] == 32 and meta["labels"][0]["name"] == "Smiling"
    before = path.stat().st_mtime_ns
    again = load_or_train_judge(path, decoded200)
    assert not again.trained and path.stat().st_mtime_ns == before
    assert np.array_equal(again.probs(decoded200.images[:5]), judge200.probs(decoded200.images[:5]))

    labels = decoded200.labels.copy()
    labels[:, 0] = 1 - labels[:, 0]                            # other data: another fingerprint
    other = dataclasses.replace(decoded200, labels=labels)
    fp_other = data_fingerprint(other)
    assert fp_other != meta["fingerprint"] and data_fingerprint(decoded200) == meta["fingerprint"]
    settings = {"seed": 0}
    assert judge_matches(meta, meta["fingerprint"], decoded200.label_info, 32, 3, settings)
    assert not judge_matches(meta, fp_other, decoded200.label_info, 32, 3, settings)
    retrained = load_or_train_judge(path, other, epochs=1)     # (one epoch: quick)
    assert retrained.trained
    assert read_judge_meta(path)["fingerprint"] != meta["fingerprint"]


def test_judge_multiclass_and_missing_labels():
    from ccvae_tools.data.base import Label
    from ccvae_tools.evaluation.judge import train_judge

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (24, 1, 16, 16), dtype=np.uint8)
    labels = np.stack([rng.integers(0, 2, 24), rng.integers(0, 3, 24)], 1).astype(np.float32)
    labels[::5, 1] = np.nan                                    # missing cells are left out of the loss
    info = [Label("a"), Label("colour", ("red", "green", "blue"))]
    judge = train_judge(images, labels, info, epochs=1, batch_size=8)
    p = judge.probs(images[:4])
    assert p.shape == (4, 2, 3)
    assert np.allclose(p.sum(-1), 1.0, atol=1e-5) and np.all(p[:, 0, 2] == 0.0)
    assert judge.predict(images[:4]).shape == (4, 2)


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def avatar_model(avatar_dir_200, tmp_path_factory) -> Path:
    """A 32 px model with the avatar labels, trained for one epoch (a few seconds)."""
    from ccvae_tools.training.loop import train
    from ccvae_tools.training.options import resolve_options

    out = tmp_path_factory.mktemp("evalruns")
    # lr and alpha as they were the defaults when this fixture's figures were checked (the test reads
    # what eval reports, not what the defaults learn in one epoch)
    run = train(resolve_options(dict(data=str(avatar_dir_200), image_size=32, epochs=1, batch_size=64,
                                      z_style=8, draws=10, preview_every=0, workers=1, device="cpu",
                                      out=str(out), seed=0, lr=1e-4, classifier_weight=100.0)))
    return Path(run) / "model.safetensors"


def test_eval_and_training_share_one_heldout_pass(decoded200, avatar_model):
    """Parts 1-2 of `ccvae eval` and training's held-out metrics are one pass: the same numbers for
    the same images, batch size, draws and seed (0)."""
    import contextlib

    from ccvae_tools.data.base import TEST, TRAIN
    from ccvae_tools.evaluation.evaluate import evaluate_model
    from ccvae_tools.evaluation.heldout import heldout_metrics
    from ccvae_tools.evaluation.metrics import majority_classes
    from ccvae_tools.model.api import load

    m = load(avatar_model)

    class Images:                                   # what training's batches give the pass
        device = m.device

        def get(self, idx):
            return m.to_tensor(decoded200.images[idx]), None, None

    idx = decoded200.indices(TEST)
    majority = majority_classes(decoded200.labels, decoded200.indices(TRAIN))
    rng_before = torch.get_rng_state()
    held = heldout_metrics(m.model, Images(), idx, decoded200.labels, majority, 8, 5, contextlib.nullcontext)
    report = evaluate_model(m, decoded200, split=TEST, seed=0, draws=5, batch_size=8, capture_cap=20)
    assert torch.equal(torch.get_rng_state(), rng_before)      # both leave the global RNG alone
    mt = report["metrics"]
    assert mt["images"] == held["images"] == len(idx)
    for key in ("bound", "recon_l1", "accuracy", "balanced_accuracy", "majority_baseline", "mean_accuracy"):
        assert mt[key] == held[key], key


def run_proc(args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("CCVAE_DEBUG", None)
    env.pop("CCVAE_MODEL", None)
    env.update(CCVAE_DEVICE="cpu", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "ccvae_tools", *map(str, args)], capture_output=True,
                          env=env, cwd=ROOT, timeout=timeout, text=True)


def _in_unit(x) -> bool:
    return x is None or 0.0 <= x <= 1.0


def test_eval_cli_end_to_end(avatar_dir_200, avatar_model, judge200, judge_dir, capsys):
    from safetensors.torch import load_file

    from ccvae_tools.model.weights import read_header

    tensors_before = load_file(str(avatar_model))
    meta_before = read_header(avatar_model)["metadata"]
    r = run_proc(["eval", avatar_dir_200, "-m", avatar_model, "--json", "--max-images", 40,
                  "--judge", judge_dir, "--write-metrics"])
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["judge"]["trained"] is False                    # the judge of the fixture is reused
    mt = rep["metrics"]
    names = ["Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat", "Bald", "Black_Hair",
             "Blond_Hair", "Brown_Hair", "Gray_Hair", "No_Beard", "Pale_Skin"]
    assert mt["split"] == "test" and mt["seed"] == 0 and mt["images"] == 20     # 10 % of 200
    for block in ("accuracy", "balanced_accuracy", "majority_baseline"):
        assert set(mt[block]) == set(names) and all(_in_unit(v) for v in mt[block].values())
    assert all(_in_unit(mt[k]) for k in ("mean_accuracy", "mean_balanced_accuracy", "mean_majority_baseline"))
    assert 0.0 < mt["recon_l1"] < 1.0 and mt["bound"] < 0 and mt["bound_per_pixel"] == pytest.approx(
        mt["bound"] / (3 * 32 * 32))
    assert set(mt["capture"]) >= {"Smiling", "Eyeglasses", "No_Beard"}
    glasses = mt["capture"]["Eyeglasses"]
    assert glasses["variant"] == "glasses" and glasses["class"] == "1" and "coarse" in glasses
    assert mt["capture"]["No_Beard"]["class"] == "0"
    for e in mt["capture"].values():
        assert all(_in_unit(e[k]) for k in ("z_c", "z_s", "chance"))
    assert mt["capture_summary"] == ev.capture_summary(mt["capture"])
    assert set(mt["judge"]["accuracy"]) == set(names)
    assert mt["judge"]["mean_accuracy"] > 0.6
    for block in ("success", "leakage"):
        assert set(mt["edit"][block]) == set(names) and all(_in_unit(v) for v in mt["edit"][block].values())
    assert set(mt["labels_from_style"]) == set(names) and all(_in_unit(v) for v in mt["labels_from_style"].values())
    cons = mt["edit_consistent"]
    for block in ("success", "leakage", "also_changed"):
        assert set(cons[block]) == set(names) and all(_in_unit(v) for v in cons[block].values())
    assert cons["also_changed"]["Gray_Hair"] > 0          # hair colours exclude each other
    for block in ("carried", "diversity"):
        assert set(mt["samples"][block]) == set(names) and all(_in_unit(v) for v in mt["samples"][block].values())
    assert mt["counts"]["edit"] == 20 and mt["counts"]["samples"] == 64

    # --write-metrics: `ccvae info` shows them; every tensor is unchanged
    code, out, err = run_cli(["info", avatar_model, "--json"], capsys)
    assert code == 0, err
    stored = json.loads(out)["metrics"]
    code, text, err = run_cli(["info", avatar_model], capsys)
    assert code == 0 and "edits judged: success" in text and "consistent edits: success" in text
    assert stored["source"] == "ccvae eval" and stored["edit"] == mt["edit"]
    after = load_file(str(avatar_model))
    assert set(after) == set(tensors_before) and all(torch.equal(after[k], tensors_before[k]) for k in after)
    meta_after = read_header(avatar_model)["metadata"]
    assert {k: v for k, v in meta_after.items() if k != "ccvae.metrics"} == {
        k: v for k, v in meta_before.items() if k != "ccvae.metrics"}
    assert list(avatar_model.parent.glob(".*.tmp")) == []


def test_eval_is_deterministic_and_renders(avatar_dir_200, avatar_model, judge200, judge_dir, capsys):
    args = ["eval", avatar_dir_200, "-m", avatar_model, "--max-images", 12, "--judge", judge_dir,
            "--samples", 4, "--seed", 3]
    code, out1, err = run_cli(args + ["--json"], capsys)
    assert code == 0, err
    code, out2, _ = run_cli(args + ["--json"], capsys)
    a, b = json.loads(out1), json.loads(out2)
    a.pop("seconds"), b.pop("seconds")
    assert a == b and a["metrics"]["images"] == 12 and a["metrics"]["seed"] == 3
    code, table, err = run_cli(args, capsys)
    assert code == 0, err
    assert f"model: {avatar_model}" in err.splitlines() and "model:" not in table     # which weights, on stderr
    assert "Eyeglasses" in table and "edit success" in table and "from z_c" in table
    assert "\x1b[" not in table                                # no colour off a terminal


def test_eval_unknown_data_path(avatar_model, tmp_path, capsys):
    code, out, err = run_cli(["eval", tmp_path / "nowhere", "-m", avatar_model], capsys)
    assert code == 1 and out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ccvae: error: ") and "nowhere" in lines[0]


def test_eval_refuses_to_overwrite_a_model_with_the_judge(avatar_dir_200, avatar_model, capsys):
    before = avatar_model.read_bytes()
    code, out, err = run_cli(["eval", avatar_dir_200, "-m", avatar_model, "--judge", avatar_model], capsys)
    assert code == 1 and out == "" and "not a ccvae judge file" in err and "Traceback" not in err
    assert avatar_model.read_bytes() == before


def test_eval_label_mismatch_names_the_labels(avatar_dir_200, tmp_path, capsys):
    from ccvae_tools.data.base import Label, Preprocess
    from ccvae_tools.model.network import CCVAE, ModelConfig
    from ccvae_tools.model.weights import build_metadata, save_model

    cfg = ModelConfig(image_size=32, channels=3, labels=[Label("Smiling"), Label("Wavy_Hair")], z_style=2,
                      widths=(8, 8, 8), hidden=16)
    w = save_model(CCVAE(cfg), tmp_path / "wavy.safetensors",
                   build_metadata(CCVAE(cfg), Preprocess(32, 3, "center", None)))
    code, out, err = run_cli(["eval", avatar_dir_200, "-m", w], capsys)
    assert code == 1 and out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ccvae: error: ") and "Traceback" not in err
    assert "Wavy_Hair" in lines[0] and "Smiling" in lines[0] and "Eyeglasses" in lines[0]   # both label lists


def test_regression_scores_and_tied_ranks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    v = 2 * x[:, 0] - x[:, 1]
    s = ev.regression_scores(x[:150], v[:150], x[150:], v[150:])
    assert s["r2"] > 0.999 and s["spearman"] > 0.999
    noise = ev.regression_scores(rng.normal(size=(150, 3)), v[:150], rng.normal(size=(50, 3)), v[150:])
    assert noise["r2"] < 0.2 and abs(noise["spearman"]) < 0.4
    assert ev.spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 2, 3])) == pytest.approx(1.0)
    assert np.isnan(ev.spearman(np.ones(4), np.arange(4.0)))


def test_continuous_capture_reads_a_characteristic_held_in_z_c(decoded200, avatar_model):
    """A characteristic that is exactly the model's own z_c^i (posterior mean) is regressed from z_c^i
    perfectly within each class; a class with one value is reported as skipped, not scored."""
    from ccvae_tools.evaluation.evaluate import evaluate_model
    from ccvae_tools.evaluation.truth import ContinuousTruth
    from ccvae_tools.model.api import load

    m = load(avatar_model)
    i = m.label_names.index("Eyeglasses")
    mu = m.codes(np.asarray(decoded200.images)).cpu().numpy()
    values = mu[:, m.model.label_slice(i)][:, 0].astype(np.float64)
    values[decoded200.labels[:, i] == 0] = 3.0                        # class 0: one value only
    truth = ContinuousTruth(columns={"Eyeglasses": "frame"}, values={"frame": values}, source=Path("x"))
    from ccvae_tools.data.base import TRAIN

    # scored on the train split: 200 images leave too few glasses in the test split to score
    report = evaluate_model(m, decoded200, split=TRAIN, seed=0, draws=2, capture_cap=200, continuous=truth)
    entry = report["metrics"]["capture_continuous"]["Eyeglasses"]
    assert entry["column"] == "frame"
    assert entry["within"]["0"]["skipped"] == "one frame value only"
    scored = entry["within"]["1"]
    assert scored["test"] >= 10
    assert scored["z_c"]["r2"] > 0.99 and scored["z_c"]["spearman"] > 0.99
    assert scored["z_c"]["r2"] > scored["z_s"]["r2"]
