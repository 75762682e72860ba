"""Generated avatars: cartoon faces with known attributes, written in the CelebA layout.

The art is DiceBear's `avataaars` style (Pablo Stanley, "free for personal and commercial use"),
rasterised with resvg. Every drawing choice is made here, from a numpy Generator seeded by
(seed, image index); DiceBear's own seeded randomness is never used: each component gets exactly one
variant, a probability of 0 or 100 and exactly one colour, so the table of choices written next to
the images (`avatars.csv`) is the exact ground truth of what each picture shows.

Labels use CelebA's names and polarity (No_Beard = 1 means *no* beard). Each label is a binary
choice with several within-label variants (kinds of smile, frame styles and colours, shades of a hair
colour family, ...): `LABELS` below holds, for each label, its definition and the ground-truth
column that holds its variant. Everything not tied to a label (hair style among hair tops, eyes,
eyebrows, clothes, background colour) varies freely.

Layout written into OUT (see `generate_avatars`):
    img_align_celeba/000001.png ...   RGB PNG, size x size
    list_attr_celeba.txt             count, label names, then `000001.png  1 -1 ...`
    list_eval_partition.txt          file name and 0 (train) / 1 (valid) / 2 (test)
    avatars.csv                      one row per image: file name and every drawing choice
    avatars.json                     generator version, seed, n, size, licence, label definitions
    README.txt                       licence of the art and how the set was made
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ccvae_tools.util.errors import DataError, UsageError

GENERATOR_VERSION = 1          # bump when the same seed would draw or render differently
STYLE_NAME = "avataaars"
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
TABLE_FILE = "avatars.csv"
META_FILE = "avatars.json"
README_FILE = "README.txt"
NONE = "none"                  # the table's value for a component that is not drawn

# ----------------------------------------------------------------------------------------------
# the choices (all names are DiceBear avataaars variant names; colours are '#rrggbb')
# ----------------------------------------------------------------------------------------------

# Mouths, looked at one by one. Open = lips parted (teeth, tongue or the inside shows).
# Left out: 'grimace' (a clenched toothy mouth that reads as a forced grin: ambiguous for Smiling)
# and 'vomit' (green, not a facial expression).
MOUTH_SMILE_OPEN = ("default", "smile", "tongue")
MOUTH_SMILE_CLOSED = ("twinkle",)
MOUTH_PLAIN_OPEN = ("concerned", "disbelief", "screamOpen")
MOUTH_PLAIN_CLOSED = ("serious", "sad", "eating")
MOUTHS_SMILING = MOUTH_SMILE_OPEN + MOUTH_SMILE_CLOSED
MOUTHS_OPEN = MOUTH_SMILE_OPEN + MOUTH_PLAIN_OPEN

# Glasses: every frame style of the art; 'sunglasses' and 'wayfarers' have tinted lenses but read
# as glasses. 'eyepatch' is never drawn (it is neither glasses nor nothing).
GLASSES = ("kurt", "prescription01", "prescription02", "round", "sunglasses", "wayfarers")
# The art's accessory palette without '#ffdeb5' (skin-coloured frames vanish on pale faces).
FRAME_COLORS = ("#262e33", "#65c9ff", "#5199e4", "#25557c", "#e6e6e6", "#929598", "#3c4f5c",
                "#b1e2ff", "#a7ffc4", "#ffafb9", "#ffffb1", "#ff488e", "#ff5c5c", "#ffffff")

# Tops. Hats hide the hair completely (checked: the hair colour changes no pixel under any of
# them). 'hijab' is never drawn: it is a head covering rather than a hat and would blur the label.
HATS = ("hat", "turban", "winterHat1", "winterHat02", "winterHat03", "winterHat04")
HAT_COLORS = ("#262e33", "#65c9ff", "#5199e4", "#25557c", "#e6e6e6", "#929598", "#3c4f5c",
              "#b1e2ff", "#a7ffc4", "#ffdeb5", "#ffafb9", "#ffffb1", "#ff488e", "#ff5c5c", "#ffffff")
# Bald: no top at all (a smooth scalp) or 'sides' (bald on top, a fringe of hair at the sides and
# back, the usual look of a bald head; its hair colour shows, faintly).
BALD_TOPS = (NONE, "sides")
SHORT_HAIR = ("dreads01", "frizzle", "shaggy", "shaggyMullet", "shortCurly", "shortFlat",
              "shortRound", "shortWaved", "theCaesar", "theCaesarAndSidePart")
LONG_HAIR = ("bigHair", "bob", "bun", "curly", "curvy", "dreads", "dreads02", "frida", "fro",
             "froBand", "longButNotTooLong", "miaWallace", "shavedSides", "straight01",
             "straight02", "straightAndStrand")
HAIR_TOPS = SHORT_HAIR + LONG_HAIR

# Hair colour families. The art's ten colours, less '#4a312c' (a very dark brown that sits between
# black and brown: ambiguous), plus a few shades of ours so that each family has several.
HAIR_FAMILIES: dict[str, tuple[str, ...]] = {
    "black": ("#2c1b18", "#121212", "#262a35"),
    "brown": ("#724133", "#a55728", "#5e3a1c"),
    "blond": ("#d6b370", "#b58143", "#ecdcbf"),
    "gray": ("#e8e1e1", "#b7b7b7", "#8a8a8a"),
    "red": ("#c93305",),        # no label: CelebA has no red-hair attribute
    "pink": ("#f59797",),       # no label: pastel pink of the art
}
HAIR_FAMILY_LABEL = {"black": "Black_Hair", "brown": "Brown_Hair", "blond": "Blond_Hair",
                     "gray": "Gray_Hair"}
FAMILY_NAMES = tuple(HAIR_FAMILIES)
# P(family) for a full head of hair, and for the fringe of a bald head (grey more likely: older).
FAMILY_P_HAIR = (0.30, 0.28, 0.27, 0.07, 0.05, 0.03)
FAMILY_P_SIDES = (0.20, 0.20, 0.10, 0.45, 0.05, 0.00)
# Beards may take any of the art's hair colours (the same as the hair, most of the time).
BEARD_COLORS = ("#2c1b18", "#4a312c", "#724133", "#a55728", "#b58143", "#d6b370", "#ecdcbf",
                "#e8e1e1", "#c93305")
FACIAL_HAIR = ("beardLight", "beardMedium", "beardMajestic", "moustacheFancy", "moustacheMagnum")

# Skin. Pale: the art's palest tone and two of ours. Other: the art's human tones. The art's
# orange ('#fd9841') and yellow ('#f8d25c') tones are never drawn.
PALE_SKINS = ("#ffdbb4", "#fce5d3", "#f2d3c2")
OTHER_SKINS = ("#edb98a", "#d08b5b", "#ae5d29", "#614335")

# Free style.
# Eyes without white eyeballs: at 32 px 'eyeRoll', 'squint', 'surprised' and 'winkWacky' read as
# pale glasses frames, a confound for Eyeglasses; 'cry', 'hearts', 'xDizzy' are effects.
EYES = ("closed", "default", "happy", "side", "wink")
EYEBROWS = ("angry", "angryNatural", "default", "defaultNatural", "flatNatural", "frownNatural",
            "raisedExcited", "raisedExcitedNatural", "sadConcerned", "sadConcernedNatural",
            "unibrowNatural", "upDown", "upDownNatural")
CLOTHES = ("blazerAndShirt", "blazerAndSweater", "collarAndSweater", "graphicShirt", "hoodie",
           "overall", "shirtCrewNeck", "shirtScoopNeck", "shirtVNeck")
CLOTHES_COLORS = ("#262e33", "#65c9ff", "#5199e4", "#25557c", "#e6e6e6", "#929598", "#3c4f5c",
                  "#b1e2ff", "#a7ffc4", "#ffafb9", "#ffffb1", "#ff488e", "#ff5c5c", "#ffffff")
GRAPHICS = ("bat", "bear", "cumbia", "deer", "diamond", "hola", "pizza", "resist", "skull",
            "skullOutline")  # drawn only on 'graphicShirt' (no other clothes show a graphic)
# Pastels chosen to stay clear of every skin tone and hair colour (so that the contrast rule
# below almost never removes one, and the background stays independent of the labels).
BACKGROUNDS = ("#a0c4ff", "#a0e7e5", "#b4f8c8", "#c4b5fd", "#f0abfc", "#f7a1c4")

# Probabilities of the label choices (see LABELS for the resulting positive rates).
P_SMILING = 0.5
P_OPEN_IF_SMILING = 0.65
P_OPEN_IF_NOT = 0.25
P_HAT = 0.25
P_BALD = 0.20
P_PALE = 0.25
P_GLASSES = 0.33
P_GLASSES_IF_GRAY = 0.5
P_FACIAL_HAIR = {"short": 0.5, "bald": 0.55, "hat": 0.35, "long": 0.2}
P_BEARD_SAME_AS_HAIR = 0.75

# Least RGB distance between colours that meet in the picture, so that every choice shows.
MIN_DIST_STRONG = 60.0
MIN_DIST_WEAK = 40.0
MIN_DIST_FRAME = 80.0          # glasses frames against the skin (thin lines: more contrast)

# The table's columns, in order (the file name first).
COLUMNS = ("file", "mouth", "accessories", "accessoriesColor", "glasses", "top", "hairColor",
           "hat", "hatColor", "facialHair", "facialHairColor", "beard", "skinColor", "eyes",
           "eyebrows", "clothes", "clothesColor", "clothesGraphic", "backgroundColor")


@dataclass(frozen=True)
class LabelDef:
    name: str
    definition: str
    variant_column: str          # the ground-truth column holding the within-label variant
    rate: float                  # intended positive rate (the drawing probabilities give it)


LABELS: tuple[LabelDef, ...] = (
    LabelDef("Smiling", "the mouth smiles: " + ", ".join(MOUTHS_SMILING) + " (not: "
             + ", ".join(MOUTH_PLAIN_OPEN + MOUTH_PLAIN_CLOSED) + ")", "mouth", 0.50),
    LabelDef("Mouth_Slightly_Open", "the lips are parted: " + ", ".join(MOUTHS_OPEN) + " (not: "
             + ", ".join(MOUTH_SMILE_CLOSED + MOUTH_PLAIN_CLOSED) + ")", "mouth", 0.45),
    LabelDef("Eyeglasses", "glasses of any frame style (" + ", ".join(GLASSES)
             + ") in any frame colour; no accessory otherwise", "glasses", 0.345),
    LabelDef("Wearing_Hat", "a hat covers the head: " + ", ".join(HATS) + "; no hair shows",
             "hat", 0.25),
    LabelDef("Bald", "no hair on top of the head: a smooth scalp (top none) or a fringe at the "
             "sides (top sides)", "top", 0.20),
    LabelDef("Black_Hair", "hair shows and is black: " + ", ".join(HAIR_FAMILIES["black"]),
             "hairColor", 0.185),
    LabelDef("Blond_Hair", "hair shows and is blond: " + ", ".join(HAIR_FAMILIES["blond"]),
             "hairColor", 0.16),
    LabelDef("Brown_Hair", "hair shows and is brown: " + ", ".join(HAIR_FAMILIES["brown"]),
             "hairColor", 0.175),
    LabelDef("Gray_Hair", "hair shows and is grey or white: " + ", ".join(HAIR_FAMILIES["gray"]),
             "hairColor", 0.085),
    LabelDef("No_Beard", "no facial hair (CelebA polarity: 1 = no beard); 0 = one of "
             + ", ".join(FACIAL_HAIR) + " in a hair colour", "beard", 0.63),
    LabelDef("Pale_Skin", "pale skin: " + ", ".join(PALE_SKINS) + " (not: " + ", ".join(OTHER_SKINS)
             + ")", "skinColor", 0.25),
)
LABEL_NAMES = tuple(d.name for d in LABELS)


# ----------------------------------------------------------------------------------------------
# drawing the choices
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _dist(a: str, b: str) -> float:
    """Euclidean distance of two '#rrggbb' colours in RGB (0..255 per channel)."""
    return math.dist([int(a[i:i + 2], 16) for i in (1, 3, 5)], [int(b[i:i + 2], 16) for i in (1, 3, 5)])


def _far(color: str, others: Iterable[str], min_dist: float) -> bool:
    return all(_dist(color, o) >= min_dist for o in others)


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _pick_far(rng: np.random.Generator, palette: Sequence[str],
              avoid: Sequence[tuple[str, float]]) -> str:
    """A colour of `palette` at least the given distance from each (colour, distance) in `avoid`."""
    ok = [c for c in palette if all(_dist(c, o) >= d for o, d in avoid)]
    if not ok:  # pragma: no cover - the palettes are chosen so that this cannot happen
        raise AssertionError(f"no colour of {palette} is far enough from {avoid}")
    return _pick(rng, ok)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The Generator that draws image `index` (0-based) of the set with this seed."""
    return np.random.default_rng([int(seed), int(index), 0xA7A7A7])


