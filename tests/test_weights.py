"""The weights file: round trip, metadata, and a clear error for every broken file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from ccvae_tools.data.base import Label, Preprocess
from ccvae_tools.util.errors import WeightsError
from ccvae_tools.model.network import CCVAE, ModelConfig
from ccvae_tools.model.weights import build_metadata, load_model, read_metadata, save_model


def small_model() -> CCVAE:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, channels=3, labels=[Label("Smiling"), Label("Hair", ("a", "b", "c"))],
                      label_dims=[1, 2], z_style=4)
    m = CCVAE(cfg)
    m.set_label_prior(torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 2.0]]))
    return m


@pytest.fixture()
def saved(tmp_path):
    m = small_model()
    path = tmp_path / "m.safetensors"
    meta = build_metadata(m, Preprocess(32, 3, "center", None), data={"name": "test"}, train={"epochs": 1},
                          metrics={"mean_accuracy": 0.5}, license="MIT")
    save_model(m, path, meta)
    return m, path


def test_round_trip_gives_the_same_model(saved):
    m, path = saved
    loaded, meta = load_model(path)
    x = torch.rand(2, 3, 32, 32)
    m.eval()
    assert torch.equal(m.encode(x)[0], loaded.encode(x)[0])
    assert torch.equal(m.decode(torch.ones(2, m.cfg.z_dim)), loaded.decode(torch.ones(2, m.cfg.z_dim)))
    assert torch.allclose(loaded.label_prior(), m.label_prior())
    assert meta["ccvae.labels"][1] == {"name": "Hair", "classes": ["a", "b", "c"], "dim": 2}
    assert meta["ccvae.preprocess"]["size"] == 32
    assert meta["ccvae.metrics"] == {"mean_accuracy": 0.5}
    assert meta["format"] == "pt" and meta["modelspec.license"] == "MIT"
    # pi is stored as probabilities, add-one smoothed class frequencies
    assert meta["ccvae.label_prior"]["Smiling"] == pytest.approx([2 / 5, 3 / 5])


def test_metadata_is_read_without_torch(saved):
    _, path = saved
    code = ("import sys; from ccvae_tools.model.weights import read_metadata; "
            f"m = read_metadata({str(path)!r}); assert 'torch' not in sys.modules; "
            "print(m['ccvae.config']['image_size'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "32"


def test_truncated_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated"):
        load_model(bad)
    bad.write_bytes(data[:5])
    with pytest.raises(WeightsError, match="truncated|not a safetensors"):
        read_metadata(bad)


@pytest.mark.parametrize("content", [b"", b"hello, this is a text file\n" * 10, b"\x00" * 64])
def test_not_a_safetensors_file(tmp_path, content):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(content)
    with pytest.raises(WeightsError, match="safetensors|truncated|empty"):
        load_model(bad)


def test_missing_and_directory(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="directory"):
        load_model(tmp_path)


def test_another_model_family(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"layer.weight": torch.zeros(3, 3)}, str(other), metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="not a ccvae model"):
        load_model(other)


def test_missing_metadata(saved, tmp_path):
    m, _ = saved
    meta = build_metadata(m, Preprocess(32, 3, "center", None))
    del meta["ccvae.labels"]
    path = tmp_path / "nolabels.safetensors"
    save_model(m, path, meta)
    with pytest.raises(WeightsError, match="missing metadata: ccvae.labels"):
        load_model(path)


def test_malformed_metadata(saved, tmp_path):
    m, _ = saved
    meta = build_metadata(m, Preprocess(32, 3, "center", None))
    meta["ccvae.config"] = "{not json"
    path = tmp_path / "bad.safetensors"
    save_model(m, path, meta)
    with pytest.raises(WeightsError, match="malformed metadata ccvae.config"):
        load_model(path)


def test_config_that_does_not_match_the_tensors(saved, tmp_path):
    m, _ = saved
    meta = build_metadata(m, Preprocess(32, 3, "center", None))
    cfg = json.loads(meta["ccvae.config"])
    cfg["z_style"] = 9
    meta["ccvae.config"] = json.dumps(cfg)
    path = tmp_path / "mismatch.safetensors"
    save_model(m, path, meta)
    with pytest.raises(WeightsError, match="shape"):
        load_model(path)


def test_save_into_missing_folder_leaves_nothing(saved, tmp_path):
    m, _ = saved
    with pytest.raises(WeightsError, match="does not exist"):
        save_model(m, tmp_path / "missing" / "m.safetensors", build_metadata(m, Preprocess()))
    assert not (tmp_path / "missing").exists()


def test_failed_save_keeps_the_previous_file(saved, monkeypatch):
    m, path = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save", boom)
    with pytest.raises(WeightsError, match="disk full"):
        save_model(m, path, build_metadata(m, Preprocess()))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_other_architecture_in_ccvae_metadata(saved, tmp_path):
    m, _ = saved
    meta = build_metadata(m, Preprocess(32, 3, "center", None))
    cfg = json.loads(meta["ccvae.config"])
    cfg["architecture"] = "ccvae-resnet"
    meta["ccvae.config"] = json.dumps(cfg)
    path = tmp_path / "arch.safetensors"
    save_model(m, path, meta)
    with pytest.raises(WeightsError, match="architecture 'ccvae-resnet'"):
        load_model(path)
