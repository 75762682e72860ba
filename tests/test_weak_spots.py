"""Weak spots: edits read back by the model itself, the plain lines, and the commands that print them
(`ccvae eval`, `ccvae edit`, `ccvae sample`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ccvae_tools.data.base import Label
from ccvae_tools.evaluation.heldout import predicted_classes
from ccvae_tools.evaluation.weak_spots import (EDIT_DONE, by_heart_lines, eval_weak_spots, read_back,
                                               read_back_warnings, run_facts, self_read_edit_success,
                                               weak_spot_lines)
from ccvae_tools.model.network import CCVAE, ModelConfig
from helpers.cli import run_cli
from helpers.tiny_model import make_tiny_weights

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "weights" / "avatars64.safetensors"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("CCVAE_DEBUG", raising=False)
    monkeypatch.delenv("CCVAE_MODEL", raising=False)
    monkeypatch.setenv("CCVAE_DEVICE", "cpu")


class RoundTrip(CCVAE):
    """A CCVAE whose decoder writes the code into the first pixels (through a sigmoid) and whose
    encoder reads it back: an edit is read as done exactly when the moved code is on the target's
    side of the classifier (binary labels: z_c^i > 0 is class 1), so the expected counts are known."""

    def decode(self, z):
        img = torch.full((len(z), 3, 32, 32), 0.5)
        img.view(len(z), -1)[:, : z.shape[1]] = torch.sigmoid(z / 4)
        return img

    def encode(self, x):
        p = x.flatten(1)[:, : self.cfg.z_dim].clamp(1e-4, 1 - 1e-4)
        mu = 4 * torch.log(p / (1 - p))
        return mu, torch.ones_like(mu)


def _round_trip() -> RoundTrip:
    cfg = ModelConfig(image_size=32, channels=3, labels=[Label("a"), Label("b"), Label("c")], z_style=2,
                      widths=(8, 8, 8), hidden=16)
    return RoundTrip(cfg).eval()        # priors N(-2, 1) and N(+2, 1); classifier sigmoid(z / 2)


# codes z_c of four images: the quantile map edits -2.5 -> 1.5 (done) but -5 -> -1 (not); the outward
# map -2.5 -> 2.5 and -5 -> 5 (both done)
CODES = torch.tensor([[-2.5, -2.5, 5.0, 0, 0],
                      [-5.0, -2.5, 5.0, 0, 0],
                      [2.5, 2.5, 5.0, 0, 0],
                      [5.0, 2.5, 5.0, 0, 0]])


# ----------------------------------------------------------------------------------------------
# self-read edit success
# ----------------------------------------------------------------------------------------------

def test_self_read_counts_what_the_model_reads_back():
    model = _round_trip()
    images = model.decode(CODES)
    r = self_read_edit_success(model, images, mapping="quantile")
    assert r["images"] == 4
    assert r["success"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert r["edited"] == {"a": 4, "b": 4, "c": 4} and r["done"] == {"a": 2, "b": 4, "c": 0}
    assert r["success_by_target"]["a"] == {"0": 0.5, "1": 0.5}
    assert r["mean_success"] == pytest.approx(0.5)
    assert self_read_edit_success(model, images, batch_size=1, mapping="quantile") == r   # batches change nothing


def test_the_outward_map_does_the_edits_the_quantile_map_leaves_short():
    model = _round_trip()
    r = self_read_edit_success(model, model.decode(CODES))           # the default map
    # -5 -> +5 and, for c, +5 -> -5: each code as far beyond the new class's mean as it was from its own
    assert r["success"] == {"a": 1.0, "b": 1.0, "c": 1.0} and r["mean_success"] == pytest.approx(1.0)


def test_images_already_at_the_value_are_no_edit():
    model = _round_trip()
    r = self_read_edit_success(model, model.decode(CODES), mapping="quantile")
    # every image has c = 1: only the edits to 0 count, and there is no share of edits to 1
    assert r["edited_by_target"]["c"] == {"0": 4, "1": 0}
    assert r["success_by_target"]["c"] == {"0": 0.0, "1": None}
    assert r["edited_by_target"]["a"] == {"0": 2, "1": 2}


def test_self_read_counts_of_a_tiny_model_follow_its_own_classes(tiny):
    from ccvae_tools.model.api import load

    m = load(tiny)
    x = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    r = self_read_edit_success(m.model, x, batch_size=4)
    pred = predicted_classes(m.model, m.model.encode(x)[0])
    for i, name in enumerate(m.label_names):
        assert r["edited_by_target"][name] == {str(v): int((pred[:, i] != v).sum()) for v in (0, 1)}
        assert r["edited"][name] == 10 and 0 <= r["done"][name] <= 10
    assert self_read_edit_success(m.model, x) == r                          # deterministic


def test_an_empty_batch_has_no_share():
    r = self_read_edit_success(_round_trip(), torch.zeros(0, 3, 32, 32))
    assert r["images"] == 0 and r["success"] == {"a": None, "b": None, "c": None} and r["mean_success"] is None


# ----------------------------------------------------------------------------------------------
# the lines
# ----------------------------------------------------------------------------------------------

RUN = dict(image_size=64, labelled_fraction=1.0, epochs=30)


def test_nothing_weak_gives_no_line():
    acc, base = {"Smiling": 0.95, "Gray_Hair": 0.91}, {"Smiling": 0.5, "Gray_Hair": 0.906}
    assert weak_spot_lines(acc, base, {"Smiling": 1.0, "Gray_Hair": 1.0}, **RUN) == []
    assert weak_spot_lines(acc, base, None, **RUN) == []
    assert weak_spot_lines(acc, base, {"Smiling": EDIT_DONE}, **RUN) == []          # 0.7 itself is no weak spot


def test_a_label_at_its_baseline_and_an_edit_that_does_not_show():
    acc, base = {"Smiling": 0.95, "Gray_Hair": 0.890, "Bald": 0.9}, {"Smiling": 0.5, "Gray_Hair": 0.906, "Bald": 0.9}
    lines = weak_spot_lines(acc, base, {"Smiling": 0.41, "Gray_Hair": None}, image_size=32, labelled_fraction=0.06,
                            epochs=3)
    assert lines[0] == "Gray_Hair is read no better than always answering its majority class (0.890 against 0.906)"
    assert lines[1].startswith("Bald is read no better")                     # at the baseline counts
    assert lines[2] == "edits of Smiling are read as done 0.41 of the time (by the model's own classifier)"
    assert len(lines) == 4
    advice = lines[3]
    assert advice.startswith("try more epochs (this run had 3)")
    assert "more labels" in advice and "6.0%" in advice and "--image-size" in advice and "--swap-cycle 1" in advice


def test_the_advice_follows_what_is_weak():
    read_only = weak_spot_lines({"A": 0.5}, {"A": 0.6}, {"A": 0.9}, **RUN)[-1]
    assert "more epochs" in read_only and "swap" not in read_only and "labels" not in read_only
    assert "--image-size" not in read_only                                       # 64 px already
    edits_only = weak_spot_lines({"A": 0.9}, {"A": 0.6}, {"A": 0.2}, **RUN, swap_cycle=50.0)[-1]
    assert "a larger --swap-cycle (this run had 50)" in edits_only and "labels" not in edits_only
    few = weak_spot_lines({"A": 0.5}, {"A": 0.6}, None, image_size=64, labelled_fraction=0.5, epochs=None)[-1]
    assert few.startswith("try more epochs;") and "50.0%" in few


def test_a_label_read_right_on_its_labelled_images_only_is_learnt_by_heart():
    on_labelled = {"Gray_Hair": 1.0, "Blond_Hair": 0.99, "Bald": 0.97, "Smiling": 1.0}
    held_out = {"Gray_Hair": 0.565, "Blond_Hair": 0.9, "Bald": 0.5}          # Smiling: not read there
    lines = by_heart_lines(on_labelled, held_out, 576)
    # Blond_Hair's gap is under 0.15; Bald is not read well enough on its own labelled images
    assert lines == ["Gray_Hair is learnt by heart: read at 1.00 (balanced) on the 576 labelled train images, "
                     "0.56 on held-out ones"]
    assert by_heart_lines({"x\x1b[2J": 1.0}, {"x\x1b[2J": 0.5}, 10)[0].startswith("x\\x1b[2J is learnt")
    # the advice then puts more labels first
    advice = weak_spot_lines({"Gray_Hair": 0.95}, {"Gray_Hair": 0.9}, None, image_size=64, labelled_fraction=0.06,
                             epochs=10, by_heart=lines)
    assert advice[0] == lines[0] and advice[-1].startswith("try more labels (this run had them for 6.0%")
    assert "more epochs (this run had 10)" in advice[-1]


def test_names_from_files_are_made_safe():
    lines = weak_spot_lines({"evil\x1b[2J": 0.1}, {"evil\x1b[2J": 0.5}, {"evil\x1b[2J": 0.0}, **RUN)
    assert all("\x1b" not in line for line in lines) and "evil\\x1b[2J" in lines[0]


def test_run_facts_from_the_shipped_weights():
    from ccvae_tools.model.weights import read_metadata

    facts = run_facts(read_metadata(DEFAULT_MODEL))
    assert facts == {"image_size": 64, "labelled_fraction": 1.0, "epochs": 8, "swap_cycle": 50.0}
    assert run_facts({"ccvae.train": "not a dict"}) == {"image_size": None, "labelled_fraction": None,
                                                          "epochs": None, "swap_cycle": None}


def test_an_untrained_models_lines_name_its_labels(tiny, avatar_celeba_dir):
    from ccvae_tools.data.base import TRAIN
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog
    from ccvae_tools.evaluation.metrics import classification_metrics, majority_classes
    from ccvae_tools.model.api import load

    m = load(tiny)
    data = load_decoded(open_catalog(avatar_celeba_dir, size=32, labels=m.label_names), workers=1)
    x = m.to_tensor(np.asarray(data.images))
    pred = predicted_classes(m.model, m.model.encode(x)[0])
    mt = classification_metrics(pred, data.labels, majority_classes(data.labels, data.indices(TRAIN)), m.label_names)
    edits = self_read_edit_success(m.model, x)
    lines = weak_spot_lines(mt["accuracy"], mt["majority_baseline"], edits["success"], **run_facts(m.meta))
    for name in m.label_names:
        assert any(name in line for line in lines[:-1]), (name, lines)
    assert lines[-1].startswith("try ") and "--swap-cycle 1" in lines[-1] and "--image-size" in lines[-1]


# ----------------------------------------------------------------------------------------------
# results read back
# ----------------------------------------------------------------------------------------------

def test_read_back_counts_the_results_on_the_wrong_side():
    model = _round_trip()
    images = model.decode(CODES)
    reads = read_back(model, images, {2: 1, 0: 1})
    assert [(r.label, r.value, r.results, r.not_done) for r in reads] == [(0, 1, 4, 2), (2, 1, 4, 0)]
    assert reads[0].mean_q < 0.5 and np.isnan(reads[1].mean_q)
    lines = read_back_warnings(reads, model.cfg.labels)
    assert lines == [f"the model does not read a=1 in 2 of 4 edited images (q = {reads[0].mean_q:.2f} on average "
                     f"there); the edit may not show: see ccvae eval"]
    assert read_back_warnings(read_back(model, images[2:], {1: 1, 2: 1}), model.cfg.labels) == []


# ----------------------------------------------------------------------------------------------
# the commands
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faces64(tmp_path_factory) -> list[Path]:
    """Four generated 64 px avatars, the shipped model's own kind of image."""
    from ccvae_tools.data.avatars import generate_avatars

    d = generate_avatars(tmp_path_factory.mktemp("faces") / "set", n=4, seed=0, size=64, workers=1)
    return sorted((d / "img_align_celeba").glob("*.png"))


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_an_edit_that_works_prints_nothing(faces64, tmp_path, capsys):
    code, out, err = run_cli(["edit", *faces64, "--set", "smiling=1", "-o", tmp_path, "-m", DEFAULT_MODEL], capsys)
    assert code == 0, err
    assert _warnings(err) == [] and len(out.splitlines()) == 4


