"""trionet.testing.VirtualTCPNetwork: the unchanged serve_tcp, connect_tcp,
HTTP, WebSocket and TLS on a simulated, seeded stream network."""

from __future__ import annotations

import errno
import math
import socket
from functools import partial

import pytest
import trio
import trio.testing

import trionet
import trionet.asgi
from trionet.testing import TLSCertificates, VirtualTCPNetwork, VirtualUDPNetwork


async def echo(conn: trionet.TCPConnection) -> None:
    async for event in conn:
        if isinstance(event, trionet.Data):
            await conn.send(event.data)


async def read_all(conn: trionet.TCPConnection) -> bytes:
    received = b""
    async for event in conn:
        if isinstance(event, trionet.Data):
            received += event.data
        elif isinstance(event, trionet.EndOfStream):
            break
    return received


async def test_echo_with_addresses(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0, host="127.0.0.1"))
            assert server.port >= 49152
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                await conn.send(b"hello")
                assert await anext(conn) == trionet.Data(b"hello")
                assert conn.remote_address == ("127.0.0.1", server.port)
                (virtual,) = net.connections()
                assert virtual.server == ("127.0.0.1", server.port)
                assert virtual.client == conn.local_address
            nursery.cancel_scope.cancel()
    stats = net.statistics()
    assert stats.opened == 1
    assert stats.bytes_carried == 10
    assert stats.open_connections == 0


async def test_two_machines_ipv6_and_names(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    net.add_host("api.example.com", "10.0.0.7")
    with net.install():
        async with trio.open_nursery() as nursery:
            a = await nursery.start(partial(trionet.serve_tcp, echo, 80, host="10.0.0.7"))
            b = await nursery.start(partial(trionet.serve_tcp, echo, 80, host="::1"))
            assert (a.port, b.port) == (80, 80)
            async with await trionet.connect_tcp("api.example.com", 80) as conn:
                assert conn.remote_address == ("10.0.0.7", 80)
            async with await trionet.connect_tcp("localhost", 80) as conn:
                assert conn.remote_address[:2] == ("::1", 80)
            with pytest.raises(trionet.ConnectError):
                await trionet.connect_tcp("unknown.example.com", 80)
            nursery.cancel_scope.cancel()


async def test_wildcard_listener_takes_any_address(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0))
            for host in ("10.1.2.3", "127.0.0.1", "::1"):
                async with await trionet.connect_tcp(host, server.port) as conn:
                    await conn.send(b"x")
                    assert await anext(conn) == trionet.Data(b"x")
            nursery.cancel_scope.cancel()


async def refused_error() -> trionet.ConnectError:
    with pytest.raises(trionet.ConnectError) as info:
        await trionet.connect_tcp("127.0.0.1", 9)
    return info.value


async def test_refused_as_over_loopback() -> None:
    real = await refused_error()
    net = VirtualTCPNetwork()
    with net.install():
        virtual = await refused_error()
    assert (virtual.errno, str(virtual)) == (real.errno, str(real))
    assert virtual.errno == errno.ECONNREFUSED
    assert net.statistics().refused == 1


async def test_backlog_holds_connections_until_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualTCPNetwork()
    with net.install():
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        port = listener.getsockname()[1]
        connected: list[int] = []

        async def connect(i: int) -> None:
            sock = trio.socket.socket()
            await sock.connect(("127.0.0.1", port))
            connected.append(i)
            sock.close()

        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(connect, i)
            await trio.testing.wait_all_tasks_blocked()
            assert len(connected) == 2  # backlog + 1, as Linux
            accepted, _ = await listener.accept()
            accepted.close()
        assert sorted(connected) == [0, 1, 2]
        listener.close()


async def half_close(host: str, port: int) -> bytes:
    async with await trionet.connect_tcp(host, port) as conn:
        await conn.send(b"question")
        await conn.send_eof()
        return await read_all(conn)


async def answer_after_eof(conn: trionet.TCPConnection) -> None:
    asked = await read_all(conn)
    await conn.send(b"answer to " + asked)


async def run_half_close() -> bytes:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.serve_tcp, answer_after_eof, 0, "127.0.0.1"))
        answer = await half_close("127.0.0.1", server.port)
        nursery.cancel_scope.cancel()
    return answer


async def test_half_close_matches_loopback() -> None:
    real = await run_half_close()
    with VirtualTCPNetwork().install():
        virtual = await run_half_close()
    assert real == virtual == b"answer to question"