def draw_choices(rng: np.random.Generator) -> dict[str, str]:
    """Draw every choice of one avatar. Returns the table row (without 'file'): str -> str.

    The order of the draws below is part of what a seed means (see GENERATOR_VERSION): later
    choices depend on earlier ones (colours kept apart from the skin and hair they touch)."""
    mouth = _draw_mouth(rng)
    head, top = _draw_head(rng)
    skin = _draw_skin(rng)
    hair = _draw_hair_color(rng, head, top, skin)
    beard_style, beard_color = _draw_facial_hair(rng, head, hair, skin)
    glasses_style, frame = _draw_glasses(rng, hair, skin)
    free = _draw_free_style(rng, head, skin, hair)
    return {
        "mouth": mouth,
        "accessories": glasses_style,
        "accessoriesColor": frame,
        "glasses": _style_and_color(glasses_style, frame),
        "top": top,
        "hairColor": hair,
        "hat": _style_and_color(top, free["hatColor"]),
        "hatColor": free["hatColor"],
        "facialHair": beard_style,
        "facialHairColor": beard_color,
        "beard": _style_and_color(beard_style, beard_color),
        "skinColor": skin,
        "eyes": free["eyes"],
        "eyebrows": free["eyebrows"],
        "clothes": free["clothes"],
        "clothesColor": free["clothesColor"],
        "clothesGraphic": free["clothesGraphic"],
        "backgroundColor": free["backgroundColor"],
    }


