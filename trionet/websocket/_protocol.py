"""The WebSocket connection protocol (RFC 6455 sections 5 to 7), sans-IO: bytes
in, trionet's own events out, bytes out to send, and a state to ask about. No
trio, no socket; :mod:`._connection` moves the bytes.

Theory of operation
-------------------
wsproto parses and builds the frames; this module wraps its connection and
keeps the rules trionet adds on top, so that the trio driver never sees a
wsproto event:

* :meth:`WebSocketProtocol.receive_data` takes what the transport read and
  :meth:`WebSocketProtocol.events` yields what it meant: :class:`MessageData`
  (a piece of a message with a ``finished`` flag), :class:`~._events.Ping`
  and :class:`~._events.Pong` (their payloads), :class:`CloseReceived` (the
  peer's close frame) and :class:`Failed` (the peer broke the protocol, or a
  message outgrew ``max_message_size``: the code and reason to close with).
* A message is bounded by ``max_message_size`` (close 1009 beyond), counted
  here as it arrives, piece by piece; a compressed one is counted as it
  inflates, with zlib told never to produce more than what is left of the
  limit, so a small frame that inflates to gigabytes is refused after
  inflating only the limit (a "zip bomb"): see :mod:`._deflate`.
* A protocol error from the peer comes out as :class:`Failed` with the close
  code wsproto chose (1002, 1007, 1009) and ``drop`` set: wsproto's parser is
  broken from then on, so nothing more is read.
* The ``send_*`` methods return the bytes of a message, a fragment, a ping, a
  pong or a close frame; :attr:`WebSocketProtocol.state` follows the closing
  handshake (section 7): open, closing (and who started it), closed.

Two shortcuts spare wsproto the commonest frames on a server without
extensions (:attr:`WebSocketProtocol.plain`), with results identical to
wsproto's (property-tested against it in ``tests/test_websocket_frames.py``):
a read that holds exactly one whole masked text or binary frame, while
wsproto holds no partial frame or message, is unmasked and decoded by
:meth:`WebSocketProtocol.whole_frame`; and an outgoing message is framed by
:func:`._frames.plain_frame` (an unmasked header and the payload). Everything
else, and every error, goes through wsproto.

Once the application reads no more (:meth:`WebSocketProtocol.discard_messages`)
message data is neither counted nor reported; control frames still are.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection
from wsproto.events import Ping as _WsPing
from wsproto.events import Pong as _WsPong
from wsproto.events import TextMessage as _WsText

from ._events import Ping, Pong
from ._frames import plain_frame, whole_masked_frame

__all__ = [
    "CloseReceived",
    "Failed",
    "MessageData",
    "ProtocolEvent",
    "State",
    "WebSocketProtocol",
    "data_size",
]


class State(enum.Enum):
    """Where the connection is in the closing handshake (RFC 6455 section 7)."""

    OPEN = "open"
    LOCAL_CLOSING = "local closing"  # our close frame is out, the peer's is awaited
    REMOTE_CLOSING = "remote closing"  # the peer's close frame came, ours is owed
    CLOSED = "closed"  # both close frames were exchanged


_STATES = {
    ConnectionState.OPEN: State.OPEN,
    ConnectionState.LOCAL_CLOSING: State.LOCAL_CLOSING,
    ConnectionState.REMOTE_CLOSING: State.REMOTE_CLOSING,
    ConnectionState.CLOSED: State.CLOSED,
}
_WS_OPEN = ConnectionState.OPEN


def data_size(data: str | bytes) -> int:
    """The size of message data in bytes (text counts its UTF-8 bytes)."""
    if isinstance(data, str) and not data.isascii():
        return len(data.encode("utf-8", "surrogatepass"))
    return len(data)


class MessageData:
    """A piece of a message (a whole one when ``finished`` is set and no
    piece came before it): ``str`` for text, ``bytes`` for binary, and its
    size in bytes (counted once, here)."""

    # A plain slotted class: one is made per message on the hot path, and a
    # frozen dataclass's __init__ costs several times more.
    __slots__ = ("data", "finished", "size")

    def __init__(self, data: str | bytes, finished: bool, size: int) -> None:
        self.data = data
        self.finished = finished
        self.size = size

    def __repr__(self) -> str:
        return f"MessageData({self.data!r}, finished={self.finished})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageData):
            return NotImplemented
        return (self.data, self.finished, self.size) == (other.data, other.finished, other.size)

    __hash__ = None  # type: ignore[assignment]


class CloseReceived:
    """The peer's close frame: its code (1005 when it carried none) and reason."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"CloseReceived({self.code}, {self.reason!r})"


class Failed:
    """The connection must fail (RFC 6455 section 7.1.7) with ``code`` and
    ``reason``. ``drop``: the peer broke the protocol and nothing more can be
    read (close and drop at once); otherwise (a message over
    ``max_message_size``) the peer's close frame may still be awaited."""

    __slots__ = ("code", "drop", "reason")

    def __init__(self, code: int, reason: str, drop: bool) -> None:
        self.code = code
        self.reason = reason
        self.drop = drop

    def __repr__(self) -> str:
        return f"Failed({self.code}, {self.reason!r}, drop={self.drop})"


#: What :meth:`WebSocketProtocol.events` yields.
ProtocolEvent = MessageData | Ping | Pong | CloseReceived | Failed


