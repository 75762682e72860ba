"""traverse, gif, sample, edit, swap, interpolate end to end through the CLI, outputs checked."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ccvae_tools.model.api import load
from ccvae_tools.data.images import load_image
from ccvae_tools.interventions import swap, traverse
from helpers.tiny_model import make_tiny_weights

PAD = 2


@pytest.fixture(scope="module")
def env(tmp_path_factory, avatar_celeba_dir):
    d = tmp_path_factory.mktemp("intervene")
    w = make_tiny_weights(d / "tiny.safetensors")
    imgs = sorted((avatar_celeba_dir / "img_align_celeba").glob("*.png"))
    a, b = d / "a.png", d / "b.png"
    a.write_bytes(imgs[0].read_bytes())
    b.write_bytes(imgs[1].read_bytes())
    return {"dir": d, "w": w, "a": a, "b": b, "m": load(w)}


def ccvae(*args, env_, stdin: bytes | None = None, cwd=None):
    return subprocess.run([sys.executable, "-m", "ccvae_tools", *map(str, args), "-m", str(env_["w"])],
                          input=stdin, capture_output=True, cwd=cwd)


def cell(img: Image.Image, row: int, col: int, side: int, left: int = 0) -> np.ndarray:
    x = left + PAD + col * (side + PAD)
    y = PAD + row * (side + PAD)
    return np.asarray(img.convert("RGB"))[y:y + side, x:x + side].transpose(2, 0, 1)


def test_traverse_strip_starts_with_the_input_and_its_reconstruction(env, tmp_path):
    out = tmp_path / "t.png"
    r = ccvae("traverse", env["a"], "--label", "eyeglasses", "--steps", 5, "-o", out, env_=env)
    assert r.returncode == 0, r.stderr
    img = Image.open(out)
    assert img.size == (7 * 32 + 8 * PAD, 32 + 2 * PAD)
    m = env["m"]
    x = load_image(env["a"], m.preprocess)[None]
    mu, _ = m.encode(x)
    assert np.array_equal(cell(img, 0, 0, 32), x[0])
    assert np.array_equal(cell(img, 0, 1, 32), m.decode(mu)[0])
    walk = m.decode(traverse(m.model, mu, 1, steps=5)[0])      # label 1: its own (wide) prior range
    for k in range(5):
        assert np.array_equal(cell(img, 0, 2 + k, 32), walk[k])


def test_traverse_rows_and_2d_grid_sizes(env, tmp_path):
    out = tmp_path / "rows.png"
    assert ccvae("traverse", env["a"], env["b"], "-l", "smiling", "--steps", 4, "-o", out, env_=env).returncode == 0
    assert Image.open(out).size == (6 * 32 + 7 * PAD, 2 * 32 + 3 * PAD)
    grid = tmp_path / "grid.png"
    r = ccvae("traverse", env["a"], "-l", "smiling", "-l", "blond-hair", "--steps", 3, "-o", grid, "--size", 64,
              env_=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(grid).size == (3 * 64 + 4 * PAD, 3 * 64 + 4 * PAD)


def test_default_output_name_is_printed(env, tmp_path):
    src = tmp_path / "face.png"
    src.write_bytes(env["a"].read_bytes())
    r = ccvae("traverse", src, "--label", "Smiling", env_=env)
    assert r.returncode == 0
    assert Path(r.stdout.decode().strip()) == tmp_path / "face.smiling.png"
    assert (tmp_path / "face.smiling.png").exists()


def test_gif_loops_with_holds_and_is_byte_identical(env, tmp_path):
    one, two = tmp_path / "1.gif", tmp_path / "2.gif"
    for out in (one, two):
        r = ccvae("gif", env["a"], "--frames", 16, "--fps", 10, "--probability", "-o", out, env_=env)
        assert r.returncode == 0, r.stderr
    assert one.read_bytes() == two.read_bytes()
    g = Image.open(one)
    assert g.info.get("loop") == 0
    durations = []
    for f in range(g.n_frames):
        g.seek(f)
        durations.append(g.info["duration"])
    # 16 frames at 10 fps plus two 0.4 s holds (identical consecutive frames may be merged by the encoder)
    assert sum(durations) == 16 * 100 + 2 * 400
    assert g.n_frames >= 12


def test_traverse_gif_starts_at_the_reconstruction(env, tmp_path):
    out = tmp_path / "t.gif"
    assert ccvae("traverse", env["a"], "-l", "eyeglasses", "--frames", 12, "--size", 32, "-o", out,
                 env_=env).returncode == 0
    g = Image.open(out)
    g.seek(0)
    m = env["m"]
    x = load_image(env["a"], m.preprocess)[None]
    recon = m.decode(m.encode(x)[0])[0]
    first = cell(g, 0, 0, 32)
    assert np.abs(first.astype(int) - recon.astype(int)).mean() < 8   # GIF palette quantisation


def test_sample_grid_is_diverse_and_deterministic(env, tmp_path):
    a, b = tmp_path / "s1.png", tmp_path / "s2.png"
    for out in (a, b):
        assert ccvae("sample", "--set", "eyeglasses=1", "-n", 4, "--seed", 1, "-o", out, env_=env).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    img = Image.open(a)
    assert img.size == (2 * 32 + 3 * PAD, 2 * 32 + 3 * PAD)
    cells = [cell(img, r, c, 32) for r in range(2) for c in range(2)]
    assert np.stack(cells).astype(float).var(0).mean() > 0
    other = tmp_path / "s3.png"
    assert ccvae("sample", "--set", "eyeglasses=1", "-n", 4, "--seed", 2, "-o", other, env_=env).returncode == 0
    assert other.read_bytes() != a.read_bytes()


def test_edit_to_the_current_class_is_the_reconstruction(env, tmp_path):
    m = env["m"]
    x = load_image(env["a"], m.preprocess)[None]
    mu, _ = m.encode(x)
    current = int(m.classify_codes(mu)[0, 1].argmax())
    same, flipped = tmp_path / "same.png", tmp_path / "flip.png"
    assert ccvae("edit", env["a"], "--set", f"eyeglasses={current}", "-o", same, env_=env).returncode == 0
    assert np.array_equal(np.asarray(Image.open(same)).transpose(2, 0, 1), m.decode(mu)[0])
    assert ccvae("edit", env["a"], "--set", f"eyeglasses={1 - current}", "-o", flipped, env_=env).returncode == 0
    assert not np.array_equal(np.asarray(Image.open(flipped)), np.asarray(Image.open(same)))


def test_swap_of_a_onto_itself_is_the_reconstruction_and_pipes_work(env, tmp_path):
    m = env["m"]
    x = load_image(env["a"], m.preprocess)[None]
    recon = m.decode(m.encode(x)[0])[0]
    data = env["a"].read_bytes()
    r = ccvae("swap", "-", env["a"], "-o", "-", env_=env, stdin=data)     # cat a.png | ccvae swap - a.png -o -
    assert r.returncode == 0, r.stderr
    out = Image.open(io.BytesIO(r.stdout))
    assert out.format == "PNG"
    assert np.array_equal(np.asarray(out).transpose(2, 0, 1), recon)
    r2 = ccvae("swap", "-", env["b"], "-o", "-", env_=env, stdin=data)
    assert r2.returncode == 0
    za = m.encode(x)[0]
    zb = m.encode(load_image(env["b"], m.preprocess)[None])[0]
    expected = m.decode(swap(m.model, za, zb))[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r2.stdout))).transpose(2, 0, 1), expected)


def test_swap_grid_and_cells(env, tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    out = tmp_path / "g.png"
    r = ccvae("swap", env["a"], env["b"], "--grid", "--cells", cells, "-o", out, env_=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (3 * 32 + 4 * PAD, 3 * 32 + 4 * PAD)
    assert sorted(p.name for p in cells.iterdir()) == ["r00-c00.png", "r00-c01.png", "r01-c00.png", "r01-c01.png"]


def test_interpolate_strip_and_gif(env, tmp_path):
    out = tmp_path / "i.png"
    assert ccvae("interpolate", env["a"], env["b"], "--steps", 5, "-o", out, env_=env).returncode == 0
    assert Image.open(out).size == (7 * 32 + 8 * PAD, 32 + 2 * PAD)
    gif = tmp_path / "i.gif"
    assert ccvae("interpolate", env["a"], env["b"], "--steps", 5, "-o", gif, env_=env).returncode == 0
    assert Image.open(gif).n_frames >= 5


def test_sample_codes_are_the_apis(env, tmp_path):
    """--sample --seed draws z ~ q(z|x) as `LoadedModel.codes` does: the path's ends are the two codes."""
    m = env["m"]
    x = np.stack([load_image(env[k], m.preprocess) for k in ("a", "b")])
    assert torch.equal(m.codes(x), m.encode(x)[0])
    z = m.codes(x, sample=True, seed=5)
    assert torch.equal(z, m.codes(x, sample=True, seed=5)) and not torch.equal(z, m.codes(x, sample=True, seed=6))
    out = tmp_path / "i.png"
    r = ccvae("interpolate", env["a"], env["b"], "--steps", 2, "--sample", "--seed", 5, "-o", out, env_=env)
    assert r.returncode == 0, r.stderr
    img = Image.open(out)
    ends = m.decode(z)
    assert np.array_equal(cell(img, 0, 1, 32), ends[0]) and np.array_equal(cell(img, 0, 2, 32), ends[1])