def _style_and_color(style: str, color: str) -> str:
    """A combined ground-truth cell 'style/#colour' ('none' where the component is not drawn)."""
    return NONE if color == NONE else f"{style}/{color}"


def _draw_mouth(rng: np.random.Generator) -> str:
    """Smiling, then open lips given Smiling (correlated on purpose, as in CelebA)."""
    smiling = rng.random() < P_SMILING
    open_ = rng.random() < (P_OPEN_IF_SMILING if smiling else P_OPEN_IF_NOT)
    mouths = {(True, True): MOUTH_SMILE_OPEN, (True, False): MOUTH_SMILE_CLOSED,
              (False, True): MOUTH_PLAIN_OPEN, (False, False): MOUTH_PLAIN_CLOSED}
    return _pick(rng, mouths[(smiling, open_)])


def _draw_head(rng: np.random.Generator) -> tuple[str, str]:
    """(kind of head: 'hat', 'bald', 'short' or 'long' hair; its top variant)."""
    u = rng.random()
    if u < P_HAT:
        return "hat", _pick(rng, HATS)
    if u < P_HAT + P_BALD:
        return "bald", _pick(rng, BALD_TOPS)
    top = _pick(rng, HAIR_TOPS)
    return ("short" if top in SHORT_HAIR else "long"), top


