"""Proxy servers from PyPI on loopback, for the clients' proxy tests, each in
a process of its own: pproxy, the SOCKS5, SOCKS4 and HTTP (also over TLS)
proxy (``tests/programs/pproxy_server.py``, fixture ``pproxy_server``:
``await start(uri)``), and Twisted's SOCKS4 server, which takes SOCKS4a
names where pproxy does not (``tests/programs/twisted_socks4_server.py``,
fixture ``twisted_socks4_server``). Each gives a :class:`RunningProxy` with
its port and what it printed (the destinations clients asked it for)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
import trio

from tests._process import STARTUP_TIMEOUT, OutputReader, running
from trionet.testing import TLSCertificates

__all__ = [
    "RunningProxy",
    "StartProxy",
    "pproxy_server",
    "proxy_certificate",
    "twisted_socks4_server",
]


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


def proxy_certificate(certificates: TLSCertificates, directory: Path, *names: str) -> str:
    """Issue a certificate for ``names`` (``localhost`` and ``127.0.0.1``
    by default) from the test's authority and write it, with its key, to a
    PEM file for an ``http+ssl`` pproxy; return the file's path."""
    issued = certificates.ca.issue_cert(*(names or ("localhost", "127.0.0.1")))
    path = directory / f"proxy-{'-'.join(names) or 'localhost'}.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


class StartProxy(Protocol):
    """``await start(uri, certificate=None)``: pproxy listening as ``uri``
    says; ``certificate`` is the PEM file (key and chain) of a ``+ssl`` one."""

    def __call__(self, uri: str, certificate: str | None = None) -> Awaitable[RunningProxy]: ...


@pytest.fixture
async def pproxy_server() -> AsyncIterator[StartProxy]:
    async with AsyncExitStack() as stack:

        async def start(uri: str, certificate: str | None = None) -> RunningProxy:
            command = [sys.executable, "tests/programs/pproxy_server.py", uri]
            if certificate is not None:  # a PEM file: key and chain, for +ssl
                command.append(certificate)
            _, output = await stack.enter_async_context(running(command))
            with trio.fail_after(STARTUP_TIMEOUT):
                match = await output.wait_for(r"^pproxy listening on (\d+)$")
            return RunningProxy(int(match.group(1)), output)

        yield start


@pytest.fixture
async def twisted_socks4_server() -> AsyncIterator[RunningProxy]:
    command = [sys.executable, "tests/programs/twisted_socks4_server.py"]
    async with running(command) as (_, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            match = await output.wait_for(r"^socks4 listening on (\d+)$")
        yield RunningProxy(int(match.group(1)), output)
