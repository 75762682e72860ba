"""Command latency: `ccvae --help`, `info`, `labels`, and one traversal against torch's own import time;
and `ccvae classify` on one and on N 64 px JPEGs, for its images per second.

    python benchmarks/cli_latency.py [--model W] [--repeat 7] [--classify 2000]

Without --model it makes a random-init 64 px model with the avatar labels (latency does not depend on
the weights' values). Prints medians of wall time per command, each run as a fresh process. The
JPEGs are random pixels (quality 90), which decode no faster than photographs of that size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def wall(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_model(path: Path) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ccvae_tools.data.base import Label, Preprocess
    from ccvae_tools.model.network import CCVAE, ModelConfig
    from ccvae_tools.model.weights import build_metadata, save_model

    names = ["Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat", "Bald", "Black_Hair", "Blond_Hair",
             "Brown_Hair", "Gray_Hair", "No_Beard", "Pale_Skin"]
    torch.manual_seed(0)
    m = CCVAE(ModelConfig(64, 3, [Label(n) for n in names], z_style=27))
    save_model(m, path, build_metadata(m, Preprocess(64, 3, "center", None)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--classify", type=int, default=2000, help="JPEGs for the classify rows (0: none)")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or tmp / "m.safetensors"
        if args.model is None:
            make_model(model)
        img = tmp / "face.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
        rows = [
            ("python -c pass", wall([py, "-c", "pass"], args.repeat)),
            ("import torch", wall([py, "-c", "import torch"], args.repeat)),
            ("ccvae --help", wall([py, "-m", "ccvae_tools", "--help"], args.repeat)),
            ("ccvae info W", wall([py, "-m", "ccvae_tools", "info", str(model)], args.repeat)),
            ("ccvae labels -m W", wall([py, "-m", "ccvae_tools", "labels", "-m", str(model)], args.repeat)),
            ("ccvae traverse (one image, 9 steps)",
             wall([py, "-m", "ccvae_tools", "traverse", str(img), "-l", "smiling", "-m", str(model),
                   "-o", str(tmp / "t.png")], args.repeat)),
            ("ccvae swap A B",
             wall([py, "-m", "ccvae_tools", "swap", str(img), str(img), "-m", str(model), "-o", str(tmp / "s.png")],
                  args.repeat)),
        ]
        rows += classify_rows(model, tmp, args.classify, args.repeat)
    torch_import = rows[1][1]
    width = max(len(r[0]) for r in rows)
    print(f"{'command':<{width}}  median s  beyond torch import")
    for name, t in rows:
        beyond = f"{t - torch_import:+.2f}" if name.startswith(("ccvae traverse", "ccvae swap")) else ""
        print(f"{name:<{width}}  {t:8.2f}  {beyond}")
    if args.classify:
        one, many = rows[-2][1], rows[-1][1]
        print(f"ccvae classify: {args.classify / many:.0f} images/s for the whole command, "
              f"{(args.classify - 1) / (many - one):.0f} beyond the start-up one image takes")


def classify_rows(model: Path, tmp: Path, n: int, repeat: int) -> list[tuple[str, float]]:
    """Wall time of `ccvae classify --json` on one JPEG and on n."""
    if n <= 0:
        return []
    rng = np.random.default_rng(1)
    paths = [str(tmp / f"{i:05d}.jpg") for i in range(n)]
    for p in paths:
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p, quality=90)
    cmd = [sys.executable, "-m", "ccvae_tools", "classify", "-m", str(model), "--json"]
    return [("ccvae classify (one JPEG)", wall(cmd + paths[:1], repeat)),
            (f"ccvae classify ({n:,} JPEGs)", wall(cmd + paths, repeat))]


if __name__ == "__main__":
    main()
