"""The held-out pass: mean bound, L1 reconstruction error and posterior-mean label accuracy.

Training calls it after every --eval-every epochs (metrics.jsonl); `batches` is anything with
`.device` and `.get(idx) -> (x, y, observed)`.
"""

from __future__ import annotations

import numpy as np
import torch

from ccvae_tools.evaluation.metrics import label_metrics
from ccvae_tools.objective.bound import ccvae_bound


def heldout_metrics(model, batches, idx: np.ndarray, true_labels: np.ndarray, majority: np.ndarray,
                    batch_size: int, draws: int, autocast) -> dict:
    """Validation metrics: mean bound, L1 reconstruction error, posterior-mean label accuracy."""
    was_training = model.training
    model.eval()
    preds, bounds, recon = [], [], []
    # evaluation draws its own fixed noise and leaves the training RNG as it was, so that an
    # evaluation (or its absence after an interruption) never changes what training does next
    devices = [batches.device] if batches.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        for s in range(0, len(idx), batch_size):
            b = idx[s: s + batch_size]
            x, y, observed = batches.get(b)
            obs = torch.from_numpy(~np.isnan(true_labels[b])).to(x.device)
            yt = torch.from_numpy(np.nan_to_num(true_labels[b], nan=0.0)).long().to(x.device)
            with autocast():
                terms = ccvae_bound(model, x, yt, obs, draws=draws)
                mu, _ = model.encode(x)
                x_hat = model.decode(mu).float()
            bounds.append(terms.bound.float().cpu())
            recon.append((x_hat - x).abs().flatten(1).mean(1).cpu())
            mu_c, _ = model.split(mu)
            preds.append(model.log_q_y(mu_c).argmax(-1).cpu())
    model.train(was_training)
    pred = torch.cat(preds).numpy()
    out = label_metrics(pred, true_labels[idx], majority, [lab.name for lab in model.cfg.labels])
    out["bound"] = float(torch.cat(bounds).mean())
    out["recon_l1"] = float(torch.cat(recon).mean())
    out["images"] = int(len(idx))
    return out
