"""The conditional prior set to the codes at the end of training (ours; `--calibrate-prior`, on by
default, off with `--preset paper`).

The table of p(z_c^i | y_i = k) is a parameter like any other, and Adam moves each entry by about
the learning rate per step: in a short run it stays near where it started (+-2 for a binary label)
while the encoder, pushed by alpha * log q(y|x), spreads the codes much further (in a 20-epoch
run on 3,000 avatars, Eyeglasses codes at +6.1 under a prior at +2.3). Edits, conditional samples
and traversals all go through the table, so they land among codes the decoder has never seen:
an edit from deep inside class 0 to class 1 (the quantile map of interventions.edit)
stays on the class-0 side, and the picture does not change (docs/experiments.md, "The prior set
to the codes").

So after the last epoch each class's Gaussian is set to the codes of the train images of that
class: for label i and class k, over the train images whose label i is k (the known label, else
the class q(y_i | mu_c) reads),

    mu_{i,k}      = mean of mu_c^i(x)
    sigma_{i,k}^2 = mean of sigma_c^i(x)^2 + (mu_c^i(x) - mu_{i,k})^2     (per coordinate)

which is the Gaussian closest in KL to the mixture of those posteriors, i.e. the table that
maximises the bound's labelled part for the trained encoder. The classifier is untouched, so
label accuracy is the same. A class keeps its learnt entry when it has fewer than MIN_IMAGES
images, or when the classifier would not read the new mean as that class (codes that do not yet
separate the classes, early in a run): an edit to that class would not be read as done.
"""

from __future__ import annotations

import numpy as np
import torch

from ccvae_tools.evaluation.heldout import predicted_classes

MIN_IMAGES = 2            # a class needs this many images for a mean and a spread


@torch.no_grad()
def code_moments(model, batches, idx: np.ndarray, batch_size: int = 256) -> tuple[torch.Tensor, ...]:
    """Sums over the images idx, per label block and class: count (L, K), sum of mu (L, K, D), sum of
    mu^2 + sigma^2 (L, K, D). batches: a training.batches.Batches (x, y, observed per row)."""
    L, K, D = model.num_labels, model.kmax, model.dmax
    count = torch.zeros(L, K, dtype=torch.float64)
    first, second = torch.zeros(L, K, D, dtype=torch.float64), torch.zeros(L, K, D, dtype=torch.float64)
    for s in range(0, len(idx), batch_size):
        x, y, observed = batches.get(idx[s: s + batch_size])
        mu, sigma = model.encode(x)
        read = torch.from_numpy(predicted_classes(model, mu)).to(y.device)
        cls = torch.where(observed, y.clamp_min(0), read).cpu()                 # (B, L)
        mu_b = model.blocks(model.split(mu)[0]).double().cpu()                  # (B, L, D)
        var_b = model.blocks(model.split(sigma)[0]).double().cpu() ** 2
        onehot = torch.nn.functional.one_hot(cls, K).double()                   # (B, L, K)
        count += onehot.sum(0)
        first += torch.einsum("blk,bld->lkd", onehot, mu_b)
        second += torch.einsum("blk,bld->lkd", onehot, mu_b ** 2 + var_b)
    return count, first, second


def _read_as_their_class(model, loc: torch.Tensor) -> torch.Tensor:
    """(L, K) bool: q(y_i | z_c^i = loc_{i,k}) has its largest value at k."""
    dev = model.prior_loc.device
    logits = model.block_logits(loc.to(dev).transpose(0, 1))          # class k's means: (K, L, K)
    return (logits.argmax(-1).T.cpu() == torch.arange(model.kmax))


def calibrate_prior(model, batches, idx: np.ndarray, batch_size: int = 256) -> dict:
    """Set each class's p(z_c^i | y_i = k) to the moments of its train codes (module docstring).
    Returns, per label name, the images counted per class and the class means before and after
    (the first coordinate), for the run's log."""
    was_training = model.training
    model.eval()
    count, first, second = code_moments(model, batches, idx, batch_size)
    model.train(was_training)
    n = count.clamp_min(1).unsqueeze(-1)
    loc = first / n
    scale = (second / n - loc ** 2).clamp_min(0).sqrt()
    enough = (count >= MIN_IMAGES) & model.class_mask.cpu() & _read_as_their_class(model, loc.float())
    which = enough.unsqueeze(-1) & model.dim_mask.cpu().unsqueeze(1)
    before = model.prior_loc.detach()[..., 0].cpu().clone()
    model.set_prior_params(loc.float().to(model.prior_loc.device), scale.float().to(model.prior_loc.device),
                           which.to(model.prior_loc.device))
    after = model.prior_loc.detach()[..., 0].cpu()
    report = {}
    for i, lab in enumerate(model.cfg.labels):
        k = lab.num_classes
        report[lab.name] = {"images": count[i, :k].long().tolist(), "mean_before": before[i, :k].tolist(),
                            "mean_after": after[i, :k].tolist()}
    return report
