"""Training options, declared once: each is a field of `TrainOptions` with its default, its help
text, the check it must pass, whether `--resume` may change it and whether the model card shows it.
`ccvae train`'s flags (cli/train.py), the checks, `ccvae info`'s list and the README table
(docs/make_reference.py) are all derived from these fields. Presets sit between the defaults and
what the user gives. No torch or numpy here: `ccvae info` reads this without loading them.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ccvae_tools.util.device import DEVICE_CHOICES, check_device_name
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.ranges import SEED_MAX, Range

WIDTH_RANGE = Range(minimum=1, maximum=4096)      # channels of one convolution (--widths)


def option(default: Any, help: str, *, choices: tuple | None = None, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None, resume: bool = False,
           card: bool = False, cli: bool = True, metavar: str | None = None, envvar: str | None = None,
           comma_list: bool = False, shown: str | None = None) -> Any:
    """A training option: `minimum` <= value (or `above` < value) <= `maximum`, stated in the help
    and checked by `check_options` (float options are refused as NaN or infinite in any case);
    `resume` = a resumed run may change it; `card` = `ccvae info` shows it; `cli` = `ccvae train`
    has a flag for it; `comma_list` = the flag takes "a,b,c"; `shown` = how the README's table
    states the default when the value alone would not say it."""
    bounded = minimum is not None or maximum is not None or above is not None
    meta = dict(help=help, choices=choices, range=Range(minimum, maximum, above) if bounded else None,
                resume=resume, card=card, cli=cli, metavar=metavar, envvar=envvar, comma_list=comma_list,
                shown=shown)
    return field(default=default, metadata=meta)


@dataclass
class TrainOptions:
    data: str = option("", "Data folder or CSV (not needed with --resume).", cli=False)
    format: str = option("auto", "auto | celeba | chexpert | folder", card=True)
    labels: list[str] | None = option(None, "Comma-separated label names (default: all, or the paper's 18 on "
                                      "CelebA).", comma_list=True,
                                      shown="all (CelebA: the paper's 18)")
    sup_frac: float = option(1.0, "Labelled fraction of the train split.", above=0, maximum=1, card=True)
    sup_select: str | None = option(None, "first (the paper: the first fraction) | random (seeded); auto: first, "
                                    "unless the first fraction lacks a class that the train split holds plenty of "
                                    "(rows sorted by family, say), then random.", choices=("first", "random"),
                                    card=True, shown="auto")
    sup_oversample: float = option(1.0, "Times each labelled image is seen per epoch (1: paper).", minimum=1.0,
                                   maximum=1000)
    labelled_per_batch: int | None = option(None, "k: labelled images in every batch, the rest unlabelled (ours; "
                                            "0 = the paper's schedule: each labelled image once an epoch; auto: "
                                            "half the batch when some train images have no labels, else 0).",
                                            minimum=0, maximum=65535, card=True, shown="auto")
    balance_labelled: float = option(0.0, "T: draw each labelled image of a class rarer than the share T more "
                                     "often, sqrt(T / share) times, so that rare classes show in every batch "
                                     "(with --labelled-per-batch; ours; default 0 = as they come).", minimum=0,
                                     maximum=1, card=True)
    augment_shift: int | None = option(None, "Shift each labelled image of a batch by up to N pixels, drawn anew at "
                                       "every step (edges repeated), so that a few labelled images are not learnt "
                                       "by heart (ours; 0 = off; auto: 2 for glyph-like images when some train "
                                       "images have no labels, else 0).", minimum=0, maximum=16, card=True,
                                       shown="auto")
    epochs: int = option(50, "Epochs.", minimum=1, maximum=1_000_000, resume=True)
    batch_size: int = option(64, "Batch size (all GPUs together).", minimum=1, maximum=65536, card=True)
    lr: float = option(1e-3, "Adam learning rate.", above=0, maximum=1, card=True)
    z_style: int = option(27, "Style latent size d_s.", minimum=1, maximum=4096, card=True)
    label_dim: int = option(1, "Latent size d_i of each label's block (a K-class label gets at least "
                                    "ceil(log2 K)).", minimum=1, maximum=256, card=True)
    widths: str = option("", "Channels of the encoder's stride-2 convolutions (the decoder mirrors them), e.g. "
                         "64,64,64,128 at 64 px (default: the paper's 32,32,64,128); each in "
                         f"{WIDTH_RANGE.text()}.", card=True,
                         shown="the paper's")
    image_size: int = option(64, "32, 64 or 128.", choices=(32, 64, 128), card=True)
    crop: str = option("auto", "auto | center | squash | N (centre crop size)", card=True)
    uncertain: str = option("ignore", "CheXpert -1: ignore | ones | zeros")
    likelihood: str | None = option(None, "p(x|z): laplace (the paper's) | bernoulli (sparse images such as "
                                    "glyphs, where the Laplace draws a blank page; auto: bernoulli for grayscale "
                                    "images that are nearly all black or white, else laplace).",
                                    choices=("laplace", "bernoulli"), card=True, shown="auto")
    likelihood_scale: float = option(1.0, "Laplace scale b of p(x|z).", above=0, maximum=1000, card=True)
    draws: int = option(100, "K: draws for q^(y|x) (default 100).", minimum=1, maximum=100_000, card=True)
    classifier_weight: float = option(1000.0, "alpha: extra weight on log q^(y|x) in the loss (default 1000; 0 = "
                                      "the paper's objective, as --preset paper).", minimum=0, maximum=1e6,
                                      card=True)
    style_adversary: float = option(0.0, "lambda: train z_s to hide the labels from an adversary that reads them "
                                    "from z_s (ours; default 0 = off).", minimum=0, maximum=1e6, card=True)
    style_decorrelate: float = option(0.0, "lambda: penalise the share of each label that a linear read-out of "
                                      "z_s explains in the batch (R^2; ours; default 0 = off).", minimum=0,
                                      maximum=1e6, card=True)
    kl_warmup: float = option(0.0, "Epochs over which the latent cost of the loss rises from 0 to 1 (ours; "
                              "default 0 = off).", minimum=0, maximum=1e6, card=True)
    swap_cycle: float = option(0.0, "gamma: train the decoder to draw the labels of swapped codes, as the model's "
                               "own classifier reads them (ours; default 0 = off).", minimum=0, maximum=1e6,
                               card=True)
    calibrate_prior: str = option("codes", "After the last epoch, set each class's p(z_c | y) to the codes of the "
                                  "train images of that class, so that edits and samples land where the decoder "
                                  "has learnt to draw: codes (ours; the default) | off (the table as trained).",
                                  choices=("codes", "off"), card=True)
    pseudo_labels: float = option(0.0, "lambda: train on the model's own confident answers (q >= 0.95) for the "
                                  "labels an image lacks (ours; default 0 = off).", minimum=0, maximum=1e6, card=True)
    consistency: float = option(0.0, "lambda: the classifier gives each unlabelled image the answer it gives the "
                                "image moved by a pixel (ours; default 0 = off).", minimum=0, maximum=1e6, card=True)
    init_from: str | None = option(None, "Start from a weights file (fine-tuning); the network's shape and labels "
                                   "come from it.", metavar="WEIGHTS", card=True)
    device: str = option("auto", " | ".join(DEVICE_CHOICES), envvar="CCVAE_DEVICE", resume=True)
    precision: str = option("fp32", "fp32 | bf16 | fp16 (CUDA). bf16 is fast only where the CPU has bf16 "
                            "instructions (AVX-512 BF16, AMX) or on a GPU; elsewhere it is emulated and slower "
                            "than fp32.", choices=("fp32", "bf16", "fp16"), card=True)
    compile: str = option("off", "torch.compile the step: off | default | reduce-overhead | max-autotune (ours; "
                          "for GPUs, where the last two capture CUDA graphs and max-autotune also searches for "
                          "faster kernels; the first steps wait for the compiler, and on the CPU it needs a C++ "
                          "compiler).", choices=("off", "default", "reduce-overhead", "max-autotune"),
                          resume=True)
    out: str = option("runs", "Folder of run folders (default runs).", resume=True)
    seed: int = option(0, "Seed of everything random.", minimum=0, maximum=SEED_MAX)
    preset: str | None = option(None, "paper | few-labels | avatars", card=True)
    eval_every: int = option(1, "Evaluate every N epochs (and after the last).", minimum=1, maximum=1_000_000,
                             resume=True)
    preview_every: int = option(5, "Preview images every N epochs (0: never).", minimum=0, maximum=1_000_000,
                                resume=True)
    log: str = option("none", "none | tensorboard: each evaluation's numbers and preview also as TensorBoard "
                      "event files in RUN/tensorboard/ (the tensorboard extra; view with tensorboard --logdir "
                      "runs).", choices=("none", "tensorboard"), resume=True)
    checkpoint_minutes: float = option(5.0, "Checkpoint every N minutes too (0: every step).", minimum=0,
                                       maximum=1e6, resume=True)
    max_eval: int = option(5000, "Validation images per evaluation.", minimum=1, maximum=10 ** 9, cli=False)
    max_steps: int = option(0, "Stop after N steps in total (0: no limit).", minimum=0, maximum=SEED_MAX,
                            resume=True, shown="0 (no limit)")
    workers: int = option(0, "Processes for decoding the cache.", minimum=0, maximum=1024, resume=True,
                          shown="0 (one per core)")
    on_bad: str = option("skip", "Unreadable images: skip | fail", choices=("skip", "fail"))
    cache_dir: str | None = option(None, "Where to keep the decoded cache.",
                                   shown="`DATA/.ccvae-cache` (else `~/.cache/ccvae`)")

    def to_json(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's CelebA protocol: 18 labels, 64 px squashed frames, z = 18 + 27, Adam 1e-4, batch 200.
    # Its schedule too: each labelled image once an epoch, the Laplace, no balancing (the recipe
    # chooses nothing under this preset).
    "paper": dict(format="celeba", labels=None, image_size=64, crop="squash", z_style=27, lr=1e-4,
                  batch_size=200, epochs=200, draws=100, classifier_weight=0.0, labelled_per_batch=0,
                  likelihood="laplace", calibrate_prior="off", augment_shift=0, sup_select="first"),
    # Few labels (ours, docs/experiments.md "The supervision sweep"): half of every batch labelled and
    # a strong classifier term, whatever the labelled share. The defaults choose the same when some
    # train images have no labels (training/recipe.py); kept so that older commands still run.
    "few-labels": dict(batch_size=64, lr=1e-3, labelled_per_batch=32, classifier_weight=1000.0),
    # The shipped default: generated avatars (`ccvae data avatars`), trained on a CPU.
    "avatars": dict(format="celeba", image_size=64, crop="auto", z_style=27, lr=1e-3, batch_size=64,
                    epochs=50, draws=100, classifier_weight=100.0, style_adversary=50.0),
}


def option_fields() -> list[Field]:
    return list(fields(TrainOptions))


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def help_of(f: Field) -> str:
    """An option's help as `ccvae train --help` and the README's table show it: with its range."""
    meta = f.metadata
    rng = meta["range"].text() if meta["range"] is not None else ""
    return f"{meta['help']} Range: {rng}." if rng else meta["help"]


def resumable_options() -> tuple[str, ...]:
    """What may change when a run is resumed; everything else comes from the run's options.json."""
    return tuple(f.name for f in option_fields() if f.metadata["resume"])


