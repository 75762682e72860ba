"""ccvae_tools.cli.io: labels, assignments, model paths, inputs, outputs (no model run here)."""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.cli import io as cli_io
from ccvae_tools.data.base import Label, Preprocess
from ccvae_tools.util.errors import CcvaeError, DataError, UsageError, WeightsError

NAMES = ["Smiling", "Eyeglasses", "Blond_Hair"]
LABELS = [Label("Smiling"), Label("Eyeglasses"), Label("Blond_Hair"),
          Label("Hair_Color", ("black", "blond", "brown"))]


# ----------------------------------------------------------------------------------------------
# labels and assignments
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,index", [
    ("Smiling", 0), ("smiling", 0), ("SMILING", 0), ("eyeglasses", 1), ("Blond_Hair", 2),
    ("Blond-Hair", 2), ("blond_hair", 2), ("blond hair", 2), ("  blond  hair ", 2), ("BLOND--hair", 2),
])
def test_match_label_loose_forms(name, index):
    assert cli_io.match_label(name, NAMES) == index


def test_match_label_unknown_suggests_closest_and_lists_all():
    with pytest.raises(UsageError) as e:
        cli_io.match_label("smilng", NAMES)
    msg = str(e.value)
    assert "smilng" in msg and "did you mean Smiling" in msg
    assert "Smiling, Eyeglasses, Blond_Hair" in msg
    assert "\n" not in msg
    assert e.value.exit_code == 2


def test_match_label_unknown_without_close_names_still_lists_all():
    with pytest.raises(UsageError) as e:
        cli_io.match_label("zzz", NAMES)
    assert "did you mean" not in str(e.value) and "Blond_Hair" in str(e.value)


def test_match_label_prefix_is_suggested():
    with pytest.raises(UsageError, match="did you mean Blond_Hair"):
        cli_io.match_label("blond", NAMES)


def test_match_label_ambiguous_needs_exact_spelling():
    assert cli_io.match_label("Blond_Hair", ["Blond_Hair", "blond hair"]) == 0
    with pytest.raises(UsageError, match="ambiguous"):
        cli_io.match_label("blond-hair", ["Blond_Hair", "blond hair"])


@pytest.mark.parametrize("text,expected", [
    ("smiling=1", (0, 1)), ("smiling=0", (0, 0)), ("Smiling=true", (0, 1)), ("smiling=False", (0, 0)),
    ("eyeglasses=yes", (1, 1)), ("eyeglasses=no", (1, 0)), ("blond hair=1", (2, 1)), ("blond-hair = 0", (2, 0)),
    ("hair color=blond", (3, 1)), ("hair_color=Brown", (3, 2)), ("hair-color=0", (3, 0)), ("Hair_Color=2", (3, 2)),
])
def test_parse_assignment(text, expected):
    assert cli_io.parse_assignment(text, LABELS) == expected


def test_parse_assignment_accepts_metadata_dicts():
    info = [{"name": "Smiling", "classes": ["0", "1"]}, {"name": "Mood", "classes": ["sad", "happy"]}]
    assert cli_io.parse_assignment("mood=happy", info) == (1, 1)
    assert cli_io.parse_assignment("mood=true", info) == (1, 1)


@pytest.mark.parametrize("text,needle", [
    ("smiling=2", "0/1, true/false, yes/no"),
    ("smiling=maybe", "0/1, true/false, yes/no"),
    ("hair_color=red", "black, blond, brown"),
    ("hair_color=3", "0..2"),
    ("smiling", "LABEL=VALUE"),
    ("=1", "LABEL=VALUE"),
    ("smiling=", "LABEL=VALUE"),
    ("smilin=1", "did you mean Smiling"),
])
def test_parse_assignment_errors(text, needle):
    with pytest.raises(UsageError) as e:
        cli_io.parse_assignment(text, LABELS)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------
