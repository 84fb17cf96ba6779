"""When each WebSocket sends its next keepalive ping: one timer for all the
connections of a trio run, instead of a sleeping task per connection.

An idle WebSocket used to hold three tasks: its HTTP connection's, its reader
and a pinger that slept ``ping_interval`` seconds at a time. The pinger alone
(its task, coroutine frames and two cancel scopes) was about a sixth of an
idle connection's memory. Here one system task per run keeps a heap of due
times and, when a connection's ping is due, starts a short task in that
connection's own nursery to send the ping and wait for its pong
(:meth:`WebSocketConnection._keepalive_round`); the round schedules the next
one when it ends. Idle connections hold no task for keepalive, only an entry
in the heap.

A connection is taken off by setting its ``_keepalive_due`` to ``None``;
stale heap entries (whose time is not the connection's due time any more)
are dropped when they come up, so nothing is searched. The heap holds weak
references: a connection that ended is freed at once, not kept until its
entry comes up (with many short connections, that would be every connection
of the last ``ping_interval``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import weakref
from typing import Protocol

import trio

__all__ = ["Pinged", "schedule"]

logger = logging.getLogger("trionet.websocket")


class Pinged(Protocol):
    """What the timer needs of a connection."""

    _keepalive_due: float | None

    def _keepalive_fire(self) -> None: ...


class _Timer:
    """The heap of due times and the system task that serves it."""

    __slots__ = ("_heap", "_order", "_sleep")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ref[Pinged]]] = []
        self._order = itertools.count()  # ties never compare connections
        self._sleep: trio.CancelScope | None = None

    def schedule(self, ws: Pinged, due: float) -> None:
        ws._keepalive_due = due
        heapq.heappush(self._heap, (due, next(self._order), weakref.ref(ws)))
        sleep = self._sleep
        if sleep is not None and due < sleep.deadline:
            sleep.deadline = due

    async def run(self) -> None:
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()
            self._sleep = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                due, _, ref = heapq.heappop(heap)
                ws = ref()
                if ws is not None and ws._keepalive_due == due:
                    ws._keepalive_due = None
                    try:
                        ws._keepalive_fire()
                    except Exception:  # pragma: no cover - a bug; it must not end the run
                        # A system task that raises ends the whole trio run.
                        logger.exception("the WebSocket keepalive timer failed for %r", ws)


_TIMER: trio.lowlevel.RunVar[_Timer] = trio.lowlevel.RunVar("trionet_websocket_keepalive")


def schedule(ws: Pinged, delay: float) -> None:
    """Have ``ws._keepalive_fire()`` called ``delay`` seconds from now (the
    run's clock), replacing the connection's earlier due time."""
    try:
        timer = _TIMER.get()
    except LookupError:
        timer = _Timer()
        _TIMER.set(timer)
        trio.lowlevel.spawn_system_task(timer.run, name="trionet websocket keepalive")
    timer.schedule(ws, trio.current_time() + delay)
