"""How fast the studio answers a slider: from the input event to the new image on screen, in a real
browser (Chromium through Playwright), with the real server (`ccvae studio`) on this machine.

    python benchmarks/studio_latency.py [--model avatars64] [--moves 200] [--drag-seconds 5]

Three numbers, each over many moves of the Smiling slider (the page records every latency itself,
`window.studio.timings`: performance.now() at the first input not yet sent, to the new image's load):
- one move at a time: move, wait for the image, move again (what a click or a key press feels like);
- dragging: an input event every 16 ms (a 60 Hz drag) for a few seconds; the page keeps one request
  in flight and folds the inputs that arrive meanwhile into the next (so images/s <= inputs/s);
- the engine alone: `Studio.render` + PNG in this process (decode one code, q(y | image)), no HTTP.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.studio import (browser_page, edited_version, running_studio, slider,  # noqa: E402
                            wait_for_new_image, why_no_browser)
from train_throughput import machine  # noqa: E402

DRAG = """([ms, seconds]) => new Promise((done) => {
  const s = document.querySelector(".label-row[data-label='Smiling'] input[type=range]");
  const start = performance.now(); let n = 0;
  const tick = setInterval(() => {
    const t = (performance.now() - start) / 1000;
    s.value = String(0.5 + 0.5 * Math.sin(2 * Math.PI * t / 2)); s.dispatchEvent(new Event("input")); n++;
    if (t > seconds) { clearInterval(tick); done(n); }
  }, ms);
})"""


def summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=10)
    return f"median {statistics.median(ms):.1f} ms, p90 {q[-1]:.1f} ms, n {len(ms)}"


def one_at_a_time(page, moves: int) -> list[float]:
    page.evaluate("() => { window.studio.timings.length = 0; }")
    v = edited_version(page)
    s = slider(page, "Smiling")
    for k in range(moves):
        s.fill(f"{(k % 20) / 19:.4f}")
        v = wait_for_new_image(page, v)
    return page.evaluate("() => window.studio.timings.slice()")


def dragging(page, seconds: float) -> tuple[list[float], int]:
    page.evaluate("() => { window.studio.timings.length = 0; }")
    v = edited_version(page)
    inputs = page.evaluate(DRAG, [16, seconds])
    wait_for_new_image(page, v)
    return page.evaluate("() => window.studio.timings.slice()"), inputs


def engine_alone(model: str, moves: int) -> list[float]:
    from ccvae_tools.cli.io import resolve_model_path, shipped_examples
    from ccvae_tools.model.api import load
    from ccvae_tools.studio.engine import Edit, Studio, png

    path = resolve_model_path(model)
    studio = Studio(load(path), [(p.stem, p) for p in shipped_examples(path)[:1]])
    pic = studio.examples[0]
    out = []
    for k in range(moves + 10):
        t0 = time.perf_counter()
        image, _ = studio.render(pic.id, Edit(moves={0: (k % 20) / 19}))
        png(image)
        out.append(1000 * (time.perf_counter() - t0))
    return out[10:]                          # the first few warm the caches up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="avatars64")
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--drag-seconds", type=float, default=5.0)
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        sys.exit(f"studio_latency: {reason}")
    print(f"machine: {machine()}")
    print(f"engine alone (render + PNG, in process): {summary(engine_alone(args.model, args.moves))}")
    with running_studio(["-m", args.model]) as url, browser_page(url) as page:
        one_at_a_time(page, 10)                                     # warm-up
        print(f"slider -> image on screen, one move at a time: {summary(one_at_a_time(page, args.moves))}")
        timings, inputs = dragging(page, args.drag_seconds)
        print(f"slider -> image on screen, dragging at 60 Hz: {summary(timings)}; "
              f"{inputs} inputs -> {len(timings)} images in {args.drag_seconds:g} s "
              f"({len(timings) / args.drag_seconds:.0f} images/s)")


if __name__ == "__main__":
    main()
