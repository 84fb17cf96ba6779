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

import json
import logging
import socket as stdlib_socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial

import trio

from ... import _checks as checks
from ..._errors import ConnectionClosed
from ..._listeners import format_address, listen
from ..._proxy._accept import (
    DEFAULT_MAX_PROXY_HEADER_SIZE,
    DEFAULT_PROXY_ALLOW_FROM,
    DEFAULT_PROXY_HEADER_TIMEOUT,
    ProxyOptions,
    read_proxy_header,
)
from ..._server import (
    DEFAULT_MAX_CONNECTIONS,
    HandlerErrors,
    Server,
    ServerCore,
    check_server_options,
    describe_callable,
)
from ..._transport import DEFAULT_CLOSE_TIMEOUT
from ..._trust import TrustedPeers
from ..._websocket_limits import DEFAULT_MAX_TOTAL_QUEUED_BYTES, QueueBudget
from ...metrics._collector import Metrics  # (without prometheus-client)
from ...metrics._record import HTTPRecorder
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


#: The values of ``access_log_format``.
ACCESS_LOG_FORMATS = ("common", "json")


def _access_line(request: Request, conn: HTTPConnection, started: float) -> str:
    """One line of the Common Log Format (as Apache and nginx write it)."""
    client = request.client
    host = client[0] if isinstance(client, tuple) else (client or "-")
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    size = conn.last_response_bytes or "-"
    line = f"{request.method} {request.target} HTTP/{request.http_version}"
    return f'{host} - - [{stamp}] "{line}" {conn.last_status} {size}'


def _access_json(request: Request, conn: HTTPConnection, started: float) -> str:
    """One JSON object per line (what log shippers read without a parser of
    their own): the fields of the Common Log Format and a few more."""
    client = request.client
    headers = request.headers
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "client": client[0] if isinstance(client, tuple) else (client or None),
        "client_port": client[1] if isinstance(client, tuple) else None,
        "method": request.method,
        "target": request.target,
        "http_version": request.http_version,
        "status": conn.last_status,
        "bytes": conn.last_response_bytes,
        "duration": round(trio.current_time() - started, 6),
        "scheme": request.scheme,
        "host": request.host,
        "user_agent": headers.get("user-agent"),
        "referer": headers.get("referer"),
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


_ACCESS_LINES = {"common": _access_line, "json": _access_json}


async def _serve_connection(
    handler: Handler,
    access_log: Callable[[Request, HTTPConnection, float], str] | None,
    conn: HTTPConnection,
    *,
    recorder: HTTPRecorder | None = None,
) -> None:
    # The connection's own nursery: a WebSocket the handler upgrades to reads
    # in a task here, so nothing outlives the connection's task. What the
    # requests raise is raised as itself, not wrapped in an ExceptionGroup.
    # (One function, not two: an idle WebSocket's task waits inside it, and
    # each coroutine frame of that wait is memory the connection holds.)
    # ``recorder`` (metrics) is None unless the server has metrics: then
    # nothing below does any work for them.
    failure: BaseException | None = None
    timed = access_log is not None or recorder is not None
    try:
        async with trio.open_nursery() as nursery:
            conn._nursery = nursery
            try:
                async for request in conn:
                    started = trio.current_time() if timed else 0.0
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
                        if access_log is not None and conn.last_status:
                            access_logger.info(access_log(request, conn, started))
                        if recorder is not None:
                            recorder.request_done(request, conn, started)
            except BaseException as exc:
                failure = exc
                nursery.cancel_scope.cancel()
    finally:
        if recorder is not None:
            # Metrics of what ends with the connection (even a cancelled one):
            # its WebSocket, and a request head the connection answered itself
            # (a ProtocolError while no request was current: 400, 408, 431...).
            recorder.connection_done(failure if conn._current is None else None, conn._upgraded)
    if failure is not None:
        raise failure


