"""A virtual UDP network in memory, behind trio's socket factory: the real
:class:`~trionet.UDPSocket` and :func:`~trionet.serve_udp`, and trionet's
real binding code, with datagrams travelling through a seeded simulation
instead of the kernel.

Theory of operation
-------------------
:class:`VirtualUDPNetwork` plugs in where trio's own fake network does: it is
a ``trio.abc.SocketFactory`` and a ``trio.abc.HostnameResolver``.
:meth:`VirtualUDPNetwork.install` sets both for the current ``trio.run``
(``trio.socket.set_custom_socket_factory`` and
``trio.socket.set_custom_hostname_resolver``) until its block ends. While it
is installed, trionet's binding code asks trio's factory for its socket (see
:mod:`trionet._udp._open`), so plain :func:`trionet.open_udp_socket`,
:func:`trionet.connect_udp` and :func:`trionet.serve_udp` get a virtual
datagram socket (:mod:`trionet.testing._udp_simulation`) and run unchanged.
Stream sockets, and anything but an IPv4 or IPv6 datagram socket, are real
sockets, so TCP keeps working in the same test.

The resolver answers datagram lookups itself: ``localhost`` is ``127.0.0.1``
and ``::1``, and any other name fails as an unknown name does (the network has
no DNS; numeric addresses never reach a resolver: trio answers them). Other
lookups go to the system's resolver in a thread, as trio's default does.

The network's own :meth:`~VirtualUDPNetwork.open_udp_socket`,
:meth:`~VirtualUDPNetwork.connect_udp` and :meth:`~VirtualUDPNetwork.serve_udp`
are those same trionet functions, run with the network installed while they
bind (and connect): during that moment other tasks of the run see it too.
"""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Self

import trio

from .. import _checks as checks
from .._server import DEFAULT_MAX_CONNECTIONS, HandlerErrors
from .._udp import (
    DEFAULT_MAX_DATAGRAM_SIZE,
    DEFAULT_UDP_IDLE_TIMEOUT,
    DEFAULT_UDP_MAX_QUEUED_BYTES,
    DEFAULT_UDP_QUEUE_SIZE,
    UDPPeer,
    UDPServer,
    UDPSocket,
    bind_udp,
    check_udp_server_options,
    connect_udp,
    serve_udp_socket,
)
from ._plumbing import Plumbing, delay, port_number
from ._udp_simulation import Simulation, VirtualSocket

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

# What a getaddrinfo answer is, as trio's resolver interface spells it.
_AddrInfo = list[tuple[Any, Any, int, str, Any]]


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


