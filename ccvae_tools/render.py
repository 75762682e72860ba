"""Pictures from decoded images: strips, grids, captioned tiles, and their file bytes (PIL only)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ccvae_tools.data.images import to_pil
from ccvae_tools.util.errors import UsageError

PAD = 2
BACKGROUND = 255
RESAMPLE = {"nearest": Image.NEAREST, "lanczos": Image.LANCZOS}


def tile_image(img: np.ndarray, scale: int = 1, resample: str = "nearest") -> Image.Image:
    """uint8 (C, H, W) -> RGB PIL image, upscaled by an integer factor."""
    arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    pil = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), RESAMPLE[resample])
    return pil


def grid(rows: list[list[np.ndarray]], scale: int = 1, resample: str = "nearest", pad: int = PAD,
         captions: list[str] | None = None) -> Image.Image:
    """Rows of uint8 (C, H, W) images -> one picture, with optional captions left of each row."""
    tiles = [[tile_image(im, scale, resample) for im in row] for row in rows]
    th, tw = tiles[0][0].height, tiles[0][0].width
    ncols = max(len(r) for r in tiles)
    left = 0
    font = _font()
    if captions:
        left = max(_text_width(font, c) for c in captions) + 2 * pad
    W = left + ncols * tw + (ncols + 1) * pad
    H = len(tiles) * th + (len(tiles) + 1) * pad
    out = Image.new("RGB", (W, H), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(out)
    for r, row in enumerate(tiles):
        y = pad + r * (th + pad)
        if captions:
            draw.text((pad, y + th // 2), captions[r], fill=(0, 0, 0), font=font, anchor="lm")
        for c, t in enumerate(row):
            out.paste(t, (left + pad + c * (tw + pad), y))
    return out


def captioned(img: np.ndarray, title: str, note: str | None = None, scale: int = 1,
              resample: str = "nearest") -> Image.Image:
    """One tile with its title above (and an optional note, e.g. a probability, below)."""
    tile = tile_image(img, scale, resample)
    font = _font()
    band = _text_height(font) + 4
    out = Image.new("RGB", (tile.width, tile.height + band * (2 if note else 1)), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(out)
    draw.text((tile.width // 2, band // 2), _fit(draw, font, title, tile.width), fill=(0, 0, 0), font=font,
              anchor="mm")
    out.paste(tile, (0, band))
    if note:
        draw.text((tile.width // 2, band + tile.height + band // 2), note, fill=(0, 0, 0), font=font, anchor="mm")
    return out


def mosaic(tiles: list[Image.Image], columns: int, pad: int = PAD) -> Image.Image:
    """Equal-sized PIL tiles in a grid of `columns`."""
    th, tw = tiles[0].height, tiles[0].width
    rows = (len(tiles) + columns - 1) // columns
    cols = min(columns, len(tiles))
    out = Image.new("RGB", (cols * tw + (cols + 1) * pad, rows * th + (rows + 1) * pad), (BACKGROUND,) * 3)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        out.paste(t, (pad + c * (tw + pad), pad + r * (th + pad)))
    return out


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _text_width(font, text: str) -> int:
    box = font.getbbox(text)
    return int(box[2] - box[0])


def _text_height(font) -> int:
    box = font.getbbox("Ag")
    return int(box[3] - box[1])


def _fit(draw: ImageDraw.ImageDraw, font, text: str, width: int) -> str:
    """Shorten a caption with an ellipsis until it fits the tile."""
    if _text_width(font, text) <= width - 2:
        return text
    while len(text) > 1 and _text_width(font, text + "…") > width - 2:
        text = text[:-1]
    return text + "…"


# ----------------------------------------------------------------------------------------------
# file bytes

def _as_frames(img: Any) -> list["Image.Image"]:
    items = list(img) if isinstance(img, (list, tuple)) else [img]
    if not items:
        raise ValueError("no frames to write")
    return [x if isinstance(x, Image.Image) else to_pil(x) for x in items]


def _gif_frames(frames: list["Image.Image"]) -> list["Image.Image"]:
    """All frames on one shared palette (no colour flicker between frames), deterministic."""
    if all(f.mode == "L" for f in frames):
        return frames
    if all(f.mode == "P" for f in frames):
        return frames
    rgb = [f.convert("RGB") for f in frames]
    w = max(f.width for f in rgb)
    h = sum(f.height for f in rgb)
    sheet = Image.new("RGB", (w, h))
    y = 0
    for f in rgb:
        sheet.paste(f, (0, y))
        y += f.height
    pal = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return [f.quantize(palette=pal, dither=Image.Dither.NONE) for f in rgb]


def encode(img: Any, fmt: str, durations: int | Sequence[int] | None = None) -> bytes:
    """The file bytes of an image (PIL image or uint8 array) or a list of frames, in PIL format `fmt`."""
    frames = _as_frames(img)
    buf = io.BytesIO()
    if fmt == "GIF":
        frames = _gif_frames(frames)
        if len(frames) == 1:
            frames[0].save(buf, format="GIF", optimize=False)
        else:
            if durations is None:
                durations = 100
            if not isinstance(durations, int):
                durations = [int(d) for d in durations]
                if len(durations) != len(frames):
                    raise ValueError(f"{len(durations)} durations for {len(frames)} frames")
            frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                           duration=durations, disposal=2, optimize=False)
        return buf.getvalue()
    if len(frames) != 1:
        raise UsageError(f"{len(frames)} frames cannot go in a still {fmt} image; write a .gif "
                         f"(or --format gif) for an animation")
    im = frames[0]
    if fmt == "JPEG":
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        im.save(buf, format="JPEG", quality=95)
    elif fmt == "WEBP":
        im.save(buf, format="WEBP", lossless=True)
    else:
        im.save(buf, format=fmt)
    return buf.getvalue()
