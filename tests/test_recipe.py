"""The recipe (training/recipe.py): what `ccvae train` chooses from the data for the options left at
auto, why it says so, and that what the user or `--preset paper` sets is kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.training.recipe import DataFacts, choose_recipe
from ccvae_tools.training.options import resolve_options
from helpers.cli import run_cli


def _dry_run(data: Path, tmp: Path, capsys, *flags: str) -> tuple[dict, list[dict], str]:
    """`ccvae train DATA --dry-run FLAGS`: the options and the recipe it wrote, and its stderr."""
    out = tmp / "runs"
    code, _, err = run_cli(["train", data, "--dry-run", "--image-size", "32", "--out", out,
                            "--cache-dir", tmp / "cache", *flags], capsys)
    assert code == 0, err
    run = sorted(out.iterdir())[-1]
    return json.loads((run / "options.json").read_text()), json.loads((run / "recipe.json").read_text()), err


def _glyph_csv(root: Path, n: int = 40, blank_from: int | None = None) -> Path:
    """A folder + CSV set of n 32 px grayscale images: black bars on white (glyph-like); the label
    cells of rows from `blank_from` on are left blank (no label)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file,bold,italic"]
    for i in range(n):
        img = np.full((32, 32), 255, np.uint8)
        img[8:24, 10: 12 + 2 * (i % 4)] = 0
        Image.fromarray(img, "L").save(root / f"g{i}.png")
        cells = ",," if blank_from is not None and i >= blank_from else f",{i % 2},{(i // 2) % 2}"
        rows.append(f"g{i}.png{cells}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_blank_label_cells_get_labelled_images_in_every_batch_and_glyphs_the_bernoulli(tmp_path, capsys):
    csv = _glyph_csv(tmp_path / "glyphs", n=200, blank_from=50)     # a quarter of the rows labelled
    options, recipe, err = _dry_run(csv, tmp_path, capsys)
    chosen = {c["option"]: c for c in recipe}
    assert options["labelled_per_batch"] == 32 == chosen["labelled_per_batch"]["value"]
    assert "of the train split has labels" in chosen["labelled_per_batch"]["reason"]
    assert options["likelihood"] == "bernoulli" == chosen["likelihood"]["value"]
    assert options["augment_shift"] == 2 == chosen["augment_shift"]["value"]       # glyphs with few labels
    assert "recipe: labelled-per-batch 32" in err and "recipe: likelihood bernoulli" in err
    assert "recipe: augment-shift 2: each labelled image moved" in err


def test_every_row_labelled_keeps_the_paper_schedule(tmp_path, capsys):
    csv = _glyph_csv(tmp_path / "glyphs", n=40)
    options, recipe, _ = _dry_run(csv, tmp_path, capsys)
    assert options["labelled_per_batch"] == 0 and options["augment_shift"] == 0
    reasons = {c["option"]: c["reason"] for c in recipe}
    assert "100 % of the train split has labels" in reasons["labelled_per_batch"]
    assert options["sup_select"] == "first" and reasons["sup_select"] == "--sup-frac 1: every train image keeps the labels it has"


def test_sup_frac_below_one_gets_labelled_images_in_every_batch(avatar_dir_200, tmp_path, capsys):
    options, recipe, _ = _dry_run(avatar_dir_200, tmp_path, capsys, "--sup-frac", "0.1")
    k = {c["option"]: c["value"] for c in recipe}
    assert options["labelled_per_batch"] == 16 == k["labelled_per_batch"]   # 16 labelled of 160 train images
    assert options["likelihood"] == "laplace" == k["likelihood"]           # colour: the paper's
    assert options["augment_shift"] == 0 == k["augment_shift"]             # faces drawn centred: not shifted


def test_what_the_user_gives_is_kept_and_not_listed(avatar_dir_200, tmp_path, capsys):
    options, recipe, _ = _dry_run(avatar_dir_200, tmp_path, capsys, "--sup-frac", "0.5", "--labelled-per-batch", "8",
                               "--likelihood", "bernoulli", "--augment-shift", "1", "--sup-select", "random")
    assert options["labelled_per_batch"] == 8 and options["likelihood"] == "bernoulli"
    assert options["augment_shift"] == 1 and options["sup_select"] == "random"
    assert recipe == []


def test_preset_paper_trains_the_papers_schedule_exactly(avatar_dir_200, tmp_path, capsys):
    options, recipe, _ = _dry_run(avatar_dir_200, tmp_path, capsys, "--preset", "paper", "--sup-frac", "0.06",
                               "--format", "celeba")
    assert recipe == []
    assert options["labelled_per_batch"] == 0 and options["augment_shift"] == 0
    assert options["likelihood"] == "laplace" and options["classifier_weight"] == 0.0
    assert options["batch_size"] == 200 and options["lr"] == 1e-4


def test_sup_oversample_given_means_no_labelled_images_per_batch():
    opts = resolve_options({"sup_oversample": 3.0})
    chosen = choose_recipe(opts, DataFacts(train_images=100, labelled_images=10, channels=3, near_binary_share=None))
    reasons = {c.option: c.reason for c in chosen}
    assert opts.labelled_per_batch == 0 and "--sup-oversample" in reasons["labelled_per_batch"]


def test_few_labelled_images_cap_the_labelled_share_of_a_batch():
    opts = resolve_options({})
    choose_recipe(opts, DataFacts(train_images=9_600, labelled_images=5, channels=3, near_binary_share=None))
    assert opts.labelled_per_batch == 5            # never more than there are labelled images


def test_grayscale_with_mid_tones_keeps_the_laplace():
    opts = resolve_options({})
    chosen = choose_recipe(opts, DataFacts(train_images=100, labelled_images=100, channels=1, near_binary_share=0.4))
    reasons = {c.option: c.reason for c in chosen}
    assert opts.likelihood == "laplace" and "mid-tones" in reasons["likelihood"]
    assert opts.augment_shift == 0                 # not glyph-like, and every image labelled


def _sorted_csv(root: Path, n: int = 200) -> Path:
    """A folder + CSV set whose rows are sorted by one label, as a table sorted by family is: the
    first 50 rows are all 'serif' = 0, the rest alternate."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file,serif,bold"]
    for i in range(n):
        img = np.full((32, 32, 3), (i * 37) % 256, np.uint8)
        Image.fromarray(img).save(root / f"r{i}.png")
        rows.append(f"r{i}.png,{0 if i < 50 else i % 2},{i % 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_a_first_fraction_lacking_a_class_gets_a_random_share(tmp_path, capsys):
    csv = _sorted_csv(tmp_path / "sorted")
    options, recipe, err = _dry_run(csv, tmp_path, capsys, "--sup-frac", "0.2")   # the first 32 train rows
    chosen = {c["option"]: c for c in recipe}
    assert options["sup_select"] == "random" == chosen["sup_select"]["value"]
    assert "holds no serif = 1" in chosen["sup_select"]["reason"] and "recipe: sup-select random" in err
    # the same table with labels for every row, or under the paper's preset, keeps the first share
    assert _dry_run(csv, tmp_path / "all", capsys)[0]["sup_select"] == "first"
    assert _dry_run(csv, tmp_path / "paper", capsys, "--sup-frac", "0.2", "--preset", "paper",
                    "--format", "folder")[0]["sup_select"] == "first"


def test_a_first_fraction_with_every_class_stays_the_papers():
    from ccvae_tools.training.recipe import _first_fraction_lacks
    from ccvae_tools.data.base import Label
    from types import SimpleNamespace

    labels = np.array([[k % 2] for k in range(100)] + [[np.nan]] * 20, dtype=np.float32)
    catalog = SimpleNamespace(labels=labels, label_info=[Label("a")])
    train = np.arange(120)
    assert _first_fraction_lacks(catalog, train, SimpleNamespace(sup_frac=0.25, seed=0)) is None
    labels[:40] = 0                                   # the first 30 rows: no class 1 where 9 were expected
    assert _first_fraction_lacks(catalog, train, SimpleNamespace(sup_frac=0.25, seed=0)) == "a = 1"
    # a class too rare to be expected 5 times in the first share is no sign of an order
    assert _first_fraction_lacks(catalog, train, SimpleNamespace(sup_frac=0.1, seed=0)) is None


def test_rare_classes_with_few_labelled_images_are_named_before_training(tmp_path, capsys):
    csv = _glyph_csv(tmp_path / "glyphs", n=200, blank_from=50)     # 50 labelled rows: 25 of each class
    _, recipe, err = _dry_run(csv, tmp_path, capsys)
    err = " ".join(err.split())                                     # the console wraps long lines
    assert re.search(r"warning: few labelled images of bold = \d \(\d+\), italic = \d \(\d+\)", err), err
    assert err.endswith("label more of them")                     # blank cells: no --sup-frac to raise
    assert all(c["option"] != "thin_classes" for c in recipe)                     # a note, not a choice


def test_thin_classes_count_the_rarer_class_of_the_labelled_rows_only():
    from types import SimpleNamespace

    from ccvae_tools.data.base import Label
    from ccvae_tools.training.recipe import THIN_CLASS_BELOW, _thin_classes, thin_class_note

    labels = np.array([[k % 10 == 0, 1] for k in range(600)], dtype=np.float32)   # a: 60 of class 1
    labels[300:, 0] = np.nan                                                       # half of a unknown
    catalog = SimpleNamespace(labels=labels, label_info=[Label("a"), Label("b")])
    thin = _thin_classes(catalog, np.arange(600))
    assert thin == (("a = 1", 30),)          # b holds one class only: no rare class to name
    facts = DataFacts(600, 600, 3, None, None, thin)
    assert f"fewer than {THIN_CLASS_BELOW}" in thin_class_note(facts, 0.5) and "--sup-frac" in thin_class_note(facts, 0.5)
    assert thin_class_note(DataFacts(600, 600, 3, None), 0.5) is None
