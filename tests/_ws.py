"""Helpers for the WebSocket tests: servers on loopback, and raw peers on
wsproto that do exactly what a test tells them (never answer a ping, drop
the connection mid-message, send hand-built frames) over a real TCP socket
or, for the tests on virtual time, over a memory stream.

Timeouts are tested under ``autojump_clock`` over memory streams, never over
sockets (the kernel delivers in real time while virtual time jumps):
:func:`start_ws_in_memory` runs the server's own core, HTTP connection and
upgrade handler on a :class:`~tests._memory_server.MemoryListener`, and
:func:`memory_connects` makes ``trionet.websocket.connect`` reach such a
listener (its connect path gets a memory stream instead of a socket).

A raw peer never answers anything by itself: each frame it sends, the test
sent. Hand-built frames (:func:`frame`) are for what wsproto refuses to
produce: a UTF-8 character split across frames, a compressed frame whose
payload inflates far beyond its size, bytes glued to the upgrade request.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

import trionet
import trionet.http
import trionet.websocket
from tests._memory_server import MEMORY_ADDRESS, MemoryListener, listening_on
from trionet._server import HandlerErrors
from trionet.http._server import _serve as http_serve
from trionet.websocket import _client as ws_client

LOOPBACK = "127.0.0.1"

# What trionet's client connects to under memory_connects: the host is never
# resolved, any URL reaches the memory listener.
MEMORY_URL = "ws://memory.test/"

# Real seconds any one exchange over loopback may take before the test is
# failed as hung (a guard, never an assertion about speed).
HANG_GUARD = 15

# Opcodes (RFC 6455 section 5.2).
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


async def watchdog(limit: float = 2 * HANG_GUARD) -> None:
    """Fail the test if it is still running after ``limit`` real seconds,
    whatever the clock: a hung test fails instead of stalling the run. Run it
    in the test's nursery (see the ``nursery`` fixture of the test modules).
    It waits in a thread, so that a mock clock still jumps meanwhile."""
    release = threading.Event()
    try:
        released = await trio.to_thread.run_sync(release.wait, limit, abandon_on_cancel=True)
    finally:
        release.set()  # the thread ends now when the test did
    if not released:
        raise AssertionError(f"the test was still running after {limit} real seconds")


# -- servers ------------------------------------------------------------------------------


async def start_ws(
    nursery: trio.Nursery, handler: trionet.websocket.WebSocketHandler, **kwargs: Any
) -> trionet.Server:
    """``trionet.websocket.serve(handler)`` on an ephemeral loopback port."""
    kwargs.setdefault("handler_errors", "raise")
    server: trionet.Server = await nursery.start(
        partial(trionet.websocket.serve, handler, 0, LOOPBACK, **kwargs)
    )
    return server


async def start_http(
    nursery: trio.Nursery,
    app: Callable[[trionet.http.Request], Awaitable[trionet.http.Response | None]],
    **kwargs: Any,
) -> trionet.Server:
    """``trionet.http.serve(app)`` on an ephemeral loopback port."""
    kwargs.setdefault("handler_errors", "raise")
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, app, 0, LOOPBACK, **kwargs)
    )
    return server


async def serve_ws_in_memory(
    handler: trionet.websocket.WebSocketHandler,
    listener: MemoryListener,
    *,
    handler_errors: HandlerErrors = "raise",
    task_status: trio.TaskStatus[trionet.Server] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """``trionet.websocket.serve`` itself, with ``options``, on ``listener``:
    only the socket ``http.serve`` would bind is replaced by memory streams,
    so the test may run on ``autojump_clock``."""
    with listening_on(http_serve, listener):
        await trionet.websocket.serve(
            handler, 0, handler_errors=handler_errors, task_status=task_status, **options
        )


async def start_ws_in_memory(
    nursery: trio.Nursery, handler: trionet.websocket.WebSocketHandler, **kwargs: Any
) -> tuple[trionet.Server, MemoryListener]:
    """:func:`serve_ws_in_memory` on a new listener; connect a raw peer with
    ``RawPeer.over(listener.connect_stream())``, trionet's client with
    :func:`memory_connects`."""
    listener = MemoryListener()
    server: trionet.Server = await nursery.start(
        partial(serve_ws_in_memory, handler, listener, **kwargs)
    )
    return server, listener


def memory_connects(monkeypatch: pytest.MonkeyPatch, listener: MemoryListener) -> None:
    """Make ``trionet.websocket.connect`` reach ``listener`` whatever its URL
    says: the one connect call of its handshake gets the client's end of a
    new memory stream pair instead of a socket; the rest of the client (the
    handshake, its timeout, the connection) runs as it is."""

    async def connect_tcp(
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float | None = None,
        close_timeout: float = trionet.DEFAULT_CLOSE_TIMEOUT,
    ) -> trionet.TCPConnection:
        assert ssl_context is None, "memory streams carry no TLS"
        await trio.lowlevel.checkpoint()
        return trionet.TCPConnection(listener.connect_stream(), close_timeout=close_timeout)

    monkeypatch.setattr(ws_client, "connect_tcp", connect_tcp)


@asynccontextmanager
async def memory_raw_listener(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RawListener]:
    """A :class:`RawListener` in memory, which ``connect(MEMORY_URL)`` reaches."""
    listener = MemoryListener()
    memory_connects(monkeypatch, listener)
    try:
        yield RawListener(listener, MEMORY_ADDRESS[1])
    finally:
        await listener.aclose()


def url(server: trionet.Server, target: str = "/") -> str:
    return f"ws://{LOOPBACK}:{server.port}{target}"


async def echo(ws: trionet.websocket.WebSocketConnection) -> None:
    """Send every message back as it came."""
    async for message in ws:
        await ws.send(message.data)


# -- hand-built frames ------------------------------------------------------------------------


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False, masked: bool = True
) -> bytes:
    """One frame's bytes, as a client sends it (masked) unless told otherwise."""
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head.append(bit | size)
    elif size < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", size)
    if masked:
        key = os.urandom(4)
        head += key
        payload = mask(payload, key)
    return bytes(head) + payload


