"""Latent interventions on codes (docs/method.md §4): plain functions on tensors."""

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


@torch.no_grad()
def traverse_grid(model, z: torch.Tensor, label_a: int, label_b: int, steps: int = 9, span: float = 2.0
                  ) -> torch.Tensor:
    """2-D traversal: (B, Z) -> (B, steps, steps, Z); label_a changes down the rows, label_b across."""
    if label_a == label_b:
        raise ValueError("a 2-D traversal needs two different labels")
    pa = traversal_path(model, label_a, steps, span).to(z)
    pb = traversal_path(model, label_b, steps, span).to(z)
    out = z[:, None, None, :].repeat(1, steps, steps, 1)
    out[:, :, :, model.label_slice(label_a)] = pa[None, :, None, :]
    out[:, :, :, model.label_slice(label_b)] = pb[None, None, :, :]
    return out


@torch.no_grad()
def conditional_sample(model, n: int, assignments: dict[int, int], style: torch.Tensor | None = None,
                       temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes (n, Z) drawn from the generative model with chosen label values.

    Labels in `assignments` (label index -> class) are fixed; the others are drawn from p(y_i).
    z_c^i ~ p(z_c^i | y_i) and z_s ~ N(0, I), both with standard deviations scaled by `temperature`;
    `style` (Z,) or (n, Z) keeps the style latents of a given image instead ("same face, new smile").
    """
    cfg = model.cfg
    loc, scale = model.prior_params()
    loc, scale = loc.detach().cpu(), scale.detach().cpu()
    pi = model.label_prior().detach().cpu()
    z = torch.empty(n, cfg.z_dim)
    for i, lab in enumerate(cfg.labels):
        d = cfg.label_dims[i]
        if i in assignments:
            y = torch.full((n,), int(assignments[i]), dtype=torch.long)
        else:
            y = torch.multinomial(pi[i, : lab.num_classes], n, replacement=True, generator=generator)
        eps = torch.randn(n, d, generator=generator)
        z[:, model.label_slice(i)] = loc[i, y, :d] + temperature * scale[i, y, :d] * eps
    if style is None:
        z[:, cfg.z_char:] = temperature * torch.randn(n, cfg.z_style, generator=generator)
    else:
        z[:, cfg.z_char:] = style.detach().cpu().reshape(-1, cfg.z_dim)[:, cfg.z_char:].expand(n, -1)
    return z


EDIT_MAPS = ("outward", "quantile")      # the first is the default (docs/method.md section 4.3)


@torch.no_grad()
def edit(model, z: torch.Tensor, assignments: dict[int, int], mapping: str = EDIT_MAPS[0]) -> torch.Tensor:
    """Set labels, keep the rest: move z_c^i from its current class c = argmax q(y_i | z_c^i) to class
    k (unchanged if c = k). With t = (z - mu_c) / sigma_c, the code's place in class c in its standard
    deviations, per coordinate:

        quantile   z' = mu_k + t * sigma_k                      (keeps the code's quantile)
        outward    z' = mu_k + |t| * sigma_k * sign(mu_k - mu_c)  (its distance from the class mean,
                                                                  on the far side of mu_k from class c)

    The quantile map sends a code deep inside class c (far from k) to the near edge of class k, where
    the decoder draws the change weakly or not at all; the outward map never lands short of mu_k.
    Coordinates where the two means are equal keep the quantile map."""
    if mapping not in EDIT_MAPS:
        raise ValueError(f"edit map {mapping!r}: one of {', '.join(EDIT_MAPS)}")
    out = z.clone()
    loc, scale = model.prior_params()
    z_c, _ = model.split(z)
    current = model.log_q_y(z_c).argmax(-1)                      # (B, L)
    for i, k in assignments.items():
        d = model.cfg.label_dims[i]
        sl = model.label_slice(i)
        c = current[:, i]
        mu_c, s_c = loc[i, c, :d], scale[i, c, :d]                # (B, d)
        mu_k, s_k = loc[i, k, :d], scale[i, k, :d]
        t = (z[:, sl] - mu_c) / s_c
        if mapping == "outward":
            away = torch.sign(mu_k - mu_c)
            t = torch.where(away != 0, t.abs() * away, t)
        moved = mu_k + t * s_k
        out[:, sl] = torch.where((c == k)[:, None], z[:, sl], moved)
    return out


@torch.no_grad()
def swap(model, z_a: torch.Tensor, z_b: torch.Tensor, labels: list[int] | None = None) -> torch.Tensor:
    """A's code with z_c^i replaced by B's for the chosen labels (default: all). z_s stays A's."""
    out = z_a.clone()
    for i in range(len(model.cfg.labels)) if labels is None else labels:
        sl = model.label_slice(i)
        out[..., sl] = z_b[..., sl]
    return out


@torch.no_grad()
def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 9) -> torch.Tensor:
    """The straight path between two codes: (Z,), (Z,) -> (steps, Z), ends included."""
    t = torch.linspace(0.0, 1.0, steps, dtype=z_a.dtype, device=z_a.device)[:, None]
    return (1 - t) * z_a[None] + t * z_b[None]


def loop_path(model, z: torch.Tensor, label: int, frames: int, span: float = 2.0) -> torch.Tensor:
    """A seamless loop for a GIF: from the image's own code to one end of label i's traversal, along it
    to the other end, and back. (Z,) -> (frames, Z); frame 0 is the image's own code.

    The loop is split by phase (a quarter out, half along, a quarter back), so that tiles of different
    labels stay in step. ping_pong_holds(frames) gives the frames at the two ends.
    """
    path = traversal_path(model, label, 33, span).to(z)
    own = z[model.label_slice(label)]
    q1, q3 = frames // 4, frames - frames // 4
    pts = []
    for f in range(frames):
        if f <= q1:
            t = f / max(q1, 1)
            pts.append((1 - t) * own + t * path[0])
        elif f <= q3:
            t = (f - q1) / max(q3 - q1, 1)
            pts.append(point_along(path, t))
        else:
            t = (f - q3) / max(frames - q3, 1)
            pts.append((1 - t) * path[-1] + t * own)
    out = z[None].repeat(frames, 1)
    out[:, model.label_slice(label)] = torch.stack(pts)
    return out


def ping_pong_holds(frames: int) -> tuple[int, int]:
    """The frame indices at the two ends of loop_path's traversal."""
    return frames // 4, frames - frames // 4


def point_along(path: torch.Tensor, t: float) -> torch.Tensor:
    """The point at fraction t in [0, 1] of a polyline of equally spaced samples (steps, d)."""
    x = t * (len(path) - 1)
    j = min(int(x), len(path) - 2)
    f = x - j
    return (1 - f) * path[j] + f * path[j + 1]


def position_along(path: torch.Tensor, point: torch.Tensor) -> float:
    """The fraction t in [0, 1] of the polyline's point nearest to `point` (d,): the inverse of
    `point_along` for points on the path, the projection onto it for the others."""
    a, b = path[:-1].float(), path[1:].float()
    seg = b - a
    length2 = (seg * seg).sum(1).clamp_min(1e-12)
    f = (((point.float() - a) * seg).sum(1) / length2).clamp(0, 1)             # each segment's nearest
    dist = (a + f[:, None] * seg - point.float()).norm(dim=1)
    j = int(dist.argmin())
    return (j + float(f[j])) / (len(path) - 1)
