"""Opening UDP sockets: :func:`open_udp_socket`, :func:`connect_udp`, and the
binding and option checks behind them and behind :func:`~trionet.serve_udp`.

Theory of operation
-------------------
Binding resolves the local address (``host=None`` is ``"::"``, dual stack,
where the system has IPv6), creates the socket, sets its options and binds
it, translating a failure to :exc:`~trionet.BindError` naming the address.

The socket is created one of two ways. Normally it is a stdlib socket wrapped
by ``trio.socket.from_stdlib_socket``, and the stdlib socket is handed to
:class:`~trionet.UDPSocket` too, for its fast path. When a custom trio socket
factory is installed for the run (``trio.socket.set_custom_socket_factory``,
as :meth:`trionet.testing.VirtualUDPNetwork.install` does), the socket comes
from ``trio.socket.socket`` instead, so that the factory decides what it is,
and :class:`~trionet.UDPSocket` uses trio's socket methods only. Name lookups
go through ``trio.socket.getaddrinfo`` either way, so a custom hostname
resolver is honoured too.
"""

from __future__ import annotations

import errno
import ipaddress
import socket as stdlib_socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .. import _checks as checks
from .._connect import connect_error
from .._errors import BindError
from .._listeners import format_address
from ._socket import DEFAULT_MAX_DATAGRAM_SIZE, UDPSocket

__all__ = [
    "bind_udp",
    "check_max_datagram_size",
    "connect_udp",
    "open_udp_socket",
]


def _family_for(host: str | None) -> int:
    if host is None:
        return stdlib_socket.AF_INET6 if stdlib_socket.has_ipv6 else stdlib_socket.AF_INET
    try:
        return stdlib_socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else 0
    except ValueError:
        return 0  # a name: let getaddrinfo decide


def _new_socket(
    family: int, type_: int, proto: int
) -> tuple[trio.socket.SocketType, stdlib_socket.socket | None]:
    """A trio socket, and the stdlib socket under it when there is one (the
    fast path); with a custom socket factory installed, the factory's socket
    and no stdlib socket."""
    # trio's public API has no getter: swapping it out and back is the way to
    # ask, with no checkpoint in between, so no other task can see the swap.
    factory = trio.socket.set_custom_socket_factory(None)
    if factory is None:
        raw = stdlib_socket.socket(family, type_, proto)
        return trio.socket.from_stdlib_socket(raw), raw
    trio.socket.set_custom_socket_factory(factory)
    return trio.socket.socket(family, type_, proto), None


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
    sock, raw = _new_socket(af, type_, proto)
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
