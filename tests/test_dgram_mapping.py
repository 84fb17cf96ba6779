"""The "Node ``dgram`` → trionet" table in docs/node/dgram.rst, row by row: each test
shows that the trionet form does what the Node event or argument does."""

from __future__ import annotations

import errno
import socket

import pytest
import trio

import trionet
from tests._net import ipv6_loopback_available

LOOPBACK = "127.0.0.1"


async def test_create_socket_udp4_udp6() -> None:
    async with trionet.open_udp_socket(LOOPBACK, family=socket.AF_INET) as udp4:
        assert udp4.local_address == (LOOPBACK, udp4.port)
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback on this machine")
    async with trionet.open_udp_socket("::1", family=socket.AF_INET6) as udp6:
        assert udp6.local_address[:2] == ("::1", udp6.port)


async def test_bind_and_listening() -> None:
    # bind(0) then 'listening': the block starts once the socket is bound, so
    # a datagram sent at once is not lost.
    async with trionet.open_udp_socket(LOOPBACK, 0) as server:
        assert server.port != 0
        async with trionet.open_udp_socket(LOOPBACK) as client:
            await client.send(b"first", (LOOPBACK, server.port))
            with trio.fail_after(5):
                assert (await anext(server)).data == b"first"


async def test_message_and_rinfo() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK) as server,
        trionet.open_udp_socket(LOOPBACK) as client,
    ):
        await client.send("深入浅出Node.js", (LOOPBACK, server.port))
        with trio.fail_after(5):
            dgram = await anext(server)
        msg, (address, port) = dgram.data, dgram.address
        assert msg.decode() == "深入浅出Node.js"
        assert (address, port) == (LOOPBACK, client.port)  # rinfo.address, rinfo.port
        assert len(msg) == 19  # rinfo.size: bytes, not characters


async def test_send_offset_and_length() -> None:
    buf = b"xxHELLOyy"
    offset, length = 2, 5
    async with (
        trionet.open_udp_socket(LOOPBACK) as server,
        trionet.open_udp_socket(LOOPBACK) as client,
    ):
        # A memoryview slice sends part of a buffer without copying it.
        await client.send(memoryview(buf)[offset : offset + length], (LOOPBACK, server.port))
        with trio.fail_after(5):
            assert (await anext(server)).data == b"HELLO"


async def test_send_port_and_address() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK) as server,
        trionet.open_udp_socket(LOOPBACK) as client,
    ):
        await client.send(b"by name", ("localhost", server.port))  # a name is resolved
        with trio.fail_after(5):
            assert (await anext(server)).data == b"by name"


async def test_send_callback() -> None:
    # callback(err, bytes): the await returns when the kernel took the
    # datagram, err is raised from it, and bytes is always the whole payload.
    async with (
        trionet.open_udp_socket(LOOPBACK) as server,
        trionet.open_udp_socket(LOOPBACK, max_datagram_size=1000) as client,
    ):
        await client.send(b"12345", (LOOPBACK, server.port))
        assert client.statistics().bytes_sent == 5
        with pytest.raises(ValueError, match="max_datagram_size"):
            await client.send(b"z" * 1001, (LOOPBACK, server.port))
        assert client.statistics().datagrams_sent == 1


async def test_error() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as taken:
        with pytest.raises(trionet.BindError) as info:
            async with trionet.open_udp_socket(LOOPBACK, taken.port):
                pass
        assert info.value.errno == errno.EADDRINUSE
        assert f"{LOOPBACK}:{taken.port}" in str(info.value)


async def test_close() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as sock, trio.open_nursery() as nursery:
        ended = trio.Event()

        async def loop() -> None:
            async for _ in sock:
                pass
            ended.set()  # Node's 'close'

        nursery.start_soon(loop)
        await trio.testing.wait_all_tasks_blocked()
        await sock.aclose()
        with trio.fail_after(5):
            await ended.wait()
        with pytest.raises(trio.ClosedResourceError):
            await sock.send(b"late", (LOOPBACK, 9))


async def test_address() -> None:
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        address, port = sock.local_address
        assert address == LOOPBACK
        assert port == sock.port > 0


async def test_connect_and_remote_address() -> None:
    async with (
        trionet.open_udp_socket(LOOPBACK) as server,
        trionet.open_udp_socket(LOOPBACK) as stranger,
        await trionet.connect_udp(LOOPBACK, server.port) as client,
    ):
        assert client.remote_address == (LOOPBACK, server.port)
        await client.send(b"no address needed")
        with trio.fail_after(5):
            dgram = await anext(server)
        await stranger.send(b"not my peer", client.local_address)
        await server.send(b"reply", dgram.address)
        with trio.fail_after(5):
            assert (await anext(client)).data == b"reply"
