"""serve_udp: per-peer sessions on the shared server core."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from functools import partial

import pytest
import trio
import trio.testing

import trionet
import trionet.metrics
from tests._wait import wait_until
from trionet.testing import VirtualUDPNetwork

LOOPBACK = "127.0.0.1"


async def echo(peer: trionet.UDPPeer) -> None:
    async for dgram in peer:
        await peer.send(dgram.data)


async def test_each_address_gets_its_own_session(nursery: trio.Nursery) -> None:
    seen: list[trionet.SocketAddress] = []

    async def numbered(peer: trionet.UDPPeer) -> None:
        seen.append(peer.remote_address)
        count = 0
        async for dgram in peer:
            count += 1
            await peer.send(b"%d:" % count + dgram.data)

    server = await nursery.start(trionet.serve_udp, numbered, 0, LOOPBACK)
    async with (
        trionet.open_udp_socket(LOOPBACK) as a,
        trionet.open_udp_socket(LOOPBACK) as b,
    ):
        for sock in (a, b, a):
            await sock.send(b"hi", (LOOPBACK, server.port))
            await sock.__anext__()
        await a.send(b"again", (LOOPBACK, server.port))
        assert (await a.__anext__()).data == b"3:again"
        assert seen == [a.local_address, b.local_address]
    stats = server.statistics()
    assert (stats.accepted, stats.active) == (2, 2)
    assert stats.bytes_received == len(b"hi" * 3 + b"again")


async def test_idle_peer_loop_ends(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    net = VirtualUDPNetwork()  # virtual time needs a virtual network
    ended_at: list[float] = []

    async def handler(peer: trionet.UDPPeer) -> None:
        async for _ in peer:
            pass
        ended_at.append(trio.current_time())

    server = await nursery.start(partial(net.serve_udp, handler, 0, LOOPBACK, idle_timeout=30))
    async with net.open_udp_socket(LOOPBACK) as sock:
        start = trio.current_time()
        await sock.send(b"x", (LOOPBACK, server.port))
        await wait_until(lambda: server.statistics().active == 1)
        await trio.sleep(20)
        await sock.send(b"still here", (LOOPBACK, server.port))  # pushes the expiry back
        await wait_until(lambda: server.statistics().active == 0)
    assert ended_at[0] - start == pytest.approx(50, abs=1)


async def test_max_peers_drops_new_addresses(nursery: trio.Nursery) -> None:
    server = await nursery.start(partial(trionet.serve_udp, echo, 0, LOOPBACK, max_peers=1))
    async with (
        trionet.open_udp_socket(LOOPBACK) as first,
        trionet.open_udp_socket(LOOPBACK) as second,
    ):
        # Two exchanges: a peer that came back is never made room with.
        for data in (b"1", b"1 once more"):
            await first.send(data, (LOOPBACK, server.port))
            assert (await first.__anext__()).data == data
        await second.send(b"2", (LOOPBACK, server.port))
        await second.send(b"2", (LOOPBACK, server.port))
        await wait_until(lambda: server.statistics().dropped == 2)
        await first.send(b"1 again", (LOOPBACK, server.port))  # the first is unharmed
        assert (await first.__anext__()).data == b"1 again"
    assert server.statistics().active == 1
    assert server.socket_statistics().dropped == 2  # the datagrams, seen from the socket


async def test_a_full_queue_drops_that_peers_datagrams_only(nursery: trio.Nursery) -> None:
    release = trio.Event()
    peers: dict[trionet.SocketAddress, trionet.UDPPeer] = {}

    async def slow(peer: trionet.UDPPeer) -> None:
        peers[peer.remote_address] = peer
        if len(peers) == 1:
            await release.wait()  # the first peer's handler stalls
        async for dgram in peer:
            await peer.send(dgram.data)

    server = await nursery.start(partial(trionet.serve_udp, slow, 0, LOOPBACK, queue_size=2))
    async with (
        trionet.open_udp_socket(LOOPBACK) as stalled,
        trionet.open_udp_socket(LOOPBACK) as lively,
    ):
        for i in range(5):
            await stalled.send(b"%d" % i, (LOOPBACK, server.port))
        await wait_until(lambda: stalled.local_address in peers)
        await wait_until(lambda: peers[stalled.local_address].statistics().dropped == 3)
        await lively.send(b"fine", (LOOPBACK, server.port))
        assert (await lively.__anext__()).data == b"fine"  # not held up
        release.set()
        got = [(await stalled.__anext__()).data for _ in range(2)]
    assert got == [b"0", b"1"]  # the queue kept the first two
    assert server.socket_statistics().dropped == 3


async def test_max_queued_bytes_bounds_all_queues_together(nursery: trio.Nursery) -> None:
    release = trio.Event()
    received: list[bytes] = []

    async def stalled(peer: trionet.UDPPeer) -> None:
        await release.wait()
        received.extend([dgram.data async for dgram in peer])

    server = await nursery.start(
        partial(trionet.serve_udp, stalled, 0, LOOPBACK, max_queued_bytes=1000, idle_timeout=1)
    )
    async with (
        trionet.open_udp_socket(LOOPBACK) as first,
        trionet.open_udp_socket(LOOPBACK) as second,
    ):
        for i in range(5):
            await first.send(b"%d" % i * 300, (LOOPBACK, server.port))
        await wait_until(lambda: server.socket_statistics().datagrams_received == 5)
        await second.send(b"s" * 300, (LOOPBACK, server.port))  # another peer: no room either
        await wait_until(lambda: server.socket_statistics().datagrams_received == 6)
        assert server.socket_statistics().dropped == 3
        release.set()
        await wait_until(lambda: server.statistics().active == 0)
    assert received == [b"0" * 300, b"1" * 300, b"2" * 300]


async def test_datagrams_a_session_never_read_are_counted_as_dropped(
    nursery: trio.Nursery,
) -> None:
    sessions: list[trionet.UDPPeer] = []
    gate = trio.Event()

    async def reads_one(peer: trionet.UDPPeer) -> None:
        sessions.append(peer)
        await gate.wait()
        await anext(peer)  # then returns, leaving the rest unread

    server = await nursery.start(trionet.serve_udp, reads_one, 0, LOOPBACK)
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        for i in range(4):
            await sock.send(b"%d" % i, (LOOPBACK, server.port))
        await wait_until(lambda: server.socket_statistics().datagrams_received == 4)
        gate.set()
        await wait_until(lambda: server.statistics().active == 0)
    assert sessions[0].statistics().dropped == 3
    assert server.socket_statistics().dropped == 3


async def test_handler_crash_is_isolated(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def fragile(peer: trionet.UDPPeer) -> None:
        async for dgram in peer:
            if dgram.data == b"boom":
                raise RuntimeError("udp handler bug")
            await peer.send(dgram.data)

    server = await nursery.start(trionet.serve_udp, fragile, 0, LOOPBACK)
    with caplog.at_level(logging.ERROR, logger="trionet.udp"):
        async with trionet.open_udp_socket(LOOPBACK) as sock:
            await sock.send(b"boom", (LOOPBACK, server.port))
            await wait_until(lambda: server.statistics().handler_errors == 1)
            await sock.send(b"new session", (LOOPBACK, server.port))
            assert (await sock.__anext__()).data == b"new session"
    assert any("udp handler bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_graceful_shutdown_lets_peers_say_goodbye(nursery: trio.Nursery) -> None:
    async def polite(peer: trionet.UDPPeer) -> None:
        async for _ in peer:
            pass
        assert peer.shutdown_requested
        await peer.send(b"bye")

    server = await nursery.start(trionet.serve_udp, polite, 0, LOOPBACK)
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        await sock.send(b"hello", (LOOPBACK, server.port))
        await wait_until(lambda: server.statistics().active == 1)
        with trio.fail_after(5):
            await server.shutdown(grace=60)
            assert (await sock.__anext__()).data == b"bye"
    assert server.statistics().active == 0


async def test_the_fixture_starts_a_loopback_server(trionet_udp_server) -> None:
    server = await trionet_udp_server(echo)
    assert isinstance(server, trionet.UDPServer)
    async with await trionet.connect_udp(LOOPBACK, server.port) as sock:
        await sock.send(b"fixture")
        assert await anext(sock) == trionet.Datagram(b"fixture", (LOOPBACK, server.port))


async def test_bad_udp_server_options() -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        await trionet.serve_udp(echo, 0, LOOPBACK, idle_timeout=0)
    with pytest.raises(ValueError, match="queue_size"):
        await trionet.serve_udp(echo, 0, LOOPBACK, queue_size=0)
    with pytest.raises(ValueError, match="max_peers"):
        await trionet.serve_udp(echo, 0, LOOPBACK, max_peers=0)
    with pytest.raises(ValueError, match="max_queued_bytes"):
        await trionet.serve_udp(echo, 0, LOOPBACK, max_queued_bytes=0)


async def test_one_datagram_peers_make_room_for_a_real_new_peer(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # A flood of spoofable one-datagram sources fills max_peers; they never
    # send a second datagram (they never see the answers). A real new peer is
    # served at once, not after idle_timeout, and the peers that talk stay.
    server = await nursery.start(
        partial(trionet.serve_udp, echo, 0, LOOPBACK, max_peers=20, idle_timeout=120)
    )
    target = (LOOPBACK, server.port)
    async with trionet.open_udp_socket(LOOPBACK) as talker:
        for data in (b"hello", b"again"):
            await talker.send(data, target)
            assert (await talker.__anext__()).data == data
        flood = [trionet.open_udp_socket(LOOPBACK) for _ in range(40)]
        sockets = [await opener.__aenter__() for opener in flood]
        try:
            for index, sock in enumerate(sockets):
                await sock.send(b"spoofed %d" % index, target)
            await wait_until(lambda: server.statistics().accepted == 41)
            async with trionet.open_udp_socket(LOOPBACK) as real:
                with trio.fail_after(5):
                    await real.send(b"real", target)
                    assert (await real.__anext__()).data == b"real"
                    await real.send(b"real again", target)
                    assert (await real.__anext__()).data == b"real again"
            # The peer that talked was not pushed out by the flood.
            await talker.send(b"still here", target)
            assert (await talker.__anext__()).data == b"still here"
        finally:
            for opener in flood:
                await opener.__aexit__(None, None, None)
    stats = server.statistics()
    assert stats.evicted_idle == 22  # 21 floods over the cap, then the real peer
    assert stats.dropped == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited: one record for the whole burst
    assert "max_connections=20 reached" in warnings[0].getMessage()


# -- serving a socket bound elsewhere --------------------------------------------------


async def test_serve_udp_serves_a_socket_bound_elsewhere(nursery: trio.Nursery) -> None:
    from prometheus_client import generate_latest

    metrics = trionet.metrics.Metrics()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    address = sock.getsockname()
    # port and host are ignored: this host is not ours, binding it would fail.
    server = await nursery.start(
        partial(trionet.serve_udp, echo, 9, "192.0.2.1", sockets=[sock], metrics=metrics)
    )
    assert server.addresses == [address]
    assert server.port == address[1]
    async with trionet.open_udp_socket(LOOPBACK) as client:
        for payload in (b"one", b"two"):
            await client.send(payload, address)
            assert await anext(client) == trionet.Datagram(payload, address)
    await wait_until(lambda: server.socket_statistics().datagrams_sent == 2)
    assert server.socket_statistics().datagrams_received == 2
    assert server.statistics().accepted == 1  # one session
    exposition = generate_latest(metrics.registry).decode()
    label = f'server="udp server {LOOPBACK}:{address[1]}"'
    assert f"trionet_udp_datagrams_received_total{{{label}}} 2.0" in exposition
    # The server owns the socket: closed when it stops.
    await server.shutdown()
    assert sock.fileno() == -1


def _tcp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    return sock


def _unbound() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def _unix_datagram() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)


def _closed() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.close()
    return sock


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_tcp, "needs a UDP socket .* not stream socket 127.0.0.1:"),
        (_unix_datagram, "needs a UDP socket"),
        (_unbound, r"needs a bound socket \(call bind\(\) first\)"),
        (_closed, "needs an open socket"),
    ],
    ids=["tcp", "unix_datagram", "unbound", "closed"],
)
async def test_serve_udp_refuses_a_socket_that_is_not_bound_udp(
    make: Callable[[], socket.socket], match: str
) -> None:
    sock = make()
    try:
        with pytest.raises(ValueError, match=match):
            await trionet.serve_udp(echo, 0, sockets=[sock])
        if make is not _closed:
            assert sock.fileno() != -1  # refused, so still the caller's
    finally:
        sock.close()


async def test_serve_udp_takes_one_socket_in_a_sequence() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second,
    ):
        first.bind((LOOPBACK, 0))
        second.bind((LOOPBACK, 0))
        with pytest.raises(ValueError, match=r"exactly one UDP socket .* not 2"):
            await trionet.serve_udp(echo, 0, sockets=[first, second])
        with pytest.raises(ValueError, match=r"exactly one UDP socket .* not 0"):
            await trionet.serve_udp(echo, 0, sockets=[])
        with pytest.raises(TypeError, match=r"sequence of one socket \(\[sock\]\)"):
            await trionet.serve_udp(echo, 0, sockets=first)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"sequence of one socket\.socket"):
            await trionet.serve_udp(echo, 0, sockets="first")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"must hold a socket\.socket"):
            await trionet.serve_udp(echo, 0, sockets=[first.fileno()])  # type: ignore[list-item]
        # A refused call leaves the sockets to their owner, still open.
        assert first.fileno() != -1
        assert second.fileno() != -1
