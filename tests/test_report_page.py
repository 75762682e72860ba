"""`ccvae report` (issue 27, item 1): one self-contained HTML page about a model. Every section is
there, every image is embedded and decodes, nothing can load from elsewhere, strings from files are
escaped, the curves show each label's accuracy against its majority baseline, a weights file alone
says it has no curves, DATA adds the eval charts, and --png writes one summary figure.

The commands run in this process (`helpers.cli.run_cli`) on the tiny weights file and on a run
folder trained for two epochs on 200 generated avatars (a 3-label, narrow network: seconds)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.cli import assert_one_line, run_cli
from helpers.hostile import plant_names, rewrite_metadata
from helpers.options import opts_for

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.usefixtures("clean_env")
SECTIONS = ("curves", "eval", "traversals", "samples", "swap", "options", "card")
RUN_LABELS = ["Smiling", "Eyeglasses", "Wearing_Hat"]


class Page(HTMLParser):
    """The parts of a page the tests look at: tags, attributes, section ids, text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.texts.append(data)

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())

    def sections(self) -> list[str]:
        return [a["id"] for a in self.all("section")]


def decoded(img: dict) -> Image.Image:
    head, data = img["src"].split(",", 1)
    im = Image.open(io.BytesIO(base64.b64decode(data)))
    im.load()
    assert head == f"data:image/{im.format.lower()};base64", head
    return im


def report(argv: list, capsys) -> tuple[str, str]:
    code, out, err = run_cli(["report", *argv], capsys)
    assert code == 0, err
    return out, err


@pytest.fixture(scope="module")
def tiny_page(tiny, tmp_path_factory) -> Path:
    """The page of the tiny weights file, made once (pytest's capsys is per test: the CLI is called
    directly)."""
    from ccvae_tools.cli import main

    out = tmp_path_factory.mktemp("report") / "tiny.html"
    with _exit_ok():
        main(["report", str(tiny), "-o", str(out), "-q", "--device", "cpu"])
    return out


