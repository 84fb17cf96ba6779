"""A virtual UDP network in memory: real :class:`~trionet.UDPSocket` objects
whose datagrams travel through a seeded simulation instead of the kernel.

Theory of operation
-------------------
Each virtual socket subclasses ``trio.socket.SocketType`` (trio's supported
way to fake a socket), so the :class:`~trionet.UDPSocket` wrapped around it,
and :func:`~trionet.serve_udp`'s sessions on top of that, are the very code
that runs over the kernel: size limits, truncation, connected mode and
statistics behave the same.

A datagram sent is decided at once, with the network's one
``random.Random(seed)``: lost, or delivered (twice when duplicated), each copy
due after ``latency`` seconds, plus ``reorder_delay`` when it is picked for
reordering, so that datagrams sent after it overtake it. Copies wait in the
receiver's queue, ordered by due time, until ``recvfrom`` takes them; a
receiver whose queue already holds ``receive_buffer_size`` bytes loses the
datagram, as a kernel with a full buffer does. There is no background task:
a receiver waiting for a datagram due later sleeps until its due time, so
with pytest-trio's ``autojump_clock`` latency costs no real time, and the same
seed and the same sends give the same outcome every run.

Addresses are IP literals: any address can be bound (``10.0.0.1`` and
``10.0.0.2`` can be two "machines"), ``0.0.0.0`` / ``::`` receive what is
sent to any address of their family at their port, and ``localhost`` means
``127.0.0.1``. A connected socket whose peer has no socket gets
``PortUnreachable`` from its next call, as over loopback. Multicast and
broadcast are not simulated.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import math
import random
import socket as stdlib_socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import trio

from .. import _checks as checks
from .._errors import BindError, connect_error
from .._listeners import format_address
from .._server import DEFAULT_MAX_CONNECTIONS, HandlerErrors
from .._udp import DEFAULT_MAX_DATAGRAM_SIZE, UDPSocket, check_max_datagram_size
from .._udp_server import (
    DEFAULT_UDP_IDLE_TIMEOUT,
    DEFAULT_UDP_MAX_QUEUED_BYTES,
    DEFAULT_UDP_QUEUE_SIZE,
    UDPPeer,
    UDPServer,
    check_udp_server_options,
    serve_udp_socket,
)

__all__ = [
    "DEFAULT_VIRTUAL_RECEIVE_BUFFER",
    "DEFAULT_VIRTUAL_REORDER_DELAY",
    "VirtualNetworkStatistics",
    "VirtualUDPNetwork",
]

# Linux's default SO_RCVBUF (net.core.rmem_default) is 212 992 bytes; a round
# 256 KiB of payload is the same order, so floods overflow as they would.
DEFAULT_VIRTUAL_RECEIVE_BUFFER = 256 * 1024

# How long a reordered datagram is held back: long enough that the next few
# datagrams of a burst overtake it, short enough for real-time tests.
DEFAULT_VIRTUAL_REORDER_DELAY = 0.01

# Where the network starts handing out ports for port 0 (the IANA dynamic range).
_FIRST_EPHEMERAL_PORT = 49152

_ANY: dict[int, str] = {stdlib_socket.AF_INET: "0.0.0.0", stdlib_socket.AF_INET6: "::"}
_LOOPBACK: dict[int, str] = {stdlib_socket.AF_INET: "127.0.0.1", stdlib_socket.AF_INET6: "::1"}
_MEMBERSHIP_OPTIONS = {
    stdlib_socket.IP_ADD_MEMBERSHIP,
    stdlib_socket.IP_DROP_MEMBERSHIP,
    stdlib_socket.IPV6_JOIN_GROUP,
    stdlib_socket.IPV6_LEAVE_GROUP,
}


@dataclass(frozen=True, slots=True)
class VirtualNetworkStatistics:
    """What happened to the datagrams sent on a :class:`VirtualUDPNetwork`.

    Attributes:
        sent: Datagrams handed to the network.
        lost: Datagrams the network lost on purpose (``loss``).
        duplicated: Datagrams delivered twice (``duplication``).
        reordered: Copies held back so that later ones overtook them
            (``reordering``).
        unreachable: Datagrams (copies included) sent where no socket was
            bound, or to a connected socket from another address.
        overflowed: Copies lost because the receiver's buffer was full.
        delivered: Copies queued at a receiver.
    """

    sent: int
    lost: int
    duplicated: int
    reordered: int
    unreachable: int
    overflowed: int
    delivered: int


def _delay(name: str, value: float) -> float:
    seconds = checks.non_negative_seconds(name, value)
    assert seconds is not None
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be finite >= 0 seconds, not {value!r}")
    return seconds


class VirtualUDPNetwork:
    """A simulated UDP network for deterministic tests, with seeded loss,
    duplication and reordering. No socket or kernel is involved.

    Open sockets on it with :meth:`open_udp_socket` and :meth:`connect_udp`,
    and servers with :meth:`serve_udp`: they are the real
    :class:`~trionet.UDPSocket` and :func:`~trionet.serve_udp`, so code
    written against trionet runs on it unchanged if it takes the socket (or a
    way to open one) as a parameter. ``loss``, ``duplication``,
    ``reordering`` and ``latency`` are attributes: change them mid-test to
    cut a link and restore it.

    Args:
        seed: Seeds the network's random choices: the same seed and the same
            sequence of sends give the same losses, duplicates and order.
        loss: Probability that a datagram is lost (0 to 1).
        duplication: Probability that a datagram is delivered twice.
        reordering: Probability that a copy is held back by ``reorder_delay``
            so that later datagrams overtake it.
        latency: Seconds every datagram takes to arrive (default 0).
        reorder_delay: Extra seconds a reordered copy takes (default 0.01).
        receive_buffer_size: Payload bytes a socket's queue holds before
            further datagrams to it are lost (default 256 KiB).

    Raises:
        ValueError: A probability is outside 0..1, or a delay or size is
            negative.
        TypeError: An argument is of the wrong kind.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplication: float = 0.0,
        reordering: float = 0.0,
        latency: float = 0.0,
        reorder_delay: float = DEFAULT_VIRTUAL_REORDER_DELAY,
        receive_buffer_size: int = DEFAULT_VIRTUAL_RECEIVE_BUFFER,
    ) -> None:
        checks.count("receive_buffer_size", receive_buffer_size)
        self.loss = loss
        self.duplication = duplication
        self.reordering = reordering
        self.latency = latency
        self.reorder_delay = reorder_delay
        self.receive_buffer_size = receive_buffer_size
        self._random = random.Random(seed)
        self._bound: dict[tuple[str, int], _VirtualSocket] = {}
        self._next_port = _FIRST_EPHEMERAL_PORT
        self._sequence = 0
        self._sent = 0
        self._lost = 0
        self._duplicated = 0
        self._reordered = 0
        self._unreachable = 0
        self._overflowed = 0
        self._delivered = 0

    def __repr__(self) -> str:
        return f"<trionet.testing.VirtualUDPNetwork with {len(self._bound)} sockets>"

    # The knobs are validated on every assignment, mid-test ones included.

    @property
    def loss(self) -> float:
        """Probability that a datagram is lost."""
        return self._loss

    @loss.setter
    def loss(self, value: float) -> None:
        self._loss = checks.fraction("loss", value)

    @property
    def duplication(self) -> float:
        """Probability that a datagram is delivered twice."""
        return self._duplication

    @duplication.setter
    def duplication(self, value: float) -> None:
        self._duplication = checks.fraction("duplication", value)

    @property
    def reordering(self) -> float:
        """Probability that a copy is held back by ``reorder_delay``."""
        return self._reordering

    @reordering.setter
    def reordering(self, value: float) -> None:
        self._reordering = checks.fraction("reordering", value)

    @property
    def latency(self) -> float:
        """Seconds every datagram takes to arrive."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._latency = _delay("latency", value)

    @property
    def reorder_delay(self) -> float:
        """Extra seconds a reordered copy takes."""
        return self._reorder_delay

    @reorder_delay.setter
    def reorder_delay(self, value: float) -> None:
        self._reorder_delay = _delay("reorder_delay", value)

    def statistics(self) -> VirtualNetworkStatistics:
        """Return what happened to the datagrams sent so far.

        Returns:
            A :class:`VirtualNetworkStatistics`.
        """
        return VirtualNetworkStatistics(
            sent=self._sent,
            lost=self._lost,
            duplicated=self._duplicated,
            reordered=self._reordered,
            unreachable=self._unreachable,
            overflowed=self._overflowed,
            delivered=self._delivered,
        )

    # -- opening sockets ---------------------------------------------------

    @asynccontextmanager
    async def open_udp_socket(
        self,
        host: str | None = None,
        port: int = 0,
        *,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
    ) -> AsyncIterator[UDPSocket]:
        """Open a :class:`~trionet.UDPSocket` on this network, as
        :func:`trionet.open_udp_socket` does on the real one.

        Args:
            host: An IP address (any: each is a host of this network) or
                ``localhost``; ``None`` means ``127.0.0.1``.
            port: The port; 0 picks a free one from 49152 up.
            max_datagram_size: As for :func:`trionet.open_udp_socket`.

        Returns:
            An async context manager giving the socket; it is closed when the
            block ends.

        Raises:
            BindError: The address is taken on this network, or is not an IP
                address.
            ValueError: An argument is out of range.
            TypeError: An argument is of the wrong kind.
        """
        check_max_datagram_size(max_datagram_size)
        sock = await self._bind(host, port)
        async with UDPSocket(sock, max_datagram_size=max_datagram_size) as udp:
            yield udp

    async def connect_udp(
        self,
        host: str,
        port: int,
        *,
        local_host: str | None = None,
        local_port: int = 0,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
    ) -> UDPSocket:
        """Open a connected :class:`~trionet.UDPSocket` on this network, as
        :func:`trionet.connect_udp` does on the real one.

        Args:
            host: The peer's IP address (or ``localhost``).
            port: The peer's port.
            local_host: The local address; ``None`` means ``127.0.0.1`` (or
                ``::1`` for an IPv6 peer).
            local_port: The local port; 0 picks a free one.
            max_datagram_size: As for :func:`trionet.open_udp_socket`.

        Returns:
            The connected socket; close it (``async with``).

        Raises:
            trionet.ConnectError: ``host`` is not an IP address.
            BindError: The local address is taken.
            ValueError: An argument is out of range.
            TypeError: An argument is of the wrong kind.
        """
        check_max_datagram_size(max_datagram_size)
        what = format_address((host, port))
        try:
            peer = _resolve(host, port)
        except OSError as exc:
            raise connect_error(exc, what) from None
        if local_host is None:
            local_host = _LOOPBACK[_family_of(peer[0])]
        sock = await self._bind(local_host, local_port)
        udp = UDPSocket(sock, max_datagram_size=max_datagram_size)
        try:
            await udp._connect_to(peer)
        except OSError as exc:
            await udp.aclose()
            raise connect_error(exc, what) from None
        return udp

    async def serve_udp(
        self,
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
        task_status: trio.TaskStatus[UDPServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run :func:`trionet.serve_udp` on this network: one session per
        remote address, with the same options and the same
        :class:`~trionet.UDPServer` handed to ``nursery.start``.

        Args:
            handler: ``async def handler(peer: UDPPeer)``.
            port: The port; 0 picks a free one.
            host: The address; ``None`` means ``127.0.0.1``.
            idle_timeout: As for :func:`trionet.serve_udp`.
            max_peers: As for :func:`trionet.serve_udp`.
            queue_size: As for :func:`trionet.serve_udp`.
            max_queued_bytes: As for :func:`trionet.serve_udp`.
            max_datagram_size: As for :func:`trionet.open_udp_socket`.
            handler_errors: As for :func:`trionet.serve_udp`.
            task_status: Set by ``nursery.start``.

        Raises:
            BindError: The address is taken on this network.
            ValueError: An argument is out of range.
            TypeError: An argument is of the wrong kind.
        """
        check_udp_server_options(
            idle_timeout, max_peers, queue_size, max_queued_bytes, handler_errors
        )
        check_max_datagram_size(max_datagram_size)
        sock = UDPSocket(await self._bind(host, port), max_datagram_size=max_datagram_size)
        await serve_udp_socket(
            sock,
            handler,
            idle_timeout=idle_timeout,
            max_peers=max_peers,
            queue_size=queue_size,
            max_queued_bytes=max_queued_bytes,
            handler_errors=handler_errors,
            task_status=task_status,
        )

    # -- the simulation ------------------------------------------------------

    async def _bind(self, host: str | None, port: int) -> _VirtualSocket:
        checks.count("port", port, minimum=0, maximum=65535)
        await trio.lowlevel.checkpoint()
        try:
            address, port = _resolve(host or "127.0.0.1", port)
        except OSError as exc:
            raise BindError(exc.errno or 0, f"cannot bind {host}:{port}: {exc.strerror}") from None
        if port == 0:
            port = self._free_port(address)
        if (address, port) in self._bound:
            raise BindError(
                errno.EADDRINUSE, f"address already in use: {format_address((address, port))}"
            )
        sock = _VirtualSocket(self, address, port)
        self._bound[address, port] = sock
        return sock

    def _free_port(self, address: str) -> int:
        for _ in range(65536 - _FIRST_EPHEMERAL_PORT):
            port = self._next_port
            self._next_port = port + 1 if port < 65535 else _FIRST_EPHEMERAL_PORT
            if (address, port) not in self._bound:
                return port
        raise BindError(errno.EADDRINUSE, f"no free port left on {address}")

    def _receiver(self, address: str, port: int) -> _VirtualSocket | None:
        found = self._bound.get((address, port))
        if found is None:
            found = self._bound.get((_ANY[_family_of(address)], port))
        return found

    def _transmit(self, sender: _VirtualSocket, data: bytes, address: tuple[str, int]) -> None:
        self._sent += 1
        if self._random.random() < self._loss:
            self._lost += 1
            return
        copies = 1
        if self._random.random() < self._duplication:
            self._duplicated += 1
            copies = 2
        now = trio.current_time()
        source = sender._source_for(address)
        for _ in range(copies):
            due = now + self._latency
            if self._random.random() < self._reordering:
                self._reordered += 1
                due += self._reorder_delay
            receiver = self._receiver(*address)
            if receiver is None or not receiver._accepts_from(source):
                self._unreachable += 1
                if sender._remote is not None:
                    sender._pending_error = errno.ECONNREFUSED
                continue
            if receiver._buffered + len(data) > self.receive_buffer_size:
                self._overflowed += 1
                continue
            self._sequence += 1
            receiver._enqueue(due, self._sequence, data, source, address[0])
            self._delivered += 1

    def _unbind(self, sock: _VirtualSocket) -> None:
        if self._bound.get(sock._address) is sock:
            del self._bound[sock._address]


