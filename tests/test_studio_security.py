"""`ccvae studio` answers only its own page, and stays bounded under load and abuse (issue 26, 1-2).

Most tests drive a real server: `ccvae studio --port 0` as a process with the shipped default model
(`served`), over raw HTTP (http.client, or a bare socket where a client must misbehave), so that
uvicorn, the guard and the app are the ones a user runs. The deadlines (headers, bodies) are tested
on the same server code run in a thread of this process with the tiny model (`quick`), whose
deadlines can be made short. The Guard's rules themselves are checked in process (TestClient).

1. Host must be a loopback name or the --host address (DNS rebinding); a state-changing request
   from another site's page is refused, simple requests too; every response carries the security
   headers; no error holds the request's text as markup.
2. Hundreds of uploads keep the memory flat (evicted ids answer 404); bombs and many-frame
   animations are refused in milliseconds; stalled clients hold no one up; 8 clients at once get
   what one gets.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from ccvae_tools.cli.studio import _bind, _exposed  # noqa: E402
from ccvae_tools.model.api import load  # noqa: E402
from ccvae_tools.studio import engine as studio_engine  # noqa: E402
from ccvae_tools.studio import server as studio_server  # noqa: E402
from ccvae_tools.studio.engine import Studio  # noqa: E402
from ccvae_tools.studio.guard import Hosts, split_host  # noqa: E402
from ccvae_tools.studio.serving import make_server  # noqa: E402
from helpers.studio import (find_chromium, post_json, request, studio_process,  # noqa: E402
                            why_no_browser)

STATIC = Path(__file__).resolve().parents[1] / "ccvae_tools" / "studio" / "static"
EXAMPLES = Path(__file__).resolve().parents[1] / "weights" / "examples"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "no-referrer"}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def noise_png(seed: int, size: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int, rows: int | None = None, width: int | None = None) -> bytes:
    """A grayscale PNG of side x side zeros (`width` x side with `width`); with `rows`, only that many
    rows of data follow the header (a file that claims more than it holds)."""
    width = side if width is None else width
    raw = zlib.compress(b"\x00" * (width + 1) * (side if rows is None else rows), 9)
    head = struct.pack(">IIBBBBB", width, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", head) + png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b"")


def animation(fmt: str, frames: int) -> bytes:
    """A first frame of 48 x 48 and `frames - 1` tiny ones after it (GIF) or 8 x 8 ones (APNG)."""
    first = Image.fromarray(np.full((48, 48), 90, np.uint8))
    side = 1 if fmt == "GIF" else 48
    rest = [Image.fromarray(np.full((side, side), k % 250, np.uint8)) for k in range(1, frames)]
    buf = io.BytesIO()
    first.save(buf, fmt, save_all=True, append_images=rest)
    return buf.getvalue()


def error_of(r, status: int) -> str:
    """`r` is `status` with a one-line JSON error (application/json), and the security headers."""
    assert r.status == status, (r.status, r.body[:300])
    assert r.headers["content-type"] == "application/json", r.headers
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, r.headers)
    assert b"<" not in r.body and b">" not in r.body, r.body          # no markup, whatever was asked
    message = r.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    return message


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def raw_socket(port: int):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        yield s
    finally:
        s.close()


def read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return out
        if not chunk:
            return out
        out += chunk


# ----------------------------------------------------------------------------------------------
# fixtures: the real command with the shipped model; the same server code in a thread (tiny model)
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`ccvae studio --port 0` (the shipped default model) as a process; its stderr in `.log`."""
    log = tmp_path_factory.mktemp("studio") / "stderr.txt"
    with studio_process([], log) as proc:
        proc.log = log
        proc.model = request(proc.port, "GET", "/api/model").json()
        yield proc
    said = log.read_text(encoding="utf-8")
    assert "Traceback" not in said and "ERROR" not in said, said[-3000:]


