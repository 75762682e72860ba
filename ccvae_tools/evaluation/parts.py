"""The five parts of `ccvae eval` (docs/method.md section 5.8). Each is a function of the evaluated
set (`EvalSet`: the model, the data, the images chosen) that writes its numbers into the `Report`:

    1 classification            q(y|x) at the posterior mean against the TRAIN majority class
    2 reconstruction_and_bound  mean per-pixel L1 of the reconstructions and the bound L(x, y)
      self_read_edits           edits read back by the model's own classifier (no judge needed;
                                `weak_spots`: what `ccvae eval` names as weak spots)
    3 style_probe_and_capture   each label read from z_s by a linear probe; characteristic capture
    4 judge_accuracy_and_edits  the judge's own accuracy; success and leakage of edits, plain and
                                consistent with the label combinations seen in training
    5 conditional_samples       the label the judge reads in conditional samples, and their diversity

Parts 1 and 2 read the held-out pass (`heldout.heldout_pass`) that `evaluate.evaluate_model` runs
first; parts 4 and 5 need a judge (`judge.Judge`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ccvae_tools.data.base import SPLIT_NAMES, TRAIN, Decoded
from ccvae_tools.evaluation.heldout import HeldoutPass, predicted_classes
from ccvae_tools.evaluation.metrics import (capture_accuracy, capture_scores, capture_summary, carried_share,
                                           regression_scores,
                                            classification_metrics, coarse_variants, consistent_targets,
                                            edit_success, json_ready, label_combinations, leakage,
                                            majority_classes, mean_of, sample_diversity)
from ccvae_tools.evaluation.truth import ContinuousTruth, GroundTruth, capture_class
from ccvae_tools.evaluation.weak_spots import SELF_READ_KEY, self_read_from_codes
from ccvae_tools.interventions import EDIT_MAPS, conditional_sample, edit

JUDGE_CHUNK = 1024          # evaluated images handed to the judge at a time


def _subset(idx: np.ndarray, cap: int | None, seed: int, salt: int) -> np.ndarray:
    """At most `cap` of idx, drawn with the seed, in data order."""
    if cap is None or len(idx) <= cap:
        return idx
    return np.sort(np.random.default_rng([seed, salt]).choice(idx, int(cap), replace=False))


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


# --- what every part reads and writes --------------------------------------------------------------

@dataclass
class EvalSet:
    """The model, the data and the images evaluated, with their labels."""

    m: Any                          # api.LoadedModel
    data: Decoded                   # labels are the model's, in the model's order
    split: int
    seed: int
    train_idx: np.ndarray           # the TRAIN images (majority baseline, probes, label combinations)
    split_idx: np.ndarray           # every image of the split
    test_idx: np.ndarray            # the evaluated ones: at most max_images of the split, a seeded choice
    y_true: np.ndarray              # their labels (N, L), NaN = unknown
    majority: np.ndarray            # each label's majority class on TRAIN
    say: Callable[[str], None]
    edit_map: str = EDIT_MAPS[0]    # how edits move a code (interventions.edit)

    @classmethod
    def choose(cls, m, data: Decoded, split: int, max_images: int | None, seed: int,
               progress: Callable[[str], None] | None, edit_map: str = EDIT_MAPS[0]) -> "EvalSet":
        labels = list(m.model.cfg.labels)
        if data.labels.shape[1] != len(labels):
            raise ValueError(f"the data has {data.labels.shape[1]} labels, the model {len(labels)}")
        train_idx, split_idx = data.indices(TRAIN), data.indices(split)
        test_idx = _subset(split_idx, max_images, seed, 1)
        return cls(m=m, data=data, split=split, seed=seed, train_idx=train_idx, split_idx=split_idx,
                   test_idx=test_idx, y_true=data.labels[test_idx],
                   majority=majority_classes(data.labels, train_idx), say=progress or (lambda msg: None),
                   edit_map=edit_map)

    @property
    def model(self):
        return self.m.model

    @property
    def labels(self) -> list:
        return list(self.model.cfg.labels)

    @property
    def names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    @property
    def n(self) -> int:
        return int(len(self.test_idx))

    def images(self, idx: np.ndarray) -> np.ndarray:
        """uint8 images (len(idx), C, H, W) of the data rows idx."""
        return np.ascontiguousarray(self.data.images[idx])

    def no_images(self) -> np.ndarray:
        return np.zeros((0,) + self.data.images.shape[1:], np.uint8)


@dataclass
class Report:
    """The numbers as the parts add them: `metrics` is what --write-metrics stores."""

    metrics: dict[str, Any]
    counts: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, ev: EvalSet) -> "Report":
        name = SPLIT_NAMES[ev.split]
        return cls(metrics={"source": "ccvae eval", "split": name, "images": ev.n, "seed": int(ev.seed),
                            "edit_map": ev.edit_map},
                   counts={name: ev.n, f"{name}_available": int(len(ev.split_idx)),
                           "train": int(len(ev.train_idx))})

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start

    def finish(self) -> dict:
        """{"metrics", "details", "seconds"}, JSON-ready (NaN -> None)."""
        self.metrics["counts"] = self.counts
        self.metrics["date"] = date.today().isoformat()
        self.seconds["total"] = time.perf_counter() - self.started
        return json_ready({"metrics": self.metrics, "details": self.details, "seconds": self.seconds})


# --- parts 1 and 2: classification; reconstruction and bound ----------------------------------------

def classification(ev: EvalSet, codes: HeldoutPass, report: Report) -> tuple[torch.Tensor, np.ndarray]:
    """1. q(y|x) at the posterior mean against the TRAIN majority class. Returns the posterior means
    (N, Z) of the evaluated images and the classes read from them (N, L)."""
    mu_test = torch.cat(codes.mu) if codes.mu else torch.zeros(0, ev.model.cfg.z_dim, device=ev.m.device)
    pred = predicted_classes(ev.model, mu_test) if ev.n else np.zeros((0, len(ev.labels)), dtype=int)
    report.metrics.update(classification_metrics(pred, ev.y_true, ev.majority, ev.names))
    return mu_test, pred


def reconstruction_and_bound(ev: EvalSet, codes: HeldoutPass, draws: int, report: Report) -> None:
    """2. Mean per-pixel L1 of the reconstructions at the posterior mean, and the bound L(x, y) with
    every known label observed (K = draws), per image and per pixel."""
    pixels = int(np.prod(ev.data.images.shape[1:]))
    bound = codes.mean_bound()
    report.metrics.update({"recon_l1": codes.mean_recon_l1(), "bound": bound, "bound_per_pixel": bound / pixels,
                           "draws": int(draws)})


def self_read_edits(ev: EvalSet, mu_test: torch.Tensor, cap: int, report: Report) -> None:
    """Every label of the first `cap` evaluated images set to each other class and read back by the
    model's own encoder and classifier (`weak_spots.self_read_from_codes`): the judge-free measure
    the weak-spot lines use."""
    n = min(ev.n, cap)
    ev.say(f"eval: edits of {n:,} images read back by the model's own classifier")
    report.metrics[SELF_READ_KEY] = self_read_from_codes(ev.model, mu_test[:n], mapping=ev.edit_map)
    report.counts[SELF_READ_KEY] = int(n)


# --- part 3: labels from z_s; characteristic capture --------------------------------------------------

@dataclass
class _ProbeCodes:
    """Posterior means of the train images the probes learn from and of the evaluated images."""

    train_idx: np.ndarray
    train: np.ndarray               # (n_train, Z)
    test: np.ndarray                # (N, Z)
    z_char: int                     # z_s starts here

    @property
    def style_train(self) -> np.ndarray:
        return self.train[:, self.z_char:]

    @property
    def style_test(self) -> np.ndarray:
        return self.test[:, self.z_char:]


def style_probe_and_capture(ev: EvalSet, mu_test: torch.Tensor, truth: GroundTruth | None, capture_cap: int,
                            report: Report, continuous: ContinuousTruth | None = None) -> None:
    """3. Each label read from z_s by a linear probe (labels_from_style: near the majority baseline
    when z_s leaves the labels to z_c), and, with ground truth, characteristic capture: the variant
    within a label's class read from z_c^i and from z_s, next to chance; with continuous ground truth
    (typefaces), the characteristic within each class regressed from z_c^i and from z_s."""
    cap_idx = _subset(ev.train_idx, capture_cap, ev.seed, 2)
    ev.say(f"eval: codes of {len(cap_idx):,} train images for the probes")
    mu_cap, _ = ev.m.encode(ev.images(cap_idx)) if len(cap_idx) else (torch.zeros(0, ev.model.cfg.z_dim), None)
    probe = _ProbeCodes(cap_idx, mu_cap.cpu().numpy(), mu_test.cpu().numpy(), ev.model.cfg.z_char)
    from_style = _labels_from_style(ev, probe)
    report.metrics["labels_from_style"] = from_style
    report.metrics["mean_labels_from_style"] = mean_of(from_style)
    report.counts["probe_train"] = int(len(cap_idx))
    if continuous is not None:
        report.metrics["capture_continuous"] = continuous_capture(ev, continuous, probe)
    if truth is None or not truth.columns:
        return
    ev.say(f"eval: characteristic capture ({', '.join(name for name in ev.names if name in truth.columns)})")
    capture: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for i, lab in enumerate(ev.labels):
        variants = truth.variants(lab.name)
        if variants is None:
            continue
        entry = _capture_label(ev, i, variants, truth.columns[lab.name], probe)
        if isinstance(entry, str):
            skipped[lab.name] = entry
        else:
            capture[lab.name] = entry
    report.metrics["capture"] = capture
    report.metrics["capture_summary"] = capture_summary(capture)
    if skipped:
        report.details["capture_skipped"] = skipped


MIN_REGRESSION_ROWS = 10     # fewer train or test images in a class: no capture score for it


def continuous_capture(ev: EvalSet, truth: ContinuousTruth, probe: _ProbeCodes) -> dict:
    """Per label with a continuous characteristic and per class of the label: R^2 and Spearman of a
    ridge probe predicting it from z_c^i and from z_s (fitted on train codes, scored on the evaluated
    images). A class with too few images or one value only is given with its reason."""
    out: dict[str, Any] = {}
    for i, lab in enumerate(ev.labels):
        column = truth.columns.get(lab.name)
        if column is None:
            continue
        values, block, within = truth.values[column], ev.model.label_slice(i), {}
        for k in range(lab.num_classes):
            tr = (ev.data.labels[probe.train_idx, i] == k) & ~np.isnan(values[probe.train_idx])
            te = (ev.y_true[:, i] == k) & ~np.isnan(values[ev.test_idx])
            v_tr, v_te = values[probe.train_idx][tr], values[ev.test_idx][te]
            if tr.sum() < MIN_REGRESSION_ROWS or te.sum() < MIN_REGRESSION_ROWS:
                within[str(k)] = {"skipped": "too few images", "train": int(tr.sum()), "test": int(te.sum())}
            elif np.ptp(v_te) == 0 or np.ptp(v_tr) == 0:
                within[str(k)] = {"skipped": f"one {column} value only", "train": int(tr.sum()), "test": int(te.sum())}
            else:
                within[str(k)] = {"z_c": regression_scores(probe.train[tr][:, block], v_tr, probe.test[te][:, block], v_te),
                                  "z_s": regression_scores(probe.style_train[tr], v_tr, probe.style_test[te], v_te),
                                  "train": int(tr.sum()), "test": int(te.sum())}
        out[lab.name] = {"column": column, "within": within}
    return out


def _labels_from_style(ev: EvalSet, probe: _ProbeCodes) -> dict[str, float]:
    """Test accuracy of a linear probe reading each label from z_s."""
    train_labels = ev.data.labels[probe.train_idx]
    out = {}
    for i, lab in enumerate(ev.labels):
        train_known, test_known = ~np.isnan(train_labels[:, i]), ~np.isnan(ev.y_true[:, i])
        if train_known.sum() >= 2 and test_known.any():
            out[lab.name] = capture_accuracy(probe.style_train[train_known],
                                             train_labels[train_known, i].astype(int),
                                             probe.style_test[test_known], ev.y_true[test_known, i].astype(int))
    return out


def _with_variant(ev: EvalSet, i: int, variants: np.ndarray, which: int | None, idx: np.ndarray) -> np.ndarray:
    """Which rows idx have a variant and a known label i (of class `which`, unless None)."""
    label = ev.data.labels[idx, i]
    ok = np.asarray([v is not None for v in variants[idx]], dtype=bool) & ~np.isnan(label)
    if which is not None:
        ok &= label == which
    return ok


def _capture_label(ev: EvalSet, i: int, variants: np.ndarray, column: str, probe: _ProbeCodes) -> dict | str:
    """Label i's capture entry (its variant read from z_c^i, from z_s, and by chance; the coarse
    variant too where variants are 'style/colour'), or why it is skipped."""
    lab = ev.labels[i]
    both = np.concatenate([probe.train_idx, ev.test_idx])
    which = capture_class(ev.data.labels[both, i], variants[both], lab.num_classes)
    if which == "skip":
        return f"no class of {lab.name} has two {column} variants"
    train_ok = _with_variant(ev, i, variants, which, probe.train_idx)
    test_ok = _with_variant(ev, i, variants, which, ev.test_idx)
    if train_ok.sum() < 2 or test_ok.sum() < 1:
        return "too few examples with a variant in train or test"
    train_variants = variants[probe.train_idx][train_ok].astype(str)
    test_variants = variants[ev.test_idx][test_ok].astype(str)
    block = ev.model.label_slice(i)
    codes = (probe.train[train_ok, block], probe.style_train[train_ok],
             probe.test[test_ok, block], probe.style_test[test_ok])

    def scores(train_v, test_v) -> dict:
        return capture_scores(codes[0], codes[1], train_v, codes[2], codes[3], test_v)

    entry = {"variant": column, "class": None if which is None else lab.classes[which]}
    entry.update(scores(train_variants, test_variants))
    coarse_train, coarse_test = coarse_variants(train_variants), coarse_variants(test_variants)
    if coarse_train is not None and coarse_test is not None and len(set(coarse_train) | set(coarse_test)) >= 2:
        entry["coarse"] = {"variant": f"{column} (before '/')", **scores(coarse_train, coarse_test)}
    return entry


# --- part 4: the judge's accuracy; edits ----------------------------------------------------------------

def _apply_edits(model, z: torch.Tensor, current: np.ndarray, goal: np.ndarray, mapping: str) -> torch.Tensor:
    """Codes moved from the classes `current` (N, L) to `goal` (N, L): rows that change the same
    labels to the same classes are edited together."""
    wanted = np.where(goal != current, goal, -1)
    keys, group = np.unique(wanted, axis=0, return_inverse=True)
    out = z.clone()
    for g, key in enumerate(keys):
        assign = {j: int(v) for j, v in enumerate(key) if v >= 0}
        if assign:
            rows = torch.from_numpy(group.reshape(-1) == g).to(z.device)
            out[rows] = edit(model, z[rows], assign, mapping)
    return out


@dataclass
class _Edited:
    """The images edited: their codes, the classes read from them, the judge's reading of their
    reconstructions (the reference of success before the edit and of leakage)."""

    ev: EvalSet
    judge: Any
    codes: torch.Tensor             # (n, Z)
    current: np.ndarray             # (n, L)
    before: np.ndarray              # (n, L, K_max)

    def judged(self, goal: np.ndarray) -> np.ndarray:
        """The judge's probabilities of the images with their classes moved to `goal` (n, L)."""
        return self.judge.probs(self.ev.m.decode(_apply_edits(self.ev.model, self.codes, self.current, goal, self.ev.edit_map)))


