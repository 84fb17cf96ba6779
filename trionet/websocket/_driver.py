"""The trio driver under :class:`~._connection.WebSocketConnection`: the
reader task moving bytes from the transport through :mod:`._protocol` into
:mod:`._inbox`, the writes under the write lock, the closing handshake's
timing and keepalive. :mod:`._connection` adds the public API on top.

Theory of operation
-------------------
This module moves the bytes (through the
:class:`~trionet._transport.Transport` the HTTP upgrade or the client's
connect handed over), owns the timeouts and the tasks, and keeps the
promises RFC 6455 leaves to the application.

One reader task per connection reads the socket, feeds the protocol and acts
on what comes out: pings are answered at once, a pong wakes whoever waits for
it, a close frame is answered and ends the connection, and message data goes
to the inbox that ``async for`` drains (the whole-frame shortcut first:
:meth:`~._protocol.WebSocketProtocol.whole_frame`). The reader is why pongs
and close frames are answered while the application is busy elsewhere. It
runs in a nursery the caller owns and can see: on a server, the HTTP
connection's own (the connection's task in the server's nursery); on a
client, the one :func:`~trionet.websocket.connect`'s ``async with`` opens.
Keepalive pings hold no task while they wait: one timer per trio run
(:mod:`._keepalive`) starts a short task in that nursery when a ping is due,
which sends it and waits for the pong. While the inbox is full the reader
waits for room instead of reading (see :mod:`._inbox`).

Closing (RFC 6455 section 7): whoever closes first sends a close frame and
waits, up to ``close_timeout``, for the peer's; the server then closes TCP,
and the client waits for that before closing its side. A protocol error from
the peer is answered with the close code the protocol chose (1002, 1007,
1009), and the connection is dropped without waiting. Every wait is bounded,
so :meth:`~._connection.WebSocketConnection.aclose` always returns.

Sending takes a write lock per frame, without a schedule point when nobody
else holds it, so the reader's pongs never land in the middle of a frame; a
message sent in fragments holds a second lock, for data only, so that no
other message interleaves with its fragments while pings and pongs still can.
"""

from __future__ import annotations

import math
import os

import trio

from .._errors import ConnectionClosed as _AnyConnectionClosed
from .._errors import ConnectionReset
from .._server import SocketAddress
from .._transport import Transport
from .._websocket_limits import ConnectionOptions
from ..http._headers import Headers
from ..tls._stream import TLSInfo
from . import _keepalive as keepalive
from ._events import (
    CLEAN_CLOSE_CODES,
    Ping,
    Pong,
    WebSocketClosed,
)
from ._inbox import Inbox
from ._protocol import CloseReceived, Failed, MessageData, State, WebSocketProtocol

__all__ = ["UNANSWERED_CLOSE", "WebSocketDriver", "acquire"]

_OPEN = State.OPEN

# The reason reported (with 1006) when our close frame got no answer.
UNANSWERED_CLOSE = "the peer did not answer the close frame within close_timeout"


