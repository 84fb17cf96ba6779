"""One test per row of the "Node ``net`` → trionet" table in the docs: each
shows that the trionet spelling does what the Node one does. The docs link
these tests by name, so keep the names."""

from __future__ import annotations

import errno
import socket
import struct
from functools import partial

import pytest
import trio
import trio.testing

import trionet
from tests._net import receive_all
from trionet.testing import memory_tcp_pair

# A guard for tests on real sockets: a broken server fails the test instead of
# hanging it. Loopback work here takes milliseconds.
DEADLINE = 10.0


async def start_server(nursery: trio.Nursery, handler) -> trionet.Server:
    """A server on a free loopback port; a handler's exception fails the test."""
    server: trionet.Server = await nursery.start(
        partial(trionet.serve_tcp, handler, 0, "127.0.0.1", handler_errors="raise")
    )
    return server


# server.listen(port, cb) → server = await nursery.start(serve_tcp, handler, port)
async def test_server_listening(nursery: trio.Nursery) -> None:
    async def greet(conn: trionet.TCPConnection) -> None:
        await conn.send(b"hi")

    server = await start_server(nursery, greet)
    assert server.port != 0
    assert server.addresses == [("127.0.0.1", server.port)]
    with trio.fail_after(DEADLINE):
        # Right away, no retry: start() returned, so the server listens.
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            assert await receive_all(conn) == b"hi"


# server.on('connection', socket => ...) → the handler, called with a TCPConnection
async def test_server_connection(nursery: trio.Nursery) -> None:
    seen: list[trionet.TCPConnection] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        seen.append(conn)
        await conn.send(str(len(seen)).encode())

    server = await start_server(nursery, handler)
    with trio.fail_after(DEADLINE):
        clients = [await trionet.connect_tcp("127.0.0.1", server.port) for _ in range(3)]
        try:
            answers = {await receive_all(client) for client in clients}
        finally:
            for client in clients:
                await client.aclose()
    assert answers == {b"1", b"2", b"3"}
    assert all(isinstance(conn, trionet.TCPConnection) for conn in seen)
    assert len({id(conn) for conn in seen}) == 3
    assert {conn.remote_address for conn in seen} == {c.local_address for c in clients}


