"""Property-based checks of the byte stream contract (hypothesis)."""

from __future__ import annotations

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import trionet
from trionet.testing import memory_tcp_pair

chunks = st.lists(st.binary(min_size=0, max_size=2048), max_size=20)


@settings(max_examples=50, deadline=None)
@given(chunks)
def test_whatever_the_chunking_the_bytes_arrive_whole_and_in_order(pieces: list[bytes]) -> None:
    async def main() -> tuple[bytes, list[trionet.StreamEvent], trionet.ConnectionStatistics]:
        client, server = memory_tcp_pair()
        async with client, server:
            for piece in pieces:
                await client.send(piece)
            await client.send_eof()
            events = [event async for event in server]
            received = b"".join(e.data for e in events if isinstance(e, trionet.Data))
            return received, events, server.statistics()

    received, events, stats = trio.run(main)
    assert received == b"".join(pieces)
    assert events[-1] == trionet.EndOfStream()
    assert all(isinstance(e, trionet.Data) and e.data for e in events[:-1])
    assert stats.bytes_received == len(received)
