"""The bf16 gate: fp32 against bf16 autocast, trained side by side on one data folder, several seeds.

    python benchmarks/bf16_gate.py DATA OUT --seeds 0,1,2,3 [-- extra train options]

For each seed, `ccvae train DATA --precision fp32` and `--precision bf16` (the same options, the
same seed, one after the other), then the validation line after the last epoch of each. Prints one
row per run and the mean over seeds of each precision, with the differences the gate is judged on
(issue: bf16 becomes the default where L1 stays within 3 % and mean accuracy within 0.5 points of
fp32). Finished runs under OUT are reused, so more seeds can be added later.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(data: Path, out: Path, precision: str, seed: int, extra: list[str]) -> dict:
    """The last metrics.jsonl line of one run, trained unless a finished one is in OUT."""
    folder = out / f"{precision}-seed{seed}"
    done = sorted(folder.glob("*/metrics.jsonl"))
    if not done:
        cmd = [sys.executable, "-m", "ccvae_tools", "train", str(data), "--precision", precision,
               "--seed", str(seed), "--preview-every", "0", "--out", str(folder), *extra]
        with open(out / f"{precision}-seed{seed}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
        done = sorted(folder.glob("*/metrics.jsonl"))
    lines = [json.loads(s) for s in done[-1].read_text().splitlines()]
    return {**lines[-1], "rate": sum(ln["images_per_s"] for ln in lines) / len(lines)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", default="0,1", help="comma-separated")
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {p: [run(args.data, args.out, p, s, extra) for s in seeds] for p in ("fp32", "bf16")}
    print("| seed | precision | L1 | mean accuracy | balanced | images/s (mean over epochs) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, seed in enumerate(seeds):
        for p in rows:
            r = rows[p][i]
            print(f"| {seed} | {p} | {r['recon_l1']:.4f} | {r['mean_accuracy']:.3f} | "
                  f"{r['mean_balanced_accuracy']:.3f} | {r['rate']:.0f} |")
    mean = {p: {k: sum(r[k] for r in rows[p]) / len(seeds) for k in ("recon_l1", "mean_accuracy", "rate")}
            for p in rows}
    for p in rows:
        print(f"mean over {len(seeds)} seeds, {p}: L1 {mean[p]['recon_l1']:.4f}, "
              f"mean accuracy {mean[p]['mean_accuracy']:.4f}, {mean[p]['rate']:.0f} images/s")
    l1 = mean["bf16"]["recon_l1"] / mean["fp32"]["recon_l1"] - 1
    acc = (mean["bf16"]["mean_accuracy"] - mean["fp32"]["mean_accuracy"]) * 100
    passed = l1 <= 0.03 and acc >= -0.5
    print(f"bf16 - fp32: L1 {l1:+.1%}, mean accuracy {acc:+.2f} points, speed "
          f"{mean['bf16']['rate'] / mean['fp32']['rate']:.2f}x -> gate {'passed' if passed else 'not passed'}")


if __name__ == "__main__":
    main()
