"""The HTTP server under pressure: a graceful shutdown in the middle of
keep-alive traffic answers every request that reached it, and refuses (never
accepts and resets) the connections that come after; at ``max_connections``
the longest-idle keep-alive connection makes room for a new client; a
handler's crash is logged with the request, the peer and the user's handler.

Clients here are raw sockets parsed by h11, so what is counted is what a
client sees on the wire: a response, a clean close (FIN) before any byte of
one, a reset, or a refused connect."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing

import trionet
import trionet.http
from tests._http import LOOPBACK
from trionet.http import Request, Response

# Every test here runs under each request parser (h11, httptools).
pytestmark = pytest.mark.usefixtures("http_parser")

GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"

# Seconds any one of these tests may take on a loaded two-core machine.
TEST_TIMEOUT = 30


async def start(nursery: trio.Nursery, handler: Any, **kwargs: Any) -> trionet.Server:
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, handler, 0, LOOPBACK, **kwargs)
    )
    return server


async def hello(request: Request) -> Response:
    return Response(200, {"content-type": "text/plain"}, b"hello\n")


def blocking_client(port: int) -> socket.socket:
    """A connected stdlib socket: sending on it involves no trio checkpoint,
    so a test can put bytes in the server's socket buffer and act before any
    server task runs."""
    sock = socket.create_connection((LOOPBACK, port))
    sock.settimeout(TEST_TIMEOUT)
    return sock


class Reader:
    """Reads responses off a trio socket with h11 as the client."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def response(self) -> tuple[h11.Response, bytes] | None:
        """The next whole response, or None if the server closed cleanly
        before sending any byte of it. A reset raises BrokenResourceError; a
        response cut short raises h11.RemoteProtocolError."""
        self.h11.send(h11.Request(method="GET", target="/", headers=[("host", "test")]))
        self.h11.send(h11.EndOfMessage())
        head: h11.Response | None = None
        body = bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                if not data and head is None and self.h11.their_state != h11.SEND_BODY:
                    return None
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                if self.h11.our_state is h11.MUST_CLOSE:
                    pass
                else:
                    self.h11.start_next_cycle()
                return head, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None


def header(response: h11.Response, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key == name:
            return bytes(value)
    return None


async def test_request_already_in_the_socket_buffer_is_answered_on_shutdown(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, hello)
    with trio.fail_after(TEST_TIMEOUT), blocking_client(server.port) as sock:
        sock.sendall(GET)
        first = b""
        while not first.endswith(b"hello\n"):
            first += await trio.to_thread.run_sync(sock.recv, 65536)
        # Wait until the server's connection is idle again (its task parked
        # on the socket), then let the next request reach the socket buffer
        # and start the shutdown before the server's task can run.
        await trio.testing.wait_all_tasks_blocked()
        sock.sendall(GET)
        # shutdown() begins before its first schedule point, so before the
        # connection's task wakes up to the request.
        await server.shutdown()
        received = b""
        while chunk := sock.recv(65536):  # all there already: the server is gone
            received += chunk
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "test")]))
    client.send(h11.EndOfMessage())
    client.receive_data(received)
    client.receive_data(b"")
    response = client.next_event()
    assert isinstance(response, h11.Response), received
    assert response.status_code == 200
    assert header(response, b"connection") == b"close"
    assert client.next_event() == h11.Data(data=b"hello\n")


async def test_connections_after_shutdown_began_are_refused_not_reset(
    nursery: trio.Nursery,
) -> None:
    release = trio.Event()
    entered = trio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response(200, body=b"late\n")

    server = await start(nursery, slow)
    with trio.fail_after(TEST_TIMEOUT):
        busy = await trio.open_tcp_stream(LOOPBACK, server.port)
        await busy.send_all(GET)
        await entered.wait()
        async with trio.open_nursery() as inner:
            inner.start_soon(server.shutdown)
            await trio.testing.wait_all_tasks_blocked()
            # The shutdown waits for the busy request; the port is closed.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((LOOPBACK, server.port)).close()
            release.set()
            reader = Reader(busy)
            answer = await reader.response()
            assert answer is not None
            assert answer[1] == b"late\n"
            assert header(answer[0], b"connection") == b"close"
        await busy.aclose()