# which weights
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def no_default(monkeypatch, tmp_path):
    """No CCVAE_MODEL and no shipped default anywhere (package and prefixes moved to tmp)."""
    monkeypatch.delenv("CCVAE_MODEL", raising=False)
    fake_pkg = tmp_path / "checkout" / "ccvae_tools" / "cli"
    fake_pkg.mkdir(parents=True)
    monkeypatch.setattr(cli_io, "__file__", str(fake_pkg / "io.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    import site
    import sysconfig

    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(tmp_path / "prefix"))
    monkeypatch.setattr(site, "getuserbase", lambda: str(tmp_path / "userbase"))
    return tmp_path


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_model_path_order_option_env_default(no_default, monkeypatch):
    tmp = no_default
    checkout = _touch(tmp / "checkout" / "weights" / cli_io.DEFAULT_WEIGHTS)
    env = _touch(tmp / "env.safetensors")
    opt = _touch(tmp / "opt.safetensors")
    assert cli_io.resolve_model_path(None) == checkout
    monkeypatch.setenv("CCVAE_MODEL", str(env))
    assert cli_io.resolve_model_path(None) == env
    assert cli_io.resolve_model_path(str(opt)) == opt
    monkeypatch.setenv("CCVAE_MODEL", "")
    assert cli_io.resolve_model_path(None) == checkout


def test_model_path_installed_wheel_layout(no_default):
    tmp = no_default
    installed = _touch(tmp / "prefix" / "share" / "ccvae" / "weights" / cli_io.DEFAULT_WEIGHTS)
    assert cli_io.resolve_model_path(None) == installed
    checkout = _touch(tmp / "checkout" / "weights" / cli_io.DEFAULT_WEIGHTS)
    assert cli_io.resolve_model_path(None) == checkout          # a source checkout wins


def test_model_path_user_install(no_default):
    user = _touch(no_default / "userbase" / "share" / "ccvae" / "weights" / cli_io.DEFAULT_WEIGHTS)
    assert cli_io.resolve_model_path(None) == user


def test_default_candidates_real_locations():
    import ccvae_tools

    cands = cli_io.default_model_candidates()
    assert cands[0] == Path(ccvae_tools.__file__).resolve().parent.parent / "weights" / cli_io.DEFAULT_WEIGHTS
    assert Path(sys.prefix) / "share" / "ccvae" / "weights" / cli_io.DEFAULT_WEIGHTS in cands


def test_missing_default_says_where_and_what_to_do(no_default):
    with pytest.raises(WeightsError) as e:
        cli_io.resolve_model_path(None)
    msg = str(e.value)
    assert "--model" in msg and "CCVAE_MODEL" in msg
    assert str(no_default / "checkout" / "weights" / cli_io.DEFAULT_WEIGHTS) in msg
    assert str(no_default / "prefix" / "share" / "ccvae" / "weights") in msg
    assert e.value.exit_code == 1


def test_missing_explicit_model_names_its_source(no_default, monkeypatch):
    with pytest.raises(WeightsError, match=r"nope\.safetensors: no such weights file \(from --model\)"):
        cli_io.resolve_model_path(str(no_default / "nope.safetensors"))
    monkeypatch.setenv("CCVAE_MODEL", str(no_default / "gone.safetensors"))
    with pytest.raises(WeightsError, match=r"gone\.safetensors.*CCVAE_MODEL"):
        cli_io.resolve_model_path(None)
    with pytest.raises(WeightsError, match="is a folder"):
        cli_io.resolve_model_path(str(no_default))
    with pytest.raises(WeightsError, match=r"x\.safetensors: no such weights file \(from WEIGHTS\)"):
        cli_io.resolve_model_path(str(no_default / "x.safetensors"), "WEIGHTS")


def test_run_folder_stands_for_its_model(tmp_path):
    run = tmp_path / "00003-celeba"
    model = _touch(run / "model.safetensors")
    assert cli_io.resolve_model_path(str(run)) == model
    other = tmp_path / "other"
    _touch(other / "a.safetensors")
    with pytest.raises(WeightsError, match=r"is a folder \(from --model\); pass the \.safetensors file such as"):
        cli_io.resolve_model_path(str(other))


def test_check_device_name(monkeypatch):
    from ccvae_tools.util.device import check_device_name

    monkeypatch.delenv("CCVAE_DEVICE", raising=False)
    assert check_device_name(None) == "auto"
    monkeypatch.setenv("CCVAE_DEVICE", "cpu")
    assert check_device_name(None) == "cpu"
    assert check_device_name("CUDA") == "cuda"
    assert check_device_name("cuda:1") == "cuda:1"
    with pytest.raises(UsageError, match="auto, cpu, cuda, mps"):
        check_device_name("tpu")


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------

def _img(seed=0, size=(24, 16), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".JPG", "JPEG"),
                                     (".webp", "WEBP"), (".gif", "GIF")])
