"""The server core shared by every ``serve_*`` function.

Theory of operation
-------------------
A protocol hands the core three things: listeners (anything with trio's
``Listener`` shape: ``accept()`` and ``aclose()``), an *opener* that turns an
accepted resource into a connection object (a TLS handshake happens here), and
the user's handler. The core owns everything else, written once:

* one accept loop per listener, in a cancel scope that ``shutdown`` cancels;
* the ``max_connections`` cap, checked at accept time. At the cap, the
  connection that has idled longest (an HTTP keep-alive connection between
  requests: a protocol says so through ``_idle_since``) is asked to close to
  make room, as nginx does when it runs out of connections; only when none is
  idle is the new resource closed at once and counted as dropped (Node's
  ``maxConnections``). Either is logged at WARNING, at most once per
  ``_PRESSURE_LOG_INTERVAL``;
* one supervised task per connection, all in one nursery: the opener runs
  (a TLS handshake, bounded by its own timeout; a shutdown lets it finish,
  within the grace period, since the client was accepted), then the handler
  runs; whatever happens, the connection is closed;
* the error policy: an ``Exception`` escaping a handler is logged with its
  traceback and counted (``handler_errors="log"``), or ends the whole server
  with that very exception (``handler_errors="raise"``, for tests). A
  :class:`~trionet.ConnectionClosed` escaping a handler is the peer's doing, not
  a bug: it is logged at debug level and counted as a connection error.
  ``trio.Cancelled`` is a ``BaseException`` and is never caught;
* graceful shutdown: stop accepting *first* (take what is already in the
  kernel's accept queue, then close the listening sockets, so that a client
  connecting from then on is refused rather than accepted and reset), then ask
  every connection to finish (each protocol's own goodbye, through
  ``_request_shutdown``; connections taken from the accept queue are served
  like the others), wait up to the grace period, cancel what is left, and
  return only when the server task is gone;
* statistics, with byte counts read from the connections when asked for, so
  the data path pays nothing for them.

A connection object only has to provide ``_request_shutdown()``,
``statistics()`` (with ``bytes_received`` and ``bytes_sent``) and ``aclose()``:
that is the whole contract between a protocol and this module. Two optional
attributes refine it: ``_idle_since`` (the time a connection went idle, or
``None`` while it is busy: idle connections may be closed to make room) and
``_log_context()`` (what to say of the connection when its handler fails:
the peer, and for HTTP the request).
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import socket as stdlib_socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import trio

from .. import _checks as checks
from .._errors import ConnectionClosed
from ._handle import (
    HandlerErrors,
    HandshakeFailed,
    Server,
    ServerStatistics,
    SocketAddress,
    current_registry,
)

__all__ = ["ServerCore", "accept_pending", "describe_callable"]

# accept() errors that mean "out of resources right now", not "the listener is
# broken": trio's own serve_listeners sleeps and retries on the same list.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_CAPACITY_SLEEP = 0.1

# At most one WARNING per this many seconds about connections closed or
# dropped at max_connections: a flood must not become a flood of log records
# too. Each record counts what happened since the previous one.
_PRESSURE_LOG_INTERVAL = 10.0

R = TypeVar("R", bound=trio.abc.AsyncResource)
C = TypeVar("C", bound="_Supervised")


class _ByteCounts(Protocol):
    @property
    def bytes_received(self) -> int: ...

    @property
    def bytes_sent(self) -> int: ...


class _Supervised(Protocol):
    def _request_shutdown(self) -> None: ...

    def statistics(self) -> _ByteCounts: ...

    async def aclose(self) -> None: ...


class _Slot(Generic[C]):
    """The core's record of one connection task."""

    __slots__ = ("conn", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.conn: C | None = None


class ServerCore(Generic[R, C]):
    """The engine behind every ``serve_*``: build one with the protocol's
    listeners, opener and the user's handler, then ``await core.run(task_status)``.
    The listeners must already be bound and listening; they and ``resources``
    (say, a socket that the listeners share with the connections) are closed
    before ``run`` returns, whatever happens.
    """

    def __init__(
        self,
        *,
        name: str,
        listeners: Sequence[trio.abc.Listener[R]],
        addresses: Sequence[SocketAddress],
        opener: Callable[[R], Awaitable[C]],
        handler: Callable[[C], Awaitable[object]],
        max_connections: int,
        handler_errors: HandlerErrors,
        logger: logging.Logger,
        handler_name: str | None = None,
        make_server: Callable[[ServerCore[Any, Any]], Server] = Server,
        resources: Sequence[trio.abc.AsyncResource] = (),
    ) -> None:
        self.name = name
        self.make_server = make_server
        self.resources = list(resources)  # closed last, before `finished` is set
        self.listeners = list(listeners)
        self.addresses = list(addresses)
        self.opener = opener
        self.handler = handler
        self.handler_name = handler_name or describe_callable(handler)
        self.max_connections = max_connections
        self.handler_errors = handler_errors
        self.logger = logger
        self.slots: set[_Slot[C]] = set()
        self.evicting: set[_Slot[C]] = set()  # asked to make room, not gone yet
        self.waiting_slots: set[_Slot[C]] = set()  # handlers inside shutdown()
        self.stopping = False
        self.finished = trio.Event()
        self.slot_done = trio.lowlevel.ParkingLot()  # unparked as each connection ends
        self.accept_scope = trio.CancelScope()
        # The accept loops' queues (see _AcceptQueue): closed with the
        # listeners on shutdown, since each holds its listening socket open.
        self.accept_queues: list[_AcceptQueue] = []
        self.nursery: trio.Nursery | None = None
        self.fatal: BaseException | None = None
        # counters
        self.active = 0
        self.accepted = 0
        self.dropped = 0
        self.evicted = 0
        self.handler_error_count = 0
        self.connection_error_count = 0
        self.handshake_failure_count = 0
        self.closed_bytes_received = 0
        self.closed_bytes_sent = 0
        # connections closed or dropped at the cap since the last WARNING
        self.pressure_evicted = 0
        self.pressure_dropped = 0
        self.pressure_logged_at: float | None = None

    def statistics(self) -> ServerStatistics:
        received = self.closed_bytes_received
        sent = self.closed_bytes_sent
        for slot in self.slots:
            if slot.conn is not None:
                stats = slot.conn.statistics()
                received += stats.bytes_received
                sent += stats.bytes_sent
        return ServerStatistics(
            active=self.active,
            accepted=self.accepted,
            dropped=self.dropped,
            evicted_idle=self.evicted,
            handler_errors=self.handler_error_count,
            connection_errors=self.connection_error_count,
            handshake_failures=self.handshake_failure_count,
            bytes_received=received,
            bytes_sent=sent,
        )

    async def run(self, task_status: trio.TaskStatus[Server]) -> None:
        registry = current_registry.get()
        server = self.make_server(self)
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._accept_all)
                if registry is not None:
                    registry.servers.add(server)
                    if registry.stopping:
                        nursery.start_soon(server.shutdown, registry.grace)
                task_status.started(server)
        finally:
            if registry is not None:
                registry.servers.discard(server)
            with trio.CancelScope(shield=True):
                await self._close_listeners()
                for resource in self.resources:
                    await trio.aclose_forcefully(resource)
            self.finished.set()
        if self.fatal is not None:
            raise self.fatal

    async def _close_listeners(self) -> None:
        for listener in self.listeners:
            await trio.aclose_forcefully(listener)

    async def _accept_all(self) -> None:
        with self.accept_scope:
            async with trio.open_nursery() as nursery:
                for listener in self.listeners:
                    nursery.start_soon(self._accept_loop, listener)
        # Stopped accepting (shutdown): free the addresses now, not when the
        # last handler is done.
        await self._close_listeners()

    async def _accept_loop(self, listener: trio.abc.Listener[R]) -> None:
        assert self.nursery is not None
        queue = _AcceptQueue.of(listener)
        if queue is not None:
            self.accept_queues.append(queue)
        try:
            await self._accept_from(listener, queue)
        finally:
            if queue is not None:
                queue.close()
                self.accept_queues.remove(queue)

    async def _accept_from(
        self, listener: trio.abc.Listener[R], queue: _AcceptQueue | None
    ) -> None:
        while True:
            try:
                resource = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                self.logger.error(
                    "%s: accept() failed (%s); retrying in %.1f s",
                    self.name,
                    exc,
                    _ACCEPT_CAPACITY_SLEEP,
                )
                await trio.sleep(_ACCEPT_CAPACITY_SLEEP)
                continue
            except trio.ClosedResourceError:
                return
            if not self._admit(resource):
                await trio.aclose_forcefully(resource)
            if queue is not None:
                # What else the kernel already completed is taken now, without
                # a schedule point per connection (as asyncio's accept loop).
                for extra in queue.take():
                    if not self._admit(extra):  # type: ignore[arg-type]
                        await trio.aclose_forcefully(extra)

    def _admit(self, resource: R) -> bool:
        """Start serving ``resource`` if there is room (made by closing the
        longest-idle connection if need be); False if it must be dropped."""
        assert self.nursery is not None
        self.accepted += 1
        # A connection asked to make room still runs until its task ends, so
        # it no longer counts against the cap; but at most max_connections of
        # them at once, so a handler that ignores the request to finish (a UDP
        # handler that never reads its loop again) cannot make the total grow
        # without bound: it stays under twice the cap.
        if self.active - len(self.evicting) >= self.max_connections:
            if len(self.evicting) < self.max_connections and self._evict_idle():
                self.evicted += 1
                self.pressure_evicted += 1
                self._log_pressure()
            else:
                self.dropped += 1
                self.pressure_dropped += 1
                self._log_pressure()
                return False
        # Counted here, not in the task, so a burst of accepts cannot
        # overshoot the cap before the tasks start.
        self.active += 1
        self.nursery.start_soon(self._serve_one, resource)
        return True

    def _evict_idle(self) -> bool:
        """Ask the connection idle the longest to close; False if none is idle.

        The evicted connection is counted in ``evicting`` until its task has
        closed it (see ``_admit``)."""
        oldest: _Slot[C] | None = None
        oldest_since = 0.0
        for slot in self.slots:
            since = getattr(slot.conn, "_idle_since", None)
            if since is not None and (oldest is None or since < oldest_since):
                oldest, oldest_since = slot, since
        if oldest is None:
            return False
        assert oldest.conn is not None
        self.evicting.add(oldest)
        # Its goodbye is the graceful one: a request that has just arrived is
        # still answered (with Connection: close); an idle connection closes.
        oldest.conn._request_shutdown()
        return True

    def _log_pressure(self) -> None:
        now = trio.current_time()
        last = self.pressure_logged_at
        if last is not None and now - last < _PRESSURE_LOG_INTERVAL:
            return
        self.logger.warning(
            "%s: max_connections=%d reached: closed %d idle connection(s) to make room "
            "and dropped %d new one(s) %s",
            self.name,
            self.max_connections,
            self.pressure_evicted,
            self.pressure_dropped,
            "since the last report" if last is not None else "so far",
        )
        self.pressure_logged_at = now
        self.pressure_evicted = 0
        self.pressure_dropped = 0

    async def _serve_one(self, resource: R) -> None:
        slot: _Slot[C] = _Slot(trio.lowlevel.current_task())
        self.slots.add(slot)
        conn: C | None = None
        try:
            try:
                conn = await self.opener(resource)
            except HandshakeFailed as exc:
                self.handshake_failure_count += 1
                self.logger.debug("%s: connection failed before its handler: %s", self.name, exc)
            except Exception as exc:
                # A bug in setting the connection up: that connection's
                # problem, handled like a handler's, never the server's end.
                self._handler_failed(exc, None)
            if conn is None:
                return
            slot.conn = conn
            if self.stopping:
                conn._request_shutdown()
            try:
                await self.handler(conn)
            except ConnectionClosed as exc:
                self.connection_error_count += 1
                self.logger.debug("%s: connection ended abnormally: %s", self.name, exc)
            except Exception as exc:
                if isinstance(exc, ExceptionGroup) and exc.split(ConnectionClosed)[1] is None:
                    # The handler's own nursery saw only the peer misbehave.
                    self.connection_error_count += 1
                    self.logger.debug("%s: connection ended abnormally: %r", self.name, exc)
                    return
                self._handler_failed(exc, conn)
            finally:
                if slot in self.waiting_slots:
                    # This handler shut the server down and is cancelled with
                    # the rest; its connection still gets a graceful close
                    # (bounded by the connection's close_timeout).
                    with trio.CancelScope(shield=True):
                        await conn.aclose()
                else:
                    await conn.aclose()
        finally:
            # Bookkeeping first: under cancellation the await below raises.
            self.slots.discard(slot)
            self.evicting.discard(slot)
            self.waiting_slots.discard(slot)
            self.active -= 1
            self.slot_done.unpark_all()
            if conn is not None:
                stats = conn.statistics()
                self.closed_bytes_received += stats.bytes_received
                self.closed_bytes_sent += stats.bytes_sent
            else:
                await trio.aclose_forcefully(resource)

    def _handler_failed(self, exc: Exception, conn: C | None) -> None:
        self.handler_error_count += 1
        if self.handler_errors == "raise" and self.fatal is None:
            self._fail(exc)
            return
        # Logged (or a second error while "raise" stops the server), with
        # what an operator needs to find the request again: the user's
        # handler, the peer and, for HTTP, the request line. The same facts
        # go into the record as attributes, for structured logging.
        context: dict[str, Any] = {"server": self.name, "handler": self.handler_name}
        if conn is not None:
            log_context = getattr(conn, "_log_context", None)
            if log_context is not None:
                context.update(log_context())
        where = " ".join(
            f"{key}={context[key]}"
            for key in ("method", "target", "path", "peer")
            if context.get(key) is not None
        )
        self.logger.error(
            "%s: handler %s raised%s",
            self.name,
            self.handler_name,
            f" ({where})" if where else "",
            exc_info=exc,
            extra=context,
        )

    def _fail(self, exc: BaseException) -> None:
        self.fatal = exc
        assert self.nursery is not None
        self.stopping = True
        self.nursery.cancel_scope.cancel()

    def _begin_shutdown(self) -> None:
        self.stopping = True
        self.accept_scope.cancel()
        # Stop accepting before any goodbye goes out: a client told
        # "Connection: close" may reconnect at once, and must then be refused
        # by the kernel, not accepted into a queue nobody reads and reset.
        # What is already queued is taken out first and served.
        for queue in self.accept_queues:
            queue.close()  # (a duplicate descriptor of a listening socket)
        pending: list[Any] = []
        for listener in self.listeners:
            pending.extend(accept_pending(listener))
            sock = getattr(listener, "socket", None)
            if isinstance(sock, trio.socket.SocketType):
                sock.close()  # aclose() still runs later, for the rest of its cleanup
        for slot in list(self.slots):
            if slot.conn is not None:
                slot.conn._request_shutdown()
            # A connection still in its TLS handshake is left to finish it
            # (bounded by its handshake timeout and the grace period): it was
            # accepted, so it is owed an answer too. It learns of the shutdown
            # as soon as its handler starts.
        for resource in pending:
            if not self._admit(resource):
                resource.socket.close()

    def _enclosing_slot(self, task: trio.lowlevel.Task) -> _Slot[C] | None:
        by_task = {slot.task: slot for slot in self.slots}
        current: trio.lowlevel.Task | None = task
        while current is not None:
            if current in by_task:
                return by_task[current]
            nursery = current.parent_nursery
            current = nursery.parent_task if nursery is not None else None
        return None

    async def shutdown(self, grace: float) -> None:
        checks.non_negative_seconds("grace", grace)
        if self.finished.is_set():
            await trio.lowlevel.checkpoint()
            return
        self._begin_shutdown()
        # A handler (or a task of its own) may shut its server down: its
        # connection waits for the shutdown, so the shutdown must not wait for it.
        mine = self._enclosing_slot(trio.lowlevel.current_task())
        if mine is not None:
            self.waiting_slots.add(mine)
            self.slot_done.unpark_all()
        assert self.nursery is not None
        try:
            with trio.move_on_after(grace):
                # `active` also counts connections accepted but whose task has
                # not started yet: they are served too.
                while self.active > len(self.waiting_slots):
                    await self.slot_done.park()
            self.nursery.cancel_scope.cancel()
            await self.finished.wait()
        finally:
            if mine is not None and not self.nursery.cancel_scope.cancel_called:
                # The caller gave up on its shutdown (its own timeout, say): it
                # is an ordinary handler again and gets the grace of the next.
                self.waiting_slots.discard(mine)


