"""The supervised-only baseline: the bar the unlabelled images must clear.

The same encoder and classifier as the CCVAE (the network of `model/network.py`), trained on the
labelled images alone to maximise sum_{i in O} log q(y_i | mu_c(x)); no decoder, no unlabelled image,
no prior. If a CCVAE trained with the same few labels plus the unlabelled rest does not read the
labels better than this, the unlabelled images did not help.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ccvae_tools.data.base import Decoded
from ccvae_tools.evaluation.metrics import label_metrics, majority_classes
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.util.imageops import shift_images


def _images(data: Decoded, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(data.images[np.sort(idx)][np.argsort(np.argsort(idx))])
                            ).float().div_(255.0)


def _classifier_loss(model: CCVAE, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    observed = torch.from_numpy(~np.isnan(labels))
    y = torch.from_numpy(np.nan_to_num(labels, nan=0.0)).long()
    mu, _ = model.encode(x)
    mu_c, _ = model.split(mu)
    per = model.log_q_y(mu_c).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return -torch.where(observed, per, torch.zeros_like(per)).sum(-1).mean()


def train_supervised(cfg: ModelConfig, data: Decoded, labels: np.ndarray, labelled_idx: np.ndarray, *,
                     steps: int, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                     augment_shift: int = 0) -> CCVAE:
    """The encoder and classifier of a fresh network, trained for `steps` batches drawn (in shuffled
    passes) from the labelled examples; `labels` (N, L) with NaN where a label is not given. With
    `augment_shift`, each image shifted as `ccvae train --augment-shift` shifts labelled ones, so
    that the baseline gets what the labelled images get in a CCVAE run."""
    torch.manual_seed(seed)
    model = CCVAE(cfg)
    params = list(model.encoder.parameters()) + [model.cls_weight, model.cls_bias]
    optimiser = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng([seed, 11])
    passes = math.ceil(steps * batch_size / max(1, len(labelled_idx)))
    stream = np.concatenate([rng.permutation(labelled_idx) for _ in range(passes)])
    model.train()
    for step in range(steps):
        batch = stream[step * batch_size: (step + 1) * batch_size]
        x = _images(data, batch)
        if augment_shift:
            x = shift_images(x, torch.ones(len(x), dtype=torch.bool), augment_shift,
                             np.random.default_rng([seed, 12, step]))
        loss = _classifier_loss(model, x, labels[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def baseline_metrics(model: CCVAE, data: Decoded, eval_idx: np.ndarray, train_idx: np.ndarray,
                     batch_size: int = 256) -> dict:
    """Label metrics of q(y|mu_c(x)) on `eval_idx`; the majority baseline over every train label."""
    preds = []
    for start in range(0, len(eval_idx), batch_size):
        mu, _ = model.encode(_images(data, eval_idx[start: start + batch_size]))
        preds.append(model.log_q_y(model.split(mu)[0]).argmax(-1).numpy())
    names = [lab.name for lab in model.cfg.labels]
    return label_metrics(np.concatenate(preds), data.labels[eval_idx], majority_classes(data.labels, train_idx),
                         names)
