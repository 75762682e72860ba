"""The GPU path, checked where a CUDA GPU exists (benchmarks/gpu_check.sh runs these first); skipped
with the reason elsewhere. Each test is small: a tiny model on the 200 generated avatars."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ccvae_tools.data.base import Label
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.objective.bound import ccvae_bound, training_loss
from ccvae_tools.training.loop import train
from helpers.options import opts_for

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]


def _model(device: str) -> CCVAE:
    torch.manual_seed(0)
    labels = [Label("a"), Label("b"), Label("c", ("x", "y", "z"))]
    return CCVAE(ModelConfig(image_size=32, labels=labels, z_style=6)).to(device)


def test_a_cuda_step_equals_the_cpu_step():
    """The same model, batch and reparameterisation noise give the same loss and gradients on the
    GPU as on the CPU (TF32 off; float tolerance). Unlabelled rows, so that the bound has no q^
    draws, whose noise comes from each device's own generator."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 32, 32, generator=g)
    y = torch.zeros(16, 3, dtype=torch.long)
    observed = torch.zeros(16, 3, dtype=torch.bool)
    grads, losses = [], []
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for device in ("cpu", "cuda"):
        model = _model(device)
        eps = torch.randn(16, model.cfg.z_dim, generator=torch.Generator().manual_seed(2)).to(device)
        terms = ccvae_bound(model, x.to(device), y.to(device), observed.to(device), draws=4, eps=eps)
        loss = training_loss(terms, classifier_weight=10.0)
        loss.backward()
        losses.append(float(loss))
        grads.append([p.grad.detach().cpu() for p in model.parameters()])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)


def test_fp16_with_the_scaler_trains(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, device="cuda", precision="fp16", epochs=1, preview_every=0))
    weights = load_file(run / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())


def _deterministic_train(data, tmp_path, **kw):
    """A training run in a fresh process with CUDA's deterministic algorithms (atomics in the
    convolutions' and gathers' backward passes would otherwise make two runs differ)."""
    code = ("import sys, torch; torch.use_deterministic_algorithms(True); sys.path.insert(0, 'tests')\n"
            "from helpers.options import opts_for\nfrom ccvae_tools.training.loop import train\n"
            f"kw = {kw!r}; resume = kw.pop('resume', None); over = kw.pop('overrides', None)\n"
            f"print(train(opts_for({str(data)!r}, __import__('pathlib').Path({str(tmp_path)!r}), device='cuda', "
            "preview_every=0, **kw), resume=resume, overrides=over))\n")
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_resume_on_cuda_is_exact(avatar_dir_200, tmp_path):
    full = _deterministic_train(avatar_dir_200, tmp_path, epochs=3)
    part = _deterministic_train(avatar_dir_200, tmp_path, epochs=3, max_steps=7)
    resumed = _deterministic_train(avatar_dir_200, tmp_path, resume=part, overrides={"max_steps": 0})
    a = load_file(os.path.join(full, "model.safetensors"))
    b = load_file(os.path.join(resumed, "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_images_live_on_the_gpu_when_they_fit(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, device="cuda", epochs=1, preview_every=0))
    assert (run / "model.safetensors").exists()
    from ccvae_tools.training.batches import fits_on_device
    import numpy as np

    assert fits_on_device(np.zeros((200, 3, 32, 32), dtype=np.uint8), torch.device("cuda"))


def test_ddp_with_nccl_at_world_size_one(avatar_dir_200, tmp_path):
    """torchrun with one process joins an NCCL group and trains through DistributedDataParallel."""
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", "29531",
            "-m", "ccvae_tools", "train", str(avatar_dir_200), "--image-size", "32", "--epochs", "1",
            "--batch-size", "32", "--draws", "8", "--z-style", "4", "--preview-every", "0", "--workers", "1",
            "--device", "cuda", "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
            "--style-adversary", "1"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "distributed: 1 process, backend nccl" in res.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_compiled_step_trains_on_cuda(avatar_dir_200, tmp_path):
    run = train(opts_for(avatar_dir_200, tmp_path, device="cuda", epochs=1, preview_every=0, compile="default"))
    weights = load_file(run / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
