"""What the three readers share: read options, label-name matching, CSV parsing, splits, files.

The loose spelling of label names (`names.label_key`) is the one the command line matches with too.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ccvae_tools.data.base import TEST, TRAIN, VALID, Preprocess
from ccvae_tools.data.names import match_label
from ccvae_tools.util.errors import DataError, UsageError
from ccvae_tools.util.files import NotRegularFile, open_regular, read_at_most
from ccvae_tools.util.ranges import whole_number

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


def parse_crop(crop: str | int) -> str | int:
    """"auto", "center" (or "centre"), "squash", or a positive whole number of pixels."""
    text = str(crop).strip().lower()
    if text in ("auto", "squash"):
        return text
    if text in ("center", "centre"):
        return "center"
    size = whole_number(text)
    if size is not None and size > 0:
        return size
    raise UsageError(f"unknown crop '{crop}': use auto, center, squash or a crop size in pixels such as 148")


def make_preprocess(opts: ReadOptions, channels: int, center_size: int | None = None) -> Preprocess:
    """The `Preprocess` for the crop option. "auto" and "center" give a centre square of
    `center_size` (None: the largest one), which the reader picks from its data."""
    if opts.crop == "squash":
        return Preprocess(size=opts.size, channels=channels, crop="squash", crop_size=None)
    if isinstance(opts.crop, int):
        return Preprocess(size=opts.size, channels=channels, crop="center", crop_size=opts.crop)
    return Preprocess(size=opts.size, channels=channels, crop="center", crop_size=center_size)


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_channels(files: Sequence[Path], tries: int = 20) -> int:
    """1 when every readable image among the first `tries` files is grayscale, else 3 (colour)."""
    from PIL import Image

    from ccvae_tools.data.images import decoding

    modes = []
    for f in files[:tries]:
        try:
            with decoding(), Image.open(f) as im:
                modes.append(im.mode)
        except Exception:  # noqa: BLE001 - any failure: try the next file; the report names it
            continue
    return 1 if modes and all(m in GRAY_MODES for m in modes) else 3


def first_image_size(files: Sequence[Path], tries: int = 20) -> tuple[int, int] | None:
    """(width, height) of the first readable image among the first `tries` files, else None."""
    from PIL import Image

    from ccvae_tools.data.images import decoding

    for f in files[:tries]:
        try:
            with decoding(), Image.open(f) as im:
                return im.size
        except Exception:  # noqa: BLE001 - any failure: try the next file; the report names it
            continue
    return None


# ----------------------------------------------------------------------------------------------
# label names
# ----------------------------------------------------------------------------------------------

def choose_labels(requested: Sequence[str] | None, available: Sequence[str], default: Sequence[str],
                  source: str) -> list[str]:
    """Map requested label names (loose spelling) to the data set's own spelling, in request order.

    None gives `default`. An unknown name raises `UsageError` with the closest names and the full list.
    """
    if requested is None:
        return list(default)
    available = [str(a) for a in available]
    out: list[str] = []
    for name in requested:
        found = available[match_label(name, available, where=f" in {source}",
                                      listing=f"(labels: {', '.join(available) or 'none'})",
                                      none=f"{source} has no label columns")]
        if found not in out:
            out.append(found)
    return out


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------

def labelled_mask(labels: np.ndarray, train_idx: np.ndarray, opts) -> np.ndarray:
    """Which train examples keep their labels under `ccvae train --sup-frac`: the first sup_frac of the
    train split (the paper's semantics), or a seeded random share (opts: sup_frac, sup_select, seed).
    Returns a bool array over all examples. Here, below training, so that evaluation can find a
    run's labelled images again."""
    n_lab = int(round(opts.sup_frac * len(train_idx)))
    n_lab = max(n_lab, 1) if len(train_idx) else 0
    if (opts.sup_select or "first") == "first":         # None: not yet chosen by the recipe, the paper's
        chosen = train_idx[:n_lab]
    else:
        chosen = np.sort(np.random.default_rng([opts.seed, 7]).permutation(train_idx)[:n_lab])
    keep = np.zeros(len(labels), dtype=bool)
    keep[chosen] = True
    return keep


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

MAX_TABLE_BYTES = 1 << 30      # a label table (CSV, attribute list) read whole; CelebA's is 26 MB


def read_text(path: Path, what: str = "file") -> str:
    """A text file's content (UTF-8 with or without BOM, else Latin-1); `DataError` if unreadable,
    empty, larger than MAX_TABLE_BYTES, or not a regular file (a FIFO would hang the read, a device
    such as /dev/zero never end it)."""
    try:
        with open_regular(path) as f:
            raw = read_at_most(f, MAX_TABLE_BYTES)
    except NotRegularFile as e:
        if e.kind == "a folder":
            raise DataError(f"{path} is a folder, expected a {what}") from None
        raise DataError(f"{path} is {e.kind}, not a {what}; give a regular file") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if raw is None:
        raise DataError(f"{what} {path} is larger than {MAX_TABLE_BYTES >> 20:,} MiB; split it or keep the "
                        f"labels of the images you train on")
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
        with open_regular(path) as f:         # never waits on a FIFO
            head = f.read(65536)
    except (OSError, NotRegularFile):
        return []
    text = head.decode("utf-8-sig", errors="replace")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        return [c.strip() for c in next(csv.reader([first], delimiter=sniff_delimiter(first)), [])]
    except csv.Error:
        return []
