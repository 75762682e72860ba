"""`ccvae data fonts`: labels read from the fonts' own tables (DejaVu, on the machine image), a corrupt
font, a missing glyph, a duplicate file, family-disjoint splits, and the set read back for training."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fontTools")

from ccvae_tools.data import fonts as F  # noqa: E402
from ccvae_tools.data.readers import open_catalog  # noqa: E402
from ccvae_tools.util.errors import UsageError  # noqa: E402
from helpers.cli import run_cli  # noqa: E402

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


@pytest.fixture(scope="module")
def dejavu() -> Path:
    if not (DEJAVU / "DejaVuSans.ttf").is_file():
        pytest.skip("the DejaVu fonts are not installed (apt-get install fonts-dejavu-core fonts-dejavu-extra)")
    return DEJAVU


def _labels(path: Path) -> dict[str, float]:
    faces, _ = F.read_faces(path)
    return faces[0].labels()


def test_labels_come_from_the_font_tables(dejavu):
    sans, bold, oblique = (_labels(dejavu / f) for f in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf",
                                                          "DejaVuSans-Oblique.ttf"))
    assert sans == {"Bold": 0.0, "Italic": 0.0, "Monospace": 0.0, "Condensed": 0.0, "Serif": 0.0}
    assert bold["Bold"] == 1.0 and bold["Italic"] == 0.0
    assert oblique["Italic"] == 1.0 and oblique["Bold"] == 0.0
    assert _labels(dejavu / "DejaVuSansMono.ttf")["Monospace"] == 1.0
    condensed = _labels(dejavu / "DejaVuSansCondensed-BoldOblique.ttf")
    assert condensed["Condensed"] == 1.0 and condensed["Bold"] == 1.0 and condensed["Italic"] == 1.0
    assert _labels(dejavu / "DejaVuSerif-Italic.ttf")["Serif"] == 1.0
    light = F.read_faces(dejavu / "DejaVuSans-ExtraLight.ttf")[0][0]
    assert light.weight_class == 200 and light.family == "DejaVu Sans"      # the typographic family


def test_serif_rule_panose_then_family_name():
    assert F.serif_of(2, 2, "X") == 1.0 and F.serif_of(2, 11, "X Serif") == 0.0    # PANOSE wins
    assert F.serif_of(0, 0, "Foo Sans Mono") == 0.0 and F.serif_of(2, 0, "Foo Serif") == 1.0
    assert math.isnan(F.serif_of(0, 0, "Foo"))


@pytest.fixture(scope="module")
def font_set(dejavu, tmp_path_factory) -> Path:
    """The DejaVu folder plus a corrupt font and a duplicate of one file, rendered with a glyph
    DejaVu lacks (U+6F22)."""
    extra = tmp_path_factory.mktemp("extra")
    (extra / "broken.ttf").write_bytes(b"\x00\x01\x00\x00 not a font at all" * 10)
    shutil.copy(dejavu / "DejaVuSans.ttf", extra / "copy-of-sans.ttf")
    out = tmp_path_factory.mktemp("fonts") / "set"
    F.generate_fonts(out, [dejavu, extra], chars="ag\u6f22", size=24, seed=0, say=lambda msg: None)
    return out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_corrupt_font_reported_duplicate_kept_once_missing_glyph_skipped(font_set):
    record = json.loads((font_set / "fonts.json").read_text())
    assert any("broken.ttf" in s and "not a readable font" in s for s in record["skipped"])
    assert sum(": DejaVuSans already found" in s for s in record["skipped"]) == 1       # the copy, or the original
    names = [f["postscript_name"] for fam in record["families"].values() for f in fam["faces"]]
    assert names.count("DejaVuSans") == 1
    rows = _rows(font_set / "fonts.csv")
    assert {r["char"] for r in rows} == {"a", "g"}                           # U+6F22 is not in DejaVu
    faces = sum(len(f["faces"]) for f in record["families"].values())
    assert len(rows) == 2 * faces and len({r["image"] for r in rows}) == len(rows)


def test_splits_are_by_family_and_truth_is_recorded(font_set):
    truth = {r["image"]: r for r in _rows(font_set / "truth" / "characteristics.csv")}
    split_of: dict[str, set[str]] = {}
    for row in _rows(font_set / "fonts.csv"):
        split_of.setdefault(truth[row["image"]]["family"], set()).add(row["split"])
        t = truth[row["image"]]
        assert row["Bold"] == str(int(int(t["weight_class"]) >= 600))
        assert row["Condensed"] == str(int(int(t["width_class"]) <= 4))
    assert all(len(s) == 1 for s in split_of.values())                      # no family in two splits
    assert {s for v in split_of.values() for s in v} == {"train", "valid", "test"}


def test_the_set_reads_back_as_a_grayscale_labelled_folder(font_set):
    catalog = open_catalog(font_set, size=24)
    assert catalog.preprocess.channels == 1
    assert catalog.label_names == ["Bold", "Italic", "Monospace", "Condensed", "Serif", "char"]
    char = catalog.label_info[-1]
    assert list(char.classes) == ["a", "g"]
    assert all(Path(f).is_file() for f in catalog.files)


def test_bad_options_are_one_line_usage_errors(tmp_path, capsys):
    with pytest.raises(UsageError, match="at most 20"):
        F.check_chars("abcdefghijklmnopqrstuvwxyz")
    with pytest.raises(UsageError, match="digits and other"):
        F.check_chars("ab1")
    with pytest.raises(UsageError, match="cannot use"):
        F.check_chars("a?b")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _, err = run_cli(["data", "fonts", tmp_path / "full", "--fonts", tmp_path], capsys)
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["data", "fonts", tmp_path / "new", "--fonts", tmp_path / "nowhere"], capsys)
    assert code == 2 and "no such file or folder" in err


def test_font_strings_cannot_escape_the_folder_or_the_terminal():
    assert F.slug("../../etc/passwd") == "etc_passwd" and "/" not in F.slug("a/b\\c")
    assert F.clean_text("Evil\x1b]0;title\x07Font\n") == "Evil]0;titleFont"
