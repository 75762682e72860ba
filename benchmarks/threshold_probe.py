"""Would another decision threshold read a label better? For one trained run, per label:

    python benchmarks/threshold_probe.py RUN/model.safetensors

the test accuracy at q = 0.5, with the threshold at which the share of the run's unlabelled train
images called positive equals the labelled images' share (a rule that needs no more labels), and
with the best threshold chosen on the test labels themselves (an upper bound, not a method).
q(y|x) is that of the posterior mean code. Reads the run's options.json beside the weights.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccvae_tools.api import load  # noqa: E402
from ccvae_tools.data.base import TEST, TRAIN  # noqa: E402
from ccvae_tools.evaluation.run import open_eval_data  # noqa: E402
from ccvae_tools.training.batches import labelled_mask  # noqa: E402


def main(weights: Path) -> None:
    m = load(weights)
    opts = json.loads((weights.parent / "options.json").read_text())
    _, data = open_eval_data(Path(opts["data"]), m.meta, None, None, None)
    train, test = data.indices(TRAIN), data.indices(TEST)
    labelled = np.flatnonzero(labelled_mask(data.labels, train, types.SimpleNamespace(**opts)))
    unlabelled = np.setdiff1d(train, labelled)

    def q1(idx):
        return m.classify(np.asarray(data.images[idx]), draws=0)[:, :, 1].numpy()
    p_unl, p_test = q1(unlabelled), q1(test)
    print("| label | majority | at 0.5 | labelled share | best on test |")
    print("| --- | --- | --- | --- | --- |")
    for i, name in enumerate(m.label_names):
        y = data.labels[test, i]
        share = np.nanmean(data.labels[labelled, i])
        threshold = np.quantile(p_unl[:, i], 1 - share)
        best = max(((p_test[:, i] > t) == y).mean() for t in np.quantile(p_test[:, i], np.linspace(0, 1, 201)))
        print(f"| {name} | {max(y.mean(), 1 - y.mean()):.3f} | {((p_test[:, i] > 0.5) == y).mean():.3f} | "
              f"{((p_test[:, i] > threshold) == y).mean():.3f} | {best:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
