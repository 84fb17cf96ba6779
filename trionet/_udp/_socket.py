"""UDP sockets (Node's ``dgram``): async iterators of datagrams.

This module owns :class:`UDPSocket` and what it hands out (:class:`Datagram`,
:class:`UDPStatistics`, :exc:`PortUnreachable`); opening and binding one is
:mod:`trionet._udp._open`'s job.

Theory of operation
-------------------
A :class:`UDPSocket` wraps one trio datagram socket. ``async for dgram in
sock`` reads into a buffer one byte larger than ``max_datagram_size``, so a
datagram larger than the limit is *seen* (it fills the extra byte; the kernel
cut the rest): it is counted in :meth:`UDPSocket.statistics` and skipped,
never delivered cut short as if it were whole. (``recvmsg`` and ``MSG_TRUNC``
say the same, at a cost the echo benchmark notices.) A payload larger
than ``max_datagram_size`` is refused before anything is sent.

A socket bound with ``host=None`` (or ``"::"``) is dual-stack when the
system has IPv6: one IPv6 socket with ``IPV6_V6ONLY`` off. IPv4 peers then show up as
``::ffff:a.b.c.d`` inside the kernel; this module turns those addresses back
into plain IPv4 ``(host, port)`` pairs on the way in, and plain IPv4
destinations into mapped ones on the way out, so callers never see the trick.

The data path calls the stdlib socket under trio's directly, with trio's own
checkpoint discipline (a cancel point before, a schedule point after an
operation that did not have to wait) but without its per-call wrappers, and
without its per-call address lookup: a destination whose host is a numeric
address (always the case when answering a sender) goes straight to
``sendto``; a name still goes through trio, which resolves it without
blocking. That makes an echo loop cheaper than the bare trio loop. A socket
that a custom trio socket factory made (the virtual network of
:mod:`trionet.testing`) has no stdlib socket under it (``raw=None``): it goes
through trio's socket methods, the same calls with the same results.

In connected mode (:meth:`UDPSocket.connect`) the kernel reports an ICMP
"port unreachable" from the peer as ``ECONNREFUSED`` on a later call; here it
surfaces as :exc:`~trionet.PortUnreachable` from that call, and the socket
stays usable (the peer may come up later).
"""

from __future__ import annotations

import errno
import ipaddress
import socket as stdlib_socket
import sys
from dataclasses import dataclass
from typing import Self

import trio

from .._errors import ConnectionClosed
from .._listeners import format_address
from .._server import SocketAddress

__all__ = [
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "Datagram",
    "PortUnreachable",
    "UDPSocket",
    "UDPStatistics",
]

# The largest UDP payload over IPv4: 65535 minus the 8-byte UDP header and the
# 20-byte IP header (RFC 768, RFC 791). Node's dgram has the same ceiling.
DEFAULT_MAX_DATAGRAM_SIZE = 65507


class PortUnreachable(ConnectionClosed):
    """A connected UDP socket's peer answered with ICMP "port unreachable":
    nothing listens there (yet). The socket stays usable."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram received (Node's ``'message'`` with its ``rinfo``).

    Attributes:
        data: The payload, whole.
        address: The sender, ``(host, port)`` for IPv4 (IPv4-mapped IPv6
            addresses are shown as IPv4) or ``(host, port, flowinfo,
            scope_id)`` for IPv6.
    """

    data: bytes
    address: SocketAddress


@dataclass(frozen=True, slots=True)
class UDPStatistics:
    """A snapshot of a UDP socket's counters, from :meth:`UDPSocket.statistics`.

    Attributes:
        datagrams_received: Datagrams delivered to the caller.
        bytes_received: Their payload bytes.
        datagrams_sent: Datagrams handed to the kernel.
        bytes_sent: Their payload bytes.
        truncated: Datagrams that arrived larger than ``max_datagram_size``
            and were dropped rather than delivered cut short.
        dropped: Datagrams dropped by trionet for other reasons (a full
            per-peer queue, for servers).
        send_errors: Sends the kernel refused (unreachable network or port,
            full buffers...).
    """

    datagrams_received: int
    bytes_received: int
    datagrams_sent: int
    bytes_sent: int
    truncated: int
    dropped: int
    send_errors: int


