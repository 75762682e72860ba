"""Readers: CelebA, CheXpert, folder + CSV, and the dispatcher. Fixtures are made in tmp_path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.data.base import TEST, TRAIN, VALID, Label
from ccvae_tools.data.celeba import PAPER_LABELS
from ccvae_tools.data.chexpert import OBSERVATIONS
from ccvae_tools.data.readers import open_catalog
from ccvae_tools.data.names import label_key
from ccvae_tools.data.shared import choose_labels, group_split, random_split
from ccvae_tools.util.errors import DataError, UsageError

CELEBA_40 = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
             "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
             "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
             "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
             "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie "
             "Young").split()


def _img(path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=0 if mode in ("L", "1") else (10, 20, 30)).save(path)
    return path


def _attr_value(i: int, j: int) -> int:
    return 1 if (i * 7 + j * 3) % 5 < 2 else -1


def make_celeba(root: Path, n: int = 12, names: list[str] = CELEBA_40, partition: bool = True,
                ext: str = ".jpg", size: tuple[int, int] = (8, 8), images: bool = True) -> Path:
    """A CelebA-layout folder with n images; returns the folder holding list_attr_celeba.txt."""
    root.mkdir(parents=True, exist_ok=True)
    files = [f"{i + 1:06d}{ext}" for i in range(n)]
    lines = [str(n), " ".join(names) + " "]
    for i, f in enumerate(files):
        lines.append(f + "  " + " ".join(f"{_attr_value(i, j):2d}" for j in range(len(names))))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition:
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{f} {0 if i < n - 4 else (1 if i < n - 2 else 2)}\n" for i, f in enumerate(files)))
    (root / "img_align_celeba").mkdir(exist_ok=True)
    if images:
        for f in files:
            _img(root / "img_align_celeba" / f, size)
    return root


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def test_label_key_and_choose_labels():
    assert label_key("Blond-Hair") == label_key("blond_hair") == label_key(" BLOND  hair ") == "blond_hair"
    avail = ["Smiling", "Blond_Hair", "No Finding"]
    assert choose_labels(["no_finding", "SMILING", "smiling"], avail, [], "x") == ["No Finding", "Smiling"]
    assert choose_labels(None, avail, ["Smiling"], "x") == ["Smiling"]
    with pytest.raises(UsageError, match="did you mean Smiling"):
        choose_labels(["smilng"], avail, [], "x")


def test_random_split_deterministic_and_fractions():
    a = random_split(100, 3, 0.1, 0.2)
    assert np.array_equal(a, random_split(100, 3, 0.1, 0.2))
    assert not np.array_equal(a, random_split(100, 4, 0.1, 0.2))
    assert (a == VALID).sum() == 10 and (a == TEST).sum() == 20 and a.dtype == np.int8


def test_group_split_keeps_groups_together():
    groups = [f"p{i // 3}" for i in range(90)]
    split = group_split(groups, 0, 0.2, 0.2)
    for g in set(groups):
        assert len({int(s) for s, h in zip(split, groups) if h == g}) == 1


# ----------------------------------------------------------------------------------------------
# CelebA
# ----------------------------------------------------------------------------------------------

def test_celeba_plain_layout_with_partition(tmp_path):
    root = make_celeba(tmp_path / "celeba_root")
    cat = open_catalog(root)
    assert cat.name == "celeba"
    assert cat.label_names == list(PAPER_LABELS)
    assert all(lab.classes == ("0", "1") for lab in cat.label_info)
    assert len(cat.files) == 12 and all(f.is_absolute() and f.exists() for f in cat.files)
    assert cat.files[0].name == "000001.jpg"
    assert cat.labels.dtype == np.float32 and cat.labels.shape == (12, 18)
    j = CELEBA_40.index("Smiling")
    expect = [1.0 if _attr_value(i, j) == 1 else 0.0 for i in range(12)]
    assert cat.labels[:, cat.label_names.index("Smiling")].tolist() == expect
    assert cat.split.tolist() == [TRAIN] * 8 + [VALID] * 2 + [TEST] * 2
    assert cat.preprocess.channels == 3
    assert cat.preprocess.crop == "center" and cat.preprocess.crop_size is None   # 8 px images


def test_celeba_torchvision_layout(tmp_path):
    make_celeba(tmp_path / "data" / "celeba")
    cat = open_catalog(tmp_path / "data", fmt="celeba")
    assert cat.root == (tmp_path / "data" / "celeba").absolute()
    assert len(cat.files) == 12 and cat.files[0].exists()
    assert open_catalog(tmp_path / "data").name == "celeba"   # auto-detected too


def test_celeba_without_partition_is_seeded(tmp_path):
    root = make_celeba(tmp_path / "c", n=60, partition=False)
    a = open_catalog(root, split_seed=1)
    b = open_catalog(root, split_seed=1)
    c = open_catalog(root, split_seed=2)
    assert np.array_equal(a.split, b.split) and not np.array_equal(a.split, c.split)
    assert (a.split == VALID).sum() == 6 and (a.split == TEST).sum() == 6
    assert any("seed 1" in n for n in a.notes)


def test_celeba_all_labels_when_paper_set_absent(tmp_path):
    names = ["Smiling", "Eyeglasses", "Wearing_Hat", "Blond_Hair"]
    root = make_celeba(tmp_path / "avatars", n=6, names=names, ext=".png", size=(64, 64))
    cat = open_catalog(root)
    assert cat.label_names == names
    assert cat.files[0].name == "000001.png"
    assert cat.preprocess.crop_size is None


def test_celeba_label_subset_loose_names(tmp_path):
    root = make_celeba(tmp_path / "c")
    cat = open_catalog(root, labels=["smiling", "Blond-Hair", "blond_hair", "no beard", "5_O_CLOCK shadow"])
    assert cat.label_names == ["Smiling", "Blond_Hair", "No_Beard", "5_o_Clock_Shadow"]
    assert cat.labels.shape == (12, 4)


def test_celeba_unknown_label_suggests(tmp_path):
    root = make_celeba(tmp_path / "c")
    with pytest.raises(UsageError) as e:
        open_catalog(root, labels=["Smilng"])
    msg = str(e.value)
    assert "did you mean Smiling" in msg and "Wearing_Necktie" in msg and e.value.exit_code == 2


def test_celeba_malformed_row_names_line(tmp_path):
    root = make_celeba(tmp_path / "c")
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0]          # drop one value of the third image (line 5)
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 5: expected a file name and 40 values, found 39"):
        open_catalog(root)


def test_celeba_short_and_long_rows_that_balance(tmp_path):
    root = make_celeba(tmp_path / "c")
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    lines[3], lines[6] = lines[3] + " 1", lines[6].rsplit(" ", 1)[0]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 4: expected a file name and 40 values, found 41"):
        open_catalog(root)


def test_celeba_duplicate_file_and_partition_errors(tmp_path):
    root = make_celeba(tmp_path / "c", n=4)
    attr = (root / "list_attr_celeba.txt").read_text().replace("000002.jpg", "000001.jpg")
    (root / "list_attr_celeba.txt").write_text(attr)
    with pytest.raises(DataError, match="line 4: image 000001.jpg is listed twice \\(first on line 3\\)"):
        open_catalog(root)
    root = make_celeba(tmp_path / "d", n=4)
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 5\n")
    with pytest.raises(DataError, match="list_eval_partition.txt: line 2"):
        open_catalog(root)


def test_celeba_bad_value_names_line(tmp_path):
    root = make_celeba(tmp_path / "c")
    text = (root / "list_attr_celeba.txt").read_text().splitlines()
    text[3] = text[3].replace(" 1", " 2", 1)
    (root / "list_attr_celeba.txt").write_text("\n".join(text))
    with pytest.raises(DataError, match="line 4: value '2'"):
        open_catalog(root)


def test_celeba_crlf_spaces_and_zero_missing(tmp_path):
    root = tmp_path / "c"
    (root / "img_align_celeba").mkdir(parents=True)
    for f in ("a.jpg", "b.jpg"):
        _img(root / "img_align_celeba" / f)
    (root / "list_attr_celeba.txt").write_bytes(
        b"2\r\nSmiling  Male \r\na.jpg   1 -1  \r\nb.jpg  0   1\r\n\r\n")
    cat = open_catalog(root)
    assert cat.label_names == ["Smiling", "Male"]
    assert cat.labels[0].tolist() == [1.0, 0.0]
    assert math.isnan(cat.labels[1, 0]) and cat.labels[1, 1] == 1.0


def test_celeba_missing_files_kept(tmp_path):
    root = make_celeba(tmp_path / "c")
    (root / "img_align_celeba" / "000003.jpg").unlink()
    cat = open_catalog(root)
    assert len(cat.files) == 12 and not cat.files[2].exists()


def test_celeba_missing_image_folder(tmp_path):
    root = make_celeba(tmp_path / "c", images=False)
    (root / "img_align_celeba").rmdir()
    with pytest.raises(DataError, match="image folder not found"):
        open_catalog(root)


@pytest.mark.parametrize("crop,size,expect", [
    ("auto", (178, 218), ("center", 148)),
    ("auto", (160, 160), ("center", None)),
    ("center", (160, 160), ("center", 148)),
    ("center", (100, 120), ("center", None)),
    ("squash", (178, 218), ("squash", None)),
    ("120", (178, 218), ("center", 120)),
])
def test_celeba_crop_options(tmp_path, crop, size, expect):
    root = make_celeba(tmp_path / "c", n=3, size=size)
    pre = open_catalog(root, crop=crop, size=32).preprocess
    assert (pre.crop, pre.crop_size) == expect and pre.size == 32


# ----------------------------------------------------------------------------------------------
# CheXpert
# ----------------------------------------------------------------------------------------------

CHEX_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]


def _chex_row(rel: str, view: str, values: dict[str, str]) -> str:
    cells = [rel, "Female", "60", view, "AP" if view == "Frontal" else ""]
    cells += [values.get(o, "") for o in OBSERVATIONS]
    return ",".join(cells)


def make_chexpert(tmp_path: Path, prefix: bool = True, patients: int = 4, valid: bool = True) -> Path:
    """A CheXpert-v1.0-small folder under tmp_path; `prefix` puts the folder name in front of Path."""
    root = tmp_path / "CheXpert-v1.0-small"
    lead = "CheXpert-v1.0-small/" if prefix else ""
    rows = []
    for p in range(patients):
        for view, fname in (("Frontal", "view1_frontal.jpg"), ("Lateral", "view2_lateral.jpg")):
            rel = f"{lead}train/patient{p + 1:05d}/study1/{fname}"
            _img((tmp_path if prefix else root) / rel, mode="L")
            rows.append(_chex_row(rel, view, {"No Finding": "1.0" if p % 2 else "",
                                              "Edema": ["1.0", "0.0", "-1.0", ""][p % 4],
                                              "Cardiomegaly": "-1.0"}))
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text(",".join(CHEX_HEADER) + "\n" + "\n".join(rows) + "\n")
    if valid:
        rel = f"{lead}valid/patient64541/study1/view1_frontal.jpg"
        _img((tmp_path if prefix else root) / rel, mode="L")
        (root / "valid.csv").write_text(",".join(CHEX_HEADER) + "\n"
                                        + _chex_row(rel, "Frontal", {"Edema": "1.0"}) + "\n")
    return root


def test_chexpert_defaults_and_parent_resolution(tmp_path):
    root = make_chexpert(tmp_path)
    cat = open_catalog(root)
    assert cat.name == "chexpert" and cat.label_names == list(OBSERVATIONS)
    assert cat.preprocess.channels == 1 and cat.preprocess.crop == "center" and cat.preprocess.crop_size is None
    assert len(cat.files) == 5 and all(f.exists() for f in cat.files)        # 4 frontal + 1 valid
    assert all("frontal" in f.name for f in cat.files)
    assert (cat.split == TEST).sum() == 1 and "valid" in str(cat.files[-1])
    edema = cat.labels[:, cat.label_names.index("Edema")]
    assert edema[0] == 1.0 and edema[1] == 0.0 and math.isnan(edema[2]) and math.isnan(edema[3])
    assert math.isnan(cat.labels[0, cat.label_names.index("No Finding")])     # blank = missing
    assert np.isnan(cat.labels[:4, cat.label_names.index("Cardiomegaly")]).all()  # -1 ignored


def test_chexpert_paths_against_root(tmp_path):
    root = make_chexpert(tmp_path, prefix=False)
    cat = open_catalog(root)
    assert all(f.exists() for f in cat.files)
    assert cat.files[0] == (root / "train/patient00001/study1/view1_frontal.jpg").absolute()


@pytest.mark.parametrize("policy,value", [("ignore", None), ("ones", 1.0), ("zeros", 0.0)])
def test_chexpert_uncertain_policies(tmp_path, policy, value):
    cat = open_catalog(make_chexpert(tmp_path), uncertain=policy, labels=["edema", "cardiomegaly"])
    assert cat.label_names == ["Edema", "Cardiomegaly"]
    cardio, edema = cat.labels[:4, 1], cat.labels[:4, 0]
    if value is None:
        assert np.isnan(cardio).all() and math.isnan(edema[2])
    else:
        assert (cardio == value).all() and edema[2] == value
    assert math.isnan(edema[3])            # blank stays missing under every policy
    assert any("uncertain" in n for n in cat.notes)


def test_chexpert_views(tmp_path):
    root = make_chexpert(tmp_path)
    assert len(open_catalog(root, views="all").files) == 9
    lateral = open_catalog(root, views="lateral")
    assert len(lateral.files) == 4 and all("lateral" in f.name for f in lateral.files)


def test_chexpert_patient_disjoint_split(tmp_path):
    root = make_chexpert(tmp_path, patients=40)
    cat = open_catalog(root, views="all", valid_frac=0.25, split_seed=5)
    patient = [f.parts[-3] for f in cat.files]
    by_split: dict[int, set[str]] = {}
    for p, s in zip(patient, cat.split):
        by_split.setdefault(int(s), set()).add(p)
    assert by_split[TRAIN] and by_split[VALID] and not (by_split[TRAIN] & by_split[VALID])
    assert len(by_split[VALID]) == 10
    assert by_split[TEST] == {"patient64541"}
    again = open_catalog(root, views="all", valid_frac=0.25, split_seed=5)
    assert np.array_equal(cat.split, again.split)


def test_chexpert_auto_detect_csv_file_and_bad_value(tmp_path):
    root = make_chexpert(tmp_path)
    assert open_catalog(root / "train.csv").name == "chexpert"
    text = (root / "train.csv").read_text().replace("-1.0", "2.0", 1)
    (root / "train.csv").write_text(text)
    with pytest.raises(DataError, match=r"line 2: column '.*' has value '2.0'"):
        open_catalog(root)


def test_chexpert_cells_with_spaces(tmp_path):
    root = make_chexpert(tmp_path)
    text = (root / "train.csv").read_text().replace(",1.0,", ", 1.0 ,", 1)
    (root / "train.csv").write_text(text)
    assert ", 1.0 ," in text.splitlines()[1]            # the first patient's Edema cell
    cat = open_catalog(root)
    assert cat.labels[0, cat.label_names.index("Edema")] == 1.0


def test_chexpert_only_train_csv_three_way_split(tmp_path):
    root = make_chexpert(tmp_path, patients=30, valid=False)
    cat = open_catalog(root, valid_frac=0.2, test_frac=0.2)
    assert {int(s) for s in cat.split} == {TRAIN, VALID, TEST}


def test_chexpert_unknown_label(tmp_path):
    with pytest.raises(UsageError, match="did you mean Pleural Effusion"):
        open_catalog(make_chexpert(tmp_path), labels=["pleural efusion"])


# ----------------------------------------------------------------------------------------------
# folder + CSV
# ----------------------------------------------------------------------------------------------

def make_folder(tmp_path: Path, csv_text: str, images: list[str] | None = None, name: str = "labels.csv") -> Path:
    """Write a CSV (and the listed images next to it); returns the CSV path."""
    for f in images or []:
        _img(tmp_path / f)
    path = tmp_path / name
    path.write_text(csv_text)
    return path


def test_folder_every_encoding_and_missing_values(tmp_path):
    csv = make_folder(tmp_path, (
        "image,a,b,c,d,e\n"
        "x1.jpg,1,1,true,Yes,y\n"
        "x2.jpg,0,-1,FALSE,no,N\n"
        "x3.jpg,,NA,?,N/A,nan\n"
        "x4.jpg,1.0,-1,True,YES,n\n"), images=["x1.jpg", "x2.jpg", "x3.jpg", "x4.jpg"])
    cat = open_catalog(csv)
    assert cat.name == "folder" and cat.label_names == ["a", "b", "c", "d", "e"]
    assert all(lab == Label(lab.name) for lab in cat.label_info)
    assert cat.labels[0].tolist() == [1, 1, 1, 1, 1]
    assert cat.labels[1].tolist() == [0, 0, 0, 0, 0]
    assert np.isnan(cat.labels[2]).all()
    assert cat.labels[3].tolist() == [1, 0, 1, 1, 0]
    assert cat.files[0] == (tmp_path / "x1.jpg").absolute()
    assert cat.preprocess.channels == 3 and cat.preprocess.crop_size is None
    assert any("no split column" in n for n in cat.notes)


def test_folder_split_column_and_images_dir(tmp_path):
    imgs = tmp_path / "photos"
    for f in ("a.png", "b.png", "c.png", "d.png"):
        _img(imgs / f)
    csv = make_folder(tmp_path, "File,Split,smiling\na.png,train,1\nb.png,VAL,0\nc.png,valid,1\nd.png,test,\n")
    cat = open_catalog(csv, images_dir=imgs)
    assert cat.split.tolist() == [TRAIN, VALID, VALID, TEST]
    assert cat.root == imgs.absolute()
    assert cat.label_names == ["smiling"] and all(f.exists() for f in cat.files)
    bad = make_folder(tmp_path, "file,split,s\na.png,holdout,1\n", name="bad.csv")
    with pytest.raises(DataError, match="line 2: split 'holdout'"):
        open_catalog(bad, images_dir=imgs)


def test_folder_seeded_split_deterministic(tmp_path):
    rows = "".join(f"i{i}.jpg,{i % 2}\n" for i in range(50))
    csv = make_folder(tmp_path, "image,smiling\n" + rows)
    a, b, c = (open_catalog(csv, split_seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.split, b.split) and not np.array_equal(a.split, c.split)
    assert (a.split == VALID).sum() == 5 and (a.split == TEST).sum() == 5


def test_folder_image_column_by_extension_and_missing(tmp_path):
    csv = make_folder(tmp_path, "photo,smiling\nq.jpeg,1\nr.JPG,0\n")
    assert open_catalog(csv).files[1].name == "r.JPG"
    bad = make_folder(tmp_path, "who,smiling\nbob,1\nann,0\n", name="bad.csv")
    with pytest.raises(DataError, match=r"no image column \(columns: who, smiling\)"):
        open_catalog(bad)
    cat = open_catalog(bad, image_column="Who")
    assert cat.files[0].name == "bob"


def test_folder_unknown_label_column(tmp_path):
    csv = make_folder(tmp_path, "image,Smiling,Male\na.jpg,1,0\n")
    with pytest.raises(UsageError, match="unknown label 'smilin'.*did you mean Smiling"):
        open_catalog(csv, labels=["smilin"])
    with pytest.raises(UsageError, match="image column"):
        open_catalog(csv, labels=["image"])
    assert open_catalog(csv, labels=["male"]).label_names == ["Male"]


@pytest.mark.parametrize("values,seen", [
    (["yes", "no", "1", "0"], "'0', '1', 'no', 'yes'"),
    (["1", "0", "-1", "1"], "'-1', '0', '1'"),
    (["yes", "false", "no", "true"], "'false', 'no', 'true', 'yes'"),
])
def test_folder_mixed_encodings(tmp_path, values, seen):
    rows = "".join(f"i{i}.jpg,{v}\n" for i, v in enumerate(values))
    csv = make_folder(tmp_path, "image,smiling\n" + rows)
    with pytest.raises(DataError, match=f"column 'smiling' mixes label encodings \\(values seen: {seen}\\)"):
        open_catalog(csv)


def test_folder_duplicated_rows(tmp_path):
    csv = make_folder(tmp_path, "image,smiling\na.jpg,1\nb.jpg,0\n./a.jpg,0\n")
    with pytest.raises(DataError, match="image './a.jpg' is listed on lines 2 and 4 with different values"):
        open_catalog(csv)
    same = make_folder(tmp_path, "image,smiling\na.jpg,1\nb.jpg,0\na.jpg,1\n", name="same.csv")
    cat = open_catalog(same)
    assert len(cat.files) == 2 and any("1 duplicated rows" in n for n in cat.notes)


def test_folder_zero_labelled_rows(tmp_path):
    csv = make_folder(tmp_path, "image,smiling,male\na.jpg,,NA\nb.jpg,?,\n")
    with pytest.raises(DataError, match=r"no labelled rows: every cell of the label columns \(smiling, male\)"):
        open_catalog(csv)
    with pytest.raises(DataError, match="no labelled rows"):
        open_catalog(csv, labels=["smiling"])
    partly = make_folder(tmp_path, "image,smiling,male\na.jpg,,1\nb.jpg,?,0\n", name="partly.csv")
    cat = open_catalog(partly)            # an empty column among others: skipped with a note
    assert cat.label_names == ["male"] and any("'smiling' skipped: it has no values" in n for n in cat.notes)


def test_folder_multiclass_and_skipped_columns(tmp_path):
    rows = "".join(f"i{i}.jpg,{['brown', 'black', 'blond'][i % 3]},{20 + i},{i % 3},1\n" for i in range(30))
    csv = make_folder(tmp_path, "image,hair,age,grade,always\n" + rows)
    cat = open_catalog(csv)
    assert cat.label_names == ["hair", "grade", "always"]
    hair = cat.label_info[0]
    assert hair.classes == ("black", "blond", "brown")
    assert cat.labels[:3, 0].tolist() == [2, 0, 1]
    assert cat.label_info[1].classes == ("0", "1", "2") and cat.labels[:3, 1].tolist() == [0, 1, 2]
    assert any("'age' skipped" in n for n in cat.notes)
    assert any("'always' is constant" in n for n in cat.notes)
    with pytest.raises(DataError, match="column 'age' is not a label: it has 30 distinct numbers"):
        open_catalog(csv, labels=["age"])


def test_folder_row_length_and_pandas_index(tmp_path):
    csv = make_folder(tmp_path, ",image,smiling\n0,a.jpg,1\n1,b.jpg,0\n")
    cat = open_catalog(csv)
    assert cat.label_names == ["smiling"] and any("unnamed" in n for n in cat.notes)
    bad = make_folder(tmp_path, "image,smiling,male\na.jpg,1\n", name="short.csv")
    with pytest.raises(DataError, match="line 2: 2 cells, the header has 3"):
        open_catalog(bad)


def test_folder_semicolon_and_folder_with_one_csv(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    (d / "labels.csv").write_text("image;smiling\na.jpg;1\nb.jpg;0\n")
    cat = open_catalog(d)
    assert cat.name == "folder" and cat.labels[:, 0].tolist() == [1, 0]


# ----------------------------------------------------------------------------------------------
# dispatcher
# ----------------------------------------------------------------------------------------------

def test_unknown_format_and_options(tmp_path):
    root = make_celeba(tmp_path / "c", n=3)
    with pytest.raises(UsageError, match="unknown format 'imagenet'"):
        open_catalog(root, fmt="imagenet")
    with pytest.raises(UsageError, match="uncertain"):
        open_catalog(root, uncertain="maybe")
    with pytest.raises(UsageError, match="crop"):
        open_catalog(root, crop="middle")
    with pytest.raises(UsageError, match="views"):
        open_catalog(root, views="side")
    with pytest.raises(UsageError, match="fractions"):
        open_catalog(root, valid_frac=0.6, test_frac=0.5)


def test_missing_path_and_unknown_layout(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        open_catalog(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="list_attr_celeba.txt.*train.csv.*found none"):
        open_catalog(tmp_path / "empty")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.csv").write_text("image,x\n")
    (tmp_path / "two" / "b.csv").write_text("image,x\n")
    with pytest.raises(DataError, match="found 2 .csv files: a.csv, b.csv"):
        open_catalog(tmp_path / "two")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a data folder or a .csv file"):
        open_catalog(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="not a CelebA folder"):
        open_catalog(tmp_path / "empty", fmt="celeba")
    with pytest.raises(DataError, match="not a CheXpert folder"):
        open_catalog(tmp_path / "empty", fmt="chexpert")


def test_empty_csv_and_header_only(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        open_catalog(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("image,smiling\n")
    with pytest.raises(DataError, match="lists no images"):
        open_catalog(tmp_path / "h.csv")


# --- label tables from elsewhere: paths outside the folder, files that are not files -------------

def test_csv_rows_may_name_images_outside_its_folder_and_the_report_says_so(tmp_path):
    for name in ("a", "b", "c"):
        _img(tmp_path / f"{name}.png")
    (tmp_path / "tables").mkdir()
    csv_path = tmp_path / "tables" / "labels.csv"
    csv_path.write_text(f"image,smiling\n../a.png,1\n../b.png,0\n{tmp_path / 'c.png'},1\n")
    cat = open_catalog(csv_path)
    assert sorted(p.name for p in cat.files) == ["a.png", "b.png", "c.png"]
    assert any("3 rows name images outside" in n for n in cat.notes)


def test_a_label_table_that_is_a_fifo_or_too_large_is_refused_in_one_line(tmp_path, monkeypatch):
    import os

    from ccvae_tools.data import shared

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="named pipe"):      # refused at once, never waiting for a writer
        shared.read_text(fifo, "CSV file")
    big = tmp_path / "big.csv"
    big.write_text("image,smiling\n" + "x.png,1\n" * 100)
    monkeypatch.setattr(shared, "MAX_TABLE_BYTES", 512)
    with pytest.raises(DataError, match="larger than"):
        shared.read_text(big, "CSV file")
