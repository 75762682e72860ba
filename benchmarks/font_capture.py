"""Characteristic capture on typefaces: is a label's continuous characteristic in its own latent?

    python benchmarks/font_capture.py DATA MODEL [MODEL ...]

DATA: a `ccvae data fonts` folder (its truth/characteristics.csv holds each image's weight class,
italic angle and width class); MODEL: weights trained on it. For each pair (Bold, weight class),
(Italic, italic angle), (Condensed, width class), and within each class of the label (within Bold and
within not-Bold, ...), a ridge regression predicts the characteristic from z_c^i (the label's block)
and from z_s (the style latent), fitted on the train split's images and scored on the test split's
(unseen families) as R^2 and Spearman rank correlation. z_c^i ahead of z_s means the label's latent
holds the characteristic, as CCVAE claims.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from ccvae_tools.data.base import TEST, TRAIN
from ccvae_tools.evaluation.run import open_eval_data
from ccvae_tools.model.api import load

PAIRS = (("Bold", "weight_class"), ("Italic", "italic_angle"), ("Condensed", "width_class"))


def ridge_predict(x_train: np.ndarray, v_train: np.ndarray, x_test: np.ndarray, ridge: float = 1e-2):
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    b = np.c_[(x_test - mu) / sd, np.ones(len(x_test))]
    w = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ v_train)
    return b @ w


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    var = truth.var()
    return float(1 - ((truth - pred) ** 2).mean() / var) if var > 0 else float("nan")


def characteristics(data_dir: Path, files) -> dict[str, np.ndarray]:
    with open(data_dir / "truth" / "characteristics.csv", newline="", encoding="utf-8") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    picked = [rows[Path(p).as_posix()] for p in files]          # the decoded files, relative to DATA
    return {name: np.array([float(r[name]) for r in picked]) for _, name in PAIRS}


def report(data_dir: Path, weights: str) -> None:
    m = load(weights)
    _, data = open_eval_data(data_dir, m.meta, None, None, None, workers=1)
    truth = characteristics(data_dir, data.files)
    z = m.codes(np.array(data.images)).cpu().numpy()
    names = m.label_names
    z_s = z[:, m.model.cfg.z_char:]
    print(f"{weights}: {len(z)} images; R^2 / Spearman on the test split (unseen families)")
    print(f"{'label':<10} {'within':<6} {'characteristic':<15} {'n test':>6} {'from z_c^i':>16} {'from z_s':>16}")
    for label, name in PAIRS:
        i = names.index(label)
        z_c = z[:, m.model.label_slice(i)]
        for cls in (0, 1):
            pick = data.labels[:, i] == cls
            tr, te = pick & (data.split == TRAIN), pick & (data.split == TEST)
            if tr.sum() < 10 or te.sum() < 10 or truth[name][te].std() == 0:
                print(f"{label:<10} {cls:<6} {name:<15} {int(te.sum()):>6}  (too few or constant)")
                continue
            v = truth[name]
            cells = []
            for x in (z_c, z_s):
                pred = ridge_predict(x[tr], v[tr], x[te])
                cells.append(f"{r2(v[te], pred):7.3f} / {spearman(v[te], pred):6.3f}")
            print(f"{label:<10} {cls:<6} {name:<15} {int(te.sum()):>6} {cells[0]:>16} {cells[1]:>16}")


if __name__ == "__main__":
    for weights in sys.argv[2:]:
        report(Path(sys.argv[1]), weights)