async def _open_http(
    stream: trio.SocketStream,
    *,
    ssl_context: ssl.SSLContext | None,
    tls_handshake_timeout: float,
    make: Callable[..., HTTPConnection],
    budget: QueueBudget,
    proxy: ProxyOptions | None,
) -> HTTPConnection:
    proxied = None if proxy is None else await read_proxy_header(stream, proxy)
    transport: trio.abc.Stream = stream
    if ssl_context is not None:
        transport = await server_handshake(stream, ssl_context, tls_handshake_timeout)
    conn = make(transport, _proxied=proxied)
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
    access_log_format: str = "common",
    handler_errors: HandlerErrors = "log",
    backlog: int | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    max_total_queued_bytes: int = DEFAULT_MAX_TOTAL_QUEUED_BYTES,
    parser: str = "auto",
    forwarded_allow_ips: str | Iterable[str] | None = None,
    forwarded_header: str = "x-forwarded",
    proxy_protocol: str = "off",
    proxy_allow_from: str | Iterable[str] | None = DEFAULT_PROXY_ALLOW_FROM,
    proxy_header_timeout: float = DEFAULT_PROXY_HEADER_TIMEOUT,
    max_proxy_header_size: int = DEFAULT_MAX_PROXY_HEADER_SIZE,
    metrics: Metrics | None = None,
    sockets: Sequence[stdlib_socket.socket] | None = None,
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
        access_log: Log one line per request on ``trionet.http.access``
            (default off).
        access_log_format: ``"common"`` (default: the Common Log Format, as
            Apache and nginx write it) or ``"json"`` (one JSON object per
            line: time, client, method, target, status, bytes, duration in
            seconds, scheme, host, user agent, referer).
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
        forwarded_allow_ips: The proxies whose forwarding headers are
            believed for :attr:`Request.client`, :attr:`Request.scheme` and
            :attr:`Request.host`: addresses, networks (``"10.0.0.0/8"``),
            ``"unix"`` or ``"*"``, as a list or a comma-separated string.
            Default ``None``: nobody (the headers are ignored).
        forwarded_header: The forwarding headers those proxies write, the
            only ones read: ``"x-forwarded"`` (``X-Forwarded-For`` /
            ``-Proto`` / ``-Host``, the default: nginx, HAProxy, cloud
            balancers) or ``"forwarded"`` (RFC 7239). The other kind is
            ignored: a proxy does not clean the kind it does not write.
        proxy_protocol: Read a PROXY protocol header first: ``"off"``
            (default), ``"v1"``, ``"v2"`` or ``"auto"``, as for
            :func:`trionet.serve_tcp`.
        proxy_allow_from: The peers whose PROXY header is believed, as for
            :func:`trionet.serve_tcp` (default ``127.0.0.1`` and ``::1``).
        proxy_header_timeout: Seconds a trusted peer gets to send its PROXY
            header (default 5).
        max_proxy_header_size: Bytes a PROXY header may have (default 4096).
        metrics: Report to this :class:`trionet.metrics.Metrics` (default
            ``None``: no metrics, and no work for them): the server's
            counters, and each request by method, status class and duration,
            and each WebSocket's messages and close code.
        sockets: Serve these already-bound, listening sockets instead of
            binding ``port`` and ``host``, as for :func:`trionet.serve_tcp`.
        task_status: Set by ``nursery.start``.

    Raises:
        BindError: The address is in use or cannot be bound.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
        ImportError: ``parser="httptools"`` without httptools installed.
        Exception: With ``handler_errors="raise"``, the first exception a
            handler raised.
    """
    checks.one_of("access_log_format", access_log_format, ACCESS_LOG_FORMATS)
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
        forwarded=TrustedPeers(forwarded_allow_ips) or None,
        forwarded_header=forwarded_header,
    )
    make = partial(HTTPConnection, close_timeout=close_timeout, _limits=limits)
    checks.timeouts(tls_handshake_timeout=tls_handshake_timeout, close_timeout=close_timeout)
    proxy = ProxyOptions.build(
        proxy_protocol, proxy_allow_from, proxy_header_timeout, max_proxy_header_size
    )
    listeners, addresses = await listen(port, host, backlog, sockets)
    scheme = "https" if ssl_context else "http"
    serve_connection = partial(
        _serve_connection, handler, _ACCESS_LINES[access_log_format] if access_log else None
    )
    recorder = None
    if metrics is not None:
        # Only a server with metrics gives its connections a recorder.
        recorder = metrics._http_recorder()
        serve_connection = partial(serve_connection, recorder=recorder)
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
            proxy=proxy,
        ),
        handler=serve_connection,
        handler_name=describe_callable(handler),
        max_connections=max_connections,
        handler_errors=handler_errors,
        logger=logger,
    )
    if metrics is not None:
        metrics._watch(core, http=recorder)
    await core.run(task_status)
