"""Fuzzing the command line (issue 12, item 5): whatever bytes a weights file, an image or a CSV
holds, and whatever text an option is given, a run ends in success or in exactly one clean line
`ccvae: error: ...` with exit 1 or 2: never `internal error`, a traceback, a usage block or
terminal controls (`helpers.cli.assert_clean_exit`).

Property-based with hypothesis, derandomized (every run tries the same examples, no database) and
bounded by the `max_examples` below (820 examples, about 1,250 runs of the CLI: under a minute).
The commands run in this process (`helpers.cli.run_cli`, Python warnings shown as a real process
shows them); every input is made in code from the tiny model, a generated image and generated
CSVs; each example writes files of its own name, so that no state carries from one to the next.
The plain cases at the end are what the fuzzing found, kept as regressions.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from helpers.cli import assert_clean_exit, assert_one_line, run_cli
from helpers.fuzzing import fuzz
from helpers.hostile import HOSTILE, join_weights, split_weights

pytestmark = pytest.mark.usefixtures("clean_env")      # fixtures in conftest.py: clean_env, tiny, face


def run(argv, capsys, stdin: bytes | None = None) -> tuple[int, str, str]:
    """The command line run in this process, its Python warnings on stderr as a real run's."""
    return run_cli(argv, capsys, stdin=stdin, warnings_shown=True)


NAMES = itertools.count()


def fresh(folder: Path, suffix: str) -> Path:
    """A file name not used before in this session (no cache keyed by path can answer twice)."""
    return folder / f"f{next(NAMES)}{suffix}"


# ----------------------------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------------------------

# argv cannot hold NUL (the kernel passes C strings), so argv text is anything else; files can.
ARG_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=16) | st.sampled_from(
    [v for v in HOSTILE.values() if "\x00" not in v])
NUMBER_TEXT = st.sampled_from([
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-0", "-0.0", "0", "1", "-1", "1e308", "-1e308",
    "1e309", "1e-400", "4.9e-324", str(2 ** 63 - 1), str(2 ** 63), str(2 ** 64), str(10 ** 30),
    f"-{10 ** 30}", "9" * 5000, "0x10", "1_000", " 3", "3 ", "+5", "\u0663", "", " ", "-", "--",
    "1,5", "3.5", "True", "1e2", "0b1", "\uff13", "\u00b2"])
OPTION_VALUE = (NUMBER_TEXT | st.integers(-3, 300).map(str) | st.integers(-(2 ** 70), 2 ** 70).map(str)
                | st.floats(allow_nan=True, allow_infinity=True).map(repr) | ARG_TEXT)
JSON_LEAF = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats()
             | st.text(max_size=12) | st.sampled_from(list(HOSTILE.values())))
JSON = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


@st.composite
def json_text(draw) -> str:
    """Text that a JSON field of the metadata could hold: JSON of any shape, nested JSON encoded
    as a string, numbers too long or too large for Python, or no JSON at all."""
    return draw(st.one_of(
        JSON.map(json.dumps), JSON.map(json.dumps).map(json.dumps), st.text(max_size=24),
        st.sampled_from(["9" * 5000, "1e999", "-1e999", "NaN", "[" * 600 + "]" * 600, "{", '"', "",
                         '{"labels": [], "image_size": 1e999}', '{"a": 1, "a": 2}'])))


# ----------------------------------------------------------------------------------------------
# 1. random bytes as a weights file
# ----------------------------------------------------------------------------------------------

DTYPES = ["F32", "F16", "BF16", "F64", "I8", "U8", "I64", "BOOL", "F8_E4M3", "Q9", ""]
TENSOR = st.fixed_dictionaries({
    "dtype": st.sampled_from(DTYPES),
    "shape": st.lists(st.integers(-2, 8) | st.integers(0, 2 ** 64), max_size=3),
    "data_offsets": st.lists(st.integers(-1, 256) | st.integers(0, 2 ** 64), max_size=3),
}) | JSON


