"""The shipped default model: the README's first command works from a source checkout, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_readme_main_job_writes_the_gif_with_the_default_weights(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CCVAE_MODEL"}
    out = tmp_path / "face.gif"
    r = subprocess.run([sys.executable, "-m", "ccvae_tools", "gif", str(ROOT / "weights/examples/glasses.png"),
                        "--size", "128", "--probability", "-o", str(out), "--frames", "16"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    g = Image.open(out)
    assert g.n_frames > 1 and g.info.get("loop") == 0


def test_default_model_card_and_labels():
    r = subprocess.run([sys.executable, "-m", "ccvae_tools", "labels"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "CCVAE_MODEL"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["Smiling", "Mouth_Slightly_Open", "Eyeglasses"]
    from ccvae_tools.model.weights import read_metadata

    meta = read_metadata(ROOT / "weights/avatars64.safetensors")
    assert "Pablo Stanley" in meta["modelspec.license"]
    m = meta["ccvae.metrics"]
    assert m["source"] == "ccvae eval" and m["split"] == "test"
    assert all(m["accuracy"][k] > m["majority_baseline"][k] for k in m["accuracy"])


def test_the_shipped_typeface_model_reads_unseen_letters_by_name(tmp_path):
    """`-m fonts32` finds the second shipped model; it reads letters of families it never saw."""
    import json

    fonts = ROOT / "weights/examples/fonts"
    r = subprocess.run([sys.executable, "-m", "ccvae_tools", "classify", "-m", "fonts32", "--json",
                        str(fonts / "g-arimo.png"), str(fonts / "k-arimo-bold.png"), str(fonts / "a-tinos-bolditalic.png"),
                        str(fonts / "g-tinos.png")],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "CCVAE_MODEL"},
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    predicted = [o["predicted"] for o in out]
    assert [p["char"] for p in predicted] == ["g", "k", "a", "g"]
    assert [p["Bold"] for p in predicted] == ["0", "1", "1", "0"]
    assert [p["Italic"] for p in predicted] == ["0", "0", "1", "0"]
    assert [p["Serif"] for p in predicted] == ["0", "0", "1", "1"]
