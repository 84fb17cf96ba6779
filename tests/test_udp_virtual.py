"""trionet.testing.VirtualUDPNetwork: real UDPSocket and serve_udp code on a
simulated, seeded network."""

from __future__ import annotations

import errno
import socket

import pytest
import trio
import trio.testing

import trionet
from trionet.testing import VirtualUDPNetwork

A = ("10.0.0.1", 5000)
B = ("10.0.0.2", 6000)


async def drain(sock: trionet.UDPSocket, *, quiet: float = 1.0) -> list[bytes]:
    """Every datagram that arrives until ``quiet`` seconds pass without one."""
    received = []
    while True:
        with trio.move_on_after(quiet):
            received.append((await anext(sock)).data)
            continue
        return received


async def send_numbers(sock: trionet.UDPSocket, count: int, to: tuple[str, int]) -> None:
    for i in range(count):
        await sock.send(str(i).encode(), to)


async def test_two_hosts_exchange_datagrams_with_their_addresses() -> None:
    net = VirtualUDPNetwork()
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        assert a.local_address == A
        await a.send("héllo", B)
        assert await anext(b) == trionet.Datagram("héllo".encode(), A)
        await b.send(b"", A)
        assert await anext(a) == trionet.Datagram(b"", B)
        assert a.statistics().datagrams_sent == 1
        assert b.statistics().bytes_received == len("héllo".encode())
    assert net.statistics().delivered == 2


async def test_ipv6_hosts_and_port_zero() -> None:
    net = VirtualUDPNetwork()
    async with net.open_udp_socket("::1") as a, net.open_udp_socket("::1") as b:
        assert a.port >= 49152
        assert b.port != a.port
        await a.send(b"six", ("::1", b.port))
        dgram = await anext(b)
        assert dgram.data == b"six"
        assert dgram.address[:2] == ("::1", a.port)
        with pytest.raises(OSError, match="family"):
            await a.send(b"x", ("127.0.0.1", b.port))


async def run_lossy(seed: int) -> list[bytes]:
    net = VirtualUDPNetwork(seed=seed, loss=0.3, duplication=0.1, reordering=0.2)
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        await send_numbers(a, 200, B)
        return await drain(b)


async def test_the_same_seed_gives_the_same_outcome(autojump_clock: trio.testing.MockClock) -> None:
    first = await run_lossy(seed=7)
    assert first == await run_lossy(seed=7)
    assert first != await run_lossy(seed=8)
    # Lossy, duplicated and out of order, yet only what was sent.
    assert len(set(first)) < 200
    assert len(first) != len(set(first))
    assert set(first) <= {str(i).encode() for i in range(200)}


