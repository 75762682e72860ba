"""Gradient paths: which of the official code's differences from ours makes labels arrive sooner?

    python benchmarks/gradient_paths.py DATA OUT [--fracs 1.0,0.06] [--epochs 15] [--variants a,b]
           [--seed 0] [-- extra train options]

The official code (thwjoy/ccvae_pytorch, models/ccvae.py) lets gradient flow through the weight w of
labelled examples: its numerator log q(y | z_c) reaches the classifier's parameters (z_c detached),
its denominator log q^(y | x) reaches the encoder and the classifier. Ours stops w's gradient
(docs/method.md §3.3) and adds alpha * log q^(y | x) instead (§5.1). The official conditional prior
also starts every class mean at 0, ours at -2 / +2. Each variant is an ordinary `ccvae train` run in
a fresh process with one piece of the objective replaced:

    ours-a0               w without gradient, alpha = 0 (the paper's bound as we train it)
    official-w-a0         w with the official code's gradient, alpha = 0
    prior0-a0             ours, alpha = 0, the conditional prior's means starting at 0
    official-w-prior0-a0  both of the official code's choices, alpha = 0
    ours-a100, ours-a1000 w without gradient, alpha = 100 (the default) and 1000
    official-w-a1000      w with the official code's gradient and alpha = 1000

At f < 1 the labels are chosen at random and 32 of every batch are labelled (`--labelled-per-batch`);
every other option is `ccvae train`'s default (64 px among them) unless given after `--`.
Prints, per fraction and variant, the validation mean and balanced accuracy after the first epoch,
after a third of the epochs and at the end, the labels above their majority baseline, L1 and
minutes; the table also goes to OUT/table.md. A finished run is reused when run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {  # name: (official w path, prior means at 0, alpha)
    "ours-a0": (False, False, 0),
    "official-w-a0": (True, False, 0),
    "prior0-a0": (False, True, 0),
    "official-w-prior0-a0": (True, True, 0),
    "ours-a100": (False, False, 100),
    "ours-a1000": (False, False, 1000),
    "official-w-a1000": (True, False, 1000),
}


def official_log_weight(model, z_c, y, observed, log_q_yO, lq_hat):
    """The official code's w: log q(y_O | z_c^(0)) with z_c detached (so its gradient reaches the
    classifier's parameters only) minus log q^(y_O | x) with all its gradient."""
    from ccvae_tools.objective.bound import label_terms

    _, numerator = label_terms(model, z_c.detach(), y, observed)
    return numerator - lq_hat


def train_one(variant: str, argv: list[str]) -> None:
    """In this process: patch the objective as the variant says, then run `ccvae train argv`."""
    import torch

    from ccvae_tools.cli import main
    from ccvae_tools.model import network
    from ccvae_tools.objective import bound

    official_w, prior_at_zero, _ = VARIANTS[variant]
    if official_w:
        bound.importance_log_weight = official_log_weight
    if prior_at_zero:
        build = network.CCVAE.__init__

        def build_with_zero_means(self, cfg):
            build(self, cfg)
            with torch.no_grad():
                self.prior_loc.zero_()
        network.CCVAE.__init__ = build_with_zero_means
    main(argv)


def run_variant(data: Path, out: Path, frac: float, variant: str, args, extra: list[str]) -> Path:
    """The run folder of one fraction and variant, trained unless a finished one is there."""
    name = f"f{frac:g}-{variant}"
    done = sorted((out / name).glob("*/metrics.jsonl"))
    if not done or json.loads(done[-1].read_text().splitlines()[-1])["epoch"] < args.epochs:
        per_batch = 0 if frac >= 1 else 32
        argv = ["train", str(data), "--sup-frac", str(frac), "--labelled-per-batch", str(per_batch),
                "--sup-select", "random", "--epochs", str(args.epochs), "--batch-size", "64", "--lr", "1e-3",
                "--classifier-weight", str(VARIANTS[variant][2]), "--seed", str(args.seed),
                "--preview-every", "0", "--device", "cpu", "--out", str(out / name), *extra]
        cmd = [sys.executable, __file__, "--one", variant, "--", *argv]
        start = time.time()
        with open(out / f"{name}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
        (out / f"{name}.seconds").write_text(f"{time.time() - start:.1f}\n")
        done = sorted((out / name).glob("*/metrics.jsonl"))
    return done[-1]


def marks(epochs: int) -> list[int]:
    """The epochs the table shows: the first, a third of the way and the last."""
    return sorted({1, max(1, epochs // 3), epochs})


def row(frac: float, variant: str, metrics: Path, epochs: int, seconds: float) -> str:
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    last = lines[-1]
    above = sum(last["accuracy"][k] > last["majority_baseline"][k] for k in last["accuracy"])
    curve = " / ".join(f"{lines[e - 1]['mean_accuracy']:.3f}, {lines[e - 1]['mean_balanced_accuracy']:.3f}"
                       for e in marks(epochs))
    return (f"| {frac:g} | {variant} | {curve} | {above}/{len(last['accuracy'])} | {last['recon_l1']:.4f} "
            f"| {seconds / 60:.1f} |")


def main() -> None:
    if "--one" in sys.argv:
        i = sys.argv.index("--one")
        train_one(sys.argv[i + 1], sys.argv[i + 3:])
        return
    argv, extra = (sys.argv[1:], [])
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--fracs", default="1.0,0.06")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    shown = " / ".join(str(e) for e in marks(args.epochs))
    rows = [f"| f | variant | validation mean, balanced accuracy after epoch {shown} "
            f"| labels above majority | L1 | minutes |", "| --- | --- | --- | --- | --- | --- |"]
    for frac in (float(f) for f in args.fracs.split(",")):
        for variant in variants:
            metrics = run_variant(args.data, args.out, frac, variant, args, extra)
            seconds = float((args.out / f"f{frac:g}-{variant}.seconds").read_text())
            rows.append(row(frac, variant, metrics, args.epochs, seconds))
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
