"""The studio's ASGI app (Starlette): requests in, `Studio` engine calls, JSON and images out.

    app = create_app(Studio(load(path), examples), card_text=render_card(card), bind="127.0.0.1")
    serving.make_server(app).run(sockets=[sock])

No endpoint reads a path from the request: images are named by the ids the engine gave out, the
page's own files by a fixed table. A bad request is a 4xx with a one-line `error` the page shows
(JSON, the request's text never as markup); the server keeps running. In front of it all, `Guard`
(guard.py) refuses other sites' pages and sets the security headers. The model and the image
codecs work in threads (run_in_threadpool), never on the event loop, so that a slow request or a
stalled client holds up no one else; a body that stops arriving is answered 408 after BODY_SECONDS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from importlib import resources
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ccvae_tools.data.names import label_key
from ccvae_tools.studio.engine import DOWNLOAD_SCALE, MAX_SAMPLES, Edit, Studio, UnknownImage, png
from ccvae_tools.studio.guard import Guard, Hosts
from ccvae_tools.util.errors import DataError
from ccvae_tools.util.text import safe_text

MAX_UPLOAD = 16 * 1024 * 1024          # bytes of one uploaded image file
MAX_JSON = 64 * 1024                   # bytes of one JSON request
BODY_SECONDS = 30.0                    # a request body not all in by then is answered 408
_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))
IMAGE_ID = re.compile(r"[0-9a-f]{1,64}")   # the engine's ids (secrets.token_hex)
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/studio.js": ("studio.js", "text/javascript; charset=utf-8"),
          "/studio.css": ("studio.css", "text/css; charset=utf-8")}


class JSON(JSONResponse):
    """JSON with <, > and & written as \\u escapes: an error that quotes a request's text (a label, a
    file name) holds no markup, even for a client that would sniff it as HTML."""

    def render(self, content: Any) -> bytes:
        out = super().render(content)
        for char, escape in _ESCAPES:
            out = out.replace(char, escape)
        return out


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def create_app(studio: Studio, card_text: str = "", bind: str = "127.0.0.1") -> Guard:
    """The app: the page, its two assets and the JSON API over `studio`, behind the `Guard` of a
    server bound to `bind` (the address given to --host)."""
    api = _Api(studio, card_text)
    routes = [Route(path, _static(name, kind), methods=["GET"]) for path, (name, kind) in STATIC.items()]
    routes += [
        Route("/favicon.ico", _no_icon, methods=["GET"]),
        Route("/api/model", api.model, methods=["GET"]),
        Route("/api/card", api.card, methods=["GET"]),
        Route("/api/images", api.upload, methods=["POST"]),
        Route("/api/images/{image_id}", api.state, methods=["GET"]),
        Route("/api/render", api.render, methods=["POST"]),
        Route("/api/download", api.download, methods=["POST"]),
        Route("/api/gif", api.gif, methods=["POST"]),
        Route("/api/sample", api.sample, methods=["POST"]),
    ]
    handlers = {BadRequest: _bad_request, DataError: _data_error, UnknownImage: _unknown_image,
                HTTPException: _http_error, Exception: _internal_error}
    return Guard(Starlette(routes=routes, exception_handlers=handlers), Hosts.for_bind(bind))


def _static(name: str, kind: str):
    body = resources.files("ccvae_tools.studio").joinpath("static", name).read_bytes()

    async def serve(request: Request) -> Response:
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})   # + the guard's
    return serve


async def _no_icon(request: Request) -> Response:
    return Response(status_code=204)


async def _bad_request(request: Request, exc: BadRequest) -> JSON:
    return JSON({"error": str(exc)}, status_code=exc.status)


async def _data_error(request: Request, exc: DataError) -> JSON:
    return JSON({"error": str(exc)}, status_code=422)


async def _unknown_image(request: Request, exc: UnknownImage) -> JSON:
    return JSON({"error": "that image is no longer held by the studio (too many uploads since, or "
                          "the studio restarted); pick or upload it again"}, status_code=404)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404 and 405 (and the like) as JSON, with their headers (Allow), naming no path."""
    message = {404: "no such page or API path", 405: "method not allowed here"}.get(exc.status_code,
                                                                                   "bad request")
    return JSON({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSON:
    # a bug: a JSON line for the page (the traceback goes to the server's stderr, never to the client)
    return JSON({"error": "internal error in the studio; the request was not done"}, status_code=500)


def _data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


class _Api:
    def __init__(self, studio: Studio, card_text: str):
        self.studio, self.card_text = studio, card_text
        self.keys = {label_key(lab.name): i for i, lab in enumerate(studio.m.labels)}

    async def model(self, request: Request) -> JSON:
        return JSON(await run_in_threadpool(self._model))

    def _model(self) -> dict:
        out = self.studio.describe()
        for example in out["examples"]:
            example["thumbnail"] = _data_url(png(example["thumbnail"]))
        return out

    async def card(self, request: Request) -> JSON:
        return JSON({"text": self.card_text})

    async def upload(self, request: Request) -> JSON:
        data = await _body(request, MAX_UPLOAD, "an image file")
        if not data:
            raise BadRequest("the upload is empty; choose an image file")
        # the page sends it URI-encoded; shown in one-line errors and on the page: no control characters
        name = safe_text(unquote(request.headers.get("x-file-name", ""))[:200]) or "upload"
        pic = await run_in_threadpool(self.studio.upload, data, name)
        return JSON(await self._state(pic.id))

    async def state(self, request: Request) -> JSON:
        return JSON(await self._state(request.path_params["image_id"]))

    async def render(self, request: Request) -> JSON:
        body = await _json(request)
        image, q = await run_in_threadpool(self.studio.render, _image_id(body), self._edit(body))
        return JSON({"image": _data_url(await run_in_threadpool(png, image)), "q": q})

    async def download(self, request: Request) -> Response:
        body = await _json(request)
        image, _ = await run_in_threadpool(self.studio.render, _image_id(body), self._edit(body))
        return Response(await run_in_threadpool(png, image, DOWNLOAD_SCALE), media_type="image/png")

    async def gif(self, request: Request) -> Response:
        body = await _json(request)
        data = await run_in_threadpool(self.studio.gif, _image_id(body), self._edit(body),
                                       self._label(body.get("label")))
        return Response(data, media_type="image/gif")

    async def sample(self, request: Request) -> JSON:
        body = await _json(request)
        assign = self._assignments(body.get("set", {}))
        n = _number(body.get("n", 8), "n", 1, MAX_SAMPLES, integer=True)
        seed = _number(body.get("seed", 0), "seed", 0, 2 ** 31 - 1, integer=True)
        temperature = _number(body.get("temperature", 1.0), "temperature", 0.0, 10.0)
        style = body.get("style")
        if style is not None:
            style = _image_id({"image": style})
        picture = await run_in_threadpool(self.studio.sample, assign, int(n), int(seed), temperature, style)
        return JSON({"image": _data_url(await run_in_threadpool(png, picture))})

    async def _state(self, image_id: str) -> dict:
        out = await run_in_threadpool(self.studio.state, image_id)
        out["input"], out["reconstruction"] = _data_url(out["input"]), _data_url(out["reconstruction"])
        return out

    # -- request checks ----------------------------------------------------------------------------

    def _label(self, name: Any) -> int:
        if not isinstance(name, str) or label_key(name) not in self.keys:
            shown = name if isinstance(name, str) else type(name).__name__
            raise BadRequest(f"unknown label {str(shown)[:80]!r}; the model's labels: "
                             f"{', '.join(lab.name for lab in self.studio.m.labels)}")
        return self.keys[label_key(name)]

    def _edit(self, body: dict) -> Edit:
        moves = body.get("moves", {})
        if not isinstance(moves, dict):
            raise BadRequest("moves: give an object of label name -> slider value in [0, 1]")
        edit = Edit(moves={self._label(k): _number(v, f"moves[{str(k)[:80]!r}]", 0.0, 1.0) for k, v in moves.items()})
        swap = body.get("swap")
        if swap is not None:
            if not isinstance(swap, dict) or not isinstance(swap.get("labels", []), list):
                raise BadRequest("swap: give {\"image\": id, \"labels\": [label names]}")
            edit.swap_from = _image_id(swap)
            edit.swap_labels = [self._label(name) for name in swap.get("labels", [])]
        return edit

    def _assignments(self, chosen: Any) -> dict[int, int]:
        if not isinstance(chosen, dict):
            raise BadRequest("set: give an object of label name -> class index")
        out = {}
        for name, k in chosen.items():
            i = self._label(name)
            classes = self.studio.m.labels[i].classes
            out[i] = int(_number(k, f"set[{str(name)[:80]!r}]", 0, len(classes) - 1, integer=True))
        return out


async def _body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused (413) past `limit` bytes without reading the rest, and (408) when
    it is not all in after BODY_SECONDS (a client that stalls mid-body holds no memory for ever)."""
    declared = request.headers.get("content-length")
    too_large = BadRequest(f"{what} of at most {limit >> 20 or limit} {'MB' if limit >> 20 else 'bytes'} "
                           f"is accepted; this one is larger", status=413)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(f"the request body did not arrive within {BODY_SECONDS:g} s; send it again",
                         status=408) from None
    except ClientDisconnect:                      # gone mid-body: no one reads the answer, no traceback
        raise BadRequest("the client closed the connection before its request was all sent") from None
    return b"".join(chunks)


async def _json(request: Request) -> dict:
    data = await _body(request, MAX_JSON, "a request")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request must be a JSON object")
    return body


def _image_id(body: dict) -> str:
    image_id = body.get("image")
    if not isinstance(image_id, str) or not IMAGE_ID.fullmatch(image_id):
        raise BadRequest("image: give the id of an image the studio gave out")
    return image_id


def _number(value: Any, name: str, low: float, high: float, integer: bool = False) -> float:
    """A finite number in [low, high] (an integer where asked); anything else is a 400 naming it."""
    # the range first: a JSON integer of 400 digits is an int too large for a float (math.isfinite
    # would raise OverflowError), and NaN compares false with everything
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        kind = "an integer" if integer else "a number"
        raise BadRequest(f"{name}: give {kind} from {low:g} to {high:g}, not {str(value)[:40]!r}")
    return value
