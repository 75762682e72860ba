"""The studio served by uvicorn, with a deadline on every request's headers.

    server = make_server(app)          # uvicorn.Server; .run(sockets=[sock]) serves until Ctrl-C

uvicorn closes idle keep-alive connections, but not one that sends part of its request headers (or
nothing) and stalls: each would hold a socket for as long as the client likes, and a few hundred
(slowloris) use up the process's file descriptors. `TimedH11` answers 408 and closes a connection
whose headers are not all in `HEADER_SECONDS` after it opened or after its last response. A stalled
body has its own deadline (`server.BODY_SECONDS`). Meanwhile the event loop serves every other
connection and the model works in threads (server.py), so one slow client holds no one else up.
"""

from __future__ import annotations

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class TimedH11(H11Protocol):
    """uvicorn's h11 protocol with the header deadline (armed while the client owes us a request)."""

    header_seconds = HEADER_SECONDS
    _deadline = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:          # the headers are in: the app has the request
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(_TIMEOUT)                  # no request was read: nothing else to answer
            self.transport.close()


def make_server(app, header_seconds: float = HEADER_SECONDS) -> uvicorn.Server:
    """A uvicorn server of `app` (no access log, no lifespan, no Server header) with the header deadline."""
    protocol = type("TimedH11", (TimedH11,), {"header_seconds": header_seconds})
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http=protocol,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, server_header=False)
    return uvicorn.Server(config)
