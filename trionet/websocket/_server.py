"""The WebSocket server side, on trio: :func:`accept` completes the upgrade of
an HTTP request (what :meth:`trionet.http.Request.accept_websocket` runs), and
:func:`serve` is a WebSocket server (every request upgraded) on the HTTP
server. The handshake itself is :mod:`._handshake`'s, sans-IO.

The HTTP server already parsed the upgrade request with h11; whatever the
client sent after the request head is already in the HTTP connection's
buffer: it is fed to the new WebSocket before anything else is read, so
frames that came with the request are not lost.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace

import trio

from .. import _checks as checks
from .._proxy._accept import (
    DEFAULT_MAX_PROXY_HEADER_SIZE,
    DEFAULT_PROXY_ALLOW_FROM,
    DEFAULT_PROXY_HEADER_TIMEOUT,
)
from .._server import DEFAULT_MAX_CONNECTIONS, HandlerErrors, Server
from .._stream import DEFAULT_CLOSE_TIMEOUT
from .._websocket_limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_TOTAL_QUEUED_BYTES,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    ConnectionOptions,
)
from ..http._headers import HeadersInput
from ..http._server._errors import ProtocolError
from ..http._server._request import Request, websocket_upgrade
from ..http._server._response import Response
from ..http._server._serve import Handler
from ..http._server._serve import serve as serve_http
from ..http._server._upgrade import UPGRADES, Upgrade
from ..metrics._collector import Metrics  # (without prometheus-client)
from ..tls._stream import DEFAULT_TLS_HANDSHAKE_TIMEOUT
from ._connection import WebSocketConnection
from ._handshake import UpgradeRefused, accept_upgrade, origin_allowed

__all__ = ["WebSocketHandler", "accept", "serve"]


async def accept(
    request: Request,
    upgrade: Upgrade,
    *,
    subprotocol: str | None,
    headers: HeadersInput | None,
    origins: Sequence[str | None] | None,
    compression: bool,
    options: ConnectionOptions,
) -> WebSocketConnection:
    """Complete the server side of the handshake for ``request``, taking its
    connection over through ``upgrade`` (what
    :meth:`trionet.http.Request.accept_websocket` runs)."""
    if options.budget is None and upgrade.budget is not None:
        # The server's budget for the messages all its WebSockets queue.
        options = replace(options, budget=upgrade.budget)
    if not origin_allowed(request.headers.get("origin"), origins):
        raise ProtocolError(f"origin {request.headers.get('origin')!r} is not allowed", 403)
    try:
        agreed = accept_upgrade(
            upgrade.request_head,
            subprotocol=subprotocol,
            headers=headers,
            compression=compression,
            max_message_size=options.max_message_size,
        )
    except UpgradeRefused as exc:
        raise ProtocolError(str(exc), exc.status, exc.headers) from None
    transport, trailing = await upgrade.switch(agreed.response)
    ws = WebSocketConnection(
        transport,
        agreed.protocol,
        subprotocol=subprotocol,
        extensions=agreed.extensions,
        path=request.path,
        target=request.target,
        request_headers=request.headers,
        response_headers=agreed.response,
        tls=upgrade.tls,
        options=options,
        client=request.client,
    )
    if trailing:
        # Whatever the client sent after the request head (frames that came
        # with it) is read before anything else.
        agreed.protocol.receive_data(trailing)
    upgrade.adopt(ws)
    ws._start(upgrade.nursery)
    return ws


# Request.accept_websocket (trionet.http) runs this: HTTP does not import WebSocket.
UPGRADES.websocket = accept


#: ``async def handler(ws) -> None``.
WebSocketHandler = Callable[[WebSocketConnection], Awaitable[None]]


def _choose(offered: list[str], supported: Sequence[str]) -> str | None:
    """The first of the server's subprotocols the client offered."""
    for name in supported:
        if name in offered:
            return name
    return None


def _upgrade_handler(
    handler: WebSocketHandler,
    *,
    subprotocols: Sequence[str],
    origins: Sequence[str | None] | None,
    compression: bool,
    options: ConnectionOptions,
) -> Handler:
    """The HTTP handler that :func:`serve` runs for every request: it
    upgrades the request and runs ``handler`` on the WebSocket (426 for a
    request that is not an upgrade)."""
    supported = list(subprotocols)

    async def upgrade(request: Request) -> Response | None:
        if not request.is_websocket_upgrade:
            return Response(
                426,
                {"upgrade": "websocket", "content-type": "text/plain; charset=utf-8"},
                b"426 Upgrade Required: this is a WebSocket endpoint\n",
            )
        offered = [
            token.strip()
            for value in request.headers.get_all("sec-websocket-protocol")
            for token in value.split(",")
        ]
        ws = await accept(
            request,
            websocket_upgrade(request),
            subprotocol=_choose(offered, supported),
            headers=None,
            origins=origins,
            compression=compression,
            options=options,
        )
        await handler(ws)
        return None

    upgrade.__wrapped__ = handler  # type: ignore[attr-defined]  # logs name the user's handler
    return upgrade


