"""`ccvae studio`: a local web page over the same library functions the commands use.

`engine.py` holds the images and their codes and makes every picture (no web framework); `server.py`
is the ASGI app (Starlette) that turns requests into engine calls; `static/` is the page itself.
"""
