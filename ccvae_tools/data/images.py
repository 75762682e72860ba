"""Turn any user image into a model input (`load_image`), and arrays into PIL images (`to_pil`).

`load_image` accepts a path or the bytes of an image file (PNG, JPEG, GIF, WebP, TIFF, BMP, ...) in
any mode, normalises it (EXIF orientation applied, transparency composited onto white, palette,
CMYK and 16-bit images converted with their full range) and applies the model's `Preprocess`.
Animated images (GIF, WebP, APNG) are read from their first frame only.

Every problem with the input becomes one `DataError` line naming the file and what to do.
Truncated files are refused: PIL's `ImageFile.LOAD_TRUNCATED_IMAGES` must stay False. Only regular
files of at most MAX_IMAGE_BYTES are read, and streams to that limit (stdin: `read_stream`; with
`streams=True`, a pipe such as `<(cat face.png)` or a FIFO, and a device): /dev/zero would otherwise
fill the memory. Training data (`load_image` of a path) is read from regular files only: a FIFO
among the images of a data folder would hang the run.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from ccvae_tools.data.base import Preprocess
from ccvae_tools.util.errors import DataError
from ccvae_tools.util.files import NotRegularFile, is_stream, kind_of, open_regular, read_at_most

MAX_PIXELS = 64_000_000      # larger frames are refused (decompression bombs, absurd scans)
MIN_SIDE = 8                 # smaller frames carry no usable picture
MAX_IMAGE_BYTES = 64 * 1024 * 1024   # larger files (or stdin) are refused before they are read

# PIL refuses a PNG whose compressed text (zTXt, iTXt) or colour profile (iCCP) inflates to more
# than 1 MB, and such valid files were called corrupt. Anything as large as a file we accept is
# read; beyond that (a zlib bomb) the refusal says so (`_open`). Raised, never lowered.
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, MAX_IMAGE_BYTES)
PngImagePlugin.MAX_TEXT_MEMORY = max(PngImagePlugin.MAX_TEXT_MEMORY, MAX_IMAGE_BYTES)
_PNG_LIMITS = ("Decompressed data too large", "Too much memory used in text chunks")

_WHITE = 255


def _name(src: str | Path | bytes, name: str | None) -> str:
    if name is not None:
        return name
    return "image data" if isinstance(src, (bytes, bytearray, memoryview)) else str(src)


def _too_large(name: str) -> DataError:
    return DataError(f"{name}: more than {MAX_IMAGE_BYTES >> 20} MB, the most an input image may have; "
                     f"resize it or give another file")


def check_image_path(path: Path, name: str, streams: bool = False) -> None:
    """Refuse, before any work, a path that is missing, not a regular file (with `streams`: nor a
    pipe or a character device, whose size is only known once read), or too large to read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{name}: no such file; check the path") from None
    except OSError as e:
        raise DataError(f"{name}: cannot read the file ({e.strerror or e}); check the path") from None
    if streams and is_stream(st.st_mode):
        return
    kind = kind_of(st.st_mode)
    if kind != "a regular file":
        raise _not_regular(name, kind)
    if st.st_size > MAX_IMAGE_BYTES:
        raise _too_large(name)


def _not_regular(name: str, kind: str) -> DataError:
    if kind == "a folder":
        return DataError(f"{name}: is a folder, not an image file; give the path of an image")
    return DataError(f"{name}: is {kind}, not an image file; give the path of a regular file (or - and "
                     f"the bytes on stdin)")


def read_image_bytes(path: Path, name: str, streams: bool = False) -> bytes:
    """The file's bytes, or a DataError for a missing, unreadable, irregular or too large file; with
    `streams`, a pipe or a character device is read too, at most MAX_IMAGE_BYTES as stdin is."""
    try:
        with open_regular(path, streams=streams) as f:
            return read_stream(f, name)
    except FileNotFoundError:
        raise DataError(f"{name}: no such file; check the path") from None
    except NotRegularFile as e:
        raise _not_regular(name, e.kind) from None
    except PermissionError:
        raise DataError(f"{name}: permission denied; make the file readable") from None
    except OSError as e:
        raise DataError(f"{name}: cannot read the file ({e.strerror or e}); check the path") from None


def read_stream(stream, name: str) -> bytes:
    """All of a binary stream (stdin, an open file), refused as one line past MAX_IMAGE_BYTES."""
    data = read_at_most(stream, MAX_IMAGE_BYTES)
    if data is None:
        raise _too_large(name)
    return data


@contextlib.contextmanager
def decoding():
    """PIL's warnings silenced while it reads a user's file, but for a decompression bomb (an
    error, refused in `_open`). They are about what PIL tolerates in the file (a corrupt EXIF block,
    an odd chunk, palette transparency): printed, each would be a two-line Python warning on stderr
    beside our one line; the image is used as decoded, or refused with one line. Every place that
    opens a user's image with PIL does it inside this."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open(data: bytes, name: str, pre: Preprocess) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the first frame fully (so truncation shows up here), refusing bombs and tiny frames.

    Returns the image and its stored size (a JPEG draft may have decoded it smaller).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated images would pass")
    if len(data) == 0:
        raise DataError(f"{name}: empty file (0 bytes); re-export or re-download the image")
    try:
        with decoding():
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
        if reason.startswith(_PNG_LIMITS):
            raise DataError(f"{name}: its text or colour-profile chunks inflate to over "
                            f"{MAX_IMAGE_BYTES >> 20} MB; re-export the image without its metadata") from None
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
        data = read_image_bytes(Path(src), label)
    img, stored = _open(data, label, pre)
    with decoding():
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
