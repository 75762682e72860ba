"""What every data reader produces, and what training consumes.

A reader turns a data folder into a `Catalog`: the list of source images, a label matrix with NaN
for "missing", the ordered labels with their class names, and a split. The decoded cache
(`ccvae_tools.data.cache`) turns a catalog into a `Decoded` set: uint8 images C x H x W in a
memory-mapped array, ready for training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Label:
    """One label: its name and its ordered class names (class k is the value k in the matrix)."""

    name: str
    classes: tuple[str, ...] = ("0", "1")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        return {"name": self.name, "classes": list(self.classes)}

    @staticmethod
    def from_json(d: dict) -> "Label":
        return Label(str(d["name"]), tuple(str(c) for c in d["classes"]))


@dataclass(frozen=True)
class Preprocess:
    """How a source image becomes a model input.

    crop = "center": centre square of side `crop_size` (None: the largest centred square), then resize.
    crop = "squash": resize the whole frame to a square (the paper's code did this for CelebA).
    """

    size: int = 64
    channels: int = 3
    crop: str = "center"
    crop_size: int | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "Preprocess":
        return Preprocess(int(d["size"]), int(d["channels"]), str(d["crop"]),
                          None if d.get("crop_size") is None else int(d["crop_size"]))


@dataclass
class Catalog:
    """A data set before decoding: source files, labels (class index or NaN), split."""

    name: str                      # "celeba", "chexpert", "folder"
    root: Path
    files: list[Path]              # absolute paths of the source images
    labels: np.ndarray             # float32 (N, L): class index, NaN = missing
    label_info: list[Label]
    split: np.ndarray              # int8 (N,): TRAIN / VALID / TEST
    preprocess: Preprocess
    notes: list[str] = field(default_factory=list)  # reader remarks shown in the report

    def __post_init__(self) -> None:
        n = len(self.files)
        assert self.labels.shape == (n, len(self.label_info)), (self.labels.shape, n)
        assert self.split.shape == (n,)

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.label_info]


@dataclass
class Decoded:
    """A decoded data set: what training reads. `images` is usually a read-only np.memmap."""

    name: str
    images: np.ndarray             # uint8 (N, C, H, W)
    labels: np.ndarray             # float32 (N, L), NaN = missing
    label_info: list[Label]
    split: np.ndarray              # int8 (N,)
    preprocess: Preprocess
    files: list[str]               # source file names (relative to the data root where possible)

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.label_info]

    def indices(self, split: int) -> np.ndarray:
        return np.flatnonzero(self.split == split)
