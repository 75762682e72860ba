"""The latent interventions of docs/method.md §4, on a tiny model with known prior tables."""

from __future__ import annotations

import pytest
import torch

from ccvae_tools.data.base import Label
from ccvae_tools.interventions import (conditional_sample, edit, interpolate, loop_path, swap, traversal_path,
                                       traverse, traverse_grid)
from ccvae_tools.model.network import CCVAE, ModelConfig


@pytest.fixture()
def model() -> CCVAE:
    torch.manual_seed(0)
    m = CCVAE(ModelConfig(image_size=32, channels=3, labels=[Label("a"), Label("b"), Label("c", ("x", "y", "z"))],
                          label_dims=[1, 1, 2], z_style=3, widths=(8, 8, 8), hidden=16))
    with torch.no_grad():
        m.prior_loc[0, :2, 0] = torch.tensor([-1.0, 1.0])     # label a: narrow range
        m.prior_raw_scale[0] = -3.0                           # scale ~0.05
        m.prior_loc[1, :2, 0] = torch.tensor([10.0, -30.0])   # label b: wide and reversed
        m.prior_raw_scale[1] = 3.0                            # scale ~3.05
    return m


def test_each_label_uses_its_own_prior_range(model):
    loc, scale = (t.detach() for t in model.prior_params())
    for i in (0, 1):
        sgn = torch.sign(loc[i, 1, 0] - loc[i, 0, 0])
        path = traversal_path(model, i, steps=5, span=2.0)[:, 0]
        assert path[0] == pytest.approx(float(loc[i, 0, 0] - 2 * sgn * scale[i, 0, 0]), abs=1e-5)
        assert path[-1] == pytest.approx(float(loc[i, 1, 0] + 2 * sgn * scale[i, 1, 0]), abs=1e-5)
        assert torch.all(torch.diff(path) * sgn > 0)
    z = torch.randn(2, model.cfg.z_dim)
    codes = traverse(model, z, 1, steps=7)
    assert codes.shape == (2, 7, model.cfg.z_dim)
    keep = [k for k in range(model.cfg.z_dim) if k != 1]
    assert torch.equal(codes[:, :, keep], z[:, None, keep].expand(-1, 7, -1))


def test_multiclass_block_walks_through_the_class_means(model):
    loc, _ = model.prior_params()
    path = traversal_path(model, 2, steps=401, span=1.0)          # dense: the means are knots of the path
    for k in range(3):
        assert torch.cdist(loc[2, k:k + 1, :2].detach(), path).min() < 0.1


def test_2d_grid_sets_two_blocks(model):
    z = torch.randn(1, model.cfg.z_dim)
    g = traverse_grid(model, z, 0, 1, steps=4)
    assert g.shape == (1, 4, 4, model.cfg.z_dim)
    assert torch.equal(g[0, :, 0, 0], g[0, :, 3, 0])   # label a down the rows
    assert torch.equal(g[0, 0, :, 1], g[0, 3, :, 1])   # label b across


def test_edit_is_quantile_preserving_and_touches_only_the_label(model):
    loc, scale = (t.detach() for t in model.prior_params())
    z = torch.randn(4, model.cfg.z_dim)
    z[:, 0] = torch.tensor([-1.02, -0.95, 1.01, 1.1])   # label a: classes 0, 0, 1, 1 (classifier sign)
    out = edit(model, z, {0: 1}, "quantile")
    assert torch.equal(out[:, 1:], z[:, 1:])
    assert torch.equal(out[2:, 0], z[2:, 0])              # already class 1: unchanged
    expect = loc[0, 1, 0] + (z[:2, 0] - loc[0, 0, 0]) * scale[0, 1, 0] / scale[0, 0, 0]
    assert torch.allclose(out[:2, 0], expect)
    assert torch.equal(edit(model, out, {0: 1}, "quantile"), out)     # a no-op once there


