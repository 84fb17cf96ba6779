"""trionet's pytest plugin (registered by the ``pytest11`` entry point).

It must import cleanly wherever trionet is installed, including where
pytest-trio or trustme is not: both are only needed when a fixture is used.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

from .._server import Server
from .._stream import TCPConnection
from .._tcp import serve_tcp
from .._udp import UDPPeer, UDPServer, serve_udp
from ._certificates import TLSCertificates

__all__ = ["TLSCertificates", "trionet_tcp_server", "trionet_tls", "trionet_udp_server"]

TCPServerFactory = Callable[..., Awaitable[Server]]
UDPServerFactory = Callable[..., Awaitable[UDPServer]]


@pytest.fixture
async def trionet_tcp_server(nursery: trio.Nursery) -> TCPServerFactory:
    """Start TCP servers on ``127.0.0.1``, port 0, in the test's nursery.

    ``server = await trionet_tcp_server(handler, **serve_tcp_kwargs)`` returns
    the :class:`~trionet.Server` once it listens. Handlers run with
    ``handler_errors="raise"``: an exception in one fails the test. The server
    is cancelled when the test ends. Needs pytest-trio (it uses its
    ``nursery`` fixture).
    """

    async def start(handler: Callable[[TCPConnection], Awaitable[object]], **kwargs: Any) -> Server:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("handler_errors", "raise")
        server: Server = await nursery.start(partial(serve_tcp, handler, 0, **kwargs))
        return server

    return start


@pytest.fixture
async def trionet_udp_server(nursery: trio.Nursery) -> UDPServerFactory:
    """Start UDP servers on ``127.0.0.1``, port 0, in the test's nursery.

    ``server = await trionet_udp_server(handler, **serve_udp_kwargs)`` returns
    the :class:`~trionet.UDPServer` once it is bound; send to
    ``("127.0.0.1", server.port)``. As with ``trionet_tcp_server``, an
    exception in a handler fails the test, and the server is cancelled when
    the test ends.
    """

    async def start(handler: Callable[[UDPPeer], Awaitable[object]], **kwargs: Any) -> UDPServer:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("handler_errors", "raise")
        server: UDPServer = await nursery.start(partial(serve_udp, handler, 0, **kwargs))
        return server

    return start


@pytest.fixture
def trionet_tls() -> TLSCertificates:
    """A fresh certificate authority and server certificate (needs trustme)."""
    trustme = pytest.importorskip("trustme", reason="the trionet_tls fixture needs trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return TLSCertificates(server_context, client_context, ca)
