"""The report's plots, drawn with matplotlib (the `report` extra) as PNG bytes: the training curves,
the per-label held-out accuracy against its majority baseline, the numbers of `ccvae eval` as bar
charts, and the one summary figure of `ccvae report --png`.

Figures are `matplotlib.figure.Figure` objects drawn by the Agg canvas, never through pyplot: no
window, no global backend switched, nothing left open. They are drawn under matplotlib's default
style (`_style`), so that a user's matplotlibrc (text.usetex, a dark theme) changes no report, and
saved without the Software tag, so that the same numbers give the same bytes. Every string from a
file (label names, titles) goes through `plain`: made safe, short, and with `$` escaped, which
would otherwise start mathtext (a label named `$\\frac` would fail the drawing).

    fig = accuracy_figure(history)          # a Figure (inspect its axes), or None without data
    data = png(accuracy_figure, history)    # PNG bytes, drawn under the default style
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from typing import Any, Callable, Iterator

from ccvae_tools.evaluation.weak_spots import SELF_READ_KEY
from ccvae_tools.report.history import SCALARS, History
from ccvae_tools.util.errors import CcvaeError
from ccvae_tools.util.ranges import finite_number
from ccvae_tools.util.text import safe_text

EXTRA_HINT = "pip install 'ccvae-tools[report]'"
DPI = 100
ACCURACY, BASELINE, OTHER = "#1f6fb4", "#555555", ("#1f6fb4", "#f0a030", "#50a050", "#c04040", "#8060b0")


def require_matplotlib() -> None:
    """matplotlib, or one line naming the extra that installs it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CcvaeError(f"ccvae report draws its plots with matplotlib, which is not installed: "
                         f"{EXTRA_HINT}") from None


def plain(text: Any, max_len: int = 40) -> str:
    """A string from a file as plot text: terminal-safe (no control or bidi characters), at most
    `max_len` characters, `$` escaped so that it is never mathtext."""
    return safe_text(text, max_len).replace("$", r"\$")


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.spines.top": False,
                                    "axes.spines.right": False})
        yield