async def test_reset_mid_stream(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    outcome: list[object] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        try:
            async for _ in conn:
                pass
        except trionet.ConnectionReset as exc:
            outcome.append(exc)

    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, handler, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                await conn.send(b"some")
                await trio.testing.wait_all_tasks_blocked()
                net.connections()[0].reset()
                with pytest.raises(trionet.ConnectionReset):
                    await conn.send(b"more")
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert len(outcome) == 1
    assert net.statistics().reset == 1


async def close_with_unread_data() -> type[BaseException] | None:
    """The server closes without reading what the client sent: what does the
    client's next receive see?"""
    sent = trio.Event()

    async def handler(conn: trionet.TCPConnection) -> None:
        await sent.wait()  # the bytes are in its buffer, unread

    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.serve_tcp, handler, 0, "127.0.0.1"))
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            await conn.send(b"unread")
            await trio.testing.wait_all_tasks_blocked()
            sent.set()
            try:
                while True:
                    event = await anext(conn)
                    if isinstance(event, trionet.EndOfStream):
                        return None
            except trionet.ConnectionClosed as exc:
                return type(exc)
            finally:
                nursery.cancel_scope.cancel()
    return None


async def test_close_with_unread_data_resets_as_on_linux() -> None:
    with VirtualTCPNetwork().install():
        virtual = await close_with_unread_data()
    assert virtual is trionet.ConnectionReset


async def test_a_peer_that_stops_reading_blocks_the_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualTCPNetwork(buffer_size=1000)
    with net.install():
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = trio.SocketStream(trio.socket.socket())
        await client.socket.connect(listener.getsockname())
        server = trio.SocketStream((await listener.accept())[0])
        async with client, server:
            await client.send_all(b"x" * 1000)
            with trio.move_on_after(10) as blocked:
                await client.send_all(b"y")
            assert blocked.cancelled_caught
            with trio.move_on_after(10) as waiting:
                await client.wait_send_all_might_not_block()
            assert waiting.cancelled_caught
            assert len(await server.receive_some(300)) == 300
            await client.send_all(b"y" * 300)
        listener.close()


async def test_stall_and_resume(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                (virtual,) = net.connections()
                virtual.stall()
                await conn.send(b"held")
                with trio.move_on_after(60) as waited:
                    await anext(conn)
                assert waited.cancelled_caught
                virtual.resume()
                assert await anext(conn) == trionet.Data(b"held")
            nursery.cancel_scope.cancel()


async def test_latency_is_exact_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork(latency=0.05)
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0, "127.0.0.1"))
            start = trio.current_time()
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                assert trio.current_time() - start == pytest.approx(0.1)  # SYN, SYN-ACK
                start = trio.current_time()
                await conn.send(b"ping")
                assert await anext(conn) == trionet.Data(b"ping")
                assert trio.current_time() - start == pytest.approx(0.1)  # there and back
                net.latency = 0.5
                start = trio.current_time()
                await conn.send(b"ping")
                await anext(conn)
                assert trio.current_time() - start == pytest.approx(1.0)
            nursery.cancel_scope.cancel()


async def test_bandwidth(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork(bandwidth=1000)

    async def sink(conn: trionet.TCPConnection) -> None:
        await conn.send(str(len(await read_all(conn))))

    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, sink, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                start = trio.current_time()
                await conn.send(b"x" * 5000)
                await conn.send_eof()
                assert await read_all(conn) == b"5000"
                assert trio.current_time() - start == pytest.approx(5.0, abs=0.01)
            nursery.cancel_scope.cancel()


async def piece_sizes(seed: int) -> list[int]:
    net = VirtualTCPNetwork(seed=seed, max_segment_size=100)
    with net.install():
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = trio.SocketStream(trio.socket.socket())
        await client.socket.connect(listener.getsockname())
        server = trio.SocketStream((await listener.accept())[0])
        async with client, server:
            await client.send_all(b"x" * 2000)
            await client.send_eof()
            sizes = []
            while data := await server.receive_some(65536):
                sizes.append(len(data))
        listener.close()
    assert sum(sizes) == 2000
    return sizes


async def test_segmentation_is_seeded(autojump_clock: trio.testing.MockClock) -> None:
    first = await piece_sizes(1)
    assert max(first) <= 100
    assert len(first) > 20
    assert await piece_sizes(1) == first
    assert await piece_sizes(2) != first


async def test_tls_over_the_virtual_network(
    autojump_clock: trio.testing.MockClock, trionet_tls: TLSCertificates
) -> None:
    net = VirtualTCPNetwork(max_segment_size=7, latency=0.01)
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    trionet.serve_tcp,
                    echo,
                    0,
                    "127.0.0.1",
                    ssl_context=trionet_tls.server_context,
                )
            )
            async with await trionet.connect_tcp(
                "127.0.0.1",
                server.port,
                ssl_context=trionet_tls.client_context,
                server_hostname=trionet_tls.hostname,
            ) as conn:
                assert conn.tls is not None
                await conn.send(b"secret" * 1000)
                received = b""
                while len(received) < 6000:
                    event = await anext(conn)
                    assert isinstance(event, trionet.Data)
                    received += event.data
                assert received == b"secret" * 1000
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("tcp_first", [True, False])
async def test_nests_with_the_udp_network(
    tcp_first: bool, autojump_clock: trio.testing.MockClock
) -> None:
    tcp, udp = VirtualTCPNetwork(), VirtualUDPNetwork()
    outer, inner = (tcp, udp) if tcp_first else (udp, tcp)
    with outer.install(), inner.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("localhost", server.port) as conn:
                await conn.send(b"t")
                assert await anext(conn) == trionet.Data(b"t")
            async with trionet.open_udp_socket("127.0.0.1") as a:
                await a.send(b"u", a.local_address)
                assert (await anext(a)).data == b"u"
            nursery.cancel_scope.cancel()
    assert tcp.statistics().opened == 1
    assert udp.statistics().delivered == 1


