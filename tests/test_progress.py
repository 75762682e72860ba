"""The training progress line: its rate and eta stay finite and sensible after a stall."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ccvae_tools.training import progress


class _Lines:
    def __init__(self):
        self.lines: list[str] = []

    def print(self, text: str) -> None:
        self.lines.append(text)


def _log(monkeypatch, clock: list[float]):
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = _Lines()
    monkeypatch.setattr(progress, "err", out)
    log = progress.ProgressLog(SimpleNamespace(batch_size=10, epochs=2), enabled=True)
    log.tty, log.bar = False, None
    log.start_epoch(0, 100, 0)
    return log, out


def _steps(log, clock: list[float], times) -> None:
    """One step of 10 images at each time."""
    terms = SimpleNamespace(log_px=torch.zeros(1))
    for t in times:
        clock[0] = float(t)
        log.step(10, 1.0, terms)


def test_rate_is_images_per_second_over_the_window(monkeypatch):
    clock = [0.0]
    log, _ = _log(monkeypatch, clock)
    _steps(log, clock, range(6))
    assert log.rate() == 10.0


def test_after_a_stall_the_eta_is_finite(monkeypatch):
    """A 100 s pause (a held-out pass, a suspended process) once gave 0 img/s and an eta of 10^12 min."""
    clock = [0.0]
    log, out = _log(monkeypatch, clock)
    _steps(log, clock, [0, 1, 2, 102])
    assert 0 < log.rate() <= 10.0
    eta = out.lines[-1].split("eta ")[1]
    assert eta.endswith(" min") and float(eta.split()[0]) < 1e4, out.lines[-1]
