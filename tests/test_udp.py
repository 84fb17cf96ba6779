"""UDP sockets: datagrams in and out, limits, truncation, connected mode,
dual stack, multicast, and Node's dgram as the peer."""

from __future__ import annotations

import errno
import socket
import sys

import pytest
import trio
import trio.testing

import trionet
from tests._net import ipv6_loopback_available
from tests._node import NODE_TIMEOUT, node_executable, parse_report
from tests._process import running

LOOPBACK = "127.0.0.1"


async def test_datagrams_both_ways() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK) as server,
        trionet.open_udp_socket(LOOPBACK) as client,
    ):
        await client.send("深入浅出Node.js", (LOOPBACK, server.port))
        dgram = await server.__anext__()
        assert dgram == trionet.Datagram("深入浅出Node.js".encode(), client.local_address)
        await server.send(dgram.data, dgram.address)  # echo
        assert (await client.__anext__()).data == dgram.data
        assert client.statistics().datagrams_sent == 1
        assert server.statistics().bytes_received == len(dgram.data)


async def test_oversized_send_is_refused_before_sending() -> None:
    async with trionet.open_udp_socket(LOOPBACK, max_datagram_size=100) as sock:
        with pytest.raises(ValueError, match="max_datagram_size=100"):
            await sock.send(b"x" * 101, (LOOPBACK, sock.port))
        assert sock.statistics().datagrams_sent == 0


async def test_a_datagram_larger_than_the_limit_is_counted_not_delivered_cut() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK, max_datagram_size=100) as small,
        trionet.open_udp_socket(LOOPBACK) as big,
    ):
        await big.send(b"y" * 500, (LOOPBACK, small.port))
        await big.send(b"fits", (LOOPBACK, small.port))
        assert await small.__anext__() == trionet.Datagram(b"fits", big.local_address)
        assert small.statistics().truncated == 1


async def test_busy_port_names_the_address() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as first:
        with pytest.raises(trionet.BindError, match=f"{LOOPBACK}:{first.port}") as info:
            async with trionet.open_udp_socket(LOOPBACK, first.port):
                pass
        assert info.value.errno == errno.EADDRINUSE


async def test_connected_mode_and_port_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind((LOOPBACK, 0))
        dead_port = closed.getsockname()[1]
    async with trionet.open_udp_socket(LOOPBACK) as peer, trionet.open_udp_socket(LOOPBACK) as sock:
        await sock.connect(LOOPBACK, peer.port)
        assert sock.remote_address == (LOOPBACK, peer.port)
        await sock.send(b"hello")
        assert (await peer.__anext__()).data == b"hello"
        with pytest.raises(ValueError, match="connected"):
            await sock.send(b"x", (LOOPBACK, peer.port))
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        await sock.connect(LOOPBACK, dead_port)
        await sock.send(b"anyone?")
        with pytest.raises(trionet.PortUnreachable):  # the ICMP answer, not silence
            await sock.__anext__()
        # The socket stays usable.
        await sock.send(b"again?")
        with pytest.raises(trionet.PortUnreachable):
            await sock.__anext__()


async def test_connect_udp() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as peer:
        async with await trionet.connect_udp("localhost", peer.port) as sock:
            assert sock.remote_address == (LOOPBACK, peer.port)
            await sock.send("connected")
            dgram = await anext(peer)
            assert dgram == trionet.Datagram(b"connected", sock.local_address)
            await peer.send(b"back", dgram.address)
            assert (await anext(sock)).data == b"back"
        dead_port = peer.port
    async with await trionet.connect_udp(LOOPBACK, dead_port, local_host=LOOPBACK) as sock:
        assert sock.local_address[0] == LOOPBACK
        await sock.send(b"anyone?")
        with pytest.raises(trionet.PortUnreachable):
            await anext(sock)
    with pytest.raises(trionet.ConnectError, match=r"no-such-host\.invalid"):
        await trionet.connect_udp("no-such-host.invalid", 53)


async def test_send_and_receive_are_checkpoints_that_lose_nothing() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK) as a,
        trionet.open_udp_socket(LOOPBACK) as b,
    ):
        with trio.CancelScope() as scope:
            scope.cancel()
            await a.send(b"never sent", (LOOPBACK, b.port))
        await a.send(b"first", (LOOPBACK, b.port))
        await a.send(b"second", (LOOPBACK, b.port))
        await trio.lowlevel.wait_readable(b._sock)  # "first" waits in b's buffer
        with trio.CancelScope() as scope:
            scope.cancel()
            await anext(b)
        assert a.statistics().datagrams_sent == 2
        assert (await anext(b)).data == b"first"  # the cancelled read took nothing
        assert (await anext(b)).data == b"second"
        # A read that finds a datagram waiting is still a checkpoint.
        await a.send(b"third", (LOOPBACK, b.port))
        await trio.lowlevel.wait_readable(b._sock)
        with trio.testing.assert_checkpoints():
            assert (await anext(b)).data == b"third"


async def test_unconnected_send_needs_an_address() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        with pytest.raises(ValueError, match="address"):
            await sock.send(b"where to?")


async def test_close_ends_the_loop() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as sock, trio.open_nursery() as nursery:
        got: list[trionet.Datagram] = []

        async def read() -> None:
            got.extend([dgram async for dgram in sock])

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        await sock.aclose()
    assert got == []


