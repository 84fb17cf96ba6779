"""The simulation under :class:`~trionet.testing.VirtualTCPNetwork`: which
virtual stream socket listens where, and how bytes cross each connection.

Theory of operation
-------------------
A :class:`VirtualStreamSocket` subclasses ``trio.socket.SocketType``, as the
UDP network's socket does, so ``trio.SocketStream``, ``trio.SocketListener``
and trionet's own connect and listen code run on it unchanged.

A connection is two :class:`Pipe` objects, one per direction. A pipe holds
the bytes sent and not yet read, as segments with the time each is due at
the receiver: ``latency`` after it was sent, later when ``bandwidth`` makes
the bytes queue behind earlier ones, plus seeded ``jitter`` (never
reordering: TCP delivers in order). A pipe holds at most ``buffer_size``
bytes, in flight and unread together (the kernel's send and receive buffers
of the two ends): a send to a full pipe waits, which is the backpressure a
peer that stops reading causes. A send is cut into segments of seeded random
sizes up to ``max_segment_size``, so a receiver reads across arbitrary
boundaries, the same ones for the same seed.

There is no background task: a reader waiting for a segment due later sleeps
until that deadline, so pytest-trio's ``autojump_clock`` jumps through
latency. A stalled connection delivers nothing until resumed. A reset marks
both pipes: what is in flight is dropped and both ends' next calls raise
``ECONNRESET``. Closing a socket whose incoming pipe still holds bytes resets
the connection, as Linux does; closing otherwise is a FIN: the peer reads
what was sent, then EOF; a send of the peer's to the closed socket is taken,
and its sends after it fail with ``EPIPE`` (the RST that came back, in
Linux's CLOSE_WAIT) while what is left to read stays readable.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import random
import socket as stdlib_socket
from collections import deque
from typing import Any

import trio

from .._listeners import format_address
from ._plumbing import family_of

__all__ = ["Connection", "Pipe", "StreamSimulation", "VirtualStreamSocket"]

# Where ports for port 0 start (the IANA dynamic range), as on the UDP network.
_FIRST_EPHEMERAL_PORT = 49152

_ANY: dict[int, str] = {stdlib_socket.AF_INET: "0.0.0.0", stdlib_socket.AF_INET6: "::"}
_LOOPBACK: dict[int, str] = {stdlib_socket.AF_INET: "127.0.0.1", stdlib_socket.AF_INET6: "::1"}

_NOT_A_DESCRIPTOR = 2**30

Address = tuple[str, int]


def _literal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.split("%")[0]))
    except ValueError:
        raise OSError(
            errno.EADDRNOTAVAIL, f"{host!r} is not an IP address (the virtual network has no DNS)"
        ) from None


def _reset_error() -> OSError:
    return ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


class StreamSimulation:
    """The network's state: knobs, random generator, addresses, counters.
    The knobs are validated by the public class."""

    def __init__(self, seed: int, buffer_size: int) -> None:
        self.latency = 0.0
        self.jitter = 0.0
        self.bandwidth: float | None = None
        self.buffer_size = buffer_size
        self.max_segment_size: int | None = None
        self.random = random.Random(seed)
        self.bound: dict[Address, VirtualStreamSocket] = {}
        self.connections: list[Connection] = []
        self._next_port = _FIRST_EPHEMERAL_PORT
        self.opened = 0
        self.refused = 0
        self.resets = 0
        self.bytes_carried = 0

    def bind(self, sock: VirtualStreamSocket, host: str, port: int) -> Address:
        if port == 0:
            for _ in range(65536 - _FIRST_EPHEMERAL_PORT):
                port = self._next_port
                self._next_port = port + 1 if port < 65535 else _FIRST_EPHEMERAL_PORT
                if (host, port) not in self.bound:
                    break
            else:
                raise OSError(errno.EADDRINUSE, f"no free port left on {host}")
        elif (host, port) in self.bound:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        self.bound[host, port] = sock
        return (host, port)

    def unbind(self, sock: VirtualStreamSocket) -> None:
        if sock.address is not None and self.bound.get(sock.address) is sock:
            del self.bound[sock.address]

    def listener_for(self, host: str, port: int) -> VirtualStreamSocket | None:
        family = family_of(host)
        for candidate in ((host, port), (_ANY[family], port)):
            found = self.bound.get(candidate)
            if found is not None and found.backlog is not None:
                return found
        if family == stdlib_socket.AF_INET:
            found = self.bound.get(("::", port))
            if found is not None and found.backlog is not None and not found.v6_only:
                return found
        return None

    def segment_sizes(self, size: int) -> list[int]:
        """How a send of ``size`` bytes is cut, by the seeded generator."""
        if self.max_segment_size is None:
            return [size]
        sizes = []
        while size > 0:
            piece = min(size, self.random.randint(1, self.max_segment_size))
            sizes.append(piece)
            size -= piece
        return sizes


class Pipe:
    """One direction of a connection: bytes in flight and unread."""

    def __init__(self, simulation: StreamSimulation) -> None:
        self._simulation = simulation
        self.segments: deque[tuple[float, bytes]] = deque()
        self.buffered = 0
        self.link_free_at = -math.inf  # when the link has sent what it was given
        self.last_due = -math.inf
        self.eof_at: float | None = None  # when the FIN arrives
        self.reset = False
        self.readers = trio.lowlevel.ParkingLot()
        self.writers = trio.lowlevel.ParkingLot()

    def room(self) -> int:
        return max(0, self._simulation.buffer_size - self.buffered)

    def _due(self, size: int) -> float:
        simulation = self._simulation
        now = trio.current_time()
        sent_at = now
        if simulation.bandwidth is not None:
            sent_at = max(now, self.link_free_at) + size / simulation.bandwidth
            self.link_free_at = sent_at
        due = sent_at + simulation.latency
        if simulation.jitter:
            due += simulation.random.uniform(0, simulation.jitter)
        # In order, as TCP delivers.
        self.last_due = max(self.last_due, due)
        return self.last_due

    def put(self, data: bytes) -> None:
        start = 0
        for size in self._simulation.segment_sizes(len(data)):
            self.segments.append((self._due(size), data[start : start + size]))
            start += size
        self.buffered += len(data)
        self._simulation.bytes_carried += len(data)
        self.readers.unpark_all()

    def finish(self) -> None:
        if self.eof_at is None:
            self.eof_at = max(self._due(0), self.last_due)
            self.readers.unpark_all()

    def break_(self) -> None:
        self.reset = True
        self.segments.clear()
        self.buffered = 0
        self.readers.unpark_all()
        self.writers.unpark_all()

    def next_due(self) -> float:
        if self.segments:
            return self.segments[0][0]
        if self.eof_at is not None:
            return self.eof_at
        return math.inf

    def take(self, max_bytes: int) -> bytes:
        """What is due now, up to ``max_bytes`` (never across segments)."""
        due, data = self.segments[0]
        piece = data[:max_bytes]
        if len(piece) < len(data):
            self.segments[0] = (due, data[len(piece) :])
        else:
            self.segments.popleft()
        self.buffered -= len(piece)
        self.writers.unpark_all()
        return piece


class Connection:
    """Both directions of one connection, and its two sockets."""

    def __init__(self, simulation: StreamSimulation, client: Address, server: Address) -> None:
        self.simulation = simulation
        self.client = client
        self.server = server
        self.upstream = Pipe(simulation)  # client -> server
        self.downstream = Pipe(simulation)  # server -> client
        self.stalled = False
        self.open_ends = 2

    def reset(self) -> None:
        if not self.upstream.reset:
            self.simulation.resets += 1
        self.upstream.break_()
        self.downstream.break_()

    def wake(self) -> None:
        for pipe in (self.upstream, self.downstream):
            pipe.readers.unpark_all()
            pipe.writers.unpark_all()

    def end_closed(self) -> None:
        self.open_ends -= 1
        if self.open_ends == 0 and self in self.simulation.connections:
            self.simulation.connections.remove(self)


class VirtualStreamSocket(trio.socket.SocketType):
    """The kernel's side of one virtual TCP socket."""

    def __init__(self, simulation: StreamSimulation, family: int) -> None:
        super().__init__()
        self._simulation = simulation
        self._family = stdlib_socket.AddressFamily(family)
        self.v6_only = False
        self.address: Address | None = None
        self.backlog: int | None = None  # listening when set
        self._pending: deque[VirtualStreamSocket] = deque()
        self._accepters = trio.lowlevel.ParkingLot()
        self.connection: Connection | None = None
        self._incoming: Pipe | None = None
        self._outgoing: Pipe | None = None
        self._shut_write = False
        self._closed = False

    def _attach(self, connection: Connection, *, client: bool) -> None:
        self.connection = connection
        if client:
            self._incoming, self._outgoing = connection.downstream, connection.upstream
        else:
            self._incoming, self._outgoing = connection.upstream, connection.downstream

    # -- identity ---------------------------------------------------------------

    @property
    def family(self) -> stdlib_socket.AddressFamily:
        return self._family

    @property
    def type(self) -> stdlib_socket.SocketKind:
        return stdlib_socket.SOCK_STREAM

    @property
    def proto(self) -> int:
        return stdlib_socket.IPPROTO_TCP

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return self._shut_write

    def fileno(self) -> int:
        # trio's SocketStream takes -1 for "closed"; trionet's server core
        # takes a listener's -1 for "no descriptor to accept on". An open
        # connection answers a number above any real descriptor (Linux's
        # nr_open is at most 2**20), so nothing can mistake it for a file.
        if self._closed or self.backlog is not None:
            return -1
        return _NOT_A_DESCRIPTOR

    def _wire(self, address: Address) -> tuple[Any, ...]:
        if self._family == stdlib_socket.AF_INET6:
            host = address[0]
            if family_of(host) == stdlib_socket.AF_INET:
                host = f"::ffff:{host}"
            return (host, address[1], 0, 0)
        return address

    def getsockname(self) -> Any:
        if self.connection is not None:
            mine = self.connection.client if self._outgoing is self.connection.upstream else None
            return self._wire(mine or self.connection.server)
        if self.address is None:
            return self._wire((_ANY[self._family], 0))
        return self._wire(self.address)

    def getpeername(self) -> Any:
        if self.connection is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        client = self._outgoing is self.connection.upstream
        return self._wire(self.connection.server if client else self.connection.client)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        if (level, optname) == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN):
            return int(self.backlog is not None)
        if (level, optname) == (stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY):
            return int(self.v6_only)
        if (level, optname) == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_TYPE):
            return int(stdlib_socket.SOCK_STREAM)
        return 0

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        # Options trionet and trio set (TCP_NODELAY, SO_KEEPALIVE and its
        # timers, SO_REUSEADDR, SO_REUSEPORT, TCP_NOTSENT_LOWAT) are accepted
        # and change nothing: the network has no Nagle and no idle probes.
        if (level, optname) == (stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY):
            if self._family != stdlib_socket.AF_INET6:
                raise OSError(errno.ENOPROTOOPT, "Protocol not available")
            self.v6_only = bool(value)

    def set_inheritable(self, inheritable: bool) -> None:
        pass

    def get_inheritable(self) -> bool:
        return False

    # -- setting up ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "Bad file descriptor")

    def _parse(self, address: Any) -> Address:
        if not isinstance(address, tuple) or len(address) not in (2, 4):
            raise TypeError(f"an address is a (host, port) tuple, not {address!r}")
        host = _literal(str(address[0]))
        mapped = ipaddress.ip_address(host)
        if mapped.version == 6 and mapped.ipv4_mapped is not None:
            host = str(mapped.ipv4_mapped)
        elif family_of(host) != self._family:
            raise OSError(errno.EAFNOSUPPORT, f"{host} is not of this socket's family")
        return host, int(address[1])

    async def bind(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        if self.address is not None:
            raise OSError(errno.EINVAL, "the socket is already bound")
        host, port = self._parse(address)
        if not 0 <= port <= 65535:
            raise OverflowError("bind(): port must be 0-65535.")
        self.address = self._simulation.bind(self, host, port)

    def listen(self, backlog: int = min(stdlib_socket.SOMAXCONN, 128)) -> None:
        self._check_open()
        if self.address is None:
            self.address = self._simulation.bind(self, _ANY[self._family], 0)
        self.backlog = max(0, backlog)

    async def connect(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        if self.connection is not None:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        simulation = self._simulation
        remote = self._parse(address)
        # The SYN travels to the peer...
        await trio.sleep(simulation.latency)
        listener = simulation.listener_for(*remote)
        if listener is None:
            simulation.refused += 1
            await trio.sleep(simulation.latency)  # ...and the RST travels back.
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        if self.address is None or self.address[0] == _ANY[self._family]:
            if self.address is not None:
                simulation.unbind(self)
            self.address = simulation.bind(self, _LOOPBACK[family_of(remote[0])], 0)
        # Linux queues backlog + 1 connections; one more SYN waits (it is
        # retransmitted until there is room).
        while len(listener._pending) > listener.backlog_or_zero():
            await listener._accepters.park()
            if listener._closed:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        connection = Connection(simulation, self.address, remote)
        server = VirtualStreamSocket(simulation, listener.family)
        server._attach(connection, client=False)
        self._attach(connection, client=True)
        simulation.connections.append(connection)
        simulation.opened += 1
        listener._pending.append(server)
        listener._accepters.unpark_all()
        await trio.sleep(simulation.latency)  # the SYN-ACK

    def backlog_or_zero(self) -> int:
        return self.backlog or 0

    async def accept(self) -> tuple[VirtualStreamSocket, Any]:
        await trio.lowlevel.checkpoint()
        while True:
            self._check_open()
            if self.backlog is None:
                raise OSError(errno.EINVAL, "the socket is not listening")
            if self._pending:
                server = self._pending.popleft()
                self._accepters.unpark_all()
                return server, server.getpeername()
            await self._accepters.park()

    # -- data -------------------------------------------------------------------

    def _pipes(self) -> tuple[Pipe, Pipe]:
        self._check_open()
        if self._incoming is None or self._outgoing is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self._incoming, self._outgoing

    async def send(self, data: Any, flags: int = 0, /) -> int:
        await trio.lowlevel.checkpoint()
        while True:
            _, outgoing = self._pipes()
            if outgoing.reset:
                if self.connection is not None and self.connection.open_ends < 2:
                    raise BrokenPipeError(errno.EPIPE, "Broken pipe")
                raise _reset_error()
            if self._shut_write:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            room = outgoing.room()
            if room:
                break
            await outgoing.writers.park()
        payload = bytes(memoryview(data)[:room])
        outgoing.put(payload)
        assert self.connection is not None
        if self.connection.open_ends < 2:
            # The peer is gone: its kernel answers RST. What it sent before its
            # FIN stays readable here, as in Linux's CLOSE_WAIT; sends fail.
            self._simulation.resets += 1
            outgoing.break_()
        return len(payload)

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()
        while True:
            _, outgoing = self._pipes()
            if outgoing.reset or outgoing.room():
                return
            await outgoing.writers.park()

    def _ready(self, incoming: Pipe) -> bool:
        assert self.connection is not None
        if incoming.reset:
            return True
        return not self.connection.stalled and incoming.next_due() <= trio.current_time()

    def is_readable(self) -> bool:
        if self._closed:
            return True
        incoming, _ = self._pipes()
        return self._ready(incoming)

    async def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        await trio.lowlevel.checkpoint()
        while True:
            incoming, _ = self._pipes()
            assert self.connection is not None
            if incoming.reset:
                raise _reset_error()
            if self._ready(incoming):
                return incoming.take(bufsize) if incoming.segments else b""
            due = math.inf if self.connection.stalled else incoming.next_due()
            with trio.move_on_at(due):
                await incoming.readers.park()

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> int:
        view = memoryview(buffer)
        data = await self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def shutdown(self, how: int) -> None:
        _, outgoing = self._pipes()
        if how in (stdlib_socket.SHUT_WR, stdlib_socket.SHUT_RDWR) and not self._shut_write:
            self._shut_write = True
            if not outgoing.reset:
                outgoing.finish()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._simulation.unbind(self)
        for pending in self._pending:
            # Connections never accepted are reset, as when Linux closes a listener.
            if pending.connection is not None:
                pending.connection.reset()
            pending.close()
        self._pending.clear()
        self._accepters.unpark_all()
        connection = self.connection
        if connection is not None and self._incoming is not None and self._outgoing is not None:
            if self._incoming.buffered and not self._incoming.reset:
                connection.reset()  # unread data: Linux answers with RST
            elif not self._shut_write and not self._outgoing.reset:
                self._outgoing.finish()
            connection.end_closed()
            connection.wake()

    def __repr__(self) -> str:
        where = format_address(self.address) if self.address is not None else "unbound"
        return f"<virtual TCP socket {where}>"
