"""Batches: which train examples keep their labels, each epoch's order, and gathering a batch
(images from the decoded cache's memory map, or from the GPU when the data fits there)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ccvae_tools.data.base import Decoded
from ccvae_tools.data.shared import labelled_mask  # noqa: F401  (where training and its tests look for it)
from ccvae_tools.util.device import channels_last


def epoch_order(train_idx: np.ndarray, labelled: np.ndarray, opts, epoch: int,
                labels: np.ndarray | None = None) -> np.ndarray:
    """The epoch's example order, drawn from (seed, epoch) so that a resumed run sees the same order.

    With --labelled-per-batch k > 0 (and both labelled and unlabelled examples): every batch of
    --batch-size B holds k labelled examples and B - k unlabelled ones (`mixed_order`), drawn with
    `repeat_factors` when --balance-labelled T > 0 (`labels`: the train labels). Otherwise the
    paper's schedule: every train example once, labelled ones `sup_oversample` times (fractional part
    drawn), shuffled together.
    """
    rng = np.random.default_rng([opts.seed, epoch])
    lab = train_idx[labelled[train_idx]]
    unlab = train_idx[~labelled[train_idx]]
    per_batch = opts.labelled_per_batch or 0
    if per_batch > 0 and len(lab) and len(unlab):
        weights = None
        if (opts.balance_labelled or 0) > 0 and labels is not None:
            weights = repeat_factors(labels[lab], opts.balance_labelled)
        return mixed_order(lab, unlab, min(per_batch, opts.batch_size - 1), opts.batch_size, rng, weights)
    idx = train_idx
    extra = opts.sup_oversample - 1.0
    if extra > 0:
        reps = [lab] * int(math.floor(extra))
        frac = extra - math.floor(extra)
        if frac > 0:
            reps.append(rng.permutation(lab)[: int(round(frac * len(lab)))])
        idx = np.concatenate([idx] + reps)
    return rng.permutation(idx)


def repeat_factors(labels: np.ndarray, threshold: float) -> np.ndarray:
    """How often each labelled example is drawn, relative to the others (--balance-labelled T): the
    largest over its known labels of max(1, sqrt(T / f)), f the share of the labelled examples in
    that label's class. An example of a rare class (a grey head among 8 % grey) is drawn more often,
    so that the encoder sees enough of it in every batch; classes at T or above are drawn as they
    come. `labels` (n, L) class indices, NaN = unknown."""
    known = ~np.isnan(labels)
    cls = np.nan_to_num(labels, nan=0.0).astype(np.int64)
    factors = np.ones(len(labels))
    for j in range(labels.shape[1]):
        rows = known[:, j]
        if not rows.any():
            continue
        share = np.bincount(cls[rows, j]) / rows.sum()
        per_row = np.sqrt(threshold / np.maximum(share[cls[rows, j]], 1e-12))
        factors[rows] = np.maximum(factors[rows], per_row)
    return factors


def mixed_order(lab: np.ndarray, unlab: np.ndarray, per_batch: int, batch_size: int,
                rng: np.random.Generator, weights: np.ndarray | None = None) -> np.ndarray:
    """Batches of `per_batch` labelled and `batch_size - per_batch` unlabelled examples: the epoch
    passes once over the unlabelled examples (shuffled); the labelled ones are drawn in shuffled
    passes, a new pass whenever one runs out, so a small labelled set is seen at every step (with
    `weights`, relative drawing rates of the labelled examples, they are drawn at those rates
    instead). The labelled examples are spread through each batch, so that every process of a
    torchrun job gets its share."""
    unlab = rng.permutation(unlab)
    n_steps = max(1, math.ceil(len(unlab) / (batch_size - per_batch)))
    if weights is None:
        passes = math.ceil(n_steps * per_batch / len(lab))
        lab_stream = np.concatenate([rng.permutation(lab) for _ in range(passes)])
    else:
        lab_stream = rng.choice(lab, size=n_steps * per_batch, p=weights / weights.sum())
    batches = []
    for step in range(n_steps):
        rest = unlab[step * (batch_size - per_batch): (step + 1) * (batch_size - per_batch)]
        chosen = lab_stream[step * per_batch: (step + 1) * per_batch]
        batch = np.concatenate([chosen, rest])
        batches.append(batch[np.argsort(rng.random(len(batch)), kind="stable")])
    return np.concatenate(batches)


class Batches:
    """Gather batches of images and labels, from a memory map or from the device."""

    def __init__(self, data: Decoded, labels: np.ndarray, device, on_device: bool):
        self.torch = torch
        self.device = device
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        self.images = data.images
        self.channels_last = channels_last(device)
        self.dev_images = None
        if on_device:
            self.dev_images = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)

    def get(self, idx: np.ndarray):
        torch = self.torch
        if self.dev_images is not None:
            ti = torch.from_numpy(idx).to(self.device)
            x = self.dev_images.index_select(0, ti)
        else:
            order = np.argsort(idx, kind="stable")          # sequential reads from the memmap
            rows = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
            rows[order] = self.images[idx[order]]
            x = torch.from_numpy(rows).to(self.device, non_blocking=True)
            ti = torch.from_numpy(idx).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.float().div_(255.0)
        lab = self.labels.index_select(0, ti)
        observed = ~torch.isnan(lab)
        y = torch.nan_to_num(lab, nan=0.0).long()
        return x, y, observed


def fits_on_device(images: np.ndarray, device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return images.nbytes < 0.5 * free