@pytest.fixture(scope="module")
def quick(tiny):
    """The studio's own server (serving.make_server) in a thread, header deadline 0.5 s."""
    sock = _bind("127.0.0.1", 0)
    server = make_server(studio_server.create_app(Studio(load(tiny))), header_seconds=0.5)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def labels(served) -> list[str]:
    return [lab["name"] for lab in served.model["labels"]]


def example(served, k: int = 0) -> str:
    return served.model["examples"][k]["id"]


# ----------------------------------------------------------------------------------------------
# 1. only its own page: Host
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}",
                                  "localhost:{other}", "127.0.0.1:{other}", "[::2]:{port}", "10.0.0.1:{port}",
                                  "localhost.:{port}", "", "127.0.0.1:{port}:1", "localhost:port",
                                  "<script>alert(1)</script>", "127.0.0.1:{port}@evil.example",
                                  "[::1:{port}", "a" * 300])
@pytest.mark.parametrize("method,path", [("GET", "/"), ("GET", "/api/model"), ("POST", "/api/sample")])
def test_foreign_host_is_refused(served, host, method, path):
    """A DNS-rebinding page reaches 127.0.0.1 with its own name in Host: 403, before the app."""
    given = host.format(port=served.port, other=served.port + 1)
    r = request(served.port, method, path, b'{"n": 1}' if method == "POST" else None, {"Host": given})
    message = error_of(r, 403)
    assert "not this studio's address" in message and f"http://127.0.0.1:{served.port}/" in message
    assert not re.search(r"[<>()\s]", message.split("Host ")[1].split(" is not")[0]) and len(message) < 300
    assert "content-security-policy" in r.headers


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}",
                                  "localhost", "127.0.0.1"])
def test_own_host_names_are_served(served, host):
    r = request(served.port, "GET", "/api/card", headers={"Host": host.format(port=served.port)})
    assert r.status == 200 and "text" in r.json()


def test_a_request_with_two_hosts_is_refused(served):
    with raw_socket(served.port) as s:
        s.sendall(f"GET /api/card HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nHost: evil.example\r\n"
                  f"Connection: close\r\n\r\n".encode())
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]                # h11's 400, or our 403


# ----------------------------------------------------------------------------------------------
# 1. only its own page: Origin of state-changing requests
# ----------------------------------------------------------------------------------------------

FOREIGN_ORIGINS = ["http://evil.example", "http://evil.example:{port}", "null", "http://127.0.0.1:{other}",
                   "https://127.0.0.1:{port}", "http://localhost:{port}.evil.example", "file://",
                   "http://127.0.0.1", "http://user@127.0.0.1:{port}", "http://127.0.0.1:{port}/path",
                   "http://[::1", "<img src=x onerror=alert(1)>", "chrome-extension://abc"]
# what a cross-site page can send without a preflight: a form post, or fetch with a "simple" type
SIMPLE = [("application/x-www-form-urlencoded", b"n=1"), ("text/plain", b'{"n": 1}'),
          ("multipart/form-data; boundary=x", b"--x\r\n\r\n1\r\n--x--")]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
@pytest.mark.parametrize("kind,body", SIMPLE)
def test_cross_site_simple_posts_are_refused(served, origin, kind, body):
    given = origin.format(port=served.port, other=served.port + 1)
    for path in ("/api/sample", "/api/images", "/api/render"):
        r = request(served.port, "POST", path, body, {"Origin": given, "Content-Type": kind})
        assert "another site" in error_of(r, 403)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_state_changing_methods_from_other_sites_are_refused(served, method):
    r = request(served.port, method, "/api/images", b"x", {"Origin": "http://evil.example"})
    error_of(r, 403)
    assert error_of(request(served.port, method, "/api/images", b"x"), 405)   # ours: no such method


