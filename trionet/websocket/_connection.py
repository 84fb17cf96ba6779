"""``WebSocketConnection``: one open WebSocket, server or client side, as the
application sees it (receive, send, ping, close, statistics). The reader, the
writes and the closing handshake's timing are :mod:`._driver`'s; frames and
limits :mod:`._protocol`'s; the received messages :mod:`._inbox`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Self

import trio

from .._proxy._protocol import ProxyHeader
from .._server import SocketAddress
from ..http._headers import Headers
from . import _frames as frames
from ._driver import UNANSWERED_CLOSE, WebSocketDriver, acquire
from ._events import (
    Message,
    Ping,
    Pong,
    WebSocketEvent,
    WebSocketStatistics,
)

__all__ = [
    "MessageFragments",
    "WebSocketConnection",
    "WebSocketEvents",
]


class WebSocketConnection(WebSocketDriver):
    """One open WebSocket (RFC 6455), server or client side.

    You get one from :meth:`trionet.http.Request.accept_websocket`, from the
    handler of :func:`trionet.websocket.serve`, or from
    :func:`trionet.websocket.connect`. Read it with ``async for message in
    ws`` (:class:`TextMessage` / :class:`BinaryMessage`); the loop ends on a
    clean close (1000, 1001, 1005, or a close you started) and raises
    :exc:`trionet.websocket.ConnectionClosed` otherwise.

    Attributes:
        subprotocol: The negotiated subprotocol, or ``None``.
        extensions: The negotiated extensions' names
            (``["permessage-deflate"]`` or ``[]``).
        path: The path of the upgrade request (percent-decoded).
        target: The upgrade request's target as sent (path and query).
        request_headers: The upgrade request's header fields.
    """

    # The state is the driver's (its slots): no __dict__ here either.
    __slots__ = ()

    def __repr__(self) -> str:
        side = "client" if self._proto.client else "server"
        return f"<trionet.websocket.WebSocketConnection {side} {self.remote_address!r}>"

    # -- properties ------------------------------------------------------------

    @property
    def response_headers(self) -> Headers:
        """The 101 response's header fields."""
        headers = self._response_headers
        if headers is None:
            headers = self._response_headers = Headers._from_raw(
                frames.head_fields(self._response_head)
            )
            self._response_head = b""
        return headers

    @property
    def remote_address(self) -> SocketAddress:
        """The peer's address (behind a proxy that sent a trusted PROXY
        protocol header, the client it names)."""
        return self._transport.remote_address

    @property
    def client(self) -> SocketAddress:
        """The client's address: on a server, what the upgrade request's
        :attr:`Request.client <trionet.http.Request.client>` said (the
        forwarding headers of a trusted proxy believed); else
        :attr:`remote_address`."""
        client = self._client
        return self._transport.remote_address if client is None else client

    @property
    def proxy_address(self) -> SocketAddress | None:
        """The proxy's address when the connection came with a PROXY
        protocol header; ``None`` otherwise."""
        return self._transport.proxy_address

    @property
    def proxy_header(self) -> ProxyHeader | None:
        """The PROXY protocol header of the connection, or ``None``."""
        return self._transport.proxy_header

    @property
    def local_address(self) -> SocketAddress:
        """This side's address."""
        return self._transport.local_address

    @property
    def close_code(self) -> int | None:
        """The close code once the connection ended (``None`` while open):
        the code of the peer's close frame, or the one trionet failed the
        connection with, or 1006 if it broke without a close frame."""
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection ended (``None`` while open)."""
        return None if self._close_code is None else self._close_reason

    @property
    def closed(self) -> bool:
        """True once the connection ended."""
        return self._done.is_set()

    def statistics(self) -> WebSocketStatistics:
        """Return the connection's counters.

        Returns:
            A :class:`WebSocketStatistics`.
        """
        transport = self._transport
        return WebSocketStatistics(
            bytes_received=transport.bytes_received,
            bytes_sent=transport.bytes_sent,
            messages_received=self._inbox.messages_received,
            messages_sent=self._messages_sent,
            pings_sent=self._pings_sent,
            pongs_received=self._pongs_received,
            queued_bytes=self._inbox.queued_bytes,
        )

    # -- receiving ---------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while True:
            event = await self._inbox.next_event(self._end_error)
            if event is None:
                if self._error is not None and not self._local_close:
                    raise self._error
                raise StopAsyncIteration
            if not isinstance(event, Ping | Pong):
                return event

    def events(self) -> WebSocketEvents:
        """Iterate over messages and, with ``control_events=True``, the
        :class:`Ping` and :class:`Pong` events too::

            async for event in ws.events():
                match event:
                    case TextMessage(text): ...
                    case Ping(payload): ...  # already answered

        Returns:
            A :class:`WebSocketEvents` async iterator; it ends and raises as
            ``async for message in ws`` does.
        """
        return WebSocketEvents(self)

    async def receive(self) -> Message:
        """Receive the next whole message (pings and pongs are skipped).

        Returns:
            A :class:`TextMessage` or :class:`BinaryMessage`.

        Raises:
            WebSocketClosed: The connection ended, cleanly or not (its
                ``code`` tells which); ``async for`` is the way to read until
                a clean end without an exception.
            trio.BusyResourceError: Another task is receiving.
        """
        while True:
            event = await self._inbox.next_event(self._end_error)
            if event is None:
                raise self._end_error()
            if not isinstance(event, Ping | Pong):
                return event

    def receive_fragments(self) -> MessageFragments:
        """Receive the next message piece by piece, as it arrives, instead of
        whole: for messages too large to hold, or to process while they
        stream in. ``max_message_size`` still applies (set it to ``None``
        for no limit).

        ::

            async for chunk in ws.receive_fragments():
                ...  # str pieces of a text message, bytes of a binary one

        Returns:
            A :class:`MessageFragments`: an async iterator over the pieces of
            one message.
        """
        return MessageFragments(self)

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong.

        Args:
            payload: Up to 125 bytes of application data; by default 4 random
                bytes.

        Raises:
            ValueError: The payload is over 125 bytes, or a ping with the same
                payload is still waiting for its pong.
            WebSocketClosed: The connection ended before the pong arrived.
            trio.ClosedResourceError: You closed the connection.
        """
        await self._ping(payload)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message: text for ``str``, binary for bytes.

        Returns when the message was handed to the transport (backpressure:
        a peer that does not read makes this wait).

        Args:
            message: The message.

        Raises:
            TypeError: ``message`` is neither text nor bytes.
            WebSocketClosed: The connection ended.
            trio.ClosedResourceError: You closed the connection.
        """
        if isinstance(message, str | bytes):
            data: str | bytes = message
        elif isinstance(message, bytearray | memoryview):
            data = bytes(message)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        lock = self._message_lock
        await acquire(lock)
        try:
            await self._write_data(data)
        finally:
            lock.release()
        self._messages_sent += 1

    async def send_fragments(
        self, fragments: AsyncIterable[str | bytes] | Iterable[str | bytes]
    ) -> None:
        """Send one message in fragments (RFC 6455 section 5.4), one frame per
        item, as the items come: for a message produced piece by piece or too
        large to build whole. Other messages wait; pings and pongs do not.

        Args:
            fragments: An iterable or async iterable of all-``str`` (a text
                message) or all-bytes (binary) pieces. An empty one sends an
                empty binary message.

        Raises:
            TypeError: The pieces mix text and bytes, or are neither.
            WebSocketClosed: The connection ended.
            trio.ClosedResourceError: You closed the connection.
        """
        async with self._message_lock:
            sender = _FragmentSender(self)
            try:
                if isinstance(fragments, AsyncIterable):
                    iterator = aiter(fragments)
                    while True:
                        try:
                            piece = await anext(iterator)
                        except StopAsyncIteration:
                            break
                        await sender.add(piece)
                else:
                    for piece in fragments:
                        await sender.add(piece)
                await sender.finish()
            except BaseException:
                if sender.started:
                    # A message cannot be taken back once a frame of it is
                    # out, and anything sent now would continue it: the
                    # connection fails, so that the peer never gets a
                    # truncated or spliced message.
                    with trio.CancelScope(shield=True):
                        await self._abandon("a fragmented message was abandoned midway")
                raise
        self._messages_sent += 1

    # -- closing ---------------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: the close handshake (send ``code`` and
        ``reason``, wait for the peer's close frame), then the transport.
        Bounded by ``close_timeout``, after which the transport is closed
        regardless. Always returns; calling it again waits for the first
        close to finish.

        Args:
            code: The close code: 1000 (normal), 1001 (going away), 1008
                (policy), 1011 (internal error), or 3000-4999.
            reason: A short reason (at most 123 bytes of UTF-8).

        Raises:
            ValueError: The code may not be sent (1005, 1006, 1015, unassigned
                ones) or the reason is too long.
        """
        frames.check_close(code, reason)
        # Whoever calls aclose reads no more: nothing more is kept, so that a
        # full queue cannot keep the reader from the peer's close frame.
        self._discard()
        try:
            sent = await self._send_close_frame(code, reason)
            deadline = self._close_deadline
            if deadline is None:  # the peer's close, or a broken connection
                deadline = trio.current_time() + self._close_timeout
            if sent is not False:
                with trio.move_on_at(deadline):
                    await self._done.wait()
        except BaseException:
            await self._abort_transport()
            raise
        if self._close_code is None:
            # RFC 6455 section 7.1.5: no close frame came back.
            self._close_code = 1006
            self._close_reason = UNANSWERED_CLOSE
        await self._abort_transport()

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake and go on receiving (Node's
        ``ws.close()``): the messages the peer sent before its close frame
        are still delivered, and ``async for`` ends cleanly when that frame
        arrives. It must arrive within ``close_timeout``, else the loop raises
        :class:`WebSocketClosed` with 1006. Sending is over at once
        (``send`` raises ``trio.ClosedResourceError``). :meth:`aclose` still
        closes the transport (``async with`` does it for you).

        Args:
            code: The close code, as for :meth:`aclose`.
            reason: A short reason (at most 123 bytes of UTF-8).

        Raises:
            ValueError: The code may not be sent, or the reason is too long.
        """
        frames.check_close(code, reason)
        await self._send_close_frame(code, reason)

    def _request_shutdown(self) -> None:
        """The server is shutting down: close with 1001 (going away)."""
        if self._nursery is not None and not self._inbox.ended and not self._local_close:
            self._nursery.start_soon(self.aclose, 1001, "server shutting down")

    async def _handler_done(self, failed: bool) -> None:
        """The server handler returned (or raised): close if it did not."""
        if failed:
            await self.aclose(1011, "internal error")
        else:
            await self.aclose()


class WebSocketEvents:
    """Messages and control events of a connection (see
    :meth:`WebSocketConnection.events`)."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WebSocketEvent:
        ws = self._ws
        event = await ws._inbox.next_event(ws._end_error)
        if event is None:
            if ws._error is not None and not ws._local_close:
                raise ws._error
            raise StopAsyncIteration
        return event


