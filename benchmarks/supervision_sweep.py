"""The supervision sweep: CCVAE at several labelled fractions beside the two baselines, one table.

    python benchmarks/supervision_sweep.py DATA OUT [--fracs 0.004,0.06,0.2,1.0] [--ks 16]
           [--epochs 12] [--size 32] [--tag NAME] [--no-baseline] [--no-eval] [-- extra train options]

For each labelled fraction f and each K in --ks, an ordinary `ccvae train` run (labels chosen at
random, K labelled images in every batch, `--labelled-per-batch`; K = 0 is the paper's once-an-epoch
schedule; at f = 1 every image is labelled and K is moot), then the supervised-only baseline (the
same encoder and classifier trained on the same labelled images alone, as many steps as the run;
`evaluation/baseline.py`), the majority baseline (every train label), and `ccvae eval` of the run
on the test split: mean and balanced accuracy, labels above their majority baseline, characteristic
capture (z_c^i against z_s: variants on avatars, continuous characteristics on typefaces) and the
judged success of edits. `--no-eval` reads the runs' last validation line (metrics.jsonl) instead.

Runs are run folders under OUT (logs in OUT/*.log); a finished run, evaluation or baseline is reused
when the script is run again, so a sweep can be extended one fraction at a time. With
a labelled-image shift in the run (`--augment-shift N`, or the recipe's for glyphs) the baseline's images are shifted the same way. The table goes to stdout,
OUT/table.md and OUT/table.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def train_run(data: Path, out: Path, frac: float, k: int, args, extra: list[str]) -> tuple[str, Path]:
    """The run folder of one fraction and K, trained unless a finished one is there."""
    k = 0 if frac >= 1 else k
    name = f"f{frac:g}-k{k}{args.tag}"
    done = sorted((out / name).glob("*/metrics.jsonl"))
    if not done or json.loads(done[-1].read_text().splitlines()[-1])["epoch"] < args.epochs:
        cmd = [sys.executable, "-m", "ccvae_tools", "train", str(data), "--sup-frac", str(frac),
               "--labelled-per-batch", str(k), "--epochs", str(args.epochs), "--image-size", str(args.size),
               "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
               "--sup-select", "random", "--preview-every", "0", "--device", "cpu", "--out", str(out / name), *extra]
        with open(out / f"{name}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
        done = sorted((out / name).glob("*/metrics.jsonl"))
    return name, done[-1].parent


def eval_run(data: Path, out: Path, name: str, run: Path, split: str) -> dict:
    """`ccvae eval --json` of a run (the judge kept in OUT/judges, trained once per data set)."""
    path = out / f"{name}.eval-{split}.json"
    if not path.is_file() or json.loads(path.read_text()).get("model") != str(run / "model.safetensors"):
        cmd = [sys.executable, "-m", "ccvae_tools", "eval", str(data), "-m", str(run / "model.safetensors"),
               "--json", "--split", split, "--judge", str(out / "judges"), "--device", "cpu"]
        with open(out / f"{name}.eval.log", "w") as log:
            result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, check=True, text=True)
        path.write_text(result.stdout)
    return json.loads(path.read_text())


def run_row(data: Path, out: Path, frac: float, k: int, args, extra: list[str]) -> dict:
    name, run = train_run(data, out, frac, k, args, extra)
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    # from the run's start (options.json is written before the data is read) to its last evaluation
    minutes = (lines[-1]["time"] - (run / "options.json").stat().st_mtime) / 60
    shift = json.loads((run / "options.json").read_text()).get("augment_shift") or 0
    row = {"run": name, "frac": frac, "k": k, "steps": int(lines[-1]["step"]), "minutes": minutes,
           "augment_shift": int(shift)}
    if args.no_eval:
        return {**row, **lines[-1], "split": "valid"}
    report = eval_run(data, out, name, run, args.split)
    return {**row, **report["metrics"], "split": args.split}


def supervised_row(data: Path, out: Path, frac: float, args, steps: int, shift: int) -> dict:
    """The supervised-only baseline on the same labelled images, for as many steps, scored on the
    same split; with the run's labelled-image shift, if it has one (kept in OUT and reused)."""
    name = f"f{frac:g}-supervised{args.tag}"
    path = out / f"{name}.steps{steps}-{'valid' if args.no_eval else args.split}.json"
    if not path.is_file():
        row = train_supervised_row(data, frac, args, steps, shift)
        path.write_text(json.dumps({**row, "run": name}))
    return json.loads(path.read_text())


