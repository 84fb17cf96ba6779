"""``TCPConnection``: a byte stream (TCP, Unix, TLS or in-memory) read as events.

Theory of operation
-------------------
``async for event in conn`` pulls from the underlying ``trio.abc.Stream`` only
when the handler asks for the next event, so TCP flow control is the
backpressure: a handler that stops reading makes the peer's sends block.

Two things may interrupt a pending read: the idle timeout set with
:meth:`TCPConnection.set_timeout` (Node's ``'timeout'``) and a graceful server
shutdown. Both are cancel scopes around the read, which is safe for every trio
stream once a TLS handshake is done. A cancel scope per read is not free,
though, and the plain-socket echo loop is the benchmark that matters, so a
plain TCP ``trio.SocketStream`` without a timeout reads with no scope at all; a
shutdown then wakes the pending read by shutting down the socket's receiving
side (``shutdown(SHUT_RD)``, the *local half-close*), which makes it return as
at end of stream. (Not on Unix sockets: there the kernel passes SHUT_RD on to
the peer, whose sends would then fail, so they read under a scope.) The loop
ends in both cases without an ``EndOfStream``: the peer did not finish, we did.

The bytes move through a :class:`~trionet._transport.Transport`, the one
stream transport every protocol shares: it reads and writes a plain socket
directly (the same benchmark is why), counts the bytes, and translates
errors, once, into :class:`~trionet.ConnectionClosed` subclasses (a
connection asks it for :class:`~trionet.TLSError` when a TLS session fails).
Misuse stays trio's: ``ClosedResourceError`` after ``aclose``,
``BusyResourceError`` when two tasks iterate or send at once.
"""

from __future__ import annotations

import math
import socket as stdlib_socket
from dataclasses import dataclass
from typing import Self

import trio

from . import _checks as checks
from ._errors import ConnectionClosed
from ._events import Data, EndOfStream, StreamEvent, Timeout
from ._listeners import format_address
from ._proxy._accept import Proxied
from ._proxy._protocol import ProxyHeader
from ._server import SocketAddress
from ._transport import DEFAULT_CLOSE_TIMEOUT, RECEIVE_SIZE, Transport, translate
from .tls._stream import TLSInfo, tls_info

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "ConnectionStatistics", "TCPConnection"]


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    """A snapshot of one connection's counters, from
    :meth:`TCPConnection.statistics`.

    Attributes:
        bytes_received: Payload bytes received (after TLS decryption).
        bytes_sent: Payload bytes handed to the transport by :meth:`TCPConnection.send`.
    """

    bytes_received: int
    bytes_sent: int