@st.composite
def weights_bytes(draw) -> bytes:
    """Any bytes; a safetensors length field and anything; or a length field and a JSON header of
    random tensor entries and metadata (the length right, or off by a little)."""
    kind = draw(st.sampled_from(["raw", "length", "header"]))
    if kind == "raw":
        return draw(st.binary(max_size=256))
    if kind == "length":
        n = draw(st.integers(0, 512) | st.integers(0, 2 ** 64 - 1))
        return struct.pack("<Q", n) + draw(st.binary(max_size=256))
    header = draw(st.dictionaries(st.text(max_size=8), TENSOR, max_size=4))
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=12), st.text(max_size=12) | JSON,
                                                      max_size=4))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    n = max(0, len(text) + draw(st.sampled_from([0, 0, 0, -1, 1, 8])))
    return struct.pack("<Q", n) + text + draw(st.binary(max_size=96))


def weights_commands(path: Path, face: Path) -> list[list]:
    return [["info", path], ["labels", "-m", path], ["classify", face, "-m", path, "--mean"]]


@fuzz(80)
@given(raw=weights_bytes())
def test_random_bytes_as_weights(tmp_path, face, capsys, raw):
    path = fresh(tmp_path, ".safetensors")
    path.write_bytes(raw)
    for argv in weights_commands(path, face):
        assert_clean_exit(*run(argv, capsys))


MODEL_NAMES = ["", ".", "/", "/dev/null", "/dev/zero", "/proc/self/status", "avatars", "AVATARS64", "fonts32",
               "fonts32.safetensors", "~", "~nouser/x.safetensors", "-", "runs", "x.safetensors/"]


@fuzz(30)
@given(name=st.sampled_from(MODEL_NAMES) | ARG_TEXT)
def test_random_model_names(face, capsys, name):
    """-m names a file, a run folder or a shipped model: whatever it names, or fails to."""
    for argv in weights_commands(name, face):
        assert_clean_exit(*run(argv, capsys))


# ----------------------------------------------------------------------------------------------
# 2. a real weights file with random metadata (and tensor entries)
# ----------------------------------------------------------------------------------------------

def mutate(value, draw, depth: int = 0):
    """`value` (decoded JSON) with one random change somewhere inside: an entry replaced by random
    JSON or JSON text, or removed, or the whole value replaced."""
    if isinstance(value, (dict, list)) and value and depth < 6 and draw(st.integers(0, 3)):
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["descend", "descend", "replace", "remove", "as_text"]))
        if action == "descend":
            value[key] = mutate(value[key], draw, depth + 1)
        elif action == "replace":
            value[key] = draw(JSON)
        elif action == "remove":
            del value[key]
        else:
            value[key] = json.dumps(value[key])
        return value
    return draw(JSON)


@st.composite
def header_change(draw, header: dict) -> dict:
    """A copy of a tiny model's header, changed: a metadata value deleted, replaced by random text
    or JSON text, replaced by a non-string, or its decoded JSON changed inside; a new key; or a
    tensor entry changed."""
    h = copy.deepcopy(header)
    meta = h["__metadata__"]
    target = draw(st.sampled_from(["meta"] * 4 + ["tensor", "header"]))
    if target == "tensor":
        name = draw(st.sampled_from(sorted(k for k in h if k != "__metadata__")))
        h[name] = mutate(h[name], draw)
        return h
    if target == "header":
        return mutate(h, draw)
    key = draw(st.sampled_from(sorted(meta) + ["ccvae.new", "\x1b]0;x\x07"]))
    action = draw(st.sampled_from(["inside", "inside", "inside", "text", "delete", "raw"]))
    if action == "inside" and key in meta:
        try:
            decoded = json.loads(meta[key])
        except ValueError:
            decoded = meta[key]
        meta[key] = json.dumps(mutate(decoded, draw))
    elif action == "delete":
        meta.pop(key, None)
    elif action == "raw":
        meta[key] = draw(JSON)
    else:
        meta[key] = draw(json_text())
    return h


@pytest.fixture(scope="module")
def tiny_parts(tiny) -> tuple[dict, bytes]:
    return split_weights(tiny)


@fuzz(100)
@given(data=st.data())
def test_random_metadata(tmp_path, face, tiny_parts, capsys, data):
    header, body = tiny_parts
    path = join_weights(fresh(tmp_path, ".safetensors"), data.draw(header_change(header)), body)
    for argv in weights_commands(path, face):
        assert_clean_exit(*run(argv, capsys))


# ----------------------------------------------------------------------------------------------
# 3. image inputs: random bytes, damaged and truncated files, odd but valid images
# ----------------------------------------------------------------------------------------------

