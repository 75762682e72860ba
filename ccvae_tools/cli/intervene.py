"""traverse, sample, edit, swap, interpolate, gif: see and change what a label means in an image.

Each command: read images -> codes (`LoadedModel.codes`: the posterior mean; --sample draws z ~ q(z|x))
-> change codes with `ccvae_tools.interventions` -> decode -> lay out with `ccvae_tools.render` -> write
(`cli_io`) -> name the weights used on stderr (`_Session.done`, unless --quiet). Where each picture
goes is settled before any work (`_target`, `_many_targets`): default names are built from slugs of
the label names, and an output that would replace an input, or two inputs written to one name, are
refused there.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ccvae_tools.cli.params import (DEVICE, EDIT_MAP, FORCE, FORMAT, MODEL, OUTPUT, QUIET, RESAMPLE, SAMPLE, SEED,
                                    SIZE, Commands, number, split_list)
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.text import safe_text, slug

commands = Commands()
register = commands.register


class _Session:
    """A loaded model and the inputs of one command."""

    def __init__(self, model: Optional[str], device: Optional[str], size: Optional[int], quiet: bool):
        from ccvae_tools.cli.io import open_model

        self.m = open_model(model, device)
        self.model = self.m.model
        self.pre = self.m.preprocess
        self.quiet = quiet
        self.scale(size)                # --size against the model's images, before any input is read

    def done(self) -> None:
        """The command's work is written: name the weights it used (`cli_io.say_model`)."""
        from ccvae_tools.cli.io import say_model

        say_model(self.m.path, self.quiet)

    def read(self, inputs: list[str]):
        from ccvae_tools.cli.io import read_inputs

        return read_inputs(inputs, self.pre)

    def label(self, name: str) -> int:
        from ccvae_tools.cli.io import match_label

        return match_label(name, self.m.label_names)

    def assignments(self, sets: list[str]) -> dict[int, int]:
        """--set LABEL=VALUE, each label once: a second --set of one label is refused, not one kept."""
        from ccvae_tools.cli.io import parse_assignment

        out: dict[int, int] = {}
        given: dict[int, str] = {}
        for text in sets:
            i, k = parse_assignment(text, self.m.labels)
            if i in out:
                raise UsageError(f"--set {given[i]} and --set {text} both set label {self.m.label_names[i]!r}; "
                                 f"give each label once")
            out[i], given[i] = k, text
        return out

    def scale(self, size: Optional[int], default_factor: int = 1) -> int:
        if size is None:
            return default_factor
        if size < self.pre.size:
            raise UsageError(f"--size {size}: smaller than the model's {self.pre.size} px images")
        return max(1, round(size / self.pre.size))


def _label_list(labels: Optional[str]) -> Optional[list[str]]:
    """--labels "a,b" as names; None (not given): every label. A value naming none (",") is refused."""
    if labels is None:
        return None
    names = split_list(labels)
    if names is None:
        raise UsageError(f"--labels {labels!r} names no label; give comma-separated label names "
                         f"(e.g. smiling,eyeglasses), or leave --labels out to transfer all")
    return names


def _target(output: Optional[str], default: str, inputs: list[str], force: bool) -> str:
    """Where the one picture goes (-o, else `default`), refused before any work when it is an input."""
    from ccvae_tools.cli.io import check_targets

    target = output if output is not None else default
    check_targets([target], inputs, force)
    return target


def _write(picture, target: str, fmt: Optional[str], announce: bool, durations=None) -> None:
    """Write the picture; print its path when the name was ours (no -o), for scripts to pick up."""
    from ccvae_tools.cli.io import write_image_output

    written = write_image_output(picture, target, fmt=fmt, durations=durations)
    if written is not None and announce:
        print(safe_text(written))


def _is_gif(output: Optional[str], fmt: Optional[str]) -> bool:
    if output == "-":
        return (fmt or "").lower().lstrip(".") == "gif"
    return output is not None and output.lower().endswith(".gif")


def _slug(names: list[str]) -> str:
    """The file-name part for label names (they come from the weights file): slugs joined by '-'."""
    return "-".join(slug(n.lower()) for n in names)


# ----------------------------------------------------------------------------------------------

