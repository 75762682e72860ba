"""Latent interventions on codes (method.md section 4): plain functions on tensors."""

from __future__ import annotations

import torch


def traversal_path(model, label: int, steps: int = 9, span: float = 2.0) -> torch.Tensor:
    """Points of z_c^i for a traversal of label i: (steps, d_i).

    The path runs through the class means of label i in class order, extended past the first and
    the last mean by `span` conditional-prior standard deviations along the end segments. For a
    binary label with d_i = 1 this is mu_0 - s*sgn*sigma_0 .. mu_1 + s*sgn*sigma_1. Each label
    uses its own prior's range.
    """
    k = model.cfg.labels[label].num_classes
    d = model.cfg.label_dims[label]
    loc, scale = model.prior_params()
    means = loc[label, :k, :d].detach().float()
    scales = scale[label, :k, :d].detach().float()

    def direction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        v = b - a
        n = v.norm()
        if n == 0:
            v = torch.zeros_like(a)
            v[0] = 1.0
            return v
        return v / n

    start = means[0] - span * scales[0] * direction(means[0], means[1])
    end = means[-1] + span * scales[-1] * direction(means[-2], means[-1])
    knots = torch.cat([start[None], means, end[None]], dim=0)            # (k+2, d)
    seg = (knots[1:] - knots[:-1]).norm(dim=1)
    cum = torch.cat([torch.zeros(1), seg.cumsum(0)])
    targets = torch.linspace(0.0, float(cum[-1]), steps)
    out = []
    for t in targets:
        j = int(torch.searchsorted(cum, t, right=True).clamp(1, len(seg))) - 1
        frac = 0.0 if seg[j] == 0 else float((t - cum[j]) / seg[j])
        out.append(knots[j] + frac * (knots[j + 1] - knots[j]))
    return torch.stack(out)


@torch.no_grad()
def traverse(model, z: torch.Tensor, label: int, steps: int = 9, span: float = 2.0) -> torch.Tensor:
    """Codes along label i's traversal for each code in z: (B, Z) -> (B, steps, Z)."""
    path = traversal_path(model, label, steps, span).to(z)
    out = z.unsqueeze(1).repeat(1, steps, 1)
    out[:, :, model.label_slice(label)] = path.unsqueeze(0)
    return out
