"""The recipe: what `ccvae train` chooses from the data for the options left at "auto".

A few options have no value that suits every data set: which train images keep their labels
under --sup-frac depends on the order of the table (the paper's first share, unless it lacks a
common class), how many labelled images each batch holds on how many images carry labels, the
likelihood p(x|z) on what the pixels look like, and whether the labelled images are shifted on
both (glyphs with few labels are).
Their default is None ("auto"); `choose_recipe` fills each one that neither the user nor the preset
set, from facts of the catalog, and says why in one line, which training prints before it starts
and keeps in RUN/recipe.json. The measurements behind each rule are in docs/experiments.md
("The default recipe").

It reads the catalog (labels, split, a few source images), never the decoded cache, so that
`--dry-run` shows the recipe at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from ccvae_tools.data.base import TRAIN, Catalog
from ccvae_tools.training.batches import labelled_mask

# half of every batch labelled when some train images have no labels (docs/experiments.md, "Few
# labels" and "The supervision sweep": 32 of 64 read avatars and typefaces at 0.4 % and 6 %)
LABELLED_SHARE_OF_BATCH = 0.5
# grayscale images with at least this share of pixels near black or white are glyph-like: the
# Laplace's best guess there is a blank page, the Bernoulli's draws the strokes
NEAR_BINARY_SHARE = 0.9
NEAR = 0.1                       # "near black or white": within 10 % of 0 or 1
# glyph-like images with some train images unlabelled: each labelled one moved by up to this many
# pixels at every step (typefaces at 6 % and 0.4 % labels; faces drawn centred lose from it)
GLYPH_SHIFT = 2
SAMPLE_IMAGES = 64               # source images read to decide
# the first fraction of the train split "lacks" a class when it holds none of it where the split's
# share of that class would put at least this many there (typefaces sorted by family: 0 serif
# letters among the first 529, where 41 % of the split's known ones would put over 130)
EXPECTED_AT_LEAST = 5
# a two-class label whose rarer class has fewer labelled train images than this was mostly read no
# better than its majority baseline (9 of 13 measured, Gray_Hair with 35 at 6 % and Monospace with
# 38 among them), and all 14 with 90 or more above it (docs/experiments.md, "What 38 labels can read")
THIN_CLASS_BELOW = 50


@dataclass(frozen=True)
class Choice:
    """One option the recipe set: its name, the value and why, in words a user reads."""

    option: str
    value: Any
    reason: str

    def line(self) -> str:
        return f"{self.option.replace('_', '-')} {self.value}: {self.reason}"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DataFacts:
    """What the recipe looks at."""

    train_images: int
    labelled_images: int             # train images that keep at least one known label
    channels: int
    near_binary_share: float | None  # of the sampled pixels; None when no image could be read
    first_lacks: str | None = None   # "Serif = 1": a class the first fraction lacks; None: it has them all
    thin_classes: tuple[tuple[str, int], ...] = ()   # ("Gray_Hair = 1", 35): two-class labels' rare, thin classes

    @property
    def labelled_share(self) -> float:
        return self.labelled_images / self.train_images if self.train_images else 0.0


def data_facts(catalog: Catalog, opts) -> DataFacts:
    """The labelled share of the train split after --sup-frac and blank cells (with the selection
    the recipe will take), whether the first fraction lacks a class, and the pixels."""
    train_idx = np.flatnonzero(catalog.split == TRAIN)
    lacks = _first_fraction_lacks(catalog, train_idx, opts)
    kept = _kept(catalog, train_idx, opts, opts.sup_select or ("random" if lacks else "first"))[train_idx]
    known = ~np.isnan(catalog.labels[train_idx]).all(1) if catalog.labels.shape[1] else np.zeros(len(train_idx), bool)
    share = None
    if catalog.preprocess.channels == 1:
        share = _near_binary_share(catalog, train_idx)
    thin = _thin_classes(catalog, train_idx[kept & known])
    return DataFacts(len(train_idx), int((kept & known).sum()), catalog.preprocess.channels, share, lacks, thin)


def _thin_classes(catalog: Catalog, labelled_rows: np.ndarray) -> tuple[tuple[str, int], ...]:
    """("Gray_Hair = 1", 35) for each two-class label whose rarer class has fewer than
    THIN_CLASS_BELOW labelled train images, but some."""
    from ccvae_tools.util.text import safe_text

    thin = []
    for i, lab in enumerate(catalog.label_info):
        if lab.num_classes != 2:
            continue
        col = catalog.labels[labelled_rows, i]
        counts = np.bincount(col[~np.isnan(col)].astype(int), minlength=2)[:2]
        rare = int(counts.argmin())
        if 0 < counts[rare] < THIN_CLASS_BELOW:        # none at all: no rare class (or the data report's matter)
            thin.append((f"{safe_text(lab.name)} = {safe_text(lab.classes[rare])}", int(counts[rare])))
    return tuple(thin)


def thin_class_note(facts: DataFacts, sup_frac: float = 1.0) -> str | None:
    """One line before training on the rare classes with few labelled images; None when there are none."""
    if not facts.thin_classes:
        return None
    listed = ", ".join(f"{name} ({n})" for name, n in facts.thin_classes)
    more = "label more of them" + (" or raise --sup-frac" if sup_frac < 1 else "")
    return (f"few labelled images of {listed}: a class with fewer than {THIN_CLASS_BELOW} was mostly read no "
            f"better than its label's majority baseline in our measurements (docs/experiments.md); {more}")


def _kept(catalog: Catalog, train_idx: np.ndarray, opts, select: str) -> np.ndarray:
    """Which examples keep their labels under --sup-frac with the selection `select` (bool, all)."""
    return labelled_mask(catalog.labels, train_idx,
                         SimpleNamespace(sup_frac=opts.sup_frac, sup_select=select, seed=opts.seed))


def _first_fraction_lacks(catalog: Catalog, train_idx: np.ndarray, opts) -> str | None:
    """The first class ("Serif = 1") that the first --sup-frac of the train split holds none of,
    where the split's share of it would put EXPECTED_AT_LEAST or more there; None otherwise."""
    from ccvae_tools.util.text import safe_text

    first = _kept(catalog, train_idx, opts, "first")
    for i, lab in enumerate(catalog.label_info):
        split_col, first_col = catalog.labels[train_idx, i], catalog.labels[first, i]
        split_col, first_col = split_col[~np.isnan(split_col)], first_col[~np.isnan(first_col)]
        for k in range(lab.num_classes):
            expected = np.mean(split_col == k) * len(first_col) if len(split_col) else 0.0
            if expected >= EXPECTED_AT_LEAST and not np.any(first_col == k):
                return f"{safe_text(lab.name)} = {safe_text(lab.classes[k])}"
    return None


