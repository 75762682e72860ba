"""Open a data set as a `Catalog`: format detection and option checks.

The three readers live in `celeba.py`, `chexpert.py` and `folder.py` (imported lazily, so that
opening one format does not load the others); what they share is in `shared.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ccvae_tools.data.base import Catalog
from ccvae_tools.data.shared import ReadOptions, parse_crop, read_csv_header
from ccvae_tools.util.errors import DataError, UsageError

FORMATS = ("celeba", "chexpert", "folder")
UNCERTAIN_POLICIES = ("ignore", "ones", "zeros")
VIEWS = ("frontal", "lateral", "all")


def open_catalog(path: Path, fmt: str = "auto", labels: list[str] | None = None, size: int = 64,
                 crop: str = "auto", uncertain: str = "ignore", views: str = "frontal",
                 images_dir: Path | None = None, split_seed: int = 0, valid_frac: float = 0.1,
                 test_frac: float = 0.1, image_column: str | None = None) -> Catalog:
    """Read a CelebA folder, a CheXpert folder or a folder + CSV data set into a `Catalog`.

    `fmt` is "auto" (detect), "celeba", "chexpert" or "folder". `labels` picks label names (loose
    spelling: case, spaces, hyphens and underscores do not matter); None takes the format's default.
    `image_column` names the image column of a folder + CSV data set when it cannot be detected.
    Raises `UsageError` for bad options or unknown labels, `DataError` for unusable data.
    """
    fmt_key = str(fmt or "auto").strip().lower()
    if fmt_key not in ("auto",) + FORMATS:
        raise UsageError(f"unknown format '{fmt}': use one of auto, {', '.join(FORMATS)}")
    opts = check_options(labels=labels, size=size, crop=crop, uncertain=uncertain, views=views,
                         images_dir=images_dir, split_seed=split_seed, valid_frac=valid_frac,
                         test_frac=test_frac)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    if opts.images_dir is not None and not opts.images_dir.is_dir():
        raise DataError(f"image folder not found: {opts.images_dir}")
    if fmt_key == "auto":
        fmt_key, path = detect_format(path)

    if fmt_key == "celeba":
        from ccvae_tools.data.celeba import read_celeba
        return read_celeba(path, opts)
    if fmt_key == "chexpert":
        from ccvae_tools.data.chexpert import read_chexpert
        return read_chexpert(path, opts)
    from ccvae_tools.data.folder import read_folder
    return read_folder(path, opts, image_column=image_column)


def check_options(labels: Sequence[str] | None = None, size: int = 64, crop: str | int = "auto",
                  uncertain: str = "ignore", views: str = "frontal", images_dir: Path | None = None,
                  split_seed: int = 0, valid_frac: float = 0.1, test_frac: float = 0.1) -> ReadOptions:
    """Validate the reader options; `UsageError` names the first bad one."""
    if labels is not None:
        if isinstance(labels, str):
            labels = [labels]
        labels = tuple(str(x).strip() for x in labels if str(x).strip())
        if not labels:
            raise UsageError("no label names given")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise UsageError(f"image size must be a whole number of pixels, at least 8 (got {size!r})")
    unc = str(uncertain).strip().lower()
    if unc not in UNCERTAIN_POLICIES:
        raise UsageError(f"unknown uncertain policy '{uncertain}': use one of {', '.join(UNCERTAIN_POLICIES)}")
    vw = str(views).strip().lower()
    if vw not in VIEWS:
        raise UsageError(f"unknown views '{views}': use one of {', '.join(VIEWS)}")
    for name, frac in (("valid fraction", valid_frac), ("test fraction", test_frac)):
        if not 0.0 <= float(frac) < 1.0:
            raise UsageError(f"{name} must be in [0, 1) (got {frac})")
    if float(valid_frac) + float(test_frac) >= 1.0:
        raise UsageError(f"valid and test fractions leave nothing to train on ({valid_frac} + {test_frac})")
    return ReadOptions(labels=labels, size=int(size), crop=parse_crop(crop), uncertain=unc, views=vw,
                       images_dir=None if images_dir is None else Path(images_dir).expanduser(),
                       split_seed=int(split_seed), valid_frac=float(valid_frac), test_frac=float(test_frac))


# ----------------------------------------------------------------------------------------------
# format detection
# ----------------------------------------------------------------------------------------------

def detect_format(path: Path) -> tuple[str, Path]:
    """Guess the format of a data folder or file: ("celeba" | "chexpert" | "folder", path to read)."""
    from ccvae_tools.data.celeba import ATTR_FILE, find_celeba_base
    from ccvae_tools.data.chexpert import is_chexpert_header

    if path.is_dir():
        if find_celeba_base(path) is not None:
            return "celeba", path
        for name in ("train.csv", "valid.csv"):
            if (path / name).is_file() and is_chexpert_header(read_csv_header(path / name)):
                return "chexpert", path
        csvs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
        if len(csvs) == 1:
            return "folder", csvs[0]
        found = f"found {len(csvs)} .csv files: {', '.join(p.name for p in csvs[:5])}" if csvs else "found none"
        raise DataError(
            f"cannot tell the format of {path}: looked for {ATTR_FILE} or celeba/{ATTR_FILE} (CelebA), "
            f"train.csv with Path and CheXpert observation columns (CheXpert), and exactly one .csv file "
            f"(folder + CSV; {found}); give the CSV file itself or --format")
    if path.name == ATTR_FILE:
        return "celeba", path.parent
    if path.suffix.lower() == ".csv":
        if is_chexpert_header(read_csv_header(path)):
            return "chexpert", path
        return "folder", path
    raise DataError(f"{path} is not a data folder or a .csv file (looked for a CelebA folder, "
                    f"a CheXpert folder, or a CSV listing images and labels)")