class TCPConnection(trio.abc.AsyncResource):
    """A connected byte stream, read as an async iterator of events.

    Servers pass one to your handler; :func:`~trionet.connect_tcp` and
    :func:`~trionet.connect_unix` return one. It works the same over TCP,
    Unix sockets, TLS and in-memory streams. You can also wrap any
    ``trio.abc.Stream`` yourself.

    Iterating yields :class:`~trionet.Data`, then :class:`~trionet.EndOfStream`
    when the peer finishes sending (the loop then ends), and
    :class:`~trionet.Timeout` when an idle timeout is set. A reset or broken
    transport raises a :class:`~trionet.ConnectionClosed` subclass.

    Args:
        stream: The stream to wrap. If it is (or wraps) a socket, the addresses
            are read from it.
        close_timeout: Seconds :meth:`aclose` waits for a graceful close before
            closing forcefully.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        _proxied: Proxied | None = None,
    ) -> None:
        transport = self._transport = Transport(
            stream, close_timeout, tls_errors=True, proxied=_proxied
        )
        self._stream = stream
        self._sock = sock = transport.sock
        # Only TCP reads skip the cancel scope: a shutdown wakes them with
        # SHUT_RD, which on a Unix socket would also break the peer's sends.
        self._fast_reads = (
            transport.raw is not None
            and sock is not None
            and sock.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6)
        )
        self._fast = self._fast_reads
        self._tls = tls_info(stream) if isinstance(stream, trio.SSLStream) else None
        # Read now: once closed, the socket could no longer tell.
        self._local_address = transport.local_address
        self._remote_address = transport.remote_address
        self._timeout: float | None = None
        self._last_activity = 0.0
        self._receiving = False
        self._read_scope: trio.CancelScope | None = None
        self._finished = False  # the event loop has ended
        self._shutdown_requested = False
        self._eof_sent = False

    def __repr__(self) -> str:
        return (
            f"<trionet.TCPConnection {self._local_address!r} <-> {self._remote_address!r}"
            f"{' tls' if self._tls else ''}{' closed' if self._transport.closed else ''}>"
        )

    # -- reading ---------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        transport = self._transport
        if transport.closed:
            raise trio.ClosedResourceError("the connection was closed")
        if self._finished:
            raise StopAsyncIteration
        if self._receiving:
            raise trio.BusyResourceError("another task is already iterating over this connection")
        self._receiving = True
        try:
            if not self._fast:
                return await self._next_slow()
            data = await transport.receive(RECEIVE_SIZE)
        except ConnectionClosed:
            self._finished = True
            if transport.closed:  # we closed it under a task still using it
                raise trio.ClosedResourceError("the connection was closed") from None
            raise
        finally:
            self._receiving = False
        if data:
            if self._timeout is not None:  # set by another task during the read
                self._last_activity = trio.current_time()
            return Data(data)
        return self._end()

    async def _next_slow(self) -> StreamEvent:
        while True:
            with trio.CancelScope() as scope:
                self._read_scope = scope
                if self._shutdown_requested:
                    scope.cancel()
                if self._timeout is not None:
                    scope.deadline = self._last_activity + self._timeout
                try:
                    data = await self._transport.receive(RECEIVE_SIZE)
                finally:
                    self._read_scope = None
            if not scope.cancelled_caught:
                break
            if self._shutdown_requested:
                self._finished = True
                raise StopAsyncIteration
            # The deadline passed, but another task may have moved it (activity,
            # a new timeout, none at all) after trio had cancelled the read.
            now = trio.current_time()
            if self._timeout is not None and now >= self._last_activity + self._timeout:
                self._last_activity = now
                return Timeout()
        if data:
            if self._timeout is not None:
                self._last_activity = trio.current_time()
            return Data(data)
        return self._end()

    def _touch(self) -> None:
        """Record activity, pushing back the deadline of a pending read."""
        self._last_activity = trio.current_time()
        if self._read_scope is not None and self._timeout is not None:
            self._read_scope.deadline = self._last_activity + self._timeout

    def _end(self) -> StreamEvent:
        self._finished = True
        if self._shutdown_requested:
            raise StopAsyncIteration  # our own SHUT_RD, not the peer's FIN
        return EndOfStream()

    # -- writing ---------------------------------------------------------

    async def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send data, and return once the transport has accepted all of it.

        This is the backpressure point: when the peer reads slowly, ``send``
        waits (Node's ``'drain'`` is the return of this call).

        Args:
            data: Bytes to send; a ``str`` is encoded as UTF-8, as Node's
                ``socket.write`` does.

        Raises:
            ConnectionClosed: The connection was reset or broke while sending.
            trio.ClosedResourceError: The connection was closed, or
                :meth:`send_eof` was called.
            trio.BusyResourceError: Another task is sending at the same time.
            TypeError: ``data`` is not bytes-like or ``str``.
        """
        if type(data) is not bytes:
            if isinstance(data, str):
                data = data.encode("utf-8")
            elif isinstance(data, memoryview):
                data = data.cast("B")
            elif not isinstance(data, bytes | bytearray):
                raise TypeError(f"send() takes bytes or str, not {type(data).__name__}")
        transport = self._transport
        if transport.closed:
            raise trio.ClosedResourceError("the connection was closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        try:
            await transport.send_all(data)
        except ConnectionClosed:
            if transport.closed:
                raise trio.ClosedResourceError("the connection was closed") from None
            raise
        if self._timeout is not None:
            self._touch()

    async def send_eof(self) -> None:
        """Half-close: tell the peer we will send nothing more (TCP FIN), and
        keep receiving (Node's ``socket.end()``).

        Raises:
            ConnectionClosed: The connection broke.
            trio.ClosedResourceError: The connection was closed.
            trio.BusyResourceError: Another task is sending at the same time.
            NotImplementedError: The connection runs over TLS, which trio cannot
                half-close; use :meth:`aclose`.
        """
        stream = self._stream
        transport = self._transport
        if transport.closed:
            raise trio.ClosedResourceError("the connection was closed")
        if transport.sending:
            raise trio.BusyResourceError("another task is sending on this connection")
        if not isinstance(stream, trio.abc.HalfCloseableStream):
            raise NotImplementedError(
                f"{type(stream).__name__} cannot half-close (TLS has no half-close "
                "in trio); use aclose()"
            )
        try:
            await stream.send_eof()
        except trio.BrokenResourceError as exc:
            raise translate(exc, tls_errors=True) from exc
        self._eof_sent = True

    # -- closing ---------------------------------------------------------

    def _request_shutdown(self) -> None:
        # Called by the server core on graceful shutdown; see the module doc.
        if self._shutdown_requested:
            return
        self._shutdown_requested = True
        self._finished = True  # the next iteration ends the loop
        if self._read_scope is not None:
            self._read_scope.cancel()
        elif self._receiving and self._sock is not None:
            try:
                self._sock.shutdown(stdlib_socket.SHUT_RD)
            except OSError:
                pass  # already gone: the pending read fails or ends by itself

    @property
    def shutdown_requested(self) -> bool:
        """True once the server this connection belongs to began a graceful
        shutdown. The event loop then ends (without
        :class:`~trionet.EndOfStream`), even in the middle of a wait; the
        handler may still send its last words and should return soon: it is
        cancelled when the shutdown's grace period runs out."""
        return self._shutdown_requested

    async def aclose(self) -> None:
        """Close the connection. Always closes, even if cancelled; calling it
        again does nothing.

        Over TLS, a ``close_notify`` is sent first, for at most
        ``close_timeout`` seconds (not at all while another task is blocked
        sending: it would wait behind that send).
        """
        self._finished = True
        await self._transport.aclose()

    # -- options and details ---------------------------------------------

    def set_timeout(self, seconds: float | None) -> None:
        """Yield a :class:`~trionet.Timeout` event whenever the connection has
        been idle (nothing received or sent) for ``seconds`` (Node's
        ``socket.setTimeout``). The connection stays open.

        It applies at once to a wait in progress, except on a plain TCP
        socket that had no timeout (its wait is not interruptible): there it
        applies from the next wait.

        Args:
            seconds: The idle time, or ``None`` (or 0, as in Node) to turn the
                timeout off.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        checks.non_negative_seconds("timeout", seconds, none=True)
        self._timeout = seconds or None
        self._fast = self._fast_reads and self._timeout is None
        if self._timeout is not None:
            self._touch()
        elif self._read_scope is not None:
            self._read_scope.deadline = math.inf

    @property
    def timeout(self) -> float | None:
        """The idle timeout set by :meth:`set_timeout`, or ``None``."""
        return self._timeout

    def set_nodelay(self, enabled: bool = True) -> None:
        """Turn Nagle's algorithm off (``True``, trio's default) or on
        (Node's ``socket.setNoDelay``). Does nothing on a connection that is not
        TCP (Unix or in-memory)."""
        if self._sock is not None and self._sock.family in (
            stdlib_socket.AF_INET,
            stdlib_socket.AF_INET6,
        ):
            self._sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, enabled)

    def set_keepalive(self, enabled: bool = True, *, idle: float | None = None) -> None:
        """Turn TCP keep-alive probes on or off (Node's ``socket.setKeepAlive``).
        Does nothing on a connection that is not TCP.

        Args:
            enabled: Whether to send keep-alive probes.
            idle: Seconds of idleness before the first probe (Node's
                ``initialDelay``); ``None`` keeps the system's default.
        """
        sock = self._sock
        if sock is None or sock.family not in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
            return
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_KEEPALIVE, enabled)
        if enabled and idle is not None:
            option = getattr(stdlib_socket, "TCP_KEEPIDLE", None)
            if option is None:  # macOS
                option = getattr(stdlib_socket, "TCP_KEEPALIVE", None)
            if option is not None:
                sock.setsockopt(stdlib_socket.IPPROTO_TCP, option, max(1, round(idle)))

    @property
    def local_address(self) -> SocketAddress:
        """Our address, as the socket module reports it (``(host, port)``, an
        IPv6 4-tuple, or a Unix path); ``""`` when there is no socket (an
        in-memory stream) or the system could not tell."""
        return self._local_address

    @property
    def remote_address(self) -> SocketAddress:
        """The peer's address, in the same form as :attr:`local_address`.
        Behind a proxy that sent a trusted PROXY protocol header (the
        server's ``proxy_protocol`` option), the original client's."""
        return self._remote_address

    @property
    def proxy_address(self) -> SocketAddress | None:
        """The address of the proxy this connection came through (the
        socket's own peer) when it sent a PROXY protocol header; ``None``
        otherwise."""
        return self._transport.proxy_address

    @property
    def proxy_header(self) -> ProxyHeader | None:
        """The PROXY protocol header the proxy sent (addresses, TLVs such as
        ALPN, authority and TLS details), or ``None``."""
        return self._transport.proxy_header

    @property
    def tls(self) -> TLSInfo | None:
        """What TLS negotiated (version, cipher, ALPN protocol, peer
        certificate), or ``None`` on a connection without TLS."""
        return self._tls

    @property
    def stream(self) -> trio.abc.Stream:
        """The underlying trio stream, as an escape hatch.

        Reading or writing it directly bypasses this object's events and
        counters."""
        return self._stream

    def _log_context(self) -> dict[str, object]:
        """What the server logs of this connection when its handler fails."""
        address = self._remote_address
        return {"peer": format_address(address) if address else None}

    def statistics(self) -> ConnectionStatistics:
        """Return the connection's byte counters.

        Returns:
            A :class:`ConnectionStatistics`.
        """
        transport = self._transport
        return ConnectionStatistics(transport.bytes_received, transport.bytes_sent)
