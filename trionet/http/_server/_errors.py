"""The HTTP server's exceptions: the client broke HTTP/1.1 or one of the
server's limits. Each carries the status the server answers with.

Raised by the sans-IO protocol (:mod:`._protocol`) and by the trio driver
(:mod:`._connection`); they import nothing else of the server.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..._errors import ConnectionClosed

__all__ = ["BodyTooLarge", "ProtocolError", "RequestTimeout"]


class ProtocolError(ConnectionClosed):
    """The client broke HTTP/1.1 or a limit of the server. The server answers
    with :attr:`status` (when no response has started) and closes the
    connection.

    Escaping a handler, it is counted as a connection error, not a handler
    bug.

    Attributes:
        status: The status the server answers with (400, 403, 408, 413, 414,
            426, 431, 505...).
        headers: Extra header fields for that answer (``Sec-WebSocket-Version``
            on a 426, say).
    """

    def __init__(
        self, reason: str, status: int = 400, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = list(headers)


class BodyTooLarge(ProtocolError):
    """The request body is larger than the server's ``max_body_size`` (413)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 413)


class RequestTimeout(ProtocolError):
    """The client was too slow sending its request head or body (408)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 408)