def test_cross_site_upload_leaves_nothing_behind(served):
    """A refused upload never reaches the engine: the ids the studio holds are the ones it had."""
    r = request(served.port, "POST", "/api/images", noise_png(1),
                {"Origin": "http://evil.example", "Content-Type": "text/plain"})
    error_of(r, 403)
    assert b'"id"' not in r.body


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_fetch_metadata_of_another_site_is_refused_without_origin(served, site):
    r = request(served.port, "POST", "/api/sample", b'{"n": 1}', {"Sec-Fetch-Site": site})
    assert "another site" in error_of(r, 403)


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://127.0.0.1:{port}"},
                                     {"Origin": "http://localhost:{port}"},
                                     {"Origin": "http://[::1]:{port}"}, {"Sec-Fetch-Site": "same-origin"},
                                     {"Sec-Fetch-Site": "none"},
                                     {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}])
def test_own_page_and_non_browser_clients_may_post(served, headers):
    given = {k: v.format(port=served.port) for k, v in headers.items()}
    r = post_json(served.port, "/api/sample", {"n": 1, "seed": 2}, given)
    assert r.status == 200, r.body[:200]
    assert r.json()["image"].startswith("data:image/png;base64,")


# ----------------------------------------------------------------------------------------------
# 1. security headers on every response; JSON as JSON; no markup in errors
# ----------------------------------------------------------------------------------------------

def every_kind_of_answer(served) -> list[tuple[str, object]]:
    p, ex = served.port, example(served)
    return [("page", request(p, "GET", "/")), ("script", request(p, "GET", "/studio.js")),
            ("style", request(p, "GET", "/studio.css")), ("icon", request(p, "GET", "/favicon.ico")),
            ("json", request(p, "GET", "/api/model")), ("png", post_json(p, "/api/download", {"image": ex})),
            ("404", request(p, "GET", "/nowhere")), ("405", request(p, "GET", "/api/render")),
            ("400", post_json(p, "/api/render", {"image": "zz"})), ("404 id", request(p, "GET", "/api/images/ab")),
            ("413", request(p, "POST", "/api/images", b"x", {"Content-Length": str(64 << 20)})),
            ("422", request(p, "POST", "/api/images", b"not a picture")),
            ("403", request(p, "GET", "/", headers={"Host": "evil.example"}))]


def test_security_headers_on_every_response(served):
    for what, r in every_kind_of_answer(served):
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (what, name, r.headers)
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, what
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert not re.search(r"https?:|\*", policy), policy                  # no remote host, no wildcard
        assert "server" not in r.headers, what                               # no version banner


def test_each_answer_has_its_own_media_type(served):
    kinds = {what: r.headers.get("content-type", "") for what, r in every_kind_of_answer(served)}
    assert kinds["page"].startswith("text/html") and kinds["script"].startswith("text/javascript")
    assert kinds["style"].startswith("text/css") and kinds["png"] == "image/png"
    for what in ("json", "404", "405", "400", "404 id", "413", "422", "403"):
        assert kinds[what] == "application/json", (what, kinds[what])


@pytest.mark.parametrize("method,path,body,headers", [
    ("GET", "/<script>alert(1)</script>", None, {}),
    ("GET", "/api/images/%3Cscript%3E", None, {}),
    ("POST", "/api/gif", {"image": "{ex}", "label": "<img src=x onerror=alert(1)>"}, {}),
    ("POST", "/api/render", {"image": "{ex}", "moves": {"<b>Smiling</b>": 0.5}}, {}),
    ("POST", "/api/render", {"image": "{ex}", "moves": {"Smiling": "<script>"}}, {}),
    ("POST", "/api/sample", {"set": {"Smiling": "</script><script>alert(1)</script>"}}, {}),
    ("POST", "/api/images", b"<html><script>alert(1)</script></html>", {"X-File-Name": "%3Cscript%3E.png"}),
    ("POST", "/api/render", b"<script>alert(1)</script>", {"Content-Type": "text/html"}),
])
def test_errors_never_hold_the_request_as_markup(served, method, path, body, headers):
    if isinstance(body, dict):
        body = json.dumps(body).replace("{ex}", example(served)).encode()
    r = request(served.port, method, path, body, headers)
    assert 400 <= r.status < 500
    message = error_of(r, r.status)                                          # no < or > in the bytes
    assert "<" not in r.headers.get("content-type", "")
    if "Smiling" in message and "script" in message:
        assert "<script>" in message or "</script>" in message               # quoted as text, in JSON


