"""`ccvae train`: options, run folders, the loop end to end, exact resume after kill -9, NaN stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ccvae_tools.training.state import STATE_FILE, load_state
from ccvae_tools.util.errors import TrainingError, UsageError
from ccvae_tools.training.batches import epoch_order, labelled_mask
from ccvae_tools.training.loop import train
from ccvae_tools.training.options import TrainOptions, resolve_options
from ccvae_tools.model.weights import load_model, read_metadata
from helpers.options import opts_for

def run_cli(*args, cwd=None, check=False):
    return subprocess.run([sys.executable, "-m", "ccvae_tools", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, check=check)


def test_options_resolve_defaults_then_preset_then_explicit():
    o = resolve_options({"preset": "paper", "lr": 3e-4, "epochs": None})
    assert o.lr == 3e-4 and o.epochs == 200 and o.crop == "squash" and o.batch_size == 200
    with pytest.raises(UsageError, match="unknown --preset"):
        resolve_options({"preset": "nope"})
    with pytest.raises(UsageError, match="sup-frac"):
        resolve_options({"sup_frac": 0.0})
    for name in ("kl_warmup", "style_adversary", "classifier_weight"):
        with pytest.raises(UsageError, match=name.replace("_", "-")):
            resolve_options({name: -1.0})


def test_widths_option_is_checked_against_the_image_size():
    from ccvae_tools.training.options import parse_widths
    assert parse_widths("", 64) == () and parse_widths("64, 64,64,128", 64) == (64, 64, 64, 128)
    with pytest.raises(UsageError, match="needs 4 numbers at 64 px"):
        resolve_options({"widths": "64,64,64"})
    with pytest.raises(UsageError, match="needs 3 numbers at 32 px"):
        resolve_options({"widths": "8,8,8,8", "image_size": 32})
    with pytest.raises(UsageError, match="whole numbers"):
        resolve_options({"widths": "64,wide,64,128"})
    with pytest.raises(UsageError, match=r"--widths must be a whole number in \[1, 4096\], got 0"):
        resolve_options({"widths": "8,0,8", "image_size": 32})


def test_wider_network_is_trained_stored_and_loaded(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, widths="8,8,16", epochs=1, preview_every=0))
    model, meta = load_model(run / "model.safetensors")
    assert tuple(model.cfg.widths) == (8, 8, 16)
    assert model.encoder.body[0].out_channels == 8 and model.decoder.body[-1].in_channels == 8
    assert json.loads((run / "options.json").read_text())["widths"] == "8,8,16"
    r = run_cli("info", run / "model.safetensors")
    assert r.returncode == 0 and "8,8,16" in r.stdout


def test_dry_run_writes_resolved_options_and_stops(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path), dry_run=True)
    saved = json.loads((run / "options.json").read_text())
    assert saved["labels"][:3] == ["Smiling", "Mouth_Slightly_Open", "Eyeglasses"]
    assert run.name.startswith("00000-avatars-sup1")
    assert not (run / "model.safetensors").exists()
    run2 = train(opts_for(avatar_dir_200, tmp_path, sup_frac=0.06), dry_run=True)
    assert run2.name == "00001-avatars-sup0.06"


def test_labelled_fraction_is_the_first_share_of_train_and_order_is_seeded():
    labels = np.zeros((100, 2), dtype=np.float32)
    train_idx = np.arange(10, 90)
    o = TrainOptions(sup_frac=0.25, sup_select="first", seed=3)
    keep = labelled_mask(labels, train_idx, o)
    assert np.array_equal(labelled_mask(labels, train_idx, TrainOptions(sup_frac=0.25, seed=3)), keep)
    assert np.flatnonzero(keep).tolist() == list(range(10, 30))
    rand = labelled_mask(labels, train_idx, TrainOptions(sup_frac=0.25, sup_select="random", seed=3))
    assert rand.sum() == 20 and set(np.flatnonzero(rand)) <= set(train_idx)
    a, b = epoch_order(train_idx, keep, o, 4), epoch_order(train_idx, keep, o, 4)
    assert np.array_equal(a, b) and sorted(a.tolist()) == train_idx.tolist()
    assert not np.array_equal(a, epoch_order(train_idx, keep, o, 5))
    over = epoch_order(train_idx, keep, TrainOptions(sup_frac=0.25, sup_oversample=3.0), 0)
    counts = np.bincount(over, minlength=100)
    assert (counts[10:30] == 3).all() and (counts[30:90] == 1).all()


def test_train_end_to_end_writes_a_usable_run(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, sup_frac=0.5))
    model, meta = load_model(run / "model.safetensors")
    assert meta["ccvae.data"]["labelled"] == 80 and meta["ccvae.data"]["train"] == 160
    assert meta["ccvae.data"]["name"] == "avatars" and meta["ccvae.data"]["format"] == "celeba"
    assert "Pablo Stanley" in meta["modelspec.license"]  # the art's licence travels with the weights
    assert meta["ccvae.train"]["epoch"] == 2
    assert meta["ccvae.preprocess"]["size"] == 32
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    last = lines[-1]
    for key in ("accuracy", "balanced_accuracy", "majority_baseline"):
        assert set(last[key]) >= {"Smiling", "Eyeglasses"}
    assert np.isfinite(last["bound"]) and 0 < last["recon_l1"] < 1
    assert last["eval_images"] > 0 and last["eval_draws"] == 8 and last["eval_seconds"] >= 0
    # what each epoch's other parts cost, with previews every epoch here: both measured, both positive
    assert all(ln["preview_seconds"] > 0 and ln["checkpoint_seconds"] > 0 for ln in lines)
    assert sorted(p.name for p in (run / "previews").iterdir()) == ["epoch0001.png", "epoch0002.png"]
    # the label prior comes from the labelled train rows, as probabilities
    prior = meta["ccvae.label_prior"]["Eyeglasses"]
    assert abs(sum(prior) - 1) < 1e-6
    x = torch.rand(3, 3, 32, 32)
    assert model.log_q_y(model.split(model.encode(x)[0])[0]).shape == (3, 11, 2)


def test_resume_continues_where_it_stopped(avatar_dir_200, tmp_path):
    """An in-process stop (--max-steps) then --resume equals one uninterrupted run, bit for bit."""
    full = train(opts_for(avatar_dir_200, tmp_path, epochs=3, preview_every=0))
    part = train(opts_for(avatar_dir_200, tmp_path, epochs=3, preview_every=0, max_steps=7))
    resumed = train(opts_for(avatar_dir_200, tmp_path), resume=str(part), overrides={"max_steps": 0})
    a = load_file(full / "model.safetensors")
    b = load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_kill_9_matches_an_uninterrupted_run(avatar_dir_200, tmp_path):
    common = ["--image-size", 32, "--epochs", 3, "--batch-size", 32, "--draws", 8, "--lr", 1e-3,
              "--z-style", 4, "--preview-every", 0, "--workers", 1, "--device", "cpu",
              "--cache-dir", tmp_path / "cache", "--seed", 5]
    ref = run_cli("train", avatar_dir_200, *common, "--out", tmp_path / "ref", check=True)
    ref_run = Path(ref.stdout.strip().splitlines()[-1])

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ccvae_tools", "train", str(avatar_dir_200),
                             *map(str, common), "--out", str(out), "--checkpoint-minutes", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        states = list(out.glob(f"*/{STATE_FILE}"))
        if states:
            try:
                st = load_state(states[0])
            except Exception:
                st = None
            if st is not None and st["global_step"] >= 7:  # half of 3 epochs x 5 steps
                proc.send_signal(signal.SIGKILL)
                killed_at = st["global_step"]
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    run = next(out.glob("0*"))
    assert read_metadata(run / "model.safetensors")  # the interrupted run is usable as it is
    res = run_cli("train", "--resume", run, "--out", out)
    assert res.returncode == 0, res.stderr
    a = load_file(ref_run / "model.safetensors")
    b = load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_non_finite_loss_stops_with_the_last_checkpoint_intact(avatar_dir_200, tmp_path, monkeypatch):
    from ccvae_tools.model.network import CCVAE

    real = CCVAE.forward
    calls = {"n": 0}

    def sometimes_nan(self, *a, **k):
        terms = real(self, *a, **k)
        calls["n"] += 1
        if calls["n"] > 6:  # the first epoch (5 steps) trains and is saved, then the loss turns NaN
            return terms._replace(bound=terms.bound * float("nan"))
        return terms

    monkeypatch.setattr(CCVAE, "forward", sometimes_nan)
    with pytest.raises(TrainingError, match="non-finite loss at epoch 2.*intact"):
        train(opts_for(avatar_dir_200, tmp_path, preview_every=0))
    run = next((tmp_path / "runs").glob("0*"))
    model, meta = load_model(run / "model.safetensors")
    assert meta["ccvae.train"]["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_errors_are_one_line_with_exit_codes(tmp_path):
    r = run_cli("train")
    assert r.returncode == 2 and "DATA" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", tmp_path / "missing")
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train", tmp_path, "--preset", "nope")
    assert r.returncode == 2 and "preset" in r.stderr
    r = run_cli("train", "--resume", tmp_path)
    assert r.returncode == 2 and "not a run folder" in r.stderr


def test_torchrun_two_processes_on_the_cpu(avatar_dir_200, tmp_path):
    """The same command under torchrun (DDP, gloo on the CPU) trains and writes one run."""
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
            "-m", "ccvae_tools", "train", str(avatar_dir_200), "--image-size", "32", "--epochs", "1",
            "--batch-size", "32", "--draws", "8", "--z-style", "4", "--preview-every", "0", "--workers", "1",
            "--device", "cpu", "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
            "--style-adversary", "1",             # the adversary is wrapped in DDP too
            "--swap-cycle", "1",                  # the cycle uses the model outside DDP's forward
            "--style-decorrelate", "1"]           # the processes pool z_s for the penalty
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    model, meta = load_model(runs[0] / "model.safetensors")
    assert meta["ccvae.train"]["images_seen"] == 160  # 5 steps x 2 ranks x 16
    lines = (runs[0] / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["adversary_loss"] > 0
    assert json.loads(lines[0])["swap_cycle_loss"] > 0
    assert json.loads(lines[0])["style_r2"] > 0


def test_torchrun_one_process_joins_a_group(avatar_dir_200, tmp_path):
    """torchrun with a single process runs the DDP path too (gloo here, NCCL on a GPU)."""
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", "29519",
            "-m", "ccvae_tools", "train", str(avatar_dir_200), "--image-size", "32", "--epochs", "1",
            "--batch-size", "32", "--draws", "8", "--z-style", "4", "--preview-every", "0", "--workers", "1",
            "--device", "cpu", "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "distributed: 1 process, backend gloo" in res.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1


@pytest.mark.slow
def test_compile_trains_on_the_cpu(avatar_dir_200, tmp_path):
    """--compile default (inductor; about a minute of compiling on 2 cores): trains, and its first
    epoch's mean loss is near the eager run's (not equal: compiled code draws its own random numbers
    for the reparameterisation and the q^ draws, so the two runs see other noise)."""
    eager = train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0))
    compiled = train(opts_for(avatar_dir_200, tmp_path, epochs=1, preview_every=0, compile="default"))
    losses = [json.loads((r / "metrics.jsonl").read_text().splitlines()[0])["train_loss"] for r in (eager, compiled)]
    assert losses[1] == pytest.approx(losses[0], rel=0.05)


def test_bf16_on_a_cpu_without_bf16_says_it_is_emulated(avatar_dir_200, tmp_path, capsys):
    from ccvae_tools.util.device import native_bf16

    train(opts_for(avatar_dir_200, tmp_path, precision="bf16", epochs=1, preview_every=0, max_steps=1))
    said = "emulated" in capsys.readouterr().err
    assert said == (not native_bf16())


def test_precision_options_on_the_cpu(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, precision="bf16", epochs=1, preview_every=0))
    model, meta = load_model(run / "model.safetensors")
    assert meta["ccvae.train"]["options"]["precision"] == "bf16"
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        train(opts_for(avatar_dir_200, tmp_path, precision="fp16", device="cpu"))
