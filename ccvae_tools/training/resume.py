"""Resuming a run: its saved options and resume state read and checked, what a kill left behind
tidied, and the checkpoint checked against the model the data now gives, each failure one line.

A run folder resumes whatever stopped it (training/runs.py): with a checkpoint it continues exactly
there; without one (killed before the first) it trains again from the start with its options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ccvae_tools.training.options import TrainOptions, check_options, flag_of, resumable_options
from ccvae_tools.training.runs import find_resume_run, remove_stale_temps, trim_metrics
from ccvae_tools.training.state import STATE_FILE, load_state
from ccvae_tools.util.console import info, warn
from ccvae_tools.util.errors import TrainingError, UsageError
from ccvae_tools.util.text import safe_text


def start_or_resume(opts: TrainOptions, resume: str | None, given: dict[str, Any], main: bool):
    """(options, run folder or None, resume state or None). A run folder without a checkpoint
    (killed before its first) resumes with no state: it trains from the start with its options."""
    if resume is None:
        return opts, None, None
    run = find_resume_run(resume, Path(opts.out))
    saved = _saved_options(run)
    if opts.data and Path(opts.data).resolve() != Path(str(saved.get("data", ""))).resolve():
        raise UsageError(f"--resume {run} continues on the run's own data ({saved.get('data')}), not {opts.data}; "
                         f"leave DATA out, or train a new run on {opts.data} (--init-from RUN/model.safetensors "
                         f"starts it from the run's weights)")
    may_change = resumable_options()
    ignored = sorted(k for k in given if k not in may_change and given[k] != saved.get(k))
    if ignored and main:
        warn(f"--resume keeps the run's own options; ignoring {', '.join(flag_of(k) for k in ignored)} "
             f"(a resumed run may change only {', '.join(flag_of(k) for k in may_change)})")
    try:
        opts = TrainOptions(**{**saved, **{k: v for k, v in given.items() if k in may_change}})
    except TypeError as e:
        raise UsageError(f"{run / 'options.json'}: not the options of a run this ccvae can resume ({e})") from None
    check_options(opts)
    state = _read_state(run)
    if main:
        _tidy_for_resume(run, state)
    return opts, run, state


def _saved_options(run: Path) -> dict[str, Any]:
    try:
        saved = json.loads((run / "options.json").read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{run / 'options.json'}: cannot read the run's options ({e})") from None
    if not isinstance(saved, dict):
        raise UsageError(f"{run / 'options.json'}: not the options of a ccvae run")
    return saved


# what every resume state holds (the regularisers add their own entries)
STATE_ENTRIES = {"model": dict, "optimizer": dict, "epoch": int, "step_in_epoch": int, "global_step": int,
                 "images_seen": int, "rng_cpu": torch.Tensor, "metrics_json": str}


def _read_state(run: Path) -> dict | None:
    if (run / STATE_FILE).exists():
        return load_state(run / STATE_FILE, STATE_ENTRIES)
    if (run / "state.pt").exists():
        raise UsageError(f"{run}: its resume state is state.pt, written by an older ccvae as a pickle, which this "
                         f"version does not read; start a new run (--init-from {run / 'model.safetensors'} "
                         f"keeps what it learnt)")
    return None


def _tidy_for_resume(run: Path, state: dict | None) -> None:
    """Remove what a kill left behind (temp files, metrics of epochs after the checkpoint) and say
    where training continues."""
    for name in remove_stale_temps(run):
        info(f"removed {safe_text(name)}, left by an interrupted write")
    epoch = int(state["epoch"]) if state is not None else 0
    trim_metrics(run, epoch)
    if state is None:
        info(f"{run} has no checkpoint yet (it stopped before its first): training it from the start "
             f"with its options")
    else:
        info(f"resuming {run} at epoch {epoch}, step {int(state['global_step'])}")


def check_fits(model: torch.nn.Module, saved: dict, run: Path) -> None:
    """The checkpoint's tensors have the names and shapes of the model the data now gives; when the
    data's labels or classes changed since the run started they do not, and that is said in a line."""
    own = model.state_dict()
    for name, tensor in own.items():
        other = saved.get(name)
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
            shape = tuple(other.shape) if isinstance(other, torch.Tensor) else "missing"
            raise TrainingError(
                f"--resume {run}: the data no longer fits the run: {name} is {tuple(tensor.shape)} for "
                f"the data's labels now, {shape} in the checkpoint (labels, classes or channels changed since the "
                f"run started); start a new run on the data as it is")
    extra = sorted(set(saved) - set(own))
    if extra:
        raise TrainingError(f"--resume {run}: the checkpoint holds {extra[0]!r}, which the model "
                            f"the data now gives has not; start a new run")