def deflate_zeros(size: int) -> bytes:
    """A permessage-deflate payload (RFC 7692 section 7.2.1) that inflates to
    ``size`` zero bytes (a multiple of 1 MiB), built without ever holding
    them: 1 MiB compressed once, ended with a full flush (byte-aligned, no
    reference behind it), repeated."""
    block = 1 << 20
    assert size % block == 0
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = segment * (size // block)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


# -- a raw client peer ------------------------------------------------------------------------


class RawPeer:
    """A WebSocket client on wsproto over a trio stream (a socket or a memory
    stream), which does only what the test says: it answers no ping and no
    close by itself."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.accepted: AcceptConnection | None = None
        self.rejected: RejectConnection | None = None
        self.reject_body = b""
        self.request: Request | None = None  # the upgrade request, on the server side
        self.eof = False
        self.received_bytes = 0
        self._pending: list[Event] = []

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int, target: str = "/", **options: Any) -> AsyncIterator[RawPeer]:
        """Open TCP to ``port`` on loopback and upgrade it as :meth:`over`
        does, with the same ``options``. The socket is closed on exit."""
        stream = await trio.open_tcp_stream(LOOPBACK, port)
        async with cls.over(stream, target, host=f"{LOOPBACK}:{port}", **options) as peer:
            yield peer

    @classmethod
    @asynccontextmanager
    async def over(
        cls,
        stream: trio.abc.Stream,
        target: str = "/",
        *,
        host: str = "memory.test",
        compression: bool = False,
        subprotocols: Sequence[str] = (),
        headers: Sequence[tuple[bytes, bytes]] = (),
        glued: bytes = b"",
        expect_accept: bool = True,
        extension: PerMessageDeflate | None = None,
    ) -> AsyncIterator[RawPeer]:
        """Send the upgrade request on ``stream`` (with ``glued`` bytes in
        the same write), and read the answer. The stream is closed on exit.
        ``extension`` is the permessage-deflate offer (with its parameters)
        when ``compression`` is on; wsproto's defaults otherwise."""
        try:
            ws = WSConnection(ConnectionType.CLIENT)
            peer = cls(stream, ws)
            request = ws.send(
                Request(
                    host=host,
                    target=target,
                    extensions=[extension or PerMessageDeflate()] if compression else [],
                    subprotocols=list(subprotocols),
                    extra_headers=list(headers),
                )
            )
            await stream.send_all(request + glued)
            with trio.fail_after(HANG_GUARD):
                await peer.read_handshake()
            if expect_accept:
                assert peer.accepted is not None, f"rejected: {peer.rejected}"
                if compression:
                    assert peer.accepted.extensions, "permessage-deflate was not agreed"
            yield peer
        finally:
            await stream.aclose()

    async def read_handshake(self) -> None:
        while self.accepted is None:
            data = await self._receive_some()
            if not data:
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    self.accepted = event
                elif isinstance(event, RejectConnection):
                    self.rejected = event
                    if not event.has_body:
                        return
                elif isinstance(event, RejectData):
                    self.reject_body += event.data
                    if event.body_finished:
                        return
                else:
                    self._pending.append(event)  # frames that came with the 101

    async def _receive_some(self) -> bytes:
        try:
            data = bytes(await self.stream.receive_some(65536))  # a Stream may give a bytearray
        except trio.BrokenResourceError:
            data = b""
        self.received_bytes += len(data)
        if not data:
            self.eof = True
        return data

    async def reset(self) -> None:
        """Drop the connection with a TCP reset (no close frame, no FIN)."""
        assert isinstance(self.stream, trio.SocketStream), "a reset needs a socket"
        self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.stream.aclose()

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def next_event(self) -> Event | None:
        """The next frame event from the server, or ``None`` once the server
        closed the socket. After a close frame the bytes are read and
        dropped (wsproto takes no more)."""
        while not self._pending:
            if self.eof:
                return None
            data = await self._receive_some()
            if not data:
                return None
            if self.ws.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
                self.ws.receive_data(data)
                self._pending.extend(self.ws.events())
        return self._pending.pop(0)

    async def until(
        self, kind: type[Event], guard: float = HANG_GUARD
    ) -> tuple[Event, list[Event]]:
        """Read events until one of type ``kind``; return it and the events
        before it. Fails the test if the server closes the socket first."""
        seen: list[Event] = []
        with trio.fail_after(guard):
            while True:
                event = await self.next_event()
                assert event is not None, f"socket closed before a {kind.__name__}: {seen}"
                if isinstance(event, kind):
                    return event, seen
                seen.append(event)

    async def close_frame(self, guard: float = HANG_GUARD) -> CloseConnection:
        """Read until the other side's close frame and return it."""
        event, _ = await self.until(CloseConnection, guard)
        assert isinstance(event, CloseConnection)
        return event

    async def rest(self, guard: float = HANG_GUARD) -> list[Event]:
        """Every event until the server closes the socket (which must happen
        within ``guard`` seconds of the clock)."""
        seen: list[Event] = []
        with trio.fail_after(guard):
            while (event := await self.next_event()) is not None:
                seen.append(event)
        return seen

    async def messages(self, count: int) -> list[str | bytes]:
        """The data of the next ``count`` whole messages (pings skipped)."""
        out: list[str | bytes] = []
        parts: list[Any] = []
        with trio.fail_after(HANG_GUARD):
            while len(out) < count:
                event = await self.next_event()
                assert event is not None, f"socket closed after {out}"
                if isinstance(event, TextMessage | BytesMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        joined = (
                            "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                        )
                        out.append(joined)
                        parts = []
                elif isinstance(event, CloseConnection):
                    raise AssertionError(f"closed with {event.code} after {out}")
        return out

    async def answer_close(self, event: CloseConnection) -> None:
        """Answer the other side's close frame, as a well-behaved peer does
        (if the socket is still open: after a protocol error it may not be)."""
        try:
            await self.send(event.response())
        except trio.BrokenResourceError:
            pass


class Record:
    """What a server handler saw: its connection, the messages, and how the
    loop ended (``error`` is the ConnectionClosed it raised, if any)."""

    def __init__(self) -> None:
        self.ws: trionet.websocket.WebSocketConnection | None = None
        self.messages: list[Any] = []
        self.error: BaseException | None = None
        self.accepted = trio.Event()
        self.done = trio.Event()

    async def handler(self, ws: trionet.websocket.WebSocketConnection) -> None:
        """Read until the end, recording; a ConnectionClosed is recorded, not raised."""
        self.ws = ws
        self.accepted.set()
        try:
            async for message in ws:
                self.messages.append(message)
        except trionet.websocket.WebSocketClosed as exc:
            self.error = exc
        finally:
            self.done.set()

    async def wait(self, guard: float = HANG_GUARD) -> None:
        with trio.fail_after(guard):
            await self.done.wait()


class RawListener:
    """A listener (on loopback, or in memory) whose connections the test
    answers by hand."""

    def __init__(self, listener: trio.abc.Listener[trio.abc.Stream], port: int) -> None:
        self.listener = listener
        self.port = port

    async def accept_stream(self) -> trio.abc.Stream:
        return await self.listener.accept()

    @asynccontextmanager
    async def accept(
        self, *, compression: bool = False, glued: bytes = b""
    ) -> AsyncIterator[RawPeer]:
        """Accept one connection, read its upgrade request and answer 101
        (with ``glued`` bytes in the same write)."""
        stream = await self.accept_stream()
        try:
            ws = WSConnection(ConnectionType.SERVER)
            peer = RawPeer(stream, ws)
            with trio.fail_after(HANG_GUARD):
                while peer.request is None:
                    data = await peer._receive_some()
                    assert data, "the client closed before its upgrade request"
                    ws.receive_data(data)
                    for event in ws.events():
                        assert isinstance(event, Request), event
                        peer.request = event
            extensions = [PerMessageDeflate()] if compression else []
            await stream.send_all(ws.send(AcceptConnection(extensions=extensions)) + glued)
            yield peer
        finally:
            await stream.aclose()


@asynccontextmanager
async def raw_listener() -> AsyncIterator[RawListener]:
    [listener] = await trio.open_tcp_listeners(0, host=LOOPBACK)
    try:
        yield RawListener(listener, listener.socket.getsockname()[1])
    finally:
        await listener.aclose()


__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "HANG_GUARD",
    "LOOPBACK",
    "MEMORY_URL",
    "PING",
    "PONG",
    "TEXT",
    "BytesMessage",
    "CloseConnection",
    "Ping",
    "Pong",
    "RawListener",
    "RawPeer",
    "Record",
    "TextMessage",
    "deflate_zeros",
    "echo",
    "frame",
    "mask",
    "memory_connects",
    "memory_raw_listener",
    "raw_listener",
    "serve_ws_in_memory",
    "start_http",
    "start_ws",
    "start_ws_in_memory",
    "url",
    "watchdog",
]