def _plain_address(address: SocketAddress) -> SocketAddress:
    """``('::ffff:1.2.3.4', p, 0, 0)`` → ``('1.2.3.4', p)``."""
    if isinstance(address, tuple) and len(address) == 4 and str(address[0]).startswith("::ffff:"):
        mapped = ipaddress.IPv6Address(address[0]).ipv4_mapped
        if mapped is not None:
            return (str(mapped), address[1])
    return address


class UDPSocket(trio.abc.AsyncResource):
    """A bound UDP socket, read as an async iterator of :class:`Datagram`.

    Get one from :func:`open_udp_socket` (``async with``). Iterating yields
    every datagram that arrives, in order of arrival; the loop ends only when
    the socket is closed.
    """

    def __init__(
        self,
        sock: trio.socket.SocketType,
        *,
        max_datagram_size: int,
        raw: stdlib_socket.socket | None = None,
    ) -> None:
        self._sock = sock
        # The stdlib socket under `sock`, when there is one: the fast path.
        self._raw = raw
        self._numeric: dict[str, int] = {}  # host -> 4, 6 or 0 (a name)
        self._max = max_datagram_size
        self._dual_stack = sock.family == stdlib_socket.AF_INET6 and not sock.getsockopt(
            stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY
        )
        self._port = int(sock.getsockname()[1])
        self._remote: SocketAddress | None = None
        self._receiving = False
        self._closed = False
        self._datagrams_received = 0
        self._bytes_received = 0
        self._datagrams_sent = 0
        self._bytes_sent = 0
        self._truncated = 0
        self._dropped = 0
        self._send_errors = 0

    def __repr__(self) -> str:
        return f"<trionet.UDPSocket {self.local_address!r}{' closed' if self._closed else ''}>"

    # -- receiving -------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Datagram:
        if self._closed:
            raise StopAsyncIteration
        if self._receiving:
            raise trio.BusyResourceError("another task is already iterating over this socket")
        self._receiving = True
        raw = self._raw
        try:
            while True:
                try:
                    if raw is None:
                        data, address = await self._sock.recvfrom(self._max + 1)
                    else:
                        # trio's recvfrom, minus its wrappers: the same
                        # checkpoints, half the cost per datagram.
                        await trio.lowlevel.checkpoint_if_cancelled()
                        waited = False
                        while True:
                            try:
                                data, address = raw.recvfrom(self._max + 1)
                                break
                            except BlockingIOError:
                                waited = True
                                await trio.lowlevel.wait_readable(raw)
                        if not waited:
                            await trio.lowlevel.cancel_shielded_checkpoint()
                except ConnectionRefusedError:
                    raise PortUnreachable(
                        f"{format_address(self._remote or '?')}: port unreachable (ICMP)"
                    ) from None
                except trio.ClosedResourceError:
                    raise StopAsyncIteration from None
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        raise StopAsyncIteration from None
                    raise
                if len(data) > self._max:
                    self._truncated += 1
                    continue
                self._datagrams_received += 1
                self._bytes_received += len(data)
                sender: SocketAddress = address if isinstance(address, tuple) else str(address)
                if self._dual_stack:
                    sender = _plain_address(sender)
                return Datagram(data, sender)
        finally:
            self._receiving = False

    # -- sending ---------------------------------------------------------

    def _classify(self, host: object) -> int:
        """4 or 6 for a numeric IPv4 or IPv6 address, 0 for anything else
        (a name, or a scoped address); remembered, within bounds."""
        numeric = 0
        if isinstance(host, str) and "%" not in host:
            for family, version in ((stdlib_socket.AF_INET, 4), (stdlib_socket.AF_INET6, 6)):
                try:
                    stdlib_socket.inet_pton(family, host)
                except OSError:
                    continue
                numeric = version
                break
        if isinstance(host, str):
            if len(self._numeric) >= 1024:
                self._numeric.clear()
            self._numeric[host] = numeric
        return numeric

    async def _target(self, host: str, port: int) -> tuple[str, int]:
        """Where to send ``(host, port)`` on a dual-stack socket: IPv4 as
        IPv4-mapped IPv6. A name is resolved here, since its IPv4 addresses
        need mapping too."""
        if ":" in host:
            return (host, port)
        try:
            stdlib_socket.inet_pton(stdlib_socket.AF_INET, host)
        except OSError:
            infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_DGRAM)
            family, *_, sockaddr = infos[0]
            host = str(sockaddr[0])
            if family == stdlib_socket.AF_INET6:
                return (host, port)
        return (f"::ffff:{host}", port)

    async def send(
        self, data: bytes | bytearray | memoryview | str, address: SocketAddress | None = None
    ) -> None:
        """Send one datagram (Node's ``socket.send``; the callback is the
        ``await``).

        Args:
            data: The payload; a ``str`` is encoded as UTF-8.
            address: Where to, as ``(host, port)`` (a name is resolved); leave
                it out on a connected socket.

        Raises:
            ValueError: The payload is larger than ``max_datagram_size``, or
                ``address`` is missing on an unconnected socket or given on a
                connected one.
            PortUnreachable: A connected socket's earlier datagram was refused
                by the peer (ICMP port unreachable).
            OSError: The kernel refused the datagram (counted in
                ``send_errors``).
            trio.ClosedResourceError: The socket was closed.
        """
        if type(data) is bytes:
            size = len(data)
        else:
            if isinstance(data, str):
                data = data.encode("utf-8")
            size = memoryview(data).nbytes
        if size > self._max:
            raise ValueError(f"a {size}-byte datagram is larger than max_datagram_size={self._max}")
        if self._closed:
            raise trio.ClosedResourceError("the socket was closed")
        target: SocketAddress | None
        if address is None:
            if self._remote is None:
                raise ValueError("send() needs an address on a socket that is not connected")
            target = None
        elif self._remote is not None:
            raise ValueError("a connected socket sends to its peer only; drop address")
        else:
            target = address
        raw = self._raw
        try:
            if target is not None and type(target) is tuple:
                numeric = self._numeric.get(target[0])
                if numeric is None:
                    numeric = self._classify(target[0])
                if self._dual_stack and len(target) == 2:
                    # (IPv6 4-tuples pass untouched: their scope id matters.)
                    if numeric == 4:
                        target = (f"::ffff:{target[0]}", target[1])
                    elif numeric == 0:
                        target = await self._target(str(target[0]), int(target[1]))
                        numeric = 6
                if not numeric:
                    raw = None  # a name: trio resolves it without blocking
            if raw is None:
                if target is None:
                    await self._sock.send(data)
                else:
                    await self._sock.sendto(data, target)
            else:
                # trio's sendto, minus its wrappers and its per-call address
                # lookup (the address is numeric): the same checkpoints.
                await trio.lowlevel.checkpoint_if_cancelled()
                waited = False
                while True:
                    try:
                        if target is None:
                            raw.send(data)
                        else:
                            raw.sendto(data, target)
                        break
                    except BlockingIOError:
                        waited = True
                        await trio.lowlevel.wait_writable(raw)
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
        except ConnectionRefusedError:
            self._send_errors += 1
            raise PortUnreachable(
                f"{format_address(self._remote or '?')}: port unreachable (ICMP)"
            ) from None
        except OSError:
            self._send_errors += 1
            raise
        self._datagrams_sent += 1
        self._bytes_sent += size

    async def connect(self, host: str, port: int) -> None:
        """Connect to one peer (Node's ``socket.connect``): :meth:`send` then
        needs no address, and only that peer's datagrams are delivered.

        Args:
            host: The peer's name or address.
            port: The peer's port.

        Raises:
            OSError: The address could not be resolved or used.
        """
        if self._dual_stack:
            await self._connect_to(await self._target(host, port))
        else:
            await self._connect_to((host, port))

    async def _connect_to(self, address: SocketAddress) -> None:
        await self._sock.connect(address)
        self._remote = _plain_address(self._sock.getpeername())

    # -- options ---------------------------------------------------------

    def set_broadcast(self, enabled: bool = True) -> None:
        """Allow sending to broadcast addresses (Node's ``setBroadcast``)."""
        self._sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_BROADCAST, enabled)

    def join_multicast(self, group: str, interface: str | None = None) -> None:
        """Join a multicast group (Node's ``addMembership``).

        Args:
            group: The group address, IPv4 or IPv6.
            interface: For IPv4, the local address of the interface to join
                on (default: the system's choice); for IPv6, an interface name.
        """
        self._membership(group, interface, join=True)

    def leave_multicast(self, group: str, interface: str | None = None) -> None:
        """Leave a multicast group (Node's ``dropMembership``).

        Args:
            group: The group address.
            interface: As for :meth:`join_multicast`.
        """
        self._membership(group, interface, join=False)

    def _membership(self, group: str, interface: str | None, *, join: bool) -> None:
        address = ipaddress.ip_address(group)
        if address.version == 4:
            option = stdlib_socket.IP_ADD_MEMBERSHIP if join else stdlib_socket.IP_DROP_MEMBERSHIP
            local = stdlib_socket.inet_aton(interface or "0.0.0.0")
            self._sock.setsockopt(stdlib_socket.IPPROTO_IP, option, address.packed + local)
        else:
            option = stdlib_socket.IPV6_JOIN_GROUP if join else stdlib_socket.IPV6_LEAVE_GROUP
            index = stdlib_socket.if_nametoindex(interface) if interface else 0
            self._sock.setsockopt(
                stdlib_socket.IPPROTO_IPV6,
                option,
                address.packed + index.to_bytes(4, sys.byteorder),
            )

    def set_multicast_ttl(self, ttl: int) -> None:
        """Hops a multicast datagram may take (Node's ``setMulticastTTL``)."""
        if self._sock.family == stdlib_socket.AF_INET6:
            self._sock.setsockopt(
                stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_MULTICAST_HOPS, ttl
            )
        else:
            self._sock.setsockopt(stdlib_socket.IPPROTO_IP, stdlib_socket.IP_MULTICAST_TTL, ttl)

    def set_multicast_interface(self, interface: str) -> None:
        """Send multicast out of this interface (Node's
        ``setMulticastInterface``).

        Args:
            interface: For IPv4, the interface's local address; for IPv6, its
                name.
        """
        if self._sock.family == stdlib_socket.AF_INET6:
            index = stdlib_socket.if_nametoindex(interface)
            self._sock.setsockopt(
                stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_MULTICAST_IF, index
            )
        else:
            self._sock.setsockopt(
                stdlib_socket.IPPROTO_IP,
                stdlib_socket.IP_MULTICAST_IF,
                stdlib_socket.inet_aton(interface),
            )

    def set_multicast_loopback(self, enabled: bool = True) -> None:
        """Whether our own multicast datagrams come back to us (Node's
        ``setMulticastLoopback``)."""
        if self._sock.family == stdlib_socket.AF_INET6:
            self._sock.setsockopt(
                stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_MULTICAST_LOOP, enabled
            )
        else:
            self._sock.setsockopt(
                stdlib_socket.IPPROTO_IP, stdlib_socket.IP_MULTICAST_LOOP, enabled
            )

    # -- details and closing ---------------------------------------------

    @property
    def local_address(self) -> SocketAddress:
        """The address the socket is bound to (Node's ``address()``)."""
        if self._closed:
            return ""
        return _plain_address(self._sock.getsockname())

    @property
    def port(self) -> int:
        """The local port (useful after binding port 0)."""
        return self._port

    @property
    def remote_address(self) -> SocketAddress | None:
        """The connected peer (Node's ``remoteAddress()``), or ``None``."""
        return self._remote

    def _count_dropped(self, count: int = 1) -> None:
        """Count datagrams read from this socket that trionet then dropped."""
        self._dropped += count

    def statistics(self) -> UDPStatistics:
        """Return the socket's counters.

        Returns:
            A :class:`UDPStatistics`.
        """
        return UDPStatistics(
            datagrams_received=self._datagrams_received,
            bytes_received=self._bytes_received,
            datagrams_sent=self._datagrams_sent,
            bytes_sent=self._bytes_sent,
            truncated=self._truncated,
            dropped=self._dropped,
            send_errors=self._send_errors,
        )

    async def aclose(self) -> None:
        """Close the socket (Node's ``close``); a pending ``async for`` ends.
        Calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._sock.close()
        await trio.lowlevel.checkpoint()
