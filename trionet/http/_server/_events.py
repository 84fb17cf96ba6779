"""The events and states the sans-IO server protocol (:mod:`._protocol`)
speaks: what :meth:`~._protocol.ServerProtocol.next_event` returns, and
what :attr:`~._protocol.ServerProtocol.state` and
:attr:`~._protocol.ServerProtocol.response_state` say. trionet's own, so
that nothing above the protocol sees an h11 type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "BODY",
    "CLIENT_CLOSED",
    "DONE",
    "END_OF_BODY",
    "FINISHED",
    "HEAD",
    "IDLE",
    "NEED_DATA",
    "NOT_STARTED",
    "STARTED",
    "SWITCHED",
    "BodyData",
    "ClientClosed",
    "EndOfBody",
    "Event",
    "NeedData",
    "ParsedHead",
    "RequestHead",
    "RequestReader",
]

# The states of the request side (``ServerProtocol.state``).
IDLE: Final = "IDLE"  # waiting for a request head; nothing of it yet
HEAD: Final = "HEAD"  # part of a request head arrived
BODY: Final = "BODY"  # a request head was accepted; its body is on its way
DONE: Final = "DONE"  # the whole request arrived
SWITCHED: Final = "SWITCHED"  # the connection went to another protocol

# The states of the response to the current request (``response_state``).
NOT_STARTED, STARTED, FINISHED = 0, 1, 2


class Event:
    """What :meth:`ServerProtocol.next_event` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RequestHead(Event):
    """A request head that passed every check.

    Attributes:
        method: The method (``"GET"``).
        target: The request target as sent.
        headers: The header fields as sent (names in their case), in order.
        http_version: ``"1.1"`` or ``"1.0"``.
    """

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    http_version: str


class ParsedHead(Event):
    """A request head as a parser read it, before trionet's own checks: what
    a request reader (:mod:`._reader_h11`, :mod:`._reader_llhttp`) gives
    :class:`~._protocol.ServerProtocol`, never seen above it.

    Attributes:
        method: The method, as sent.
        target: The request target, as sent.
        http_version: ``b"1.1"``, ``b"1.0"``...
        headers: The fields, names as sent, values without the whitespace
            around them, in order.
        head: The bytes of the head as they arrived (for the line-ending
            check).
    """

    __slots__ = ("head", "headers", "http_version", "method", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes,
        headers: list[tuple[bytes, bytes]],
        head: bytes,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.head = head


@dataclass(frozen=True, slots=True)
class BodyData(Event):
    """A piece of the request body.

    Attributes:
        data: The bytes.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfBody(Event):
    """The request body is complete."""


@dataclass(frozen=True, slots=True)
class ClientClosed(Event):
    """The client closed the connection between two requests."""


@dataclass(frozen=True, slots=True)
class NeedData(Event):
    """Nothing more until :meth:`ServerProtocol.receive_data` is fed."""


# One instance each: they carry nothing, and compare by identity.
END_OF_BODY: Final = EndOfBody()
CLIENT_CLOSED: Final = ClientClosed()
NEED_DATA: Final = NeedData()


class RequestReader(Protocol):
    """What :class:`~._protocol.ServerProtocol` asks of a request reader
    (:class:`~._reader_h11.H11Reader`, :class:`~._reader_llhttp.LLHTTPReader`):
    one request at a time, bytes in, these events out.

    Attributes:
        trailers: The trailer fields of the request just read.
    """

    trailers: list[tuple[bytes, bytes]]

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` when it closed its side."""

    def next_event(self) -> Event:
        """A :class:`ParsedHead`, :class:`BodyData`, :data:`END_OF_BODY`,
        :data:`NEED_DATA` or :data:`CLIENT_CLOSED` (raises
        :exc:`~._errors.ProtocolError`)."""

    def trailing_data(self) -> tuple[bytes, bool]:
        """What arrived after the request read so far, and whether the
        client closed its side."""

    def next_request(self) -> bytes:
        """Start reading the next request; returns what already arrived of it."""

    def release(self) -> None:
        """Drop the parser: the connection went to another protocol."""