def test_a_file_name_comes_back_as_json_text(served):
    r = request(served.port, "POST", "/api/images", noise_png(3), {"X-File-Name": "%3Cimg%20src%3Dx%3E.png"})
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert b"<img" not in r.body and r.json()["name"] == "<img src=x>.png"


def test_page_has_no_inline_script_style_or_handler():
    """The CSP forbids inline code, so the page must have none (or it would silently break)."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S | re.I)
    assert scripts and all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<style\b", html, flags=re.I)
    assert not re.search(r"\s(on[a-z]+|style)\s*=", html, flags=re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html, flags=re.I)     # nothing remote
    js = (STATIC / "studio.js").read_text(encoding="utf-8")
    assert not re.search(r"\b(innerHTML|outerHTML|insertAdjacentHTML|eval|document\.write)\b|new Function", js)


@pytest.mark.skipif(why_no_browser() is not None, reason=f"no browser here: {why_no_browser()}")
def test_the_page_runs_under_its_policy_in_a_browser(served):
    """Chromium reports nothing the policy blocked while the page starts, opens its card, picks an
    example and draws a sample (the browser test covers the sliders)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            page = browser.new_page()
            said: list[str] = []
            page.on("console", lambda m: said.append(m.text))
            page.on("pageerror", lambda e: said.append(str(e)))
            page.goto(served.url)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.click("#card-button")
            page.click("#card form button")
            page.locator("#examples button").nth(1).click()
            page.click("#sample")
            page.wait_for_function("() => (document.getElementById('samples').src || '').startsWith('data:')")
        finally:
            browser.close()
    assert not [m for m in said if "Content Security Policy" in m or "Refused" in m], said
    assert not said, said


# ----------------------------------------------------------------------------------------------
# 1. --host other than loopback: it serves its address, refuses others, and says what it exposes
# ----------------------------------------------------------------------------------------------

def test_non_loopback_host_serves_its_address_and_warns(tiny, tmp_path):
    log = tmp_path / "stderr.txt"
    with studio_process(["-m", str(tiny), "--host", "0.0.0.0"], log) as proc:
        p = proc.port
        for host in (f"127.0.0.1:{p}", f"192.0.2.7:{p}", f"[2001:db8::7]:{p}", "192.0.2.7"):
            assert request(p, "GET", "/api/card", headers={"Host": host}).status == 200, host
        for host in (f"evil.example:{p}", f"192.0.2.7:{p + 1}"):
            error_of(request(p, "GET", "/api/card", headers={"Host": host}), 403)
        ok = post_json(p, "/api/sample", {"n": 1}, {"Host": f"192.0.2.7:{p}", "Origin": f"http://192.0.2.7:{p}"})
        assert ok.status == 200
        error_of(post_json(p, "/api/sample", {"n": 1}, {"Origin": "http://evil.example"}), 403)
    said = log.read_text(encoding="utf-8")
    warning = [line for line in said.splitlines() if "reachable from other machines" in line]
    assert len(warning) == 1, said
    assert "0.0.0.0" in warning[0] and f"port {p}" in warning[0] and "without authentication" in warning[0]


@pytest.mark.parametrize("host,where", [("0.0.0.0", "every address of this machine, port 7860"),
                                        ("::", "every address of this machine, port 7860"),
                                        ("192.168.1.2", "http://192.168.1.2:7860/"),
                                        ("fe80::1", "http://[fe80::1]:7860/"),
                                        ("box\x1b[2J.lan", "http://box\\x1b[2J.lan:7860/")])
def test_the_warning_says_what_is_exposed(host, where):
    line = _exposed(host, 7860)
    assert where in line and "\n" not in line and "\x1b" not in line
    assert "reachable from other machines on the network" in line and "without authentication" in line