def card_options() -> tuple[str, ...]:
    """The options `ccvae info` shows: those that describe how the model was trained."""
    return tuple(f.name for f in option_fields() if f.metadata["card"])


def default_of(f: Field) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


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
    unknown = set(values) - {f.name for f in option_fields()}
    if unknown:
        raise UsageError(f"unknown training options: {', '.join(sorted(unknown))}")
    opts = TrainOptions(**values)
    check_options(opts)
    return opts


def _or_list(values: tuple) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check_options(opts: TrainOptions) -> None:
    """Each field's declared check (choices, range; no float may be NaN or infinite), then the few
    that relate options. Runs before any work, and again on the options a resumed run ends up with."""
    for f in option_fields():
        value, meta = getattr(opts, f.name), f.metadata
        if meta["choices"] is not None and value is not None and value not in meta["choices"]:
            raise UsageError(f"{flag_of(f.name)} must be {_or_list(meta['choices'])}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            (meta["range"] or Range()).check(flag_of(f.name), value)
    if (opts.labelled_per_batch or 0) > 0 and opts.sup_oversample != 1.0:
        raise UsageError("--labelled-per-batch and --sup-oversample are two ways to show labelled images more "
                         "often; give one")
    if opts.labelled_per_batch is not None and opts.labelled_per_batch >= opts.batch_size:
        raise UsageError(f"--labelled-per-batch must be below --batch-size ({opts.batch_size}), got "
                         f"{opts.labelled_per_batch}")
    opts.device = check_device_name(opts.device)
    parse_widths(opts.widths, opts.image_size)
    if opts.log == "tensorboard":
        from ccvae_tools.training.tensorboard import check_available

        check_available()


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
    for w in widths:
        WIDTH_RANGE.check("--widths", w)
    return widths


def take_shape_from(opts: TrainOptions) -> None:
    """--init-from W: the network's shape (image size, widths, latent sizes, labels) comes from W."""
    from ccvae_tools.model.weights import read_metadata

    path = Path(opts.init_from)
    if not path.is_file():
        raise UsageError(f"--init-from {path}: no such weights file")
    try:
        cfg = read_metadata(path)["ccvae.config"]
    except Exception as e:  # noqa: BLE001 - any unreadable header is the user's file, not our bug
        raise UsageError(f"--init-from {path}: not a ccvae weights file ({e})") from None
    from ccvae_tools.data.base import Label
    from ccvae_tools.model.network import label_block_sizes

    try:
        labels = [Label.from_json(d) for d in cfg["labels"]]
        dims = [int(d) for d in cfg.get("label_dims") or [1] * len(labels)]
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"--init-from {path}: not a ccvae weights file (its labels cannot be read)") from None
    if not dims or label_block_sizes(labels, min(dims)) != dims:
        raise UsageError(f"--init-from {path}: its label blocks ({', '.join(map(str, dims))}) are not what "
                         f"--label-dim gives; they cannot be trained on")
    opts.labels = opts.labels or [lab["name"] for lab in cfg["labels"]]
    opts.image_size = int(cfg["image_size"])
    opts.widths = ",".join(str(w) for w in cfg.get("widths") or ())
    opts.z_style = int(cfg["z_style"])
    opts.label_dim = min(dims)
    opts.likelihood = opts.likelihood or str(cfg.get("likelihood") or "laplace")