@pytest.mark.parametrize("args, code, words", [
    (["traverse", "A", "--label", "smilling"], 2, "Smiling"),          # a suggestion
    (["edit", "A", "--set", "eyeglasses=7"], 2, "Eyeglasses"),
    (["edit", "A", "--set", "eyeglasses"], 2, "LABEL=VALUE"),
    (["traverse", "A", "-l", "smiling", "-l", "smiling"], 2, "two different"),
    (["swap", "A"], 2, "two images"),
    (["traverse", "A", "-l", "smiling", "-o", "MISSING/x.png"], 1, "MISSING"),
    (["traverse", "A", "-l", "smiling", "-o", "x.bmp"], 2, ".png"),
    (["traverse", "NOPE.png", "-l", "smiling"], 1, "NOPE.png"),
])
def test_bad_usage_is_one_line_and_leaves_no_file(env, tmp_path, args, code, words):
    args = [str(env["a"]) if a == "A" else str(tmp_path / a) if a.startswith(("MISSING", "x.", "NOPE")) else a
            for a in args]
    before = set(tmp_path.iterdir())
    r = ccvae(*args, env_=env, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert words in err and "Traceback" not in err
    assert set(tmp_path.iterdir()) == before


def test_shell_pipelines(env, tmp_path):
    """The two pipelines of the README, run by a real shell."""
    w, a, b = env["w"], env["a"], env["b"]
    r = subprocess.run(["bash", "-c", f"cat '{a}' | {sys.executable} -m ccvae_tools swap - '{b}' -m '{w}' -o - "
                                      f"> '{tmp_path}/out.png'"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out.png").size == (32, 32)
    faces = tmp_path / "faces"
    faces.mkdir()
    for k in range(3):
        (faces / f"img{k}.png").write_bytes((a if k % 2 else b).read_bytes())
    check = ("import json, sys; rows = [json.loads(l) for l in sys.stdin]; "
             "assert len(rows) == 3 and all(0 <= r['probabilities']['Smiling'] <= 1 for r in rows); print('ok')")
    r = subprocess.run(["bash", "-c", f"cd '{faces}' && {sys.executable} -m ccvae_tools classify *.png --json "
                                      f"-m '{w}' | {sys.executable} -c \"{check}\""], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
