"""The style adversary (ours, not the paper's; `ccvae train --style-adversary LAMBDA`).

Nothing in the CCVAE bound stops z_s from also holding a label: the decoder may then draw the label
from z_s, and moving z_c^i (traverse, edit, swap) changes less than it should. The adversary is a
small network r(y | z_s) that learns to read the labels from the style code; the encoder is trained to
leave it nothing to read, in the manner of Fader networks (Lample et al., 2017):

    adversary loss  = - sum_{i in O} log r(y_i | z_s)                 (z_s detached: trains r only)
    style penalty   = lambda * sum_{i in O} CE(pi_i, r(. | z_s))      (r frozen: trains the encoder)

CE(pi_i, r) = -sum_k pi_{i,k} log r_k is smallest when r returns the label prior pi_i, that is when z_s
tells r nothing about y_i, so the penalty is bounded below and cannot be won by making r confidently
wrong. z_s is the posterior mean mu_s(x). The bound that is reported is unchanged; the adversary is a
training device and is not stored in the weights file (it travels in the resume state).
"""

from __future__ import annotations

import torch
from torch import nn

from ccvae_tools.objective.base import Regulariser
from ccvae_tools.util.adam import Adam


class StyleAdversary(nn.Module):
    """r(y | z_s): an MLP from the style code to every label's class logits, (B, d_s) -> (B, L, K_max)."""

    def __init__(self, z_style: int, class_mask: torch.Tensor, hidden: int = 256):
        super().__init__()
        num_labels, kmax = class_mask.shape
        self.net = nn.Sequential(nn.Linear(z_style, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_labels * kmax))
        self.register_buffer("class_mask", class_mask.clone(), persistent=False)

    def forward(self, z_s: torch.Tensor) -> torch.Tensor:
        logits = self.net(z_s).view(z_s.shape[0], *self.class_mask.shape)
        return logits.masked_fill(~self.class_mask, float("-inf")).log_softmax(-1)


def _masked_sum(per: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    return torch.where(observed, per, torch.zeros_like(per)).sum(-1)


def adversary_loss(adversary: StyleAdversary, z_s: torch.Tensor, y: torch.Tensor,
                   observed: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_{i in O} log r(y_i | z_s), with z_s detached."""
    log_r = adversary(z_s.detach())
    per = log_r.gather(-1, y.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return -_masked_sum(per, observed).mean()


def style_penalty(adversary: StyleAdversary, z_s: torch.Tensor, log_pi: torch.Tensor,
                  observed: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum_{i in O} CE(pi_i, r(. | z_s)); gradients reach z_s, not r."""
    frozen = {name: p.detach() for name, p in adversary.named_parameters()}
    log_r = torch.func.functional_call(adversary, frozen, (z_s,))
    pi = log_pi.exp()
    ce = -(pi * torch.where(torch.isfinite(log_r), log_r, torch.zeros_like(log_r))).sum(-1)   # (B, L)
    return _masked_sum(ce, observed).mean()


class StyleAdversaryTerm(Regulariser):
    """`--style-adversary LAMBDA`: lambda * style_penalty in the loss; the adversary trains after each step."""

    option = "style_adversary"

    def __init__(self, weight, model, *, world=1, lr=1e-3, device=None):
        super().__init__(weight, model, world=world, lr=lr, device=device)
        self.adversary = StyleAdversary(model.cfg.z_style, model.class_mask.cpu()).to(device)
        self.optimiser = Adam(self.adversary.parameters(), lr=lr)
        self.net: nn.Module = self.adversary          # the DDP wrapper under torchrun
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, x, terms, y, observed, autocast):
        with autocast():
            adv_loss = adversary_loss(self.net, terms.mu_s, y, observed)
            penalty = style_penalty(self.adversary, terms.mu_s, self.model.log_pi, observed)
            term = self.weight * penalty
        self.pending = (adv_loss, penalty)
        return term

    def after_step(self):
        adv_loss, penalty = self.pending
        self.optimiser.zero_grad(set_to_none=True)
        adv_loss.backward()
        self.optimiser.step()
        self.record(adversary_loss=float(adv_loss.detach()), style_penalty=float(penalty.detach()))
        self.pending = None

    def distribute(self, wrap):
        self.net = wrap(self.adversary)

    def state_dict(self):
        return {"adversary": self.adversary.state_dict(), "adversary_optimizer": self.optimiser.state_dict()}

    def load_state_dict(self, state):
        self.adversary.load_state_dict(state["adversary"])
        self.optimiser.load_state_dict(state["adversary_optimizer"])
