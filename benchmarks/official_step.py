"""The official code's training step, re-implemented for side-by-side timing (not our objective).

What it re-implements, from reading thwjoy/ccvae_pytorch (models/ccvae.py, models/networks.py,
ss_vae.py): the paper's 64 px network in NCHW fp32; a diagonal classifier (one weight and one bias
per label on its own coordinate of z_c, Bernoulli); a conditional prior whose loc and scale are
chosen per label by y (scale through a softplus clamped at 1e-3); and two losses:

- unlabelled batch: one y drawn from q(y|z_c) (no enumeration), the analytic KL of q(z|x) against
  p(z_c|y) x N(0, I) for z_s, a Laplace(recon, 1) likelihood, -mean(log p(x|z) + log p(y) - KL - log q(y|z_c));
- labelled batch: the same KL against p(z_c|y) at the true y; log q^(y|x) from a *second* encoder pass
  with 100 draws of z_c; w = q(y|z_c with z_c detached) / q^(y|x), not detached;
  -mean(w (log p(x|z) - KL - log q(y|z_c)) + log p(y) + log q^(y|x)).

Labelled batches come every `period` steps (the official interleave: len(sup) + len(unsup) batches per
epoch, one labelled batch every (that total // len(sup)) steps). The networks are defined here, not
taken from ccvae_tools, so that nothing of ours (channels-last, our objective's shortcuts) leaks in.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class OfficialNet(nn.Module):
    """Encoder, decoder, diagonal classifier and conditional prior at 64 px, as the official code has them."""

    def __init__(self, num_labels: int, z_dim: int, hidden: int = 256):
        super().__init__()
        self.num_labels, self.z_dim = num_labels, z_dim
        widths = [3, 32, 32, 64, 128]
        down: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            down += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(True)]
        self.enc = nn.Sequential(*down, nn.Conv2d(128, hidden, 4, 1), nn.ReLU(True), nn.Flatten())
        self.locs, self.scales = nn.Linear(hidden, z_dim), nn.Linear(hidden, z_dim)
        up: list[nn.Module] = [nn.ConvTranspose2d(hidden, 128, 4), nn.ReLU(True)]
        rev = widths[::-1]                                   # 128, 64, 32, 32, 3
        for i, (cin, cout) in enumerate(zip(rev, rev[1:])):
            up += [nn.ConvTranspose2d(cin, cout, 4, 2, 1)] + ([nn.ReLU(True)] if i < len(rev) - 2 else [])
        self.dec_in = nn.Linear(z_dim, hidden)
        self.dec = nn.Sequential(*up, nn.Sigmoid())
        self.cls_w, self.cls_b = nn.Parameter(torch.ones(num_labels)), nn.Parameter(torch.zeros(num_labels))
        self.loc_true, self.loc_false = (nn.Parameter(torch.zeros(num_labels)) for _ in range(2))
        self.scale_true, self.scale_false = (nn.Parameter(torch.ones(num_labels)) for _ in range(2))

    def posterior(self, x):
        h = self.enc(x)
        return self.locs(h), F.softplus(self.scales(h)).clamp(min=1e-3)

    def decode(self, z):
        return self.dec(F.relu(self.dec_in(z)).view(len(z), -1, 1, 1))

    def logits(self, zc):
        return zc * self.cls_w + self.cls_b

    def cond_prior(self, y):
        loc = y * self.loc_true + (1 - y) * self.loc_false
        scale = y * self.scale_true + (1 - y) * self.scale_false
        return loc, F.softplus(scale).clamp(min=1e-3)


def _kl_normal(mu_q, sd_q, mu_p, sd_p):
    return (torch.log(sd_p / sd_q) + (sd_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sd_p ** 2) - 0.5).sum(-1)


def _bernoulli_log_prob(logits, y):
    return -F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(-1)


def _prior_and_kl(net, mu, sd, y):
    loc_c, sd_c = net.cond_prior(y)
    n_style = net.z_dim - net.num_labels
    mu_p = torch.cat([loc_c, mu.new_zeros(len(mu), n_style)], 1)
    sd_p = torch.cat([sd_c, sd.new_ones(len(sd), n_style)], 1)
    return _kl_normal(mu, sd, mu_p, sd_p)


def _laplace_log_prob(recon, x):
    return (-(x - recon).abs() - math.log(2.0)).flatten(1).sum(1)


def unsup_loss(net: OfficialNet, x, prior):
    mu, sd = net.posterior(x)
    z = mu + sd * torch.randn_like(mu)
    zc = z[:, : net.num_labels]
    logits = net.logits(zc)
    y = torch.bernoulli(torch.sigmoid(logits)).detach()
    log_qy = _bernoulli_log_prob(logits, y)
    kl = _prior_and_kl(net, mu, sd, y)
    log_py = _bernoulli_log_prob(torch.logit(prior).expand_as(y), y)
    return -(_laplace_log_prob(net.decode(z), x) + log_py - kl - log_qy).mean()


def sup_loss(net: OfficialNet, x, y, prior, draws: int = 100):
    mu, sd = net.posterior(x)
    z = mu + sd * torch.randn_like(mu)
    zc = z[:, : net.num_labels]
    log_qyzc = _bernoulli_log_prob(net.logits(zc), y)
    kl = _prior_and_kl(net, mu, sd, y)
    log_py = _bernoulli_log_prob(torch.logit(prior).expand_as(y), y)
    mu2, sd2 = net.posterior(x)                                  # the official second encoder pass
    zc_k = (mu2 + sd2 * torch.randn((draws,) + mu2.shape))[..., : net.num_labels]
    log_qyx = torch.logsumexp(_bernoulli_log_prob(net.logits(zc_k), y.expand(draws, -1, -1)), 0) - math.log(draws)
    w = torch.exp(_bernoulli_log_prob(net.logits(zc.detach()), y) - log_qyx)
    log_pxz = _laplace_log_prob(net.decode(z), x)
    return -(w * (log_pxz - kl - log_qyzc) + log_py + log_qyx).mean()


def supervised_period(n_sup_batches: int, n_unsup_batches: int) -> int:
    """Steps between labelled batches in the official interleave."""
    return max(1, (n_sup_batches + n_unsup_batches) // max(1, n_sup_batches))


# -- the official data path and loop, runnable as a process ------------------------------------------

class DecodeEveryEpoch(torch.utils.data.Dataset):
    """The official data path: open one JPEG per item, every epoch, resize the whole frame to 64 x 64."""

    def __init__(self, files, labels):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.open(self.files[i]).convert("RGB").resize((64, 64), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0
        return x, torch.from_numpy(self.labels[i])


def read_celeba(root, labels: list[str], partition: str = "0"):
    """Files and 0/1 labels of one split of a CelebA-layout folder (list_attr_celeba.txt,
    list_eval_partition.txt; partition "0" train, "1" validation, "2" test)."""
    root = Path(root)
    lines = (root / "list_attr_celeba.txt").read_text().split("\n")
    header = lines[1].split()
    cols = [header.index(n) for n in labels]
    train = {ln.split()[0] for ln in (root / "list_eval_partition.txt").read_text().split("\n")
             if ln.strip() and ln.split()[1] == partition}
    files, ys = [], []
    for ln in lines[2:]:
        parts = ln.split()
        if parts and parts[0] in train:
            files.append(str(root / "img_align_celeba" / parts[0]))
            ys.append([(int(parts[1 + c]) + 1) // 2 for c in cols])
    return files, np.asarray(ys, dtype=np.float32)


def train_official(root, labels: list[str], epochs: int, sup_frac: float = 0.06, batch_size: int = 200,
                   workers: int = 2, lr: float = 1e-4, seed: int = 0, after_epoch=None) -> int:
    """The official schedule on a CelebA-layout folder; returns the number of images trained on.
    `after_epoch(net, epoch)`, when given, is called after every epoch (benchmarks/time_to_useful.py
    evaluates there, and keeps that time out of the training time)."""
    torch.manual_seed(seed)
    files, ys = read_celeba(root, labels)
    n_sup = int(sup_frac * len(files))
    prior = torch.from_numpy(ys[:n_sup].mean(0)).clamp(1e-3, 1 - 1e-3)

    def loader(a, b):
        if a >= b:                     # every image labelled (sup_frac 1): no unlabelled batches
            return []
        return torch.utils.data.DataLoader(DecodeEveryEpoch(files[a:b], ys[a:b]), batch_size=batch_size,
                                           shuffle=True, num_workers=workers)
    sup, unsup = loader(0, n_sup), loader(n_sup, len(files))
    net = OfficialNet(len(labels), len(labels) + 27)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    seen = 0
    for epoch in range(epochs):
        period = supervised_period(len(sup), len(unsup))
        sup_it, unsup_it, done_sup = iter(sup), iter(unsup), 0
        for i in range(len(sup) + len(unsup)):
            if i % period == 0 and done_sup < len(sup):
                x, y = next(sup_it)
                loss, done_sup = sup_loss(net, x, y, prior), done_sup + 1
            else:
                x, _ = next(unsup_it)
                loss = unsup_loss(net, x, prior)
            loss.backward()
            opt.step()
            opt.zero_grad()
            seen += len(x)
        if after_epoch is not None:
            after_epoch(net, epoch + 1)
    return seen


if __name__ == "__main__":
    import argparse
    import json
    import sys
    import time

    ap = argparse.ArgumentParser(description="Train the official schedule on a CelebA-layout folder (timing only).")
    ap.add_argument("root")
    ap.add_argument("--labels", required=True, help="comma-separated")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t = time.perf_counter()
    n = train_official(args.root, args.labels.split(","), args.epochs, workers=args.workers)
    json.dump({"images": n, "seconds": time.perf_counter() - t}, sys.stdout)
