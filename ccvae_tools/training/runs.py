"""Run folders: numbered folders under --out, their options.json, finding a run to resume.

A run folder holds options.json (resolved before the first step), metrics.jsonl (one line per
evaluation), previews/, model.safetensors (inference weights + metadata, rewritten atomically at
every checkpoint) and state.safetensors (optimiser, counters and RNG states for --resume;
training/state.py, no pickle). A run folder is resumable whatever killed it: before its first
checkpoint it holds options.json only, and `--resume` trains it again from the start; a kill during
a write leaves a `.NAME.*.tmp` beside the file, removed when the run is resumed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ccvae_tools.util.atomic import atomic_write_bytes
from ccvae_tools.util.console import err
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.text import safe_text


_RUN_RE = re.compile(r"^(\d{5})-")


def new_run_dir(out: Path, data_name: str, sup_frac: float) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder for run folders; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot make the folder ({e.strerror or e}); give another") from None
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
    """--resume RUN (a run folder) or auto (the newest run folder in --out, the default runs/ or the
    --out given, where the run was written), with or without a checkpoint: a run killed before its
    first one is trained again from the start."""
    if spec != "auto":
        run = Path(spec)
        if not (run / "options.json").is_file():
            raise UsageError(f"--resume {spec}: not a run folder (it has no options.json); give a folder that "
                             f"`ccvae train` made, or auto")
        return run
    runs = sorted((p for p in out.glob("*") if _RUN_RE.match(p.name) and (p / "options.json").is_file()),
                  key=lambda p: p.name)
    if not runs:
        raise UsageError(f"--resume auto: no run folder under {out}; give --out FOLDER, the folder the run "
                         f"was written in, or --resume RUN")
    return runs[-1]


def position(epoch: int, epochs: int, step: int) -> str:
    """Where a run stands, in the words of every message about stopping and resuming: "epoch 3 of
    10, step 57". `epoch` is the number of epochs done (what the counters and the resume state
    hold); the epoch shown is the one under way, counted from 1 as the progress bar counts them,
    and the step is the number of steps done in all."""
    return f"epoch {min(epoch + 1, epochs)} of {epochs}, step {step}"


def remove_stale_temps(run: Path) -> list[str]:
    """Delete the temp files of writes that a kill cut short (util/atomic.py names them .NAME.*.tmp);
    returns their names. Only for a run being resumed: no other process writes into it then."""
    removed = []
    for tmp in run.glob(".*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp.name)
        except OSError:
            pass
    return removed


def trim_metrics(run: Path, epoch: int) -> None:
    """Drop the metrics.jsonl lines of epochs after `epoch` (the resumed checkpoint's): they were
    written after it, before the kill, and the resumed run writes them again."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["epoch"]) <= epoch:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            pass                          # a line cut off by the kill
    atomic_write_bytes(path, "".join(k + "\n" for k in kept).encode())


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

    from rich.text import Text

    # values may come from a file (CSV label names, paths): plain text, never markup
    table = Table(title=Text(safe_text(f"training options -> {run}")), show_header=False)
    for k, v in opts.to_json().items():
        table.add_row(k, Text(safe_text(json.dumps(v) if not isinstance(v, str) else v)))
    err.print(table)