class VirtualUDPNetwork(Plumbing):
    """A simulated UDP network for deterministic tests, with seeded loss,
    duplication and reordering. No UDP socket or kernel is involved.

    Install it for a block with :meth:`install` and plain
    :func:`trionet.open_udp_socket`, :func:`trionet.connect_udp` and
    :func:`trionet.serve_udp` run on it, so code written against trionet is
    tested unchanged. Or open sockets on it with :meth:`open_udp_socket` and
    :meth:`connect_udp`, and servers with :meth:`serve_udp`, without
    installing it: they are the same trionet functions. ``loss``,
    ``duplication``, ``reordering`` and ``latency`` are attributes: change
    them mid-test to cut a link and restore it.

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
        self._simulation = Simulation(seed, receive_buffer_size)
        super().__init__()
        self.loss = loss
        self.duplication = duplication
        self.reordering = reordering
        self.latency = latency
        self.reorder_delay = reorder_delay

    def __repr__(self) -> str:
        return f"<trionet.testing.VirtualUDPNetwork with {len(self._simulation.bound)} sockets>"

    # The knobs are validated on every assignment, mid-test ones included.

    @property
    def loss(self) -> float:
        """Probability that a datagram is lost."""
        return self._simulation.loss

    @loss.setter
    def loss(self, value: float) -> None:
        self._simulation.loss = checks.fraction("loss", value)

    @property
    def duplication(self) -> float:
        """Probability that a datagram is delivered twice."""
        return self._simulation.duplication

    @duplication.setter
    def duplication(self, value: float) -> None:
        self._simulation.duplication = checks.fraction("duplication", value)

    @property
    def reordering(self) -> float:
        """Probability that a copy is held back by ``reorder_delay``."""
        return self._simulation.reordering

    @reordering.setter
    def reordering(self, value: float) -> None:
        self._simulation.reordering = checks.fraction("reordering", value)

    @property
    def latency(self) -> float:
        """Seconds every datagram takes to arrive."""
        return self._simulation.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._simulation.latency = delay("latency", value)

    @property
    def reorder_delay(self) -> float:
        """Extra seconds a reordered copy takes."""
        return self._simulation.reorder_delay

    @reorder_delay.setter
    def reorder_delay(self, value: float) -> None:
        self._simulation.reorder_delay = delay("reorder_delay", value)

    @property
    def receive_buffer_size(self) -> int:
        """Payload bytes a socket's queue holds before datagrams to it are lost."""
        return self._simulation.receive_buffer_size

    @receive_buffer_size.setter
    def receive_buffer_size(self, value: int) -> None:
        self._simulation.receive_buffer_size = value

    def statistics(self) -> VirtualNetworkStatistics:
        """Return what happened to the datagrams sent so far.

        Returns:
            A :class:`VirtualNetworkStatistics`.
        """
        simulation = self._simulation
        return VirtualNetworkStatistics(
            sent=simulation.sent,
            lost=simulation.lost,
            duplicated=simulation.duplicated,
            reordered=simulation.reordered,
            unreachable=simulation.unreachable,
            overflowed=simulation.overflowed,
            delivered=simulation.delivered,
        )

    # -- plugging in ---------------------------------------------------------

    @contextmanager
    def install(self) -> Iterator[Self]:
        """Run the current ``trio.run``'s datagram sockets on this network for
        the block: ``with net.install():``. Plain
        :func:`trionet.open_udp_socket`, :func:`trionet.connect_udp` and
        :func:`trionet.serve_udp` (and ``trio.socket.socket(...,
        SOCK_DGRAM)``) then make virtual sockets; TCP and other sockets come
        from the factory installed before (a :class:`VirtualTCPNetwork`'s, or
        the real one). When the block ends, the factory and resolver installed before
        it are back; sockets opened in it stay on this network until closed.

        Returns:
            A context manager giving the network itself.

        Raises:
            RuntimeError: Not called inside ``trio.run``.
        """
        with self._installed():
            yield self

    def socket(
        self,
        family: stdlib_socket.AddressFamily | int = stdlib_socket.AF_INET,
        type: stdlib_socket.SocketKind | int = stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        """Make a socket, as ``trio.socket.socket`` does while the network is
        installed (the ``trio.abc.SocketFactory`` interface).

        Args:
            family: The address family.
            type: The socket type.
            proto: The protocol.

        Returns:
            A virtual socket of this network for an IPv4 or IPv6 datagram
            socket; for anything else, one from the factory installed before
            (a real trio socket if none).
        """
        if self._simulates(family, type, stdlib_socket.SOCK_DGRAM):
            return VirtualSocket(self._simulation, family)
        return self._passed_on(family, type, proto)

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        """Resolve a name, as ``trio.socket.getaddrinfo`` does while the
        network is installed (the ``trio.abc.HostnameResolver`` interface).

        Args:
            host: The name, IDNA-encoded by trio.
            port: The port.
            family: The address family wanted, or 0.
            type: The socket type wanted, or 0.
            proto: The protocol wanted, or 0.
            flags: ``AI_*`` flags.

        Returns:
            For datagram lookups, ``127.0.0.1`` and ``::1`` for ``localhost``
            (those of ``family``); for other lookups, the answer of the
            resolver installed before (the system's if none).

        Raises:
            socket.gaierror: A datagram lookup of another name (the network
                has no DNS), or the system's resolver failed.
        """
        if type != stdlib_socket.SOCK_DGRAM or host is None:
            return await self._look_up_elsewhere(host, port, family, type, proto, flags)
        await trio.lowlevel.checkpoint()
        name = host.decode("ascii", "replace")
        if name.lower() != "localhost" or flags & stdlib_socket.AI_NUMERICHOST:
            raise stdlib_socket.gaierror(
                stdlib_socket.EAI_NONAME,
                f"{name!r} is not an IP address (the virtual network has no DNS)",
            )
        number = port_number(port)
        answer: _AddrInfo = []
        udp = stdlib_socket.IPPROTO_UDP
        if family in (0, stdlib_socket.AF_INET):
            answer.append((stdlib_socket.AF_INET, type, udp, "", ("127.0.0.1", number)))
        if family in (0, stdlib_socket.AF_INET6):
            answer.append((stdlib_socket.AF_INET6, type, udp, "", ("::1", number, 0, 0)))
        if not answer:
            raise stdlib_socket.gaierror(
                stdlib_socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        return answer

    # -- opening sockets -----------------------------------------------------

    @asynccontextmanager
    async def open_udp_socket(
        self,
        host: str | None = None,
        port: int = 0,
        *,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
    ) -> AsyncIterator[UDPSocket]:
        """Open a :class:`~trionet.UDPSocket` on this network, with
        :func:`trionet.open_udp_socket`'s own binding, installed or not.

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
        with self.install():
            udp = await bind_udp(
                "127.0.0.1" if host is None else host, port, max_datagram_size=max_datagram_size
            )
        async with udp:
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
        """Open a connected :class:`~trionet.UDPSocket` on this network, with
        :func:`trionet.connect_udp`, installed or not.

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
        with self.install():
            return await connect_udp(
                host,
                port,
                local_host=local_host,
                local_port=local_port,
                max_datagram_size=max_datagram_size,
            )

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
        """Run :func:`trionet.serve_udp` on this network, installed or not:
        one session per remote address, with the same options and the same
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
        # serve_udp's own steps, with the network installed for the binding only.
        check_udp_server_options(
            idle_timeout, max_peers, queue_size, max_queued_bytes, handler_errors
        )
        with self.install():
            sock = await bind_udp(
                "127.0.0.1" if host is None else host, port, max_datagram_size=max_datagram_size
            )
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
