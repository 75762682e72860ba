"""`ccvae studio`: the page's API (Starlette's TestClient over `create_app`, no real server) and the
command's checks before it serves (the extra, the port, --examples), plus `shipped_examples`.

The API is driven the way studio.js drives it: raw image bytes with a URI-encoded X-File-Name for an
upload, JSON objects {image, moves, swap, label, set, n, seed, style} for everything else.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from ccvae_tools.cli import studio as cli_studio  # noqa: E402
from ccvae_tools.cli.io import shipped_examples  # noqa: E402
from ccvae_tools.data.images import load_image  # noqa: E402
from ccvae_tools.model.api import load  # noqa: E402
from ccvae_tools.studio import engine as studio_engine  # noqa: E402
from ccvae_tools.studio import server as studio_server  # noqa: E402
from ccvae_tools.studio.engine import Studio  # noqa: E402
from ccvae_tools.studio.server import create_app  # noqa: E402
from helpers.cli import assert_one_line, run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAMES = ["Smiling", "Eyeglasses", "Blond_Hair"]           # the tiny model's labels
SIZE = 32                                                  # and its image size
CARD = "tiny test model\nlabels: Smiling, Eyeglasses, Blond_Hair\n"
PNG_URL = "data:image/png;base64,"
PAD = 2                                                    # render.grid's padding, as in test_intervene
BASE = "http://127.0.0.1:7860"                             # the guard answers only its own host names


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def noise_png(seed: int, size: int = 40) -> bytes:
    """A seeded RGB noise picture as PNG bytes (not square to the model: the loader crops/scales it)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def gradient_png(seed: int, size: int = 48) -> bytes:
    """A smooth seeded picture (a coloured gradient), unlike the noise ones."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    a, b, c = rng.uniform(0, 1, (3, 3))
    rgb = np.stack([a[k] * xx + b[k] * yy + c[k] * xx * yy for k in range(3)], -1)
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb / rgb.max(), 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def from_url(url: str) -> Image.Image:
    assert url.startswith(PNG_URL), url[:40]
    img = Image.open(io.BytesIO(base64.b64decode(url[len(PNG_URL):], validate=True)))
    assert img.format == "PNG"
    return img


def pixels(url: str) -> np.ndarray:
    """A PNG data URL as the model's uint8 (C, H, W)."""
    return np.asarray(from_url(url).convert("RGB")).transpose(2, 0, 1).copy()


def upload(client, data: bytes, name: str = "face.png"):
    return client.post("/api/images", content=data, headers={"Content-Type": "application/octet-stream",
                                                             "X-File-Name": _uri(name)})


def _uri(name: str) -> str:
    from urllib.parse import quote
    return quote(name, safe="")                            # as encodeURIComponent in studio.js


