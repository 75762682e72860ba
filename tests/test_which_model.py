"""Which model (issue 26, item 5): every model command says on stderr which weights it used, `model:
PATH` (a shipped model by its name), once its work is done and never on stdout; --quiet/-q leaves
the line out, and edit's and sample's read-back warnings too; file names in it are made safe; and
`ccvae train` and `ccvae info` give one parameter count."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers.cli import run_cli
from helpers.hostile import unsafe_chars
from helpers.options import opts_for

pytestmark = pytest.mark.usefixtures("clean_env")
ROOT = Path(__file__).resolve().parents[1]

# every model command but eval and studio (below), as a successful run with the tiny model
COMMANDS = {
    "info": ["info", "{tiny}"],
    "labels": ["labels", "-m", "{tiny}"],
    "classify": ["classify", "{face}", "-m", "{tiny}", "--mean", "--json"],
    "reconstruct": ["reconstruct", "{face}", "-m", "{tiny}", "-o", "{out}/r.png"],
    "traverse": ["traverse", "{face}", "-m", "{tiny}", "--label", "smiling", "--steps", 2, "-o", "{out}/t.png"],
    "traverse-gif": ["traverse", "{face}", "-m", "{tiny}", "--label", "smiling", "--frames", 8, "-o", "{out}/t.gif"],
    "gif": ["gif", "{face}", "-m", "{tiny}", "--label", "smiling", "--frames", 8, "-o", "{out}/g.gif"],
    "sample": ["sample", "-m", "{tiny}", "-n", 2, "-o", "{out}/s.png"],
    "edit": ["edit", "{face}", "-m", "{tiny}", "--set", "smiling=1", "-o", "{out}/e.png"],
    "swap": ["swap", "{face}", "{face}", "-m", "{tiny}", "-o", "{out}/w.png"],
    "swap-grid": ["swap", "{face}", "{face}", "--grid", "-m", "{tiny}", "-o", "{out}/wg.png"],
    "interpolate": ["interpolate", "{face}", "{face}", "-m", "{tiny}", "--steps", 2, "-o", "{out}/i.png"],
    "interpolate-gif": ["interpolate", "{face}", "{face}", "-m", "{tiny}", "--steps", 2, "-o", "{out}/i.gif"],
    "export": ["export", "{tiny}", "--onnx", "{out}/onnx"],
}


def _args(argv, **names) -> list[str]:
    return [str(a).format(**{k: str(v) for k, v in names.items()}) for a in argv]


def _model_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("model: ")]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_model_command_names_its_weights_on_stderr_unless_quiet(tiny, face, tmp_path, capsys, name):
    argv = _args(COMMANDS[name], tiny=tiny, face=face, out=tmp_path)
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert _model_lines(err) == [f"model: {tiny}"] and "model:" not in out
    for flag in ("--quiet", "-q"):
        code, out, err = run_cli(argv + [flag], capsys)
        assert code == 0 and _model_lines(err) == [], err


def test_a_failed_run_stays_one_line(tiny, face, capsys):
    code, out, err = run_cli(["edit", face, "-m", tiny, "--set", "nosuchlabel=1"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("ccvae: error: "), err


@pytest.mark.parametrize("argv", [["sample", "-m", "{tiny}", "--set", "smiling=0", "-n", 4, "-o", "{out}/s.png"],
                                  ["edit", "{face}", "-m", "{tiny}", "--set", "smiling=0", "-o", "{out}/e.png"]],
                         ids=["sample", "edit"])
def test_quiet_also_leaves_out_the_read_back_warnings(tiny, face, tmp_path, capsys, argv):
    argv = _args(argv, tiny=tiny, face=face, out=tmp_path)
    code, _, err = run_cli(argv, capsys)         # the untrained tiny model does not read Smiling=0 back
    assert code == 0 and any("does not read Smiling=0" in line for line in err.splitlines()), err
    code, _, err = run_cli(argv + ["-q"], capsys)
    assert code == 0 and err == "", err


def test_the_shipped_default_and_shipped_models_are_named(tiny, capsys, monkeypatch):
    code, _, err = run_cli(["labels"], capsys)
    assert code == 0 and _model_lines(err) == ["model: avatars64 (the shipped default)"], err
    code, _, err = run_cli(["labels", "-m", "fonts32"], capsys)
    assert code == 0 and _model_lines(err) == ["model: fonts32 (shipped)"], err
    monkeypatch.setenv("CCVAE_MODEL", str(tiny))
    code, _, err = run_cli(["labels"], capsys)
    assert code == 0 and _model_lines(err) == [f"model: {tiny}"], err


def test_a_hostile_file_name_is_shown_escaped_in_one_line(tiny, tmp_path, capsys):
    evil = tmp_path / "evil\x1b]0;pwned\x07\n[x].safetensors"
    shutil.copy(tiny, evil)
    code, out, err = run_cli(["labels", "-m", evil], capsys)
    assert code == 0, err
    assert _model_lines(err) == [f"model: {tmp_path}/evil\\x1b]0;pwned\\x07\\n[x].safetensors"]
    assert not unsafe_chars(err, allow="\n")


def test_stdout_carries_only_the_image(tiny, face, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CCVAE_DEBUG", "CCVAE_MODEL")}
    r = subprocess.run([sys.executable, "-m", "ccvae_tools", "edit", str(face), "-m", str(tiny), "--set",
                        "smiling=1", "-o", "-"], capture_output=True, env={**env, "CCVAE_DEVICE": "cpu"},
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Image.open(io.BytesIO(r.stdout)).format == "PNG"          # nothing else in the bytes
    assert f"model: {tiny}" in r.stderr.decode()


def test_studio_names_its_weights_as_it_starts(tiny, capsys, monkeypatch):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from ccvae_tools.cli import studio as cli_studio

    monkeypatch.setattr(cli_studio, "_serve", lambda app, sock: sock.close())
    code, out, err = run_cli(["studio", "-m", tiny, "--port", 0], capsys)
    assert code == 0 and _model_lines(err) == [f"model: {tiny}"] and out.startswith("http://"), err
    code, out, err = run_cli(["studio", "-m", tiny, "--port", 0, "-q"], capsys)
    assert code == 0 and _model_lines(err) == [], err


def test_train_and_info_give_one_parameter_count(avatar_celeba_dir, tmp_path, capsys):
    from ccvae_tools.training.loop import train

    run = train(opts_for(avatar_celeba_dir, tmp_path, epochs=1, batch_size=8, draws=4, preview_every=0))
    trained = re.search(r"^model: ([\d,]+) parameters", capsys.readouterr().err, re.M)
    assert trained, "train printed no parameter count"
    code, text, err = run_cli(["info", run], capsys)
    shown = re.search(r"^  architecture .*, ([\d,]+) parameters$", text, re.M)
    assert code == 0 and shown and shown.group(1) == trained.group(1), text
    assert _model_lines(err) == [f"model: {run / 'model.safetensors'}"]
    code, out, _ = run_cli(["info", run, "--json"], capsys)
    assert json.loads(out)["parameters"] == int(trained.group(1).replace(",", ""))
