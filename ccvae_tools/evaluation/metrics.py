"""Label metrics: accuracy, balanced accuracy and the majority-class baseline (training and `ccvae eval`)."""

from __future__ import annotations

import numpy as np


def label_metrics(pred: np.ndarray, truth: np.ndarray, majority: np.ndarray, names: list[str]) -> dict:
    """Per-label accuracy, balanced accuracy and the majority-class baseline on observed entries.

    pred, truth: (N, L) class indices (truth NaN = missing); majority: (L,) majority class of train.
    """
    acc, bal, base, count = {}, {}, {}, {}
    for i, name in enumerate(names):
        obs = ~np.isnan(truth[:, i])
        if not obs.any():
            continue
        t = truth[obs, i].astype(int)
        p = pred[obs, i]
        acc[name] = float((p == t).mean())
        recalls = [float((p[t == c] == c).mean()) for c in np.unique(t)]
        bal[name] = float(np.mean(recalls))
        base[name] = float((t == majority[i]).mean())
        count[name] = int(obs.sum())
    out = {"accuracy": acc, "balanced_accuracy": bal, "majority_baseline": base, "count": count}
    if acc:
        out["mean_accuracy"] = float(np.mean(list(acc.values())))
        out["mean_balanced_accuracy"] = float(np.mean(list(bal.values())))
        out["mean_majority_baseline"] = float(np.mean(list(base.values())))
    return out


def majority_classes(labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.shape[1], dtype=int)
    for i in range(labels.shape[1]):
        col = labels[idx, i]
        col = col[~np.isnan(col)].astype(int)
        if len(col):
            out[i] = int(np.bincount(col).argmax())
    return out