def _draw_skin(rng: np.random.Generator) -> str:
    pale = rng.random() < P_PALE
    return _pick(rng, PALE_SKINS if pale else OTHER_SKINS)


def _draw_hair_color(rng: np.random.Generator, head: str, top: str, skin: str) -> str:
    """A shade of a hair colour family, only where hair shows (hair tops and the fringe of 'sides')."""
    if head not in ("short", "long") and top != "sides":
        return NONE
    p = FAMILY_P_SIDES if top == "sides" else FAMILY_P_HAIR
    family = FAMILY_NAMES[int(rng.choice(len(FAMILY_NAMES), p=p))]
    shades = HAIR_FAMILIES[family]
    # a shade too close to the skin would hide the hair; a family with none far enough keeps them all
    return _pick(rng, [s for s in shades if _far(s, [skin], MIN_DIST_WEAK)] or list(shades))


def _draw_facial_hair(rng: np.random.Generator, head: str, hair: str, skin: str) -> tuple[str, str]:
    """(style, colour), more likely with short hair or a bald head; mostly the colour of the hair."""
    if rng.random() >= P_FACIAL_HAIR[head]:
        return NONE, NONE
    style = _pick(rng, FACIAL_HAIR)
    if hair != NONE and _far(hair, [skin], MIN_DIST_STRONG) and rng.random() < P_BEARD_SAME_AS_HAIR:
        return style, hair
    return style, _pick_far(rng, BEARD_COLORS, [(skin, MIN_DIST_STRONG)])


