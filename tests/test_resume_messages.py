"""Resume says what it does (issue 26, item 4): `--resume auto` looks in the --out given, a finished
run is said to be complete (exit 0, nothing touched), a state with NaN in it is refused in one line
with model.safetensors as it was, and the interrupt and resume messages number epochs alike.

Runs are of the 20-avatar fixture at batch size 4: 4 steps an epoch, 2 epochs, a second or two each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from ccvae_tools.training import loop
from ccvae_tools.training.loop import train
from ccvae_tools.training.resume import RunComplete, _check_finite
from ccvae_tools.training.state import STATE_FILE, load_state, save_state
from ccvae_tools.util.errors import Interrupted, TrainingError
from helpers.cli import assert_one_line, run_cli
from helpers.options import opts_for

pytestmark = pytest.mark.usefixtures("clean_env")

KW = dict(epochs=2, batch_size=4, preview_every=0, draws=4)
STEPS_PER_EPOCH = 4


def _flags(data: Path, tmp: Path, out: Path, *extra) -> list:
    return ["train", data, "--image-size", 32, "--epochs", 2, "--batch-size", 4, "--draws", 4, "--z-style", 4,
            "--preview-every", 0, "--workers", 1, "--device", "cpu", "--cache-dir", tmp / "cache", "--out", out,
            *extra]


def _files(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the run folder: its bytes and modification time (what "untouched" means)."""
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}


@pytest.fixture()
def stopped(avatar_celeba_dir, tmp_path) -> Path:
    """A run stopped by --max-steps 6 (in epoch 2 of 2) under a custom --out."""
    return train(opts_for(avatar_celeba_dir, tmp_path, **KW, out=str(tmp_path / "custom"), max_steps=6))


def test_resume_auto_finds_the_run_in_the_out_given(avatar_celeba_dir, tmp_path, stopped, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)                  # runs/ here is empty: only --out leads to the run
    code, out, err = run_cli(["train", "--resume", "auto", "--max-steps", 0], capsys)
    assert_one_line(code, err, (2,), "no run folder under runs", "--out FOLDER")
    code, out, err = run_cli(["train", "--resume", "auto", "--out", tmp_path / "custom", "--max-steps", 0], capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == str(stopped)
    assert f"resuming {stopped} at epoch 2 of 2, step 6" in err
    assert load_state(stopped / STATE_FILE)["global_step"] == 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize("how", ["all epochs", "max steps"])
def test_a_finished_run_resumed_says_already_complete_and_touches_nothing(avatar_celeba_dir, tmp_path, capsys,
                                                                          stopped, how):
    if how == "all epochs":
        train(opts_for(avatar_celeba_dir, tmp_path), resume=str(stopped), overrides={"max_steps": 0})
        why = "all 2 epochs trained, step 8; --epochs N above 2"
    else:                                        # without a larger --max-steps: it stopped where it should
        why = "stopped by --max-steps 6 at epoch 2 of 2, step 6; a larger --max-steps, or 0 for no limit,"
    before = _files(stopped)
    code, out, err = run_cli(["train", "--resume", "auto", "--out", tmp_path / "custom"], capsys)
    assert code == 0 and out == f"{stopped}\n", err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0] == f"{stopped} is already complete ({why} trains it further); nothing was " \
                                           f"trained or changed", err
    assert _files(stopped) == before
    with pytest.raises(RunComplete):             # the same for a caller of train()
        train(opts_for(avatar_celeba_dir, tmp_path), resume=str(stopped))


@pytest.mark.parametrize("entry", ["model", "optimizer"])
def test_a_state_with_a_nan_tensor_is_refused_in_one_line(avatar_celeba_dir, tmp_path, capsys, stopped, entry):
    state = load_state(stopped / STATE_FILE)
    if entry == "model":
        name, t = "model.prior_loc", state["model"]["prior_loc"]
    else:
        key = next(iter(state["optimizer"]["state"]))
        name, t = f"optimizer.state.{key}.exp_avg", state["optimizer"]["state"][key]["exp_avg"]
    t.view(-1)[0] = float("nan")
    save_state(stopped / STATE_FILE, state)
    weights = (stopped / "model.safetensors").read_bytes()
    code, out, err = run_cli(["train", "--resume", stopped, "--max-steps", 0], capsys)
    assert_one_line(code, err, (1,), str(stopped / STATE_FILE), f"1 NaN or infinite values in {name}",
                    "model.safetensors is left as it is")
    assert (stopped / "model.safetensors").read_bytes() == weights and out == ""


def test_log_pi_may_be_minus_infinity_in_a_state_but_not_nan():
    state = {"model": {"log_pi": torch.tensor([[-0.7, -0.7, float("-inf")]]), "w": torch.ones(2)},
             "rng_cpu": torch.get_rng_state()}
    _check_finite(state, Path("state.safetensors"))            # the classes a label lacks: allowed
    state["model"]["log_pi"][0, 0] = float("nan")
    with pytest.raises(TrainingError, match="1 NaN or infinite values in model.log_pi"):
        _check_finite(state, Path("state.safetensors"))
    state["model"]["log_pi"][0, 0] = 0.0
    state["model"]["w"][1] = float("-inf")                       # elsewhere -inf is not
    with pytest.raises(TrainingError, match="in model.w"):
        _check_finite(state, Path("state.safetensors"))


def _position(text: str) -> str:
    found = re.search(r"epoch \d+ of \d+, step \d+", text)
    assert found, text
    return found.group(0)


@pytest.mark.parametrize("how", ["ctrl-c", "ctrl-c twice"])
def test_the_interrupt_and_the_resume_messages_number_epochs_alike(avatar_celeba_dir, tmp_path, capsys,
                                                                   monkeypatch, how):
    """A first Ctrl-C (a stop request, as its handler makes) stops after step 6 with a checkpoint there;
    a second one (KeyboardInterrupt) at once, leaving the checkpoint of epoch 1's end (step 4)."""
    real_step = loop._step

    def step_then_stop(s, *a, **k):
        real_step(s, *a, **k)
        if s.counters.global_step == 6:
            if how == "ctrl-c twice":
                raise KeyboardInterrupt
            s.stop_requested = True

    monkeypatch.setattr(loop, "_step", step_then_stop)
    with pytest.raises(Interrupted) as caught:
        train(opts_for(avatar_celeba_dir, tmp_path, **KW, checkpoint_minutes=1000))
    stopped_at = _position(str(caught.value))
    assert stopped_at == ("epoch 2 of 2, step 6" if how == "ctrl-c" else "epoch 2 of 2, step 4")
    monkeypatch.setattr(loop, "_step", real_step)
    run = next((tmp_path / "runs").glob("0*"))
    capsys.readouterr()
    train(opts_for(avatar_celeba_dir, tmp_path), resume=str(run))
    resumed = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("resuming "))
    assert _position(resumed) == stopped_at
