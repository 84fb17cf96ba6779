""":func:`serve`: an ASGI application on trionet's HTTP server.

Theory of operation
-------------------
An ASGI server here is one more handler for :func:`trionet.http.serve`:
the HTTP server core (accepting, limits, TLS, PROXY protocol, forwarded
headers, keep-alive, graceful shutdown, metrics) is the same, and each
request becomes one application call in the connection's task, with the
``receive`` and ``send`` of :mod:`._http` (or :mod:`._websocket` for an
upgrade). Structured concurrency holds the app to its connection: whatever
it starts in a nursery of its own ends before the request does, a request
still running after the shutdown grace period is cancelled, and nothing the
app leaves behind outlives the server.

The lifespan (:mod:`._lifespan`) brackets the server: start-up before the
listening sockets are opened, shut-down after the server has stopped.
"""

from __future__ import annotations

import logging
import socket as stdlib_socket
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict, Unpack

import trio

from .. import _checks as checks
from .._errors import ConnectionClosed
from .._server import Server
from .._websocket_limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    ConnectionOptions,
)
from ..http._server._request import Request
from ..http._server._response import Response
from ..http._server._serve import serve as serve_http
from ..metrics._collector import Metrics
from ._http import ClientDisconnected, HTTPCycle
from ._lifespan import LIFESPAN_MODES, Lifespan
from ._load import ASGIApp
from ._scope import http_scope, websocket_scope
from ._websocket import WebSocketCycle

__all__ = ["DEFAULT_LIFESPAN_TIMEOUT", "HTTPServeOptions", "serve"]

logger = logging.getLogger("trionet.asgi")

#: Seconds the application's lifespan start-up and shut-down may each take:
#: hypercorn's 60 s, room for a slow database or a model to load.
DEFAULT_LIFESPAN_TIMEOUT = 60.0


class HTTPServeOptions(TypedDict, total=False):
    """The keyword arguments :func:`serve` passes to
    :func:`trionet.http.serve` (see there for each)."""

    ssl_context: ssl.SSLContext | None
    max_connections: int
    tls_handshake_timeout: float
    max_header_size: int
    max_header_count: int
    max_target_length: int
    max_body_size: int
    request_head_timeout: float
    keepalive_timeout: float
    body_timeout: float
    max_requests_per_connection: int | None
    server_header: str | None
    access_log: bool
    access_log_format: str
    handler_errors: str
    backlog: int | None
    close_timeout: float
    max_total_queued_bytes: int
    parser: str
    forwarded_allow_ips: str | Iterable[str] | None
    forwarded_header: str
    proxy_protocol: str
    proxy_allow_from: str | Iterable[str] | None
    proxy_header_timeout: float
    max_proxy_header_size: int
    metrics: Metrics | None
    sockets: Sequence[stdlib_socket.socket] | None


class _Application:
    """The handler :func:`trionet.http.serve` runs for each request."""

    def __init__(
        self, app: ASGIApp, root_path: str, lifespan: Lifespan, websocket: dict[str, Any]
    ) -> None:
        self._app = app
        self._root_path = root_path
        self._lifespan = lifespan
        self._websocket = websocket

    async def __call__(self, request: Request) -> Response | None:
        if request.is_websocket_upgrade:
            await self._websocket_call(request)
            return None
        scope = http_scope(request, self._root_path, self._lifespan.state)
        cycle = HTTPCycle(request)
        try:
            await self._app(scope, cycle.receive, cycle.send)
        except ClientDisconnected as exc:
            # Our own error, let through by the app: the client is gone.
            raise ConnectionClosed(str(exc)) from exc
        cycle.outcome()
        return None

    async def _websocket_call(self, request: Request) -> None:
        scope = websocket_scope(request, self._root_path, self._lifespan.state)
        cycle = WebSocketCycle(request, self._websocket)
        try:
            await self._app(scope, cycle.receive, cycle.send)
        except ClientDisconnected:
            return  # the WebSocket has ended: the server closes what is left
        if cycle.denial is not None:
            cycle.denial.outcome()
        elif not cycle.decided:
            raise RuntimeError(
                "the ASGI application returned without accepting or refusing the WebSocket"
            )


