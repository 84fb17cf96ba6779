"""A virtual TCP network in memory, behind trio's socket factory: the real
:func:`~trionet.serve_tcp`, :func:`~trionet.connect_tcp` and everything
built on them (HTTP, WebSocket, ASGI, TLS) with bytes travelling through a
seeded simulation instead of the kernel.

Theory of operation
-------------------
:class:`VirtualTCPNetwork` is a ``trio.abc.SocketFactory`` and a
``trio.abc.HostnameResolver``, as :class:`~trionet.testing.VirtualUDPNetwork`
is. :meth:`VirtualTCPNetwork.install` sets both for the current ``trio.run``
until its block ends. Inside it, an IPv4 or IPv6 stream socket is a
:class:`~trionet.testing._tcp_simulation.VirtualStreamSocket`; any other
socket comes from the factory installed before (a virtual UDP network's, or
the real one), so the two networks nest in either order. Stream lookups are
answered here (``localhost`` and the names of :meth:`~VirtualTCPNetwork.add_host`);
other lookups go to the resolver installed before, or the system's.
"""

from __future__ import annotations

import math
import socket as stdlib_socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self

import trio

from .. import _checks as checks
from ._plumbing import Plumbing, delay, family_of, port_number
from ._tcp_simulation import Connection, StreamSimulation, VirtualStreamSocket

__all__ = [
    "DEFAULT_VIRTUAL_STREAM_BUFFER",
    "VirtualConnection",
    "VirtualTCPNetwork",
    "VirtualTCPStatistics",
]

# Linux's default buffers for a loopback connection are about 200 KiB of
# receive (tcp_rmem) plus some send buffer; 256 KiB per direction makes a
# peer that stops reading block its sender after a similar amount.
DEFAULT_VIRTUAL_STREAM_BUFFER = 256 * 1024

_AddrInfo = list[tuple[Any, Any, int, str, Any]]


@dataclass(frozen=True, slots=True)
class VirtualTCPStatistics:
    """What happened on a :class:`VirtualTCPNetwork`.

    Attributes:
        opened: Connections established.
        refused: Connection attempts refused (no listener).
        reset: Connections reset (by :meth:`VirtualConnection.reset`, by a
            close with unread data, or by a send to a closed peer).
        bytes_carried: Bytes handed to the network, both directions.
        open_connections: Connections with at least one end still open.
    """

    opened: int
    refused: int
    reset: int
    bytes_carried: int
    open_connections: int


class VirtualConnection:
    """One connection of a :class:`VirtualTCPNetwork`, from
    :meth:`VirtualTCPNetwork.connections`: its addresses and the faults a
    test can inject into it."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __repr__(self) -> str:
        return f"<trionet.testing.VirtualConnection {self.client} -> {self.server}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VirtualConnection) and other._connection is self._connection

    def __hash__(self) -> int:
        return id(self._connection)

    @property
    def client(self) -> tuple[str, int]:
        """The connecting end's ``(host, port)``."""
        return self._connection.client

    @property
    def server(self) -> tuple[str, int]:
        """The accepting end's ``(host, port)``."""
        return self._connection.server

    @property
    def stalled(self) -> bool:
        """Whether :meth:`stall` holds the connection."""
        return self._connection.stalled

    def reset(self) -> None:
        """Reset the connection mid-stream, as an RST does: bytes in flight
        are dropped, and both ends' next receive or send raises
        (:exc:`trionet.ConnectionReset` through trionet)."""
        self._connection.reset()

    def stall(self) -> None:
        """Stop delivering, both ways, as a peer that vanished: reads wait,
        and sends block once ``buffer_size`` bytes are in flight."""
        self._connection.stalled = True

    def resume(self) -> None:
        """Deliver again after :meth:`stall`; what was held arrives at once."""
        self._connection.stalled = False
        self._connection.wake()