# -- HTTP and WebSocket, unchanged, on the virtual network ------------------------


async def hello(request: trionet.http.Request) -> trionet.http.Response:
    return trionet.http.Response(200, body=b"hello")


async def test_http_keepalive_timeout_and_client_reconnect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualTCPNetwork(latency=0.001, max_segment_size=16)
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trionet.http.serve, hello, 0, "127.0.0.1", keepalive_timeout=5)
            )
            base = f"http://127.0.0.1:{server.port}/"
            async with trionet.http.Client() as client:
                assert await (await client.get(base)).text() == "hello"
                await trio.sleep(4)  # inside the keep-alive timeout: reused
                assert await (await client.get(base)).text() == "hello"
                assert client.statistics().connections_opened == 1
                assert len(net.connections()) == 1
                await trio.sleep(6)  # the server closed the idle connection
                assert await (await client.get(base)).text() == "hello"
                assert client.statistics().connections_opened == 2
                assert len(net.connections()) == 1  # the client closed the old one
            nursery.cancel_scope.cancel()
    assert net.statistics().reset == 0


async def test_http_slowloris_head_timeout(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trionet.http.serve, hello, 0, "127.0.0.1", request_head_timeout=10)
            )
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                start = trio.current_time()
                await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                answer = b""
                with trio.move_on_after(60):
                    while True:
                        try:
                            await conn.send(b"X-Slow: 1\r\n")  # a header every 9 s
                        except trionet.ConnectionClosed:
                            break
                        with trio.move_on_after(9):
                            event = await anext(conn)
                            if isinstance(event, trionet.Data):
                                answer += event.data
                            else:
                                break
                elapsed = trio.current_time() - start
            assert answer.startswith(b"HTTP/1.1 408")
            assert 10 <= elapsed < 20
            nursery.cancel_scope.cancel()


async def test_websocket_ping_timeout(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork(latency=0.01)
    closed: list[trionet.websocket.WebSocketClosed] = []
    ended = trio.Event()

    async def handler(ws: trionet.websocket.WebSocketConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message.data)
        except trionet.websocket.WebSocketClosed as exc:
            closed.append(exc)
        finally:
            ended.set()

    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    trionet.websocket.serve,
                    handler,
                    0,
                    "127.0.0.1",
                    ping_interval=5,
                    ping_timeout=10,
                )
            )
            url = f"ws://127.0.0.1:{server.port}/"
            async with trionet.websocket.connect(url, ping_interval=None) as ws:
                await ws.send("hi")
                assert (await ws.receive()).data == "hi"
                start = trio.current_time()
                net.connections()[0].stall()  # the client vanishes
                await ended.wait()
                # The next ping (every 5 s) goes unanswered for 10 s.
                assert 10 < trio.current_time() - start <= 15
            nursery.cancel_scope.cancel()
    assert [exc.code for exc in closed] == [1011]


