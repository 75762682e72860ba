"""The model as ONNX files, for runtimes without torch (`ccvae export WEIGHTS --onnx DIR`).

Three graphs, each with a dynamic batch axis, and a JSON spec beside them (`ccvae.json`) that says
everything needed to use them: input and output names and shapes, the image geometry, the labels
with their slices of z and their prior means and scales, and the preprocessing of an 8-bit image.

    encoder.onnx     image (N, C, H, W) float32 in [0, 1]  ->  mu (N, Z), sigma (N, Z)       q(z|x)
    decoder.onnx     z (N, Z)                              ->  image (N, C, H, W) in [0, 1]  mean of p(x|z)
    classifier.onnx  z_c (N, sum d_i) = z[:, :z_char]      ->  probs (N, L, K_max)           q(y_i | z_c^i)

The graphs compute what `CCVAE.encode`, `decode` and `log_q_y(...).exp()` compute (docs/onnx.md
has an edit with onnxruntime and numpy only). onnx and onnxruntime are the optional extra `export`.
"""

from __future__ import annotations

import inspect
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ccvae_tools.model.card import crop_in_words
from ccvae_tools.util.atomic import atomic_write
from ccvae_tools.util.errors import CcvaeError

SPEC_NAME = "ccvae.json"
SPEC_FORMAT = "ccvae-onnx/1"
OPSET = 17                 # Einsum and LogSoftmax as onnxruntime >= 1.14 runs them everywhere
EXTRA_HINT = "pip install 'ccvae-tools[export]'"
CHECK_TOLERANCE = 1e-4     # largest |onnxruntime - torch| accepted by `check_export`


