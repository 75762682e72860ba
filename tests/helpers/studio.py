"""A real studio in a real browser: `ccvae studio` as a process, driven by Playwright through the
system's Chromium. The browser test, the latency benchmark and the README's screenshot share it.

    with running_studio(["-m", "avatars64"]) as url, browser_page(url) as page:
        page.locator(...)

    python tests/helpers/studio.py --screenshot weights/pictures/studio.png      (the README's picture)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_ENV = "CCVAE_CHROMIUM"              # a browser executable to use instead of the ones on PATH


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable: $CCVAE_CHROMIUM, else the first on PATH; None if none."""
    named = os.environ.get(BROWSER_ENV)
    if named:
        return named if Path(named).is_file() else None
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def why_no_browser() -> str | None:
    """None when a browser test can run here, else the reason it cannot (for pytest.skip)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return (f"no Chromium found ({', '.join(BROWSERS)} on PATH, or ${BROWSER_ENV}); "
                f"install Debian's: apt-get install chromium")
    return None


@contextlib.contextmanager
def running_studio(args: list[str]):
    """`ccvae studio --port 0 ARGS` as a process; yields its URL (the first line it prints)."""
    with studio_process(args) as proc:
        yield proc.url


@contextlib.contextmanager
def studio_process(args: list[str], log: Path | None = None):
    """`ccvae studio --port 0 ARGS` as a process (its stderr into the file `log`, if given); yields
    the Popen with `.url` and `.port` added."""
    cmd = [sys.executable, "-m", "ccvae_tools", "studio", "--port", "0", *args]
    env = {**os.environ, "CCVAE_DEVICE": "cpu"}
    err = open(log, "w", encoding="utf-8") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            proc.kill()
            said = log.read_text(encoding="utf-8") if log is not None else proc.stderr.read()
            raise RuntimeError(f"ccvae studio did not start: {url!r} {said[-2000:]}")
        proc.url, proc.port = url, int(url.rstrip("/").rsplit(":", 1)[1])
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
        if log is not None:
            err.close()


@contextlib.contextmanager
def browser_page(url: str, width: int = 1280, height: int = 900):
    """A headless Chromium page on `url`, once the studio says it is ready (first image drawn)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()   # tabs can join
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.errors = errors
            yield page
        finally:
            browser.close()


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]          # names in lower case
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30.0) -> Answer:
    """One HTTP request to the studio on 127.0.0.1:`port` on a connection of its own; `headers` may
    set Host (else http.client writes 127.0.0.1:port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def post_json(port: int, path: str, body, headers: dict | None = None) -> Answer:
    return request(port, "POST", path, json.dumps(body).encode(),
                   {"Content-Type": "application/json", **(headers or {})})


def edited_version(page) -> int:
    return int(page.get_attribute("#edited", "data-version"))


def wait_for_new_image(page, version: int) -> int:
    """Wait until the edited image has been redrawn after `version`, and no request is on its way."""
    # a function, not an expression string: the page's CSP forbids eval, which a string would need
    page.wait_for_function("v => +document.getElementById('edited').dataset.version > v "
                           "&& !window.studio.inflight && !window.studio.pending", arg=version, timeout=15_000)
    return edited_version(page)


def pixels(page, selector: str):
    """The pixels of an <img> whose src is a data: URL, as a numpy array."""
    import numpy as np
    from PIL import Image

    src = page.get_attribute(selector, "src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def q_of(page, label: str) -> float:
    """q(label | edited image) as the page shows it (class 1 of a binary label)."""
    return float(page.get_attribute(f".label-row[data-label='{label}']", "data-q"))


def slider(page, label: str):
    return page.locator(f".label-row[data-label='{label}'] input[type=range]")


def screenshot(out: Path) -> None:
    """The README's picture: the shipped model, an example face, Smiling and Eyeglasses moved up."""
    with running_studio(["-m", "avatars64"]) as url, browser_page(url, 1280, 760) as page:
        page.locator("#examples button").nth(3).click()
        v = wait_for_new_image(page, edited_version(page))
        for label in ("Smiling", "Eyeglasses"):
            slider(page, label).fill("0.95")
            v = wait_for_new_image(page, v)
        page.locator("#pad-y").select_option("Eyeglasses")
        page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1280, "height": 760})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, required=True, help="PNG to write")
    screenshot(parser.parse_args().screenshot)


if __name__ == "__main__":
    main()
