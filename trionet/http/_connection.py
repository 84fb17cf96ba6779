"""``HTTPConnection``: the trio adapter between a byte stream and h11.

Theory of operation
-------------------
h11 parses requests; this module moves bytes, enforces what h11 leaves to
the server, and writes the responses itself. One request is in flight at a
time: iterating the connection finishes the previous exchange (draining a
small unread body, or deciding to close) and reads the next request head with
a fresh h11 parser, fed whatever the client already sent after the previous
request (``trailing_data``). Pipelined requests are simply already there, so
they are answered in order.

Why responses bypass h11: serializing a response through h11 costs more than
parsing the request did (it validates every field again, for every response).
Here a response's fields are checked once per :class:`Headers` object (names
are tokens, values have no CR, LF or other control characters, so no response
splitting; RFC 9110 section 5) and kept encoded, so a response sent many times
is checked once; the framing rules are RFC 9112 section 6: ``Content-Length``
for a known body, chunked for a streamed one (close-delimited to an HTTP/1.0
client), no body for HEAD, 204 and 304, and ``Connection: close`` on the
last response of a connection.

Stricter than h11 alone, as RFC 9112 asks of a server:

* a request with both ``Content-Length`` and ``Transfer-Encoding`` is answered
  400 and the connection closed (section 6.3: such a message "ought to be
  handled as an error"; answering it and reading on is how requests are
  smuggled past proxies);
* more than one ``Host``, control characters in a field value (h11's field
  grammar admits them), and an HTTP major version other than 1 (505) are
  refused; h11 already refuses a 1.1 request without ``Host`` and conflicting
  ``Content-Length`` values.

Every malformed request is answered with a 4xx or 5xx status and the
connection is closed after a *lingering close*: our side is shut down for
writing, then what the client is still sending is read and discarded for a
moment, so that its kernel does not answer our response with a reset before
the client has read it (what nginx calls ``lingering_close``).

Time limits, all from the moment they start: a new connection must deliver a
request head within ``request_head_timeout``; between requests a connection
may idle ``keepalive_timeout`` (then it is closed silently); once the first
byte of a head has arrived, the whole head must arrive within
``request_head_timeout`` (else 408); a body may stall at most
``body_timeout`` between two reads.

``100 Continue`` (RFC 9110 section 10.1.1) is sent only when the handler
starts reading the body; a handler that answers without reading it gets
``Connection: close`` on its response instead of the server reading a body
nobody wants.

Bytes move through a :class:`~trionet._transport.Transport` (the stdlib
socket directly for plain TCP); after a WebSocket upgrade, the WebSocket
connection takes that transport over.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import h11
import trio

from .._errors import ConnectionReset
from .._listeners import format_address
from .._server import SocketAddress
from .._stream import DEFAULT_CLOSE_TIMEOUT
from .._tls import TLSInfo, tls_info
from .._transport import Transport
from .._websocket_limits import QueueBudget
from ._headers import Headers
from ._limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_REQUESTS_PER_CONNECTION,
    DEFAULT_MAX_TARGET_LENGTH,
    DEFAULT_REQUEST_HEAD_TIMEOUT,
    check_http_limits,
    check_server_header,
)
from ._messages import (
    BodyTooLarge,
    ProtocolError,
    Request,
    RequestTimeout,
    Response,
)
from ._wire import http_date, reason_phrase, status_line

if TYPE_CHECKING:
    from ..websocket._connection import WebSocketConnection

__all__ = [
    "HTTPConnection",
    "HTTPConnectionStatistics",
]

# An unread request body up to this size is read and thrown away to keep the
# connection alive; a larger one closes the connection instead.
_DRAIN_LIMIT = 64 * 1024

# After an error response: how long the lingering close reads and discards.
_LINGER_SECONDS = 2.0

# A line ending that is not CRLF, or a line folded onto the previous one.
_LOOSE_LINES = re.compile(rb"(?<!\r)\n|\n[ \t]")

# A field value with a control character (RFC 9110 section 5.5 allows only
# VCHAR, obs-text, SP and HTAB).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# Response states of the current request.
_NOT_STARTED, _STARTED, _FINISHED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class HTTPConnectionStatistics:
    """A snapshot of an :class:`HTTPConnection`'s counters.

    Attributes:
        bytes_received: Bytes read from the transport.
        bytes_sent: Bytes written to the transport.
        requests: Requests received.
    """

    bytes_received: int
    bytes_sent: int
    requests: int


class _Ended(Exception):
    """Internal: the connection has no more requests (clean end)."""


class HTTPConnection(trio.abc.AsyncResource):
    """An HTTP/1.1 server connection: an async iterator of :class:`Request`.

    :func:`~trionet.http.serve` makes one per accepted connection and drives
    it; you can also wrap any ``trio.abc.Stream`` yourself (an in-memory one
    in tests)::

        async for request in HTTPConnection(stream):
            await request.respond(Response(200, body=b"hi"))

    The loop ends when the client closes between requests, when the
    connection must close after a response (``Connection: close``, HTTP/1.0,
    ``max_requests_per_connection``), after an idle ``keepalive_timeout``, or
    on the server's graceful shutdown. A malformed request is answered
    (400, 408, 413, 414, 431, 505) and raises :exc:`ProtocolError` from the
    loop, after the connection was closed.

    Args:
        stream: The transport (TCP, TLS, Unix, in-memory).
        max_header_size: Bytes the request head may take (431 beyond).
        max_header_count: Header fields per request (431 beyond).
        max_target_length: Length of the request target (414 beyond).
        max_body_size: Bytes of a request body (413 beyond).
        request_head_timeout: Seconds a request head may take (408 beyond).
        keepalive_timeout: Seconds a connection may idle between requests.
        body_timeout: Seconds a request body may stall (408 beyond).
        max_requests_per_connection: Requests before the connection closes;
            ``None`` for no limit.
        server_header: The ``Server`` header's value; ``None`` to send none.
        close_timeout: Seconds closing may take (TLS close_notify).

    Raises:
        ValueError: A limit is out of range.
        TypeError: A limit is of the wrong kind.
    """

    # Slots, not a __dict__: a server holds one of these per idle connection.
    __slots__ = (
        "_body_done",
        "_body_received",
        "_body_timeout",
        "_chunked_out",
        "_close_timeout",
        "_closing",
        "_current",
        "_draining",
        "_expect_continue",
        "_h11",
        "_head_timeout",
        "_http_10",
        "_idle_scope",
        "_idle_since",
        "_keepalive_timeout",
        "_length_out",
        "_max_body_size",
        "_max_header_count",
        "_max_header_size",
        "_max_requests",
        "_max_target_length",
        "_method",
        "_no_body",
        "_nursery",
        "_pending_head",
        "_receive",
        "_receive_ready",
        "_receiving",
        "_request_length",
        "_requests",
        "_response",
        "_send_all",
        "_sent_out",
        "_server_line",
        "_shutdown_requested",
        "_stash",
        "_transport",
        "_upgraded",
        "_ws_budget",
        "last_response_bytes",
        "last_status",
        "tls",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_target_length: int = DEFAULT_MAX_TARGET_LENGTH,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        request_head_timeout: float = DEFAULT_REQUEST_HEAD_TIMEOUT,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_requests_per_connection: int | None = DEFAULT_MAX_REQUESTS_PER_CONNECTION,
        server_header: str | None = "trionet",
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        _checked: bool = False,
    ) -> None:
        if not _checked:  # serve() checked them once, before binding
            check_server_header(server_header)
            check_http_limits(
                max_header_size=max_header_size,
                max_header_count=max_header_count,
                max_target_length=max_target_length,
                max_body_size=max_body_size,
                request_head_timeout=request_head_timeout,
                keepalive_timeout=keepalive_timeout,
                body_timeout=body_timeout,
                max_requests_per_connection=max_requests_per_connection,
            )
        transport = self._transport = Transport(stream, close_timeout)
        self._receive = transport.receive
        self._receive_ready = transport.receive_ready
        self._send_all = transport.send_all
        self.tls: TLSInfo | None = tls_info(stream) if isinstance(stream, trio.SSLStream) else None
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        self._max_header_size = max_header_size
        self._max_header_count = max_header_count
        self._max_target_length = max_target_length
        self._max_body_size = max_body_size
        self._head_timeout = request_head_timeout
        self._keepalive_timeout = keepalive_timeout
        self._body_timeout = body_timeout
        self._max_requests = max_requests_per_connection
        self._server_line = (
            b"\r\nserver: " + server_header.encode("latin-1") if server_header else b""
        )
        self._server_line += b"\r\n"
        self._close_timeout = close_timeout
        # the current exchange
        self._current: Request | None = None
        self._response = _NOT_STARTED
        self._body_done = True
        self._body_received = 0
        self._stash: bytes | None = None  # body bytes read ahead with the head
        self._closing = False  # the connection closes after the current response
        self._method = b""
        self._pending_head = b""  # bytes of the next head received behind a request
        self._draining = False
        self._http_10 = False
        self._request_length: int | None = None
        self._expect_continue = False
        self._no_body = False
        self._chunked_out = False
        self._length_out: int | None = None
        self._sent_out = 0
        self.last_status = 0
        self.last_response_bytes = 0
        # the connection
        self._idle_scope: trio.CancelScope | None = None
        # When the connection went idle between two requests (read by the
        # server core, which may close it to make room); None while busy.
        self._idle_since: float | None = None
        self._receiving = False
        self._shutdown_requested = False
        # Set by serve(): where an upgraded connection's tasks run.
        self._nursery: trio.Nursery | None = None
        self._upgraded: WebSocketConnection | None = None
        # Set by serve(): the budget of queued bytes its WebSockets share.
        self._ws_budget: QueueBudget | None = None
        self._requests = 0

    def __repr__(self) -> str:
        return f"<trionet.http.HTTPConnection {self.remote_address!r}>"

    @property
    def remote_address(self) -> SocketAddress:
        """The client's address (``""`` when the transport has none)."""
        return self._transport.remote_address

    @property
    def local_address(self) -> SocketAddress:
        """The server's address of this connection."""
        return self._transport.local_address

    # -- reading requests ------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Request:
        if self._transport.closed:
            raise trio.ClosedResourceError("the connection was closed")
        if self._receiving:
            raise trio.BusyResourceError("another task is already reading this connection")
        self._receiving = True
        try:
            try:
                if self._current is not None:
                    await self._next_cycle()
                if self._shutdown_requested and not await self._next_request_arrived():
                    raise _Ended
                return await self._read_request()
            except _Ended:
                if self._shutdown_requested and self._requests:
                    # A keep-alive connection closed by the server: a request
                    # the client sends as our FIN travels must meet a read,
                    # not a reset, so the client can tell it went unread and
                    # retry it (RFC 9112 section 9.3.1).
                    await self._linger()
                await self.aclose()
                raise StopAsyncIteration from None
            except ProtocolError as exc:
                await self._answer_error(exc.status, exc.headers)
                raise
        finally:
            self._receiving = False

    async def _next_cycle(self) -> None:
        if self._response != _FINISHED:
            raise RuntimeError("respond to the previous request before reading the next")
        if self._closing:
            raise _Ended
        if not self._body_done:
            await self._drain_body()
        # h11 parsed this request; the response went out without it (see the
        # module docstring), so the next request gets a parser of its own,
        # fed what the client already sent after this one.
        leftover, closed = self._h11.trailing_data
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header_size)
        # RFC 9112 section 2.2: empty lines before a request line are ignored
        # (some clients end a body with an extra CRLF).
        leftover = bytes(leftover).lstrip(b"\r\n")
        self._pending_head = leftover
        if leftover:
            self._h11.receive_data(leftover)
        if closed:
            self._h11.receive_data(b"")
        self._current = None
        self._response = _NOT_STARTED
        self._method = b""

    async def _drain_body(self) -> None:
        request = self._current
        assert request is not None
        drained = 0
        self._draining = True
        try:
            while (chunk := await self._read_body(request)) is not None:
                drained += len(chunk)
                if drained > _DRAIN_LIMIT:
                    raise _Ended
        finally:
            self._draining = False

    async def _read_request(self) -> Request:
        h = self._h11
        # The bytes of this head, kept to check its line endings (see _accept);
        # any that came behind the previous request already started it.
        chunks = [self._pending_head] if self._pending_head else []
        started: float | None = trio.current_time() if chunks else None
        line_done = b"\n" in self._pending_head
        line_length = len(self._pending_head) if not line_done else 0
        idle_limit = self._keepalive_timeout if self._requests else self._head_timeout
        idle_deadline = trio.current_time() + idle_limit
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(f"bad request: {exc}", exc.error_status_hint) from None
            if event is h11.NEED_DATA:
                if started is None:
                    # Under load the next request is usually there already:
                    # then no cancel scope is needed to bound the wait.
                    ready = await self._receive_ready()
                    if ready is not None:
                        data = ready
                    else:
                        with trio.move_on_at(idle_deadline) as scope:
                            self._idle_scope = scope
                            self._idle_since = trio.current_time() if self._requests else None
                            if self._shutdown_requested and self._requests:
                                scope.cancel()
                            try:
                                data = await self._receive()
                            finally:
                                self._idle_scope = None
                                self._idle_since = None
                        if scope.cancelled_caught:
                            # Idle: close without a word, unless the next
                            # request arrived as the shutdown came.
                            ready = None
                            if self._shutdown_requested:
                                ready = await self._receive_ready()
                            if not ready:
                                raise _Ended
                            data = ready
                    if not data:
                        raise _Ended  # closed before sending anything
                    data = data.lstrip(b"\r\n")  # empty lines first: ignored
                    if not data:
                        continue  # still nothing of a request; still idle
                    started = trio.current_time()
                else:
                    with trio.move_on_at(started + self._head_timeout) as scope:
                        data = await self._receive()
                    if scope.cancelled_caught:
                        raise RequestTimeout(
                            f"the request head took longer than {self._head_timeout:g} s"
                        )
                if not line_done:
                    end = data.find(b"\n")
                    line_done = end >= 0
                    line_length += end if line_done else len(data)
                    if line_length > self._max_target_length + 32:  # method, version
                        raise ProtocolError("the request target is too long", 414)
                chunks.append(data)
                h.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                self._check_line_endings(chunks)
                return self._accept(event)
            if isinstance(event, h11.ConnectionClosed):
                raise _Ended
            raise ProtocolError(f"unexpected {type(event).__name__}")  # pragma: no cover

    def _check_line_endings(self, chunks: list[bytes]) -> None:
        """Refuse a head with a bare LF or a folded line. h11 accepts both, as
        RFC 9112 allows, but proxies disagree on them, which is how requests
        are smuggled (Node refuses them too: CVE-2023-30589, CVE-2022-32215)."""
        received = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        rest = len(self._h11.trailing_data[0])
        head = received[: len(received) - rest] if rest else received
        if _LOOSE_LINES.search(head):
            raise ProtocolError("a bare LF or a folded line in the request head")

    def _accept(self, event: h11.Request) -> Request:
        """Check a parsed request head against what h11 lets through."""
        self._method = event.method
        _ = self._transport.remote_address  # asked while the socket is surely open
        if event.http_version[:2] != b"1.":
            raise ProtocolError("only HTTP/1.x is served", 505)
        raw = event.headers.raw_items()
        if len(raw) > self._max_header_count:
            raise ProtocolError(f"more than {self._max_header_count} header fields", 431)
        if len(event.target) > self._max_target_length:
            raise ProtocolError("the request target is too long", 414)
        hosts = 0
        length: int | None = None
        chunked = False
        close = event.http_version == b"1.0"  # no HTTP/1.0 keep-alive, as h11
        expect_continue = False
        # h11 bounds only a head that arrives in pieces; one that came whole is
        # measured here (the same 431 either way).
        size = len(event.method) + len(event.target) + 12
        for raw_name, value in raw:
            name = raw_name.lower()
            size += len(name) + len(value) + 4
            if _CONTROL.search(value):
                raise ProtocolError("a control character in a header field value")
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection":
                close = close or b"close" in value.lower()
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
        if size > self._max_header_size:
            raise ProtocolError(f"the request head is over {self._max_header_size} bytes", 431)
        if hosts > 1:
            raise ProtocolError("more than one Host header field")
        if chunked and length is not None:
            raise ProtocolError("both Content-Length and Transfer-Encoding")
        if length is not None and length > self._max_body_size:
            raise BodyTooLarge(f"a {length}-byte body is over max_body_size={self._max_body_size}")
        if event.method == b"CONNECT":
            # A tunnel is a proxy's business (RFC 9110 section 9.3.6), and its
            # 2xx answer has no framing at all: not something to hand a handler
            # written for requests.
            raise ProtocolError("CONNECT is not served here", 501)
        target = event.target.decode("ascii", "replace")
        if not (target[0] == "/" or target == "*" or "://" in target):
            raise ProtocolError(f"a malformed request target: {target[:80]!r}")
        self._requests += 1
        request = Request(
            self, event.method.decode("ascii"), target, raw, event.http_version.decode("ascii")
        )
        self._current = request
        self._response = _NOT_STARTED
        self._closing = close
        self._http_10 = event.http_version == b"1.0"
        self._request_length = length
        self._expect_continue = expect_continue and not self._http_10
        self._body_received = 0
        self._stash = None
        self._body_done = False
        # A request without a body is complete already: find out now, without I/O.
        try:
            nxt = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(f"a malformed request body: {exc}") from None
        if isinstance(nxt, h11.EndOfMessage):
            self._body_done = True
            request._body_read = True  # nothing to read, then or later
        elif isinstance(nxt, h11.Data):
            self._stash = bytes(nxt.data)
        return request

    async def _read_body(self, request: Request) -> bytes | None:
        """The next piece of ``request``'s body, or ``None`` at its end."""
        if request is not self._current:
            if request._body_read:
                return None
            raise RuntimeError(
                f"{request!r}: its exchange is over; a body must be read before responding ends it"
            )
        if self._body_done:
            if not self._draining:
                request._body_read = True
            return None
        h = self._h11
        if self._stash is not None:
            data, self._stash = self._stash, None
            return self._count_body(data)
        if self._expect_continue and self._response == _NOT_STARTED:
            self._expect_continue = False
            await self._send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                self._closing = True
                raise ProtocolError(f"a malformed request body: {exc}") from None
            if event is h11.NEED_DATA:
                with trio.move_on_after(self._body_timeout) as scope:
                    data = await self._receive()
                if scope.cancelled_caught:
                    self._closing = True
                    raise RequestTimeout(
                        f"the request body stalled for more than {self._body_timeout:g} s"
                    )
                h.receive_data(data)
                continue
            if isinstance(event, h11.Data):
                return self._count_body(bytes(event.data))
            if isinstance(event, h11.EndOfMessage):
                self._body_done = True
                if not self._draining:
                    request._body_read = True
                return None
            self._closing = True  # pragma: no cover
            raise ProtocolError(f"unexpected {type(event).__name__} in a body")  # pragma: no cover

    def _count_body(self, data: bytes) -> bytes:
        self._body_received += len(data)
        if self._body_received > self._max_body_size:
            self._closing = True
            raise BodyTooLarge(f"the request body is over max_body_size={self._max_body_size}")
        return data

    # -- responding ------------------------------------------------------------

    def _responded(self, request: Request) -> bool:
        return request is not self._current or self._response != _NOT_STARTED

    def _head(self, request: Request, status: int, headers: Headers, length: int | None) -> bytes:
        """The status line and header block of a response to ``request``,
        and the framing of its body (RFC 9112 section 6)."""
        if request is not self._current:
            raise RuntimeError("this request's exchange is over")
        if self._response != _NOT_STARTED:
            raise RuntimeError("a response was already sent for this request")
        if not 200 <= status <= 999:
            raise ValueError(f"a final response has a status in 200..999, not {status!r}")
        wire = headers._wire()
        self._no_body = request.method == "HEAD" or status in (204, 304)
        self._chunked_out = False
        self._length_out = None
        framing = b""
        if wire.transfer_encoding is not None:
            if wire.transfer_encoding.lower() != b"chunked" or wire.length is not None:
                raise ValueError("only Transfer-Encoding: chunked, without Content-Length")
            if length is not None:
                raise ValueError("Transfer-Encoding: chunked with a bytes body")
            if self._http_10:
                self._closing = True  # no chunked to HTTP/1.0: the close ends the body
            elif not self._no_body:
                framing = b"transfer-encoding: chunked\r\n"
                self._chunked_out = True
        elif wire.length is not None:
            if length is not None and length != wire.length and not self._no_body:
                raise ValueError(f"Content-Length: {wire.length} for a {length}-byte body")
            self._length_out = wire.length
        elif length is not None:
            if status not in (204, 304):
                framing = b"content-length: %d\r\n" % length
            self._length_out = length
        elif not self._no_body:
            if self._http_10:
                self._closing = True  # the end of the body is the end of the connection
            else:
                framing = b"transfer-encoding: chunked\r\n"
                self._chunked_out = True
        if not self._closing and self._must_close():
            self._closing = True
        if wire.connection is not None and b"close" in wire.connection.lower():
            self._closing = True
        if self._closing:
            # Whatever the handler wrote there: the truth is that we close.
            framing += b"connection: close\r\n"
        elif wire.connection is not None:
            framing += b"connection: " + wire.connection + b"\r\n"
        self._sent_out = 0
        self._response = _STARTED
        self.last_status = status
        self.last_response_bytes = 0
        return b"".join(
            (
                status_line(status),
                b"date: ",
                http_date(),
                self._server_line,
                wire.block,
                framing,
                b"\r\n",
            )
        )

    async def _next_request_arrived(self) -> bool:
        """On shutdown, between requests: whether the client already sent
        more (pipelined, or in the socket's buffer). Such a request was sent
        before the client could know of the shutdown, so it is answered (with
        ``Connection: close``) rather than reset with the connection."""
        if self._pipelined():
            return True
        if not self._body_done:
            return False
        ready = await self._receive_ready()
        if not ready:
            return False
        self._pending_head += ready
        self._h11.receive_data(ready)
        return True

    def _pipelined(self) -> bool:
        """Whether the next request's whole head has already arrived
        (pipelined behind this one): on shutdown it is answered too, rather
        than dropped with the connection."""
        if not self._body_done:
            return False
        return b"\r\n\r\n" in bytes(self._h11.trailing_data[0]).lstrip(b"\r\n")

    def _must_close(self) -> bool:
        if self._shutdown_requested and not self._pipelined():
            return True
        if self._max_requests is not None and self._requests >= self._max_requests:
            return True
        if not self._body_done:
            # A body nobody read: read it only if it is small and on its way.
            if self._expect_continue:
                return True
            length = self._request_length
            if length is None or length - self._body_received > _DRAIN_LIMIT:
                return True
        return False

    async def _respond(self, request: Request, response: Response) -> None:
        body = response.body
        if isinstance(body, bytes):
            head = self._head(request, response.status, response.headers, len(body))
            self._response = _FINISHED
            if self._no_body or not body:
                await self._send_all(head)
            else:
                self.last_response_bytes = len(body)
                await self._send_all(head + body)
            return
        await self._start_response(request, response.status, response.headers, None)
        async for chunk in body:
            await self._send_body(request, chunk)
        await self._finish_response(request, Headers())

    async def _start_response(
        self, request: Request, status: int, headers: Headers, length: int | None
    ) -> None:
        await self._send_all(self._head(request, status, headers, length))

    async def _send_body(self, request: Request, data: bytes) -> None:
        if request is not self._current or self._response != _STARTED:
            raise RuntimeError("the response is not open for sending a body")
        if not data or self._no_body:
            await trio.lowlevel.checkpoint()
            return  # a HEAD, 204 or 304 response has no body; the handler need not know
        size = len(data)
        if self._chunked_out:
            data = b"%x\r\n%b\r\n" % (size, data)
        elif self._length_out is not None and self._sent_out + size > self._length_out:
            raise ValueError(f"more body than the Content-Length of {self._length_out}")
        self._sent_out += size
        self.last_response_bytes += size
        await self._send_all(data)

    async def _finish_response(self, request: Request, trailers: Headers) -> None:
        if request is not self._current or self._response != _STARTED:
            await trio.lowlevel.checkpoint()
            return
        self._response = _FINISHED
        if self._no_body:
            await trio.lowlevel.checkpoint()
        elif self._chunked_out:
            await self._send_all(b"0\r\n" + trailers._wire().block + b"\r\n")
        elif self._length_out is not None and self._sent_out < self._length_out:
            self._closing = True  # the message cannot end: the client must see it cut
            raise ValueError(
                f"the body ended {self._length_out - self._sent_out} bytes short of its"
                " Content-Length"
            )
        else:
            await trio.lowlevel.checkpoint()

    async def _switch_protocols(self, request: Request, response: bytes) -> tuple[Transport, bytes]:
        """Send ``response`` (a 101) and hand the transport over, with the
        bytes that arrived behind the request head. No more requests are
        read from this connection."""
        if request is not self._current or self._response != _NOT_STARTED:
            raise RuntimeError("a response to this request was already sent")
        self._response = _FINISHED
        self._closing = True
        self.last_status = 101
        self.last_response_bytes = 0
        trailing = bytes(self._h11.trailing_data[0])
        if self._stash:
            trailing = self._stash + trailing
            self._stash = None
        # No request is read here again: an idle WebSocket need not hold h11.
        del self._h11
        await self._send_all(response)
        return self._transport, trailing

    async def _answer_error(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Answer a broken request (when no response started), then close."""
        self._closing = True
        try:
            if self._response == _NOT_STARTED:
                phrase = reason_phrase(status)
                body = f"{status} {phrase}\n".encode("ascii")
                length = len(body)
                if self._method == b"HEAD":
                    body = b""  # RFC 9110 section 9.3.2: the head only
                head = (
                    f"HTTP/1.1 {status} {phrase}\r\n"
                    f"date: {http_date().decode()}\r\n"
                    "content-type: text/plain; charset=utf-8\r\n"
                    f"content-length: {length}\r\n"
                    + "".join(f"{name}: {value}\r\n" for name, value in headers)
                    + "connection: close\r\n\r\n"
                ).encode("ascii")
                self._response = _FINISHED
                self.last_status = status
                self.last_response_bytes = len(body)
                with trio.move_on_after(self._close_timeout):
                    await self._send_all(head + body)
                    await self._linger()
        except (ConnectionReset, trio.ClosedResourceError, trio.BusyResourceError):
            pass
        finally:
            await self.aclose()

    async def _linger(self) -> None:
        """Stop writing (where the transport can), and read and discard what
        the client still sends for a moment, so that the unread upload does
        not make our kernel reset the connection before the client read the
        answer. Bounded by time only, as nginx's lingering close."""
        if not await self._transport.shutdown_write():
            return
        with trio.move_on_after(_LINGER_SECONDS):
            try:
                while await self._receive():
                    pass
            except (ConnectionReset, trio.BrokenResourceError):
                pass

    async def abort(self) -> None:
        """Close the connection at once, even in the middle of a response (the
        client sees a truncated body, not a complete one)."""
        self._closing = True
        await self.aclose()

    async def fail(
        self, request: Request, status: int = 500, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """End ``request`` after a failure: answer ``status`` (and close) if
        no response started yet, else abort the connection.

        Args:
            request: The request that failed.
            status: The status to answer with.
            headers: Extra header fields for that answer.
        """
        if request is self._current and self._response == _NOT_STARTED:
            await self._answer_error(status, list(headers))
        else:
            await self.abort()

    # -- the server's side -------------------------------------------------------

    def _request_shutdown(self) -> None:
        self._shutdown_requested = True
        self._idle_since = None  # on its way out: not one to make room with again
        if self._upgraded is not None:
            self._upgraded._request_shutdown()
        # A keep-alive connection waiting for its next request closes now; a
        # new one waits for its first request (bounded by
        # request_head_timeout and the shutdown's grace), which is answered
        # with Connection: close: its client connected before the listener
        # closed, so it is owed an answer.
        if self._idle_scope is not None and self._requests:
            self._idle_scope.cancel()

    def _log_context(self) -> dict[str, object]:
        """What the server logs of this connection when its handler fails."""
        context: dict[str, object] = {"peer": _peer_text(self._transport.remote_address)}
        request = self._current
        if request is not None:
            context.update(
                method=request.method, target=request.target, http_version=request.http_version
            )
        return context

    @property
    def shutdown_requested(self) -> bool:
        """True once the server began a graceful shutdown: the current
        response carries ``Connection: close`` and the loop then ends."""
        return self._shutdown_requested

    def statistics(self) -> HTTPConnectionStatistics:
        """Return the connection's counters.

        Returns:
            An :class:`HTTPConnectionStatistics`.
        """
        transport = self._transport
        return HTTPConnectionStatistics(
            transport.bytes_received, transport.bytes_sent, self._requests
        )

    async def aclose(self) -> None:
        """Close the connection (idempotent). Over TLS the close is graceful
        (``close_notify``) within ``close_timeout``."""
        await self._transport.aclose()


def _peer_text(address: SocketAddress) -> str | None:
    return format_address(address) if address else None
