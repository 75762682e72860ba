"""`ccvae train --log tensorboard`: each evaluation's numbers and each preview picture as TensorBoard
event files in RUN/tensorboard/ (`tensorboard --logdir runs/`), on the step axis of global_step.

Scalars are the numbers of the epoch's metrics.jsonl line, grouped by tag: `train/...` (the mean
loss, images per second, images seen, the regularisers' epoch means) and, for the held-out split
(`valid`, or `test` when the data has no validation split), `valid/bound`, `valid/recon_l1`, the
means, and `valid/accuracy/<label>`, `valid/balanced_accuracy/<label>`,
`valid/majority_baseline/<label>`, the label names made safe with `util/text.slug`. The preview
picture goes under the tag `preview`.

Resumed without duplicate steps: the writer opens at the first event with TensorBoard's
`purge_step`, so that what the interrupted run wrote after the checkpoint the run resumes from is
discarded when the files are read back (events at or after the purge step, in the older files).
That step is the checkpoint's step + 1, or the first step written, if sooner: a run stopped just
after an epoch's last step evaluates that step again when resumed. Torch's SummaryWriter (it needs
the `tensorboard` package) is imported when the log is made, never at import.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.text import slug

MISSING = ("--log tensorboard needs the tensorboard package, which is not installed: "
           "pip install 'ccvae-tools[tensorboard]' (or train with --log none)")

# metrics.jsonl entries that are no curve: counters, clock, what the held-out pass was given, costs
_NOT_SCALARS = frozenset({"epoch", "step", "time", "split", "images", "eval_images", "eval_draws", "count",
                          "eval_seconds", "preview_seconds", "checkpoint_seconds"})
_TRAIN = {"train_loss": "loss", "images_per_s": "images_per_s", "images_seen": "images_seen"}
_HELDOUT = ("bound", "recon_l1", "mean_accuracy", "mean_balanced_accuracy", "mean_majority_baseline")
_PER_LABEL = ("accuracy", "balanced_accuracy", "majority_baseline")


def check_available() -> None:
    """`--log tensorboard` without the tensorboard package: one line, before any work."""
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(MISSING)


def label_tags(names) -> dict[str, str]:
    """Each label name (from a data file: untrusted) as one tag part: its slug, and two names with
    one slug kept apart by a number (`a_b`, `a_b-2`)."""
    tags: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        tag = base = slug(name)
        n = 1
        while tag in used:
            n += 1
            tag = f"{base}-{n}"
        used.add(tag)
        tags[name] = tag
    return tags


def metric_scalars(line: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl line as TensorBoard tags and values; other numbers (the regularisers' epoch
    means) go under `train/`."""
    split = "test" if line.get("split") == "test" else "valid"
    out: dict[str, float] = {}
    for key, value in line.items():
        if key in _NOT_SCALARS or key in _PER_LABEL or isinstance(value, (bool, str, dict, list)):
            continue
        if isinstance(value, (int, float)):
            out[f"{split}/{key}" if key in _HELDOUT else f"train/{_TRAIN.get(key, key)}"] = float(value)
    for key in _PER_LABEL:
        values = line.get(key) or {}
        for name, tag in label_tags(values).items():
            out[f"{split}/{key}/{tag}"] = float(values[name])
    return out


class TensorBoardLog:
    """Event files in `folder`, for a run that starts (or resumes) at `start_step`."""

    def __init__(self, folder: Path, start_step: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError(MISSING) from None
        self._writer_class = SummaryWriter
        self.folder, self.start_step = Path(folder), int(start_step)
        self._writer = None
        self._closed = False

    def _at(self, step: int):
        """The writer, opened at the first event with the purge step (see the module's note)."""
        if self._writer is None:
            self._writer = self._writer_class(str(self.folder), purge_step=min(self.start_step + 1, step))
        return self._writer

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._closed:
            return
        writer = self._at(step)
        for tag, value in values.items():
            writer.add_scalar(tag, value, global_step=step)

    def metrics(self, step: int, line: dict[str, Any]) -> None:
        """An evaluation: its metrics.jsonl line as scalars (`metric_scalars`)."""
        self.scalars(step, metric_scalars(line))

    def image(self, tag: str, step: int, picture) -> None:
        """A PIL image, an H x W (x C) uint8 array, or a picture file (a preview PNG)."""
        if self._closed:
            return
        import numpy as np
        from PIL import Image

        if isinstance(picture, (str, Path)):
            with Image.open(picture) as img:
                picture = img.convert("L" if img.mode in ("L", "1") else "RGB")
        elif isinstance(picture, Image.Image) and picture.mode not in ("L", "RGB"):
            picture = picture.convert("RGB")
        arr = np.asarray(picture, dtype=np.uint8)
        self._at(step).add_image(tag, arr, global_step=step, dataformats="HW" if arr.ndim == 2 else "HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Everything written out; later events are ignored (a new writer would purge this one's)."""
        if self._writer is not None:
            self._writer.close()
        self._writer, self._closed = None, True
