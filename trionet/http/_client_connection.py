"""One HTTP/1.1 connection of the client: opening it, and one exchange at a
time over it with h11.

Theory of operation
-------------------
Opening (all under the ``connect`` timeout): the name is looked up, then the
addresses are tried as RFC 8305 ("happy eyeballs") asks: the next address is
tried when the previous one failed or has not answered within 250 ms, and the
first to connect wins. Through a proxy, the connection goes to the proxy, and
for ``https`` a tunnel is opened with ``CONNECT host:port`` (RFC 9110 section
9.3.6) before the TLS handshake, which then runs end to end with the origin.
Plain ``http`` goes to the proxy with the absolute URL as the request target
(RFC 9112 section 3.2.2), so one proxy connection serves every host.

Each step is timed and reported to the ``trace`` callback when there is one
(what ``trionet get --trace`` prints).

An exchange is h11's client state machine over the connection's
:class:`~trionet._transport.Transport`: the request goes out through h11
(``Content-Length`` or chunked), the response is parsed by it, and after the
response the connection goes back to the pool only when both h11 states say
the exchange ended cleanly and neither side asked to close (RFC 9112 section
9.3).

A connection that waited in the pool may have been closed by the server in
the meantime (an idle keep-alive timeout). :meth:`ClientConnection.dropped`
catches the common case before reuse (the socket is readable: the server's
FIN, or bytes nobody asked for); the race that remains, a close that crosses
our request on the wire, is detected as "closed before the first byte of the
response" and retried by the client for idempotent requests only (RFC 9110
section 9.2.2).
"""

from __future__ import annotations

import base64
import re
import select
import socket as stdlib_socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import h11
import trio

from .._errors import ConnectionReset, connect_error
from .._errors import TLSError as _TLSError
from .._listeners import format_address, host_header
from .._tls import TLSInfo, client_handshake, tls_info
from .._transport import Transport
from ._client_errors import (
    ConnectError,
    ConnectTimeout,
    ProxyError,
    ReadTimeout,
    RemoteProtocolError,
    ServerDisconnected,
    TLSError,
    TransportError,
    WriteTimeout,
)

__all__ = [
    "ClientConnection",
    "Origin",
    "PoolKey",
    "Proxy",
    "Trace",
    "basic_credentials",
    "open_connection",
]

#: The trace callback: ``trace(step, details)``.
Trace = Callable[[str, Mapping[str, Any]], None]

# RFC 8305 section 5: the "Connection Attempt Delay", 250 ms recommended.
_HAPPY_EYEBALLS_DELAY = 0.25

# 1xx responses accepted before a response: 100 Continue and 103 Early Hints
# come once or twice; a server sending more is broken or hostile.
_MAX_INFORMATIONAL = 32