def _encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A 1 x 1 PNG whose header claims `width` x `height` (CRC fixed): a decompression bomb."""
    raw = bytearray(_encoded(Image.new("RGB", (1, 1)), "PNG"))
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


@pytest.fixture(scope="module")
def encoded_images(face) -> dict[str, bytes]:
    """The noise face in every format the inputs may be in, as bytes."""
    im = Image.open(face).convert("RGB")
    out = {fmt: _encoded(im, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}
    out["JPEG-progressive"] = _encoded(im, "JPEG", progressive=True)
    out["GIF-animated"] = _encoded(im, "GIF", save_all=True, append_images=[im.rotate(90)])
    return out


ODD_IMAGES = [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("I;16", "PNG"),
              ("I", "TIFF"), ("F", "TIFF"), ("CMYK", "TIFF"), ("CMYK", "JPEG"), ("L", "JPEG"), ("P", "GIF"),
              ("RGBA", "WEBP"), ("1", "BMP")]
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBP", b"II*\0", b"MM\0*",
         b"\0\0\1\0", b"%PDF", b"<svg", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"]


@st.composite
def image_bytes(draw, encoded: dict[str, bytes]) -> bytes:
    kind = draw(st.sampled_from(["raw", "magic", "cut", "flip", "odd", "bomb"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "magic":
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=200))
    if kind == "odd":
        mode, fmt = draw(st.sampled_from(ODD_IMAGES))
        size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
        return _encoded(Image.new(mode, size, draw(st.integers(0, 255))), fmt)
    if kind == "bomb":
        return _png_claiming(draw(st.integers(1, 2 ** 31 - 1)), draw(st.integers(1, 2 ** 31 - 1)))
    raw = bytearray(encoded[draw(st.sampled_from(sorted(encoded)))])
    if kind == "cut":
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


@fuzz(70)
@given(data=st.data())
def test_random_images(tmp_path, tiny, encoded_images, capsys, data):
    raw = data.draw(image_bytes(encoded_images))
    command = data.draw(st.sampled_from(["classify", "traverse"]))
    via_stdin = data.draw(st.booleans())
    source = "-" if via_stdin else fresh(tmp_path, data.draw(st.sampled_from([".png", ".jpg", ".img", ""])))
    if not via_stdin:
        source.write_bytes(raw)
    argv = {"classify": ["classify", source, "-m", tiny, "--mean", "--json"],
            "traverse": ["traverse", source, "-m", tiny, "--label", "smiling", "--steps", "2",
                         "-o", fresh(tmp_path, ".png")]}[command]
    assert_clean_exit(*run(argv, capsys, stdin=raw if via_stdin else None))


# ----------------------------------------------------------------------------------------------
# 4. random option values
# ----------------------------------------------------------------------------------------------

LABEL_NAMES = ["smiling", "Smiling", "eyeglasses", "BLOND HAIR", "blond-hair", "s", ""]
LABEL = st.sampled_from(LABEL_NAMES) | ARG_TEXT
SETTING = st.builds(lambda label, value: f"{label}={value}", LABEL,
                    st.sampled_from(["1", "0", "yes", "no", "true", "2", "-1", "0.5", "nan", ""]) | ARG_TEXT) | ARG_TEXT
CHOICE = {
    "--resample": ["nearest", "lanczos", "NEAREST", "bicubic"],
    "--format": ["png", "jpg", "jpeg", "webp", "gif", "PNG", "bmp", "auto", "celeba", "folder"],
    "--device": ["auto", "cpu", "CPU", "cuda", "cuda:7", "mps", "tpu"],
    "--split": ["test", "valid", "train", "TEST", "all"], "--uncertain": ["ignore", "ones", "zeros", "twos"],
}
# valid values above these make a run slow (bigger pictures, more draws), not more interesting
EXPENSIVE = {"--size": 64, "--steps": 9, "--frames": 16, "-n": 16, "--draws": 200, "--columns": 64}


def choice(flag: str):
    return st.sampled_from(CHOICE[flag]) | ARG_TEXT


def value_for(flag: str):
    """The values an option is tried with: any text for a number, loose spellings for a choice."""
    if flag in CHOICE:
        return choice(flag)
    return {"--label": LABEL, "--set": SETTING, "--labels": st.lists(LABEL, max_size=3).map(",".join) | ARG_TEXT,
            "--style-from": st.sampled_from(["{face}", "{tiny}", "missing.png", "."]) | ARG_TEXT,
            }.get(flag, OPTION_VALUE)


IMAGE_OPTIONS = ["--size", "--resample", "--seed", "--format", "--device", "--sample", "--force"]
COMMANDS = {
    # command: (the arguments it always has, the options tried)
    "traverse": (["traverse", "{face}", "--label", "smiling"],
                 ["--label", "--steps", "--span", "--frames", "--fps", *IMAGE_OPTIONS]),
    "sample": (["sample"], ["-n", "--temperature", "--columns", "--set", "--style-from",
                            *[o for o in IMAGE_OPTIONS if o != "--sample"]]),
    "swap": (["swap", "{face}", "{face}"], ["--labels", "--grid", *IMAGE_OPTIONS]),
    "edit": (["edit", "{face}", "--set", "smiling=1"], ["--set", "--compare", *IMAGE_OPTIONS]),
    "classify": (["classify", "{face}"], ["--draws", "--seed", "--batch-size", "--mean", "--json", "--device"]),
    "reconstruct": (["reconstruct", "{face}"], ["--seed", "--batch-size", "--format", "--device", "--sample",
                                                "--force"]),
    "interpolate": (["interpolate", "{face}", "{face}"], ["--steps", "--fps", *IMAGE_OPTIONS]),
    "gif": (["gif", "{face}", "--frames", "8"], ["--label", "--frames", "--fps", "--span", "--columns",
                                                 "--probability", *IMAGE_OPTIONS]),
    # a data folder that is not there: the options are checked, and nothing is trained
    "eval": (["eval", "no-such-data"], ["--split", "--max-images", "--seed", "--samples", "--draws", "--judge-epochs",
                                        "--format", "--uncertain", "--workers", "--json", "--device", "--judge"]),
}
FLAGS = {"--sample", "--force", "--grid", "--compare", "--mean", "--json", "--probability"}   # (no value)


def is_expensive(flag: str, value: str) -> bool:
    try:
        return float(value) > EXPENSIVE[flag]
    except (KeyError, ValueError):
        return False


@st.composite
def option_args(draw, options: list[str]) -> list[str]:
    """A few of `options`, each given a random value (as `--flag value` or `--flag=value`), and
    now and then a stray argument."""
    args: list[str] = []
    for flag in draw(st.lists(st.sampled_from(options), min_size=1, max_size=4)):
        if flag in FLAGS:
            args.append(flag)
            continue
        value = draw(value_for(flag))
        assume(not is_expensive(flag, value))
        joined = flag.startswith("--") and draw(st.booleans())
        args += [f"{flag}={value}"] if joined else [flag, value]
    if draw(st.integers(0, 9)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(ARG_TEXT | st.sampled_from(["--nope", "-q", "--"])))
    return args


@pytest.mark.parametrize("command", sorted(COMMANDS))
@fuzz(30)
@given(data=st.data())
def test_random_option_values(tmp_path, tiny, face, capsys, command, data):
    base, options = COMMANDS[command]
    args = [a.replace("{face}", str(face)).replace("{tiny}", str(tiny))
            for a in base + data.draw(option_args(options))]
    if command not in ("classify", "eval"):
        args += ["-o", fresh(tmp_path, ".gif" if command == "gif" else ".png")]
    args += ["-m", tiny]
    assert_clean_exit(*run(args, capsys))


# ----------------------------------------------------------------------------------------------
# 4b. training options (`train --dry-run` resolves them, opens the data and stops)
# ----------------------------------------------------------------------------------------------

def _train_flags() -> list[str]:
    """Every training option that has a flag, read from their declarations (a new one is tried
    too), but the folders written to: those stay in the test's folder."""
    from ccvae_tools.training.options import flag_of, option_fields

    return [flag_of(f.name) for f in option_fields() if f.metadata["cli"] and f.name not in ("out", "cache_dir")]


