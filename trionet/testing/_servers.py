"""What the pytest plugin's server fixtures return."""

from __future__ import annotations

from dataclasses import dataclass

from .._server import Server

__all__ = ["LocalServer"]


@dataclass(frozen=True)
class LocalServer:
    """A server a fixture started on loopback: ``trionet_http_server``,
    ``trionet_websocket_server`` and ``trionet_asgi_server`` return one.

    Attributes:
        server: The running :class:`~trionet.Server` (``shutdown(grace)``,
            ``statistics()``...).
        url: Its base URL, with no path: ``http://127.0.0.1:PORT`` for HTTP
            and ASGI (``https`` with TLS), ``ws://127.0.0.1:PORT`` for
            WebSocket (``wss`` with TLS).
    """

    server: Server
    url: str

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.server.port

    @property
    def websocket_url(self) -> str:
        """:attr:`url` with the WebSocket scheme: ``ws://`` for
        ``http://``, ``wss://`` for ``https://``."""
        scheme, rest = self.url.split("://", 1)
        return {"http": "ws", "https": "wss"}.get(scheme, scheme) + "://" + rest