async def serve(
    handler: WebSocketHandler,
    port: int,
    host: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: Sequence[str] = (),
    origins: Sequence[str | None] | None = None,
    compression: bool = True,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    max_total_queued_bytes: int = DEFAULT_MAX_TOTAL_QUEUED_BYTES,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    control_events: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    handler_errors: HandlerErrors = "log",
    backlog: int | None = None,
    parser: str = "auto",
    forwarded_allow_ips: str | Iterable[str] | None = None,
    forwarded_header: str = "x-forwarded",
    proxy_protocol: str = "off",
    proxy_allow_from: str | Iterable[str] | None = DEFAULT_PROXY_ALLOW_FROM,
    proxy_header_timeout: float = DEFAULT_PROXY_HEADER_TIMEOUT,
    max_proxy_header_size: int = DEFAULT_MAX_PROXY_HEADER_SIZE,
    metrics: Metrics | None = None,
    sockets: Sequence[socket.socket] | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket (Node's ``new WebSocketServer({port})``): every request
    is upgraded and ``handler(ws)`` runs for each connection; a request that
    is not an upgrade is answered ``426 Upgrade Required``.

    Start it with ``server = await nursery.start(trionet.websocket.serve,
    handler, port)``. The contract is :func:`trionet.http.serve`'s: a handler
    that raises is logged on ``trionet.http`` and its peer gets close 1011;
    when it returns, the connection is closed with 1000 if it is still open;
    ``server.shutdown(grace)`` sends every connection close 1001 (going away),
    waits for the handlers up to ``grace``, then cancels the rest.

    To serve WebSocket beside plain HTTP on one port, use
    :func:`trionet.http.serve` and :meth:`~trionet.http.Request.accept_websocket`.

    Args:
        handler: ``async def handler(ws: WebSocketConnection) -> None``.
        port: The port; 0 lets the system pick.
        host: The address; ``None`` listens on every address.
        ssl_context: Serve ``wss://`` with this server context.
        subprotocols: Subprotocols the server speaks, preferred first: the
            first one the client also offers is agreed.
        origins: Allowed ``Origin`` values (see
            :meth:`~trionet.http.Request.accept_websocket`); ``None`` allows
            any.
        compression: Agree to permessage-deflate (default on).
        max_message_size: Bytes of one received message (default 1 MiB;
            close 1009 beyond); ``None`` for no limit.
        max_queued_bytes: Bytes of received messages waiting to be read
            (default 4 MiB).
        max_total_queued_bytes: Bytes of received messages waiting to be
            read on all of this server's connections together (default 64
            MiB). Past it the readers stop reading their sockets until the
            handlers consume; a connection with nothing queued may always
            take one message.
        ping_interval: Seconds between keepalive pings (default 20); ``None``
            for none.
        ping_timeout: Seconds a keepalive ping may wait for its pong (default
            20).
        handshake_timeout: Seconds the upgrade request may take (default 10).
        close_timeout: Seconds the close handshake may take (default 5).
        control_events: Report ping and pong events through
            :meth:`WebSocketConnection.events` (default off).
        max_connections: Connections open at once (default 10 000).
        tls_handshake_timeout: Seconds for the TLS handshake (default 10).
        handler_errors: ``"log"`` or ``"raise"``, as for
            :func:`trionet.serve_tcp`.
        backlog: The listen queue length; ``None`` for the system's maximum.
        parser: The parser of the upgrade request, as for
            :func:`trionet.http.serve`.
        forwarded_allow_ips: The proxies whose forwarding headers are
            believed for the upgrade request's client, scheme and host, as
            for :func:`trionet.http.serve` (default: nobody).
        forwarded_header: ``"x-forwarded"`` (default) or ``"forwarded"``, as
            for :func:`trionet.http.serve`.
        proxy_protocol: As for :func:`trionet.serve_tcp` (default ``"off"``).
        proxy_allow_from: As for :func:`trionet.serve_tcp`.
        proxy_header_timeout: As for :func:`trionet.serve_tcp`.
        max_proxy_header_size: As for :func:`trionet.serve_tcp`.
        metrics: Report to this :class:`trionet.metrics.Metrics`, as for
            :func:`trionet.http.serve` (default ``None``: no metrics).
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
    options = ConnectionOptions(
        max_message_size=max_message_size,
        max_queued_bytes=max_queued_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        control_events=control_events,
        handshake_timeout=handshake_timeout,
    )
    # (None is no limit for a client, but a server always bounds the wait.)
    checks.seconds("handshake_timeout", handshake_timeout)
    upgrade = _upgrade_handler(
        handler,
        subprotocols=subprotocols,
        origins=origins,
        compression=compression,
        options=options,
    )

    await serve_http(
        upgrade,
        port,
        host,
        ssl_context=ssl_context,
        max_connections=max_connections,
        tls_handshake_timeout=tls_handshake_timeout,
        request_head_timeout=handshake_timeout,
        handler_errors=handler_errors,
        backlog=backlog,
        parser=parser,
        close_timeout=close_timeout,
        max_total_queued_bytes=max_total_queued_bytes,
        forwarded_allow_ips=forwarded_allow_ips,
        forwarded_header=forwarded_header,
        proxy_protocol=proxy_protocol,
        proxy_allow_from=proxy_allow_from,
        proxy_header_timeout=proxy_header_timeout,
        max_proxy_header_size=max_proxy_header_size,
        metrics=metrics,
        sockets=sockets,
        task_status=task_status,
    )
