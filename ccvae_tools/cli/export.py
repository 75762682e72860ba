"""export: the model as ONNX files with a JSON spec, for runtimes without torch (`model/export.py`)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ccvae_tools.cli import io as cli_io
from ccvae_tools.cli.params import QUIET, Commands
from ccvae_tools.util.console import info
from ccvae_tools.util.text import safe_text

commands = Commands()
register = commands.register


@commands.command("export", epilog="""Examples:

  ccvae export weights/avatars64.safetensors --onnx onnx/

  ccvae export runs/00003-celeba-sup0.06 --onnx runs/00003-celeba-sup0.06/onnx

  Writes encoder.onnx, decoder.onnx, classifier.onnx and ccvae.json (names, shapes, labels with
  their slices of z and prior means, preprocessing) into DIR, made if missing, and checks them with
  onnxruntime against the model. Needs the extra: pip install 'ccvae-tools[export]'. The README
  has an edit in a dozen lines of numpy and onnxruntime; docs/onnx.md describes the files.
""")
def export_cmd(
    weights: Optional[str] = typer.Argument(None, help="Weights file or run folder (default: as --model).",
                                            metavar="[WEIGHTS]", show_default=False),
    onnx_dir: str = typer.Option(..., "--onnx", metavar="DIR", show_default=False,
                                 help="Folder for the three ONNX files (dynamic batch axis) and ccvae.json."),
    quiet: bool = QUIET,
) -> None:
    """Export the encoder, decoder and classifier as ONNX files, with a JSON of names, shapes and preprocessing."""
    from ccvae_tools.model.export import require_onnx

    require_onnx()                       # before loading anything: the one line naming the extra
    path = cli_io.resolve_model_path(weights, "WEIGHTS" if weights else "--model")
    from ccvae_tools.model.export import check_export, export_onnx
    from ccvae_tools.model.weights import load_model

    model, meta = load_model(path)
    written = export_onnx(model, meta, onnx_dir, source=path.name)
    worst = check_export(model, onnx_dir)
    for p in written:
        sys.stdout.write(f"{safe_text(p)}\n")
    info(f"checked with onnxruntime at batch sizes 1 and 3: largest difference from PyTorch {worst:.2g}")
    cli_io.say_model(path, quiet)
