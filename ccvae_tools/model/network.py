"""The CCVAE network (docs/method.md §2).

z = (z_c, z_s): label i owns the block z_c^i of d_i coordinates (default 1); z_s is free style.
- encoder q(z|x) = N(mu(x), diag sigma(x)^2), sigma = softplus(.) clamped to >= 1e-3
- decoder mean of p(x|z), pixels in [0, 1] (ends in a sigmoid); p(x|z) is Laplace with scale b
- conditional prior p(z_c^i | y_i = k) = N(mu_{i,k}, diag sigma_{i,k}^2), a learned table
- classifier q(y_i | z_c^i) = softmax(A_i z_c^i + b_i), block-diagonal: label i sees only z_c^i
- label prior p(y_i) = Cat(pi_i), class frequencies of the labelled training data (a buffer)

Labels may have different numbers of classes K_i and block sizes d_i. Per-label tables are stored
padded to (L, K_max, D_max) with masks, so every per-label computation is one batched operation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ccvae_tools.data.base import Label

MIN_SCALE = 1e-3
ARCHITECTURE = "ccvae-conv"
LIKELIHOODS = ("laplace", "bernoulli")
BERNOULLI_EPS = 1e-6                 # the decoder's mean kept off 0 and 1 for the log
# Encoder widths of the stride-2 convolutions for each supported image size. The 64 px entry is
# the paper's network (3->32->32->64->128, then 4x4 to 1x1 with 256 channels).
DEFAULT_WIDTHS = {32: (32, 64, 128), 64: (32, 32, 64, 128), 128: (32, 32, 64, 128, 128)}


def label_block_sizes(labels: list[Label], label_dim: int = 1) -> list[int]:
    """d_i per label: `label_dim`, but at least ceil(log2 K_i), so that the K_i class means of a
    multi-class label can start at distinct corners of a cube (section 2.4 of docs/method.md): on one
    axis, 20 letters would start 0.2 apart under priors of scale 1 and could hardly be told apart."""
    return [max(label_dim, math.ceil(math.log2(max(2, lab.num_classes)))) for lab in labels]


def initial_class_means(num_classes: int, dims: int) -> torch.Tensor:
    """(K, d) starting means: class k at the corner whose coordinate j is +2 if bit j of k is set,
    else -2 (on the first ceil(log2 K) axes; 0 on the others). A binary label: -2 and +2 on axis 0.
    Blocks too small for the corners (old files) get -2..+2 evenly spaced on axis 0."""
    bits = math.ceil(math.log2(max(2, num_classes)))
    mu = torch.zeros(num_classes, dims)
    if bits > dims:
        mu[:, 0] = torch.linspace(-2.0, 2.0, num_classes)
        return mu
    for j in range(bits):
        mu[:, j] = torch.tensor([2.0 if (k >> j) & 1 else -2.0 for k in range(num_classes)])
    return mu


@dataclass
class ModelConfig:
    """Everything that fixes the network's shapes. Stored in the weights file as JSON."""

    image_size: int = 64
    channels: int = 3
    labels: list[Label] = field(default_factory=list)
    label_dims: list[int] = field(default_factory=list)   # d_i per label; empty = 1 each
    z_style: int = 27
    likelihood_scale: float = 1.0                        # b of the Laplace p(x|z)
    likelihood: str = "laplace"                          # p(x|z): "laplace" (the paper's) or "bernoulli"
    widths: tuple[int, ...] = ()                           # empty = DEFAULT_WIDTHS[image_size]
    hidden: int = 256
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        if self.image_size not in DEFAULT_WIDTHS and not self.widths:
            raise ValueError(f"image size {self.image_size} is not supported "
                             f"(use one of {sorted(DEFAULT_WIDTHS)})")
        if not self.widths:
            self.widths = DEFAULT_WIDTHS[self.image_size]
        self.widths = tuple(int(w) for w in self.widths)
        if self.image_size != 4 * 2 ** len(self.widths):
            raise ValueError(f"{len(self.widths)} downsampling layers do not fit {self.image_size} px")
        if not self.label_dims:
            self.label_dims = [1] * len(self.labels)
        if len(self.label_dims) != len(self.labels) or min(self.label_dims, default=1) < 1:
            raise ValueError("label_dims must give one size >= 1 per label")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}")

    @property
    def z_char(self) -> int:
        return sum(self.label_dims)

    @property
    def z_dim(self) -> int:
        return self.z_char + self.z_style

    def to_json(self) -> dict:
        d = asdict(self)
        d["labels"] = [lab.to_json() for lab in self.labels]
        d["widths"] = list(self.widths)
        return d

    @staticmethod
    def from_json(d: dict) -> "ModelConfig":
        d = dict(d)
        d["labels"] = [Label.from_json(x) for x in d["labels"]]
        d["widths"] = tuple(d.get("widths", ()))
        known = ModelConfig.__dataclass_fields__
        return ModelConfig(**{k: v for k, v in d.items() if k in known})


def _softplus_scale(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw).clamp_min(MIN_SCALE)


