"""Turn any user image into a model input (`load_image`), and arrays into PIL images (`to_pil`).

`load_image` accepts a path or the bytes of an image file (PNG, JPEG, GIF, WebP, TIFF, BMP, ...) in
any mode, normalises it (EXIF orientation applied, transparency composited onto white, palette,
CMYK and 16-bit images converted with their full range) and applies the model's `Preprocess`.
Animated images (GIF, WebP, APNG) are read from their first frame only.

Every problem with the input becomes one `DataError` line naming the file and what to do.
Truncated files are refused: PIL's `ImageFile.LOAD_TRUNCATED_IMAGES` must stay False.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ccvae_tools.data.base import Preprocess
from ccvae_tools.util.errors import DataError

MAX_PIXELS = 64_000_000      # larger frames are refused (decompression bombs, absurd scans)
MIN_SIDE = 8                 # smaller frames carry no usable picture

_WHITE = 255


def _name(src: str | Path | bytes, name: str | None) -> str:
    if name is not None:
        return name
    return "image data" if isinstance(src, (bytes, bytearray, memoryview)) else str(src)


def _read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes, or a DataError for a missing, unreadable or empty file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{name}: no such file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a folder, not an image file; give the path of an image") from None
    except PermissionError:
        raise DataError(f"{name}: permission denied; make the file readable") from None
    except OSError as e:
        if path.is_dir():
            raise DataError(f"{name}: is a folder, not an image file; give the path of an image") from None
        raise DataError(f"{name}: cannot read the file ({e.strerror or e}); check the path") from None
    return data


def _open(data: bytes, name: str, pre: Preprocess) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the first frame fully (so truncation shows up here), refusing bombs and tiny frames.

    Returns the image and its stored size (a JPEG draft may have decoded it smaller).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated images would pass")
    if len(data) == 0:
        raise DataError(f"{name}: empty file (0 bytes); re-export or re-download the image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise Image.DecompressionBombError("too many pixels")
            if min(w, h) < MIN_SIDE:
                raise DataError(f"{name}: image is only {w}x{h} pixels (at least {MIN_SIDE}x{MIN_SIDE} "
                                f"needed); use a larger image")
            _draft(img, pre)                         # (an animated file opens on its first frame)
            img.load()
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{name}: image is too large (over {MAX_PIXELS // 1_000_000} megapixels, or a "
                        f"decompression bomb); resize it first") from None
    except UnidentifiedImageError:
        raise DataError(f"{name}: not an image file (or a format PIL cannot read); give a PNG, JPEG, "
                        f"WebP, GIF, BMP or TIFF image") from None
    except MemoryError:
        raise DataError(f"{name}: not enough memory to decode the image; resize it first") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds (OSError, SyntaxError, ValueError...)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in reason:
            raise DataError(f"{name}: image file is truncated (incomplete); re-export or re-download "
                            f"it") from None
        raise DataError(f"{name}: image file is corrupt ({reason}); re-export or re-download it") from None
    return img, (w, h)


def _crop_side(w: int, h: int, pre: Preprocess, scale: float = 1.0) -> float:
    """Side of the centre square, in pixels of a frame `scale` times the original."""
    short = min(w, h)
    if pre.crop_size is None:
        return float(short)
    return min(float(short), pre.crop_size * scale)


def _draft(img: Image.Image, pre: Preprocess) -> None:
    """Let the JPEG decoder shrink big photos by 2, 4 or 8 while at least 2x the target remains."""
    if img.format not in ("JPEG", "MPO"):
        return
    w, h = img.size
    side = _crop_side(w, h, pre) if pre.crop == "center" else float(min(w, h))
    factor = int(side // (2 * pre.size))
    if factor < 2:
        return
    img.draft(None, (-(-w // factor), -(-h // factor)))


def _flatten(img: Image.Image) -> Image.Image:
    """Composite transparency onto white; palette, CMYK, 1-bit, 16-bit and float to L or RGB."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" not in img.info:
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _to_8bit(img)
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette is not None and img.palette.mode == "RGBA"
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB"):                      # a tRNS colour key
        img = img.convert("RGBA")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (_WHITE, _WHITE, _WHITE, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    if img.mode not in ("L", "RGB"):                # CMYK, YCbCr, LAB, HSV, ...
        return img.convert("RGB")
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale to 8 bits over their full range (not clipped at 255)."""
    a = np.asarray(img)
    if img.mode == "F":
        a = a.astype(np.float64)
        if a.size and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0:
            out = a * 255.0
        else:
            lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 1.0)
            out = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.nan_to_num(np.rint(out)).clip(0, 255).astype(np.uint8), "L")
    a = a.astype(np.int64)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo >= 0 and hi <= 65535:                     # I;16 and 16-bit PNGs opened as "I"
        out = (a * 255 + 32767) // 65535
    else:                                           # other 32-bit data: stretch its own range
        out = (a - lo) * 255 // max(hi - lo, 1)
    return Image.fromarray(out.astype(np.uint8), "L")


def _square(img: Image.Image, pre: Preprocess, scale: float) -> Image.Image:
    """Centre crop (or squash) and resize to pre.size x pre.size; `scale` = decoded / stored size.

    The crop is cut out before resizing, so no pixel outside it leaks in through the filter.
    """
    w, h = img.size
    size = pre.size
    if pre.crop == "center":
        side = min(int(round(_crop_side(w, h, pre, scale))), w, h)
        left, top = (w - side) // 2, (h - side) // 2
        if side != w or side != h:
            img = img.crop((left, top, left + side, top + side))
    if img.size == (size, size):
        return img
    shrink = max(img.size) > size
    return img.resize((size, size), Image.Resampling.LANCZOS if shrink else Image.Resampling.BICUBIC)


def _check(pre: Preprocess) -> None:
    """Programming errors in a Preprocess (readers validate user options before this)."""
    if pre.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {pre.channels}")
    if pre.crop not in ("center", "squash"):
        raise ValueError(f"unknown crop {pre.crop!r} (expected 'center' or 'squash')")
    if pre.size < 1 or (pre.crop_size is not None and pre.crop_size < 1):
        raise ValueError(f"sizes must be positive: {pre}")


def load_image(src: str | Path | bytes, pre: Preprocess, *, name: str | None = None) -> np.ndarray:
    """Decode an image file (path or bytes) into uint8 (C, H, W) as `pre` prescribes.

    `name` is used in error messages (default: the path, or "image data" for bytes).
    Raises DataError with one line for any unusable input.
    """
    _check(pre)
    label = _name(src, name)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        data = _read_bytes(Path(src), label)
    img, stored = _open(data, label, pre)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block: keep the stored orientation
        pass
    try:
        img = _flatten(img)
        img = img.convert("L" if pre.channels == 1 else "RGB")
        img = _square(img, pre, min(img.size) / min(stored))
    except Exception as e:  # noqa: BLE001 - a decoder quirk on conversion
        raise DataError(f"{label}: cannot convert the image ({e}); re-export it as PNG or JPEG") from None
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        return arr[None].copy()
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def to_pil(arr: np.ndarray) -> Image.Image:
    """(C, H, W) or (H, W) array, uint8 or float in [0, 1], to an 'L' or 'RGB' image."""
    a = np.asarray(arr)
    if a.ndim == 3:
        if a.shape[0] not in (1, 3):
            raise ValueError(f"expected 1 or 3 channels first, got shape {a.shape}")
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    elif a.ndim != 2:
        raise ValueError(f"expected a (C, H, W) or (H, W) array, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.rint(np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a), "L" if a.ndim == 2 else "RGB")