class VirtualTCPNetwork(Plumbing):
    """A simulated TCP network for deterministic tests, with latency,
    bandwidth, bounded buffers, seeded segmentation and injected faults. No
    TCP socket or kernel is involved.

    Install it for a block with :meth:`install`, and the unchanged
    :func:`trionet.serve_tcp` and :func:`trionet.connect_tcp` (so HTTP,
    WebSocket, ASGI and TLS above them) run on it, under ``autojump_clock``
    too. ``latency``, ``jitter``, ``bandwidth``, ``buffer_size`` and
    ``max_segment_size`` are attributes, changeable mid-test.

    Args:
        seed: Seeds the segment sizes and jitter: the same seed and the same
            sends give the same reads.
        latency: Seconds each byte takes to arrive (default 0).
        jitter: Extra seconds, up to this much, a segment may take at random
            (delivery stays in order; default 0).
        bandwidth: Bytes per second each direction of a connection carries;
            ``None`` (the default) is unlimited.
        buffer_size: Bytes each direction holds, in flight and unread,
            before ``send`` waits (default 256 KiB).
        max_segment_size: Sends are cut into segments of random sizes from 1
            to this many bytes, so receivers read across arbitrary boundaries;
            ``None`` (the default) keeps each send whole.

    Raises:
        ValueError: A delay, rate or size is out of range.
        TypeError: An argument is of the wrong kind.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float = 0.0,
        jitter: float = 0.0,
        bandwidth: float | None = None,
        buffer_size: int = DEFAULT_VIRTUAL_STREAM_BUFFER,
        max_segment_size: int | None = None,
    ) -> None:
        self._simulation = StreamSimulation(seed, _size("buffer_size", buffer_size))
        self._hosts: dict[str, list[str]] = {"localhost": ["::1", "127.0.0.1"]}
        super().__init__()
        self.latency = latency
        self.jitter = jitter
        self.bandwidth = bandwidth
        self.max_segment_size = max_segment_size

    def __repr__(self) -> str:
        count = len(self._simulation.connections)
        return f"<trionet.testing.VirtualTCPNetwork with {count} connections>"

    @property
    def latency(self) -> float:
        """Seconds each byte takes to arrive."""
        return self._simulation.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._simulation.latency = delay("latency", value)

    @property
    def jitter(self) -> float:
        """Extra seconds, at most, a segment may take at random."""
        return self._simulation.jitter

    @jitter.setter
    def jitter(self, value: float) -> None:
        self._simulation.jitter = delay("jitter", value)

    @property
    def bandwidth(self) -> float | None:
        """Bytes per second each direction carries, or ``None``: unlimited."""
        return self._simulation.bandwidth

    @bandwidth.setter
    def bandwidth(self, value: float | None) -> None:
        if value is not None:
            seconds = checks.non_negative_seconds("bandwidth", value)
            if seconds is None or not 0 < seconds < math.inf:
                raise ValueError(f"bandwidth must be > 0 bytes per second, not {value!r}")
            value = seconds
        self._simulation.bandwidth = value

    @property
    def buffer_size(self) -> int:
        """Bytes each direction holds, in flight and unread."""
        return self._simulation.buffer_size

    @buffer_size.setter
    def buffer_size(self, value: int) -> None:
        self._simulation.buffer_size = _size("buffer_size", value)

    @property
    def max_segment_size(self) -> int | None:
        """The largest segment a send is cut into, or ``None``: whole."""
        return self._simulation.max_segment_size

    @max_segment_size.setter
    def max_segment_size(self, value: int | None) -> None:
        if value is not None:
            value = _size("max_segment_size", value)
        self._simulation.max_segment_size = value

    def add_host(self, name: str, *addresses: str) -> None:
        """Make the network's resolver answer ``name`` with ``addresses``.

        Args:
            name: A host name, such as ``api.example.com``.
            addresses: Its IP addresses, tried in this order by
                :func:`trionet.connect_tcp`.

        Raises:
            ValueError: No address, or one is not an IP address.
        """
        if not addresses:
            raise ValueError(f"add_host({name!r}) needs at least one address")
        for address in addresses:
            try:
                stdlib_socket.inet_pton(family_of(address), address)
            except OSError:
                raise ValueError(f"{address!r} is not an IP address") from None
        self._hosts[name.lower()] = list(addresses)

    def connections(self) -> list[VirtualConnection]:
        """Return the connections with at least one end still open, oldest
        first.

        Returns:
            A list of :class:`VirtualConnection`.
        """
        return [VirtualConnection(c) for c in self._simulation.connections]

    def statistics(self) -> VirtualTCPStatistics:
        """Return what happened on the network so far.

        Returns:
            A :class:`VirtualTCPStatistics`.
        """
        simulation = self._simulation
        return VirtualTCPStatistics(
            opened=simulation.opened,
            refused=simulation.refused,
            reset=simulation.resets,
            bytes_carried=simulation.bytes_carried,
            open_connections=len(simulation.connections),
        )

    # -- plugging in ---------------------------------------------------------

    @contextmanager
    def install(self) -> Iterator[Self]:
        """Run the current ``trio.run``'s TCP sockets on this network for the
        block: ``with net.install():``. Other sockets come from the factory
        installed before (nesting with a :class:`VirtualUDPNetwork` works
        either way). When the block ends, the previous factory and resolver
        are back; sockets opened in it stay on this network, and work, until
        closed, so close them (end the servers' nurseries) inside the block.

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
            A virtual socket for an IPv4 or IPv6 stream socket; for anything
            else, one from the factory installed before (a real socket if
            none).
        """
        if self._simulates(family, type, stdlib_socket.SOCK_STREAM):
            return VirtualStreamSocket(self._simulation, family)
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
            For stream lookups, the addresses of ``localhost`` (``::1`` and
            ``127.0.0.1``) or of a name given to :meth:`add_host`; for other
            lookups, the previous resolver's (or the system's) answer.

        Raises:
            socket.gaierror: A stream lookup of an unknown name, or the
                previous resolver failed.
        """
        if type != stdlib_socket.SOCK_STREAM or host is None:
            return await self._look_up_elsewhere(host, port, family, type, proto, flags)
        await trio.lowlevel.checkpoint()
        name = host.decode("ascii", "replace")
        addresses = self._hosts.get(name.lower())
        if addresses is None or flags & stdlib_socket.AI_NUMERICHOST:
            raise stdlib_socket.gaierror(
                stdlib_socket.EAI_NONAME, f"{name!r} is not a host of the virtual network"
            )
        number = port_number(port)
        answer: _AddrInfo = []
        tcp = stdlib_socket.IPPROTO_TCP
        for address in addresses:
            kind = family_of(address)
            if family not in (0, kind):
                continue
            sockaddr: tuple[Any, ...] = (address, number)
            if kind == stdlib_socket.AF_INET6:
                sockaddr = (address, number, 0, 0)
            answer.append((kind, type, tcp, "", sockaddr))
        if not answer:
            raise stdlib_socket.gaierror(
                stdlib_socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        return answer


def _size(name: str, value: int) -> int:
    size = checks.count(name, value)
    assert size is not None
    return size
