"""One ASGI ``http`` request: the ``receive`` and ``send`` an application
gets, over the :class:`~trionet.http.HTTPConnection` the request came on.

Theory of operation
-------------------
``receive`` pulls: each call reads the next piece of the body from the
connection, only then (so the client is held back by TCP when the app reads
slowly; nothing is buffered beyond one read), and the first call sends
``100 Continue`` when the client waits for it. A body that breaks the
server's limits (``max_body_size``, ``body_timeout``) or HTTP is answered by
the server itself (413, 408, 400) and the app sees ``http.disconnect``.

Once the body is complete, ``receive`` waits for the client to go away: it
reads the socket, so an end of stream or a reset is seen while the app is
still working or streaming (long polling, server-sent events). Bytes that
arrive instead are the client's next request: they are kept for it, and
nothing more is read. The wait ends with ``http.disconnect`` as soon as the
response is complete too (the ASGI specification: ``http.disconnect`` to a
``receive`` after the response).

``send`` takes the response messages in the specification's order. The
response head is held until the first body message, so that a response
whose body comes in one message (the common case) goes out in one write,
with its ``Content-Length``; any other is streamed (chunked when the app
gave no ``Content-Length``). The app's ``Transfer-Encoding`` field is
dropped, as the specification requires: framing is the server's. Once the
client is gone, ``send`` raises :exc:`ClientDisconnected`, an ``OSError``
(specification version 2.4), which the server does not log as an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import trio

from .._errors import ConnectionClosed
from ..http._headers import Headers
from ..http._server._connection import HTTPConnection
from ..http._server._errors import ProtocolError
from ..http._server._request import Request
from ..http._wire import reason_phrase

__all__ = ["ClientDisconnected", "HTTPCycle"]

# Bytes read from a file at a time for ``http.response.pathsend``.
_FILE_CHUNK = 256 * 1024


class ClientDisconnected(OSError):
    """Raised by an ASGI ``send()`` once the client has gone away (ASGI
    HTTP and WebSocket specification 2.4). An application may catch it to
    clean up; escaping the application, it is not logged as an error."""


def _fields(raw: Iterable[Any], what: str) -> list[tuple[bytes, bytes]]:
    """An ASGI header list, checked: pairs of byte strings."""
    fields = []
    try:
        for name, value in raw:
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise TypeError(
                    f"{what}: header names and values are bytes, not {name!r}: {value!r}"
                )
            fields.append((name, value))
    except ValueError:
        raise TypeError(f"{what}: headers are [name, value] pairs") from None
    return fields


# The encoded header blocks of recent responses, by their fields: an
# application sends the same few sets again and again (a JSON API's
# content-type and a length), and checking and encoding them is a tenth of
# a small response's cost. Bounded: emptied when full.
_ENCODED: dict[tuple[tuple[bytes, bytes], ...], Headers] = {}
_ENCODED_MAX = 256


def response_headers(raw: Iterable[Any], what: str) -> Headers:
    """The headers of an ASGI response message as :class:`Headers`, without
    ``Transfer-Encoding`` (the server frames the body)."""
    try:
        key = tuple((name, value) for name, value in raw)
        known = _ENCODED.get(key)
    except (TypeError, ValueError):  # not pairs, or unhashable parts: checked below
        known = None
        key = None
    if known is not None:
        return known._copy_encoded()
    fields = [field for field in _fields(raw, what) if field[0].lower() != b"transfer-encoding"]
    headers = Headers._to_send(fields)
    if key is not None:
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        _ENCODED[key] = headers
    return headers._copy_encoded()


def _body(message: dict[str, Any], key: str = "body") -> bytes:
    body = message.get(key, b"")
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"{message['type']}: {key} must be bytes, not {type(body).__name__}")


class HTTPCycle:
    """The ``receive`` and ``send`` of one request (see the module's theory
    of operation), and what the server does once the app returns."""

    __slots__ = (
        "_body_given",
        "_complete",
        "_conn",
        "_error",
        "_gone",
        "_headers",
        "_remaining",
        "_request",
        "_status",
        "_streaming",
        "_trailers",
        "_trailers_expected",
        "_watch",
        "body_done",
    )

    def __init__(self, request: Request) -> None:
        self._request = request
        conn = request._conn
        assert isinstance(conn, HTTPConnection)
        self._conn = conn
        self.body_done = request._body_read  # a request without a body
        self._body_given = not self.body_done  # its one empty message is not given yet
        # Bytes still to come of a Content-Length body: the last piece is
        # then known to be the last without another read.
        self._remaining: int | None = None
        if not self.body_done:
            length = request.headers.get("content-length")
            if length is not None and length.isdigit():
                self._remaining = int(length)
        self._status: int | None = None
        self._headers = Headers()
        self._trailers_expected = False
        self._trailers: list[tuple[bytes, bytes]] = []
        self._streaming = False
        self._complete = False
        self._gone = False
        self._error: ProtocolError | None = None
        self._watch: trio.CancelScope | None = None

    # -- receive ------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive``: the next ``http.request`` message, or
        ``http.disconnect`` once the client is gone or the response is
        complete."""
        if self._gone or self._complete:
            await trio.lowlevel.checkpoint()
            return {"type": "http.disconnect"}
        if not self.body_done:
            return await self._read_body()
        if not self._body_given:
            self._body_given = True  # a request without a body: one empty message
            await trio.lowlevel.checkpoint()
            return {"type": "http.request", "body": b"", "more_body": False}
        return await self._wait_for_disconnect()

    async def _read_body(self) -> dict[str, Any]:
        request = self._request
        try:
            chunk = await self._conn._read_body(request)
            if chunk is not None and self._remaining is not None:
                self._remaining -= len(chunk)
                if self._remaining <= 0:
                    # The end of the body is there already: no I/O.
                    end = await self._conn._read_body(request)
                    assert end is None
                    self.body_done = True
                    return {"type": "http.request", "body": chunk, "more_body": False}
        except ProtocolError as exc:
            # The server's answer (413, 408, 400), at once; the app only
            # learns that the client is gone.
            self._error = exc
            self._gone = True
            await self._conn.fail(request, exc.status, exc.headers)
            return {"type": "http.disconnect"}
        except ConnectionClosed:
            self._gone = True
            return {"type": "http.disconnect"}
        if chunk is None:
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def _wait_for_disconnect(self) -> dict[str, Any]:
        if self._watch is not None:
            raise trio.BusyResourceError("another task is already in receive()")
        conn = self._conn
        with trio.CancelScope() as self._watch:
            try:
                data = await conn._receive()
            except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            conn._protocol.receive_behind(data)
            if data:
                # The client's next request: it is alive. Read no further
                # (what it sends next waits in the kernel).
                await trio.sleep_forever()
            self._gone = True
        self._watch = None
        return {"type": "http.disconnect"}

    def _completed(self) -> None:
        self._complete = True
        if self._watch is not None:
            self._watch.cancel()  # a receive() waiting for the client: disconnect now

    # -- send ---------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """The ASGI ``send``.

        Raises:
            ClientDisconnected: The client has gone away.
            RuntimeError: A message out of order.
            TypeError: A malformed message.
            ValueError: An unknown message type, or a bad status.
        """
        kind = message["type"]
        if self._gone:
            raise ClientDisconnected("the client has disconnected")
        if kind == "http.response.body":
            await self._send_body(message)
        elif kind == "http.response.start":
            self._start(message)
            await trio.lowlevel.checkpoint()
        elif kind == "http.response.trailers":
            await self._send_trailers(message)
        elif kind == "http.response.pathsend":
            await self._send_file(message)
        elif kind == "http.response.early_hint":
            await self._send_early_hint(message)
        else:
            raise ValueError(f"not an ASGI http message: {kind!r}")

    def _start(self, message: dict[str, Any]) -> None:
        if self._status is not None:
            raise RuntimeError("http.response.start was already sent")
        status = message["status"]
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"http.response.start: status must be an int, not {status!r}")
        if not 200 <= status <= 999:
            raise ValueError(f"http.response.start: status must be in 200..999, not {status}")
        self._headers = response_headers(message.get("headers", ()), "http.response.start")
        self._status = status
        self._trailers_expected = bool(message.get("trailers", False))

    async def _send_body(self, message: dict[str, Any]) -> None:
        if self._status is None:
            raise RuntimeError("http.response.body before http.response.start")
        body = _body(message)
        more = bool(message.get("more_body", False))
        if self._complete:
            await trio.lowlevel.checkpoint()
            return  # the specification: ignored once the response is complete
        conn, request = self._conn, self._request
        try:
            if not self._streaming:
                if not more and not self._trailers_expected:
                    head_and_body = conn._protocol.complete_response(
                        self._status, self._headers, body
                    )
                    self._completed()
                    await conn._send_all(head_and_body)
                    return
                await conn._start_response(request, self._status, self._headers, None)
                self._streaming = True
            if body:
                await conn._send_body(request, body)
            if not more and not self._trailers_expected:
                self._completed()
                await conn._finish_response(request, Headers())
        except ConnectionClosed as exc:
            self._gone = True
            raise ClientDisconnected(f"the client has disconnected: {exc.reason}") from exc

    async def _send_trailers(self, message: dict[str, Any]) -> None:
        if not self._trailers_expected or not self._streaming:
            raise RuntimeError(
                "http.response.trailers without trailers=True in http.response.start,"
                " or before the body"
            )
        self._trailers += _fields(message.get("headers", ()), "http.response.trailers")
        if message.get("more_trailers", False):
            await trio.lowlevel.checkpoint()
            return
        self._completed()
        try:
            await self._conn._finish_response(self._request, Headers._from_raw(self._trailers))
        except ConnectionClosed as exc:
            self._gone = True
            raise ClientDisconnected(f"the client has disconnected: {exc.reason}") from exc

    async def _send_file(self, message: dict[str, Any]) -> None:
        """``http.response.pathsend``: the whole body is the file at ``path``."""
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise TypeError(f"http.response.pathsend: path must be an absolute str, not {path!r}")
        if self._status is None or self._streaming:
            raise RuntimeError("http.response.pathsend must follow http.response.start directly")
        async with await trio.open_file(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if "content-length" not in self._headers:
                self._headers.set("content-length", str(size))
            trailers, self._trailers_expected = self._trailers_expected, True
            while chunk := await file.read(_FILE_CHUNK):
                await self._send_body(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            self._trailers_expected = trailers
            await self._send_body({"type": "http.response.body", "body": b""})

    async def _send_early_hint(self, message: dict[str, Any]) -> None:
        """``http.response.early_hint``: a 103 response with ``Link`` fields
        (RFC 8297), before the final one; not to HTTP/1.0 clients, which
        know no informational responses."""
        links = message.get("links", ())
        if self._status is not None or self._streaming or self._complete:
            raise RuntimeError("http.response.early_hint after http.response.start")
        if isinstance(links, bytes) or not all(isinstance(link, bytes) for link in links):
            raise TypeError("http.response.early_hint: links must be a list of bytes")
        if self._request.http_version == "1.0" or not links:
            await trio.lowlevel.checkpoint()
            return
        wire = Headers._from_raw([(b"link", link) for link in links])._wire()
        head = b"HTTP/1.1 103 %s\r\n%s\r\n" % (reason_phrase(103).encode(), wire.block)
        try:
            await self._conn._send_all(head)
        except ConnectionClosed as exc:
            self._gone = True
            raise ClientDisconnected(f"the client has disconnected: {exc.reason}") from exc

    # -- the end ------------------------------------------------------------------

    def outcome(self) -> None:
        """What the app left, once it returned: nothing when the response is
        complete.

        Raises:
            ProtocolError: The body broke a limit (answered already).
            ConnectionClosed: The client went away.
            RuntimeError: The app returned without a (complete) response:
                the server answers 500, or aborts a response under way.
        """
        if self._complete:
            return
        if self._error is not None:
            raise self._error
        if self._gone:
            raise ConnectionClosed("the client went away before the response was complete")
        if self._status is None:
            raise RuntimeError("the ASGI application returned without sending a response")
        raise RuntimeError("the ASGI application returned before its response was complete")
