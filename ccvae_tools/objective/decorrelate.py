"""Style decorrelation (ours, not the paper's; `ccvae train --style-decorrelate LAMBDA`).

The CCVAE generative model draws z_s independently of the labels, but nothing in the bound stops the
encoder from also writing a label, or a label's characteristics (the kind of hat, the shade of the
hair), into z_s. The style adversary (adversary.py) tries to catch that with a trained network; an
adversary lags behind the encoder it watches and is easily fooled. This penalty needs no training:
in every batch it measures, in closed form, how much of each label a linear read-out of z_s explains,

    R^2_i = c_i^T (S + r I)^-1 c_i / var(t_i)

where t_i is the indicator of one class of label i over the examples where label i is observed, c_i =
cov(z_s, t_i), S = cov(z_s) over the batch and r = 0.05 * mean(diag S) a ridge (held fixed in the
gradient). R^2_i is the share of t_i's variance explained by the best ridge regression on z_s; it does
not change when z_s is rescaled, so it cannot be won by shrinking the code. For a label with K classes
it is the mean over its K class indicators (a binary label: the R^2 of its positive class). The
loss gains lambda * sum_i R^2_i; the reported bound is unchanged. z_s is the posterior mean mu_s(x).

On a batch of B examples, a code that knows nothing of the labels still scores about d_s / B per
label (the regression fits noise); the penalty's gradient on that part averages out across batches.
A label observed in fewer than 2 d_s examples of the batch (or MIN_OBSERVED) is left out of that
batch: with about as many rows as dimensions a regression explains anything, and R^2 near 1 would
only push noise (with 27 style dimensions, batches of 64 with a fifth of the labels observed).
Under torchrun the processes pool their shares of the batch (gather_batch), so the penalty sees the
whole batch whatever the number of processes.
"""

from __future__ import annotations

import torch

from ccvae_tools.objective.base import Regulariser

RIDGE = 0.05          # r as a share of the mean variance of the code's dimensions
MIN_OBSERVED = 8      # a label observed in fewer examples of the batch (or 2 d_s) is left out


def style_label_r2(z_s: torch.Tensor, y: torch.Tensor, observed: torch.Tensor,
                   class_mask: torch.Tensor) -> torch.Tensor:
    """Per-label R^2 of the labels regressed on z_s within the batch, (L,); 0 where a label is left
    out (observed in fewer than min_rows(d_s) examples, or constant there).

    z_s (B, d_s); y (B, L) long; observed (B, L) bool; class_mask (L, K_max) bool (the valid classes).
    """
    z = z_s.float()
    z = z - z.mean(0)
    cov = z.T @ z / z.shape[0]
    ridge = RIDGE * cov.diagonal().mean().detach()
    inv = torch.linalg.inv(cov + ridge * torch.eye(z.shape[1], device=z.device, dtype=z.dtype))
    out = []
    for i in range(y.shape[1]):
        ob = observed[:, i]
        r2 = z.new_zeros(())
        if int(ob.sum()) >= min_rows(z.shape[1]):
            classes = torch.nonzero(class_mask[i]).flatten()
            if len(classes) == 2:
                classes = classes[1:]            # a binary label: both indicators give the same R^2
            zi = z[ob]
            zi = zi - zi.mean(0)
            parts = []
            for k in classes.tolist():
                t = (y[ob, i] == k).to(z.dtype)
                t = t - t.mean()
                var = (t * t).mean()
                if var > 1e-8:
                    c = (zi * t[:, None]).mean(0)
                    parts.append(c @ inv @ c / var)
            if parts:
                r2 = torch.stack(parts).mean()
        out.append(r2)
    return torch.stack(out)


def gather_batch(z_s: torch.Tensor, y: torch.Tensor, observed: torch.Tensor):
    """Under torch.distributed: every process's batch, concatenated in rank order, so that the penalty
    sees the whole batch. Only this process's rows keep their gradient; DistributedDataParallel then
    averages the gradients over the W processes, so the caller multiplies the penalty by W to get the
    gradient of the whole batch's penalty. Shares of different sizes are padded for the exchange."""
    import torch.distributed as td

    world, rank = td.get_world_size(), td.get_rank()
    n = torch.tensor([z_s.shape[0]], device=z_s.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    td.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    most = max(sizes)

    def exchange(t: torch.Tensor) -> list[torch.Tensor]:
        padded = torch.cat([t, t.new_zeros((most - t.shape[0],) + tuple(t.shape[1:]))])
        parts = [torch.empty_like(padded) for _ in range(world)]
        td.all_gather(parts, padded.contiguous())
        return [p[:k] for p, k in zip(parts, sizes)]

    zs = exchange(z_s.detach())
    zs[rank] = z_s
    ys = exchange(y)
    obs = [o.bool() for o in exchange(observed.to(torch.uint8))]
    return torch.cat(zs), torch.cat(ys), torch.cat(obs)


def min_rows(style_dims: int) -> int:
    """The fewest examples with a label observed for the label to count in a batch."""
    return max(MIN_OBSERVED, 2 * style_dims)


def decorrelation_penalty(z_s: torch.Tensor, y: torch.Tensor, observed: torch.Tensor,
                          class_mask: torch.Tensor) -> torch.Tensor:
    """sum_i R^2_i: what `--style-decorrelate LAMBDA` adds to the loss, times LAMBDA."""
    return style_label_r2(z_s, y, observed, class_mask).sum()


class DecorrelationTerm(Regulariser):
    """`--style-decorrelate LAMBDA`: lambda * sum_i R^2_i over the whole batch (pooled under torchrun)."""

    option = "style_decorrelate"

    def loss(self, x, terms, y, observed, autocast):
        z_s, labels, seen = terms.mu_s.float(), y, observed
        if self.world > 1:       # the whole batch; x world: DDP averages the gradients
            z_s, labels, seen = gather_batch(z_s, labels, seen)
        r2 = decorrelation_penalty(z_s, labels, seen, self.model.class_mask)
        self.record(style_r2=float(r2.detach()))
        return self.weight * self.world * r2

    def notes(self, batch_size):
        need = min_rows(self.model.cfg.z_style)
        if batch_size >= need:
            return []
        return [f"--style-decorrelate counts a label only in batches of at least {need} examples with it "
                f"observed (2 x the style size); this run's batches are {batch_size}, so the penalty never "
                f"acts: raise --batch-size"]
