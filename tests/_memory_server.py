"""trionet's TCP server core fed by in-memory connections instead of a
listening socket, so that tests of its timing (shutdown grace, handshake
timeouts) can run under ``autojump_clock``: the server's own accept loop,
handshake, supervision and shutdown code runs; only the kernel is replaced by
:func:`trionet.testing.memory_stream_pair`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from types import ModuleType
from typing import Any

import trio

import trionet
from trionet import _tcp as tcp_module
from trionet.testing import DEFAULT_MEMORY_BUFFER, memory_stream_pair

# The address a memory server reports, so that ``server.port`` reads as usual.
MEMORY_ADDRESS = ("memory", 1)


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections come from :meth:`connect`, not from a
    socket."""

    def __init__(self, buffer_size: int = DEFAULT_MEMORY_BUFFER) -> None:
        self._buffer_size = buffer_size
        self._send, self._incoming = trio.open_memory_channel[trio.abc.Stream](1000)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._incoming.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("the memory listener is closed") from None

    async def aclose(self) -> None:
        self._incoming.close()
        await trio.lowlevel.checkpoint()

    def connect_stream(self) -> trio.abc.Stream:
        """Queue a new connection for the server; return the client's end."""
        client, server = memory_stream_pair(self._buffer_size)
        try:
            self._send.send_nowait(server)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The server stopped listening: the peer refuses.
            raise trionet.ConnectError("the memory server is not listening") from None
        return client

    def connect(self) -> trionet.TCPConnection:
        """Queue a new connection; return the client's end as a
        :class:`trionet.TCPConnection`."""
        return trionet.TCPConnection(self.connect_stream())


@contextmanager
def listening_on(module: ModuleType, listener: MemoryListener) -> Iterator[None]:
    """Within the block, the next call of ``module.listen`` (the one step of
    ``serve_tcp`` or ``http.serve`` that binds sockets) returns ``listener``
    instead, once: everything after it is the server's own."""
    original = module.listen

    async def once(
        port: int, host: str | None, backlog: int | None, sockets: object
    ) -> tuple[list[MemoryListener], list[tuple[str, int]]]:
        module.listen = original
        await trio.lowlevel.checkpoint()
        return [listener], [MEMORY_ADDRESS]

    module.listen = once
    try:
        yield
    finally:
        module.listen = original


async def serve_in_memory(
    handler: trionet.TCPHandler,
    listener: MemoryListener,
    *,
    task_status: trio.TaskStatus[trionet.Server] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """:func:`trionet.serve_tcp` itself, with ``options``, on ``listener``
    instead of a socket; started the same way (``await nursery.start(...)``)."""
    with listening_on(tcp_module, listener):
        await trionet.serve_tcp(handler, 0, task_status=task_status, **options)


@asynccontextmanager
async def memory_tcp_server(
    handler: trionet.TCPHandler, *, buffer_size: int = DEFAULT_MEMORY_BUFFER, **options: Any
) -> AsyncIterator[tuple[trionet.Server, MemoryListener]]:
    """:func:`serve_in_memory` for the length of a block; yield the server
    and its listener (connect with ``listener.connect()``; each direction
    holds ``buffer_size`` bytes, as a socket's kernel buffers do)."""
    listener = MemoryListener(buffer_size)
    async with trio.open_nursery() as nursery:
        server: trionet.Server = await nursery.start(
            partial(serve_in_memory, handler, listener, **options)
        )
        yield server, listener
        nursery.cancel_scope.cancel()
