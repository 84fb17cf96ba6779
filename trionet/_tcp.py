"""TCP and Unix-socket servers and clients (Node's ``net``), TLS optional.

The servers are the shared core (:mod:`trionet._server`) plus an opener that
runs the TLS handshake when there is an ``ssl_context`` and wraps the stream in
a :class:`~trionet.TCPConnection`.
"""

from __future__ import annotations

import logging
import os
import socket as stdlib_socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial

import trio

from . import _checks as checks
from ._connect import DEFAULT_HAPPY_EYEBALLS_DELAY, connect
from ._listeners import format_address, listen, listeners_from_sockets, open_unix_listener
from ._proxy._accept import (
    DEFAULT_MAX_PROXY_HEADER_SIZE,
    DEFAULT_PROXY_ALLOW_FROM,
    DEFAULT_PROXY_HEADER_TIMEOUT,
    ProxyOptions,
    read_proxy_header,
)
from ._server import (
    DEFAULT_MAX_CONNECTIONS,
    HandlerErrors,
    Server,
    ServerCore,
    SocketAddress,
    check_server_options,
)
from ._stream import DEFAULT_CLOSE_TIMEOUT, TCPConnection
from .metrics._collector import Metrics  # (without prometheus-client)
from .tls._stream import DEFAULT_TLS_HANDSHAKE_TIMEOUT, server_handshake

__all__ = ["connect_tcp", "connect_unix", "serve_tcp", "serve_unix"]

logger = logging.getLogger("trionet.tcp")

TCPHandler = Callable[[TCPConnection], Awaitable[object]]


async def _open_connection(
    stream: trio.SocketStream,
    *,
    ssl_context: ssl.SSLContext | None,
    tls_handshake_timeout: float,
    close_timeout: float,
    proxy: ProxyOptions | None,
) -> TCPConnection:
    proxied = None if proxy is None else await read_proxy_header(stream, proxy)
    if ssl_context is None:
        return TCPConnection(stream, close_timeout=close_timeout, _proxied=proxied)
    tls = await server_handshake(stream, ssl_context, tls_handshake_timeout)
    return TCPConnection(tls, close_timeout=close_timeout, _proxied=proxied)


def _stream_server_core(
    name: str,
    listeners: Sequence[trio.abc.Listener[trio.SocketStream]],
    addresses: Sequence[SocketAddress],
    handler: TCPHandler,
    *,
    ssl_context: ssl.SSLContext | None,
    tls_handshake_timeout: float,
    max_connections: int,
    handler_errors: HandlerErrors,
    close_timeout: float,
    proxy: ProxyOptions | None,
) -> ServerCore[trio.SocketStream, TCPConnection]:
    return ServerCore(
        name=name,
        listeners=listeners,
        addresses=addresses,
        opener=partial(
            _open_connection,
            ssl_context=ssl_context,
            tls_handshake_timeout=tls_handshake_timeout,
            close_timeout=close_timeout,
            proxy=proxy,
        ),
        handler=handler,
        max_connections=max_connections,
        handler_errors=handler_errors,
        logger=logger,
    )