def judge_accuracy_and_edits(ev: EvalSet, judge, mu_test: torch.Tensor, pred: np.ndarray, edit_cap: int,
                             report: Report) -> None:
    """4. The judge's accuracy on the evaluated images and on their reconstructions; then every label
    of the first edit_cap images set to another class: success (the judge reads the target) and
    leakage (the judge's other labels move), plain and consistent with the combinations seen."""
    with report.timed("judge"):
        ev.say(f"eval: judge accuracy on {ev.n:,} images")
        real_probs = np.concatenate([judge.probs(ev.images(ev.test_idx[s: s + JUDGE_CHUNK]))
                                     for s in range(0, ev.n, JUDGE_CHUNK)]) if ev.n else judge.probs(ev.no_images())
        on_real = classification_metrics(real_probs.argmax(-1), ev.y_true, ev.majority, ev.names)
        block: dict[str, Any] = {"accuracy": on_real["accuracy"], "balanced_accuracy": on_real["balanced_accuracy"],
                                 "mean_accuracy": on_real.get("mean_accuracy", float("nan"))}
        if judge.meta.get("fingerprint"):
            block["fingerprint"] = judge.meta["fingerprint"]
        n_edit = min(ev.n, edit_cap)
        codes = mu_test[:n_edit]
        recon = ev.m.decode(codes) if n_edit else ev.no_images()
        edited = _Edited(ev, judge, codes, pred[:n_edit], judge.probs(recon))
        on_recon = classification_metrics(edited.before.argmax(-1), ev.y_true[:n_edit], ev.majority, ev.names)
        block["recon_accuracy"] = on_recon["accuracy"]
        block["mean_recon_accuracy"] = on_recon.get("mean_accuracy", float("nan"))
        report.metrics["judge"] = block
    with report.timed("edit"):
        ev.say(f"eval: editing {n_edit:,} images per label ({len(ev.labels)} labels)")
        _edits(edited, report)
        report.counts["edit"] = int(n_edit)