@pytest.mark.parametrize("bind,good,bad", [
    ("127.0.0.1", ["127.0.0.1", "localhost", "[::1]"], ["192.168.1.2", "evil.example", "[::2]", "0.0.0.0"]),
    ("::1", ["[::1]", "localhost"], ["192.168.1.2", "evil.example"]),
    ("192.168.1.2", ["192.168.1.2", "127.0.0.1", "localhost"], ["192.168.1.3", "evil.example", "10.0.0.1"]),
    ("Studio-Box.lan", ["studio-box.lan", "localhost"], ["evil.example", "192.168.1.2"]),
    ("fe80::1", ["[fe80::1]", "[::1]"], ["[fe80::2]", "fe80::1"]),
    ("0.0.0.0", ["192.168.1.2", "10.0.0.1", "[fe80::1]", "localhost"], ["evil.example", "127.0.0.1.nip.io"]),
])
def test_hosts_of_a_bind_address(bind, good, bad):
    hosts = Hosts.for_bind(bind)
    assert all(hosts.allows(name) for name in good), (bind, good)
    assert not any(hosts.allows(name) for name in bad), (bind, bad)


@pytest.mark.parametrize("value,parsed", [
    ("localhost:7860", ("localhost", 7860)), ("LocalHost", ("localhost", None)), ("[::1]:80", ("[::1]", 80)),
    ("[::1]", ("[::1]", None)), ("a:b", None), ("a:", None), (":80", None), ("[::1]x", None), ("a:123456", None),
    ("a:\u0661\u0662", None), ("", None), ("[::1]:", None)])
def test_split_host(value, parsed):
    assert split_host(value) == parsed


def test_guard_in_process_refuses_the_test_client_default_host(tiny):
    """TestClient's own name, testserver, is no name of a studio: every in-process test names one."""
    with TestClient(studio_server.create_app(Studio(load(tiny)))) as c:
        r = c.get("/api/card")
        assert r.status_code == 403 and "testserver" in r.json()["error"]
    with TestClient(studio_server.create_app(Studio(load(tiny))), base_url="http://localhost:7860") as c:
        assert c.get("/api/card").status_code == 200


# ----------------------------------------------------------------------------------------------
# 2. bounded: memory over hundreds of uploads, bombs, animations, bodies
# ----------------------------------------------------------------------------------------------

