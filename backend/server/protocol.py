"""The connection under the app: uvicorn's HTTP/1.1 protocol (h11) with a timeout on the request's headers.

uvicorn (0.54) times out only an idle keep-alive connection (``timeout_keep_alive``, 5 s, armed after a
response); a connection that opens and sends nothing, or sends half a request line and then a byte now and
then (slowloris), is held for ever, and each holds a socket and a file descriptor. :class:`HeaderTimeoutH11`
closes a connection whose request line and headers have not arrived ``header_timeout_s`` after it opened or
after its previous response ended; a partial request gets a JSON 408 first, so a person at a terminal sees why.
The body has its own timeout, in the app (:class:`~backend.server.app.BodyGuard`), since uvicorn hands the
body over piece by piece. Headers are also bounded in size, by h11: 16 KiB, past which uvicorn answers 400.

Used by ``python -m backend serve`` and by the tests' live servers, through :func:`uvicorn_options`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from backend.server.app import error_response

if TYPE_CHECKING:
    from backend.server.app import ServerSettings


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive in time.

    The timer runs while h11 waits for a request (``their_state`` IDLE): from ``connection_made`` and again
    from the end of each response, and stops when h11 has parsed a whole request line and headers. On a
    keep-alive connection that sends nothing, uvicorn's own keep-alive timeout (shorter) closes it first.
    """

    #: seconds; set per server by :func:`h11_protocol`.
    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # super() may have started a pipelined request already; otherwise the next one is awaited
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:
            # Part of a request came: answer it. h11 cannot send a response to a request it has not parsed,
            # so the bytes are written as they are; the connection closes right after.
            resp = error_response(408, "timeout", f"the request line and headers did not arrive within "
                                  f"{self.header_timeout_s:g} s (SIMDASH_HEADER_TIMEOUT_S); the connection is closed")
            head = b"".join(b"%s: %s\r\n" % (k, v) for k, v in resp.raw_headers)
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n" + head + b"connection: close\r\n\r\n" + resp.body)
            self.logger.info("request headers from %s incomplete after %g s: 408, connection closed",
                             self.client, self.header_timeout_s)
        self.transport.close()


def h11_protocol(header_timeout_s: float) -> type[HeaderTimeoutH11]:
    """A :class:`HeaderTimeoutH11` class with this timeout (uvicorn builds the protocol from a class)."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout_s": float(header_timeout_s)})


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that apply ``settings`` below the app."""
    return {"http": h11_protocol(settings.header_timeout_s)}


__all__ = ["HeaderTimeoutH11", "h11_protocol", "uvicorn_options"]
