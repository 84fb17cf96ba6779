"""Events yielded by ``async for event in conn`` on byte-stream connections.

Each event is a frozen, slotted dataclass, so handlers can ``match`` on it::

    match event:
        case trionet.Data(data): ...
        case trionet.EndOfStream(): ...
        case trionet.Timeout(): ...
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Data", "EndOfStream", "StreamEvent", "Timeout"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Base class of every event a :class:`~trionet.TCPConnection` yields."""


@dataclass(frozen=True, slots=True)
class Data(StreamEvent):
    """Bytes arrived from the peer (Node's ``'data'``).

    Attributes:
        data: The bytes, exactly as the transport delivered them; message
            boundaries are not preserved by TCP, so one ``send`` on the peer may
            arrive as several ``Data`` events or be merged with the next one.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfStream(StreamEvent):
    """The peer finished sending: it half-closed its side (Node's ``'end'``).

    This is the last event; the loop ends after it. The connection can still
    :meth:`~trionet.TCPConnection.send` until it is closed.
    """


@dataclass(frozen=True, slots=True)
class Timeout(StreamEvent):
    """The connection was idle for the time set by
    :meth:`~trionet.TCPConnection.set_timeout` (Node's ``'timeout'``).

    Nothing is closed: the handler decides what to do. Another ``Timeout``
    follows after the same idle time again.
    """