def train_supervised_row(data: Path, frac: float, args, steps: int, shift: int) -> dict:
    from ccvae_tools.data.base import SPLIT_NAMES, TRAIN
    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog
    from ccvae_tools.evaluation.baseline import baseline_metrics, train_supervised
    from ccvae_tools.model.network import ModelConfig, label_block_sizes
    from ccvae_tools.training.batches import labelled_mask
    from ccvae_tools.training.options import resolve_options

    split = "valid" if args.no_eval else args.split
    opts = resolve_options({"sup_frac": frac, "sup_select": "random", "seed": args.seed})
    decoded = load_decoded(open_catalog(data, size=args.size))
    train_idx = decoded.indices(TRAIN)
    keep = labelled_mask(decoded.labels, train_idx, opts)
    labels = list(decoded.label_info)
    cfg = ModelConfig(image_size=args.size, channels=decoded.preprocess.channels, labels=labels,
                      label_dims=label_block_sizes(labels))             # the blocks `ccvae train` gives
    start = time.time()
    model = train_supervised(cfg, decoded, decoded.labels, np.flatnonzero(keep), steps=steps,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed, augment_shift=shift)
    eval_idx = decoded.indices(SPLIT_NAMES.index(split))
    metrics = baseline_metrics(model, decoded, eval_idx, train_idx)
    return {"frac": frac, "k": None, "steps": steps, **metrics, "split": split,
            "minutes": (time.time() - start) / 60}


def capture_cell(row: dict) -> str:
    """z_c^i against z_s: labels where z_c^i predicts the variant better (avatars), or the mean
    Spearman of the continuous characteristics within classes (typefaces)."""
    if row.get("capture"):
        cs = row["capture_summary"]
        return f"{cs['z_c_above']}/{cs['labels']} ({cs['mean_z_c']:.2f} vs {cs['mean_z_s']:.2f})"
    cells = [w for e in (row.get("capture_continuous") or {}).values() for w in e["within"].values() if "z_c" in w]
    if cells:
        zc = np.nanmean([w["z_c"]["spearman"] for w in cells])
        zs = np.nanmean([w["z_s"]["spearman"] for w in cells])
        wins = sum(w["z_c"]["spearman"] > w["z_s"]["spearman"] for w in cells)
        return f"{wins}/{len(cells)} (rho {zc:.2f} vs {zs:.2f})"
    return ""


COLUMNS = ("run", "split", "mean acc", "balanced", "majority", "above", "capture z_c vs z_s", "edits", "L1", "min")


def table_cells(r: dict) -> list[str]:
    above = sum(r["accuracy"][n] > r["majority_baseline"][n] for n in r["accuracy"])
    edit = (r.get("edit") or {}).get("mean_success")
    l1 = r.get("recon_l1")
    return [r["run"], r["split"], f"{r['mean_accuracy']:.3f}", f"{r['mean_balanced_accuracy']:.3f}",
            f"{r['mean_majority_baseline']:.3f}", f"{above}/{len(r['accuracy'])}", capture_cell(r),
            "" if edit is None else f"{edit:.3f}", "" if l1 is None else f"{l1:.4f}", f"{r['minutes']:.1f}"]


def print_table(rows: list[dict], out: Path) -> None:
    cells = [table_cells(r) for r in rows]
    widths = [max(len(c) for c in col) for col in zip(COLUMNS, *cells)]
    for line in [COLUMNS, *cells]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)] + ["| " + " | ".join(c) + " |" for c in cells]
    (out / "table.md").write_text("\n".join(md) + "\n")
    (out / "table.json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--fracs", default="0.004,0.06,0.2,1.0")
    parser.add_argument("--ks", default="16", help="labelled images per batch, comma-separated (0: paper schedule)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test", choices=("test", "valid"), help="the split `ccvae eval` scores")
    parser.add_argument("--tag", default="", help="appended to the run names (for runs with extra options)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the supervised-only baseline")
    parser.add_argument("--no-eval", action="store_true", help="the runs' validation metrics only (fast)")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for frac in (float(f) for f in args.fracs.split(",")):
        ks = [0] if frac >= 1 else [int(k) for k in args.ks.split(",")]
        runs = [run_row(args.data, args.out, frac, k, args, extra) for k in ks]
        rows += runs if args.no_baseline else runs + [supervised_row(args.data, args.out, frac, args, runs[-1]["steps"],
                                                                     runs[-1]["augment_shift"])]
    print_table(rows, args.out)


if __name__ == "__main__":
    main()