def post(client, path: str, body):
    return client.post(path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def error_of(r, status: int) -> str:
    """The response is `status` with a one-line JSON `error`; returns it."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    message = r.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message, message
    return message


def q_ok(q) -> None:
    """One probability vector per label, two classes each (binary labels), summing to 1."""
    assert len(q) == len(NAMES)
    for p in q:
        assert len(p) == 2 and all(0.0 <= v <= 1.0 for v in p)
        assert sum(p) == pytest.approx(1.0, abs=1e-5)


def q_of(m, image: np.ndarray) -> list[list[float]]:
    """q(y | image) as `ccvae classify` computes it (100 draws, seed 0)."""
    probs = m.classify(image[None], draws=100)
    return [probs[0, i, : lab.num_classes].tolist() for i, lab in enumerate(m.labels)]


# ----------------------------------------------------------------------------------------------
# fixtures: one studio and one client for the module, two uploads that most tests edit
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def example_files(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("studio-examples")
    out = []
    for k, data in enumerate([gradient_png(1), noise_png(2)]):
        out.append(d / f"ex{k}.png")
        out[-1].write_bytes(data)
    return out


@pytest.fixture(scope="module")
def m(tiny):
    return load(tiny)


@pytest.fixture(scope="module")
def studio(tiny, example_files):
    return Studio(load(tiny), examples=[(p.stem, p) for p in example_files])


@pytest.fixture(scope="module")
def client(studio):
    with TestClient(create_app(studio, card_text=CARD), base_url=BASE) as c:
        yield c


@pytest.fixture(scope="module")
def lenient(studio):
    """The same app, answering a crash as the real server does (500) instead of raising it here."""
    with TestClient(create_app(studio, card_text=CARD), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def a(client) -> dict:
    r = upload(client, noise_png(10), "fé 1.png")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def b(client) -> dict:
    r = upload(client, gradient_png(11), "b.png")
    assert r.status_code == 200, r.text
    return r.json()


def render(client, body) -> dict:
    r = post(client, "/api/render", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"image", "q"}
    return out


# ----------------------------------------------------------------------------------------------
# the page and its assets
# ----------------------------------------------------------------------------------------------

def test_page_is_html_with_a_policy_and_loads_its_script(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy    # nothing from elsewhere
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/studio.js"' in r.text and 'href="/studio.css"' in r.text


@pytest.mark.parametrize("path,kind,needle", [("/studio.js", "text/javascript", "/api/render"),
                                              ("/studio.css", "text/css", "{")])
def test_assets_have_their_media_types(client, path, kind, needle):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == kind
    assert "content-security-policy" in r.headers
    assert needle in r.text


def test_favicon_is_no_content(client):
    """Browsers ask for it; 204 keeps a 404 out of the console."""
    r = client.get("/favicon.ico")
    assert r.status_code == 204 and r.content == b""


def test_api_paths_answer_only_their_methods(client):
    assert client.get("/api/render").status_code == 405
    assert client.post("/api/model").status_code == 405
    assert client.get("/static/../engine.py").status_code == 404     # no file is served by its path


# ----------------------------------------------------------------------------------------------
# model, card, examples
# ----------------------------------------------------------------------------------------------

def test_model_lists_labels_with_their_class_marks(client):
    out = client.get("/api/model").json()
    assert out["model"] == "tiny.safetensors" and out["size"] == SIZE and out["channels"] == 3
    assert [lab["name"] for lab in out["labels"]] == NAMES
    for lab in out["labels"]:
        assert lab["classes"] == ["0", "1"]
        assert len(lab["marks"]) == 2 and all(0.0 <= t <= 1.0 for t in lab["marks"])
        assert lab["marks"][0] < lab["marks"][1]           # the path runs from class 0 to the last class


def test_model_examples_have_ids_and_thumbnails_of_their_pixels(client, m, example_files):
    examples = client.get("/api/model").json()["examples"]
    assert [e["name"] for e in examples] == ["ex0", "ex1"]
    assert len({e["id"] for e in examples}) == 2 and all(e["id"].isalnum() for e in examples)
    for e, path in zip(examples, example_files):
        thumb = from_url(e["thumbnail"])
        assert thumb.size == (SIZE, SIZE)
        assert np.array_equal(pixels(e["thumbnail"]), load_image(path, m.preprocess))
        assert client.get(f"/api/images/{e['id']}").status_code == 200   # an example can be picked


def test_card_is_the_text_given(client):
    r = client.get("/api/card")
    assert r.status_code == 200 and r.json() == {"text": CARD}


# ----------------------------------------------------------------------------------------------
# uploads and an image's state
# ----------------------------------------------------------------------------------------------

def test_upload_gives_the_state_the_page_shows(a, m):
    assert set(a) == {"id", "name", "positions", "input", "reconstruction", "q_input", "q_reconstruction"}
    assert a["id"].isalnum() and len(a["id"]) <= 64
    assert a["name"] == "fé 1.png"                                     # X-File-Name was URI-encoded
    assert len(a["positions"]) == len(NAMES) and all(0.0 <= t <= 1.0 for t in a["positions"])
    assert np.array_equal(pixels(a["input"]), load_image(noise_png(10), m.preprocess))
    assert from_url(a["reconstruction"]).size == (SIZE, SIZE)
    assert not np.array_equal(pixels(a["input"]), pixels(a["reconstruction"]))
    q_ok(a["q_input"])
    q_ok(a["q_reconstruction"])


def test_upload_q_is_what_classify_says(a, m):
    """q_input / q_reconstruction are q(y | picture) as `ccvae classify` computes it (batch of two here,
    one there: float noise only)."""
    for key, url in (("q_input", a["input"]), ("q_reconstruction", a["reconstruction"])):
        np.testing.assert_allclose(a[key], q_of(m, pixels(url)), atol=1e-5)


def test_upload_without_a_name_is_called_upload(client):
    r = client.post("/api/images", content=noise_png(12))
    assert r.status_code == 200 and r.json()["name"] == "upload"


def test_get_state_is_the_upload_state_again(client, a):
    r = client.get(f"/api/images/{a['id']}")
    assert r.status_code == 200
    assert r.json() == a                                                # the same numbers and pictures


# ----------------------------------------------------------------------------------------------
# render, swap, download, gif, sample
# ----------------------------------------------------------------------------------------------

def test_untouched_render_is_the_reconstruction(client, a):
    out = render(client, {"image": a["id"], "moves": {}})
    assert np.array_equal(pixels(out["image"]), pixels(a["reconstruction"]))
    np.testing.assert_allclose(out["q"], a["q_reconstruction"], atol=1e-5)
    assert render(client, {"image": a["id"]}) == out                   # `moves` may be left out


def test_moving_a_slider_changes_the_picture(client, a):
    plain = pixels(render(client, {"image": a["id"], "moves": {}})["image"])
    low = pixels(render(client, {"image": a["id"], "moves": {"Eyeglasses": 0.0}})["image"])
    high = pixels(render(client, {"image": a["id"], "moves": {"Eyeglasses": 1.0}})["image"])
    assert low.shape == (3, SIZE, SIZE)
    assert not np.array_equal(low, plain) and not np.array_equal(high, plain)
    assert not np.array_equal(low, high)


def test_slider_at_the_image_own_place_keeps_its_picture_nearly(client, a):
    """t = the image's own position puts z_c^i back near where it was: far closer than either end."""
    plain = pixels(render(client, {"image": a["id"]})["image"]).astype(int)
    own = pixels(render(client, {"image": a["id"], "moves": {"Eyeglasses": a["positions"][1]}})["image"]).astype(int)
    end = pixels(render(client, {"image": a["id"], "moves": {"Eyeglasses": 1.0}})["image"]).astype(int)
    assert np.abs(own - plain).mean() < np.abs(end - plain).mean() / 4


def test_label_names_are_matched_loosely(client, a):
    exact = render(client, {"image": a["id"], "moves": {"Blond_Hair": 0.9}})
    for name in ("blond hair", "BLOND-HAIR", "blond_hair"):
        assert render(client, {"image": a["id"], "moves": {name: 0.9}}) == exact


def test_render_q_is_what_classify_says_of_the_picture(client, a, m):
    """The engine promises the numbers of `ccvae classify` (100 draws, seed 0) for the decoded picture."""
    for moves in ({}, {"Smiling": 0.1, "Eyeglasses": 0.95}):
        out = render(client, {"image": a["id"], "moves": moves})
        q_ok(out["q"])
        assert out["q"] == q_of(m, pixels(out["image"]))


def test_swap_takes_labels_from_the_second_image(client, a, b):
    plain = pixels(render(client, {"image": a["id"]})["image"])
    none = render(client, {"image": a["id"], "swap": {"image": b["id"], "labels": []}})
    one = render(client, {"image": a["id"], "swap": {"image": b["id"], "labels": ["Eyeglasses"]}})
    every = render(client, {"image": a["id"], "swap": {"image": b["id"], "labels": NAMES}})
    assert np.array_equal(pixels(none["image"]), plain)                 # no labels: nothing changes
    assert not np.array_equal(pixels(one["image"]), plain)
    assert not np.array_equal(pixels(every["image"]), pixels(none["image"]))
    assert not np.array_equal(pixels(every["image"]), pixels(one["image"]))
    q_ok(every["q"])


def test_download_is_the_render_four_times_larger(client, a):
    body = {"image": a["id"], "moves": {"Smiling": 0.8}}
    r = post(client, "/api/download", body)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.size == (4 * SIZE, 4 * SIZE)
    big = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(big[:, ::4, ::4], pixels(render(client, body)["image"]))   # nearest neighbour


def test_gif_is_the_label_loop(client, a):
    r = post(client, "/api/gif", {"image": a["id"], "moves": {"Smiling": 0.2}, "label": "eyeglasses"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    gif = Image.open(io.BytesIO(r.content))
    assert gif.format == "GIF" and gif.n_frames == 48
    first = np.asarray(gif.convert("RGB"))
    gif.seek(24)
    assert not np.array_equal(first, np.asarray(gif.convert("RGB")))   # the frames move


def sample(client, body) -> tuple[Image.Image, bytes]:
    """The grid picture of a sample request, and its PNG bytes."""
    r = post(client, "/api/sample", body)
    assert r.status_code == 200, r.text
    img = from_url(r.json()["image"])
    return img, base64.b64decode(r.json()["image"][len(PNG_URL):])


def test_sample_is_a_grid_the_seed_decides(client):
    img, data = sample(client, {"set": {"Smiling": 1}, "n": 4, "seed": 3})
    assert img.size == (2 * SIZE + 3 * PAD, 2 * SIZE + 3 * PAD)       # 4 images: 2 x 2
    assert sample(client, {"set": {"Smiling": 1}, "n": 4, "seed": 3})[1] == data
    assert sample(client, {"set": {"Smiling": 1}, "n": 4, "seed": 4})[1] != data
    assert sample(client, {"set": {"Smiling": 0}, "n": 4, "seed": 3})[1] != data
    nine, _ = sample(client, {"set": {}, "n": 9, "seed": 0})
    assert nine.size == (3 * SIZE + 4 * PAD, 3 * SIZE + 4 * PAD)


def test_sample_defaults_and_style(client, a, b):
    img, _ = sample(client, {})                                          # n 8: 3 columns, 3 rows
    assert img.size == (3 * SIZE + 4 * PAD, 3 * SIZE + 4 * PAD)
    plain = sample(client, {"set": {"Eyeglasses": 1}, "n": 4, "seed": 1})[1]
    styled = sample(client, {"set": {"Eyeglasses": 1}, "n": 4, "seed": 1, "style": a["id"]})[1]
    assert styled != plain
    assert sample(client, {"set": {"Eyeglasses": 1}, "n": 4, "seed": 1, "style": a["id"]})[1] == styled
    assert sample(client, {"set": {"Eyeglasses": 1}, "n": 4, "seed": 1, "style": b["id"]})[1] != styled


# ----------------------------------------------------------------------------------------------
# bad uploads: a 4xx with one line, and the server goes on
# ----------------------------------------------------------------------------------------------

def truncated_png() -> bytes:
    data = noise_png(20)
    return data[: len(data) // 2]


@pytest.mark.parametrize("data,status,needle", [
    (b"", 400, "empty"),
    (b"these are my notes, not a picture\n", 422, "notes.txt"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422, "notes.txt"),
    (None, 422, "truncated"),
], ids=["empty", "text", "png-magic-only", "truncated"])
def test_bad_upload_is_one_line_and_the_server_goes_on(client, data, status, needle):
    data = truncated_png() if data is None else data
    message = error_of(upload(client, data, "notes.txt"), status)
    assert needle in message
    assert upload(client, noise_png(21)).status_code == 200


def test_upload_over_the_limit_is_413(client, monkeypatch):
    monkeypatch.setattr(studio_server, "MAX_UPLOAD", 8000)
    good = noise_png(22)
    assert len(good) < 8000
    assert "8000 bytes" in error_of(upload(client, b"\x00" * 8001), 413)          # Content-Length says so

    def chunks():                                                                   # no Content-Length:
        for _ in range(20):                                                         # refused as it streams
            yield b"\x00" * 1000
    assert "8000 bytes" in error_of(client.post("/api/images", content=chunks()), 413)
    assert upload(client, good).status_code == 200


# ----------------------------------------------------------------------------------------------
# bad requests: 400 with a message naming what to give
# ----------------------------------------------------------------------------------------------

def test_unknown_labels_name_the_model_labels(client, a):
    listing = "Smiling, Eyeglasses, Blond_Hair"
    for path, body in [("/api/render", {"image": a["id"], "moves": {"Hat": 0.5}}),
                       ("/api/download", {"image": a["id"], "moves": {"Hat": 0.5}}),
                       ("/api/render", {"image": a["id"], "swap": {"image": a["id"], "labels": ["Hat"]}}),
                       ("/api/gif", {"image": a["id"], "label": "Hat"}),
                       ("/api/sample", {"set": {"Hat": 1}})]:
        message = error_of(post(client, path, body), 400)
        assert "Hat" in message and listing in message, (path, message)
    for label in (None, 3, ["Smiling"]):                                # missing or not a string
        assert listing in error_of(post(client, "/api/gif", {"image": a["id"], "label": label}), 400)
    assert listing in error_of(post(client, "/api/gif", {"image": a["id"]}), 400)


@pytest.mark.parametrize("raw", ["1.5", "-0.001", "1e999", "-1e999", "NaN", "Infinity", '"0.5"', "true",
                                 "false", "null", "[0.5]", '{"t": 0.5}'])
def test_slider_values_outside_0_1_or_not_numbers_are_400(client, a, raw):
    """Strict JSON has no NaN, but Python's parser reads NaN/Infinity and 1e999 (inf): all refused."""
    body = '{"image": "%s", "moves": {"Smiling": %s}}' % (a["id"], raw)
    r = client.post("/api/render", content=body.encode())
    message = error_of(r, 400)
    assert "Smiling" in message and "from 0 to 1" in message


@pytest.mark.parametrize("body,needle", [
    ({"set": {"Smiling": 2}}, "from 0 to 1"), ({"set": {"Smiling": -1}}, "from 0 to 1"),
    ({"set": {"Smiling": 0.5}}, "integer"), ({"set": {"Smiling": "1"}}, "integer"),
    ({"set": {"Smiling": True}}, "integer"), ({"set": {"Smiling": None}}, "integer"),
    ({"set": ["Smiling"]}, "set"), ({"set": "Smiling=1"}, "set"),
    ({"n": 0}, "n:"), ({"n": 65}, "n:"), ({"n": 2.5}, "n:"), ({"n": "4"}, "n:"), ({"n": 1e999}, "n:"),
    ({"seed": -1}, "seed"), ({"seed": 2 ** 31}, "seed"), ({"seed": 1.5}, "seed"),
    ({"temperature": -0.1}, "temperature"), ({"temperature": 11}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"style": 5}, "image"), ({"style": "../etc/passwd"}, "image"),
])
def test_bad_sample_requests_are_400(client, body, needle):
    assert needle in error_of(post(client, "/api/sample", body), 400)


def test_class_index_at_the_top_of_its_range_is_accepted(client):
    """The bounds themselves are fine (whole floats too: JSON has one number type)."""
    for body in ({"set": {"Smiling": 1, "Eyeglasses": 0}, "n": 1, "seed": 0},
                 {"set": {"Smiling": 1.0}, "n": 64.0, "seed": 2 ** 31 - 1, "temperature": 0}):
        assert post(client, "/api/sample", body).status_code == 200


@pytest.mark.parametrize("content,needle", [
    (b"{not json", "not JSON"), (b"", "not JSON"), (b"\xff\xfe\x00", "not JSON"),
    (b"[1, 2]", "JSON object"), (b'"image"', "JSON object"), (b"null", "JSON object"), (b"3", "JSON object"),
])
@pytest.mark.parametrize("path", ["/api/render", "/api/download", "/api/gif", "/api/sample"])
def test_non_json_or_non_object_body_is_400(client, path, content, needle):
    assert needle in error_of(client.post(path, content=content), 400)


@pytest.mark.parametrize("image", ["../etc/passwd", "/etc/passwd", "..", "a/b", "abc def", "ab.cd", "",
                                   "a" * 65, None, 7, ["abc"]])
@pytest.mark.parametrize("path", ["/api/render", "/api/download", "/api/gif"])
def test_malformed_image_id_is_400_never_a_file(client, path, image):
    message = error_of(post(client, path, {"image": image, "label": "Smiling"}), 400)
    assert message.startswith("image:")


def test_malformed_ids_elsewhere_are_400(client, a):
    assert error_of(post(client, "/api/render", {"moves": {}}), 400).startswith("image:")   # no image at all
    for swap in ({"image": "../x", "labels": []}, {"labels": ["Smiling"]}):
        assert error_of(post(client, "/api/render", {"image": a["id"], "swap": swap}), 400).startswith("image:")
    for swap in (["x"], "abc", {"image": a["id"], "labels": "Smiling"}):
        assert "swap" in error_of(post(client, "/api/render", {"image": a["id"], "swap": swap}), 400)
    assert "moves" in error_of(post(client, "/api/render", {"image": a["id"], "moves": [0.5]}), 400)


def test_unknown_image_id_is_404_with_a_message(client, a):
    gone = "0123456789abcdef"
    bodies = [("/api/render", {"image": gone}), ("/api/download", {"image": gone}),
              ("/api/gif", {"image": gone, "label": "Smiling"}), ("/api/sample", {"style": gone}),
              ("/api/render", {"image": a["id"], "swap": {"image": gone, "labels": ["Smiling"]}})]
    for path, body in bodies:
        assert "upload it again" in error_of(post(client, path, body), 404), path
    assert "upload it again" in error_of(client.get(f"/api/images/{gone}"), 404)


def test_get_with_a_path_in_the_id_reads_no_file(client):
    for path in ("/api/images/..%2F..%2F..%2Fetc%2Fpasswd", "/api/images/%2Fetc%2Fpasswd",
                 "/api/images/..", "/api/images/studio.js"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "root:" not in r.text and "use strict" not in r.text


@pytest.mark.parametrize("path", ["/api/render", "/api/download", "/api/gif", "/api/sample"])
def test_oversize_json_is_413(client, a, path):
    body = {"image": a["id"], "label": "Smiling", "moves": {}, "padding": "x" * (64 * 1024)}
    assert "65536 bytes" in error_of(post(client, path, body), 413)
    assert post(client, "/api/render", {"image": a["id"]}).status_code == 200


# a JSON integer too large for a float once made math.isfinite raise OverflowError: a 500, not a 400
@pytest.mark.parametrize("path,template", [
    ("/api/render", '{"image": "%(id)s", "moves": {"Smiling": %(big)s}}'),
    ("/api/sample", '{"n": %(big)s}'),
    ("/api/sample", '{"set": {"Smiling": %(big)s}}'),
])
def test_huge_integer_is_400(lenient, a, path, template):
    r = lenient.post(path, content=(template % {"id": a["id"], "big": "1" + "0" * 400}).encode())
    assert r.status_code == 400, r.text
    assert "from" in r.json()["error"]


# ----------------------------------------------------------------------------------------------
# several tabs at once
# ----------------------------------------------------------------------------------------------

def test_concurrent_renders_equal_the_same_requests_alone(client, a, b):
    bodies = [{"image": img["id"], "moves": {NAMES[k % 3]: k / 15, NAMES[(k + 1) % 3]: 1 - k / 15}}
              for k in range(16) for img in ([a] if k % 2 else [b])]
    alone = [render(client, body) for body in bodies]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda body: render(client, body), bodies))
    assert together == alone
    assert len({r["image"] for r in alone}) == len(bodies)              # and they really were different


# ----------------------------------------------------------------------------------------------
# eviction: the oldest uploads go, examples stay
# ----------------------------------------------------------------------------------------------

def test_oldest_upload_is_evicted_examples_never(tiny, example_files, monkeypatch):
    monkeypatch.setattr(studio_engine, "MAX_IMAGES", 2)
    with TestClient(create_app(Studio(load(tiny), examples=[("ex0", example_files[0])])), base_url=BASE) as c:
        ids = [upload(c, noise_png(30 + k)).json()["id"] for k in range(3)]
        assert "upload it again" in error_of(c.get(f"/api/images/{ids[0]}"), 404)
        assert error_of(post(c, "/api/render", {"image": ids[0]}), 404)
        for kept in ids[1:]:
            assert c.get(f"/api/images/{kept}").status_code == 200
        for k in range(3):                                               # many more uploads later
            upload(c, noise_png(40 + k))
        example = c.get("/api/model").json()["examples"][0]["id"]
        assert c.get(f"/api/images/{example}").status_code == 200
        assert post(c, "/api/render", {"image": example}).status_code == 200


# ----------------------------------------------------------------------------------------------
# the command (never serving: the checks come first, or _serve is replaced)
# ----------------------------------------------------------------------------------------------

def test_missing_extra_is_one_line(tiny, capsys, monkeypatch, clean_env):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "starlette" else real(name, *args))
    code, out, err = run_cli(["studio", "-m", tiny, "--port", 0], capsys)
    assert code != 0 and out == ""
    assert_one_line(code, err, (1, 2), "ccvae-tools[studio]")


@pytest.mark.parametrize("port", ["65536", "-1", "99999"])
def test_port_out_of_range_is_refused(tiny, capsys, clean_env, port):
    code, out, err = run_cli(["studio", "-m", tiny, "--port", port], capsys)
    assert_one_line(code, err, (2,), "--port")


def test_busy_port_is_one_line_suggesting_another(tiny, capsys, clean_env):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, out, err = run_cli(["studio", "-m", tiny, "--port", port], capsys)
    assert out == ""
    line = assert_one_line(code, err, (1, 2), f"--port {port}", "another --port")
    assert "0 picks a free one" in line


def test_unknown_host_is_one_line(tiny, capsys, clean_env):
    code, out, err = run_cli(["studio", "-m", tiny, "--host", "no such host.invalid", "--port", 0], capsys)
    assert_one_line(code, err, (2,), "--host", "not an address")


def test_examples_not_a_folder_is_one_line(tiny, tmp_path, capsys, clean_env):
    for given in (tmp_path / "missing", tmp_path / "one.png"):
        if given.name == "one.png":
            given.write_bytes(noise_png(50))
        code, out, err = run_cli(["studio", "-m", tiny, "--port", 0, "--examples", given], capsys)
        assert_one_line(code, err, (2,), "--examples", "not a folder")


def test_examples_folder_without_images_is_one_line(tiny, tmp_path, capsys, clean_env):
    (tmp_path / "notes.txt").write_text("no pictures here")
    (tmp_path / "sub.png").mkdir()                                      # a folder named like an image
    code, out, err = run_cli(["studio", "-m", tiny, "--port", 0, "--examples", tmp_path], capsys)
    assert_one_line(code, err, (2,), "--examples", "no images")


def test_command_hands_the_app_and_socket_to_the_server(tiny, tmp_path, capsys, clean_env, monkeypatch):
    """With _serve replaced: the URL printed is the bound socket's, --examples gives the page its
    images (sorted, non-images left out), and the card is the model's."""
    for name, data in (("b-two.png", noise_png(60)), ("a-one.PNG", gradient_png(61))):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "readme.txt").write_text("not an example")
    served = {}
    monkeypatch.setattr(cli_studio, "_serve", lambda app, sock: served.update(app=app, sock=sock))
    code, out, err = run_cli(["studio", "-m", tiny, "--port", 0, "--examples", tmp_path], capsys)
    sock = served["sock"]
    try:
        assert code == 0, err
        assert out.strip() == f"http://127.0.0.1:{sock.getsockname()[1]}/"
        assert "reachable from other machines" not in err                 # loopback: no warning
        with TestClient(served["app"], base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as c:
            assert [e["name"] for e in c.get("/api/model").json()["examples"]] == ["a-one", "b-two"]
            assert "tiny" in c.get("/api/card").json()["text"]
    finally:
        sock.close()


def test_command_warns_when_reachable_from_elsewhere(tiny, capsys, clean_env, monkeypatch):
    served = {}
    monkeypatch.setattr(cli_studio, "_serve", lambda app, sock: served.update(sock=sock))
    code, out, err = run_cli(["studio", "-m", tiny, "--host", "0.0.0.0", "--port", 0], capsys)
    served["sock"].close()
    assert code == 0, err
    assert out.startswith("http://127.0.0.1:")                          # a URL one can open here
    assert "reachable from other machines" in err


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                           ("127.5.6.7", True), ("0.0.0.0", False), ("::", False),
                                           ("192.168.1.2", False), ("example.com", False), ("", False)])
