"""Training throughput: the model step alone, and whole epochs on a CelebA-layout JPEG folder.

    python benchmarks/train_throughput.py                 # full run (a few minutes on 2 cores)
    python benchmarks/train_throughput.py --quick         # smaller, for a smoke test

Prints a table (medians). Part 1 times one optimiser step of the paper network (64 px, z = 18 + 27,
batch 200, K = 100) on labelled and unlabelled batches, fp32 and bf16 autocast. Part 2 generates a
folder of 178 x 218 JPEGs in CelebA layout and times training epochs at labelled fraction 0.06:
(a) `ccvae train`'s path, reading batches from the decoded cache (built beforehand, timed apart),
(b) a per-epoch decoding data path like the official code's (a DataLoader that opens, crops and
resizes every JPEG every epoch, 2 workers), feeding the same model step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccvae_tools.data.base import Label  # noqa: E402
from ccvae_tools.model.network import CCVAE, ModelConfig  # noqa: E402
from ccvae_tools.objective.bound import ccvae_loss  # noqa: E402

PAPER_LABELS = ["Arched_Eyebrows", "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair",
                "Bushy_Eyebrows", "Chubby", "Eyeglasses", "Heavy_Makeup", "Male", "No_Beard", "Pale_Skin",
                "Receding_Hairline", "Smiling", "Wavy_Hair", "Wearing_Necktie", "Young"]


def paper_model() -> CCVAE:
    torch.manual_seed(0)
    return CCVAE(ModelConfig(image_size=64, channels=3, labels=[Label(n) for n in PAPER_LABELS], z_style=27))


def time_steps(model, x, y, observed, steps: int, dtype) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss, _ = ccvae_loss(model, x, y, observed, draws=100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - t)
    return x.shape[0] / statistics.median(times)


def step_table(steps: int) -> list[tuple[str, float]]:
    rows = []
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, 64, 64, generator=g)
    y = torch.randint(0, 2, (200, 18), generator=g)
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        for kind, obs in (("labelled", torch.ones(200, 18, dtype=torch.bool)),
                          ("unlabelled", torch.zeros(200, 18, dtype=torch.bool))):
            rows.append((f"model step, {kind}, {name}", time_steps(paper_model(), x, y, obs, steps, dtype)))
    return rows


def make_celeba_folder(root: Path, n: int) -> None:
    """n random-texture 178 x 218 JPEGs with 18 random +-1 attributes, in CelebA layout."""
    from PIL import Image

    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = [str(n), " ".join(PAPER_LABELS)]
    parts = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        base = rng.integers(0, 255, (28, 23, 3), dtype=np.uint8)
        Image.fromarray(base).resize((178, 218), Image.BILINEAR).save(img_dir / name, quality=90)
        lines.append(name + " " + " ".join(str(v) for v in rng.choice([-1, 1], 18)))
        parts.append(f"{name} {0 if i < 0.8 * n else (1 if i < 0.9 * n else 2)}")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")


class DecodeEveryEpoch(torch.utils.data.Dataset):
    """The official code's data path: open, crop and resize one JPEG per item, every epoch."""

    def __init__(self, files, labels):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.open(self.files[i]).convert("RGB").resize((64, 64), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0
        return x, torch.from_numpy(self.labels[i])


def epoch_table(n: int, epochs: int) -> list[tuple[str, float]]:
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog
    from ccvae_tools.training.loop import train
    from ccvae_tools.training.options import resolve_options

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "celeba"
        make_celeba_folder(root, n)
        catalog = open_catalog(root, fmt="celeba", size=64)
        t = time.perf_counter()
        data = load_decoded(catalog, cache_dir=Path(tmp) / "cache")
        rows.append(("cache build (decode + crop + resize), 2 workers", len(data.images) / (time.perf_counter() - t)))
        n_train = int((data.split == 0).sum())

        # (a) ccvae train, cache already built: wall time of the whole command per train image
        opts = resolve_options(dict(data=str(root), format="celeba", epochs=epochs, batch_size=200, lr=1e-4,
                                    sup_frac=0.06, out=str(Path(tmp) / "runs"), preview_every=0,
                                    eval_every=epochs, cache_dir=str(Path(tmp) / "cache"), device="cpu"))
        t = time.perf_counter()
        train(opts)
        rows.append((f"ccvae train end to end, sup 0.06, {epochs} epochs", n_train * epochs / (time.perf_counter() - t)))

        # (b) decode every epoch (2 DataLoader workers), same model step
        files = [catalog.files[i] for i in np.flatnonzero(catalog.split == 0)]
        labels = catalog.labels[catalog.split == 0].copy()
        labels[int(round(0.06 * len(labels))):] = np.nan
        loader = torch.utils.data.DataLoader(DecodeEveryEpoch(files, labels), batch_size=200, shuffle=True,
                                             num_workers=2, persistent_workers=False)
        model = paper_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        t = time.perf_counter()
        seen = 0
        for _ in range(epochs):
            for x, lab in loader:
                observed = ~torch.isnan(lab)
                y = torch.nan_to_num(lab).long()
                loss, _ = ccvae_loss(model, x, y, observed, draws=100)
                opt.zero_grad()
                loss.backward()
                opt.step()
                seen += len(x)
        rows.append((f"decode-every-epoch loader (2 workers), same step, {epochs} epochs",
                     seen / (time.perf_counter() - t)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps and images")
    ap.add_argument("--images", type=int, default=4000, help="JPEGs in the generated folder")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed model steps per row")
    args = ap.parse_args()
    if args.quick:
        args.images, args.epochs, args.steps = 600, 1, 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = step_table(args.steps) + epoch_table(args.images, args.epochs)
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  images/s")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:8.0f}")


if __name__ == "__main__":
    main()
