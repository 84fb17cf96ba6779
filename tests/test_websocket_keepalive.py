"""Keepalive pings come from one timer per trio run (trionet/websocket/
_keepalive.py), not from a sleeping task per connection: each connection
still pings on its own ``ping_interval``, and a connection that ended is
neither pinged nor kept in memory by the timer. In-memory streams on
``autojump_clock``: the times asserted are virtual, hence exact."""

from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing

from tests._ws import MEMORY_URL, memory_connects, start_ws_in_memory
from trionet.websocket import Ping, WebSocketConnection, connect


async def test_each_connection_pings_on_its_own_interval(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: dict[str, list[float]] = {}
    start = trio.current_time()

    async def record(ws: WebSocketConnection) -> None:
        times = pings.setdefault(ws.path, [])
        async for event in ws.events():
            if isinstance(event, Ping):
                times.append(round(trio.current_time() - start, 3))

    _, listener = await start_ws_in_memory(nursery, record, ping_interval=None, control_events=True)
    memory_connects(monkeypatch, listener)
    async with (
        connect(MEMORY_URL + "three", ping_interval=3) as three,
        connect(MEMORY_URL + "seven", ping_interval=7) as seven,
    ):
        await trio.sleep(22)
        assert three.statistics().pings_sent == 7
        assert seven.statistics().pings_sent == 3
    # Each next ping is one interval after the last pong (which came at once).
    assert pings == {
        "/three": [3, 6, 9, 12, 15, 18, 21],
        "/seven": [7, 14, 21],
    }


async def test_an_ended_connection_is_not_pinged_nor_kept_by_the_timer(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended: list[weakref.ref[WebSocketConnection]] = []
    pinged_after_close = trio.Event()

    async def until_closed(ws: WebSocketConnection) -> None:
        async for event in ws.events():
            if isinstance(event, Ping):
                pinged_after_close.set()

    _, listener = await start_ws_in_memory(
        nursery, until_closed, ping_interval=None, control_events=True
    )
    memory_connects(monkeypatch, listener)
    for _ in range(3):
        async with connect(MEMORY_URL, ping_interval=60) as ws:
            ended.append(weakref.ref(ws))
    del ws
    await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    # Freed long before their pings would have been due.
    assert [ref() for ref in ended] == [None, None, None]
    with trio.move_on_after(120):
        await pinged_after_close.wait()
    assert not pinged_after_close.is_set()
