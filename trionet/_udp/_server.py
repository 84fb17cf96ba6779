"""``serve_udp``: one UDP socket, one supervised session per remote address.

Theory of operation
-------------------
UDP has no connections, so the server core's "listener" here is a
dispatcher: its ``accept()`` reads datagrams from the socket and hands each to
the queue of the :class:`UDPPeer` its sender belongs to, returning only when a
datagram comes from an address with no session yet. That new peer goes back to
the core like an accepted TCP connection: the core applies ``max_peers``
(its ``max_connections``), runs the handler in a supervised task, counts,
and shuts down, exactly as for TCP. Reading happens only inside ``accept()``,
so no hidden task exists beside the core's accept loop.

Each peer's queue is bounded (``queue_size`` datagrams), and so are all of
them together (``max_queued_bytes``): when a handler falls behind, further
datagrams for it are dropped and counted, on the peer and on the socket, and
the other peers are never held up. Datagrams already queued are delivered
whatever time it is; a peer that *sent* nothing for ``idle_timeout`` seconds
has its loop ended, and when the handler returns the session is gone (what it
left unread is counted as dropped) and the next datagram from that address
starts a new one.

Closing the dispatcher (shutdown stops "accepting") stops reading, but the
socket stays open until the server is gone, so handlers can still send their
last datagrams during the grace period; the core closes it last, so that
``serve_udp`` has returned when ``shutdown()`` does.
"""

from __future__ import annotations

import logging
import socket as stdlib_socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self, cast

import trio

from .. import _checks as checks
from .._listeners import format_address
from .._server import (
    DEFAULT_MAX_CONNECTIONS,
    HandlerErrors,
    Server,
    ServerCore,
    SocketAddress,
)
from ..metrics._collector import Metrics  # (without prometheus-client)
from ._open import server_socket
from ._socket import (
    DEFAULT_MAX_DATAGRAM_SIZE,
    Datagram,
    PortUnreachable,
    UDPSocket,
    UDPStatistics,
)

__all__ = [
    "DEFAULT_UDP_IDLE_TIMEOUT",
    "DEFAULT_UDP_MAX_QUEUED_BYTES",
    "DEFAULT_UDP_QUEUE_SIZE",
    "PeerStatistics",
    "UDPPeer",
    "UDPServer",
    "serve_udp",
]

logger = logging.getLogger("trionet.udp")

# RFC 4787 (REQ-5) asks NATs to keep an idle UDP mapping for at least two
# minutes; a session that outlives what the path in between keeps is useless,
# one much shorter than it drops peers that are merely quiet.
DEFAULT_UDP_IDLE_TIMEOUT = 120.0

# Datagrams waiting for one slow handler: enough to ride out a burst.
DEFAULT_UDP_QUEUE_SIZE = 64

# Payload bytes waiting for all handlers together. Per-peer queues alone would
# let 10 000 peers hold 64 x 64 KiB each (40 GiB); 16 MiB is about 130 ms of a
# saturated gigabit link: handlers further behind than that are overloaded,
# and dropping (UDP's own answer to overload) beats growing without bound.
DEFAULT_UDP_MAX_QUEUED_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    """A snapshot of one UDP session's counters, from :meth:`UDPPeer.statistics`.

    Attributes:
        bytes_received: Payload bytes delivered to the handler.
        bytes_sent: Payload bytes sent to the peer.
        dropped: Datagrams from the peer dropped: its queue was full, or the
            session ended before the handler read them.
    """

    bytes_received: int
    bytes_sent: int
    dropped: int


