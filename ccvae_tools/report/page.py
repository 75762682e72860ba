"""The report as one HTML page: every picture and plot a base64 data: URI, no script, no link to
anywhere but the page's own sections, and a Content-Security-Policy that lets nothing load but
those data: images and the page's own style, so that the file opens the same offline, from a mail
attachment or a web server, and a string planted in a weights file cannot reach the network.

Every string shown comes from `report/build.ReportData` and most of them from files (label and
class names, titles, licences, options, paths): each goes through `text` or `block` (made safe with
`util/text.safe_text`, then HTML-escaped, quotes too), never into the page as it is.
"""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from ccvae_tools.util.text import safe_text

_CODE = re.compile(r"`([^`<>]+)`")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
SECTIONS = (("curves", "Training curves"), ("eval", "Evaluation"), ("traversals", "Traversals"),
            ("samples", "Samples per class"), ("swap", "Swap grid"), ("options", "Options"), ("card", "Model card"))
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; }
body { color: #1d232a; background: #f6f7f9; }
header, section, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 22px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 28px 0 8px; padding-top: 12px; border-top: 1px solid #dde1e6; }
h3 { font-size: 15px; margin: 14px 0 4px; }
.meta, .note, figcaption, footer { color: #56606b; }
.note { font-style: italic; }
nav { margin: 10px 0 4px; display: flex; flex-wrap: wrap; gap: 6px 14px; }
nav a { color: #1f6fb4; text-decoration: none; }
table.glance, table.kv { border-collapse: collapse; margin: 8px 0; background: #fff; }
table.glance td, table.kv td, table.kv th { padding: 3px 12px; border-bottom: 1px solid #e6e9ed; text-align: left; }
table.glance td.v { font-variant-numeric: tabular-nums; text-align: right; }
figure { margin: 10px 0 18px; }
figure img, .samples img { max-width: 100%; height: auto; display: block; background: #fff; }
img.pixels { image-rendering: pixelated; }
.strips { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 4px 22px; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 0 22px; }
.samples .label { margin: 6px 0 12px; }
.samples .classes { display: flex; flex-wrap: wrap; gap: 6px 18px; }
.samples .cls { font-size: 13px; color: #56606b; }
pre { background: #fff; border: 1px solid #e6e9ed; padding: 10px 12px; overflow-x: auto; font-size: 12.5px; }
ul.weak { margin: 6px 0; }
footer { padding: 24px; font-size: 13px; }
"""


def text(value: Any, max_len: int | None = None) -> str:
    """A string from a file as HTML text or an attribute value: safe, then escaped (quotes too)."""
    return html.escape(safe_text(value, max_len), quote=True)


def prose(value: Any) -> str:
    """A sentence of ours that may quote names from files: `text`, then `spans` in backticks set as
    code (after the escaping, so that a backtick in a name can only make code of escaped text)."""
    return _CODE.sub(r"<code>\1</code>", text(value))


def block(value: str) -> str:
    """Several lines (the card, the eval tables) for a <pre>: each line made safe and escaped."""
    return "\n".join(text(line) for line in str(value).split("\n"))


@dataclass(frozen=True)
class Embedded:
    """An image as the page embeds it: its bytes, their MIME type and the size to lay it out at."""

    mime: str
    data: bytes
    width: int
    height: int

    @classmethod
    def png(cls, data: bytes) -> "Embedded":
        """PNG bytes (a plot), sized from the PNG's IHDR chunk."""
        width, height = struct.unpack(">II", data[16:24])
        return cls("image/png", data, width, height)


def image(e: Embedded, alt: str, pixels: bool = False, zoom: int = 1) -> str:
    """An <img> as a data: URI, shown `zoom` times its size; `pixels`: decoded images, kept sharp
    when the browser upscales them."""
    src = f"data:{e.mime};base64," + base64.b64encode(e.data).decode("ascii")
    cls = ' class="pixels"' if pixels else ""
    return f'<img{cls} src="{src}" width="{e.width * zoom}" height="{e.height * zoom}" alt="{text(alt)}">'


def figure(e: Embedded, caption: str, pixels: bool = False, zoom: int = 1) -> str:
    return f"<figure>{image(e, caption, pixels, zoom)}<figcaption>{text(caption)}</figcaption></figure>"


def note(line: str) -> str:
    return f'<p class="note">{prose(line)}</p>'


def _value(v: Any) -> str:
    """An option's value as shown: strings as they are, the rest as JSON (lists, null, booleans)."""
    if isinstance(v, str):
        return v
    try:
        return json.dumps(v, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        return repr(v)


def key_values(rows: dict, max_len: int = 300) -> str:
    cells = "".join(f"<tr><th>{text(k, 80)}</th><td>{text(_value(v), max_len)}</td></tr>" for k, v in rows.items())
    return f'<table class="kv">{cells}</table>'


def _header(r) -> str:
    glance = "".join(f'<tr><td>{text(k)}</td><td class="v">{text(v)}</td></tr>' for k, v in r.glance)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    lines = "".join(f"<div>{text(line)}</div>" for line in r.about)
    return (f"<header><h1>{text(r.title, 200)}</h1><div class=\"meta\">{lines}</div>"
            + (f'<table class="glance">{glance}</table>' if glance else "") + f"<nav>{nav}</nav></header>")


def _curves(r) -> str:
    body = "".join(figure(p.image, p.caption) for p in r.curves) or note(r.curves_note)
    if r.curves and r.curves_note:
        body += note(r.curves_note)
    return body


def _eval(r) -> str:
    parts = [note(r.eval_source) if not r.eval_plots else f"<p>{prose(r.eval_source)}</p>"]
    parts += [figure(p.image, p.caption) for p in r.eval_plots]
    if r.weak_spots:
        items = "".join(f"<li>{text(line)}</li>" for line in r.weak_spots)
        parts.append(f'<h3>Weak spots</h3><ul class="weak">{items}</ul>')
    if r.eval_text:
        parts.append(f"<details><summary>The tables as <code>ccvae eval</code> prints them</summary>"
                     f"<pre>{block(r.eval_text)}</pre></details>")
    return "".join(parts)


def _traversals(r) -> str:
    strips = "".join(f"<figure><h3>{text(name)}</h3>{image(e, name, pixels=True)}</figure>" for name, e in r.traversals)
    return (f"<p>{prose(r.faces_note)} Each row: the image, its reconstruction, then {r.steps} points along the "
            f"label's path through its class means (past the first and last by {r.span:g} prior sd).</p>"
            f'<div class="strips">{strips}</div>')


def _samples(r) -> str:
    out = [f"<p>{r.per_class} conditional samples per class: the label set, the other labels drawn from "
           f"p(y), z_s from N(0, I); the classes of a label share the other draws, so that a column "
           f"differs in that label only.</p>", '<div class="samples">']
    for name, classes in r.samples:
        cells = "".join(f'<div><div class="cls">{text(name, 60)} = {text(cls, 60)}</div>'
                        f"{image(e, f'{name} = {cls}', pixels=True)}</div>" for cls, e in classes)
        out.append(f'<div class="label"><h3>{text(name)}</h3><div class="classes">{cells}</div></div>')
    return "".join(out) + "</div>"


def _swap(r) -> str:
    if r.swap is None:
        return note("no swap grid: it needs two images")
    return (f"<p>Row r takes the characteristics (every label's z_c) of the image at its left; column c keeps "
            f"the style z_s of the image above it.</p>{figure(r.swap, 'swap grid', pixels=True, zoom=2)}")


def render_page(r) -> str:
    """The whole page of a `ReportData`, as text (UTF-8 when written)."""
    bodies = {"curves": _curves(r), "eval": _eval(r), "traversals": _traversals(r), "samples": _samples(r),
              "swap": _swap(r),
              "options": (f"<p>{prose(r.options_source)}</p>" + key_values(r.options)) if r.options
              else note(r.options_source),
              "card": f"<p>As <code>ccvae info</code> prints it.</p><pre>{block(r.card_text)}</pre>"}
    sections = "".join(f'<section id="{key}"><h2>{title}</h2>{bodies[key]}</section>' for key, title in SECTIONS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{text('ccvae report: ' + r.title, 200)}</title><style>{STYLE}</style></head>"
            f"<body>{_header(r)}{sections}<footer>{prose(r.footer)}</footer></body></html>\n")
