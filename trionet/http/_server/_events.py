"""The events and states the sans-IO server protocol (:mod:`._protocol`)
speaks: what :meth:`~._protocol.ServerProtocol.next_event` returns, and
what :attr:`~._protocol.ServerProtocol.state` and
:attr:`~._protocol.ServerProtocol.response_state` say. trionet's own, so
that nothing above the protocol sees an h11 type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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
    "RequestHead",
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