def _draw_glasses(rng: np.random.Generator, hair: str, skin: str) -> tuple[str, str]:
    """(frame style, frame colour), a little more likely with grey hair."""
    gray = hair in HAIR_FAMILIES["gray"]
    if rng.random() >= (P_GLASSES_IF_GRAY if gray else P_GLASSES):
        return NONE, NONE
    return _pick(rng, GLASSES), _pick_far(rng, FRAME_COLORS, [(skin, MIN_DIST_FRAME)])


def _draw_free_style(rng: np.random.Generator, head: str, skin: str, hair: str) -> dict[str, str]:
    """The choices tied to no label (table columns): every colour kept apart from what it touches."""
    avoid_bg = [(skin, MIN_DIST_STRONG)] + ([(hair, MIN_DIST_STRONG)] if hair != NONE else [])
    background = _pick_far(rng, BACKGROUNDS, avoid_bg)
    hat_color = NONE
    if head == "hat":
        hat_color = _pick_far(rng, HAT_COLORS, [(background, MIN_DIST_STRONG), (skin, MIN_DIST_STRONG)])
    eyes = _pick(rng, EYES)
    eyebrows = _pick(rng, EYEBROWS)
    clothes = _pick(rng, CLOTHES)
    clothes_color = _pick_far(rng, CLOTHES_COLORS, [(background, MIN_DIST_STRONG), (skin, MIN_DIST_WEAK)])
    graphic = _pick(rng, GRAPHICS) if clothes == "graphicShirt" else NONE
    return {"backgroundColor": background, "hatColor": hat_color, "eyes": eyes, "eyebrows": eyebrows,
            "clothes": clothes, "clothesColor": clothes_color, "clothesGraphic": graphic}


def labels_from_choices(c: dict[str, str]) -> dict[str, int]:
    """The labels (0/1, CelebA names and polarity) that a row of drawing choices shows."""
    family = next((f for f, shades in HAIR_FAMILIES.items() if c["hairColor"] in shades), None)
    out = {
        "Smiling": int(c["mouth"] in MOUTHS_SMILING),
        "Mouth_Slightly_Open": int(c["mouth"] in MOUTHS_OPEN),
        "Eyeglasses": int(c["accessories"] in GLASSES),
        "Wearing_Hat": int(c["top"] in HATS),
        "Bald": int(c["top"] in BALD_TOPS),
        "No_Beard": int(c["facialHair"] == NONE),
        "Pale_Skin": int(c["skinColor"] in PALE_SKINS),
    }
    for fam, name in HAIR_FAMILY_LABEL.items():
        out[name] = int(family == fam)
    return {name: out[name] for name in LABEL_NAMES}


def draw_all(n: int, seed: int) -> list[dict[str, str]]:
    """The drawing choices of images 0 .. n-1 of the set with this seed."""
    return [draw_choices(image_rng(seed, i)) for i in range(n)]


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------

_FILLER_COLOR = "#2c1b18"   # passed for a colour whose component is not drawn (never visible)

_STYLE: Any = None
_FAST: bool | None = None   # whether the validated fast path renders exactly as Avatar does


def load_style() -> Any:
    """The DiceBear avataaars style (parsed once per process)."""
    global _STYLE
    if _STYLE is None:
        try:
            from importlib.resources import files

            from dicebear import Style
        except ImportError as e:  # pragma: no cover - depends on the installation
            raise DataError("drawing avatars needs the packages dicebear-core, dicebear-styles and "
                            "resvg-py: pip install 'ccvae-tools[avatars]'") from e
        text = files("dicebear_styles").joinpath(f"{STYLE_NAME}.json").read_text("utf-8")
        _STYLE = Style(json.loads(text))
        _check_fast_path()
    return _STYLE


def _svg_public(opts: dict[str, Any]) -> str:
    from dicebear import Avatar

    return Avatar(_STYLE, opts).to_string()


def _svg_fast(opts: dict[str, Any]) -> str:
    """Avatar(style, opts).to_string() without the per-call JSON-schema check of the options.

    That check takes about 80 % of DiceBear's time; our options always have the same keys and
    value types (one set is checked through the public path in `_check_fast_path`), so it is
    skipped here. Uses DiceBear's internal classes, hence the self-check and the fallback."""
    from dicebear.options import Options
    from dicebear.renderer import Renderer
    from dicebear.resolver import Resolver

    options = Options.__new__(Options)
    options._data = opts        # what Options.__init__ stores after validating (a private copy)
    options._tags = None
    return Renderer(_STYLE, Resolver(_STYLE, options)).render()


