"""Training learns the labels: held-out accuracy of easy labels beats the majority-class baseline.

The fast test (CI) trains briefly on 600 generated avatars; the slow ones (`pytest -m slow`) run the
issue's protocol: 2,000 avatars at 32 px for a few minutes, fully labelled and at 5 % labels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EASY = ("Eyeglasses", "Wearing_Hat", "Black_Hair", "Pale_Skin")


def train_cli(data: Path, out: Path, *extra) -> dict:
    args = [sys.executable, "-m", "ccvae_tools", "train", str(data), "--preset", "avatars", "--image-size", "32",
            "--batch-size", "32", "--lr", "1e-3", "--preview-every", "0", "--device", "cpu", "--seed", "0",
            "--out", str(out), *map(str, extra)]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    run = Path(res.stdout.strip().splitlines()[-1])
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def margins(metrics: dict) -> dict[str, float]:
    return {k: metrics["accuracy"][k] - metrics["majority_baseline"][k] for k in EASY}


@pytest.fixture(scope="module")
def avatars_600(tmp_path_factory) -> Path:
    from ccvae_tools.data.avatars import generate_avatars

    return generate_avatars(tmp_path_factory.mktemp("learn") / "av600", n=600, seed=2, size=32, workers=1)


def test_short_training_beats_the_majority_baseline_on_easy_labels(avatars_600, tmp_path):
    # the bound + alpha alone: the preset's style adversary slows the first epochs of so small a run
    m = train_cli(avatars_600, tmp_path / "runs", "--epochs", 6, "--draws", 20, "--style-adversary", 0)
    best = max(margins(m).values())
    assert best > 0.05, margins(m)
    assert m["mean_balanced_accuracy"] > 0.55


@pytest.fixture(scope="module")
def avatars_2000(tmp_path_factory) -> Path:
    from ccvae_tools.data.avatars import generate_avatars

    return generate_avatars(tmp_path_factory.mktemp("learn") / "av2000", n=2000, seed=1, size=32)


@pytest.mark.slow
@pytest.mark.parametrize("sup_frac", [1.0, 0.05])
def test_a_few_minutes_of_training_learns_easy_labels(avatars_2000, tmp_path, sup_frac):
    m = train_cli(avatars_2000, tmp_path / "runs", "--epochs", 15, "--sup-frac", sup_frac)
    mg = margins(m)
    assert sum(v > 0.05 for v in mg.values()) >= 2, mg
    assert m["mean_accuracy"] > m["mean_majority_baseline"], m
