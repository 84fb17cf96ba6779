"""TCPConnection over sockets, TLS, Unix sockets and memory streams."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import trionet
from tests._memory_server import memory_tcp_server
from tests._net import receive_all
from tests._wait import wait_until
from trionet.testing import TLSCertificates, memory_tcp_pair

LOOPBACK = "127.0.0.1"


async def echo(conn: trionet.TCPConnection) -> None:
    async for event in conn:
        if isinstance(event, trionet.Data):
            await conn.send(event.data)


async def connect_tls(server: trionet.Server, tls: TLSCertificates) -> trionet.TCPConnection:
    return await trionet.connect_tcp(
        LOOPBACK, server.port, ssl_context=tls.client_context, server_hostname=tls.hostname
    )


# -- the in-memory pair ---------------------------------------------------


async def test_memory_pair_events_and_half_close() -> None:
    client, server = memory_tcp_pair()
    await client.send("héllo")
    await client.send_eof()
    events = [event async for event in server]
    assert events == [trionet.Data("héllo".encode()), trionet.EndOfStream()]
    # The loop ended, but the server can still send.
    await server.send(b"after end")
    await server.aclose()
    assert await receive_all(client) == b"after end"
    await client.aclose()


async def test_send_accepts_bytes_like_and_rejects_the_rest() -> None:
    client, server = memory_tcp_pair()
    async with client, server:
        await client.send(bytearray(b"ab"))
        await client.send(memoryview(b"cd"))
        await client.send("ef")
        with pytest.raises(TypeError, match="int"):
            await client.send(42)  # type: ignore[arg-type]
        await client.send_eof()
        assert await receive_all(server) == b"abcdef"
        assert client.statistics() == trionet.ConnectionStatistics(0, 6)
        assert server.statistics() == trionet.ConnectionStatistics(6, 0)


async def test_events_are_frozen_and_matchable() -> None:
    event: trionet.StreamEvent = trionet.Data(b"x")
    match event:
        case trionet.Data(data):
            assert data == b"x"
        case _:
            pytest.fail("Data did not match")
    with pytest.raises(AttributeError):
        event.data = b"y"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


async def test_timeout_event_repeats_and_keeps_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = memory_tcp_pair()
    server.set_timeout(5)
    assert server.timeout == 5
    start = trio.current_time()
    events = []
    async for event in server:
        events.append((event, trio.current_time() - start))
        if len(events) == 2:
            break
    assert events == [(trionet.Timeout(), 5), (trionet.Timeout(), 10)]
    # Activity pushes the next timeout back.
    await client.send(b"hi")
    assert await server.__anext__() == trionet.Data(b"hi")
    await trio.sleep(3)
    await server.send(b"ho")  # sending is activity too
    mark = trio.current_time()
    assert await server.__anext__() == trionet.Timeout()
    assert trio.current_time() - mark == 5
    server.set_timeout(0)  # Node's way to turn it off
    assert server.timeout is None
    assert await client.__anext__() == trionet.Data(b"ho")  # closing unread would reset
    await client.aclose()
    assert [event async for event in server] == [trionet.EndOfStream()]
    await server.aclose()
    with pytest.raises(ValueError, match="timeout"):
        server.set_timeout(-1)


async def test_two_tasks_iterating_at_once_is_an_error() -> None:
    client, server = memory_tcp_pair()
    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(server.__anext__)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await server.__anext__()
        nursery.cancel_scope.cancel()


async def test_use_after_close() -> None:
    client, server = memory_tcp_pair()
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        await client.send(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await client.__anext__()
    assert [event async for event in server] == [trionet.EndOfStream()]
    await server.aclose()


async def test_send_after_send_eof_is_an_error() -> None:
    client, server = memory_tcp_pair()
    async with client, server:
        await client.send_eof()
        with pytest.raises(trio.ClosedResourceError):
            await client.send(b"late")


# -- real sockets ---------------------------------------------------------


async def test_connect_refused_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]  # bound but not listening: refused
        with pytest.raises(trionet.ConnectError) as info:
            await trionet.connect_tcp(LOOPBACK, port)
    assert info.value.errno == errno.ECONNREFUSED
    assert f"{LOOPBACK}:{port}" in str(info.value)
    assert isinstance(info.value, OSError)


async def test_connect_timeout() -> None:
    # A TLS client against a server that accepts and never answers: the
    # handshake hangs, and the connect timeout covers it. Real time: a silent
    # peer stays silent however loaded the machine, so the outcome is fixed.
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(trionet.ConnectTimeout, match=r"timed out after 0\.2 s"):
            await trionet.connect_tcp(
                LOOPBACK, port, ssl_context=ssl.create_default_context(), connect_timeout=0.2
            )


async def test_peer_reset_raises_connection_reset(nursery: trio.Nursery) -> None:
    reset = trio.Event()

    async def resetter(conn: trionet.TCPConnection) -> None:
        raw = conn.stream.socket  # type: ignore[attr-defined]
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        reset.set()

    server = await nursery.start(trionet.serve_tcp, resetter, 0, LOOPBACK)
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await reset.wait()
        with pytest.raises(trionet.ConnectionReset) as info:
            async for _ in conn:
                pass
        assert isinstance(info.value, trionet.ConnectionClosed)
        assert not isinstance(info.value, OSError)


async def test_socket_options(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        raw = conn.stream.socket  # type: ignore[attr-defined]
        conn.set_nodelay(False)
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        conn.set_nodelay()
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.set_keepalive(idle=30)
        assert raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        conn.set_keepalive(False)
        assert raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert conn.local_address == raw.getsockname()
        assert conn.remote_address == (LOOPBACK, server.port)
        assert conn.tls is None
        assert "TCPConnection" in repr(conn)


async def test_one_mebibyte_round_trip(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    payload = os.urandom(1 << 20)
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    async with conn, trio.open_nursery() as inner:

        async def upload() -> None:
            await conn.send(payload)
            await conn.send_eof()

        inner.start_soon(upload)
        assert await receive_all(conn) == payload


# -- TLS ------------------------------------------------------------------


async def test_tls_round_trip_and_details(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    trionet_tls.server_context.set_alpn_protocols(["trionet-test"])
    trionet_tls.client_context.set_alpn_protocols(["trionet-test"])
    seen: list[trionet.TLSInfo | None] = []

    async def tls_echo(conn: trionet.TCPConnection) -> None:
        seen.append(conn.tls)
        await echo(conn)

    server = await nursery.start(
        partial(trionet.serve_tcp, tls_echo, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
    )
    conn = await connect_tls(server, trionet_tls)
    async with conn:
        await conn.send(b"secret")
        event = await conn.__anext__()
        assert event == trionet.Data(b"secret")
        assert conn.tls is not None
        assert conn.tls.alpn_protocol == "trionet-test"
        assert conn.tls.version in ("TLSv1.2", "TLSv1.3")
        assert conn.tls.peer_certificate is not None
        assert conn.tls.server_hostname == "localhost"
        with pytest.raises(NotImplementedError, match="half-close"):
            await conn.send_eof()
    [info] = seen
    assert info is not None
    assert info.alpn_protocol == "trionet-test"
    assert info.server_hostname is None  # SNI is the context's sni_callback's business
    assert server.statistics().bytes_received == 6


async def test_tls_rejects_an_untrusted_certificate(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    server = await nursery.start(
        partial(trionet.serve_tcp, echo, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
    )
    with pytest.raises(trionet.TLSError, match="certificate"):
        await trionet.connect_tcp(
            LOOPBACK, server.port, ssl_context=ssl.create_default_context(), server_hostname="x"
        )
    await wait_until(lambda: server.statistics().handshake_failures == 1)


async def test_tls_handshake_timeout_frees_the_slot(
    nursery: trio.Nursery,
    trionet_tls: TLSCertificates,
    autojump_clock: trio.testing.MockClock,
) -> None:
    reached_handler = []

    async def handler(conn: trionet.TCPConnection) -> None:
        reached_handler.append(conn)

    options = {"ssl_context": trionet_tls.server_context, "max_connections": 1}
    async with memory_tcp_server(handler, **options) as (server, listener):
        silent = listener.connect()  # plain bytes: never says hello
        await wait_until(lambda: server.statistics().active == 1)
        start = trio.current_time()
        assert [event async for event in silent] == [trionet.EndOfStream()]
        assert trio.current_time() - start == pytest.approx(
            trionet.DEFAULT_TLS_HANDSHAKE_TIMEOUT, abs=0.5
        )
        await wait_until(lambda: server.statistics().active == 0)
        stats = server.statistics()
        assert (stats.handshake_failures, stats.active, stats.handler_errors) == (1, 0, 0)
        assert reached_handler == []
        await silent.aclose()


async def test_garbage_instead_of_a_handshake_is_counted_not_fatal(
    nursery: trio.Nursery, trionet_tls: TLSCertificates, caplog: pytest.LogCaptureFixture
) -> None:
    server = await nursery.start(
        partial(trionet.serve_tcp, echo, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
    )
    with caplog.at_level("DEBUG", logger="trionet.tcp"):
        async with await trionet.connect_tcp(LOOPBACK, server.port) as garbage:
            await garbage.send(b"GET / HTTP/1.1\r\n\r\n")
            try:
                await receive_all(garbage)
            except trionet.ConnectionReset:
                pass
        await wait_until(lambda: server.statistics().handshake_failures == 1)
    assert any("TLS" in r.getMessage() for r in caplog.records if r.levelname == "DEBUG")
    # Still serving TLS clients.
    async with await connect_tls(server, trionet_tls) as conn:
        await conn.send(b"ok")
        assert await conn.__anext__() == trionet.Data(b"ok")


async def test_tls_connection_ends_on_shutdown_and_can_say_goodbye(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    async def polite(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            pass
        await conn.send(b"bye")

    server = await nursery.start(
        partial(trionet.serve_tcp, polite, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
    )
    async with await connect_tls(server, trionet_tls) as conn:
        await wait_until(lambda: server.statistics().active == 1)
        await trio.testing.wait_all_tasks_blocked()  # the handler waits in its loop
        with trio.fail_after(5):
            await server.shutdown(grace=60)
        assert [event async for event in conn] == [trionet.Data(b"bye"), trionet.EndOfStream()]


async def test_tls_peer_vanishing_without_close_notify_is_a_tls_error(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    outcome: list[BaseException] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        try:
            async for _ in conn:
                pass
        except trionet.ConnectionClosed as exc:
            outcome.append(exc)

    server = await nursery.start(
        partial(trionet.serve_tcp, handler, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
    )
    conn = await connect_tls(server, trionet_tls)
    await trio.aclose_forcefully(conn.stream.transport_stream)  # type: ignore[attr-defined]
    await wait_until(lambda: server.statistics().active == 0)
    [exc] = outcome
    assert isinstance(exc, trionet.TLSError)
    assert "close_notify" in str(exc)
    await conn.aclose()


# -- Unix sockets ---------------------------------------------------------


async def test_unix_socket_round_trip_and_cleanup(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    server = await nursery.start(trionet.serve_unix, echo, path)
    assert server.addresses == [str(path)]
    with pytest.raises(ValueError, match="no port"):
        _ = server.port
    async with await trionet.connect_unix(path) as conn:
        conn.set_nodelay()  # no effect on Unix sockets, and no error
        conn.set_keepalive()
        assert conn.remote_address == str(path)
        await conn.send(b"local")
        await conn.send_eof()
        assert await receive_all(conn) == b"local"
    await server.shutdown()
    assert not path.exists()


async def test_unix_stale_socket_is_replaced_live_one_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: stale
    server = await nursery.start(trionet.serve_unix, echo, path)
    with pytest.raises(trionet.BindError, match="in use") as info:
        await nursery.start(trionet.serve_unix, echo, path)
    assert info.value.errno == errno.EADDRINUSE
    async with await trionet.connect_unix(path) as conn:  # the first server is unharmed
        await conn.send(b"1")
        assert await conn.__anext__() == trionet.Data(b"1")
    await server.shutdown()

    regular = tmp_path / "not-a-socket"
    regular.write_text("data")
    with pytest.raises(trionet.BindError, match="not a socket"):
        await nursery.start(trionet.serve_unix, echo, regular)
    assert regular.read_text() == "data"


async def test_connect_unix_missing_path(tmp_path: Path) -> None:
    with pytest.raises(trionet.ConnectError, match=r"nothing\.sock"):
        await trionet.connect_unix(tmp_path / "nothing.sock")


async def test_socket_send_edge_cases(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    await conn.send(b"")  # nothing to send is fine
    big = b"z" * (32 << 20)  # more than the kernel buffers: the send blocks
    async with trio.open_nursery() as inner:
        inner.start_soon(conn.send, big)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await conn.send(b"meanwhile")
        inner.cancel_scope.cancel()
    await conn.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await conn.send(b"")
    with pytest.raises(trio.ClosedResourceError):
        await conn.send(b"late")


async def test_unix_socket_mode(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "private.sock"
    server = await nursery.start(partial(trionet.serve_unix, echo, path, mode=0o600))
    assert path.stat().st_mode & 0o777 == 0o600
    await server.shutdown()


@pytest.mark.parametrize("stop", ["shutdown", "hard stop"])
async def test_stopping_during_tls_handshakes_leaves_nothing_behind(
    trionet_tls: TLSCertificates, stop: str
) -> None:
    async def handler(conn: trionet.TCPConnection) -> None:
        pytest.fail("no handshake completed, so no handler may run")

    silent = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(trionet.serve_tcp, handler, 0, LOOPBACK, ssl_context=trionet_tls.server_context)
        )
        for _ in range(5):  # connect, never say hello
            silent.append(await trionet.connect_tcp(LOOPBACK, server.port))
        await wait_until(lambda: server.statistics().active == 5)
        if stop == "shutdown":
            await server.shutdown(grace=0)
        else:
            nursery.cancel_scope.cancel()
    assert server.statistics().active == 0
    for conn in silent:
        assert [event async for event in conn] == [trionet.EndOfStream()]
        await conn.aclose()


async def test_timeout_counts_sends_during_a_pending_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = memory_tcp_pair()
    server.set_timeout(3)
    events: list[tuple[trionet.StreamEvent, float]] = []
    start = trio.current_time()

    async def keep_sending() -> None:
        for _ in range(5):  # active every 2 s for 10 s: never idle for 3 s
            await server.send(b"tick")
            await trio.sleep(2)

    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(keep_sending)
        async for event in server:
            events.append((event, trio.current_time() - start))
            break
    # The first Timeout comes 3 s after the last send (at 8 s), not at 3 s.
    assert events == [(trionet.Timeout(), 11)]


async def test_set_timeout_from_another_task_applies_to_the_pending_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = memory_tcp_pair()
    server.set_timeout(100)
    start = trio.current_time()

    async def shorten() -> None:
        await trio.sleep(1)
        server.set_timeout(2)

    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(shorten)
        assert await server.__anext__() == trionet.Timeout()
    assert trio.current_time() - start == 3
    with pytest.raises(ValueError, match="timeout"):
        server.set_timeout(float("nan"))


async def test_timeout_enabled_during_a_plain_socket_read(nursery: trio.Nursery) -> None:
    # Real time (the subject is the real socket's fast path): the client lets
    # more than the timeout pass; load can only make that longer.
    events: list[trionet.StreamEvent] = []
    enabled = trio.Event()

    async def handler(conn: trionet.TCPConnection) -> None:
        async def enable() -> None:
            await trio.testing.wait_all_tasks_blocked()
            conn.set_timeout(0.2)  # while the fast-path read is pending
            enabled.set()

        async with trio.open_nursery() as own:
            own.start_soon(enable)
            async for event in conn:
                events.append(event)

    server = await nursery.start(trionet.serve_tcp, handler, 0, LOOPBACK)
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await enabled.wait()
        await trio.sleep(0.4)  # longer than the timeout, before any activity
        await conn.send(b"data")
        await conn.send_eof()  # already queued when the server reads the data
        await wait_until(lambda: server.statistics().active == 0)
    # Data, then the end: no Timeout for a connection that was just active.
    assert events == [trionet.Data(b"data"), trionet.EndOfStream()]


async def test_memory_pair_has_backpressure(autojump_clock: trio.testing.MockClock) -> None:
    client, server = memory_tcp_pair(buffer_size=1000)
    done = trio.Event()

    async def send_a_lot() -> None:
        await client.send(b"x" * 5000)
        done.set()

    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(send_a_lot)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()  # the peer reads nothing: send waits
        received = 0
        async for event in server:
            assert isinstance(event, trionet.Data)
            assert len(event.data) <= 1000
            received += len(event.data)
            if received == 5000:
                break
        await done.wait()
    with pytest.raises(ValueError, match="buffer_size"):
        memory_tcp_pair(buffer_size=0)


async def test_memory_pair_close_breaks_the_peers_sends() -> None:
    client, server = memory_tcp_pair()
    await server.aclose()
    with pytest.raises(trionet.ConnectionReset):
        await client.send(b"into the void")
    assert [event async for event in client] == [trionet.EndOfStream()]
    await client.aclose()


async def test_send_eof_while_another_task_sends(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    async with conn, trio.open_nursery() as inner:
        inner.start_soon(conn.send, b"z" * (32 << 20))
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await conn.send_eof()
        inner.cancel_scope.cancel()


async def test_unix_tls_requires_a_hostname_to_check(
    nursery: trio.Nursery, tmp_path: Path, trionet_tls: TLSCertificates
) -> None:
    path = tmp_path / "tls.sock"
    await nursery.start(
        partial(trionet.serve_unix, echo, path, ssl_context=trionet_tls.server_context)
    )
    with pytest.raises(ValueError, match="server_hostname"):
        await trionet.connect_unix(path, ssl_context=trionet_tls.client_context)
    with pytest.raises(trionet.TLSError):
        await trionet.connect_unix(
            path, ssl_context=trionet_tls.client_context, server_hostname="evil.example"
        )
    async with await trionet.connect_unix(
        path, ssl_context=trionet_tls.client_context, server_hostname=trionet_tls.hostname
    ) as conn:
        await conn.send(b"over tls over unix")
        assert await conn.__anext__() == trionet.Data(b"over tls over unix")


async def test_memory_pair_close_with_unread_data_is_a_reset() -> None:
    client, server = memory_tcp_pair()
    await client.send(b"unread")
    await server.send(b"last words")
    await server.aclose()  # client's b"unread" was never read: a reset, as in TCP
    assert await client.__anext__() == trionet.Data(b"last words")
    with pytest.raises(trionet.ConnectionReset):
        await client.__anext__()
    await client.aclose()
    with pytest.raises(TypeError):
        memory_tcp_pair(buffer_size=1.5)  # type: ignore[arg-type]


async def test_timeout_turned_off_as_it_expires_yields_no_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The reader's deadline and the task turning the timeout off wake at the
    # same instant, in an order trio does not promise: try it many times. A
    # Timeout that comes out before the timeout was turned off is fine; one
    # that comes out after is not.
    for _ in range(20):
        client, server = memory_tcp_pair()
        server.set_timeout(5)
        log: list[object] = []

        async def read(server: trionet.TCPConnection, log: list[object]) -> None:
            log.append(await server.__anext__())

        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(read, server, log)
            await trio.sleep(5)
            server.set_timeout(None)
            log.append("off")
            await trio.sleep(1)
            await client.send(b"late")
            if log == ["off"]:
                await trio.testing.wait_all_tasks_blocked()
        assert log in ([trionet.Timeout(), "off"], ["off", trionet.Data(b"late")])


async def test_close_while_a_tls_send_is_blocked(
    trionet_tls: TLSCertificates, autojump_clock: trio.testing.MockClock
) -> None:
    async def never_reads(conn: trionet.TCPConnection) -> None:
        await trio.sleep_forever()

    context = trionet_tls.server_context
    # Kernel-sized buffers: the first sends go through, then one blocks.
    server = memory_tcp_server(never_reads, ssl_context=context, buffer_size=1 << 20)
    async with server as (_, listener):
        stream = trio.SSLStream(
            listener.connect_stream(),
            trionet_tls.client_context,
            server_hostname=trionet_tls.hostname,
        )
        await stream.do_handshake()
        conn = trionet.TCPConnection(stream)
        outcome: list[BaseException] = []

        async def send_forever() -> None:
            try:
                while True:
                    await conn.send(b"x" * 65536)
            except trio.ClosedResourceError as exc:
                outcome.append(exc)

        async with trio.open_nursery() as inner:
            inner.start_soon(send_forever)
            await wait_until(lambda: conn.statistics().bytes_sent > 0)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            await conn.aclose()
            # No close_notify queued behind the blocked send: no close_timeout wait.
            assert trio.current_time() - start < trionet.DEFAULT_CLOSE_TIMEOUT
        assert len(outcome) == 1
        with pytest.raises(trio.ClosedResourceError):
            await conn.send_eof()


async def test_send_eof_after_close_is_an_error(nursery: trio.Nursery) -> None:
    server = await nursery.start(trionet.serve_tcp, echo, 0, LOOPBACK)
    conn = await trionet.connect_tcp(LOOPBACK, server.port)
    await conn.send_eof()
    await conn.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await conn.send_eof()


async def test_unix_client_can_still_send_during_a_graceful_shutdown(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    loop_ended = trio.Event()
    client_sent = trio.Event()

    async def handler(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            pass
        loop_ended.set()
        await client_sent.wait()

    path = tmp_path / "s.sock"
    server = await nursery.start(trionet.serve_unix, handler, path)
    conn = await trionet.connect_unix(path)
    await wait_until(lambda: server.statistics().active == 1)
    async with conn, trio.open_nursery() as inner:
        inner.start_soon(server.shutdown, 60)
        await loop_ended.wait()
        await conn.send(b"still talking")  # no broken pipe: the server only stopped reading
        client_sent.set()
