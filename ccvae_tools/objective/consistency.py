"""Consistency of q(y | x) under a small shift (ours, not the paper's; `ccvae train --consistency LAMBDA`).

With few labels the encoder learns the labelled images by heart: a run at 6 % labels reads all of
its 576 labelled avatars right and only 60 % (balanced) of the unlabelled grey heads. The term asks
the classifier to give each unlabelled image the answer it gives the same image moved by a pixel,
which costs nothing on the labelled images and spreads what they taught over the images around
them (the consistency half of FixMatch and of the Pi-model, with soft targets and no threshold):

    t_i        = q(y_i | mu_c(x))                       detached, per label i the image lacks
    consistency = - sum_{i not observed} sum_k t_ik log q(y_i = k | mu_c(shift(x)))

averaged over the batch and weighted by lambda. shift(x) moves each image by up to SHIFT pixels
along each axis (util/imageops.shift_images). The gradient reaches the encoder and the classifier
through the shifted pass only. The reported bound is unchanged. It costs one more encoder pass
over the batch's images with a missing label.
"""

from __future__ import annotations

import numpy as np
import torch

from ccvae_tools.objective.base import Regulariser
from ccvae_tools.util.imageops import shift_images

SHIFT = 1                       # pixels, either way along each axis


def consistency_loss(model, x: torch.Tensor, mu_c: torch.Tensor, observed: torch.Tensor,
                     rng: np.random.Generator, shift: int = SHIFT) -> torch.Tensor:
    """Mean over the batch of the soft cross-entropy between q(y | mu_c(x)) (detached) and
    q(y | mu_c(shift(x))) over the labels an image lacks. x (B, C, H, W); mu_c (B, sum d_i) the
    posterior means of x; observed (B, L) bool."""
    rows = (~observed).any(-1)
    if not rows.any():
        return mu_c.sum() * 0.0
    target = model.log_q_y(mu_c[rows].detach()).exp().detach()                       # (R, L, K)
    moved = shift_images(x[rows], torch.ones(int(rows.sum()), dtype=torch.bool), shift, rng)
    loc, _ = model.encode(moved)
    loc_c, _ = model.split(loc.float())
    log_q = model.log_q_y(loc_c)                                                       # (R, L, K)
    # labels with fewer classes than the widest one have padding classes at log q = -inf (target 0)
    cross = torch.where(model.class_mask, target * log_q, torch.zeros_like(log_q))
    per_label = -cross.sum(-1)                                                         # (R, L)
    missing = ~observed[rows]
    return torch.where(missing, per_label, torch.zeros_like(per_label)).sum() / x.shape[0]


class ConsistencyTerm(Regulariser):
    """`--consistency LAMBDA`: lambda * the consistency loss; the shifts drawn from the torch RNG the
    run's seed sets (and a resume restores)."""

    option = "consistency"

    def loss(self, x, terms, y, observed, autocast):
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ())))
        with autocast():
            term = consistency_loss(self.model, x, terms.mu_c, observed, rng)
        self.record(consistency_loss=float(term.detach()))
        return self.weight * term
