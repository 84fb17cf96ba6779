"""trionet's pytest plugin (registered by the ``pytest11`` entry point).

It must import cleanly wherever trionet is installed, including where
pytest-trio or trustme is not: both are only needed when a fixture is used.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

from .._server import Server
from .._stream import TCPConnection
from .._tcp import serve_tcp
from .._udp import UDPPeer, UDPServer, serve_udp
from ..http import serve as serve_http
from ..websocket import serve as serve_websocket
from ._certificates import TLSCertificates
from ._servers import LocalServer
from ._tcp_network import VirtualTCPNetwork

__all__ = [
    "LocalServer",
    "TLSCertificates",
    "trionet_asgi_server",
    "trionet_http_server",
    "trionet_tcp_server",
    "trionet_tls",
    "trionet_udp_server",
    "trionet_virtual_tcp",
    "trionet_websocket_server",
]

TCPServerFactory = Callable[..., Awaitable[Server]]
UDPServerFactory = Callable[..., Awaitable[UDPServer]]
LocalServerFactory = Callable[..., Awaitable[LocalServer]]


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


async def _start_local(
    nursery: trio.Nursery,
    serve: Callable[..., Awaitable[None]],
    target: object,
    scheme: str,
    kwargs: dict[str, Any],
) -> LocalServer:
    kwargs.setdefault("host", "127.0.0.1")
    kwargs.setdefault("handler_errors", "raise")
    secure = kwargs.get("ssl_context") is not None
    server: Server = await nursery.start(partial(serve, target, 0, **kwargs))
    return LocalServer(server, f"{scheme}{'s' if secure else ''}://127.0.0.1:{server.port}")


@pytest.fixture
async def trionet_http_server(nursery: trio.Nursery) -> LocalServerFactory:
    """Start :func:`trionet.http.serve` on ``127.0.0.1``, port 0, in the
    test's nursery.

    ``local = await trionet_http_server(handler, **serve_kwargs)`` returns a
    :class:`~trionet.testing.LocalServer` once it listens: ``local.url`` is
    ``http://127.0.0.1:PORT`` (``https`` with ``ssl_context=``). A handler
    that raises fails the test (``handler_errors="raise"``); the server is
    cancelled when the test ends.
    """

    async def start(handler: Callable[..., Awaitable[object]], **kwargs: Any) -> LocalServer:
        return await _start_local(nursery, serve_http, handler, "http", kwargs)

    return start


@pytest.fixture
async def trionet_websocket_server(nursery: trio.Nursery) -> LocalServerFactory:
    """Start :func:`trionet.websocket.serve` on ``127.0.0.1``, port 0, in
    the test's nursery.

    ``local = await trionet_websocket_server(handler, **serve_kwargs)``
    returns a :class:`~trionet.testing.LocalServer`: ``local.url`` is
    ``ws://127.0.0.1:PORT`` (``wss`` with ``ssl_context=``), for
    :func:`trionet.websocket.connect`. A handler that raises fails the test.
    """

    async def start(handler: Callable[..., Awaitable[object]], **kwargs: Any) -> LocalServer:
        return await _start_local(nursery, serve_websocket, handler, "ws", kwargs)

    return start


@pytest.fixture
async def trionet_asgi_server(nursery: trio.Nursery) -> LocalServerFactory:
    """Start :func:`trionet.asgi.serve` with an ASGI application on
    ``127.0.0.1``, port 0, in the test's nursery, its lifespan start-up
    complete.

    ``local = await trionet_asgi_server(app, **serve_kwargs)`` returns a
    :class:`~trionet.testing.LocalServer`: ``local.url`` is
    ``http://127.0.0.1:PORT`` and ``local.websocket_url`` its ``ws://``
    twin. An exception that escapes the application fails the test.
    """

    async def start(app: Callable[..., Awaitable[None]], **kwargs: Any) -> LocalServer:
        # Imported here: the plugin loads in every pytest run, and the ASGI
        # server (64 ms of imports) only when a test asks for it.
        from ..asgi import serve as serve_asgi

        return await _start_local(nursery, serve_asgi, app, "http", kwargs)

    return start


@pytest.fixture
async def trionet_virtual_tcp() -> AsyncIterator[VirtualTCPNetwork]:
    """Run the test's TCP on a fresh :class:`~trionet.testing.VirtualTCPNetwork`
    (installed for the whole test): the server fixtures above, and every
    client in the test, then talk in memory, with no socket opened, so the
    test can use ``autojump_clock``. The value is the network, to add
    latency, faults or host names.
    """
    net = VirtualTCPNetwork()
    with net.install():
        yield net


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
