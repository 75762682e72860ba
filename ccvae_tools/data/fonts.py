"""Typefaces as a data set: the characters of every font file found, rendered as grayscale images
and labelled from each font's own tables (`ccvae data fonts`).

Labels (binary unless said): Bold (OS/2 usWeightClass >= 600), Italic (fsSelection ITALIC or
OBLIQUE bit, or a non-zero post.italicAngle), Monospace (post.isFixedPitch, or PANOSE proportion
"monospaced" of a Latin text face), Condensed (OS/2 usWidthClass <= 4, or a word "Condensed",
"Narrow", "Compressed" or "Cnd" in the family or style name: some condensed families leave the width
class at normal), Serif (PANOSE serif style of a Latin text face: cove to triangle = serif,
normal/obtuse/perpendicular sans, flared and rounded = sans; where PANOSE is unset, the family name:
a word "Sans" = sans, "Serif" or "Roman" = serif, else missing), and `char`, the character (multi-class).

The set is written as a folder + CSV data set (fonts.csv, images/), so `ccvae train` and `ccvae eval`
read it as they read any labelled folder. truth/characteristics.csv records the continuous
characteristics behind the labels (weight class, italic angle, width class) and the family of every
image; truth/characteristics.json names the label each characteristic belongs to, for the capture
part of `ccvae eval`. The split is by family (a typographic family's faces share one split), so the test split holds
typefaces the model never saw. A face found twice (same PostScript name) is kept once, a character
the font lacks, or maps to a glyph named for another character (symbol fonts), is skipped for that
face, and an unreadable file is reported and skipped.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ccvae_tools.util.atomic import atomic_write_bytes
from ccvae_tools.util.errors import DataError, UsageError
from ccvae_tools.util.text import safe_text, slug as text_slug

FONT_EXTS = (".ttf", ".otf", ".ttc", ".otc")
DEFAULT_CHARS = "abdefghkmnpqrstuvwyz"     # 20 letters: the folder reader's most classes for a label
MAX_CHARS = 20
LABELS = ("Bold", "Italic", "Monospace", "Condensed", "Serif")
# the continuous characteristic inside each binary label, as `ccvae eval` reads it (characteristics.json)
CONTINUOUS = (("Bold", "weight_class"), ("Italic", "italic_angle"), ("Condensed", "width_class"))
INK_SHARE = 0.75                          # the font size as a share of the image side


def system_font_dirs() -> list[Path]:
    """The usual font folders of Linux, macOS and Windows that exist here."""
    home = Path.home()
    candidates = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), home / ".local/share/fonts",
                  home / ".fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts"),
                  home / "Library/Fonts", Path("C:/Windows/Fonts")]
    return [p for p in candidates if p.is_dir()]


def find_font_files(dirs: Sequence[Path]) -> list[Path]:
    """Font files (TTF, OTF, TTC) under the given folders or files, sorted, each once."""
    found: set[Path] = set()
    for d in dirs:
        d = Path(d).expanduser()
        if d.is_file():
            found.add(d.resolve())
        elif d.is_dir():
            found.update(p.resolve() for p in d.rglob("*") if p.suffix.lower() in FONT_EXTS and p.is_file())
        else:
            raise UsageError(f"--fonts {d}: no such file or folder")
    return sorted(found)


def check_chars(chars: str) -> str:
    """The characters to render: distinct, visible, at most MAX_CHARS, read back as one class each."""
    seen = "".join(dict.fromkeys(chars))
    if not seen:
        raise UsageError("--chars: give at least one character")
    if len(seen) > MAX_CHARS:
        raise UsageError(f"--chars: at most {MAX_CHARS} characters (a label has at most {MAX_CHARS} classes), "
                         f"got {len(seen)}")
    bad = [c for c in seen if not c.isprintable() or c.isspace() or c in "?,\"'"]
    if bad:
        raise UsageError(f"--chars: cannot use {', '.join(repr(c) for c in bad)}")
    if any(c.isdigit() for c in seen) and not all(c.isdigit() for c in seen):
        raise UsageError("--chars: digits and other characters cannot be mixed (the CSV column would mix "
                         "numbers and words)")
    if len(seen) < 2:
        raise UsageError("--chars: give at least two characters (a label needs two classes)")
    return seen


# ----------------------------------------------------------------------------------------------
# what a font's tables say
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Face:
    """One face of a font file (a .ttc holds several) and what its tables say."""

    path: Path
    index: int                    # the face's number within the file
    family: str                   # typographic family (name ID 16, else 1)
    style: str                    # subfamily (name ID 17, else 2)
    postscript: str               # PostScript name (ID 6): identifies a face found twice
    weight_class: int
    width_class: int
    italic_angle: float
    fs_selection: int
    fixed_pitch: bool
    panose_family: int
    panose_serif: int
    panose_proportion: int
    licence: str

    def labels(self) -> dict[str, float]:
        return {"Bold": float(self.weight_class >= 600),
                "Italic": float(bool(self.fs_selection & 0b1000000001) or self.italic_angle != 0.0),
                "Monospace": float(self.fixed_pitch or (self.panose_family == 2 and self.panose_proportion == 9)),
                "Condensed": float(self.width_class <= 4 or bool(NARROW_WORDS & _words(self.family, self.style))),
                "Serif": serif_of(self.panose_family, self.panose_serif, self.family)}


NARROW_WORDS = {"condensed", "narrow", "compressed", "cnd"}


def _words(*texts: str) -> set[str]:
    """The lower-case words of names, split at case changes too ("SemiCondensed" -> semi, condensed)."""
    return {w.lower() for t in texts for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", t)}


def serif_of(panose_family: int, panose_serif: int, family: str) -> float:
    """1 serif, 0 sans, NaN unknown: PANOSE for Latin text faces, else a word in the family name."""
    if panose_family == 2 and 2 <= panose_serif <= 10:
        return 1.0
    if panose_family == 2 and 11 <= panose_serif <= 15:
        return 0.0
    words = _words(family)
    if "sans" in words:
        return 0.0
    if words & {"serif", "roman"}:
        return 1.0
    return float("nan")


def _name(table, *ids: int) -> str:
    for i in ids:
        value = table.getDebugName(i)
        if value:
            return clean_text(value)
    return ""


def clean_text(text: str) -> str:
    """A font's own string, made safe for a terminal, a CSV cell and a report: one line of at most
    200 characters, the unsafe characters of `util/text.py` left out (not escaped: the string is data
    written to fonts.csv, where an escape would become part of the name)."""
    return safe_text(text, drop=True).strip()[:200]


def _face_of(font, path: Path, index: int) -> Face:
    os2, post, name = font["OS/2"], font["post"], font["name"]
    panose = getattr(os2, "panose", None)
    return Face(path=path, index=index, family=_name(name, 16, 1) or path.stem, style=_name(name, 17, 2),
                postscript=_name(name, 6) or f"{path.name}#{index}", weight_class=int(os2.usWeightClass),
                width_class=int(os2.usWidthClass), italic_angle=float(post.italicAngle),
                fs_selection=int(os2.fsSelection), fixed_pitch=bool(post.isFixedPitch),
                panose_family=int(getattr(panose, "bFamilyType", 0)),
                panose_serif=int(getattr(panose, "bSerifStyle", 0)),
                panose_proportion=int(getattr(panose, "bProportion", 0)), licence=_name(name, 13, 14))


def _own_glyph(glyph: str, code: int) -> bool:
    """Whether a glyph's name says it draws this character: symbol and dingbat fonts map the Latin
    letters to other drawings (Standard Symbols' "a" is its alpha). Fonts without glyph names pass."""
    from fontTools.agl import UV2AGL

    base = glyph.split(".")[0]
    return (base in (UV2AGL.get(code), f"uni{code:04X}", f"u{code:04X}", f"u{code:05X}")
            or re.fullmatch(r"(glyph|gid|cid|g)\d+", base) is not None)


def _drawn_chars(font) -> set[int]:
    """The code points the face's cmap maps to a glyph of their own (see _own_glyph)."""
    return {code for code, glyph in (font.getBestCmap() or {}).items() if _own_glyph(glyph, code)}


def read_faces(path: Path) -> tuple[list[Face], dict[int, set[int]]]:
    """The faces of a font file and, per face, the code points its cmap maps. Raises DataError."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            fonts = list(TTCollection(str(path), lazy=True).fonts)
        else:
            fonts = [TTFont(str(path), lazy=True)]
        faces = [_face_of(f, path, i) for i, f in enumerate(fonts)]
        cmaps = {i: _drawn_chars(f) for i, f in enumerate(fonts)}
    except (TTLibError, KeyError, AttributeError, struct.error, OSError, ValueError, AssertionError) as e:
        raise DataError(f"{path.name}: not a readable font ({type(e).__name__}: {clean_text(e)[:120]})") from None
    return faces, cmaps


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------

def render_char(font, char: str, size: int) -> np.ndarray | None:
    """The character in black on white, its ink centred in a size x size uint8 image; None if the
    face draws nothing for it (an empty glyph)."""
    from PIL import Image, ImageDraw

    box = font.getbbox(char)
    if box is None or box[2] <= box[0] or box[3] <= box[1]:
        return None
    canvas = Image.new("L", (2 * size, 2 * size), 255)
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ImageDraw.Draw(canvas).text((size - centre_x, size - centre_y), char, font=font, fill=0)
    image = np.asarray(canvas)[size // 2: size // 2 + size, size // 2: size // 2 + size]
    return image.copy() if image.min() < 255 else None


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, "L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def slug(text: str) -> str:
    """A file-name part from a font's own string (the shared `util.text.slug`, up to 80 characters)."""
    return text_slug(text, max_len=80, fallback="font")


# ----------------------------------------------------------------------------------------------
# the data set
# ----------------------------------------------------------------------------------------------

def collect_faces(files: Sequence[Path], say: Callable[[str], None]) -> tuple[list[tuple[Face, set[int]]], list[str]]:
    """Every readable face once (the first file wins for a PostScript name), and what was skipped."""
    faces: list[tuple[Face, set[int]]] = []
    seen: set[str] = set()
    skipped: list[str] = []
    for path in files:
        try:
            found, cmaps = read_faces(path)
        except DataError as e:
            skipped.append(str(e))
            say(f"skipped {e}")
            continue
        for face in found:
            if face.postscript in seen:
                skipped.append(f"{path.name}: {face.postscript} already found in another file")
                continue
            seen.add(face.postscript)
            faces.append((face, cmaps[face.index]))
    return faces, skipped


def family_splits(faces: Sequence[tuple[str, dict[str, float]]], seed: int, valid_frac: float, test_frac: float
                  ) -> dict[str, int]:
    """Each family's split (0 train, 1 valid, 2 test) from (family, labels) per face, seeded.

    Test, then valid, take families in a seeded order until they hold their share of the faces
    (families are whole: one family can be a sixth of a collection), first those that bring a label
    class the split does not have yet, so that a held-out split shows italic and upright, condensed
    and normal faces where the collection allows. From 3 families on, each holds at least one family.
    """
    sizes: dict[str, int] = {}
    classes: dict[str, set] = {}
    for family, labels in faces:
        sizes[family] = sizes.get(family, 0) + 1
        classes.setdefault(family, set()).update((k, v) for k, v in labels.items() if v == v)
    order = [str(n) for n in np.random.default_rng([seed, 3]).permutation(sorted(sizes))]
    split = {name: 0 for name in order}
    total = sum(sizes.values())
    for which, frac in ((2, test_frac), (1, valid_frac)):
        free = [n for n in order if split[n] == 0]
        if frac <= 0 or len(free) < 2:
            continue
        room, held, covered = frac * total * 1.25, 0, set()
        for bring_new in (True, False):
            for name in free:
                if split[name] or held + sizes[name] > room or (held >= frac * total and not bring_new):
                    continue
                if bring_new and not classes[name] - covered:
                    continue
                split[name], held = which, held + sizes[name]
                covered |= classes[name]
        if held == 0 and len(order) >= 3:
            split[min(free, key=lambda n: (sizes[n], n))] = which
    return split


SPLIT_WORDS = ("train", "valid", "test")


def _face_rows(face: Face, cmap: set[int], chars: str, size: int, split: str, images: Path, root: Path):
    """Render one face's characters; yields (label row, truth row) per image written."""
    from PIL import ImageFont

    font = ImageFont.truetype(str(face.path), size=max(4, round(size * INK_SHARE)), index=face.index)
    folder = images / slug(face.family)
    folder.mkdir(parents=True, exist_ok=True)
    labels = face.labels()
    for char in chars:
        if ord(char) not in cmap:
            continue
        image = render_char(font, char, size)
        if image is None:
            continue
        file = folder / f"{slug(face.postscript)}_u{ord(char):04X}.png"
        atomic_write_bytes(file, _png(image), DataError)
        rel = file.relative_to(root).as_posix()
        cells = ["" if np.isnan(labels[k]) else str(int(labels[k])) for k in LABELS]
        yield [rel, split, *cells, char], [rel, face.family, face.style, face.postscript, face.weight_class,
                                           f"{face.italic_angle:g}", face.width_class, face.path.name]


def _csv(rows: list[list]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def generate_fonts(out: Path, font_dirs: Sequence[Path] | None = None, chars: str = DEFAULT_CHARS,
                   size: int = 32, seed: int = 0, valid_frac: float = 0.15, test_frac: float = 0.15,
                   say: Callable[[str], None] | None = None) -> Path:
    """Write the typeface data set into `out` (a new or empty folder); returns the CSV's path."""
    say = say or (lambda msg: print(msg, file=sys.stderr))
    chars = check_chars(chars)
    if not 8 <= size <= 512:
        raise UsageError(f"--size must be between 8 and 512 pixels, got {size}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out}: the folder is not empty; give a new folder")
    dirs = list(font_dirs) if font_dirs else system_font_dirs()
    files = find_font_files(dirs)
    faces, skipped = collect_faces(files, say)
    if not faces:
        raise DataError(f"no readable font found in {', '.join(str(d) for d in dirs) or 'the system font folders'}")
    drawn = [(face, cmap) for face, cmap in faces if any(ord(c) in cmap for c in chars)]
    if not drawn:
        raise DataError(f"none of the {len(faces)} faces found has any of {chars!r}")
    faces = drawn                       # faces of other scripts take no place in the family split
    splits = family_splits([(f.family, f.labels()) for f, _ in faces], seed, valid_frac, test_frac)
    label_rows = [["image", "split", *LABELS, "char"]]
    truth_rows = [["image", "family", "style", "postscript_name", "weight_class", "italic_angle", "width_class",
                   "file"]]
    (out / "truth").mkdir(parents=True, exist_ok=True)
    for face, cmap in faces:
        for label_row, truth_row in _face_rows(face, cmap, chars, size, SPLIT_WORDS[splits[face.family]],
                                               out / "images", out):
            label_rows.append(label_row)
            truth_rows.append(truth_row)
    if len(label_rows) == 1:
        raise DataError(f"none of the {len(faces)} faces found draws any of {chars!r}")
    csv_path = atomic_write_bytes(out / "fonts.csv", _csv(label_rows), DataError)
    atomic_write_bytes(out / "truth" / "characteristics.csv", _csv(truth_rows), DataError)
    atomic_write_bytes(out / "truth" / "characteristics.json", (json.dumps(
        {"continuous": dict(CONTINUOUS)}, indent=1) + "\n").encode(), DataError)
    _write_record(out, faces, skipped, splits, chars, size, seed, len(label_rows) - 1)
    say(f"{len(label_rows) - 1:,} images of {len(faces):,} faces in {len(set(splits)):,} families "
        f"({len(skipped):,} skipped) -> {csv_path}")
    return csv_path


def _write_record(out: Path, faces, skipped, splits, chars, size, seed, n_images) -> None:
    """fonts.json: how the set was made, its families with their split and licence, what was skipped."""
    families: dict[str, dict] = {}
    for face, _ in faces:
        entry = families.setdefault(face.family, {"split": SPLIT_WORDS[splits[face.family]], "faces": [],
                                                  "licence": face.licence})
        entry["faces"].append({"style": face.style, "postscript_name": face.postscript, "file": face.path.name,
                               **{k: (None if np.isnan(v) else int(v)) for k, v in face.labels().items()}})
    record = {"kind": "fonts", "chars": chars, "size": size, "seed": seed, "images": n_images,
              "labels": list(LABELS) + ["char"], "families": families, "skipped": skipped}
    atomic_write_bytes(out / "fonts.json", (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode(),
                       DataError)



