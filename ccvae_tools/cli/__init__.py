"""The command line: the app (app.py), what commands share (params.py, io.py), one module per
command group (data, train, inspect, intervene, evaluate), each with `register(app)`.

The top layer: it may import every other sub-package; nothing imports it."""

from ccvae_tools.cli.app import app, main

__all__ = ["app", "main"]
