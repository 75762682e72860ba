"""A loaded model for inference: images in (uint8 C x H x W), codes and images out.

    from ccvae_tools.model.api import load
    m = load("weights/avatars64.safetensors")
    mu, sigma = m.encode(images)            # uint8 (N, C, H, W) -> (N, Z) each
    out = m.decode(mu)                      # -> uint8 (N, C, H, W)
    z = m.codes(images, sample=True, seed=3)    # a draw z ~ q(z|x), as `ccvae edit --sample --seed 3`
    probs = m.classify(images)              # -> (N, L, K_max) q(y_i | x), as `ccvae classify`

`ccvae classify` calls `classify`, and the intervention commands (traverse, edit, swap, ...) call
`codes`, so they and this API give the same numbers for the same images and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ccvae_tools.data.base import Label, Preprocess
from ccvae_tools.util.device import channels_last, pick_device


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
        # torch.tensor copies (the bytes are converted to floats anyway), so a read-only array such as
        # a memory-mapped cache needs no writable copy first and raises no warning
        return torch.tensor(images).to(self.device).float().div_(255.0)

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
    def codes(self, images: np.ndarray, sample: bool = False, seed: int = 0, batch_size: int = 256
              ) -> torch.Tensor:
        """One code per uint8 image (N, C, H, W): (N, Z) on the model's device.

        The posterior mean mu(x); with `sample`, a draw z = mu(x) + sigma(x) * eps from q(z|x). The
        noise eps is one (N, Z) block from a CPU generator seeded with `seed` (the convention of the
        intervention commands' --sample --seed), so the same images in the same order give the same
        codes, and an image's draw depends on its position among them.
        """
        mu, sigma = self.encode(images, batch_size)
        if not sample:
            return mu
        g = torch.Generator().manual_seed(seed)
        return mu + sigma * torch.randn(mu.shape, generator=g).to(mu)

    def encoder_input(self, images: np.ndarray) -> torch.Tensor:
        """Like `to_tensor`, in the memory layout the encoder runs fastest with: channels-last on the CPU.

        On the CPU the encoder's weights are switched to channels-last the first time (and stay so),
        which can change `encode`'s results in the last bits; `encode` keeps the plain layout, which
        the interventions' outputs are pinned to (benchmarks/fingerprint.py).
        """
        x = torch.from_numpy(np.ascontiguousarray(images))
        if channels_last(self.device):
            enc = self.model.encoder
            if not getattr(enc, "_ccvae_channels_last", False):
                enc.to(memory_format=torch.channels_last)
                enc._ccvae_channels_last = True
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.device).float().div_(255.0)

    @torch.no_grad()
    def classify(self, images: np.ndarray, draws: int = 100, seed: int = 0, batch_size: int = 256
                 ) -> torch.Tensor:
        """q(y_i | x) of uint8 images (N, C, H, W): (N, L, K_max) on the CPU (docs/method.md §4.1).

        The mean of q(y_i | z_c^i) over `draws` codes z_c = mu_c(x) + sigma_c(x) * eps_k drawn from
        q(z|x); draws = 0: q(y_i | mu_c(x)), the posterior mean alone. The noise is that of
        `ccvae classify`, which calls this method: eps_1 .. eps_K are drawn once, shape (K, 1, d_c),
        from a CPU generator seeded with `seed`, and every image uses the same K vectors, so an
        image's result depends neither on the other images nor on `batch_size`. The images go
        through `encoder_input` (channels-last on the CPU).

        Changed in the restructured package: this method used to draw separate noise for every image
        (so its numbers depended on the batch); with draws > 0 its results now differ from those of
        earlier versions and equal `ccvae classify --seed` for the same seed instead.
        """
        eps = None
        if draws > 0:
            g = torch.Generator(device="cpu").manual_seed(seed)
            eps = torch.randn((draws, 1, self.model.cfg.z_char), generator=g).to(self.device)
        out = []
        for s in range(0, len(images), batch_size):
            mu, sigma = self.model.encode(self.encoder_input(images[s: s + batch_size]))
            mu_c, _ = self.model.split(mu)
            if eps is None:
                p = self.model.log_q_y(mu_c).exp()
            else:
                sig_c, _ = self.model.split(sigma)
                p = self.model.log_q_y(mu_c.unsqueeze(0) + sig_c.unsqueeze(0) * eps).exp().mean(0)
            out.append(p.float().cpu())
        return torch.cat(out)


def load(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a weights file (validated, no pickle) onto a device ("auto", "cpu", "cuda", "mps")."""
    from ccvae_tools.model.weights import load_model

    dev = pick_device(device)
    model, meta = load_model(path, device=str(dev))
    return LoadedModel(model=model, meta=meta, path=Path(path), device=dev)