TRAIN_CHOICES = {
    "--format": ["auto", "celeba", "folder", "chexpert", "CelebA"], "--sup-select": ["first", "random", "all"],
    "--image-size": ["32", "64", "128", "48", "0"], "--crop": ["auto", "center", "squash", "16", "0", "-3"],
    "--uncertain": ["ignore", "ones", "zeros", "twos"], "--likelihood": ["laplace", "bernoulli", "gauss"],
    "--device": CHOICE["--device"], "--precision": ["fp32", "bf16", "fp16", "fp8"],
    "--preset": ["paper", "few-labels", "avatars", "none"], "--on-bad": ["skip", "fail", "ignore"],
    "--resume": ["auto", ".", "runs", "missing"], "--init-from": ["{tiny}", "missing.safetensors", "."],
    "--widths": ["8,8,8", "8,8", "8,0,8", ",", "8,,8", "1e3,8,8", "-8,8,8", "99999,8,8"],
    "--labels": ["smiling", "Smiling,eyeglasses", ",", "nope", "smiling,smiling"],
}


def train_value(flag: str):
    if flag in TRAIN_CHOICES:
        return st.sampled_from(TRAIN_CHOICES[flag]) | OPTION_VALUE
    return OPTION_VALUE


@fuzz(120)
@given(data=st.data())
def test_random_training_options(tmp_path, avatar_celeba_dir, tiny, capsys, data):
    args = ["train", avatar_celeba_dir, "--dry-run", "--out", tmp_path / "runs", "--cache-dir", tmp_path / "cache"]
    for flag in data.draw(st.lists(st.sampled_from(_train_flags()), min_size=1, max_size=4)):
        value = data.draw(train_value(flag)).replace("{tiny}", str(tiny))
        args += [flag, value] if data.draw(st.booleans()) else [f"{flag}={value}"]
    assert_clean_exit(*run(args, capsys))


