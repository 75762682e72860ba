"""The studio's engine: images kept with their codes, edits decoded on request (no web framework).

    studio = Studio(load("weights/avatars64.safetensors"), examples=[("smile", "weights/examples/smile.png")])
    pic = studio.upload(data, "face.png")           # validated like every CLI input; codes computed once
    png, q = studio.render(pic.id, Edit(moves={smiling: 0.9}))     # decode only, then q(y | edited image)

A slider's value t in [0, 1] is a place on its label's traversal path (`interventions.traversal_path`:
class-0 end to the last class's end, `span` prior sd past the class means), and moving it puts z_c^i
there, as `ccvae traverse` does; labels not moved keep the image's own z_c^i, so an untouched page
shows the reconstruction. A swapped label takes the second image's z_c^i, as `ccvae swap` does.
"""

from __future__ import annotations

import io
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ccvae_tools import render
from ccvae_tools.animation import traversal_loop
from ccvae_tools.data.images import MAX_PIXELS, decoding, load_image
from ccvae_tools.interventions import conditional_sample, point_along, position_along, traversal_path
from ccvae_tools.util.errors import DataError

PATH_POINTS = 129            # samples of each label's path (the slider moves smoothly between them)
MAX_IMAGES = 64              # uploads kept (all tabs together); the least recently used go first
MAX_SAMPLES = 64
DOWNLOAD_SCALE = 4           # the PNG download: 64 px -> 256 px, nearest neighbour
GIF_FRAMES, GIF_FPS = 48, 15 # as `ccvae gif`
CLASSIFY_DRAWS = 100         # q(y | image) as `ccvae classify` computes it (same seed, same numbers)
# An upload is decoded in full before it is shrunk to the model's size: a server that decodes for
# every tab at once keeps each decode small (16 MP: ~0.3 s and ~50 MB here) and few at a time. JPEG
# photos may be as large as the loader allows (64 MP): it decodes them at 1/2 to 1/8 of their size.
UPLOAD_PIXELS = 4096 * 4096
DRAFTED = ("JPEG", "MPO")
MAX_FRAMES = 1000            # the first frame is used; an animation of more frames is refused
DECODERS = 2                 # uploads decoded at once (the others wait): bounds a burst's memory


class UnknownImage(KeyError):
    """An image id the engine does not hold (never given out, or dropped as the oldest)."""


@dataclass
class Picture:
    id: str
    name: str                       # for display only (the page writes it as text)
    pixels: np.ndarray              # uint8 (C, H, W), the model's input
    code: torch.Tensor              # (Z,): the posterior mean, on the CPU
    positions: list[float]          # the image's own place on each label's slider
    example: bool = False


@dataclass
class Edit:
    """What the page asks for: slider moves (label index -> t) and labels taken from a second image."""
    moves: dict[int, float] = field(default_factory=dict)
    swap_from: str | None = None
    swap_labels: Sequence[int] = ()


