"""Strings from files never reach the terminal raw: the one sanitiser (util/text.py) and every place
that prints a label, class, title, CSV header or cell, or file name (issue 12, item 1).

Weights files carrying hostile names are made by rewriting a tiny model's header (helpers/hostile.py);
the commands run in this process (helpers/cli.py). JSON on stdout is data: names stay exact there,
only \\u-escaped.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from ccvae_tools.util import console as console_mod
from ccvae_tools.util.errors import CcvaeError, UsageError, message
from ccvae_tools.util.text import is_unsafe, safe_json, safe_markup, safe_text
from helpers.cli import run_cli
from helpers.hostile import HOSTILE, plant_names, unsafe_chars

IDS = list(HOSTILE)
# where each hostile string goes: label 0's name, label 1's second class, title, data name, licence
LABELS = ["Smiling", "Eyeglasses", "Blond_Hair"]


pytestmark = pytest.mark.usefixtures("clean_env")      # fixtures in conftest.py: clean_env, tiny, face


@pytest.fixture(scope="module")
def planted(tiny, tmp_path_factory):
    """hostile id -> a weights file carrying that string as a label name, a class name and its texts."""
    d = tmp_path_factory.mktemp("planted")
    cache: dict[str, Path] = {}

    def get(key: str) -> Path:
        if key not in cache:
            cache[key] = plant_names(tiny, d / f"{key}.safetensors", names={0: HOSTILE[key]},
                                     classes={1: ["0", HOSTILE[key]]}, text=HOSTILE[key])
        return cache[key]
    return get


def assert_clean(*streams: str, internal: bool = False) -> None:
    """Nothing a terminal acts on, no rich markup crash, no internal error (unless `internal`)."""
    for s in streams:
        assert not unsafe_chars(s), (unsafe_chars(s), s)
        assert "MarkupError" not in s and (internal or "internal error" not in s), s


# ----------------------------------------------------------------------------------------------
# the sanitiser itself
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("\x1b", "\\x1b"), ("\x07", "\\x07"), ("\x00", "\\x00"), ("\x7f", "\\x7f"), ("\x9b", "\\x9b"),
    ("\x85", "\\x85"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\u2028", "\\u2028"),
    ("\u202a", "\\u202a"), ("\u202b", "\\u202b"), ("\u202c", "\\u202c"), ("\u202d", "\\u202d"),
    ("\u202e", "\\u202e"), ("\u2066", "\\u2066"), ("\u2067", "\\u2067"), ("\u2068", "\\u2068"),
    ("\u2069", "\\u2069"), ("\u200f", "\\u200f"), ("\udcff", "\\udcff"), ("\U000e0001", "\\U000e0001"),
])
def test_unsafe_characters_are_shown_escaped(raw, shown):
    assert safe_text(f"a{raw}b") == f"a{shown}b"
    assert safe_text(f"a{raw}b", drop=True) == "ab"
    assert is_unsafe(raw)


@pytest.mark.parametrize("text", ["Blond_Hair", "L\u00e4cheln", "\u7b11\u9854", "thumbs \U0001f44d",
                                  "a\u200db", "C:\\data\\x.png", "[/x]", "100% of 2"])
def test_safe_strings_are_kept(text):
    assert safe_text(text) == text


@pytest.mark.parametrize("key", IDS)
def test_sanitiser_leaves_nothing_a_terminal_acts_on(key):
    shown = safe_text(HOSTILE[key])
    assert not unsafe_chars(shown, allow="")
    assert safe_text(shown) == shown                         # idempotent: safe twice is safe once
    assert not unsafe_chars(safe_text(HOSTILE[key], drop=True), allow="")


@pytest.mark.parametrize("key", IDS)
def test_markup_escaped_prints_literally(key):
    buf = io.StringIO()              # emoji off, as on the package's consoles (":warning:" stays text)
    Console(file=buf, width=1000, color_system=None, emoji=False).print(f"[bold]{safe_markup(HOSTILE[key])}[/bold]")
    assert buf.getvalue().rstrip("\n") == safe_text(HOSTILE[key])


@pytest.mark.parametrize("max_len", [1, 2, 5, 8, 30])
def test_max_len_bounds_and_never_cuts_an_escape(max_len):
    text = "ab\x1b[2Jcd\u202eef" * 3
    shown = safe_text(text, max_len=max_len)
    assert len(shown) <= max_len and shown.endswith("\u2026")
    assert safe_text(text).startswith(shown[:-1])           # a prefix of the whole escaped text
    assert not shown[:-1].endswith(("\\", "\\x", "\\x1", "\\u", "\\u2", "\\u20", "\\u202"))


@pytest.mark.parametrize("key", IDS)
def test_json_stays_exact_and_escaped(key):
    obj = {"name": HOSTILE[key], HOSTILE[key]: [HOSTILE[key]]}
    dumped = safe_json(json.dumps(obj, ensure_ascii=False))
    assert json.loads(dumped) == obj
    assert not unsafe_chars(dumped, allow="")


def test_json_astral_format_characters_are_utf16_pairs():
    dumped = safe_json(json.dumps({"t": "\U000e0041x"}, ensure_ascii=False))
    assert "\\udb40\\udc41" in dumped and json.loads(dumped) == {"t": "\U000e0041x"}


def test_error_messages_are_one_safe_line():
    e = UsageError("unknown label '\x1b]0;pwned\x07'\nsecond line \u202e")
    assert message(e) == "unknown label '\\x1b]0;pwned\\x07'\\nsecond line \\u202e"


def test_fonts_clean_text_is_the_shared_sanitiser():
    from ccvae_tools.data.fonts import clean_text

    assert clean_text("  Evil\x1b]0;t\x07 \u202eFont\n") == "Evil]0;t Font"
    assert len(clean_text("x" * 500)) == 200


# ----------------------------------------------------------------------------------------------
# the commands
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", IDS)
def test_info_card_is_clean(planted, key, capsys):
    code, out, err = run_cli(["info", planted(key)], capsys)
    assert code == 0, err
    assert_clean(out, err)
    shown = safe_text(HOSTILE[key])
    assert out.splitlines()[0] == shown                       # the title
    assert f"    {shown}" in out and f"0/{shown}" in out       # label 0's name, label 1's class


@pytest.mark.parametrize("key", IDS)
def test_info_json_keeps_the_exact_names(planted, key, capsys):
    code, out, err = run_cli(["info", planted(key), "--json"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    card = json.loads(out)
    assert card["labels"][0]["name"] == HOSTILE[key] and card["title"] == HOSTILE[key]
    assert card["labels"][1]["classes"] == ["0", HOSTILE[key]] and card["data"]["name"] == HOSTILE[key]


@pytest.mark.parametrize("key", IDS)
def test_labels_prints_safe_names(planted, key, capsys):
    code, out, err = run_cli(["labels", "-m", planted(key)], capsys)
    assert code == 0, err
    assert_clean(out, err)
    assert out.splitlines() == [safe_text(HOSTILE[key]), *LABELS[1:]]


@pytest.mark.parametrize("key", ["osc_title", "clear", "c1_csi", "rlo", "markup_close", "markup_link", "newline"])
def test_unknown_label_error_lists_safe_names(planted, face, key, capsys):
    code, out, err = run_cli(["traverse", face, "-m", planted(key), "--label", "nope\x1b[2J"], capsys)
    assert code == 2
    assert_clean(out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccvae: error: unknown label")
    assert safe_text(HOSTILE[key]) in lines[0] and "nope\\x1b[2J" in lines[0]


@pytest.mark.parametrize("key", ["osc_title", "osc8_link", "c1_csi", "rlo", "isolates", "markup_close",
                                 "markup_link", "markup_style", "emoji_code", "newline", "long"])
def test_classify_table_and_json(planted, face, key, capsys):
    code, out, err = run_cli(["classify", "-m", planted(key), face, "--mean"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    assert f"P({safe_text(HOSTILE[key])})" in out.replace("\n", "") or key == "long"
    code, out, err = run_cli(["classify", "-m", planted(key), face, "--mean", "--json"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    row = json.loads(out)
    assert set(row["probabilities"]) == {HOSTILE[key], *LABELS[1:]}
    assert row["predicted"]["Eyeglasses"] in ("0", HOSTILE[key])


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory) -> Path:
    """A 3-class label whose classes are hostile (the classify table shows the predicted class)."""
    import torch

    from ccvae_tools.data.base import Label, Preprocess
    from ccvae_tools.model.network import CCVAE, ModelConfig
    from ccvae_tools.model.weights import build_metadata, save_model

    torch.manual_seed(0)
    classes = (HOSTILE["markup_close"], HOSTILE["osc_title"], HOSTILE["markup_link"])
    cfg = ModelConfig(image_size=32, channels=3, labels=[Label("kind", classes)], z_style=4,
                      widths=(8, 8, 8), hidden=16)
    m = CCVAE(cfg)
    with torch.no_grad():
        m.prior_loc.zero_()          # all classes alike: the table may show any of them
    meta = build_metadata(m, Preprocess(32, 3, "center", None))
    return save_model(m, tmp_path_factory.mktemp("mc") / "mc.safetensors", meta)


def test_classify_multiclass_table_shows_class_names_literally(multiclass, face, capsys):
    code, out, err = run_cli(["classify", "-m", multiclass, face, "--mean"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    row = [line for line in out.splitlines() if "face.png" in line][0]
    assert any(safe_text(c) in row for c in ("[/x]", "\x1b]0;pwned\x07", "[link=http://e]x[/link]"))
    code, out, err = run_cli(["info", multiclass], capsys)
    assert code == 0 and "classes [/x]/\\x1b]0;pwned\\x07/[link=http://e]x[/link]" in out


def test_odd_file_names_in_the_classify_table(tiny, face, tmp_path, capsys):
    # (a file name cannot hold "/", so no closing markup tag here: the CSV test has those)
    names = ["a\x1b[2J.png", "b[bold]x.png", "c\u202egnp.png", "d\udcff.png", "e[link=e]x.png", "f\x9b1m.png"]
    paths = []
    for name in names:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(face.read_bytes())
    code, out, err = run_cli(["classify", "-m", tiny, *paths, "--mean"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    for p in paths:
        assert safe_text(p) in out
    code, out, err = run_cli(["classify", "-m", tiny, *paths, "--mean", "--json"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    assert [json.loads(line)["input"] for line in out.splitlines()] == [str(p) for p in paths]


@pytest.mark.parametrize("key", ["osc_title", "c1_csi", "markup_style", "rlo", "newline"])
def test_printed_output_paths_are_safe(tiny, face, tmp_path, key, capsys):
    """The path a command prints (its default name) quotes the input's own name."""
    src = tmp_path / f"in{HOSTILE[key]}.png"
    src.write_bytes(face.read_bytes())
    code, out, err = run_cli(["edit", src, "--set", "smiling=1", "-m", tiny], capsys)
    assert code == 0, err
    assert_clean(out, err)
    assert out.strip() == safe_text(src.with_name(src.stem + ".edit.png"))


