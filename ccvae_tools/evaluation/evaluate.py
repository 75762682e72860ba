"""Held-out evaluation of a CCVAE (quality.md, Science): plain metric functions and `evaluate_model`.

Metric functions take arrays or tensors and return numbers or dicts, so they can be checked on known
cases:

    classification_metrics(pred, truth, majority, names)      accuracy, balanced accuracy, majority
    pixel_l1(x, x_hat)                                        mean per-pixel |x - x_hat| on [0, 1]
    capture_scores(zc_tr, zs_tr, v_tr, zc_te, zs_te, v_te)    variant accuracy from z_c^i vs z_s vs chance
    capture_accuracy(x_tr, v_tr, x_te, v_te)                  one softmax-regression probe (also: each
                                                              label read from z_s, the labels_from_style block)
    chance_level(v_tr, v_te)                                  the train-majority variant's test share
    edit_success(probs, label, target)                        share judged as the target class
    leakage(probs_before, probs_after, label[, changed])      mean change of the OTHER labels' probabilities
    consistent_targets(current, label, target, combos, n)     an edit plus the fewest other label changes
                                                              that give a combination seen in training
    carried_share(probs, label, k)                            share judged as class k
    sample_diversity(images)                                  mean per-pixel variance across samples

Probabilities are (N, L, K_max) arrays (the layout of the model's q(y|x) and of the judge), with 0 for
the classes a label does not have. The change of one label's distribution is its total variation
distance 0.5 * sum_k |p_k - p'_k|, which is |p_1 - p'_1| for a binary label.

`evaluate_model` runs all five parts of `ccvae eval` on a decoded data set and returns a report whose
`metrics` block is what `--write-metrics` stores in the weights file (`ccvae.metrics`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ccvae_tools.data.base import SPLIT_NAMES, TEST, TRAIN, Decoded

NONE_VALUES = ("", "none")        # ground-truth cells meaning "not drawn"


# ----------------------------------------------------------------------------------------------
# metric functions
# ----------------------------------------------------------------------------------------------

def _np(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def classification_metrics(pred: Any, truth: Any, majority: Any, names: Sequence[str]) -> dict:
    """Per-label accuracy, balanced accuracy (mean recall over the classes present) and the
    majority-class baseline, with their means over labels (`metrics.label_metrics`).

    pred (N, L) class indices; truth (N, L) class indices, NaN = missing; majority (L,) the majority
    class of each label on the TRAIN split.
    """
    from ccvae_tools.evaluation.metrics import label_metrics

    return label_metrics(_np(pred), _np(truth).astype(np.float64), _np(majority).astype(int), list(names))


def predicted_classes(model, z: torch.Tensor) -> np.ndarray:
    """argmax_k q(y_i = k | z_c^i) for codes (N, Z): (N, L) int."""
    with torch.no_grad():
        z_c, _ = model.split(z)
        return model.log_q_y(z_c).argmax(-1).cpu().numpy()


def pixel_l1(x: Any, x_hat: Any) -> float:
    """Mean per-pixel absolute difference on [0, 1] pixels (uint8 inputs are divided by 255)."""
    a, b = _unit(x), _unit(x_hat)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    return float(np.abs(a - b).mean()) if a.size else float("nan")


def _unit(x: Any) -> np.ndarray:
    a = _np(x)
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)


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
                           l2: float = 1e-3) -> Callable[[np.ndarray], np.ndarray]:
    """Multinomial logistic regression (standardised inputs, L2 penalty, LBFGS from zero weights:
    deterministic). Returns predict(x) -> class indices."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean = x.mean(0)
    std = x.std(0)
    std[std < 1e-8] = 1.0
    X = torch.from_numpy((x - mean) / std)
    Y = torch.from_numpy(np.asarray(y, dtype=np.int64))
    W = torch.zeros(X.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=int(steps), history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(X @ W + b, Y) + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    prev = torch.get_num_threads()
    torch.set_num_threads(1)        # tiny matrices: threads only add overhead (and stall on a busy CPU)
    try:
        with torch.enable_grad():
            opt.step(closure)
    finally:
        torch.set_num_threads(prev)
    W_, b_ = W.detach(), b.detach()

    def predict(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        if len(z) == 0:
            return np.zeros(0, dtype=np.int64)
        return (torch.from_numpy((z - mean) / std) @ W_ + b_).argmax(1).numpy()

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
    t = np.broadcast_to(_np(target).astype(np.int64), (len(cur),))
    out = cur.copy()
    out[:, label] = t
    if len(combos) == 0:
        return out
    others = np.ones(cur.shape[1], dtype=bool)
    others[label] = False
    for k in np.unique(t):
        rows = np.flatnonzero(t == k)
        cand = combos[:, label] == k
        if not cand.any():
            continue
        c, n = combos[cand], counts[cand]
        dist = (cur[rows][:, None, others] != c[None, :, others]).sum(-1)          # (rows, C)
        score = dist * (int(n.max()) + 1) - n[None, :]                             # fewest changes, then most seen
        out[rows] = c[score.argmin(1)]
    return out


def sample_diversity(images: Any) -> float:
    """Mean over pixels of the variance across images (N, C, H, W) on [0, 1] pixels (uint8 / 255).
    0 for identical images; NaN for fewer than two."""
    x = _unit(images)
    if len(x) < 2:
        return float("nan")
    return float(x.var(axis=0).mean())


# ----------------------------------------------------------------------------------------------
# ground truth of generated avatars
# ----------------------------------------------------------------------------------------------

@dataclass
class GroundTruth:
    """Within-label variants of a data set that records its drawing choices (`avatars.json/.csv`)."""

    columns: dict[str, str]                 # data label name -> the column holding its variant
    values: dict[str, np.ndarray]           # column -> object array, one cell per decoded image (None: unknown)
    source: Path

    def variants(self, label: str) -> np.ndarray | None:
        col = self.columns.get(label)
        return None if col is None else self.values.get(col)


def load_ground_truth(folders: Sequence[Path], files: Sequence[str], label_names: Sequence[str]
                      ) -> GroundTruth | None:
    """Read avatars.json + avatars.csv from the first folder that has both; rows matched to the
    decoded images by file name. None when there is no ground truth."""
    from ccvae_tools.data.shared import label_key

    for folder in folders:
        meta_path, table_path = Path(folder) / "avatars.json", Path(folder) / "avatars.csv"
        if meta_path.is_file() and table_path.is_file():
            break
    else:
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        by_key = {label_key(d["name"]): str(d["variant_column"]) for d in meta.get("labels", [])
                  if d.get("variant_column")}
        with open(table_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError, TypeError, csv.Error):
        return None
    if not rows or "file" not in rows[0]:
        return None
    columns = {name: by_key[label_key(name)] for name in label_names if label_key(name) in by_key}
    columns = {k: v for k, v in columns.items() if v in rows[0]}
    by_file = {Path(r["file"]).name: r for r in rows}
    values = {}
    for col in set(columns.values()):
        values[col] = np.asarray([by_file[Path(f).name][col] if Path(f).name in by_file else None
                                  for f in files], dtype=object)
    return GroundTruth(columns=columns, values=values, source=table_path)


def capture_class(truth_col: np.ndarray, variants: np.ndarray, num_classes: int) -> int | None | str:
    """Which examples the capture probe uses: class 1 of a binary label (its positive class), or
    class 0 when only class 0 has several variants (No_Beard: the beard lives in class 0); None for
    a multi-class label (all examples); "skip" when no class has two variants."""
    known = np.asarray([v is not None for v in variants])
    if num_classes != 2:
        vals = {str(v) for v in variants[known & ~np.isnan(truth_col)]}
        return None if len(vals) >= 2 else "skip"
    for k in (1, 0):
        sel = known & (truth_col == k)
        if len({str(v) for v in variants[sel]}) >= 2:
            return k
    return "skip"


# ----------------------------------------------------------------------------------------------
# the evaluation
# ----------------------------------------------------------------------------------------------

def _apply_edits(model, z: torch.Tensor, current: np.ndarray, goal: np.ndarray, edit) -> torch.Tensor:
    """Codes moved from the classes `current` (N, L) to `goal` (N, L): rows that change the same
    labels to the same classes are edited together."""
    wanted = np.where(goal != current, goal, -1)
    keys, group = np.unique(wanted, axis=0, return_inverse=True)
    out = z.clone()
    for g, key in enumerate(keys):
        assign = {j: int(v) for j, v in enumerate(key) if v >= 0}
        if assign:
            rows = torch.from_numpy(group.reshape(-1) == g).to(z.device)
            out[rows] = edit(model, z[rows], assign)
    return out


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _subset(idx: np.ndarray, cap: int | None, seed: int, salt: int) -> np.ndarray:
    """At most `cap` of idx, drawn with the seed, in data order."""
    if cap is None or len(idx) <= cap:
        return idx
    return np.sort(np.random.default_rng([seed, salt]).choice(idx, int(cap), replace=False))


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def _mean(values: dict) -> float:
    vals = [v for v in values.values() if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate_model(m, data: Decoded, *, split: int = TEST, judge=None, truth: GroundTruth | None = None,
                   max_images: int | None = None, seed: int = 0, draws: int = 100, samples: int = 64,
                   edit_cap: int = 500, capture_cap: int = 5000, batch_size: int = 256,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate a loaded model (`api.LoadedModel`) on a decoded data set whose labels are the model's
    labels in the model's order. Returns {"metrics": ..., "details": ..., "seconds": ...}.

    1 classification of q(y|x) at the posterior mean vs the TRAIN majority class; 2 reconstruction L1
    and the bound L(x, y) with all known labels observed (K = draws); 3 each label read from z_s by a
    linear probe (labels_from_style: near the majority baseline when z_s leaves the labels to z_c) and
    characteristic capture (with ground truth); 4 the judge's own accuracy and the success and leakage of edits; 5 conditional
    samples: carried label and diversity. Parts 4-5 need a judge (`ccvae_tools.evaluation.judge.Judge`).
    Deterministic for a seed; the global torch RNG is left as it was.
    """
    from ccvae_tools.interventions import conditional_sample, edit
    from ccvae_tools.objective.bound import ccvae_bound
    from ccvae_tools.evaluation.metrics import majority_classes

    say = progress or (lambda msg: None)
    model = m.model
    labels = list(model.cfg.labels)
    names = [lab.name for lab in labels]
    if data.labels.shape[1] != len(labels):
        raise ValueError(f"the data has {data.labels.shape[1]} labels, the model {len(labels)}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    train_idx = data.indices(TRAIN)
    test_all = data.indices(split)
    test_idx = _subset(test_all, max_images, seed, 1)
    n = len(test_idx)
    majority = majority_classes(data.labels, train_idx)
    y_true = data.labels[test_idx]

    # 1-2: one pass over the test images: codes, classification, reconstruction, bound ------------
    say(f"eval: encoding {n:,} {SPLIT_NAMES[split]} images (bound with K = {draws} draws)")
    mus, l1, bounds = [], [], []
    dev = m.device
    with torch.no_grad(), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        for s in range(0, n, batch_size):
            b = test_idx[s: s + batch_size]
            x = m.to_tensor(np.ascontiguousarray(data.images[b]))
            mu, _ = model.encode(x)
            x_hat = model.decode(mu).float()
            l1.append((x_hat - x).abs().flatten(1).mean(1).cpu())
            lab = torch.from_numpy(data.labels[b]).to(dev)
            observed = ~torch.isnan(lab)
            y = torch.nan_to_num(lab, nan=0.0).long()
            bounds.append(ccvae_bound(model, x, y, observed, draws=draws).bound.float().cpu())
            mus.append(mu)
    z_dim = model.cfg.z_dim
    mu_test = torch.cat(mus) if mus else torch.zeros(0, z_dim, device=dev)
    pred = predicted_classes(model, mu_test) if n else np.zeros((0, len(labels)), dtype=int)
    metrics: dict[str, Any] = {"source": "ccvae eval", "split": SPLIT_NAMES[split], "images": int(n),
                               "seed": int(seed)}
    metrics.update(classification_metrics(pred, y_true, majority, names))
    pixels = int(np.prod(data.images.shape[1:]))
    bound = float(torch.cat(bounds).mean()) if bounds else float("nan")
    metrics.update({"recon_l1": float(torch.cat(l1).mean()) if l1 else float("nan"),
                    "bound": bound, "bound_per_pixel": bound / pixels, "draws": int(draws)})
    counts: dict[str, Any] = {SPLIT_NAMES[split]: int(n), f"{SPLIT_NAMES[split]}_available": int(len(test_all)),
                              "train": int(len(train_idx))}
    details: dict[str, Any] = {}
    timings["classify_bound"] = time.perf_counter() - t0

    # 3: the labels read from z_s; characteristic capture ----------------------------------------
    t1 = time.perf_counter()
    cap_idx = _subset(train_idx, capture_cap, seed, 2)
    say(f"eval: codes of {len(cap_idx):,} train images for the probes")
    mu_cap, _ = m.encode(np.ascontiguousarray(data.images[cap_idx])) if len(cap_idx) else (
        torch.zeros(0, z_dim), None)
    mu_cap, mu_te = mu_cap.cpu().numpy(), mu_test.cpu().numpy()
    zs_tr, zs_te = mu_cap[:, model.cfg.z_char:], mu_te[:, model.cfg.z_char:]
    from_style = {}
    for i, lab in enumerate(labels):
        tr_ok, te_ok = ~np.isnan(data.labels[cap_idx, i]), ~np.isnan(y_true[:, i])
        if tr_ok.sum() >= 2 and te_ok.any():
            from_style[lab.name] = capture_accuracy(zs_tr[tr_ok], data.labels[cap_idx, i][tr_ok].astype(int),
                                                    zs_te[te_ok], y_true[te_ok, i].astype(int))
    metrics["labels_from_style"] = from_style
    metrics["mean_labels_from_style"] = _mean(from_style)
    counts["probe_train"] = int(len(cap_idx))
    if truth is not None and truth.columns:
        say(f"eval: characteristic capture ({', '.join(n_ for n_ in names if n_ in truth.columns)})")
        capture: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for i, lab in enumerate(labels):
            var = truth.variants(lab.name)
            if var is None:
                continue
            sl = model.label_slice(i)
            both = np.concatenate([cap_idx, test_idx])
            which = capture_class(data.labels[both, i], var[both], lab.num_classes)
            if which == "skip":
                skipped[lab.name] = f"no class of {lab.name} has two {truth.columns[lab.name]} variants"
                continue

            def rows(idx: np.ndarray) -> np.ndarray:
                ok = np.asarray([v is not None for v in var[idx]], dtype=bool) & ~np.isnan(data.labels[idx, i])
                if which is not None:
                    ok &= data.labels[idx, i] == which
                return ok

            tr_ok, te_ok = rows(cap_idx), rows(test_idx)
            if tr_ok.sum() < 2 or te_ok.sum() < 1:
                skipped[lab.name] = "too few examples with a variant in train or test"
                continue
            v_tr = var[cap_idx][tr_ok].astype(str)
            v_te = var[test_idx][te_ok].astype(str)
            entry = {"variant": truth.columns[lab.name],
                     "class": None if which is None else lab.classes[which]}
            entry.update(capture_scores(mu_cap[tr_ok, sl], zs_tr[tr_ok], v_tr, mu_te[te_ok, sl], zs_te[te_ok], v_te))
            c_tr, c_te = coarse_variants(v_tr), coarse_variants(v_te)
            if c_tr is not None and c_te is not None and len(set(c_tr) | set(c_te)) >= 2:
                coarse = capture_scores(mu_cap[tr_ok, sl], zs_tr[tr_ok], c_tr, mu_te[te_ok, sl], zs_te[te_ok], c_te)
                entry["coarse"] = {"variant": f"{truth.columns[lab.name]} (before '/')", **coarse}
            capture[lab.name] = entry
        metrics["capture"] = capture
        metrics["capture_summary"] = capture_summary(capture)
        if skipped:
            details["capture_skipped"] = skipped
    timings["capture"] = time.perf_counter() - t1

    # 4-5: the judge: its own accuracy, edits, conditional samples --------------------------------
    if judge is not None:
        t2 = time.perf_counter()
        say(f"eval: judge accuracy on {n:,} images")
        jp = np.concatenate([judge.probs(np.ascontiguousarray(data.images[test_idx[s: s + 1024]]))
                             for s in range(0, n, 1024)]) if n else judge.probs(np.zeros((0,) + data.images.shape[1:], np.uint8))
        jm = classification_metrics(jp.argmax(-1), y_true, majority, names)
        judge_block: dict[str, Any] = {"accuracy": jm["accuracy"], "balanced_accuracy": jm["balanced_accuracy"],
                                       "mean_accuracy": jm.get("mean_accuracy", float("nan"))}
        if judge.meta.get("fingerprint"):
            judge_block["fingerprint"] = judge.meta["fingerprint"]

        ne = min(n, edit_cap)
        mu_e = mu_test[:ne]
        recon = m.decode(mu_e) if ne else np.zeros((0,) + data.images.shape[1:], np.uint8)
        p_rec = judge.probs(recon)
        rm = classification_metrics(p_rec.argmax(-1), y_true[:ne], majority, names)
        judge_block["recon_accuracy"] = rm["accuracy"]
        judge_block["mean_recon_accuracy"] = rm.get("mean_accuracy", float("nan"))
        metrics["judge"] = judge_block
        timings["judge"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        say(f"eval: editing {ne:,} images per label ({len(labels)} labels)")
        success, leak, before, by_target = {}, {}, {}, {}
        current = pred[:ne]
        combos, combo_counts = label_combinations(data.labels[train_idx])
        c_success, c_leak, c_share = {}, {}, {}
        for i, lab in enumerate(labels):
            if ne == 0:
                break
            K = lab.num_classes
            target = (current[:, i] + 1 + (np.arange(ne) % (K - 1))) % K   # binary: the other class; K > 2: cycle
            alone = current.copy()
            alone[:, i] = target
            p_new = judge.probs(m.decode(_apply_edits(model, mu_e, current, alone, edit)))
            success[lab.name] = edit_success(p_new, i, target)
            by_target[lab.name] = {lab.classes[k]: edit_success(p_new[target == k], i, k) for k in range(K)
                                   if (target == k).any()}
            before[lab.name] = edit_success(p_rec, i, target)
            leak[lab.name] = leakage(p_rec, p_new, i)
            if len(combos):   # the same edits made consistent with the label combinations seen in training
                goal = consistent_targets(current, i, target, combos, combo_counts)
                changed = goal != current
                p_new = judge.probs(m.decode(_apply_edits(model, mu_e, current, goal, edit)))
                c_success[lab.name] = edit_success(p_new, i, target)
                c_leak[lab.name] = leakage(p_rec, p_new, i, changed)
                c_share[lab.name] = float(np.delete(changed, i, axis=1).any(1).mean())
        metrics["edit"] = {"success": success, "leakage": leak, "target_before": before,
                           "success_by_target": by_target,
                           "mean_success": _mean(success), "mean_leakage": _mean(leak)}
        if c_success:
            metrics["edit_consistent"] = {"success": c_success, "leakage": c_leak, "also_changed": c_share,
                                          "mean_success": _mean(c_success), "mean_leakage": _mean(c_leak)}
        counts["edit"] = int(ne)
        timings["edit"] = time.perf_counter() - t3

        t4 = time.perf_counter()
        say(f"eval: {samples} conditional samples per label and class")
        carried, diversity, data_div, per_class = {}, {}, {}, {}
        for i, lab in enumerate(labels):
            rows_ = {}
            for k in range(lab.num_classes):
                g = torch.Generator().manual_seed(_seed_of(seed, 3, i, k))
                z = conditional_sample(model, samples, {i: k}, generator=g)
                imgs = m.decode(z)
                real = test_idx[y_true[:, i] == k][:samples]
                rows_[lab.classes[k]] = {
                    "carried": carried_share(judge.probs(imgs), i, k),
                    "diversity": sample_diversity(imgs),
                    "data_diversity": sample_diversity(np.ascontiguousarray(data.images[real]))
                    if len(real) >= 2 else float("nan"),
                }
            per_class[lab.name] = rows_
            carried[lab.name] = _mean({c: r["carried"] for c, r in rows_.items()})
            diversity[lab.name] = _mean({c: r["diversity"] for c, r in rows_.items()})
            data_div[lab.name] = _mean({c: r["data_diversity"] for c, r in rows_.items()})
        metrics["samples"] = {"carried": carried, "diversity": diversity, "data_diversity": data_div,
                              "per_class": per_class, "n": int(samples),
                              "mean_carried": _mean(carried), "mean_diversity": _mean(diversity)}
        counts["samples"] = int(samples)
        timings["samples"] = time.perf_counter() - t4

    metrics["counts"] = counts
    metrics["date"] = date.today().isoformat()
    timings["total"] = time.perf_counter() - t0
    return _clean({"metrics": metrics, "details": details, "seconds": timings})
