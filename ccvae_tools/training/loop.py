"""`ccvae train`'s loop: start or resume (training/resume.py), prepare the data, build, then for each
epoch: the steps, an evaluation, a checkpoint, previews.

The loop computes the bound (`objective.bound`) and adds what each enabled regulariser returns
(`objective.registry`); it never sees inside a term. Exact resume: the epoch order comes from
(seed, epoch), and the model, optimisers, counters and RNG states travel in state.safetensors
(training/state.py).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ccvae_tools.data.base import TEST, TRAIN, VALID, Decoded
from ccvae_tools.evaluation.heldout import heldout_metrics
from ccvae_tools.evaluation.metrics import majority_classes
from ccvae_tools.evaluation.weak_spots import by_heart_lines, self_read_edit_success, weak_spot_lines
from ccvae_tools.model.card import write_hub_readme
from ccvae_tools.model.network import CCVAE, ModelConfig, label_block_sizes, num_parameters
from ccvae_tools.model.weights import build_metadata, load_model, save_model
from ccvae_tools.objective.base import Regulariser
from ccvae_tools.objective.bound import training_loss
from ccvae_tools.objective.registry import enabled_regularisers
from ccvae_tools.training.calibrate import calibrate_prior
from ccvae_tools.training.batches import Batches, epoch_order, fits_on_device, labelled_mask
from ccvae_tools.training.distributed import Dist, broadcast_path, init_distributed
from ccvae_tools.training.options import TrainOptions, check_options, parse_widths, take_shape_from
from ccvae_tools.training.previews import write_preview
from ccvae_tools.training.progress import ProgressLog
from ccvae_tools.training.recipe import Choice, choose_recipe, data_facts, thin_class_note
from ccvae_tools.training.resume import check_fits, start_or_resume
from ccvae_tools.training.runs import describe_data, new_run_dir, position, print_options, write_json
from ccvae_tools.training.state import STATE_FILE, save_state
from ccvae_tools.training.tensorboard import TensorBoardLog
from ccvae_tools.util.adam import Adam
from ccvae_tools.util.console import info, warn
from ccvae_tools.util.device import channels_last, native_bf16, pick_device
from ccvae_tools.util.errors import Interrupted, TrainingError, UsageError
from ccvae_tools.util.imageops import shift_images
from ccvae_tools.util.text import safe_text


@dataclass
class TrainSplit:
    """Which examples train and evaluate, and the labels training may see."""

    train_idx: np.ndarray
    eval_idx: np.ndarray
    labelled: np.ndarray            # bool over all examples: keeps its labels in training
    train_labels: np.ndarray        # the labels with the unlabelled train examples' set to NaN
    n_labelled: int
    majority: np.ndarray            # each label's majority class over all train examples (as `ccvae eval`)


@dataclass
class Counters:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    images_seen: int = 0


@dataclass
class Session:
    """Everything one training run holds while it runs."""

    opts: TrainOptions
    dist: Dist
    run: Path
    data: Decoded
    split: TrainSplit
    model: CCVAE
    net: torch.nn.Module                  # the model, or its DDP wrapper
    optimiser: Adam
    scaler: Any                           # GradScaler for fp16, else None
    regularisers: list[Regulariser]
    batches: Batches
    eval_batches: Batches | None
    autocast: Callable[[], Any]
    data_meta: dict
    data_name: str
    licence: str
    on_device: bool
    counters: Counters = field(default_factory=Counters)
    last_metrics: dict = field(default_factory=dict)
    last_checkpoint: float = 0.0                  # time.monotonic() of the last checkpoint
    saved_at: tuple[int, int] | None = None       # (epoch, step) of the checkpoint on disk, None before one
    stop_requested: bool = False                  # Ctrl-C: stop after the step, with a checkpoint
    stop_agreed: bool = False                     # ... as every process of a DDP job knows it
    board: TensorBoardLog | None = None           # --log tensorboard, on the main process


def train(opts: TrainOptions, resume: str | None = None, dry_run: bool = False,
          overrides: dict[str, Any] | None = None) -> Path:
    """Run (or resume) a training run; returns the run folder.

    With `resume`, the run's saved options are used; `overrides` (options the user gave explicitly)
    may change only the options declared resumable (training/options.py).
    """
    dist = init_distributed(opts.device)
    opts, run, state = start_or_resume(opts, resume, overrides or {}, dist.main)
    if opts.init_from and state is None:
        take_shape_from(opts)
    catalog = _open_data(opts)
    facts = data_facts(catalog, opts)
    recipe = choose_recipe(opts, facts)   # a resumed run's options are all set: no choice
    check_options(opts)
    if run is None and dist.main:
        run = _new_run(opts, catalog, recipe)
        note = thin_class_note(facts, opts.sup_frac)
        if note:
            warn(note)
    if dry_run:
        return run
    if dist.grouped:
        run = broadcast_path(run, dist)
    session = _prepare(opts, dist, run, catalog, state)
    _announce(session)
    _train_until_done_or_stopped(session)
    if dist.grouped:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if dist.main:
        _calibrate_prior(session)
        _say_weak_spots(session)
        write_hub_readme(run / "model.safetensors")     # RUN/README.md: the folder uploads to a model hub as it is
        info(f"done: {run / 'model.safetensors'}")
        info(f"one page with its curves, pictures and card: ccvae report {run} -o {run / 'report.html'} "
             f"(add the data folder for ccvae eval's charts)")
    return run


def _prepare(opts: TrainOptions, dist: Dist, run: Path, catalog, state: dict | None) -> Session:
    """Decode the data and build the session; Ctrl-C meanwhile leaves the run folder as it was."""
    try:
        device = _training_device(opts, dist)
        data = _decode(catalog, opts, dist)
        split = _split(data, opts)
        return _build(opts, dist, run, device, catalog, data, split, state)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted before training started; {run} is as it was, and "
                          f"`ccvae train --resume {run}` continues it") from None


def _train_until_done_or_stopped(s: Session) -> None:
    """The epochs; a first Ctrl-C stops after the step under way, with a checkpoint there (so the
    resumed run is exactly the uninterrupted one), a second stops at once (what is on disk stays
    intact: every write is atomic)."""
    def ask_to_stop(signum, frame):
        if s.stop_requested:
            raise KeyboardInterrupt
        s.stop_requested = True
        if s.dist.main:
            warn("stopping after this step, with a checkpoint (Ctrl-C again to stop at once)")

    # not where Ctrl-C cannot arrive: off the main thread, or when SIGINT is ignored (nohup, `&`)
    ours = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)
    previous = signal.signal(signal.SIGINT, ask_to_stop) if ours else None
    try:
        _run_epochs(s)
    except StopRequested:
        _save_checkpoint(s)
        c = s.counters
        raise Interrupted(f"stopped at {position(c.epoch, s.opts.epochs, c.global_step)}; saved "
                          f"{s.run / 'model.safetensors'} and the resume state: `ccvae train --resume {s.run}` "
                          f"continues exactly there") from None
    except KeyboardInterrupt:
        where = (f"the checkpoint at {position(s.saved_at[0], s.opts.epochs, s.saved_at[1])}" if s.saved_at
                 else "no checkpoint yet")
        raise Interrupted(f"stopped at once; {s.run} holds {where}: `ccvae train --resume {s.run}` continues "
                          f"from there") from None
    finally:
        if s.board is not None:
            s.board.close()
        if ours:
            signal.signal(signal.SIGINT, previous)


class StopRequested(Exception):
    """Ctrl-C reached a step boundary: the run stops there, with a checkpoint."""


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------

def _open_data(opts: TrainOptions):
    from ccvae_tools.data.readers import open_catalog

    catalog = open_catalog(Path(opts.data), fmt=opts.format, labels=opts.labels, size=opts.image_size,
                           crop=opts.crop, uncertain=opts.uncertain)
    opts.labels = catalog.label_names
    return catalog


def _new_run(opts: TrainOptions, catalog, recipe: list[Choice]) -> Path:
    """Check the data (its report on stderr), make the run folder and write the resolved options
    and what the recipe chose (RUN/recipe.json), the choices printed with their reasons."""
    from ccvae_tools.data.report import make_report

    report = make_report(catalog, check_files=False)
    report.render()
    if report.fatal:
        raise TrainingError(f"{opts.data}: the data cannot be trained on (see the report above)")
    run = new_run_dir(Path(opts.out), describe_data(catalog.root, catalog.name)[0], opts.sup_frac)
    write_json(run / "options.json", opts.to_json())
    write_json(run / "recipe.json", [c.to_json() for c in recipe])
    print_options(opts, run)
    for choice in recipe:
        info(f"recipe: {safe_text(choice.line())}")
    return run


def _training_device(opts: TrainOptions, dist: Dist) -> torch.device:
    device = pick_device(opts.device)
    if dist.grouped and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if opts.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    if opts.precision == "bf16" and device.type == "cpu" and not native_bf16() and dist.main:
        warn("--precision bf16: this CPU has no bf16 instructions (AVX-512 BF16 or AMX), so bf16 is emulated "
             "and runs several times slower than fp32 (docs/experiments.md \"bf16 autocast\")")
    return device


def _decode(catalog, opts: TrainOptions, dist: Dist) -> Decoded:
    from ccvae_tools.data.cache import load_decoded

    def decoded() -> Decoded:
        return load_decoded(catalog, cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
                            workers=opts.workers or None, on_bad=opts.on_bad)

    if dist.world <= 1:
        return decoded()
    data = decoded() if dist.main else None      # rank 0 builds the cache once; the others reuse it
    torch.distributed.barrier()
    return data if data is not None else decoded()


def _split(data: Decoded, opts: TrainOptions) -> TrainSplit:
    train_idx = data.indices(TRAIN)
    if len(train_idx) == 0:
        raise TrainingError(f"{opts.data}: the train split is empty")
    eval_idx = data.indices(VALID)
    if len(eval_idx) == 0:
        eval_idx = data.indices(TEST)
    labelled = labelled_mask(data.labels, train_idx, opts)
    train_labels = data.labels.copy()
    train_labels[(data.split == TRAIN) & ~labelled] = np.nan
    n_labelled = int((~np.isnan(train_labels[train_idx])).any(1).sum())
    if n_labelled == 0:
        raise TrainingError(f"{opts.data}: no labelled training example at --sup-frac {opts.sup_frac}")
    # the baseline the log reports: every train label, not only the labelled few (a collapsed model
    # that predicts the labelled subset's majority must not look better than the data's majority)
    return TrainSplit(train_idx, eval_idx[: opts.max_eval], labelled, train_labels, n_labelled,
                      majority_classes(data.labels, train_idx))


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------

def _new_model(opts: TrainOptions, data: Decoded, split: TrainSplit, resuming: bool) -> CCVAE:
    """The network from the seed (or --init-from's weights), with the label prior of the train labels."""
    torch.manual_seed(opts.seed)
    cfg = ModelConfig(image_size=opts.image_size, channels=data.preprocess.channels,
                      labels=list(data.label_info), label_dims=label_block_sizes(list(data.label_info), opts.label_dim),
                      widths=parse_widths(opts.widths, opts.image_size),
                      z_style=opts.z_style, likelihood_scale=opts.likelihood_scale, likelihood=opts.likelihood)
    model = CCVAE(cfg)
    if opts.init_from and not resuming:
        start, _ = load_model(opts.init_from)
        if [lab.to_json() for lab in start.cfg.labels] != [lab.to_json() for lab in cfg.labels] \
                or start.cfg.channels != cfg.channels:
            raise UsageError(f"--init-from {opts.init_from}: it was trained on the labels "
                             f"{', '.join(lab.name for lab in start.cfg.labels)} ({start.cfg.channels} channels); "
                             f"the data gives {', '.join(lab.name for lab in cfg.labels)} ({cfg.channels})")
        model.load_state_dict(start.state_dict())
    model.set_label_prior(torch.from_numpy(split.train_labels[split.train_idx]))
    return model


def _autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def autocast():
        if dtype is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=dtype)
    return autocast


