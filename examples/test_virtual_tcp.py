"""Testing a protocol of your own on a virtual TCP network: the real
trionet servers and clients, with latency, segmentation, a peer that stops
reading and a reset mid-stream, deterministic, in virtual time.

    uv run pytest examples/test_virtual_tcp.py
"""

from functools import partial

import pytest
import trio
import trio.testing

import trionet
from trionet.testing import VirtualTCPNetwork


async def line_upper(conn: trionet.TCPConnection) -> None:
    """The protocol under test: answer each line in capitals."""
    pending = b""
    async for event in conn:
        if isinstance(event, trionet.Data):
            pending += event.data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                await conn.send(line.upper() + b"\n")


async def read_line(conn: trionet.TCPConnection) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        event = await anext(conn)
        assert isinstance(event, trionet.Data)
        line += event.data
    return line


async def test_lines_cut_anywhere_arrive_whole(autojump_clock: trio.testing.MockClock) -> None:
    # Every send is cut into pieces of 1 to 3 bytes, the same ones for seed 7.
    net = VirtualTCPNetwork(seed=7, latency=0.02, max_segment_size=3)
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, line_upper, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                start = trio.current_time()
                await conn.send(b"hello, virtual network\n")
                assert await read_line(conn) == b"HELLO, VIRTUAL NETWORK\n"
                # There and back: twice the latency, in virtual time.
                assert trio.current_time() - start == pytest.approx(0.04)
            nursery.cancel_scope.cancel()


async def test_a_client_that_stops_reading_holds_the_server_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = VirtualTCPNetwork(buffer_size=4096)
    with net.install():
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.serve_tcp, line_upper, 0, "127.0.0.1"))
            async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
                # Never reading the answers: once both directions are full, the
                # server waits in send() and the client's send() waits too.
                with trio.move_on_after(60) as waited:
                    while True:
                        await conn.send(b"x" * 99 + b"\n")
                assert waited.cancelled_caught
                (link,) = net.connections()
                link.reset()  # give up: an RST mid-stream
                with pytest.raises(trionet.ConnectionReset):
                    await anext(conn)
            nursery.cancel_scope.cancel()
    assert net.statistics().reset == 1
