"""The steps between the TCP connect to a proxy and the TLS handshake with
the origin (the ``tunnel`` step of :func:`trionet._connect.connect`).

Theory of operation
-------------------
Through an ``http://`` proxy, ``https`` origins get a ``CONNECT`` tunnel
(RFC 9110 section 9.3.6); plain ``http`` needs no step at all, its requests go
to the proxy in absolute form. A SOCKS proxy (:mod:`trionet._socks`) opens a
tunnel for every origin. An ``https://`` proxy is an HTTP proxy reached over
TLS: the first step is the TLS handshake with the proxy (its certificate
checked against its own name), then, for ``https`` origins, ``CONNECT`` over
that TLS stream, and the origin's TLS runs inside it, end to end. Each step
returns the stream the connection goes on with.

The HTTP client and the WebSocket client both build their steps here
(:func:`proxy_steps`).
"""

from __future__ import annotations

import socket
import ssl

import trio

from ..._connect import Trace, Tunnel, trace_tls
from ..._errors import ConnectionReset
from ..._errors import TLSError as _TLSError
from ..._listeners import format_address
from ..._socks import Socks4Handshake, Socks5Handshake, SocksError
from ..._transport import Transport
from ...tls._stream import client_handshake
from ._errors import HTTPConnectError, HTTPTLSError, ProxyError, tls_failure
from ._protocol import TunnelExchange
from ._urls import Origin, Proxy

__all__ = ["proxy_steps"]

# A tunnel's stream is not closed by its step (the connection goes on with
# it); this is only the Transport's required close budget.
_CLOSE_TIMEOUT = 1.0


def proxy_steps(
    origin: Origin | None,
    proxy: Proxy,
    *,
    ssl_context: ssl.SSLContext | None,
    max_header_size: int,
    trace: Trace | None = None,
) -> Tunnel | None:
    """The step that goes between TCP to ``proxy`` and TLS to ``origin``.

    Args:
        origin: Where the tunnel leads; ``None`` for plain ``http`` through
            an HTTP proxy (no tunnel: requests go in absolute form).
        proxy: The proxy.
        ssl_context: Verifies an ``https://`` proxy (the client's context);
            ``None``: the system's trust store.
        max_header_size: The most bytes of the proxy's answer to ``CONNECT``.
        trace: Told ``"tls"`` (for an ``https://`` proxy) and ``"proxy"``.

    Returns:
        The step, or ``None`` when there is nothing to do.
    """
    tunnel: _ConnectTunnel | _SocksTunnel | None = None
    if proxy.socks:
        assert origin is not None  # a SOCKS proxy always tunnels
        tunnel = _SocksTunnel(origin, proxy, trace)
    elif origin is not None:
        tunnel = _ConnectTunnel(origin, proxy, max_header_size, trace)
    if not proxy.tls:
        return tunnel
    return _ProxyTLS(proxy, ssl_context or ssl.create_default_context(), tunnel, trace)


def _trace_tunnel(trace: Trace | None, proxy: Proxy, origin: Origin, started: float) -> None:
    if trace is not None:
        trace(
            "proxy",
            {
                "proxy": proxy.url,
                "tunnel": format_address((origin.host, origin.port)),
                "seconds": trio.current_time() - started,
            },
        )


class _ProxyTLS:
    """TLS with an ``https://`` proxy, then the tunnel (if any) inside it."""

    __slots__ = ("_context", "_proxy", "_then", "_trace")

    def __init__(
        self,
        proxy: Proxy,
        context: ssl.SSLContext,
        then: _ConnectTunnel | _SocksTunnel | None,
        trace: Trace | None,
    ) -> None:
        self._proxy = proxy
        self._context = context
        self._then = then
        self._trace = trace

    async def __call__(self, stream: trio.abc.Stream) -> trio.abc.Stream:
        started = trio.current_time()
        proxy = self._proxy
        try:
            tls = await client_handshake(stream, self._context, proxy.host)
        except _TLSError as exc:
            raise HTTPTLSError(f"TLS with the proxy {proxy.url}: {exc.reason}") from None
        if self._trace is not None:
            trace_tls(self._trace, tls, self._context, trio.current_time() - started, proxy.url)
        if self._then is None:
            return tls
        return await self._then(tls)


