"""One HTTP/1.1 connection of the client: opening it, and moving the bytes of
one exchange at a time between its stream and the sans-IO protocol
(:mod:`._protocol`). This module owns the timeouts; the protocol owns HTTP.

Theory of operation
-------------------
Opening (all under the ``connect`` timeout) is the one connect path,
:func:`trionet._connect.connect`: the name is looked up, the addresses are
raced as RFC 8305 ("happy eyeballs") asks, and the first to connect wins.
Through a proxy, the connection goes to the proxy, and for ``https`` a tunnel
is opened with ``CONNECT host:port`` (RFC 9110 section 9.3.6) between the TCP
connect and the TLS handshake, which then runs end to end with the origin.
Plain ``http`` goes to the proxy with the absolute URL as the request target
(RFC 9112 section 3.2.2), so one proxy connection serves every host. Those
steps, the SOCKS tunnel and the TLS to an ``https://`` proxy that comes
before them are in :mod:`._tunnels`. The
connect path's errors become the client's own (subclasses of the top-level
ones, with the client's wording).

Each step is timed and reported to the ``trace`` callback when there is one
(what ``trionet get --trace`` prints).

An exchange runs over the connection's :class:`~trionet._transport.Transport`:
the protocol turns the request into bytes and the bytes of the response into
events; after the response the connection goes back to the pool only when
the protocol says the exchange ended cleanly and neither side asked to close
(RFC 9112 section 9.3).

A connection that waited in the pool may have been closed by the server in
the meantime (an idle keep-alive timeout). :meth:`ClientConnection.dropped`
catches the common case before reuse (the socket is readable: the server's
FIN, or bytes nobody asked for); the race that remains, a close that crosses
our request on the wire, is detected as "closed before the first byte of the
response" and retried by the client for idempotent requests only (RFC 9110
section 9.2.2).
"""

from __future__ import annotations

import os
import ssl

import trio

from ... import _connect
from ..._connect import Trace
from ..._errors import ConnectError as _ConnectError
from ..._errors import ConnectionReset
from ..._errors import ConnectTimeout as _ConnectTimeout
from ..._errors import TLSError as _TLSError
from ..._transport import Transport
from ...tls._stream import TLSInfo, tls_info
from ._errors import (
    HTTPConnectError,
    HTTPConnectTimeout,
    HTTPTLSError,
    ReadTimeout,
    ServerDisconnected,
    TransportError,
    WriteTimeout,
    tls_failure,
)
from ._protocol import NEED_DATA, ClientEvent, ClientProtocol
from ._tunnels import proxy_steps
from ._urls import PoolKey

__all__ = [
    "ClientConnection",
    "Verify",
    "default_ssl_context",
    "open_connection",
    "verify_context",
]

# How a pooled connection is closed: a TLS close_notify gets this long.
_CLOSE_TIMEOUT = 1.0


class ClientConnection:
    """An open connection to an origin (or a proxy), one exchange at a time."""

    __slots__ = (
        "first_byte_at",
        "idle_since",
        "key",
        "protocol",
        "requests",
        "tls",
        "transport",
    )

    def __init__(
        self,
        key: PoolKey,
        transport: Transport,
        tls: TLSInfo | None,
        max_header_size: int,
    ) -> None:
        self.key = key
        self.transport = transport
        self.tls = tls
        self.protocol = ClientProtocol(max_header_size)
        self.idle_since = 0.0
        self.requests = 0
        self.first_byte_at: float | None = None

    @property
    def closed(self) -> bool:
        return self.transport.closed

    def dropped(self) -> bool:
        """Whether an idle connection is no longer usable: the socket is
        readable (the server's FIN or reset, or bytes nobody asked for) or
        closed. A stream with no socket under it (an in-memory one) can
        only tell its own close."""
        sock = self.transport.sock
        if self.transport.closed:
            return True
        if sock is None:
            return False
        # trio's is_readable polls the descriptor (a virtual socket of
        # trionet.testing answers from its own state).
        try:
            return sock.is_readable()
        except (OSError, ValueError):
            return True

    def reusable(self) -> bool:
        """After an exchange: whether both sides ended it cleanly and keep
        the connection open; if so, it is ready for the next one."""
        return not self.transport.closed and self.protocol.reusable()

    async def write(self, data: bytes, limit: float | None) -> None:
        """Write bytes the protocol made.

        Raises:
            WriteTimeout: The server took no data for ``limit`` seconds.
            ServerDisconnected: The connection broke.
        """
        try:
            if limit is None:
                await self.transport.send_all(data)
                return
            with trio.move_on_after(limit) as scope:
                await self.transport.send_all(data)
        except ConnectionReset as exc:
            raise _broken(exc, "the server closed the connection") from None
        if scope.cancelled_caught:
            await self.transport.aclose()
            raise WriteTimeout(f"the server accepted no data for {limit:g} s")

    async def receive_event(self, limit: float | None) -> ClientEvent:
        """The protocol's next event, reading as needed.

        Raises:
            ReadTimeout: Nothing arrived for ``limit`` seconds.
            ServerDisconnected: The connection broke or closed mid-response.
            RemoteProtocolError: The server's bytes are not HTTP/1.1.
        """
        protocol = self.protocol
        while True:
            event = protocol.next_event()
            if event is not NEED_DATA:
                return event
            protocol.receive_data(await self.receive(limit))

    async def receive(self, limit: float | None) -> bytes:
        """Bytes from the server (``b""`` at its end of stream).

        Raises:
            ReadTimeout: Nothing arrived for ``limit`` seconds.
            ServerDisconnected: The connection broke.
        """
        try:
            if limit is None:
                data = await self.transport.receive()
            else:
                with trio.move_on_after(limit) as scope:
                    data = await self.transport.receive()
                if scope.cancelled_caught:
                    await self.transport.aclose()
                    raise ReadTimeout(f"the server sent nothing for {limit:g} s")
        except ConnectionReset as exc:
            raise _broken(exc, "the server reset the connection") from None
        except trio.ClosedResourceError:
            raise ServerDisconnected("the connection was closed") from None
        if self.first_byte_at is None:
            self.first_byte_at = trio.current_time()
        return data

    async def aclose(self) -> None:
        await self.transport.aclose()


