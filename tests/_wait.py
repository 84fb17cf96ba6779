"""Waiting for a condition the test cannot get an event for (a server's counters)."""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

# Real seconds, not trio's clock: under autojump_clock, trio's clock races ahead
# while the kernel delivers loopback traffic.
LIMIT = 10.0


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds; fail the test after ``LIMIT`` real seconds."""
    give_up = time.monotonic() + LIMIT
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"condition still false after {LIMIT} s: {condition}")
        await trio.sleep(0.005)