# server.close() → await server.shutdown()
async def test_server_close(nursery: trio.Nursery) -> None:
    serving_ended = trio.Event()
    handler_loop_ended = trio.Event()

    async def handler(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            pass
        handler_loop_ended.set()

    async def serve(*, task_status: trio.TaskStatus[trionet.Server]) -> None:
        await trionet.serve_tcp(handler, 0, "127.0.0.1", task_status=task_status)
        serving_ended.set()

    server: trionet.Server = await nursery.start(serve)
    port = server.port
    with trio.fail_after(DEADLINE):
        async with await trionet.connect_tcp("127.0.0.1", port) as idle_client:
            await trio.testing.wait_all_tasks_blocked()
            await server.shutdown(grace=DEADLINE)
            assert serving_ended.is_set()
            assert handler_loop_ended.is_set()
            # The open connection was closed: the client sees its end.
            assert await receive_all(idle_client) == b""
        with pytest.raises(trionet.ConnectError) as excinfo:
            await trionet.connect_tcp("127.0.0.1", port)
    assert excinfo.value.errno == errno.ECONNREFUSED
    assert server.statistics().active == 0


# server.on('error') (EADDRINUSE) → nursery.start raises BindError
async def test_server_error(nursery: trio.Nursery) -> None:
    async def handler(conn: trionet.TCPConnection) -> None:
        raise AssertionError("no connection expected")

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(trionet.BindError) as excinfo:
            await nursery.start(trionet.serve_tcp, handler, port, "127.0.0.1")
    assert excinfo.value.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{port}" in str(excinfo.value)


# socket.on('data', ...) → case trionet.Data(data)
async def test_socket_data(nursery: trio.Nursery) -> None:
    received: list[bytes] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            match event:
                case trionet.Data(data):
                    received.append(data)
                    await conn.send(data.upper())

    server = await start_server(nursery, handler)
    with trio.fail_after(DEADLINE):
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            await conn.send(b"hello")
            event = await anext(aiter(conn))
    assert isinstance(event, trionet.Data)
    assert event.data == b"HELLO"
    assert received == [b"hello"]


# socket.on('end', ...) → case trionet.EndOfStream(), then the loop ends
async def test_socket_end(nursery: trio.Nursery) -> None:
    events: list[trionet.StreamEvent] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            events.append(event)
        # After the loop ended, our side is still open (a half-open socket).
        await conn.send(b"bye")

    server = await start_server(nursery, handler)
    with trio.fail_after(DEADLINE):
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            await conn.send(b"last words")
            await conn.send_eof()
            assert await receive_all(conn) == b"bye"
    assert events[-1] == trionet.EndOfStream()
    assert b"".join(e.data for e in events[:-1] if isinstance(e, trionet.Data)) == b"last words"


# net.connect(port, host, cb) → conn = await trionet.connect_tcp(host, port)
async def test_socket_connect(nursery: trio.Nursery) -> None:
    server_side: list[trionet.TCPConnection] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        server_side.append(conn)
        await receive_all(conn)

    server = await start_server(nursery, handler)
    with trio.fail_after(DEADLINE):
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            assert isinstance(conn, trionet.TCPConnection)
            assert conn.remote_address == ("127.0.0.1", server.port)
            host, port = conn.local_address
            assert host == "127.0.0.1"
            assert port not in (0, server.port)
            await conn.send(b"x")  # connected: data goes through
            await conn.send_eof()
            await receive_all(conn)
    assert [c.remote_address for c in server_side] == [conn.local_address]


# socket.write(...) returning false, then 'drain' → await conn.send(...) blocks, then returns
async def test_socket_drain(nursery: trio.Nursery) -> None:
    size = 16 << 20  # far beyond what the kernel buffers on loopback
    start_reading = trio.Event()
    reader_done = trio.Event()
    received: list[int] = []

    async def slow_reader(conn: trionet.TCPConnection) -> None:
        await start_reading.wait()
        total = 0
        async for event in conn:
            if isinstance(event, trionet.Data):
                total += len(event.data)
        received.append(total)
        reader_done.set()

    server = await start_server(nursery, slow_reader)
    sent = trio.Event()
    with trio.fail_after(DEADLINE):
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:

            async def send_all() -> None:
                await conn.send(bytes(size))
                sent.set()

            nursery.start_soon(send_all)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert not sent.is_set(), "send() returned although the peer reads nothing"
            assert received == []
            start_reading.set()
            await sent.wait()
            await conn.send_eof()
            await reader_done.wait()
    assert received == [size]
    assert conn.statistics().bytes_sent == size


# socket.on('error') (ECONNRESET) → the loop raises trionet.ConnectionReset
async def test_socket_error(nursery: trio.Nursery) -> None:
    async def reset_on_data(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            # SO_LINGER (on, 0 s): close() sends a TCP RST instead of a FIN.
            stream = conn.stream
            assert isinstance(stream, trio.SocketStream)
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await conn.aclose()
            return

    server = await start_server(nursery, reset_on_data)
    with trio.fail_after(DEADLINE):
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            await conn.send(b"reset me")
            with pytest.raises(trionet.ConnectionReset) as excinfo:
                await receive_all(conn)
            assert isinstance(excinfo.value, trionet.ConnectionClosed)
            assert not isinstance(excinfo.value, OSError)
            with pytest.raises(trionet.ConnectionReset):
                await conn.send(b"into the void")

    # A refused connect is an error of connect_tcp itself: ConnectError.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        with trio.fail_after(DEADLINE), pytest.raises(trionet.ConnectError) as refused:
            await trionet.connect_tcp("127.0.0.1", port)
    assert refused.value.errno == errno.ECONNREFUSED
    assert f"127.0.0.1:{port}" in str(refused.value)


# socket.destroy() / socket.end() → await conn.aclose()
async def test_socket_close(nursery: trio.Nursery) -> None:
    peer_events: list[trionet.StreamEvent] = []
    peer_done = trio.Event()

    async def handler(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            peer_events.append(event)
        peer_done.set()

    server = await start_server(nursery, handler)
    with trio.fail_after(DEADLINE):
        conn = await trionet.connect_tcp("127.0.0.1", server.port)
        await conn.send(b"x")
        await conn.aclose()
        await conn.aclose()  # idempotent
        await peer_done.wait()
    assert peer_events[-1] == trionet.EndOfStream()
    with pytest.raises(trio.ClosedResourceError):
        await conn.send(b"y")
    with pytest.raises(trio.ClosedResourceError):
        await anext(aiter(conn))


# socket.setTimeout(ms) + socket.on('timeout') → conn.set_timeout(s) + case trionet.Timeout()
async def test_socket_timeout(autojump_clock: trio.testing.MockClock) -> None:
    client, server = memory_tcp_pair()
    server.set_timeout(5)
    events = aiter(server)
    # Virtual time (autojump_clock): a missing Timeout fails here, not hangs.
    with trio.fail_after(60):
        start = trio.current_time()
        assert await anext(events) == trionet.Timeout()
        assert trio.current_time() - start == pytest.approx(5)
        # Nothing was closed: the connection still works both ways.
        await client.send(b"ping")
        assert await anext(events) == trionet.Data(b"ping")
        await server.send(b"pong")
        assert await anext(aiter(client)) == trionet.Data(b"pong")
        # The idle time counts again from the last activity.
        last_activity = trio.current_time()
        assert await anext(events) == trionet.Timeout()
        assert trio.current_time() - last_activity == pytest.approx(5)
        server.set_timeout(None)
        await client.send_eof()
        assert await anext(events) == trionet.EndOfStream()
    await client.aclose()
    await server.aclose()