async def test_asgi_app_over_the_virtual_network(autojump_clock: trio.testing.MockClock) -> None:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] == "http"
        assert callable(send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"from asgi"})

    net = VirtualTCPNetwork(latency=0.01, max_segment_size=5)
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trionet.asgi.serve, app, 0, "127.0.0.1", lifespan="off")
            )
            async with trionet.http.Client() as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/")
                assert await response.text() == "from asgi"
            nursery.cancel_scope.cancel()


async def send_after_the_peer_closed() -> list[str]:
    """The server closes at once; the client reads the EOF, then sends twice."""

    async def handler(conn: trionet.TCPConnection) -> None:
        pass

    seen: list[str] = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.serve_tcp, handler, 0, "127.0.0.1"))
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            seen.append(type(await anext(conn)).__name__)
            for _ in range(2):
                try:
                    await conn.send(b"anyone?")
                    seen.append("sent")
                except trionet.ConnectionClosed as exc:
                    seen.append(type(exc).__name__)
        nursery.cancel_scope.cancel()
    return seen


async def test_send_after_the_peer_closed_matches_loopback() -> None:
    real = await send_after_the_peer_closed()
    with VirtualTCPNetwork().install():
        virtual = await send_after_the_peer_closed()
    assert virtual == real
    assert real[:2] == ["EndOfStream", "sent"]


async def test_closing_a_listener_resets_connections_not_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with VirtualTCPNetwork().install():
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        client = trio.SocketStream(trio.socket.socket())
        await client.socket.connect(listener.getsockname())
        listener.close()
        with pytest.raises(trio.BrokenResourceError):
            await client.receive_some(10)
        await client.aclose()


async def test_sockets_outlive_the_install_block(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualTCPNetwork()
    async with trio.open_nursery() as nursery:
        with net.install():
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0, "127.0.0.1"))
            conn = await trionet.connect_tcp("127.0.0.1", server.port)
        # Uninstalled: new sockets would be real, these stay virtual and work.
        async with conn:
            await conn.send(b"still here")
            assert await anext(conn) == trionet.Data(b"still here")
        nursery.cancel_scope.cancel()
    assert net.statistics().open_connections == 0


async def jittered_arrivals(seed: int) -> list[float]:
    net = VirtualTCPNetwork(seed=seed, latency=0.01, jitter=0.05, max_segment_size=10)
    with net.install():
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = trio.SocketStream(trio.socket.socket())
        await client.socket.connect(listener.getsockname())
        server = trio.SocketStream((await listener.accept())[0])
        start = trio.current_time()
        arrivals = []
        async with client, server:
            await client.send_all(bytes(range(100)))
            await client.send_eof()
            received = b""
            while data := await server.receive_some(1000):
                received += data
                arrivals.append(round(trio.current_time() - start, 9))
        listener.close()
    assert received == bytes(range(100))  # in order, whatever the jitter
    return arrivals


async def test_jitter_is_seeded_and_keeps_order(autojump_clock: trio.testing.MockClock) -> None:
    first = await jittered_arrivals(3)
    assert first == sorted(first)
    assert first[0] >= 0.01
    assert first[-1] <= 0.06
    assert await jittered_arrivals(3) == first
    assert await jittered_arrivals(4) != first


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        VirtualTCPNetwork(buffer_size=0)
    with pytest.raises(TypeError, match="latency"):
        VirtualTCPNetwork(latency="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency"):
        VirtualTCPNetwork(latency=math.inf)
    with pytest.raises(ValueError, match="bandwidth"):
        VirtualTCPNetwork(bandwidth=0)
    with pytest.raises(ValueError, match="max_segment_size"):
        VirtualTCPNetwork(max_segment_size=0)
    net = VirtualTCPNetwork()
    with pytest.raises(ValueError, match="IP address"):
        net.add_host("x.example", "not-an-address")
    with pytest.raises(ValueError, match="at least one"):
        net.add_host("x.example")


def test_install_needs_a_trio_run() -> None:
    with pytest.raises(RuntimeError), VirtualTCPNetwork().install():
        pass  # pragma: no cover


async def test_a_network_installed_again_inside_itself_keeps_passing_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # VirtualUDPNetwork.open_udp_socket installs the network while it binds;
    # done inside an install of its own, TCP sockets must still reach the TCP
    # network installed around both (and not loop back to the UDP one).
    tcp, udp = VirtualTCPNetwork(), VirtualUDPNetwork()
    with tcp.install(), udp.install():
        async with udp.open_udp_socket():
            pass
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, echo, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                await conn.send(b"still virtual")
                assert await anext(conn) == trionet.Data(b"still virtual")
            nursery.cancel_scope.cancel()
    assert tcp.statistics().opened == 1