class _exit_ok:
    """main() returns on success; a SystemExit with a non-zero code fails the fixture."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is SystemExit:
            assert not value.code, value.code
            return True
        return False


@pytest.fixture(scope="module")
def tiny_run(avatar_dir_200, tmp_path_factory) -> Path:
    """A run folder: two epochs (two lines of metrics.jsonl), a narrow network, three labels."""
    from ccvae_tools.training.loop import train

    tmp = tmp_path_factory.mktemp("run")
    return train(opts_for(avatar_dir_200, tmp, epochs=2, preview_every=0, widths="8,8,8", labels=RUN_LABELS))


# ----------------------------------------------------------------------------------------------
# a weights file alone
# ----------------------------------------------------------------------------------------------

def test_every_section_is_there_and_every_image_decodes(tiny_page):
    page = Page(tiny_page.read_text(encoding="utf-8"))
    assert page.sections() == list(SECTIONS)
    images = page.all("img")
    assert len(images) >= 3 + 3 * 2 + 1          # traversals, samples per class, the swap grid
    for img in images:
        im = decoded(img)
        assert im.size == (int(img["width"]), int(img["height"])) or "pixels" in img.get("class", "")
        assert im.width > 0 and im.height > 0
    assert [a["href"] for a in page.all("a")] == [f"#{s}" for s in SECTIONS]
    text = page.text
    for name in ("Smiling", "Eyeglasses", "Blond_Hair"):
        assert text.count(name) >= 3              # its strip, its samples, its line of the card
    assert "Smiling = 0" in text and "Smiling = 1" in text
    assert "tiny test model" in text and "As ccvae info prints it." in text


def test_a_weights_file_alone_says_it_has_no_curves_and_no_evaluation(tiny_page):
    text = Page(tiny_page.read_text(encoding="utf-8")).text
    assert "No training curves: the weights are not in a run folder of ccvae train (no metrics.jsonl " in text
    assert "No evaluation: give DATA" in text
    assert "drawn by the model itself" in text       # no data, no shipped examples: the model draws faces


def test_the_page_is_self_contained(tiny_page):
    html = tiny_page.read_text(encoding="utf-8")
    page = Page(html)
    for tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "action", "data", "poster", "background"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:image/", "#")), (tag, key, value[:80])
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    low = re.sub(r"data:image/[a-z]+;base64,[a-z0-9+/=]+", "", html.lower())   # base64 has slashes
    for needle in ("http:", "https:", "//", "url(", "@import", "javascript:"):
        assert needle not in low, needle
    csp = [a["content"] for a in page.all("meta") if a.get("http-equiv", "").lower() == "content-security-policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"]


def test_the_page_is_deterministic(tiny, tiny_page, tmp_path, capsys):
    again = tmp_path / "again.html"
    report([tiny, "-o", again, "-q"], capsys)
    assert again.read_bytes() == tiny_page.read_bytes()


def test_png_writes_one_valid_summary_figure(tiny, tmp_path, capsys):
    out, err = report([tiny, "-o", tmp_path / "r.html", "--png", tmp_path / "s.png"], capsys)
    assert out.splitlines() == [str(tmp_path / "r.html"), str(tmp_path / "s.png")]
    assert err.strip().splitlines()[-1] == f"model: {tiny}"
    with Image.open(tmp_path / "s.png") as im:
        assert im.format == "PNG" and im.width >= 800 and im.height >= 600
        im.load()


# ----------------------------------------------------------------------------------------------
# a run folder: the curves
# ----------------------------------------------------------------------------------------------

def test_run_folder_curves_show_each_labels_accuracy_and_its_baseline(tiny_run, tmp_path, capsys):
    from ccvae_tools.report.history import read_history
    from ccvae_tools.report.plots import accuracy_figure, curves_figure

    lines = [json.loads(s) for s in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    history = read_history(tiny_run / "metrics.jsonl", RUN_LABELS)
    assert history.epochs == [1.0, 2.0]
    fig = accuracy_figure(history)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == RUN_LABELS
    for ax, name in zip(axes, RUN_LABELS):
        curves = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
        assert curves["accuracy"] == [ln["accuracy"][name] for ln in lines]
        assert curves["majority baseline"] == [ln["majority_baseline"][name] for ln in lines]
        assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--"]
    titles = [ax.get_title() for ax in curves_figure(history).axes]
    assert titles[:3] == ["training loss", "held-out bound L(x, y)", "held-out reconstruction L1"]
    assert [line.get_label() for line in curves_figure(history).axes[3].get_lines()] == [
        "mean accuracy", "mean majority baseline"]

    report([tiny_run, "-o", tmp_path / "run.html", "-q"], capsys)
    page = Page((tmp_path / "run.html").read_text(encoding="utf-8"))
    captions = [img["alt"] for img in page.all("img")]
    assert any(c.startswith("Training loss") for c in captions)
    assert any("against its majority baseline (dashed)" in c for c in captions)
    assert "No training curves" not in page.text and "evaluations during training 2" in page.text
    assert "options.json of the run folder" in page.text and "widths" in page.text   # every option


def test_metrics_jsonl_is_read_robustly(tmp_path):
    from ccvae_tools.report.history import read_history

    lines = [
        json.dumps({"epoch": 1, "train_loss": 5.0, "bound": -9.0, "recon_l1": 0.3,
                    "accuracy": {"A": 0.5, "B": 0.6, "C": 0.9}, "majority_baseline": {"A": 0.5, "B": 0.7}}),
        '{"epoch": 2, "train_loss": 4.0, "bou',                          # cut off by a kill
        "not json at all", "[1, 2, 3]", '{"no_epoch": 1}', '{"epoch": "three"}', "[" * 100_000,
        json.dumps({"epoch": 3, "train_loss": "x", "bound": None, "accuracy": {"A": "0.7", "B": True},
                    "majority_baseline": [0.5]}),
        '{"epoch": 4, "train_loss": NaN, "recon_l1": Infinity, "accuracy": {"A": 1e400}}',
        json.dumps({"epoch": 2, "train_loss": 4.5, "accuracy": {"A": 0.55}}),
        json.dumps({"epoch": 2, "train_loss": 4.25, "accuracy": {"A": 0.6}}),   # a resumed epoch: the last
        "", "   ",
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(lines) + "\n")
    h = read_history(path, ["A", "B"])
    assert h.epochs == [1.0, 2.0, 3.0, 4.0] and h.skipped == 6
    assert h.scalars["train_loss"] == [5.0, 4.25, None, None]
    assert h.scalars["bound"] == [-9.0, None, None, None] and h.scalars["recon_l1"] == [0.3, None, None, None]
    assert h.accuracy == {"A": [0.5, 0.6, None, None], "B": [0.6, None, None, None]}   # C is not a model label
    assert h.majority == {"A": [0.5, None, None, None], "B": [0.7, None, None, None]}
    from ccvae_tools.report.plots import accuracy_figure, curves_figure, png

    for build in (curves_figure, accuracy_figure):
        data = png(build, h)
        assert Image.open(io.BytesIO(data)).format == "PNG"
    path.write_text("garbage\n")
    assert read_history(path, ["A"]) is None
    assert read_history(tmp_path / "missing.jsonl", ["A"]) is None
    assert read_history(tmp_path, ["A"]) is None                                       # a folder


def test_a_run_with_an_unreadable_history_still_gets_its_page(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(tiny.read_bytes())
    (run / "metrics.jsonl").write_text('{"epoch": 1, "bound"\nnot json\n')
    (run / "options.json").write_text("[1, 2]")                     # not an object: no options shown
    report([run, "-o", tmp_path / "r.html", "-q"], capsys)
    text = Page((tmp_path / "r.html").read_text(encoding="utf-8")).text
    assert "No training curves: metrics.jsonl beside the weights holds no line that can be read" in text
    assert "No options: no readable options.json beside the weights, and the weights file records none." in text


# ----------------------------------------------------------------------------------------------
# DATA: the eval charts
# ----------------------------------------------------------------------------------------------

def test_data_gives_the_eval_bar_charts(tiny_run, avatar_dir_200, tmp_path, capsys):
    out = tmp_path / "eval.html"
    report([tiny_run, avatar_dir_200, "-o", out, "--max-images", 12, "--samples", 2, "--judge-epochs", 1,
            "--judge", tmp_path / "judges", "-q"], capsys)
    page = Page(out.read_text(encoding="utf-8"))
    charts = [img for img in page.all("img") if img["alt"].startswith("Per label: q(y|x)")]
    assert len(charts) == 1 and decoded(charts[0]).format == "PNG"
    text = page.text
    assert f"ccvae eval on {avatar_dir_200}: the test split, 12 images, seed 0." in text
    assert "The tables as ccvae eval prints them" in text and "edit success" in text and "majority" in text
    assert "The images are the first 4 of DATA's test split." in text
    assert "mean majority baseline" in text and "edit success (judge)" in text    # at a glance


def test_the_eval_chart_has_every_part_of_eval():
    from ccvae_tools.report.plots import eval_figure

    names = ["A", "B"]
    metrics = {"accuracy": {"A": 0.9, "B": 0.8}, "majority_baseline": {"A": 0.5, "B": 0.6},
               "balanced_accuracy": {"A": 0.85}, "labels_from_style": {"A": 0.5, "B": 0.6},
               "edit_self_read": {"success": {"A": 0.7}}, "edit": {"success": {"A": 0.6}, "leakage": {"A": 0.1}},
               "edit_consistent": {"success": {"B": 0.4}}, "samples": {"carried": {"A": 0.9, "B": 0.95}},
               "capture": {"A": {"z_c": 0.6, "z_s": 0.3, "chance": 0.25}}}
    fig = eval_figure(metrics, names)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["q(y|x): accuracy and the majority baseline (|)",
                                              "edits and samples: success", "characteristic capture: variant read"]
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes]
    assert "majority baseline" in legends[0] and "accuracy" in legends[0]
    assert "edit, read by the judge" in legends[1] and "chance" in legends[2]
    widths = [round(p.get_width(), 3) for p in axes[0].patches]
    assert widths[:2] == [0.9, 0.8]                                  # accuracy bars, in the labels' order
    assert eval_figure({}, names) is None and eval_figure({"accuracy": {"other": 1.0}}, names) is None


# ----------------------------------------------------------------------------------------------
# strings from files
# ----------------------------------------------------------------------------------------------

HOSTILE_NAMES = {0: "<script>alert(1)</script>", 1: '"><img src=//evil.example/x onerror=alert(1)>',
                 2: "$\\frac{x}{$ \x1b]0;pwned\x07 \u202eevil"}
HOSTILE_TEXT = "<iframe src=https://evil.example/></iframe> & [/x] \x1b[2J"


def test_hostile_names_and_metadata_are_escaped(tiny, tmp_path, capsys):
    planted = plant_names(tiny, tmp_path / "planted.safetensors", names=HOSTILE_NAMES,
                          classes={0: ["<b>no</b>", "</style><style>*{display:none}"]}, text=HOSTILE_TEXT)
    metrics = {"accuracy": {HOSTILE_NAMES[0]: "0.9", HOSTILE_NAMES[1]: 0.7, "<not a label>": 0.5},
               "majority_baseline": [1, 2], "edit": "nope", "capture": {HOSTILE_NAMES[1]: {"z_c": None}},
               "source": "<script>x</script>", "date": {"a": 1}, "split": "\x1b[2J"}
    rewrite_metadata(planted, planted, lambda meta: meta.update({"ccvae.metrics": json.dumps(metrics)}))
    out = tmp_path / "hostile.html"
    report([planted, "-o", out, "--png", tmp_path / "hostile.png", "-q"], capsys)
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    assert not page.all("script") and not page.all("iframe") and page.all("style") == [{}]
    for _, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs)
        assert all(attrs.get(k, "data:image/").startswith(("data:image/", "#")) for k in ("src", "href"))
    for raw in ("<script", "<iframe", "<b>no</b>", "</style><style>", "\x1b", "\u202e", "\x07"):
        assert raw not in html, raw
    text = page.text
    assert HOSTILE_NAMES[0] in text and "<b>no</b>" in text          # shown, as text
    assert "\\x1b]0;pwned\\x07" in text and "\\u202eevil" in text    # control and bidi characters shown escaped
    assert "<iframe src=https://evil.example/></iframe> & [/x] \\x1b[2J" in text
    assert "the card cannot be shown" in text                         # a string where a number belongs
    assert [img["alt"] for img in page.all("img")][0].startswith("Per label")   # the one stored number charted
    with Image.open(tmp_path / "hostile.png") as im:
        assert im.format == "PNG"


# ----------------------------------------------------------------------------------------------
# the command's arguments and outputs, and the extra
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle, code", [
    (["{tiny}", "-o", "{tmp}/nowhere/r.html"], "does not exist", 1),
    (["{tiny}", "-o", "{tmp}/r.html", "--png", "{tmp}/s.jpg"], "give a .png name", 2),
    (["{tiny}", "-o", "{tmp}/r.png", "--png", "{tmp}/r.png"], "-o and --png both name", 2),
    (["{tiny}", "-o", "{tiny}"], "is one of the inputs", 2),
    (["-m", "{tiny}", "{tmp}/data", "{tmp}/more", "-o", "{tmp}/r.html"], "give at most DATA", 2),
    (["{tiny}", "{tmp}/data", "{tmp}/more", "-o", "{tmp}/r.html"], "at most DATA, not 3 arguments", 2),
    (["{tiny}", "{tmp}/nodata", "-o", "{tmp}/r.html"], "nodata", 1),
    (["{tiny}", "{tmp}/nodata", "--split", "dev", "-o", "{tmp}/r.html"], "--split 'dev'", 2),
    (["{tmp}/missing.safetensors", "-o", "{tmp}/r.html"], "no such weights file (from RUN|WEIGHTS)", 1),
])
def test_bad_arguments_are_one_line_before_any_work(tiny, tmp_path, capsys, argv, needle, code):
    args = [a.format(tiny=tiny, tmp=tmp_path) for a in argv]
    got, out, err = run_cli(["report", *args], capsys)
    assert_one_line(got, err, (code,), needle)
    assert out == "" and list(tmp_path.iterdir()) == []


def test_with_model_the_one_argument_is_data(tiny, tmp_path, capsys):
    got, _, err = run_cli(["report", "-m", tiny, tmp_path / "nodata", "-o", tmp_path / "r.html"], capsys)
    assert_one_line(got, err, (1,), "nodata")
    report(["-m", tiny, "-o", tmp_path / "r.html", "-q"], capsys)
    assert (tmp_path / "r.html").is_file()


def test_without_matplotlib_one_line_names_the_extra(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # `import matplotlib` raises ImportError
    code, out, err = run_cli(["report", tiny, "-o", tmp_path / "r.html"], capsys)
    assert_one_line(code, err, (1,), "matplotlib", "pip install 'ccvae-tools[report]'")
    assert not (tmp_path / "r.html").exists()


def test_help_has_examples(capsys):
    code, out, _ = run_cli(["report", "--help"], capsys)
    assert code == 0 and "Examples:" in out and "ccvae report avatars64" in out and "--png" in out


def test_the_pictures_are_the_commands_pictures(tiny):
    """The strips and the swap grid lay out what `ccvae traverse` and `ccvae swap --grid` draw."""
    from ccvae_tools.model.api import load
    from ccvae_tools.report import pictures

    m = load(tiny)
    faces = pictures.faces_or_draws(m, None, 2, seed=0)
    assert faces.shape == (2, 3, 32, 32) and faces.dtype == np.uint8
    assert np.array_equal(faces, pictures.faces_or_draws(m, None, 2, seed=0))      # seeded
    (name, strip), *_ = pictures.traversal_strips(m, faces, steps=5, scale=1)
    assert name == "Smiling" and strip.size == (7 * 32 + 8 * 2, 2 * 32 + 3 * 2)    # face, recon, 5 steps
    assert pictures.swap_grid(m, faces).size == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)
    samples = pictures.class_samples(m, per_class=3, seed=1)
    assert [(n, [c for c, _ in classes]) for n, classes in samples] == [
        ("Smiling", ["0", "1"]), ("Eyeglasses", ["0", "1"]), ("Blond_Hair", ["0", "1"])]
    assert pictures.tile_scale(32) == 2 and pictures.tile_scale(64) == 1 and pictures.tile_scale(20) == 4