def _restore(session: Session, state: dict, device: torch.device) -> None:
    """Continue exactly where the checkpoint left off: weights, optimisers, counters, RNG."""
    check_fits(session.model, state["model"], session.run)
    try:
        session.model.load_state_dict(state["model"])
        session.optimiser.load_state_dict(state["optimizer"])
        for reg in session.regularisers:
            reg.load_state_dict(state)
        if session.scaler is not None and "scaler" in state:
            session.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        session.last_metrics = json.loads(state["metrics_json"]) if state["metrics_json"] else {}
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise TrainingError(f"{session.run / STATE_FILE}: the resume state does not fit the run "
                            f"({str(e).splitlines()[0][:200]}); start a new run") from None
    session.counters = Counters(state["epoch"], state["step_in_epoch"], state["global_step"], state["images_seen"])
    session.saved_at = (state["epoch"], state["global_step"])


def _build(opts: TrainOptions, dist: Dist, run: Path, device: torch.device, catalog, data: Decoded,
           split: TrainSplit, state: dict | None) -> Session:
    model = _new_model(opts, data, split, resuming=state is not None).to(device)
    if channels_last(device):
        model.to(memory_format=torch.channels_last)       # Batches hands the images over in this layout
    optimiser = Adam(model.parameters(), lr=opts.lr)
    regularisers = enabled_regularisers(opts, model, world=dist.world, device=device)
    scaler = torch.amp.GradScaler("cuda") if opts.precision == "fp16" else None
    on_device = device.type == "cuda" and fits_on_device(data.images, device)
    data_name, licence = describe_data(catalog.root, catalog.name)
    data_meta = {"name": data_name, "format": catalog.name, "source": str(opts.data),
                 "images": int(len(data.images)), "train": int(len(split.train_idx)),
                 "labelled": split.n_labelled, "labelled_fraction": split.n_labelled / len(split.train_idx),
                 "sup_select": opts.sup_select, "sup_oversample": opts.sup_oversample}
    session = Session(opts, dist, run, data, split, model, model, optimiser, scaler, regularisers,
                      Batches(data, split.train_labels, device, on_device),
                      Batches(data, data.labels, device, on_device) if dist.main else None,
                      _autocast(opts.precision, device), data_meta, data_name, licence, on_device)
    if state is not None:
        _restore(session, state, device)
    if opts.log == "tensorboard" and dist.main:         # from the step it starts at: no step twice on resume
        session.board = TensorBoardLog(run / "tensorboard", session.counters.global_step)
    if dist.grouped:
        from torch.nn.parallel import DistributedDataParallel as DDP

        def wrap(module: torch.nn.Module) -> torch.nn.Module:
            return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)
        session.net = wrap(model)
        for reg in regularisers:
            reg.distribute(wrap)
    if opts.compile != "off":
        session.net = _compiled(session.net, opts.compile, device)
    return session


