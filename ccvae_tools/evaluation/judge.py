"""The independent judge: a small CNN image classifier trained on the data's TRAIN images and labels.

`ccvae eval` scores interventions (edits, conditional samples) with this judge rather than with the
model's own q(y|z_c), which would only check that the model agrees with itself (docs/method.md
section 5.8).

- one network for all labels: a binary label has one logit (BCE), a K-class label K logits (CE);
  missing labels (NaN) are left out of the loss
- four 3x3 stride-2 convolutions with batch norm, then a small MLP head; a few epochs of Adam with a
  fixed seed, so a judge trains in seconds to a minute on a CPU
- half of every training batch is mildly blurred, so that the judge also reads the smoother images a
  VAE decodes (a judge that fails on reconstructions cannot score edits of them)
- saved as `.safetensors` (never pickle) with its own metadata: labels, image size and channels,
  the data fingerprint and the training settings; `load_or_train_judge` reuses a file that matches
  and retrains (and rewrites it atomically) when anything differs

    judge = load_or_train_judge(path, data)          # data: a ccvae_tools.data.base.Decoded set
    p = judge.probs(images_uint8)                    # (N, L, K_max), like the model's q(y|x)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ccvae_tools.data.base import TRAIN, Decoded, Label
from ccvae_tools.util.atomic import atomic_write_bytes
from ccvae_tools.util.errors import CcvaeError
from ccvae_tools.util.imageops import mild_blur

JUDGE_VERSION = 1                      # bump when the network or the training changes
META_KEY = "ccvae.judge"
WIDTHS = (32, 64, 96, 128)
HIDDEN = 128
TARGET_STEPS = 1000                    # default training length: about this many batches ...
MIN_EPOCHS, MAX_EPOCHS = 3, 30         # ... within these epoch bounds
FINGERPRINT_IMAGES = 2000              # images hashed (evenly spaced) into the data fingerprint


# ----------------------------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------------------------

def _out_sizes(labels: Sequence[Label]) -> list[int]:
    """Logits per label: 1 for a binary label (BCE), K for a K-class label (CE)."""
    return [1 if lab.num_classes == 2 else lab.num_classes for lab in labels]


class JudgeNet(nn.Module):
    """Conv(3x3, s2) x 4 with batch norm and ReLU, 2x2 average pool, MLP head to all labels' logits."""

    def __init__(self, channels: int, labels: Sequence[Label], widths: Sequence[int] = WIDTHS,
                 hidden: int = HIDDEN):
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(4 * c, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, sum(_out_sizes(labels))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# ----------------------------------------------------------------------------------------------
# a trained judge
# ----------------------------------------------------------------------------------------------

@dataclass
class Judge:
    net: JudgeNet
    labels: list[Label]
    image_size: int
    channels: int
    meta: dict = field(default_factory=dict)     # what is stored under META_KEY
    path: Path | None = None
    trained: bool = False                        # True when trained in this process (not reused)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    def logits_to_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Raw logits (N, sum outs) -> class probabilities (N, L, K_max), 0 for invalid classes."""
        kmax = max(lab.num_classes for lab in self.labels)
        out = logits.new_zeros(logits.shape[0], len(self.labels), kmax)
        s = 0
        for i, (lab, n) in enumerate(zip(self.labels, _out_sizes(self.labels))):
            part = logits[:, s: s + n]
            if n == 1:
                p1 = torch.sigmoid(part[:, 0])
                out[:, i, 0], out[:, i, 1] = 1.0 - p1, p1
            else:
                out[:, i, :n] = torch.softmax(part, dim=-1)
            s += n
        return out

    @torch.no_grad()
    def probs(self, images: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Judge probabilities of uint8 images (N, C, H, W): (N, L, K_max) float32 numpy."""
        if len(images) == 0:
            kmax = max(lab.num_classes for lab in self.labels)
            return np.zeros((0, len(self.labels), kmax), dtype=np.float32)
        self.net.eval()
        shape = tuple(images.shape[1:])
        if shape != (self.channels, self.image_size, self.image_size):
            raise CcvaeError(f"the judge reads {self.channels} x {self.image_size} x {self.image_size} "
                             f"images, not {' x '.join(map(str, shape))}")
        outs = []
        for s in range(0, len(images), batch_size):
            x = _to_float(images[s: s + batch_size], self.device)
            outs.append(self.logits_to_probs(self.net(x)).float().cpu())
        return torch.cat(outs).numpy()

    def predict(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Judge classes (N, L) int."""
        return self.probs(images).argmax(-1)


def _to_float(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        t = images
    else:
        a = np.ascontiguousarray(images)
        t = torch.from_numpy(a if a.flags.writeable else a.copy())     # memory maps are read-only
    t = t.to(device)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def judge_loss(judge_labels: Sequence[Label], logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over labels of the mean loss over observed entries; y (B, L) float, NaN = missing."""
    total = logits.new_zeros(())
    count = 0
    s = 0
    for i, n in enumerate(_out_sizes(judge_labels)):
        col = y[:, i]
        obs = ~torch.isnan(col)
        if obs.any():
            part = logits[obs, s: s + n]
            t = col[obs]
            if n == 1:
                total = total + F.binary_cross_entropy_with_logits(part[:, 0], t)
            else:
                total = total + F.cross_entropy(part, t.long())
            count += 1
        s += n
    return total / max(count, 1)


def default_epochs(n_train: int, batch_size: int) -> int:
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))))


def train_judge(images: np.ndarray, labels: np.ndarray, label_info: Sequence[Label], *,
                epochs: int | None = None, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                device: str | torch.device = "cpu", blur: bool = True,
                progress: Callable[[str], None] | None = None) -> Judge:
    """Train a judge on uint8 images (N, C, H, W) and labels (N, L) (class index, NaN = missing).

    Deterministic for a seed on a given device; the global torch RNG is left as it was.
    """
    n, c, h, w = images.shape
    if n == 0:
        raise CcvaeError("no training images for the judge")
    if h != w or h % 16 != 0:
        raise CcvaeError(f"the judge needs square images with a side divisible by 16, not {h} x {w}")
    label_info = list(label_info)
    epochs = int(epochs) if epochs else default_epochs(n, batch_size)
    dev = torch.device(device)
    y_all = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        net = JudgeNet(c, label_info).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        steps = epochs * math.ceil(n / batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
        rng = np.random.default_rng([seed, 0x7D6E])
        net.train()
        last = float("nan")
        for epoch in range(epochs):
            order = rng.permutation(n)
            losses = []
            for s in range(0, n, batch_size):
                idx = np.sort(order[s: s + batch_size])
                if len(idx) < 2:           # batch norm needs two examples
                    continue
                x = _to_float(images[idx], dev)
                if blur:
                    pick = torch.from_numpy(rng.random(len(idx)) < 0.5).to(dev)
                    x = torch.where(pick[:, None, None, None], mild_blur(x), x)
                loss = judge_loss(label_info, net(x), y_all[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
            last = float(np.mean(losses)) if losses else last
            if progress is not None and ((epoch + 1) % max(1, epochs // 5) == 0 or epoch + 1 == epochs):
                progress(f"judge: epoch {epoch + 1}/{epochs}, loss {last:.4f}")
    net.eval()
    meta = {"version": JUDGE_VERSION, "labels": [lab.to_json() for lab in label_info],
            "image_size": int(h), "channels": int(c), "widths": list(WIDTHS), "hidden": HIDDEN,
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "blur": blur,
            "train_images": int(n), "final_loss": last}
    return Judge(net=net, labels=label_info, image_size=int(h), channels=int(c), meta=meta, trained=True)


# ----------------------------------------------------------------------------------------------
# fingerprint, saving and loading
# ----------------------------------------------------------------------------------------------

def data_fingerprint(data: Decoded, split: int = TRAIN) -> str:
    """A short hash of what the judge learns from: the split's labels, file names, preprocessing
    and pixels (up to FINGERPRINT_IMAGES evenly spaced images, hashed in full)."""
    idx = np.flatnonzero(data.split == split)
    h = hashlib.sha256()
    h.update(json.dumps({"labels": [lab.to_json() for lab in data.label_info],
                         "preprocess": data.preprocess.to_json(), "count": int(len(idx)),
                         "shape": list(data.images.shape[1:])}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(data.labels[idx], dtype=np.float32).tobytes())
    h.update("\n".join(data.files[i] for i in idx).encode())
    if len(idx):
        take = idx[np.unique(np.linspace(0, len(idx) - 1, min(len(idx), FINGERPRINT_IMAGES)).astype(int))]
        for s in range(0, len(take), 256):
            h.update(np.ascontiguousarray(data.images[take[s: s + 256]]).tobytes())
    return h.hexdigest()[:20]


def save_judge(judge: Judge, path: str | Path) -> Path:
    """Write the judge as safetensors with its metadata, atomically (`util.atomic`)."""
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in judge.net.state_dict().items()}
    meta = {"format": "pt", META_KEY: json.dumps(judge.meta)}
    atomic_write_bytes(path, save(tensors, metadata=meta))
    judge.path = path
    return path


def read_judge_meta(path: str | Path) -> dict | None:
    """The judge metadata of a file, or None when it is missing, unreadable or not a judge."""
    from ccvae_tools.model.weights import read_header

    try:
        raw = read_header(path)["metadata"].get(META_KEY)
        return json.loads(raw) if raw else None
    except (CcvaeError, ValueError, OSError):
        return None


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge:
    """Load a judge file (safetensors only, shapes checked)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_judge_meta(path)
    if meta is None:
        raise CcvaeError(f"{path}: not a ccvae judge file")
    labels = [Label.from_json(d) for d in meta["labels"]]
    net = JudgeNet(int(meta["channels"]), labels, meta.get("widths", WIDTHS), int(meta.get("hidden", HIDDEN)))
    try:
        state = load_file(str(path))
        net.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - corrupt file, wrong shapes: one clear message
        raise CcvaeError(f"{path}: unreadable judge file ({e})") from None
    net.to(device).eval()
    return Judge(net=net, labels=labels, image_size=int(meta["image_size"]), channels=int(meta["channels"]),
                 meta=meta, path=path, trained=False)


def judge_matches(meta: dict | None, fingerprint: str, label_info: Sequence[Label], image_size: int,
                  channels: int, settings: dict) -> bool:
    """Whether stored judge metadata fits this data, these labels and these training settings."""
    if not meta:
        return False
    want = {"version": JUDGE_VERSION, "fingerprint": fingerprint,
            "labels": [lab.to_json() for lab in label_info], "image_size": int(image_size),
            "channels": int(channels), **settings}
    return all(meta.get(k) == v for k, v in want.items())


def load_or_train_judge(path: str | Path, data: Decoded, *, epochs: int | None = None, seed: int = 0,
                        device: str | torch.device = "cpu", max_train: int = 50_000,
                        progress: Callable[[str], None] | None = None) -> Judge:
    """The judge stored at `path` when it matches `data` (fingerprint, labels, size, settings), else
    a judge trained on data's TRAIN split and saved there (atomically). `Judge.trained` says which."""
    path = Path(path)
    fp = data_fingerprint(data, TRAIN)
    c, s = int(data.images.shape[1]), int(data.images.shape[2])
    settings = {"seed": int(seed)} | ({"epochs": int(epochs)} if epochs else {})
    if path.is_dir():
        raise CcvaeError(f"{path}: is a folder; the judge needs a .safetensors file name")
    meta = read_judge_meta(path) if path.exists() else None
    if path.exists() and meta is None:   # never overwrite someone else's file (a model's weights!)
        raise CcvaeError(f"{path}: exists and is not a ccvae judge file; refusing to overwrite it "
                         f"(choose another judge path)")
    if judge_matches(meta, fp, data.label_info, s, c, settings):
        try:
            judge = load_judge(path, device)
            if progress is not None:
                progress(f"judge: reusing {path}")
            return judge
        except CcvaeError:
            pass                                   # damaged: train a new one below
    idx = np.flatnonzero(data.split == TRAIN)
    if len(idx) == 0:
        raise CcvaeError("the data has no TRAIN split to train the judge on")
    if len(idx) > max_train:
        idx = np.sort(np.random.default_rng([seed, 0x1D6E]).choice(idx, max_train, replace=False))
    if progress is not None:
        why = "it does not match this data" if meta else "none yet"
        progress(f"judge: training on {len(idx):,} train images ({why}) -> {path}")
    images = np.ascontiguousarray(data.images[idx])
    judge = train_judge(images, data.labels[idx], data.label_info, epochs=epochs, seed=seed, device=device,
                        progress=progress)
    judge.meta.update({"fingerprint": fp, "data": data.name})
    save_judge(judge, path)
    return judge