def require_onnx() -> None:
    """onnx and onnxruntime, or one line naming the extra that installs them."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise CcvaeError(f"exporting to ONNX needs {' and '.join(missing)}, which are not installed: "
                         f"{EXTRA_HINT}")


class _Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        return self.model.encode(image)


class _Decoder(_Encoder):
    def forward(self, z: torch.Tensor):
        return self.model.decode(z)


class _Classifier(_Encoder):
    def forward(self, z_c: torch.Tensor):
        # probabilities, not log q: the classes a label lacks (padding up to K_max) are 0, not -inf
        return self.model.log_q_y(z_c).exp()


def graphs(model) -> dict[str, tuple[nn.Module, dict[str, tuple], dict[str, tuple]]]:
    """name -> (module, {input: shape}, {output: shape}); "batch" is the dynamic axis."""
    cfg = model.cfg
    image = ("batch", cfg.channels, cfg.image_size, cfg.image_size)
    return {
        "encoder": (_Encoder(model).eval(), {"image": image},
                    {"mu": ("batch", cfg.z_dim), "sigma": ("batch", cfg.z_dim)}),
        "decoder": (_Decoder(model).eval(), {"z": ("batch", cfg.z_dim)}, {"image": image}),
        "classifier": (_Classifier(model).eval(), {"z_c": ("batch", cfg.z_char)},
                       {"probs": ("batch", len(cfg.labels), model.kmax)}),
    }


def _onnx_bytes(module: nn.Module, inputs: dict[str, tuple], outputs: dict[str, tuple]) -> bytes:
    """One graph, traced on a batch of 2 with the batch axis declared dynamic.

    The TorchScript exporter (dynamo=False), not the torch.export one that torch >= 2.9 defaults to:
    for these plain feed-forward graphs it gives the same numbers, takes about 1 s on a 2-core CPU
    where the other takes 6 s and prints its progress on stdout (which carries data here), and it
    needs no onnxscript. Its deprecation warnings are not the user's concern and are silenced. Older
    torch (< 2.5) has no `dynamo` argument and uses this exporter anyway."""
    example = tuple(torch.zeros((2, *shape[1:])) for shape in inputs.values())
    axes = {name: {0: "batch"} for name in (*inputs, *outputs)}
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buffer, input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, **legacy)
    return buffer.getvalue()


def export_onnx(model, meta: dict, folder: str | Path, source: str = "") -> list[Path]:
    """Write encoder.onnx, decoder.onnx, classifier.onnx and ccvae.json into `folder` (made if
    missing); returns their paths. `model` is a CCVAE (eval mode, moved to the CPU here)."""
    require_onnx()
    import onnx

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CcvaeError(f"{folder}: is a file; --onnx takes a folder")
    folder.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    written = []
    for name, (module, inputs, outputs) in graphs(model).items():
        data = _onnx_bytes(module, inputs, outputs)
        onnx.checker.check_model(onnx.load_from_string(data))
        written.append(atomic_write(folder / f"{name}.onnx", lambda f, d=data: f.write(d)))
    text = json.dumps(onnx_spec(model, meta, source), indent=1, allow_nan=False) + "\n"
    written.append(atomic_write(folder / SPEC_NAME, lambda f: f.write(text.encode("utf-8"))))
    return written


def onnx_spec(model, meta: dict, source: str = "") -> dict:
    """The JSON beside the graphs: names, shapes, geometry, labels and preprocessing."""
    cfg = model.cfg
    spec = {"format": SPEC_FORMAT, "source": source, "title": str(meta.get("modelspec.title", "")),
            "image_size": cfg.image_size, "channels": cfg.channels,
            "z_dim": cfg.z_dim, "z_char": cfg.z_char, "z_style": cfg.z_style,
            "preprocess": preprocess_spec(meta["ccvae.preprocess"]),
            "postprocess": "decoder image (N, C, H, W) in [0, 1]: x 255, round, clip to 0..255, uint8; "
                           "channels last (H, W, C) for an image file",
            "labels": label_specs(model)}
    for name, (_, inputs, outputs) in graphs(model).items():
        spec[name] = {"file": f"{name}.onnx", "input": next(iter(inputs)),
                      "inputs": {k: list(v) for k, v in inputs.items()},
                      "outputs": {k: list(v) for k, v in outputs.items()}}
    spec["classifier"]["input_from_z"] = {"start": 0, "stop": cfg.z_char,
                                          "how": "z_c = z[:, 0:z_char] (the labels' blocks come first)"}
    return spec


def label_specs(model) -> list[dict]:
    """Per label: its place in z (z[:, start:stop]) and in the classifier's output (probs[:, index,
    :len(classes)]), its prior p(y) and the means and scales of p(z_c^i | y_i = k), one row per class."""
    loc, scale = (t.detach().cpu().numpy().astype(np.float64) for t in model.prior_params())
    prior = model.label_prior().detach().cpu().numpy().astype(np.float64)
    out = []
    for i, lab in enumerate(model.cfg.labels):
        sl, k, d = model.label_slice(i), lab.num_classes, model.cfg.label_dims[i]
        out.append({"name": lab.name, "index": i, "classes": list(lab.classes), "slice": [sl.start, sl.stop],
                    "prior": prior[i, :k].tolist(), "prior_mean": loc[i, :k, :d].tolist(),
                    "prior_scale": scale[i, :k, :d].tolist()})
    return out


def preprocess_spec(pre: dict) -> dict:
    """How an image file becomes the encoder's input (what `data/images.py` `load_image` does,
    then `LoadedModel.to_tensor`), as data and as steps in words."""
    size, channels = int(pre["size"]), int(pre["channels"])
    crop = crop_in_words(pre.get("crop"), pre.get("crop_size"))
    mode = "RGB" if channels == 3 else "L (grayscale)"
    return {"size": size, "channels": channels, "crop": pre.get("crop"), "crop_size": pre.get("crop_size"),
            "mode": "RGB" if channels == 3 else "L", "scale": 1.0 / 255.0, "layout": "NCHW", "dtype": "float32",
            "steps": [f"decode the image; apply its EXIF orientation; composite transparency onto white; "
                      f"convert to {mode}", crop,
                      f"resize to {size} x {size} px: Lanczos when shrinking, bicubic when enlarging",
                      "uint8 (H, W, C) -> (C, H, W), float32, divided by 255 (values in [0, 1])",
                      "stack images on a first, batch axis: (N, C, H, W)"]}


def check_export(model, folder: str | Path, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Run the written graphs with onnxruntime on random inputs of each batch size and return the
    largest difference from the PyTorch model; over CHECK_TOLERANCE is an error."""
    import onnxruntime as ort

    folder, worst = Path(folder), 0.0
    g = torch.Generator().manual_seed(seed)
    for name, (module, inputs, _) in graphs(model.to("cpu").eval()).items():
        session = ort.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        for n in batch_sizes:
            shape = (n, *next(iter(inputs.values()))[1:])
            x = torch.rand(shape, generator=g) if name == "encoder" else torch.randn(shape, generator=g)
            with torch.no_grad():
                want = module(x)
            want = want if isinstance(want, tuple) else (want,)
            got = session.run(None, {next(iter(inputs)): x.numpy()})
            worst = max([worst] + [float(np.abs(a - b.numpy()).max()) for a, b in zip(got, want)])
    if worst > CHECK_TOLERANCE:
        raise CcvaeError(f"{folder}: the ONNX graphs differ from the model by up to {worst:.3g} "
                         f"(more than {CHECK_TOLERANCE:g}); this torch/onnx pair exports it wrongly")
    return worst
