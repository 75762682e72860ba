"""`ccvae train --log tensorboard` (issue 27, item 2): each evaluation's numbers and each preview go
to RUN/tensorboard/ as event files, read back here with TensorBoard's own reader; a resumed run
repeats no step (the interrupted run's events after its checkpoint are purged); label names from the
data become safe tags; without the tensorboard package the option fails in one line, before any work.

Runs are of the 20-avatar fixture at batch size 4: 4 steps an epoch, 2 epochs, a few seconds each."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ccvae_tools.training import loop
from ccvae_tools.training.loop import train
from ccvae_tools.training.options import resolve_options, resumable_options
from ccvae_tools.training.tensorboard import MISSING, TensorBoardLog, label_tags, metric_scalars
from ccvae_tools.util.errors import Interrupted, UsageError
from ccvae_tools.util.text import slug
from helpers.cli import assert_one_line, run_cli
from helpers.hostile import HOSTILE
from helpers.options import opts_for

pytestmark = pytest.mark.usefixtures("clean_env")

KW = dict(epochs=2, batch_size=4, draws=4, preview_every=1, log="tensorboard")
STEPS_PER_EPOCH = 4
LABELS = ("Smiling", "Eyeglasses", "Wearing_Hat")           # some of the avatars' labels
SAFE_TAG = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def read_back(path: Path) -> EventAccumulator:
    """TensorBoard's view of an event folder (or one file): every scalar and image kept."""
    return EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0}).Reload()


def steps_of(acc: EventAccumulator) -> dict[str, list[int]]:
    """tag -> the steps it has, in the order read, for scalars and images."""
    tags = acc.Tags()
    out = {t: [e.step for e in acc.Scalars(t)] for t in tags["scalars"]}
    out.update({t: [e.step for e in acc.Images(t)] for t in tags["images"]})
    return out


def metrics_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(avatar_celeba_dir, tmp_path_factory) -> Path:
    """An uninterrupted run with --log tensorboard: what every resumed run must read back as."""
    return train(opts_for(avatar_celeba_dir, tmp_path_factory.mktemp("reference"), **KW))


def test_scalars_and_previews_are_read_back(reference):
    acc = read_back(reference / "tensorboard")
    lines = metrics_lines(reference)
    steps = [ln["step"] for ln in lines]
    assert steps == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]              # one evaluation an epoch
    expected = {"train/loss", "train/images_per_s", "train/images_seen", "valid/bound", "valid/recon_l1",
                "valid/mean_accuracy", "valid/mean_balanced_accuracy", "valid/mean_majority_baseline",
                *(f"valid/{kind}/{label}" for kind in ("accuracy", "balanced_accuracy", "majority_baseline")
                  for label in LABELS)}
    scalars = set(acc.Tags()["scalars"])
    assert expected <= scalars
    assert all(SAFE_TAG.match(t) for t in scalars)
    assert not {t for t in scalars if t.endswith(("seconds", "/epoch", "/step", "/time", "/count"))}
    for tag in scalars:                   # one value per evaluation, at its step, steps increasing
        assert [e.step for e in acc.Scalars(tag)] == steps, tag
    # the values are metrics.jsonl's (as float32)
    for tag, pick in {"valid/bound": lambda ln: ln["bound"], "train/loss": lambda ln: ln["train_loss"],
                      "valid/accuracy/Eyeglasses": lambda ln: ln["accuracy"]["Eyeglasses"],
                      "valid/majority_baseline/Smiling": lambda ln: ln["majority_baseline"]["Smiling"],
                      "train/images_seen": lambda ln: ln["images_seen"]}.items():
        assert [e.value for e in acc.Scalars(tag)] == pytest.approx([pick(ln) for ln in lines], rel=1e-6), tag
    # the preview of each epoch, the picture of previews/epochNNNN.png
    assert acc.Tags()["images"] == ["preview"]
    images = acc.Images("preview")
    assert [e.step for e in images] == steps
    png = Image.open(reference / "previews" / "epoch0002.png")
    assert (images[-1].width, images[-1].height) == png.size
    assert "log" in resumable_options()


def _stop_at_once_at_the_second_checkpoint(avatar_celeba_dir, tmp_path, monkeypatch) -> Path:
    """Epoch 2 evaluated and previewed, then a second Ctrl-C during its checkpoint: the folder holds
    epoch 1's checkpoint (step 4) and the event file holds step 8 too."""
    real = loop._save_checkpoint

    def ctrl_c_at_epoch_2(s, weights_only=False):
        if s.counters.epoch == 2 and not weights_only:
            raise KeyboardInterrupt
        real(s, weights_only)

    monkeypatch.setattr(loop, "_save_checkpoint", ctrl_c_at_epoch_2)
    with pytest.raises(Interrupted, match="stopped at once"):
        train(opts_for(avatar_celeba_dir, tmp_path, **KW))
    monkeypatch.setattr(loop, "_save_checkpoint", real)
    return next((tmp_path / "runs").glob("0*"))


