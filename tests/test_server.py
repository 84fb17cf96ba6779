"""The shared server core, through serve_tcp: supervision, limits, shutdown."""

from __future__ import annotations

import errno
import logging
import socket
import struct
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import trionet
import trionet.http
import trionet.websocket
from tests._memory_server import MemoryListener, memory_tcp_server, serve_in_memory
from tests._net import ipv6_loopback_available, receive_exactly
from tests._wait import wait_until
from trionet.testing import TLSCertificates

LOOPBACK = "127.0.0.1"


async def idle_until_shutdown(conn: trionet.TCPConnection) -> None:
    async for _ in conn:
        pass


async def echo(conn: trionet.TCPConnection) -> None:
    async for event in conn:
        if isinstance(event, trionet.Data):
            await conn.send(event.data)


async def until_closed(conn: trionet.TCPConnection) -> list[trionet.StreamEvent]:
    """Collect events until the loop ends; a reset counts as the end too."""
    events: list[trionet.StreamEvent] = []
    try:
        async for event in conn:
            events.append(event)
    except trionet.ConnectionReset:
        events.append(trionet.EndOfStream())
    return events


async def test_start_returns_listening_server_on_chosen_port(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    assert server.port != 0
    assert server.addresses == [(LOOPBACK, server.port)]
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await conn.send(b"ping")
        assert await receive_exactly(conn, 4) == b"ping"


async def test_address_in_use_names_the_address(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    with pytest.raises(trionet.BindError) as info:
        await nursery.start(trionet.serve_tcp, echo, server.port, LOOPBACK)
    assert info.value.errno == errno.EADDRINUSE
    assert f"{LOOPBACK}:{server.port}" in str(info.value)
    assert "in use" in str(info.value)


needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="no IPv6 loopback on this machine"
)


@needs_ipv6
async def test_ipv6_loopback(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, "::1")
    assert server.addresses[0][0] == "::1"
    async with await trionet.connect_tcp("::1", server.port) as conn:
        assert conn.remote_address[:2] == ("::1", server.port)
        await conn.send(b"six")
        assert await receive_exactly(conn, 3) == b"six"


@needs_ipv6
async def test_dual_stack_listens_on_both_families_with_one_port(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, None)
    families = {len(address) for address in server.addresses}
    assert families == {2, 4}  # an IPv4 and an IPv6 socket
    assert {address[1] for address in server.addresses} == {server.port}
    for host in (LOOPBACK, "::1"):
        async with await trionet.connect_tcp(host, server.port) as conn:
            await conn.send(b"x")
            assert await receive_exactly(conn, 1) == b"x"


async def test_handler_crash_is_logged_counted_and_isolated(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def fragile(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            if isinstance(event, trionet.Data):
                if event.data == b"boom":
                    raise RuntimeError("handler bug")
                await conn.send(event.data)

    server = await nursery.start(trionet.serve_tcp, fragile, 0, LOOPBACK)
    with caplog.at_level(logging.ERROR, logger="trionet.tcp"):
        async with await trionet.connect_tcp(LOOPBACK, server.port) as victim:
            await victim.send(b"boom")
            assert await until_closed(victim) == [trionet.EndOfStream()]
    assert server.statistics().handler_errors == 1
    [record] = [r for r in caplog.records if r.name == "trionet.tcp"]
    assert record.exc_info is not None
    assert "handler bug" in str(record.exc_info[1])
    # The server keeps serving.
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await conn.send(b"still here")
        assert await receive_exactly(conn, 10) == b"still here"


async def test_handler_errors_raise_propagates_the_exception_itself() -> None:
    async def fragile(conn: trionet.TCPConnection) -> None:
        raise KeyError("bug")

    # Only the test's own nursery wraps it: serve_tcp raised the KeyError itself.
    with pytest.RaisesGroup(pytest.RaisesExc(KeyError, match="bug")):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trionet.serve_tcp, fragile, 0, LOOPBACK, handler_errors="raise")
            )
            async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
                await until_closed(conn)
            await trio.sleep_forever()


async def test_peer_reset_is_a_connection_error_not_a_handler_error(
    nursery: trio.Nursery,
) -> None:
    finished = trio.Event()

    async def writer(conn: trionet.TCPConnection) -> None:
        try:
            async for _ in conn:
                pass
        finally:
            finished.set()

    server = await nursery.start(
        partial(trionet.serve_tcp, writer, 0, LOOPBACK, handler_errors="raise")
    )
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await conn.aclose()  # RST
    await finished.wait()
    await wait_until(lambda: server.statistics().active == 0)
    stats = server.statistics()
    assert (stats.connection_errors, stats.handler_errors) == (1, 0)


async def test_cancellation_is_not_swallowed() -> None:
    started = trio.Event()

    async def waits(conn: trionet.TCPConnection) -> None:
        started.set()
        await trio.sleep_forever()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(trionet.serve_tcp, waits, 0, LOOPBACK)
            conn = await trionet.connect_tcp(LOOPBACK, server.port)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert server.statistics().handler_errors == 0
    assert server.statistics().active == 0
    # The hard stop closed the connection.
    assert await until_closed(conn) == [trionet.EndOfStream()]
    await conn.aclose()


async def test_max_connections_drops_the_excess(nursery: trio.Nursery) -> None:
    server = await nursery.start(partial(trionet.serve_tcp, echo, 0, LOOPBACK, max_connections=2))
    kept = [await trionet.connect_tcp(LOOPBACK, server.port) for _ in range(2)]
    for conn in kept:  # make sure both are being served
        await conn.send(b"k")
        assert await receive_exactly(conn, 1) == b"k"
    extra = await trionet.connect_tcp(LOOPBACK, server.port)
    assert await until_closed(extra) == [trionet.EndOfStream()]
    stats = server.statistics()
    assert (stats.active, stats.accepted, stats.dropped) == (2, 3, 1)
    await extra.aclose()
    await kept[0].aclose()
    await wait_until(lambda: server.statistics().active <= 1)
    # A slot is free again.
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await conn.send(b"again")
        assert await receive_exactly(conn, 5) == b"again"
    await kept[1].aclose()


async def test_statistics_count_connections_and_bytes(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await conn.send(b"12345")
        assert await receive_exactly(conn, 5) == b"12345"
        # The echo's send() may return after we got the bytes.
        await wait_until(lambda: server.statistics().bytes_sent == 5)
        stats = server.statistics()
        assert (stats.active, stats.accepted, stats.bytes_received, stats.bytes_sent) == (
            1,
            1,
            5,
            5,
        )
        assert conn.statistics() == trionet.ConnectionStatistics(5, 5)
    await wait_until(lambda: server.statistics().active == 0)
    stats = server.statistics()
    assert (stats.bytes_received, stats.bytes_sent) == (5, 5)  # kept after close


async def test_shutdown_with_idle_client_ends_at_once(nursery: trio.Nursery) -> None:
    handler_done = trio.Event()
    said_goodbye = []

    async def polite(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            pass
        said_goodbye.append(conn.shutdown_requested)
        await conn.send(b"bye")  # last words after the loop ended
        handler_done.set()

    server = await nursery.start(trionet.serve_tcp, polite, 0, LOOPBACK)
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    await wait_until(lambda: server.statistics().active == 1)
    with trio.fail_after(5):  # far less than the grace: the handler returns
        await server.shutdown(grace=60)
    assert handler_done.is_set()
    assert said_goodbye == [True]
    assert server.statistics().active == 0
    events = await until_closed(conn)
    assert events[0] == trionet.Data(b"bye")
    await conn.aclose()
    # Nothing listens any more.
    with pytest.raises(trionet.ConnectError):
        await trionet.connect_tcp(LOOPBACK, server.port)


async def test_shutdown_with_client_mid_transfer(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    received = 0
    transferring = trio.Event()

    async def keep_sending() -> None:
        try:
            while True:
                await conn.send(b"x" * 4096)
        except trionet.ConnectionClosed:
            pass

    async def keep_reading() -> None:
        nonlocal received
        try:
            async for event in conn:
                if isinstance(event, trionet.Data):
                    received += len(event.data)
                    if received > 100_000:
                        transferring.set()
        except trionet.ConnectionClosed:
            pass

    async with trio.open_nursery() as client:
        client.start_soon(keep_sending)
        client.start_soon(keep_reading)
        await transferring.wait()
        with trio.fail_after(5):  # far less than the grace
            await server.shutdown(grace=60)
        assert server.statistics().active == 0
        client.cancel_scope.cancel()
    await conn.aclose()


async def test_shutdown_cancels_a_handler_that_ignores_it_when_grace_runs_out(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    cancelled = trio.Event()

    async def stubborn(conn: trionet.TCPConnection) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with memory_tcp_server(stubborn) as (server, listener):
        conn = listener.connect()
        await wait_until(lambda: server.statistics().active == 1)
        before = trio.current_time()
        await server.shutdown(grace=30)
        assert trio.current_time() - before == pytest.approx(30, abs=0.1)
        assert cancelled.is_set()
        assert server.statistics().active == 0
        await conn.aclose()


async def test_shutdown_called_twice_and_after_the_end(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, idle_until_shutdown, 0, LOOPBACK)
    async with trio.open_nursery() as inner:
        inner.start_soon(server.shutdown, 1)
        inner.start_soon(server.shutdown, 1)
    await server.shutdown()
    with pytest.raises(ValueError, match="grace"):
        await server.shutdown(-1)


async def test_handler_may_shut_its_own_server_down(nursery: trio.Nursery) -> None:
    async def stopper(conn: trionet.TCPConnection) -> None:
        await conn.send(b"stopping")
        await server.shutdown(grace=60)

    server = await nursery.start(trionet.serve_tcp, stopper, 0, LOOPBACK)
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        with trio.fail_after(5):
            events = await until_closed(conn)
    assert events[0] == trionet.Data(b"stopping")


async def test_bad_options_are_rejected_before_binding() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        await trionet.serve_tcp(echo, 0, LOOPBACK, max_connections=0)
    with pytest.raises(ValueError, match="handler_errors"):
        await trionet.serve_tcp(echo, 0, LOOPBACK, handler_errors="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tls_handshake_timeout"):
        await trionet.serve_tcp(echo, 0, LOOPBACK, tls_handshake_timeout=0)
    with pytest.raises(ValueError, match="close_timeout"):
        await trionet.serve_tcp(echo, 0, LOOPBACK, close_timeout=float("nan"))
    with pytest.raises(ValueError, match="close_timeout"):
        await trionet.http.serve(echo, 0, LOOPBACK, close_timeout=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        await trionet.serve_tcp(echo, 70000, LOOPBACK)


async def test_concurrent_shutdowns_both_end_when_the_handlers_do(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow_goodbye(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            pass
        await trio.sleep(1)  # finishing takes a moment, far less than the grace

    async with memory_tcp_server(slow_goodbye) as (server, listener):
        conns = [listener.connect() for _ in range(2)]
        await wait_until(lambda: server.statistics().active == 2)
        returned: list[float] = []
        start = trio.current_time()

        async def stop() -> None:
            await server.shutdown(grace=60)
            returned.append(trio.current_time() - start)

        async with trio.open_nursery() as callers:
            callers.start_soon(stop)
            callers.start_soon(stop)
        assert returned == [pytest.approx(1, abs=0.5)] * 2
        for conn in conns:
            await conn.aclose()


async def test_peer_errors_inside_a_handler_nursery_are_connection_errors(
    nursery: trio.Nursery,
) -> None:
    async def two_tasks(conn: trionet.TCPConnection) -> None:
        async def read() -> None:
            async for _ in conn:
                pass

        async with trio.open_nursery() as inner:
            inner.start_soon(read)

    server = await nursery.start(
        partial(trionet.serve_tcp, two_tasks, 0, LOOPBACK, handler_errors="raise")
    )
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    await wait_until(lambda: server.statistics().active == 1)
    conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await conn.aclose()  # RST: the inner task raises ConnectionReset, in a group
    await wait_until(lambda: server.statistics().active == 0)
    stats = server.statistics()
    assert (stats.connection_errors, stats.handler_errors) == (1, 0)


@pytest.mark.parametrize("caller", ["two handlers", "a handler's child task"])
async def test_shutdown_from_handlers_does_not_wait_for_them(
    autojump_clock: trio.testing.MockClock, caller: str
) -> None:
    box: list[trionet.Server] = []
    arrived = trio.Event()
    count = 0

    async def handler(conn: trionet.TCPConnection) -> None:
        nonlocal count
        count += 1
        if caller == "two handlers":
            if count == 2:
                arrived.set()
            await arrived.wait()
            await box[0].shutdown(grace=60)
        else:
            async with trio.open_nursery() as own:
                own.start_soon(box[0].shutdown, 60)

    clients = 2 if caller == "two handlers" else 1
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        box.append(await nursery.start(serve_in_memory, handler, listener))
        conns = [listener.connect() for _ in range(clients)]
        start = trio.current_time()
    assert trio.current_time() - start < 60  # virtual time: the grace was not spent
    for conn in conns:
        await conn.aclose()


async def test_a_handler_that_gives_up_its_shutdown_gets_the_next_ones_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished_work = []
    arrivals = 0
    worker_here = trio.Event()

    async def handler(conn: trionet.TCPConnection) -> None:
        nonlocal arrivals
        arrivals += 1
        if arrivals == 2:  # a worker, busy for 2 s
            worker_here.set()
            await trio.sleep(2)
            return
        await worker_here.wait()
        with trio.move_on_after(1):
            await box[0].shutdown(grace=100)  # waits for the worker, gives up after 1 s...
        await trio.sleep(3)  # ...and goes on working until 4 s
        finished_work.append(True)

    box: list[trionet.Server] = []
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        box.append(await nursery.start(serve_in_memory, handler, listener))
        conns = [listener.connect()]
        await wait_until(lambda: box[0].statistics().active == 1)
        conns.append(listener.connect())
        await wait_until(lambda: box[0].statistics().active == 2)
        await trio.sleep(1.5)
        # Waits for both handlers: the first is no longer inside a shutdown.
        await box[0].shutdown(grace=10)
    assert finished_work == [True]
    for conn in conns:
        await conn.aclose()


async def test_a_tls_handler_that_shuts_down_closes_its_connection_gracefully(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    async def quitter(conn: trionet.TCPConnection) -> None:
        await conn.send(b"quitting")
        await box[0].shutdown(grace=60)

    box: list[trionet.Server] = []
    box.append(
        await nursery.start(
            partial(trionet.serve_tcp, quitter, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
        )
    )
    conn = await trionet.connect_tcp(
        LOOPBACK,
        box[0].port,
        ssl_context=trionet_tls.client_context,
        server_hostname=trionet_tls.hostname,
    )
    async with conn:
        # close_notify arrives: a clean end, not a TLSError.
        assert [event async for event in conn] == [trionet.Data(b"quitting"), trionet.EndOfStream()]


async def test_a_second_handler_error_under_raise_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    both = trio.Event()
    arrived = 0
    conns: list[trionet.TCPConnection] = []

    async def fragile(conn: trionet.TCPConnection) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()  # and raise at once: the other one is already woken
        else:
            await both.wait()
        raise ValueError(f"bug {id(conn)}")

    with (
        caplog.at_level(logging.ERROR, logger="trionet.tcp"),
        pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="bug")),
    ):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trionet.serve_tcp, fragile, 0, LOOPBACK, handler_errors="raise")
            )
            conns.append(await trionet.connect_tcp(LOOPBACK, server.port))
            await wait_until(lambda: server.statistics().active == 1)
            conns.append(await trionet.connect_tcp(LOOPBACK, server.port))
            await trio.sleep_forever()
    assert server.statistics().handler_errors == 2
    [record] = [r for r in caplog.records if r.name == "trionet.tcp"]
    assert record.exc_info is not None
    assert "bug" in str(record.exc_info[1])
    for conn in conns:
        await conn.aclose()


# -- sockets bound by the caller -------------------------------------------------


def bound_socket(family: int = socket.AF_INET, address: object = (LOOPBACK, 0)) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(16)
    return sock


async def test_every_stream_server_serves_a_socket_the_caller_bound(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def hello(conn: trionet.TCPConnection) -> None:
        await conn.send(b"hello")

    async def hello_http(request: trionet.http.Request) -> trionet.http.Response:
        return trionet.http.Response(200, body=b"hello")

    async def hello_ws(ws: trionet.websocket.WebSocketConnection) -> None:
        await ws.send("hello")

    tcp_sock, http_sock, ws_sock = bound_socket(), bound_socket(), bound_socket()
    unix_sock = bound_socket(socket.AF_UNIX, str(tmp_path / "s"))
    ports = [sock.getsockname()[1] for sock in (tcp_sock, http_sock, ws_sock)]
    # port 0 and no host: the sockets are served as they are.
    tcp = await nursery.start(partial(trionet.serve_tcp, hello, 0, sockets=[tcp_sock]))
    web = await nursery.start(partial(trionet.http.serve, hello_http, 0, sockets=[http_sock]))
    ws = await nursery.start(partial(trionet.websocket.serve, hello_ws, 0, sockets=[ws_sock]))
    unix = await nursery.start(
        partial(trionet.serve_unix, hello, tmp_path / "unused", sockets=[unix_sock])
    )
    assert [tcp.port, web.port, ws.port] == ports
    assert unix.addresses == [str(tmp_path / "s")]
    async with await trionet.connect_tcp(LOOPBACK, tcp.port) as conn:
        assert await receive_exactly(conn, 5) == b"hello"
    async with await trionet.connect_unix(tmp_path / "s") as conn:
        assert await receive_exactly(conn, 5) == b"hello"
    async with trionet.http.Client() as client:
        response = await client.get(f"http://127.0.0.1:{web.port}/")
        assert await response.read() == b"hello"
    async with trionet.websocket.connect(f"ws://127.0.0.1:{ws.port}/") as conn:
        assert (await conn.receive()).data == "hello"


async def test_a_socket_that_does_not_listen_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        with pytest.raises(ValueError, match="listening"):
            await trionet.serve_tcp(lambda conn: conn.aclose(), 0, sockets=[sock])