async def test_connections_queued_in_the_kernel_are_served_on_shutdown(
    nursery: trio.Nursery,
) -> None:
    release = trio.Event()
    entered = trio.Event()

    async def slow(request: Request) -> Response:
        if request.target == "/slow":
            entered.set()
            await release.wait()
        return Response(200, body=b"ok\n")

    server = await start(nursery, slow, backlog=16)
    with trio.fail_after(TEST_TIMEOUT):
        busy = await trio.open_tcp_stream(LOOPBACK, server.port)
        await busy.send_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        await entered.wait()
        # Connected by the kernel and their request sent, but not accepted
        # yet: no server task runs between these lines and the shutdown.
        queued = [blocking_client(server.port) for _ in range(5)]
        for sock in queued:
            sock.sendall(GET)

        async def read_queued() -> None:
            for sock in queued:
                received = b""
                while chunk := await trio.to_thread.run_sync(sock.recv, 65536):
                    received += chunk
                sock.close()
                assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received
                assert b"connection: close\r\n" in received.lower()
                assert received.endswith(b"ok\n")
            release.set()

        async with trio.open_nursery() as inner:
            inner.start_soon(read_queued)
            # Begins (taking the queued connections, closing the port) before
            # the accept loop can run again.
            await server.shutdown()
        await busy.aclose()


@dataclass
class Tally:
    responses: int = 0
    retried: int = 0  # a reused connection closed cleanly before any byte: retried
    refused: int = 0  # a new connection refused: the listener was closed
    failures: list[str] | None = None

    def fail(self, what: str) -> None:
        if self.failures is None:
            self.failures = []
        self.failures.append(what)


async def keepalive_client(
    port: int, tally: Tally, enough: trio.Event, on_response: Callable[[], None]
) -> None:
    """Requests over one keep-alive connection after another until the
    server refuses to connect. A reused connection that the server closes
    cleanly before answering is retried on a new one, as RFC 9112 section
    9.3.1 lets a client do for an idempotent request; every other way of
    ending without a response is a failure."""
    while True:
        try:
            stream = await trio.open_tcp_stream(LOOPBACK, port)
        except OSError:
            tally.refused += 1
            return
        reader = Reader(stream)
        reused = False
        try:
            while True:
                try:
                    await stream.send_all(GET)
                    answer = await reader.response()
                except (trio.BrokenResourceError, h11.RemoteProtocolError) as exc:
                    tally.fail(f"{type(exc).__name__}: {exc} (reused={reused})")
                    return
                if answer is None:
                    if not reused:
                        tally.fail("a new connection closed without answering its request")
                        return
                    tally.retried += 1
                    break
                tally.responses += 1
                on_response()
                if header(answer[0], b"connection") == b"close":
                    break
                reused = True
        finally:
            await stream.aclose()


@pytest.mark.parametrize("round_", range(3))
async def test_shutdown_under_keepalive_load_answers_every_request(
    nursery: trio.Nursery, round_: int
) -> None:
    clients = 50
    server = await start(nursery, hello, keepalive_timeout=30)
    tally = Tally()
    enough = trio.Event()

    def counted() -> None:
        if tally.responses >= 500:
            enough.set()

    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as load:
            for _ in range(clients):
                load.start_soon(keepalive_client, server.port, tally, enough, counted)
            await enough.wait()
            await server.shutdown()
    assert tally.failures is None, tally.failures
    assert tally.responses >= 500
    assert tally.refused == clients  # every client ended on a closed port


# -- max_connections: make room by closing the longest-idle connection ------------


