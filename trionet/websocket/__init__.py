"""WebSocket (RFC 6455) on wsproto: servers, clients, and the upgrade from
HTTP on the same port.

* In an HTTP handler: ``ws = await request.accept_websocket()`` (Node's
  ``'upgrade'`` event).
* A WebSocket-only server: ``await nursery.start(trionet.websocket.serve,
  handler, port)``.
* A client: ``async with trionet.websocket.connect(url) as ws:``.

Every connection is read the same way: ``async for message in ws`` yields
:class:`TextMessage` and :class:`BinaryMessage`; a clean close ends the loop,
any other end raises :exc:`WebSocketClosed` with the close code.
"""

from .._deprecated import aliases as _aliases
from .._websocket_limits import DEFAULT_HANDSHAKE_TIMEOUT as DEFAULT_HANDSHAKE_TIMEOUT
from .._websocket_limits import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from .._websocket_limits import DEFAULT_MAX_QUEUED_BYTES as DEFAULT_MAX_QUEUED_BYTES
from .._websocket_limits import (
    DEFAULT_MAX_TOTAL_QUEUED_BYTES as DEFAULT_MAX_TOTAL_QUEUED_BYTES,
)
from .._websocket_limits import DEFAULT_PING_INTERVAL as DEFAULT_PING_INTERVAL
from .._websocket_limits import DEFAULT_PING_TIMEOUT as DEFAULT_PING_TIMEOUT
from ._client import connect as connect
from ._connection import MessageFragments as MessageFragments
from ._connection import WebSocketConnection as WebSocketConnection
from ._connection import WebSocketEvents as WebSocketEvents
from ._events import CLEAN_CLOSE_CODES as CLEAN_CLOSE_CODES
from ._events import BinaryMessage as BinaryMessage
from ._events import HandshakeError as HandshakeError
from ._events import Message as Message
from ._events import Ping as Ping
from ._events import Pong as Pong
from ._events import TextMessage as TextMessage
from ._events import WebSocketClosed as WebSocketClosed
from ._events import WebSocketEvent as WebSocketEvent
from ._events import WebSocketStatistics as WebSocketStatistics
from ._events import close_code_name as close_code_name
from ._server import WebSocketHandler as WebSocketHandler
from ._server import serve as serve

__all__ = [
    "CLEAN_CLOSE_CODES",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_TOTAL_QUEUED_BYTES",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "BinaryMessage",
    "HandshakeError",
    "Message",
    "MessageFragments",
    "Ping",
    "Pong",
    "TextMessage",
    "WebSocketClosed",
    "WebSocketConnection",
    "WebSocketEvent",
    "WebSocketEvents",
    "WebSocketHandler",
    "WebSocketStatistics",
    "close_code_name",
    "connect",
    "serve",
]

# Renamed (see docs/changelog.rst): trionet.ConnectionClosed is the base
# class of every abnormal end, this is the WebSocket one.
__getattr__ = _aliases(__name__, {"ConnectionClosed": ("WebSocketClosed", WebSocketClosed)})
