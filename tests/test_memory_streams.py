"""trionet.testing's bounded in-memory streams against trio's own stream
conformance checks."""

from __future__ import annotations

import trio
import trio.testing

from trionet.testing import MemoryStream, memory_stream_pair


async def test_memory_streams_pass_trios_half_closeable_stream_checks() -> None:
    async def make_pair() -> tuple[MemoryStream, MemoryStream]:
        return memory_stream_pair()

    async def make_clogged_pair() -> tuple[MemoryStream, MemoryStream]:
        left, right = memory_stream_pair(buffer_size=1)
        await left.send_all(b"x")  # both buffers full: the next send blocks
        await right.send_all(b"x")
        return left, right

    with trio.fail_after(30):
        await trio.testing.check_half_closeable_stream(make_pair, make_clogged_pair)