# ----------------------------------------------------------------------------------------------
# messages, warnings, errors, reports
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [CcvaeError, UsageError, ValueError])
def test_errors_print_as_one_safe_line(tiny, monkeypatch, capsys, exc):
    from ccvae_tools.cli import io as cli_io

    def boom(*a, **k):
        raise exc("bad \x1b]0;pwned\x07 [/x]\nnext")
    monkeypatch.setattr(cli_io, "read_model_metadata", boom)
    code, out, err = run_cli(["labels", "-m", tiny], capsys)
    assert code in (1, 2)
    assert_clean(out, err, internal=exc is ValueError)
    assert len(err.strip().splitlines()) == 1 and "bad \\x1b]0;pwned\\x07 [/x]\\nnext" in err


@pytest.mark.parametrize("terminal", [False, True])
def test_console_messages_and_warnings(monkeypatch, terminal):
    buf = io.StringIO()
    monkeypatch.setattr(console_mod, "err", Console(file=buf, force_terminal=terminal, color_system=None,
                                                    width=1000, highlight=False, emoji=False))
    text = "x [/x] [link=http://e]y[/link] \x1b[2J :warning: \u202e"
    console_mod.info(text)
    console_mod.warn(text)
    lines = buf.getvalue().splitlines()
    assert_clean(buf.getvalue())
    assert lines == [safe_text(text), "warning: " + safe_text(text)]