class MessageFragments:
    """One message, received piece by piece (see
    :meth:`WebSocketConnection.receive_fragments`).

    Attributes:
        is_text: Whether the message is text (known once the first piece
            arrived; ``None`` before).
    """

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._finished = False
        self.is_text: bool | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str | bytes:
        if self._finished:
            raise StopAsyncIteration
        ws = self._ws
        item = await ws._inbox.next_piece()
        if item is None:
            raise ws._end_error(cut=self.is_text is not None)
        self.is_text = isinstance(item.data, str)
        if item.finished:
            self._finished = True
        return item.data


class _FragmentSender:
    """The frames of one message in fragments: each piece is sent when the
    next arrives, so that the last one goes out with FIN set."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._text: bool | None = None
        self._previous: str | bytes | None = None
        self.started = False  # a frame is out

    async def add(self, piece: object) -> None:
        if not isinstance(piece, str | bytes | bytearray | memoryview):
            raise TypeError(f"a fragment is str or bytes, not {type(piece).__name__}")
        is_text = isinstance(piece, str)
        if self._text is None:
            self._text = is_text
        elif self._text != is_text:
            raise TypeError("the fragments of one message are all str or all bytes")
        if self._previous is not None:
            self.started = True
            await self._ws._write_data(self._previous, False)
        self._previous = piece if isinstance(piece, str) else bytes(piece)

    async def finish(self) -> None:
        last = self._previous if self._previous is not None else b""
        self.started = True
        await self._ws._write_data(last, True)
