"""What the commands share: the command registry and the options that several commands take.

Each command module keeps a `Commands` registry, declares its commands on it with the same
decorator Typer uses, and the app (`cli/app.py`) calls `register(app)` on every module. Options used
by more than one command (`--model`, `--device`, the output options, `--seed`, `--force`,
`--quiet`) are declared here once. Numeric options are declared with `number`, which states their range in --help
and refuses a value outside it (or NaN, or infinity) with one line before the command runs; options
that take one of a few words, with `choice`, which refuses any other word the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import typer

from ccvae_tools.util.device import DEVICE_CHOICES, DEVICE_ENV
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.ranges import SEED_MAX, Range

MODEL_HELP = ("Weights file (.safetensors), or a shipped model by name (avatars64, fonts32); default: "
              "$CCVAE_MODEL, else the shipped default weights.")
DEVICE_HELP = f"{' | '.join(DEVICE_CHOICES)} (auto: the accelerator when present)."


class Commands:
    """The commands of one module; `register(app)` adds them to the app, or to a sub-group of it."""

    def __init__(self, group: str | None = None, help: str | None = None):
        self.group, self.help = group, help
        self.entries: list[tuple[str, dict, Callable]] = []

    def command(self, name: str, **settings: Any) -> Callable[[Callable], Callable]:
        def declare(function: Callable) -> Callable:
            self.entries.append((name, settings, function))
            return function
        return declare

    def register(self, app: typer.Typer) -> None:
        target = app
        if self.group is not None:
            target = typer.Typer(help=self.help, no_args_is_help=True)
            app.add_typer(target, name=self.group)
        for name, settings, function in self.entries:
            target.command(name, **settings)(function)


def number(default: Any, *flags: str, help: str, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, **settings: Any) -> Any:
    """A numeric option whose valid range is declared here, once: --help states it, and a value
    outside it, NaN or infinity is a one-line UsageError naming `flags[0]` and the range (exit 2),
    raised while the arguments are parsed, before any work. typer's own min=/max= would answer
    with a usage block whose message names one bound only; None (an option not given) passes."""
    allowed = Range(minimum, maximum, above)

    def check(value: Any) -> Any:
        if value is not None:
            allowed.check(flags[0], value)
        return value
    return typer.Option(default, *flags, help=f"{help} Range: {allowed.text()}.", callback=check, **settings)


def choice(default: Any, *flags: str, choices: tuple[str, ...], help: str, **settings: Any) -> Any:
    """An option that takes one of `choices` (any case, given back as written in `choices`): another
    value is a one-line UsageError naming `flags[0]` and the choices (exit 2), raised while the
    arguments are parsed, before any work, as `number` does for ranges. `help` should list them."""
    def check(value: Any) -> Any:
        if value is None:
            return value
        key = str(value).strip().lower()
        if key not in choices:
            raise UsageError(f"{flags[0]} {value!r}: unknown value; use one of {', '.join(choices)}")
        return key
    return typer.Option(default, *flags, help=help, callback=check, **settings)


def seed_option(help: str = "Seed of every random draw.") -> Any:
    return number(0, "--seed", minimum=0, maximum=SEED_MAX, help=help)


def model_option() -> Any:
    return typer.Option(None, "--model", "-m", help=MODEL_HELP, metavar="WEIGHTS")


def device_option(hidden: bool = False) -> Any:
    return typer.Option(None, "--device", envvar=DEVICE_ENV, hidden=hidden, metavar="DEVICE",
                        help=DEVICE_HELP if not hidden else "Accepted for uniformity; no model is run.")


MODEL = model_option()
DEVICE = device_option()
OUTPUT = typer.Option(None, "--output", "-o", help="Output file (.png .jpg .webp .gif), or - for stdout.")
FORMAT = typer.Option(None, "--format", help="Format for -o - (png, jpg, webp, gif).")
SIZE = number(None, "--size", minimum=1, maximum=4096,
              help="Tile side in pixels: upscale small images (default: model size).")
RESAMPLE = choice("nearest", "--resample", choices=("nearest", "lanczos"), help="Upscaling: nearest | lanczos")
# the choices of interventions.EDIT_MAPS, the default first (written out: this module loads no torch;
# tests/test_interventions.py checks that the two agree)
EDIT_MAP_CHOICES = ("outward", "quantile")
EDIT_MAP_HELP = ("How an edit moves a label's code to the new class: outward (its distance from its class's mean, "
                 "on the far side of the new class's mean) | quantile (the same quantile of the new class; "
                 "docs/method.md 4.3).")
EDIT_MAP = choice(EDIT_MAP_CHOICES[0], "--map", choices=EDIT_MAP_CHOICES, help=EDIT_MAP_HELP)
SAMPLE = typer.Option(False, "--sample", help="Draw z ~ q(z|x) instead of the posterior mean.")
SEED = seed_option()
FORCE = typer.Option(False, "--force", help="Let an output replace one of the input images (refused "
                     "otherwise).")
# every model command names on stderr the weights it used (cli/io.say_model); this leaves it out
QUIET = typer.Option(False, "--quiet", "-q", help="Leave out the line on stderr naming the weights used (and "
                     "edit's and sample's warnings about labels the model does not read as set).")


def split_list(text: Optional[str]) -> Optional[list[str]]:
    """"a, b,,c" -> ["a", "b", "c"]; None or only commas -> None."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None