@commands.command("traverse", epilog="""Examples:

  ccvae traverse face.png --label smiling                 (writes face.smiling.png: input, reconstruction, 9 steps)

  ccvae traverse face.png --label eyeglasses --steps 15 --span 3 -o glasses.png

  ccvae traverse face.png --label smiling --label blond_hair -o grid.png     (2-D: smiling down, blond across)

  ccvae traverse a.png b.png c.png --label wearing_hat -o hats.png          (one row per image)

  ccvae traverse face.png --label smiling -o smile.gif --size 128           (a looping animation)
""")
def traverse_cmd(
    images: List[str] = typer.Argument(..., help="Input images (- = stdin)."),
    label: List[str] = typer.Option(..., "--label", "-l", help="Label to walk; give it twice for a 2-D grid."),
    steps: int = number(9, "--steps", minimum=2, maximum=64, help="Points along each walk."),
    span: float = number(2.0, "--span", minimum=0.0, maximum=20.0,
                         help="Extend past the class means by this many prior sd."),
    frames: int = number(48, "--frames", minimum=8, maximum=400, help="GIF frames per loop."),
    fps: int = number(15, "--fps", minimum=1, maximum=50, help="GIF frames per second."),
    output: Optional[str] = OUTPUT, fmt: Optional[str] = FORMAT, size: Optional[int] = SIZE,
    resample: str = RESAMPLE, sample: bool = SAMPLE, seed: int = SEED, force: bool = FORCE,
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """Walk one label's characteristic latent (input, reconstruction, then the walk); twice: a 2-D grid."""
    import numpy as np

    from ccvae_tools import render
    from ccvae_tools.interventions import traverse, traverse_grid

    if len(label) > 2:
        raise UsageError("--label: give one label (a strip) or two (a 2-D grid)")
    s = _Session(model, device, size, quiet)
    idx = [s.label(n) for n in label]
    if len(idx) == 2 and idx[0] == idx[1]:
        raise UsageError("--label: a 2-D traversal needs two different labels")
    names = [s.m.label_names[i] for i in idx]
    gif = _is_gif(output, fmt)
    if gif and len(idx) == 2:
        raise UsageError("a 2-D traversal is a still grid: write .png/.jpg/.webp (or use `ccvae gif`)")
    target = _target(output, _default_for(images, _slug(names), "gif" if gif else "png"), images, force)
    inputs = s.read(images)
    arr = np.stack([a for _, a in inputs])
    z = s.m.codes(arr, sample=sample, seed=seed)
    if gif:
        from ccvae_tools.animation import traversal_loop

        pictures, durations = traversal_loop(s.m, z, [idx[0]] * len(z), frames, fps, span,
                                             scale=s.scale(size, 2), resample=resample)
        _write(pictures, target, fmt, output is None, durations)
        s.done()
        return
    scale = s.scale(size)
    if len(idx) == 1:
        walk = s.m.decode(traverse(s.model, z, idx[0], steps, span).reshape(-1, z.shape[1]))
        walk = walk.reshape(len(z), steps, *walk.shape[1:])
        recon = s.m.decode(z)
        rows = [[arr[b], recon[b], *walk[b]] for b in range(len(z))]
        picture = render.grid(rows, scale=scale, resample=resample)
    else:
        g = traverse_grid(s.model, z, idx[0], idx[1], steps, span)
        dec = s.m.decode(g.reshape(-1, z.shape[1])).reshape(len(z), steps, steps, *arr.shape[1:])
        rows = [list(dec[b, r]) for b in range(len(z)) for r in range(steps)]
        picture = render.grid(rows, scale=scale, resample=resample)
    _write(picture, target, fmt, output is None)
    s.done()


def _default_for(images: list[str], suffix: str, ext: str) -> str:
    from ccvae_tools.cli.io import default_output

    return default_output(images[0] if images else "-", suffix, ext)


# ----------------------------------------------------------------------------------------------

@commands.command("gif", epilog="""Examples:

  ccvae gif face.png                          (face.gif: every label's traversal, one tile each)

  ccvae gif face.png --label smiling --label eyeglasses --probability -o out.gif

  ccvae gif face.png --size 192 --resample lanczos --fps 20
""")
def gif_cmd(
    image: str = typer.Argument(..., help="Input image (- = stdin)."),
    label: Optional[List[str]] = typer.Option(None, "--label", "-l", help="Labels to animate (default: all)."),
    frames: int = number(48, "--frames", minimum=8, maximum=400, help="Frames per loop."),
    fps: int = number(15, "--fps", minimum=1, maximum=50, help="Frames per second (holds at the ends add 0.4 s)."),
    span: float = number(2.0, "--span", minimum=0.0, maximum=20.0,
                         help="Extend past the class means by this many prior sd."),
    columns: int = number(0, "--columns", minimum=0, maximum=1024, help="Tiles per row (default: about square)."),
    probability: bool = typer.Option(False, "--probability", help="Show q(label | frame) under each tile."),
    output: Optional[str] = OUTPUT, size: Optional[int] = SIZE, resample: str = RESAMPLE,
    sample: bool = SAMPLE, seed: int = SEED, force: bool = FORCE,
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """One animation tiling every label's traversal of an image (each tile names its label)."""
    import math

    from ccvae_tools.animation import traversal_loop

    if output is not None and output != "-" and not output.lower().endswith(".gif"):
        raise UsageError(f"{output}: `ccvae gif` writes an animation: give a .gif name")
    s = _Session(model, device, size, quiet)
    idx = [s.label(n) for n in label] if label else list(range(len(s.m.label_names)))
    titles = [s.m.label_names[i] for i in idx]
    suffix = "traversals" if label is None else _slug(titles)
    target = _target(output, _default_for([image], suffix, "gif"), [image], force)
    inputs = s.read([image])
    import numpy as np

    z = s.m.codes(np.stack([inputs[0][1]]), sample=sample, seed=seed)
    zz = z.expand(len(idx), -1)
    cols = columns or math.ceil(math.sqrt(len(idx)))
    pictures, durations = traversal_loop(s.m, zz, idx, frames, fps, span, scale=s.scale(size, 2),
                                         resample=resample, titles=titles, probability=probability, columns=cols)
    _write(pictures, target, "gif" if output == "-" else None, output is None, durations)
    s.done()


# ----------------------------------------------------------------------------------------------

@commands.command("sample", epilog="""Examples:

  ccvae sample --set smiling=1 -n 16 -o smiling.png

  ccvae sample --set eyeglasses=1 --set smiling=0 -n 8 --seed 3

  ccvae sample --set smiling=1 --style-from face.png -n 8     (same face, new smiles)

  ccvae sample --set blond_hair=1 --temperature 0.7 -o - > blond.png
""")
def sample_cmd(
    set_: List[str] = typer.Option([], "--set", "-s", help="LABEL=VALUE to fix (others drawn from p(y))."),
    n: int = number(16, "-n", "--n", minimum=1, maximum=1024, help="Number of samples."),
    style_from: Optional[str] = typer.Option(None, "--style-from", help="Keep the style latents of this image."),
    temperature: float = number(1.0, "--temperature", "-t", minimum=0.0, maximum=10.0, help="Scales every prior sd."),
    columns: int = number(0, "--columns", minimum=0, maximum=1024, help="Images per row (default: about square)."),
    output: Optional[str] = OUTPUT, fmt: Optional[str] = FORMAT, size: Optional[int] = SIZE,
    resample: str = RESAMPLE, seed: int = SEED, force: bool = FORCE,
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """Conditional generation: a grid of images with chosen label values, diverse within each value."""
    import math

    import numpy as np
    import torch

    from ccvae_tools import render
    from ccvae_tools.interventions import conditional_sample

    s = _Session(model, device, size, quiet)
    assign = s.assignments(set_)
    suffix = "-".join(f"{_slug([s.m.label_names[i]])}{k}" for i, k in sorted(assign.items())) or "sample"
    target = _target(output, _default_for([], suffix, "png"), [style_from] if style_from else [], force)
    style = None
    if style_from is not None:
        style = s.m.codes(np.stack([s.read([style_from])[0][1]]))[0]     # its posterior mean
    g = torch.Generator().manual_seed(seed)
    z = conditional_sample(s.model, n, assign, style=style, temperature=temperature, generator=g)
    imgs = s.m.decode(z)
    cols = columns or math.ceil(math.sqrt(n))
    rows = [list(imgs[r: r + cols]) for r in range(0, n, cols)]
    picture = render.grid(rows, scale=s.scale(size), resample=resample)
    _write(picture, target, fmt, output is None)
    s.done()
    _warn_unread(s, imgs, assign, "samples", "the value")


# ----------------------------------------------------------------------------------------------

@commands.command("edit", epilog="""Examples:

  ccvae edit face.png --set smiling=1                  (writes face.edit.png)

  ccvae edit face.png --set eyeglasses=1 --set blond_hair=0 --compare -o out.png

  ccvae edit *.png --set smiling=0 -o edited/          (many images, one folder)

  cat face.png | ccvae edit - --set smiling=1 -o - > smiling.png

  Two inputs that would be written to one name (d1/face.png d2/face.png -o out/) are refused before
  any work: give them different names or edit them separately. An output that is one of the inputs
  is refused unless --force.
""")
def edit_cmd(
    images: List[str] = typer.Argument(..., help="Input images (- = stdin)."),
    set_: List[str] = typer.Option(..., "--set", "-s", help="LABEL=VALUE to set (several allowed)."),
    compare: bool = typer.Option(False, "--compare", help="Write input | reconstruction | edit side by side."),
    mapping: str = EDIT_MAP,
    output: Optional[str] = OUTPUT, fmt: Optional[str] = FORMAT, size: Optional[int] = SIZE,
    resample: str = RESAMPLE, sample: bool = SAMPLE, seed: int = SEED, force: bool = FORCE,
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """Intervene: set labels (move their latents to the new class), keep the rest of the image."""
    import numpy as np

    from ccvae_tools import render
    from ccvae_tools.interventions import edit

    s = _Session(model, device, size, quiet)
    assign = s.assignments(set_)
    targets = _many_targets(images, output, "edit", force)
    inputs = s.read(images)
    arr = np.stack([a for _, a in inputs])
    z = s.m.codes(arr, sample=sample, seed=seed)
    edited = s.m.decode(edit(s.model, z, assign, mapping))
    recon = s.m.decode(z) if compare else None
    pictures = []
    for b in range(len(inputs)):
        cells = [arr[b], recon[b], edited[b]] if compare else [edited[b]]
        pictures.append(render.grid([cells], scale=s.scale(size), resample=resample, pad=2 if compare else 0))
    _write_many(targets, pictures, fmt, output)
    s.done()
    _warn_unread(s, edited, assign, "edited images", "the edit")


def _warn_unread(s: _Session, images, assign: dict[int, int], what: str, change: str) -> None:
    """A warning for each --set that the model reads as not done in some of the pictures made
    (none with --quiet: the model's doubt about its own work, not a fault of the inputs)."""
    from ccvae_tools.evaluation.weak_spots import read_back, read_back_warnings
    from ccvae_tools.util.console import warn

    if s.quiet:
        return
    for line in read_back_warnings(read_back(s.model, s.m.to_tensor(images), assign), s.m.labels, what, change):
        warn(line)


def _many_targets(images: list[str], output: Optional[str], suffix: str, force: bool) -> list[str]:
    """One output per input, settled before any work: -o FILE (one input), -o DIR/ (an existing
    folder), or names next to the inputs. Two inputs with one output name are refused (`check_targets`)."""
    from ccvae_tools.cli.io import check_targets, default_output

    if len(images) == 1:
        return [_target(output, default_output(images[0], suffix, "png"), images, force)]
    if output == "-":
        raise UsageError("-o -: only one image can go to stdout; give a folder for several inputs")
    if output is not None and not Path(output).is_dir():
        raise UsageError(f"-o {output}: with several inputs, -o must be an existing folder")
    targets = [default_output(name, suffix, "png") for name in images]
    if output is not None:
        targets = [str(Path(output) / Path(t).name) for t in targets]
    check_targets(targets, images, force)
    return targets


def _write_many(targets: list[str], pictures: list, fmt: Optional[str], output: Optional[str]) -> None:
    """Write one picture per target; with several, print every path (as with one and no -o)."""
    if len(pictures) == 1:
        _write(pictures[0], targets[0], fmt, output is None)
        return
    for target, pic in zip(targets, pictures):
        _write(pic, target, None, announce=False)
        print(safe_text(target))


# ----------------------------------------------------------------------------------------------

@commands.command("swap", epilog="""Examples:

  ccvae swap a.png b.png                          (a.swap.png: A with all of B's characteristics)

  ccvae swap a.png b.png --labels smiling,eyeglasses -o out.png

  ccvae swap a.png b.png c.png d.png --grid -o grid.png --cells cells/

  cat a.png | ccvae swap - b.png -o - > out.png
""")
def swap_cmd(
    images: List[str] = typer.Argument(..., help="A B (A takes B's characteristics); with --grid, 2 or more."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels to transfer (default all)."),
    grid: bool = typer.Option(False, "--grid", help="All pairs: row r takes image r's characteristics, "
                              "column c keeps image c's style."),
    cells: Optional[Path] = typer.Option(None, "--cells", help="With --grid: also save every cell in this folder."),
    output: Optional[str] = OUTPUT, fmt: Optional[str] = FORMAT, size: Optional[int] = SIZE,
    resample: str = RESAMPLE, sample: bool = SAMPLE, seed: int = SEED, force: bool = FORCE,
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """Transfer characteristics: decode A's code with z_c of the chosen labels taken from B."""
    import numpy as np

    from ccvae_tools import render
    from ccvae_tools.interventions import swap

    if not grid and len(images) != 2:
        raise UsageError("swap takes two images, A and B (or --grid with two or more)")
    if grid and len(images) < 2:
        raise UsageError("--grid needs at least two images")
    if cells is not None and not grid:
        raise UsageError("--cells goes with --grid")
    if cells is not None and not cells.is_dir():
        raise UsageError(f"--cells {cells}: no such folder")
    wanted = _label_list(labels)
    s = _Session(model, device, size, quiet)
    chosen = None if wanted is None else [s.label(name) for name in wanted]
    target = _target(output, _default_for(images, "swapgrid" if grid else "swap", "png"), images, force)
    cell_files = _cell_files(cells, images, force)
    inputs = s.read(images)
    arr = np.stack([a for _, a in inputs])
    z = s.m.codes(arr, sample=sample, seed=seed)
    scale = s.scale(size)
    if not grid:
        out = s.m.decode(swap(s.model, z[0:1], z[1:2], chosen))
        _write(render.grid([[out[0]]], scale=scale, resample=resample, pad=0), target, fmt, output is None)
        s.done()
        return
    n = len(z)
    codes = swap(s.model, z[None, :, :].expand(n, n, -1), z[:, None, :].expand(n, n, -1), chosen)
    dec = s.m.decode(codes.reshape(n * n, -1)).reshape(n, n, *arr.shape[1:])
    blank = np.full_like(arr[0], 255)
    rows = [[blank, *arr]] + [[arr[r], *dec[r]] for r in range(n)]
    if cell_files:
        from ccvae_tools.cli.io import write_image_output

        for k, file in enumerate(cell_files):
            write_image_output(render.tile_image(dec[k // n, k % n]), file)
    _write(render.grid(rows, scale=scale, resample=resample), target, fmt, output is None)
    s.done()


def _cell_files(cells: Optional[Path], images: list[str], force: bool) -> list[str]:
    """The files of `swap --grid --cells`, row by row; refused before any work when one is an input."""
    from ccvae_tools.cli.io import check_targets

    if cells is None:
        return []
    n = len(images)
    files = [str(cells / f"r{r:02d}-c{c:02d}.png") for r in range(n) for c in range(n)]
    check_targets(files, images, force)
    return files


# ----------------------------------------------------------------------------------------------

@commands.command("interpolate", epilog="""Examples:

  ccvae interpolate a.png b.png                    (a.interp.png: A, the path, B)

  ccvae interpolate a.png b.png --steps 16 -o morph.gif
""")
def interpolate_cmd(
    a: str = typer.Argument(..., help="First image (- = stdin)."),
    b: str = typer.Argument(..., help="Second image."),
    steps: int = number(9, "--steps", minimum=2, maximum=200, help="Points on the path, ends included."),
    fps: int = number(15, "--fps", minimum=1, maximum=50, help="GIF frames per second."),
    output: Optional[str] = OUTPUT, fmt: Optional[str] = FORMAT, size: Optional[int] = SIZE,
    resample: str = RESAMPLE, sample: bool = SAMPLE, seed: int = SEED, force: bool = FORCE,
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """The straight path between two images' codes."""
    import numpy as np

    from ccvae_tools import render
    from ccvae_tools.interventions import interpolate

    s = _Session(model, device, size, quiet)
    gif = _is_gif(output, fmt)
    target = _target(output, _default_for([a], "interp", "gif" if gif else "png"), [a, b], force)
    inputs = s.read([a, b])
    arr = np.stack([x for _, x in inputs])
    z = s.m.codes(arr, sample=sample, seed=seed)
    path = s.m.decode(interpolate(z[0], z[1], steps))
    if gif:  # there and back, so that the loop is seamless
        seq = list(path) + list(path[-2:0:-1])
        frames = [render.tile_image(x, s.scale(size, 2), resample) for x in seq]
        durations = [round(1000 / fps)] * len(frames)
        durations[0] += 400
        durations[steps - 1] += 400
        _write(frames, target, fmt, output is None, durations)
        s.done()
        return
    _write(render.grid([[arr[0], *path, arr[1]]], scale=s.scale(size), resample=resample), target, fmt,
           output is None)
    s.done()
