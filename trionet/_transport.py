"""``Transport``: bytes in and out of a trio stream. Every stream protocol
reads and writes through it: :class:`~trionet.TCPConnection` (events for
the application), and the HTTP and WebSocket connections (which parse the
bytes themselves).

Plain sockets (TCP and Unix) are read and written through the stdlib socket
directly, with trio's checkpoint discipline: a call that did not have to wait
still checks for cancellation first and yields to the scheduler after, so it
behaves exactly as ``receive_some`` / ``send_all`` would, at a fraction of
their cost (the two generator-based context managers ``SocketStream`` enters
per call cost more than everything the protocols above add). TLS and other
streams go through ``receive_some`` / ``send_all``. The bytes each way are
counted.

Errors are translated here, once (:func:`translate`): an ``OSError`` from the
socket, or trio's ``BrokenResourceError`` (with the ``OSError`` or
``ssl.SSLError`` it carries) from any other stream, becomes a
:class:`~trionet.ConnectionClosed` subclass: :class:`~trionet.ConnectionReset`,
or, where the owner asks for it (``tls_errors``), :class:`~trionet.TLSError`
for a failed TLS session. Misuse stays trio's: ``ClosedResourceError`` after
``aclose``, ``BusyResourceError`` when two tasks send at once.

An HTTP connection hands its transport over to the WebSocket it upgrades to,
so the server's byte counts go on across the upgrade.
"""

from __future__ import annotations

import errno
import socket as stdlib_socket
import ssl
from typing import TYPE_CHECKING

import trio

from ._errors import ConnectionReset, TLSError
from ._server import SocketAddress
from .tls._stream import describe_tls_failure

if TYPE_CHECKING:
    from ._proxy._accept import Proxied
    from ._proxy._protocol import ProxyHeader

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "RECEIVE_SIZE", "Transport", "socket_of", "translate"]

# The most one read returns: 64 KiB is trio's own default and Node's
# highWaterMark for sockets, and above the usual TCP window at startup.
RECEIVE_SIZE = 64 * 1024

# aclose() first tries the graceful close (for TLS: send close_notify), which
# can block on a peer that stopped reading. After this many seconds it gives up
# and closes the socket anyway.
DEFAULT_CLOSE_TIMEOUT = 5.0


def socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket under ``stream`` (through TLS), or ``None`` (in memory)."""
    while True:
        if isinstance(stream, trio.SocketStream):
            return stream.socket
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
            continue
        return None


def address_of(sock: trio.socket.SocketType | None, peer: bool) -> SocketAddress:
    """The socket's (or its peer's) address; ``""`` when there is none."""
    if sock is None:
        return ""
    try:
        address = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return ""
    return address if isinstance(address, tuple | str) else str(address)


def translate(exc: BaseException, *, tls_errors: bool = False) -> Exception:
    """The exception a failed read or write raises: ``exc`` is the
    ``OSError`` of a plain socket or the ``BrokenResourceError`` of any other
    stream.

    Args:
        exc: What the stream raised.
        tls_errors: Report a failed TLS session as :class:`~trionet.TLSError`
            (and a TLS stream that ends without ``close_notify`` as one too)
            rather than as a lost connection.
    """
    if isinstance(exc, OSError):
        if exc.errno in (errno.EBADF, errno.ENOTSOCK):
            return trio.ClosedResourceError("the connection was closed")
        return ConnectionReset(f"connection lost: {exc.strerror or exc}")
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):
        # Over TLS, the reason trio keeps in the cause: the alert the peer
        # sent, such as "certificate required".
        if not tls_errors:
            return ConnectionReset(f"connection lost: {describe_tls_failure(exc)}")
        if isinstance(cause, ssl.SSLEOFError) or "EOF" in str(cause):
            return TLSError("the peer closed the connection without a TLS close_notify")
        return TLSError(describe_tls_failure(exc))
    if isinstance(cause, OSError):
        return ConnectionReset(f"connection lost: {cause.strerror or cause}")
    return ConnectionReset(f"connection lost: {str(exc) or cause or 'the stream broke'}")


class Transport:
    """One stream's reading, writing and closing (see the module docstring)."""

    __slots__ = (
        "_local_address",
        "_remote_address",
        "_sending",
        "bytes_received",
        "bytes_sent",
        "close_timeout",
        "closed",
        "proxy_address",
        "proxy_header",
        "raw",
        "sock",
        "stream",
        "tls_errors",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        close_timeout: float,
        *,
        tls_errors: bool = False,
        proxied: Proxied | None = None,
    ) -> None:
        self.stream = stream
        self.tls_errors = tls_errors
        self.sock = socket_of(stream)
        self.raw: stdlib_socket.socket | None = None
        if type(stream) is trio.SocketStream and self.sock is not None:
            self.raw = getattr(self.sock, "_sock", None)
        self.close_timeout = close_timeout
        self.closed = False
        self.bytes_received = 0
        self.bytes_sent = 0
        self._sending = False
        self._remote_address: SocketAddress | None = None
        self._local_address: SocketAddress | None = None
        # What a PROXY protocol header said (see trionet._proxy): the client
        # it names is the remote address; the socket's peer is the proxy.
        self.proxy_header: ProxyHeader | None = None
        self.proxy_address: SocketAddress | None = None
        if proxied is not None:
            self.proxy_header = header = proxied.header
            self.proxy_address = proxied.peer
            if header.trusted_addresses and header.source is not None:
                self._remote_address = header.source

    # Asked of the socket when first wanted: most connections never are.

    @property
    def remote_address(self) -> SocketAddress:
        if self._remote_address is None:
            self._remote_address = address_of(self.sock, peer=True)
        return self._remote_address

    @property
    def local_address(self) -> SocketAddress:
        if self._local_address is None:
            self._local_address = address_of(self.sock, peer=False)
        return self._local_address

    async def receive(self, size: int = RECEIVE_SIZE) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the stream.

        Raises:
            ConnectionReset: The connection broke.
        """
        raw = self.raw
        try:
            if raw is None:
                data = bytes(await self.stream.receive_some(size))
            else:
                await trio.lowlevel.checkpoint_if_cancelled()
                waited = False
                while True:
                    try:
                        data = raw.recv(size)
                        break
                    except BlockingIOError:
                        waited = True
                        await trio.lowlevel.wait_readable(raw)
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
        except OSError as exc:
            raise translate(exc) from exc
        except trio.BrokenResourceError as exc:
            raise translate(exc, tls_errors=self.tls_errors) from exc
        self.bytes_received += len(data)
        return data

    async def receive_ready(self, size: int = RECEIVE_SIZE) -> bytes | None:
        """What the socket already holds, without waiting (and then the
        schedule point a read owes), or ``None`` if a read would have to wait
        (or the transport is not a plain socket)."""
        raw = self.raw
        if raw is None:
            return None
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = raw.recv(size)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise translate(exc) from exc
        self.bytes_received += len(data)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``.

        Raises:
            ConnectionReset: The connection broke.
            trio.BusyResourceError: Another task is sending.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this connection")
        self._sending = True
        raw = self.raw
        try:
            if raw is None:
                await self.stream.send_all(data)
            else:
                await trio.lowlevel.checkpoint_if_cancelled()
                waited = False
                pending: bytes | bytearray | memoryview = data
                while True:
                    try:
                        sent = raw.send(pending)
                    except BlockingIOError:
                        sent = 0
                    if sent >= len(pending):
                        break
                    pending = memoryview(pending)[sent:]
                    waited = True
                    await trio.lowlevel.wait_writable(raw)
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
        except OSError as exc:
            raise translate(exc) from exc
        except trio.BrokenResourceError as exc:
            raise translate(exc, tls_errors=self.tls_errors) from exc
        finally:
            self._sending = False
        self.bytes_sent += len(data)

    @property
    def sending(self) -> bool:
        """A task is in :meth:`send_all`."""
        return self._sending

    async def shutdown_write(self) -> bool:
        """Stop writing where the stream can (TCP FIN); a stream that cannot
        half-close (TLS) is left as it is.

        Returns:
            False when the transport is broken or closed.
        """
        try:
            if self.raw is not None:
                self.raw.shutdown(stdlib_socket.SHUT_WR)
                await trio.lowlevel.checkpoint()
            elif isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            else:
                await trio.lowlevel.checkpoint()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def aclose(self) -> None:
        """Close (idempotent). Over TLS the close is graceful (``close_notify``)
        within ``close_timeout``, then forced."""
        if self.closed:
            await trio.lowlevel.checkpoint()
            return
        self.closed = True
        if self._sending:
            # A graceful close (TLS close_notify) would queue behind that send.
            await trio.aclose_forcefully(self.stream)
            return
        if self.raw is not None and isinstance(self.stream, trio.SocketStream):
            # Closing a plain socket cannot block: no need for the cancel
            # scope that aclose_forcefully would set up.
            self.stream.socket.close()
            await trio.lowlevel.checkpoint()
            return
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self.close_timeout):
                try:
                    await self.stream.aclose()
                    return
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
            await trio.aclose_forcefully(self.stream)
