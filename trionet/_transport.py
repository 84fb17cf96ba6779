"""``Transport``: bytes in and out of a trio stream, for the protocol
connections (HTTP, WebSocket) that parse bytes themselves.

Plain TCP is read and written through the stdlib socket directly, with trio's
checkpoint discipline, as in :mod:`trionet._udp`: a call that did not have to
wait still checks for cancellation first and yields to the scheduler after,
so it behaves exactly as ``receive_some`` / ``send_all`` would, at a fraction
of their cost. TLS and other streams go through ``receive_some`` /
``send_all``. Either way, operating-system errors and broken streams come out
as :class:`~trionet.ConnectionReset` (one translation, from :mod:`._stream`),
and the bytes each way are counted.

An HTTP connection hands its transport over to the WebSocket it upgrades to,
so the server's byte counts go on across the upgrade.
"""

from __future__ import annotations

import socket as stdlib_socket
import ssl

import trio

from ._errors import ConnectionReset
from ._server import SocketAddress
from ._stream import _address, _socket_of, _translate_os_error
from .tls._stream import describe_tls_failure

__all__ = ["RECEIVE_SIZE", "Transport"]

RECEIVE_SIZE = 64 * 1024


def _lost(exc: trio.BrokenResourceError) -> ConnectionReset:
    """A broken stream, with the reason trio keeps in the cause (over TLS, the
    alert the peer sent, such as "certificate required")."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):
        return ConnectionReset(f"connection lost: {describe_tls_failure(exc)}")
    return ConnectionReset(f"connection lost: {exc or cause or 'the stream broke'}")


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
        "raw",
        "sock",
        "stream",
    )

    def __init__(self, stream: trio.abc.Stream, close_timeout: float) -> None:
        self.stream = stream
        self.sock = _socket_of(stream)
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

    # Asked of the socket when first wanted: most connections never are.

    @property
    def remote_address(self) -> SocketAddress:
        if self._remote_address is None:
            self._remote_address = _address(self.sock, peer=True)
        return self._remote_address

    @property
    def local_address(self) -> SocketAddress:
        if self._local_address is None:
            self._local_address = _address(self.sock, peer=False)
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
            raise _translate_os_error(exc) from exc
        except trio.BrokenResourceError as exc:
            raise _lost(exc) from exc
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
            raise _translate_os_error(exc) from exc
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
            raise _translate_os_error(exc) from exc
        except trio.BrokenResourceError as exc:
            raise _lost(exc) from exc
        finally:
            self._sending = False
        self.bytes_sent += len(data)

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
