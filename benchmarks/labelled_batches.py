"""Does a fixed share of labelled images in every batch make few labels count? Side by side, the
paper's schedule (each labelled image once an epoch) and --labelled-per-batch K, at a few labelled
fractions, on one data folder, with the supervised-only baseline (the same encoder and classifier
trained on the labelled images alone, as many steps as the CCVAE runs); one table of validation
metrics (the runs' last metrics.jsonl line).

    python benchmarks/labelled_batches.py DATA OUT [--fracs 0.004,0.06] [--ks 0,16] [--epochs 15]
           [--tag NAME] [--no-baseline] [-- extra ccvae train options]

Each run is an ordinary `ccvae train` run folder under OUT (logs in OUT/*.log); a finished run is
reused when the script is run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def run_one(data: Path, out: Path, frac: float, k: int, args, extra: list[str]) -> dict:
    name = f"f{frac:g}-k{k}{args.tag}"
    runs = out / name
    done = sorted(runs.glob("*/metrics.jsonl"))
    if not done or json.loads(done[-1].read_text().splitlines()[-1])["epoch"] < args.epochs:
        cmd = [sys.executable, "-m", "ccvae_tools", "train", str(data), "--sup-frac", str(frac),
               "--labelled-per-batch", str(k), "--epochs", str(args.epochs), "--image-size", str(args.size),
               "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
               "--sup-select", "random", "--preview-every", "0", "--device", "cpu", "--out", str(runs), *extra]
        with open(out / f"{name}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
        done = sorted(runs.glob("*/metrics.jsonl"))
    lines = [json.loads(s) for s in done[-1].read_text().splitlines()]
    return {"run": name, "frac": frac, "k": k, **lines[-1],
            "minutes": (lines[-1]["time"] - lines[0]["time"]) / 60 * len(lines) / max(1, len(lines) - 1)}


def supervised_row(data: Path, frac: float, args, steps: int) -> dict:
    """The supervised-only baseline on the same labelled images and validation split as the runs."""
    import time

    from ccvae_tools.data.base import TRAIN, VALID
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog
    from ccvae_tools.evaluation.baseline import baseline_metrics, train_supervised
    from ccvae_tools.model.network import ModelConfig
    from ccvae_tools.training.batches import labelled_mask
    from ccvae_tools.training.options import resolve_options

    opts = resolve_options({"sup_frac": frac, "sup_select": "random", "seed": args.seed})
    decoded = load_decoded(open_catalog(data, size=args.size))
    train_idx = decoded.indices(TRAIN)
    keep = labelled_mask(decoded.labels, train_idx, opts)
    cfg = ModelConfig(image_size=args.size, channels=decoded.preprocess.channels,
                      labels=list(decoded.label_info), label_dims=[1] * len(decoded.label_info))
    start = time.time()
    model = train_supervised(cfg, decoded, decoded.labels, np.flatnonzero(keep), steps=steps,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    metrics = baseline_metrics(model, decoded, decoded.indices(VALID)[:5000], train_idx)
    return {"run": f"f{frac:g}-supervised{args.tag}", "frac": frac, **metrics, "recon_l1": float("nan"),
            "minutes": (time.time() - start) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--fracs", default="0.004,0.06")
    parser.add_argument("--ks", default="0,16")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="appended to the run names (for runs with extra options)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the supervised-only baseline")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for frac in (float(f) for f in args.fracs.split(",")):
        runs = [run_one(args.data, args.out, frac, int(k), args, extra) for k in args.ks.split(",")]
        rows += runs if args.no_baseline else runs + [supervised_row(args.data, frac, args, int(runs[-1]["step"]))]
    print(f"{'run':<18} {'mean acc':>8} {'balanced':>8} {'majority':>8} {'above':>7} {'L1':>7} {'min':>5}")
    for r in rows:
        above = sum(r["accuracy"][n] > r["majority_baseline"][n] for n in r["accuracy"])
        print(f"{r['run']:<18} {r['mean_accuracy']:8.3f} {r['mean_balanced_accuracy']:8.3f} "
              f"{r['mean_majority_baseline']:8.3f} {above:>3}/{len(r['accuracy']):<3} {r['recon_l1']:7.4f} "
              f"{r['minutes']:5.1f}")
    (args.out / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
