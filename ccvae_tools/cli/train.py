"""`ccvae train`: the command over `ccvae_tools.training`. Its flags are made from the fields of
`TrainOptions` (training/options.py), where each option is declared once."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional, get_args, get_type_hints

import typer

from ccvae_tools.cli.params import Commands, split_list
from ccvae_tools.training.options import TrainOptions, flag_of, help_of, option_fields
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.text import safe_text

commands = Commands()
register = commands.register

# flags of the command that are not training options, and the option each follows in --help
RESUME = typer.Option(None, "--resume", help="RUN folder, or auto: continue it exactly.")
DRY_RUN = typer.Option(False, "--dry-run", help="Resolve and write the options, then stop.")


def _flag_type(hint: Any, comma_list: bool) -> Any:
    """The flag's type: the field's type without None (a comma-separated list is a string)."""
    if comma_list:
        return Optional[str]
    base = [t for t in get_args(hint) if t is not type(None)] or [hint]
    return Optional[base[0]]


def _param(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _parameters() -> list[inspect.Parameter]:
    hints = get_type_hints(TrainOptions)
    data = typer.Argument(None, help=TrainOptions.__dataclass_fields__["data"].metadata["help"])
    params = [_param("data", data, Optional[Path])]
    for f in option_fields():
        meta = f.metadata
        if not meta["cli"]:
            continue
        flag = typer.Option(None, flag_of(f.name), help=help_of(f), metavar=meta["metavar"], envvar=meta["envvar"])
        params.append(_param(f.name, flag, _flag_type(hints[f.name], meta["comma_list"])))
        if f.name == "out":
            params.append(_param("resume", RESUME, Optional[str]))
    return params + [_param("dry_run", DRY_RUN, bool)]


TRAIN_EXAMPLES = """Examples:

  ccvae train ~/data/celeba --preset paper --sup-frac 0.06

  ccvae data avatars data/avatars --n 20000 && ccvae train data/avatars --preset avatars

  ccvae train labels.csv --labels smiling,glasses --epochs 30 --image-size 64

  ccvae train data/avatars --init-from weights/avatars64.safetensors --epochs 3   (fine-tune)

  ccvae train --resume auto            (continue the newest run under runs/, or under --out DIR)

  torchrun --nproc-per-node 4 -m ccvae_tools train ~/data/celeba --preset paper --device cuda
"""

def train_cmd(data: Optional[Path] = None, resume: Optional[str] = None, dry_run: bool = False,
              **given: Any) -> None:
    """Train a CCVAE on a data folder; writes a numbered run folder with model.safetensors."""
    from ccvae_tools.training.loop import train
    from ccvae_tools.training.options import resolve_options
    from ccvae_tools.training.resume import RunComplete
    from ccvae_tools.util.console import info

    if data is None and resume is None:
        raise UsageError("give a DATA folder to train on, or --resume RUN|auto")
    for f in option_fields():
        if f.metadata["comma_list"] and f.name in given:
            given[f.name] = split_list(given[f.name])
    explicit = {"data": str(data) if data is not None else None, **given}
    opts = resolve_options(explicit)
    overrides = {k: v for k, v in explicit.items() if v is not None and k != "data"}
    try:
        run = train(opts, resume=resume, dry_run=dry_run, overrides=overrides)
    except RunComplete as done:          # not a failure: said on stderr, exit 0
        if done.main:
            info(str(done))
        run = done.run
    if run is not None:
        print(safe_text(run))            # the run folder on stdout, for scripts: run=$(ccvae train ...)


train_cmd.__signature__ = inspect.Signature(_parameters())          # type: ignore[attr-defined]
train_cmd.__annotations__ = {p.name: p.annotation for p in train_cmd.__signature__.parameters.values()}

commands.command("train", epilog=TRAIN_EXAMPLES)(train_cmd)
