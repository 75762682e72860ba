"""`build_report`: every part of the report page gathered from data handed to it (a loaded model,
the card's text, a `ccvae eval` report, faces), and `summary_png`, the one figure of `--png`.

The command (`cli/report.py`) decides which weights, which data and which faces; this module makes
the pictures (`pictures`), reads the run folder (`history`), draws the plots (`plots`) and says,
in a line, what is missing and why (no run folder, no DATA), so that the page shows the rest.

    data = build_report(m, card_text=..., eval_report=None, faces=None)
    html = render_page(data)                      # report/page.py
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ccvae_tools import __version__
from ccvae_tools.evaluation.weak_spots import SELF_READ_KEY, eval_weak_spots
from ccvae_tools.report import pictures, plots
from ccvae_tools.report.history import HISTORY_FILE, History, read_history, read_run_options, run_history_file
from ccvae_tools.report.page import Embedded
from ccvae_tools.training.options import card_options
from ccvae_tools.util.ranges import finite_number


@dataclass
class Plot:
    key: str
    caption: str
    image: Embedded


@dataclass
class ReportData:
    """What the page shows, section by section (`report/page.render_page`)."""

    title: str
    about: list[str]                              # lines under the title: model, data
    glance: list[tuple[str, str]]                 # a few numbers at the top
    curves: list[Plot] = field(default_factory=list)
    curves_note: str = ""                         # why there are none, or what was skipped
    eval_source: str = ""                         # where the numbers come from (or why there are none)
    eval_plots: list[Plot] = field(default_factory=list)
    eval_text: str = ""                           # the tables as `ccvae eval` prints them
    weak_spots: list[str] = field(default_factory=list)
    faces_note: str = ""
    steps: int = 9
    span: float = 2.0
    traversals: list[tuple[str, Embedded]] = field(default_factory=list)
    per_class: int = pictures.PER_CLASS
    samples: list[tuple[str, list[tuple[str, Embedded]]]] = field(default_factory=list)
    swap: Embedded | None = None
    options: dict = field(default_factory=dict)
    options_source: str = ""
    card_text: str = ""
    footer: str = ""
    history: History | None = None                # kept for the summary figure
    faces: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)   # the metrics charted (a fresh eval or the stored one)


PICTURE_QUALITY = 90        # lossy WebP: a sixth of the PNG's bytes for decoded faces, no visible change


def _picture(img) -> Embedded:
    """A decoded picture (PIL) as lossy WebP: 40 labels' strips as PNG would make a page of 8 MB."""
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=PICTURE_QUALITY, method=4)
    return Embedded("image/webp", buf.getvalue(), img.width, img.height)


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _fmt(v: Any, digits: int) -> str | None:
    """A number as the page shows it; None for anything else (the stored metrics come from a file)."""
    if not finite_number(v):
        return None
    return f"{v:,}" if isinstance(v, int) else f"{v:,.{digits}f}"


def _glance(metrics: dict, history: History | None) -> list[tuple[str, str]]:
    """The numbers at the top: the evaluation's (or the stored) means, else the last epoch's."""
    rows = [("mean accuracy", metrics.get("mean_accuracy"), 3),
            ("mean majority baseline", metrics.get("mean_majority_baseline"), 3),
            ("reconstruction L1", metrics.get("recon_l1"), 4), ("bound per image", metrics.get("bound"), 1),
            ("edit success (judge)", _dict(metrics.get("edit")).get("mean_success"), 3),
            ("consistent edit success (judge)", _dict(metrics.get("edit_consistent")).get("mean_success"), 3)]
    if history is not None and len(history):
        rows.insert(0, ("evaluations during training", len(history), 0))
        if not metrics:
            rows += [("last evaluation: bound", history.scalars["bound"][-1], 1),
                     ("last evaluation: reconstruction L1", history.scalars["recon_l1"][-1], 4)]
    shown = [(name, _fmt(v, digits)) for name, v, digits in rows]
    return [(name, v) for name, v in shown if v is not None]


def _curves(history: History | None, weights: Path, found: bool) -> tuple[list[Plot], str]:
    if history is None:
        why = (f"{HISTORY_FILE} beside the weights holds no line that can be read" if found else
               f"the weights are not in a run folder of `ccvae train` (no {HISTORY_FILE} beside {weights.name})")
        return [], f"No training curves: {why}. The rest of the page is about the weights alone."
    drawn = (("curves", f"Training loss and the {history.split} bound and reconstruction per epoch; the mean "
                        f"accuracy over the labels against the mean majority baseline (dashed).",
              plots.png(plots.curves_figure, history)),
             ("accuracy", f"Accuracy of each label on the {history.split} split (q(y|x) at the posterior mean) "
                          f"against its majority baseline (dashed): on the dashed line the model says the majority "
                          f"class and nothing more.", plots.png(plots.accuracy_figure, history)))
    out = [Plot(key, caption, Embedded.png(data)) for key, caption, data in drawn if data is not None]
    notes = [] if out else [f"{HISTORY_FILE} holds no loss, bound, reconstruction or accuracy to plot."]
    if history.skipped:
        notes.append(f"{history.skipped} line(s) of {HISTORY_FILE} could not be read and were skipped.")
    return out, " ".join(notes)


