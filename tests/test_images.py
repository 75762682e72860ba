"""load_image on every mode and bad input; to_pil."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.data.base import Preprocess
from ccvae_tools.util.errors import DataError
from ccvae_tools.data.images import load_image, to_pil

RGB64 = Preprocess(size=64, channels=3)
GRAY64 = Preprocess(size=64, channels=1)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def _info(path: Path, attr: str):
    """An attribute of the image file as PIL opens it (mode, n_frames, format)."""
    with Image.open(path) as img:
        return getattr(img, attr)


def _solid(mode: str, size: tuple[int, int], color) -> Image.Image:
    return Image.new(mode, size, color)


def _one_line(err: pytest.ExceptionInfo, *words: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


# --- modes -------------------------------------------------------------------------------------

def test_rgb_shape_dtype_and_values(tmp_path: Path) -> None:
    p = _save(_solid("RGB", (100, 80), (10, 200, 30)), tmp_path / "a.png")
    a = load_image(p, RGB64)
    assert a.shape == (3, 64, 64) and a.dtype == np.uint8
    assert a.flags.c_contiguous
    assert (a[:, 10, 10] == [10, 200, 30]).all()


def test_str_path_and_bytes_give_the_same(tmp_path: Path) -> None:
    p = _save(_solid("RGB", (70, 90), (1, 2, 3)), tmp_path / "a.jpg")
    assert np.array_equal(load_image(str(p), RGB64), load_image(p.read_bytes(), RGB64))


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (40, 40), (255, 0, 0, 255))
    img.paste((0, 0, 255, 0), (0, 0, 20, 40))          # left half fully transparent
    a = load_image(_save(img, tmp_path / "a.png"), Preprocess(size=40))
    assert (a[:, 20, 5] == [255, 255, 255]).all()       # transparent -> white
    assert (a[:, 20, 35] == [255, 0, 0]).all()


def test_la_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("LA", (16, 16), (0, 0))
    a = load_image(_save(img, tmp_path / "a.png"), Preprocess(size=16, channels=1))
    assert (a == 255).all()


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (32, 32), 1)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    img.paste(0, (0, 0, 16, 32))
    p = _save(img, tmp_path / "p.png", transparency=0)
    assert _info(p, "mode") == "P"
    a = load_image(p, Preprocess(size=32))
    assert (a[:, 5, 5] == [255, 255, 255]).all()        # index 0 transparent -> white
    assert (a[:, 5, 28] == [0, 255, 0]).all()


def test_palette_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (32, 32), 1)
    img.putpalette([0, 0, 0, 12, 34, 56] + [0] * (254 * 3))
    a = load_image(_save(img, tmp_path / "p.png"), Preprocess(size=32))
    assert (a[:, 3, 3] == [12, 34, 56]).all()


def test_16bit_png_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.zeros((16, 16), np.uint16)
    arr[:, :8] = 65535
    arr[:, 8:] = 32896                                   # 128 * 257
    p = _save(Image.fromarray(arr), tmp_path / "deep.png")
    assert _info(p, "mode").startswith("I")
    a = load_image(p, Preprocess(size=16, channels=1))
    assert a[0, 0, 0] == 255 and a[0, 0, 15] == 128


def test_32bit_integer_image_stretched(tmp_path: Path) -> None:
    arr = np.zeros((16, 16), np.int32)
    arr[:, 8:] = 1_000_000
    p = _save(Image.fromarray(arr, "I"), tmp_path / "deep.tif")
    a = load_image(p, Preprocess(size=16, channels=1))
    assert a[0, 0, 0] == 0 and a[0, 0, 15] == 255


def test_one_bit_image(tmp_path: Path) -> None:
    img = Image.new("1", (16, 16), 0)
    img.paste(1, (8, 0, 16, 16))
    a = load_image(_save(img, tmp_path / "b.png"), Preprocess(size=16, channels=1))
    assert a[0, 0, 0] == 0 and a[0, 0, 15] == 255


def test_cmyk_jpeg(tmp_path: Path) -> None:
    p = _save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=95)
    assert _info(p, "mode") == "CMYK"
    a = load_image(p, Preprocess(size=32)).astype(int)
    assert a[0].mean() > 200 and a[1].mean() < 50 and a[2].mean() < 50     # red


def test_exif_rotated_jpeg(tmp_path: Path) -> None:
    img = Image.new("RGB", (80, 40), (0, 0, 255))       # wide: left half red, right half blue
    img.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6                                     # rotate 90 degrees clockwise to view
    p = _save(img, tmp_path / "r.jpg", exif=exif, quality=95)
    a = load_image(p, Preprocess(size=40, crop="squash")).astype(int)
    # after rotation the picture is tall: red on top, blue at the bottom
    assert a[0, 3, 20] > 200 and a[2, 3, 20] < 60
    assert a[2, 36, 20] > 200 and a[0, 36, 20] < 60


def test_gray_to_three_channels_and_rgb_to_one(tmp_path: Path) -> None:
    g = load_image(_save(_solid("L", (20, 20), 77), tmp_path / "g.png"), Preprocess(size=20))
    assert g.shape == (3, 20, 20) and (g == 77).all()
    c = load_image(_save(_solid("RGB", (20, 20), (255, 0, 0)), tmp_path / "c.png"),
                   Preprocess(size=20, channels=1))
    assert c.shape == (1, 20, 20) and (c == 76).all()     # ITU-R 601 luma of pure red


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [_solid("RGB", (24, 24), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert _info(p, "n_frames") == 3
    a = load_image(p, Preprocess(size=24)).astype(int)
    assert a[0].min() > 200 and a[1].max() < 50


def test_crop_and_squash_differ_on_non_square(tmp_path: Path) -> None:
    img = Image.new("RGB", (120, 60), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 30, 60))         # a white band on the far left
    p = _save(img, tmp_path / "wide.png")
    crop = load_image(p, Preprocess(size=32, crop="center"))
    squash = load_image(p, Preprocess(size=32, crop="squash"))
    assert crop.shape == squash.shape == (3, 32, 32)
    assert crop.max() == 0                               # the band lies outside the centre square
    assert squash[:, :, :6].min() > 200                  # squash keeps it (a quarter of the width)


def test_crop_size_and_oversized_crop(tmp_path: Path) -> None:
    img = Image.new("RGB", (100, 100), (0, 0, 0))
    img.paste((255, 255, 255), (25, 25, 75, 75))
    p = _save(img, tmp_path / "sq.png")
    inner = load_image(p, Preprocess(size=50, crop_size=50))
    assert inner.min() == 255                            # only the white centre
    whole = load_image(p, Preprocess(size=100, crop_size=500))   # larger than the image: all of it
    assert np.array_equal(whole, np.asarray(img).transpose(2, 0, 1))


def test_upscale_small_image(tmp_path: Path) -> None:
    p = _save(_solid("RGB", (10, 12), (9, 9, 9)), tmp_path / "s.png")
    assert load_image(p, Preprocess(size=64)).shape == (3, 64, 64)


def test_big_jpeg_draft_matches_full_decode_closely(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:1200, 0:1600]
    arr = np.stack([xx % 256, yy % 256, (xx + yy) // 12 % 256], -1).astype(np.uint8)
    p = _save(Image.fromarray(arr), tmp_path / "big.jpg", quality=95)
    fast = load_image(p, Preprocess(size=64)).astype(int)
    with Image.open(p) as img:
        full = np.asarray(img.convert("RGB").crop((200, 0, 1400, 1200))
                          .resize((64, 64), Image.Resampling.LANCZOS)).transpose(2, 0, 1).astype(int)
    assert np.abs(fast - full).mean() < 4


# --- bad input ---------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_image(tmp_path / "nope.png", RGB64)
    _one_line(e, "nope.png", "no such file")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_image(tmp_path, RGB64)
    _one_line(e, str(tmp_path), "folder")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_image(p, RGB64)
    _one_line(e, "empty.jpg", "empty")


def test_text_file_named_png(tmp_path: Path) -> None:
    p = tmp_path / "notes.png"
    p.write_text("these are not pixels\n")
    with pytest.raises(DataError) as e:
        load_image(p, RGB64)
    _one_line(e, "notes.png", "not an image")


def test_bytes_error_names_the_source() -> None:
    with pytest.raises(DataError) as e:
        load_image(b"hello", RGB64, name="<stdin>")
    _one_line(e, "<stdin>", "not an image")


def _noise(w: int = 64, h: int = 64) -> Image.Image:
    return Image.fromarray(np.random.RandomState(1).randint(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated(tmp_path: Path, ext: str) -> None:
    whole = _save(_noise(), tmp_path / f"whole.{ext}")
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError) as e:
        load_image(p, RGB64)
    _one_line(e, f"cut.{ext}", "truncated")


def test_corrupt_png_data(tmp_path: Path) -> None:
    data = bytearray(_save(_noise(), tmp_path / "a.png").read_bytes())
    data[200:260] = b"\x00" * 60                          # inside IDAT
    with pytest.raises(DataError) as e:
        load_image(bytes(data), RGB64, name="bad.png")
    _one_line(e, "bad.png")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (1-bit gray): cheap to write and to open."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9_000, 10_000, 40_000])   # ours, PIL's warning, PIL's error
def test_decompression_bomb(tmp_path: Path, side: int) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_claiming(side, side))
    with pytest.raises(DataError) as e:
        load_image(p, RGB64)
    _one_line(e, "bomb.png", "too large")


@pytest.mark.parametrize("size", [(1, 1), (7, 100), (100, 4)])
def test_too_small(tmp_path: Path, size: tuple[int, int]) -> None:
    p = _save(_solid("RGB", size, (0, 0, 0)), tmp_path / "tiny.png")
    with pytest.raises(DataError) as e:
        load_image(p, RGB64)
    _one_line(e, "tiny.png", f"{size[0]}x{size[1]}")


def test_bad_preprocess_is_a_programming_error(tmp_path: Path) -> None:
    p = _save(_solid("RGB", (20, 20), (0, 0, 0)), tmp_path / "a.png")
    with pytest.raises(ValueError):
        load_image(p, Preprocess(channels=4))
    with pytest.raises(ValueError):
        load_image(p, Preprocess(crop="zoom"))


# --- to_pil --------------------------------------------------------------------

def test_to_pil_uint8_and_float() -> None:
    a = np.zeros((3, 8, 8), np.uint8)
    a[0] = 200
    im = to_pil(a)
    assert im.mode == "RGB" and im.size == (8, 8) and im.getpixel((0, 0)) == (200, 0, 0)
    f = to_pil(np.full((1, 8, 8), 0.5, np.float32))
    assert f.mode == "L" and f.getpixel((3, 3)) == 128
    assert to_pil(np.full((4, 4), 2.0)).getpixel((0, 0)) == 255          # clipped to [0, 1]
    with pytest.raises(ValueError):
        to_pil(np.zeros((4, 8, 8), np.uint8))
