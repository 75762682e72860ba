"""Fingerprints of what the tool computes, to prove a restructuring changed no behaviour.

    python benchmarks/fingerprint.py OUT_DIR [--check benchmarks/fingerprint.json]

1. A short training run from a fixed seed (200 generated avatars at 32 px, every regulariser on):
   the sha256 of each tensor of its model.safetensors and of its resume state.
2. `ccvae traverse`, `swap`, `sample`, `edit` and `classify --json` on the shipped model and the
   shipped example faces: the sha256 of the bytes each writes.

Prints the fingerprints as JSON; with --check, compares them with a stored set and exits 1 on any
difference. Bit-identical results need the same machine kind and torch build (recorded beside them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "weights" / "examples"


def ccvae(*args: str, stdout: Path | None = None) -> bytes:
    result = subprocess.run([sys.executable, "-m", "ccvae_tools", *args], capture_output=True, check=True)
    return result.stdout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_hashes(tensors: dict) -> dict[str, str]:
    import torch

    out = {}
    for name in sorted(tensors):
        value = tensors[name]
        if isinstance(value, torch.Tensor):
            out[name] = sha(value.detach().cpu().contiguous().numpy().tobytes())
    return out


def training_fingerprint(work: Path) -> dict:
    from safetensors.torch import load_file

    from ccvae_tools.training.state import STATE_FILE, load_state

    data = work / "avatars200"
    if not data.exists():
        ccvae("data", "avatars", str(data), "--n", "200", "--size", "32", "--seed", "0", "--workers", "1")
    runs = work / "runs"
    ccvae("train", str(data), "--image-size", "32", "--epochs", "2", "--batch-size", "64", "--draws", "8",
          "--lr", "1e-3", "--z-style", "4", "--widths", "8,8,16", "--sup-frac", "0.5", "--style-adversary", "5",
          "--style-decorrelate", "2", "--swap-cycle", "1", "--kl-warmup", "1", "--device", "cpu",
          "--workers", "1", "--seed", "3", "--out", str(runs), "--cache-dir", str(work / "cache"))
    run = sorted(runs.iterdir())[-1]
    state = load_state(run / STATE_FILE)
    flat = {f"model.{k}": v for k, v in state["model"].items()}
    flat.update({f"adversary.{k}": v for k, v in state.get("adversary", {}).items()})
    flat["rng_cpu"] = state["rng_cpu"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    drop = ("time", "images_per_s", "eval_seconds", "preview_seconds", "checkpoint_seconds")  # timings differ run to run
    return {"weights": tensor_hashes(load_file(run / "model.safetensors")),
            "state": tensor_hashes(flat),
            "metrics": sha(json.dumps([{k: v for k, v in m.items() if k not in drop} for m in metrics],
                                      sort_keys=True).encode())}


def cli_fingerprint(work: Path) -> dict:
    smile, glasses = str(EXAMPLES / "smile.png"), str(EXAMPLES / "glasses.png")
    out = work / "cli"
    out.mkdir(exist_ok=True)
    runs = {
        "traverse": ["traverse", smile, "--label", "eyeglasses", "-o", "-", "--format", "png"],
        "traverse_2d_sample": ["traverse", smile, "--label", "eyeglasses", "--label", "no_beard", "--steps", "4",
                               "--sample", "--seed", "2", "-o", "-", "--format", "png"],
        "traverse_gif": ["traverse", glasses, "--label", "pale_skin", "--frames", "8", "-o", "-", "--format", "gif"],
        "swap": ["swap", smile, glasses, "-o", "-", "--format", "png"],
        "swap_grid": ["swap", smile, glasses, str(EXAMPLES / "hat.png"), "--grid", "-o", "-", "--format", "png"],
        "sample": ["sample", "--set", "eyeglasses=1", "-n", "8", "--seed", "1", "-o", "-", "--format", "png"],
        "sample_style": ["sample", "--set", "no_beard=0", "--style-from", smile, "-n", "4", "-o", "-",
                         "--format", "png"],
        "edit": ["edit", smile, "--set", "eyeglasses=1", "--set", "pale_skin=1", "-o", "-", "--format", "png"],
        "edit_compare_sample": ["edit", glasses, "--set", "eyeglasses=0", "--compare", "--sample", "--seed", "4",
                                "-o", "-", "--format", "png"],
        "classify_json": ["classify", smile, glasses, "--json"],
        "classify_json_mean": ["classify", smile, "--json", "--mean"],
        "classify_json_seed": ["classify", glasses, "--json", "--draws", "20", "--seed", "5"],
    }
    return {name: sha(ccvae(*args)) for name, args in runs.items()}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="scratch folder (data, runs)")
    parser.add_argument("--check", type=Path, help="stored fingerprints to compare with")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    found = {"machine": {"torch": torch.__version__, "python": platform.python_version(),
                         "cpu": platform.machine()},
             "training": training_fingerprint(args.work), "cli": cli_fingerprint(args.work)}
    print(json.dumps(found, indent=2))
    if args.check:
        stored = json.loads(args.check.read_text())
        diffs = [f"{part}.{key}" for part in ("training", "cli") for key in stored[part]
                 if stored[part][key] != found[part].get(key)]
        print("identical" if not diffs else "DIFFERENT: " + ", ".join(diffs), file=sys.stderr)
        sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
