"""Every numeric option has its valid range declared once, stated in --help and checked before any
work, with one line naming the option and the range; NaN and infinity are refused (issue 12, item 4).
Also: `swap --labels ","` (no label named) and the same label given twice to --set are refused.

Training options are read from their declarations (training/options.py), so a new option is tried
too; the commands' options are listed here. Every bad value is given with a weights file that does
not exist, or a data folder that does not exist: the range error comes first, before any of them is
opened (nothing is loaded, nothing is written).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from ccvae_tools.training.options import PRESETS, TrainOptions, flag_of, option_fields, resolve_options
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.ranges import SEED_MAX, Range
from helpers.cli import assert_one_line, run_cli

def _numeric_type(hint):
    """int or float for `int`, `float`, `int | None` (an option left at auto) ...; else the hint."""
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


HINTS = {name: _numeric_type(hint) for name, hint in get_type_hints(TrainOptions).items()}
NUMERIC = [f for f in option_fields() if HINTS[f.name] in (int, float) and f.metadata["choices"] is None]
MISSING_MODEL = "/nonexistent/model.safetensors"


pytestmark = pytest.mark.usefixtures("clean_env")      # fixtures in conftest.py: clean_env, tiny, face


# ----------------------------------------------------------------------------------------------
# training options
# ----------------------------------------------------------------------------------------------

def _bad_values(f) -> list:
    """Values outside the declared range: below it, on an open end, above it, far above it, and
    for float options NaN and both infinities."""
    rng: Range = f.metadata["range"]
    low = rng.minimum if rng.minimum is not None else rng.above
    step = 1 if HINTS[f.name] is int else 0.5
    values = [low - step]
    if rng.above is not None:
        values.append(rng.above)                           # the open end itself
    values += [rng.maximum + step, rng.maximum * 10 + 10 ** 30 if HINTS[f.name] is int else 1e308]
    if HINTS[f.name] is float:
        values += [math.nan, math.inf, -math.inf]
    return [HINTS[f.name](v) if not (isinstance(v, float) and not math.isfinite(v)) else v for v in values]


TRAIN_CASES = [(f.name, v) for f in NUMERIC for v in _bad_values(f)]


def test_every_numeric_training_option_declares_a_bounded_range():
    unbounded = [f.name for f in NUMERIC if f.metadata["range"] is None or f.metadata["range"].maximum is None
                 or (f.metadata["range"].minimum is None and f.metadata["range"].above is None)]
    assert not unbounded


@pytest.mark.parametrize("name, value", TRAIN_CASES, ids=[f"{n}={v}" for n, v in TRAIN_CASES])
def test_training_option_out_of_range_is_one_line(tmp_path, capsys, name, value):
    f = next(f for f in NUMERIC if f.name == name)
    if not f.metadata["cli"]:                               # no flag: through the options' own check
        with pytest.raises(UsageError, match=rf"{flag_of(name)} must be .* {_escaped(f)}, got"):
            resolve_options({name: value})
        return
    shown = {math.nan: "nan", math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
    code, out, err = run_cli(["train", tmp_path / "no-data", flag_of(name), shown, "--out", tmp_path / "runs"],
                             capsys)
    assert_one_line(code, err, (2,), f"{flag_of(name)} must be", f.metadata["range"].text())
    assert out == "" and not (tmp_path / "runs").exists()


def _escaped(f) -> str:
    import re

    return re.escape(f.metadata["range"].text())


@pytest.mark.parametrize("name", [f.name for f in NUMERIC])
def test_training_option_nan_through_the_api(name):
    """A NaN reaches an int option only through the API (the command line parses whole numbers)."""
    with pytest.raises(UsageError, match=rf"{flag_of(name)} must be a finite number"):
        resolve_options({name: math.nan})


@pytest.mark.parametrize("name", [f.name for f in NUMERIC])
def test_training_option_bounds_themselves_are_accepted(name):
    rng: Range = next(f for f in NUMERIC if f.name == name).metadata["range"]
    wide = {"batch_size": 65536} if name == "labelled_per_batch" else {}
    for value in ([rng.minimum] if rng.minimum is not None else []) + [rng.maximum]:
        value = HINTS[name](value)
        opts = resolve_options({name: value, **wide})
        assert getattr(opts, name) == value


@pytest.mark.parametrize("argv, line", [
    (["--lr", "-1"], "--lr must be a finite number in (0, 1], got -1.0"),
    (["--lr", "nan"], "--lr must be a finite number in (0, 1], got nan"),
    (["--lr", "0"], "--lr must be a finite number in (0, 1], got 0.0"),
    (["--likelihood-scale", "0"], "--likelihood-scale must be a finite number in (0, 1000], got 0.0"),
    (["--label-dim", "0"], "--label-dim must be a whole number in [1, 256], got 0"),
    (["--z-style", "-1"], "--z-style must be a whole number in [1, 4096], got -1"),
    (["--eval-every", "0"], "--eval-every must be a whole number in [1, 1000000], got 0"),
    (["--max-steps", "-1"], "--max-steps must be a whole number in [0, 9223372036854775807], got -1"),
    (["--seed", str(2 ** 64)], f"--seed must be a whole number in [0, {SEED_MAX}], got {2 ** 64}"),
    (["--sup-frac", "0"], "--sup-frac must be a finite number in (0, 1], got 0.0"),
    (["--sup-frac", "1.5"], "--sup-frac must be a finite number in (0, 1], got 1.5"),
    (["--checkpoint-minutes", "inf"], "--checkpoint-minutes must be a finite number in [0, 1000000], got inf"),
    (["--kl-warmup", "-inf"], "--kl-warmup must be a finite number in [0, 1000000], got -inf"),
    (["--widths", "8,0,8", "--image-size", "32"], "--widths must be a whole number in [1, 4096], got 0"),
    (["--widths", "8,99999,8", "--image-size", "32"], "--widths must be a whole number in [1, 4096], got 99999"),
])
def test_the_issues_training_values(tmp_path, capsys, argv, line):
    code, out, err = run_cli(["train", tmp_path / "no-data", *argv], capsys)
    assert assert_one_line(code, err, (2,)) == f"ccvae: error: {line}"


def test_resume_checks_the_values_before_looking_for_the_run(tmp_path, capsys):
    code, out, err = run_cli(["train", "--resume", "auto", "--out", tmp_path / "runs", "--eval-every", "0"], capsys)
    assert_one_line(code, err, (2,), "--eval-every must be a whole number in [1, 1000000]")


def test_presets_lie_inside_the_ranges():
    for name in PRESETS:
        resolve_options({"preset": name})


def test_train_help_and_readme_state_the_ranges(capsys):
    code, out, err = run_cli(["train", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "Adam learning rate. Range: (0, 1]." in text and "Range: [0, 9223372036854775807]" in text
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "Adam learning rate. Range: (0, 1]." in readme


# ----------------------------------------------------------------------------------------------
# the commands' options
# ----------------------------------------------------------------------------------------------

F = "{face}"
NAN, INF = "nan", "inf"
SEEDS = ["-1", str(2 ** 63), str(2 ** 64), str(10 ** 30)]
COMMAND_CASES = [
    # (command and its arguments, option, bad values, the range)
    (["traverse", F, "--label", "smiling"], "--steps", ["1", "65", "-3"], "[2, 64]"),
    (["traverse", F, "--label", "smiling"], "--span", [NAN, INF, "-inf", "-0.5", "20.5", "1e308"], "[0, 20]"),
    (["traverse", F, "--label", "smiling"], "--frames", ["7", "401"], "[8, 400]"),
    (["traverse", F, "--label", "smiling"], "--fps", ["0", "51"], "[1, 50]"),
    (["traverse", F, "--label", "smiling"], "--size", ["0", "-5", "4097", "100000"], "[1, 4096]"),
    (["traverse", F, "--label", "smiling"], "--seed", SEEDS, f"[0, {SEED_MAX}]"),
    (["gif", F], "--columns", ["-1", "1025"], "[0, 1024]"),
    (["gif", F], "--span", [NAN, INF, "-1"], "[0, 20]"),
    (["gif", F], "--frames", ["0", "100000"], "[8, 400]"),
    (["gif", F], "--fps", ["-1", "1000"], "[1, 50]"),
    (["sample"], "-n", ["0", "1025", "-16"], "[1, 1024]"),
    (["sample"], "--temperature", [NAN, INF, "-inf", "-0.1", "10.5"], "[0, 10]"),
    (["sample"], "--columns", ["-2", "5000"], "[0, 1024]"),
    (["sample"], "--seed", SEEDS, f"[0, {SEED_MAX}]"),
    (["sample"], "--size", ["100000"], "[1, 4096]"),
    (["edit", F, "--set", "smiling=1"], "--seed", SEEDS[:2], f"[0, {SEED_MAX}]"),
    (["edit", F, "--set", "smiling=1"], "--size", ["0", "4097"], "[1, 4096]"),
    (["swap", F, F], "--seed", SEEDS[:2], f"[0, {SEED_MAX}]"),
    (["swap", F, F], "--size", ["5000"], "[1, 4096]"),
    (["interpolate", F, F], "--steps", ["1", "201"], "[2, 200]"),
    (["interpolate", F, F], "--fps", ["0", "51"], "[1, 50]"),
    (["classify", F], "--draws", ["0", "100001"], "[1, 100000]"),
    (["classify", F], "--batch-size", ["0", "65537"], "[1, 65536]"),
    (["classify", F], "--seed", SEEDS[:2], f"[0, {SEED_MAX}]"),
    (["reconstruct", F], "--seed", SEEDS[1:3], f"[0, {SEED_MAX}]"),
    (["reconstruct", F], "--batch-size", ["-1"], "[1, 65536]"),
    (["data", "avatars", "{out}"], "--n", ["0", "100000000"], "[1, 10000000]"),
    (["data", "avatars", "{out}"], "--size", ["7", "1025"], "[8, 1024]"),
    (["data", "avatars", "{out}"], "--valid-frac", [NAN, "0.6", "-0.1"], "[0, 0.5]"),
    (["data", "avatars", "{out}"], "--test-frac", [INF], "[0, 0.5]"),
    (["data", "avatars", "{out}"], "--workers", ["-1", "1025"], "[0, 1024]"),
    (["data", "avatars", "{out}"], "--seed", SEEDS[:2], f"[0, {SEED_MAX}]"),
    (["data", "fonts", "{out}"], "--size", ["7", "513"], "[8, 512]"),
    (["data", "fonts", "{out}"], "--valid-frac", [NAN], "[0, 0.5]"),
    (["eval", "{out}"], "--samples", ["1", "4097"], "[2, 4096]"),
    (["eval", "{out}"], "--draws", ["0"], "[1, 10000]"),
    (["eval", "{out}"], "--judge-epochs", ["0", "1001"], "[1, 1000]"),
    (["eval", "{out}"], "--max-images", ["0"], "[1, 1000000000]"),
    (["eval", "{out}"], "--seed", SEEDS[:1], f"[0, {SEED_MAX}]"),
]
FLOAT_FLAGS = ("--span", "--temperature", "--valid-frac", "--test-frac")
MODEL_TAKING = ("traverse", "gif", "sample", "edit", "swap", "interpolate", "classify", "reconstruct", "eval")
FLAT = [(argv, flag, value, rng) for argv, flag, values, rng in COMMAND_CASES for value in values]


@pytest.mark.parametrize("argv, flag, value, rng", FLAT,
                         ids=[f"{a[0] if a[0] != 'data' else a[1]}{flag}={v}" for a, flag, v, _ in FLAT])
def test_command_option_out_of_range_is_one_line(face, tmp_path, capsys, argv, flag, value, rng):
    out_dir = tmp_path / "new"
    args = [a.format(face=face, out=out_dir) for a in argv] + [f"{flag}={value}" if flag != "-n" else flag]
    if flag == "-n":
        args.append(value)
    if argv[0] in MODEL_TAKING:
        args += ["-m", MISSING_MODEL]                  # the range is checked before the model is looked for
    code, out, err = run_cli(args, capsys)
    line = assert_one_line(code, err, (2,), f"{flag} must be", f"in {rng}, got")
    assert ("a finite number" if flag in FLOAT_FLAGS else "a whole number") in line
    assert out == "" and not out_dir.exists() and list(tmp_path.iterdir()) == []


def test_command_help_states_the_range(capsys):
    code, out, _ = run_cli(["traverse", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "Points along each walk. Range: [2, 64]." in text and "Range: [0, 20]." in text


@pytest.mark.parametrize("argv", [
    ["traverse", F, "--label", "smiling", "--steps", "2", "--span", "0", "--seed", str(SEED_MAX), "--sample"],
    ["traverse", F, "--label", "smiling", "--steps", "64", "--span", "20", "--size", "32"],
    ["sample", "-n", "1", "--temperature", "0", "--seed", str(SEED_MAX)],
    ["sample", "-n", "2", "--temperature", "10", "--columns", "1024"],
    ["classify", F, "--draws", "1", "--seed", str(SEED_MAX), "--batch-size", "1"],
], ids=["traverse-low", "traverse-high", "sample-low", "sample-high", "classify"])
def test_values_on_the_bounds_still_work(tiny, face, tmp_path, capsys, argv):
    args = [a.format(face=face) for a in argv] + ["-m", tiny]
    if argv[0] != "classify":
        args += ["-o", tmp_path / "out.png"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err


# ----------------------------------------------------------------------------------------------
# labels named for swap and for --set
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels", [",", " , ", ",,,", ""])
def test_swap_labels_naming_no_label(tiny, face, tmp_path, capsys, labels):
    code, out, err = run_cli(["swap", face, face, "--labels", labels, "-m", tiny, "-o", tmp_path / "s.png"], capsys)
    assert_one_line(code, err, (2,), "--labels", "names no label")
    assert not (tmp_path / "s.png").exists()


def test_swap_labels_with_empty_items_between_names(tiny, face, tmp_path, capsys):
    code, out, err = run_cli(["swap", face, face, "--labels", "smiling,,eyeglasses", "-m", tiny,
                              "-o", tmp_path / "s.png"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("command, sets", [
    (["sample"], ["smiling=1", "smiling=0"]),
    (["sample"], ["smiling=1", "Smiling=1"]),
    (["sample"], ["eyeglasses=0", "smiling=1", "EYEGLASSES=yes"]),
    (["edit", F], ["smiling=1", "smiling=0"]),
    (["edit", F], ["blond hair=1", "Blond_Hair=0"]),
], ids=["sample-conflict", "sample-same-value", "sample-loose-match", "edit-conflict", "edit-loose-match"])
def test_the_same_label_set_twice(tiny, face, tmp_path, capsys, command, sets):
    args = [a.format(face=face) for a in command] + [x for s in sets for x in ("--set", s)]
    code, out, err = run_cli(args + ["-m", tiny, "-o", tmp_path / "o.png"], capsys)
    line = assert_one_line(code, err, (2,), "give each label once")
    assert "both set label" in line
    assert not (tmp_path / "o.png").exists()
