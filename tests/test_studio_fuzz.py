"""Fuzzing the studio's HTTP API (issue 26): whatever method, path, headers and body a client sends,
the real server (`ccvae studio --port 0`, the shipped default model, as a process) answers below
500, every answer carries the security headers, an error is one JSON line with no markup, and no
traceback reaches the client or the server's stderr. It still answers afterwards.

In the style of tests/test_fuzz.py: property-based with hypothesis, derandomized, bounded by
`max_examples` (CCVAE_FUZZ_SCALE=20 tries 20 times as many, CCVAE_FUZZ_RANDOM=1 new ones each run).
Requests are made over raw HTTP (http.client), one connection each.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from helpers.fuzzing import fuzz  # noqa: E402
from helpers.hostile import HOSTILE  # noqa: E402
from helpers.studio import request, studio_process  # noqa: E402

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    log = tmp_path_factory.mktemp("studio-fuzz") / "stderr.txt"
    with studio_process([], log) as proc:
        model = request(proc.port, "GET", "/api/model").json()
        proc.ids = [e["id"] for e in model["examples"]]
        proc.labels = [lab["name"] for lab in model["labels"]]
        yield proc
        assert request(proc.port, "GET", "/api/card").status == 200          # still serving
    said = log.read_text(encoding="utf-8")
    assert "Traceback" not in said and "ERROR" not in said and "Exception" not in said, said[-3000:]


# ----------------------------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------------------------

TEXT = st.text(max_size=16) | st.sampled_from(list(HOSTILE.values()))
# header values: what http.client can put on the wire (latin-1, no line breaks)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
                      max_size=40) | st.sampled_from(["", "<script>alert(1)</script>", "\u00ff" * 40, "a" * 2000])
LEAF = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats() | TEXT)
ANY_JSON = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
PATHS = ["/", "/studio.js", "/studio.css", "/favicon.ico", "/api/model", "/api/card", "/api/images",
         "/api/images/{id}", "/api/render", "/api/download", "/api/gif", "/api/sample", "/api", "/static/x"]
METHODS = ["GET"] * 3 + ["POST"] * 6 + ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
TYPES = [None, "application/json", "text/plain", "application/octet-stream", "multipart/form-data",
         "application/x-www-form-urlencoded", "image/png"]


def api_body(draw, ids: list[str], labels: list[str]) -> dict:
    """An object shaped like the page's requests, each field valid or not."""
    image = st.sampled_from(ids) | TEXT | LEAF
    label = st.sampled_from(labels) | st.sampled_from([n.lower().replace("_", " ") for n in labels]) | TEXT
    fields = {
        "image": image, "label": label | LEAF, "style": image,
        "moves": st.dictionaries(label, st.floats(0, 1) | LEAF, max_size=4) | ANY_JSON,
        "swap": st.fixed_dictionaries({"image": image, "labels": st.lists(label, max_size=4) | LEAF}) | ANY_JSON,
        "set": st.dictionaries(label, st.integers(-2, 3) | LEAF, max_size=3) | ANY_JSON,
        "n": st.integers(-2, 70) | LEAF, "seed": st.integers(-2, 2 ** 32) | LEAF,
        "temperature": st.floats(-1, 12) | LEAF,
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=6))
    out = {name: draw(fields[name]) for name in chosen}
    if type(out.get("n")) is int and out["n"] > 16:
        out["n"] = 16                         # valid and larger is slower, not more interesting
    return out


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 120).save(buf, "PNG")
    return buf.getvalue()


def _claiming(width: int, height: int) -> bytes:
    raw = bytearray(_png((1, 1)))
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


BODIES = ["none", "api", "api", "api", "json", "raw", "image", "cut", "bomb"]
UPLOADS = ["image", "image", "image", "cut", "bomb", "raw"]


