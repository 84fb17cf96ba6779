"""The hand-off of an HTTP connection to the protocol a request upgrades to
(RFC 9110 section 7.8): the one interface between the HTTP server and the
protocols above it (WebSocket today).

A protocol registers its server handshake in :data:`UPGRADES` when it is
imported, so that HTTP never imports it. ``Request.accept_websocket`` (and
``trionet.websocket.serve``) gets the request's :class:`Upgrade` from
``websocket_upgrade`` in :mod:`._request` and gives it to that handshake, which
reads the request head from it, sends its ``101`` through
:meth:`Upgrade.switch` (getting back the transport and whatever the client
sent after the head), starts its tasks in :attr:`Upgrade.nursery` (the HTTP
connection's own, so that nothing outlives the connection's task) and hands
itself back with :meth:`Upgrade.adopt`. From then on the HTTP connection
reads no more requests; it tells the upgraded connection when the server
shuts down and when the handler is done, through :class:`Upgraded`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import trio

from ..._transport import Transport
from ..._websocket_limits import QueueBudget
from ...tls._stream import TLSInfo

if TYPE_CHECKING:
    from ...websocket._connection import WebSocketConnection

__all__ = ["UPGRADES", "Upgrade", "Upgraded"]


class Upgraded(Protocol):
    """What the HTTP connection asks of the connection it was handed to."""

    def _request_shutdown(self) -> None:
        """The server is shutting down: close in the protocol's own way."""

    async def _handler_done(self, failed: bool) -> None:
        """The request handler returned (or raised, ``failed``): close if it
        did not."""


class _Upgrades:
    """Protocols a request can be upgraded to, registered by their packages
    when imported (``trionet.websocket`` registers its server handshake)."""

    websocket: Callable[..., Awaitable[WebSocketConnection]] | None = None


UPGRADES = _Upgrades()


class Upgrade:
    """One request's hand-off (see the module docstring).

    Attributes:
        request_head: The request head as the client sent it (request line
            and header fields), for a handshake that parses it.
        tls: The connection's TLS session, or ``None``.
        budget: The server's budget for the messages its WebSockets queue,
            or ``None`` outside :func:`trionet.http.serve`.
        nursery: Where the upgraded connection runs its tasks.
    """

    __slots__ = ("_adopt", "_switch", "budget", "nursery", "request_head", "tls")

    def __init__(
        self,
        *,
        request_head: bytes,
        tls: TLSInfo | None,
        budget: QueueBudget | None,
        nursery: trio.Nursery,
        switch: Callable[[bytes], Awaitable[tuple[Transport, bytes]]],
        adopt: Callable[[Upgraded], None],
    ) -> None:
        self.request_head = request_head
        self.tls = tls
        self.budget = budget
        self.nursery = nursery
        self._switch = switch
        self._adopt = adopt

    async def switch(self, response: bytes) -> tuple[Transport, bytes]:
        """Send ``response`` (the ``101``) and take the connection over.

        Returns:
            The transport, and the bytes the client sent after the request
            head (the new protocol's first bytes).

        Raises:
            RuntimeError: A response to the request was already sent.
        """
        return await self._switch(response)

    def adopt(self, connection: Upgraded) -> None:
        """Hand the connection over to ``connection`` (see :class:`Upgraded`)."""
        self._adopt(connection)
