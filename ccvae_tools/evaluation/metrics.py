"""The pure metric functions of `ccvae eval` and of training's held-out pass (docs/method.md
section 5.8). They take arrays or tensors and return numbers or dicts, so they can be checked on
known cases; none of them touches a model, a judge or a file.

    label_metrics(pred, truth, majority, names)               accuracy, balanced accuracy, majority
    classification_metrics(pred, truth, majority, names)      the same on arrays or tensors
    majority_classes(labels, idx)                             each label's most frequent class in idx
    pixel_l1(x, x_hat)                                        mean per-pixel |x - x_hat| on [0, 1]
    capture_scores(zc_tr, zs_tr, v_tr, zc_te, zs_te, v_te)    variant accuracy from z_c^i vs z_s vs chance
    capture_accuracy(x_tr, v_tr, x_te, v_te)                  one softmax-regression probe (also: each
                                                              label read from z_s, the labels_from_style block)
    capture_summary(capture)                                  where z_c^i beats z_s, counted over labels
    regression_scores(x_tr, v_tr, x_te, v_te)                 a ridge probe of a continuous characteristic:
                                                              R^2 and Spearman (ridge_predict, r_squared, spearman)
    chance_level(v_tr, v_te)                                  the train-majority variant's test share
    coarse_variants(values)                                   'style/#colour' -> 'style'
    edit_success(probs, label, target)                        share judged as the target class
    leakage(probs_before, probs_after, label[, changed])      mean change of the OTHER labels' probabilities
    label_combinations(labels)                                the label vectors seen, with their counts
    consistent_targets(current, label, target, combos, n)     an edit plus the fewest other label changes
                                                              that give a combination seen in training
    carried_share(probs, label, k)                            share judged as class k
    sample_diversity(images)                                  mean per-pixel variance across samples
    mean_of(values), json_ready(obj)                          the report's means and its JSON form

Probabilities are (N, L, K_max) arrays (the layout of the model's q(y|x) and of the judge), with 0 for
the classes a label does not have. The change of one label's distribution is its total variation
distance 0.5 * sum_k |p_k - p'_k|, which is |p_1 - p'_1| for a binary label.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch


def _np(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


# --- labels --------------------------------------------------------------------------------------

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
    """The most frequent class of each label among the rows idx (0 for a label never known there)."""
    out = np.zeros(labels.shape[1], dtype=int)
    for i in range(labels.shape[1]):
        col = labels[idx, i]
        col = col[~np.isnan(col)].astype(int)
        if len(col):
            out[i] = int(np.bincount(col).argmax())
    return out


def classification_metrics(pred: Any, truth: Any, majority: Any, names: Sequence[str]) -> dict:
    """`label_metrics` on arrays or tensors: per-label accuracy, balanced accuracy (mean recall over
    the classes present) and the majority-class baseline, with their means over labels.

    pred (N, L) class indices; truth (N, L) class indices, NaN = missing; majority (L,) the majority
    class of each label on the TRAIN split.
    """
    return label_metrics(_np(pred), _np(truth).astype(np.float64), _np(majority).astype(int), list(names))


# --- pixels --------------------------------------------------------------------------------------

def _unit(x: Any) -> np.ndarray:
    a = _np(x)
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)


def sample_diversity(images: Any) -> float:
    """Mean over pixels of the variance across images (N, C, H, W) on [0, 1] pixels (uint8 / 255).
    0 for identical images; NaN for fewer than two."""
    x = _unit(images)
    if len(x) < 2:
        return float("nan")
    return float(x.var(axis=0).mean())


# --- probes and characteristic capture -----------------------------------------------------------

def chance_level(train_variants: Sequence, test_variants: Sequence) -> float:
    """Share of the test examples that have the most frequent TRAIN variant (ties: the first in
    sorted order): the accuracy of always guessing it."""
    tr, te = np.asarray(train_variants, dtype=object), np.asarray(test_variants, dtype=object)
    if len(te) == 0 or len(tr) == 0:
        return float("nan")
    values, counts = np.unique(tr.astype(str), return_counts=True)
    top = values[int(np.argmax(counts))]
    return float((te.astype(str) == top).mean())


def fit_softmax_regression(x: np.ndarray, y: np.ndarray, num_classes: int, steps: int = 300,
                           l2: float = 1e-3, balanced: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Multinomial logistic regression (standardised inputs, L2 penalty, LBFGS from zero weights:
    deterministic). Returns predict(x) -> class indices. balanced: every class weighs the same in
    the loss (each example by 1 / its class's count), so that a rare class is not left to the
    majority by the fit itself: what a probe for balanced accuracy wants."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean = x.mean(0)
    std = x.std(0)
    std[std < 1e-8] = 1.0
    inputs = torch.from_numpy((x - mean) / std)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    class_weight = None
    if balanced:
        counts = torch.bincount(targets, minlength=num_classes).double()
        class_weight = torch.where(counts > 0, len(targets) / (num_classes * counts.clamp(min=1)), 0.0)
    weight = torch.zeros(inputs.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=int(steps), history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = inputs @ weight + bias
        loss = torch.nn.functional.cross_entropy(logits, targets, weight=class_weight) + l2 * (weight ** 2).sum()
        loss.backward()
        return loss

    prev = torch.get_num_threads()
    torch.set_num_threads(1)        # tiny matrices: threads only add overhead (and stall on a busy CPU)
    try:
        with torch.enable_grad():
            opt.step(closure)
    finally:
        torch.set_num_threads(prev)
    fitted_weight, fitted_bias = weight.detach(), bias.detach()

    def predict(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        if len(z) == 0:
            return np.zeros(0, dtype=np.int64)
        return (torch.from_numpy((z - mean) / std) @ fitted_weight + fitted_bias).argmax(1).numpy()

    return predict


def capture_accuracy(train_x: Any, train_v: Sequence, test_x: Any, test_v: Sequence, steps: int = 300,
                     l2: float = 1e-3) -> float:
    """Test accuracy of a softmax-regression probe predicting the variant from codes, trained on
    the TRAIN codes. A test variant never seen in training counts as an error."""
    tr_v = np.asarray(train_v, dtype=object).astype(str)
    te_v = np.asarray(test_v, dtype=object).astype(str)
    if len(te_v) == 0 or len(tr_v) == 0:
        return float("nan")
    classes = np.unique(tr_v)
    if len(classes) == 1:
        return float((te_v == classes[0]).mean())
    y = np.searchsorted(classes, tr_v)
    predict = fit_softmax_regression(_np(train_x), y, len(classes), steps=steps, l2=l2)
    pred = classes[predict(_np(test_x))]
    return float((pred == te_v).mean())


def capture_scores(zc_train: Any, zs_train: Any, v_train: Sequence, zc_test: Any, zs_test: Any,
                   v_test: Sequence, steps: int = 300, l2: float = 1e-3) -> dict:
    """How well the within-label variant is predicted from z_c^i, from z_s, and by chance."""
    return {
        "z_c": capture_accuracy(zc_train, v_train, zc_test, v_test, steps, l2),
        "z_s": capture_accuracy(zs_train, v_train, zs_test, v_test, steps, l2),
        "chance": chance_level(v_train, v_test),
        "variants": int(len(set(map(str, v_train)) | set(map(str, v_test)))),
        "train": int(len(v_train)),
        "test": int(len(v_test)),
    }


def ridge_predict(train_x: np.ndarray, train_v: np.ndarray, test_x: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """A ridge regression on standardised codes, fitted on the train rows, predicting the test rows."""
    mu, sd, v_mean = train_x.mean(0), train_x.std(0) + 1e-8, train_v.mean()
    a, b = (train_x - mu) / sd, (test_x - mu) / sd          # centred: the intercept is v's mean, not shrunk
    w = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ (train_v - v_mean))
    return b @ w + v_mean


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, tied values sharing the mean of their ranks (weight classes tie a lot)."""
    values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation with tied ranks averaged; NaN when either side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_average_ranks(np.asarray(a)), _average_ranks(np.asarray(b)))[0, 1])