def _edits(edited: _Edited, report: Report) -> None:
    """Each label set to another class (binary: the other one; K > 2: cycling through the others)."""
    ev, current = edited.ev, edited.current
    success, leak, before, by_target = {}, {}, {}, {}
    consistent: dict[str, dict] = {"success": {}, "leakage": {}, "also_changed": {}}
    combos, combo_counts = label_combinations(ev.data.labels[ev.train_idx])
    labels = ev.labels if len(current) else []            # no image to edit: empty blocks
    for i, lab in enumerate(labels):
        k_classes = lab.num_classes
        target = (current[:, i] + 1 + (np.arange(len(current)) % (k_classes - 1))) % k_classes
        alone = current.copy()
        alone[:, i] = target
        probs = edited.judged(alone)
        success[lab.name] = edit_success(probs, i, target)
        by_target[lab.name] = {lab.classes[k]: edit_success(probs[target == k], i, k) for k in range(k_classes)
                               if (target == k).any()}
        before[lab.name] = edit_success(edited.before, i, target)
        leak[lab.name] = leakage(edited.before, probs, i)
        if len(combos):   # the same edits made consistent with the label combinations seen in training
            goal = consistent_targets(current, i, target, combos, combo_counts)
            changed = goal != current
            probs = edited.judged(goal)
            consistent["success"][lab.name] = edit_success(probs, i, target)
            consistent["leakage"][lab.name] = leakage(edited.before, probs, i, changed)
            consistent["also_changed"][lab.name] = float(np.delete(changed, i, axis=1).any(1).mean())
    report.metrics["edit"] = {"success": success, "leakage": leak, "target_before": before,
                              "success_by_target": by_target,
                              "mean_success": mean_of(success), "mean_leakage": mean_of(leak)}
    if consistent["success"]:
        report.metrics["edit_consistent"] = {**consistent, "mean_success": mean_of(consistent["success"]),
                                             "mean_leakage": mean_of(consistent["leakage"])}


