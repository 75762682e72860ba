"""Training progress on stderr: a rich bar on a terminal, a line every 30 s otherwise (log files)."""

from __future__ import annotations

import sys
import time

import numpy as np

from ccvae_tools.util.console import err


class ProgressLog:
    """Progress on stderr: a rich bar on a terminal, a line every 30 s otherwise (for log files)."""

    def __init__(self, opts, enabled: bool):
        self.opts = opts
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.t0 = time.monotonic()
        self.last_log = self.t0
        self.images = 0
        self.losses: list[float] = []
        self.epoch = 0
        self.n_steps = 0
        self.done = 0
        self.window: list[tuple[float, int]] = []

    def start_epoch(self, epoch: int, n_steps: int, done: int) -> None:
        self.epoch, self.n_steps, self.done = epoch, n_steps, done
        self.losses = []
        if self.enabled and self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self.bar is None:
                self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                    TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                                    TextColumn("{task.fields[stats]}"), console=err)
                self.bar.start()
                self.task = self.bar.add_task("", total=n_steps, stats="")
            self.bar.update(self.task, description=f"epoch {epoch + 1}/{self.opts.epochs}",
                            total=n_steps, completed=done)

    def step(self, n: int, loss: float, terms) -> None:
        now = time.monotonic()
        self.images += n
        self.done += 1
        self.losses.append(loss)
        self.window.append((now, n))
        # the last 20 s, but never fewer than two steps: after a stall (a held-out pass, a suspended
        # process) the rate is then that of the last step, not 0 with an eta of a trillion minutes
        recent = [(t, k) for t, k in self.window if now - t < 20.0]
        self.window = self.window[-2:] if len(recent) < 2 else recent
        if not self.enabled:
            return
        stats = f"{self.rate():,.0f} img/s  loss {loss:,.1f}  log p(x|z) {float(terms.log_px.detach().mean()):,.1f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, stats=stats)
        elif now - self.last_log > 30:
            self.last_log = now
            remaining = (self.n_steps - self.done) + (self.opts.epochs - self.epoch - 1) * self.n_steps
            rate = self.rate()
            eta = f"{remaining * self.opts.batch_size / rate / 60:.1f} min" if rate > 0 else "?"
            err.print(f"epoch {self.epoch + 1}/{self.opts.epochs} step {self.done}/{self.n_steps} "
                      f"{stats}  eta {eta}")

    def rate(self) -> float:
        if len(self.window) < 2:
            return 0.0
        span = self.window[-1][0] - self.window[0][0]
        return sum(k for _, k in self.window[1:]) / span if span > 0 else 0.0

    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else float("nan")

    def eval_line(self, epoch: int, m: dict) -> None:
        if not self.enabled:
            return
        msg = (f"epoch {epoch}: valid bound {m['bound']:,.1f}, L1 {m['recon_l1']:.4f}, mean accuracy "
               f"{m.get('mean_accuracy', float('nan')):.3f} (majority {m.get('mean_majority_baseline', float('nan')):.3f}, "
               f"balanced {m.get('mean_balanced_accuracy', float('nan')):.3f})")
        if self.bar is not None:
            self.bar.console.print(msg)
        else:
            err.print(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