@pytest.mark.skipif(
    not ipv6_loopback_available(socket.SOCK_DGRAM), reason="no IPv6 loopback on this machine"
)
@pytest.mark.parametrize("host", [None, "::"])
async def test_dual_stack_shows_ipv4_peers_as_ipv4(host: str | None) -> None:
    async with (
        trionet.open_udp_socket(host) as any_address,
        trionet.open_udp_socket(LOOPBACK) as v4,
        trionet.open_udp_socket("::1") as v6,
    ):
        await v4.send(b"four", (LOOPBACK, any_address.port))
        dgram = await any_address.__anext__()
        assert dgram.address == (LOOPBACK, v4.port)
        await any_address.send(b"back", dgram.address)
        assert (await v4.__anext__()).data == b"back"
        await v6.send(b"six", ("::1", any_address.port))
        dgram = await any_address.__anext__()
        assert dgram.address[:2] == ("::1", v6.port)


def multicast_works() -> bool:
    """Probe: can this machine deliver loopback multicast to itself?"""
    group = "239.255.42.99"
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("0.0.0.0", 0))
            membership = socket.inet_aton(group) + socket.inet_aton(LOOPBACK)
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            rx.settimeout(1)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
            tx.sendto(b"probe", (group, rx.getsockname()[1]))
            return rx.recv(10) == b"probe"
    except OSError:
        return False


async def test_multicast_on_loopback() -> None:
    if not multicast_works():
        pytest.skip("the kernel does not deliver loopback multicast here (probed)")
    group = "239.255.42.100"
    async with (
        trionet.open_udp_socket(reuse_address=True, family=socket.AF_INET) as rx,
        trionet.open_udp_socket(LOOPBACK) as tx,
    ):
        rx.join_multicast(group, LOOPBACK)
        tx.set_multicast_ttl(1)
        tx.set_multicast_loopback(True)
        tx.set_multicast_interface(LOOPBACK)
        await tx.send(b"to the group", (group, rx.port))
        with trio.fail_after(5):
            assert (await rx.__anext__()).data == b"to the group"
        # Leaving bites: a unicast marker sent after a group datagram arrives
        # first. (IP_MULTICAST_LOOP cannot be shown here: sent out of the
        # loopback interface, the datagram comes back in through it anyway.)
        rx.leave_multicast(group, LOOPBACK)
        await tx.send(b"after leaving", (group, rx.port))
        await tx.send(b"marker", (LOOPBACK, rx.port))
        with trio.fail_after(5):
            assert (await rx.__anext__()).data == b"marker"


NODE_DGRAM_ECHO = """
const dgram = require('dgram');
const s = dgram.createSocket('udp4');
s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
s.bind(0, '127.0.0.1', () => console.log(JSON.stringify({port: s.address().port})));
"""


@pytest.mark.node
async def test_node_dgram_echoes_our_datagrams() -> None:
    node = node_executable()
    async with running([node, "-e", NODE_DGRAM_ECHO]) as (_, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            async with trionet.open_udp_socket(LOOPBACK) as sock:
                for payload in (b"one", "深入浅出Node.js".encode(), b"z" * 60000):
                    await sock.send(payload, (LOOPBACK, port))
                    assert await sock.__anext__() == trionet.Datagram(payload, (LOOPBACK, port))


GROUP6 = "ff12::4242"


def ipv6_multicast_delivers() -> bool:
    """Probe: does this machine deliver IPv6 multicast on the loopback interface?"""
    try:
        index = socket.if_nametoindex("lo")
        with (
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("::", 0))
            group = socket.inet_pton(socket.AF_INET6, GROUP6)
            membership = group + index.to_bytes(4, sys.byteorder)
            rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
            rx.settimeout(1)
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            tx.sendto(b"probe", (GROUP6, rx.getsockname()[1], 0, index))
            return rx.recv(10) == b"probe"
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(socket.SOCK_DGRAM), reason="no IPv6 loopback on this machine"
)


@needs_ipv6
async def test_ipv6_multicast_membership() -> None:
    async with trionet.open_udp_socket("::", family=socket.AF_INET6) as rx:
        # The kernel takes the membership as given (an interface index in the
        # wrong byte order would be "No such device"): joining twice is
        # refused, leaving what was joined works, leaving again is refused.
        rx.join_multicast(GROUP6, "lo")
        with pytest.raises(OSError, match="already in use"):
            rx.join_multicast(GROUP6, "lo")
        rx.leave_multicast(GROUP6, "lo")
        with pytest.raises(OSError, match="Cannot assign"):
            rx.leave_multicast(GROUP6, "lo")


@needs_ipv6
@pytest.mark.skipif(
    not ipv6_multicast_delivers(),
    reason="the kernel does not deliver IPv6 multicast on lo here (probed)",
)
async def test_ipv6_multicast_delivery() -> None:
    async with (
        trionet.open_udp_socket("::", family=socket.AF_INET6) as rx,
        trionet.open_udp_socket("::1") as tx,
    ):
        rx.join_multicast(GROUP6, "lo")
        tx.set_multicast_interface("lo")
        tx.set_multicast_ttl(1)
        await tx.send(b"six", (GROUP6, rx.port, 0, socket.if_nametoindex("lo")))
        with trio.fail_after(5):
            assert (await anext(rx)).data == b"six"