class _AcceptQueue:
    """Non-blocking accepts on a duplicate of a listening socket's
    descriptor, so that they leave the trio socket (and the waits trio
    registered on it) alone."""

    # At most this many connections per wake-up of the accept loop: the
    # connections already being served get their turn too.
    BATCH = 64

    __slots__ = ("_socket",)

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._socket = stdlib_socket.socket(fileno=os.dup(sock.fileno()))
        self._socket.setblocking(False)

    @classmethod
    def of(cls, listener: object) -> _AcceptQueue | None:
        """The queue of a socket listener (``None`` for another kind)."""
        sock = getattr(listener, "socket", None)
        if not isinstance(sock, trio.socket.SocketType) or sock.fileno() < 0:
            return None
        return cls(sock)

    def take(self, limit: int = BATCH) -> list[trio.SocketStream]:
        """The connections waiting, as trio streams (up to ``limit``)."""
        accepted: list[trio.SocketStream] = []
        while len(accepted) < limit:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                # Empty (EAGAIN), or out of descriptors: nothing more to take.
                break
            # (trio's socket makes it non-blocking.)
            accepted.append(trio.SocketStream(trio.socket.from_stdlib_socket(conn)))
        return accepted

    def close(self) -> None:
        self._socket.close()


def accept_pending(listener: object) -> list[trio.SocketStream]:
    """Accept, without waiting, every connection the kernel has already
    completed on ``listener``'s socket (its accept queue).

    Closing a listening socket resets every connection still in its accept
    queue, and to such a client a reset after a successful connect looks like
    a server that took its request and crashed. A server that stops takes them
    out first and serves them (their first request is answered, with
    ``Connection: close``). A listener without a ``socket`` attribute has
    nothing to take.

    Returns:
        The accepted connections, as trio streams.
    """
    queue = _AcceptQueue.of(listener)
    if queue is None:
        return []
    try:
        return queue.take(limit=sys.maxsize)
    finally:
        queue.close()


def describe_callable(function: object) -> str:
    """``module.qualname`` of a function, looking through
    ``functools.partial`` and ``__wrapped__`` to the user's own code."""
    while True:
        function = inspect.unwrap(function)  # type: ignore[arg-type]
        inner = getattr(function, "func", None)
        if inner is None:
            break
        function = inner
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{name}" if module else name
