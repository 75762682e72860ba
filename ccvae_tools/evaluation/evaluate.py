"""`evaluate_model`: the held-out evaluation of `ccvae eval` (docs/method.md section 5.8), run as
its five parts in order (`evaluation.parts`) on a decoded data set.

The metric functions are in `evaluation.metrics`, the shared held-out pass in `evaluation.heldout`,
the ground truth of generated avatars in `evaluation.truth`, the judge in `evaluation.judge`, and
opening the data and storing the result for the command in `evaluation.run`.
"""

from __future__ import annotations

from typing import Callable

from ccvae_tools.data.base import TEST, Decoded
from ccvae_tools.evaluation.heldout import heldout_pass
from ccvae_tools.evaluation.parts import (EvalSet, Report, classification, conditional_samples,
                                          judge_accuracy_and_edits, reconstruction_and_bound,
                                          self_read_edits, style_probe_and_capture)
from ccvae_tools.evaluation.truth import ContinuousTruth, GroundTruth
from ccvae_tools.evaluation.weak_spots import SELF_READ_IMAGES
from ccvae_tools.interventions import EDIT_MAPS


def evaluate_model(m, data: Decoded, *, split: int = TEST, judge=None, truth: GroundTruth | None = None,
                   continuous: ContinuousTruth | None = None,
                   max_images: int | None = None, seed: int = 0, draws: int = 100, samples: int = 64,
                   edit_cap: int = 500, capture_cap: int = 5000, self_read_cap: int = SELF_READ_IMAGES,
                   batch_size: int = 256, edit_map: str = EDIT_MAPS[0],
                   progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate a loaded model (`api.LoadedModel`) on a decoded data set whose labels are the model's
    labels in the model's order. Returns {"metrics": ..., "details": ..., "seconds": ...}; `metrics`
    is what `--write-metrics` stores in the weights file (`ccvae.metrics`).

    1 classification of q(y|x) at the posterior mean vs the TRAIN majority class; 2 reconstruction L1
    and the bound L(x, y) with all known labels observed (K = draws); 3 each label read from z_s by a
    linear probe and characteristic capture (with ground truth: variants, or continuous
    characteristics), after the edits of the first self_read_cap images read back by the model's
    own classifier (`metrics["edit_self_read"]`, no judge needed); 4 the judge's own accuracy and the
    success and leakage of edits; 5 conditional samples: carried label and diversity. Parts 4-5 need
    a judge (`evaluation.judge.Judge`). Deterministic for a seed; the global torch RNG is left as it was.
    """
    ev = EvalSet.choose(m, data, split, max_images, seed, progress, edit_map)
    report = Report.start(ev)
    with report.timed("classify_bound"):
        ev.say(f"eval: encoding {ev.n:,} {report.metrics['split']} images (bound with K = {draws} draws)")
        codes = heldout_pass(ev.model, lambda rows: m.to_tensor(ev.images(rows)), data.labels, ev.test_idx,
                             batch_size, draws, seed=seed, device=m.device)
        mu_test, pred = classification(ev, codes, report)
        reconstruction_and_bound(ev, codes, draws, report)
    with report.timed("self_read"):
        self_read_edits(ev, mu_test, self_read_cap, report)
    with report.timed("capture"):
        style_probe_and_capture(ev, mu_test, truth, capture_cap, report, continuous)
    if judge is not None:
        judge_accuracy_and_edits(ev, judge, mu_test, pred, edit_cap, report)     # timed as "judge" and "edit"
        with report.timed("samples"):
            conditional_samples(ev, judge, samples, report)
    return report.finish()