def png(build: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes | None:
    """`build(*args, **kwargs)`'s figure as PNG bytes (None when it drew nothing), built and drawn
    under the default style."""
    with _style():
        fig = build(*args, **kwargs)
        if fig is None:
            return None
        buf = io.BytesIO()
        with warnings.catch_warnings():
            # a label name in a script the font lacks is drawn with boxes, not a warning per glyph
            warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
            fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        return buf.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _line(ax, x: list[float], y: list[float | None], **style: Any) -> None:
    """A curve with gaps where a value is missing; markers when there are few points (one
    evaluation would otherwise draw nothing)."""
    ys = [math.nan if v is None else v for v in y]
    ax.plot(x, ys, marker="o" if len(x) <= 30 else None, markersize=3, **style)


# ----------------------------------------------------------------------------------------------
# training curves (metrics.jsonl)
# ----------------------------------------------------------------------------------------------

def _mean_series(per_label: dict[str, list[float | None]], n: int) -> list[float | None]:
    out: list[float | None] = []
    for j in range(n):
        vals = [s[j] for s in per_label.values() if s[j] is not None]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


def curves_figure(history: History | None):
    """Loss, bound and reconstruction against the epoch, and the mean accuracy over the labels
    against the mean majority baseline; None without a usable history."""
    if history is None or not len(history):
        return None
    panels = [(title, history.scalars[key]) for key, title in SCALARS if history.has(history.scalars.get(key, []))]
    acc = _mean_series(history.accuracy, len(history))
    base = _mean_series(history.majority, len(history))
    if not panels and not history.has(acc):
        return None
    fig = _figure(3.1 * (len(panels) + 1), 2.6)
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    for ax, (title, ys) in zip(axes, panels):
        _line(ax, history.epochs, ys, color=ACCURACY)
        ax.set_title(title)
        ax.set_xlabel("epoch")
    ax = axes[-1]
    _line(ax, history.epochs, acc, color=ACCURACY, label="mean accuracy")
    _line(ax, history.epochs, base, color=BASELINE, linestyle="--", label="mean majority baseline")
    ax.set_title(f"{plain(history.split)} accuracy, mean over labels")
    ax.set_xlabel("epoch")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def accuracy_figure(history: History | None, columns: int = 4):
    """One small plot per label: its held-out accuracy and its majority baseline (dashed) against
    the epoch. Above the dashed line, the label is learnt; on it, the model says the majority class."""
    if history is None or not len(history):
        return None
    names = [n for n, s in history.accuracy.items() if history.has(s)]
    if not names:
        return None
    cols = min(columns, len(names))
    rows = -(-len(names) // cols)
    fig = _figure(2.6 * cols, 1.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_axis_off()
            continue
        name = names[k]
        _line(ax, history.epochs, history.accuracy[name], color=ACCURACY, label="accuracy")
        _line(ax, history.epochs, history.majority.get(name, []) or [None] * len(history), color=BASELINE,
              linestyle="--", label="majority baseline")
        ax.set_title(plain(name))
        ax.set_ylim(-0.02, 1.02)
        if k == 0:
            ax.legend(loc="lower right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    return fig


# ----------------------------------------------------------------------------------------------
# the numbers of `ccvae eval` as bar charts
# ----------------------------------------------------------------------------------------------

def label_numbers(value: Any, names: list[str]) -> dict[str, float]:
    """{label: finite number} of a per-label block of the metrics, the model's labels only (the
    block may come from a file: anything else in it is left out)."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for n in names:
        v = value.get(n)
        if finite_number(v):
            out[n] = float(v)
    return out


def _at(metrics: dict, *keys: str) -> Any:
    for k in keys:
        metrics = metrics.get(k) if isinstance(metrics, dict) else None
    return metrics


def _capture(metrics: dict, key: str, names: list[str]) -> dict[str, float]:
    block = _at(metrics, "capture")
    per = {n: _at(block, n, key) for n in names} if isinstance(block, dict) else {}
    return label_numbers(per, names)


def eval_panels(metrics: dict, names: list[str]) -> list[tuple[str, list[tuple[str, dict]], list[tuple[str, dict]]]]:
    """The panels of a `ccvae eval` metrics block: (title, bar series, marks), each series and mark
    (legend, {label: value}); those without any value are left out by `eval_figure`."""
    return [
        ("q(y|x): accuracy and the majority baseline (|)",
         [("accuracy", label_numbers(_at(metrics, "accuracy"), names)),
          ("balanced accuracy", label_numbers(_at(metrics, "balanced_accuracy"), names)),
          ("read from z_s (linear probe)", label_numbers(_at(metrics, "labels_from_style"), names))],
         [("majority baseline", label_numbers(_at(metrics, "majority_baseline"), names))]),
        ("edits and samples: success",
         [("edit, read by the model itself", label_numbers(_at(metrics, SELF_READ_KEY, "success"), names)),
          ("edit, read by the judge", label_numbers(_at(metrics, "edit", "success"), names)),
          ("consistent edit, judge", label_numbers(_at(metrics, "edit_consistent", "success"), names)),
          ("leakage to other labels, judge", label_numbers(_at(metrics, "edit", "leakage"), names)),
          ("samples carrying the label, judge", label_numbers(_at(metrics, "samples", "carried"), names))], []),
        ("characteristic capture: variant read",
         [("from z_c", _capture(metrics, "z_c", names)), ("from z_s", _capture(metrics, "z_s", names))],
         [("chance", _capture(metrics, "chance", names))]),
    ]


def eval_figure(metrics: dict, names: list[str]):
    """The numbers of `ccvae eval` per label, side by side in panels sharing the label axis (the
    model's order, top down), values in [0, 1]: grouped bars, and baselines as black ticks. None
    when the metrics hold none of them."""
    panels = [(t, [(k, v) for k, v in series if v], [(k, v) for k, v in marks if v])
              for t, series, marks in eval_panels(metrics, names)]
    panels = [p for p in panels if p[1]]
    rows = [n for n in names if any(n in v for _, series, _ in panels for _, v in series)]
    if not rows:
        return None
    fig = _figure(3.9 * len(panels) + 1.4, 1.3 + 0.36 * len(rows))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (title, series, marks) in zip(axes, panels):
        _bars(ax, rows, series, marks)
        ax.set_title(title)
    axes[0].set_yticks(range(len(rows)), [plain(n, 28) for n in rows])
    axes[0].invert_yaxis()
    return fig


def _bars(ax, rows: list[str], series: list[tuple[str, dict]], marks: list[tuple[str, dict]]) -> None:
    per = 0.8 / len(series)
    for s, (legend, values) in enumerate(series):
        ys = [r + (s - (len(series) - 1) / 2) * per for r in range(len(rows))]
        ax.barh(ys, [values.get(n, math.nan) for n in rows], height=per, color=OTHER[s % len(OTHER)],
                label=plain(legend, 60))
    for legend, values in marks:
        ys = [r for r, n in enumerate(rows) if n in values]
        ax.scatter([values[rows[r]] for r in ys], ys, marker="|", s=180, color="black", linewidths=1.5,
                   label=plain(legend, 60), zorder=3)
    ax.set_xlim(0, 1)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    # below the tick labels: a fixed 0.3 inch, as a fraction of the axes' height
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3 / max(1.0, 0.36 * len(rows))), ncol=1,
              fontsize=7, frameon=False)


# ----------------------------------------------------------------------------------------------
# the summary figure (--png)
# ----------------------------------------------------------------------------------------------

def summary_figure(title: str, history: History | None, accuracy: dict, majority: dict, sheet: Any,
                   note: str = ""):
    """One figure: the curves (or a line saying there are none), each label's accuracy against its
    majority baseline, and one face's walk along every label (`sheet`, a PIL image)."""
    import numpy as np

    fig = _figure(13, 9.5)
    fig.suptitle(plain(title, 100), fontsize=12)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.4])
    _summary_curves(top, history, note)
    left, right = bottom.subfigures(1, 2, width_ratios=[1, 1.5])
    names = [n for n in accuracy]
    ax = left.subplots()
    if names:
        ax.barh(range(len(names)), [accuracy[n] for n in names], color=ACCURACY, label="accuracy")
        marked = [r for r, n in enumerate(names) if n in majority]
        ax.scatter([majority[names[r]] for r in marked], marked, marker="|", s=160, color="black",
                   label="majority baseline", zorder=3)
        ax.set_yticks(range(len(names)), [plain(n, 24) for n in names])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.legend(loc="lower left", fontsize=7)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no held-out accuracy recorded", ha="center", va="center")
    ax.set_title("held-out accuracy per label")
    ax = right.subplots()
    ax.imshow(np.asarray(sheet))
    ax.set_axis_off()
    ax.set_title("one face along every label's traversal")
    return fig


def _summary_curves(sub, history: History | None, note: str) -> None:
    panels = [] if history is None else [(t, history.scalars[k]) for k, t in SCALARS
                                         if history.has(history.scalars.get(k, []))]
    if not panels:
        ax = sub.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, plain(note or "no training curves", 200), ha="center", va="center")
        return
    acc, base = _mean_series(history.accuracy, len(history)), _mean_series(history.majority, len(history))
    axes = sub.subplots(1, len(panels) + 1, squeeze=False)[0]
    for ax, (t, ys) in zip(axes, panels):
        _line(ax, history.epochs, ys, color=ACCURACY)
        ax.set_title(t)
    _line(axes[-1], history.epochs, acc, color=ACCURACY, label="mean accuracy")
    _line(axes[-1], history.epochs, base, color=BASELINE, linestyle="--", label="mean majority")
    axes[-1].set_title("mean accuracy")
    axes[-1].legend(loc="lower right", fontsize=7)