async def test_idle_keepalive_connections_make_room_at_the_cap(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(nursery, hello, max_connections=3)
    with trio.fail_after(TEST_TIMEOUT):
        idle = []
        for _ in range(3):
            stream = await trio.open_tcp_stream(LOOPBACK, server.port)
            reader = Reader(stream)
            await stream.send_all(GET)
            assert await reader.response() is not None
            idle.append(reader)
            await trio.testing.wait_all_tasks_blocked()
        # The fourth is served: the oldest idle connection made room.
        fresh = await trio.open_tcp_stream(LOOPBACK, server.port)
        await fresh.send_all(GET)
        answer = await Reader(fresh).response()
        assert answer is not None
        assert answer[1] == b"hello\n"
        # The oldest was closed cleanly (FIN), the other two still serve.
        assert await idle[0].stream.receive_some(100) == b""
        for reader in idle[1:]:
            await reader.stream.send_all(GET)
            assert await reader.response() is not None
        stats = server.statistics()
        assert stats.evicted_idle == 1
        assert stats.dropped == 0
        for reader in idle:
            await reader.stream.aclose()
        await fresh.aclose()
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "max_connections=3 reached" in record.getMessage()
    assert "closed 1 idle connection" in record.getMessage()


async def test_busy_connections_at_the_cap_drop_the_new_one_and_warn_once(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    release = trio.Event()
    started = 0

    async def slow(request: Request) -> Response:
        nonlocal started
        started += 1
        await release.wait()
        return Response(200, body=b"done\n")

    server = await start(nursery, slow, max_connections=2)
    with trio.fail_after(TEST_TIMEOUT):
        busy = []
        for _ in range(2):
            stream = await trio.open_tcp_stream(LOOPBACK, server.port)
            await stream.send_all(GET)
            busy.append(stream)
        await trio.testing.wait_all_tasks_blocked()
        assert started == 2
        for _ in range(5):
            extra = await trio.open_tcp_stream(LOOPBACK, server.port)
            await extra.send_all(GET)
            # Dropped: closed at once with the request unread (a reset), or
            # a clean end of file; never an answer.
            try:
                assert await extra.receive_some(100) == b""
            except trio.BrokenResourceError:
                pass
            await extra.aclose()
        release.set()
        for stream in busy:
            assert await Reader(stream).response() is not None
            await stream.aclose()
    stats = server.statistics()
    assert stats.dropped == 5
    assert stats.evicted_idle == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "dropped 1 new one" in warnings[0].getMessage()


# -- what a handler's crash log says ----------------------------------------------


async def crashing_handler(request: Request) -> Response:
    raise RuntimeError("boom")


async def test_handler_crash_record_names_request_peer_and_handler(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(nursery, crashing_handler)
    with trio.fail_after(TEST_TIMEOUT):
        stream = await trio.open_tcp_stream(LOOPBACK, server.port)
        await stream.send_all(
            b"POST /orders?id=7 HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
        )
        answer = await Reader(stream).response()
        assert answer is not None
        assert answer[0].status_code == 500
        local = stream.socket.getsockname()
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()  # the handler's task has logged
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "test_http_shutdown.crashing_handler" in message
    assert "_serve_connection" not in message
    assert "method=POST" in message
    assert "target=/orders?id=7" in message
    assert f"peer=127.0.0.1:{local[1]}" in message
    assert record.handler == "tests.test_http_shutdown.crashing_handler"  # type: ignore[attr-defined]
    assert record.method == "POST"  # type: ignore[attr-defined]
    assert record.target == "/orders?id=7"  # type: ignore[attr-defined]
    assert record.http_version == "1.1"  # type: ignore[attr-defined]
    assert record.peer == f"127.0.0.1:{local[1]}"  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def crashing_tcp_handler(conn: trionet.TCPConnection) -> None:
    raise RuntimeError("tcp boom")


async def test_tcp_handler_crash_record_names_peer_and_handler(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = await nursery.start(trionet.serve_tcp, crashing_tcp_handler, 0, LOOPBACK)
    with trio.fail_after(TEST_TIMEOUT):
        stream = await trio.open_tcp_stream(LOOPBACK, server.port)
        local = stream.socket.getsockname()
        assert await stream.receive_some(100) == b""
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()  # the handler's task has logged
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "test_http_shutdown.crashing_tcp_handler" in record.getMessage()
    assert record.peer == f"127.0.0.1:{local[1]}"  # type: ignore[attr-defined]


async def crashing_ws_handler(ws: Any) -> None:
    raise RuntimeError("ws boom")


async def test_websocket_handler_crash_record_names_path_peer_and_handler(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    import trionet.websocket

    server = await nursery.start(partial(trionet.websocket.serve, crashing_ws_handler, 0, LOOPBACK))
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(trionet.websocket.WebSocketClosed) as closed:
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{server.port}/feed") as ws:
                await ws.receive()
        assert closed.value.code == 1011
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "test_http_shutdown.crashing_ws_handler" in record.getMessage()
    assert record.target == "/feed"  # type: ignore[attr-defined]
    assert record.peer.startswith("127.0.0.1:")  # type: ignore[attr-defined]