def _compiled(net: torch.nn.Module, mode: str, device: torch.device) -> torch.nn.Module:
    """`--compile`: the network's forward (the bound) and, through it, the backward, compiled by
    inductor; checkpoints still hold the plain model's weights (Session.model)."""
    if device.type == "cpu":
        import shutil

        if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            raise UsageError("--compile on the CPU needs a C++ compiler (g++ or clang++), and none was found; "
                             "install one or train with --compile off")
    return torch.compile(net, mode=mode)


def _announce(s: Session) -> None:
    if not s.dist.main:
        return
    cfg, opts = s.model.cfg, s.opts
    info(f"model: {num_parameters(s.model):,} parameters, z = {cfg.z_char} characteristic + "
         f"{cfg.z_style} style; device {s.batches.device}, precision {opts.precision}"
         f"{', data on device' if s.on_device else ''}; {s.split.n_labelled:,} of {len(s.split.train_idx):,} "
         f"train images labelled")
    if s.dist.grouped:
        info(f"distributed: {s.dist.world} process{'es' if s.dist.world > 1 else ''}, backend "
             f"{torch.distributed.get_backend()}{', compiled (' + opts.compile + ')' if opts.compile != 'off' else ''}")
    elif opts.compile != "off":
        info(f"compiled ({opts.compile}): the first steps wait for the compiler")
    for reg in s.regularisers:
        for note in reg.notes(_per_process(s) * s.dist.world):
            warn(note)
    if s.split.n_labelled < len(s.split.train_idx) and opts.labelled_per_batch == 0 and opts.preset != "paper":
        info("hint: with few labels, --preset few-labels (or --labelled-per-batch K) puts labelled images in "
             "every batch; each labelled image is otherwise seen once an epoch (docs/experiments.md)")


