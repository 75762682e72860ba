"""`ccvae export --onnx`: three ONNX graphs with a dynamic batch axis that onnxruntime runs to the
PyTorch model's numbers, the JSON beside them, the one-line error without the extra, and the
docs/onnx.md example (numpy and onnxruntime only) run as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.cli import assert_one_line, run_cli

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("clean_env")      # conftest.py
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory) -> Path:
    """A grayscale model with a 3-class label of 2 dims beside a binary one: padded classes and dims."""
    from ccvae_tools.data.base import Label, Preprocess
    from ccvae_tools.model.network import CCVAE, ModelConfig
    from ccvae_tools.model.weights import build_metadata, save_model

    torch.manual_seed(1)
    cfg = ModelConfig(image_size=32, channels=1, labels=[Label("Bold"), Label("kind", ("x", "y", "z"))],
                      label_dims=[1, 2], z_style=3, widths=(8, 8, 8), hidden=16)
    m = CCVAE(cfg)
    m.set_label_prior(torch.tensor([[0.0, 2.0], [1.0, 1.0], [1.0, 0.0]]))
    meta = build_metadata(m, Preprocess(32, 1, "center", None), data={"name": "mc"}, title="multi-class")
    return save_model(m, tmp_path_factory.mktemp("mc") / "mc.safetensors", meta)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory) -> Path:
    """The tiny model (conftest.py) exported by the command (run in-process; it returns on success)."""
    from ccvae_tools.cli import main

    out = tmp_path_factory.mktemp("onnx") / "onnx"
    main(["export", str(tiny), "--onnx", str(out)])
    return out


def _session(folder: Path, name: str):
    return ort.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def _torch_outputs(model, name: str, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        if name == "encoder":
            return model.encode(x)
        if name == "decoder":
            return (model.decode(x),)
        return (model.log_q_y(x).exp(),)


def _assert_matches(weights: Path, folder: Path) -> None:
    """Every graph at batch sizes 1 and 3 within TOLERANCE of PyTorch, its batch axis the input's."""
    from ccvae_tools.model.weights import load_model

    model, _ = load_model(weights)
    spec = json.loads((folder / "ccvae.json").read_text())
    g = torch.Generator().manual_seed(7)
    for name in ("encoder", "decoder", "classifier"):
        session = _session(folder, name)
        (input_name, shape), = spec[name]["inputs"].items()
        assert [i.name for i in session.get_inputs()] == [input_name]
        assert [o.name for o in session.get_outputs()] == list(spec[name]["outputs"])
        assert session.get_inputs()[0].shape[0] == "batch"
        for n in (1, 3):
            x = torch.rand((n, *shape[1:]), generator=g) if name == "encoder" else \
                3 * torch.randn((n, *shape[1:]), generator=g)
            got = session.run(None, {input_name: x.numpy()})
            want = _torch_outputs(model, name, x)
            for (out_name, out_shape), a, b in zip(spec[name]["outputs"].items(), got, want):
                assert a.shape == (n, *out_shape[1:]), (name, out_name, a.shape)
                np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=TOLERANCE, err_msg=f"{name}.{out_name}")


def test_onnx_graphs_match_pytorch_at_batch_sizes_1_and_3(tiny, exported):
    assert sorted(p.name for p in exported.iterdir()) == ["ccvae.json", "classifier.onnx", "decoder.onnx",
                                                          "encoder.onnx"]
    _assert_matches(tiny, exported)


def test_padded_classes_and_dims_export_too(multiclass, tmp_path, capsys):
    code, out, err = run_cli(["export", multiclass, "--onnx", tmp_path / "mc"], capsys)
    assert code == 0, err
    assert out.splitlines() == [str(tmp_path / "mc" / f) for f in
                                ("encoder.onnx", "decoder.onnx", "classifier.onnx", "ccvae.json")]
    assert "checked with onnxruntime" in err
    _assert_matches(multiclass, tmp_path / "mc")
    probs = _session(tmp_path / "mc", "classifier").run(None, {"z_c": np.zeros((2, 3), np.float32)})[0]
    assert probs.shape == (2, 2, 3) and np.all(probs[:, 0, 2] == 0)        # Bold has no third class
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)


def test_the_json_says_names_shapes_labels_and_preprocessing(tiny, exported):
    from ccvae_tools.model.weights import load_model

    model, _ = load_model(tiny)
    spec = json.loads((exported / "ccvae.json").read_text())
    assert (spec["image_size"], spec["channels"], spec["z_dim"], spec["z_char"]) == (32, 3, 7, 3)
    assert spec["encoder"]["inputs"] == {"image": ["batch", 3, 32, 32]}
    assert spec["decoder"]["outputs"] == {"image": ["batch", 3, 32, 32]}
    assert spec["classifier"]["inputs"] == {"z_c": ["batch", 3]}
    assert spec["classifier"]["input_from_z"]["stop"] == model.cfg.z_char
    assert spec["preprocess"]["scale"] == 1 / 255 and spec["preprocess"]["mode"] == "RGB"
    assert [lab["name"] for lab in spec["labels"]] == ["Smiling", "Eyeglasses", "Blond_Hair"]
    eyeglasses = spec["labels"][1]
    assert eyeglasses["slice"] == [1, 2] and eyeglasses["prior_mean"] == [[-6.0], [6.0]]   # helpers/tiny_model.py
    assert eyeglasses["prior_scale"][0][0] == pytest.approx(float(model.prior_scale()[1, 0, 0].detach()))


def test_missing_extra_is_one_line_naming_it(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)             # `import onnxruntime` fails
    code, out, err = run_cli(["export", tiny, "--onnx", tmp_path / "x"], capsys)
    assert_one_line(code, err, (1,), "onnxruntime", "ccvae-tools[export]")
    assert not (tmp_path / "x").exists()


def test_onnx_dir_that_is_a_file_is_one_line(tiny, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(["export", tiny, "--onnx", tmp_path / "f"], capsys)
    assert_one_line(code, err, (1,), "is a file")


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- onnx-example:begin -->\n```python\n(.*?)```\n<!-- onnx-example:end -->", text, re.S)
    assert match, "the README has no marked ONNX example"
    return match.group(1)


def test_readme_example_edits_an_image_without_torch(tiny, exported, face, tmp_path):
    """The README's ONNX example, run as written with torch made unimportable, gives the image
    PyTorch gives for the same edit (within one level of 8 bits)."""
    from PIL import Image

    from ccvae_tools.data.images import load_image
    from ccvae_tools.model.api import load

    shutil.copytree(exported, tmp_path / "onnx")
    shutil.copy(face, tmp_path / "face.png")
    (tmp_path / "example.py").write_text(_readme_example())
    run = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; "
                          "exec(open('example.py').read())"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    got = np.asarray(Image.open(tmp_path / "edited.png")).transpose(2, 0, 1).astype(int)

    m = load(tiny)
    z = m.encode(load_image(face, m.preprocess)[None])[0]
    i = m.label_names.index("Smiling")
    now = int(m.classify_codes(z)[0, i].argmax())
    z[0, m.model.label_slice(i)] = m.model.prior_loc[i, 1 - now, :1]
    want = m.decode(z)[0].astype(int)
    assert np.abs(got - want).max() <= 1
    assert np.abs(got - m.decode(m.encode(load_image(face, m.preprocess)[None])[0])[0].astype(int)).max() > 1