def test_an_edit_the_model_reads_as_not_done_is_told(tiny, faces64, tmp_path, capsys):
    from ccvae_tools.data.images import load_image
    from ccvae_tools.interventions import edit
    from ccvae_tools.model.api import load

    m = load(tiny)
    x = np.stack([load_image(f, m.preprocess) for f in faces64])
    edited = m.decode(edit(m.model, m.codes(x), {0: 0}))
    wrong = int((m.classify_codes(m.codes(edited))[:, 0].argmax(-1) != 0).sum())
    assert wrong > 0                                                 # the untrained model's edit fails
    code, out, err = run_cli(["edit", *faces64, "--set", "smiling=0", "-o", tmp_path, "-m", tiny], capsys)
    assert code == 0, err
    assert _warnings(err) == [f"warning: the model does not read Smiling=0 in {wrong} of 4 edited images "
                              f"(q = {_mean_q(m, edited, 0, 0):.2f} on average there); the edit may not show: "
                              f"see ccvae eval"]


def _mean_q(m, images, label, value) -> float:
    p = m.classify_codes(m.codes(images))[:, label]
    return float(p[p.argmax(-1) != value, value].mean())


def test_samples_are_read_back_too(tiny, tmp_path, capsys):
    code, _, err = run_cli(["sample", "--set", "smiling=0", "-n", 4, "-o", tmp_path / "s.png", "-m", tiny], capsys)
    assert code == 0, err
    lines = _warnings(err)
    assert len(lines) == 1 and "does not read Smiling=0 in" in lines[0] and "of 4 samples" in lines[0]
    code, _, err = run_cli(["sample", "-n", 2, "-o", tmp_path / "t.png", "-m", tiny], capsys)     # nothing set
    assert code == 0 and _warnings(err) == [], err