def _eval_part(eval_report: dict | None, stored: dict) -> tuple[dict, str]:
    """The metrics to chart and the sentence saying where they come from."""
    if eval_report is not None:
        mt = eval_report["metrics"]
        return mt, (f"`ccvae eval` on {eval_report.get('data')}: the {mt.get('split')} split, {mt.get('images')} "
                    f"images, seed {mt.get('seed')}.")
    if isinstance(stored.get("accuracy"), dict):
        return stored, (f"Stored in the weights file by {stored.get('source', 'an evaluation')} "
                        f"({stored.get('date', 'no date')}; the {stored.get('split', '?')} split, "
                        f"{stored.get('images', '?')} images). Give DATA to evaluate again.")
    return {}, ("No evaluation: give DATA (`ccvae report RUN DATA`) to run `ccvae eval` on it and chart its "
                "numbers here.")


EVAL_CAPTION = ("Per label: q(y|x) at the posterior mean against the share of the majority class (a label on its "
                "tick is not learnt), and the label read from z_s, which stays near the tick when z_s leaves it to "
                "z_c; edits set to another class and read back, by the model and by an independent judge, with the "
                "leakage to the other labels and the conditional samples that carry the label; the variant "
                "within a class (of generated avatars: the mouth shape, the kind of hat) read from z_c and from z_s, "
                "against chance.")


def _eval_plots(metrics: dict, names: list[str]) -> list[Plot]:
    data = plots.png(plots.eval_figure, metrics, names) if metrics else None
    return [] if data is None else [Plot("eval", EVAL_CAPTION, Embedded.png(data))]


def _weak_spots(metrics: dict, meta: dict, names: list[str]) -> list[str]:
    """`ccvae eval`'s weak-spot lines, of the model's labels only (stored metrics come from a file)."""
    if not metrics:
        return []
    kept = {"accuracy": plots.label_numbers(metrics.get("accuracy"), names),
            "majority_baseline": plots.label_numbers(metrics.get("majority_baseline"), names),
            SELF_READ_KEY: {"success": plots.label_numbers(_dict(metrics.get(SELF_READ_KEY)).get("success"), names)}}
    return eval_weak_spots(kept, meta)


def _options(weights: Path, meta: dict) -> tuple[dict, str]:
    run = read_run_options(weights)
    if run is not None:
        return run, f"options.json of the run folder {weights.parent}: every option as training resolved it."
    train = _dict(_dict(meta.get("ccvae.train")).get("options"))
    shown = {k: train[k] for k in card_options() if k in train}
    if shown:
        return shown, "The training options recorded in the weights file (those the model card shows)."
    return {}, "No options: no readable options.json beside the weights, and the weights file records none."


def build_report(m, *, card_text: str, model_name: str, eval_report: dict | None = None, eval_text: str = "",
                 faces: np.ndarray | None = None, faces_note: str = "", data_name: str | None = None,
                 seed: int = 0, steps: int = 9, span: float = 2.0) -> ReportData:
    """Every part of the page for the loaded model `m` (`model/api.LoadedModel`). `faces`: uint8
    images at the model's size for the traversals and the swap grid (None: the model draws some).
    `eval_report`: what `evaluation/run.run_eval` returned (None: the metrics stored in the weights
    file are charted, if any)."""
    names, weights, meta = m.label_names, Path(m.path), m.meta
    found = run_history_file(weights)
    history = read_history(found, names)
    metrics, source = _eval_part(eval_report, _dict(meta.get("ccvae.metrics")))
    r = ReportData(title=str(meta.get("modelspec.title") or weights.name),
                   about=[f"model: {model_name}"] + ([f"data: {data_name}"] if data_name else []),
                   glance=_glance(metrics, history), eval_source=source, eval_text=eval_text,
                   card_text=card_text, steps=steps, span=span, history=history, metrics=metrics,
                   footer=f"Made by ccvae {__version__} (`ccvae report`). One file: no script, nothing loaded "
                          f"from elsewhere.")
    r.curves, r.curves_note = _curves(history, weights, found is not None)
    r.eval_plots = _eval_plots(metrics, names)
    r.weak_spots = _weak_spots(metrics, meta, names)
    _pictures(r, m, faces, faces_note, seed)
    r.options, r.options_source = _options(weights, meta)
    return r


def _pictures(r: ReportData, m, faces: np.ndarray | None, faces_note: str, seed: int) -> None:
    scale = pictures.tile_scale(m.preprocess.size)
    given = faces is not None and len(faces) > 0
    r.faces = pictures.faces_or_draws(m, faces, pictures.SWAP_FACES, seed)
    r.faces_note = faces_note if given else "The images are drawn by the model itself (no data given)."
    r.traversals = [(name, _picture(img)) for name, img in
                    pictures.traversal_strips(m, r.faces[:pictures.TRAVERSAL_FACES], r.steps, r.span, scale)]
    r.samples = [(name, [(cls, _picture(img)) for cls, img in classes])
                 for name, classes in pictures.class_samples(m, r.per_class, seed, scale)]
    r.swap = _picture(pictures.swap_grid(m, r.faces, scale)) if len(r.faces) >= 2 else None


def summary_png(r: ReportData, m) -> bytes:
    """The one summary figure (`--png`): the curves, each label's accuracy against its majority
    baseline (the evaluation's, else the last epoch's), and one face along every label."""
    names = m.label_names
    accuracy = plots.label_numbers(r.metrics.get("accuracy"), names)
    majority = plots.label_numbers(r.metrics.get("majority_baseline"), names)
    if not accuracy and r.history is not None:
        accuracy = {n: s[-1] for n, s in r.history.accuracy.items() if s and s[-1] is not None}
        majority = {n: s[-1] for n, s in r.history.majority.items() if s and s[-1] is not None}
    sheet = pictures.label_sheet(m, r.faces[0], r.steps, r.span, pictures.tile_scale(m.preprocess.size))
    return plots.png(plots.summary_figure, r.title, r.history, accuracy, majority, sheet, note=r.curves_note) or b""