def test_hundreds_of_uploads_keep_memory_flat_and_evicted_ids_say_so(served):
    """224 distinct 192 x 192 uploads (110 kB each): once the studio holds its 64, the process grows
    by less than the 160 further files would take if any were kept (~18 MB of files alone)."""
    base = np.random.default_rng(5).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    ids, sizes = [], []
    for k in range(224):
        base[0, :4, 0] = [k % 256, k // 256, 7, 7]                           # distinct files and pixels
        buf = io.BytesIO()
        Image.fromarray(base).save(buf, "PNG", compress_level=1)
        r = request(served.port, "POST", "/api/images", buf.getvalue())
        assert r.status == 200, r.body[:200]
        ids.append(r.json()["id"])
        if k in (studio_engine.MAX_IMAGES + 10, 223):
            sizes.append(rss_mb(served.pid))
    assert sizes[1] - sizes[0] < 12, sizes
    for gone in ids[:100]:
        message = error_of(request(served.port, "GET", f"/api/images/{gone}"), 404)
        assert "upload it again" in message
    error_of(post_json(served.port, "/api/render", {"image": ids[0]}), 404)
    assert all(request(served.port, "GET", f"/api/images/{kept}").status == 200 for kept in ids[-40:])
    assert request(served.port, "GET", f"/api/images/{example(served)}").status == 200   # examples stay


@pytest.mark.parametrize("data,needle", [
    (lambda: bomb_png(5000), "megapixels"),                        # 25 MP of zeros in 25 kB
    (lambda: bomb_png(100_000, rows=8), "megapixels"),             # 10 gigapixels claimed
    (lambda: bomb_png(8_500), "megapixels"),                       # over the loader's own 64 MP
    (lambda: animation("GIF", 3000), "frames"),
    (lambda: animation("PNG", 1500), "frames"),                    # APNG
], ids=["png-25MP", "png-claims-10GP", "png-72MP", "gif-3000-frames", "apng-1500-frames"])
def test_bombs_and_long_animations_are_refused_quickly(served, data, needle):
    payload = data()
    start = time.perf_counter()
    r = request(served.port, "POST", "/api/images", payload, {"X-File-Name": "bomb.png"})
    took = time.perf_counter() - start
    message = error_of(r, 422)
    assert needle in message and "bomb.png" in message
    assert took < 1.0, f"{took:.2f} s to refuse {len(payload)} bytes"
    assert request(served.port, "GET", "/api/model").status == 200


def test_the_pixel_limit_is_exact_and_jpeg_photos_pass_drafted(tiny):
    """4096 x 4096 passes and one column more does not (read from the header alone); a 20 MP JPEG
    photo is taken, decoded at 1/8 of its size by the loader's draft."""
    studio_engine.check_upload(bomb_png(4096, rows=1), "edge.png")
    with pytest.raises(studio_engine.DataError, match="16.8 megapixels"):
        studio_engine.check_upload(bomb_png(4096, rows=1, width=4097), "x.png")
    buf = io.BytesIO()
    Image.new("RGB", (5000, 4000), (200, 120, 40)).save(buf, "JPEG", quality=80)
    start = time.perf_counter()
    pic = Studio(load(tiny)).upload(buf.getvalue(), "photo.jpg")
    assert pic.pixels.shape == (3, 32, 32) and time.perf_counter() - start < 2.0


def test_a_short_animation_is_its_first_frame(served):
    r = request(served.port, "POST", "/api/images", animation("GIF", 20))
    assert r.status == 200, r.body[:200]


def test_upload_body_is_refused_as_it_streams(served):
    """A declared length over 16 MB is refused before any byte of the body; a chunked body as soon
    as it passes the limit, long before the client would have sent all it meant to."""
    error_of(request(served.port, "POST", "/api/images", b"", {"Content-Length": str(17 << 20)}), 413)
    sent = 0
    with raw_socket(served.port) as s:
        s.sendall(f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                  f"Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"\x00" * (1 << 20))
        with contextlib.suppress(OSError):
            while sent < 200 << 20:
                s.sendall(chunk)
                sent += 1 << 20
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 << 20, f"the client sent {sent >> 20} MB before the server stopped it"
    assert request(served.port, "GET", "/api/card").status == 200


# ----------------------------------------------------------------------------------------------
# 2. slow and stalled clients
# ----------------------------------------------------------------------------------------------

def test_stalled_clients_hold_no_one_up(served):
    """Twelve connections that stop mid-request (in the headers, mid-body, before a byte) while one
    client renders, samples and uploads: each answer as prompt as with no one stalled."""
    p, ex, name = served.port, example(served), labels(served)[0]
    head = f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n"
    partial = [b"", b"GET /api/model HTTP/1.1\r\nHost: 127.0", head.encode(),
               (head + "Content-Length: 100000\r\n\r\n").encode() + noise_png(4)[:500]]
    with contextlib.ExitStack() as stack:
        for k in range(12):
            s = stack.enter_context(raw_socket(p))
            s.sendall(partial[k % len(partial)])
        time.sleep(0.2)
        for _ in range(3):
            start = time.perf_counter()
            assert post_json(p, "/api/render", {"image": ex, "moves": {name: 0.7}}).status == 200
            assert post_json(p, "/api/sample", {"n": 4}).status == 200
            assert request(p, "POST", "/api/images", noise_png(5)).status == 200
            assert time.perf_counter() - start < 2.0


def test_model_work_leaves_the_event_loop_free(served):
    """While GIFs (48 frames decoded and drawn, ~0.25 s each, one at a time) are made, the page's
    files are still served at once."""
    p = served.port
    with ThreadPoolExecutor(4) as pool:
        gifs = [pool.submit(post_json, p, "/api/gif", {"image": example(served), "label": labels(served)[0]})
                for _ in range(4)]
        time.sleep(0.05)
        start = time.perf_counter()
        assert request(p, "GET", "/studio.js").status == 200
        quick_answer = time.perf_counter() - start
        busy = not all(g.done() for g in gifs)
        assert all(g.result().status == 200 for g in gifs)
    assert busy and quick_answer < 0.3, quick_answer


def test_headers_that_never_end_are_cut_off(quick):
    """A client that opens a connection and sends part of its headers (or nothing) gets a 408 and
    the connection closed, HEADER_SECONDS (0.5 s here) later; a complete request is unaffected."""
    for partial in (b"", b"GET /api/card HTTP/1.1\r\nHost: 127.0"):
        with raw_socket(quick) as s:
            s.sendall(partial)
            start = time.perf_counter()
            answer = read_all(s)
            took = time.perf_counter() - start
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.3 < took < 5, took
    with raw_socket(quick) as s:                                   # keep-alive: the second request too
        s.sendall(f"GET /api/card HTTP/1.1\r\nHost: 127.0.0.1:{quick}\r\n\r\n".encode())
        time.sleep(0.2)
        s.sendall(b"GET /api/card HTTP/1.1\r\nHo")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in answer, answer[-200:]
    assert request(quick, "GET", "/api/card", headers={"Host": "localhost"}).status == 200


def test_a_body_that_stops_arriving_is_408(quick, monkeypatch):
    monkeypatch.setattr(studio_server, "BODY_SECONDS", 0.5)
    with raw_socket(quick) as s:
        s.sendall(f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:{quick}\r\nContent-Length: 5000\r\n\r\n"
                  .encode() + b"\x89PNG" * 10)
        start = time.perf_counter()
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"did not arrive within 0.5 s" in answer and time.perf_counter() - start < 5


def test_a_burst_of_uploads_is_decoded_a_few_at_a_time(tiny, monkeypatch):
    """However many uploads arrive at once, at most DECODERS are decoded together (the memory of a
    burst of large pictures is that of DECODERS)."""
    studio = Studio(load(tiny))
    now, most, guard = [0], [0], threading.Lock()
    real = studio_engine.load_image

    def counting(*args, **kw):
        with guard:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.02)
        try:
            return real(*args, **kw)
        finally:
            with guard:
                now[0] -= 1

    monkeypatch.setattr(studio_engine, "load_image", counting)
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda k: studio.upload(noise_png(k), f"{k}.png"), range(24)))
    assert most[0] == studio_engine.DECODERS


