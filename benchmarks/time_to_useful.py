"""Time to a useful model: the official code's schedule against `ccvae train`, side by side.

    python benchmarks/time_to_useful.py DATA OUT [--fracs 0.06] [--epochs 12] [--target 0.8]
           [--seed 0] [--tag NAME] [-- extra options for ccvae train]

DATA is a CelebA-layout folder (`ccvae data avatars DATA --n 6000 --size 64`). For each labelled
fraction f, in one run of this script on this machine:

- the official code's schedule and objective (benchmarks/official_step.py: its network, loss, JPEG
  or PNG decoding every epoch and interleave) at its hyper-parameters, batch 200, Adam 1e-4, the first
  fraction f of the train split labelled, validated after every epoch on the validation split (its
  classifier read at the posterior mean, as ours is);
- `ccvae train DATA --sup-frac f --epochs E` at its defaults (the recipe chooses the rest; options
  after `--` are added, e.g. `-- --batch-size 200 --lr 1e-4` for the objective alone at the
  official schedule's batch and learning rate), its validation lines from metrics.jsonl.

For each: the training seconds until validation balanced accuracy first reaches --target (the
held-out passes themselves are not counted, for either), the whole run's seconds, and the final mean
and balanced accuracy with the labels above their majority baseline (every train label's majority,
as `ccvae eval` takes it). The table goes to stdout and OUT/table.md; finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import official_step as official  # noqa: E402
from ccvae_tools.evaluation.metrics import label_metrics  # noqa: E402


def avatar_labels(root: Path) -> list[str]:
    return (root / "list_attr_celeba.txt").read_text().split("\n")[1].split()


def official_curve(root: Path, frac: float, epochs: int, seed: int) -> dict:
    """Train the official schedule; per epoch: training seconds so far and the validation metrics."""
    labels = avatar_labels(root)
    train_files, train_y = official.read_celeba(root, labels, "0")
    valid_files, valid_y = official.read_celeba(root, labels, "1")
    majority = (train_y.mean(0) >= 0.5).astype(int)
    valid_x = torch.stack([official.DecodeEveryEpoch(valid_files, valid_y)[i][0] for i in range(len(valid_files))])
    curve, clock = [], {"start": time.perf_counter(), "eval": 0.0}

    def after_epoch(net, epoch):
        started = time.perf_counter()
        trained = started - clock["start"] - clock["eval"]         # the held-out passes before this one left out
        net.eval()
        with torch.no_grad():
            mu, _ = net.posterior(valid_x)
            pred = (net.logits(mu[:, : net.num_labels]) > 0).long().numpy()
        curve.append({"epoch": epoch, "seconds": trained, **label_metrics(pred, valid_y, majority, labels)})
        clock["eval"] += time.perf_counter() - started
        net.train()

    official.train_official(root, labels, epochs, sup_frac=frac, seed=seed, after_epoch=after_epoch)
    return {"curve": curve}


def ours_curve(root: Path, out: Path, frac: float, epochs: int, seed: int, extra: list[str]) -> dict:
    """`ccvae train` at its defaults in a fresh process; per epoch: training seconds so far (from the
    process's start, less its held-out passes) and the validation metrics."""
    out.mkdir(parents=True, exist_ok=True)
    run_out = out / f"ours-f{frac:g}"
    cmd = [sys.executable, "-m", "ccvae_tools", "train", str(root), "--sup-frac", str(frac), "--epochs", str(epochs),
           "--seed", str(seed), "--preview-every", "0", "--device", "cpu", "--out", str(run_out), *extra]
    start = time.time()
    with open(out / f"ours-f{frac:g}.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    lines = [json.loads(s) for s in sorted(run_out.glob("*/metrics.jsonl"))[-1].read_text().splitlines()]
    curve, evals = [], 0.0
    for line in lines:
        evals += line["eval_seconds"]
        curve.append({**line, "seconds": line["time"] - start - evals})
    return {"curve": curve}


def first_reaching(curve: list[dict], target: float) -> float | None:
    return next((c["seconds"] for c in curve if c["mean_balanced_accuracy"] >= target), None)


def row(name: str, frac: float, result: dict, target: float) -> str:
    curve = result["curve"]
    last = curve[-1]
    above = sum(last["accuracy"][k] > last["majority_baseline"][k] for k in last["accuracy"])
    reached = first_reaching(curve, target)
    at = next((c["epoch"] for c in curve if c["mean_balanced_accuracy"] >= target), None)
    when = f"{reached:.0f} s (epoch {at})" if reached is not None else "not reached"
    return (f"| {frac:g} | {name} | {when} | {last['seconds']:.0f} s | {last['mean_accuracy']:.3f} | "
            f"{last['mean_balanced_accuracy']:.3f} | {above}/{len(last['accuracy'])} |")


def cached(path: Path, make) -> dict:
    if not path.is_file():
        path.write_text(json.dumps(make()))
    return json.loads(path.read_text())


def main() -> None:
    argv, extra = sys.argv[1:], []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--fracs", default="0.06")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="names ccvae train's results (for runs with extra options)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [f"| f | run | training time to balanced {args.target:g} | whole run | mean accuracy | balanced | "
            f"labels above majority |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for frac in (float(f) for f in args.fracs.split(",")):
        off = cached(args.out / f"official-f{frac:g}-e{args.epochs}.json",
                     lambda: official_curve(args.data, frac, args.epochs, args.seed))
        ours = cached(args.out / f"ours-f{frac:g}-e{args.epochs}{args.tag}.json",
                      lambda: ours_curve(args.data, args.out / f"run{args.tag}", frac, args.epochs, args.seed, extra))
        rows += [row("official code", frac, off, args.target),
                 row(f"ccvae train{' ' + ' '.join(extra) if extra else ''}", frac, ours, args.target)]
        print("\n".join(rows[-2:]), flush=True)
    (args.out / "table.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