class WebSocketProtocol:
    """One open WebSocket connection's protocol state, sans-IO, over a wsproto
    connection that finished its opening handshake.

    Attributes:
        client: This is the client's side.
        plain: A server without extensions: the frame shortcuts apply.
        state: The closing handshake's :class:`State`.
        close_started_by: ``"local"`` or ``"remote"`` once a close frame was
            sent or received (``None`` while open).
    """

    __slots__ = (
        "_conn",
        "_discarding",
        "_incoming",
        "_max_message_size",
        "client",
        "close_started_by",
        "plain",
        "state",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        client: bool,
        extensions: list[str],
        max_message_size: int | None,
    ) -> None:
        self._conn = conn
        self.client = client
        # A server frame without extensions is a header and the payload as it
        # is (no mask, no compression): built and read here, byte for byte
        # what wsproto does, at a fraction of its cost.
        self.plain = not client and not extensions
        self._max_message_size = max_message_size
        self._incoming = 0  # bytes of the message arriving now
        self._discarding = False
        self.state = _STATES[conn.state]
        self.close_started_by: str | None = None

    def __repr__(self) -> str:
        side = "client" if self.client else "server"
        return f"<WebSocketProtocol {side} {self.state.value}>"

    # -- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the transport; then read :meth:`events`."""
        self._conn.receive_data(data)

    def events(self) -> Iterator[ProtocolEvent]:
        """The events of the data received so far. Nothing follows a
        :class:`CloseReceived` or a :class:`Failed` with ``drop`` set."""
        conn = self._conn
        limit = self._max_message_size
        for event in conn.events():
            kind = type(event)
            if kind is _WsText or kind is BytesMessage:
                if self._discarding:
                    continue
                data: str | bytes
                if kind is _WsText:
                    assert isinstance(event, _WsText)
                    data = event.data
                else:
                    assert isinstance(event, BytesMessage)
                    data = bytes(event.data)
                size = data_size(data)
                self._incoming += size
                if limit is not None and self._incoming > limit:
                    yield self._too_big(limit)
                    continue
                if event.message_finished:
                    self._incoming = 0
                yield MessageData(data, event.message_finished, size)
            elif kind is _WsPing:
                assert isinstance(event, _WsPing)
                yield Ping(bytes(event.payload))
            elif kind is _WsPong:
                assert isinstance(event, _WsPong)
                yield Pong(bytes(event.payload))
            elif kind is CloseConnection:
                assert isinstance(event, CloseConnection)
                state = self.state = _STATES[conn.state]
                if state is State.OPEN:
                    # wsproto found the peer breaking the protocol (it reports
                    # that as a close event without a close frame).
                    reason = event.reason or ""
                    if event.code == 1009 and limit is not None:
                        # The bounded inflater refused a compressed message.
                        reason = _over_limit(limit)
                    self._discarding = True
                    yield Failed(event.code, reason, drop=True)
                else:
                    if self.close_started_by is None:
                        self.close_started_by = "remote"
                    yield CloseReceived(event.code, event.reason or "")
                return

    def whole_frame(self, data: bytes) -> MessageData | Failed | None:
        """The shortcut: if ``data`` is exactly one whole masked text or
        binary frame and wsproto holds nothing (see :attr:`plain`), its
        message (or :class:`Failed` if it is over ``max_message_size``);
        otherwise ``None``, and ``data`` goes to :meth:`receive_data`."""
        if not self.plain or self._discarding or not self._parser_idle():
            return None
        payload = whole_masked_frame(data)
        if payload is None:
            return None
        # The payload's size in bytes is the frame's less its header: 6 bytes
        # (2, and the mask) below 126 bytes of payload, 8 from there.
        size = len(data) - (6 if len(data) < 132 else 8)
        limit = self._max_message_size
        if limit is not None and size > limit:
            return self._too_big(limit)
        return MessageData(payload, True, size)

    def _parser_idle(self) -> bool:
        """wsproto holds no partial frame or message and nothing unread, so a
        whole frame may bypass it (wsproto's own attributes: pinned by the
        tests of this module)."""
        conn = self._conn
        frames = conn._proto
        decoder = frames._frame_decoder
        return (
            conn._state is _WS_OPEN
            and decoder.header is None
            and not decoder.buffer.buffer
            and frames._message_decoder.opcode is None
            and not conn._events
        )

    def _too_big(self, limit: int) -> Failed:
        self._discarding = True
        return Failed(1009, _over_limit(limit), drop=False)

    def discard_messages(self) -> None:
        """The application reads no more: message data is neither counted
        nor reported from now on (control frames still are)."""
        self._discarding = True

    # -- sending -----------------------------------------------------------------------

    def send_message(self, data: str | bytes) -> bytes:
        """A whole message's frame: text for ``str``, binary for bytes."""
        if self.plain:
            return plain_frame(data)
        if isinstance(data, str):
            return self._conn.send(_WsText(data))
        return self._conn.send(BytesMessage(data))

    def send_fragment(self, piece: str | bytes, last: bool) -> bytes:
        """One fragment of a message (RFC 6455 section 5.4)."""
        if isinstance(piece, str):
            return self._conn.send(_WsText(piece, message_finished=last))
        return self._conn.send(BytesMessage(piece, message_finished=last))

    def send_ping(self, payload: bytes) -> bytes:
        return self._conn.send(_WsPing(payload))

    def send_pong(self, payload: bytes) -> bytes:
        return self._conn.send(_WsPong(payload))

    def send_close(self, code: int, reason: str) -> bytes:
        """Our close frame: it starts the closing handshake while open, and
        answers the peer's (with its code) once that came."""
        data = self._conn.send(CloseConnection(code, reason))
        self.state = _STATES[self._conn.state]
        if self.close_started_by is None:
            self.close_started_by = "local"
        return data


def _over_limit(limit: int) -> str:
    return f"a message over max_message_size={limit} bytes"