@pytest.mark.parametrize("how", ["stopped at once after an evaluation", "max steps at an epoch's end"])
def test_a_resumed_run_repeats_no_step(avatar_celeba_dir, tmp_path, monkeypatch, reference, how):
    if how == "stopped at once after an evaluation":
        run = _stop_at_once_at_the_second_checkpoint(avatar_celeba_dir, tmp_path, monkeypatch)
        overrides = {}
    else:   # stopped after step 4, the epoch's last: its evaluation is at step 4, and again when resumed
        run = train(opts_for(avatar_celeba_dir, tmp_path, **KW, max_steps=STEPS_PER_EPOCH))
        overrides = {"max_steps": 0}
    before = steps_of(read_back(run / "tensorboard"))
    train(opts_for(avatar_celeba_dir, tmp_path), resume=str(run), overrides=overrides)

    files = sorted((run / "tensorboard").iterdir())
    assert len(files) == 2                                      # the interrupted run's, the resumed run's
    written = [steps_of(read_back(f)) for f in files]
    repeated = sorted(set(written[0]["valid/bound"]) & set(written[1]["valid/bound"]))
    assert repeated == [before["valid/bound"][-1]]              # on disk twice: the resume had to purge it
    acc = read_back(run / "tensorboard")
    got, want = steps_of(acc), steps_of(read_back(reference / "tensorboard"))
    assert got.keys() == want.keys()
    for tag, steps in got.items():
        assert len(steps) == len(set(steps)), (tag, steps)     # no step twice
        assert sorted(steps) == want[tag], tag                 # the steps of the uninterrupted run
    ref = read_back(reference / "tensorboard")                  # exact resume: the same held-out numbers
    for tag in ("valid/bound", "valid/recon_l1", "valid/accuracy/Smiling"):
        assert [e.value for e in acc.Scalars(tag)] == [e.value for e in ref.Scalars(tag)], tag


def test_hostile_label_names_become_safe_distinct_tags():
    names = [*HOSTILE.values(), "a b", "a_b", "a/b", "", "Smiling"]
    line = {"split": "valid", "bound": -1.0, "accuracy": {n: 0.5 for n in names},
            "majority_baseline": {n: 0.25 for n in names}, "count": {n: 3 for n in names}}
    tags = metric_scalars(line)
    per_label = [t for t in tags if t.startswith("valid/accuracy/")]
    assert len(per_label) == len(set(per_label)) == len(names)  # every label its own series
    for tag in tags:
        assert SAFE_TAG.match(tag), repr(tag)
        assert ".." not in tag.split("/") and tag.count("/") <= 2, tag
    parts = label_tags(names)
    assert parts["Smiling"] == "Smiling" and parts["x/../../escaped"] == slug("x/../../escaped")
    assert {parts["a b"], parts["a_b"]} == {"a_b", "a_b-2"}
    assert tags["valid/bound"] == -1.0 and not any("count" in t for t in tags)


def _hostile_folder(root: Path) -> Path:
    """24 noise images in the folder + CSV layout, whose label columns have hostile names."""
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["image,x/../../escaped,\x1b]0;pwned\x07,split"]
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{i % 2},{(i // 2) % 2},{'valid' if i >= 20 else 'train'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "labels.csv"


def test_a_run_on_hostile_label_names_writes_safe_tags(tmp_path):
    csv = _hostile_folder(tmp_path / "data")
    run = train(opts_for(csv, tmp_path, **{**KW, "epochs": 1, "preview_every": 0}))
    tags = set(read_back(run / "tensorboard").Tags()["scalars"])
    assert {"valid/accuracy/x_._._escaped", "valid/accuracy/0_pwned"} <= tags
    assert all(SAFE_TAG.match(t) for t in tags)


def test_without_tensorboard_the_option_is_one_line_before_any_work(avatar_celeba_dir, tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)              # as if it were not installed
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "runs"
    code, _, err = run_cli(["train", avatar_celeba_dir, "--image-size", 32, "--epochs", 1, "--device", "cpu",
                            "--out", out, "--log", "tensorboard"], capsys)
    assert_one_line(code, err, (2,), "--log tensorboard", "pip install 'ccvae-tools[tensorboard]'")
    assert not out.exists()                                            # nothing made, nothing decoded
    with pytest.raises(UsageError, match=re.escape(MISSING)):
        resolve_options({"log": "tensorboard"})
    monkeypatch.delitem(sys.modules, "tensorboard")                    # installed, but torch's side fails
    with pytest.raises(UsageError, match=re.escape(MISSING)):
        TensorBoardLog(tmp_path / "tb")
    assert resolve_options({"log": "none"}).log == "none"              # without it, training is as before