def r_squared(truth: np.ndarray, pred: np.ndarray) -> float:
    """1 - residual variance / variance of the truth (negative when worse than the truth's mean)."""
    var = truth.var()
    return float(1 - ((truth - pred) ** 2).mean() / var) if var > 0 else float("nan")


def regression_scores(train_x: Any, train_v: np.ndarray, test_x: Any, test_v: np.ndarray) -> dict:
    """How well a continuous characteristic is predicted from codes: R^2 and Spearman on the test rows."""
    pred = ridge_predict(_np(train_x).astype(np.float64), np.asarray(train_v, float), _np(test_x).astype(np.float64))
    return {"r2": r_squared(np.asarray(test_v, float), pred), "spearman": spearman(np.asarray(test_v, float), pred)}


CAPTURE_MARGIN = 0.05   # "clearly above": z_c^i's probe beats z_s's by at least this accuracy


def capture_summary(capture: dict, margin: float = CAPTURE_MARGIN) -> dict:
    """Counts over the labels of a `capture` block: where z_c^i predicts the variant better than z_s
    by at least `margin` (clearly), at all, and where z_s does better by the margin; and the means."""
    entries = [e for e in capture.values() if e.get("z_c") is not None and e.get("z_s") is not None]
    diff = [e["z_c"] - e["z_s"] for e in entries]
    return {"labels": len(entries), "margin": margin,
            "z_c_clearly_above": sum(d >= margin - 1e-9 for d in diff), "z_c_above": sum(d > 0 for d in diff),
            "z_s_clearly_above": sum(d <= -margin + 1e-9 for d in diff),
            "mean_z_c": float(np.mean([e["z_c"] for e in entries])) if entries else float("nan"),
            "mean_z_s": float(np.mean([e["z_s"] for e in entries])) if entries else float("nan")}