def test_outward_edit_keeps_the_distance_and_never_lands_short_of_the_new_mean(model):
    loc, scale = (t.detach() for t in model.prior_params())
    z = torch.randn(4, model.cfg.z_dim)
    z[:, 0] = torch.tensor([-1.02, -0.95, 1.01, 1.1])   # label a: classes 0, 0, 1, 1
    out = edit(model, z, {0: 1})                        # the default map
    assert torch.equal(out[:, 1:], z[:, 1:]) and torch.equal(out[2:, 0], z[2:, 0])
    t = (z[:2, 0] - loc[0, 0, 0]) / scale[0, 0, 0]
    away = torch.sign(loc[0, 1, 0] - loc[0, 0, 0])
    assert torch.allclose(out[:2, 0], loc[0, 1, 0] + t.abs() * scale[0, 1, 0] * away)
    assert bool(((out[:2, 0] - loc[0, 1, 0]) * away >= 0).all())     # on the far side of class 1's mean
    quantile = edit(model, z, {0: 1}, "quantile")
    deep = (t * away < 0)                                            # the codes on class 0's far side
    assert torch.allclose(out[:2, 0][~deep], quantile[:2, 0][~deep])  # elsewhere the two maps agree


def test_edit_map_choices_of_the_commands_are_the_library_s():
    from ccvae_tools.cli.params import EDIT_MAP_CHOICES
    from ccvae_tools.interventions import EDIT_MAPS

    assert EDIT_MAP_CHOICES == EDIT_MAPS
    with pytest.raises(ValueError, match="edit map"):
        edit(None, torch.zeros(1, 3), {0: 1}, "sideways")


def test_swap_and_interpolate(model):
    a, b = torch.randn(model.cfg.z_dim), torch.randn(model.cfg.z_dim)
    s = swap(model, a, b)
    zc = model.cfg.z_char
    assert torch.equal(s[:zc], b[:zc]) and torch.equal(s[zc:], a[zc:])
    assert torch.equal(swap(model, a, a), a)
    only_b = swap(model, a, b, labels=[1])
    assert only_b[1] == b[1] and only_b[0] == a[0]
    path = interpolate(a, b, 5)
    assert torch.equal(path[0], a) and torch.allclose(path[-1], b)


def test_conditional_samples_follow_the_prior_and_keep_style(model):
    g = torch.Generator().manual_seed(0)
    z = conditional_sample(model, 4000, {0: 1, 1: 0}, generator=g)
    loc, scale = (t.detach() for t in model.prior_params())
    assert z[:, 0].mean() == pytest.approx(float(loc[0, 1, 0]), abs=0.01)
    assert z[:, 1].mean() == pytest.approx(float(loc[1, 0, 0]), abs=0.2)
    assert z[:, 1].std() == pytest.approx(float(scale[1, 0, 0]), rel=0.05)
    cold = conditional_sample(model, 4000, {1: 0}, temperature=0.5, generator=g)
    assert cold[:, 1].std() == pytest.approx(0.5 * float(scale[1, 0, 0]), rel=0.05)
    style = torch.randn(model.cfg.z_dim)
    kept = conditional_sample(model, 3, {0: 0}, style=style, generator=g)
    assert torch.equal(kept[:, model.cfg.z_char:], style[model.cfg.z_char:].expand(3, -1))


def test_gif_loop_starts_at_the_own_code_and_reaches_both_ends(model):
    z = torch.randn(model.cfg.z_dim)
    frames = loop_path(model, z, 1, frames=24)
    path = traversal_path(model, 1, 33)
    assert torch.equal(frames[0], z)
    assert frames[6, 1] == pytest.approx(float(path[0, 0]))
    assert frames[18, 1] == pytest.approx(float(path[-1, 0]), abs=1e-4)
    assert (frames[-1, 1] - z[1]).abs() < (frames[18, 1] - z[1]).abs()  # heading home: the loop closes