# ----------------------------------------------------------------------------------------------
# 5. random CSV contents (and a CelebA attribute file) for `data check` and `train --dry-run`
# ----------------------------------------------------------------------------------------------

IMAGE_CELLS = ["a.png", "b.jpg", "sub/c.png", "./a.png", "../x.png", "/etc/passwd", "sub", "", "a.PNG",
               "missing.png", "not-an-image.png", "\x1b[2Ja.png", "a.png\x00", "~/a.png", "C:\\a.png"]
LABEL_CELLS = ["1", "0", "-1", "yes", "no", "TRUE", "y", "", "NA", "nan", "?", "2", "0.5", "1e308", "inf",
               "-0", "007", "train", "valid", "test", " 1 ", '"1"']
HEADER_CELLS = ["file", "path", "smiling", "Smiling", "split", "eyeglasses", "hair", "", "Unnamed: 0",
                "[bold]x", "[/x]", "a,b", 'q"uote', "image"]
CELL = st.sampled_from(LABEL_CELLS) | st.sampled_from(IMAGE_CELLS) | st.text(max_size=8)


def _csv_cell(text: str, quote: bool) -> str:
    return '"' + text.replace('"', '""') + '"' if quote else text


ENCODINGS = [["0", "1"], ["1", "-1"], ["yes", "no"], ["a", "b", "c"], ["1", "0", "", "NA"], LABEL_CELLS]


@st.composite
def csv_row(draw, width: int, ragged: bool, encoding: list[str]) -> list[str]:
    """A row: an image cell, then label cells mostly of one `encoding`; if `ragged`, now and then
    a row of another length."""
    if ragged and draw(st.booleans()):
        return draw(st.lists(CELL, max_size=width + 2))
    image = draw(st.sampled_from(["a.png", "b.jpg", "sub/c.png"]) | st.sampled_from(IMAGE_CELLS) | CELL)
    odd = st.integers(0, 7).map(lambda k: k == 0)
    return [image] + [draw(CELL) if draw(odd) else draw(st.sampled_from(encoding)) for _ in range(width - 1)]


