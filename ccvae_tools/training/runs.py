"""Run folders: numbered folders under --out, their options.json, finding a run to resume.

A run folder holds options.json (resolved before the first step), metrics.jsonl (one line per
evaluation), previews/, model.safetensors (inference weights + metadata, rewritten atomically at
every checkpoint) and state.pt (optimiser, counters and RNG states for --resume; loaded with
weights_only=True, and only from a run folder this program wrote).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ccvae_tools.util.atomic import atomic_write_bytes
from ccvae_tools.util.console import err
from ccvae_tools.util.errors import UsageError


_RUN_RE = re.compile(r"^(\d{5})-")


def new_run_dir(out: Path, data_name: str, sup_frac: float) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    nums = [int(m.group(1)) for p in out.iterdir() if (m := _RUN_RE.match(p.name))]
    n = max(nums, default=-1) + 1
    while True:
        run = out / f"{n:05d}-{data_name}-sup{sup_frac:g}"
        try:
            run.mkdir()
            return run
        except FileExistsError:
            n += 1


def find_resume_run(spec: str, out: Path) -> Path:
    """--resume RUN (a run folder) or auto (the newest run in --out with resume state)."""
    if spec != "auto":
        run = Path(spec)
        if not (run / "state.pt").exists():
            raise UsageError(f"--resume {spec}: no resume state (state.pt) in that folder")
        return run
    runs = sorted((p for p in out.glob("*") if _RUN_RE.match(p.name) and (p / "state.pt").exists()),
                  key=lambda p: p.name)
    if not runs:
        raise UsageError(f"--resume auto: no run with resume state under {out}")
    return runs[-1]


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def describe_data(root: Path, fmt: str) -> tuple[str, str]:
    """(name, licence) of a data set: generated sets say theirs in avatars.json or fonts.json; others are unknown."""
    meta = root / "avatars.json"
    if meta.is_file():
        try:
            lic = json.loads(meta.read_text()).get("license", {})
            return "avatars", str(lic.get("text", "")) if isinstance(lic, dict) else str(lic)
        except ValueError:
            pass
    if (root / "fonts.json").is_file():
        return "fonts", "rendered from installed fonts, each under its own licence (fonts.json lists them)"
    return fmt, ""


def print_options(opts, run: Path) -> None:
    from rich.table import Table

    table = Table(title=f"training options -> {run}", show_header=False)
    for k, v in opts.to_json().items():
        table.add_row(k, json.dumps(v) if not isinstance(v, str) else v)
    err.print(table)
