"""UDP sockets (Node's ``dgram``): async iterators of datagrams.

Theory of operation
-------------------
A :class:`UDPSocket` wraps one trio datagram socket. ``async for dgram in
sock`` reads into a buffer one byte larger than ``max_datagram_size``, so a
datagram larger than the limit is *seen* (it fills the extra byte; the kernel
cut the rest): it is counted in :meth:`UDPSocket.statistics` and skipped,
never delivered cut short as if it were whole. (``recvmsg`` and ``MSG_TRUNC``
say the same, at a cost the echo benchmark notices.) A payload larger
than ``max_datagram_size`` is refused before anything is sent.

A socket bound with ``host=None`` (or ``"::"``) is dual-stack when the system has IPv6: one
IPv6 socket with ``IPV6_V6ONLY`` off. IPv4 peers then show up as
``::ffff:a.b.c.d`` inside the kernel; this module turns those addresses back
into plain IPv4 ``(host, port)`` pairs on the way in, and plain IPv4
destinations into mapped ones on the way out, so callers never see the trick.

The data path calls the stdlib socket under trio's directly, with trio's own
checkpoint discipline (a cancel point before, a schedule point after an
operation that did not have to wait) but without its per-call wrappers, and
without its per-call address lookup: a destination whose host is a numeric
address (always the case when answering a sender) goes straight to
``sendto``; a name still goes through trio, which resolves it without
blocking. That makes an echo loop cheaper than the bare trio loop.

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Self

import trio

from . import _checks as checks
from ._errors import BindError, ConnectionClosed, connect_error
from ._listeners import format_address
from ._server import SocketAddress

__all__ = [
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "Datagram",
    "PortUnreachable",
    "UDPSocket",
    "UDPStatistics",
    "connect_udp",
    "open_udp_socket",
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


def _family_for(host: str | None) -> int:
    if host is None:
        return stdlib_socket.AF_INET6 if stdlib_socket.has_ipv6 else stdlib_socket.AF_INET
    try:
        return stdlib_socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else 0
    except ValueError:
        return 0  # a name: let getaddrinfo decide


async def _bind(
    host: str | None,
    port: int,
    family: int | None,
    *,
    reuse_address: bool,
    reuse_port: bool,
    broadcast: bool,
    receive_buffer_size: int | None,
    send_buffer_size: int | None,
    max_datagram_size: int,
) -> UDPSocket:
    check_max_datagram_size(max_datagram_size)
    checks.count("port", port, minimum=0, maximum=65535)
    checks.count("receive_buffer_size", receive_buffer_size, none=True)
    checks.count("send_buffer_size", send_buffer_size, none=True)
    wanted = format_address((host or "*", port))
    chosen = family if family is not None else _family_for(host)
    try:
        infos = await trio.socket.getaddrinfo(
            host if host is not None else ("::" if chosen == stdlib_socket.AF_INET6 else None),
            port,
            family=chosen,
            type=stdlib_socket.SOCK_DGRAM,
            flags=stdlib_socket.AI_PASSIVE,
        )
    except stdlib_socket.gaierror as exc:
        raise BindError(errno.EADDRNOTAVAIL, f"cannot bind {wanted}: {exc}") from None
    af, type_, proto, _, sockaddr = infos[0]
    raw = stdlib_socket.socket(af, type_, proto)
    sock = trio.socket.from_stdlib_socket(raw)
    try:
        if af == stdlib_socket.AF_INET6:
            # Every address ("::", or host=None): one socket for both families
            # (dual stack), as Node and Linux do; a given IPv6 address: IPv6 only.
            v6_only = host not in (None, "::")
            sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, v6_only)
        if reuse_address:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
        if broadcast:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_BROADCAST, 1)
        if receive_buffer_size is not None:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, receive_buffer_size)
        if send_buffer_size is not None:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, send_buffer_size)
        try:
            await sock.bind(sockaddr)
        except OSError as exc:
            what = format_address(sockaddr)
            if exc.errno == errno.EADDRINUSE:
                raise BindError(exc.errno, f"address already in use: {what}") from None
            raise BindError(exc.errno or 0, f"cannot bind {what}: {exc.strerror}") from None
        return UDPSocket(sock, max_datagram_size=max_datagram_size, raw=raw)
    except BaseException:
        sock.close()
        raise


def check_max_datagram_size(max_datagram_size: int) -> None:
    checks.count("max_datagram_size", max_datagram_size, maximum=65535)


@asynccontextmanager
async def open_udp_socket(
    host: str | None = None,
    port: int = 0,
    *,
    family: int | None = None,
    reuse_address: bool = False,
    reuse_port: bool = False,
    broadcast: bool = False,
    max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
    receive_buffer_size: int | None = None,
    send_buffer_size: int | None = None,
) -> AsyncIterator[UDPSocket]:
    """Open a UDP socket bound to ``host``:``port`` (Node's
    ``dgram.createSocket`` + ``bind``): ``async with open_udp_socket(port=41234)
    as sock:``. The socket is closed when the block ends.

    Args:
        host: The local address; ``None`` (or ``"::"``) binds every address,
            dual-stack (IPv4 and IPv6 on one socket) where the system has IPv6.
        port: The local port; 0 lets the system pick (read
            :attr:`UDPSocket.port`).
        family: ``socket.AF_INET`` or ``socket.AF_INET6`` to force one
            (Node's ``'udp4'`` / ``'udp6'``); by default from ``host``.
        reuse_address: Set ``SO_REUSEADDR`` (Node's ``reuseAddr``), for
            several multicast listeners on one port.
        reuse_port: Set ``SO_REUSEPORT``: several sockets share the port and
            the kernel spreads datagrams among them.
        broadcast: Allow sending to broadcast addresses.
        max_datagram_size: The largest datagram sent or received (default
            65507, the IPv4 maximum); larger ones are refused when sending and
            counted as truncated, not delivered, when received.
        receive_buffer_size: ``SO_RCVBUF`` in bytes; ``None`` keeps the system's.
        send_buffer_size: ``SO_SNDBUF`` in bytes; ``None`` keeps the system's.

    Returns:
        An async context manager giving the :class:`UDPSocket`.

    Raises:
        BindError: The address is in use or cannot be bound; the message names
            it.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
    """
    udp = await _bind(
        host,
        port,
        family,
        reuse_address=reuse_address,
        reuse_port=reuse_port,
        broadcast=broadcast,
        receive_buffer_size=receive_buffer_size,
        send_buffer_size=send_buffer_size,
        max_datagram_size=max_datagram_size,
    )
    async with udp:
        yield udp


async def bind_udp(host: str | None, port: int, *, max_datagram_size: int) -> UDPSocket:
    """:func:`open_udp_socket`'s socket with default options, for a caller
    that closes it itself."""
    return await _bind(
        host,
        port,
        None,
        reuse_address=False,
        reuse_port=False,
        broadcast=False,
        receive_buffer_size=None,
        send_buffer_size=None,
        max_datagram_size=max_datagram_size,
    )


async def connect_udp(
    host: str,
    port: int,
    *,
    local_host: str | None = None,
    local_port: int = 0,
    max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
    receive_buffer_size: int | None = None,
    send_buffer_size: int | None = None,
) -> UDPSocket:
    """Open a UDP socket connected to ``host``:``port`` (Node's
    ``createSocket`` + ``connect``): ``async with await connect_udp(host,
    port) as sock:``. :meth:`UDPSocket.send` then needs no address, only that
    peer's datagrams are delivered, and an ICMP "port unreachable" from the
    peer surfaces as :exc:`PortUnreachable` from a later call.

    Args:
        host: The peer's name or address.
        port: The peer's port.
        local_host: The local address to bind; ``None`` lets the system choose.
        local_port: The local port; 0 lets the system pick.
        max_datagram_size: As for :func:`open_udp_socket`.
        receive_buffer_size: As for :func:`open_udp_socket`.
        send_buffer_size: As for :func:`open_udp_socket`.

    Returns:
        The connected :class:`UDPSocket`; close it (``async with``).

    Raises:
        trionet.ConnectError: The name could not be resolved or the address used.
        BindError: The local address is in use or cannot be bound.
        ValueError: An argument is out of range.
        TypeError: An argument is of the wrong kind.
    """
    check_max_datagram_size(max_datagram_size)
    checks.count("port", port, minimum=0, maximum=65535)
    what = format_address((host, port))
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_DGRAM)
    except OSError as exc:
        raise connect_error(exc, what) from None
    family: int = infos[0][0]
    address = infos[0][4]
    if local_host is not None:
        family = _family_for(local_host) or family
    udp = await _bind(
        local_host,
        local_port,
        family,
        reuse_address=False,
        reuse_port=False,
        broadcast=False,
        receive_buffer_size=receive_buffer_size,
        send_buffer_size=send_buffer_size,
        max_datagram_size=max_datagram_size,
    )
    try:
        if udp._dual_stack:
            address = await udp._target(str(address[0]), int(address[1]))
        await udp._connect_to(address)
    except OSError as exc:
        await udp.aclose()
        raise connect_error(exc, what) from None
    except BaseException:
        await trio.aclose_forcefully(udp)
        raise
    return udp
