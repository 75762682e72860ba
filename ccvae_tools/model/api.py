"""A loaded model for inference: images in (uint8 C x H x W), codes and images out.

    from ccvae_tools.model.api import load
    m = load("weights/avatars64.safetensors")
    mu, sigma = m.encode(images)            # uint8 (N, C, H, W) -> (N, Z) each
    out = m.decode(mu)                      # -> uint8 (N, C, H, W)
    probs = m.classify(images)              # -> (N, L, K_max) q(y_i | x)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ccvae_tools.data.base import Label, Preprocess
from ccvae_tools.util.device import pick_device


@dataclass
class LoadedModel:
    model: Any                      # ccvae_tools.model.network.CCVAE, in eval mode
    meta: dict                      # decoded ccvae metadata of the weights file
    path: Path
    device: torch.device

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_json(self.meta["ccvae.preprocess"])

    @property
    def labels(self) -> list[Label]:
        return list(self.model.cfg.labels)

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.model.cfg.labels]

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device).float().div_(255.0)

    @torch.no_grad()
    def encode(self, images: np.ndarray, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) of uint8 images (N, C, H, W): (mu, sigma), each (N, Z) on the model's device."""
        mus, sigmas = [], []
        for s in range(0, len(images), batch_size):
            mu, sigma = self.model.encode(self.to_tensor(images[s: s + batch_size]))
            mus.append(mu)
            sigmas.append(sigma)
        return torch.cat(mus), torch.cat(sigmas)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Mean of p(x|z) as uint8 images (N, C, H, W)."""
        outs = []
        for s in range(0, len(z), batch_size):
            x = self.model.decode(z[s: s + batch_size].to(self.device))
            outs.append((x.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu())
        return torch.cat(outs).numpy()

    @torch.no_grad()
    def classify_codes(self, z: torch.Tensor) -> torch.Tensor:
        """q(y_i | z_c^i) for codes (N, Z): (N, L, K_max)."""
        z_c, _ = self.model.split(z.to(self.device))
        return self.model.log_q_y(z_c).exp()

    @torch.no_grad()
    def classify(self, images: np.ndarray, draws: int = 100, seed: int = 0, batch_size: int = 256
                 ) -> torch.Tensor:
        """q(y_i | x) estimated with `draws` codes from q(z|x) (0: the posterior mean alone)."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        out = []
        for s in range(0, len(images), batch_size):
            mu, sigma = self.model.encode(self.to_tensor(images[s: s + batch_size]))
            mu_c, _ = self.model.split(mu)
            if draws <= 0:
                out.append(self.model.log_q_y(mu_c).exp().cpu())
                continue
            sig_c, _ = self.model.split(sigma)
            eps = torch.randn((draws,) + tuple(mu_c.shape), generator=g).to(self.device)
            out.append(self.model.log_q_y(mu_c + sig_c * eps).exp().mean(0).cpu())
        return torch.cat(out)


def load(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a weights file (validated, no pickle) onto a device ("auto", "cpu", "cuda", "mps")."""
    from ccvae_tools.model.weights import load_model

    dev = pick_device(device)
    model, meta = load_model(path, device=str(dev))
    return LoadedModel(model=model, meta=meta, path=Path(path), device=dev)
