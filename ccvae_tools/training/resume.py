"""Resuming a run: its saved options and resume state read and checked, what a kill left behind
tidied, and the checkpoint checked against the model the data now gives, each failure one line.

A run folder resumes whatever stopped it (training/runs.py): with a checkpoint it continues exactly
there; without one (killed before the first) it trains again from the start with its options. A run
with nothing left to train (all its epochs, or its --max-steps, done) raises `RunComplete`, and a
state that cannot be continued (unreadable, or not finite) a TrainingError, each before anything in
the folder is touched. Messages say where a run stands in the interrupt message's words
(`runs.position`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ccvae_tools.training.options import TrainOptions, check_options, flag_of, resumable_options
from ccvae_tools.training.runs import find_resume_run, position, remove_stale_temps, trim_metrics
from ccvae_tools.training.state import STATE_FILE, load_state
from ccvae_tools.util.console import info, warn
from ccvae_tools.util.errors import TrainingError, UsageError
from ccvae_tools.util.text import safe_text


class RunComplete(Exception):
    """`--resume` of a run that has nothing left to train: not an error. `ccvae train` says so (the
    message, when `main`) and exits 0; nothing in the run folder was changed."""

    def __init__(self, run: Path, why: str, main: bool = True):
        super().__init__(f"{run} is already complete ({why}); nothing was trained or changed")
        self.run, self.main = run, main


def start_or_resume(opts: TrainOptions, resume: str | None, given: dict[str, Any], main: bool):
    """(options, run folder or None, resume state or None). A run folder without a checkpoint
    (killed before its first) resumes with no state: it trains from the start with its options.
    Raises RunComplete for a run that is done (with the options it resumes with: a larger --epochs
    or --max-steps continues it)."""
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
    done = _completion(opts, state)
    if done is not None:
        raise RunComplete(run, done, main)
    if main:
        _tidy_for_resume(run, state, opts.epochs)
    return opts, run, state


def _completion(opts: TrainOptions, state: dict | None) -> str | None:
    """Why a run has nothing left to train, or None. The loop would train nothing for the first
    reason, and one step past the limit for the second."""
    if state is None:
        return None
    step = int(state["global_step"])
    if int(state["epoch"]) >= opts.epochs:
        return f"all {opts.epochs} epochs trained, step {step}; --epochs N above {opts.epochs} trains it further"
    if opts.max_steps and step >= opts.max_steps:
        return (f"stopped by --max-steps {opts.max_steps} at {position(int(state['epoch']), opts.epochs, step)}; "
                f"a larger --max-steps, or 0 for no limit, trains it further")
    return None


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
        state = load_state(run / STATE_FILE, STATE_ENTRIES)
        _check_finite(state, run / STATE_FILE)
        return state
    if (run / "state.pt").exists():
        raise UsageError(f"{run}: its resume state is state.pt, written by an older ccvae as a pickle, which this "
                         f"version does not read; start a new run (--init-from {run / 'model.safetensors'} "
                         f"keeps what it learnt)")
    return None


def _tensors(node: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) of every tensor in the nested state: "model.encoder.loc.weight", ..."""
    if isinstance(node, torch.Tensor):
        yield name, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _tensors(value, f"{name}.{key}" if name else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _tensors(value, f"{name}.{i}")


def _check_finite(state: dict, path: Path) -> None:
    """Refuse a state holding NaN or infinite values (a damaged file, a run saved as it diverged):
    resumed, it would train into NaN and overwrite model.safetensors with broken weights. Checked
    before anything in the run folder is touched. As in the weights file (`model/weights.py`), log pi
    may be -inf: the classes a label lacks."""
    for name, t in _tensors(state, ""):
        if not t.is_floating_point():
            continue
        bad = ~torch.isfinite(t)
        if name.rsplit(".", 1)[-1] == "log_pi":
            bad &= ~torch.isneginf(t)
        if bool(bad.any()):
            raise TrainingError(f"{path}: the resume state holds {int(bad.sum()):,} NaN or infinite values in "
                                f"{name}, so the run cannot be continued; model.safetensors is left as it is. "
                                f"Start a new run (--init-from the run's model.safetensors, if `ccvae info` "
                                f"reads it, keeps what it learnt)")


def _tidy_for_resume(run: Path, state: dict | None, epochs: int) -> None:
    """Remove what a kill left behind (temp files, metrics of epochs after the checkpoint) and say
    where training continues, in the words of the interrupt message (`runs.position`)."""
    for name in remove_stale_temps(run):
        info(f"removed {safe_text(name)}, left by an interrupted write")
    epoch = int(state["epoch"]) if state is not None else 0
    trim_metrics(run, epoch)
    if state is None:
        info(f"{run} has no checkpoint yet (it stopped before its first): training it from the start "
             f"with its options")
    else:
        info(f"resuming {run} at {position(epoch, epochs, int(state['global_step']))}")


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