class _QueueBudget:
    """Payload bytes queued for all of one server's handlers, and the cap."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class UDPPeer(trio.abc.AsyncResource):
    """One remote address's session on a :func:`serve_udp` server: the
    uniform connection contract over UDP.

    ``async for dgram in peer`` yields the :class:`~trionet.Datagram` objects
    the peer sends; the loop ends after ``idle_timeout`` seconds of silence,
    when the peer is closed, or when the server shuts down gracefully.
    """

    def __init__(
        self,
        socket: UDPSocket,
        address: SocketAddress,
        table: dict[SocketAddress, UDPPeer],
        budget: _QueueBudget,
        *,
        queue_size: int,
        idle_timeout: float,
    ) -> None:
        self._socket = socket
        self._address = address
        self._table = table
        self._budget = budget
        self._queue_size = queue_size
        self._idle_timeout = idle_timeout
        self._pending: deque[Datagram] = deque()
        self._arrived = trio.lowlevel.ParkingLot()
        self._last_heard = trio.current_time()
        self._receiving = False
        self._finished = False
        self._closed = False
        self._shutdown_requested = False
        self._bytes_received = 0
        self._bytes_sent = 0
        self._dropped = 0
        self._heard = 0  # datagrams queued for this session

    def __repr__(self) -> str:
        return f"<trionet.UDPPeer {format_address(self._address)}>"

    def _deliver(self, dgram: Datagram) -> None:
        """Called by the dispatcher: queue a datagram, or drop and count it."""
        size = len(dgram.data)
        if (
            self._closed
            or len(self._pending) >= self._queue_size
            or self._budget.used + size > self._budget.limit
        ):
            self._dropped += 1
            self._socket._count_dropped()
            return
        self._pending.append(dgram)
        self._budget.used += size
        self._last_heard = trio.current_time()
        self._heard += 1
        self._arrived.unpark_all()

    @property
    def _idle_since(self) -> float | None:
        """For the server core at ``max_peers``: when this session may be
        closed to make room for a new peer, the time it was last heard from;
        otherwise None. Only a peer that sent one datagram and never came back
        qualifies: a spoofed source address never sees our answer, so it can
        never send a second, while a real peer in an exchange does. So a flood
        of one-datagram (spoofable) peers cannot lock real new peers out for
        ``idle_timeout``, and cannot push out peers that talk."""
        if self._heard > 1 or self._shutdown_requested or self._closed:
            return None
        return self._last_heard

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Datagram:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed or self._finished or self._shutdown_requested:
            self._finished = True
            raise StopAsyncIteration
        if self._receiving:
            raise trio.BusyResourceError("another task is already iterating over this peer")
        self._receiving = True
        try:
            while not (self._shutdown_requested or self._closed):
                if self._pending:
                    # Queued datagrams are delivered even when the handler was
                    # slower than idle_timeout: the peer was not silent.
                    dgram = self._pending.popleft()
                    self._budget.used -= len(dgram.data)
                    self._bytes_received += len(dgram.data)
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return dgram
                silent_until = self._last_heard + self._idle_timeout
                if trio.current_time() >= silent_until:
                    break
                with trio.move_on_at(silent_until):
                    await self._arrived.park()
        finally:
            self._receiving = False
        self._finished = True
        raise StopAsyncIteration

    async def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send one datagram to the peer.

        Args:
            data: The payload; a ``str`` is encoded as UTF-8.

        Raises:
            ValueError: The payload is larger than the server's
                ``max_datagram_size``.
            PortUnreachable: The peer's port answered with ICMP "port
                unreachable".
            OSError: The kernel refused the datagram.
            trio.ClosedResourceError: The session or the server's socket is
                closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the peer session was closed")
        if isinstance(data, str):
            data = data.encode("utf-8")
        await self._socket.send(data, self._address)
        self._bytes_sent += memoryview(data).nbytes

    def _request_shutdown(self) -> None:
        self._shutdown_requested = True
        self._arrived.unpark_all()

    @property
    def shutdown_requested(self) -> bool:
        """True once the server began a graceful shutdown (the loop then ends;
        the handler may still send its last datagrams)."""
        return self._shutdown_requested

    @property
    def remote_address(self) -> SocketAddress:
        """The peer's address."""
        return self._address

    @property
    def local_address(self) -> SocketAddress:
        """The server socket's address."""
        return self._socket.local_address

    def statistics(self) -> PeerStatistics:
        """Return the session's counters.

        Returns:
            A :class:`PeerStatistics`.
        """
        return PeerStatistics(self._bytes_received, self._bytes_sent, self._dropped)

    async def aclose(self) -> None:
        """End the session; the next datagram from this address starts a new
        one. Calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._finished = True
            if self._table.get(self._address) is self:
                del self._table[self._address]
            # Datagrams the handler never read are dropped too.
            unread = len(self._pending)
            if unread:
                self._dropped += unread
                self._socket._count_dropped(unread)
                self._budget.used -= sum(len(dgram.data) for dgram in self._pending)
                self._pending.clear()
            self._arrived.unpark_all()
        await trio.lowlevel.checkpoint()


class _Dispatcher(trio.abc.Listener[UDPPeer]):
    """The core's listener: reads datagrams, returns only new peers."""

    def __init__(
        self, socket: UDPSocket, *, queue_size: int, max_queued_bytes: int, idle_timeout: float
    ) -> None:
        self._socket = socket
        self._peers: dict[SocketAddress, UDPPeer] = {}
        self._budget = _QueueBudget(max_queued_bytes)
        self._queue_size = queue_size
        self._idle_timeout = idle_timeout
        self._closed = False

    async def accept(self) -> UDPPeer:
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the server stopped reading")
            try:
                dgram = await self._socket.__anext__()
            except StopAsyncIteration:
                raise trio.ClosedResourceError("the server socket was closed") from None
            except PortUnreachable:
                continue  # an ICMP error for an earlier reply: not the end of serving
            peer = self._peers.get(dgram.address)
            if peer is not None:
                peer._deliver(dgram)
                continue
            peer = UDPPeer(
                self._socket,
                dgram.address,
                self._peers,
                self._budget,
                queue_size=self._queue_size,
                idle_timeout=self._idle_timeout,
            )
            self._peers[dgram.address] = peer
            peer._deliver(dgram)
            return peer

    async def aclose(self) -> None:
        self._closed = True  # stop reading; the socket itself outlives us
        await trio.lowlevel.checkpoint()


