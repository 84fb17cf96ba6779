"""The simulation under :class:`~trionet.testing.VirtualUDPNetwork`: which
virtual socket holds which address, and what becomes of each datagram sent.

Theory of operation
-------------------
A :class:`VirtualSocket` subclasses ``trio.socket.SocketType`` (trio's
supported way to fake a socket) and is what the network's socket factory
returns for a datagram socket, so trionet's own binding code, the
:class:`~trionet.UDPSocket` wrapped around it, and
:func:`~trionet.serve_udp`'s sessions on top of that are the very code that
runs over the kernel: size limits, truncation, connected mode and statistics
behave the same.

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
sent to any address of their family at their port, and a socket bound to
``::`` with ``IPV6_V6ONLY`` off (the kernel's default, and what trionet sets
for ``host=None``) also receives IPv4 datagrams for its port that no IPv4
socket takes, from IPv4-mapped source addresses, and sends to IPv4-mapped
destinations as IPv4, as a dual-stack kernel socket does. Inside the
simulation an address is always kept plain (IPv4 as IPv4); only what a socket
reports is mapped. A socket bound to a wildcard that connects takes the
loopback address of its peer's family as its own (the network has no routes).
A connected socket whose peer has no socket gets ``ECONNREFUSED`` from its
next call, as over loopback. Multicast and broadcast are not simulated.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import math
import random
import socket as stdlib_socket
from typing import Any, NoReturn

import trio

from .._errors import BindError
from .._listeners import format_address
from ._plumbing import family_of

__all__ = ["Simulation", "VirtualSocket"]

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

Address = tuple[str, int]


def _literal(host: str) -> str:
    """An IP literal in its normal spelling, or OSError: the simulation has no
    DNS (``localhost`` aside)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.split("%")[0]))
    except ValueError:
        raise OSError(
            errno.EADDRNOTAVAIL, f"{host!r} is not an IP address (the virtual network has no DNS)"
        ) from None


def _unsupported(what: str) -> NoReturn:
    raise OSError(errno.EOPNOTSUPP, f"the virtual UDP network does not support {what}")


class Simulation:
    """The network's state: its knobs, its random generator, the bound
    sockets and the counters. The knobs are validated by the public class."""

    __slots__ = (
        "_next_port",
        "_sequence",
        "bound",
        "delivered",
        "duplicated",
        "duplication",
        "latency",
        "loss",
        "lost",
        "overflowed",
        "random",
        "receive_buffer_size",
        "reorder_delay",
        "reordered",
        "reordering",
        "sent",
        "unreachable",
    )

    def __init__(self, seed: int, receive_buffer_size: int) -> None:
        self.loss = 0.0
        self.duplication = 0.0
        self.reordering = 0.0
        self.latency = 0.0
        self.reorder_delay = 0.0
        self.receive_buffer_size = receive_buffer_size
        self.random = random.Random(seed)
        self.bound: dict[Address, VirtualSocket] = {}
        self._next_port = _FIRST_EPHEMERAL_PORT
        self._sequence = 0
        self.sent = 0
        self.lost = 0
        self.duplicated = 0
        self.reordered = 0
        self.unreachable = 0
        self.overflowed = 0
        self.delivered = 0

    # -- addresses -------------------------------------------------------------

    def _taken(self, host: str, port: int, *, dual_stack: bool) -> bool:
        if (host, port) in self.bound:
            return True
        # A dual-stack "::" holds the IPv4 wildcard too: the two exclude each other.
        if host == "::" and dual_stack:
            return ("0.0.0.0", port) in self.bound
        if host == "0.0.0.0":
            other = self.bound.get(("::", port))
            return other is not None and other.dual_stack
        return False

    def bind(self, sock: VirtualSocket, host: str, port: int) -> Address:
        """Give ``sock`` the address ``(host, port)``; port 0 picks a free one.

        Raises:
            OSError: ``EADDRINUSE``, the address is taken.
        """
        dual_stack = sock.dual_stack and host == "::"
        if port == 0:
            port = self._free_port(host, dual_stack=dual_stack)
        elif self._taken(host, port, dual_stack=dual_stack):
            raise OSError(errno.EADDRINUSE, "Address already in use")
        self.bound[host, port] = sock
        return (host, port)

    def _free_port(self, host: str, *, dual_stack: bool) -> int:
        for _ in range(65536 - _FIRST_EPHEMERAL_PORT):
            port = self._next_port
            self._next_port = port + 1 if port < 65535 else _FIRST_EPHEMERAL_PORT
            if not self._taken(host, port, dual_stack=dual_stack):
                return port
        raise BindError(errno.EADDRINUSE, f"no free port left on {host}")

    def unbind(self, sock: VirtualSocket) -> None:
        if sock.address is not None and self.bound.get(sock.address) is sock:
            del self.bound[sock.address]

    def _receiver(self, host: str, port: int) -> VirtualSocket | None:
        found = self.bound.get((host, port))
        if found is None:
            family = family_of(host)
            found = self.bound.get((_ANY[family], port))
            if found is None and family == stdlib_socket.AF_INET:
                found = self.bound.get(("::", port))
                if found is not None and not found.dual_stack:
                    found = None
        return found

    # -- datagrams ---------------------------------------------------------------

    def transmit(self, sender: VirtualSocket, data: bytes, address: Address) -> None:
        self.sent += 1
        if self.random.random() < self.loss:
            self.lost += 1
            return
        copies = 1
        if self.random.random() < self.duplication:
            self.duplicated += 1
            copies = 2
        now = trio.current_time()
        source = sender.source_for(address)
        for _ in range(copies):
            due = now + self.latency
            if self.random.random() < self.reordering:
                self.reordered += 1
                due += self.reorder_delay
            receiver = self._receiver(*address)
            if receiver is None or not receiver.accepts_from(source):
                self.unreachable += 1
                if sender.remote is not None:
                    sender.pending_error = errno.ECONNREFUSED
                continue
            if receiver.buffered + len(data) > self.receive_buffer_size:
                self.overflowed += 1
                continue
            self._sequence += 1
            receiver.enqueue(due, self._sequence, data, source, address[0])
            self.delivered += 1


