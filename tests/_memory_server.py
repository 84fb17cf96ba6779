"""trionet's TCP server core fed by in-memory connections instead of a
listening socket, so that tests of its timing (shutdown grace, handshake
timeouts) can run under ``autojump_clock``: the server's own accept loop,
handshake, supervision and shutdown code runs; only the kernel is replaced by
:func:`trionet.testing.memory_stream_pair`."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

import trionet
from trionet._tcp import _stream_server_core
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


async def serve_in_memory(
    handler: trionet.TCPHandler,
    listener: MemoryListener,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_handshake_timeout: float = trionet.DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    max_connections: int = trionet.DEFAULT_MAX_CONNECTIONS,
    handler_errors: Any = "log",
    close_timeout: float = trionet.DEFAULT_CLOSE_TIMEOUT,
    task_status: trio.TaskStatus[trionet.Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`trionet.serve_tcp` on ``listener``: the same server core, the
    same options, started the same way (``await nursery.start(...)``)."""
    core = _stream_server_core(
        "memory server",
        [listener],  # type: ignore[list-item]
        [MEMORY_ADDRESS],
        handler,
        ssl_context=ssl_context,
        tls_handshake_timeout=tls_handshake_timeout,
        max_connections=max_connections,
        handler_errors=handler_errors,
        close_timeout=close_timeout,
    )
    await core.run(task_status)


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