async def _open_peer(peer: UDPPeer) -> UDPPeer:
    return peer


class UDPServer(Server):
    """The :class:`~trionet.Server` that :func:`serve_udp` returns: the same
    contract, plus the counters of its one socket."""

    def __init__(self, core: ServerCore[Any, Any], socket: UDPSocket) -> None:
        super().__init__(core)
        self._socket = socket

    def socket_statistics(self) -> UDPStatistics:
        """Return the counters of the server's socket: every datagram in and
        out, over all sessions, and the ones that never reached a handler.

        ``truncated`` counts datagrams larger than ``max_datagram_size``;
        ``dropped`` counts datagrams dropped by a full peer queue, by a session
        that ended before reading them, or because ``max_peers`` sessions were
        already running (each such new peer is also one ``dropped`` in
        :meth:`~trionet.Server.statistics`).

        Returns:
            A :class:`~trionet.UDPStatistics`.
        """
        return self._socket.statistics()


async def serve_udp(
    handler: Callable[[UDPPeer], Awaitable[object]],
    port: int,
    host: str | None = None,
    *,
    idle_timeout: float = DEFAULT_UDP_IDLE_TIMEOUT,
    max_peers: int = DEFAULT_MAX_CONNECTIONS,
    queue_size: int = DEFAULT_UDP_QUEUE_SIZE,
    max_queued_bytes: int = DEFAULT_UDP_MAX_QUEUED_BYTES,
    max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
    handler_errors: HandlerErrors = "log",
    metrics: Metrics | None = None,
    sockets: Sequence[stdlib_socket.socket] | None = None,
    task_status: trio.TaskStatus[UDPServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve UDP with one supervised session per remote address.

    The first datagram from a new address starts ``handler(peer)`` in its own
    task, with a :class:`UDPPeer`. Everything else is :func:`serve_tcp`'s
    contract: ``nursery.start`` returns the server once bound (a
    :class:`UDPServer`), handler errors are logged (``trionet.udp``) and
    counted, and ``server.shutdown(grace)`` ends every peer's loop, waits,
    then cancels.

    In a worker of :func:`serve_workers` whose ``listen`` has ``(host, port,
    "udp")``, and under systemd socket activation, the call takes the
    datagram socket bound for it instead of binding (see
    :doc:`/deployment`). Workers then share one socket, and each datagram
    goes to whichever worker reads first: a peer's datagrams may reach
    several workers, each with a session of its own.

    Args:
        handler: ``async def handler(peer: UDPPeer)``.
        port: The port; 0 lets the system pick.
        host: The local address; ``None`` binds every address (dual-stack).
        idle_timeout: Seconds of silence after which a peer's loop ends
            (default 120).
        max_peers: Sessions at once (default 10 000). At the cap, the
            session of a peer that sent one datagram and never came back (as a
            spoofed source cannot) is ended to make room, the least recently
            heard first, and counted in ``statistics().evicted_idle``; if every
            session has heard twice or more, datagrams from further new
            addresses are dropped and counted in ``statistics().dropped``.
        queue_size: Datagrams waiting for one handler; beyond, that peer's
            datagrams are dropped and counted (default 64).
        max_queued_bytes: Payload bytes waiting for all handlers together;
            beyond, datagrams are dropped and counted (default 16 MiB).
        max_datagram_size: As for :func:`open_udp_socket`.
        handler_errors: ``"log"`` or ``"raise"``, as for :func:`serve_tcp`.
        metrics: Report to this :class:`trionet.metrics.Metrics`: the
            sessions as connections, and the socket's datagrams (received,
            sent, dropped), read when scraped (default ``None``).
        sockets: Serve this one already-bound UDP socket, given as
            ``[sock]``, instead of binding ``port`` and ``host``, which are
            then ignored: a socket made by a parent process or a test. The
            server owns it from then on, and closes it when it stops.
        task_status: Set by ``nursery.start``.

    Raises:
        BindError: The address is in use or cannot be bound.
        ValueError: An argument is out of range, or ``sockets`` does not
            hold exactly one open, bound, IPv4 or IPv6 UDP socket.
        TypeError: An argument is of the wrong kind, or ``sockets`` is not a
            sequence of ``socket.socket``.
    """
    check_udp_server_options(idle_timeout, max_peers, queue_size, max_queued_bytes, handler_errors)
    udp = await server_socket(host, port, sockets, max_datagram_size=max_datagram_size)
    await serve_udp_socket(
        udp,
        handler,
        idle_timeout=idle_timeout,
        max_peers=max_peers,
        queue_size=queue_size,
        max_queued_bytes=max_queued_bytes,
        handler_errors=handler_errors,
        metrics=metrics,
        task_status=task_status,
    )


def check_udp_server_options(
    idle_timeout: float,
    max_peers: int,
    queue_size: int,
    max_queued_bytes: int,
    handler_errors: str,
) -> None:
    """Validate :func:`serve_udp`'s options; call it before binding.

    Raises:
        ValueError: An option is out of range.
        TypeError: An argument is of the wrong kind.
    """
    checks.count("max_peers", max_peers)
    checks.one_of("handler_errors", handler_errors, ("log", "raise"))
    checks.seconds("idle_timeout", idle_timeout)
    checks.count("queue_size", queue_size)
    checks.count("max_queued_bytes", max_queued_bytes)


async def serve_udp_socket(
    socket: UDPSocket,
    handler: Callable[[UDPPeer], Awaitable[object]],
    *,
    idle_timeout: float,
    max_peers: int,
    queue_size: int,
    max_queued_bytes: int,
    handler_errors: HandlerErrors,
    task_status: trio.TaskStatus[UDPServer],
    metrics: Metrics | None = None,
) -> None:
    """:func:`serve_udp` on an open socket, which it closes before returning."""
    dispatcher = _Dispatcher(
        socket,
        queue_size=queue_size,
        max_queued_bytes=max_queued_bytes,
        idle_timeout=idle_timeout,
    )
    core = ServerCore(
        name=f"udp server {format_address(socket.local_address)}",
        listeners=[dispatcher],
        addresses=[socket.local_address],
        opener=_open_peer,
        handler=handler,
        max_connections=max_peers,
        handler_errors=handler_errors,
        logger=logger,
        make_server=lambda core: UDPServer(core, socket),
        resources=[socket],
    )
    if metrics is not None:
        metrics._watch(core, udp=socket)
    # A UDPServer is the Server that run() starts with: make_server made it.
    await core.run(cast("trio.TaskStatus[Server]", task_status))
