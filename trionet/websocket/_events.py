"""What a WebSocket connection yields and raises, and its limits' defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import ConnectError
from .._errors import ConnectionClosed as _ConnectionClosed

__all__ = [
    "CLEAN_CLOSE_CODES",
    "BinaryMessage",
    "HandshakeError",
    "Message",
    "Ping",
    "Pong",
    "WebSocketClosed",
    "WebSocketEvent",
    "WebSocketStatistics",
    "close_code_name",
]

#: Close codes that end ``async for message in ws`` quietly: normal closure,
#: going away, and a close frame without a code (what a browser's
#: ``ws.close()`` sends; RFC 6455 section 7.1.5 reports it as 1005).
CLEAN_CLOSE_CODES = frozenset({1000, 1001, 1005})

_CODE_NAMES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received",
    1006: "abnormal closure",
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def close_code_name(code: int) -> str:
    """The name of a close code, from RFC 6455 section 7.4 and the IANA
    registry.

    Args:
        code: The close code.

    Returns:
        Its name (``"message too big"`` for 1009), or the range it is in
        (``"private use"`` for 4000-4999), or ``"unknown"``.
    """
    if code in _CODE_NAMES:
        return _CODE_NAMES[code]
    if 3000 <= code <= 3999:
        return "registered"
    if 4000 <= code <= 4999:
        return "private use"
    return "unknown"


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A text message, whole.

    Attributes:
        data: The text.
    """

    data: str


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A binary message, whole.

    Attributes:
        data: The bytes.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping arrived (yielded by ``ws.events()`` with ``control_events=True``;
    trionet has already answered it).

    Attributes:
        payload: The ping's application data.
    """

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong arrived (yielded by ``ws.events()`` with ``control_events=True``).

    Attributes:
        payload: The pong's application data.
    """

    payload: bytes


#: A whole message.
Message = TextMessage | BinaryMessage
#: Anything ``async for event in ws.events()`` yields.
WebSocketEvent = TextMessage | BinaryMessage | Ping | Pong


class WebSocketClosed(_ConnectionClosed):
    """The WebSocket connection ended abnormally: the peer closed with a code
    other than 1000, 1001 or 1005, it broke the protocol, a limit was
    exceeded, or the transport broke (code 1006).

    A :class:`trionet.ConnectionClosed`, so one ``except`` handles every
    protocol's abnormal end.

    Attributes:
        code: The close code (RFC 6455 section 7.4): the peer's, or the one
            trionet closed with (1009 for an oversized message, 1002 for a
            protocol error, 1011 for a keepalive timeout), or 1006 when the
            connection broke without a close frame.
        reason: The close reason the peer sent, or what went wrong.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code

    def __str__(self) -> str:
        text = f"WebSocket closed with {self.code} ({close_code_name(self.code)})"
        return f"{text}: {self.reason}" if self.reason else text


class HandshakeError(ConnectError):
    """Opening a WebSocket failed at the upgrade: the server answered with
    something other than ``101 Switching Protocols``, or a 101 that breaks
    RFC 6455 (a wrong ``Sec-WebSocket-Accept``, an extension or subprotocol
    that was not offered).

    A :class:`trionet.ConnectError`, like every other failure to open a
    connection.

    Attributes:
        status: The HTTP status the server answered (``None`` when the answer
            was not valid HTTP).
        headers: The response's header fields, as ``(name, value)`` byte
            pairs.
        body: The start of the response body (at most 64 KiB).
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body = body


@dataclass(frozen=True, slots=True)
class WebSocketStatistics:
    """A WebSocket connection's counters.

    Attributes:
        bytes_received: Bytes read from the transport (frames, and the
            handshake on a client).
        bytes_sent: Bytes written to the transport.
        messages_received: Whole messages received.
        messages_sent: Whole messages sent.
        pings_sent: Pings sent (keepalive and :meth:`ping`).
        pongs_received: Pongs received.
        queued_bytes: Bytes received and waiting for the application.
    """

    bytes_received: int
    bytes_sent: int
    messages_received: int
    messages_sent: int
    pings_sent: int
    pongs_received: int
    queued_bytes: int
