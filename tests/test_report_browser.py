"""The `ccvae report` page in a real browser (Debian's Chromium through Playwright), offline: it loads
from its file with the network cut and every other request aborted, draws every image, logs no
error, and its Content-Security-Policy refuses a planted remote image before it reaches the network. Skipped,
saying why, only where no browser or no Playwright can be had (CCVAE_REQUIRE_BROWSER=1 makes that
an error, as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.report_browser import images_drawn, report_page, why_no_browser

pytest.importorskip("matplotlib")
REASON = why_no_browser()
if REASON is not None and os.environ.get("CCVAE_REQUIRE_BROWSER") == "1":      # CI: a skip would hide it
    raise RuntimeError(f"CCVAE_REQUIRE_BROWSER=1 but {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no browser test here: {REASON}")
SECTIONS = ["curves", "eval", "traversals", "samples", "swap", "options", "card"]


@pytest.fixture(scope="module")
def report_file(tiny, tmp_path_factory) -> Path:
    from ccvae_tools.cli import main

    out = tmp_path_factory.mktemp("report") / "report.html"
    try:
        main(["report", str(tiny), "-o", str(out), "-q", "--device", "cpu"])
    except SystemExit as e:                   # main() returns on success
        assert not e.code, e.code
    return out


def test_the_page_loads_offline_and_draws_every_image(report_file):
    with report_page(report_file) as page:
        assert page.requests == [] and page.aborted == [], "the page asked for something besides its own file"
        images = images_drawn(page)
        assert len(images) >= 10
        undrawn = [i["alt"] for i in images if not i["complete"] or i["width"] <= 0]
        assert not undrawn, f"images not drawn: {undrawn}"
        assert page.errors == [] and page.console_errors == []
        assert page.eval_on_selector_all("section", "els => els.map(e => e.id)") == SECTIONS
        assert page.evaluate("() => document.scripts.length") == 0
        assert page.title().startswith("ccvae report: ")
        box = page.locator("#swap img").bounding_box()          # laid out at its size: twice the pixels
        assert box["width"] > 100 and box["height"] > 100


def test_a_planted_remote_image_is_refused_by_the_pages_policy(report_file, tmp_path):
    """The control: the same page with a remote image in it loads nothing remote (the CSP refuses
    it, and says so in the console); without the policy the request is made, and caught here."""
    html = report_file.read_text(encoding="utf-8")
    planted = html.replace("<body>", '<body><img id="planted" src="http://example.invalid/pixel.png" alt="x">', 1)
    with_csp = tmp_path / "with_csp.html"
    with_csp.write_text(planted, encoding="utf-8")
    with report_page(with_csp) as page:
        assert page.requests == ["http://example.invalid/pixel.png"]
        assert page.failures == {"http://example.invalid/pixel.png": "csp"} and page.aborted == []
        assert any("violates the following Content Security Policy directive" in line
                   for line in page.console_errors), page.console_errors
    start = planted.index('<meta http-equiv="Content-Security-Policy"')
    without = tmp_path / "without_csp.html"
    without.write_text(planted[:start] + planted[planted.index(">", start) + 1:], encoding="utf-8")
    with report_page(without) as page:
        assert page.aborted == ["http://example.invalid/pixel.png"]