def _check_fast_path() -> None:
    """Use the fast path only if it gives the very same SVG as the public API on sample avatars."""
    global _FAST
    try:
        samples = [draw_choices(image_rng(12345, i)) for i in range(4)]
        _FAST = all(_svg_fast(dicebear_options(c, 64)) == _svg_public(dicebear_options(c, 64))
                    for c in samples)
    except Exception:  # noqa: BLE001 - any change in DiceBear's internals: use the public API
        _FAST = False


def style_definition() -> dict:
    from importlib.resources import files

    return json.loads(files("dicebear_styles").joinpath(f"{STYLE_NAME}.json").read_text("utf-8"))


def dicebear_options(c: dict[str, str], size: int) -> dict[str, Any]:
    """DiceBear options that draw exactly the choices `c`: one variant, probability 0 or 100 and
    one colour for every component, so DiceBear's seed decides nothing."""

    def col(value: str) -> list[str]:
        return [(value if value != NONE else _FILLER_COLOR).lstrip("#")]

    def comp(name: str, value: str, fallback: str) -> dict[str, Any]:
        shown = value != NONE
        return {f"{name}Variant": [value if shown else fallback],
                f"{name}Probability": 100 if shown else 0}

    opts: dict[str, Any] = {"seed": "ccvae", "size": size, "flip": ["none"]}
    opts.update(comp("mouth", c["mouth"], "default"))
    opts.update(comp("accessories", c["accessories"], "round"))
    opts.update(comp("top", c["top"], "shortFlat"))
    opts.update(comp("facialHair", c["facialHair"], "beardLight"))
    opts.update(comp("eyes", c["eyes"], "default"))
    opts.update(comp("eyebrows", c["eyebrows"], "default"))
    opts.update(comp("clothes", c["clothes"], "shirtCrewNeck"))
    opts.update(comp("clothesGraphic", c["clothesGraphic"], "bat"))
    opts.update({"noseVariant": ["default"], "noseProbability": 100})
    for key in ("accessoriesColor", "hairColor", "hatColor", "facialHairColor", "skinColor",
                "clothesColor", "backgroundColor"):
        opts[key] = col(c[key])
        base = key[: -len("Color")]
        opts[f"{base}ColorFill"] = ["solid"]
    return opts


def render_svg(c: dict[str, str], size: int = 64) -> str:
    """The SVG of the avatar with choices `c` (DiceBear avataaars)."""
    load_style()
    opts = dicebear_options(c, size)
    return _svg_fast(opts) if _FAST else _svg_public(opts)


def render_rgb(c: dict[str, str], size: int = 64) -> np.ndarray:
    """The avatar as a uint8 array (size, size, 3)."""
    return np.asarray(_render_image(c, size))


def _render_image(c: dict[str, str], size: int):
    import resvg_py
    from PIL import Image

    png = resvg_py.svg_to_bytes(svg_string=render_svg(c, size), width=size, height=size,
                                skip_system_fonts=True)  # no text in the art; fonts unused
    im = Image.open(io.BytesIO(bytes(png)))
    im.load()
    if im.mode != "RGBA":
        im = im.convert("RGBA")
    flat = Image.new("RGB", im.size, (255, 255, 255))
    flat.paste(im, mask=im.getchannel("A"))
    if flat.size != (size, size):  # pragma: no cover - resvg honours width/height
        flat = flat.resize((size, size), Image.BILINEAR)
    return flat


def render_png(c: dict[str, str], size: int = 64) -> bytes:
    buf = io.BytesIO()
    _render_image(c, size).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# writing a set
# ----------------------------------------------------------------------------------------------

def file_name(index: int, n: int) -> str:
    """The file name of image `index` (0-based) in a set of n: 000001.png, ... (CelebA style)."""
    return f"{index + 1:0{max(6, len(str(n)))}d}.png"


def file_names(n: int) -> list[str]:
    return [file_name(i, n) for i in range(n)]


def split_assignment(n: int, seed: int, valid_frac: float, test_frac: float) -> np.ndarray:
    """0 = train, 1 = valid, 2 = test; exact counts (rounded), positions drawn from the seed."""
    n_valid = int(round(n * valid_frac))
    n_test = int(round(n * test_frac))
    if n_valid + n_test > n:
        raise UsageError(f"--valid-frac {valid_frac} and --test-frac {test_frac} leave no "
                         "training images")
    split = np.zeros(n, dtype=np.int8)
    order = np.random.default_rng([int(seed), 0x5B117]).permutation(n)
    split[order[:n_valid]] = 1
    split[order[n_valid:n_valid + n_test]] = 2
    return split


def _draw_chunk(job: tuple[str, int, int, int, int, int]) -> tuple[int, list[dict[str, str]]]:
    """Draw and write images start .. stop-1; return (start, their rows of choices)."""
    folder, size, seed, start, stop, n = job
    rows = []
    for i in range(start, stop):
        c = draw_choices(image_rng(seed, i))
        with open(os.path.join(folder, file_name(i, n)), "wb") as f:
            f.write(render_png(c, size))
        rows.append(c)
    return start, rows


def _pool_context():
    import multiprocessing as mp

    # fork: workers inherit the parsed style and need no re-import of the main module
    # (`python -m ccvae_tools` runs the CLI at import). Elsewhere: spawn.
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


