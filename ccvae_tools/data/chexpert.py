"""The CheXpert reader: `train.csv` and `valid.csv` with a `Path` column and 14 observations.

Split: train.csv is divided into train and valid by patient (seeded, `valid_frac` of the patients, so
no patient is in two splits); valid.csv (the official validation set) is the test split. When only
one of the two files exists, it is divided by patient into all three splits.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ccvae_tools.data.base import TEST, Catalog, Label
from ccvae_tools.data.names import label_key
from ccvae_tools.data.shared import (ReadOptions, choose_labels, group_split, iter_csv, make_preprocess,
                                      read_csv_header, read_text, split_note)
from ccvae_tools.util.errors import DataError

OBSERVATIONS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                "Pleural Other", "Fracture", "Support Devices")
_OBS_KEYS = {label_key(o) for o in OBSERVATIONS}
_MIN_OBSERVATIONS = 3          # auto-detection needs Path and at least this many observation columns
_CELLS = {"": math.nan, "1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "-1": -1.0, "-1.0": -1.0}
_UNCERTAIN = {"ignore": (math.nan, "missing (U-Ignore)"), "ones": (1.0, "1 (U-Ones)"),
              "zeros": (0.0, "0 (U-Zeros)")}
_PATIENT = re.compile(r"(patient\d+)", re.IGNORECASE)


def is_chexpert_header(columns: list[str]) -> bool:
    """True for a CSV header with a `Path` column and CheXpert observation columns."""
    keys = {label_key(c) for c in columns}
    return "path" in keys and len(keys & _OBS_KEYS) >= _MIN_OBSERVATIONS


def patient_of(rel_path: str) -> str:
    """The patient id of a CheXpert path (`.../patient00001/study1/view1_frontal.jpg`)."""
    m = _PATIENT.search(rel_path)
    if m:
        return m.group(1).lower()
    parts = Path(rel_path).parts
    return parts[-3] if len(parts) >= 3 else rel_path


def _parse_cell(text: str) -> float | None:
    """An observation cell: 1.0, 0.0, -1.0, NaN for blank, None for anything else."""
    t = text.strip()
    if not t:
        return math.nan
    try:
        v = float(t)
    except ValueError:
        return None
    return v if v in (1.0, 0.0, -1.0) else None


def _view_of(cell: str | None, rel_path: str) -> str:
    """"frontal", "lateral" or "" from the Frontal/Lateral cell, else from the file name."""
    text = (cell if cell is not None else Path(rel_path).stem).strip().lower()
    if "frontal" in text:
        return "frontal"
    if "lateral" in text:
        return "lateral"
    return ""


def _resolve_base(csv_path: Path, first_rel: str, opts: ReadOptions, notes: list[str]) -> Path:
    """Where the relative paths of a CSV start: --images if given, else its folder or that folder's
    parent, whichever holds the first row's image."""
    if opts.images_dir is not None:
        return opts.images_dir.absolute()
    root = csv_path.parent.absolute()
    for base in (root, root.parent):
        if (base / first_rel).exists():
            return base
    first = Path(first_rel).parts[0] if Path(first_rel).parts else ""
    base = root.parent if first == root.name else root
    notes.append(f"{csv_path.name}: first image {first_rel} not found under {root} or its parent; "
                 f"paths are read relative to {base}")
    return base