def _family_of(address: str) -> int:
    if ":" in address:
        return stdlib_socket.AF_INET6
    return stdlib_socket.AF_INET


def _resolve(host: str, port: int) -> tuple[str, int]:
    """An address of this network: an IP literal, or ``localhost``."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.split("%")[0])), int(port)
    except ValueError:
        raise OSError(
            errno.EADDRNOTAVAIL, f"{host!r} is not an IP address (the virtual network has no DNS)"
        ) from None


def _unsupported(what: str) -> NoReturn:
    raise OSError(errno.EOPNOTSUPP, f"the virtual UDP network does not support {what}")


class _VirtualSocket(trio.socket.SocketType):
    """The kernel's side of one virtual socket: what :class:`UDPSocket` calls."""

    def __init__(self, network: VirtualUDPNetwork, address: str, port: int) -> None:
        super().__init__()
        self._network = network
        self._family = stdlib_socket.AddressFamily(_family_of(address))
        self._address = (address, port)
        self._remote: tuple[str, int] | None = None
        self._queue: list[tuple[float, int, bytes, tuple[str, int]]] = []
        self._buffered = 0
        self._pending_error: int | None = None
        self._reached_at: dict[tuple[str, int], str] = {}  # wildcard sockets: peer -> our address
        self._waiters = trio.lowlevel.ParkingLot()
        self._closed = False

    # -- what the network calls ----------------------------------------------

    def _source_for(self, destination: tuple[str, int]) -> tuple[str, int]:
        host, port = self._address
        if host == _ANY[self._family]:
            # Answer from the address the peer reached us at (the kernel picks
            # the source by route; a peer connected to that address expects it).
            host = self._reached_at.get(destination, _LOOPBACK[self._family])
        return (host, port)

    def _accepts_from(self, source: tuple[str, int]) -> bool:
        return self._remote is None or self._remote == source

    def _enqueue(
        self, due: float, sequence: int, data: bytes, source: tuple[str, int], local: str
    ) -> None:
        if self._address[0] == _ANY[self._family]:
            self._reached_at[source] = local
        heapq.heappush(self._queue, (due, sequence, data, source))
        self._buffered += len(data)
        self._waiters.unpark_all()

    # -- the socket interface -------------------------------------------------

    @property
    def family(self) -> stdlib_socket.AddressFamily:
        return self._family

    @property
    def type(self) -> stdlib_socket.SocketKind:
        return stdlib_socket.SOCK_DGRAM

    @property
    def proto(self) -> int:
        return 0

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> Any:
        return self._wire(self._address)

    def getpeername(self) -> Any:
        if self._remote is None:
            raise OSError(errno.ENOTCONN, "the socket is not connected")
        return self._wire(self._remote)

    def _wire(self, address: tuple[str, int]) -> tuple[Any, ...]:
        if self._family == stdlib_socket.AF_INET6:
            return (address[0], address[1], 0, 0)
        return address

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        if (level, optname) == (stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY):
            return 1  # each virtual socket has one family
        return 0

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        if optname in _MEMBERSHIP_OPTIONS and level in (
            stdlib_socket.IPPROTO_IP,
            stdlib_socket.IPPROTO_IPV6,
        ):
            _unsupported("multicast")

    def _check_usable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the socket was closed")
        if self._pending_error is not None:
            code, self._pending_error = self._pending_error, None
            raise ConnectionRefusedError(code, "Connection refused")

    def _destination(self, address: Any) -> tuple[str, int]:
        if not isinstance(address, tuple) or len(address) not in (2, 4):
            raise TypeError(f"an address is a (host, port) tuple, not {address!r}")
        host, port = _resolve(str(address[0]), address[1])
        if not 1 <= port <= 65535:
            raise OSError(errno.EINVAL, f"cannot send to port {port}")
        if _family_of(host) != self._family:
            raise OSError(errno.EAFNOSUPPORT, f"{host} is not of this socket's family")
        return host, port

    async def connect(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("the socket was closed")
        self._remote = self._destination(address)
        # The kernel drops what other addresses sent before the connect.
        kept = [item for item in self._queue if item[3] == self._remote]
        self._buffered = sum(len(item[2]) for item in kept)
        self._queue = kept
        heapq.heapify(self._queue)

    async def sendto(self, *args: Any) -> int:
        data, address = args[0], args[-1]
        await trio.lowlevel.checkpoint()
        self._check_usable()
        payload = bytes(memoryview(data))
        self._network._transmit(self, payload, self._destination(address))
        return len(payload)

    async def send(self, data: Any, flags: int = 0, /) -> int:
        await trio.lowlevel.checkpoint()
        self._check_usable()
        if self._remote is None:
            raise OSError(errno.EDESTADDRREQ, "the socket is not connected")
        payload = bytes(memoryview(data))
        self._network._transmit(self, payload, self._remote)
        return len(payload)

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        await trio.lowlevel.checkpoint()
        while True:
            self._check_usable()
            if self._queue and self._queue[0][0] <= trio.current_time():
                _, _, data, source = heapq.heappop(self._queue)
                self._buffered -= len(data)
                return data[:bufsize], self._wire(source)
            due = self._queue[0][0] if self._queue else math.inf
            with trio.move_on_at(due):
                await self._waiters.park()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._network._unbind(self)
            self._queue.clear()
            self._buffered = 0
            self._waiters.unpark_all()

    def __repr__(self) -> str:
        return f"<virtual UDP socket {format_address(self._address)}>"
