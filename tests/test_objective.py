"""Properties of the CCVAE bound (docs/method.md §3), each checked against an independent computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Laplace, Normal

from ccvae_tools.data.base import Label
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.objective.bound import ccvae_bound, ccvae_loss

LABELS = [Label("smiling"), Label("glasses"), Label("hair", ("black", "blond", "brown"))]


def tiny_model(seed: int = 0, dims=(1, 1, 2), b: float = 1.0) -> CCVAE:
    torch.manual_seed(seed)
    m = CCVAE(ModelConfig(image_size=32, channels=1, labels=LABELS, label_dims=list(dims), z_style=3,
                          likelihood_scale=b, widths=(8, 8, 8), hidden=16))
    m.set_label_prior(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0], [1.0, float("nan"), 0.0]]))
    return m.double()


def batch(n: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 32, 32, generator=g, dtype=torch.float64)
    y = torch.stack([torch.randint(0, 2, (n,), generator=g), torch.randint(0, 2, (n,), generator=g),
                     torch.randint(0, 3, (n,), generator=g)], dim=1)
    return x, y


def direct_pieces(m: CCVAE, x, eps):
    """Per-example, per-label quantities by plain loops over torch.distributions (no batching tricks)."""
    mu, sigma = m.encode(x)
    z = mu + sigma * eps
    z_c, z_s = m.split(z)
    mu_c, mu_s = m.split(mu)
    s_c, s_s = m.split(sigma)
    log_px = Laplace(m.decode(z), m.cfg.likelihood_scale).log_prob(x).flatten(1).sum(1)
    kl = torch.distributions.kl_divergence(Normal(mu_s, s_s), Normal(0.0, 1.0)).sum(1)
    log_qzc = Normal(mu_c, s_c).log_prob(z_c).sum(1)
    return mu_c, s_c, z_c, log_px, kl, log_qzc


def label_dists(m: CCVAE, zc_row: torch.Tensor, i: int):
    """q(y_i | z_c^i) as a Categorical and the list of p(z_c^i | k) Normals, for one example."""
    k = m.cfg.labels[i].num_classes
    d = m.cfg.label_dims[i]
    block = zc_row[m.label_slice(i)]
    logits = m.cls_weight[i, :k, :d] @ block + m.cls_bias[i, :k]
    q = Categorical(logits=logits)
    loc, scale = m.prior_params()
    priors = [Normal(loc[i, c, :d], scale[i, c, :d]) for c in range(k)]
    return q, priors


def test_full_mask_equals_supervised_bound_computed_directly():
    m = tiny_model()
    x, y = batch()
    observed = torch.ones_like(y, dtype=torch.bool)
    K = 7
    eps = torch.randn(x.shape[0], m.cfg.z_dim, dtype=torch.float64)
    torch.manual_seed(123)
    ours = ccvae_bound(m, x, y, observed, draws=K, eps=eps)

    torch.manual_seed(123)
    mu_c, s_c, z_c, log_px, kl, log_qzc = direct_pieces(m, x, eps)
    fresh = mu_c + s_c * torch.randn((K,) + mu_c.shape, dtype=torch.float64)
    for b in range(x.shape[0]):
        log_py = sum(float(m.log_pi[i, y[b, i]]) for i in range(3))
        lpz, lqy = 0.0, 0.0
        for i in range(3):
            q, priors = label_dists(m, z_c[b], i)
            lpz += priors[y[b, i]].log_prob(z_c[b][m.label_slice(i)]).sum()
            lqy += q.log_prob(y[b, i])
        # q^(y|x) over the shared sample and the K fresh draws
        per_draw = [lqy]
        for k in range(K):
            per_draw.append(sum(label_dists(m, fresh[k, b], i)[0].log_prob(y[b, i]) for i in range(3)))
        log_qhat = torch.logsumexp(torch.stack(per_draw), 0) - math.log(K + 1)
        w = torch.exp(lqy - log_qhat)
        F = log_px[b] - kl[b] - log_qzc[b] + lpz - lqy
        expected = w * F + log_qhat + log_py
        assert torch.allclose(ours.bound[b], expected, rtol=1e-9, atol=1e-8)


def test_empty_mask_equals_elbo_with_y_enumerated():
    m = tiny_model()
    x, y = batch()
    observed = torch.zeros_like(y, dtype=torch.bool)
    eps = torch.randn(x.shape[0], m.cfg.z_dim, dtype=torch.float64)
    ours = ccvae_bound(m, x, y, observed, draws=5, eps=eps)
    assert torch.all(ours.log_w == 0) and torch.all(ours.log_q_hat.abs() < 1e-12)
    _, _, z_c, log_px, kl, log_qzc = direct_pieces(m, x, eps)
    for b in range(x.shape[0]):
        total = log_px[b] - kl[b] - log_qzc[b]
        for i in range(3):
            q, priors = label_dists(m, z_c[b], i)
            block = z_c[b][m.label_slice(i)]
            for k in range(len(priors)):
                pk = q.probs[k]
                total += pk * (priors[k].log_prob(block).sum() + m.log_pi[i, k] - torch.log(pk))
        assert torch.allclose(ours.bound[b], total, rtol=1e-9, atol=1e-8)


def test_enumerated_sum_equals_average_of_sampled_y():
    m = tiny_model()
    x, y = batch(n=1)
    eps = torch.randn(1, m.cfg.z_dim, dtype=torch.float64)
    none = torch.zeros_like(y, dtype=torch.bool)
    exact = ccvae_bound(m, x, y, none, draws=1, eps=eps).bound[0]
    # the same bound with y sampled from q(y | z_c) for every label, averaged over many samples
    _, _, z_c, log_px, kl, log_qzc = direct_pieces(m, x, eps)
    torch.manual_seed(0)
    S = 200_000
    est = log_px[0] - kl[0] - log_qzc[0]
    for i in range(3):
        q, priors = label_dists(m, z_c[0], i)
        ys = q.sample((S,))
        block = z_c[0][m.label_slice(i)]
        lp = torch.stack([p.log_prob(block).sum() for p in priors])
        vals = lp[ys] + m.log_pi[i, ys] - q.log_prob(ys)
        est = est + vals.mean()
    assert abs(float((exact - est).detach())) < 0.02


@pytest.mark.parametrize("mask", ["all", "some", "none"])
def test_bound_does_not_exceed_importance_sampled_log_likelihood(mask):
    m = tiny_model(seed=3, dims=(1, 1, 1), b=0.5)
    x, y = batch(n=1, seed=5)
    observed = {"all": torch.tensor([[True, True, True]]), "some": torch.tensor([[True, False, True]]),
                "none": torch.tensor([[False, False, False]])}[mask]
    torch.manual_seed(0)
    with torch.no_grad():
        R = 4000
        xs = x.expand(R, -1, -1, -1)
        t = ccvae_bound(m, xs, y.expand(R, -1), observed.expand(R, -1), draws=50)
        # E[L] with a control variate: E[w] = 1 exactly (z^(0..K) are exchangeable), so
        # E[w F] = E[w (F - c)] + c for any constant c; c = mean F removes the Monte Carlo noise
        # that the large, nearly constant log p(x|z) would otherwise multiply into the average.
        c = t.F.mean()
        log_prior_y = (t.bound - t.log_w.exp() * t.F - t.log_q_hat).mean()
        bound = (t.log_w.exp() * (t.F - c)).mean() + c + t.log_q_hat.mean() + log_prior_y
        # log p(x, y_O) by importance sampling with q(z|x) as the proposal
        mu, sigma = m.encode(x)
        S = 20000
        z = mu + sigma * torch.randn(S, m.cfg.z_dim, dtype=torch.float64)
        z_c, z_s = m.split(z)
        log_q = Normal(mu, sigma).log_prob(z).sum(1)
        log_pzs = Normal(0.0, 1.0).log_prob(z_s).sum(1)
        lpz = m.log_p_zc_given_y(z_c)                      # (S, L, K)
        joint = lpz + m.log_pi                             # log p(z_c^i | k) + log pi_k
        obs_terms = joint.gather(-1, y.expand(S, -1).unsqueeze(-1)).squeeze(-1)
        marg_terms = torch.logsumexp(joint, dim=-1)
        log_pzc_y = torch.where(observed.expand(S, -1), obs_terms, marg_terms).sum(1)
        log_px = torch.cat([m.log_likelihood(x.expand(n, -1, -1, -1), m.decode(z[s:s + n]))
                            for s, n in ((s, min(2000, S - s)) for s in range(0, S, 2000))])
        log_w = log_px + log_pzs + log_pzc_y - log_q
        log_p = torch.logsumexp(log_w, 0) - math.log(S)
    assert float(bound) <= float(log_p) + 0.05, (float(bound), float(log_p))


def test_w_is_finite_and_bounded_for_extreme_images():
    m = tiny_model().float()
    K = 20
    x = torch.cat([torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32)])
    y = torch.tensor([[0, 1, 2], [1, 0, 0], [0, 0, 1], [1, 1, 2]])
    with torch.no_grad():  # push the classifier to extremes so that q(y|z) under/overflows
        m.cls_weight.mul_(300.0)
    for observed in (torch.ones(4, 3, dtype=torch.bool), torch.tensor([[1, 0, 1]] * 4, dtype=torch.bool)):
        terms = ccvae_bound(m, x, y, observed, draws=K)
        assert torch.isfinite(terms.bound).all()
        assert torch.isfinite(terms.log_w).all()
        assert (terms.log_w <= math.log(K + 1) + 1e-5).all()
        loss = -terms.bound.mean()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
        m.zero_grad()


def test_w_carries_no_gradient_but_q_hat_does():
    m = tiny_model().float()
    x, y = batch()
    terms = ccvae_bound(m, x.float(), y, torch.ones_like(y, dtype=torch.bool), draws=5)
    assert terms.log_w.grad_fn is None
    assert terms.log_q_hat.grad_fn is not None
    terms.log_q_hat.sum().backward()
    assert m.cls_weight.grad.abs().sum() > 0 and m.encoder.loc.weight.grad.abs().sum() > 0


def test_unlabelled_examples_train_the_classifier():
    """Summing y out (not sampling it without a gradient) gives the classifier a gradient."""
    m = tiny_model().float()
    x, y = batch()
    terms = ccvae_bound(m, x.float(), y, torch.zeros_like(y, dtype=torch.bool), draws=5)
    (-terms.bound.mean()).backward()
    assert m.cls_weight.grad.abs().sum() > 0 and m.prior_loc.grad.abs().sum() > 0


def test_training_step_runs_the_encoder_once():
    m = tiny_model().float()
    calls = []
    m.encoder.register_forward_hook(lambda *a: calls.append(1))
    x, y = batch(n=6)
    observed = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 0]] * 2, dtype=torch.bool)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    loss, _ = ccvae_loss(m, x.float(), y, observed, draws=100)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert len(calls) == 1


def test_mixed_batch_rows_match_rows_alone():
    """Labelled, partly labelled and unlabelled examples share a batch without affecting each other."""
    m = tiny_model()
    x, y = batch(n=3)
    observed = torch.tensor([[1, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    eps = torch.randn(3, m.cfg.z_dim, dtype=torch.float64)
    together = ccvae_bound(m, x, y, observed, draws=1, eps=eps)
    for b in range(3):
        alone = ccvae_bound(m, x[b:b + 1], y[b:b + 1], observed[b:b + 1], draws=1, eps=eps[b:b + 1])
        assert torch.allclose(together.F[b], alone.F[0])


def test_stopped_w_cancels_the_classifier_gradient_of_labelled_examples_and_alpha_restores_it():
    """Why --classifier-weight exists: with w's gradient stopped, the classifier terms of the bound
    give q(y|z_c) no gradient in expectation on labelled data; alpha * log q^(y|x) gives a steady one."""
    from ccvae_tools.objective.bound import training_loss

    m = tiny_model(dims=(1, 1, 1)).float()
    x, y = batch(n=8)
    x = x.float()
    observed = torch.ones_like(y, dtype=torch.bool)

    def mean_and_sem(alpha: float, reps: int = 300):
        grads = []
        torch.manual_seed(0)
        for _ in range(reps):
            m.zero_grad()
            training_loss(m(x, y, observed, 10), alpha).backward()
            grads.append(m.cls_bias.grad[:, 1].clone())
        g = torch.stack(grads)
        return g.mean(0), g.std(0) / math.sqrt(reps)

    mean0, sem0 = mean_and_sem(0.0)
    assert (mean0.abs() < 4 * sem0 + 1e-4).all()          # zero within noise
    mean1, sem1 = mean_and_sem(1.0)
    assert (mean1.abs() > 5 * sem1).any()                  # a signal well above noise


def test_kl_weight_scales_only_the_latent_part_of_F():
    """--kl-warmup: beta = 1 is the loss of the bound; beta < 1 scales everything in F but log p(x|z)."""
    from ccvae_tools.objective.bound import training_loss

    m = tiny_model(dims=(1, 1, 1)).float()
    x, y = batch(n=6)
    observed = torch.rand(y.shape) < 0.5
    torch.manual_seed(3)
    terms = m(x.float(), y, observed, 10)
    assert torch.equal(training_loss(terms, 2.0, 1.0), training_loss(terms, 2.0))
    w = terms.log_w.exp()
    for beta in (0.0, 0.25):
        expect = -(w * (terms.log_px + beta * (terms.F - terms.log_px)) + terms.log_q_hat * 3.0
                   + (terms.bound - w * terms.F - terms.log_q_hat)).mean()
        assert torch.allclose(training_loss(terms, 2.0, beta), expect, rtol=1e-5, atol=1e-3)


def test_bernoulli_likelihood_is_the_soft_binary_cross_entropy():
    from ccvae_tools.data.base import Label
    from ccvae_tools.model.network import CCVAE, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, channels=1, labels=[Label("a")], z_style=2, widths=(4, 4, 4), hidden=8,
                      likelihood="bernoulli")
    m = CCVAE(cfg)
    x = torch.rand(3, 1, 32, 32)
    mean = torch.rand(3, 1, 32, 32).clamp(0.01, 0.99)
    want = -torch.nn.functional.binary_cross_entropy(mean, x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(m.log_likelihood(x, mean), want, atol=1e-4)
    again = ModelConfig.from_json(cfg.to_json())
    assert again.likelihood == "bernoulli"
    old = cfg.to_json()
    old.pop("likelihood")                                 # a weights file from before the option
    assert ModelConfig.from_json(old).likelihood == "laplace"


def test_multiclass_blocks_start_their_classes_at_distinct_corners():
    from ccvae_tools.model.network import initial_class_means, label_block_sizes

    labels = [Label("bin", ("0", "1")), Label("three", ("a", "b", "c")), Label("char", tuple("abcdefghijklmnopqrst"))]
    assert label_block_sizes(labels) == [1, 2, 5]
    assert label_block_sizes(labels, 3) == [3, 3, 5]
    assert initial_class_means(2, 1).flatten().tolist() == [-2.0, 2.0]        # the paper's binary start
    assert initial_class_means(2, 3).tolist() == [[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0]]
    mu = initial_class_means(20, 5)
    gaps = torch.cdist(mu, mu) + torch.eye(20) * 100
    assert gaps.min() >= 4.0 - 1e-6                                          # every pair a full step apart
    old = initial_class_means(20, 1)                                         # files with 1-D blocks still build
    assert old[:, 0].tolist() == torch.linspace(-2.0, 2.0, 20).tolist()
    m = CCVAE(ModelConfig(image_size=32, channels=1, labels=labels, label_dims=label_block_sizes(labels), z_style=3,
                          widths=(8, 8, 8), hidden=16))
    z_c = m.prior_loc[2, :20, :5]                                            # each letter's mean is classified as itself
    assert (m.log_q_y(torch.cat([torch.zeros(20, 3), z_c], dim=1))[:, 2, :20].argmax(-1) == torch.arange(20)).all()
