"""``WebSocketConnection``: one open WebSocket, server or client side.

Theory of operation
-------------------
wsproto parses and builds the frames; this module moves the bytes (through
the :class:`~trionet._transport.Transport` the HTTP upgrade or the client's
connect handed over) and keeps the promises RFC 6455 leaves to the
application.

One reader task per connection reads the socket, feeds wsproto and acts on
what comes out: pings are answered at once, a pong wakes whoever waits for
it, a close frame is answered and ends the connection, and message data goes
to a queue that ``async for`` drains. The reader is why pongs and close
frames are answered while the application is busy elsewhere. It runs in a
nursery the caller owns and can see: on a server, the HTTP connection's own
(the connection's task in the server's nursery); on a client, the one
:func:`~trionet.websocket.connect`'s ``async with`` opens. Keepalive
pings hold no task while they wait: one timer per trio run
(:mod:`._keepalive`) starts a short task in that nursery when a ping is due,
which sends it and waits for the pong.

The queue is bounded by ``max_queued_bytes``: while it is full the reader
stops reading the socket, so TCP's flow control slows the peer down instead
of memory growing. A ping that arrived before the queue filled has already
been answered; closing discards the queue, so a close handshake is never
stuck behind messages nobody will read.

A message is bounded by ``max_message_size`` (close 1009 beyond), counted as
it arrives, fragment by fragment; a compressed one is counted as it inflates,
with zlib told never to produce more than what is left of the limit, so a
small frame that inflates to gigabytes is refused after inflating only the
limit (a "zip bomb"): see :mod:`._deflate`.

Closing (RFC 6455 section 7): whoever closes first sends a close frame and
waits, up to ``close_timeout``, for the peer's; the server then closes TCP,
and the client waits for that before closing its side. A protocol error from
the peer is answered with the close code wsproto chose (1002, 1007, 1009),
and the connection is dropped without waiting. Every wait is bounded, so
:meth:`WebSocketConnection.aclose` always returns.

Two shortcuts spare wsproto the commonest frames on a server without
extensions, with results identical to wsproto's (property-tested against it):
a read that holds exactly one whole masked text or binary frame, while
wsproto holds no partial frame or message, is unmasked and decoded here; and
an outgoing message is framed here (an unmasked header and the payload).
Everything else, and every error, goes through wsproto.

Sending takes a write lock per frame, without a schedule point when nobody
else holds it, so the reader's pongs never land in the middle of a frame; a
message sent in fragments holds a second lock, for data only, so that no
other message interleaves with its fragments while pings and pongs still can.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import AsyncIterable, Iterable
from typing import Any, Self

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
)
from wsproto.events import Ping as _WsPing
from wsproto.events import Pong as _WsPong
from wsproto.events import TextMessage as _WsText

from .._errors import ConnectionClosed as _AnyConnectionClosed
from .._errors import ConnectionReset
from .._server import SocketAddress
from .._tls import TLSInfo
from .._transport import Transport
from .._websocket_limits import ConnectionOptions
from ..http._headers import Headers
from . import _frames as frames
from . import _keepalive as keepalive
from ._events import (
    CLEAN_CLOSE_CODES,
    BinaryMessage,
    ConnectionClosed,
    Message,
    Ping,
    Pong,
    TextMessage,
    WebSocketEvent,
    WebSocketStatistics,
)

__all__ = [
    "MessageFragments",
    "WebSocketConnection",
    "WebSocketEvents",
]

_OPEN = ConnectionState.OPEN

# The reason reported (with 1006) when our close frame got no answer.
_UNANSWERED_CLOSE = "the peer did not answer the close frame within close_timeout"


# Queue items: wsproto's message events (data, message_finished) and our
# Ping/Pong events; the end of the stream is a flag, not an item.
_Item = _WsText | BytesMessage | Ping | Pong


def _data_size(data: str | bytes | bytearray) -> int:
    if isinstance(data, str) and not data.isascii():
        return len(data.encode("utf-8", "surrogatepass"))
    return len(data)


class WebSocketConnection(trio.abc.AsyncResource):
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

    # Slots, not a __dict__: a server holds one of these per idle connection.
    __slots__ = (
        "__weakref__",  # the keepalive timer's reference
        "_budget",
        "_client",
        "_close_code",
        "_close_deadline",
        "_close_reason",
        "_close_timeout",
        "_control_events",
        "_discarding",
        "_done",
        "_ended",
        "_error",
        "_incoming",
        "_keepalive_due",
        "_local_close",
        "_max_message_size",
        "_max_queued_bytes",
        "_message_lock",
        "_messages_received",
        "_messages_sent",
        "_nursery",
        "_paused",
        "_pauses",
        "_ping_interval",
        "_ping_timeout",
        "_pings",
        "_pings_sent",
        "_plain_frames",
        "_pongs_received",
        "_proto",
        "_queue",
        "_queued_bytes",
        "_reader_scope",
        "_receiver",
        "_receiving",
        "_response_head",
        "_response_headers",
        "_space",
        "_transport",
        "_write_lock",
        "extensions",
        "path",
        "request_headers",
        "subprotocol",
        "target",
        "tls",
    )

    def __init__(
        self,
        transport: Transport,
        proto: Connection,
        *,
        client: bool,
        subprotocol: str | None,
        extensions: list[str],
        path: str,
        target: str,
        request_headers: Headers,
        response_headers: Headers | bytes,
        tls: TLSInfo | None,
        options: ConnectionOptions,
    ) -> None:
        self._transport = transport
        self._proto = proto
        self._client = client
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.path = path
        self.target = target
        self.request_headers = request_headers
        # A server's 101 stays the bytes it sent until someone reads its
        # fields (most never do): see response_headers.
        self._response_headers = response_headers if isinstance(response_headers, Headers) else None
        self._response_head = response_headers if isinstance(response_headers, bytes) else b""
        self.tls = tls
        # Read on every frame: kept as attributes of their own.
        self._max_message_size = options.max_message_size
        self._max_queued_bytes = options.max_queued_bytes
        self._budget = options.budget
        self._ping_interval = options.ping_interval
        self._ping_timeout = options.ping_timeout
        self._close_timeout = options.close_timeout
        self._control_events = options.control_events
        # A server frame without extensions is a header and the payload as it
        # is (no mask, no compression): built here, byte for byte what wsproto
        # builds, at a fraction of its cost.
        self._plain_frames = not client and not extensions
        # receiving
        # None while empty: an idle connection holds no deque (and its block).
        self._queue: deque[_Item] | None = None
        self._queued_bytes = 0
        self._incoming = 0  # bytes of the message arriving now
        self._receiver: trio.lowlevel.Task | None = None  # the application waits here
        # The reader waits here while the queue is full; made when first needed.
        self._space: trio.lowlevel.ParkingLot | None = None
        self._paused = False  # the reader waits for room in the queue
        self._pauses = 0
        self._receiving = False
        # sending
        self._write_lock = trio.Lock()
        self._message_lock = trio.Lock()
        self._pings: dict[bytes, trio.Event] = {}
        # closing
        self._ended = False  # the reader will queue nothing more
        self._done = trio.Event()  # the reader finished and the transport is closed
        self._local_close = False  # we started the close (aclose, send_close)
        self._close_deadline: float | None = None
        self._discarding = False  # no more messages are kept
        self._close_code: int | None = None
        self._close_reason = ""
        self._error: ConnectionClosed | None = None  # how an abnormal end is reported
        self._keepalive_due: float | None = None  # see _keepalive.py
        self._reader_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        # statistics
        self._messages_received = 0
        self._messages_sent = 0
        self._pings_sent = 0
        self._pongs_received = 0

    def __repr__(self) -> str:
        side = "client" if self._client else "server"
        return f"<trionet.websocket.WebSocketConnection {side} {self.remote_address!r}>"

    def _start(self, nursery: trio.Nursery) -> None:
        """Start the reader (and keepalive) in ``nursery``."""
        self._nursery = nursery
        nursery.start_soon(self._read_loop)
        if self._ping_interval is not None:
            keepalive.schedule(self, self._ping_interval)

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
        """The peer's address."""
        return self._transport.remote_address

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
            messages_received=self._messages_received,
            messages_sent=self._messages_sent,
            pings_sent=self._pings_sent,
            pongs_received=self._pongs_received,
            queued_bytes=self._queued_bytes,
        )

    # -- receiving ---------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while True:
            event = await self._receive_event()
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
            ConnectionClosed: The connection ended, cleanly or not (its
                ``code`` tells which); ``async for`` is the way to read until
                a clean end without an exception.
            trio.BusyResourceError: Another task is receiving.
        """
        while True:
            event = await self._receive_event()
            if event is None:
                raise self._end_error()
            if not isinstance(event, Ping | Pong):
                return event

    async def _receive_event(self) -> WebSocketEvent | None:
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this WebSocket")
        self._receiving = True
        try:
            item = await self._get()
            if item is None:
                return None
            kind = type(item)
            if kind is _WsText:
                assert isinstance(item, _WsText)
                if item.message_finished:
                    self._messages_received += 1
                    return TextMessage(item.data)
                return TextMessage("".join([s async for s in self._rest(item.data)]))
            if kind is BytesMessage:
                assert isinstance(item, BytesMessage)
                if item.message_finished:
                    self._messages_received += 1
                    return BinaryMessage(bytes(item.data))
                return BinaryMessage(b"".join([b async for b in self._rest(bytes(item.data))]))
            assert isinstance(item, Ping | Pong)
            return item
        finally:
            self._receiving = False

    async def _rest(self, first: Any) -> Any:
        """The data of the message ``first`` began, to its end."""
        yield first
        while True:
            item = await self._get()
            if item is None:
                raise self._end_error(cut=True)
            if isinstance(item, Ping | Pong):
                continue
            yield item.data
            if item.message_finished:
                self._messages_received += 1
                return

    async def _get(self) -> _Item | None:
        """The next queued item, or ``None`` once the connection ended and
        the queue is empty. Always a checkpoint."""
        if self._queue:
            await trio.lowlevel.checkpoint()
        # The reader may have run meanwhile, and failing the connection
        # empties the queue: look again after every schedule point.
        while not self._queue:
            if self._ended:
                await trio.lowlevel.checkpoint()
                return None
            # (Inline, not a helper coroutine: an idle connection waits
            # here, and every frame of the wait is memory it holds.)
            self._receiver = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
        queue = self._queue
        item = queue.popleft()
        if not queue:
            self._queue = None
        if not isinstance(item, Ping | Pong):
            size = _data_size(item.data)
            self._queued_bytes -= size
            if self._budget is not None:
                self._budget.release(size)
            if self._space and self._queued_bytes < self._max_queued_bytes:
                self._space.unpark_all()
        return item

    # One task receives at a time (_receiving), so one waiter is all there is
    # to wake: lighter than a ParkingLot on the path of every message.

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._receiver = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _wake_receiver(self) -> None:
        task = self._receiver
        if task is not None:
            self._receiver = None
            trio.lowlevel.reschedule(task)

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

    def _end_error(self, cut: bool = False) -> ConnectionClosed:
        if self._error is not None:
            return self._error
        code = self._close_code if self._close_code is not None else 1006
        reason = self._close_reason
        if cut:
            reason = f"the connection closed in the middle of a message ({reason or code})"
        return ConnectionClosed(code, reason)

    # -- the reader ----------------------------------------------------------------

    async def _read_loop(self) -> None:
        transport = self._transport
        proto = self._proto
        try:
            with self._reader_scope:
                await self._handle_events()
                budget = self._budget
                while not self._ended:
                    if self._queue and not self._discarding:
                        # Full: this connection's queue, or all of the
                        # server's together (a connection with nothing queued
                        # may always take a message, so none starves).
                        lot = None
                        if self._queued_bytes >= self._max_queued_bytes:
                            lot = self._space
                            if lot is None:
                                lot = self._space = trio.lowlevel.ParkingLot()
                        elif budget is not None and budget.spent:
                            lot = budget.room
                            budget.waits += 1
                        if lot is not None:
                            self._pauses += 1
                            self._paused = True
                            try:
                                await lot.park()
                            finally:
                                self._paused = False
                            continue
                    if self._close_deadline is None:
                        data = await transport.receive()
                    else:
                        # Our close frame is out (send_close): the peer has
                        # until the deadline to answer it.
                        data = None
                        with trio.move_on_at(self._close_deadline):
                            data = await transport.receive()
                        if data is None:
                            self._broken(_UNANSWERED_CLOSE)
                            break
                    if not data:
                        self._broken("the peer closed the connection without a close frame")
                        break
                    if self._plain_frames and self._parser_idle():
                        whole = frames.whole_masked_frame(data)
                        if whole is not None:
                            if await self._admit(whole):
                                self._wake_receiver()
                            continue
                    proto.receive_data(data)
                    await self._handle_events()
                if not self._done.is_set():
                    await self._finish_transport()
        except ConnectionReset as exc:
            self._broken(exc.reason)
        except _AnyConnectionClosed as exc:
            # The reader's own writes (a pong, the close echo) found the
            # connection broken (_write already recorded it), or TLS failed:
            # either way it ends as every ending does, with a code for
            # whoever reads next, never as an error out of this task.
            self._broken(str(exc))
        except (trio.ClosedResourceError, trio.BusyResourceError):
            self._broken("the connection was closed")
        finally:
            self._ended = True
            self._keepalive_due = None
            self._wake_receiver()
            if self._space is not None:
                self._space.unpark_all()
            for event in self._pings.values():
                event.set()
            if not self._done.is_set():
                with trio.CancelScope(shield=True):
                    await transport.aclose()
                self._done.set()

    async def _handle_events(self) -> None:
        proto = self._proto
        woke = False
        for event in proto.events():
            kind = type(event)
            if kind is _WsText or kind is BytesMessage:
                assert isinstance(event, _WsText | BytesMessage)
                woke = await self._admit(event) or woke
            elif kind is _WsPing:
                assert isinstance(event, _WsPing)
                if proto.state is _OPEN:
                    await self._write(proto.send(event.response()))
                if self._control_events and not self._discarding:
                    self._enqueue(Ping(bytes(event.payload)))
                    woke = True
            elif kind is _WsPong:
                assert isinstance(event, _WsPong)
                self._pongs_received += 1
                self._pong(bytes(event.payload))
                if self._control_events and not self._discarding:
                    self._enqueue(Pong(bytes(event.payload)))
                    woke = True
            elif kind is CloseConnection:
                assert isinstance(event, CloseConnection)
                await self._closing(event)
                break
        if woke:
            self._wake_receiver()

    async def _admit(self, event: _WsText | BytesMessage) -> bool:
        """Queue message data, within ``max_message_size``; True if queued."""
        if self._discarding:
            return False
        size = _data_size(event.data)
        self._incoming += size
        limit = self._max_message_size
        if limit is not None and self._incoming > limit:
            await self._fail(1009, f"a message over max_message_size={limit} bytes")
            return False
        if event.message_finished:
            self._incoming = 0
        self._enqueue(event)
        self._queued_bytes += size
        if self._budget is not None:
            self._budget.used += size
        return True

    def _enqueue(self, item: _Item) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(item)

    def _parser_idle(self) -> bool:
        """wsproto holds no partial frame or message and nothing unread, so a
        whole frame may bypass it (see :func:`_whole_masked_frame`)."""
        proto = self._proto
        frames = proto._proto
        decoder = frames._frame_decoder
        return (
            proto.state is _OPEN
            and decoder.header is None
            and not decoder.buffer.buffer
            and frames._message_decoder.opcode is None
            and not proto._events
        )

    async def _closing(self, event: CloseConnection) -> None:
        proto = self._proto
        state = proto.state
        if state is _OPEN:
            # wsproto found the peer breaking the protocol (it reports that
            # as a close event without a close frame): fail the connection.
            reason = event.reason or ""
            if event.code == 1009 and self._max_message_size is not None:
                # The bounded inflater refused a compressed message.
                reason = f"a message over max_message_size={self._max_message_size} bytes"
            await self._fail(event.code, reason, drop=True)
            return
        if self._close_code is None:
            self._close_code = event.code
            self._close_reason = event.reason or ""
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer started the close: answer with its code.
            try:
                await self._write(proto.send(event.response()))
            except ConnectionClosed:
                pass
        self._ended = True
        if self._error is None and not self._local_close:
            code = self._close_code
            if code not in CLEAN_CLOSE_CODES:
                self._error = ConnectionClosed(code, self._close_reason)

    async def _fail(self, code: int, reason: str, drop: bool = False) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): close with ``code``,
        keep nothing more, and report ``code`` to the application."""
        if self._error is None and self._close_code is None:
            self._error = ConnectionClosed(code, reason)
            self._close_code = code
            self._close_reason = reason
        self._discard(keep_queued=True)
        if self._proto.state is _OPEN:
            try:
                await self._write(self._proto.send(CloseConnection(code, reason[:120])))
            except ConnectionClosed:
                drop = True
        if drop:
            self._ended = True

    def _broken(self, reason: str) -> None:
        if self._close_code is None:
            self._close_code = 1006
            self._close_reason = reason
        if self._error is None and not (self._local_close and self._ended):
            self._error = ConnectionClosed(1006, reason)
        self._ended = True

    def _discard(self, keep_queued: bool = False) -> None:
        """Keep no more messages: the reader no longer queues them nor waits
        for room; the queue is dropped too, unless ``keep_queued`` (whole
        messages that came before the peer failed the connection are still
        delivered)."""
        self._discarding = True
        if not keep_queued:
            self._queue = None
            if self._budget is not None:
                self._budget.release(self._queued_bytes)
            self._queued_bytes = 0
        if self._space is not None:
            self._space.unpark_all()
        if self._budget is not None:
            # This reader may be among those waiting for the server's budget:
            # it must see that it keeps nothing now (the others look again
            # and wait on).
            self._budget.room.unpark_all()

    async def _finish_transport(self) -> None:
        """After the close handshake: the server closes TCP at once; the
        client waits (up to ``close_timeout``) for the server to."""
        transport = self._transport
        if self._client and self._proto.state is ConnectionState.CLOSED:
            with trio.move_on_after(self._close_timeout):
                try:
                    while await transport.receive():
                        pass
                except ConnectionReset:
                    pass
        with trio.CancelScope(shield=True):
            await transport.aclose()
        self._done.set()

    # -- keepalive and pings ------------------------------------------------------------

    def _keepalive_fire(self) -> None:
        """A keepalive ping is due (called by the run's keepalive timer)."""
        if self._ended or self._nursery is None:
            return
        try:
            self._nursery.start_soon(self._keepalive_round)
        except RuntimeError:  # pragma: no cover - the nursery closed: so did the reader
            pass

    async def _keepalive_round(self) -> None:
        """Ping and wait for the pong; then schedule the next round, or end
        the connection with 1011 if the pong did not come in time."""
        interval = self._ping_interval
        assert interval is not None
        pauses = self._pauses
        with trio.move_on_after(self._ping_timeout or math.inf) as scope:
            try:
                await self.ping()
            except (ConnectionClosed, trio.ClosedResourceError):
                return
        if scope.cancelled_caught and not self._paused and self._pauses == pauses:
            # (A paused reader, or one that paused meanwhile, may have the
            # pong behind messages the application has not read yet: a peer
            # that filled the queue is alive.)
            reason = "keepalive ping timeout"
            if self._proto.state is _OPEN:
                # Tell the peer why (RFC 6455 section 7.1.7) if the close
                # frame goes out within close_timeout; wait for no answer.
                with trio.move_on_after(self._close_timeout):
                    try:
                        await self._write(self._proto.send(CloseConnection(1011, reason)))
                    except (ConnectionClosed, trio.ClosedResourceError):
                        pass
            await self._abort(1011, reason)
            return
        if not self._ended:
            keepalive.schedule(self, interval)

    def _pong(self, payload: bytes) -> None:
        pings = self._pings
        if payload not in pings:
            return  # unsolicited (RFC 6455 section 5.5.3 allows it)
        # A pong answers its ping and every ping sent before it.
        for key in list(pings):
            pings.pop(key).set()
            if key == payload:
                break

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong.

        Args:
            payload: Up to 125 bytes of application data; by default 4 random
                bytes.

        Raises:
            ValueError: The payload is over 125 bytes, or a ping with the same
                payload is still waiting for its pong.
            ConnectionClosed: The connection ended before the pong arrived.
            trio.ClosedResourceError: You closed the connection.
        """
        if payload is None:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        payload = bytes(payload)
        if len(payload) > 125:
            raise ValueError(f"a ping payload is at most 125 bytes, not {len(payload)}")
        if payload in self._pings:
            raise ValueError(f"a ping with payload {payload!r} is already waiting for its pong")
        self._check_open()
        event = self._pings[payload] = trio.Event()
        try:
            await self._write(self._proto.send(_WsPing(payload)))
            self._pings_sent += 1
            await event.wait()
        finally:
            self._pings.pop(payload, None)
        if self._ended and self._close_code is not None:
            raise self._closed_error()

    # -- sending ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._proto.state is not _OPEN or self._ended:
            raise self._closed_error()

    def _closed_error(self) -> Exception:
        if self._local_close:
            return trio.ClosedResourceError("this WebSocket was closed")
        return self._end_error()

    async def _write(self, frame: bytes | _WsText | BytesMessage, plain: bool = False) -> None:
        """Write ``frame`` under the write lock: frames already built (control
        frames), or a message event, built here under the lock (with
        compression, frames must go out in the order the compressor saw them;
        ``plain`` builds it without wsproto, see :func:`_plain_frame`)."""
        lock = self._write_lock
        await _acquire(lock)
        try:
            if not isinstance(frame, bytes):
                self._check_open()
                frame = frames.plain_frame(frame) if plain else self._proto.send(frame)
            await self._transport.send_all(frame)
        except ConnectionReset as exc:
            self._broken(exc.reason)
            raise self._end_error() from exc
        except trio.ClosedResourceError as exc:
            raise self._closed_error() from exc
        finally:
            lock.release()

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message: text for ``str``, binary for bytes.

        Returns when the message was handed to the transport (backpressure:
        a peer that does not read makes this wait).

        Args:
            message: The message.

        Raises:
            TypeError: ``message`` is neither text nor bytes.
            ConnectionClosed: The connection ended.
            trio.ClosedResourceError: You closed the connection.
        """
        if isinstance(message, str):
            event: _WsText | BytesMessage = _WsText(message)
        elif isinstance(message, bytes | bytearray | memoryview):
            event = BytesMessage(bytes(message))
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        lock = self._message_lock
        await _acquire(lock)
        try:
            await self._write(event, self._plain_frames)
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
            ConnectionClosed: The connection ended.
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

    async def _abandon(self, reason: str) -> None:
        """Fail the connection with 1011 (internal error) at once: the close
        frame within ``close_timeout``, then the transport."""
        with trio.move_on_after(self._close_timeout):
            await self._fail(1011, reason, drop=True)
        await self._abort_transport()

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
            self._close_reason = _UNANSWERED_CLOSE
        await self._abort_transport()

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake and go on receiving (Node's
        ``ws.close()``): the messages the peer sent before its close frame
        are still delivered, and ``async for`` ends cleanly when that frame
        arrives. It must arrive within ``close_timeout``, else the loop raises
        :class:`ConnectionClosed` with 1006. Sending is over at once
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

    async def _send_close_frame(self, code: int, reason: str) -> bool | None:
        """Send our close frame unless a close is under way; ``True`` once
        sent, ``False`` if the connection broke instead, ``None`` if there
        was nothing to send."""
        if self._ended or self._local_close or self._proto.state is not _OPEN:
            await trio.lowlevel.checkpoint()
            return None
        self._local_close = True
        self._close_deadline = trio.current_time() + self._close_timeout
        with trio.move_on_at(self._close_deadline):
            try:
                await self._write(self._proto.send(CloseConnection(code, reason)))
            except ConnectionClosed:
                return False
            return True
        return False

    async def _abort(self, code: int, reason: str) -> None:
        """End at once with ``code``, without a close handshake (the peer is
        unresponsive)."""
        if self._close_code is None:
            self._close_code = code
            self._close_reason = reason
        if self._error is None:
            self._error = ConnectionClosed(code, reason)
        self._ended = True
        self._discard()
        await self._abort_transport()

    async def _abort_transport(self) -> None:
        self._reader_scope.cancel()
        if not self._transport.closed:
            with trio.CancelScope(shield=True):
                await self._transport.aclose()
        self._done.set()
        self._ended = True
        self._wake_receiver()

    def _request_shutdown(self) -> None:
        """The server is shutting down: close with 1001 (going away)."""
        if self._nursery is not None and not self._ended and not self._local_close:
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
        event = await ws._receive_event()
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
        if ws._receiving:
            raise trio.BusyResourceError("another task is already receiving on this WebSocket")
        ws._receiving = True
        try:
            while True:
                item = await ws._get()
                if item is None:
                    if self.is_text is None:
                        raise ws._end_error()
                    raise ws._end_error(cut=True)
                if isinstance(item, Ping | Pong):
                    continue
                break
        finally:
            ws._receiving = False
        self.is_text = isinstance(item, _WsText)
        if item.message_finished:
            self._finished = True
            ws._messages_received += 1
        return item.data if isinstance(item.data, str) else bytes(item.data)


async def _acquire(lock: trio.Lock) -> None:
    """Take ``lock``, with no schedule point when it is free: the caller's
    write is the schedule point (trio.Lock.acquire always has one, a task
    switch on the path of every message)."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()


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
            await self._ws._write(frames.fragment(self._previous, False))
        self._previous = piece if isinstance(piece, str) else bytes(piece)

    async def finish(self) -> None:
        last = self._previous if self._previous is not None else b""
        self.started = True
        await self._ws._write(frames.fragment(last, True))
