"""``trionet.http.serve``: Node's ``http.createServer`` / ``https.createServer``
on the shared server core.

An HTTP connection is one more adapter: the core accepts, runs the TLS
handshake and supervises; the opener wraps the stream in an
:class:`HTTPConnection`; the per-connection handler below iterates its
requests and calls the user's handler for each. A failing request never
reaches the client as a traceback: a handler that raises before responding
gets the client a 500 (and the connection closed), after responding an
aborted connection (so a truncated body is seen as one).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from ... import _checks as checks
from ..._errors import ConnectionClosed
from ..._listeners import format_address, open_tcp_listeners
from ..._server import (
    DEFAULT_MAX_CONNECTIONS,
    HandlerErrors,
    Server,
    ServerCore,
    check_server_options,
    describe_callable,
)
from ..._transport import DEFAULT_CLOSE_TIMEOUT
from ..._websocket_limits import DEFAULT_MAX_TOTAL_QUEUED_BYTES, QueueBudget
from ...tls._stream import DEFAULT_TLS_HANDSHAKE_TIMEOUT, server_handshake
from .._headers import Headers
from ._connection import HTTPConnection
from ._errors import ProtocolError
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
from ._request import Request
from ._response import Response

__all__ = ["Handler", "serve"]

logger = logging.getLogger("trionet.http")
access_logger = logging.getLogger("trionet.http.access")

#: ``async def handler(request) -> Response | None``.
Handler = Callable[[Request], Awaitable[Response | None]]


def _access_line(request: Request, conn: HTTPConnection) -> str:
    """One line of the Common Log Format (as Apache and nginx write it)."""
    client = request.client
    host = client[0] if isinstance(client, tuple) else (client or "-")
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    size = conn.last_response_bytes or "-"
    line = f"{request.method} {request.target} HTTP/{request.http_version}"
    return f'{host} - - [{stamp}] "{line}" {conn.last_status} {size}'


async def _serve_connection(handler: Handler, access_log: bool, conn: HTTPConnection) -> None:
    # The connection's own nursery: a WebSocket the handler upgrades to reads
    # in a task here, so nothing outlives the connection's task. What the
    # requests raise is raised as itself, not wrapped in an ExceptionGroup.
    # (One function, not two: an idle WebSocket's task waits inside it, and
    # each coroutine frame of that wait is memory the connection holds.)
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        conn._nursery = nursery
        try:
            async for request in conn:
                try:
                    result = await handler(request)
                    ws = conn._upgraded
                    if ws is not None:
                        # The connection was the WebSocket's: close it if the handler
                        # did not, and read no more requests.
                        await ws._handler_done(failed=False)
                        break
                    if not request.responded:
                        if isinstance(result, Response):
                            await conn._respond(request, result)
                        elif result is None:
                            raise RuntimeError(
                                f"the handler returned None without responding to {request!r}"
                            )
                        else:
                            raise TypeError(f"the handler returned {result!r}, not a Response")
                    else:
                        await conn._finish_response(request, Headers())
                except ProtocolError as exc:
                    # The client's fault, found while the handler read the body.
                    await conn.fail(request, exc.status, exc.headers)
                    raise
                except Exception as exc:
                    ws = conn._upgraded
                    if ws is not None:
                        # 1011 for a bug in the handler; a peer that misbehaved has
                        # already had its close.
                        await ws._handler_done(failed=not isinstance(exc, ConnectionClosed))
                    else:
                        await conn.fail(request, 500)
                    raise
                except BaseException:
                    await conn.abort()
                    raise
                finally:
                    if access_log and conn.last_status:
                        access_logger.info(_access_line(request, conn))
        except BaseException as exc:
            failure = exc
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _open_http(
    stream: trio.SocketStream,
    *,
    ssl_context: ssl.SSLContext | None,
    tls_handshake_timeout: float,
    make: Callable[[trio.abc.Stream], HTTPConnection],
    budget: QueueBudget,
) -> HTTPConnection:
    transport: trio.abc.Stream = stream
    if ssl_context is not None:
        transport = await server_handshake(stream, ssl_context, tls_handshake_timeout)
    conn = make(transport)
    conn._ws_budget = budget
    return conn


async def serve(
    handler: Handler,
    port: int,
    host: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    max_target_length: int = DEFAULT_MAX_TARGET_LENGTH,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    request_head_timeout: float = DEFAULT_REQUEST_HEAD_TIMEOUT,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_requests_per_connection: int | None = DEFAULT_MAX_REQUESTS_PER_CONNECTION,
    server_header: str | None = "trionet",
    access_log: bool = False,
    handler_errors: HandlerErrors = "log",
    backlog: int | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    max_total_queued_bytes: int = DEFAULT_MAX_TOTAL_QUEUED_BYTES,
    parser: str = "auto",
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP/1.1 (Node's ``http.createServer``), or HTTPS with
    ``ssl_context`` (``https.createServer``).

    ``handler(request)`` runs for each request, one at a time per connection,
    and returns a :class:`Response` (or sends one itself with
    :meth:`Request.respond_stream`). ``Date``, ``Server``, ``Content-Length``
    or chunked framing, keep-alive and ``100 Continue`` are handled for you.
    Start it with ``server = await nursery.start(trionet.http.serve, handler,
    port)``; the contract is :func:`trionet.serve_tcp`'s: a handler that
    raises is logged on ``trionet.http`` and counted, its client gets a 500
    (or, mid-response, a closed connection), and the server goes on;
    ``server.shutdown(grace)`` closes idle connections at once, lets
    in-flight requests finish (their responses carry ``Connection: close``),
    then cancels what is left.

    Args:
        handler: ``async def handler(request: Request) -> Response | None``.
        port: The port; 0 lets the system pick.
        host: The address; ``None`` listens on every address (IPv4 and IPv6).
        ssl_context: Serve HTTPS with this server context (see
            :func:`trionet.tls.server_context`).
        max_connections: Connections open at once (default 10 000).
        tls_handshake_timeout: Seconds for the TLS handshake (default 10).
        max_header_size: Bytes of a request head (default 16 KiB; 431 beyond).
        max_header_count: Header fields of a request (default 100; 431
            beyond).
        max_target_length: Characters of a request target (default 8 KiB;
            414 beyond).
        max_body_size: Bytes of a request body, whether read whole or
            streamed (default 1 MiB; 413 beyond).
        request_head_timeout: Seconds a request head may take once started,
            and a new connection's first request (default 30; 408 beyond).
        keepalive_timeout: Seconds an idle connection is kept between requests
            (default 5, as Node).
        body_timeout: Seconds a request body may stall (default 30; 408
            beyond).
        max_requests_per_connection: Requests served on one connection before
            it is closed (default 1000; ``None`` for no limit).
        server_header: The ``Server`` header (default ``"trionet"``; ``None``
            sends none).
        access_log: Log one line per request on ``trionet.http.access``, in
            the Common Log Format (default off).
        handler_errors: ``"log"`` or ``"raise"``, as for
            :func:`trionet.serve_tcp`.
        backlog: The listen queue length; ``None`` for the system's maximum.
        close_timeout: Seconds a graceful close (TLS) may take (default 5).
        max_total_queued_bytes: Bytes of received WebSocket messages waiting
            for the handlers of all the WebSockets this server accepted,
            together (default 64 MiB). Past it their readers stop reading
            until the handlers consume; a WebSocket with nothing queued may
            always take one message.
        parser: The request parser: ``"auto"`` (the default: httptools,
            the fast path, when it is installed with ``pip install
            'trionet[fast]'``, else h11), ``"h11"`` (the reference) or
            ``"httptools"``. Both give the same answers to the same bytes
            (see :doc:`/http`).
        task_status: Set by ``nursery.start``.

    Raises:
        BindError: The address is in use or cannot be bound.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
        ImportError: ``parser="httptools"`` without httptools installed.
        Exception: With ``handler_errors="raise"``, the first exception a
            handler raised.
    """
    budget = QueueBudget(max_total_queued_bytes)
    check_server_options(max_connections=max_connections, handler_errors=handler_errors)
    # The limits, as one value built and checked once, shared by every
    # connection of this server.
    limits = HTTPLimits(
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
    )
    make = partial(HTTPConnection, close_timeout=close_timeout, _limits=limits)
    checks.timeouts(tls_handshake_timeout=tls_handshake_timeout, close_timeout=close_timeout)
    listeners, addresses = await open_tcp_listeners(port, host, backlog=backlog)
    scheme = "https" if ssl_context else "http"
    core = ServerCore(
        name=f"{scheme} server {format_address(addresses[0])}",
        listeners=listeners,
        addresses=addresses,
        opener=partial(
            _open_http,
            ssl_context=ssl_context,
            tls_handshake_timeout=tls_handshake_timeout,
            make=make,
            budget=budget,
        ),
        handler=partial(_serve_connection, handler, access_log),
        handler_name=describe_callable(handler),
        max_connections=max_connections,
        handler_errors=handler_errors,
        logger=logger,
    )
    await core.run(task_status)