# How a pooled connection is closed: a TLS close_notify gets this long.
_CLOSE_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host and port (RFC 6454's origin)."""

    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        """The ``Host`` field, which is also the URL's authority."""
        return host_header(self.host, self.port, 443 if self.scheme == "https" else 80)

    def __str__(self) -> str:
        return f"{self.scheme}://{format_address((self.host, self.port))}"


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: its address, and the credentials of its URL."""

    url: str
    host: str
    port: int
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """A proxy from its URL, ``http://[user:password@]host[:port]``.

        Raises:
            ValueError: The URL is not an ``http://`` URL with a host.
        """
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme.lower() != "http":
            raise ValueError(f"only http:// proxies are supported, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in the proxy URL {url!r}")
        try:
            port = parts.port or 80
        except ValueError:
            raise ValueError(f"a bad port in the proxy URL {url!r}") from None
        authorization = basic_credentials(parts)
        shown = f"http://{parts.hostname}:{port}"
        return cls(shown, parts.hostname, port, authorization)


def basic_credentials(parts: SplitResult) -> str | None:
    """The ``Authorization`` value (RFC 7617 Basic) for the ``user:password@``
    of a URL, or ``None`` when it has none."""
    if parts.username is None:
        return None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


#: A pool key: the origin, and the proxy it is reached through. Plain
#: ``http`` through a proxy is keyed by the proxy alone (origin ``None``):
#: such a connection carries requests for any host.
PoolKey = tuple[Origin | None, Proxy | None]


class ClientConnection:
    """An open connection to an origin (or a proxy), one exchange at a time."""

    __slots__ = (
        "first_byte_at",
        "h11",
        "idle_since",
        "informational",
        "key",
        "max_header_size",
        "requests",
        "server_closed",
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
        self.max_header_size = max_header_size
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
        self.idle_since = 0.0
        self.requests = 0
        self.first_byte_at: float | None = None
        self.server_closed = False
        self.informational = 0

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
        # poll, not select: select cannot watch a descriptor above 1023.
        poller = select.poll()
        try:
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def reusable(self) -> bool:
        """After an exchange: whether both sides ended it cleanly and keep
        the connection open; if so, h11 is ready for the next one."""
        h = self.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE and not self.transport.closed:
            h.start_next_cycle()
            return True
        return False

    async def send(self, event: h11.Event, limit: float | None) -> None:
        """Write an h11 event.

        Raises:
            WriteTimeout: The server took no data for ``limit`` seconds.
            ServerDisconnected: The connection broke.
        """
        try:
            data = self.h11.send(event)
        except h11.LocalProtocolError as exc:
            raise _misuse(exc) from None
        if data:
            await self._write(data, limit)

    async def send_all(self, events: tuple[h11.Event, ...], limit: float | None) -> None:
        """Write several h11 events in one write (a request head with its
        small body goes out in one packet).

        Raises:
            WriteTimeout: The server took no data for ``limit`` seconds.
            ServerDisconnected: The connection broke.
        """
        send = self.h11.send
        try:
            data = b"".join([send(event) or b"" for event in events])
        except h11.LocalProtocolError as exc:
            raise _misuse(exc) from None
        await self._write(data, limit)

    async def _write(self, data: bytes, limit: float | None) -> None:
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

    async def receive_event(self, limit: float | None) -> h11.Event:
        """The next h11 event of the response, reading as needed.

        Raises:
            ReadTimeout: Nothing arrived for ``limit`` seconds.
            ServerDisconnected: The connection broke or closed mid-response.
            RemoteProtocolError: The server's bytes are not HTTP/1.1.
        """
        h = self.h11
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._protocol_error(exc) from None
            if isinstance(event, h11.InformationalResponse):
                # 1xx answers may precede the response (RFC 9110 section
                # 15.2), but not without end: a stream of them would never
                # trip the read timeout.
                self.informational += 1
                if self.informational > _MAX_INFORMATIONAL:
                    raise RemoteProtocolError(
                        f"more than {_MAX_INFORMATIONAL} informational (1xx) responses"
                    )
            if event is not h11.NEED_DATA:
                assert not isinstance(event, type)
                return event
            data = await self.receive(limit)
            if not data:
                self.server_closed = True
            h.receive_data(data)

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

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> Exception:
        if self.server_closed:
            # h11 reports an end of stream before the response was complete
            # as a protocol error; for the client it is a disconnect (and,
            # before the first byte, the case that may be retried).
            return ServerDisconnected(
                "the server closed the connection before the response was complete"
            )
        return RemoteProtocolError(f"the server's response is not valid HTTP/1.1: {exc}")

    async def aclose(self) -> None:
        await self.transport.aclose()


def _misuse(exc: h11.LocalProtocolError) -> ValueError:
    """The caller's request breaks HTTP/1.1 (a ``Content-Length`` that its
    body does not match, a body for a method that has none...)."""
    return ValueError(f"cannot send this request: {exc}")


def _broken(exc: ConnectionReset, what: str) -> TransportError:
    """The error for a connection that broke: :class:`TLSError` when TLS
    itself failed (a certificate refused after a TLS 1.3 handshake arrives
    as a failed read), else :class:`ServerDisconnected`."""
    broken = exc.__cause__
    cause = broken.__cause__ if broken is not None else None
    # A TLS stream that just ends (no close_notify) is a closed connection,
    # as over TCP: many servers close idle connections that way.
    if isinstance(cause, ssl.SSLError) and not isinstance(
        cause, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        detail = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(cause))
        return TLSError(f"the server ended the TLS session: {detail}")
    return ServerDisconnected(f"{what}: {exc.reason}")


async def open_connection(
    key: PoolKey,
    *,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float | None,
    max_header_size: int,
    trace: Trace | None,
) -> ClientConnection:
    """Open a connection for ``key``: TCP to the origin or the proxy, a
    ``CONNECT`` tunnel for ``https`` through a proxy, then TLS for ``https``.

    Raises:
        ConnectError: The connection could not be opened.
        ConnectTimeout: All of it took longer than ``connect_timeout``.
        ProxyError: The proxy refused the tunnel.
        TLSError: The TLS handshake failed.
    """
    origin, proxy = key
    if proxy is not None:
        host, port = proxy.host, proxy.port
        what = f"the proxy {proxy.url}"
    else:
        assert origin is not None
        host, port = origin.host, origin.port
        what = str(origin)
    stream: trio.abc.Stream | None = None
    with trio.move_on_after(connect_timeout or float("inf")) as scope:
        try:
            stream = await _open_tcp(host, port, trace)
            if proxy is not None and origin is not None:
                await _open_tunnel(stream, origin, proxy, max_header_size, trace)
            tls: TLSInfo | None = None
            if origin is not None and origin.scheme == "https":
                assert ssl_context is not None
                started = trio.current_time()
                stream = await client_handshake(stream, ssl_context, origin.host)
                tls = tls_info(stream)
                if trace is not None:
                    trace(
                        "tls",
                        {
                            "seconds": trio.current_time() - started,
                            "version": tls.version,
                            "cipher": tls.cipher,
                            "alpn": tls.alpn_protocol,
                            "server_hostname": origin.host,
                            "verified": ssl_context.verify_mode != ssl.CERT_NONE,
                        },
                    )
        except OSError as exc:
            error = connect_error(exc, what)
            raise ConnectError(error.strerror or str(error), error.errno or 0) from None
        except _TLSError as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise TLSError(f"TLS with {origin}: {exc.reason}") from None
        except BaseException:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
    if scope.cancelled_caught:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise ConnectTimeout(f"connecting to {what} took longer than {connect_timeout:g} s")
    assert stream is not None
    return ClientConnection(key, Transport(stream, _CLOSE_TIMEOUT), tls, max_header_size)


async def _open_tcp(host: str, port: int, trace: Trace | None) -> trio.SocketStream:
    """Look ``host`` up and connect to the first of its addresses that
    answers (RFC 8305)."""
    started = trio.current_time()
    infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_STREAM)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(0, f"no address for {host}")
    addresses = _interleave(infos)
    if trace is not None:
        trace(
            "dns",
            {
                "host": host,
                "seconds": trio.current_time() - started,
                "addresses": [address[4][0] for address in addresses],
            },
        )
    started = trio.current_time()
    stream = await _race(addresses)
    if trace is not None:
        peer = stream.socket.getpeername()
        trace(
            "connect",
            {"address": peer[0], "port": peer[1], "seconds": trio.current_time() - started},
        )
    return stream


_AddrInfo = tuple[Any, Any, Any, Any, Any]


def _interleave(infos: list[_AddrInfo]) -> list[_AddrInfo]:
    """RFC 8305 section 4: alternate address families, the first family
    first."""
    first = [info for info in infos if info[0] == infos[0][0]]
    other = [info for info in infos if info[0] != infos[0][0]]
    result: list[_AddrInfo] = []
    for index in range(max(len(first), len(other))):
        result.extend(group[index] for group in (first, other) if index < len(group))
    return result


async def _race(addresses: list[_AddrInfo]) -> trio.SocketStream:
    """Connect to one of ``addresses``, starting the next attempt when the
    previous failed or after the happy-eyeballs delay; the first to connect
    wins and the others are cancelled."""
    winner: list[trio.socket.SocketType] = []
    errors: list[OSError] = []

    async def attempt(info: _AddrInfo, failed: trio.Event, nursery: trio.Nursery) -> None:
        family, kind, proto, _, address = info
        sock = trio.socket.socket(family, kind, proto)
        try:
            await sock.connect(address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            failed.set()
            return
        except BaseException:
            sock.close()
            raise
        if winner:
            sock.close()
            return
        winner.append(sock)
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for info in addresses:
            failed = trio.Event()
            nursery.start_soon(attempt, info, failed, nursery)
            with trio.move_on_after(_HAPPY_EYEBALLS_DELAY):
                await failed.wait()
    if winner:
        return trio.SocketStream(winner[0])
    if len(errors) == 1:
        raise errors[0]
    first = errors[0]
    raise OSError(first.errno, first.strerror or str(first))


async def _open_tunnel(
    stream: trio.SocketStream,
    origin: Origin,
    proxy: Proxy,
    max_header_size: int,
    trace: Trace | None,
) -> None:
    """Ask the proxy for a tunnel to ``origin`` (``CONNECT``, RFC 9110
    section 9.3.6)."""
    started = trio.current_time()
    # The target of CONNECT is always host and port (RFC 9110 section 9.3.6).
    authority = format_address((origin.host, origin.port))
    headers = [("Host", authority)]
    if proxy.authorization is not None:
        headers.append(("Proxy-Authorization", proxy.authorization))
    h = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
    transport = Transport(stream, _CLOSE_TIMEOUT)
    try:
        await transport.send_all(
            h.send(h11.Request(method="CONNECT", target=authority, headers=headers))
        )
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProxyError(
                    f"the proxy {proxy.url} answered CONNECT wrongly: {exc}", 502
                ) from None
            if event is h11.NEED_DATA:
                data = await transport.receive()
                h.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                break
            raise ProxyError(f"the proxy {proxy.url} closed the connection during CONNECT", 502)
    except ConnectionReset as exc:
        raise ProxyError(
            f"the proxy {proxy.url} broke the connection during CONNECT: {exc.reason}", 502
        ) from None
    if not 200 <= event.status_code < 300:
        reason = event.reason.decode("latin-1", "replace")
        raise ProxyError(
            f"the proxy {proxy.url} refused the tunnel to {authority}:"
            f" {event.status_code} {reason}",
            event.status_code,
        )
    if h.trailing_data[0]:
        raise ProxyError(f"the proxy {proxy.url} sent bytes before the tunnel was used", 502)
    if trace is not None:
        trace(
            "proxy",
            {"proxy": proxy.url, "tunnel": authority, "seconds": trio.current_time() - started},
        )