async def serve_tcp(
    handler: TCPHandler,
    port: int,
    host: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    handler_errors: HandlerErrors = "log",
    backlog: int | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    proxy_protocol: str = "off",
    proxy_allow_from: str | Iterable[str] | None = DEFAULT_PROXY_ALLOW_FROM,
    proxy_header_timeout: float = DEFAULT_PROXY_HEADER_TIMEOUT,
    max_proxy_header_size: int = DEFAULT_MAX_PROXY_HEADER_SIZE,
    metrics: Metrics | None = None,
    sockets: Sequence[stdlib_socket.socket] | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve TCP connections, each in its own supervised task (Node's
    ``net.createServer(handler).listen(port, host)``).

    Start it with ``server = await nursery.start(trionet.serve_tcp, handler,
    port)``: that returns the :class:`~trionet.Server` once it is listening.
    It runs until :meth:`Server.shutdown <trionet.Server.shutdown>` (graceful)
    or until cancelled (hard stop).

    ``handler(conn)`` gets a :class:`~trionet.TCPConnection`; when it returns
    or raises, the connection is closed. An exception escaping it is logged
    on the ``trionet.tcp`` logger with its traceback and counted, and the
    server keeps serving (see ``handler_errors``).

    Args:
        handler: ``async def handler(conn: TCPConnection)``.
        port: The port; 0 lets the system pick one (read it from
            :attr:`Server.port <trionet.Server.port>`).
        host: The address to listen on; ``None`` listens on every address,
            IPv4 and IPv6 (one socket each, on the same port).
        ssl_context: Serve TLS with this server context
            (``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` plus your
            certificate). The handshake completes before the handler starts.
        tls_handshake_timeout: Seconds a client gets to complete the TLS
            handshake before it is dropped (default 10).
        max_connections: Connections open at once; one beyond is closed as
            soon as it is accepted and counted as dropped (default 10 000).
        handler_errors: ``"log"`` (default) to log and count a handler's
            exception and go on; ``"raise"`` to stop the server and raise it
            from this call (what tests want).
        backlog: The listen queue length; ``None`` asks for the most the
            system allows.
        close_timeout: Seconds each connection's graceful close may take
            (default 5).
        proxy_protocol: ``"off"`` (default), ``"v1"``, ``"v2"`` or ``"auto"``
            (either): read the PROXY protocol header a load balancer (HAProxy,
            nginx ``stream``, AWS NLB) sends before the connection's own bytes
            (before TLS), so that :attr:`TCPConnection.remote_address
            <trionet.TCPConnection.remote_address>` is the original client's
            (see :doc:`/deployment`). A trusted peer whose header is missing,
            malformed or late is closed and counted as a handshake failure.
        proxy_allow_from: The peers whose PROXY header is believed: addresses,
            networks (``"10.0.0.0/8"``), ``"unix"`` for Unix-socket peers or
            ``"*"``, as a list or a comma-separated string (default
            ``127.0.0.1`` and ``::1``). Other peers are served as if
            ``proxy_protocol`` were off.
        proxy_header_timeout: Seconds a trusted peer gets to send its PROXY
            header (default 5).
        max_proxy_header_size: Bytes a PROXY header may have (default 4096;
            version 1 is at most 107).
        metrics: Report the server's counters (connections, bytes, errors)
            to this :class:`trionet.metrics.Metrics`; they are read from
            :meth:`Server.statistics <trionet.Server.statistics>` when
            scraped, so they cost the connections nothing (default ``None``).
        sockets: Serve these already-bound, listening sockets (TCP or Unix)
            instead of binding ``port`` and ``host``, which are then ignored: sockets
            made by a parent process or a test. The server owns them from
            then on. (systemd socket activation and a worker's supervisor
            need no argument: see :doc:`/deployment`.)
        task_status: Set by ``nursery.start``.

    Raises:
        BindError: The address is in use or cannot be bound (raised by
            ``nursery.start``); the message names the address.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
        Exception: With ``handler_errors="raise"``, the first exception a
            handler raised.
    """
    check_server_options(max_connections=max_connections, handler_errors=handler_errors)
    checks.timeouts(tls_handshake_timeout=tls_handshake_timeout, close_timeout=close_timeout)
    proxy = ProxyOptions.build(
        proxy_protocol, proxy_allow_from, proxy_header_timeout, max_proxy_header_size
    )
    listeners, addresses = await listen(port, host, backlog, sockets)
    scheme = "tls" if ssl_context else "tcp"
    core = _stream_server_core(
        f"{scheme} server {format_address(addresses[0])}",
        listeners,
        addresses,
        handler,
        ssl_context=ssl_context,
        tls_handshake_timeout=tls_handshake_timeout,
        max_connections=max_connections,
        handler_errors=handler_errors,
        close_timeout=close_timeout,
        proxy=proxy,
    )
    if metrics is not None:
        metrics._watch(core)
    await core.run(task_status)


async def serve_unix(
    handler: TCPHandler,
    path: str | os.PathLike[str],
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    handler_errors: HandlerErrors = "log",
    backlog: int | None = None,
    mode: int | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    proxy_protocol: str = "off",
    proxy_allow_from: str | Iterable[str] | None = DEFAULT_PROXY_ALLOW_FROM,
    proxy_header_timeout: float = DEFAULT_PROXY_HEADER_TIMEOUT,
    max_proxy_header_size: int = DEFAULT_MAX_PROXY_HEADER_SIZE,
    metrics: Metrics | None = None,
    sockets: Sequence[stdlib_socket.socket] | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve connections on a Unix socket path (Node's ``server.listen(path)``).

    The same as :func:`serve_tcp` in every other respect. A stale socket file
    left by a server that died is removed first; a path where a live server
    answers, or that is not a socket, is refused. The socket file is removed
    when the server stops.

    Args:
        handler: ``async def handler(conn: TCPConnection)``.
        path: The socket's path (a leading NUL byte selects Linux's abstract
            namespace).
        ssl_context: As for :func:`serve_tcp`.
        tls_handshake_timeout: As for :func:`serve_tcp`.
        max_connections: As for :func:`serve_tcp`.
        handler_errors: As for :func:`serve_tcp`.
        backlog: As for :func:`serve_tcp`.
        mode: Permission bits to give the socket file (for example ``0o660``);
            ``None`` leaves the umask's choice.
        close_timeout: As for :func:`serve_tcp`.
        proxy_protocol: As for :func:`serve_tcp`.
        proxy_allow_from: As for :func:`serve_tcp` (a Unix-socket peer is
            trusted only with ``"unix"`` or ``"*"``).
        proxy_header_timeout: As for :func:`serve_tcp`.
        max_proxy_header_size: As for :func:`serve_tcp`.
        metrics: As for :func:`serve_tcp`.
        sockets: Serve these already-bound, listening sockets (TCP or Unix)
            instead of binding ``path``, which is then ignored: sockets
            made by a parent process or a test. The server owns them from
            then on. (systemd socket activation and a worker's supervisor
            need no argument: see :doc:`/deployment`.)
        task_status: Set by ``nursery.start``.

    Raises:
        BindError: The path is in use, is not a socket, or cannot be bound.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
        Exception: With ``handler_errors="raise"``, the first exception a
            handler raised.
    """
    check_server_options(max_connections=max_connections, handler_errors=handler_errors)
    checks.timeouts(tls_handshake_timeout=tls_handshake_timeout, close_timeout=close_timeout)
    proxy = ProxyOptions.build(
        proxy_protocol, proxy_allow_from, proxy_header_timeout, max_proxy_header_size
    )
    if sockets is not None:
        listeners, addresses = listeners_from_sockets(sockets)
    else:
        listeners, addresses = (
            [await open_unix_listener(path, backlog=backlog, mode=mode)],
            [os.fspath(path)],
        )
    core = _stream_server_core(
        f"unix server {format_address(addresses[0])}",
        listeners,
        addresses,
        handler,
        ssl_context=ssl_context,
        tls_handshake_timeout=tls_handshake_timeout,
        max_connections=max_connections,
        handler_errors=handler_errors,
        close_timeout=close_timeout,
        proxy=proxy,
    )
    if metrics is not None:
        metrics._watch(core)
    await core.run(task_status)


async def connect_tcp(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = None,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    local_address: str | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> TCPConnection:
    """Open a TCP connection, over TLS if ``ssl_context`` is given (Node's
    ``net.connect`` / ``tls.connect``; the ``'connect'`` event is this call
    returning).

    Args:
        host: A name or address; every address it resolves to is tried,
            IPv6 and IPv4 raced (RFC 8305 happy eyeballs).
        port: The port.
        ssl_context: Speak TLS with this client context
            (``ssl.create_default_context()`` verifies against the system's
            trust store).
        server_hostname: The name to send (SNI) and verify; defaults to
            ``host``. An internationalised name is sent as its IDNA 2008
            A-labels.
        connect_timeout: Seconds for the whole connect, TLS handshake
            included; ``None`` (default) waits as long as the system does.
        happy_eyeballs_delay: Seconds before trying the next address while
            the previous attempt is still pending; ``None`` tries one address
            at a time.
        local_address: The local address to bind to before connecting.
        close_timeout: Seconds the connection's graceful close may take.

    Returns:
        A connected :class:`~trionet.TCPConnection`.

    Raises:
        trionet.ConnectError: The connection was refused, the host is unreachable, or
            the name did not resolve.
        trionet.ConnectTimeout: ``connect_timeout`` ran out.
        trionet.TLSError: The TLS handshake failed (for example, the certificate was
            rejected).
        ValueError: ``port`` or a timeout is out of range.
        TypeError: An argument is of the wrong kind.
    """
    checks.count("port", port, maximum=65535)
    return await _connect(
        (host, port),
        format_address((host, port)),
        ssl_context=ssl_context,
        server_hostname=server_hostname or host,
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        happy_eyeballs_delay=happy_eyeballs_delay,
        local_address=local_address,
    )


async def _connect(
    address: tuple[str, int] | str,
    what: str,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    connect_timeout: float | None,
    close_timeout: float,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    local_address: str | None = None,
) -> TCPConnection:
    """Connect through the one connect path (:mod:`trionet._connect`), then
    wrap the stream."""
    checks.timeouts(connect_timeout=connect_timeout, close_timeout=close_timeout)
    stream = await connect(
        address,
        what=what,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        connect_timeout=connect_timeout,
        happy_eyeballs_delay=happy_eyeballs_delay,
        local_address=local_address,
    )
    return TCPConnection(stream, close_timeout=close_timeout)


async def connect_unix(
    path: str | os.PathLike[str],
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> TCPConnection:
    """Connect to a Unix socket, over TLS if ``ssl_context`` is given (Node's
    ``net.connect(path)``).

    Args:
        path: The socket's path.
        ssl_context: Speak TLS with this client context.
        server_hostname: The name to send (SNI) and verify; required with
            ``ssl_context`` unless its ``check_hostname`` is off.
        connect_timeout: Seconds for the whole connect, TLS handshake
            included; ``None`` (default) waits as long as the system does.
        close_timeout: Seconds the connection's graceful close may take.

    Returns:
        A connected :class:`~trionet.TCPConnection`.

    Raises:
        trionet.ConnectError: Nobody listens there, or the path does not exist.
        trionet.ConnectTimeout: ``connect_timeout`` ran out.
        trionet.TLSError: The TLS handshake failed.
        ValueError: A timeout is out of range, or ``ssl_context`` checks
            hostnames and no ``server_hostname`` was given.
        TypeError: An argument is of the wrong kind.
    """
    path = os.fspath(path)
    return await _connect(
        path,
        path,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
    )
