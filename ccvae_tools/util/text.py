"""Strings from files made safe: for the terminal (`safe_text`, `safe_markup`, `safe_json`) and for
file names (`slug`).

Label and class names, model titles, card text, CSV headers and cells and file names all come from
files a user may have downloaded. Printed raw, an ESC starts a terminal escape sequence (a new window
title, a cleared screen, a planted hyperlink), a bidi override reorders what is shown, and a `[/x]`
crashes rich's markup parser; used raw in a path, `x/../../y` leaves the folder the user chose. Every
such string goes through this module before it reaches the terminal, rich or a file name.

    safe_text("a\\x1b[2Jb")         # 'a\\\\x1b[2Jb': the ESC is shown as the four characters \\x1b
    safe_markup("[/x]")             # '\\\\[/x]': prints as [/x] in a rich markup string
    slug("x/../../escaped")         # 'x_._._escaped': one file-name part, never a path

Imports nothing of the package and nothing heavy (rich only inside `safe_markup`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Format characters (category Cf: the bidi embeddings, overrides and isolates U+202A-U+202E,
# U+2066-U+2069, the marks U+200E, U+200F, U+061C, zero-width spaces, soft hyphen) are shown
# escaped, except the two joiners: some scripts and emoji sequences are written with them.
_KEEP_FORMAT = frozenset({"\u200c", "\u200d"})
# control (C0, DEL, C1), lone surrogates (undecodable bytes of a file name), line and paragraph
# separators (a line break to some terminals and to str.splitlines)
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_PRINTABLE_ASCII = re.compile(r"[ -~]*")
ELLIPSIS = "\u2026"


def is_unsafe(char: str) -> bool:
    """Whether one character must not reach a terminal as it is (see the categories above)."""
    code = ord(char)
    if code < 0x7F:
        return code < 0x20
    category = unicodedata.category(char)
    return category in _UNSAFE_CATEGORIES or (category == "Cf" and char not in _KEEP_FORMAT)


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    """Python's spelling of a character: \\n, \\x1b, \\u202e, \\U000e0001."""
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe_text(text: object, max_len: int | None = None, *, drop: bool = False) -> str:
    """`text` as terminal-safe plain text: every unsafe character (`is_unsafe`) shown escaped
    (`\\x1b`, `\\u202e`), or left out with `drop`; at most `max_len` characters, the cut marked
    with an ellipsis and never inside an escape. Backslashes are kept as they are (Windows paths
    stay readable), so the result is a display form, not a reversible encoding. Idempotent.

    Rich markup is not escaped here: print the result with markup off or as a `rich.text.Text`,
    or use `safe_markup` inside a markup string.
    """
    s = text if isinstance(text, str) else str(text)
    if _PRINTABLE_ASCII.fullmatch(s):
        pieces = [s]
    else:
        pieces = [("" if drop else _escaped(c)) if is_unsafe(c) else c for c in s]
    if max_len is None or sum(map(len, pieces)) <= max_len:
        return "".join(pieces)
    if len(pieces) == 1:                      # printable ASCII: one piece, cut anywhere
        return s[: max(0, max_len - 1)] + ELLIPSIS
    out, n = [], 0
    for p in pieces:
        if n + len(p) > max_len - 1:
            break
        out.append(p)
        n += len(p)
    return "".join(out) + ELLIPSIS


def safe_markup(text: object, max_len: int | None = None) -> str:
    """`safe_text`, then escaped for rich markup: for a file-borne string placed inside a markup
    string (`f"[bold]{safe_markup(name)}[/bold]"`), so that `[/x]` or `[link=...]` print literally.
    Print it on a console with emoji off (`util/console.err`), or `:warning:` becomes a sign."""
    from rich.markup import escape

    return escape(safe_text(text, max_len))


def _json_escaped(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000                           # JSON spells astral characters as UTF-16 pairs
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def safe_json(dumped: str) -> str:
    """A JSON text (from `json.dumps`) with every unsafe character \\u-escaped: the same JSON value
    (names stay exact for whoever parses it), but nothing a terminal acts on. Unsafe characters can
    only be inside JSON strings, where any character may be written as a \\u escape."""
    if _PRINTABLE_ASCII.fullmatch(dumped):
        return dumped
    return "".join(_json_escaped(c) if is_unsafe(c) else c for c in dumped)


# ----------------------------------------------------------------------------------------------
# file names
# ----------------------------------------------------------------------------------------------

SLUG_MAX = 64
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
_SLUG_EDGES = "._-"                           # no hidden files, no names that look like options
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def slug(name: object, max_len: int = SLUG_MAX, fallback: str = "label") -> str:
    """One file-name part from a label, class or font name: only `A-Z a-z 0-9 . _ -`.

    Accents are dropped (Lächeln -> Lacheln), every other run of characters becomes `_`, runs of
    dots become one, and no `.`, `_` or `-` is left at either end, so the part is never `..`, a
    hidden file or a path. A name with nothing usable gives `fallback` (plus a short hash of the
    name when it was not empty, so that two such names stay apart); a name longer than `max_len`
    is cut and ends in a hash of the whole name, for the same reason. Idempotent for short slugs.
    """
    text = str(name)
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    part = _DOTS.sub(".", _SLUG_BAD.sub("_", plain)).strip(_SLUG_EDGES)
    if not part:
        return f"{fallback}-{_digest(text)}" if text.strip() else fallback
    if len(part) > max_len:
        part = (part[: max_len - 7].rstrip(_SLUG_EDGES) or fallback) + "-" + _digest(text)
    head, dot, rest = part.partition(".")
    if head.lower() in _WINDOWS_DEVICES:      # CON, NUL.txt, COM1...: device names on Windows
        part = f"{head}_{dot}{rest}"
    return part