@st.composite
def csv_bytes(draw) -> bytes:
    """A CSV: a header of column names (control characters, markup, duplicates, empty), rows that
    fit it or not, cells quoted or not, any delimiter and line ending, a BOM or bad UTF-8."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = draw(st.lists(st.sampled_from(HEADER_CELLS) | ARG_TEXT, max_size=4))
    if draw(st.integers(0, 3)):
        header = ["image", *header]
    ragged = draw(st.integers(0, 3)) == 0
    encoding = draw(st.sampled_from(ENCODINGS))
    rows = [header] + draw(st.lists(csv_row(len(header), ragged, encoding), min_size=1, max_size=8))
    delimiter = draw(st.sampled_from([",", ";", "\t", " "])) if draw(st.integers(0, 3)) == 0 else ","
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    quote = draw(st.booleans())
    text = newline.join(delimiter.join(_csv_cell(c, quote) for c in row) for row in rows)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:                      # a BOM, a UTF-16 BOM, bad UTF-8
        raw = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\x80"])) + raw
    return raw


@st.composite
def celeba_attr_bytes(draw) -> bytes:
    """A CelebA attribute file: a count line, a line of names, `file v v ...` lines, all random."""
    count = draw(st.sampled_from(["2", "0", "-1", "999999999999", "x", ""]) | NUMBER_TEXT)
    names = " ".join(draw(st.lists(st.sampled_from(HEADER_CELLS) | ARG_TEXT, max_size=4)))
    rows = [" ".join(draw(st.lists(CELL, max_size=5))) for _ in range(draw(st.integers(0, 5)))]
    return "\n".join([count, names, *rows]).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def csv_folder(tmp_path_factory, face) -> Path:
    """Images the CSVs may name: a.png, b.jpg, sub/c.png, and a .png that is not an image."""
    root = tmp_path_factory.mktemp("csvset")
    (root / "sub").mkdir()
    im = Image.open(face)
    im.save(root / "a.png")
    im.save(root / "b.jpg")
    im.save(root / "sub" / "c.png")
    (root / "not-an-image.png").write_bytes(b"hello")
    return root


@fuzz(150)
@given(data=st.data())
def test_random_data_files(csv_folder, capsys, data):
    layout = data.draw(st.sampled_from(["csv", "csv", "csv", "celeba"]))
    raw = data.draw(csv_bytes() if layout == "csv" else celeba_attr_bytes())
    check = data.draw(st.booleans())
    if layout == "csv":
        data_path = fresh(csv_folder, ".csv")
        data_path.write_bytes(raw)
    else:
        data_path = fresh(csv_folder, "")
        (data_path / "img_align_celeba").mkdir(parents=True)
        Image.open(csv_folder / "a.png").save(data_path / "img_align_celeba" / "a.png")
        (data_path / "list_attr_celeba.txt").write_bytes(raw)
    extra = data.draw(st.lists(st.sampled_from([["--labels", "smiling"], ["--labels", "smiling,hair"],
                                                ["--format", "folder"], ["--format", "celeba"]]
                                               + [["--images", str(csv_folder)]] * check), max_size=2))
    if check:                              # --json: the report is on stdout, stderr has errors only
        argv = ["data", "check", data_path, "--json"]
    else:
        argv = ["train", data_path, "--dry-run", "--image-size", "32", "--out", csv_folder / "runs",
                "--cache-dir", csv_folder / "cache"]
    # train prints the data's report on stderr before it refuses data that cannot be trained on
    # (training/loop.py `_new_run`: "see the report above"), so its error line may follow the report
    assert_clean_exit(*run(argv + [x for e in extra for x in e], capsys), preamble=not check)


# ----------------------------------------------------------------------------------------------
# what the fuzzing found, and the one-line plumbing it relies on, as plain cases
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle, command", [
    (["classify", "{face}", "--bogus"], "No such option: --bogus", "ccvae classify"),
    (["traverse", "{face}"], "Missing option '--label'", "ccvae traverse"),
    (["traverse", "{face}", "--label", "smiling", "--steps", "abc"], "Invalid value for '--steps'", "ccvae traverse"),
    (["classify"], "Missing argument 'IMG'", "ccvae classify"),
    (["info", "a", "b"], "unexpected extra argument", "ccvae info"),
    (["nope"], "No such command 'nope'", "ccvae"),
    (["data", "nope"], "No such command 'nope'", "ccvae data"),
    (["classify", "{face}", "--draws"], "'--draws' requires an argument", None),
    (["classify", "{face}", "--draws", "\x1b[2J"], "Invalid value for '--draws'", "ccvae classify"),
])
def test_click_usage_errors_are_one_line(face, capsys, argv, needle, command):
    """click's own usage errors: one line and exit 2 like ours (its usage block is left out), with
    the command whose --help to read."""
    code, out, err = run([a.replace("{face}", str(face)) for a in argv], capsys)
    line = assert_one_line(code, err, (2,), needle)
    assert_clean_exit(code, out, err)
    assert line.endswith(f"(see '{command} --help')") if command else "--help" not in line


@pytest.mark.parametrize("argv, stream, needle, code", [
    (["--help"], "out", "Usage: ccvae [OPTIONS] COMMAND", 0),
    (["classify", "--help"], "out", "Usage: ccvae classify", 0),
    (["--version"], "out", "ccvae ", 0),
    ([], "err", "Usage: ccvae [OPTIONS] COMMAND", 2),              # no command: the help, exit 2
    (["data"], "err", "Usage: ccvae data", 2),
])
def test_help_and_version_as_before(capsys, argv, stream, needle, code):
    got, out, err = run(argv, capsys)
    assert got == code and needle in (out if stream == "out" else err), (out, err)


def test_ctrl_c_is_one_line_and_exit_130(face, capsys, monkeypatch):
    from ccvae_tools.cli import io as cli_io

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_io, "resolve_model_path", interrupted)
    code, out, err = run(["info"], capsys)
    assert (code, err) == (130, "ccvae: interrupted\n")


@pytest.mark.parametrize("argv", [["info", "{long}"], ["labels", "-m", "{long}"], ["data", "check", "{long}"],
                                  ["classify", "{long}", "-m", "{tiny}"], ["classify", "{face}", "-m", "{long}"]])
def test_a_name_too_long_is_one_line(face, tiny, capsys, argv):
    """Found by the fuzzing: a path of 300 characters made `exists()` raise (ENAMETOOLONG), an
    internal error; any OS error naming a file is now one line naming it."""
    long = "L" * 300
    code, out, err = run([a.format(long=long, face=face, tiny=tiny) for a in argv], capsys)
    assert_one_line(code, err, (1,), long, "too long")


def test_pil_warnings_do_not_reach_stderr(tiny, capsys):
    """Found by the fuzzing: 8 bytes of a TIFF header made PIL warn 'Corrupt EXIF data' (two lines
    of Python warning on stderr) before our one line."""
    code, out, err = run(["classify", "-", "-m", tiny], capsys, stdin=b"II*\x00\x00\x00\x00\x01")
    assert_one_line(code, err, (1,), "<stdin>: not an image file")
    assert_clean_exit(code, out, err)


@pytest.mark.parametrize("count", ["9" * 5000, "\u00b2"])
def test_celeba_count_line_that_is_no_count(tmp_path, capsys, count):
    """Found by the fuzzing: line 1 of list_attr_celeba.txt with 5,000 digits (int() refuses over
    4,300: ValueError, an internal error), or a digit int() does not read ('\u00b2')."""
    from ccvae_tools.data.celeba import parse_attr_file

    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text(f"{count}\nSmiling\na.png 1\n", encoding="utf-8")
    files, names, values, notes = parse_attr_file(attr)
    assert files == ["a.png"] and names == ["Smiling"] and "line 1 is not an image count" in notes[0]


@pytest.mark.parametrize("text, number", [("12", 12), ("007", 7), ("0", 0), ("", None), ("-1", None), ("+1", None),
                                          ("\u00b2", None), ("\u0663", None), ("1_0", None), (" 1", None),
                                          ("9" * 18, int("9" * 18)), ("9" * 19, None), ("9" * 5000, None)])
def test_whole_number(text, number):
    from ccvae_tools.util.ranges import whole_number

    assert whole_number(text) == number


@pytest.mark.parametrize("crop", ["\u00b2", "9" * 5000, "1" * 40])
def test_crop_that_is_no_number_is_one_line(tmp_path, capsys, crop):
    code, out, err = run(["train", tmp_path, "--dry-run", "--crop", crop, "--out", tmp_path / "runs"], capsys)
    assert_one_line(code, err, (2,), "unknown crop")


@pytest.mark.parametrize("value", ["", "bicubic", "\x1b[2J"])
def test_resample_that_is_no_choice_is_one_line(face, tiny, tmp_path, capsys, value):
    """Found by the fuzzing: --resample was used unchecked, so a bad word was a KeyError (an
    internal error) once tiles were upscaled, and ignored otherwise."""
    code, out, err = run(["gif", face, "-m", tiny, "--frames", "8", "--resample", value, "-o", tmp_path / "g.gif"],
                         capsys)
    assert_one_line(code, err, (2,), "--resample", "use one of nearest, lanczos")
    assert_clean_exit(code, out, err)
    assert not (tmp_path / "g.gif").exists()


def test_resample_choices_are_what_render_draws_with():
    from ccvae_tools import render
    from ccvae_tools.cli.params import RESAMPLE

    for word in render.RESAMPLE:
        assert RESAMPLE.callback(word.upper()) == word