class WebSocketDriver(trio.abc.AsyncResource):
    """A WebSocket's reader, writes and closing (see the module); the public
    API is :class:`~._connection.WebSocketConnection`'s."""

    # Slots, not a __dict__: a server holds one of these per idle connection.
    __slots__ = (
        "__weakref__",  # the keepalive timer's reference
        "_client",
        "_close_code",
        "_close_deadline",
        "_close_reason",
        "_close_timeout",
        "_control_events",
        "_done",
        "_error",
        "_inbox",
        "_keepalive_due",
        "_local_close",
        "_message_lock",
        "_messages_sent",
        "_nursery",
        "_ping_interval",
        "_ping_timeout",
        "_pings",
        "_pings_sent",
        "_pongs_received",
        "_proto",
        "_reader_scope",
        "_response_head",
        "_response_headers",
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
        proto: WebSocketProtocol,
        *,
        subprotocol: str | None,
        extensions: list[str],
        path: str,
        target: str,
        request_headers: Headers,
        response_headers: Headers | bytes,
        tls: TLSInfo | None,
        options: ConnectionOptions,
        client: SocketAddress | None = None,
    ) -> None:
        self._transport = transport
        # The client as the upgrade request named it (trusted forwarding
        # headers); None: the transport's peer.
        self._client = client
        self._proto = proto
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
        self._ping_interval = options.ping_interval
        self._ping_timeout = options.ping_timeout
        self._close_timeout = options.close_timeout
        self._control_events = options.control_events
        self._inbox = Inbox(options.max_queued_bytes, options.budget)
        # sending
        self._write_lock = trio.Lock()
        self._message_lock = trio.Lock()
        self._pings: dict[bytes, trio.Event] = {}
        # closing (the inbox's ``ended``: the reader will queue nothing more)
        self._done = trio.Event()  # the reader finished and the transport is closed
        self._local_close = False  # we started the close (aclose, send_close)
        self._close_deadline: float | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._error: WebSocketClosed | None = None  # how an abnormal end is reported
        self._keepalive_due: float | None = None  # see _keepalive.py
        self._reader_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        # statistics
        self._messages_sent = 0
        self._pings_sent = 0
        self._pongs_received = 0

    def _start(self, nursery: trio.Nursery) -> None:
        """Start the reader (and keepalive) in ``nursery``."""
        self._nursery = nursery
        nursery.start_soon(self._read_loop)
        if self._ping_interval is not None:
            keepalive.schedule(self, self._ping_interval)

    def _end_error(self, cut: bool = False) -> WebSocketClosed:
        if self._error is not None:
            return self._error
        code = self._close_code if self._close_code is not None else 1006
        reason = self._close_reason
        if cut:
            reason = f"the connection closed in the middle of a message ({reason or code})"
        return WebSocketClosed(code, reason)

    # -- the reader ----------------------------------------------------------------

    async def _read_loop(self) -> None:
        transport = self._transport
        proto = self._proto
        inbox = self._inbox
        plain = proto.plain
        try:
            with self._reader_scope:
                await self._handle_events()
                while not inbox.ended:
                    if inbox.queue and await inbox.wait_for_room():
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
                            self._broken(UNANSWERED_CLOSE)
                            break
                    if not data:
                        self._broken("the peer closed the connection without a close frame")
                        break
                    if plain:
                        whole = proto.whole_frame(data)
                        if whole is not None:
                            if type(whole) is MessageData:
                                if inbox.admit(whole):
                                    inbox.wake()
                            else:
                                assert isinstance(whole, Failed)
                                await self._fail(whole.code, whole.reason)
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
            self._keepalive_due = None
            inbox.finish()
            for event in self._pings.values():
                event.set()
            if not self._done.is_set():
                with trio.CancelScope(shield=True):
                    await transport.aclose()
                self._done.set()

    async def _handle_events(self) -> None:
        proto = self._proto
        inbox = self._inbox
        woke = False
        for event in proto.events():
            kind = type(event)
            if kind is MessageData:
                assert isinstance(event, MessageData)
                woke = inbox.admit(event) or woke
            elif kind is Ping:
                assert isinstance(event, Ping)
                if proto.state is _OPEN:
                    await self._write(proto.send_pong(event.payload))
                if self._control_events:
                    woke = inbox.put_control(event) or woke
            elif kind is Pong:
                assert isinstance(event, Pong)
                self._pongs_received += 1
                self._pong(event.payload)
                if self._control_events:
                    woke = inbox.put_control(event) or woke
            elif kind is CloseReceived:
                assert isinstance(event, CloseReceived)
                await self._closing(event)
                break
            else:
                assert isinstance(event, Failed)
                await self._fail(event.code, event.reason, drop=event.drop)
                if event.drop:
                    break
        if woke:
            inbox.wake()

    async def _closing(self, event: CloseReceived) -> None:
        proto = self._proto
        if self._close_code is None:
            self._close_code = event.code
            self._close_reason = event.reason
        if proto.state is State.REMOTE_CLOSING:
            # The peer started the close: answer with its code.
            try:
                await self._write(proto.send_close(event.code, event.reason))
            except WebSocketClosed:
                pass
        self._inbox.ended = True
        if self._error is None and not self._local_close:
            code = self._close_code
            if code not in CLEAN_CLOSE_CODES:
                self._error = WebSocketClosed(code, self._close_reason)

    async def _fail(self, code: int, reason: str, drop: bool = False) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): close with ``code``,
        keep nothing more, and report ``code`` to the application."""
        if self._error is None and self._close_code is None:
            self._error = WebSocketClosed(code, reason)
            self._close_code = code
            self._close_reason = reason
        self._discard(keep_queued=True)
        if self._proto.state is _OPEN:
            try:
                await self._write(self._proto.send_close(code, reason[:120]))
            except WebSocketClosed:
                drop = True
        if drop:
            self._inbox.ended = True

    def _broken(self, reason: str) -> None:
        if self._close_code is None:
            self._close_code = 1006
            self._close_reason = reason
        if self._error is None and not (self._local_close and self._inbox.ended):
            self._error = WebSocketClosed(1006, reason)
        self._inbox.ended = True

    def _discard(self, keep_queued: bool = False) -> None:
        """Keep no more messages (see :meth:`Inbox.discard`)."""
        self._proto.discard_messages()
        self._inbox.discard(keep_queued)

    async def _finish_transport(self) -> None:
        """After the close handshake: the server closes TCP at once; the
        client waits (up to ``close_timeout``) for the server to."""
        transport = self._transport
        if self._proto.client and self._proto.state is State.CLOSED:
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
        if self._inbox.ended or self._nursery is None:
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
        pauses = self._inbox.pauses
        with trio.move_on_after(self._ping_timeout or math.inf) as scope:
            try:
                await self._ping(None)
            except (WebSocketClosed, trio.ClosedResourceError):
                return
        inbox = self._inbox
        if scope.cancelled_caught and not inbox.paused and inbox.pauses == pauses:
            # (A paused reader, or one that paused meanwhile, may have the
            # pong behind messages the application has not read yet: a peer
            # that filled the queue is alive.)
            reason = "keepalive ping timeout"
            if self._proto.state is _OPEN:
                # Tell the peer why (RFC 6455 section 7.1.7) if the close
                # frame goes out within close_timeout; wait for no answer.
                with trio.move_on_after(self._close_timeout):
                    try:
                        await self._write(self._proto.send_close(1011, reason))
                    except (WebSocketClosed, trio.ClosedResourceError):
                        pass
            await self._abort(1011, reason)
            return
        if not inbox.ended:
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

    async def _ping(self, payload: bytes | None) -> None:
        """:meth:`WebSocketConnection.ping`: send a ping and wait for its pong."""
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
            await self._write(self._proto.send_ping(payload))
            self._pings_sent += 1
            await event.wait()
        finally:
            self._pings.pop(payload, None)
        if self._inbox.ended and self._close_code is not None:
            raise self._closed_error()

    # -- sending ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._proto.state is not _OPEN or self._inbox.ended:
            raise self._closed_error()

    def _closed_error(self) -> Exception:
        if self._local_close:
            return trio.ClosedResourceError("this WebSocket was closed")
        return self._end_error()

    async def _write(self, frame: bytes) -> None:
        """Write ``frame`` (frames already built: control frames) under the
        write lock."""
        lock = self._write_lock
        await acquire(lock)
        try:
            await self._transport.send_all(frame)
        except ConnectionReset as exc:
            self._broken(exc.reason)
            raise self._end_error() from exc
        except trio.ClosedResourceError as exc:
            raise self._closed_error() from exc
        finally:
            lock.release()

    async def _write_data(self, data: str | bytes, last: bool | None = None) -> None:
        """Write message data, framed here under the write lock (with
        compression, frames must go out in the order the compressor saw
        them): a whole message, or a fragment that ``last`` ends or not."""
        lock = self._write_lock
        await acquire(lock)
        try:
            self._check_open()
            proto = self._proto
            frame = proto.send_message(data) if last is None else proto.send_fragment(data, last)
            await self._transport.send_all(frame)
        except ConnectionReset as exc:
            self._broken(exc.reason)
            raise self._end_error() from exc
        except trio.ClosedResourceError as exc:
            raise self._closed_error() from exc
        finally:
            lock.release()

    async def _abandon(self, reason: str) -> None:
        """Fail the connection with 1011 (internal error) at once: the close
        frame within ``close_timeout``, then the transport."""
        with trio.move_on_after(self._close_timeout):
            await self._fail(1011, reason, drop=True)
        await self._abort_transport()

    # -- closing ---------------------------------------------------------------------------------

    async def _send_close_frame(self, code: int, reason: str) -> bool | None:
        """Send our close frame unless a close is under way; ``True`` once
        sent, ``False`` if the connection broke instead, ``None`` if there
        was nothing to send."""
        if self._inbox.ended or self._local_close or self._proto.state is not _OPEN:
            await trio.lowlevel.checkpoint()
            return None
        self._local_close = True
        self._close_deadline = trio.current_time() + self._close_timeout
        with trio.move_on_at(self._close_deadline):
            try:
                await self._write(self._proto.send_close(code, reason))
            except WebSocketClosed:
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
            self._error = WebSocketClosed(code, reason)
        self._inbox.ended = True
        self._discard()
        await self._abort_transport()

    async def _abort_transport(self) -> None:
        self._reader_scope.cancel()
        if not self._transport.closed:
            with trio.CancelScope(shield=True):
                await self._transport.aclose()
        self._done.set()
        self._inbox.ended = True
        self._inbox.wake()


async def acquire(lock: trio.Lock) -> None:
    """Take ``lock``, with no schedule point when it is free: the caller's
    write is the schedule point (trio.Lock.acquire always has one, a task
    switch on the path of every message)."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()