def test_write_each_extension(tmp_path, ext, fmt):
    out = tmp_path / f"out{ext}"
    assert cli_io.write_image_output(_img(), str(out), None) == out
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (24, 16)
    assert sorted(os.listdir(tmp_path)) == [out.name]


def test_write_array_and_lossless_png(tmp_path):
    arr = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    out = tmp_path / "a.png"
    cli_io.write_image_output(arr, str(out), None)
    assert np.array_equal(np.asarray(Image.open(out)).transpose(2, 0, 1), arr)
    cli_io.write_image_output(_img(mode="L"), str(tmp_path / "g.webp"), None)
    assert Image.open(tmp_path / "g.webp").size == (24, 16)


def test_write_animated_gif(tmp_path):
    frames = [_img(seed=i) for i in range(4)]
    out = tmp_path / "anim.gif"
    cli_io.write_image_output(frames, str(out), None, durations=[40, 80, 120, 160])
    with Image.open(out) as im:
        assert im.n_frames == 4 and im.is_animated
        assert im.info["loop"] == 0
        got = []
        for k in range(im.n_frames):
            im.seek(k)
            got.append(im.info["duration"])
            assert im.size == (24, 16)
        assert got == [40, 80, 120, 160]
    first = out.read_bytes()
    cli_io.write_image_output(frames, str(out), None, durations=[40, 80, 120, 160])
    assert out.read_bytes() == first                       # deterministic bytes
    cli_io.write_image_output([f.convert("L") for f in frames], str(tmp_path / "g.gif"), None, durations=50)
    with Image.open(tmp_path / "g.gif") as im:
        assert im.n_frames == 4 and im.info["duration"] == 50


def test_gif_shares_one_palette(tmp_path):
    """Colours map the same way in every frame (no flicker): identical pixels stay identical."""
    a = _img(seed=1)
    b = a.copy()
    b.paste((255, 0, 0), (0, 0, 4, 4))                    # the frames differ in one corner only
    out = tmp_path / "p.gif"
    cli_io.write_image_output([a, b], str(out), None)
    with Image.open(out) as im:
        f0 = np.asarray(im.convert("RGB"))
        im.seek(1)
        f1 = np.asarray(im.convert("RGB"))
    assert np.array_equal(f0[8:, 8:], f1[8:, 8:])


def test_frames_into_still_format_fail(tmp_path):
    with pytest.raises(UsageError, match=r"\.gif"):
        cli_io.write_image_output([_img(0), _img(1)], str(tmp_path / "x.png"), None)
    assert os.listdir(tmp_path) == []
    cli_io.write_image_output([_img(0)], str(tmp_path / "one.png"), None)   # one frame is a still
    assert os.listdir(tmp_path) == ["one.png"]


