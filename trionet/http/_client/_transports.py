"""Connections that come from a :class:`ClientTransport` instead of the
network: the client's hook for tests (:class:`trionet.testing.MockTransport`)
and for streams of your own.

The transport is asked for a byte stream to an origin and the client runs
HTTP/1.1 over it as over a socket: the pool, keep-alive, redirects, cookies,
auth and decoding all run unchanged. There is no proxy, no name lookup and no
TLS on this path: a transport answers for the origin it is given, ``https``
ones included.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import trio

from ..._transport import Transport
from ._connection import ClientConnection
from ._errors import HTTPConnectError, HTTPConnectTimeout
from ._urls import Origin

__all__ = ["ClientTransport", "open_transport_connection"]

# How a connection from a transport is closed (as a pooled socket's).
_CLOSE_TIMEOUT = 1.0


@runtime_checkable
class ClientTransport(Protocol):
    """Where a :class:`~trionet.http.Client` given ``transport=`` gets its
    connections: one method that opens a byte stream to an origin.

    :class:`trionet.testing.MockTransport` is one; a class of your own with
    this method is another (an in-memory peer, a stream through a tunnel of
    your own). The client speaks HTTP/1.1 over the stream it gets, as over a
    socket: it keeps it for more requests while the server allows, and
    closes it with ``aclose``.
    """

    async def open_stream(self, scheme: str, host: str, port: int) -> trio.abc.Stream:
        """Open a byte stream to the origin ``scheme://host:port``.

        Args:
            scheme: ``"http"`` or ``"https"`` (no TLS is run over the
                stream: the transport stands in for all of it).
            host: The host, as ASCII (an IDNA name, or an address).
            port: The port.

        Returns:
            A connected ``trio.abc.Stream``.

        Raises:
            OSError: The origin cannot be reached (the client raises
                :class:`~trionet.http.HTTPConnectError`).
        """
        ...


async def open_transport_connection(
    transport: ClientTransport,
    origin: Origin,
    *,
    connect_timeout: float | None,
    max_header_size: int,
) -> ClientConnection:
    """Open a connection to ``origin`` through ``transport``.

    Raises:
        HTTPConnectError: The transport raised ``OSError``.
        HTTPConnectTimeout: It took longer than ``connect_timeout``.
    """
    stream = None
    with trio.move_on_after(math.inf if connect_timeout is None else connect_timeout):
        try:
            stream = await transport.open_stream(origin.scheme, origin.host, origin.port)
        except OSError as exc:
            raise HTTPConnectError(
                f"the transport could not reach {origin}: {exc.strerror or exc}", exc.errno or 0
            ) from None
    if stream is None:
        raise HTTPConnectTimeout(
            f"the transport took longer than {connect_timeout:g} s to reach {origin}"
        )
    return ClientConnection(
        (origin, None), Transport(stream, _CLOSE_TIMEOUT), None, max_header_size
    )