class VirtualSocket(trio.socket.SocketType):
    """The kernel's side of one virtual datagram socket: what
    :class:`~trionet.UDPSocket` and trionet's binding code call."""

    def __init__(self, simulation: Simulation, family: int) -> None:
        super().__init__()
        self._simulation = simulation
        self._family = stdlib_socket.AddressFamily(family)
        # Linux's net.ipv6.bindv6only is 0: an IPv6 socket is dual-stack
        # unless told otherwise (trionet always says).
        self._v6_only = False
        self.address: Address | None = None  # what it is bound to
        self._local_host: str | None = None  # a wildcard's own address, once connected
        self.remote: Address | None = None
        self._queue: list[tuple[float, int, bytes, Address]] = []
        self.buffered = 0
        self.pending_error: int | None = None
        self._reached_at: dict[Address, str] = {}  # wildcard sockets: peer -> our address
        self._waiters = trio.lowlevel.ParkingLot()
        self._closed = False

    @property
    def dual_stack(self) -> bool:
        return self._family == stdlib_socket.AF_INET6 and not self._v6_only

    # -- what the simulation calls ---------------------------------------------

    def source_for(self, destination: Address) -> Address:
        assert self.address is not None
        host, port = self.address
        if self._local_host is not None:
            host = self._local_host
        elif host == _ANY[self._family]:
            # Answer from the address the peer reached us at (the kernel picks
            # the source by route; a peer connected to that address expects it).
            host = self._reached_at.get(destination, _LOOPBACK[family_of(destination[0])])
        return (host, port)

    def accepts_from(self, source: Address) -> bool:
        return self.remote is None or self.remote == source

    def enqueue(self, due: float, sequence: int, data: bytes, source: Address, local: str) -> None:
        assert self.address is not None
        if self.address[0] == _ANY[self._family]:
            self._reached_at[source] = local
        heapq.heappush(self._queue, (due, sequence, data, source))
        self.buffered += len(data)
        self._waiters.unpark_all()

    # -- the socket interface -----------------------------------------------------

    @property
    def family(self) -> stdlib_socket.AddressFamily:
        return self._family

    @property
    def type(self) -> stdlib_socket.SocketKind:
        return stdlib_socket.SOCK_DGRAM

    @property
    def proto(self) -> int:
        return stdlib_socket.IPPROTO_UDP

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> Any:
        if self.address is None:
            return self._wire((_ANY[self._family], 0))
        return self._wire((self._local_host or self.address[0], self.address[1]))

    def getpeername(self) -> Any:
        if self.remote is None:
            raise OSError(errno.ENOTCONN, "the socket is not connected")
        return self._wire(self.remote)

    def _wire(self, address: Address) -> tuple[Any, ...]:
        """An address as the kernel reports it on this socket."""
        if self._family != stdlib_socket.AF_INET6:
            return address
        host = address[0]
        if family_of(host) == stdlib_socket.AF_INET:
            host = f"::ffff:{host}"
        return (host, address[1], 0, 0)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        if (level, optname) == (stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY):
            return int(self._v6_only)
        return 0

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        if optname in _MEMBERSHIP_OPTIONS and level in (
            stdlib_socket.IPPROTO_IP,
            stdlib_socket.IPPROTO_IPV6,
        ):
            _unsupported("multicast")
        if (level, optname) == (stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY):
            if self._family != stdlib_socket.AF_INET6:
                raise OSError(errno.ENOPROTOOPT, "Protocol not available")
            if self.address is not None:
                raise OSError(errno.EINVAL, "Invalid argument")  # as Linux, once bound
            self._v6_only = bool(value)

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the socket was closed")

    def _check_usable(self) -> None:
        self._check_open()
        if self.pending_error is not None:
            code, self.pending_error = self.pending_error, None
            raise ConnectionRefusedError(code, "Connection refused")

    def _parse(self, address: Any) -> Address:
        if not isinstance(address, tuple) or len(address) not in (2, 4):
            raise TypeError(f"an address is a (host, port) tuple, not {address!r}")
        return _literal(str(address[0])), int(address[1])

    def _destination(self, address: Any) -> Address:
        host, port = self._parse(address)
        if not 1 <= port <= 65535:
            raise OSError(errno.EINVAL, f"cannot send to port {port}")
        if family_of(host) != self._family:
            raise OSError(errno.EAFNOSUPPORT, f"{host} is not of this socket's family")
        mapped = ipaddress.ip_address(host)
        if mapped.version == 6 and mapped.ipv4_mapped is not None:
            if not self.dual_stack:
                raise OSError(errno.ENETUNREACH, "Network is unreachable")
            host = str(mapped.ipv4_mapped)
        return host, port

    async def bind(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        if self.address is not None:
            raise OSError(errno.EINVAL, "the socket is already bound")
        host, port = self._parse(address)
        if family_of(host) != self._family:
            raise OSError(errno.EAFNOSUPPORT, f"{host} is not of this socket's family")
        if not 0 <= port <= 65535:
            raise OverflowError("bind(): port must be 0-65535.")
        self.address = self._simulation.bind(self, host, port)

    def _autobind(self) -> None:
        """An unbound socket that sends gets a wildcard address, as with the kernel."""
        if self.address is None:
            self.address = self._simulation.bind(self, _ANY[self._family], 0)

    async def connect(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        self.remote = self._destination(address)
        self._autobind()
        assert self.address is not None
        if self.address[0] == _ANY[self._family]:
            self._local_host = _LOOPBACK[family_of(self.remote[0])]
        # The kernel drops what other addresses sent before the connect.
        kept = [item for item in self._queue if item[3] == self.remote]
        self.buffered = sum(len(item[2]) for item in kept)
        self._queue = kept
        heapq.heapify(self._queue)

    async def sendto(self, *args: Any) -> int:
        data, address = args[0], args[-1]
        await trio.lowlevel.checkpoint()
        self._check_usable()
        payload = bytes(memoryview(data))
        destination = self._destination(address)
        self._autobind()
        self._simulation.transmit(self, payload, destination)
        return len(payload)

    async def send(self, data: Any, flags: int = 0, /) -> int:
        await trio.lowlevel.checkpoint()
        self._check_usable()
        if self.remote is None:
            raise OSError(errno.EDESTADDRREQ, "the socket is not connected")
        payload = bytes(memoryview(data))
        self._simulation.transmit(self, payload, self.remote)
        return len(payload)

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        await trio.lowlevel.checkpoint()
        while True:
            self._check_usable()
            if self._queue and self._queue[0][0] <= trio.current_time():
                _, _, data, source = heapq.heappop(self._queue)
                self.buffered -= len(data)
                return data[:bufsize], self._wire(source)
            due = self._queue[0][0] if self._queue else math.inf
            with trio.move_on_at(due):
                await self._waiters.park()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._simulation.unbind(self)
            self._queue.clear()
            self.buffered = 0
            self._waiters.unpark_all()

    def __repr__(self) -> str:
        where = format_address(self.address) if self.address is not None else "unbound"
        return f"<virtual UDP socket {where}>"
