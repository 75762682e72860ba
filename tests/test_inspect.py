"""info, labels, classify, reconstruct on a tiny weights file, and every bad input a user can give them.

Most runs go in-process through `ccvae_tools.cli.main` (torch is imported once); a few run the real
`python -m ccvae_tools` to check exit codes, stderr and imports end to end.
"""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.tiny_model import make_tiny_weights
from helpers.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["Smiling", "Eyeglasses", "Blond_Hair"]


# ----------------------------------------------------------------------------------------------
# helpers and fixtures
# ----------------------------------------------------------------------------------------------

def run_proc(args, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("CCVAE_DEBUG", None)
    e.pop("CCVAE_MODEL", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "ccvae_tools", *map(str, args)], input=stdin,
                          capture_output=True, env=e, cwd=ROOT, timeout=120)


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert code == expected_code, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ccvae: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


pytestmark = pytest.mark.usefixtures("clean_env")      # conftest.py


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def gray_weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("w1") / "tiny1.safetensors", channels=1)


def noise(w: int, h: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def png_bytes(w: int, h: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise(w, h, seed)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A valid PNG header that claims w x h pixels (900 megapixels) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Good, odd and bad images, each in its own folder (so no output may appear beside it)."""
    root = tmp_path_factory.mktemp("imgs")
    made: dict[str, Path] = {}

    def put(key: str, filename: str) -> Path:
        d = root / key
        d.mkdir()
        made[key] = d / filename
        return made[key]

    Image.fromarray(noise(48, 48, 0)).save(put("good", "face.png"))
    Image.fromarray(noise(48, 48, 1)).save(put("good2", "face2.png"))
    Image.fromarray(noise(64, 64, 2)).save(put("good_jpg", "face.jpg"), quality=90)
    put("missing", "missing.png")                                       # never written
    put("folder", "folder.png").mkdir()
    put("empty", "empty.png").write_bytes(b"")
    put("text", "notes.png").write_text("this is not an image\n")
    put("trunc_png", "trunc.png").write_bytes(png_bytes(64, 64)[:2000])
    jpg = io.BytesIO()
    Image.fromarray(noise(64, 64, 3)).save(jpg, format="JPEG", quality=95)
    put("trunc_jpg", "trunc.jpg").write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 2])
    Image.fromarray(noise(1, 1)).save(put("one_px", "dot.png"))
    put("bomb", "bomb.png").write_bytes(bomb_png())
    Image.fromarray((np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 28)).save(put("png16", "deep.png"))
    pal = Image.fromarray(noise(48, 48, 4, channels=1) // 64, "L").convert("P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 20, 20, 20] + [0] * 756)
    pal.save(put("palette_t", "pal.png"), transparency=0)
    Image.fromarray(noise(48, 48, 5)).convert("CMYK").save(put("cmyk", "cmyk.jpg"), quality=90)
    rot = Image.fromarray(noise(60, 48, 6))
    exif = rot.getexif()
    exif[0x0112] = 6
    rot.save(put("exif", "rotated.jpg"), exif=exif, quality=90)
    frames = [Image.fromarray(noise(48, 48, 10 + k)) for k in range(3)]
    frames[0].save(put("gif", "anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.fromarray(noise(48, 48, 7, channels=1), "L").save(put("gray", "gray.png"))
    return made


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ----------------------------------------------------------------------------------------------
# info and labels
# ----------------------------------------------------------------------------------------------

def test_info_card(weights, capsys):
    code, out, err = run_cli(["info", weights], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "tiny test model"
    for needle in ("32x32 px, RGB", "ccvae-conv/32px", "z = 7: z_c 3 (1 per label), z_s 4", "Smiling",
                   "Eyeglasses", "Blond_Hair", "prior 0 0.40, 1 0.60", "data           tiny",
                   "0 epochs", "metrics        none recorded", "licence", "ccvae 0.1.0", "KB)"):
        assert needle in out, needle
    assert "\x1b[" not in out                             # no colour off a terminal
    assert err == f"model: {weights}\n"                  # which weights, on stderr (tests/test_which_model.py)
    code2, out2, _ = run_cli(["info", "-m", weights], capsys)
    assert code2 == 0 and out2 == out


def test_info_json(weights, capsys):
    code, out, err = run_cli(["info", weights, "--json"], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 1
    card = json.loads(out)
    assert card["image_size"] == 32 and card["channels"] == 3
    assert [lab["name"] for lab in card["labels"]] == LABELS
    assert card["labels"][0]["classes"] == ["0", "1"]
    assert card["labels"][2]["prior"]["0"] == pytest.approx(0.6)
    assert card["latent"] == {"z_dim": 7, "z_c": {"Smiling": 1, "Eyeglasses": 1, "Blond_Hair": 1}, "z_style": 4}
    assert card["file_size"] == weights.stat().st_size and card["parameters"] > 0


def test_info_shows_metrics_and_training(tmp_path, capsys):
    """A trained-looking card: data counts, options and accuracy against the majority baseline."""
    import torch
    from safetensors.torch import load_file, save_file

    from ccvae_tools.model.weights import read_header

    src = make_tiny_weights(tmp_path / "t.safetensors")
    meta = read_header(src)["metadata"]
    meta["ccvae.data"] = json.dumps({"name": "celeba", "images": 1000, "train": 800, "labelled": 48,
                                     "labelled_fraction": 0.06})
    meta["ccvae.train"] = json.dumps({"epochs": 200, "epoch": 200, "step": 4000, "seed": 3,
                                      "options": {"lr": 0.0001, "batch_size": 200, "sup_frac": 0.06,
                                                  "data": "/secret/path"}})
    meta["ccvae.metrics"] = json.dumps({"split": "valid", "images": 100,
                                        "accuracy": {"Smiling": 0.9, "Eyeglasses": 0.5},
                                        "balanced_accuracy": {"Smiling": 0.88, "Eyeglasses": 0.5},
                                        "majority_baseline": {"Smiling": 0.6, "Eyeglasses": 0.7}})
    meta["modelspec.license"] = "MIT"
    tensors: dict[str, torch.Tensor] = load_file(src)
    save_file(tensors, tmp_path / "trained.safetensors", metadata=meta)
    code, out, err = run_cli(["info", tmp_path / "trained.safetensors"], capsys)
    assert code == 0, err
    assert "celeba: 1,000 images, 800 train, 48 labelled (6.0%)" in out
    assert "200 epochs" in out and "seed 3" in out and "lr=0.0001" in out and "batch_size=200" in out
    assert "/secret/path" not in out
    assert "Smiling     accuracy 0.900  balanced 0.880  majority 0.600  (beats it)" in out
    assert "(DOES NOT beat it)" in out
    assert "licence        MIT" in out


def test_labels(weights, capsys):
    code, out, err = run_cli(["labels", "-m", weights], capsys)
    assert code == 0, err
    assert out == "Smiling\nEyeglasses\nBlond_Hair\n"


def test_labels_from_env(weights, capsys, monkeypatch):
    monkeypatch.setenv("CCVAE_MODEL", str(weights))
    code, out, _ = run_cli(["labels"], capsys)
    assert code == 0 and out.split() == LABELS


def test_info_two_weights_is_usage_error(weights, tmp_path, capsys):
    code, _, err = run_cli(["info", weights, "-m", tmp_path / "other.safetensors"], capsys)
    assert_one_line_error(code, err, 2, "two weights files")


def test_info_and_labels_do_not_import_torch(weights):
    code = f"""
import sys
from ccvae_tools.cli import main
for argv in (["info", {str(weights)!r}], ["info", {str(weights)!r}, "--json"], ["labels", "-m", {str(weights)!r}],
             ["--help"], ["classify", "--help"]):
    try:
        main(argv)
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
heavy = sorted(m for m in ("torch", "numpy", "PIL", "safetensors") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "HEAVY=\n" in p.stderr or p.stderr.rstrip().endswith("HEAVY="), p.stderr


# ----------------------------------------------------------------------------------------------
# classify
# ----------------------------------------------------------------------------------------------

def test_classify_table(weights, images, capsys):
    code, out, err = run_cli(["classify", "-m", weights, images["good"], images["good2"]], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "P(Smiling)" in lines[0] and "P(Eyeglasses)" in lines[0] and "P(Blond_Hair)" in lines[0]
    rows = [l for l in lines if "face" in l]
    assert len(rows) == 2 and str(images["good"]) in rows[0] and str(images["good2"]) in rows[1]
    vals = [float(v) for v in rows[0].split()[1:]]
    assert len(vals) == 3 and all(0.0 <= v <= 1.0 for v in vals)
    assert "\x1b[" not in out


def test_classify_table_keeps_odd_file_names(weights, images, tmp_path, capsys):
    odd = tmp_path / "photo [bold]1.png"
    odd.write_bytes(images["good"].read_bytes())
    code, out, err = run_cli(["classify", "-m", weights, odd], capsys)
    assert code == 0, err
    assert str(odd) in out


def test_classify_json_lines(weights, images, capsys):
    inputs = [images["good"], images["good2"], images["good_jpg"]]
    code, out, err = run_cli(["classify", "-m", weights, *inputs, "--json"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for line, src in zip(lines, inputs):
        r = json.loads(line)
        assert r["input"] == str(src)
        assert list(r["probabilities"]) == LABELS
        assert all(0.0 <= p <= 1.0 for p in r["probabilities"].values())
        for lab in LABELS:
            assert r["predicted"][lab] == ("1" if r["probabilities"][lab] >= 0.5 else "0")


def test_classify_deterministic_and_mean(weights, images, capsys):
    args = ["classify", "-m", weights, images["good"], images["good_jpg"], "--json"]
    _, a, _ = run_cli(args, capsys)
    _, b, _ = run_cli(args, capsys)
    assert a == b                                               # fixed seed: the same draws
    code, m1, err = run_cli(args + ["--mean"], capsys)
    assert code == 0, err
    _, m2, _ = run_cli(args + ["--mean"], capsys)
    assert m1 == m2 and m1 != a
    _, k10, _ = run_cli(args + ["--draws", "10", "--seed", "1"], capsys)
    assert k10 != a and len(k10.splitlines()) == 2


def test_classify_result_does_not_depend_on_batching(weights, images, capsys):
    inputs = [images["good"], images["good2"], images["good_jpg"], images["good"]]
    _, a, _ = run_cli(["classify", "-m", weights, *inputs, "--json"], capsys)
    _, b, _ = run_cli(["classify", "-m", weights, *inputs, "--json", "--batch-size", "1"], capsys)
    ra = [json.loads(l)["probabilities"] for l in a.splitlines()]
    rb = [json.loads(l)["probabilities"] for l in b.splitlines()]
    for x, y in zip(ra, rb):
        for k in x:
            assert x[k] == pytest.approx(y[k], abs=1e-5)
    assert ra[0] == ra[3]


def test_classify_cli_and_api_agree(weights, images, capsys):
    """`ccvae classify` and `LoadedModel.classify` are one q(y|x): the same numbers for the same seed."""
    from ccvae_tools.cli.io import read_inputs
    from ccvae_tools.model.api import load

    inputs = [images["good"], images["good2"], images["good_jpg"]]
    m = load(weights)
    arr = np.stack([a for _, a in read_inputs(inputs, m.preprocess)])
    for extra, draws, seed in (([], 100, 0), (["--draws", "7", "--seed", "3"], 7, 3), (["--mean"], 0, 0)):
        code, out, err = run_cli(["classify", "-m", weights, *inputs, "--json", "--batch-size", "2", *extra], capsys)
        assert code == 0, err
        api = m.classify(arr, draws=draws, seed=seed, batch_size=2)
        assert api.shape == (3, len(LABELS), 2)
        for line, probs in zip(out.splitlines(), api):
            cli = json.loads(line)["probabilities"]
            assert cli == {name: round(min(1.0, max(0.0, float(probs[i, 1]))), 6) for i, name in enumerate(LABELS)}
    # the same K noise vectors for every image: its result depends neither on its batch nor its position
    alone = m.classify(arr[2:], draws=7, seed=3)
    together = m.classify(arr[[2, 0, 1]], draws=7, seed=3, batch_size=3)
    assert np.allclose(alone[0].numpy(), together[0].numpy(), atol=1e-6)
    assert not np.allclose(m.classify(arr, draws=7, seed=4).numpy(), m.classify(arr, draws=7, seed=3).numpy())


def test_model_card_shows_only_the_chosen_training_options(tmp_path):
    from safetensors.torch import load_file, save_file

    from ccvae_tools.model.card import model_card
    from ccvae_tools.model.weights import read_header

    src = make_tiny_weights(tmp_path / "t.safetensors")
    meta = read_header(src)["metadata"]
    meta["ccvae.train"] = json.dumps({"epochs": 2, "options": {"lr": 0.001, "data": "/secret/path", "seed": 1}})
    save_file(load_file(src), tmp_path / "o.safetensors", metadata=meta)
    card = model_card(tmp_path / "o.safetensors", shown_options=("seed", "lr", "batch_size"))
    assert card["train"] == {"epochs": 2, "options": {"seed": 1, "lr": 0.001}}
    assert model_card(src, shown_options=("lr",))["train"] == {"epochs": 0}       # no options recorded


def test_classify_multiclass_json(tmp_path, images, capsys):
    import torch

    from ccvae_tools.data.base import Label, Preprocess
    from ccvae_tools.model.network import CCVAE, ModelConfig
    from ccvae_tools.model.weights import build_metadata, save_model

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, channels=3, labels=[Label("Smiling"), Label("Hair", ("black", "blond", "red"))],
                      z_style=4, widths=(8, 8, 8), hidden=16)
    m = CCVAE(cfg)
    w = save_model(m, tmp_path / "mc.safetensors", build_metadata(m, Preprocess(32, 3, "center", None)))
    code, out, err = run_cli(["classify", "-m", w, images["good"], "--json", "--mean"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert set(r["probabilities"]["Hair"]) == {"black", "blond", "red"}
    assert sum(r["probabilities"]["Hair"].values()) == pytest.approx(1.0, abs=1e-4)
    assert r["predicted"]["Hair"] in ("black", "blond", "red")
    code, out, err = run_cli(["classify", "-m", w, images["good"], "--mean"], capsys)
    assert code == 0 and "Hair" in out


def test_classify_many_images_in_batches(weights, tmp_path, capsys):
    paths = []
    for i in range(40):
        p = tmp_path / f"img{i:02d}.jpg"
        Image.fromarray(noise(40, 40, i)).save(p, quality=90)
        paths.append(p)
    code, out, err = run_cli(["classify", "-m", weights, *paths, "--json", "--mean", "--batch-size", "16"],
                             capsys)
    assert code == 0, err
    assert [json.loads(l)["input"] for l in out.splitlines()] == [str(p) for p in paths]


# ----------------------------------------------------------------------------------------------
# reconstruct
# ----------------------------------------------------------------------------------------------

def test_reconstruct_one_default_name(weights, tmp_path, capsys):
    src = tmp_path / "face.png"
    Image.fromarray(noise(48, 48)).save(src)
    code, out, err = run_cli(["reconstruct", "-m", weights, src], capsys)
    assert code == 0, err
    target = tmp_path / "face.recon.png"
    assert out == f"{target}\n"
    with Image.open(target) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    assert files_in(tmp_path) == ["face.png", "face.recon.png"]


def test_reconstruct_explicit_output_and_sample(weights, tmp_path, capsys):
    src = tmp_path / "face.png"
    Image.fromarray(noise(48, 48)).save(src)
    code, out, err = run_cli(["reconstruct", "-m", weights, src, "-o", tmp_path / "r.jpg"], capsys)
    assert code == 0 and out.strip() == str(tmp_path / "r.jpg"), err
    assert Image.open(tmp_path / "r.jpg").format == "JPEG"
    run_cli(["reconstruct", "-m", weights, src, "-o", tmp_path / "mean.png"], capsys)
    run_cli(["reconstruct", "-m", weights, src, "-o", tmp_path / "s0.png", "--sample"], capsys)
    run_cli(["reconstruct", "-m", weights, src, "-o", tmp_path / "s0b.png", "--sample", "--seed", "0"], capsys)
    run_cli(["reconstruct", "-m", weights, src, "-o", tmp_path / "s1.png", "--sample", "--seed", "1"], capsys)
    px = {n: np.asarray(Image.open(tmp_path / n)) for n in ("mean.png", "s0.png", "s0b.png", "s1.png")}
    assert np.array_equal(px["s0.png"], px["s0b.png"])
    assert not np.array_equal(px["s0.png"], px["s1.png"])
    assert not np.array_equal(px["mean.png"], px["s0.png"])


def test_reconstruct_several_inputs(weights, tmp_path, capsys):
    srcs = []
    for i in range(3):
        d = tmp_path / f"d{i}"
        d.mkdir()
        srcs.append(d / f"f{i}.png")
        Image.fromarray(noise(40, 40, i)).save(srcs[-1])
    code, out, err = run_cli(["reconstruct", "-m", weights, *srcs], capsys)
    assert code == 0, err
    assert out.splitlines() == [str(s.with_name(s.stem + ".recon.png")) for s in srcs]
    outdir = tmp_path / "out"
    outdir.mkdir()
    code, out, err = run_cli(["reconstruct", "-m", weights, *srcs, "-o", outdir, "--format", "webp"], capsys)
    assert code == 0, err
    assert files_in(outdir) == ["f0.recon.webp", "f1.recon.webp", "f2.recon.webp"]
    assert out.splitlines() == [str(outdir / f"f{i}.recon.webp") for i in range(3)]


def test_reconstruct_several_inputs_errors(weights, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    Image.fromarray(noise(40, 40, 0)).save(a / "face.png")
    Image.fromarray(noise(40, 40, 1)).save(b / "face.png")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _, err = run_cli(["reconstruct", "-m", weights, a / "face.png", b / "face.png", "-o", tmp_path / "nope"],
                           capsys)
    assert_one_line_error(code, err, 1, "nope", "create it first")
    code, _, err = run_cli(["reconstruct", "-m", weights, a / "face.png", b / "face.png", "-o", tmp_path / "x.png"],
                           capsys)
    assert_one_line_error(code, err, 2, "must be a folder")
    code, _, err = run_cli(["reconstruct", "-m", weights, a / "face.png", b / "face.png", "-o", "-"], capsys)
    assert_one_line_error(code, err, 2, "one input")
    out = tmp_path / "o"
    out.mkdir()
    code, _, err = run_cli(["reconstruct", "-m", weights, a / "face.png", b / "face.png", "-o", out], capsys)
    assert_one_line_error(code, err, 2, "both be written")
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(before + ["o"])


def test_reconstruct_stdout_and_stdin_end_to_end(weights, images):
    p = run_proc(["reconstruct", "-m", weights, images["good"], "-o", "-"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(p.stdout)).size == (32, 32)
    assert files_in(images["good"].parent) == ["face.png"]
    q = run_proc(["reconstruct", "-m", weights, "-", "-o", "-", "--format", "jpg"],
                 stdin=images["good"].read_bytes())
    assert q.returncode == 0, q.stderr
    assert q.stdout[:3] == b"\xff\xd8\xff"
    c = run_proc(["classify", "-m", weights, "-", "--json", "--mean"], stdin=images["good"].read_bytes())
    assert c.returncode == 0 and json.loads(c.stdout)["input"] == "<stdin>"


# ----------------------------------------------------------------------------------------------
# every bad input: one line, an exit code, no traceback, no output file
# ----------------------------------------------------------------------------------------------

BAD_IMAGES = [
    ("missing", "no such file"),
    ("folder", "is a folder"),
    ("empty", "empty file"),
    ("text", "not an image file"),
    ("trunc_png", "truncated"),
    ("trunc_jpg", "truncated"),
    ("one_px", "only 1x1 pixels"),
    ("bomb", "too large"),
]


@pytest.mark.parametrize("key,needle", BAD_IMAGES)
@pytest.mark.parametrize("command", ["reconstruct", "classify"])
def test_bad_image(weights, images, capsys, command, key, needle):
    src = images[key]
    before = files_in(src.parent)
    code, out, err = run_cli([command, "-m", weights, src], capsys)
    assert_one_line_error(code, err, 1, str(src), needle)
    assert out == ""
    assert files_in(src.parent) == before


@pytest.mark.parametrize("key,needle", BAD_IMAGES[2:4])
def test_bad_image_among_good_ones_fails_the_run(weights, images, capsys, key, needle):
    code, _, err = run_cli(["classify", "-m", weights, images["good"], images[key], images["good2"], "--json"],
                           capsys)
    assert_one_line_error(code, err, 1, str(images[key]), needle)


@pytest.mark.parametrize("key", ["png16", "palette_t", "cmyk", "exif", "gif", "gray"])
def test_odd_images_work(weights, images, capsys, tmp_path, key):
    out = tmp_path / f"{key}.png"
    code, stdout, err = run_cli(["reconstruct", "-m", weights, images[key], "-o", out], capsys)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    code, stdout, err = run_cli(["classify", "-m", weights, images[key], "--json", "--mean"], capsys)
    assert code == 0, err
    assert set(json.loads(stdout)["probabilities"]) == set(LABELS)
    if key in ("gray", "png16"):                      # 16-bit PNGs here are grayscale too
        assert "grayscale image for a colour (RGB) model" in err
    else:
        assert "warning" not in err


def test_exif_rotation_is_applied(weights, images):
    from ccvae_tools.data.base import Preprocess
    from ccvae_tools.data.images import load_image

    pre = Preprocess(32, 3, "squash", None)
    arr = load_image(images["exif"], pre)
    with Image.open(images["exif"]) as im:
        assert im.size == (60, 48)
        upright = np.asarray(im.transpose(Image.Transpose.ROTATE_270).convert("RGB").resize((32, 32),
                                                                                            Image.Resampling.LANCZOS))
    assert np.abs(arr.transpose(1, 2, 0).astype(int) - upright.astype(int)).mean() < 3


def test_animated_gif_uses_first_frame(weights, images, capsys):
    from ccvae_tools.cli.io import read_inputs
    from ccvae_tools.data.base import Preprocess

    pre = Preprocess(32, 3, "center", None)
    with Image.open(images["gif"]) as im:
        first = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.LANCZOS))
    (_, arr), = read_inputs([str(images["gif"])], pre)
    assert np.array_equal(arr.transpose(1, 2, 0), first)


def test_rgb_to_gray_model(gray_weights, images, capsys, tmp_path):
    out = tmp_path / "g.png"
    code, stdout, err = run_cli(["reconstruct", "-m", gray_weights, images["good"], "-o", out], capsys)
    assert code == 0, err
    assert "colour image for a grayscale model" in err
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == (32, 32)
    code, stdout, err = run_cli(["classify", "-m", gray_weights, images["gray"], "--json"], capsys)
    assert code == 0 and "warning" not in err


# -- weights -------------------------------------------------------------------------------------

def _rewrite_metadata(src: Path, dst: Path, change) -> Path:
    from safetensors.torch import load_file, save_file

    from ccvae_tools.model.weights import read_header

    meta = dict(read_header(src)["metadata"])
    change(meta)
    save_file(load_file(src), dst, metadata=meta)
    return dst


@pytest.fixture(scope="module")
def bad_weights(weights, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("badw")
    data = weights.read_bytes()
    out = {}
    out["truncated"] = d / "truncated.safetensors"
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["not_safetensors"] = d / "model.safetensors"
    out["not_safetensors"].write_text("<html>404 not found</html>\n" * 10)
    out["empty"] = d / "empty.safetensors"
    out["empty"].write_bytes(b"")
    out["other_family"] = _rewrite_metadata(
        weights, d / "lora.safetensors",
        lambda m: [m.pop(k) for k in list(m) if k.startswith("ccvae.")] and m.update(
            {"modelspec.architecture": "stable-diffusion-v1/lora"}))
    out["missing_meta"] = _rewrite_metadata(weights, d / "nolabels.safetensors",
                                            lambda m: m.pop("ccvae.labels"))
    out["architecture"] = _rewrite_metadata(
        weights, d / "arch.safetensors",
        lambda m: m.update({"ccvae.config": m["ccvae.config"].replace('"ccvae-conv"', '"ccvae-transformer"')}))
    return out


WEIGHT_CASES = [
    ("truncated", "truncated"),
    ("not_safetensors", "not a safetensors file"),
    ("empty", "empty or truncated"),
    ("other_family", "not a ccvae model"),
    ("missing_meta", "missing metadata: ccvae.labels"),
]


@pytest.mark.parametrize("key,needle", WEIGHT_CASES)
@pytest.mark.parametrize("command", ["info", "labels", "classify", "reconstruct"])
def test_bad_weights(bad_weights, images, capsys, command, key, needle):
    w = bad_weights[key]
    argv = [command, "-m", w] + ([images["good"]] if command in ("classify", "reconstruct") else [])
    code, out, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, 1, str(w), needle)
    assert out == ""
    assert files_in(images["good"].parent) == ["face.png"]


def test_weights_of_unknown_architecture(bad_weights, images, capsys):
    code, out, err = run_cli(["reconstruct", "-m", bad_weights["architecture"], images["good"]], capsys)
    assert_one_line_error(code, err, 1, "ccvae-transformer")
    assert files_in(images["good"].parent) == ["face.png"]


@pytest.mark.parametrize("command", ["info", "labels", "classify", "reconstruct"])
def test_unknown_model_path(tmp_path, images, capsys, command):
    w = tmp_path / "nope.safetensors"
    argv = [command, "-m", w] + ([images["good"]] if command in ("classify", "reconstruct") else [])
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, 1, str(w), "no such weights file")


def test_no_default_weights_message(images, capsys, monkeypatch, tmp_path):
    from ccvae_tools.cli import io as cli_io

    monkeypatch.setattr(cli_io, "default_model_candidates", lambda: [tmp_path / "none.safetensors"])
    code, _, err = run_cli(["labels"], capsys)
    assert_one_line_error(code, err, 1, "--model", "CCVAE_MODEL", str(tmp_path / "none.safetensors"))


def test_bad_device(weights, images, capsys):
    code, _, err = run_cli(["classify", "-m", weights, images["good"], "--device", "tpu"], capsys)
    assert_one_line_error(code, err, 2, "tpu")


# -- outputs -------------------------------------------------------------------------------------

def test_output_into_missing_folder(weights, images, capsys, tmp_path):
    target = tmp_path / "missing" / "out.png"
    code, out, err = run_cli(["reconstruct", "-m", weights, images["good"], "-o", target], capsys)
    assert_one_line_error(code, err, 1, str(tmp_path / "missing"), "does not exist")
    assert not (tmp_path / "missing").exists() and out == ""


def test_unknown_output_extension(weights, images, capsys, tmp_path):
    code, out, err = run_cli(["reconstruct", "-m", weights, images["good"], "-o", tmp_path / "out.tiff"], capsys)
    assert_one_line_error(code, err, 2, "out.tiff", ".png, .jpg, .jpeg, .webp, .gif")
    assert files_in(tmp_path) == []


def test_disk_full_while_writing(weights, images, capsys, tmp_path, monkeypatch):
    target = tmp_path / "r.png"
    target.write_bytes(b"previous result")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    code, out, err = run_cli(["reconstruct", "-m", weights, images["good"], "-o", target], capsys)
    assert_one_line_error(code, err, 1, str(target), "disk full")
    assert target.read_bytes() == b"previous result"
    assert files_in(tmp_path) == ["r.png"] and out == ""


def test_unknown_option_is_usage_error(weights, images, capsys):
    code, _, err = run_cli(["classify", "-m", weights, images["good"], "--nope"], capsys)
    assert code == 2 and "Traceback" not in err


# -- the real process ------------------------------------------------------------------------------

def test_errors_end_to_end_one_line_no_traceback(weights, images, bad_weights):
    p = run_proc(["classify", "-m", weights, images["trunc_png"]])
    assert p.returncode == 1 and p.stdout == b""
    assert p.stderr.decode().strip().count("\n") == 0 and b"Traceback" not in p.stderr
    assert b"truncated" in p.stderr
    p = run_proc(["info", bad_weights["truncated"]])
    assert p.returncode == 1 and b"truncated" in p.stderr and p.stderr.decode().strip().count("\n") == 0
    p = run_proc(["labels"], env={"CCVAE_MODEL": str(images["good"].parent / "nope.safetensors")})
    assert p.returncode == 1 and b"CCVAE_MODEL" in p.stderr
