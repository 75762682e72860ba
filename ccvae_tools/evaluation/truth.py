"""Ground truth of generated avatars: the within-label variants a data set records about how each
image was drawn (`avatars.json` + `avatars.csv`: which mouth, which frame, which shade), read for
the characteristic-capture part of `ccvae eval` (docs/method.md section 5.8).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class GroundTruth:
    """Within-label variants of a data set that records its drawing choices (`avatars.json/.csv`)."""

    columns: dict[str, str]                 # data label name -> the column holding its variant
    values: dict[str, np.ndarray]           # column -> object array, one cell per decoded image (None: unknown)
    source: Path

    def variants(self, label: str) -> np.ndarray | None:
        col = self.columns.get(label)
        return None if col is None else self.values.get(col)


def _first_with(folders: Sequence[Path], *names: Path) -> tuple[Path, ...] | None:
    """The paths of `names` in the first folder that has every one of them as a file."""
    for folder in folders:
        paths = tuple(Path(folder) / n for n in names)
        if all(p.is_file() for p in paths):
            return paths
    return None


def load_ground_truth(folders: Sequence[Path], files: Sequence[str], label_names: Sequence[str]
                      ) -> GroundTruth | None:
    """Read avatars.json + avatars.csv from the first folder that has both; rows matched to the
    decoded images by file name. None when there is no ground truth."""
    from ccvae_tools.data.names import label_key

    found = _first_with(folders, Path("avatars.json"), Path("avatars.csv"))
    if found is None:
        return None
    meta_path, table_path = found
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        by_key = {label_key(d["name"]): str(d["variant_column"]) for d in meta.get("labels", [])
                  if d.get("variant_column")}
        with open(table_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError, TypeError, csv.Error):
        return None
    if not rows or "file" not in rows[0]:
        return None
    columns = {name: by_key[label_key(name)] for name in label_names if label_key(name) in by_key}
    columns = {k: v for k, v in columns.items() if v in rows[0]}
    by_file = {Path(r["file"]).name: r for r in rows}
    values = {}
    for col in set(columns.values()):
        values[col] = np.asarray([by_file[Path(f).name][col] if Path(f).name in by_file else None
                                  for f in files], dtype=object)
    return GroundTruth(columns=columns, values=values, source=table_path)


def capture_class(truth_col: np.ndarray, variants: np.ndarray, num_classes: int) -> int | None | str:
    """Which examples the capture probe uses: class 1 of a binary label (its positive class), or
    class 0 when only class 0 has several variants (No_Beard: the beard lives in class 0); None for
    a multi-class label (all examples); "skip" when no class has two variants."""
    known = np.asarray([v is not None for v in variants])
    if num_classes != 2:
        vals = {str(v) for v in variants[known & ~np.isnan(truth_col)]}
        return None if len(vals) >= 2 else "skip"
    for k in (1, 0):
        sel = known & (truth_col == k)
        if len({str(v) for v in variants[sel]}) >= 2:
            return k
    return "skip"


# --- continuous characteristics (typefaces: weight class, italic angle, width class) -----------------

CONTINUOUS_TABLE = Path("truth") / "characteristics.csv"
CONTINUOUS_INDEX = Path("truth") / "characteristics.json"


@dataclass
class ContinuousTruth:
    """Continuous characteristics behind binary labels (truth/characteristics.json names, per label,
    the column of truth/characteristics.csv that holds it), one float per decoded image (NaN: unknown)."""

    columns: dict[str, str]                 # data label name -> column
    values: dict[str, np.ndarray]           # column -> float array over the decoded images
    source: Path


def _float_or_nan(text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def load_continuous_truth(folders: Sequence[Path], files: Sequence[str], label_names: Sequence[str]
                          ) -> ContinuousTruth | None:
    """Read truth/characteristics.json + .csv from the first folder that has both (`ccvae data fonts`
    writes them); rows matched to the decoded images by their path relative to the data folder.
    None when there is none, or it cannot be read."""
    from ccvae_tools.data.names import label_key

    found = _first_with(folders, CONTINUOUS_INDEX, CONTINUOUS_TABLE)
    if found is None:
        return None
    index_path, table_path = found
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        by_key = {label_key(str(k)): str(v) for k, v in dict(index["continuous"]).items()}
        with open(table_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, csv.Error):
        return None
    if not rows or "image" not in rows[0]:
        return None
    columns = {n: by_key[label_key(n)] for n in label_names if label_key(n) in by_key and by_key[label_key(n)] in rows[0]}
    by_image = {Path(r["image"]).as_posix(): r for r in rows}
    values = {col: np.array([_float_or_nan(by_image.get(Path(f).as_posix(), {}).get(col)) for f in files])
              for col in set(columns.values())}
    return ContinuousTruth(columns=columns, values=values, source=table_path) if columns else None
