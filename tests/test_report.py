"""The data report, and `ccvae data check` end to end (in a subprocess)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.data.base import TEST, TRAIN, VALID, Catalog, Label, Preprocess
from ccvae_tools.data.readers import open_catalog
from ccvae_tools.data.report import check_file, make_report

NAN = math.nan


def _img(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


def _catalog(tmp_path: Path, files: list[Path], labels: list[list[float]], split: list[int],
             label_info: list[Label] | None = None, notes: list[str] | None = None) -> Catalog:
    arr = np.asarray(labels, dtype=np.float32).reshape(len(files), -1)
    info = label_info or [Label(f"l{j}") for j in range(arr.shape[1])]
    return Catalog(name="folder", root=tmp_path, files=files, labels=arr, label_info=info,
                   split=np.asarray(split, dtype=np.int8), preprocess=Preprocess(), notes=notes or [])


def _csv_set(tmp_path: Path) -> Path:
    """A folder + CSV set: 10 images, split column, one binary, one multi-class, one constant label."""
    rows = []
    for i in range(10):
        _img(tmp_path / f"im{i}.png")
        split = "train" if i < 6 else ("valid" if i < 8 else "test")
        smiling = "" if i == 0 else ("1" if i % 3 == 0 else "0")
        rows.append(f"im{i}.png,{split},{smiling},{['red', 'blue'][i % 2]},yes")
    path = tmp_path / "labels.csv"
    path.write_text("image,split,smiling,colour,happy\n" + "\n".join(rows) + "\n")
    return path


def test_report_counts_and_rates(tmp_path):
    rep = make_report(open_catalog(_csv_set(tmp_path)))
    assert rep.images == 10 and rep.splits == {"train": 6, "valid": 2, "test": 2}
    smiling, colour, happy = rep.labels
    # smiling: train rows 0..5 -> missing, 0, 0, 1, 0, 0 ; all rows: 1 missing, 3 of 9 positive (3, 6, 9)
    assert smiling.train.observed == 5 and smiling.train.missing_rate == pytest.approx(1 / 6)
    assert smiling.train.positive_rate == pytest.approx(1 / 5)
    assert smiling.overall.positive_rate == pytest.approx(3 / 9)
    assert smiling.overall.missing_rate == pytest.approx(0.1)
    assert colour.classes == ["blue", "red"] and colour.overall.class_shares == [0.5, 0.5]
    assert colour.overall.positive_rate is None and colour.train.class_shares == [0.5, 0.5]
    assert happy.constant and rep.constant_labels == ["happy"]
    assert rep.missing_files == 0 and rep.unreadable_files == 0 and not rep.fatal
    assert any("constant" in w for w in rep.warnings())


def test_report_json_is_strict_json(tmp_path):
    files = [_img(tmp_path / "a.png"), _img(tmp_path / "b.png")]
    cat = _catalog(tmp_path, files, [[1, NAN], [0, NAN]], [TEST, TEST], notes=["hello"])
    rep = make_report(cat)
    data = json.loads(json.dumps(rep.to_json(), allow_nan=False))
    assert data["splits"] == {"train": 0, "valid": 0, "test": 2}
    l0, l1 = data["labels"]
    assert l0["train"]["missing_rate"] is None and l0["train"]["positive_rate"] is None
    assert l0["overall"]["positive_rate"] == 0.5
    assert l1["overall"]["observed"] == 0 and l1["overall"]["missing_rate"] == 1.0
    assert data["notes"] == ["hello"] and not data["fatal"]
    assert "the train split is empty" in data["warnings"]
    assert any("l1" in w for w in data["warnings"])


def test_report_missing_and_unreadable_files(tmp_path):
    good = [_img(tmp_path / f"g{i}.png") for i in range(3)]
    missing = [tmp_path / f"gone{i}.png" for i in range(7)]
    text = tmp_path / "fake.jpg"
    text.write_text("this is not a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "dir.png"
    folder.mkdir()
    files = good + missing + [text, empty, folder]
    cat = _catalog(tmp_path, files, [[1]] * len(files), [TRAIN] * len(files))
    rep = make_report(cat)
    assert rep.missing_files == 7 and rep.missing_examples == [f"gone{i}.png" for i in range(5)]
    assert rep.unreadable_files == 3 and rep.usable_images == 3
    assert rep.unreadable_examples[0] == "fake.jpg: cannot identify image file"
    assert rep.unreadable_examples[1] == "empty.png: empty file"
    assert rep.unreadable_examples[2] == "dir.png: is a folder"
    assert not rep.fatal
    unchecked = make_report(cat, check_files=False)
    assert unchecked.missing_files == 0 and not unchecked.files_checked


def test_check_file_truncated_png(tmp_path):
    good = _img(tmp_path / "ok.png", (32, 32))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:40])
    assert check_file(good) is None
    assert check_file(cut) not in (None, "missing")


def test_check_file_decompression_bomb_header(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    assert "too large" in check_file(bomb)


def test_report_fatal_cases(tmp_path):
    files = [tmp_path / "x.png", tmp_path / "y.png"]
    rep = make_report(_catalog(tmp_path, files, [[1], [0]], [TRAIN, VALID]))
    assert rep.fatal and rep.problems == ["no image can be read"]
    files = [_img(tmp_path / "a.png")]
    rep = make_report(_catalog(tmp_path, files, [[NAN, NAN]], [TRAIN]))
    assert rep.fatal and rep.problems == ["no label is given for any image"]


def test_render_goes_to_stderr(tmp_path, capsys):
    rep = make_report(open_catalog(_csv_set(tmp_path)))
    rep.render()
    out, err = capsys.readouterr()
    assert out == ""
    assert "smiling" in err and "constant" in err and "train 6" in err and "blue:" in err


# ----------------------------------------------------------------------------------------------
# ccvae data check, end to end
# ----------------------------------------------------------------------------------------------

def _ccvae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ccvae_tools", "data", "check", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "CCVAE_DEBUG": "", "COLUMNS": "120"})


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("ccvae: error: ")
    return lines[0]


def test_cli_check_json_and_text(tmp_path):
    csv = _csv_set(tmp_path)
    proc = _ccvae(str(csv), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["images"] == 10 and [lab["name"] for lab in data["labels"]] == ["smiling", "colour", "happy"]
    assert data["fatal"] is False and data["files"]["usable"] == 10
    proc = _ccvae(str(csv), "--labels", "Smiling")
    assert proc.returncode == 0 and proc.stdout == "" and "smiling" in proc.stderr


def test_cli_check_celeba_folder(tmp_path):
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    for f in ("000001.jpg", "000002.jpg"):
        _img(root / "img_align_celeba" / f)
    (root / "list_attr_celeba.txt").write_text("2\nSmiling Male\n000001.jpg 1 -1\n000002.jpg -1 1\n")
    proc = _ccvae(str(tmp_path / "celeba"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "celeba"


@pytest.mark.parametrize("case,code,needle", [
    ("unknown_label", 2, "unknown label 'smilng'"),
    ("missing_path", 1, "no such file or folder"),
    ("bad_format", 2, "unknown format"),
    ("mixed", 1, "mixes label encodings"),
    ("no_image_column", 1, "no image column"),
    ("duplicates", 1, "listed on lines 2 and 3"),
    ("zero_labelled", 1, "no labelled rows"),
])
def test_cli_check_errors_are_one_line(tmp_path, case, code, needle):
    csv = _csv_set(tmp_path)
    bad = tmp_path / "bad.csv"
    args = {"unknown_label": [str(csv), "--labels", "smilng"],
            "missing_path": [str(tmp_path / "nowhere")],
            "bad_format": [str(csv), "--format", "imagenet"]}.get(case, [str(bad)])
    bad.write_text({"mixed": "image,smiling\na.png,yes\nb.png,0\n",
                    "no_image_column": "name,smiling\nann,1\n",
                    "duplicates": "image,smiling\na.png,1\na.png,0\n",
                    "zero_labelled": "image,smiling\na.png,\nb.png,NA\n"}.get(case, "image,x\n"))
    proc = _ccvae(*args)
    assert proc.returncode == code
    assert needle in _one_error_line(proc)
    assert proc.stdout == ""


def test_cli_check_fatal_report_exits_1(tmp_path):
    (tmp_path / "labels.csv").write_text("image,smiling\ngone1.png,1\ngone2.png,0\n")
    proc = _ccvae(str(tmp_path / "labels.csv"), "--json")
    assert proc.returncode == 1 and "cannot be trained on: no image can be read" in _one_error_line(proc)
    data = json.loads(proc.stdout)
    assert data["fatal"] and data["files"]["missing"] == 2