def _near_binary_share(catalog: Catalog, train_idx: np.ndarray) -> float | None:
    """The share of pixels near black or white in up to SAMPLE_IMAGES train images spread over the
    split (unreadable ones are skipped: the data report counts them)."""
    from ccvae_tools.data.images import load_image
    from ccvae_tools.util.errors import DataError

    picks = train_idx[np.linspace(0, len(train_idx) - 1, min(SAMPLE_IMAGES, len(train_idx))).astype(int)]
    near = total = 0
    for i in picks:
        try:
            x = load_image(catalog.files[i], catalog.preprocess).astype(np.float32) / 255.0
        except (DataError, OSError, ValueError):
            continue
        near += int(((x <= NEAR) | (x >= 1 - NEAR)).sum())
        total += x.size
    return near / total if total else None


def choose_recipe(opts, facts: DataFacts) -> list[Choice]:
    """Fill every auto option of `opts` (None) from the facts; returns what was chosen and why."""
    chosen: list[Choice] = []
    if opts.sup_select is None:
        opts.sup_select, reason = _selection(opts.sup_frac, facts)
        chosen.append(Choice("sup_select", opts.sup_select, reason))
    share_text = f"{100 * facts.labelled_share:.3g} % of the train split has labels"
    if opts.labelled_per_batch is None:
        if opts.sup_oversample != 1.0:
            k, reason = 0, "--sup-oversample shows the labelled images more often instead"
        elif 0 < facts.labelled_images < facts.train_images:
            k = max(1, min(int(opts.batch_size * LABELLED_SHARE_OF_BATCH), facts.labelled_images,
                           opts.batch_size - 1))
            reason = (f"labelled images in every batch of {opts.batch_size} ({share_text}: "
                      f"{facts.labelled_images:,} of {facts.train_images:,}; the rest train unlabelled)")
        else:   # every train image labelled (or none: training refuses that later, with its own message)
            k, reason = 0, f"every image once an epoch, the paper's schedule ({share_text})"
        opts.labelled_per_batch = k
        chosen.append(Choice("labelled_per_batch", k, reason))
    if opts.likelihood is None:
        opts.likelihood, reason = _likelihood(facts)
        chosen.append(Choice("likelihood", opts.likelihood, reason))
    if opts.augment_shift is None:
        opts.augment_shift, reason = _shift(facts)
        chosen.append(Choice("augment_shift", opts.augment_shift, reason))
    return chosen


def _selection(sup_frac: float, facts: DataFacts) -> tuple[str, str]:
    pct = f"{100 * sup_frac:.3g} %"
    if facts.first_lacks:
        return "random", (f"a seeded random {pct} of the train split keeps its labels: the first {pct} holds no "
                          f"{facts.first_lacks}, of which the split has plenty (its rows are in some order)")
    if sup_frac < 1:
        return "first", (f"the first {pct} of the train split keeps its labels, as in the paper (no common "
                         f"class is missing from it)")
    return "first", "--sup-frac 1: every train image keeps the labels it has"


def _glyph_like(facts: DataFacts) -> bool:
    return facts.channels == 1 and facts.near_binary_share is not None and facts.near_binary_share >= NEAR_BINARY_SHARE


def _likelihood(facts: DataFacts) -> tuple[str, str]:
    if _glyph_like(facts):
        return "bernoulli", (f"grayscale, {100 * facts.near_binary_share:.0f} % of the pixels near black or white "
                             f"(glyph-like: the Laplace would draw a blank page)")
    what = "colour images" if facts.channels == 3 else "grayscale images with mid-tones"
    return "laplace", f"{what} (the paper's likelihood)"


def _shift(facts: DataFacts) -> tuple[int, str]:
    few = 0 < facts.labelled_images < facts.train_images
    if _glyph_like(facts) and few:
        return GLYPH_SHIFT, (f"each labelled image moved by up to {GLYPH_SHIFT} pixels at every step (glyph-like "
                             f"images, where the strokes sit anywhere in the frame, and a few labelled ones seen "
                             f"again and again)")
    why = "every train image labelled" if not few else "not glyph-like, and faces drawn centred read worse shifted"
    return 0, f"labelled images as they are: {why}"
