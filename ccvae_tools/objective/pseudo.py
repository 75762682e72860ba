"""Confident pseudo-labels (ours, not the paper's; `ccvae train --pseudo-labels LAMBDA`).

With few labels, most images of a batch teach the classifier q(y | z_c) nothing directly. Where the
model is already sure of an unlabelled image's label, that answer is taken as the label for this
step (self-training, as in Lee 2013 and FixMatch's confident targets, here without augmentations):

    y^_i       = argmax_k q(y_i = k | mu_c^i(x))               detached, per label i
    pseudo     = - sum_{i not observed, q(y^_i) >= tau} log q(y^_i | mu_c^i(x))

averaged over the batch and weighted by lambda. tau is PSEUDO_THRESHOLD. The gradient reaches the
encoder and the classifier, so that the codes of the confident images move away from the decision
boundary. The reported bound is unchanged.
"""

from __future__ import annotations

import torch

from ccvae_tools.objective.base import Regulariser

PSEUDO_THRESHOLD = 0.95


def pseudo_label_loss(model, mu_c: torch.Tensor, observed: torch.Tensor,
                      threshold: float = PSEUDO_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over the batch of -sum over the confident unobserved labels of log q(y^ | mu_c), the share
    of the unobserved labels that were confident). mu_c (B, sum d_i); observed (B, L) bool."""
    log_q = model.log_q_y(mu_c)                                        # (B, L, K)
    best, _ = log_q.max(-1)                                            # (B, L)
    confident = (~observed) & (best.detach() >= torch.log(torch.tensor(threshold, device=best.device)))
    loss = -torch.where(confident, best, torch.zeros_like(best)).sum(-1).mean()
    unobserved = (~observed).sum()
    share = confident.sum() / unobserved.clamp_min(1)
    return loss, share


class PseudoLabelTerm(Regulariser):
    """`--pseudo-labels LAMBDA`: lambda * the confident pseudo-label loss of the batch."""

    option = "pseudo_labels"

    def loss(self, x, terms, y, observed, autocast):
        with autocast():
            pseudo, share = pseudo_label_loss(self.model, terms.mu_c, observed)
        self.record(pseudo_label_loss=float(pseudo.detach()), pseudo_label_share=float(share))
        return self.weight * pseudo
