"""Training survives being stopped at any point (issue 12, item 6): the resume state is a file of
our own (no pickle) that refuses bad input in one line; a run killed before its first checkpoint,
one with a half-written temp file, one stopped by Ctrl-C all resume to the uninterrupted run's
weights; decoding workers die with their parent; resume says what it will not do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ccvae_tools.training.loop import train
from ccvae_tools.training.state import STATE_FILE, load_state, save_state
from ccvae_tools.util.errors import Interrupted, TrainingError, UsageError
from helpers.options import opts_for

KW = dict(epochs=2, preview_every=0)


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def reference(avatar_dir_200, tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must end equal to."""
    return train(opts_for(avatar_dir_200, tmp_path_factory.mktemp("reference"), **KW))


# --- the state file ----------------------------------------------------------------------------

def test_the_state_comes_back_as_it_was_written(tmp_path):
    state = {"model": {"w": torch.randn(3, 4), "b": torch.zeros(2, dtype=torch.float64)},
             "optimizer": {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.ones(3)}},
                           "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "foreach": None,
                                             "amsgrad": False}]},
             "epoch": 2, "rng_cpu": torch.get_rng_state(), "metrics_json": "{}", "nan": float("nan")}
    save_state(tmp_path / STATE_FILE, state)
    back = load_state(tmp_path / STATE_FILE)
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["model"]["b"].dtype == torch.float64
    assert list(back["optimizer"]["state"]) == [0]             # integer keys stay integers
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["optimizer"]["param_groups"][0]["foreach"] is None and back["epoch"] == 2
    assert torch.equal(back["rng_cpu"], state["rng_cpu"]) and back["nan"] != back["nan"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("case", ["random bytes", "a weights file", "a missing tensor", "a bad node",
                                  "a wrong entry", "deep nesting"])
def test_a_bad_state_file_is_refused_in_one_line(tmp_path, case):
    path = tmp_path / STATE_FILE
    skeleton = {"dict": [["epoch", {"value": 1}]]}
    if case == "random bytes":
        path.write_bytes(os.urandom(300))
    elif case == "a weights file":
        save_file({"x": torch.zeros(2)}, str(path), metadata={"ccvae.format_version": "1"})
    else:
        if case == "a missing tensor":
            skeleton = {"dict": [["model", {"tensor": "t9"}]]}
        elif case == "a bad node":
            skeleton = {"dict": [["epoch", {"pickle": "cos\nsystem\n"}]]}
        elif case == "deep nesting":
            skeleton = json.loads("[" * 100 + "]" * 100)
        text = json.dumps(skeleton)
        save_file({"t0": torch.zeros(1)}, str(path), metadata={"format": "ccvae-resume-state/1", "state": text})
    with pytest.raises(TrainingError) as caught:
        load_state(path, {"epoch": int, "model": dict} if case == "a wrong entry" else None)
    text = str(caught.value)
    assert str(path) in text and "\n" not in text and "resume state" in text


# --- kills, temp files, restarts -----------------------------------------------------------------

def test_a_run_killed_before_its_first_checkpoint_trains_again_from_the_start(avatar_dir_200, tmp_path, reference):
    # a dry run leaves what a kill before the first checkpoint leaves: options.json only (and a
    # metrics line written just before the kill, and a temp file of a write it cut short)
    run = train(opts_for(avatar_dir_200, tmp_path, **KW), dry_run=True)
    (run / "metrics.jsonl").write_text('{"epoch": 1, "step": 7}\n{"epoch": 2, "st')
    (run / ".model.safetensors.x1y2.tmp").write_bytes(b"half")
    resumed = train(opts_for(avatar_dir_200, tmp_path), resume=str(run))
    assert resumed == run and _same_weights(run, reference)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert not list(run.glob(".*.tmp"))


def test_resume_auto_finds_a_run_without_a_checkpoint(avatar_dir_200, tmp_path, reference):
    train(opts_for(avatar_dir_200, tmp_path, **KW), dry_run=True)
    run = train(opts_for(avatar_dir_200, tmp_path), resume="auto")
    assert _same_weights(run, reference)


def test_resume_drops_the_metrics_written_after_the_checkpoint(avatar_dir_200, tmp_path, reference):
    part = train(opts_for(avatar_dir_200, tmp_path, **KW, max_steps=8))       # epoch 1 saved, then step 8
    with open(part / "metrics.jsonl", "a") as f:                               # epoch 2's line, then the kill
        f.write('{"epoch": 2, "step": 999}\n')
    train(opts_for(avatar_dir_200, tmp_path), resume=str(part), overrides={"max_steps": 0})
    lines = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines if ln["epoch"] == 2] == [lines[-1]["step"]] != [999]
    assert _same_weights(part, reference)