@pytest.fixture(scope="module")
def barely_trained(avatar_celeba_dir, tmp_path_factory) -> Path:
    """A 32 px model trained for one epoch on 20 avatars (a few seconds)."""
    from ccvae_tools.training.loop import train
    from ccvae_tools.training.options import resolve_options

    out = tmp_path_factory.mktemp("barely")
    run = train(resolve_options(dict(data=str(avatar_celeba_dir), image_size=32, epochs=1, batch_size=16,
                                      z_style=4, draws=2, preview_every=0, workers=1, device="cpu",
                                      out=str(out), seed=0)))
    return Path(run) / "model.safetensors"


def test_eval_prints_weak_spots_and_keeps_the_self_read(avatar_celeba_dir, barely_trained, tmp_path, capsys):
    args = ["eval", avatar_celeba_dir, "-m", barely_trained, "--judge", tmp_path, "--judge-epochs", 1,
            "--samples", 2, "--draws", 2, "--split", "train"]
    code, out, err = run_cli(args + ["--json"], capsys)
    assert code == 0, err
    mt = json.loads(out)["metrics"]
    self_read = mt["edit_self_read"]
    assert set(self_read["success"]) == set(mt["accuracy"]) and self_read["images"] == mt["images"]
    assert all(n == mt["images"] for n in self_read["edited"].values())      # binary labels: one edit each
    spots = [line[len("weak spot: "):] for line in err.splitlines() if line.startswith("weak spot: ")]
    expected = weak_spot_lines(mt["accuracy"], mt["majority_baseline"], self_read["success"],
                               **run_facts(_meta(barely_trained)))
    assert spots == expected and len(spots) >= 2 and spots[-1].startswith("try more epochs (this run had 1)")
    code, table, err2 = run_cli(args, capsys)                               # after the tables too
    assert code == 0 and "edit success" in table and "weak spot:" not in table
    assert [ln for ln in err2.splitlines() if ln.startswith("weak spot: ")] == ["weak spot: " + s for s in spots]


