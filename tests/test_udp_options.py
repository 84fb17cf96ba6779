"""Each ``open_udp_socket`` option shown to have the effect a user would
notice: port sharing (``reuse_port``, ``reuse_address``), broadcast, the
kernel's buffer sizes, the address family, the datagram size limit, and the
arguments refused."""

from __future__ import annotations

import errno
import socket
import sys

import pytest
import trio

import trionet
from tests._net import ipv6_loopback_available

LOOPBACK = "127.0.0.1"
# lo is 127.0.0.1/8 on Linux, so this is its broadcast address: datagrams sent
# there stay on loopback and reach sockets bound to 0.0.0.0 (or to it).
BROADCAST = "127.255.255.255"

# Seconds without a datagram after which a burst is taken to be over. Only
# ever used to stop waiting for datagrams the kernel dropped, never asserted.
QUIET = 0.5

needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(socket.SOCK_DGRAM),
    reason="no IPv6 loopback on this machine (probed: cannot bind a UDP socket to ::1)",
)
linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="checks Linux's socket buffer accounting"
)


def raw_option(sock: trionet.UDPSocket, option: int) -> int:
    """A ``SOL_SOCKET`` option as the kernel holds it for ``sock``."""
    value: int = sock._sock.getsockopt(socket.SOL_SOCKET, option)
    return value