def _fake_stdout(monkeypatch) -> io.BytesIO:
    raw = io.BytesIO()
    wrapper = io.TextIOWrapper(raw, encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", wrapper)
    return raw


def test_stdout_bytes(monkeypatch):
    raw = _fake_stdout(monkeypatch)
    assert cli_io.write_image_output(_img(), "-", None) is None
    assert raw.getvalue().startswith(b"\x89PNG\r\n\x1a\n")
    raw = _fake_stdout(monkeypatch)
    cli_io.write_image_output(_img(), "-", "jpg")
    assert raw.getvalue()[:3] == b"\xff\xd8\xff"
    raw = _fake_stdout(monkeypatch)
    cli_io.write_image_output([_img(0), _img(1)], "-", None)   # frames default to GIF
    assert raw.getvalue()[:6] == b"GIF89a"
    with pytest.raises(UsageError, match="still PNG"):
        cli_io.write_image_output([_img(0), _img(1)], "-", "png")
    with pytest.raises(UsageError, match="unknown image format"):
        cli_io.write_image_output(_img(), "-", "bmp")


def test_unknown_extension_lists_supported(tmp_path):
    for name in ("out.bmp", "out"):
        with pytest.raises(UsageError) as e:
            cli_io.write_image_output(_img(), str(tmp_path / name), None)
        assert ".png, .jpg, .jpeg, .webp, .gif" in str(e.value)
    assert os.listdir(tmp_path) == []


def test_extension_and_format_must_agree(tmp_path):
    with pytest.raises(UsageError, match="does not match"):
        cli_io.write_image_output(_img(), str(tmp_path / "x.png"), "jpg")
    cli_io.write_image_output(_img(), str(tmp_path / "x.jpg"), "jpeg")


def test_missing_folder_is_named(tmp_path):
    target = tmp_path / "nope" / "out.png"
    with pytest.raises(CcvaeError) as e:
        cli_io.write_image_output(_img(), str(target), None)
    assert str(tmp_path / "nope") in str(e.value) and "does not exist" in str(e.value)
    assert not (tmp_path / "nope").exists()


def test_output_that_is_a_folder(tmp_path):
    with pytest.raises(CcvaeError, match="is a folder"):
        cli_io.write_image_output(_img(), str(tmp_path), None)


@pytest.mark.parametrize("where", ["replace", "write", "fsync"])
def test_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, where):
    out = tmp_path / "keep.png"
    out.write_bytes(b"old contents")

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "replace":
        monkeypatch.setattr(os, "replace", boom)
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    else:
        real_fdopen = os.fdopen

        class Half:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])      # half of it lands, then the disk is full
                boom()

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Half(real_fdopen(fd, mode)))
    with pytest.raises(CcvaeError) as e:
        cli_io.write_image_output(_img(), str(out), None)
    assert "disk full" in str(e.value) and str(out) in str(e.value)
    assert out.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_permission_error_message(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(CcvaeError, match="permission denied"):
        cli_io.write_image_output(_img(), str(tmp_path / "x.png"), None)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("src,suffix,ext,expected", [
    ("face.png", "smiling", ".gif", "face.smiling.gif"),
    ("face.png", "smiling", "gif", "face.smiling.gif"),
    ("dir/face.jpg", "recon", "png", os.path.join("dir", "face.recon.png")),
    ("/abs/dir/face.tar.png", "edit", "png", "/abs/dir/face.tar.edit.png"),
    ("noext", "recon", "png", "noext.recon.png"),
    ("-", "recon", "png", "ccvae-recon.png"),
    ("<stdin>", "smiling", "gif", "ccvae-smiling.gif"),
])
def test_default_output(src, suffix, ext, expected):
    assert cli_io.default_output(src, suffix, ext) == expected


def test_emit_json_one_line(capsys):
    cli_io.emit_json({"input": "a b.png", "p": 0.5, "name": "é"})
    cli_io.emit_json({"input": "x"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["name"] == "é"


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------

PRE = Preprocess(32, 3, "center", None)


def test_read_inputs_order_names_and_shapes(tmp_path):
    paths = []
    for i in range(7):
        p = tmp_path / f"f{i}.png"
        _img(seed=i, size=(40, 40)).save(p)
        paths.append(str(p))
    got = cli_io.read_inputs(paths, PRE)
    assert [n for n, _ in got] == paths
    assert all(a.shape == (3, 32, 32) and a.dtype == np.uint8 for _, a in got)
    batches = list(cli_io.iter_inputs(paths, PRE, batch_size=3, workers=2))
    assert [len(b) for b in batches] == [3, 3, 1]
    for (n1, a1), (n2, a2) in zip([x for b in batches for x in b], got):
        assert n1 == n2 and np.array_equal(a1, a2)
    serial = list(cli_io.iter_inputs(paths, PRE, batch_size=3, workers=1))
    assert [len(b) for b in serial] == [3, 3, 1]


def test_read_inputs_stdin_once(monkeypatch, tmp_path):
    buf = io.BytesIO()
    _img(size=(40, 40)).save(buf, format="PNG")

    class Stdin:
        reads = 0

        def __init__(self):
            self.buffer = self

        def isatty(self):
            return False

        def read(self, size=-1):
            Stdin.reads += 1
            return buf.getvalue()

    monkeypatch.setattr(sys, "stdin", Stdin())
    got = cli_io.read_inputs(["-", "-"], PRE)
    assert [n for n, _ in got] == ["<stdin>", "<stdin>"] and Stdin.reads == 1
    assert np.array_equal(got[0][1], got[1][1])


def test_read_inputs_empty_stdin(monkeypatch):
    class Empty:
        buffer = io.BytesIO(b"")

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", Empty())
    with pytest.raises(DataError, match="<stdin>: empty file"):
        cli_io.read_inputs(["-"], PRE)


def test_read_inputs_missing_and_folder_fail_before_decoding(tmp_path):
    good = tmp_path / "good.png"
    _img(size=(40, 40)).save(good)
    with pytest.raises(DataError, match="no such file"):
        cli_io.read_inputs([str(good), str(tmp_path / "missing.png")], PRE)
    with pytest.raises(DataError, match="is a folder"):
        cli_io.read_inputs([str(tmp_path)], PRE)
    with pytest.raises(UsageError):
        cli_io.read_inputs([], PRE)


def test_read_inputs_warnings(tmp_path, capsys):
    small = tmp_path / "small.png"
    _img(size=(12, 12)).save(small)
    wide = tmp_path / "wide.png"
    _img(size=(120, 40)).save(wide)
    gray = tmp_path / "gray.png"
    _img(size=(40, 40), mode="L").save(gray)
    ok = tmp_path / "ok.png"
    _img(size=(64, 64)).save(ok)
    got = cli_io.read_inputs([str(small), str(wide), str(gray), str(ok)], PRE)
    assert all(a.shape == (3, 32, 32) for _, a in got)
    err = capsys.readouterr().err.splitlines()
    assert any("small.png" in l and "upscaled 2.7x" in l for l in err)
    assert any("wide.png" in l and "far from square" in l for l in err)
    assert any("gray.png" in l and "grayscale" in l for l in err)
    assert not any("ok.png" in l for l in err)
    assert all(l.startswith("warning: ") for l in err)
    # a colour image for a grayscale model: converted, with a warning
    got = cli_io.read_inputs([str(ok)], Preprocess(32, 1, "center", None))
    assert got[0][1].shape == (1, 32, 32)
    assert "converted to grayscale" in capsys.readouterr().err


def test_many_warnings_are_summarised(tmp_path, capsys):
    paths = []
    for i in range(6):
        p = tmp_path / f"s{i}.png"
        _img(seed=i, size=(10, 10)).save(p)
        paths.append(str(p))
    cli_io.read_inputs(paths, PRE)
    err = capsys.readouterr().err.splitlines()
    assert len([l for l in err if "upscaled" in l and ".png" in l]) == cli_io.WARN_EACH
    assert err[-1] == f"warning: ... and {6 - cli_io.WARN_EACH} more input(s) upscaled"


def test_cli_io_imports_nothing_heavy():
    import subprocess

    code = ("import sys, ccvae_tools.cli.io; "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_shipped_model_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.delenv("CCVAE_MODEL", raising=False)
    (tmp_path / "fonts32.safetensors").write_bytes(b"x")
    monkeypatch.setattr(cli_io, "shipped_weights_dirs", lambda: [tmp_path])
    assert cli_io.resolve_model_path("fonts32") == tmp_path / "fonts32.safetensors"
    monkeypatch.setenv("CCVAE_MODEL", "fonts32")
    assert cli_io.resolve_model_path(None) == tmp_path / "fonts32.safetensors"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fonts32").write_bytes(b"y")                        # a file of that name wins
    assert cli_io.resolve_model_path("fonts32") == Path("fonts32")
    for name in ("nosuch", "../fonts32", "Fonts32"):
        with pytest.raises(cli_io.WeightsError, match="no such weights file"):
            cli_io.resolve_model_path(name)