def _meta(path: Path) -> dict:
    from ccvae_tools.model.weights import read_metadata

    return read_metadata(path)


def test_train_ends_with_its_weak_spots(barely_trained):
    """The run folder keeps the lines `ccvae train` printed at its end, made from its last held-out
    pass and the edits of its validation images read back."""
    run = barely_trained.parent
    kept = json.loads((run / "weak_spots.json").read_text())
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    self_read = kept["edit_self_read"]
    assert set(self_read["success"]) == set(last["accuracy"]) and self_read["images"] == last["eval_images"]
    expected = weak_spot_lines(last["accuracy"], last["majority_baseline"], self_read["success"],
                               **run_facts(_meta(barely_trained)))
    assert kept["lines"] == expected and kept["lines"][-1].startswith("try more epochs (this run had 1)")


def test_a_few_label_run_reads_its_labelled_images_back(avatar_celeba_dir, tmp_path, capsys):
    args = ["train", avatar_celeba_dir, "--image-size", 32, "--epochs", 1, "--batch-size", 16, "--z-style", 4,
            "--draws", 2, "--preview-every", 0, "--device", "cpu", "--out", tmp_path, "--seed", 1,
            "--sup-frac", 0.25]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    run = next(tmp_path.glob("*/weak_spots.json")).parent
    kept = json.loads((run / "weak_spots.json").read_text())
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    read = kept["labelled_read"]
    assert set(read["balanced_accuracy"]) == set(last["balanced_accuracy"]) and read["images"] > 0
    expected = weak_spot_lines(last["accuracy"], last["majority_baseline"], kept["edit_self_read"]["success"],
                               **run_facts(_meta(run / "model.safetensors")),
                               by_heart=by_heart_lines(read["balanced_accuracy"], last["balanced_accuracy"],
                                                       read["images"]))
    assert kept["lines"] == expected
    # `ccvae eval` finds the same labelled images again from the weights' own options
    code, out, err = run_cli(["eval", avatar_celeba_dir, "-m", run / "model.safetensors", "--judge", tmp_path / "j",
                              "--judge-epochs", 1, "--samples", 2, "--draws", 2, "--json"], capsys)
    assert code == 0, err
    mt = json.loads(out)["metrics"]
    assert mt["labelled_read"]["images"] == read["images"]
    assert set(mt["labelled_read"]["balanced_accuracy"]) == set(read["balanced_accuracy"])
    spots = [line[len("weak spot: "):] for line in err.splitlines() if line.startswith("weak spot: ")]
    assert spots == eval_weak_spots(mt, _meta(run / "model.safetensors"))


