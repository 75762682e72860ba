"""Only the studio's own page may use the studio: a pure ASGI middleware in front of the whole app.

    app = Guard(starlette_app, Hosts.for_bind("127.0.0.1"))

- Host: every request must name a loopback host (localhost, 127.0.0.1, [::1]) or the address the
  studio was bound to (`--host`), with the port it arrived on or no port. A page of another site
  whose name was re-pointed at 127.0.0.1 (DNS rebinding) reaches the socket, but its Host is its own
  name: refused, so that it can neither read the API nor the uploaded images.
- Origin: a request that changes state (POST, PUT, PATCH, DELETE) from a browser page of another
  site is refused, the "simple" ones included (a <form> post, a fetch with text/plain), which no
  preflight stops. Browsers send Origin with every such request; without it the client is not a page
  (curl, a script), and is let through unless Sec-Fetch-Site says the request is cross-site.
- Every response, errors and refusals included, carries the security headers (`HEADERS`).

A refusal is 403 with a JSON `{"error": ...}`; what it quotes of the header is cut to a few
characters of a host name (never markup, never a control character).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARDS = ("0.0.0.0", "::", "")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# the page loads nothing from elsewhere; images arrive as data: URLs, downloads as blob: URLs
POLICY = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
          "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
          "form-action 'self'")
HEADERS = [(b"content-security-policy", POLICY.encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"),                         # frame-ancestors, for older browsers
           (b"referrer-policy", b"no-referrer"),
           (b"cross-origin-opener-policy", b"same-origin"),
           (b"cross-origin-resource-policy", b"same-origin")]      # no <img src> of our images elsewhere
_SHOWN = re.compile(r"[^A-Za-z0-9.:\-\[\]]")


@dataclass(frozen=True)
class Hosts:
    """The host names a request may give: loopback, `extra` (a non-loopback --host), and with
    `any_ip` any IP address literal (bound to 0.0.0.0 or ::, the page is opened by this machine's
    address; a rebinding page always gives a name, never our address)."""
    extra: frozenset[str] = field(default_factory=frozenset)
    any_ip: bool = False

    @classmethod
    def for_bind(cls, host: str) -> "Hosts":
        if host in WILDCARDS:
            return cls(frozenset({socket.gethostname().lower()}), any_ip=True)
        name = host.lower()
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"                                     # an IPv6 literal, as a Host writes it
        return cls(frozenset() if name in LOOPBACK_NAMES else frozenset({name}))

    def allows(self, name: str) -> bool:
        if name in LOOPBACK_NAMES or name in self.extra:
            return True
        if not self.any_ip:
            return False
        try:
            ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
        except ValueError:
            return False
        return True


def split_host(value: str) -> tuple[str, int | None] | None:
    """'name:port' -> (name, port), '[::1]:80' -> ('[::1]', 80), 'name' -> (name, None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        name, port = name + bracket, rest[1:] if rest.startswith(":") else None
        if not bracket or (rest and port is None):
            return None
    else:
        name, sep, port = value.partition(":")
        port = port if sep else None
    if not name or (port is not None and not (port.isascii() and port.isdigit() and len(port) <= 5)):
        return None
    return name, int(port) if port is not None else None


def shown(value: str) -> str:
    """A header value as a refusal may quote it: host-name characters only, at most 60."""
    return _SHOWN.sub("?", value[:60]) + ("..." if len(value) > 60 else "")


class Guard:
    """The middleware: a request is refused (403) or passed on, its response given `HEADERS`."""

    def __init__(self, app, hosts: Hosts = Hosts()):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":                 # the studio has none; never let one open
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await respond(send, 403, refusal)
            return
        unread = [_has_body(scope)]

        async def receiving():
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread[0] = False
            return message

        async def secured(message) -> None:
            if message["type"] == "http.response.start":
                # answered before its body was all read (413, 408, a refusal): close, or uvicorn would
                # go on reading, and discarding, whatever the client still sends
                close = [(b"connection", b"close")] if unread[0] else []
                message = {**message, "headers": with_headers(list(message.get("headers", [])) + close)}
            await send(message)

        await self.app(scope, receiving, secured)

    def refusal(self, scope) -> str | None:
        """Why the request is refused (one line), or None."""
        port = (scope.get("server") or (None, None))[1]
        where = f"open the studio at http://127.0.0.1:{port}/" if port else "open the studio's own page"
        hosts, origins = _values(scope, b"host"), _values(scope, b"origin")
        if len(hosts) != 1 or len(origins) > 1:
            return f"refused: a request needs exactly one Host header and at most one Origin; {where}"
        if not self._ours(split_host(hosts[0]), port, default=None):
            return f"refused: Host {shown(hosts[0])!r} is not this studio's address; {where}"
        if scope["method"] not in UNSAFE_METHODS:
            return None
        if origins:
            parts = _origin(origins[0])
            if parts is None or not self._ours(parts, port, default=80):
                return f"refused: a page of another site ({shown(origins[0])}) may not use the studio; {where}"
        elif _values(scope, b"sec-fetch-site")[:1] in (["cross-site"], ["same-site"]):
            return f"refused: a page of another site may not use the studio; {where}"
        return None

    def _ours(self, parsed: tuple[str, int | None] | None, port: int | None, default: int | None) -> bool:
        """(name, port) is this studio: an allowed name and the served port; a missing port counts as
        `default` (None: any; a Host may leave it out, an Origin without one means port 80)."""
        if parsed is None:
            return False
        name, given = parsed
        given = default if given is None else given
        return self.hosts.allows(name) and (given is None or given == port)


def _has_body(scope) -> bool:
    length, chunked = _values(scope, b"content-length"), _values(scope, b"transfer-encoding")
    return bool(chunked) or any(v.strip() not in ("", "0") for v in length)


def _values(scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]


def _origin(value: str) -> tuple[str, int | None] | None:
    """An Origin header as (host, port): only http://host[:port], nothing after it; else None."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:                                       # 'http://[::1' and the like
        return None
    if parts.scheme != "http" or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return split_host(parts.netloc)


def with_headers(headers) -> list:
    """The response's headers plus each of `HEADERS` it does not set itself, and no caching of the API."""
    out = list(headers)
    present = {bytes(k).lower() for k, _ in out}
    out += [(k, v) for k, v in HEADERS if k not in present]
    if b"cache-control" not in present:
        out.append((b"cache-control", b"no-store"))
    return out


async def respond(send, status: int, message: str) -> None:
    """A JSON error response written straight to ASGI `send` (the app never sees the request)."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": with_headers([(b"content-type", b"application/json"),
                                         (b"content-length", str(len(body)).encode()),
                                         (b"connection", b"close")])})     # its body is never read
    await send({"type": "http.response.body", "body": body})