# --- part 5: conditional samples --------------------------------------------------------------------------

def conditional_samples(ev: EvalSet, judge, samples: int, report: Report) -> None:
    """5. For every label and class, `samples` codes drawn from the conditional prior (seeded per label
    and class): the share the judge reads as that class, their diversity and that of real images."""
    ev.say(f"eval: {samples} conditional samples per label and class")
    carried, diversity, data_div, per_class = {}, {}, {}, {}
    for i, lab in enumerate(ev.labels):
        by_class = {lab.classes[k]: _sample_class(ev, judge, i, k, samples) for k in range(lab.num_classes)}
        per_class[lab.name] = by_class
        carried[lab.name] = mean_of({c: r["carried"] for c, r in by_class.items()})
        diversity[lab.name] = mean_of({c: r["diversity"] for c, r in by_class.items()})
        data_div[lab.name] = mean_of({c: r["data_diversity"] for c, r in by_class.items()})
    report.metrics["samples"] = {"carried": carried, "diversity": diversity, "data_diversity": data_div,
                                 "per_class": per_class, "n": int(samples),
                                 "mean_carried": mean_of(carried), "mean_diversity": mean_of(diversity)}
    report.counts["samples"] = int(samples)


def _sample_class(ev: EvalSet, judge, i: int, k: int, samples: int) -> dict:
    generator = torch.Generator().manual_seed(_seed_of(ev.seed, 3, i, k))
    images = ev.m.decode(conditional_sample(ev.model, samples, {i: k}, generator=generator))
    real = ev.test_idx[ev.y_true[:, i] == k][:samples]
    return {"carried": carried_share(judge.probs(images), i, k),
            "diversity": sample_diversity(images),
            "data_diversity": sample_diversity(ev.images(real)) if len(real) >= 2 else float("nan")}
