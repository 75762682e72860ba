"""The one-screen data report: counts per split, label rates, missing or unreadable files, notes."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ccvae_tools.data.base import SPLIT_NAMES, TRAIN, Catalog
from ccvae_tools.util.text import safe_text

EXAMPLES = 5            # file names shown per problem
_CHUNK = 256            # files per thread-pool task


@dataclass
class Rates:
    """Label statistics over a set of rows."""

    rows: int
    observed: int
    missing_rate: float | None            # None when there are no rows
    class_shares: list[float] | None      # share of each class among observed cells; None if none observed
    binary: bool = True                   # classes ("0", "1"): negative / positive

    @property
    def positive_rate(self) -> float | None:
        """Share of class 1 among observed cells (binary labels); None otherwise."""
        if not self.binary or self.class_shares is None:
            return None
        return self.class_shares[1]

    def to_json(self) -> dict:
        return {"rows": self.rows, "observed": self.observed, "missing_rate": self.missing_rate,
                "positive_rate": self.positive_rate, "class_shares": self.class_shares}


@dataclass
class LabelReport:
    """One label: classes, rates in the train split and overall, and whether it is constant."""

    name: str
    classes: list[str]
    train: Rates
    overall: Rates

    @property
    def constant(self) -> bool:
        """True when observed cells all hold one class."""
        shares = self.overall.class_shares
        return shares is not None and sum(s > 0 for s in shares) == 1

    def to_json(self) -> dict:
        return {"name": self.name, "classes": self.classes, "train": self.train.to_json(),
                "overall": self.overall.to_json(), "constant": self.constant}


@dataclass
class Report:
    """What `ccvae data check` shows; `fatal` means the data cannot be trained on."""

    name: str
    root: str
    images: int
    splits: dict[str, int]
    preprocess: dict
    labels: list[LabelReport]
    files_checked: bool
    missing_files: int = 0
    missing_examples: list[str] = field(default_factory=list)
    unreadable_files: int = 0
    unreadable_examples: list[str] = field(default_factory=list)   # "name: reason"
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)              # why the data is unusable

    @property
    def constant_labels(self) -> list[str]:
        return [lab.name for lab in self.labels if lab.constant]

    @property
    def unobserved_labels(self) -> list[str]:
        return [lab.name for lab in self.labels if lab.overall.observed == 0]

    @property
    def usable_images(self) -> int:
        return self.images - self.missing_files - self.unreadable_files

    @property
    def fatal(self) -> bool:
        return bool(self.problems)

    def warnings(self) -> list[str]:
        """Problems that do not stop training but deserve a look."""
        out = []
        if self.missing_files:
            out.append(f"{self.missing_files} image files are missing")
        if self.unreadable_files:
            out.append(f"{self.unreadable_files} image files cannot be read")
        if self.constant_labels:
            out.append(f"constant labels: {', '.join(self.constant_labels)}")
        if self.unobserved_labels and len(self.unobserved_labels) < len(self.labels):
            out.append(f"labels never given: {', '.join(self.unobserved_labels)}")
        if self.images and self.splits.get(SPLIT_NAMES[TRAIN], 0) == 0:
            out.append("the train split is empty")
        return out

    def to_json(self) -> dict:
        """A JSON-serialisable dict (no NaN: unknown rates are null)."""
        return {
            "name": self.name, "root": self.root, "images": self.images, "splits": dict(self.splits),
            "preprocess": dict(self.preprocess),
            "labels": [lab.to_json() for lab in self.labels],
            "files": {"checked": self.files_checked, "usable": self.usable_images,
                      "missing": self.missing_files, "missing_examples": list(self.missing_examples),
                      "unreadable": self.unreadable_files,
                      "unreadable_examples": list(self.unreadable_examples)},
            "constant_labels": self.constant_labels, "notes": list(self.notes),
            "warnings": self.warnings(), "problems": list(self.problems), "fatal": self.fatal,
        }

    def render(self) -> None:
        """Print the report on stderr (`ccvae_tools.util.console.err`) as rich tables.

        Label and class names (CSV headers), file names and the data path come from the data: every
        line and cell is made terminal-safe (`safe_text`) and none is read as rich markup.
        """
        from rich.table import Table
        from rich.text import Text

        from ccvae_tools.util.console import err

        def line(text: str) -> None:
            err.print(safe_text(text), markup=False, soft_wrap=True)

        pre = self.preprocess
        crop = pre.get("crop")
        if crop == "center":
            crop = f"centre {pre.get('crop_size')} px" if pre.get("crop_size") else "largest centre square"
        line(f"{self.name} data in {self.root}: {self.images} images "
             f"({', '.join(f'{k} {v}' for k, v in self.splits.items())}); "
             f"{pre.get('channels')} channel(s), {crop}, resized to {pre.get('size')} px")
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        names = [safe_text(lab.name) for lab in self.labels]
        width = max([len("label")] + [len(n) for n in names])
        table.add_column("label", no_wrap=True, min_width=width)
        for col in ("positive (train)", "positive (all)", "missing (train)", "missing (all)"):
            table.add_column(col, justify="right")
        table.add_column("")
        for name, lab in zip(names, self.labels):
            flag = "constant" if lab.constant else ("never given" if lab.overall.observed == 0 else "")
            cells = [_rate_text(lab, lab.train), _rate_text(lab, lab.overall),
                     _pct(lab.train.missing_rate), _pct(lab.overall.missing_rate), flag]
            table.add_row(Text(name), *(Text(safe_text(c)) for c in cells))
        err.print(table)
        if self.files_checked:
            line(f"files: {self.usable_images} readable, {self.missing_files} missing, "
                 f"{self.unreadable_files} unreadable")
            if self.missing_examples:
                line("  missing: " + ", ".join(self.missing_examples))
            if self.unreadable_examples:
                line("  unreadable: " + "; ".join(self.unreadable_examples))
        else:
            line("files: not checked")
        for note in self.notes:
            line(f"note: {note}")
        for w in self.warnings():
            line(f"warning: {w}")
        for p in self.problems:
            line(f"error: {p}")
        if not self.problems:
            line(f"ok: {self.usable_images if self.files_checked else self.images} usable images, "
                 f"{len(self.labels)} labels")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _rate_text(lab: LabelReport, rates: Rates) -> str:
    if rates.class_shares is None:
        return "-"
    if rates.binary:
        return _pct(rates.positive_rate)
    return " ".join(f"{c}:{_pct(s)}" for c, s in zip(lab.classes, rates.class_shares))


def _rates(col: np.ndarray, classes: tuple[str, ...]) -> Rates:
    n, num_classes = int(col.shape[0]), len(classes)
    seen = col[~np.isnan(col)]
    shares = None
    if seen.size:
        counts = np.bincount(seen.astype(np.int64), minlength=num_classes)[:num_classes]
        shares = [float(c) / float(seen.size) for c in counts]
    return Rates(rows=n, observed=int(seen.size), missing_rate=None if n == 0 else 1.0 - seen.size / n,
                 class_shares=shares, binary=tuple(classes) == ("0", "1"))


def check_file(path: Path) -> str | None:
    """None if the image opens and verifies, "missing" if absent, else a short reason."""
    from PIL import Image

    try:
        if not os.path.exists(path):
            return "missing"
        if os.path.isdir(path):
            return "is a folder"
        if os.path.getsize(path) == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.verify()
        return None
    except Image.DecompressionBombError:
        return "image too large (decompression bomb guard)"
    except Exception as e:  # noqa: BLE001 - any failure to open means unreadable
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        text = text.replace(f" {str(path)!r}", "").replace(str(path), "file")
        return text[:120]


def check_image_files(files: list[Path], workers: int | None = None) -> list[str | None]:
    """`check_file` for every file, in parallel threads, with a progress bar on a terminal."""
    from ccvae_tools.util.console import progress

    if not files:
        return []
    workers = workers or min(32, (os.cpu_count() or 1) * 4)
    chunks = [files[i:i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    out: list[str | None] = []
    with progress("Checking images", total=len(files)) as advance, ThreadPoolExecutor(workers) as pool:
        for result in pool.map(lambda chunk: [check_file(f) for f in chunk], chunks):
            out.extend(result)
            advance(len(result))
    return out


def _display_name(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def make_report(catalog: Catalog, check_files: bool = True) -> Report:
    """Count, rate and (optionally) check the files of a catalog."""
    split = np.asarray(catalog.split)
    labels = np.asarray(catalog.labels, dtype=np.float32)
    train_rows = split == TRAIN
    label_reports = [
        LabelReport(name=lab.name, classes=list(lab.classes),
                    train=_rates(labels[train_rows, j], lab.classes),
                    overall=_rates(labels[:, j], lab.classes))
        for j, lab in enumerate(catalog.label_info)]
    report = Report(
        name=catalog.name, root=str(catalog.root), images=len(catalog.files),
        splits={name: int((split == k).sum()) for k, name in enumerate(SPLIT_NAMES)},
        preprocess=catalog.preprocess.to_json(), labels=label_reports, files_checked=check_files,
        notes=list(catalog.notes))

    if check_files:
        results = check_image_files(list(catalog.files))
        root = Path(catalog.root)
        missing = [f for f, r in zip(catalog.files, results) if r == "missing"]
        bad = [(f, r) for f, r in zip(catalog.files, results) if r is not None and r != "missing"]
        report.missing_files = len(missing)
        report.missing_examples = [_display_name(f, root) for f in missing[:EXAMPLES]]
        report.unreadable_files = len(bad)
        report.unreadable_examples = [f"{_display_name(f, root)}: {r}" for f, r in bad[:EXAMPLES]]

    if report.images == 0:
        report.problems.append("no images listed")
    elif report.usable_images == 0:
        report.problems.append("no image can be read")
    if not label_reports:
        report.problems.append("no labels")
    elif all(lab.overall.observed == 0 for lab in label_reports):
        report.problems.append("no label is given for any image")
    return report

