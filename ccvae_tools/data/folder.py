"""The folder + CSV reader: one CSV row per image, an image column, label columns, an optional split.

Label cells: 1/0, 1/-1, true/false, yes/no, y/n (any case) for binary labels, one encoding per column;
blank, NA, N/A, nan and ? mean missing. A column of at most 20 other values (words, or whole numbers)
is a multi-class label with its classes sorted. Other columns (many distinct values, fractions) are
not labels: skipped with a note by default, an error when asked for by name.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from ccvae_tools.data.base import TEST, TRAIN, VALID, Catalog, Label
from ccvae_tools.data.names import label_key
from ccvae_tools.data.shared import (IMAGE_EXTS, image_channels, ReadOptions, choose_labels, iter_csv,
                                      make_preprocess, random_split, read_text, split_note)
from ccvae_tools.util.errors import DataError, UsageError

IMAGE_COLUMN_NAMES = ("image", "file", "filename", "path", "img", "file_name", "image_path", "image_file",
                      "image_name", "img_path", "filepath", "file_path")
SPLIT_COLUMN = "split"
MISSING = frozenset({"", "na", "n/a", "nan", "?"})
MAX_CLASSES = 20
_BINARY_WORDS = (("true", "false"), ("yes", "no"), ("y", "n"))
_SPLITS = {"train": TRAIN, "training": TRAIN, "valid": VALID, "val": VALID, "validation": VALID,
           "dev": VALID, "test": TEST, "testing": TEST}
_UNNAMED = re.compile(r"^unnamed:?\s*\d+$", re.IGNORECASE)
Rows = list[tuple[int, list[str]]]      # the CSV's rows: (line number, cells)


class NotALabel(Exception):
    """A column that cannot be a label; the message says why."""


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _seen(values: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def classify_column(name: str, cells: list[str], where: str) -> tuple[Label, np.ndarray]:
    """Turn one column's cells into a `Label` and float32 class indices (NaN = missing).

    Raises `NotALabel` for a column that is not a label and `DataError` for mixed encodings.
    """
    observed = [c for c in cells if c.lower() not in MISSING]
    if not observed:
        raise NotALabel("has no values")
    distinct = sorted(set(observed))
    nums = {c: _number(c) for c in distinct}
    mixed = DataError(f"{where}: column '{name}' mixes label encodings (values seen: {_seen(distinct)}); "
                      f"use one of 1/0, 1/-1, true/false, yes/no, y/n per column, blank for missing")
    n_numeric = sum(v is not None for v in nums.values())
    if 0 < n_numeric < len(distinct):
        raise mixed
    out = np.full(len(cells), np.nan, dtype=np.float32)

    if n_numeric:
        levels = {nums[c] for c in distinct}
        if levels <= {0.0, 1.0} or levels <= {-1.0, 1.0}:
            for i, c in enumerate(cells):
                v = nums.get(c)
                if v is not None:
                    out[i] = 1.0 if v == 1.0 else 0.0
            return Label(name), out
        if levels <= {-1.0, 0.0, 1.0}:
            raise mixed
        if any(v != int(v) for v in levels):
            raise NotALabel("holds fractional numbers")
        if len(levels) > MAX_CLASSES:
            raise NotALabel(f"has {len(levels)} distinct numbers")
        classes = sorted(levels)
        index = {v: k for k, v in enumerate(classes)}
        for i, c in enumerate(cells):
            v = nums.get(c)
            if v is not None:
                out[i] = index[v]
        return Label(name, tuple(str(int(v)) for v in classes)), out

    lowered = {c.lower() for c in distinct}
    for pos, neg in _BINARY_WORDS:
        if lowered <= {pos, neg}:
            for i, c in enumerate(cells):
                low = c.lower()
                if low == pos:
                    out[i] = 1.0
                elif low == neg:
                    out[i] = 0.0
            return Label(name), out
    if lowered <= {w for pair in _BINARY_WORDS for w in pair}:
        raise mixed
    if len(distinct) > MAX_CLASSES:
        raise NotALabel(f"has {len(distinct)} distinct values")
    index = {c: k for k, c in enumerate(distinct)}
    for i, c in enumerate(cells):
        if c in index:
            out[i] = index[c]
    return Label(name, tuple(distinct)), out


def _find_image_column(where: str, header: list[str], rows: list[tuple[int, list[str]]],
                       requested: str | None) -> int:
    """Index of the image column: as named, else by a usual name, else the only one holding image files."""
    keys = [label_key(h) for h in header]
    if requested is not None:
        if label_key(requested) in keys:
            return keys.index(label_key(requested))
        raise UsageError(f"{where}: no column '{requested}' (columns: {', '.join(header)})")
    for name in IMAGE_COLUMN_NAMES:
        if name in keys:
            return keys.index(name)
    candidates = []
    for j in range(len(header)):
        vals = [cells[j] for _, cells in rows if cells[j]]
        if vals and all(v.lower().endswith(IMAGE_EXTS) for v in vals):
            candidates.append(j)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise DataError(f"{where}: several columns hold image file names "
                        f"({', '.join(header[j] for j in candidates)}); name the image column 'image'")
    raise DataError(f"{where}: no image column (columns: {', '.join(header)}); name the column of image "
                    f"paths 'image' (or file, filename, path, img)")


def read_folder(path: Path, opts: ReadOptions, image_column: str | None = None) -> Catalog:
    """Read a folder + CSV data set (the CSV file, or a folder holding exactly one) into a `Catalog`."""
    path = _the_csv(path)
    where = str(path)
    header, rows = _read_table(path, where)
    notes: list[str] = []
    img = _find_image_column(where, header, rows, image_column)
    split_col = next((j for j, h in enumerate(header) if label_key(h) == SPLIT_COLUMN and j != img), None)
    base = (opts.images_dir or path.parent).absolute()
    rows = _without_duplicates(where, header, rows, img, base, notes)
    files = [base / _relative(cells[img]) for _, cells in rows]
    outside = sum(not os.path.normpath(f).startswith(os.path.join(str(base), "")) for f in files)
    if outside:        # allowed (images kept apart from the table), but said: the CSV decides what is read
        notes.append(f"{outside:,} rows name images outside {base} (absolute or ../ paths); they are read "
                     f"where they point")
    cols = _label_columns(where, header, img, split_col, opts, notes)
    label_info, labels = _read_labels(where, header, rows, cols, opts, notes)
    split = _read_split(where, rows, split_col, opts, notes)
    channels = image_channels(files)
    if channels == 1:
        notes.append("grayscale images: the model gets 1 channel")
    return Catalog(name="folder", root=base, files=files, labels=labels,
                   label_info=label_info, split=split,
                   preprocess=make_preprocess(opts, channels=channels, center_size=None), notes=notes)


def _the_csv(path: Path) -> Path:
    """The CSV file itself, or the only .csv file in a folder."""
    if not path.is_dir():
        return path
    csvs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if len(csvs) != 1:
        raise DataError(f"{path}: expected exactly one .csv file, found {len(csvs)}; give the CSV file")
    return csvs[0]


def _read_table(path: Path, where: str) -> tuple[list[str], Rows]:
    """The header and the rows, every row as wide as the header (or a DataError naming the line)."""
    header, rows = iter_csv(read_text(path, "CSV file"))
    if not header:
        raise DataError(f"{where} is empty")
    if not rows:
        raise DataError(f"{where} lists no images (only a header)")
    seen: set[str] = set()
    for h in header:
        if h and h in seen:
            raise DataError(f"{where}: column '{h}' appears twice in the header")
        seen.add(h)
    width = len(header)
    for k, (line_no, cells) in enumerate(rows):
        if len(cells) > width and not any(cells[width:]):
            rows[k] = (line_no, cells[:width])      # trailing empty cells, as spreadsheets write them
        elif len(cells) != width:
            raise DataError(f"{where}: line {line_no}: {len(cells)} cells, the header has {width}")
    return header, rows


def _relative(cell: str) -> str:
    """An image path as written in the CSV, with Windows separators made portable."""
    return cell.replace("\\", "/")


def _without_duplicates(where: str, header: list[str], rows: Rows, img: int, base: Path,
                        notes: list[str]) -> Rows:
    """The rows with each image once: identical repeats are dropped with a note; a repeat with other
    values is an error, since no one can tell which labels are right."""
    first_at: dict[str, int] = {}           # normalised image path -> index of its first row
    keep: list[int] = []
    conflicts: list[tuple[str, int, int]] = []
    dropped = 0
    for k, (line_no, cells) in enumerate(rows):
        rel = _relative(cells[img])
        if not rel:
            raise DataError(f"{where}: line {line_no}: empty image path in column '{header[img]}'")
        key = os.path.normpath(str(base / rel))      # ./a.jpg and a.jpg are the same image
        if key in first_at:
            k0 = first_at[key]
            if rows[k0][1] == cells:
                dropped += 1
            else:
                conflicts.append((rel, rows[k0][0], line_no))
            continue
        first_at[key] = k
        keep.append(k)
    if conflicts:
        rel, a, b = conflicts[0]
        more = f" ({len(conflicts) - 1} more duplicated rows)" if len(conflicts) > 1 else ""
        raise DataError(f"{where}: image '{rel}' is listed on lines {a} and {b} with different values{more}")
    if dropped:
        notes.append(f"{dropped} duplicated rows (identical to an earlier row) dropped")
    return [rows[k] for k in keep]


def _label_columns(where: str, header: list[str], img: int, split_col: int | None, opts: ReadOptions,
                   notes: list[str]) -> list[int]:
    """The columns to read as labels: those asked for by name, else every named column but the image
    and split columns (pandas writes its index as an unnamed column)."""
    others = [j for j in range(len(header)) if j not in (img, split_col)]
    unnamed = [j for j in others if not header[j] or _UNNAMED.match(header[j])]
    named = [j for j in others if j not in unnamed]
    if opts.labels is None:
        if unnamed:
            notes.append(f"{len(unnamed)} unnamed columns skipped")
        return named
    for name in opts.labels:
        for j, role in ((img, "image"), (split_col, "split")):
            if j is not None and label_key(name) == label_key(header[j]):
                raise UsageError(f"'{name}' is the {role} column of {where}, not a label")
    chosen = choose_labels(opts.labels, [header[j] for j in named], [], where)
    return [header.index(c) for c in chosen]


def _read_labels(where: str, header: list[str], rows: Rows, cols: list[int], opts: ReadOptions,
                 notes: list[str]) -> tuple[list[Label], np.ndarray]:
    """The labels of the columns `cols`: (their `Label`s, float32 (rows, labels), NaN = missing).

    A column that turns out not to be a label is skipped with a note, or is an error when it was
    asked for by name."""
    if cols and all(cells[j].lower() in MISSING for j in cols for _, cells in rows):
        raise DataError(f"{where}: no labelled rows: every cell of the label columns "
                        f"({', '.join(header[j] for j in cols)}) is missing")
    label_info: list[Label] = []
    columns: list[np.ndarray] = []
    for j in cols:
        try:
            lab, vals = classify_column(header[j], [cells[j] for _, cells in rows], where)
        except NotALabel as e:
            if opts.labels is not None:
                raise DataError(f"{where}: column '{header[j]}' is not a label: it {e}") from None
            notes.append(f"column '{header[j]}' skipped: it {e}")
            continue
        label_info.append(lab)
        columns.append(vals)
    if not label_info:
        raise DataError(f"{where}: no label columns (columns: {', '.join(header)})")
    labels = np.stack(columns, axis=1).astype(np.float32)
    if np.isnan(labels).all():
        raise DataError(f"{where}: no labelled rows: every label cell is missing")
    for lab, col in zip(label_info, columns):
        seen_classes = np.unique(col[~np.isnan(col)])
        if len(seen_classes) == 1:      # allowed, but it teaches the model nothing about the label
            notes.append(f"label '{lab.name}' is constant ({lab.classes[int(seen_classes[0])]} "
                         f"wherever it is given)")
    return label_info, labels


def _read_split(where: str, rows: Rows, split_col: int | None, opts: ReadOptions, notes: list[str]) -> np.ndarray:
    """The split of every row: from the split column, else drawn at random from the options' seed."""
    if split_col is None:
        notes.append(split_note("no split column", opts.split_seed, opts.valid_frac, opts.test_frac))
        return random_split(len(rows), opts.split_seed, opts.valid_frac, opts.test_frac)
    split = np.empty(len(rows), dtype=np.int8)
    for k, (line_no, cells) in enumerate(rows):
        s = _SPLITS.get(cells[split_col].lower())
        if s is None:
            raise DataError(f"{where}: line {line_no}: split '{cells[split_col]}' is not train, "
                            f"valid or test")
        split[k] = s
    return split