def _full(t: torch.Tensor) -> torch.Tensor:
    """Bring bf16/fp16 activations (autocast) back to at least fp32 for the objective."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c = cfg.channels
        for w in cfg.widths:
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.Conv2d(c, cfg.hidden, 4, 1, 0), nn.ReLU(inplace=True), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.loc = nn.Linear(cfg.hidden, cfg.z_dim)
        self.scale = nn.Linear(cfg.hidden, cfg.z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.loc(h), self.scale(h)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.hidden = cfg.hidden
        self.fc = nn.Linear(cfg.z_dim, cfg.hidden)
        widths = list(reversed(cfg.widths))
        layers: list[nn.Module] = [nn.ReLU(inplace=True),
                                   nn.ConvTranspose2d(cfg.hidden, widths[0], 4, 1, 0), nn.ReLU(inplace=True)]
        outs = widths[1:] + [cfg.channels]
        for i, (cin, cout) in enumerate(zip(widths, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.hidden, 1, 1)
        return torch.sigmoid(self.body(h))


class CCVAE(nn.Module):
    """Encoder, decoder, conditional prior table, block-diagonal classifier and label prior."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        L = len(cfg.labels)
        if L == 0:
            raise ValueError("a CCVAE needs at least one label")
        kmax = max(lab.num_classes for lab in cfg.labels)
        dmax = max(cfg.label_dims)
        self.num_labels, self.kmax, self.dmax = L, kmax, dmax
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

        class_mask = torch.zeros(L, kmax, dtype=torch.bool)
        dim_mask = torch.zeros(L, dmax, dtype=torch.bool)
        # index of each padded (label, dim) slot into z_c with one extra zero column at the end
        gather = torch.full((L, dmax), cfg.z_char, dtype=torch.long)
        mu0 = torch.zeros(L, kmax, dmax)
        start = 0
        for i, (lab, d) in enumerate(zip(cfg.labels, cfg.label_dims)):
            k = lab.num_classes
            class_mask[i, :k] = True
            dim_mask[i, :d] = True
            gather[i, :d] = torch.arange(start, start + d)
            start += d
            mu0[i, :k, :d] = initial_class_means(k, d)     # -2 and +2 for a binary label
        self.register_buffer("class_mask", class_mask, persistent=False)
        self.register_buffer("dim_mask", dim_mask, persistent=False)
        self.register_buffer("gather_index", gather, persistent=False)

        self.prior_loc = nn.Parameter(mu0)
        self.prior_raw_scale = nn.Parameter(torch.full((L, kmax, dmax), _inverse_softplus(1.0)))
        # classifier logits_k = A_k . z + b_k; A = mu0 / 4 gives sigmoid(1 * z + 0) for a binary label
        self.cls_weight = nn.Parameter(mu0 / 4.0)
        self.cls_bias = nn.Parameter(torch.zeros(L, kmax))
        log_pi = torch.where(class_mask, -torch.log(class_mask.sum(1, keepdim=True).float()),
                             torch.tensor(float("-inf")))
        self.register_buffer("log_pi", log_pi)  # set from the training labels by set_label_prior

    # -- shapes -----------------------------------------------------------------------------------
    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., Z) -> z_c (..., sum d_i), z_s (..., d_s)."""
        return z[..., : self.cfg.z_char], z[..., self.cfg.z_char:]

    def blocks(self, z_c: torch.Tensor) -> torch.Tensor:
        """z_c (..., sum d_i) -> padded per-label blocks (..., L, D_max); padding is 0."""
        padded = torch.cat([z_c, z_c.new_zeros(z_c.shape[:-1] + (1,))], dim=-1)
        return padded[..., self.gather_index]

    def label_slice(self, i: int) -> slice:
        start = sum(self.cfg.label_dims[:i])
        return slice(start, start + self.cfg.label_dims[i])

    # -- the distributions ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): images (B, C, H, W) in [0, 1] -> (mu, sigma), each (B, Z)."""
        loc, raw = self.encoder(x)
        return _full(loc), _softplus_scale(_full(raw))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean of p(x|z): (B, Z) -> images (B, C, H, W) in [0, 1]."""
        return self.decoder(z)

    def prior_scale(self) -> torch.Tensor:
        return _softplus_scale(self.prior_raw_scale)

    def prior_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and scales of p(z_c^i | y_i = k), each (L, K_max, D_max) (padding is meaningless)."""
        return self.prior_loc, self.prior_scale()

    @torch.no_grad()
    def set_prior_params(self, loc: torch.Tensor, scale: torch.Tensor, which: torch.Tensor) -> None:
        """Overwrite the entries `which` (L, K_max, D_max) bool of the conditional prior's table with
        loc and scale (same shape; scales floored at MIN_SCALE); the other entries stay."""
        raw = torch.log(torch.expm1(scale.clamp_min(MIN_SCALE).double())).float()   # softplus^-1
        self.prior_loc.copy_(torch.where(which, loc.to(self.prior_loc), self.prior_loc))
        self.prior_raw_scale.copy_(torch.where(which, raw.to(self.prior_raw_scale), self.prior_raw_scale))

    def class_logits(self, z_c: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """Logits of q(y_i | z_c^i): (..., sum d_i) -> (..., L, K_max); invalid classes are -inf.
        frozen: the classifier's parameters are detached (gradients reach z_c only)."""
        return self.block_logits(self.blocks(z_c), frozen)

    def block_logits(self, zb: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """`class_logits` of codes already in per-label blocks (..., L, D_max)."""
        weight, bias = (self.cls_weight.detach(), self.cls_bias.detach()) if frozen else (self.cls_weight,
                                                                                          self.cls_bias)
        logits = torch.einsum("...ld,lkd->...lk", zb, weight) + bias
        return logits.masked_fill(~self.class_mask, float("-inf"))

    def log_q_y(self, z_c: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """log q(y_i = k | z_c^i): (..., L, K_max); invalid classes are -inf."""
        return torch.log_softmax(self.class_logits(z_c, frozen), dim=-1)

    def log_p_zc_given_y(self, z_c: torch.Tensor) -> torch.Tensor:
        """log p(z_c^i | y_i = k) for every class k: (..., sum d_i) -> (..., L, K_max)."""
        zb = self.blocks(z_c).unsqueeze(-2)                       # (..., L, 1, D)
        loc, scale = self.prior_params()
        lp = -0.5 * ((zb - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)
        lp = lp * self.dim_mask.unsqueeze(1)                       # drop padded dims
        lp = lp.sum(-1)
        return lp.masked_fill(~self.class_mask, float("-inf"))

    def log_likelihood(self, x: torch.Tensor, x_mean: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: (B,). Laplace with scale b (the paper's), or Bernoulli with
        the decoder's mean as the probability (x in [0, 1] as a soft target): on sparse images, such as
        dark strokes on a white page, the Laplace's best guess under doubt is each pixel's median,
        the blank page, while the Bernoulli's is its mean, so the decoder starts to draw."""
        mean = _full(x_mean)
        if self.cfg.likelihood == "bernoulli":
            p = mean.clamp(BERNOULLI_EPS, 1.0 - BERNOULLI_EPS)
            return (x * torch.log(p) + (1.0 - x) * torch.log1p(-p)).flatten(1).sum(1)
        b = self.cfg.likelihood_scale
        return (-(x - mean).abs() / b - math.log(2 * b)).flatten(1).sum(1)

    # -- label prior ------------------------------------------------------------------------------
    @torch.no_grad()
    def set_label_prior(self, labels: torch.Tensor) -> None:
        """pi_i = class frequencies among observed labels (NaN = missing), add-one smoothed."""
        for i, lab in enumerate(self.cfg.labels):
            col = labels[:, i]
            col = col[~torch.isnan(col)].long()
            counts = torch.bincount(col, minlength=lab.num_classes)[: lab.num_classes].float() + 1.0
            self.log_pi[i, : lab.num_classes] = torch.log(counts / counts.sum())

    def label_prior(self) -> torch.Tensor:
        """pi as probabilities (L, K_max), 0 for invalid classes."""
        return self.log_pi.exp()

    def forward(self, x: torch.Tensor, y: torch.Tensor, observed: torch.Tensor, draws: int = 100):
        """Per-example terms of the CCVAE bound (see ccvae_tools.objective.bound.ccvae_bound)."""
        from ccvae_tools.objective.bound import ccvae_bound

        return ccvae_bound(self, x, y, observed, draws=draws)


def _conv_size(cin: int, cout: int) -> int:
    return cin * cout * 16 + cout                      # a 4x4 kernel and a bias


def _linear_size(cin: int, cout: int) -> int:
    return cin * cout + cout


def state_size(cfg: ModelConfig) -> int:
    """The number of values in the state dict of `CCVAE(cfg)`, by arithmetic on the config alone.

    The weights loader compares it with the tensors of a file before building the network, so that
    a header claiming a huge network is refused before anything is allocated. It follows the layers
    above (tests/test_hostile_weights.py checks it against the built network for several configs)."""
    L = len(cfg.labels)
    kmax = max((lab.num_classes for lab in cfg.labels), default=0)
    dmax = max(cfg.label_dims, default=0)
    widths, z, h = list(cfg.widths), cfg.z_dim, cfg.hidden
    down = [cfg.channels] + widths
    encoder = (sum(_conv_size(a, b) for a, b in zip(down, widths)) + _conv_size(widths[-1], h)
               + 2 * _linear_size(h, z))
    up = widths[::-1]
    decoder = (_linear_size(z, h) + _conv_size(h, up[0])
               + sum(_conv_size(a, b) for a, b in zip(up, up[1:] + [cfg.channels])))
    tables = 3 * L * kmax * dmax + 2 * L * kmax         # prior loc, prior scale, classifier; its bias, log pi
    return encoder + decoder + tables


def num_parameters(model: nn.Module) -> int:
    """The parameter count `ccvae train` and `ccvae info` both report: every value the weights file
    holds, the learnt tensors and the label prior log pi (a buffer, estimated from the labels), as
    `info` counts them in the file's header (`model/card.py`) and `state_size` from a config."""
    return sum(t.numel() for t in model.state_dict().values())