class _ConnectTunnel:
    """A tunnel through an HTTP proxy: ``CONNECT host:port`` (RFC 9110
    section 9.3.6)."""

    __slots__ = ("_max_header_size", "_origin", "_proxy", "_trace")

    def __init__(
        self, origin: Origin, proxy: Proxy, max_header_size: int, trace: Trace | None
    ) -> None:
        self._origin = origin
        self._proxy = proxy
        self._max_header_size = max_header_size
        self._trace = trace

    async def __call__(self, stream: trio.abc.Stream) -> trio.abc.Stream:
        started = trio.current_time()
        proxy = self._proxy
        authority = format_address((self._origin.host, self._origin.port))
        exchange = TunnelExchange(authority, proxy.url, proxy.authorization, self._max_header_size)
        transport = Transport(stream, _CLOSE_TIMEOUT)
        try:
            await transport.send_all(exchange.request())
            while not exchange.receive_data(await transport.receive()):
                pass
        except ConnectionReset as exc:
            raise _broken(proxy, "during CONNECT", exc) from None
        _trace_tunnel(self._trace, proxy, self._origin, started)
        return stream


class _SocksTunnel:
    """A tunnel through a SOCKS proxy: its handshake (:mod:`trionet._socks`),
    for ``http`` and ``https`` origins alike. The ``socks5`` and ``socks4``
    schemes resolve the origin's name here, as curl does; ``socks5h`` and
    ``socks4a`` send the name to the proxy."""

    __slots__ = ("_origin", "_proxy", "_trace")

    def __init__(self, origin: Origin, proxy: Proxy, trace: Trace | None) -> None:
        self._origin = origin
        self._proxy = proxy
        self._trace = trace

    async def _address(self) -> str:
        """The name to send, or the address it resolves to here."""
        proxy, host = self._proxy, self._origin.host
        if proxy.scheme in ("socks5h", "socks4a"):
            return host
        family = socket.AF_INET if proxy.scheme == "socks4" else 0
        try:
            infos = await trio.socket.getaddrinfo(
                host, self._origin.port, family=family, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise HTTPConnectError(f"{host} did not resolve (for {proxy.url}): {exc}") from None
        return str(infos[0][4][0])

    async def __call__(self, stream: trio.abc.Stream) -> trio.abc.Stream:
        started = trio.current_time()
        proxy = self._proxy
        target = await self._address()
        handshake: Socks4Handshake | Socks5Handshake
        if proxy.scheme.startswith("socks4"):
            handshake = Socks4Handshake(target, self._origin.port, user_id=proxy.username or "")
        else:
            handshake = Socks5Handshake(
                target, self._origin.port, username=proxy.username, password=proxy.password
            )
        transport = Transport(stream, _CLOSE_TIMEOUT)
        try:
            while not handshake.done:
                outgoing = handshake.data_to_send()
                if outgoing:
                    await transport.send_all(outgoing)
                if not handshake.done:
                    handshake.receive_data(await transport.receive())
        except ConnectionReset as exc:
            raise _broken(proxy, "during its handshake", exc) from None
        except SocksError as exc:
            raise ProxyError(f"the proxy {proxy.url}: {exc}", 502) from None
        _trace_tunnel(self._trace, proxy, self._origin, started)
        return stream


def _broken(proxy: Proxy, when: str, exc: ConnectionReset) -> ProxyError | HTTPTLSError:
    """The error for a proxy connection that broke while a tunnel was being
    opened; over TLS to the proxy, a TLS failure is named as one."""
    detail = tls_failure(exc)
    if detail is not None:
        return HTTPTLSError(f"the proxy {proxy.url} ended the TLS session {when}: {detail}")
    return ProxyError(f"the proxy {proxy.url} broke the connection {when}: {exc.reason}", 502)
