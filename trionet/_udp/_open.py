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
resolver is honoured too. A socket bound to be handed to other processes
(:func:`shared_udp_socket`, for a worker supervisor) is always the operating
system's.
"""

from __future__ import annotations

import errno
import ipaddress
import socket as stdlib_socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from .. import _checks as checks
from .._connect import connect_error
from .._errors import BindError
from .._listener_pool import active_listener_pool, describe_socket
from .._listeners import format_address
from ._socket import DEFAULT_MAX_DATAGRAM_SIZE, UDPSocket

__all__ = [
    "bind_udp",
    "check_max_datagram_size",
    "connect_udp",
    "open_udp_socket",
    "server_socket",
    "shared_udp_socket",
]


def _family_for(host: str | None) -> int:
    if host is None:
        return stdlib_socket.AF_INET6 if stdlib_socket.has_ipv6 else stdlib_socket.AF_INET
    try:
        return stdlib_socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else 0
    except ValueError:
        return 0  # a name: let getaddrinfo decide


def _new_socket(
    family: int, type_: int, proto: int, *, real: bool = False
) -> tuple[trio.socket.SocketType, stdlib_socket.socket | None]:
    """A trio socket, and the stdlib socket under it when there is one (the
    fast path); with a custom socket factory installed, the factory's socket
    and no stdlib socket, unless ``real`` asks for an operating system socket
    whatever the factory (one to hand to another process)."""
    # trio's public API has no getter: swapping it out and back is the way to
    # ask, with no checkpoint in between, so no other task can see the swap.
    factory = trio.socket.set_custom_socket_factory(None)
    if factory is None or real:
        trio.socket.set_custom_socket_factory(factory)
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
    sock, raw = await _bound_socket(
        host,
        port,
        family,
        reuse_address=reuse_address,
        reuse_port=reuse_port,
        broadcast=broadcast,
        receive_buffer_size=receive_buffer_size,
        send_buffer_size=send_buffer_size,
    )
    try:
        return UDPSocket(sock, max_datagram_size=max_datagram_size, raw=raw)
    except BaseException:
        sock.close()
        raise


async def _bound_socket(
    host: str | None,
    port: int,
    family: int | None,
    *,
    reuse_address: bool,
    reuse_port: bool,
    broadcast: bool,
    receive_buffer_size: int | None,
    send_buffer_size: int | None,
    real: bool = False,
    label: str = "",
) -> tuple[trio.socket.SocketType, stdlib_socket.socket | None]:
    """Resolve, create, set the options, bind: the trio socket and the stdlib
    socket under it (see :func:`_new_socket`). An error names the address
    after ``label``.

    Raises:
        BindError: The address cannot be resolved, is in use or cannot be
            bound; nothing stays open.
    """
    checks.count("port", port, minimum=0, maximum=65535)
    checks.count("receive_buffer_size", receive_buffer_size, none=True)
    checks.count("send_buffer_size", send_buffer_size, none=True)
    wanted = label + format_address((host or "*", port))
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
    sock, raw = _new_socket(af, type_, proto, real=real)
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
            what = label + format_address(sockaddr)
            if exc.errno == errno.EADDRINUSE:
                raise BindError(exc.errno, f"address already in use: {what}") from None
            raise BindError(exc.errno or 0, f"cannot bind {what}: {exc.strerror}") from None
        return sock, raw
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


async def bind_udp(
    host: str | None, port: int, *, max_datagram_size: int, reuse_port: bool = False
) -> UDPSocket:
    """:func:`open_udp_socket`'s socket with default options (and
    ``SO_REUSEPORT`` if asked), for a caller that closes it itself."""
    return await _bind(
        host,
        port,
        None,
        reuse_address=False,
        reuse_port=reuse_port,
        broadcast=False,
        receive_buffer_size=None,
        send_buffer_size=None,
        max_datagram_size=max_datagram_size,
    )


async def shared_udp_socket(host: str | None, port: int) -> stdlib_socket.socket:
    """The socket of a worker supervisor's ``(host, port, "udp")`` listen
    entry, which it hands to its workers, whose :func:`~trionet.serve_udp`
    calls then read it: one that systemd passed bound there, if any (see
    :mod:`trionet._listener_pool`); else a new one bound as :func:`bind_udp`
    binds it, but a plain stdlib socket, made by the operating system
    whatever trio's socket factory.

    Raises:
        BindError: The address cannot be resolved, is in use or cannot be
            bound; the message says ``udp`` before the address
            (``address already in use: udp 127.0.0.1:41234``), to tell it
            from a TCP entry's.
        ValueError: ``port`` is out of range.
    """
    pool = active_listener_pool()
    if pool is not None and pool.unclaimed():
        entry = pool.claim_udp(host, port, await _passive_addresses(host, port))
        if entry is not None:
            return entry.sockets[0]
    _, raw = await _bound_socket(
        host,
        port,
        None,
        reuse_address=False,
        reuse_port=False,
        broadcast=False,
        receive_buffer_size=None,
        send_buffer_size=None,
        real=True,
        label="udp ",
    )
    assert raw is not None  # real=True
    return raw


async def server_socket(
    host: str | None,
    port: int,
    sockets: Sequence[stdlib_socket.socket] | None,
    *,
    max_datagram_size: int,
) -> UDPSocket:
    """The socket of ``serve_udp(handler, port, host, sockets=sockets)``:
    the caller's one socket; else the one the process's listener pool holds
    for that request (a worker's ``"udp"`` listen entry, a socket systemd
    passed, see :mod:`trionet._listener_pool`); else a new one, bound with
    ``SO_REUSEPORT`` when the pool says so, so that every worker can bind
    the same port.

    Raises:
        BindError: The address cannot be bound.
        ValueError: ``sockets`` does not hold exactly one bound UDP socket,
            or an argument is out of range.
        TypeError: ``sockets`` is not a sequence of ``socket.socket``.
    """
    check_max_datagram_size(max_datagram_size)
    if sockets is not None:
        return _adopt(_the_udp_socket(sockets), max_datagram_size)
    pool = active_listener_pool()
    entry = None
    if pool is not None and pool.unclaimed():
        checks.count("port", port, minimum=0, maximum=65535)
        entry = pool.claim_udp(host, port, await _passive_addresses(host, port))
    if entry is None:
        reuse_port = pool is not None and pool.reuse_port
        return await bind_udp(
            host, port, max_datagram_size=max_datagram_size, reuse_port=reuse_port
        )
    try:
        udp = _adopt(entry.sockets[0], max_datagram_size)
    except BaseException:
        entry.claimed = None  # not taken after all
        raise
    # As the server will report it (IPv4-mapped addresses shown plain), so
    # that a worker's readiness finds this entry among its servers' addresses.
    entry.claimed = [udp.local_address]
    return udp


async def _passive_addresses(host: str | None, port: int) -> list[tuple[int, Any]]:
    """What ``host`` means to a server binding ``port``: ``(family,
    sockaddr)`` pairs (both wildcards for ``None``); none for port 0 or a
    name that does not resolve (binding reports that)."""
    if port == 0:
        return []
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=stdlib_socket.SOCK_DGRAM, flags=stdlib_socket.AI_PASSIVE
        )
    except stdlib_socket.gaierror:
        return []
    return [(info[0], info[4]) for info in infos]


def _the_udp_socket(sockets: object) -> stdlib_socket.socket:
    """The one bound UDP socket in ``sockets``, checked.

    Raises:
        TypeError: ``sockets`` is not a sequence, or its item is not a
            ``socket.socket``.
        ValueError: It holds other than one socket, or the socket is closed,
            not UDP, or not bound.
    """
    if isinstance(sockets, stdlib_socket.socket):
        raise TypeError(f"sockets must be a sequence of one socket ([sock]), not {sockets!r}")
    if isinstance(sockets, str | bytes) or not isinstance(sockets, Sequence):
        raise TypeError(f"sockets must be a sequence of one socket.socket, not {sockets!r}")
    if len(sockets) != 1:
        raise ValueError(
            f"sockets must hold exactly one UDP socket (one serve_udp per socket),"
            f" not {len(sockets)}"
        )
    sock = sockets[0]
    if not isinstance(sock, stdlib_socket.socket):
        raise TypeError(f"sockets must hold a socket.socket, not {sock!r}")
    if sock.fileno() == -1:
        raise ValueError(f"a UDP server needs an open socket, not {sock!r}")
    if sock.type != stdlib_socket.SOCK_DGRAM or sock.family not in (
        stdlib_socket.AF_INET,
        stdlib_socket.AF_INET6,
    ):
        raise ValueError(
            f"a UDP server needs a UDP socket (IPv4 or IPv6 datagrams), not {describe_socket(sock)}"
        )
    if sock.getsockname()[1] == 0:
        raise ValueError(
            f"a UDP server needs a bound socket (call bind() first), not {describe_socket(sock)}"
        )
    return sock


def _adopt(sock: stdlib_socket.socket, max_datagram_size: int) -> UDPSocket:
    """A :class:`UDPSocket` over a socket bound elsewhere; it owns it now."""
    # Handed down by another process, it may be inheritable (pass_fds made it
    # so): a program this one runs must not get a copy.
    sock.set_inheritable(False)
    return UDPSocket(
        trio.socket.from_stdlib_socket(sock), max_datagram_size=max_datagram_size, raw=sock
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
