"""One ASGI ``websocket`` connection: the ``receive`` and ``send`` an
application gets, over trionet's WebSocket stack.

Theory of operation
-------------------
The upgrade request waits, unanswered, for the app's decision. The first
``receive`` gives ``websocket.connect``. Then the app sends one of:

* ``websocket.accept``: the handshake is answered (101) with the chosen
  subprotocol and extra headers, through
  :meth:`~trionet.http.Request.accept_websocket`, so the connection has
  trionet's limits, permessage-deflate and keepalive pings;
* ``websocket.close``: refused with 403, as the specification requires;
* ``websocket.http.response.start`` and ``…body``: the *denial response*
  extension, an ordinary HTTP response of the app's (the HTTP cycle of
  :mod:`._http` sends it).

Once accepted, ``receive`` gives each whole message (``text`` or ``bytes``)
and, at the end, ``websocket.disconnect`` with the peer's close code and
reason (1005 when it sent none, 1006 when the connection broke). The app's
``websocket.close`` starts the close handshake and messages the peer sent
before its close frame are still delivered. ``send`` after the end raises
:exc:`~trionet.asgi.ClientDisconnected`. When the app returns, the
connection is closed with 1000 if it is still open (1011 if the app
raised).
"""

from __future__ import annotations

from typing import Any

import trio

from .._errors import ConnectionClosed
from .._websocket_limits import ConnectionOptions
from ..http._server._request import Request
from ..websocket._connection import WebSocketConnection
from ..websocket._events import BinaryMessage, WebSocketClosed
from ._http import ClientDisconnected, HTTPCycle

__all__ = ["WebSocketCycle"]


class WebSocketCycle:
    """The ``receive`` and ``send`` of one WebSocket (see the module's
    theory of operation)."""

    def __init__(self, request: Request, options: dict[str, Any]) -> None:
        self._request = request
        self._options = options
        self._connected = False  # websocket.connect was received
        self.ws: WebSocketConnection | None = None
        self.denial: HTTPCycle | None = None
        self._refused = False
        self._ended = False  # websocket.disconnect was given
        self._close_sent = False
        self._decision = trio.Event()  # set once the handshake is answered
        self._accepting = False  # websocket.accept came (the 101 may be on its way)

    @property
    def decided(self) -> bool:
        """Whether the app answered the handshake (accepted, refused, or
        denied with a response)."""
        return self._accepting or self._refused or self.denial is not None

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive``."""
        if not self._connected:
            self._connected = True
            await trio.lowlevel.checkpoint()
            return {"type": "websocket.connect"}
        if not self._decision.is_set():
            # Another task of the app reads ahead (Quart does): it waits for
            # the handshake to be answered.
            await self._decision.wait()
        ws = self.ws
        if ws is None:
            self._ended = True
            await trio.lowlevel.checkpoint()
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        try:
            message = await ws.receive()
        except WebSocketClosed as exc:
            self._ended = True
            return {"type": "websocket.disconnect", "code": exc.code, "reason": str(exc.args[0])}
        except trio.ClosedResourceError:
            self._ended = True
            return {
                "type": "websocket.disconnect",
                "code": ws.close_code or 1006,
                "reason": ws.close_reason or "",
            }
        if isinstance(message, BinaryMessage):
            return {"type": "websocket.receive", "bytes": message.data}
        return {"type": "websocket.receive", "text": message.data}

    async def send(self, message: dict[str, Any]) -> None:
        """The ASGI ``send``.

        Raises:
            ClientDisconnected: The connection has ended.
            RuntimeError: A message out of order.
            TypeError: A malformed message.
            ValueError: An unknown message type, or a close code that may
                not be sent.
        """
        kind = message["type"]
        if kind == "websocket.send":
            await self._send_message(message)
        elif kind == "websocket.accept":
            await self._accept(message)
        elif kind == "websocket.close":
            await self._close(message)
        elif kind in ("websocket.http.response.start", "websocket.http.response.body"):
            await self._deny(message)
        else:
            raise ValueError(f"not an ASGI websocket message: {kind!r}")

    async def _accept(self, message: dict[str, Any]) -> None:
        if self.decided:
            raise RuntimeError("websocket.accept after the handshake was answered")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise TypeError(f"websocket.accept: subprotocol must be a str, not {subprotocol!r}")
        headers = []
        for name, value in message.get("headers", ()):
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise TypeError("websocket.accept: header names and values are bytes")
            if name.lower() == b"sec-websocket-protocol":
                raise ValueError("websocket.accept: give the subprotocol as 'subprotocol'")
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
        options: ConnectionOptions = self._options["options"]
        self._accepting = True
        try:
            self.ws = await self._request.accept_websocket(
                subprotocol,
                headers,
                origins=self._options["origins"],
                compression=self._options["compression"],
                max_message_size=options.max_message_size,
                max_queued_bytes=options.max_queued_bytes,
                ping_interval=options.ping_interval,
                ping_timeout=options.ping_timeout,
                close_timeout=options.close_timeout,
            )
        finally:
            # Once the 101 is out (or the accept failed: nothing to receive).
            self._decision.set()

    async def _close(self, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        reason = message.get("reason") or ""
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"websocket.close: code must be an int, not {code!r}")
        if not isinstance(reason, str):
            raise TypeError(f"websocket.close: reason must be a str, not {reason!r}")
        if self.ws is None:
            if self.decided:
                raise RuntimeError("websocket.close after the handshake was answered otherwise")
            # Before the handshake: refused (the specification's 403).
            self._refused = True
            self._decision.set()
            await self._request.reject_websocket(403)
            return
        if self._close_sent:
            await trio.lowlevel.checkpoint()
            return
        self._close_sent = True
        try:
            await self.ws.send_close(code, reason)
        except (ConnectionClosed, trio.ClosedResourceError) as exc:
            raise ClientDisconnected("the WebSocket has ended") from exc

    async def _send_message(self, message: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None:
            raise RuntimeError("websocket.send before websocket.accept")
        text = message.get("text")
        data = message.get("bytes")
        if (text is None) == (data is None):
            raise TypeError("websocket.send carries either 'text' or 'bytes'")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"websocket.send: text must be a str, not {type(text).__name__}")
        if data is not None and not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"websocket.send: bytes must be bytes, not {type(data).__name__}")
        if self._ended or self._close_sent:
            raise ClientDisconnected("the WebSocket has ended")
        try:
            await ws.send(text if text is not None else bytes(data or b""))
        except (ConnectionClosed, trio.ClosedResourceError) as exc:
            raise ClientDisconnected("the WebSocket has ended") from exc

    async def _deny(self, message: dict[str, Any]) -> None:
        if self._accepting or self._refused:
            raise RuntimeError(f"{message['type']} after the handshake was answered")
        if self.denial is None:
            self.denial = HTTPCycle(self._request)
            self._decision.set()
        kind = "http.response." + message["type"].rpartition(".")[2]
        await self.denial.send({**message, "type": kind})

    async def finish(self, failed: bool) -> None:
        """The app has returned (or raised, ``failed``)."""
        if self.ws is not None:
            await self.ws._handler_done(failed=failed)
        elif self.denial is not None:
            self.denial.outcome()
