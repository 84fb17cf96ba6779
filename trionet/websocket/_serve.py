"""``trionet.websocket.serve`` and ``trionet.websocket.connect``: a WebSocket
server (every request upgraded) and a client, on the HTTP server and the
handshake module."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

import trio

from .. import _checks as checks
from .._server import DEFAULT_MAX_CONNECTIONS, HandlerErrors, Server
from .._stream import DEFAULT_CLOSE_TIMEOUT
from .._tls import DEFAULT_TLS_HANDSHAKE_TIMEOUT
from .._websocket_limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_TOTAL_QUEUED_BYTES,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    ConnectionOptions,
)
from ..http import _serve as http_serve
from ..http._headers import HeadersInput
from ..http._messages import Request, Response
from ._connection import WebSocketConnection
from ._handshake import accept, open_client

__all__ = ["WebSocketHandler", "connect", "serve"]

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
) -> http_serve.Handler:
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
        task_status: Set by ``nursery.start``.

    Raises:
        BindError: The address is in use or cannot be bound.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
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
    )
    checks.seconds("handshake_timeout", handshake_timeout)
    upgrade = _upgrade_handler(
        handler,
        subprotocols=subprotocols,
        origins=origins,
        compression=compression,
        options=options,
    )

    await http_serve.serve(
        upgrade,
        port,
        host,
        ssl_context=ssl_context,
        max_connections=max_connections,
        tls_handshake_timeout=tls_handshake_timeout,
        request_head_timeout=handshake_timeout,
        handler_errors=handler_errors,
        backlog=backlog,
        close_timeout=close_timeout,
        max_total_queued_bytes=max_total_queued_bytes,
        task_status=task_status,
    )


@asynccontextmanager
async def connect(
    url: str,
    *,
    subprotocols: Iterable[str] = (),
    headers: HeadersInput | None = None,
    origin: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    compression: bool = True,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    control_events: bool = False,
) -> AsyncIterator[WebSocketConnection]:
    """Open a WebSocket client connection (the browser's and Node's ``new
    WebSocket(url)``)::

        async with trionet.websocket.connect("ws://127.0.0.1:12010/updates") as ws:
            await ws.send("hello")
            async for message in ws:
                print(message.data)

    The connection's reader runs in a nursery this ``async with`` owns; on
    leaving the block the connection is closed (1000, or 1011 when the block
    raised), and the block's exception comes out as itself.

    Args:
        url: ``ws://host[:port]/path`` or ``wss://...``.
        subprotocols: Subprotocols to offer, preferred first.
        headers: Extra header fields for the upgrade request
            (``Authorization``, cookies...).
        origin: An ``Origin`` header to send.
        ssl_context: The TLS client context for ``wss://``; by default
            ``ssl.create_default_context()`` (the system's trust store, host
            name checked).
        compression: Offer permessage-deflate (default on).
        handshake_timeout: Seconds for connect, TLS and the upgrade together
            (default 10); ``None`` for no limit.
        max_message_size: Bytes of one received message (default 1 MiB;
            close 1009 beyond); ``None`` for no limit.
        max_queued_bytes: Bytes of received messages waiting to be read
            (default 4 MiB).
        ping_interval: Seconds between keepalive pings (default 20); ``None``
            for none.
        ping_timeout: Seconds a keepalive ping may wait for its pong (default
            20).
        close_timeout: Seconds the close handshake may take (default 5).
        control_events: Report ping and pong events through
            :meth:`WebSocketConnection.events` (default off).

    Yields:
        The open :class:`WebSocketConnection`.

    Raises:
        ValueError: The URL is not ws:// or wss://, a limit is out of
            range, or a header field (or ``origin``) is not a valid field.
        TypeError: An argument is of the wrong kind.
        HandshakeError: The server refused the upgrade (``status``,
            ``headers`` and ``body`` tell how) or answered it wrongly.
        trionet.ConnectError: The connection was refused or the name did not resolve.
        trionet.ConnectTimeout: ``handshake_timeout`` ran out.
        trionet.TLSError: The TLS handshake failed (certificate rejected).
    """
    options = ConnectionOptions(
        max_message_size=max_message_size,
        max_queued_bytes=max_queued_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        control_events=control_events,
    )
    checks.seconds("handshake_timeout", handshake_timeout)
    ws = await open_client(
        url,
        subprotocols=subprotocols,
        headers=headers,
        origin=origin,
        ssl_context=ssl_context,
        compression=compression,
        handshake_timeout=handshake_timeout,
        options=options,
    )
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        ws._start(nursery)
        try:
            yield ws
        except BaseException as exc:
            failure = exc
            if isinstance(exc, Exception):
                await ws.aclose(1011, "client error")
            else:
                await ws._abort_transport()
        else:
            await ws.aclose()
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
