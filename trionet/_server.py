"""The server core shared by every ``serve_*`` function.

Theory of operation
-------------------
A protocol hands the core three things: listeners (anything with trio's
``Listener`` shape: ``accept()`` and ``aclose()``), an *opener* that turns an
accepted resource into a connection object (a TLS handshake happens here), and
the user's handler. The core owns everything else, written once:

* one accept loop per listener, in a cancel scope that ``shutdown`` cancels;
* the ``max_connections`` cap, checked at accept time: a resource beyond the
  cap is closed at once and counted as dropped (Node's ``maxConnections``);
* one supervised task per connection, all in one nursery: the opener runs
  under a cancel scope (so shutdown abandons unfinished handshakes at once),
  then the handler runs; whatever happens, the connection is closed;
* the error policy: an ``Exception`` escaping a handler is logged with its
  traceback and counted (``handler_errors="log"``), or ends the whole server
  with that very exception (``handler_errors="raise"``, for tests). A
  :class:`~trionet.ConnectionClosed` escaping a handler is the peer's doing, not
  a bug: it is logged at debug level and counted as a connection error.
  ``trio.Cancelled`` is a ``BaseException`` and is never caught;
* graceful shutdown: stop accepting, ask every connection to finish (each
  protocol's own goodbye, through ``_request_shutdown``), wait up to the grace
  period, cancel what is left, and return only when the server task is gone;
* statistics, with byte counts read from the connections when asked for, so
  the data path pays nothing for them.

A connection object only has to provide ``_request_shutdown()``,
``statistics()`` (with ``bytes_received`` and ``bytes_sent``) and ``aclose()``:
that is the whole contract between a protocol and this module.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import trio

from ._errors import ConnectionClosed

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SHUTDOWN_GRACE",
    "HandlerErrors",
    "HandshakeFailed",
    "Server",
    "ServerCore",
    "ServerStatistics",
    "SocketAddress",
    "check_server_options",
    "check_timeouts",
]

# Node's net.Server has no cap at all; every production server has one. 10 000
# keeps a connection flood from exhausting memory and file descriptors (each
# connection holds one) while staying far above what one trio process serves
# well; raise it with the keyword argument when you also raise `ulimit -n`.
DEFAULT_MAX_CONNECTIONS = 10_000

# How long shutdown() waits for handlers to finish by themselves before it
# cancels them. Ten seconds is what Kubernetes-style deployments usually leave
# between SIGTERM and SIGKILL after draining (their default is 30 s in total).
DEFAULT_SHUTDOWN_GRACE = 10.0

# accept() errors that mean "out of resources right now", not "the listener is
# broken": trio's own serve_listeners sleeps and retries on the same list.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_CAPACITY_SLEEP = 0.1

#: An address as the socket module reports it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6, a path for Unix sockets.
SocketAddress = tuple[Any, ...] | str

HandlerErrors = Literal["log", "raise"]

R = TypeVar("R", bound=trio.abc.AsyncResource)
C = TypeVar("C", bound="_Supervised")


class HandshakeFailed(Exception):
    """Raised by an opener when a connection fails before its handler starts
    (a TLS handshake that fails or times out). Logged at debug level and
    counted; the handler never sees the connection."""


class _ByteCounts(Protocol):
    @property
    def bytes_received(self) -> int: ...

    @property
    def bytes_sent(self) -> int: ...


class _Supervised(Protocol):
    def _request_shutdown(self) -> None: ...

    def statistics(self) -> _ByteCounts: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """A snapshot of a server's counters, from :meth:`Server.statistics`.

    Attributes:
        active: Connections open right now (handshaking or in a handler).
        accepted: Connections accepted since the server started, dropped ones
            included.
        dropped: Connections closed at once because ``max_connections`` were
            already open.
        handler_errors: Handlers that raised an exception (other than
            :class:`~trionet.ConnectionClosed`).
        connection_errors: Handlers ended by a :class:`~trionet.ConnectionClosed`
            (the peer reset or broke the connection).
        handshake_failures: Connections that failed before reaching the
            handler, such as a TLS handshake that failed or timed out.
        bytes_received: Payload bytes received over all connections.
        bytes_sent: Payload bytes sent over all connections.
    """

    active: int
    accepted: int
    dropped: int
    handler_errors: int
    connection_errors: int
    handshake_failures: int
    bytes_received: int
    bytes_sent: int


class _Slot(Generic[C]):
    """The core's record of one connection task."""

    __slots__ = ("conn", "setup_scope", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.setup_scope = trio.CancelScope()
        self.conn: C | None = None


class Server:
    """A running server, as returned by ``await nursery.start(serve_..., ...)``.

    The server lives as long as the task that ``nursery.start`` started:
    cancelling that task (or its nursery) is the hard stop; :meth:`shutdown` is
    the graceful one.
    """

    def __init__(self, core: ServerCore[Any, Any]) -> None:
        self._core = core

    def __repr__(self) -> str:
        return f"<trionet.Server {self._core.name} on {self.addresses!r}>"

    @property
    def addresses(self) -> list[SocketAddress]:
        """Every address the server listens on, as the socket reports it (so a
        port given as 0 shows the port the system chose)."""
        return list(self._core.addresses)

    @property
    def port(self) -> int:
        """The port the server listens on (the same on every address).

        Raises:
            ValueError: The server listens on a Unix socket, which has no port.
        """
        for address in self._core.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        raise ValueError(f"{self!r} listens on no IP address, so it has no port")

    def statistics(self) -> ServerStatistics:
        """Return a snapshot of the server's counters.

        Returns:
            A :class:`ServerStatistics`.
        """
        return self._core.statistics()

    async def shutdown(self, grace: float = DEFAULT_SHUTDOWN_GRACE) -> None:
        """Stop the server gracefully, and return when it is gone.

        Stops accepting at once (the listening sockets are closed), asks every
        open connection to finish in its protocol's way (for TCP the handler's
        event loop ends, see :attr:`TCPConnection.shutdown_requested
        <trionet.TCPConnection.shutdown_requested>`), waits up to ``grace``
        seconds for the handlers to return, then cancels the ones still running.
        When it returns, no task and no socket of the server is left and the
        ``serve_*`` call has returned. Calling it again, or after the server
        stopped, just waits for the end.

        A handler may call it (an admin "quit" command): the shutdown does not
        wait for the calling handler, and like every other handler still
        running at the end, the caller is cancelled inside this call, so
        nothing after it in the handler runs.

        Args:
            grace: Seconds to wait for handlers before cancelling them.

        Raises:
            ValueError: ``grace`` is negative.
        """
        await self._core.shutdown(grace)


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
        self.max_connections = max_connections
        self.handler_errors = handler_errors
        self.logger = logger
        self.slots: set[_Slot[C]] = set()
        self.waiting_slots: set[_Slot[C]] = set()  # handlers inside shutdown()
        self.stopping = False
        self.finished = trio.Event()
        self.slot_done = trio.lowlevel.ParkingLot()  # unparked as each connection ends
        self.accept_scope = trio.CancelScope()
        self.nursery: trio.Nursery | None = None
        self.fatal: BaseException | None = None
        # counters
        self.active = 0
        self.accepted = 0
        self.dropped = 0
        self.handler_error_count = 0
        self.connection_error_count = 0
        self.handshake_failure_count = 0
        self.closed_bytes_received = 0
        self.closed_bytes_sent = 0

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
            handler_errors=self.handler_error_count,
            connection_errors=self.connection_error_count,
            handshake_failures=self.handshake_failure_count,
            bytes_received=received,
            bytes_sent=sent,
        )

    async def run(self, task_status: trio.TaskStatus[Server]) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._accept_all)
                task_status.started(self.make_server(self))
        finally:
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
            self.accepted += 1
            if self.active >= self.max_connections:
                self.dropped += 1
                self.logger.debug(
                    "%s: dropped a connection: max_connections=%d reached",
                    self.name,
                    self.max_connections,
                )
                await trio.aclose_forcefully(resource)
                continue
            # Counted here, not in the task, so a burst of accepts cannot
            # overshoot the cap before the tasks start.
            self.active += 1
            self.nursery.start_soon(self._serve_one, resource)

    async def _serve_one(self, resource: R) -> None:
        slot: _Slot[C] = _Slot(trio.lowlevel.current_task())
        self.slots.add(slot)
        conn: C | None = None
        try:
            with slot.setup_scope:
                if self.stopping:
                    slot.setup_scope.cancel()
                try:
                    conn = await self.opener(resource)
                except HandshakeFailed as exc:
                    self.handshake_failure_count += 1
                    self.logger.debug(
                        "%s: connection failed before its handler: %s", self.name, exc
                    )
                except Exception as exc:
                    # A bug in setting the connection up: that connection's
                    # problem, handled like a handler's, never the server's end.
                    self._handler_failed(exc)
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
                self._handler_failed(exc)
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
            self.waiting_slots.discard(slot)
            self.active -= 1
            self.slot_done.unpark_all()
            if conn is not None:
                stats = conn.statistics()
                self.closed_bytes_received += stats.bytes_received
                self.closed_bytes_sent += stats.bytes_sent
            else:
                await trio.aclose_forcefully(resource)

    def _handler_failed(self, exc: Exception) -> None:
        self.handler_error_count += 1
        if self.handler_errors == "raise" and self.fatal is None:
            self._fail(exc)
        else:  # logged, or a second error while "raise" stops the server
            self.logger.error("%s: handler %r raised", self.name, self.handler, exc_info=exc)

    def _fail(self, exc: BaseException) -> None:
        self.fatal = exc
        assert self.nursery is not None
        self.stopping = True
        self.nursery.cancel_scope.cancel()

    def _begin_shutdown(self) -> None:
        self.stopping = True
        self.accept_scope.cancel()
        for slot in list(self.slots):
            if slot.conn is None:
                slot.setup_scope.cancel()
            else:
                slot.conn._request_shutdown()

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
        if not grace >= 0:  # NaN too
            raise ValueError(f"grace must be >= 0, not {grace!r}")
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


def check_timeouts(**timeouts: float | None) -> None:
    """Validate timeouts given as keyword arguments: each is ``None`` (no
    limit, where allowed) or a number of seconds > 0.

    Raises:
        ValueError: A timeout is 0, negative or NaN.
    """
    for name, value in timeouts.items():
        if value is not None and not value > 0:  # NaN too
            raise ValueError(f"{name} must be > 0, not {value!r}")


def check_server_options(*, max_connections: int, handler_errors: str) -> None:
    """Validate the options every ``serve_*`` shares; call it before binding.

    Raises:
        ValueError: An option is out of range.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be >= 1, not {max_connections!r}")
    if handler_errors not in ("log", "raise"):
        raise ValueError(f'handler_errors must be "log" or "raise", not {handler_errors!r}')
