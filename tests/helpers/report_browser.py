"""The `ccvae report` page in a real browser (the system's Chromium through Playwright), offline: the
context has no network, every request the page attempts is recorded, and every one that is not for
the page's own file is aborted. The browser test and the README's screenshot share it.

    with report_page(Path("report.html")) as page:
        page.requests, page.aborted, page.failures, page.errors, page.console_errors

    python tests/helpers/report_browser.py --screenshot weights/pictures/report.png   (the README's picture)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from helpers.studio import find_chromium, why_no_browser
except ImportError:                       # run as a script: tests/ is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers.studio import find_chromium, why_no_browser

__all__ = ["find_chromium", "why_no_browser", "report_page", "screenshot"]
ROOT = Path(__file__).resolve().parents[2]
MAX_PICTURE_BYTES = 400_000


@contextlib.contextmanager
def report_page(html: Path, width: int = 1280, height: int = 900):
    """A headless Chromium page on file://`html`, loaded, in a context with no network. On it:
    `.requests`, every request the page attempted besides its own file (data: URIs make none),
    including those its Content-Security-Policy refused; `.aborted`, those that got as far as the
    network and were aborted here; `.failures`, {url: why it failed} ("csp" for a refusal);
    `.errors`, its script errors; `.console_errors`, the console's errors (a CSP refusal is one)."""
    from playwright.sync_api import sync_playwright

    url = Path(html).resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
            aborted: list[str] = []

            def route(r) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    aborted.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.requests, page.aborted, page.failures = [], aborted, {}
            page.errors, page.console_errors = [], []
            page.on("request", lambda r: None if r.url == url else page.requests.append(r.url))
            page.on("requestfailed", lambda r: page.failures.__setitem__(r.url, r.failure))
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
            page.goto(url, wait_until="load")
            yield page
        finally:
            browser.close()


def images_drawn(page) -> list[dict]:
    """Every <img> of the page: its alt text, whether it loaded and its decoded width."""
    return page.eval_on_selector_all(
        "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, width: e.naturalWidth}))")


def screenshot(out: Path, html: Path | None = None, height: int = 1500) -> None:
    """The README's picture: the report of the shipped default model (`ccvae report avatars64`),
    the top `height` px of the page at 1280 px wide, made smaller with a palette if it is large."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        if html is None:
            html = Path(tmp) / "report.html"
            subprocess.run([sys.executable, "-m", "ccvae_tools", "report", "avatars64", "-o", str(html), "-q"],
                           check=True, cwd=ROOT, env={**os.environ, "CCVAE_DEVICE": "cpu"}, stdout=subprocess.DEVNULL)
        with report_page(html, 1280, 900) as page:
            full = page.evaluate("() => document.documentElement.scrollHeight")
            data = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": min(height, full)})
    if len(data) > MAX_PICTURE_BYTES:        # screenshots of photos and plots: 256 colours lose little
        img = Image.open(io.BytesIO(data)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    Path(out).write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, required=True, help="PNG to write")
    parser.add_argument("--html", type=Path, help="a report to show (default: made from avatars64)")
    parser.add_argument("--height", type=int, default=1500, help="pixels of the page's top to keep")
    args = parser.parse_args()
    reason = why_no_browser()
    if reason is not None:
        sys.exit(f"no screenshot: {reason}")
    screenshot(args.screenshot, args.html, args.height)


if __name__ == "__main__":
    main()
