"""``HTTPConnection``: the trio driver between a byte stream and the sans-IO
HTTP/1.1 server protocol (:mod:`._protocol`).

Theory of operation
-------------------
The protocol decides; this module waits. It reads from the transport only
when the protocol answers :data:`~._protocol.NEED_DATA`, writes the bytes the
protocol makes, and owns every clock and every task. One request is in
flight at a time: iterating the connection finishes the previous exchange
(draining a small unread body, or deciding to close) and reads the next
request head.

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

``100 Continue`` (RFC 9110 section 10.1.1) is sent when the handler starts
reading the body (the protocol decides whether it is owed).

Bytes move through a :class:`~trionet._transport.Transport` (the stdlib
socket directly for plain TCP); after a WebSocket upgrade, the WebSocket
connection takes that transport over, with the bytes the protocol says
arrived behind the request head.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Self

import trio

from ..._errors import ConnectionReset
from ..._listeners import format_address
from ..._proxy._accept import Proxied
from ..._proxy._protocol import ProxyHeader
from ..._server import SocketAddress
from ..._transport import DEFAULT_CLOSE_TIMEOUT, Transport
from ..._trust import TrustedPeers
from ..._websocket_limits import QueueBudget
from ...tls._stream import TLSInfo, tls_info
from .._headers import Headers
from ._errors import ProtocolError, RequestTimeout
from ._events import FINISHED, NEED_DATA, NOT_STARTED, BodyData, RequestHead
from ._limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_REQUESTS_PER_CONNECTION,
    DEFAULT_MAX_TARGET_LENGTH,
    DEFAULT_REQUEST_HEAD_TIMEOUT,
    HTTPLimits,
)
from ._protocol import DRAIN_LIMIT, ServerProtocol
from ._request import Request
from ._response import Response
from ._statistics import HTTPConnectionStatistics
from ._upgrade import Upgrade, Upgraded

__all__ = [
    "HTTPConnection",
    "HTTPConnectionStatistics",
]

# After an error response: how long the lingering close reads and discards.
_LINGER_SECONDS = 2.0


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
        parser: The request parser, as for :func:`~trionet.http.serve`:
            ``"auto"``, ``"h11"`` or ``"httptools"``.
        forwarded_allow_ips: The peers whose forwarding headers are
            believed, as for :func:`~trionet.http.serve` (default: nobody).
        forwarded_header: Which forwarding headers those peers write, as for
            :func:`~trionet.http.serve` (default ``"x-forwarded"``).

    Raises:
        ValueError: A limit is out of range, or an unknown parser.
        TypeError: A limit is of the wrong kind.
        ImportError: ``parser="httptools"`` without httptools installed.
    """

    # Slots, not a __dict__: a server holds one of these per idle connection.
    __slots__ = (
        "_body_timeout",
        "_close_timeout",
        "_current",
        "_draining",
        "_forwarded",
        "_forwarded_header",
        "_head_timeout",
        "_idle_scope",
        "_idle_since",
        "_keepalive_timeout",
        "_nursery",
        "_protocol",
        "_receive",
        "_receive_ready",
        "_receiving",
        "_send_all",
        "_transport",
        "_upgraded",
        "_ws_budget",
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
        parser: str = "auto",
        forwarded_allow_ips: str | Iterable[str] | None = None,
        forwarded_header: str = "x-forwarded",
        _limits: HTTPLimits | None = None,
        _proxied: Proxied | None = None,
    ) -> None:
        if _limits is None:  # serve() built and checked its limits once, before binding
            _limits = HTTPLimits(
                max_header_size=max_header_size,
                max_header_count=max_header_count,
                max_target_length=max_target_length,
                max_body_size=max_body_size,
                request_head_timeout=request_head_timeout,
                keepalive_timeout=keepalive_timeout,
                body_timeout=body_timeout,
                max_requests_per_connection=max_requests_per_connection,
                server_header=server_header,
                parser=parser,
                forwarded=TrustedPeers(forwarded_allow_ips) or None,
                forwarded_header=forwarded_header,
            )
        transport = self._transport = Transport(stream, close_timeout, proxied=_proxied)
        self._receive = transport.receive
        self._receive_ready = transport.receive_ready
        self._send_all = transport.send_all
        self.tls: TLSInfo | None = tls_info(stream) if isinstance(stream, trio.SSLStream) else None
        self._protocol = ServerProtocol(_limits)
        self._forwarded = _limits.forwarded
        self._forwarded_header = _limits.forwarded_header
        self._head_timeout = _limits.request_head_timeout
        self._keepalive_timeout = _limits.keepalive_timeout
        self._body_timeout = _limits.body_timeout
        self._close_timeout = close_timeout
        # the current exchange
        self._current: Request | None = None
        self._draining = False
        # the connection
        self._idle_scope: trio.CancelScope | None = None
        # When the connection went idle between two requests (read by the
        # server core, which may close it to make room); None while busy.
        self._idle_since: float | None = None
        self._receiving = False
        # Set by serve(): where an upgraded connection's tasks run.
        self._nursery: trio.Nursery | None = None
        self._upgraded: Upgraded | None = None
        # Set by serve(): the budget of queued bytes its WebSockets share.
        self._ws_budget: QueueBudget | None = None

    def __repr__(self) -> str:
        return f"<trionet.http.HTTPConnection {self.remote_address!r}>"

    @property
    def remote_address(self) -> SocketAddress:
        """The client's address (``""`` when the transport has none); with a
        trusted PROXY protocol header, the client that header names."""
        return self._transport.remote_address

    @property
    def proxy_address(self) -> SocketAddress | None:
        """The proxy's address when a PROXY protocol header came first."""
        return self._transport.proxy_address

    @property
    def proxy_header(self) -> ProxyHeader | None:
        """The PROXY protocol header the proxy sent, or ``None``."""
        return self._transport.proxy_header

    @property
    def local_address(self) -> SocketAddress:
        """The server's address of this connection."""
        return self._transport.local_address

    @property
    def last_status(self) -> int:
        """The status of the last response begun (0 before any)."""
        return self._protocol.last_status

    @property
    def last_response_bytes(self) -> int:
        """Body bytes of the last response sent so far."""
        return self._protocol.last_response_bytes

    # -- reading requests ------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Request:
        if self._transport.closed:
            raise trio.ClosedResourceError("the connection was closed")
        if self._receiving:
            raise trio.BusyResourceError("another task is already reading this connection")
        self._receiving = True
        protocol = self._protocol
        try:
            try:
                if self._current is not None:
                    await self._next_cycle()
                if protocol.shutdown_requested and not await self._next_request_arrived():
                    raise _Ended
                return await self._read_request()
            except _Ended:
                if protocol.shutdown_requested and protocol.requests:
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
        protocol = self._protocol
        if protocol.response_state != FINISHED:
            raise RuntimeError("respond to the previous request before reading the next")
        if protocol.closing:
            raise _Ended
        if not protocol.body_done:
            await self._drain_body()
        protocol.start_next_request()
        self._current = None

    async def _drain_body(self) -> None:
        request = self._current
        assert request is not None
        drained = 0
        self._draining = True
        try:
            while (chunk := await self._read_body(request)) is not None:
                drained += len(chunk)
                if drained > DRAIN_LIMIT:
                    raise _Ended
        finally:
            self._draining = False

    async def _read_request(self) -> Request:
        protocol = self._protocol
        _ = self._transport.remote_address  # asked while the socket is surely open
        started: float | None = trio.current_time() if protocol.head_started else None
        idle_limit = self._keepalive_timeout if protocol.requests else self._head_timeout
        idle_deadline: float | None = None
        while True:
            event = protocol.next_event()
            if event is NEED_DATA:
                if started is None:
                    # Under load the next request is usually there already:
                    # then no cancel scope is needed to bound the wait.
                    ready = await self._receive_ready()
                    if ready is not None:
                        data = ready
                    else:
                        if idle_deadline is None:
                            idle_deadline = trio.current_time() + idle_limit
                        with trio.move_on_at(idle_deadline) as scope:
                            self._idle_scope = scope
                            self._idle_since = trio.current_time() if protocol.requests else None
                            if protocol.shutdown_requested and protocol.requests:
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
                            if protocol.shutdown_requested:
                                ready = await self._receive_ready()
                            if not ready:
                                raise _Ended
                            data = ready
                    # (b"": closed before sending anything; the protocol says
                    # CLIENT_CLOSED. Empty lines alone: still idle.)
                    protocol.receive_data(data)
                    if protocol.head_started:
                        started = trio.current_time()
                else:
                    with trio.move_on_at(started + self._head_timeout) as scope:
                        data = await self._receive()
                    if scope.cancelled_caught:
                        raise RequestTimeout(
                            f"the request head took longer than {self._head_timeout:g} s"
                        )
                    protocol.receive_data(data)
                continue
            if type(event) is RequestHead:
                request = Request(
                    self, event.method, event.target, event.headers, event.http_version
                )
                self._current = request
                # A request without a body is complete already: find out now, without I/O.
                if protocol.start_body():
                    request._body_read = True  # nothing to read, then or later
                return request
            raise _Ended  # CLIENT_CLOSED

    async def _read_body(self, request: Request) -> bytes | None:
        """The next piece of ``request``'s body, or ``None`` at its end."""
        if request is not self._current:
            if request._body_read:
                return None
            raise RuntimeError(
                f"{request!r}: its exchange is over; a body must be read before responding ends it"
            )
        protocol = self._protocol
        if not protocol.body_done:
            continue_response = protocol.continue_response()
            if continue_response:
                await self._send_all(continue_response)
        while True:
            event = protocol.next_event()
            if event is NEED_DATA:
                with trio.move_on_after(self._body_timeout) as scope:
                    data = await self._receive()
                if scope.cancelled_caught:
                    protocol.closing = True
                    raise RequestTimeout(
                        f"the request body stalled for more than {self._body_timeout:g} s"
                    )
                protocol.receive_data(data)
                continue
            if type(event) is BodyData:
                return event.data
            # END_OF_BODY
            if not self._draining:
                request._body_read = True
                request._trailers = protocol.trailers
            return None

    # -- responding ------------------------------------------------------------

    def _responded(self, request: Request) -> bool:
        return request is not self._current or self._protocol.response_state != NOT_STARTED

    def _head(self, request: Request, status: int, headers: Headers, length: int | None) -> bytes:
        if request is not self._current:
            raise RuntimeError("this request's exchange is over")
        return self._protocol.response_head(status, headers, length)

    async def _next_request_arrived(self) -> bool:
        """On shutdown, between requests: whether the client already sent
        more (pipelined, or in the socket's buffer). Such a request was sent
        before the client could know of the shutdown, so it is answered (with
        ``Connection: close``) rather than reset with the connection."""
        protocol = self._protocol
        if protocol.pipelined():
            return True
        if not protocol.body_done:
            return False
        ready = await self._receive_ready()
        if not ready:
            return False
        protocol.receive_ahead(ready)
        return True

    async def _respond(self, request: Request, response: Response) -> None:
        body = response.body
        if isinstance(body, bytes):
            if request is not self._current:
                raise RuntimeError("this request's exchange is over")
            # (The send's schedule point matters: while the other connections
            # run, this client's next request arrives, and is then read
            # without waiting on epoll.)
            await self._send_all(
                self._protocol.complete_response(response.status, response.headers, body)
            )
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
        if request is not self._current:
            raise RuntimeError("the response is not open for sending a body")
        framed = self._protocol.body_bytes(data)
        if framed:
            await self._send_all(framed)
        else:
            await trio.lowlevel.checkpoint()

    async def _finish_response(self, request: Request, trailers: Headers) -> None:
        if request is not self._current:
            await trio.lowlevel.checkpoint()
            return
        end = self._protocol.end_of_response(trailers)
        if end:
            await self._send_all(end)
        else:
            await trio.lowlevel.checkpoint()

    def _upgrade(self, request: Request) -> Upgrade:
        """The hand-off of this connection to the protocol ``request``
        upgrades to (see :mod:`._upgrade`)."""
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError(
                "accept_websocket() needs the connection to be served by trionet.http.serve"
                " (its reader task runs in the connection's nursery)"
            )
        return Upgrade(
            request_head=request._head_bytes(),
            tls=self.tls,
            budget=self._ws_budget,
            nursery=nursery,
            switch=partial(self._switch_protocols, request),
            adopt=self._adopt,
        )

    def _adopt(self, upgraded: Upgraded) -> None:
        self._upgraded = upgraded

    async def _switch_protocols(self, request: Request, response: bytes) -> tuple[Transport, bytes]:
        """Send ``response`` (a 101) and hand the transport over, with the
        bytes that arrived behind the request head. No more requests are
        read from this connection."""
        if request is not self._current or self._protocol.response_state != NOT_STARTED:
            raise RuntimeError("a response to this request was already sent")
        trailing = self._protocol.switch_protocols()
        await self._send_all(response)
        return self._transport, trailing

    async def _answer_error(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Answer a broken request (when no response started), then close."""
        try:
            answer = self._protocol.error_response(status, headers)
            if answer is not None:
                with trio.move_on_after(self._close_timeout):
                    await self._send_all(answer)
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
        self._protocol.closing = True
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
        if request is self._current and self._protocol.response_state == NOT_STARTED:
            await self._answer_error(status, list(headers))
        else:
            await self.abort()

    # -- the server's side -------------------------------------------------------

    def _request_shutdown(self) -> None:
        self._protocol.shutdown_requested = True
        self._idle_since = None  # on its way out: not one to make room with again
        if self._upgraded is not None:
            self._upgraded._request_shutdown()
        # A keep-alive connection waiting for its next request closes now; a
        # new one waits for its first request (bounded by
        # request_head_timeout and the shutdown's grace), which is answered
        # with Connection: close: its client connected before the listener
        # closed, so it is owed an answer.
        if self._idle_scope is not None and self._protocol.requests:
            self._idle_scope.cancel()

    def _log_context(self) -> dict[str, object]:
        """What the server logs of this connection when its handler fails."""
        peer = self._transport.remote_address
        context: dict[str, object] = {"peer": format_address(peer) if peer else None}
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
        return self._protocol.shutdown_requested

    def statistics(self) -> HTTPConnectionStatistics:
        """Return the connection's counters.

        Returns:
            An :class:`HTTPConnectionStatistics`.
        """
        transport = self._transport
        return HTTPConnectionStatistics(
            transport.bytes_received, transport.bytes_sent, self._protocol.requests
        )

    async def aclose(self) -> None:
        """Close the connection (idempotent). Over TLS the close is graceful
        (``close_notify``) within ``close_timeout``."""
        await self._transport.aclose()