class Studio:
    def __init__(self, m: Any, examples: Sequence[tuple[str, str | Path]] = (), span: float = 2.0):
        self.m, self.model, self.span = m, m.model, span
        self.lock = threading.Lock()          # one model; requests from several tabs take turns
        self.decoders = threading.BoundedSemaphore(DECODERS)
        self.images: OrderedDict[str, Picture] = OrderedDict()
        with torch.no_grad():
            self.paths = [traversal_path(self.model, i, PATH_POINTS, span).cpu() for i in range(len(m.labels))]
        self.examples = [self._add(name, load_image(path, m.preprocess, name=name), example=True)
                         for name, path in examples]

    # -- what the page shows first --------------------------------------------------------------

    def describe(self) -> dict:
        """The model's labels (with the class means' places on each slider) and the examples (their
        pixels as `thumbnail`, uint8 (C, H, W))."""
        loc, _ = self.model.prior_params()
        labels = []
        for i, lab in enumerate(self.m.labels):
            d = self.model.cfg.label_dims[i]
            marks = [position_along(self.paths[i], loc[i, k, :d].detach().cpu()) for k in range(lab.num_classes)]
            labels.append({"name": lab.name, "classes": list(lab.classes), "marks": marks})
        pre = self.m.preprocess
        return {"model": self.m.path.name, "size": pre.size, "channels": pre.channels, "labels": labels,
                "examples": [{"id": p.id, "name": p.name, "thumbnail": p.pixels} for p in self.examples]}

    def upload(self, data: bytes, name: str) -> Picture:
        """An image file's bytes through the CLI's validated loader (a DataError names what is wrong),
        after the studio's own limits (`check_upload`)."""
        with self.decoders:
            check_upload(data, name)
            pixels = load_image(data, self.m.preprocess, name=name)
        return self._add(name, pixels)

    def picture(self, image_id: str) -> Picture:
        with self.lock:
            pic = self.images.get(image_id)
            if pic is None:
                raise UnknownImage(image_id)
            self.images.move_to_end(image_id)
            return pic

    def state(self, image_id: str) -> dict:
        """An image as the page first shows it: input, reconstruction, own places, q(y | each)."""
        pic = self.picture(image_id)
        with self.lock:
            recon = self.m.decode(pic.code[None])[0]
            q = self._classify(np.stack([pic.pixels, recon]))
        return {"id": pic.id, "name": pic.name, "positions": pic.positions, "input": png(pic.pixels),
                "reconstruction": png(recon), "q_input": q[0], "q_reconstruction": q[1]}

    # -- edits -----------------------------------------------------------------------------------

    def code(self, image_id: str, edit: Edit) -> torch.Tensor:
        """The edited code (Z,): swapped labels take the second image's z_c^i, moved ones their slider's."""
        z = self.picture(image_id).code.clone()
        if edit.swap_from is not None:
            other = self.picture(edit.swap_from).code
            for i in edit.swap_labels:
                z[self.model.label_slice(i)] = other[self.model.label_slice(i)]
        for i, t in edit.moves.items():
            z[self.model.label_slice(i)] = point_along(self.paths[i], t)
        return z

    def render(self, image_id: str, edit: Edit) -> tuple[np.ndarray, list[list[float]]]:
        """The edited image, uint8 (C, H, W), and q(y_i | that image) per label (class probabilities)."""
        z = self.code(image_id, edit)
        with self.lock:
            image = self.m.decode(z[None])[0]
            return image, self._classify(image[None])[0]

    def gif(self, image_id: str, edit: Edit, label: int) -> bytes:
        """The label's traversal loop from the edited code, drawn as `ccvae gif --label L --probability`."""
        z = self.code(image_id, edit)
        with self.lock:
            frames, durations = traversal_loop(self.m, z[None].to(self.m.device), [label], GIF_FRAMES, GIF_FPS,
                                               self.span, scale=2, titles=[self.m.labels[label].name],
                                               probability=True)
        return render.encode(frames, "GIF", durations)

    def sample(self, assignments: dict[int, int], n: int, seed: int, temperature: float = 1.0,
               style_of: str | None = None) -> Any:
        """Conditional generation (`ccvae sample`): n images with the chosen classes, as one grid
        picture (PIL); with `style_of`, every one keeps that image's style latents."""
        style = self.picture(style_of).code if style_of is not None else None
        g = torch.Generator().manual_seed(seed)
        with self.lock:
            z = conditional_sample(self.model, n, assignments, style=style, temperature=temperature, generator=g)
            images = self.m.decode(z)
        cols = math.ceil(math.sqrt(n))
        return render.grid([list(images[r: r + cols]) for r in range(0, n, cols)])

    # -- inside ----------------------------------------------------------------------------------

    def _add(self, name: str, pixels: np.ndarray, example: bool = False) -> Picture:
        with self.lock:
            code = self.m.codes(pixels[None])[0].cpu()
            positions = [position_along(self.paths[i], code[self.model.label_slice(i)])
                         for i in range(len(self.paths))]
            pic = Picture(secrets.token_hex(8), name, pixels, code, positions, example)
            self.images[pic.id] = pic
            uploads = [k for k, p in self.images.items() if not p.example]
            for old in uploads[: max(0, len(uploads) - MAX_IMAGES)]:
                del self.images[old]
        return pic

    def _classify(self, images: np.ndarray) -> list[list[list[float]]]:
        probs = self.m.classify(images, draws=CLASSIFY_DRAWS)
        return [[probs[b, i, : lab.num_classes].tolist() for i, lab in enumerate(self.m.labels)]
                for b in range(len(images))]


def check_upload(data: bytes, name: str) -> None:
    """Refuse, from the file's header alone (nothing decoded), a picture of more than UPLOAD_PIXELS
    (JPEG: MAX_PIXELS) or an animation of more than MAX_FRAMES frames. A file PIL cannot open is
    left to `load_image`, which says what is wrong with it."""
    try:
        with decoding():
            img = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - not an image, a bomb PIL refuses itself...: the loader's message
        return
    w, h = img.size
    limit = MAX_PIXELS if img.format in DRAFTED else UPLOAD_PIXELS
    if w * h > limit:
        raise DataError(f"{name}: {w}x{h} pixels is more than the studio decodes (at most "
                        f"{limit / 1e6:.1f} megapixels; or a decompression bomb); resize it first")
    try:
        with decoding():
            too_many = _frames_over(img, MAX_FRAMES)
    except Exception:  # noqa: BLE001 - a broken later frame: the loader reads only the first
        too_many = False
    if too_many:
        raise DataError(f"{name}: an animation of more than {MAX_FRAMES} frames; give a still image "
                        f"(the studio uses the first frame)")


def _frames_over(img: Image.Image, limit: int) -> bool:
    """Whether the file holds more than `limit` frames, at the cost of `limit` frames at most.

    Counting a GIF's frames (n_frames) walks the whole file, 0.6 s for 7 MB of 1-pixel frames; seeking
    to frame `limit` skips the frames before it undecoded. Other formats state their count (APNG
    acTL, WebP, TIFF directories), and seeking an APNG would decode every frame on the way.
    """
    if img.format != "GIF":
        return getattr(img, "n_frames", 1) > limit
    try:
        img.seek(limit)
    except EOFError:
        return False
    return True


def png(image: Any, scale: int = 1) -> bytes:
    """PNG bytes of a uint8 (C, H, W) image, upscaled by nearest neighbour, or of a PIL picture."""
    if isinstance(image, np.ndarray):
        image = render.tile_image(image, scale)
    return render.encode(image, "PNG")