def test_input_warnings_name_files_safely(tiny, tmp_path, capsys):
    src = tmp_path / "tiny\x1b]0;t\x07[bold]x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)         # upscaled 4x: a warning
    code, out, err = run_cli(["classify", "-m", tiny, src, "--mean"], capsys)
    assert code == 0, err
    assert_clean(out, err)
    assert f"warning: {safe_text(src)}: 8x8 px is upscaled" in err


@pytest.fixture(scope="module")
def hostile_csv(tmp_path_factory) -> Path:
    """A folder + CSV data set whose headers, cells and file names are hostile."""
    d = tmp_path_factory.mktemp("csv")
    (d / "photos").mkdir()
    rng = np.random.default_rng(0)
    files = ["a.png", "[bold]b.png", "c\x1b[2J.png", "d\u202egnp.png"]
    for f in files:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / "photos" / f)
    (d / "photos" / "e\x1b]0;x\x07.png").write_bytes(b"not an image")
    kinds = ["[link=http://e]x[/link]", "\u202eyes", "[/x]", "plain", "plain"]
    rows = ["image,[/x],\x1b]0;pwned\x07,kind"]
    for i, f in enumerate(files + ["e\x1b]0;x\x07.png", "gone\x1b[2J[/x].png"]):
        rows.append(f"{f},{i % 2},{(i + 1) % 2},{kinds[i % len(kinds)]}")
    (d / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return d


def test_data_check_report_is_clean(hostile_csv, capsys):
    code, out, err = run_cli(["data", "check", hostile_csv / "labels.csv", "--images", hostile_csv / "photos"],
                             capsys)
    assert code == 0, err
    assert_clean(out, err)
    for shown in ("[/x]", "\\x1b]0;pwned\\x07", "missing: gone\\x1b[2J[/x].png", "e\\x1b]0;x\\x07.png: "):
        assert shown in err, shown
    code, out, err = run_cli(["data", "check", hostile_csv / "labels.csv", "--images", hostile_csv / "photos",
                              "--json"], capsys)
    assert code == 0
    assert_clean(out)
    report = json.loads(out)
    assert [lab["name"] for lab in report["labels"]] == ["[/x]", "\x1b]0;pwned\x07", "kind"]
    assert report["files"]["missing_examples"] == ["gone\x1b[2J[/x].png"]


def test_data_error_naming_a_csv_column_is_clean(hostile_csv, capsys):
    code, out, err = run_cli(["data", "check", hostile_csv / "labels.csv", "--images", hostile_csv / "photos",
                              "--labels", "\x1b]0;pwned\x07,nope[/x]"], capsys)
    assert code in (1, 2)
    assert_clean(out, err)
    assert len(err.strip().splitlines()) == 1 and "nope[/x]" in err


def test_eval_tables_are_clean():
    """`ccvae eval`'s tables with hostile label, class and variant names (no model needed)."""
    from ccvae_tools.cli.evaluate import render_report

    h, c = "\x1b]0;pwned\x07[/x]", "[link=http://e]x[/link]"
    metrics = {"split": "test", "images": 10, "seed": 0, "accuracy": {h: 0.5}, "majority_baseline": {h: 0.4},
               "balanced_accuracy": {h: 0.5}, "labels_from_style": {h: 0.3},
               "capture": {h: {"class": c, "variant": "\u202ev", "train": 3, "test": 2, "variants": 2,
                               "z_c": 0.9, "z_s": 0.2, "chance": 0.5}},
               "capture_continuous": {h: {"column": "[bold]weight", "within": {
                   c: {"train": 4, "test": 4, "z_c": {"r2": 0.5, "spearman": 0.6}, "z_s": {"r2": 0.1, "spearman": 0.2}},
                   "\x1b[2J": {"train": 1, "test": 1, "skipped": "[/x] too few"}}}}}
    report = {"model": "m\x1b[2J.safetensors", "data": "[/data]", "metrics": metrics,
              "details": {"capture_skipped": {"[/k]": "\x1b]0;t\x07"}}}
    buf = io.StringIO()
    console = Console(file=buf, width=400, color_system=None)
    for r in render_report(report):
        console.print(r)
    out = buf.getvalue()
    assert_clean(out)
    for shown in (safe_text(h), c, "[bold]weight", "\\x1b[2J", "[/x] too few", "[/data]", "\\u202ev"):
        assert shown in out, shown


def test_metadata_only_commands_still_import_nothing_heavy():
    import subprocess

    code = ("import sys; import ccvae_tools.cli.inspect, ccvae_tools.cli.io, ccvae_tools.util.text; "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr
