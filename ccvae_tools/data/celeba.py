"""The CelebA reader (official layout, torchvision's `celeba/` layout, and our generated avatars)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ccvae_tools.data.base import SPLIT_NAMES, TRAIN, Catalog, Label
from ccvae_tools.data.shared import (ReadOptions, choose_labels, first_image_size, make_preprocess,
                                      random_split, read_text, split_note)
from ccvae_tools.util.errors import DataError
from ccvae_tools.util.ranges import whole_number

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
PAPER_LABELS = ("Arched_Eyebrows", "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair",
                "Bushy_Eyebrows", "Chubby", "Eyeglasses", "Heavy_Makeup", "Male", "No_Beard", "Pale_Skin",
                "Receding_Hairline", "Smiling", "Wavy_Hair", "Wearing_Necktie", "Young")
CELEBA_CROP = 148                      # the centre square of the official 178 x 218 aligned faces
ALIGNED_SIZE = (178, 218)
_VALUES = {"1": 1.0, "+1": 1.0, "-1": 0.0, "0": np.nan}   # 0: missing (some users' files)
_FILE_HEADERS = ("image_id", "image", "file", "filename", "file_name")


def find_celeba_base(root: Path) -> Path | None:
    """The folder holding `list_attr_celeba.txt`: ROOT itself or ROOT/celeba (torchvision), else None."""
    for base in (root, root / "celeba"):
        if (base / ATTR_FILE).is_file():
            return base
    return None


def _fast_rows(lines: list[str], width: int) -> tuple[list[str], np.ndarray] | None:
    """Parse well-formed rows in bulk; None when anything looks off (the slow path then names the line)."""
    tokens = " ".join(lines).split()
    n_rows = sum(1 for ln in lines if ln and not ln.isspace())
    if len(tokens) != n_rows * (width + 1):
        return None
    names = tokens[0::width + 1]
    if any(n in _VALUES for n in names) or len(set(names)) != len(names):
        return None
    del tokens[0::width + 1]
    try:
        values = np.fromiter(map(_VALUES.__getitem__, tokens), dtype=np.float32, count=len(tokens))
    except KeyError:
        return None
    return names, values.reshape(n_rows, width)


def _slow_rows(path: Path, lines: list[str], first_line: int, width: int) -> tuple[list[str], np.ndarray]:
    """Parse rows one by one; raises `DataError` naming the first bad line."""
    files: list[str] = []
    rows: list[list[float]] = []
    where: dict[str, int] = {}
    for line_no, line in enumerate(lines, start=first_line):
        toks = line.split()
        if not toks:
            continue
        if len(toks) != width + 1:
            raise DataError(f"{path}: line {line_no}: expected a file name and {width} values, "
                            f"found {len(toks) - 1} values")
        try:
            rows.append([_VALUES[t] for t in toks[1:]])
        except KeyError:
            bad = next(t for t in toks[1:] if t not in _VALUES)
            raise DataError(f"{path}: line {line_no}: value '{bad}' is not -1, 1 or 0 (missing)") from None
        if toks[0] in where:
            raise DataError(f"{path}: line {line_no}: image {toks[0]} is listed twice "
                            f"(first on line {where[toks[0]]})")
        where[toks[0]] = line_no
        files.append(toks[0])
    return files, np.asarray(rows, dtype=np.float32).reshape(len(rows), width)


def parse_attr_file(path: Path) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Parse `list_attr_celeba.txt`: (file names, attribute names, float32 (N, A) with 1 / 0 / NaN, notes).

    -1 becomes 0 (negative), 1 stays 1, 0 means missing. Any number of spaces separate fields; blank
    lines, trailing spaces and CRLF line ends are fine.
    """
    lines = read_text(path, "attribute file").splitlines()
    notes: list[str] = []

    def skip_blank(k: int) -> int:
        return next((i for i in range(k, len(lines)) if lines[i].split()), len(lines))

    pos = skip_blank(0)
    count: int | None = None
    first = lines[pos].split() if pos < len(lines) else []
    if len(first) == 1 and first[0].isdigit():        # line 1: the image count
        count = whole_number(first[0])
        if count is None:
            notes.append(f"{ATTR_FILE} line 1 is not an image count ('{first[0][:20]}')")
        pos = skip_blank(pos + 1)
    if pos >= len(lines):
        raise DataError(f"{path}: no attribute names (line 2 should list them)")
    names_line, names = pos + 1, lines[pos].split()
    body_start = pos + 1
    first_row = next((ln.split() for ln in lines[body_start:] if ln.split()), None)
    if first_row is not None and len(first_row) == len(names) and names[0].lower() in _FILE_HEADERS:
        names = names[1:]                       # a header that names the file column too
    if not names:
        raise DataError(f"{path}: line {names_line}: no attribute names")
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise DataError(f"{path}: line {names_line}: attribute '{twice}' is named twice")
    if first_row is None:
        raise DataError(f"{path} lists no images")

    body = lines[body_start:]
    parsed = _fast_rows(body, len(names)) or _slow_rows(path, body, body_start + 1, len(names))
    files, values = parsed
    if count is not None and count != len(files):
        notes.append(f"{ATTR_FILE} says {count} images on line 1 but lists {len(files)}")
    return files, names, values, notes


def parse_partition_file(path: Path) -> dict[str, int]:
    """Parse `list_eval_partition.txt`: file name -> 0 (train), 1 (valid) or 2 (test)."""
    text = read_text(path, "partition file")
    tokens = text.split()
    lines = text.splitlines()
    if len(tokens) == 2 * sum(1 for ln in lines if ln.split()) and set(tokens[1::2]) <= {"0", "1", "2"}:
        return dict(zip(tokens[0::2], map(int, tokens[1::2])))
    out: dict[str, int] = {}
    for i, line in enumerate(lines, start=1):
        toks = line.split()
        if not toks:
            continue
        if len(toks) != 2 or toks[1] not in ("0", "1", "2"):
            raise DataError(f"{path}: line {i}: expected a file name and 0 (train), 1 (valid) or 2 (test), "
                            f"got '{line.strip()}'")
        out[toks[0]] = int(toks[1])
    return out


def read_celeba(root: Path, opts: ReadOptions) -> Catalog:
    """Read a CelebA-layout folder (see the module docstring) into a `Catalog`."""
    if root.is_file() and root.name == ATTR_FILE:
        root = root.parent
    base = find_celeba_base(root)
    if base is None:
        raise DataError(f"not a CelebA folder: {root} (looked for {root / ATTR_FILE} "
                        f"and {root / 'celeba' / ATTR_FILE})")
    names, attrs, values, notes = parse_attr_file(base / ATTR_FILE)

    default = list(PAPER_LABELS) if set(PAPER_LABELS) <= set(attrs) else list(attrs)
    chosen = choose_labels(opts.labels, attrs, default, f"{base / ATTR_FILE}")
    cols = [attrs.index(c) for c in chosen]
    labels = np.ascontiguousarray(values[:, cols], dtype=np.float32)

    image_dir = opts.images_dir or base / IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"image folder not found: {image_dir} (CelebA keeps its images in {IMAGE_DIR}/ "
                        f"next to {ATTR_FILE})")
    nested = image_dir / IMAGE_DIR              # Kaggle's copy nests the folder twice
    if nested.is_dir() and not (image_dir / names[0]).exists() and (nested / names[0]).exists():
        image_dir = nested
    image_dir = image_dir.absolute()
    files = [image_dir / n for n in names]

    part_path = base / PARTITION_FILE
    if part_path.is_file():
        part = parse_partition_file(part_path)
        split = np.array([part.get(n, TRAIN) for n in names], dtype=np.int8)
        unlisted = sum(1 for n in names if n not in part)
        if unlisted:
            notes.append(f"{unlisted} images are not in {PARTITION_FILE}: put in {SPLIT_NAMES[TRAIN]}")
    else:
        split = random_split(len(names), opts.split_seed, opts.valid_frac, opts.test_frac)
        notes.append(split_note(f"no {PARTITION_FILE}", opts.split_seed, opts.valid_frac, opts.test_frac))

    center = None
    if opts.crop in ("auto", "center"):
        wh = first_image_size(files)
        if wh is not None:
            fits = wh[0] >= ALIGNED_SIZE[0] and wh[1] >= ALIGNED_SIZE[1] if opts.crop == "auto" \
                else min(wh) >= CELEBA_CROP
            center = CELEBA_CROP if fits else None
    pre = make_preprocess(opts, channels=3, center_size=center)
    return Catalog(name="celeba", root=base.absolute(), files=files, labels=labels, label_info=[
        Label(c) for c in chosen], split=split, preprocess=pre, notes=notes)
