"""The WebSocket client, on trio: :func:`connect` (and :func:`open_client`
under it) connects through :func:`trionet.connect_tcp` (TCP, and TLS for
``wss://``), then sends the upgrade request and reads the answer, all under
one ``handshake_timeout``. The handshake itself is :mod:`._handshake`'s,
sans-IO.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit

import trio

from .. import _connect
from .._addresses import ascii_host
from .._errors import ConnectionClosed as _ConnectionClosed
from .._errors import ConnectTimeout
from .._listeners import host_header
from .._stream import DEFAULT_CLOSE_TIMEOUT
from .._tcp import connect_tcp
from .._transport import Transport
from .._websocket_limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    ConnectionOptions,
)
from ..http._client._limits import DEFAULT_MAX_RESPONSE_HEADER_SIZE
from ..http._client._tunnels import proxy_steps
from ..http._client._urls import Origin, Proxy, environment_proxy
from ..http._headers import Headers, HeadersInput
from ..tls._stream import tls_info
from ._connection import WebSocketConnection
from ._events import HandshakeError
from ._handshake import ClientHandshake, encode_headers

__all__ = ["connect", "open_client", "parse_url"]


def parse_url(url: str) -> tuple[bool, str, int, str, str]:
    """``(secure, host, port, target, host_header)`` of a ws:// or wss:// URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"a WebSocket URL starts with ws:// or wss://, not {url!r}")
    if parts.fragment:
        raise ValueError(f"a WebSocket URL has no fragment (RFC 6455 section 3): {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    host = ascii_host(host)
    secure = scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        raise ValueError(f"a bad port in {url!r}") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return secure, host, port, target, host_header(host, port, 443 if secure else 80)


async def _open_stream(
    secure: bool,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    proxy: str | bool | None,
    options: ConnectionOptions,
    proxy_ssl_context: ssl.SSLContext | None,
) -> trio.abc.Stream:
    """TCP (and TLS) to the server, or through the proxy ``proxy`` names:
    a URL, ``True`` for the environment's, ``None`` or ``False`` for none;
    ``proxy_ssl_context`` verifies an ``https://`` proxy."""
    scheme = "https" if secure else "http"
    through = environment_proxy(scheme, host) if proxy is True else None
    if isinstance(proxy, str):
        through = Proxy.parse(proxy)
    if through is None:
        conn = await connect_tcp(
            host,
            port,
            ssl_context=ssl_context,
            connect_timeout=options.handshake_timeout,
            close_timeout=options.close_timeout,
        )
        return conn.stream
    # A tunnel whether ws or wss: CONNECT (or SOCKS), then TLS end to end;
    # TLS to an https:// proxy first, verified with the caller's ssl_context
    # (else the system's trust store). The proxy's answer to CONNECT is
    # bounded as the HTTP client bounds a head.
    tunnel = proxy_steps(
        Origin(scheme, host, port),
        through,
        ssl_context=proxy_ssl_context,
        max_header_size=DEFAULT_MAX_RESPONSE_HEADER_SIZE,
    )
    return await _connect.connect(
        (through.host, through.port),
        what=f"the proxy {through.url}",
        ssl_context=ssl_context,
        server_hostname=host if secure else None,
        connect_timeout=options.handshake_timeout,
        tunnel=tunnel,
    )


async def open_client(
    url: str,
    *,
    subprotocols: Iterable[str],
    headers: HeadersInput | None,
    origin: str | None,
    ssl_context: ssl.SSLContext | None,
    compression: bool,
    options: ConnectionOptions,
    proxy: str | bool | None = None,
) -> WebSocketConnection:
    """Connect and complete the client side of the handshake, all under one
    ``options.handshake_timeout``."""
    handshake_timeout = options.handshake_timeout
    secure, host, port, target, host_header = parse_url(url)
    proxy_ssl_context = ssl_context
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    elif not secure:
        ssl_context = None
    extra = encode_headers(headers)
    if origin is not None:
        extra += encode_headers([("Origin", origin)])
    handshake = ClientHandshake(
        url,
        host=host_header,
        target=target,
        subprotocols=subprotocols,
        extra_headers=extra,
        compression=compression,
        max_message_size=options.max_message_size,
    )
    deadline = trio.current_time() + (handshake_timeout or float("inf"))
    stream = await _open_stream(secure, host, port, ssl_context, proxy, options, proxy_ssl_context)
    transport = Transport(stream, options.close_timeout)
    accepted = False
    with trio.move_on_at(deadline) as scope:
        try:
            await transport.send_all(handshake.request)
            while not accepted:
                accepted = handshake.receive_data(await transport.receive())
        except _ConnectionClosed as exc:
            await transport.aclose()
            raise HandshakeError(
                f"the connection to {url} broke during the handshake: {exc}"
            ) from exc
        except BaseException:
            await transport.aclose()
            raise
    if scope.cancelled_caught or not accepted:
        await transport.aclose()
        raise ConnectTimeout(
            errno.ETIMEDOUT, f"the WebSocket handshake with {url} took over {handshake_timeout:g} s"
        )
    path = target.split("?", 1)[0]
    sent = Headers._from_raw([(b"host", host_header.encode("ascii")), *extra])
    return WebSocketConnection(
        transport,
        handshake.protocol(),
        subprotocol=handshake.subprotocol,
        extensions=handshake.extensions,
        path=unquote(path),
        target=target,
        request_headers=sent,
        response_headers=Headers._from_raw(handshake.response_fields),
        # The server's TLS (not an https:// proxy's around ws://).
        tls=tls_info(stream) if secure and isinstance(stream, trio.SSLStream) else None,
        options=options,
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
    proxy: str | bool | None = None,
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
        proxy: Connect through this proxy: ``http://`` (a ``CONNECT``
            tunnel), ``https://`` (the same over TLS to the proxy, verified
            with ``ssl_context``), ``socks5h://``, ``socks5://``,
            ``socks4a://`` or ``socks4://`` (as for
            :class:`trionet.http.Client`), with TLS end to end for
            ``wss://``; ``True`` takes it from the
            environment as curl does (``HTTPS_PROXY`` for ``wss``,
            ``HTTP_PROXY`` for ``ws``, ``ALL_PROXY``, ``NO_PROXY``);
            ``None`` (default) connects directly.

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
        trionet.http.ProxyError: The proxy refused the tunnel.
        trionet.http.UnsupportedProxy: ``proxy`` names a scheme not listed.
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
    ws = await open_client(
        url,
        subprotocols=subprotocols,
        headers=headers,
        origin=origin,
        ssl_context=ssl_context,
        compression=compression,
        options=options,
        proxy=proxy,
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
