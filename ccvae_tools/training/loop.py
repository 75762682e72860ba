"""`ccvae train`: options, run folders, the training loop, checkpoints and exact resume.

A run folder holds options.json (resolved before the first step), metrics.jsonl (one line per
evaluation), previews/, model.safetensors (inference weights + metadata, rewritten atomically at
every checkpoint) and state.pt (optimiser, counters and RNG states for --resume; loaded with
weights_only=True, and only from a run folder this program wrote).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ccvae_tools.util.atomic import atomic_write, atomic_write_bytes
from ccvae_tools.util.console import err, info, warn
from ccvae_tools.data.base import TRAIN, VALID, TEST, Decoded
from ccvae_tools.util.device import check_device_name, pick_device
from ccvae_tools.evaluation.heldout import heldout_metrics
from ccvae_tools.evaluation.metrics import majority_classes
from ccvae_tools.util.errors import TrainingError, UsageError


@dataclass
class TrainOptions:
    data: str = ""
    format: str = "auto"
    labels: list[str] | None = None
    sup_frac: float = 1.0
    sup_select: str = "first"          # "first" (the paper) or "random" (seeded)
    sup_oversample: float = 1.0        # times each labelled example is seen per epoch (1 = paper)
    epochs: int = 50
    batch_size: int = 200
    lr: float = 1e-4
    z_style: int = 27
    label_dim: int = 1
    widths: str = ""                   # channels of the convolutions, comma-separated ("": the paper's)
    image_size: int = 64
    crop: str = "auto"
    uncertain: str = "ignore"
    likelihood_scale: float = 1.0
    draws: int = 100                   # K fresh draws for q^(y_O | x)
    classifier_weight: float = 100.0   # alpha on log q^(y_O|x) in the loss (ours; 0 = the paper)
    style_adversary: float = 0.0       # lambda of the style adversary on z_s (ours; 0 = none)
    style_decorrelate: float = 0.0     # lambda of the R^2 penalty of the labels on z_s (ours; 0 = none)
    kl_warmup: float = 0.0             # epochs over which the latent cost rises from 0 to 1 (ours; 0 = none)
    swap_cycle: float = 0.0            # gamma of the swap cycle that teaches the decoder to draw z_c (ours)
    init_from: str | None = None       # weights file to start from (fine-tuning; the network's shape comes from it)
    device: str = "auto"
    precision: str = "fp32"
    out: str = "runs"
    seed: int = 0
    preset: str | None = None
    eval_every: int = 1                # epochs
    preview_every: int = 5             # epochs (0: never)
    checkpoint_minutes: float = 5.0    # also at every epoch end
    max_eval: int = 5000               # validation images per evaluation
    max_steps: int = 0                 # stop after this many steps in total (0: no limit)
    workers: int = 0                   # processes for decoding the cache (0: one per core)
    on_bad: str = "skip"               # unreadable images: skip or fail
    cache_dir: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's CelebA protocol: 18 labels, 64 px squashed frames, z = 18 + 27, Adam 1e-4, batch 200.
    "paper": dict(format="celeba", labels=None, image_size=64, crop="squash", z_style=27, lr=1e-4,
                  batch_size=200, epochs=200, draws=100, classifier_weight=0.0),
    # The shipped default: generated avatars (`ccvae data avatars`), trained on a CPU.
    "avatars": dict(format="celeba", image_size=64, crop="auto", z_style=27, lr=1e-3, batch_size=64,
                    epochs=50, draws=100, classifier_weight=100.0, style_adversary=50.0),
}


def resolve_options(explicit: dict[str, Any]) -> TrainOptions:
    """Defaults, then the preset, then what the user gave explicitly (None = not given)."""
    given = {k: v for k, v in explicit.items() if v is not None}
    preset = given.get("preset")
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown --preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    values.update(given)
    known = {f.name for f in fields(TrainOptions)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown training options: {', '.join(sorted(unknown))}")
    opts = TrainOptions(**values)
    _check(opts)
    return opts


def parse_widths(text: str, image_size: int) -> tuple[int, ...]:
    """--widths "64,64,64,128" -> (64, 64, 64, 128); "" -> () (the paper's widths for the image size).
    One width per stride-2 convolution: 3 at 32 px, 4 at 64 px, 5 at 128 px."""
    if not text.strip():
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise UsageError(f"--widths must be comma-separated whole numbers, got {text!r}") from None
    need = {32: 3, 64: 4, 128: 5}.get(image_size)
    if need is not None and len(widths) != need:
        raise UsageError(f"--widths needs {need} numbers at {image_size} px (one per downsampling "
                         f"convolution), got {len(widths)}")
    if min(widths) < 1:
        raise UsageError("--widths must all be >= 1")
    return widths


def _take_shape_from(opts: TrainOptions) -> None:
    """--init-from W: the network's shape (image size, widths, latent sizes, labels) comes from W."""
    from ccvae_tools.model.weights import read_metadata

    path = Path(opts.init_from)
    if not path.is_file():
        raise UsageError(f"--init-from {path}: no such weights file")
    try:
        cfg = read_metadata(path)["ccvae.config"]
    except Exception as e:  # noqa: BLE001 - any unreadable header is the user's file, not our bug
        raise UsageError(f"--init-from {path}: not a ccvae weights file ({e})") from None
    dims = set(cfg.get("label_dims") or [1])
    if len(dims) != 1:
        raise UsageError(f"--init-from {path}: label blocks of different sizes cannot be trained on")
    opts.labels = opts.labels or [lab["name"] for lab in cfg["labels"]]
    opts.image_size = int(cfg["image_size"])
    opts.widths = ",".join(str(w) for w in cfg.get("widths") or ())
    opts.z_style = int(cfg["z_style"])
    opts.label_dim = dims.pop()


def _check(o: TrainOptions) -> None:
    if not 0.0 < o.sup_frac <= 1.0:
        raise UsageError(f"--sup-frac must be in (0, 1], got {o.sup_frac}")
    if o.sup_select not in ("first", "random"):
        raise UsageError("--sup-select must be 'first' or 'random'")
    if o.sup_oversample < 1.0:
        raise UsageError("--sup-oversample must be >= 1")
    if o.precision not in ("fp32", "bf16", "fp16"):
        raise UsageError("--precision must be fp32, bf16 or fp16")
    o.device = check_device_name(o.device)
    if o.image_size not in (32, 64, 128):
        raise UsageError("--image-size must be 32, 64 or 128")
    parse_widths(o.widths, o.image_size)
    if o.classifier_weight < 0:
        raise UsageError("--classifier-weight must be >= 0")
    if o.style_adversary < 0:
        raise UsageError("--style-adversary must be >= 0")
    if o.swap_cycle < 0:
        raise UsageError("--swap-cycle must be >= 0")
    if o.style_decorrelate < 0:
        raise UsageError("--style-decorrelate must be >= 0")
    if o.kl_warmup < 0:
        raise UsageError("--kl-warmup must be >= 0")
    for name in ("epochs", "batch_size", "draws"):
        if getattr(o, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if o.on_bad not in ("skip", "fail"):
        raise UsageError("--on-bad must be skip or fail")


# ----------------------------------------------------------------------------------------------
# run folders and atomic files
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# data preparation
# ----------------------------------------------------------------------------------------------

def labelled_mask(labels: np.ndarray, train_idx: np.ndarray, opts: TrainOptions) -> np.ndarray:
    """Which train examples keep their labels: the first sup_frac of the train split (the paper's
    semantics), or a seeded random share. Returns a bool array over all examples."""
    n_lab = int(round(opts.sup_frac * len(train_idx)))
    n_lab = max(n_lab, 1) if len(train_idx) else 0
    if opts.sup_select == "first":
        chosen = train_idx[:n_lab]
    else:
        chosen = np.sort(np.random.default_rng([opts.seed, 7]).permutation(train_idx)[:n_lab])
    keep = np.zeros(len(labels), dtype=bool)
    keep[chosen] = True
    return keep


def epoch_order(train_idx: np.ndarray, labelled: np.ndarray, opts: TrainOptions, epoch: int,
                ) -> np.ndarray:
    """The epoch's example order: every train example once, labelled ones `sup_oversample` times
    (fractional part drawn), shuffled by (seed, epoch) so that a resumed run sees the same order."""
    rng = np.random.default_rng([opts.seed, epoch])
    idx = train_idx
    extra = opts.sup_oversample - 1.0
    if extra > 0:
        lab = train_idx[labelled[train_idx]]
        reps = [lab] * int(math.floor(extra))
        frac = extra - math.floor(extra)
        if frac > 0:
            reps.append(rng.permutation(lab)[: int(round(frac * len(lab)))])
        idx = np.concatenate([idx] + reps)
    return rng.permutation(idx)


class Batches:
    """Gather batches of images and labels, from a memory map or from the device."""

    def __init__(self, data: Decoded, labels: np.ndarray, device, on_device: bool):
        import torch

        self.torch = torch
        self.device = device
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        self.images = data.images
        self.dev_images = None
        if on_device:
            self.dev_images = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)

    def get(self, idx: np.ndarray):
        torch = self.torch
        if self.dev_images is not None:
            ti = torch.from_numpy(idx).to(self.device)
            x = self.dev_images.index_select(0, ti)
        else:
            order = np.argsort(idx, kind="stable")          # sequential reads from the memmap
            rows = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
            rows[order] = self.images[idx[order]]
            x = torch.from_numpy(rows).to(self.device, non_blocking=True)
            ti = torch.from_numpy(idx).to(self.device)
        x = x.float().div_(255.0)
        lab = self.labels.index_select(0, ti)
        observed = ~torch.isnan(lab)
        y = torch.nan_to_num(lab, nan=0.0).long()
        return x, y, observed


# ----------------------------------------------------------------------------------------------
# previews
# ----------------------------------------------------------------------------------------------

def write_preview(model, batches: Batches, idx: np.ndarray, path: Path, max_labels: int = 8) -> None:
    """A PNG: originals and reconstructions, then one traversal row per label for the first image."""
    import torch
    from PIL import Image

    from ccvae_tools.interventions import traverse

    was_training = model.training
    model.eval()
    with torch.no_grad():
        x, _, _ = batches.get(idx[:8])
        mu, _ = model.encode(x)
        rows = [x, model.decode(mu).float()]
        steps = x.shape[0]
        for i in range(min(max_labels, len(model.cfg.labels))):
            rows.append(model.decode(traverse(model, mu[:1], i, steps=steps)[0]).float())
    model.train(was_training)
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)   # C, rows*H, steps*W
    arr = (grid.clamp(0, 1) * 255).round().byte().cpu().numpy()
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    atomic_write(path, lambda f: img.save(f, format="PNG"))


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Dist:
    """Join a torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as td

    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local)
    td.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(td.get_rank(), td.get_world_size(), local)


# what may change when a run is resumed; everything else comes from the run's options.json
RESUME_OVERRIDES = ("epochs", "device", "max_steps", "checkpoint_minutes", "eval_every", "preview_every",
                    "workers", "out")


def train(opts: TrainOptions, resume: str | None = None, dry_run: bool = False,
          overrides: dict[str, Any] | None = None) -> Path:
    """Run (or resume) a training run; returns the run folder.

    With `resume`, the run's saved options are used; `overrides` (options the user gave explicitly)
    may change only RESUME_OVERRIDES.
    """
    import torch

    from ccvae_tools.data.cache import load_decoded
    from ccvae_tools.data.readers import open_catalog
    from ccvae_tools.data.report import make_report
    from ccvae_tools.objective.adversary import StyleAdversary, adversary_loss, style_penalty
    from ccvae_tools.objective.cycle import swap_cycle_loss
    from ccvae_tools.objective.decorrelate import decorrelation_penalty, gather_batch, min_rows
    from ccvae_tools.model.network import CCVAE, ModelConfig, num_parameters
    from ccvae_tools.objective.bound import training_loss
    from ccvae_tools.model.weights import build_metadata, save_model

    dist = init_distributed(opts.device)
    run: Path | None = None
    state = None
    if resume is not None:
        run = find_resume_run(resume, Path(opts.out))
        saved = json.loads((run / "options.json").read_text())
        given = overrides or {}
        ignored = sorted(k for k in given if k not in RESUME_OVERRIDES and given[k] != saved.get(k))
        if ignored and dist.main:
            warn(f"--resume keeps the run's own options; ignoring {', '.join(ignored)}")
        opts = TrainOptions(**{**saved, **{k: v for k, v in given.items() if k in RESUME_OVERRIDES}})
        _check(opts)
        state = torch.load(run / "state.pt", map_location="cpu", weights_only=True)
        if dist.main:
            info(f"resuming {run} at epoch {state['epoch']}, step {state['global_step']}")

    if opts.init_from and state is None:
        _take_shape_from(opts)
    catalog = open_catalog(Path(opts.data), fmt=opts.format, labels=opts.labels, size=opts.image_size,
                           crop=opts.crop, uncertain=opts.uncertain)
    opts.labels = catalog.label_names
    if run is None and dist.main:
        report = make_report(catalog, check_files=False)
        report.render()
        if report.fatal:
            raise TrainingError(f"{opts.data}: the data cannot be trained on (see the report above)")
        run = new_run_dir(Path(opts.out), describe_data(catalog.root, catalog.name)[0], opts.sup_frac)
        write_json(run / "options.json", opts.to_json())
        _print_options(opts, run)
    if dry_run:
        return run
    if dist.world > 1:
        run = _broadcast_path(run, dist)

    device = pick_device(opts.device)
    if dist.world > 1 and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if opts.precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")

    def decoded() -> Decoded:
        return load_decoded(catalog, cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
                            workers=opts.workers or None, on_bad=opts.on_bad)

    if dist.world > 1:  # rank 0 builds the cache once; the others then reuse it
        data = decoded() if dist.main else None
        torch.distributed.barrier()
        data = data if data is not None else decoded()
    else:
        data = decoded()
    train_idx = data.indices(TRAIN)
    if len(train_idx) == 0:
        raise TrainingError(f"{opts.data}: the train split is empty")
    eval_idx = data.indices(VALID)
    if len(eval_idx) == 0:
        eval_idx = data.indices(TEST)
    eval_idx = eval_idx[: opts.max_eval]
    keep = labelled_mask(data.labels, train_idx, opts)
    train_labels = data.labels.copy()
    train_labels[(data.split == TRAIN) & ~keep] = np.nan
    n_labelled = int((~np.isnan(train_labels[train_idx])).any(1).sum())
    if n_labelled == 0:
        raise TrainingError(f"{opts.data}: no labelled training example at --sup-frac {opts.sup_frac}")
    majority = majority_classes(train_labels, train_idx)

    torch.manual_seed(opts.seed)
    cfg = ModelConfig(image_size=opts.image_size, channels=data.preprocess.channels,
                      labels=list(data.label_info), label_dims=[opts.label_dim] * len(data.label_info),
                      widths=parse_widths(opts.widths, opts.image_size),
                      z_style=opts.z_style, likelihood_scale=opts.likelihood_scale)
    model = CCVAE(cfg)
    if opts.init_from and state is None:
        from ccvae_tools.model.weights import load_model
        start, _ = load_model(opts.init_from)
        if [lab.to_json() for lab in start.cfg.labels] != [lab.to_json() for lab in cfg.labels] \
                or start.cfg.channels != cfg.channels:
            raise UsageError(f"--init-from {opts.init_from}: it was trained on the labels "
                             f"{', '.join(lab.name for lab in start.cfg.labels)} ({start.cfg.channels} channels); "
                             f"the data gives {', '.join(lab.name for lab in cfg.labels)} ({cfg.channels})")
        model.load_state_dict(start.state_dict())
    model.set_label_prior(torch.from_numpy(train_labels[train_idx]))
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=opts.lr)
    adversary = adv_optimiser = None
    if opts.style_adversary > 0:
        adversary = StyleAdversary(cfg.z_style, model.class_mask.cpu()).to(device)
        adv_optimiser = torch.optim.Adam(adversary.parameters(), lr=opts.lr)
    scaler = torch.amp.GradScaler("cuda") if opts.precision == "fp16" else None
    epoch, step_in_epoch, global_step, images_seen = 0, 0, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        if adversary is not None:
            adversary.load_state_dict(state["adversary"])
            adv_optimiser.load_state_dict(state["adversary_optimizer"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        epoch, step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        global_step, images_seen = int(state["global_step"]), int(state["images_seen"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if adversary is not None:
            adversary = DDP(adversary, device_ids=[device.index] if device.type == "cuda" else None)

    on_device = device.type == "cuda" and _fits_on_device(data.images, device)
    batches = Batches(data, train_labels, device, on_device)
    eval_batches = Batches(data, data.labels, device, on_device) if dist.main else None
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[opts.precision]

    def autocast():
        if dtype is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=dtype)

    data_name, licence = describe_data(catalog.root, catalog.name)
    meta_data = {"name": data_name, "format": catalog.name, "source": str(opts.data),
                 "images": int(len(data.images)),
                 "train": int(len(train_idx)), "labelled": n_labelled,
                 "labelled_fraction": n_labelled / len(train_idx), "sup_select": opts.sup_select,
                 "sup_oversample": opts.sup_oversample}
    last_metrics: dict = state.get("metrics_json") and json.loads(state["metrics_json"]) if state else {}

    def checkpoint() -> None:
        if not dist.main:
            return
        options = opts.to_json()
        if options.get("init_from"):   # the weights travel; the starting file's folder means nothing elsewhere
            options["init_from"] = Path(options["init_from"]).name
        train_meta = {"epochs": opts.epochs, "epoch": epoch, "step": global_step, "seed": opts.seed,
                      "images_seen": images_seen, "options": options}
        meta = build_metadata(model, data.preprocess, data=meta_data, train=train_meta,
                              metrics=last_metrics, title=f"CCVAE on {data_name}", license=licence)
        save_model(model, run / "model.safetensors", meta)
        st = {"model": model.state_dict(), "optimizer": optimiser.state_dict(), "epoch": epoch,
              "step_in_epoch": step_in_epoch, "global_step": global_step, "images_seen": images_seen,
              "rng_cpu": torch.get_rng_state(), "metrics_json": json.dumps(last_metrics)}
        if device.type == "cuda":
            st["rng_cuda"] = torch.cuda.get_rng_state(device)
        if scaler is not None:
            st["scaler"] = scaler.state_dict()
        if adversary is not None:
            st["adversary"] = getattr(adversary, "module", adversary).state_dict()
            st["adversary_optimizer"] = adv_optimiser.state_dict()
        atomic_write(run / "state.pt", lambda f: torch.save(st, f))

    per_rank = max(1, opts.batch_size // dist.world)
    if dist.main:
        info(f"model: {num_parameters(model):,} parameters, z = {cfg.z_char} characteristic + "
             f"{cfg.z_style} style; device {device}, precision {opts.precision}"
             f"{', data on device' if on_device else ''}; {n_labelled:,} of {len(train_idx):,} train "
             f"images labelled")
        if opts.style_decorrelate > 0 and per_rank * dist.world < min_rows(cfg.z_style):
            warn(f"--style-decorrelate counts a label only in batches of at least {min_rows(cfg.z_style)} "
                 f"examples with it observed (2 x the style size); this run's batches are "
                 f"{per_rank * dist.world}, so the penalty never acts: raise --batch-size")
    log = _ProgressLog(opts, dist.main)
    last_ckpt = time.monotonic()
    stop = False
    model.train()
    while epoch < opts.epochs and not stop:
        order = epoch_order(train_idx, keep, opts, epoch)
        if dist.world > 1:  # every rank takes the same number of equal batches
            order = order[: max(len(order) - len(order) % (per_rank * dist.world), per_rank * dist.world)]
        n_steps = max(1, math.ceil(len(order) / (per_rank * dist.world)))
        log.start_epoch(epoch, n_steps, step_in_epoch)
        adv_losses: list[tuple[float, float]] = []   # this epoch: the adversary's loss, the style penalty
        cycle_losses: list[float] = []               # this epoch: the swap cycle's loss
        r2_sums: list[float] = []                    # this epoch: sum_i R^2 of the labels on z_s
        while step_in_epoch < n_steps:
            s = step_in_epoch * per_rank * dist.world
            b = order[s: s + per_rank * dist.world][dist.rank::dist.world]
            x, y, observed = batches.get(b)
            with autocast():
                terms = net(x, y, observed, opts.draws)
            beta = min(1.0, global_step / (opts.kl_warmup * n_steps)) if opts.kl_warmup > 0 else 1.0
            loss = training_loss(terms, opts.classifier_weight, beta)
            if adversary is not None:
                with autocast():
                    adv_loss = adversary_loss(adversary, terms.mu_s, y, observed)
                    penalty = style_penalty(getattr(adversary, "module", adversary), terms.mu_s, model.log_pi,
                                            observed)
                    loss = loss + opts.style_adversary * penalty
            if opts.style_decorrelate > 0:
                zs, ys, obs = terms.mu_s.float(), y, observed
                if dist.world > 1:       # the whole batch; x world: DDP averages the gradients
                    zs, ys, obs = gather_batch(zs, ys, obs)
                r2 = decorrelation_penalty(zs, ys, obs, model.class_mask)
                loss = loss + opts.style_decorrelate * dist.world * r2
                r2_sums.append(float(r2.detach()))
            if opts.swap_cycle > 0:
                perm = torch.randperm(len(b), device=x.device)
                with autocast():
                    cycle = swap_cycle_loss(model, terms.mu_c, terms.mu_s, y, observed, perm)
                loss = loss + opts.swap_cycle * cycle
                cycle_losses.append(float(cycle.detach()))
            bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=device)
            if dist.world > 1:
                torch.distributed.all_reduce(bad)
            if bad.item() > 0:
                raise TrainingError(
                    f"non-finite loss at epoch {epoch + 1}, step {global_step + 1}; training stopped. "
                    f"The last good checkpoint {run / 'model.safetensors'} is intact; try a lower --lr "
                    f"or --precision fp32, then --resume {run}")
            optimiser.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
            else:
                loss.backward()
                optimiser.step()
            if adversary is not None:
                adv_optimiser.zero_grad(set_to_none=True)
                adv_loss.backward()
                adv_optimiser.step()
                adv_losses.append((float(adv_loss.detach()), float(penalty.detach())))
            step_in_epoch += 1
            global_step += 1
            images_seen += len(b) * dist.world
            log.step(len(b) * dist.world, float(loss.detach()), terms)
            if opts.max_steps and global_step >= opts.max_steps:
                stop = True
                break
            if time.monotonic() - last_ckpt > opts.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
        if not stop:
            epoch += 1
            step_in_epoch = 0
        if dist.main and eval_batches is not None and len(eval_idx) and (
                stop or epoch % opts.eval_every == 0 or epoch == opts.epochs):
            metrics = heldout_metrics(model, eval_batches, eval_idx, data.labels, majority,
                               max(opts.batch_size, 256), opts.draws, autocast)
            last_metrics = {"split": "valid" if len(data.indices(VALID)) else "test", **metrics}
            line = {"epoch": epoch, "step": global_step, "images_seen": images_seen,
                    "train_loss": log.mean_loss(), "images_per_s": log.rate(), "time": time.time(),
                    **({"adversary_loss": float(np.mean([a for a, _ in adv_losses])),
                        "style_penalty": float(np.mean([p for _, p in adv_losses]))} if adv_losses else {}),
                    **({"swap_cycle_loss": float(np.mean(cycle_losses))} if cycle_losses else {}),
                    **({"style_r2": float(np.mean(r2_sums))} if r2_sums else {}),
                    **last_metrics}
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            log.eval_line(epoch, metrics)
        if dist.main and opts.preview_every and len(eval_idx) and (
                epoch % opts.preview_every == 0 or epoch == opts.epochs or stop):
            (run / "previews").mkdir(exist_ok=True)
            write_preview(model, eval_batches, eval_idx, run / "previews" / f"epoch{epoch:04d}.png")
        checkpoint()
        last_ckpt = time.monotonic()
    log.close()
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if dist.main:
        info(f"done: {run / 'model.safetensors'}")
    return run


def _fits_on_device(images: np.ndarray, device) -> bool:
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return images.nbytes < 0.5 * free


def _broadcast_path(run: Path | None, dist: Dist) -> Path:
    import torch.distributed as td

    box = [str(run) if run is not None else None]
    td.broadcast_object_list(box, src=0)
    return Path(box[0])


def describe_data(root: Path, fmt: str) -> tuple[str, str]:
    """(name, licence) of a data set: generated sets say theirs in avatars.json; others are unknown."""
    meta = root / "avatars.json"
    if meta.is_file():
        try:
            lic = json.loads(meta.read_text()).get("license", {})
            return "avatars", str(lic.get("text", "")) if isinstance(lic, dict) else str(lic)
        except ValueError:
            pass
    return fmt, ""


def _print_options(opts: TrainOptions, run: Path) -> None:
    from rich.table import Table

    table = Table(title=f"training options -> {run}", show_header=False)
    for k, v in opts.to_json().items():
        table.add_row(k, json.dumps(v) if not isinstance(v, str) else v)
    err.print(table)


class _ProgressLog:
    """Progress on stderr: a rich bar on a terminal, a line every 30 s otherwise (for log files)."""

    def __init__(self, opts: TrainOptions, enabled: bool):
        self.opts = opts
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.t0 = time.monotonic()
        self.last_log = self.t0
        self.images = 0
        self.losses: list[float] = []
        self.epoch = 0
        self.n_steps = 0
        self.done = 0
        self.window: list[tuple[float, int]] = []

    def start_epoch(self, epoch: int, n_steps: int, done: int) -> None:
        self.epoch, self.n_steps, self.done = epoch, n_steps, done
        self.losses = []
        if self.enabled and self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self.bar is None:
                self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                    TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                                    TextColumn("{task.fields[stats]}"), console=err)
                self.bar.start()
                self.task = self.bar.add_task("", total=n_steps, stats="")
            self.bar.update(self.task, description=f"epoch {epoch + 1}/{self.opts.epochs}",
                            total=n_steps, completed=done)

    def step(self, n: int, loss: float, terms) -> None:
        now = time.monotonic()
        self.images += n
        self.done += 1
        self.losses.append(loss)
        self.window.append((now, n))
        self.window = [(t, k) for t, k in self.window if now - t < 20.0]
        if not self.enabled:
            return
        stats = f"{self.rate():,.0f} img/s  loss {loss:,.1f}  log p(x|z) {float(terms.log_px.detach().mean()):,.1f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, stats=stats)
        elif now - self.last_log > 30:
            self.last_log = now
            remaining = (self.n_steps - self.done) + (self.opts.epochs - self.epoch - 1) * self.n_steps
            eta = remaining * self.opts.batch_size / max(self.rate(), 1e-9)
            err.print(f"epoch {self.epoch + 1}/{self.opts.epochs} step {self.done}/{self.n_steps} "
                      f"{stats}  eta {eta / 60:.1f} min")

    def rate(self) -> float:
        if len(self.window) < 2:
            return 0.0
        span = self.window[-1][0] - self.window[0][0]
        return sum(k for _, k in self.window[1:]) / span if span > 0 else 0.0

    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else float("nan")

    def eval_line(self, epoch: int, m: dict) -> None:
        if not self.enabled:
            return
        msg = (f"epoch {epoch}: valid bound {m['bound']:,.1f}, L1 {m['recon_l1']:.4f}, mean accuracy "
               f"{m.get('mean_accuracy', float('nan')):.3f} (majority {m.get('mean_majority_baseline', float('nan')):.3f}, "
               f"balanced {m.get('mean_balanced_accuracy', float('nan')):.3f})")
        if self.bar is not None:
            self.bar.console.print(msg)
        else:
            err.print(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