# --- Ctrl-C ---------------------------------------------------------------------------------------

def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_resumes_exactly(avatar_dir_200, tmp_path, reference,
                                                                            monkeypatch):
    from ccvae_tools.training import loop

    real_step, steps = loop._step, {"n": 0}

    def step_then_ctrl_c(s, *a, **k):
        real_step(s, *a, **k)
        steps["n"] += 1
        if steps["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)      # as the terminal sends it, mid-epoch

    monkeypatch.setattr(loop, "_step", step_then_ctrl_c)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (`&` ignores it)
    try:
        with pytest.raises(Interrupted) as caught:
            train(opts_for(avatar_dir_200, tmp_path, **KW, checkpoint_minutes=1000))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # the handler is put back
    finally:
        signal.signal(signal.SIGINT, outer)
    message = str(caught.value)
    run = next((tmp_path / "runs").glob("0*"))
    assert "step 3" in message and f"--resume {run}" in message and "\n" not in message
    assert load_state(run / STATE_FILE)["global_step"] == 3
    monkeypatch.setattr(loop, "_step", real_step)
    train(opts_for(avatar_dir_200, tmp_path), resume=str(run))
    assert _same_weights(run, reference)


def test_ctrl_c_at_the_command_line_exits_130_with_one_line(avatar_dir_200, tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "ccvae_tools", "train", str(avatar_dir_200), "--image-size", "32",
                             "--epochs", "50", "--batch-size", "32", "--draws", "8", "--z-style", "4",
                             "--preview-every", "0", "--workers", "1", "--device", "cpu", "--out", str(out),
                             "--cache-dir", str(tmp_path / "cache")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even under `&`
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(f"*/{STATE_FILE}")):   # after the first epoch
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130, err[-2000:]
    assert last.startswith("ccvae: interrupted: ") and "--resume" in last and "Traceback" not in err


# --- what resume refuses or says -----------------------------------------------------------------

def test_an_out_that_is_a_file_is_refused_in_one_line(avatar_dir_200, tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(UsageError, match="--out .*runs: is a file, not a folder"):
        train(opts_for(avatar_dir_200, tmp_path, **KW), dry_run=True)


def test_resume_with_other_data_is_refused(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, **KW), dry_run=True)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UsageError, match="continues on the run's own data"):
        train(opts_for(other, tmp_path), resume=str(run))


def test_resume_of_a_checkpoint_that_no_longer_fits_the_data_says_so(avatar_dir_200, tmp_path):
    part = train(opts_for(avatar_dir_200, tmp_path, **KW, max_steps=2))
    state = load_state(part / STATE_FILE)
    state["model"]["log_pi"] = torch.zeros(12, 2)         # as if the data had gained a label
    save_state(part / STATE_FILE, state)
    with pytest.raises(TrainingError, match="no longer fits the run: log_pi is .* in the checkpoint"):
        train(opts_for(avatar_dir_200, tmp_path), resume=str(part), overrides={"max_steps": 0})


def test_a_run_of_an_older_version_with_a_pickled_state_is_refused(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, **KW), dry_run=True)
    (run / "state.pt").write_bytes(b"\x80\x04pickled")
    with pytest.raises(UsageError, match="state.pt, written by an older ccvae"):
        train(opts_for(avatar_dir_200, tmp_path), resume=str(run))


def test_a_non_finite_loss_before_any_checkpoint_does_not_promise_one(avatar_dir_200, tmp_path, monkeypatch):
    from ccvae_tools.model.network import CCVAE

    real = CCVAE.forward
    monkeypatch.setattr(CCVAE, "forward", lambda self, *a, **k: real(self, *a, **k)._replace(
        bound=torch.full((1,), float("nan"))))
    with pytest.raises(TrainingError, match="no checkpoint had been written yet.*new run with a lower --lr"):
        train(opts_for(avatar_dir_200, tmp_path, **KW))


# --- decoding workers -----------------------------------------------------------------------------

WORKERS_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ccvae_tools.data import cache, images
    from ccvae_tools.data.readers import open_catalog
    real = images.load_image
    def slow(*a, **k):
        time.sleep(0.2)
        return real(*a, **k)
    cache.load_image = slow
    cache.SERIAL_BELOW = 0          # 200 images: decode them in workers all the same
    cache.load_decoded(open_catalog(Path(sys.argv[1]), size=32), cache_dir=Path(sys.argv[2]), workers=2)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_decoding_workers_end_when_their_parent_is_killed(avatar_dir_200, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WORKERS_SCRIPT, str(avatar_dir_200), str(tmp_path / "cache")])
    workers: list[int] = []
    deadline = time.time() + 60
    while time.time() < deadline and len(workers) < 2:
        workers = _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "the decoding workers did not start"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in workers)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
