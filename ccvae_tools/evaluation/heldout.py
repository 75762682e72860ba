"""The held-out pass, shared by training and `ccvae eval`: one walk over held-out images that gives
each batch's bound L(x, y_O), its mean per-pixel L1 reconstruction error and its posterior means
(docs/method.md sections 3.1 and 5.8), and the label classes argmax_k q(y_i = k | z_c^i) read from
those means.

`heldout_metrics` is what training logs after every --eval-every epochs (metrics.jsonl); its
`batches` is anything with `.device` and `.get(idx) -> (x, y, observed)`. `ccvae eval` runs the same
`heldout_pass` for its classification and its reconstruction and bound parts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ccvae_tools.evaluation.metrics import label_metrics
from ccvae_tools.objective.bound import ccvae_bound


@dataclass
class HeldoutPass:
    """What the pass returns, one entry per batch in the order of the images."""

    mu: list[torch.Tensor] = field(default_factory=list)         # posterior means (B, Z), on the device
    bound: list[torch.Tensor] = field(default_factory=list)      # L(x, y_O) per image (B,), float on the CPU
    recon_l1: list[torch.Tensor] = field(default_factory=list)   # mean per-pixel |x - x^(mu)| (B,), float on the CPU

    def mean_bound(self) -> float:
        return float(torch.cat(self.bound).mean()) if self.bound else float("nan")

    def mean_recon_l1(self) -> float:
        return float(torch.cat(self.recon_l1).mean()) if self.recon_l1 else float("nan")


def heldout_pass(model, images: Callable[[np.ndarray], torch.Tensor], labels: np.ndarray, idx: np.ndarray,
                 batch_size: int, draws: int, seed: int, device: torch.device,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
                 ) -> HeldoutPass:
    """Bound (with K = draws and every known label observed), L1 and posterior means of the images
    idx, in batches of batch_size. images(b) gives the [0, 1] images of the rows b on the device;
    labels (N, L) holds class indices, NaN = unknown.

    The noise is its own: the global torch RNG is forked and seeded with `seed`, and each batch's
    draws of the bound come before its encode and decode, so that a pass (or its absence) never
    changes what the caller does next and every pass with one seed draws the same noise.
    """
    out = HeldoutPass()
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(idx), batch_size):
            rows = idx[start: start + batch_size]
            x = images(rows)
            observed = torch.from_numpy(~np.isnan(labels[rows])).to(x.device)
            y = torch.from_numpy(np.nan_to_num(labels[rows], nan=0.0)).long().to(x.device)
            with autocast():
                terms = ccvae_bound(model, x, y, observed, draws=draws)
                mu, _ = model.encode(x)
                x_hat = model.decode(mu).float()
            out.bound.append(terms.bound.float().cpu())
            out.recon_l1.append((x_hat - x).abs().flatten(1).mean(1).cpu())
            out.mu.append(mu)
    return out


def predicted_classes(model, z: torch.Tensor) -> np.ndarray:
    """argmax_k q(y_i = k | z_c^i) for codes (N, Z): (N, L) int."""
    with torch.no_grad():
        z_c, _ = model.split(z)
        return model.log_q_y(z_c).argmax(-1).cpu().numpy()


def heldout_metrics(model, batches, idx: np.ndarray, true_labels: np.ndarray, majority: np.ndarray,
                    batch_size: int, draws: int, autocast) -> dict:
    """Validation metrics: mean bound, L1 reconstruction error, posterior-mean label accuracy."""
    was_training = model.training
    model.eval()
    # evaluation draws its own fixed noise (seed 0) and leaves the training RNG as it was, so that an
    # evaluation (or its absence after an interruption) never changes what training does next
    codes = heldout_pass(model, lambda rows: batches.get(rows)[0], true_labels, idx, batch_size, draws,
                         seed=0, device=batches.device, autocast=autocast)
    pred = np.concatenate([predicted_classes(model, mu) for mu in codes.mu])    # read batch by batch
    model.train(was_training)
    out = label_metrics(pred, true_labels[idx], majority, [lab.name for lab in model.cfg.labels])
    out["bound"] = codes.mean_bound()
    out["recon_l1"] = codes.mean_recon_l1()
    out["images"] = int(len(idx))
    return out