def coarse_variants(values: Sequence) -> np.ndarray | None:
    """'style/#colour' values -> their style part, when every value has that form; else None."""
    vals = [str(v) for v in values]
    if not vals or not all("/" in v for v in vals):
        return None
    return np.asarray([v.split("/", 1)[0] for v in vals], dtype=object)


# --- edits and samples, as the judge reads them --------------------------------------------------

def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total variation distance over the last axis."""
    return 0.5 * np.abs(p - q).sum(-1)


def edit_success(probs: Any, label: int, target: Any) -> float:
    """Share of images whose judged class of `label` is the target (an int or one per image)."""
    p = _np(probs)
    if len(p) == 0:
        return float("nan")
    t = np.broadcast_to(_np(target), (len(p),))
    return float((p[:, label].argmax(-1) == t).mean())


def carried_share(probs: Any, label: int, k: int) -> float:
    """Share of (sampled) images judged to have class k of `label`."""
    return edit_success(probs, label, k)


def leakage(probs_before: Any, probs_after: Any, label: int, changed: Any = None) -> float:
    """Mean change of the judge's probabilities of the labels OTHER than `label` (per image and other
    label: total variation 0.5 * sum_k |p_k - p'_k|; |delta p_1| for a binary label), averaged over
    images and other labels. `changed` (N, L) bool marks further labels edited on purpose (consistent
    edits), left out of the mean. NaN when there is no other label."""
    a, b = _np(probs_before).astype(np.float64), _np(probs_after).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    keep = np.ones(a.shape[:2], dtype=bool) if changed is None else ~_np(changed).astype(bool)
    keep[:, label] = False
    if len(a) == 0 or not keep.any():
        return float("nan")
    return float(_tv(a, b)[keep].mean())


def label_combinations(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """The distinct label vectors of fully labelled rows (N, L) and how often each occurs."""
    y = _np(labels).astype(np.float64)
    y = y[~np.isnan(y).any(1)] if y.ndim == 2 and len(y) else np.zeros((0, y.shape[-1] if y.ndim == 2 else 0))
    if len(y) == 0:
        return np.zeros((0, y.shape[1]), dtype=np.int64), np.zeros(0, dtype=np.int64)
    combos, counts = np.unique(y.astype(np.int64), axis=0, return_counts=True)
    return combos, counts


def consistent_targets(current: Any, label: int, target: Any, combos: np.ndarray,
                       counts: np.ndarray) -> np.ndarray:
    """For each row of `current` (N, L) classes, the label vector that sets `label` to its target and
    changes as few other labels as needed to reach a combination seen in training (`combos`, the
    most frequent one among equals). Gray_Hair -> 1 on a black-haired face also sets Black_Hair -> 0.
    Rows whose target occurs in no combination change `label` alone."""
    cur = _np(current).astype(np.int64)
    targets = np.broadcast_to(_np(target).astype(np.int64), (len(cur),))
    out = cur.copy()
    out[:, label] = targets
    if len(combos) == 0:
        return out
    others = np.ones(cur.shape[1], dtype=bool)
    others[label] = False
    for k in np.unique(targets):
        rows = np.flatnonzero(targets == k)
        fits = combos[:, label] == k
        if not fits.any():
            continue
        candidates, seen = combos[fits], counts[fits]
        changes = (cur[rows][:, None, others] != candidates[None, :, others]).sum(-1)   # (rows, C)
        score = changes * (int(seen.max()) + 1) - seen[None, :]                         # fewest changes, then most seen
        out[rows] = candidates[score.argmin(1)]
    return out


# --- the report ----------------------------------------------------------------------------------

def mean_of(values: dict) -> float:
    """Mean of a dict's finite values (None and NaN left out); NaN when none is left."""
    vals = [v for v in values.values() if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def json_ready(obj: Any) -> Any:
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj
