"""What a hostile or careless source can put in a weights file, a CSV or a file name, and a weights
file carrying it (the header rewritten in place: no torch, no training)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Callable

# id -> a string a downloaded file could carry (label, class, title, CSV header or cell, file name)
HOSTILE = {
    "osc_title": "\x1b]0;pwned\x07",                          # sets the terminal window's title
    "clear": "\x1b[2J\x1b[H",                                  # clears the screen
    "osc8_link": "\x1b]8;;http://e/\x1b\\click\x1b]8;;\x1b\\",  # plants a hyperlink
    "c1_csi": "\x9b31mred",                                    # the one-byte C1 CSI
    "del_bs": "ab\x7f\x08\x08",                                # DEL and backspaces
    "newline": "two\nlines",
    "cr": "over\rwrite",
    "nul": "nul\x00byte",
    "rlo": "\u202eevil",                                       # right-to-left override
    "isolates": "a\u2066b\u2069c\u202a",
    "markup_close": "[/x]",                                    # rich: MarkupError
    "markup_link": "[link=http://e]x[/link]",
    "markup_style": "[bold red]loud",
    "emoji_code": ":warning: x",
    "backslash_end": "ends with \\",
    "traversal": "x/../../escaped",
    "dotdot": "..",
    "abs_path": "/etc/passwd",
    "windows": "..\\..\\win",
    "hidden": ".bashrc",
    "long": "L" * 300,
    "unicode": "L\u00e4cheln \u7b11",                         # harmless: kept as it is
}


def unsafe_chars(text: str, allow: str = "\n") -> list[str]:
    """The characters of `text` a terminal would act on: C0 (but `allow`), DEL, C1, bidi controls,
    lone surrogates. An oracle of its own, written apart from the sanitiser it checks."""
    def bad(c: str) -> bool:
        o = ord(c)
        return ((o < 0x20 and c not in allow) or 0x7F <= o < 0xA0 or 0x202A <= o <= 0x202E
                or 0x2066 <= o <= 0x2069 or o in (0x200E, 0x200F, 0x061C) or 0xD800 <= o <= 0xDFFF)
    return [c for c in text if bad(c)]


def split_weights(src: Path) -> tuple[dict, bytes]:
    """(the header as a dict, the data section) of a safetensors file."""
    raw = Path(src).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8: 8 + n]), raw[8 + n:]


def join_weights(dst: Path, header: dict | str | bytes, data: bytes) -> Path:
    """Write a safetensors file from a header (a dict, or JSON text taken as it is) and data bytes."""
    text = header if isinstance(header, (str, bytes)) else json.dumps(header)
    new = text.encode() if isinstance(text, str) else text
    new += b" " * (-len(new) % 8)                 # the data keeps its 8-byte alignment
    Path(dst).write_bytes(struct.pack("<Q", len(new)) + new + data)
    return Path(dst)


def rewrite_header(src: Path, dst: Path, change: Callable[[dict], None],
                   data: Callable[[bytes], bytes] | None = None) -> Path:
    """Copy a safetensors file with its header (tensor entries and `__metadata__`) changed in place
    by `change`, and its data section by `data` when given."""
    header, body = split_weights(src)
    change(header)
    return join_weights(dst, header, data(body) if data is not None else body)


def rewrite_metadata(src: Path, dst: Path, change: Callable[[dict], None]) -> Path:
    """Copy a safetensors file with its `__metadata__` changed by `change` (tensors untouched)."""
    return rewrite_header(src, dst, lambda header: change(header["__metadata__"]))


def plant_names(src: Path, dst: Path, names: dict[int, str] | None = None,
                classes: dict[int, list[str]] | None = None, text: str | None = None) -> Path:
    """A copy of the weights at `src` whose label `i` is called `names[i]`, whose label `i` has the
    classes `classes[i]` (as many as before), and whose title, data name and licence are `text`."""
    names, classes = names or {}, classes or {}

    def change(meta: dict) -> None:
        config, labels = json.loads(meta["ccvae.config"]), json.loads(meta["ccvae.labels"])
        prior = json.loads(meta["ccvae.label_prior"])
        new_prior = {}
        for i, lab in enumerate(labels):
            name = names.get(i, lab["name"])
            new_prior[name] = prior[lab["name"]]
            for record in (lab, config["labels"][i]):
                record["name"] = name
                record["classes"] = classes.get(i, record["classes"])
        meta.update({"ccvae.config": json.dumps(config), "ccvae.labels": json.dumps(labels),
                     "ccvae.label_prior": json.dumps(new_prior)})
        if text is not None:
            meta.update({"modelspec.title": text, "modelspec.license": text,
                         "ccvae.data": json.dumps({"name": text})})

    return rewrite_metadata(src, dst, change)