def _draw_images(folder: Path, n: int, seed: int, size: int, workers: int) -> list[dict[str, str]]:
    """Draw and write all images (in parallel when workers > 1); return the rows of choices."""
    from ccvae_tools.util.console import progress

    workers = max(1, min(workers, n))
    chunk = max(1, min(200, -(-n // (workers * 8))))
    jobs = [(str(folder), size, seed, a, min(n, a + chunk), n) for a in range(0, n, chunk)]
    rows: list[dict[str, str]] = [{}] * n
    with progress("drawing avatars", n) as advance:
        if workers == 1:
            results: Iterable[tuple[int, list[dict[str, str]]]] = map(_draw_chunk, jobs)
            for start, part in results:
                rows[start:start + len(part)] = part
                advance(len(part))
        else:
            load_style()  # parsed once here; forked workers inherit it
            with _pool_context().Pool(workers) as pool:
                for start, part in pool.imap_unordered(_draw_chunk, jobs):
                    rows[start:start + len(part)] = part
                    advance(len(part))
    return rows


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("dicebear-core", "dicebear-styles", "resvg-py", "numpy", "pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


def _licence() -> dict[str, Any]:
    meta = style_definition().get("meta", {})
    lic = meta.get("license", {})
    return {
        "art": "Avataaars",
        "creator": meta.get("creator", {}).get("name", "Pablo Stanley"),
        "source": meta.get("source", {}).get("url", "https://avataaars.com/"),
        "name": lic.get("name", "Free for personal and commercial use"),
        "url": lic.get("url", "https://avataaars.com/"),
        "text": lic.get("text", ""),
    }


def _metadata(n: int, seed: int, size: int, valid_frac: float, test_frac: float,
              split: np.ndarray) -> dict[str, Any]:
    from ccvae_tools import __version__

    return {
        "generator": "ccvae data avatars",
        "generator_version": GENERATOR_VERSION,
        "ccvae_version": __version__,
        "style": STYLE_NAME,
        "packages": _versions(),
        "seed": int(seed),
        "n": int(n),
        "size": int(size),
        "valid_frac": float(valid_frac),
        "test_frac": float(test_frac),
        "split_counts": {"train": int((split == 0).sum()), "valid": int((split == 1).sum()),
                         "test": int((split == 2).sum())},
        "license": _licence(),
        "labels": [
            {"name": d.name, "definition": d.definition, "variant_column": d.variant_column,
             "intended_rate": d.rate}
            for d in LABELS
        ],
        "columns": list(COLUMNS),
        "none_value": NONE,
        "notes": [
            "Every choice is drawn by numpy from (seed, image index); DiceBear's seed decides nothing.",
            "Hair colour labels are 0 when no hair shows (hats, smooth bald heads); they are "
            "mutually exclusive; red and pink hair carry none of them.",
            "hairColor is 'none' where no hair is drawn; combined columns glasses, hat and beard "
            "join style and colour as 'style/#colour'.",
            "Never drawn: mouths grimace and vomit, the eyepatch, the hijab, the orange and yellow "
            "skin tones, hair colour #4a312c, eyes with white eyeballs (eyeRoll, squint, surprised, "
            "winkWacky: they look like pale frames at 32 px) and eyes cry, hearts, xDizzy.",
            "Colours that meet are kept apart (RGB distance): background vs skin and hair, hat vs "
            "background and skin, frames vs skin (so frame colours depend a little on the skin).",
        ],
    }


def _readme(meta: dict[str, Any]) -> str:
    lic = meta["license"]
    lines = [
        "Generated avatars (CelebA layout) made by `ccvae data avatars`.",
        "",
        "Art licence",
        "-----------",
        f"The faces are drawn with the \"Avataaars\" art by {lic['creator']} ({lic['source']}),",
        f"licensed \"{lic['name']}\" ({lic['url']}), through the DiceBear avataaars style",
        "(dicebear-core / dicebear-styles) and rasterised with resvg-py.",
        lic["text"],
        "",
        "How the set was made",
        "--------------------",
        f"{meta['n']} images of {meta['size']} x {meta['size']} pixels, seed {meta['seed']}, "
        f"generator version {meta['generator_version']}.",
        "Each image's choices (mouth, glasses, top, colours, ...) are drawn by numpy from the seed",
        "and the image index, so the same seed gives the same files. avatars.csv lists every choice",
        "(the ground truth); avatars.json defines each label and names the column that holds its",
        "within-label variant. Labels follow CelebA's names and polarity (No_Beard = 1: no beard).",
        "",
        "Labels",
        "------",
    ]
    for d in meta["labels"]:
        lines.append(f"{d['name']}: {d['definition']} [variant column: {d['variant_column']}]")
    lines += ["", "Files", "-----",
              f"{IMAGE_DIR}/  PNG images;  {ATTR_FILE}  labels (-1/1);  {PARTITION_FILE}  "
              "0 train / 1 valid / 2 test;", f"{TABLE_FILE}  drawing choices;  {META_FILE}  metadata.", ""]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def generate_avatars(out: Path, n: int, seed: int = 0, size: int = 64, workers: int = 0,
                     valid_frac: float = 0.1, test_frac: float = 0.1) -> Path:
    """Draw `n` avatars into the new folder `out` (CelebA layout plus ground truth). Returns `out`.

    The set is built in a hidden sibling folder and renamed into place at the end, so an
    interrupted run never leaves a folder that looks finished. `out` must not exist or be empty.
    """
    out = Path(out)
    if n < 1:
        raise UsageError("--n must be at least 1")
    if seed < 0:
        raise UsageError("--seed must be 0 or more")
    if size < 8:
        raise UsageError("--size must be at least 8")
    if not (0.0 <= valid_frac < 1.0 and 0.0 <= test_frac < 1.0):
        raise UsageError("--valid-frac and --test-frac must be between 0 and 1")
    if out.exists():
        if not out.is_dir():
            raise DataError(f"{out} exists and is not a folder; choose a new folder for the avatars")
        if any(out.iterdir()):
            raise DataError(f"{out} is not empty; choose a new folder for the avatars "
                            f"(e.g. {out.name}-2), or remove this one first")
    workers = int(workers) if workers and workers > 0 else (os.cpu_count() or 1)
    split = split_assignment(n, seed, valid_frac, test_frac)
    load_style()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / IMAGE_DIR).mkdir(parents=True)
        names = file_names(n)
        rows = _draw_images(tmp / IMAGE_DIR, n, seed, size, workers)

        with open(tmp / TABLE_FILE, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(COLUMNS)
            for name, row in zip(names, rows):
                w.writerow([name] + [row[k] for k in COLUMNS[1:]])
        meta = _metadata(n, seed, size, valid_frac, test_frac, split)
        _write_text(tmp / META_FILE, json.dumps(meta, indent=2) + "\n")
        _write_text(tmp / README_FILE, _readme(meta))
        _write_text(tmp / PARTITION_FILE,
                    "".join(f"{name} {int(s)}\n" for name, s in zip(names, split)))
        attr = [str(n), " ".join(LABEL_NAMES)]
        for name, row in zip(names, rows):
            labels = labels_from_choices(row)
            attr.append(name + " " + " ".join(f"{(1 if labels[k] else -1):2d}" for k in LABEL_NAMES))
        _write_text(tmp / ATTR_FILE, "\n".join(attr) + "\n")   # last: its presence marks a finished set

        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
