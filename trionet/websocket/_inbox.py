"""A WebSocket connection's inbox: the received messages waiting for the
application, reassembled from their pieces, with backpressure. A trio module
(it parks tasks), with no wsproto: its items are :mod:`._protocol`'s
:class:`~._protocol.MessageData` and the :class:`~._events.Ping` and
:class:`~._events.Pong` events.

Theory of operation
-------------------
The connection's reader (:mod:`._connection`) puts message data in
(:meth:`Inbox.admit`), and the one task receiving takes it out
(:meth:`Inbox.next_event` joins a message's pieces; :meth:`Inbox.next_piece`
hands them over one at a time).

The queue is bounded by ``max_queued_bytes``: while it is full the reader
stops reading the socket (:meth:`Inbox.wait_for_room`), so TCP's flow control
slows the peer down instead of memory growing. The connections of one server
also share a :class:`~trionet._websocket_limits.QueueBudget`
(``max_total_queued_bytes``); a connection with nothing queued may always take
one message, so that no reader starves.

Pongs and the close handshake are never blocked behind a full queue: a ping
that arrived before the queue filled has already been answered, and closing
discards the queue (:meth:`Inbox.discard`), so that the reader stops waiting
for room and goes on to the peer's close frame instead of waiting for
messages nobody will read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from .._websocket_limits import QueueBudget
from ._events import BinaryMessage, Ping, Pong, TextMessage, WebSocketEvent
from ._protocol import MessageData

__all__ = ["Inbox"]

# Queue items; the end of the stream is a flag (Inbox.ended), not an item.
_Item = MessageData | Ping | Pong


class Inbox:
    """The received messages of one connection, waiting for the application.

    Attributes:
        queue: The items waiting, or ``None`` while empty (an idle connection
            holds no deque, nor its block).
        queued_bytes: Bytes of message data waiting.
        ended: The reader will queue nothing more (set by the connection).
        discarding: No more messages are kept (closing).
        paused: The reader waits for room now.
        pauses: Times the reader waited for room.
        messages_received: Whole messages handed to the application.
    """

    __slots__ = (
        "_budget",
        "_max_queued_bytes",
        "_receiver",
        "_receiving",
        "_space",
        "discarding",
        "ended",
        "messages_received",
        "paused",
        "pauses",
        "queue",
        "queued_bytes",
    )

    def __init__(self, max_queued_bytes: int, budget: QueueBudget | None) -> None:
        self._max_queued_bytes = max_queued_bytes
        self._budget = budget
        self.queue: deque[_Item] | None = None
        self.queued_bytes = 0
        self._receiver: trio.lowlevel.Task | None = None  # the application waits here
        # The reader waits here while the queue is full; made when first needed.
        self._space: trio.lowlevel.ParkingLot | None = None
        self._receiving = False
        self.paused = False
        self.pauses = 0
        self.discarding = False
        self.ended = False
        self.messages_received = 0

    # -- the reader's side -----------------------------------------------------------

    def admit(self, event: MessageData) -> bool:
        """Queue message data (counted against the limits); ``False`` if it
        was dropped because nothing more is kept. The caller wakes the
        receiver (:meth:`wake`), once for all it queued."""
        if self.discarding:
            return False
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        queue.append(event)
        size = event.size
        self.queued_bytes += size
        if self._budget is not None:
            self._budget.used += size
        return True

    def put_control(self, event: Ping | Pong) -> bool:
        """Queue a ping or pong event for ``ws.events()``; ``False`` if
        nothing more is kept."""
        if self.discarding:
            return False
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        queue.append(event)
        return True

    async def wait_for_room(self) -> bool:
        """Wait while the queue is full: this connection's, or all of the
        server's together (a connection with nothing queued may always take
        a message, so none starves). ``True`` if it waited (look again),
        ``False`` at once, without a schedule point, if there is room."""
        if not self.queue or self.discarding:
            return False
        budget = self._budget
        if self.queued_bytes >= self._max_queued_bytes:
            lot = self._space
            if lot is None:
                lot = self._space = trio.lowlevel.ParkingLot()
        elif budget is not None and budget.spent:
            lot = budget.room
            budget.waits += 1
        else:
            return False
        self.pauses += 1
        self.paused = True
        try:
            await lot.park()
        finally:
            self.paused = False
        return True

    def discard(self, keep_queued: bool = False) -> None:
        """Keep no more messages: the reader no longer queues them nor waits
        for room; the queue is dropped too, unless ``keep_queued`` (whole
        messages that came before the peer failed the connection are still
        delivered)."""
        self.discarding = True
        budget = self._budget
        if not keep_queued:
            self.queue = None
            if budget is not None:
                budget.release(self.queued_bytes)
            self.queued_bytes = 0
        if self._space is not None:
            self._space.unpark_all()
        if budget is not None:
            # This reader may be among those waiting for the server's budget:
            # it must see that it keeps nothing now (the others look again
            # and wait on).
            budget.room.unpark_all()

    # One task receives at a time (_receiving), so one waiter is all there is
    # to wake: lighter than a ParkingLot on the path of every message.

    def wake(self) -> None:
        """Wake the receiver, if one waits."""
        task = self._receiver
        if task is not None:
            self._receiver = None
            trio.lowlevel.reschedule(task)

    def finish(self) -> None:
        """The reader ended: nothing more comes; wake whoever waits."""
        self.ended = True
        self.wake()
        if self._space is not None:
            self._space.unpark_all()

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._receiver = None
        return trio.lowlevel.Abort.SUCCEEDED

    # -- the application's side -----------------------------------------------------------

    async def get(self) -> _Item | None:
        """The next queued item, or ``None`` once the connection ended and
        the queue is empty. Always a checkpoint."""
        if self.queue:
            await trio.lowlevel.checkpoint()
        # The reader may have run meanwhile, and failing the connection
        # empties the queue: look again after every schedule point.
        while not self.queue:
            if self.ended:
                await trio.lowlevel.checkpoint()
                return None
            # (Inline, not a helper coroutine: an idle connection waits
            # here, and every frame of the wait is memory it holds.)
            self._receiver = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
        queue = self.queue
        item = queue.popleft()
        if not queue:
            self.queue = None
        if type(item) is MessageData:
            size = item.size
            self.queued_bytes -= size
            if self._budget is not None:
                self._budget.release(size)
            if self._space and self.queued_bytes < self._max_queued_bytes:
                self._space.unpark_all()
        return item

    def _enter(self) -> None:
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this WebSocket")
        self._receiving = True

    async def next_event(self, end_error: Callable[[bool], Exception]) -> WebSocketEvent | None:
        """The next whole message (its pieces joined) or control event;
        ``None`` once the connection ended.

        Raises:
            trio.BusyResourceError: Another task is receiving.
            Exception: ``end_error(True)``, when the connection ended in the
                middle of a message.
        """
        self._enter()
        try:
            item = await self.get()
            if not isinstance(item, MessageData):
                return item  # None, Ping or Pong
            data = item.data
            if not item.finished:
                pieces: list[Any] = [data]
                while True:
                    item = await self.get()
                    if item is None:
                        raise end_error(True)
                    if isinstance(item, MessageData):
                        pieces.append(item.data)
                        if item.finished:
                            break
                data = "".join(pieces) if isinstance(data, str) else b"".join(pieces)
            self.messages_received += 1
            if isinstance(data, str):
                return TextMessage(data)
            return BinaryMessage(data)
        finally:
            self._receiving = False

    async def next_piece(self) -> MessageData | None:
        """The next piece of message data (pings and pongs are skipped);
        ``None`` once the connection ended.

        Raises:
            trio.BusyResourceError: Another task is receiving.
        """
        self._enter()
        try:
            while True:
                item = await self.get()
                if item is None or isinstance(item, MessageData):
                    break
        finally:
            self._receiving = False
        if item is not None and item.finished:
            self.messages_received += 1
        return item
