"""Is a label missed by the classifier, or missing from the codes? Per label of a trained model:

    python benchmarks/code_probe.py DATA MODEL [--split valid] [--variants 6]

- `model`: the model's own reading, q(y_i | mu_c(x)) at the posterior mean (as training's
  validation lines read it), on the chosen split, and (balanced) on the train images whose labels
  the run kept and on the train images it trained on without labels: far apart, the model has
  learnt its labelled images by heart;
- `probe, all z`: a class-balanced linear probe of the whole posterior mean mu(x), fitted on every
  train image's label (all of them, whatever share the model was trained with). When even this
  probe sits near 0.5 balanced, the codes do not hold the label: no classifier on them, and no
  number of labels for the classifier, will read it; what the encoder keeps has to change;
- `plain probe`: the same probe fitted without class weights, the linear reader of all of z with
  the best accuracy, which is what "above its majority baseline" asks of a rare label;
- the majority baseline, from the train split.

`--fit-frac F` fits both probes on only the train images that `ccvae train --sup-frac F` keeps
(the first share, the paper's selection) instead of all of them: how far F's labels go on these
codes, read the way a balanced linear classifier would read them; `--pixels` adds the same probe of
the raw pixels, the reading that needs no model at all.

DATA is the folder the model was trained on. For generated avatars (`ccvae data avatars`: their
avatars.csv records how each face was drawn), each label whose model balanced accuracy is below
0.85 is broken down by the variants of its rarer class: how many of each the split has, and the
share of them the model and the probe find (e.g. Gray_Hair: grey hair in full, or only a grey fringe
at the sides of a bald head). Output: markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccvae_tools.data.base import TRAIN, VALID, TEST  # noqa: E402
from ccvae_tools.data.shared import labelled_mask  # noqa: E402
from ccvae_tools.evaluation.metrics import fit_softmax_regression, label_metrics, majority_classes  # noqa: E402
from ccvae_tools.evaluation.run import open_eval_data, run_labelled_rows  # noqa: E402
from ccvae_tools.evaluation.truth import load_ground_truth  # noqa: E402
from ccvae_tools.model.api import load  # noqa: E402

SPLITS = {"train": TRAIN, "valid": VALID, "test": TEST}
BREAKDOWN_BELOW = 0.85           # model balanced accuracy under which a label's variants are listed


def probe_predictions(mu_train: np.ndarray, labels_train: np.ndarray, mu_eval: np.ndarray,
                      balanced: bool = True) -> np.ndarray:
    """(N_eval, L) class indices from one linear probe of all of mu per label."""
    pred = np.zeros((len(mu_eval), labels_train.shape[1]), dtype=np.int64)
    for i in range(labels_train.shape[1]):
        known = ~np.isnan(labels_train[:, i])
        y = labels_train[known, i].astype(np.int64)
        if len(np.unique(y)) < 2:            # a few labels may hold one class only: answer it
            pred[:, i] = y[0] if len(y) else 0
            continue
        predict = fit_softmax_regression(mu_train[known], y, int(y.max()) + 1, balanced=balanced)
        pred[:, i] = predict(mu_eval)
    return pred


def train_split_readings(m, data, train_idx: np.ndarray) -> tuple[dict, dict, int]:
    """The model's balanced accuracy per label on the train images the run kept labels for and on
    the rest (selected as training selected them, from the run's options in the weights file)."""
    kept = run_labelled_rows(data, m.meta)
    kept = train_idx if kept is None else kept
    majority = majority_classes(data.labels, train_idx)
    out = []
    for rows in (kept, np.setdiff1d(train_idx, kept)):
        if len(rows) == 0:
            out.append({})
            continue
        pred = m.classify(np.ascontiguousarray(data.images[rows]), draws=0).argmax(-1).numpy()
        out.append(label_metrics(pred, data.labels[rows], majority, m.label_names)["balanced_accuracy"])
    return out[0], out[1], int(len(kept))


def fit_rows(data, train_idx: np.ndarray, frac: float) -> np.ndarray:
    """The train images that `--sup-frac frac` keeps (the first share), less those with no label."""
    keep = labelled_mask(data.labels, train_idx, SimpleNamespace(sup_frac=frac, sup_select="first", seed=0))
    keep &= ~np.isnan(data.labels).all(1)
    return train_idx[keep[train_idx]]


def variant_rows(name: str, rare: int, truth_col: np.ndarray, variants: np.ndarray, model_pred: np.ndarray,
                 probe_pred: np.ndarray, top: int) -> list[str]:
    """One row per variant of the rarer class: count, share found by the model and by the probe."""
    sel = truth_col == rare
    counts = Counter(str(v) for v in variants[sel])
    rows = [f"\n{name}, class {rare} ({int(sel.sum())} images) by variant:\n",
            "| variant | images | model finds | probe finds |", "| --- | --- | --- | --- |"]
    for variant, n in counts.most_common(top):
        hit = sel & (variants.astype(str) == variant)
        rows.append(f"| {variant} | {n} | {(model_pred[hit] == rare).mean():.2f} | {(probe_pred[hit] == rare).mean():.2f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("--split", choices=sorted(SPLITS), default="valid")
    ap.add_argument("--variants", type=int, default=6, help="variants listed per weak label")
    ap.add_argument("--fit-frac", type=float, default=None,
                    help="fit the probes on the first F of the train split only (default: all of it)")
    ap.add_argument("--pixels", action="store_true", help="also a balanced probe of the raw pixels")
    args = ap.parse_args()

    m = load(args.model)
    _, data = open_eval_data(args.data, m.meta, None, None, None, workers=1)
    names = m.label_names
    train_idx, eval_idx = data.indices(TRAIN), data.indices(SPLITS[args.split])
    fit_idx = train_idx if args.fit_frac is None else fit_rows(data, train_idx, args.fit_frac)
    mu_train = m.encode(np.ascontiguousarray(data.images[fit_idx]))[0].numpy()
    mu_eval = m.encode(np.ascontiguousarray(data.images[eval_idx]))[0].numpy()
    truth = data.labels[eval_idx]
    majority = majority_classes(data.labels, train_idx)
    model_pred = m.classify(np.ascontiguousarray(data.images[eval_idx]), draws=0).argmax(-1).numpy()
    probe_pred = probe_predictions(mu_train, data.labels[fit_idx], mu_eval)
    plain = label_metrics(probe_predictions(mu_train, data.labels[fit_idx], mu_eval, balanced=False),
                          truth, majority, names)
    ours, probe = (label_metrics(p, truth, majority, names) for p in (model_pred, probe_pred))
    on_labelled, on_unlabelled, n_labelled = train_split_readings(m, data, train_idx)

    print(f"{args.model} on {args.data}, {args.split} split ({len(eval_idx)} images); probe fitted on "
          f"{len(fit_idx)} train images, all labelled; the run kept labels for {n_labelled} of them\n")
    if args.pixels:
        pixels = lambda rows: np.asarray(data.images[rows], dtype=np.float32).reshape(len(rows), -1)
        on_pixels = label_metrics(probe_predictions(pixels(fit_idx), data.labels[fit_idx], pixels(eval_idx)),
                                  truth, majority, names)
        print(f"balanced probe of the pixels: mean balanced accuracy {on_pixels['mean_balanced_accuracy']:.3f} ("
              + ", ".join(f"{n} {on_pixels['balanced_accuracy'][n]:.3f}" for n in names) + ")\n")
    print("| label | majority baseline | model accuracy | model balanced | model balanced, labelled train images "
          "| unlabelled train images | probe, all z: accuracy | balanced | plain probe: accuracy |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    mean = lambda d: f"{np.mean(list(d.values())):.3f}" if d else "none"
    cell = lambda d, n: f"{d[n]:.3f}" if n in d else "none"
    for n in names:
        print(f"| {n} | {ours['majority_baseline'][n]:.3f} | {ours['accuracy'][n]:.3f} | "
              f"{ours['balanced_accuracy'][n]:.3f} | {cell(on_labelled, n)} | {cell(on_unlabelled, n)} | {probe['accuracy'][n]:.3f} | {probe['balanced_accuracy'][n]:.3f} | "
              f"{plain['accuracy'][n]:.3f} |")
    print(f"| mean | {ours['mean_majority_baseline']:.3f} | {ours['mean_accuracy']:.3f} | "
          f"{ours['mean_balanced_accuracy']:.3f} | {mean(on_labelled)} | {mean(on_unlabelled)} | "
          f"{probe['mean_accuracy']:.3f} | {probe['mean_balanced_accuracy']:.3f} | {plain['mean_accuracy']:.3f} |")

    gt = load_ground_truth([args.data], [data.files[i] for i in eval_idx], names)
    if gt is None:
        return
    for i, n in enumerate(names):
        variants = gt.variants(n)
        if variants is None or ours["balanced_accuracy"][n] >= BREAKDOWN_BELOW:
            continue
        rare = 1 - int(majority[i]) if m.labels[i].num_classes == 2 else int(np.bincount(
            truth[~np.isnan(truth[:, i]), i].astype(int)).argmin())
        print("\n".join(variant_rows(n, rare, truth[:, i], variants, model_pred[:, i], probe_pred[:, i], args.variants)))


if __name__ == "__main__":
    main()