async def serve(
    app: ASGIApp,
    port: int,
    host: str | None = None,
    *,
    root_path: str = "",
    lifespan: str = "auto",
    lifespan_timeout: float = DEFAULT_LIFESPAN_TIMEOUT,
    origins: Sequence[str | None] | None = None,
    compression: bool = True,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    **options: Unpack[HTTPServeOptions],
) -> None:
    """Serve an ASGI 3 application (Starlette, FastAPI, Quart-Trio...) over
    HTTP/1.1 and WebSocket: the ASGI server of ``trionet serve``.

    Start it with ``server = await nursery.start(trionet.asgi.serve, app,
    8000)``: once the app's lifespan start-up is complete and the server
    listens, that returns the :class:`~trionet.Server`. It runs until
    ``server.shutdown(grace)`` (requests in flight finish, WebSockets get
    close 1001, then what is left is cancelled), or SIGTERM under
    :func:`trionet.run`; then the lifespan shut-down runs.

    The application runs in trio: a framework on anyio (Starlette, FastAPI)
    runs on anyio's trio backend, and Quart with quart-trio. Each request's
    call lives in its connection's task, so what it starts is cancelled with
    it. An app that raises before responding gets its client a 500, after
    starting the response an aborted connection; either way it is logged on
    ``trionet.http`` and the server goes on. ``send()`` once the client is
    gone raises :exc:`ClientDisconnected` (an ``OSError``).

    Args:
        app: ``async def app(scope, receive, send)`` (ASGI 3; see
            :func:`load_app` for ASGI 2).
        port: The port; 0 lets the system pick.
        host: The address; ``None`` listens on every address.
        root_path: Where a proxy mounted the application (``scope["root_path"]``,
            and in front of ``path``), as uvicorn's ``--root-path``
            (default ``""``).
        lifespan: ``"auto"`` (default: run the lifespan protocol if the app
            speaks it), ``"on"`` (it must) or ``"off"``.
        lifespan_timeout: Seconds the app's start-up, and then its
            shut-down, may each take (default 60).
        origins: For WebSocket upgrades, the allowed ``Origin`` values, as
            for :meth:`trionet.http.Request.accept_websocket` (default
            ``None``: any).
        compression: Agree to permessage-deflate (default on).
        max_message_size: Bytes of one received WebSocket message (default
            1 MiB; close 1009 beyond); ``None`` for no limit.
        max_queued_bytes: Bytes of received WebSocket messages waiting for
            the app (default 4 MiB) before the socket is no longer read.
        ping_interval: Seconds between WebSocket keepalive pings (default
            20); ``None`` for none.
        ping_timeout: Seconds a keepalive ping may wait for its pong
            (default 20); ``None`` to wait forever.
        task_status: Set by ``nursery.start``.
        **options: Every keyword of :func:`trionet.http.serve` (TLS with
            ``ssl_context``, the HTTP limits, ``access_log``,
            ``proxy_protocol``, ``forwarded_allow_ips``, ``metrics``,
            ``sockets``...), with its default.

    Raises:
        LifespanError: The app's lifespan start-up failed (nothing was
            bound), or its shut-down did.
        BindError: The address is in use or cannot be bound.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
    """
    checks.one_of("lifespan", lifespan, LIFESPAN_MODES)
    timeout = checks.seconds("lifespan_timeout", lifespan_timeout)
    assert timeout is not None
    if not isinstance(root_path, str) or (root_path and not root_path.startswith("/")):
        raise ValueError(f"root_path must be empty or start with '/', not {root_path!r}")
    if not isinstance(compression, bool):
        raise TypeError(f"compression must be a bool, not {compression!r}")
    websocket = {
        "origins": origins,
        "compression": compression,
        "options": ConnectionOptions(
            max_message_size=max_message_size,
            max_queued_bytes=max_queued_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=options.get("close_timeout", 5.0),
            control_events=False,
        ),
    }
    manager = Lifespan(app, lifespan, timeout)
    handler = _Application(app, root_path.rstrip("/"), manager, websocket)
    # The nursery holds the lifespan call (which handles its own errors);
    # what the body raises comes out as itself, not in an ExceptionGroup.
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            await manager.startup(nursery)
            try:
                await serve_http(handler, port, host, task_status=task_status, **options)  # type: ignore[arg-type]
            finally:
                # After the server: its connections are gone. Shielded, since
                # a trionet.run stop cancels what follows the servers' drain.
                with trio.CancelScope(shield=True):
                    await manager.shutdown()
        except BaseException as exc:
            failure = exc
        manager.cancel()  # a lifespan call that never returns
    if failure is not None:
        raise failure
