"""The swap cycle (ours, not the paper's; `ccvae train --swap-cycle GAMMA`).

The bound trains the decoder only to reconstruct. When a label's visual cue is small (a mouth's
curve at 64 px), reconstruction gains little from drawing it, and the decoder may learn to ignore
z_c^i even though the encoder reads the label perfectly: traversals, edits and samples of that label
then change nothing. The swap cycle asks the decoder to draw what z_c says, judged by the model's own
classifier:

    z'           = (mu_c(x_pi), mu_s(x))          characteristics of another image of the batch,
                                                  the style of this one (a `ccvae swap`); codes detached
    x'           = decoder mean of p(x | z'), softened by a 3 x 3 binomial blur
    cycle loss   = - sum_{i in O_pi} log q(y_i(x_pi) | mu_c(x'))    with the encoder frozen

The encoder's and the classifier's parameters are detached in the second pass, so only the decoder
learns from it (the encoder cannot learn to read the labels from the decoder's artefacts). pi is a
random permutation of the batch. The blur keeps the decoder from answering with pixel-level patterns
that only the encoder reads (without it, a short fine-tuning drew speckles of colour around the
mouth). Labels that are not observed for the donor image are left out. The reported bound is
unchanged; the term is added to the training loss with weight gamma.
"""

from __future__ import annotations

import torch

from ccvae_tools.objective.base import Regulariser
from ccvae_tools.util.imageops import mild_blur


def swap_cycle_loss(model, mu_c: torch.Tensor, mu_s: torch.Tensor, y: torch.Tensor, observed: torch.Tensor,
                    perm: torch.Tensor, blur: bool = True) -> torch.Tensor:
    """Mean over the batch of -sum_{i in O_perm} log q(y_perm,i | mu_c(decode(swap))).

    mu_c (B, sum d_i), mu_s (B, d_s): posterior means of the batch (detached here); y (B, L) long;
    observed (B, L) bool; perm (B,) long: the donor of each example's characteristics.
    """
    z_swap = torch.cat([mu_c.detach()[perm], mu_s.detach()], dim=-1)
    x_swap = model.decode(z_swap)
    if blur:
        x_swap = mild_blur(x_swap)
    frozen = {name: p.detach() for name, p in model.encoder.named_parameters()}
    loc, _ = torch.func.functional_call(model.encoder, frozen, (x_swap,))
    loc_c, _ = model.split(loc.float())
    log_q = model.log_q_y(loc_c, frozen=True)                                     # (B, L, K)
    target, obs = y[perm], observed[perm]
    per = log_q.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)         # (B, L)
    return -torch.where(obs, per, torch.zeros_like(per)).sum(-1).mean()


class SwapCycleTerm(Regulariser):
    """`--swap-cycle GAMMA`: gamma * the swap cycle loss, donors drawn by a fresh permutation each step."""

    option = "swap_cycle"

    def loss(self, x, terms, y, observed, autocast):
        perm = torch.randperm(y.shape[0], device=y.device)
        with autocast():
            cycle = swap_cycle_loss(self.model, terms.mu_c, terms.mu_s, y, observed, perm)
        self.record(swap_cycle_loss=float(cycle.detach()))
        return self.weight * cycle