# ----------------------------------------------------------------------------------------------
# epochs and steps
# ----------------------------------------------------------------------------------------------

def _per_process(s: Session) -> int:
    return max(1, s.opts.batch_size // s.dist.world)


def _run_epochs(s: Session) -> None:
    log = ProgressLog(s.opts, s.dist.main)
    s.last_checkpoint = time.monotonic()
    stop = False
    s.model.train()
    c = s.counters
    while c.epoch < s.opts.epochs and not stop:
        stop = _run_epoch(s, log)
        if not stop:
            c.epoch += 1
            c.step_in_epoch = 0
        line = _evaluate(s, log, stop) if s.dist.main and len(s.split.eval_idx) else None
        costs = {"preview_seconds": _timed(_preview, s, stop), "checkpoint_seconds": _timed(_save_checkpoint, s)}
        s.last_checkpoint = time.monotonic()
        if line is not None:   # written once the epoch's checkpoint is, so that it can say what each part cost
            with open(s.run / "metrics.jsonl", "a") as f:
                f.write(json.dumps({**line, **costs}) + "\n")
    log.close()


def _timed(fn: Callable[..., None], *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return round(time.perf_counter() - started, 3)


def _epoch_batches(s: Session) -> tuple[np.ndarray, int]:
    """This epoch's example order and its number of steps (every process takes equal batches)."""
    per_step = _per_process(s) * s.dist.world
    order = epoch_order(s.split.train_idx, s.split.labelled, s.opts, s.counters.epoch, s.split.train_labels)
    if s.dist.world > 1:
        order = order[: max(len(order) - len(order) % per_step, per_step)]
    return order, max(1, math.ceil(len(order) / per_step))


def _run_epoch(s: Session, log: ProgressLog) -> bool:
    """The epoch's remaining steps; True when --max-steps stopped training."""
    c, per_step = s.counters, _per_process(s) * s.dist.world
    order, n_steps = _epoch_batches(s)
    log.start_epoch(c.epoch, n_steps, c.step_in_epoch)
    for reg in s.regularisers:
        reg.start_epoch()
    while c.step_in_epoch < n_steps:
        if _stop_requested(s):
            raise StopRequested
        start = c.step_in_epoch * per_step
        batch = order[start: start + per_step][s.dist.rank::s.dist.world]
        _step(s, batch, n_steps, log)
        if s.opts.max_steps and c.global_step >= s.opts.max_steps:
            return True
        if time.monotonic() - s.last_checkpoint > s.opts.checkpoint_minutes * 60:
            _save_checkpoint(s)
            s.last_checkpoint = time.monotonic()
    return False


def _step(s: Session, batch: np.ndarray, n_steps: int, log: ProgressLog) -> None:
    """One optimiser step: the bound, each regulariser's term, backward, the regularisers' own steps."""
    opts, c = s.opts, s.counters
    x, y, observed = s.batches.get(batch)
    if opts.augment_shift:       # the labelled rows only: the shift keeps a few from being learnt by heart
        rng = np.random.default_rng([opts.seed, 11, c.global_step, s.dist.rank])
        x = shift_images(x, observed.any(-1), opts.augment_shift, rng)
    with s.autocast():
        terms = s.net(x, y, observed, opts.draws)
    kl_weight = min(1.0, c.global_step / (opts.kl_warmup * n_steps)) if opts.kl_warmup > 0 else 1.0
    loss = training_loss(terms, opts.classifier_weight, kl_weight)
    for reg in s.regularisers:
        loss = loss + reg.loss(x, terms, y, observed, s.autocast)
    _stop_if_not_finite(s, loss)
    s.optimiser.zero_grad(set_to_none=True)
    if s.scaler is not None:
        s.scaler.scale(loss).backward()
        s.scaler.step(s.optimiser)
        s.scaler.update()
    else:
        loss.backward()
        s.optimiser.step()
    for reg in s.regularisers:
        reg.after_step()
    c.step_in_epoch += 1
    c.global_step += 1
    c.images_seen += len(batch) * s.dist.world
    log.step(len(batch) * s.dist.world, float(loss.detach()), terms)


def _stop_if_not_finite(s: Session, loss: torch.Tensor) -> None:
    """Stop on a non-finite loss on any process. Under DDP the same all-reduce carries the Ctrl-C
    request, so that every process agrees to stop after this step without a second collective."""
    flags = torch.tensor([0.0 if torch.isfinite(loss) else 1.0, 1.0 if s.stop_requested else 0.0],
                         device=loss.device)
    if s.dist.grouped:
        torch.distributed.all_reduce(flags)
    bad, stop = flags.tolist()
    s.stop_agreed = stop > 0
    if bad > 0:
        c = s.counters
        kept = (f"the checkpoint at {position(s.saved_at[0], s.opts.epochs, s.saved_at[1])} in {s.run} is intact"
                if s.saved_at else "no checkpoint had been written yet")
        raise TrainingError(
            f"non-finite loss at {position(c.epoch, s.opts.epochs, c.global_step + 1)}; training stopped and {kept}. "
            f"Train a new run with a lower --lr or with --precision fp32 (a resumed run keeps its options; "
            f"--init-from RUN/model.safetensors starts the new run from the saved weights)")


def _stop_requested(s: Session) -> bool:
    """Whether Ctrl-C asked to stop: here, or (under DDP) on any process as of the last step's
    all-reduce, so that all of them stop at the same step."""
    return s.stop_requested if not s.dist.grouped else s.stop_agreed


# ----------------------------------------------------------------------------------------------
# evaluation, previews, checkpoints
# ----------------------------------------------------------------------------------------------

def _evaluate(s: Session, log: ProgressLog, stopped: bool) -> dict | None:
    """The held-out pass every --eval-every epochs (and at the end): the epoch's line of
    metrics.jsonl, None when this epoch has no evaluation."""
    c, opts = s.counters, s.opts
    if not (stopped or c.epoch % opts.eval_every == 0 or c.epoch == opts.epochs):
        return None
    started = time.perf_counter()
    metrics = heldout_metrics(s.model, s.eval_batches, s.split.eval_idx, s.data.labels, s.split.majority,
                              max(opts.batch_size, 256), opts.draws, s.autocast)
    s.last_metrics = {"split": "valid" if len(s.data.indices(VALID)) else "test", **metrics}
    # what the held-out pass cost and on what: at most --max-eval images, with --draws draws for q^
    line = {"epoch": c.epoch, "step": c.global_step, "images_seen": c.images_seen,
            "train_loss": log.mean_loss(), "images_per_s": log.rate(), "time": time.time(),
            "eval_images": int(len(s.split.eval_idx)), "eval_draws": opts.draws,
            "eval_seconds": round(time.perf_counter() - started, 3)}
    for reg in s.regularisers:
        line.update(reg.epoch_means())
    log.eval_line(c.epoch, metrics)
    if s.board is not None:
        s.board.metrics(c.global_step, {**line, **s.last_metrics})
    return {**line, **s.last_metrics}


def _calibrate_prior(s: Session) -> None:
    """The conditional prior set to the train codes (training/calibrate.py), written to
    model.safetensors only: the resume state keeps the table as trained, so that a run continued
    for more epochs trains on exactly as an uninterrupted one would."""
    if s.opts.calibrate_prior == "off":
        return
    report = calibrate_prior(s.model, s.batches, s.split.train_idx, max(s.opts.batch_size, 256))
    write_json(s.run / "prior_calibration.json", report)
    moved = [f"{safe_text(name)} {r['mean_before'][-1]:+.1f} -> {r['mean_after'][-1]:+.1f}"
             for name, r in list(report.items())[:3]]
    info(f"prior set to the codes of {len(s.split.train_idx):,} train images (class means, e.g. "
         f"{'; '.join(moved)}): {s.run / 'prior_calibration.json'}")
    _save_checkpoint(s, weights_only=True)


WEAK_SPOT_IMAGES = 256                # held-out images whose edits are read back at the end of a run
BY_HEART_IMAGES = 2000                # labelled train images read back at the end of a few-label run


def _say_weak_spots(s: Session) -> None:
    """At the end of a run, what it is worth: the weak-spot lines `ccvae eval` prints (labels at their
    baseline on the held-out split, edits the model's own classifier does not read as done), also
    kept in RUN/weak_spots.json. Nothing is said when the run has no held-out images."""
    if not len(s.split.eval_idx) or not s.last_metrics.get("accuracy"):
        return
    was_training = s.model.training
    s.model.eval()
    x, _, _ = s.eval_batches.get(s.split.eval_idx[:WEAK_SPOT_IMAGES])
    self_read = self_read_edit_success(s.model, x)
    s.model.train(was_training)
    labelled_read = _labelled_read(s)
    by_heart = [] if labelled_read is None else by_heart_lines(
        labelled_read["balanced_accuracy"], s.last_metrics.get("balanced_accuracy", {}), labelled_read["images"])
    lines = weak_spot_lines(s.last_metrics["accuracy"], s.last_metrics.get("majority_baseline", {}),
                            self_read["success"], image_size=s.opts.image_size,
                            labelled_fraction=s.data_meta.get("labelled_fraction"), epochs=s.counters.epoch,
                            swap_cycle=s.opts.swap_cycle, by_heart=by_heart)
    write_json(s.run / "weak_spots.json", {"split": s.last_metrics.get("split"), "lines": lines,
                                           "edit_self_read": self_read, "labelled_read": labelled_read})
    for line in lines:
        info(f"weak spot: {line}")
    if not lines:
        info(f"no weak spot: every label read above its majority class, edits read as done "
             f"(mean {self_read['mean_success']:.2f}, by the model's own classifier)")


def _labelled_read(s: Session) -> dict | None:
    """When some train images are unlabelled: the labelled train images (up to BY_HEART_IMAGES of
    them) read as the held-out pass reads, {"balanced_accuracy": per label, "images": how many are
    labelled}; None otherwise."""
    train = s.split.train_idx
    labelled = train[s.split.labelled[train] & ~np.isnan(s.split.train_labels[train]).all(1)]
    if not 0 < len(labelled) < len(train):
        return None
    read = heldout_metrics(s.model, s.eval_batches, labelled[:BY_HEART_IMAGES], s.split.train_labels,
                           s.split.majority, max(s.opts.batch_size, 256), 1, s.autocast)
    return {"balanced_accuracy": read.get("balanced_accuracy", {}), "images": int(len(labelled))}


def _preview(s: Session, stopped: bool) -> None:
    c, every = s.counters, s.opts.preview_every
    if s.dist.main and len(s.split.eval_idx) and every and (c.epoch % every == 0 or c.epoch == s.opts.epochs or stopped):
        (s.run / "previews").mkdir(exist_ok=True)
        path = s.run / "previews" / f"epoch{c.epoch:04d}.png"
        write_preview(s.model, s.eval_batches, s.split.eval_idx, path)
        if s.board is not None:
            s.board.image("preview", c.global_step, path)


def _save_checkpoint(s: Session, weights_only: bool = False) -> None:
    """model.safetensors (weights + metadata) and state.safetensors (what --resume needs), each
    atomically; weights_only: model.safetensors alone."""
    if not s.dist.main:
        return
    c, opts = s.counters, s.opts
    options = opts.to_json()
    if options.get("init_from"):   # the weights travel; the starting file's folder means nothing elsewhere
        options["init_from"] = Path(options["init_from"]).name
    train_meta = {"epochs": opts.epochs, "epoch": c.epoch, "step": c.global_step, "seed": opts.seed,
                  "images_seen": c.images_seen, "options": options}
    meta = build_metadata(s.model, s.data.preprocess, data=s.data_meta, train=train_meta, metrics=s.last_metrics,
                          title=f"CCVAE on {s.data_name}", license=s.licence)
    save_model(s.model, s.run / "model.safetensors", meta)
    if weights_only:
        return
    state = {"model": s.model.state_dict(), "optimizer": s.optimiser.state_dict(), "epoch": c.epoch,
             "step_in_epoch": c.step_in_epoch, "global_step": c.global_step, "images_seen": c.images_seen,
             "rng_cpu": torch.get_rng_state(), "metrics_json": json.dumps(s.last_metrics)}
    device = s.batches.device
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    if s.scaler is not None:
        state["scaler"] = s.scaler.state_dict()
    for reg in s.regularisers:
        state.update(reg.state_dict())
    save_state(s.run / STATE_FILE, state)
    s.saved_at = (c.epoch, c.global_step)
    if s.board is not None:
        s.board.flush()