# ----------------------------------------------------------------------------------------------
# 2. eight clients at once get what one gets
# ----------------------------------------------------------------------------------------------

def test_eight_concurrent_clients_get_the_results_of_one(served):
    p, names = served.port, labels(served)
    ex = [e["id"] for e in served.model["examples"]]
    jobs = [("/api/render", {"image": ex[k % len(ex)], "moves": {names[k % len(names)]: k / 23,
                                                                  names[(k + 3) % len(names)]: 1 - k / 23}})
            for k in range(16)]
    jobs += [("/api/sample", {"n": 4, "seed": k, "set": {names[k]: 1}}) for k in range(4)]
    jobs += [("/api/render", {"image": ex[0], "swap": {"image": ex[k], "labels": names[:k + 2]}})
             for k in range(1, 4)]
    jobs += [("state", ex[1])]

    def do(job):
        path, body = job
        r = request(p, "GET", f"/api/images/{body}") if path == "state" else post_json(p, path, body)
        assert r.status == 200, r.body[:200]
        return r.json()

    alone = [do(job) for job in jobs]
    assert len({json.dumps(a, sort_keys=True) for a in alone}) == len(jobs)       # all different

    def client(c: int) -> list:                  # each client its own order, every job twice over 8
        mine = [k for k in range(len(jobs)) if k % 4 == c % 4]
        return [(k, do(jobs[k])) for k in (mine if c < 4 else mine[::-1])]

    with ThreadPoolExecutor(8) as pool:
        results = [kv for out in pool.map(client, range(8)) for kv in out]
    assert len(results) == 2 * len(jobs)
    for k, got in results:
        assert got == alone[k], jobs[k]
