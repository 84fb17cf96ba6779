"""httpbin (the HTTP request and response service, from PyPI) on loopback,
for the client's interop tests: ``tests/programs/httpbin_server.py`` in a
process of its own (waitress serves it); the fixture yields its port."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest
import trio

from tests._process import STARTUP_TIMEOUT, running

__all__ = ["httpbin"]


@pytest.fixture
async def httpbin() -> AsyncIterator[int]:
    command = [sys.executable, "tests/programs/httpbin_server.py"]
    async with running(command) as (_, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            match = await output.wait_for(r"^httpbin listening on (\d+)$")
        yield int(match.group(1))