def test_is_loopback(host, loopback):
    assert cli_studio._is_loopback(host) is loopback


# ----------------------------------------------------------------------------------------------
# shipped_examples
# ----------------------------------------------------------------------------------------------

def test_default_model_ships_the_four_examples():
    got = shipped_examples(REPO / "weights" / "avatars64.safetensors")
    assert got == sorted((REPO / "weights" / "examples").glob("*.png"))
    assert [p.name for p in got] == ["brown.png", "glasses.png", "hat.png", "smile.png"]


def test_fonts_model_ships_its_own_folder():
    got = shipped_examples(REPO / "weights" / "fonts32.safetensors")
    assert got == sorted((REPO / "weights" / "examples" / "fonts").glob("*.png")) and got
    assert all(p.parent.name == "fonts" for p in got)


def test_own_model_has_no_shipped_examples(tiny, tmp_path):
    assert shipped_examples(tiny) == []
    own = tmp_path / "fonts32.safetensors"                # a shipped name, but nothing beside it
    own.write_bytes(b"")
    assert shipped_examples(own) == []


def test_non_hex_ids_are_400_not_a_lookup(client):
    """Ids are the engine's hex tokens: anything else (full-width digits included) is refused as such."""
    for bad in ["ａｂ", "ABCDEF", "0" * 65]:
        assert post(client, "/api/render", {"image": bad}).status_code == 400


def test_the_bound_socket_is_tcp_so_responses_are_not_delayed():
    """asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it a response with a
    body waited ~40 ms for the client's delayed ACK (benchmarks/studio_latency.py found it)."""
    import socket

    from ccvae_tools.cli.studio import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