def default_buffer(option: int) -> int:
    """The buffer size a socket gets when nobody asks (``rmem_default``...)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        value: int = sock.getsockopt(socket.SOL_SOCKET, option)
        return value


async def drain(sock: trionet.UDPSocket) -> int:
    """Read until the socket stays quiet for ``QUIET`` seconds; return how many
    datagrams arrived."""
    count = 0
    while True:
        with trio.move_on_after(QUIET):
            await sock.__anext__()
            count += 1
            continue
        return count


async def receive_exactly(sock: trionet.UDPSocket, count: int) -> None:
    """Read ``count`` datagrams; fail if they do not all come."""
    with trio.fail_after(10):
        for _ in range(count):
            await sock.__anext__()


# -- reuse_port ---------------------------------------------------------------


async def test_reuse_port_lets_sockets_share_a_port_and_spreads_datagrams() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK, reuse_port=True) as a,
        trionet.open_udp_socket(LOOPBACK, a.port, reuse_port=True) as b,
    ):
        assert a.port == b.port
        got: dict[str, int] = {"a": 0, "b": 0}
        senders = 32
        all_in = trio.Event()

        async def count(name: str, sock: trionet.UDPSocket) -> None:
            async for _ in sock:
                got[name] += 1
                if got["a"] + got["b"] >= senders:
                    all_in.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(count, "a", a)
            nursery.start_soon(count, "b", b)
            # The kernel picks the socket by a hash of the sender's address:
            # 32 senders all landing on one socket has odds of 2**-31.
            for _ in range(senders):
                async with trionet.open_udp_socket(LOOPBACK) as sender:
                    await sender.send(b"hi", (LOOPBACK, a.port))
            with trio.fail_after(10):
                await all_in.wait()
            nursery.cancel_scope.cancel()
    assert got["a"] + got["b"] == senders  # one copy each, not one per socket
    assert got["a"] > 0
    assert got["b"] > 0


@pytest.mark.parametrize(
    ("first", "second"), [(False, False), (True, False), (False, True)], ids=str
)
async def test_without_reuse_port_on_both_the_port_is_busy(first: bool, second: bool) -> None:
    async with trionet.open_udp_socket(LOOPBACK, reuse_port=first) as a:
        with pytest.raises(trionet.BindError, match=f"address already in use: {LOOPBACK}:{a.port}"):
            async with trionet.open_udp_socket(LOOPBACK, a.port, reuse_port=second):
                pass


# -- reuse_address ------------------------------------------------------------
#
# On Linux, SO_REUSEADDR on UDP lets several sockets bind the same address and
# port when every one of them sets it (unlike TCP, where it is about
# TIME_WAIT). Broadcast and multicast datagrams are then delivered to each of
# them (several listeners on one well-known port); a unicast datagram goes to
# one only (in practice the last one bound, which nothing promises).


def broadcast_works() -> bool:
    """Probe: is ``BROADCAST`` a broadcast address here (refused without
    ``SO_BROADCAST``) that the kernel delivers on loopback (with it)?"""
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.bind(("0.0.0.0", 0))
            rx.settimeout(1)
            tx.bind((LOOPBACK, 0))
            target = (BROADCAST, rx.getsockname()[1])
            try:
                tx.sendto(b"probe", target)
            except PermissionError:
                pass
            else:
                return False  # not a broadcast address: the test would prove nothing
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            tx.sendto(b"probe", target)
            return rx.recv(10) == b"probe"
    except OSError:
        return False


@pytest.fixture
def broadcast_address() -> str:
    if not broadcast_works():
        pytest.skip(
            f"the kernel does not treat {BROADCAST} as a broadcast address delivered on "
            "loopback here (probed)"
        )
    return BROADCAST


@pytest.mark.parametrize(
    ("first", "second"), [(False, False), (True, False), (False, True)], ids=str
)
async def test_without_reuse_address_on_both_the_port_is_busy(first: bool, second: bool) -> None:
    async with trionet.open_udp_socket(LOOPBACK, reuse_address=first) as a:
        with pytest.raises(trionet.BindError, match=f"{LOOPBACK}:{a.port}") as info:
            async with trionet.open_udp_socket(LOOPBACK, a.port, reuse_address=second):
                pass
    assert info.value.errno == errno.EADDRINUSE


async def test_reuse_address_listeners_each_get_a_broadcast(broadcast_address: str) -> None:
    async with (
        trionet.open_udp_socket(family=socket.AF_INET, reuse_address=True) as a,
        trionet.open_udp_socket(None, a.port, family=socket.AF_INET, reuse_address=True) as b,
        trionet.open_udp_socket(LOOPBACK, broadcast=True) as sender,
    ):
        assert a.local_address == b.local_address == ("0.0.0.0", a.port)
        await sender.send(b"to everyone", (broadcast_address, a.port))
        expected = trionet.Datagram(b"to everyone", (LOOPBACK, sender.port))
        with trio.fail_after(10):
            assert await a.__anext__() == expected
            assert await b.__anext__() == expected


# -- broadcast ----------------------------------------------------------------


async def test_broadcast_needs_the_option(broadcast_address: str) -> None:
    async with (
        trionet.open_udp_socket(family=socket.AF_INET) as listener,
        trionet.open_udp_socket(LOOPBACK) as sender,
    ):
        target = (broadcast_address, listener.port)
        with pytest.raises(PermissionError) as info:
            await sender.send(b"refused", target)
        assert info.value.errno == errno.EACCES
        stats = sender.statistics()
        assert (stats.send_errors, stats.datagrams_sent) == (1, 0)

        sender.set_broadcast()
        await sender.send(b"allowed", target)
        with trio.fail_after(10):
            assert await listener.__anext__() == trionet.Datagram(
                b"allowed", (LOOPBACK, sender.port)
            )

        sender.set_broadcast(False)
        with pytest.raises(PermissionError):
            await sender.send(b"refused again", target)
        stats = sender.statistics()
        assert (stats.send_errors, stats.datagrams_sent) == (2, 1)

        async with trionet.open_udp_socket(LOOPBACK, broadcast=True) as opened_with_it:
            await opened_with_it.send(b"from the start", target)
            with trio.fail_after(10):
                assert await listener.__anext__() == trionet.Datagram(
                    b"from the start", (LOOPBACK, opened_with_it.port)
                )


# -- receive_buffer_size / send_buffer_size ----------------------------------
#
# A 1000-byte datagram costs the receiving socket its payload plus ~1.3 KB of
# kernel bookkeeping on Linux (skb "truesize", about 2.3 KB); 4096 per datagram
# is a safe upper bound, the payload a safe lower bound. Linux doubles the
# SO_RCVBUF/SO_SNDBUF asked for (the bookkeeping allowance) and caps the
# request at net.core.rmem_max / wmem_max.

PAYLOAD = b"d" * 1000
TRUESIZE_AT_MOST = 4096


@linux_only
async def test_a_tiny_receive_buffer_drops_a_burst_the_default_keeps() -> None:
    # Few enough datagrams that a default-sized buffer surely holds them all.
    burst = min(50, default_buffer(socket.SO_RCVBUF) // TRUESIZE_AT_MOST)
    assert burst >= 10, "rmem_default too small for this test"
    async with (
        trionet.open_udp_socket(LOOPBACK, receive_buffer_size=4096) as tiny,
        trionet.open_udp_socket(LOOPBACK) as default,
        trionet.open_udp_socket(LOOPBACK) as sender,
    ):
        assert raw_option(tiny, socket.SO_RCVBUF) == 2 * 4096
        # Neither socket reads while the burst is sent.
        for _ in range(burst):
            await sender.send(PAYLOAD, (LOOPBACK, tiny.port))
            await sender.send(PAYLOAD, (LOOPBACK, default.port))
        await receive_exactly(default, burst)
        received = await drain(tiny)
    assert 0 < received < burst, f"{received} of {burst} datagrams arrived"


LARGE_BUFFER = 1 << 20


@pytest.fixture
def large_burst() -> int:
    """How many datagrams a ``LARGE_BUFFER`` surely holds, when that many are
    more than a default buffer can; skip (from outside trio, so pytest shows
    why) when net.core.rmem_max leaves no such number."""
    default_size = default_buffer(socket.SO_RCVBUF)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LARGE_BUFFER)
        granted: int = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Few enough for the loopback backlog (net.core.netdev_max_backlog, 1000).
    burst = min(400, granted // TRUESIZE_AT_MOST)
    # The kernel lets at most one datagram past a full buffer, and each costs
    # more than its payload: this many payloads overflow the default for sure.
    if (burst - 1) * len(PAYLOAD) <= default_size:
        pytest.skip(
            f"net.core.rmem_max caps a {LARGE_BUFFER}-byte receive buffer at {granted} "
            f"bytes: too close to the default {default_size} for a burst to tell them apart"
        )
    return burst


@linux_only
async def test_a_large_receive_buffer_keeps_a_burst_the_default_drops(large_burst: int) -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK, receive_buffer_size=LARGE_BUFFER) as large,
        trionet.open_udp_socket(LOOPBACK) as default,
        trionet.open_udp_socket(LOOPBACK) as sender,
    ):
        for _ in range(large_burst):
            await sender.send(PAYLOAD, (LOOPBACK, large.port))
            await sender.send(PAYLOAD, (LOOPBACK, default.port))
        await receive_exactly(large, large_burst)
        received = await drain(default)
    assert received < large_burst, f"the default buffer held all {large_burst} datagrams"


@linux_only
async def test_send_buffer_size_reaches_the_socket() -> None:
    # No effect a test can see on loopback: a datagram leaves the send buffer
    # as soon as it is sent, and one larger than the buffer still goes (the
    # limit bounds what is queued, not one datagram). So check the kernel got it.
    assert default_buffer(socket.SO_SNDBUF) != 2 * 4096
    async with (
        trionet.open_udp_socket(LOOPBACK, send_buffer_size=4096) as small,
        trionet.open_udp_socket(LOOPBACK) as receiver,
    ):
        assert raw_option(small, socket.SO_SNDBUF) == 2 * 4096
        await small.send(b"s" * 60000, (LOOPBACK, receiver.port))
        with trio.fail_after(10):
            assert (await receiver.__anext__()).data == b"s" * 60000


@linux_only
async def test_buffer_sizes_left_out_keep_the_systems() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        assert raw_option(sock, socket.SO_RCVBUF) == default_buffer(socket.SO_RCVBUF)
        assert raw_option(sock, socket.SO_SNDBUF) == default_buffer(socket.SO_SNDBUF)


@pytest.mark.parametrize("option", ["receive_buffer_size", "send_buffer_size"])
async def test_a_negative_buffer_size_is_refused(option: str) -> None:
    # Node's dgram throws ERR_SOCKET_BAD_BUFFER_SIZE; open_udp_socket documents
    # "ValueError: An argument is out of range".
    with pytest.raises(ValueError, match=option):
        async with trionet.open_udp_socket(LOOPBACK, **{option: -1}):  # type: ignore[arg-type]
            pass


# -- family -------------------------------------------------------------------


async def test_family_inet_binds_ipv4_only() -> None:
    async with trionet.open_udp_socket(family=socket.AF_INET) as sock:
        assert sock.local_address == ("0.0.0.0", sock.port)
        async with trionet.open_udp_socket(LOOPBACK) as sender:
            await sender.send(b"four", (LOOPBACK, sock.port))
            with trio.fail_after(10):
                assert await sock.__anext__() == trionet.Datagram(b"four", sender.local_address)


@needs_ipv6
async def test_family_inet6_binds_ipv6_dual_stack_for_any_address() -> None:
    async with (
        trionet.open_udp_socket(family=socket.AF_INET6) as sock,
        trionet.open_udp_socket(LOOPBACK) as v4,
        trionet.open_udp_socket("::1") as v6,
    ):
        assert sock.local_address == ("::", sock.port, 0, 0)
        await v4.send(b"four", (LOOPBACK, sock.port))
        await v6.send(b"six", ("::1", sock.port))
        with trio.fail_after(10):
            got = {await sock.__anext__(), await sock.__anext__()}
        assert got == {
            trionet.Datagram(b"four", (LOOPBACK, v4.port)),
            trionet.Datagram(b"six", ("::1", v6.port, 0, 0)),
        }


@needs_ipv6
async def test_family_inet6_with_ipv6_loopback() -> None:
    async with trionet.open_udp_socket("::1", family=socket.AF_INET6) as sock:
        assert sock.local_address == ("::1", sock.port, 0, 0)


@pytest.mark.parametrize(
    ("host", "family", "shown"),
    [("::1", socket.AF_INET, r"\[::1\]:0"), (LOOPBACK, socket.AF_INET6, r"127\.0\.0\.1:0")],
    ids=["ipv6-host-as-inet", "ipv4-host-as-inet6"],
)
async def test_a_family_the_host_is_not_is_a_bind_error(host: str, family: int, shown: str) -> None:
    with pytest.raises(trionet.BindError, match=f"cannot bind {shown}") as info:
        async with trionet.open_udp_socket(host, family=family):
            pass
    assert info.value.errno == errno.EADDRNOTAVAIL


@needs_ipv6
async def test_dual_stack_socket_sends_to_a_name() -> None:
    async with (
        trionet.open_udp_socket() as sock,
        trionet.open_udp_socket(LOOPBACK) as receiver,
    ):
        await sock.send(b"by name", ("localhost", receiver.port))
        with trio.fail_after(10):
            assert (await receiver.__anext__()).data == b"by name"


# -- max_datagram_size and bad arguments ----------------------------------------


@pytest.mark.parametrize("size", [0, -1, 65536])
async def test_max_datagram_size_out_of_range(size: int) -> None:
    with pytest.raises(ValueError, match="max_datagram_size"):
        async with trionet.open_udp_socket(LOOPBACK, max_datagram_size=size):
            pass


async def test_max_datagram_size_of_one() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK, max_datagram_size=1) as sock,
        trionet.open_udp_socket(LOOPBACK) as peer,
    ):
        await sock.send(b"a", (LOOPBACK, peer.port))
        with trio.fail_after(10):
            assert (await peer.__anext__()).data == b"a"
        with pytest.raises(ValueError, match="max_datagram_size=1"):
            await sock.send(b"ab", (LOOPBACK, peer.port))
        await peer.send(b"ab", (LOOPBACK, sock.port))  # too large: counted, skipped
        await peer.send(b"b", (LOOPBACK, sock.port))
        with trio.fail_after(10):
            assert await sock.__anext__() == trionet.Datagram(b"b", peer.local_address)
        stats = sock.statistics()
        assert (stats.truncated, stats.datagrams_received, stats.datagrams_sent) == (1, 1, 1)


async def test_max_datagram_size_of_65535_is_accepted() -> None:
    async with trionet.open_udp_socket(LOOPBACK, max_datagram_size=65535) as sock:
        # Over the IPv4 ceiling (65507): trionet lets it through, the kernel refuses.
        with pytest.raises(OSError, match="too long") as info:
            await sock.send(b"x" * 65508, (LOOPBACK, sock.port))
        assert info.value.errno == errno.EMSGSIZE
        assert sock.statistics().send_errors == 1


@pytest.mark.parametrize("port", [-1, 65536, 70000])
async def test_port_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match=f"port must be in 0..65535, not {port}"):
        async with trionet.open_udp_socket(LOOPBACK, port):
            pass
