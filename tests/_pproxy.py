"""pproxy, the SOCKS (and HTTP) proxy server from PyPI, on loopback for the
client's proxy tests: ``tests/programs/pproxy_server.py`` in a process of its
own. ``await start(uri)`` gives a :class:`RunningProxy` with its port and
what it printed (the destinations clients asked it for)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
import trio

from tests._process import STARTUP_TIMEOUT, OutputReader, running

__all__ = ["RunningProxy", "pproxy_server"]


@dataclass
class RunningProxy:
    port: int
    output: OutputReader

    async def relayed(self) -> str:
        """The next destination a client asked the proxy for (as it printed
        it: ``localhost:8000`` or ``127.0.0.1:8000``)."""
        with trio.fail_after(STARTUP_TIMEOUT):
            match = await self.output.wait_for(r" -> (\S+)$")
        return match.group(1)


@pytest.fixture
async def pproxy_server() -> AsyncIterator[Callable[[str], Awaitable[RunningProxy]]]:
    async with AsyncExitStack() as stack:

        async def start(uri: str) -> RunningProxy:
            command = [sys.executable, "tests/programs/pproxy_server.py", uri]
            _, output = await stack.enter_async_context(running(command))
            with trio.fail_after(STARTUP_TIMEOUT):
                match = await output.wait_for(r"^pproxy listening on (\d+)$")
            return RunningProxy(int(match.group(1)), output)

        yield start
