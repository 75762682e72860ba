"""Generated avatars: layout, determinism, ground truth, label statistics, and that choices show."""

from __future__ import annotations

import csv
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.data import avatars as A
from ccvae_tools.util.errors import DataError, UsageError


def read_attr(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = (root / A.ATTR_FILE).read_text().splitlines()
    count = int(lines[0])
    names = lines[1].split()
    files, values = [], []
    for line in lines[2:]:
        parts = line.split()
        files.append(parts[0])
        values.append([int(v) for v in parts[1:]])
    assert len(files) == count
    return names, files, np.array(values)


def read_table(root: Path) -> list[dict[str, str]]:
    with open(root / A.TABLE_FILE, newline="") as f:
        return list(csv.DictReader(f))


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# the written set
# ----------------------------------------------------------------------------------------------

def test_layout_and_formats(avatar_celeba_dir: Path):
    root = avatar_celeba_dir
    names, files, values = read_attr(root)
    assert names == list(A.LABEL_NAMES)
    assert files == [f"{i:06d}.png" for i in range(1, 21)]
    assert values.shape == (20, len(names))
    assert set(np.unique(values)) <= {-1, 1}
    # CelebA's row format: file name, then the values each right-aligned in two characters
    row = (root / A.ATTR_FILE).read_text().splitlines()[2]
    assert re.fullmatch(r"000001\.png( (-1| 1))+", row)

    part = [line.split() for line in (root / A.PARTITION_FILE).read_text().splitlines()]
    assert [p[0] for p in part] == files
    assert {int(p[1]) for p in part} <= {0, 1, 2}
    assert sum(int(p[1]) == 1 for p in part) == 2 and sum(int(p[1]) == 2 for p in part) == 2

    for name in files:
        with Image.open(root / A.IMAGE_DIR / name) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (32, 32)

    table = read_table(root)
    assert list(table[0].keys()) == list(A.COLUMNS)
    assert [r["file"] for r in table] == files

    meta = json.loads((root / A.META_FILE).read_text())
    assert meta["seed"] == 0 and meta["n"] == 20 and meta["size"] == 32
    assert meta["generator_version"] == A.GENERATOR_VERSION
    assert "Pablo Stanley" in meta["license"]["creator"]
    assert meta["license"]["name"] == "Free for personal and commercial use"
    assert meta["license"]["url"] == "https://avataaars.com/"
    assert [d["name"] for d in meta["labels"]] == list(A.LABEL_NAMES)
    for d in meta["labels"]:
        assert d["definition"] and d["variant_column"] in A.COLUMNS
    readme = (root / A.README_FILE).read_text()
    assert "Pablo Stanley" in readme and "Free for personal and commercial use" in readme
    assert not list(root.parent.glob(".*partial*"))


def test_celeba_reader_loads_the_set(avatar_celeba_dir: Path):
    celeba = pytest.importorskip("ccvae_tools.data.celeba")
    readers = pytest.importorskip("ccvae_tools.data.readers")
    catalog = celeba.read_celeba(avatar_celeba_dir, readers.ReadOptions())
    names, _, values = read_attr(avatar_celeba_dir)
    assert catalog.label_names == names
    assert np.array_equal(catalog.labels, (values == 1).astype(np.float32))
    assert all(f.is_file() for f in catalog.files)


def test_table_matches_labels(avatar_celeba_dir: Path):
    names, files, values = read_attr(avatar_celeba_dir)
    table = read_table(avatar_celeba_dir)
    for row, vals in zip(table, values):
        got = dict(zip(names, (int(v == 1) for v in vals)))
        assert got == A.labels_from_choices(row)
        assert got["Eyeglasses"] == (row["accessories"] in A.GLASSES)
        assert got["Smiling"] == (row["mouth"] in A.MOUTHS_SMILING)
        assert got["Wearing_Hat"] == (row["top"] in A.HATS)
        assert got["No_Beard"] == (row["facialHair"] == A.NONE)
        assert row["glasses"] == (A.NONE if not got["Eyeglasses"]
                                  else f"{row['accessories']}/{row['accessoriesColor']}")
        assert (row["hatColor"] != A.NONE) == bool(got["Wearing_Hat"])


def test_same_seed_same_bytes_any_workers_other_seed_differs(tmp_path: Path):
    one = A.generate_avatars(tmp_path / "one", n=12, seed=3, size=24, workers=1)
    two = A.generate_avatars(tmp_path / "two", n=12, seed=3, size=24, workers=2)
    other = A.generate_avatars(tmp_path / "other", n=12, seed=4, size=24, workers=1)
    a, b, c = all_files(one), all_files(two), all_files(other)
    assert a == b
    assert a.keys() == c.keys()
    assert a[A.TABLE_FILE] != c[A.TABLE_FILE]
    assert sum(a[k] != c[k] for k in a if k.startswith(A.IMAGE_DIR)) >= 10


def test_refuses_non_empty_folder(tmp_path: Path, avatar_celeba_dir: Path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        A.generate_avatars(busy, n=2, size=16, workers=1)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(DataError, match="new folder"):
        A.generate_avatars(avatar_celeba_dir, n=2, size=16, workers=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert A.generate_avatars(empty, n=2, size=16, workers=1) == empty
    assert (empty / A.ATTR_FILE).exists()


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(UsageError):
        A.generate_avatars(tmp_path / "a", n=0, workers=1)
    with pytest.raises(UsageError):
        A.generate_avatars(tmp_path / "b", n=10, seed=-1, workers=1)
    with pytest.raises(UsageError):
        A.generate_avatars(tmp_path / "c", n=10, valid_frac=0.6, test_frac=0.6, workers=1)
    assert not list(tmp_path.iterdir())


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch):
    calls = {"n": 0}
    real = A.render_png

    def flaky(c, size=64):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(c, size)

    monkeypatch.setattr(A, "render_png", flaky)
    with pytest.raises(KeyboardInterrupt):
        A.generate_avatars(tmp_path / "out", n=8, size=16, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_split_is_exact_and_seeded():
    s = A.split_assignment(1000, 0, 0.1, 0.15)
    assert (s == 1).sum() == 100 and (s == 2).sum() == 150 and (s == 0).sum() == 750
    assert np.array_equal(s, A.split_assignment(1000, 0, 0.1, 0.15))
    assert not np.array_equal(s, A.split_assignment(1000, 1, 0.1, 0.15))


def test_cli_writes_set_and_prints_folder(tmp_path: Path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "ccvae_tools", "data", "avatars", str(out), "--n", "10",
                        "--size", "32"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    assert read_attr(out)[2].shape == (10, len(A.LABEL_NAMES))
    r = subprocess.run([sys.executable, "-m", "ccvae_tools", "data", "avatars", str(out), "--n", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "not empty" in r.stderr


# ----------------------------------------------------------------------------------------------
# drawing statistics (choices only, no rendering)
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def draws() -> list[dict[str, str]]:
    return A.draw_all(2000, seed=7)


def label_matrix(rows):
    return np.array([[A.labels_from_choices(r)[k] for k in A.LABEL_NAMES] for r in rows])


def test_positive_rates_in_bands(draws):
    rates = label_matrix(draws).mean(0)
    for d, rate in zip(A.LABELS, rates):
        assert abs(rate - d.rate) < 0.045, (d.name, rate, d.rate)
        assert 0.05 <= rate <= 0.7, (d.name, rate)
    by = dict(zip(A.LABEL_NAMES, rates))
    for name in ("Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat", "Bald", "No_Beard",
                 "Pale_Skin"):
        assert 0.17 <= by[name] <= 0.66, (name, by[name])


def test_within_label_variants(draws):
    rows = draws[:500]
    L = label_matrix(rows)
    for j, d in enumerate(A.LABELS):
        # the class that is "something drawn" (for No_Beard: a beard, label 0)
        cls = 0 if d.name == "No_Beard" else 1
        values = {r[d.variant_column] for r, v in zip(rows, L[:, j]) if v == cls}
        assert len(values) >= 2, (d.name, values)
    glasses = {r["accessories"] for r in rows} - {A.NONE}
    assert glasses == set(A.GLASSES)
    assert len({r["accessoriesColor"] for r in rows} - {A.NONE}) >= 8
    assert {r["mouth"] for r in rows} == set(A.MOUTHS_SMILING + A.MOUTH_PLAIN_OPEN + A.MOUTH_PLAIN_CLOSED)


def test_correlations_are_never_deterministic(draws):
    L = label_matrix(draws)
    idx = {n: i for i, n in enumerate(A.LABEL_NAMES)}
    for a, b in itertools.combinations(A.LABEL_NAMES, 2):
        exclusive = ({a, b} <= {"Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Wearing_Hat"}
                     or {a, b} <= {"Wearing_Hat", "Bald"})
        if exclusive:  # one head: a hat, a bald head or one hair colour
            continue
        cells = {(x, y) for x, y in zip(L[:, idx[a]], L[:, idx[b]])}
        assert len(cells) == 4, (a, b, cells)
    # the intended mild correlations
    smile, open_ = L[:, idx["Smiling"]], L[:, idx["Mouth_Slightly_Open"]]
    assert open_[smile == 1].mean() > open_[smile == 0].mean() + 0.2
    beard = 1 - L[:, idx["No_Beard"]]
    bald = L[:, idx["Bald"]]
    assert beard[bald == 1].mean() > beard[bald == 0].mean() + 0.1


def test_palettes_always_leave_a_contrasting_colour():
    skins = A.PALE_SKINS + A.OTHER_SKINS
    hairs = [s for shades in A.HAIR_FAMILIES.values() for s in shades] + [A.NONE]
    for skin, hair in itertools.product(skins, hairs):
        avoid = [(skin, A.MIN_DIST_STRONG)] + ([(hair, A.MIN_DIST_STRONG)] if hair != A.NONE else [])
        assert sum(all(A._dist(c, o) >= d for o, d in avoid) for c in A.BACKGROUNDS) >= 2, (skin, hair)
    for skin, bg in itertools.product(skins, A.BACKGROUNDS):
        assert sum(A._dist(c, bg) >= 60 and A._dist(c, skin) >= 60 for c in A.HAT_COLORS) >= 3
        assert sum(A._dist(c, bg) >= 60 and A._dist(c, skin) >= 40 for c in A.CLOTHES_COLORS) >= 3
    for skin in skins:
        assert sum(A._dist(c, skin) >= A.MIN_DIST_FRAME for c in A.FRAME_COLORS) >= 8
        assert sum(A._dist(c, skin) >= A.MIN_DIST_STRONG for c in A.BEARD_COLORS) >= 3
        for family in A.HAIR_FAMILY_LABEL:   # labelled families keep a shade that stands out
            shades = A.HAIR_FAMILIES[family]
            assert any(A._dist(s, skin) >= A.MIN_DIST_WEAK for s in shades), (family, skin)


# ----------------------------------------------------------------------------------------------
# every choice shows in the picture, and only the recorded choices matter
# ----------------------------------------------------------------------------------------------

BASE = {
    "mouth": "serious", "accessories": A.NONE, "accessoriesColor": A.NONE, "glasses": A.NONE,
    "top": "shortFlat", "hairColor": "#2c1b18", "hat": A.NONE, "hatColor": A.NONE,
    "facialHair": A.NONE, "facialHairColor": A.NONE, "beard": A.NONE, "skinColor": "#edb98a",
    "eyes": "default", "eyebrows": "default", "clothes": "shirtCrewNeck", "clothesColor": "#25557c",
    "clothesGraphic": A.NONE, "backgroundColor": "#b6e3f4",
}


def changed_pixels(a: dict, b: dict, size: int = 32) -> int:
    x = A.render_rgb(a, size).astype(int)
    y = A.render_rgb(b, size).astype(int)
    return int((np.abs(x - y).sum(-1) > 24).sum())


@pytest.mark.parametrize("label, change", [
    ("Eyeglasses", {"accessories": "round", "accessoriesColor": "#262e33"}),
    ("Eyeglasses", {"accessories": "sunglasses", "accessoriesColor": "#ff5c5c"}),
    ("Wearing_Hat", {"top": "hat", "hairColor": A.NONE, "hatColor": "#ff5c5c"}),
    ("Wearing_Hat", {"top": "winterHat02", "hairColor": A.NONE, "hatColor": "#65c9ff"}),
    ("Smiling", {"mouth": "smile"}),
    ("Smiling", {"mouth": "twinkle"}),
    ("Bald", {"top": A.NONE, "hairColor": A.NONE}),
    ("Bald", {"top": "sides"}),
    ("Blond_Hair", {"hairColor": "#d6b370"}),
    ("No_Beard", {"facialHair": "beardMedium", "facialHairColor": "#724133"}),
    ("Pale_Skin", {"skinColor": "#ffdbb4"}),
])
def test_flipping_one_label_changes_pixels(label, change):
    flipped = dict(BASE, **change)
    assert A.labels_from_choices(flipped)[label] != A.labels_from_choices(BASE)[label]
    assert changed_pixels(BASE, flipped) >= 3


def test_within_label_variants_look_different():
    for a, b in itertools.combinations(A.GLASSES, 2):
        x = dict(BASE, accessories=a, accessoriesColor="#262e33")
        y = dict(BASE, accessories=b, accessoriesColor="#262e33")
        assert changed_pixels(x, y) > 10, (a, b)
    for a, b in itertools.combinations(A.MOUTHS_SMILING, 2):
        assert changed_pixels(dict(BASE, mouth=a), dict(BASE, mouth=b), size=64) > 10, (a, b)
    for a, b in itertools.combinations(A.HATS, 2):
        x = dict(BASE, top=a, hairColor=A.NONE, hatColor="#ff5c5c")
        y = dict(BASE, top=b, hairColor=A.NONE, hatColor="#ff5c5c")
        assert changed_pixels(x, y) > 10, (a, b)


def test_hair_colour_hidden_by_hats_and_shown_by_hair():
    for top in A.HATS:
        x = dict(BASE, top=top, hatColor="#ff5c5c")
        assert changed_pixels(dict(x, hairColor="#d6b370"), dict(x, hairColor="#2c1b18")) == 0, top
    for top in A.HAIR_TOPS:
        x = dict(BASE, top=top)
        assert changed_pixels(dict(x, hairColor="#d6b370"), dict(x, hairColor="#2c1b18")) > 10, top


def test_dicebear_seed_decides_nothing():
    A.load_style()
    for i in range(5):
        c = A.draw_choices(A.image_rng(1, i))
        opts = A.dicebear_options(c, 32)
        svg1 = A._svg_public(opts)
        svg2 = A._svg_public(dict(opts, seed="something else"))
        strip = re.compile(r"-[0-9a-f]{8}\b")   # element ids are hashed from the seed
        assert strip.sub("", svg1) == strip.sub("", svg2)
        assert A._svg_fast(opts) == svg1
