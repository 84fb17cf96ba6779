"""``H11Reader``: request heads and bodies read by h11, the reference parser;
sans-IO. One of the two request readers behind
:class:`~._protocol.ServerProtocol` (the other is :mod:`._reader_llhttp`);
both turn bytes into the same :mod:`._events`, and trionet's own checks run
on those events, after whichever reader ran.

h11 reads one request per :class:`h11.Connection` here: responses are
written without h11 (see :mod:`._protocol`), so h11 would never see the end
of an exchange. :meth:`H11Reader.next_request` starts a fresh one, fed what
the client sent after the previous request.
"""

from __future__ import annotations

import h11

from ._errors import ProtocolError
from ._events import CLIENT_CLOSED, END_OF_BODY, NEED_DATA, BodyData, Event, ParsedHead
from ._limits import HTTPLimits

__all__ = ["H11Reader"]


def _connection(limits: HTTPLimits) -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_size)


class H11Reader:
    """Reads one request at a time with h11.

    Args:
        limits: The server's limits (``max_header_size`` bounds an
            incomplete head: 431).

    Attributes:
        trailers: The trailer fields of the request just read (after
            :data:`~._events.END_OF_BODY`).
    """

    __slots__ = ("_chunks", "_h11", "_limits", "trailers")

    def __init__(self, limits: HTTPLimits) -> None:
        self._limits = limits
        self._h11 = _connection(limits)
        # What arrived of the head, kept for the line-ending check; None once read.
        self._chunks: list[bytes] | None = []
        self.trailers: list[tuple[bytes, bytes]] = []

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` when it closed its side."""
        if self._chunks is not None:
            self._chunks.append(data)
        self._h11.receive_data(data)

    def next_event(self) -> Event:
        """The next event: a :class:`~._events.ParsedHead`, a
        :class:`~._events.BodyData`, :data:`~._events.END_OF_BODY`,
        :data:`~._events.NEED_DATA` or :data:`~._events.CLIENT_CLOSED`.

        Raises:
            ProtocolError: h11 refused the bytes (with its status).
        """
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(f"bad request: {exc}", exc.error_status_hint) from None
        if event is h11.NEED_DATA:
            return NEED_DATA
        if type(event) is h11.Data:
            return BodyData(bytes(event.data))
        if type(event) is h11.EndOfMessage:
            if event.headers:
                self.trailers = event.headers.raw_items()
            return END_OF_BODY
        if type(event) is h11.Request:
            return self._head(event)
        if type(event) is h11.ConnectionClosed:
            return CLIENT_CLOSED
        raise ProtocolError(f"unexpected {type(event).__name__}")  # pragma: no cover

    def _head(self, event: h11.Request) -> ParsedHead:
        chunks = self._chunks or [b""]
        self._chunks = None
        received = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        rest = len(self._h11.trailing_data[0])
        return ParsedHead(
            event.method,
            event.target,
            event.http_version,
            event.headers.raw_items(),
            received[: len(received) - rest] if rest else received,
        )

    def trailing_data(self) -> tuple[bytes, bool]:
        """What arrived after the request read so far, and whether the
        client closed its side."""
        data, closed = self._h11.trailing_data
        return bytes(data), closed

    def next_request(self) -> bytes:
        """Start reading the next request, from what arrived after this one.

        Returns:
            Those bytes, without the empty lines before a request line
            (RFC 9112 section 2.2), already fed.
        """
        leftover, closed = self.trailing_data()
        self._h11 = _connection(self._limits)
        self._chunks = []
        self.trailers = []
        leftover = leftover.lstrip(b"\r\n")
        if leftover:
            self.receive_data(leftover)
        if closed:
            self.receive_data(b"")
        return leftover

    def release(self) -> None:
        """Drop the parser: the connection went to another protocol."""
        del self._h11
