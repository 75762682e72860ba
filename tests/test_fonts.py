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


def _face(**kw) -> "F.Face":
    base = dict(path=Path("x.ttf"), index=0, family="Foo", style="Regular", postscript="Foo-Regular",
                weight_class=400, width_class=5, italic_angle=0.0, fs_selection=0, fixed_pitch=False,
                panose_family=2, panose_serif=0, panose_proportion=0, licence="")
    base.update(kw)
    return F.Face(**base)


def test_label_rules_where_the_flags_are_not_set():
    assert _face(panose_proportion=9).labels()["Monospace"] == 1.0          # FreeMono: PANOSE, not post
    assert _face(panose_family=0, panose_proportion=9).labels()["Monospace"] == 0.0
    assert _face(family="Roboto Condensed").labels()["Condensed"] == 1.0    # width class left at 5
    assert _face(style="SemiCondensed Bold").labels()["Condensed"] == 1.0
    assert _face(family="Liberation Sans Narrow").labels()["Condensed"] == 1.0
    assert _face(family="Second Foo").labels()["Condensed"] == 0.0
    assert F.serif_of(0, 0, "Nimbus Roman") == 1.0


def test_symbol_fonts_do_not_count_as_drawing_letters():
    assert F._own_glyph("a", 0x61) and F._own_glyph("a.sc", 0x61) and F._own_glyph("uni0061", 0x61)
    assert F._own_glyph("glyph12", 0x61) and F._own_glyph("cid00042", 0x61)      # no glyph names at all
    assert not F._own_glyph("alpha", 0x61) and not F._own_glyph("a60", 0x61)      # Symbol, Dingbats


def test_family_split_brings_both_classes_into_the_held_out_splits():
    faces = []
    for fam in range(12):
        for face in range(4 if fam else 40):                 # one family ten times the others' size
            faces.append((f"fam{fam}", {"Italic": float(face % 2), "Condensed": float(fam % 3 == 0),
                                        "Serif": float("nan")}))
    for seed in range(5):
        split = F.family_splits(faces, seed, valid_frac=0.15, test_frac=0.15)
        for which in (1, 2):
            held = [labels for fam, labels in faces if split[fam] == which]
            assert {lab["Italic"] for lab in held} == {0.0, 1.0}
            assert {lab["Condensed"] for lab in held} == {0.0, 1.0}
            assert len(held) <= 0.15 * len(faces) * 1.25
        assert split["fam0"] == 0                            # too big for a held-out split


def test_the_characteristics_reach_eval_by_label(font_set):
    from ccvae_tools.evaluation.truth import load_continuous_truth

    files = [r["image"] for r in _rows(font_set / "fonts.csv")]
    truth = load_continuous_truth([font_set], files, ["Bold", "Italic", "Monospace", "Condensed", "Serif", "char"])
    assert truth.columns == {"Bold": "weight_class", "Italic": "italic_angle", "Condensed": "width_class"}
    weights = dict(zip(files, truth.values["weight_class"]))
    rows = {r["image"]: r for r in _rows(font_set / "truth" / "characteristics.csv")}
    assert all(weights[f] == float(rows[f]["weight_class"]) for f in files)
    assert load_continuous_truth([font_set / "images"], files, ["Bold"]) is None
