"""The CCVAE objective (docs/method.md §3): one bound for labelled, partly labelled and unlabelled data.

For an example x with observed labels O (a mask over labels):

    L(x, y_O) = E_q(z|x)[ w(z) F(x, z) ] + log q^(y_O | x) + sum_{i in O} log pi_{i, y_i}

    F(x, z) = log p(x|z) + log p(z_s) - log q(z|x)
              + sum_{i in O}     [ log p(z_c^i | y_i) - log q(y_i | z_c^i) ]
              + sum_{i not in O} sum_k q(y_i=k | z_c^i) [ log p(z_c^i | k) + log pi_{i,k} - log q(y_i=k | z_c^i) ]

    w(z) = q(y_O | z_c) / q^(y_O | x)     (stop-gradient)

    q^(y_O | x) = 1/(K+1) sum_{k=0..K} prod_{i in O} q(y_i | z_c^{i,(k)}),  z^(0) = the sample used in F

The z_s part of log p(z_s) - log q(z_s|x) is the analytic -KL(q(z_s|x) || N(0, I)). The encoder runs
once per call; mu and sigma serve all K+1 draws.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class BoundTerms(NamedTuple):
    """Per-example pieces of the bound, each (B,) but mu_s (B, d_s) and mu_c (B, sum d_i). `bound` is L(x, y_O); the loss is
    -bound.mean().

    A NamedTuple, so that DistributedDataParallel finds the tensors in the forward's output.
    """

    bound: torch.Tensor
    log_px: torch.Tensor            # log p(x|z) at the sample
    kl_style: torch.Tensor          # KL(q(z_s|x) || N(0, I))
    log_q_hat: torch.Tensor         # log q^(y_O | x)   (0 when nothing is observed)
    log_w: torch.Tensor             # log w(z), detached
    F: torch.Tensor                 # F(x, z) at the sample
    mu_s: torch.Tensor              # the posterior mean of z_s (the encoder's output the bound uses)
    mu_c: torch.Tensor              # the posterior mean of z_c


def _normal_log_prob(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((z - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)


def label_terms(model, z_c: torch.Tensor, y: torch.Tensor, observed: torch.Tensor):
    """The label part of F and log q(y_O | z_c), at one code per example.

    z_c (B, sum d), y (B, L) long (any value where unobserved), observed (B, L) bool.
    Returns (F_labels (B,), log_q_yO (B,)).
    """
    log_q = model.log_q_y(z_c)                       # (B, L, K)
    log_pz = model.log_p_zc_given_y(z_c)             # (B, L, K)
    y_idx = y.clamp_min(0).unsqueeze(-1)
    obs_log_q = log_q.gather(-1, y_idx).squeeze(-1)  # (B, L)
    obs_log_pz = log_pz.gather(-1, y_idx).squeeze(-1)
    # missing labels: exact expectation over k under q(y_i = k | z_c^i); invalid classes give 0
    q = log_q.exp()
    inner = torch.where(model.class_mask, log_pz + model.log_pi - log_q, torch.zeros_like(log_q))
    enumerated = (q * inner).sum(-1)                 # (B, L)
    zero = torch.zeros_like(obs_log_q)
    f_labels = torch.where(observed, obs_log_pz - obs_log_q, enumerated).sum(-1)
    log_q_yO = torch.where(observed, obs_log_q, zero).sum(-1)
    return f_labels, log_q_yO


def log_q_hat(model, mu_c, sigma_c, z_c0, y, observed, draws: int) -> torch.Tensor:
    """log q^(y_O|x): log-mean over z^(0) and `draws` fresh codes of prod_{i in O} q(y_i | z_c^i)."""
    y_idx = y.clamp_min(0).unsqueeze(-1)
    eps = torch.randn((draws,) + mu_c.shape, device=mu_c.device, dtype=mu_c.dtype)
    z_all = torch.cat([z_c0.unsqueeze(0), mu_c + sigma_c * eps], dim=0)      # (K+1, B, Dc)
    log_q = model.log_q_y(z_all)                                             # (K+1, B, L, Kmax)
    per = log_q.gather(-1, y_idx.expand(draws + 1, *y_idx.shape)).squeeze(-1)  # (K+1, B, L)
    per = torch.where(observed, per, torch.zeros_like(per)).sum(-1)         # (K+1, B)
    return torch.logsumexp(per, dim=0) - math.log(draws + 1)


def importance_log_weight(model, z_c, y, observed, log_q_yO, lq_hat) -> torch.Tensor:
    """log w = log q(y_O | z_c^(0)) - log q^(y_O | x), carrying no gradient (docs/method.md §3.3).

    A function of its own so that benchmarks/gradient_paths.py can put the official code's path in
    its place and measure what that path does to learning (docs/experiments.md, "Gradient paths").
    """
    return (log_q_yO - lq_hat).detach()


def ccvae_bound(model, x: torch.Tensor, y: torch.Tensor, observed: torch.Tensor,
                draws: int = 100, eps: torch.Tensor | None = None) -> BoundTerms:
    """L(x, y_O) per example. x (B, C, H, W) in [0, 1]; y (B, L) long; observed (B, L) bool.

    `eps` (B, Z) fixes the reparameterisation noise of z^(0) (for tests); drawn when None.
    """
    mu, sigma = model.encode(x)                      # the one encoder pass of the step
    if eps is None:
        eps = torch.randn_like(mu)
    z = mu + sigma * eps
    mu_c, mu_s = model.split(mu)
    sigma_c, sigma_s = model.split(sigma)
    z_c, _ = model.split(z)

    log_px = model.log_likelihood(x, model.decode(z))
    kl_style = 0.5 * (mu_s ** 2 + sigma_s ** 2 - 1.0 - 2.0 * torch.log(sigma_s)).sum(-1)
    log_qzc = _normal_log_prob(z_c, mu_c, sigma_c).sum(-1)
    f_labels, log_q_yO = label_terms(model, z_c, y, observed)
    F = log_px - kl_style - log_qzc + f_labels

    lq_hat = log_q_hat(model, mu_c, sigma_c, z_c, y, observed, draws)
    log_w = importance_log_weight(model, z_c, y, observed, log_q_yO, lq_hat)
    obs_log_pi = model.log_pi.unsqueeze(0).expand(y.shape[0], -1, -1).gather(
        -1, y.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    log_prior_y = torch.where(observed, obs_log_pi, torch.zeros_like(obs_log_pi)).sum(-1)

    bound = log_w.exp() * F + lq_hat + log_prior_y
    return BoundTerms(bound=bound, log_px=log_px, kl_style=kl_style, log_q_hat=lq_hat, log_w=log_w, F=F, mu_s=mu_s,
                      mu_c=mu_c)


def training_loss(terms: BoundTerms, classifier_weight: float = 0.0, kl_weight: float = 1.0) -> torch.Tensor:
    """Loss = -mean over the batch of [ L_beta(x, y_O) + alpha * log q^(y_O | x) ].

    L_beta is the bound with F's latent part (everything in F but log p(x|z)) scaled by beta =
    kl_weight: L_beta = L - (1 - beta) * w * (F - log p(x|z)). beta = 1 (the default) is L itself; a
    warm-up (ours, `--kl-warmup`) raises beta from 0 to 1 over the first epochs, so that small
    details (a mouth, a frame) are encoded before the latent cost applies in full.

    alpha = 0 is the paper's objective. Ours: with w's gradient stopped, the classifier terms of the
    bound cancel in expectation for observed labels (d log q^ = sum_k s_k d log q(y|z^(k)) and
    -w d log q(y|z^(0)) = -(K+1) s_0 d log q(y|z^(0)), whose expectations are equal because
    z^(0..K) are exchangeable), so labelled examples teach q(y|z_c) nothing and the encoder learns
    the labels only through the weak pull of p(z_c|y). alpha > 0 adds the classification signal of
    Kingma et al.'s M2 (their alpha). It changes the gradient, not the bound that is reported.
    """
    loss = terms.bound + classifier_weight * terms.log_q_hat
    if kl_weight != 1.0:
        loss = loss - (1.0 - kl_weight) * terms.log_w.exp() * (terms.F - terms.log_px)
    return -loss.mean()


def ccvae_loss(model, x, y, observed, draws: int = 100, classifier_weight: float = 0.0,
               ) -> tuple[torch.Tensor, BoundTerms]:
    """The training loss of a batch and its per-example terms."""
    terms = model(x, y, observed, draws)
    return training_loss(terms, classifier_weight), terms