async def test_loss(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualUDPNetwork(loss=1.0)
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        await send_numbers(a, 10, B)
        assert await drain(b) == []
        net.loss = 0.0  # the link comes back
        await a.send(b"back", B)
        assert (await anext(b)).data == b"back"
    stats = net.statistics()
    assert (stats.sent, stats.lost, stats.delivered) == (11, 10, 1)


async def test_duplication(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualUDPNetwork(duplication=1.0)
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        await send_numbers(a, 3, B)
        assert await drain(b) == [b"0", b"0", b"1", b"1", b"2", b"2"]
    assert net.statistics().duplicated == 3


async def test_reordering_holds_datagrams_back(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualUDPNetwork(seed=1, reordering=0.3)
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        await send_numbers(a, 50, B)
        received = await drain(b)
    expected = [str(i).encode() for i in range(50)]
    assert sorted(received, key=int) == expected  # all of them, once each
    assert received != expected
    assert net.statistics().reordered > 0


async def test_latency(autojump_clock: trio.testing.MockClock) -> None:
    net = VirtualUDPNetwork(latency=0.25)
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        start = trio.current_time()
        await a.send(b"ping", B)
        await anext(b)
        assert trio.current_time() - start == pytest.approx(0.25)


async def test_a_full_receive_buffer_loses_datagrams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualUDPNetwork(receive_buffer_size=1000)
    async with net.open_udp_socket(*A) as a, net.open_udp_socket(*B) as b:
        for _ in range(5):
            await a.send(b"x" * 300, B)
        assert len(await drain(b)) == 3
        await a.send(b"x" * 300, B)  # read out: room again
        assert len(await drain(b)) == 1
    assert net.statistics().overflowed == 2


async def test_truncation_is_counted_as_over_the_kernel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualUDPNetwork()
    async with (
        net.open_udp_socket(*A) as a,
        net.open_udp_socket(*B, max_datagram_size=10) as b,
    ):
        await a.send(b"y" * 11, B)
        await a.send(b"y" * 10, B)
        assert (await anext(b)).data == b"y" * 10
        assert b.statistics().truncated == 1
        with pytest.raises(ValueError, match="max_datagram_size"):
            await b.send(b"z" * 11, A)


async def test_connected_socket_sees_port_unreachable_and_only_its_peer() -> None:
    net = VirtualUDPNetwork()
    async with await net.connect_udp(*B) as client:
        await client.send(b"anyone?")  # nothing is bound at B
        with pytest.raises(trionet.PortUnreachable):
            await client.send(b"again")
        async with net.open_udp_socket(*B) as server, net.open_udp_socket(*A) as stranger:
            await stranger.send(b"not from my peer", client.local_address)
            await client.send(b"now?")
            dgram = await anext(server)
            assert dgram.data == b"now?"
            await server.send(b"yes", dgram.address)
            assert (await anext(client)).data == b"yes"  # the stranger's was dropped
    assert net.statistics().unreachable == 2


async def test_wildcard_socket_answers_from_the_address_it_was_reached_at() -> None:
    net = VirtualUDPNetwork()
    async with (
        net.open_udp_socket("0.0.0.0", 53) as server,
        await net.connect_udp("10.9.9.9", 53, local_host="10.0.0.1") as client,
    ):
        await client.send(b"query")
        dgram = await anext(server)
        assert dgram.address == ("10.0.0.1", client.port)
        await server.send(b"answer", dgram.address)
        assert await anext(client) == trionet.Datagram(b"answer", ("10.9.9.9", 53))


async def test_close_ends_a_waiting_loop_and_frees_the_address() -> None:
    net = VirtualUDPNetwork()
    async with net.open_udp_socket(*A) as a:
        received = []

        async def read() -> None:
            received.extend([d async for d in a])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            await a.aclose()
        assert received == []
    async with net.open_udp_socket(*A):
        with pytest.raises(trionet.BindError, match=r"in use: 10\.0\.0\.1:5000"):
            async with net.open_udp_socket(*A):
                pass


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="loss"):
        VirtualUDPNetwork(loss=1.5)
    with pytest.raises(ValueError, match="latency"):
        VirtualUDPNetwork(latency=-1)
    net = VirtualUDPNetwork()
    with pytest.raises(ValueError, match="reordering"):
        net.reordering = -0.1
    with pytest.raises(trionet.BindError, match="not an IP address"):
        async with net.open_udp_socket("example.com"):
            pass
    with pytest.raises(trionet.ConnectError, match=r"example\.com"):
        await net.connect_udp("example.com", 53)
    async with net.open_udp_socket(*A) as a:
        with pytest.raises(OSError, match="multicast"):
            a.join_multicast("239.1.2.3")


async def test_serve_udp_on_the_virtual_network(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    net = VirtualUDPNetwork(latency=0.01)
    ended = []

    async def echo(peer: trionet.UDPPeer) -> None:
        async for dgram in peer:
            await peer.send(dgram.data.upper())
        ended.append(peer.remote_address)

    server = await nursery.start(net.serve_udp, echo, 7, "10.0.0.7")
    async with await net.connect_udp("10.0.0.7", 7, local_host="10.0.0.1") as client:
        await client.send(b"hi")
        assert (await anext(client)).data == b"HI"
        await trio.sleep(trionet.DEFAULT_UDP_IDLE_TIMEOUT + 1)
        assert ended == [client.local_address]
    assert server.statistics().accepted == 1
    assert server.socket_statistics().datagrams_received == 1
    await server.shutdown()


async def stop_and_wait_send(
    sock: trionet.UDPSocket, messages: list[bytes], *, retry_after: float
) -> int:
    """A tiny reliable sender (the kind of protocol the network is for): send
    each message until its acknowledgement comes back; return the sends made."""
    sends = 0
    for number, message in enumerate(messages):
        while True:
            await sock.send(number.to_bytes(4, "big") + message)
            sends += 1
            with trio.move_on_after(retry_after):
                async for ack in sock:
                    if int.from_bytes(ack.data, "big") == number:
                        break
                break
    return sends


async def test_a_protocol_survives_a_bad_network(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    net = VirtualUDPNetwork(seed=3, loss=0.3, duplication=0.2, reordering=0.3, latency=0.005)
    delivered: list[bytes] = []

    async def receiver(peer: trionet.UDPPeer) -> None:
        async for dgram in peer:
            number = int.from_bytes(dgram.data[:4], "big")
            if number == len(delivered):
                delivered.append(dgram.data[4:])
            await peer.send(number.to_bytes(4, "big"))

    await nursery.start(net.serve_udp, receiver, 9)
    messages = [f"message {i}".encode() for i in range(40)]
    async with await net.connect_udp("127.0.0.1", 9) as sock:
        sends = await stop_and_wait_send(sock, messages, retry_after=0.1)
    assert delivered == messages
    assert sends > len(messages)  # the losses were real, and recovered from
    assert net.statistics().lost > 0


# -- installed behind trio's socket factory: plain trionet code runs on it ----


async def echo_upper(peer: trionet.UDPPeer) -> None:
    async for dgram in peer:
        await peer.send(dgram.data.upper())


async def test_installed_network_runs_plain_trionet_udp(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    net = VirtualUDPNetwork(latency=0.01)
    seen: list[trionet.SocketAddress] = []

    async def echo(peer: trionet.UDPPeer) -> None:
        seen.append(peer.remote_address)
        await echo_upper(peer)

    with net.install():
        # host=None: dual stack on "::", as trionet binds it over the kernel.
        server = await nursery.start(trionet.serve_udp, echo, 0)
        assert server.port >= 49152
        async with await trionet.connect_udp("127.0.0.1", server.port) as v4:
            await v4.send(b"four")
            assert await anext(v4) == trionet.Datagram(b"FOUR", ("127.0.0.1", server.port))
            # IPv4 shown as IPv4 on the server's dual-stack socket
            assert seen == [v4.local_address]
        async with await trionet.connect_udp("::1", server.port) as v6:
            await v6.send(b"six")
            assert (await anext(v6)).data == b"SIX"
            assert seen[1][:2] == v6.local_address[:2] == ("::1", v6.port)
        async with await trionet.connect_udp("localhost", server.port) as named:
            await named.send(b"name")
            assert (await anext(named)).data == b"NAME"
        async with trionet.open_udp_socket() as unconnected:
            await unconnected.send(b"any", ("127.0.0.1", server.port))
            assert (await anext(unconnected)).data == b"ANY"
        with pytest.raises(trionet.ConnectError, match=r"example\.invalid"):
            await trionet.connect_udp("example.invalid", 53)
    assert len(seen) == 4
    assert net.statistics().delivered == 8
    await server.shutdown()


async def run_plain_lossy(seed: int) -> list[bytes]:
    net = VirtualUDPNetwork(seed=seed, loss=0.3, duplication=0.1, reordering=0.2)
    with net.install():
        async with (
            trionet.open_udp_socket("127.0.0.1") as a,
            trionet.open_udp_socket("127.0.0.1") as b,
        ):
            await send_numbers(a, 200, ("127.0.0.1", b.port))
            received = await drain(b)
    assert net.statistics().lost > 0
    return received


async def test_loss_applies_to_plain_trionet_sockets_deterministically(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = await run_plain_lossy(seed=7)
    assert first == await run_plain_lossy(seed=7)
    assert first != await run_plain_lossy(seed=8)
    assert len(set(first)) < 200
    net = VirtualUDPNetwork(loss=1.0)
    with net.install():
        async with trionet.open_udp_socket() as a, trionet.open_udp_socket() as b:
            await send_numbers(a, 10, ("127.0.0.1", b.port))
            assert await drain(b) == []
    assert (net.statistics().sent, net.statistics().lost) == (10, 10)


async def test_installed_network_keeps_tcp_real_and_uninstall_restores(
    nursery: trio.Nursery,
) -> None:
    net = VirtualUDPNetwork()

    async def tcp_echo(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            if isinstance(event, trionet.Data):
                await conn.send(event.data)

    with net.install():
        tcp_server = await nursery.start(trionet.serve_tcp, tcp_echo, 0, "127.0.0.1")
        async with await trionet.connect_tcp("127.0.0.1", tcp_server.port) as conn:
            await conn.send(b"still tcp")
            assert await anext(conn) == trionet.Data(b"still tcp")
        # Stream lookups go to the system's resolver.
        assert await trio.socket.getaddrinfo("localhost", 80, type=trio.socket.SOCK_STREAM)
        async with trionet.open_udp_socket("192.0.2.1", 5000) as virtual:
            await virtual.send(b"to myself", virtual.local_address)
            assert (await anext(virtual)).data == b"to myself"
    assert net.statistics().sent == 1
    async with trionet.open_udp_socket("127.0.0.1") as real:
        await real.send(b"kernel", real.local_address)
        assert (await anext(real)).data == b"kernel"
        with pytest.raises(trionet.BindError):
            async with trionet.open_udp_socket("192.0.2.1", 5000):
                pass  # TEST-NET-1 (RFC 5737): no machine has it
    assert net.statistics().sent == 1  # the real socket did not use the network
    await tcp_server.shutdown()


def test_install_needs_a_trio_run() -> None:
    with pytest.raises(RuntimeError), VirtualUDPNetwork().install():
        pass


def test_dual_stack_binding_rules_without_an_event_loop() -> None:
    from trionet.testing._udp_simulation import Simulation, VirtualSocket

    sim = Simulation(seed=0, receive_buffer_size=1000)
    dual = VirtualSocket(sim, socket.AF_INET6)  # IPV6_V6ONLY off, as Linux's default
    assert dual.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    assert sim.bind(dual, "::", 53) == ("::", 53)
    with pytest.raises(OSError, match="in use") as taken:
        sim.bind(VirtualSocket(sim, socket.AF_INET), "0.0.0.0", 53)
    assert taken.value.errno == errno.EADDRINUSE
    assert sim.bind(VirtualSocket(sim, socket.AF_INET), "127.0.0.1", 53) == ("127.0.0.1", 53)
    v6_only = VirtualSocket(sim, socket.AF_INET6)
    v6_only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    assert sim.bind(v6_only, "::", 54) == ("::", 54)
    assert sim.bind(VirtualSocket(sim, socket.AF_INET), "0.0.0.0", 54) == ("0.0.0.0", 54)
    assert sim.bind(VirtualSocket(sim, socket.AF_INET), "0.0.0.0", 0) == ("0.0.0.0", 49152)
