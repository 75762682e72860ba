"""`ccvae studio`: a local web page over the same library functions the commands use.

`engine.py` holds the images and their codes and makes every picture (no web framework); `server.py`
is the ASGI app (Starlette) that turns requests into engine calls; `guard.py` stands in front of it
(only the studio's own page may use it; the security headers); `serving.py` runs it under uvicorn
with a deadline on request headers; `static/` is the page itself.
"""