def _broken(exc: ConnectionReset, what: str) -> TransportError:
    """The error for a connection that broke: :class:`HTTPTLSError` when TLS
    itself failed, else :class:`ServerDisconnected`."""
    detail = tls_failure(exc)
    if detail is not None:
        return HTTPTLSError(f"the server ended the TLS session: {detail}")
    return ServerDisconnected(f"{what}: {exc.reason}")


def default_ssl_context() -> ssl.SSLContext:
    """The client's TLS context when it is given none: verifying, with the
    system's trust store, offering HTTP/1.1 by ALPN."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


#: What ``verify=`` accepts (see :class:`~trionet.http.Client`).
Verify = bool | str | os.PathLike[str] | ssl.SSLContext


def verify_context(verify: Verify) -> ssl.SSLContext | None:
    """The TLS context for ``verify=``; ``None`` for the default (made when
    first needed).

    Raises:
        FileNotFoundError: The CA file or directory does not exist.
        ssl.SSLError: It holds no usable certificate.
        ValueError: ``"certifi"`` without the certifi package.
        TypeError: ``verify`` is of no kind it takes.
    """
    if verify is True:
        return None
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        return context
    if not isinstance(verify, str | os.PathLike):
        raise TypeError(f"verify= takes a bool, a CA path or an SSLContext, not {verify!r}")
    path = os.fspath(verify)
    if path == "certifi":
        try:
            import certifi  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ValueError(
                "verify='certifi' needs the certifi package: pip install 'trionet[certifi]'"
            ) from None
        path = certifi.where()
    if not os.path.exists(path):
        raise FileNotFoundError(f"verify={path!r}: no such CA file or directory")
    if os.path.isdir(path):
        context = ssl.create_default_context(capath=path)
    else:
        context = ssl.create_default_context(cafile=path)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def open_connection(
    key: PoolKey,
    *,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float | None,
    max_header_size: int,
    trace: Trace | None,
    uds: str | None = None,
) -> ClientConnection:
    """Open a connection for ``key``: TCP to the origin or the proxy (or
    the Unix socket ``uds``), the proxy's steps (:func:`._tunnels.proxy_steps`:
    TLS to an ``https://`` proxy, a ``CONNECT`` or SOCKS tunnel), then TLS
    for ``https`` with ``ssl_context``, which also verifies an ``https://``
    proxy.

    Raises:
        HTTPConnectError: The connection could not be opened.
        HTTPConnectTimeout: All of it took longer than ``connect_timeout``.
        ProxyError: The proxy refused the tunnel.
        HTTPTLSError: The TLS handshake (with the origin or the proxy) failed.
    """
    origin, proxy = key
    if proxy is not None:
        host, port = proxy.host, proxy.port
        what = f"the proxy {proxy.url}"
    else:
        assert origin is not None
        host, port = origin.host, origin.port
        what = str(origin)
    tunnel = None
    if proxy is not None:
        tunnel = proxy_steps(
            origin,
            proxy,
            ssl_context=ssl_context,
            max_header_size=max_header_size,
            trace=trace,
        )
    https = origin is not None and origin.scheme == "https"
    address: tuple[str, int] | str = (host, port)
    if uds is not None:
        address = uds
        what = f"{what} over the Unix socket {uds}"
    try:
        stream = await _connect.connect(
            address,
            what=what,
            ssl_context=ssl_context if https else None,
            server_hostname=origin.host if https and origin is not None else None,
            connect_timeout=connect_timeout,
            tunnel=tunnel,
            trace=trace,
        )
    except _ConnectTimeout:
        raise HTTPConnectTimeout(
            f"connecting to {what} took longer than {connect_timeout:g} s"
        ) from None
    except _ConnectError as exc:
        raise HTTPConnectError(exc.strerror or str(exc), exc.errno or 0) from None
    except HTTPTLSError:
        raise  # the proxy's TLS, named by its step
    except _TLSError as exc:
        raise HTTPTLSError(f"TLS with {origin}: {exc.reason}") from None
    # The origin's TLS (not an https:// proxy's around plain HTTP).
    tls = tls_info(stream) if https and isinstance(stream, trio.SSLStream) else None
    return ClientConnection(key, Transport(stream, _CLOSE_TIMEOUT), tls, max_header_size)