def _read_csv(csv_path: Path, opts: ReadOptions, wanted: list[str],
              notes: list[str]) -> tuple[list[Path], list[str], np.ndarray]:
    """One CheXpert CSV: (files, patients, float32 values of the `wanted` columns with -1 kept)."""
    header, rows = iter_csv(read_text(csv_path, "CSV file"), strip=False)
    keys = [label_key(h) for h in header]
    if "path" not in keys:
        raise DataError(f"{csv_path}: no Path column (columns: {', '.join(header) or 'none'})")
    path_idx = keys.index("path")
    view_idx = keys.index("frontal/lateral") if "frontal/lateral" in keys else None
    missing = [w for w in wanted if label_key(w) not in keys]
    if missing:
        raise DataError(f"{csv_path}: no column for {', '.join(missing)} (columns: {', '.join(header)})")
    use = [keys.index(label_key(w)) for w in wanted]
    if not rows:
        raise DataError(f"{csv_path} lists no images")

    first_rel = rows[0][1][path_idx].strip() if len(rows[0][1]) > path_idx else ""
    base = _resolve_base(csv_path, first_rel, opts, notes)
    files: list[Path] = []
    patients: list[str] = []
    values: list[list[float]] = []
    kept_views = 0
    for line_no, cells in rows:
        if len(cells) < len(header):
            raise DataError(f"{csv_path}: line {line_no}: {len(cells)} cells, the header has {len(header)}")
        rel = cells[path_idx].strip().replace("\\", "/")
        if not rel:
            raise DataError(f"{csv_path}: line {line_no}: empty Path")
        if opts.views != "all":
            if _view_of(None if view_idx is None else cells[view_idx], rel) != opts.views:
                continue
        kept_views += 1
        row: list[float] = []
        for j in use:
            v = _CELLS.get(cells[j])
            if v is None:
                v = _parse_cell(cells[j])
                if v is None:
                    raise DataError(f"{csv_path}: line {line_no}: column '{header[j]}' has value "
                                    f"'{cells[j]}' (expected 1.0, 0.0, -1.0 or blank)")
            row.append(v)
        values.append(row)
        files.append(base / rel)
        patients.append(patient_of(rel))
    if opts.views != "all":
        notes.append(f"{csv_path.name}: {opts.views} views only, {kept_views} of {len(rows)} rows kept")
    arr = np.asarray(values, dtype=np.float32).reshape(len(values), len(use))
    return files, patients, arr


def read_chexpert(path: Path, opts: ReadOptions) -> Catalog:
    """Read a CheXpert folder (or one of its CSV files) into a `Catalog`; see the module docstring."""
    if path.is_dir():
        root = path
        train_csv, valid_csv = root / "train.csv", root / "valid.csv"
    else:
        root = path.parent
        if path.name.lower() == "valid.csv":
            train_csv, valid_csv = root / "train.csv", path
        else:
            train_csv, valid_csv = path, root / "valid.csv"
    sources = [(p, part) for p, part in ((train_csv, "train"), (valid_csv, "test")) if p.is_file()]
    if not sources:
        raise DataError(f"not a CheXpert folder: {root} (looked for train.csv and valid.csv)")

    notes: list[str] = []
    # The labels: read the first CSV's header to learn what it offers, then pick.
    first_header = read_csv_header(sources[0][0])
    available = [h for h in first_header if label_key(h) in _OBS_KEYS]
    if not available:
        raise DataError(f"{sources[0][0]}: none of the 14 CheXpert observation columns "
                        f"(columns: {', '.join(first_header)})")
    chosen = choose_labels(opts.labels, available, available, str(sources[0][0]))

    files: list[Path] = []
    parts: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for csv_path, role in sources:
        f, patients, arr = _read_csv(csv_path, opts, chosen, notes)
        if len(sources) == 2:
            if role == "train":
                split = group_split(patients, opts.split_seed, opts.valid_frac, 0.0)
            else:
                split = np.full(len(f), TEST, dtype=np.int8)
        else:
            split = group_split(patients, opts.split_seed, opts.valid_frac, opts.test_frac)
        files += f
        parts.append(split)
        values.append(arr)
    if len(sources) == 2:
        notes.append(f"train.csv: split into train and valid by patient with seed {opts.split_seed} "
                     f"(valid {opts.valid_frac:g} of patients); valid.csv is the test split")
    else:
        notes.append(split_note(f"only {sources[0][0].name}, split by patient", opts.split_seed,
                                opts.valid_frac, opts.test_frac))
    if not files:
        raise DataError(f"no {opts.views} images in {root}")

    labels = np.concatenate(values, axis=0).astype(np.float32)
    unc = labels == -1.0
    if unc.any():
        fill, meaning = _UNCERTAIN[opts.uncertain]
        labels[unc] = fill
        notes.append(f"{int(unc.sum())} uncertain (-1) cells counted as {meaning}")
    split = np.concatenate(parts).astype(np.int8)
    return Catalog(name="chexpert", root=root.absolute(), files=files, labels=labels,
                   label_info=[Label(c) for c in chosen], split=split,
                   preprocess=make_preprocess(opts, channels=1, center_size=None), notes=notes)