def test_eval_names_labels_learnt_by_heart_from_its_metrics():
    metrics = {"accuracy": {"A": 0.9}, "majority_baseline": {"A": 0.5}, "balanced_accuracy": {"A": 0.6},
               "labelled_read": {"balanced_accuracy": {"A": 1.0}, "images": 40}}
    lines = eval_weak_spots(metrics, {})
    assert lines[0] == "A is learnt by heart: read at 1.00 (balanced) on the 40 labelled train images, 0.60 on held-out ones"
    assert lines[-1].startswith("try more epochs")              # the run's labelled share is not in the metadata
    for hostile in (None, "x", {"images": "many"}, {"balanced_accuracy": [1.0], "images": 3}):
        assert eval_weak_spots({**metrics, "labelled_read": hostile}, {}) == []


def test_train_prints_its_weak_spots(avatar_celeba_dir, tmp_path, capsys):
    args = ["train", avatar_celeba_dir, "--image-size", 32, "--epochs", 1, "--batch-size", 16, "--z-style", 4,
            "--draws", 2, "--preview-every", 0, "--device", "cpu", "--out", tmp_path, "--seed", 1]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    kept = json.loads(next(tmp_path.glob("*/weak_spots.json")).read_text())
    printed = [ln[len("weak spot: "):] for ln in (out + err).splitlines() if ln.startswith("weak spot: ")]
    assert printed == kept["lines"] and printed
