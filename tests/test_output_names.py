"""Output names never leave the folder the user chose and never lose work (issue 12, item 2): the one
slug (util/text.py) behind every default name, two inputs with one output name refused, an output
that is one of the inputs refused unless --force."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.cli import io as cli_io
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.text import SLUG_MAX, slug
from helpers.cli import run_cli
from helpers.hostile import HOSTILE, plant_names

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
IDS = list(HOSTILE)
# labels a --set LABEL=VALUE can name (the first '=' ends the name)
SETTABLE = [k for k in IDS if "=" not in HOSTILE[k]]


pytestmark = pytest.mark.usefixtures("clean_env")      # fixtures in conftest.py: clean_env, tiny, face


@pytest.fixture(scope="module")
def planted(tiny, tmp_path_factory):
    """hostile id -> a weights file whose label 0 has that name."""
    d = tmp_path_factory.mktemp("planted")
    return lambda key: plant_names(tiny, d / f"{key}.safetensors", names={0: HOSTILE[key]})


def _png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccvae: error: ") and needle in lines[0], err


# ----------------------------------------------------------------------------------------------
# the slug
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", IDS)
def test_slug_is_one_safe_file_name_part(key):
    s = slug(HOSTILE[key])
    assert SLUG.fullmatch(s) and ".." not in s and len(s) <= SLUG_MAX
    assert not s.endswith((".", "-", "_")) and slug(s) == s          # idempotent
    assert os.path.basename(s) == s and s not in (".", "..")


@pytest.mark.parametrize("name, expected", [
    ("Smiling", "Smiling"), ("blond hair", "blond_hair"), ("Blond_Hair", "Blond_Hair"),
    ("x/../../escaped", "x_._._escaped"), ("/etc/passwd", "etc_passwd"), ("..\\..\\win", "win"),
    (".bashrc", "bashrc"), ("-rf", "rf"), ("L\u00e4cheln", "Lacheln"), ("a.b", "a.b"), ("v1.2", "v1.2"),
    ("", "label"), ("   ", "label"), ("CON", "CON_"), ("nul.txt", "nul_.txt"), ("[/x]", "x"),
])
def test_slug_examples(name, expected):
    assert slug(name) == expected


@pytest.mark.parametrize("a, b", [("..", "."), ("\u7b11", "\u6ce3"), ("L" * 300, "L" * 299 + "M"),
                                  ("\x1b[2J", "\x1b[3J")])
def test_names_that_lose_everything_or_are_cut_stay_apart(a, b):
    assert slug(a) != slug(b)
    assert SLUG.fullmatch(slug(a)) and SLUG.fullmatch(slug(b))


def test_slug_fallback_and_length():
    assert slug("..", fallback="out").startswith("out-")
    assert len(slug("x" * 1000, max_len=20)) == 20


def test_fonts_use_the_shared_slug():
    from ccvae_tools.data import fonts

    for text in HOSTILE.values():
        assert fonts.slug(text) == slug(text, max_len=80, fallback="font")


# ----------------------------------------------------------------------------------------------
# default names and the checks, as functions
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", IDS)
@pytest.mark.parametrize("src", ["in/face.png", "-"])
def test_default_output_stays_in_the_inputs_folder(key, src):
    out = cli_io.default_output(src, HOSTILE[key], "png")
    folder = "" if src == "-" else "in"
    assert os.path.dirname(out) == folder
    name = os.path.basename(out)
    assert name.endswith(".png") and SLUG.fullmatch(name) and ".." not in name


def test_default_output_fits_in_one_file_name():
    out = cli_io.default_output("d/" + "f" * 250 + ".png", "L" * 300, "png")
    assert len(os.fsencode(os.path.basename(out))) <= 255 and out.startswith("d/fff") and out.endswith(".png")


def test_check_targets(tmp_path):
    a, b = _png(tmp_path / "d1" / "face.png"), _png(tmp_path / "d2" / "face.png", 1)
    out = tmp_path / "out"
    out.mkdir()
    cli_io.check_targets([str(out / "face.edit.png")], [str(a)])                   # fine
    cli_io.check_targets(["-", "-"], [str(a), str(b)])                             # stdout is no file
    with pytest.raises(UsageError, match="both be written"):
        cli_io.check_targets([str(out / "face.edit.png")] * 2, [str(a), str(b)])
    with pytest.raises(UsageError, match="both be written"):                   # spelt differently
        cli_io.check_targets([str(out / "x.png"), str(out / ".." / "out" / "x.png")], [str(a), str(b)])
    with pytest.raises(UsageError, match="is one of the inputs"):
        cli_io.check_targets([str(a)], [str(a)])
    cli_io.check_targets([str(a)], [str(a)], force=True)
    os.symlink(a, tmp_path / "link.png")
    os.link(a, tmp_path / "hard.png")
    for other in ("link.png", "hard.png"):
        with pytest.raises(UsageError, match="is one of the inputs"):
            cli_io.check_targets([str(tmp_path / other)], [str(a)])


# ----------------------------------------------------------------------------------------------
# default names from hostile labels, end to end
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", IDS)
def test_traverse_default_name_from_a_hostile_label(planted, tmp_path, key, capsys):
    src = _png(tmp_path / "a" / "b" / "face.png")
    before = tree(tmp_path)
    code, out, err = run_cli(["traverse", src, "-m", planted(key), "--label", HOSTILE[key], "--steps", 2], capsys)
    assert code == 0, err
    written = Path(out.strip())
    assert written.parent == src.parent and written.is_file()
    assert re.fullmatch(r"face\.[A-Za-z0-9._-]+\.png", written.name) and ".." not in written.name
    assert tree(tmp_path) == before | {str(written.relative_to(tmp_path))}


@pytest.mark.parametrize("key", ["traversal", "dotdot", "abs_path", "osc_title", "long"])
def test_gif_default_name_from_a_hostile_label(planted, tmp_path, key, capsys):
    src = _png(tmp_path / "in" / "face.png")
    code, out, err = run_cli(["gif", src, "-m", planted(key), "-l", HOSTILE[key], "--frames", 8], capsys)
    assert code == 0, err
    written = Path(out.strip())
    assert written.parent == src.parent and written.suffix == ".gif" and written.is_file()
    assert tree(tmp_path) == {"in", "in/face.png", f"in/{written.name}"}


@pytest.mark.parametrize("key", [k for k in SETTABLE if k in ("traversal", "dotdot", "abs_path", "windows",
                                                              "hidden", "osc_title", "newline", "long")])
def test_sample_default_name_is_in_the_current_folder(planted, tmp_path, monkeypatch, key, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["sample", "-m", planted(key), "--set", f"{HOSTILE[key]}=1", "-n", 1], capsys)
    assert code == 0, err
    name = out.strip()
    assert re.fullmatch(r"ccvae-[A-Za-z0-9._-]+\.png", name) and ".." not in name and len(name) < 80
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("key", ["traversal", "dotdot", "abs_path", "hidden"])
def test_stdin_default_name_is_in_the_current_folder(planted, tmp_path, monkeypatch, key, capsys):
    data = _png(tmp_path / "src" / "face.png").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run_cli(["traverse", "-", "-m", planted(key), "-l", HOSTILE[key], "--steps", 2], capsys)
    assert code == 0, err
    assert re.fullmatch(r"ccvae-[A-Za-z0-9._-]+\.png", out.strip())
    assert os.listdir(work) == [out.strip()]


# ----------------------------------------------------------------------------------------------
# collisions and outputs that are inputs, end to end
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["edit", "--set", "smiling=1"], ["reconstruct"]])
def test_two_inputs_one_output_name_is_refused(tiny, tmp_path, command, capsys):
    a, b = _png(tmp_path / "d1" / "face.png"), _png(tmp_path / "d2" / "face.png", 1)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli([command[0], a, b, *command[1:], "-o", out, "-m", tiny], capsys)
    one_line_error(code, err, "would both be written to")
    assert os.listdir(out) == []
    code, _, err = run_cli([command[0], a, a, *command[1:], "-o", out, "-m", tiny], capsys)   # one input twice
    one_line_error(code, err, "would both be written to")
    code, stdout, err = run_cli([command[0], a, b, *command[1:], "-m", tiny], capsys)       # next to each: fine
    assert code == 0, err
    assert len(set(stdout.split())) == 2 and all(Path(p).parent in (a.parent, b.parent) for p in stdout.split())


def _cases(a: str, b: str, gif: str) -> dict[str, list[str]]:
    """command -> argv writing over an input (A, B: inputs; GIF: an input that is a .gif)."""
    return {
        "traverse": ["traverse", a, "-l", "smiling", "--steps", 2, "-o", a],
        "traverse_gif": ["traverse", gif, "-l", "smiling", "--frames", 8, "-o", gif],
        "gif": ["gif", gif, "-l", "smiling", "--frames", 8, "-o", gif],
        "sample": ["sample", "--set", "smiling=1", "-n", 1, "--style-from", a, "-o", a],
        "edit": ["edit", a, "--set", "smiling=1", "-o", a],
        "edit_default": ["edit", a, Path(a).with_name("a.edit.png"), "--set", "smiling=1"],
        "swap": ["swap", a, b, "-o", b],
        "swap_grid": ["swap", a, b, "--grid", "-o", a],
        "interpolate": ["interpolate", a, b, "--steps", 2, "-o", b],
        "reconstruct": ["reconstruct", a, "-o", a],
        "reconstruct_dir": ["reconstruct", a, b, "-o", Path(a).parent],   # a.recon.png is not an input: fine
    }


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    d = tmp_path / "in"
    a, b = _png(d / "a.png"), _png(d / "b.png", 1)
    _png(d / "a.edit.png", 2)
    Image.open(a).save(d / "g.gif")
    return {"a": a, "b": b, "gif": d / "g.gif", "dir": d}


@pytest.mark.parametrize("case", [c for c in _cases("A", "B", "G") if c != "reconstruct_dir"])
def test_output_that_is_an_input_needs_force(tiny, inputs, case, capsys):
    argv = _cases(str(inputs["a"]), str(inputs["b"]), str(inputs["gif"]))[case]
    before = {p: p.read_bytes() for p in inputs["dir"].iterdir()}
    code, _, err = run_cli([*argv, "-m", tiny], capsys)
    one_line_error(code, err, "is one of the inputs")
    assert "--force" in err
    assert {p: p.read_bytes() for p in inputs["dir"].iterdir()} == before        # nothing written
    code, _, err = run_cli([*argv, "-m", tiny, "--force"], capsys)
    assert code == 0, err
    after = {p: p.read_bytes() for p in inputs["dir"].iterdir()}
    assert any(after[p] != before[p] for p in before)                          # an input replaced


def test_output_into_the_inputs_folder_is_fine(tiny, inputs, capsys):
    argv = _cases(str(inputs["a"]), str(inputs["b"]), str(inputs["gif"]))["reconstruct_dir"]
    code, out, err = run_cli([*argv, "-m", tiny], capsys)
    assert code == 0, err
    assert out.split() == [str(inputs["dir"] / "a.recon.png"), str(inputs["dir"] / "b.recon.png")]


@pytest.mark.parametrize("spelling", ["link", "hard", "dots"])
def test_an_input_spelt_another_way_is_still_refused(tiny, inputs, spelling, capsys):
    a = inputs["a"]
    other = {"link": inputs["dir"] / "link.png", "hard": inputs["dir"] / "hard.png",
             "dots": Path(f"{inputs['dir']}/../in/./a.png")}[spelling]
    if spelling == "link":
        os.symlink(a, other)
    elif spelling == "hard":
        os.link(a, other)
    before = a.read_bytes()
    code, _, err = run_cli(["edit", a, "--set", "smiling=1", "-o", other, "-m", tiny], capsys)
    one_line_error(code, err, "is one of the inputs")
    assert a.read_bytes() == before


def test_swap_cells_over_an_input_are_refused(tiny, tmp_path, capsys):
    cells = tmp_path / "cells"
    a, b = _png(cells / "r00-c00.png"), _png(tmp_path / "b.png", 1)
    code, _, err = run_cli(["swap", a, b, "--grid", "--cells", cells, "-o", tmp_path / "grid.png", "-m", tiny],
                           capsys)
    one_line_error(code, err, "is one of the inputs")
    assert tree(tmp_path) == {"cells", "cells/r00-c00.png", "b.png"}
    code, _, err = run_cli(["swap", a, b, "--grid", "--cells", cells, "-o", tmp_path / "grid.png", "-m", tiny,
                            "--force"], capsys)
    assert code == 0, err
    assert len(os.listdir(cells)) == 4
