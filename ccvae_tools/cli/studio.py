"""`ccvae studio`: the local web page (ccvae_tools/studio), started from the command line.

The command resolves the weights and the example images, renders the model card, binds the socket
(so that --port 0 can print the port it got) and hands all of it to uvicorn; the page and its API
live in `ccvae_tools.studio`.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Optional

import typer

from ccvae_tools.cli.params import DEVICE, MODEL, QUIET, Commands, number
from ccvae_tools.util import console
from ccvae_tools.util.errors import UsageError
from ccvae_tools.util.text import safe_text

commands = Commands()
register = commands.register

EXTRA_MISSING = ("ccvae studio needs the studio extra (Starlette and uvicorn), which is not installed: "
                 "pip install 'ccvae-tools[studio]'")
MAX_EXAMPLES = 24


@commands.command("studio", epilog="""Examples:

  ccvae studio                                  (the shipped default model at http://127.0.0.1:7860)

  ccvae studio -m fonts32 --open                (the typeface model; opens a browser tab)

  ccvae studio -m runs/00003-celeba/model.safetensors --examples faces/ --port 8000

  ccvae studio --host 0.0.0.0                   (reachable from other machines: anyone who can reach
                                                 this one can use it)
""")
def studio_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = number(7860, "--port", minimum=0, maximum=65535, help="Port (0: any free one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser."),
    examples: Optional[Path] = typer.Option(None, "--examples", help="Folder of example images to offer "
                                            "(default: the shipped examples of a shipped model)."),
    model: Optional[str] = MODEL, device: Optional[str] = DEVICE, quiet: bool = QUIET,
) -> None:
    """A local web page: one slider per label, q(y) live, 2-D pad, sample, swap, PNG and GIF downloads."""
    import importlib.util

    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        raise UsageError(EXTRA_MISSING)
    from ccvae_tools.cli import io as cli_io

    sock = _bind(host, port)
    try:
        m = cli_io.open_model(model, device)
        app = _app(m, _examples(examples, m.path), host)
    except BaseException:
        sock.close()
        raise
    url = f"http://{_url_host(host)}:{sock.getsockname()[1]}/"
    if not _is_loopback(host):
        console.warn(_exposed(host, sock.getsockname()[1]))
    print(url, flush=True)
    cli_io.say_model(m.path, quiet)          # at the start: the studio runs until Ctrl-C
    console.info(f"studio of {safe_text(m.path.name)} at {url} (Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    _serve(app, sock)


def _exposed(host: str, port: int) -> str:
    """The warning of a non-loopback --host: what is reachable, from where, and that no one logs in."""
    where = (f"every address of this machine, port {port}" if host in ("0.0.0.0", "::", "")
             else f"http://{_url_host(host)}:{port}/")
    return (f"--host {safe_text(host)}: the studio is reachable from other machines on the network at "
            f"{safe_text(where)}, without authentication: anyone who can reach it can use the model and "
            f"see the images uploaded to it")


def _app(m, examples: list[Path], host: str = "127.0.0.1"):
    from ccvae_tools.cli.inspect import render_card
    from ccvae_tools.model.card import model_card
    from ccvae_tools.studio.engine import Studio
    from ccvae_tools.studio.server import create_app
    from ccvae_tools.training.options import card_options

    studio = Studio(m, [(p.stem, p) for p in examples])
    return create_app(studio, card_text=render_card(model_card(m.path, shown_options=card_options())),
                      bind=host)


def _examples(folder: Optional[Path], model_path: Path) -> list[Path]:
    """--examples DIR (its images, sorted), else the shipped examples of a shipped model."""
    from ccvae_tools.cli.io import shipped_examples
    from ccvae_tools.data.shared import IMAGE_EXTS

    if folder is None:
        return shipped_examples(model_path)[:MAX_EXAMPLES]
    if not folder.is_dir():
        raise UsageError(f"--examples {safe_text(str(folder))}: not a folder; give a folder of images")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not found:
        raise UsageError(f"--examples {safe_text(str(folder))}: no images ({', '.join(IMAGE_EXTS)}) in it")
    return found[:MAX_EXAMPLES]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int):
    """The listening socket, bound here so that a busy port is one line and --port 0 has a number."""
    import socket

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise UsageError(f"--host {safe_text(host)}: not an address of this machine") from None
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every response with a body waited ~40 ms (Nagle's algorithm against delayed ACKs)
    sock = socket.socket(info[0], info[1], info[2] or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as e:
        sock.close()
        raise UsageError(f"--host {safe_text(host)} --port {port}: cannot listen there ({e.strerror or e}); "
                         f"pass another --port (0 picks a free one)") from None
    sock.listen(128)
    return sock


def _serve(app, sock) -> None:
    from ccvae_tools.studio.serving import make_server

    try:
        make_server(app).run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()
