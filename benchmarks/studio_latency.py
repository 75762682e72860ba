"""How fast the studio answers a slider: from the input event to the new image on screen, in a real
browser (Chromium through Playwright), with the real server (`ccvae studio`) on this machine; and,
with --clients N, how it answers N clients at once over HTTP (no browser needed).

    python benchmarks/studio_latency.py [--model avatars64] [--moves 200] [--drag-seconds 5]
    python benchmarks/studio_latency.py --clients 8 [--requests 100]

Three numbers, each over many moves of the Smiling slider (the page records every latency itself,
`window.studio.timings`: performance.now() at the first input not yet sent, to the new image's load):
- one move at a time: move, wait for the image, move again (what a click or a key press feels like);
- dragging: an input event every 16 ms (a 60 Hz drag) for a few seconds; the page keeps one request
  in flight and folds the inputs that arrive meanwhile into the next (so images/s <= inputs/s);
- the engine alone: `Studio.render` + PNG in this process (decode one code, q(y | image)), no HTTP.

Under load (--clients N): N threads, each with its own keep-alive connection, send the request a
slider move sends (POST /api/render, an example image, one or two labels moved) back to back,
`--requests` each, first with one client, then with N at once. Latency is from the request's first
byte to the response's last; p50/p90/p99 over all requests, and requests/s. The model serves one
request at a time (a lock), so N clients share its time: p50 near N times the one-client figure is
fair sharing, a p99 far beyond that would be a client starved. A third run repeats the N clients
with `--stalled` more connections open that sent half a request's headers and stopped (they are
cut after the server's 10 s header deadline).
"""

from __future__ import annotations

import argparse
import http.client
import contextlib
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.studio import (browser_page, edited_version, request, running_studio, slider,  # noqa: E402
                            studio_process, wait_for_new_image, why_no_browser)
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


def percentiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms, max {max(ms):.1f} ms, n {len(ms)}"


def client(port: int, bodies: list[bytes], out: list[float], start: threading.Barrier) -> None:
    """One client: its own keep-alive connection, the bodies one after another, each latency in `out`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start.wait()
    for body in bodies:
        t0 = time.perf_counter()
        conn.request("POST", "/api/render", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"studio_latency: /api/render answered {r.status}")
        out.append(1000 * (time.perf_counter() - t0))
    conn.close()


def load(port: int, clients: int, requests: int, model: dict) -> tuple[list[float], float]:
    """`clients` clients at once, `requests` slider moves each: all latencies (ms) and requests/s."""
    names, ids = [lab["name"] for lab in model["labels"]], [e["id"] for e in model["examples"]]
    moves = [[json.dumps({"image": ids[(c + k) % len(ids)],
                          "moves": {names[k % len(names)]: (k % 20) / 19, names[c % len(names)]: 0.5}}).encode()
              for k in range(requests)] for c in range(clients)]
    outs: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client, args=(port, moves[c], outs[c], start)) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    return [ms for out in outs for ms in out], clients * requests / took


def under_load(model: str, clients: int, requests: int, stalled: int) -> None:
    print(f"machine: {machine()}")
    with studio_process(["-m", model]) as proc:
        described = request(proc.port, "GET", "/api/model").json()
        load(proc.port, 1, 20, described)                                # warm-up
        for n in sorted({1, clients}):
            ms, rate = load(proc.port, n, requests, described)
            print(f"POST /api/render, {n} client{'s' if n > 1 else ''} at once, {requests} each: "
                  f"{percentiles(ms)}; {rate:.0f} requests/s")
        if stalled:
            with contextlib.ExitStack() as stack:
                for _ in range(stalled):
                    s = stack.enter_context(socket.create_connection(("127.0.0.1", proc.port)))
                    s.sendall(b"POST /api/render HTTP/1.1\r\nHost: 127.0")
                ms, rate = load(proc.port, clients, requests, described)
            print(f"POST /api/render, {clients} clients and {stalled} stalled connections, {requests} each: "
                  f"{percentiles(ms)}; {rate:.0f} requests/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="avatars64")
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--drag-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=0, help="HTTP load mode: this many clients at once")
    parser.add_argument("--requests", type=int, default=100, help="slider moves per client (--clients)")
    parser.add_argument("--stalled", type=int, default=8, help="stalled connections in the last run (--clients)")
    args = parser.parse_args()
    if args.clients > 0:
        under_load(args.model, args.clients, args.requests, args.stalled)
        return
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