@st.composite
def body_bytes(draw, ids: list[str], labels: list[str], kinds: list[str] = BODIES) -> bytes | None:
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "api":
        return json.dumps(api_body(draw, ids, labels)).encode()
    if kind == "json":
        return json.dumps(draw(ANY_JSON)).encode()
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "bomb":
        return _claiming(draw(st.integers(1, 2 ** 31 - 1)), draw(st.integers(1, 2 ** 31 - 1)))
    data = _png((draw(st.integers(8, 48)), draw(st.integers(8, 48))), draw(st.sampled_from(["RGB", "L", "P"])))
    return data[: draw(st.integers(0, len(data) - 1))] if kind == "cut" else data


@st.composite
def headers(draw, port: int) -> dict:
    own = [f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"]
    foreign = [f"evil.example:{port}", f"127.0.0.1:{port + 1}"]
    out = {"Host": draw(st.sampled_from(own * 6 + foreign) | HEADER_TEXT)}
    origin = draw(st.sampled_from([None, None, f"http://127.0.0.1:{port}", "http://evil.example", "null"])
                  | HEADER_TEXT)
    if origin is not None:
        out["Origin"] = origin
    kind = draw(st.sampled_from(TYPES) | HEADER_TEXT)
    if kind is not None:
        out["Content-Type"] = kind
    if draw(st.booleans()):
        out["X-File-Name"] = draw(st.sampled_from([quote(v, safe="") for v in HOSTILE.values()]) | HEADER_TEXT)
    if draw(st.integers(0, 5)) == 0:
        out[draw(st.sampled_from(["Sec-Fetch-Site", "Accept", "Cookie", "Range", "Expect"]))] = draw(HEADER_TEXT)
    return out


@st.composite
def path(draw, ids: list[str]) -> str:
    base = draw(st.sampled_from(PATHS)).replace("{id}", draw(st.sampled_from(ids) | TEXT.map(quote)))
    if draw(st.integers(0, 4)) == 0:
        base += quote(draw(TEXT), safe="/%")
    if draw(st.integers(0, 5)) == 0:
        base += "?" + quote(draw(TEXT), safe="=&")
    return base or "/"


# ----------------------------------------------------------------------------------------------
# the property
# ----------------------------------------------------------------------------------------------

def assert_clean_answer(r, method: str) -> None:
    """Below 500; the security headers; an error is a one-line JSON `error` without markup."""
    assert r.status < 500, (r.status, r.body[:300])
    assert r.headers.get("x-content-type-options") == "nosniff", r.headers
    assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), r.headers
    assert b"Traceback" not in r.body and b'File "' not in r.body
    if r.status >= 400 and method != "HEAD":
        assert r.headers.get("content-type") == "application/json", r.headers
        assert b"<" not in r.body and b">" not in r.body, r.body[:300]
        message = json.loads(r.body)["error"]
        assert isinstance(message, str) and message and "\n" not in message


@fuzz(300)
@given(data=st.data())
def test_random_requests(served, data):
    method = data.draw(st.sampled_from(METHODS))
    where = data.draw(path(served.ids))
    sent = data.draw(headers(served.port))
    body = data.draw(body_bytes(served.ids, served.labels))
    r = request(served.port, method, where, body, sent)
    assert_clean_answer(r, method)


@fuzz(60)
@given(data=st.data())
def test_random_uploads_then_edits(served, data):
    """An upload the studio took is then edited with random requests: its id is as good as an example's."""
    body = data.draw(body_bytes(served.ids, served.labels, UPLOADS))
    r = request(served.port, "POST", "/api/images", body, {"X-File-Name": quote(data.draw(TEXT), safe="")})
    assert_clean_answer(r, "POST")
    if r.status != 200:
        return
    new = [r.json()["id"]]
    for _ in range(2):
        edit = json.dumps(api_body(data.draw, new, served.labels)).encode()
        where = data.draw(st.sampled_from(["/api/render", "/api/download", "/api/sample"]))
        assert_clean_answer(request(served.port, "POST", where, edit), "POST")
