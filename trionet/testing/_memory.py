"""In-memory byte streams that behave like a socket pair, buffers included.

trio's ``memory_stream_pair`` never blocks a sender, so a test of a slow
reader (backpressure) cannot be written with it. Here each direction holds at
most ``buffer_size`` bytes, like a kernel socket buffer: ``send_all`` returns
once all its data is in the buffer and waits while the buffer is full.
"""

from __future__ import annotations

import operator

import trio

from .. import _checks as checks

__all__ = ["DEFAULT_MEMORY_BUFFER", "MemoryStream", "memory_stream_pair"]

# A typical default socket buffer size on Linux (net.ipv4.tcp_wmem's default
# is 16 KiB, growing with autotuning; 64 KiB is where a loopback pair settles).
DEFAULT_MEMORY_BUFFER = 65536


class _Pipe:
    """One direction: the bytes in flight and who has finished."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.eof = False  # the writer finished (send_eof or aclose)
        self.reset = False  # the writer closed with data of ours unread: an RST
        self.reader_gone = False  # the reader closed: writing is broken
        self.changed = trio.lowlevel.ParkingLot()

    def wake(self) -> None:
        self.changed.unpark_all()


class MemoryStream(trio.abc.HalfCloseableStream):
    """One end of :func:`memory_stream_pair`: a ``trio.abc.HalfCloseableStream``.

    ``aclose`` gives the other end an end of stream when it reads and a
    ``trio.BrokenResourceError`` when it sends. As with TCP, closing with
    received data still unread is a reset: the other end reads what was sent
    before, then gets ``trio.BrokenResourceError`` instead of the end of stream.
    """

    def __init__(self, outgoing: _Pipe, incoming: _Pipe) -> None:
        self._outgoing = outgoing
        self._incoming = incoming
        self._closed = False
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            pipe = self._outgoing
            with memoryview(data) as view:
                sent = 0
                while True:
                    if self._closed:
                        raise trio.ClosedResourceError("this stream was closed")
                    if pipe.eof:
                        raise trio.ClosedResourceError("can't send data after sending EOF")
                    if pipe.reader_gone:
                        raise trio.BrokenResourceError("the other end was closed")
                    room = pipe.limit - len(pipe.buffer)
                    if room > 0 and sent < len(view):
                        piece = view[sent : sent + room]
                        pipe.buffer += piece
                        sent += len(piece)
                        pipe.wake()
                    if sent == len(view):
                        return
                    await pipe.changed.park()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            pipe = self._outgoing
            while len(pipe.buffer) >= pipe.limit and not (self._closed or pipe.reader_gone):
                await pipe.changed.park()
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        self._outgoing.eof = True
        self._outgoing.wake()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)  # TypeError for 1.5, as trio's own
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            pipe = self._incoming
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("this stream was closed")
                if pipe.buffer:
                    size = len(pipe.buffer) if max_bytes is None else max_bytes
                    data = bytes(pipe.buffer[:size])
                    del pipe.buffer[:size]
                    pipe.wake()
                    return data
                if pipe.reset:
                    raise trio.BrokenResourceError("the other end reset the connection")
                if pipe.eof:
                    return b""
                await pipe.changed.park()
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Closing a TCP socket with received data unread sends an RST.
            self._outgoing.reset = bool(self._incoming.buffer)
            self._outgoing.eof = True
            self._incoming.reader_gone = True
            self._incoming.buffer.clear()
            self._outgoing.wake()
            self._incoming.wake()
        await trio.lowlevel.checkpoint()


def memory_stream_pair(
    buffer_size: int = DEFAULT_MEMORY_BUFFER,
) -> tuple[MemoryStream, MemoryStream]:
    """Return two connected in-memory streams, each direction buffering at
    most ``buffer_size`` bytes: ``send_all`` returns once its data is buffered
    and waits while the buffer is full, as with a socket.

    Args:
        buffer_size: Bytes each direction holds before ``send_all`` waits.

    Returns:
        The two ends.

    Raises:
        ValueError: ``buffer_size`` is less than 1.
        TypeError: ``buffer_size`` is not an integer.
    """
    checks.count("buffer_size", buffer_size)
    there, back = _Pipe(buffer_size), _Pipe(buffer_size)
    return MemoryStream(there, back), MemoryStream(back, there)
