"""Open a data set as a `Catalog`: format detection, option checks and helpers shared by the readers.

The three readers live in `celeba.py`, `chexpert.py` and `folder.py`; they are imported lazily here
(they import their helpers from this module).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ccvae_tools.data.base import TEST, TRAIN, VALID, Catalog, Preprocess
from ccvae_tools.errors import DataError, UsageError

FORMATS = ("celeba", "chexpert", "folder")
UNCERTAIN_POLICIES = ("ignore", "ones", "zeros")
VIEWS = ("frontal", "lateral", "all")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


@dataclass(frozen=True)
class ReadOptions:
    """The reader options of `open_catalog`, checked."""

    labels: tuple[str, ...] | None = None
    size: int = 64
    crop: str | int = "auto"          # "auto" | "center" | "squash" | a crop size in pixels
    uncertain: str = "ignore"
    views: str = "frontal"
    images_dir: Path | None = None
    split_seed: int = 0
    valid_frac: float = 0.1
    test_frac: float = 0.1


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


def parse_crop(crop: str | int) -> str | int:
    """"auto", "center" (or "centre"), "squash", or a positive whole number of pixels."""
    text = str(crop).strip().lower()
    if text in ("auto", "squash"):
        return text
    if text in ("center", "centre"):
        return "center"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise UsageError(f"unknown crop '{crop}': use auto, center, squash or a crop size in pixels such as 148")


def make_preprocess(opts: ReadOptions, channels: int, center_size: int | None = None) -> Preprocess:
    """The `Preprocess` for the crop option. "auto" and "center" give a centre square of
    `center_size` (None: the largest one), which the reader picks from its data."""
    if opts.crop == "squash":
        return Preprocess(size=opts.size, channels=channels, crop="squash", crop_size=None)
    if isinstance(opts.crop, int):
        return Preprocess(size=opts.size, channels=channels, crop="center", crop_size=opts.crop)
    return Preprocess(size=opts.size, channels=channels, crop="center", crop_size=center_size)


def first_image_size(files: Sequence[Path], tries: int = 20) -> tuple[int, int] | None:
    """(width, height) of the first readable image among the first `tries` files, else None."""
    from PIL import Image

    for f in files[:tries]:
        try:
            with Image.open(f) as im:
                return im.size
        except Exception:  # noqa: BLE001 - any failure: try the next file; the report names it
            continue
    return None


# ----------------------------------------------------------------------------------------------
# label names
# ----------------------------------------------------------------------------------------------

def label_key(name: str) -> str:
    """The loose form of a label name: lower case, spaces, hyphens and underscores alike."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip().lower()).strip("_")


def choose_labels(requested: Sequence[str] | None, available: Sequence[str], default: Sequence[str],
                  source: str) -> list[str]:
    """Map requested label names (loose spelling) to the data set's own spelling, in request order.

    None gives `default`. An unknown name raises `UsageError` with the closest names and the full list.
    """
    if requested is None:
        return list(default)
    by_key = {label_key(a): a for a in available}
    out: list[str] = []
    for name in requested:
        found = by_key.get(label_key(name))
        if found is None:
            close = difflib.get_close_matches(label_key(name), list(by_key), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(by_key[c] for c in close)}?" if close else ""
            raise UsageError(f"unknown label '{name}' in {source}{hint} "
                             f"(labels: {', '.join(available) or 'none'})")
        if found not in out:
            out.append(found)
    return out


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------

def random_split(n: int, seed: int, valid_frac: float, test_frac: float) -> np.ndarray:
    """A seeded split of n items: int8 (n,) of TRAIN / VALID / TEST; the same seed gives the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_frac))
    n_valid = int(round(n * valid_frac))
    split = np.full(n, TRAIN, dtype=np.int8)
    split[order[:n_test]] = TEST
    split[order[n_test:n_test + n_valid]] = VALID
    return split


def group_split(groups: Sequence[str], seed: int, valid_frac: float, test_frac: float) -> np.ndarray:
    """A seeded split by group (e.g. patient): no group is in two splits; fractions count groups."""
    names, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    per_group = random_split(len(names), seed, valid_frac, test_frac)
    return per_group[inverse].astype(np.int8)


def split_note(what: str, seed: int, valid_frac: float, test_frac: float) -> str:
    """The note for a seeded split."""
    return f"{what}: split at random with seed {seed} (valid {valid_frac:g}, test {test_frac:g})"


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------

def read_text(path: Path, what: str = "file") -> str:
    """A text file's content (UTF-8 with or without BOM, else Latin-1); `DataError` if unreadable or empty."""
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, expected a {what}") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not raw.strip():
        raise DataError(f"{what} {path} is empty")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_delimiter(first_line: str) -> str:
    """The most common of , ; and tab in a CSV header line (comma if none)."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def iter_csv(text: str, strip: bool = True) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Parse CSV text: (header, [(line number, cells)]). Blank lines are skipped; the header cells are
    stripped, and the other cells too when `strip`."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if not "".join(cells).strip():
                continue
            if header is None:
                header = [c.strip() for c in cells]
            else:
                rows.append((reader.line_num, [c.strip() for c in cells] if strip else cells))
    except csv.Error as e:
        raise DataError(f"malformed CSV near line {reader.line_num}: {e}") from None
    return header or [], rows


def read_csv_header(path: Path) -> list[str]:
    """The header cells of a CSV file (reads only its start); [] if it cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return []
    text = head.decode("utf-8-sig", errors="replace")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        return [c.strip() for c in next(csv.reader([first], delimiter=sniff_delimiter(first)), [])]
    except csv.Error:
        return []


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
