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
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_throughput as gpu  # noqa: E402
import official_step as official  # noqa: E402
from ccvae_tools.util.device import native_bf16  # noqa: E402

PAPER_LABELS = ["Arched_Eyebrows", "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair",
                "Bushy_Eyebrows", "Chubby", "Eyeglasses", "Heavy_Makeup", "Male", "No_Beard", "Pale_Skin",
                "Receding_Hairline", "Smiling", "Wavy_Hair", "Wearing_Necktie", "Young"]


def time_steps(step, steps: int) -> float:
    """Images per second of `step()` (one optimiser step of 200 images): median of `steps` after 2 warm-ups."""
    return gpu.time_step(step, 200, torch.device("cpu"), 2, steps)[0]


def ours_step(labelled: bool, precision: str = "fp32"):
    """`ccvae train`'s step on 200 images, every label observed or none (benchmarks/gpu_throughput.py)."""
    return gpu.make_step(torch.device("cpu"), 200, precision, "off", 1.0 if labelled else 0.0)


def official_step_fn(x, y, labelled: bool):
    """The official code's step (benchmarks/official_step.py), NCHW fp32 as it runs."""
    torch.manual_seed(0)
    net = official.OfficialNet(len(PAPER_LABELS), len(PAPER_LABELS) + 27)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    prior = torch.full((len(PAPER_LABELS),), 0.5)
    yf = y.float()

    def step():
        loss = official.sup_loss(net, x, yf, prior) if labelled else official.unsup_loss(net, x, prior)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return step


def step_table(steps: int) -> list[tuple[str, float]]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, 64, 64, generator=g)
    y = torch.randint(0, 2, (200, 18), generator=g)
    rows = []
    for kind in ("labelled", "unlabelled"):
        rows.append((f"ccvae step, {kind}, fp32", time_steps(ours_step(kind == "labelled"), steps)))
        rows.append((f"official step, {kind}, fp32", time_steps(official_step_fn(x, y, kind == "labelled"), steps)))
    if native_bf16():
        for kind in ("labelled", "unlabelled"):
            rows.append((f"ccvae step, {kind}, bf16 autocast", time_steps(ours_step(kind == "labelled", "bf16"), steps)))
    else:   # emulated bf16 is an order of magnitude slower than fp32; a few steps show it
        rows.append(("ccvae step, labelled, bf16 autocast (emulated: no bf16 in this CPU)",
                     time_steps(ours_step(True, "bf16"), 1)))
    return rows


def profile_step() -> None:
    """Where `ccvae train`'s step spends its time: torch.profiler over 4 labelled steps."""
    from torch.profiler import ProfilerActivity, profile

    step = ours_step(True)
    step(), step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(4):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


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


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def epoch_table(n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    """Both systems as fresh processes on one folder of JPEGs, for 1 and 1 + `epochs` epochs: the
    whole command's images per second, and the extra epochs' (start-up cancels in the difference)."""
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "celeba"
        make_celeba_folder(root, n)
        catalog = open_catalog(root, fmt="celeba", labels=PAPER_LABELS, size=64, crop="squash")
        t = time.perf_counter()
        data = load_decoded(catalog, cache_dir=Path(tmp) / "cache")
        rows.append(("cache build (decode + resize, one process per core)", len(data.images) / (time.perf_counter() - t)))
        n_train = int((data.split == 0).sum())
        ours = [sys.executable, "-m", "ccvae_tools", "train", str(root), "--format", "celeba", "--labels",
                ",".join(PAPER_LABELS), "--crop", "squash", "--batch-size", "200", "--lr", "1e-4",
                "--sup-frac", "0.06", "--cache-dir", str(Path(tmp) / "cache"), "--device", "cpu", "--out"]
        theirs = [sys.executable, str(Path(__file__).parent / "official_step.py"), str(root), "--labels",
                  ",".join(PAPER_LABELS), "--workers", str(workers), "--epochs"]
        t_ours = [timed(ours + [str(Path(tmp) / f"runs{e}"), "--epochs", str(e)]) for e in (1, 1 + epochs)]
        t_theirs = [timed(theirs + [str(e)]) for e in (1, 1 + epochs)]
        print(epoch_costs(Path(tmp) / f"runs{1 + epochs}", t_ours[1], 1 + epochs))
        for name, (t1, t2) in (("ccvae train (cache built)", t_ours),
                               (f"official loop: decode-every-epoch loader ({workers} workers) + official step",
                                t_theirs)):
            rows.append((f"{name}, whole command, {1 + epochs} epochs", n_train * (1 + epochs) / t2))
            rows.append((f"{name}, the {epochs} extra epochs", n_train * epochs / (t2 - t1)))
    return rows


def epoch_costs(runs: Path, seconds: float, epochs: int) -> str:
    """What `ccvae train` spent beside its steps, per epoch, from its metrics.jsonl."""
    import json

    lines = [json.loads(s) for s in next(runs.glob("*/metrics.jsonl")).read_text().splitlines()]
    mean = {key: sum(ln[key] for ln in lines) / len(lines) for key in
            ("eval_seconds", "preview_seconds", "checkpoint_seconds")}
    return (f"ccvae train, {epochs} epochs in {seconds:.1f} s; per epoch: validation {mean['eval_seconds']:.2f} s "
            f"({lines[-1]['eval_images']} images, {lines[-1]['eval_draws']} draws), previews "
            f"{mean['preview_seconds']:.2f} s, checkpoint {mean['checkpoint_seconds']:.2f} s")


def machine() -> str:
    """The CPU, its core count and its vector instructions, for the table's heading."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = "native bf16" if native_bf16() else "no bf16 instructions"
    return f"{name}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}, {bf16}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps and images")
    ap.add_argument("--images", type=int, default=4000, help="JPEGs in the generated folder")
    ap.add_argument("--epochs", type=int, default=2, help="extra epochs timed beyond the first")
    ap.add_argument("--steps", type=int, default=10, help="timed model steps per row")
    ap.add_argument("--workers", type=int, default=2, help="the official loader's worker processes")
    ap.add_argument("--profile", action="store_true", help="only a profile of 4 labelled ccvae steps, by operator")
    args = ap.parse_args()
    if args.profile:
        profile_step()
        return
    if args.quick:
        args.images, args.epochs, args.steps = 600, 1, 3
    print(f"{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = step_table(args.steps) + epoch_table(args.images, args.epochs, args.workers)
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | images/s |")
    print(f"| {'-' * width} | -------- |")
    for name, rate in rows:
        print(f"| {name:<{width}} | {rate:8.0f} |")
    rates = dict(rows)
    for part in ("whole command", "extra epochs"):
        ours = next(v for k, v in rates.items() if k.startswith("ccvae train") and part in k)
        theirs = next(v for k, v in rates.items() if k.startswith("official loop") and part in k)
        print(f"end to end, {part}: ccvae train / official = {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
