"""Opening listening sockets for stream servers (TCP and Unix).

Theory of operation
-------------------
trio's ``open_tcp_listeners`` is close to what we need, but with ``port=0`` and
several addresses (``host=None`` gives IPv4 and IPv6) it lets each listener
pick its own port, and its bind error does not say which address was busy in a
form a person reads at a glance. Here every address gets the port the first
one was given, and a failure raises :class:`~trionet.BindError` naming the
address.

Before binding, :func:`open_tcp_listeners` and :func:`open_unix_listener` look
in the process's :class:`~._listener_pool.ListenerPool`: sockets already
listening because someone else (a worker's supervisor, systemd) bound them
for us.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as stdlib_socket
import stat
from collections.abc import Sequence
from typing import Any

import trio

from . import _checks as checks
from ._addresses import format_address as format_address
from ._addresses import host_header as host_header
from ._addresses import url_host as url_host
from ._errors import BindError
from ._listener_pool import (
    PooledListener,
    active_listener_pool,
    describe_socket,
    is_listening,
    unix_name,
)
from ._server import SocketAddress

__all__ = [
    "SocketFile",
    "UnixListener",
    "format_address",
    "host_header",
    "listen",
    "listeners_from_sockets",
    "open_tcp_listeners",
    "open_tcp_sockets",
    "open_unix_listener",
    "open_unix_socket",
    "url_host",
]

logger = logging.getLogger("trionet.listeners")

# listen() silently truncates the backlog to net.core.somaxconn, so asking for
# the most the API takes means "as much as the system allows" (trio does the same).
_MAX_BACKLOG = 0xFFFF


def _bind_error(exc: OSError, what: str) -> BindError:
    if exc.errno == errno.EADDRINUSE:
        message = f"address already in use: {what}"
    else:
        message = f"cannot listen on {what}: {exc.strerror or exc}"
    return BindError(exc.errno or 0, message)


# -- TCP ------------------------------------------------------------------------


async def open_tcp_sockets(
    port: int,
    host: str | None,
    *,
    backlog: int | None,
    reuse_port: bool = False,
    listen: bool = True,
) -> list[stdlib_socket.socket]:
    """The sockets for ``serve_*(handler, port, host)``: the process pool's
    when it has them (listening already), else bound to every address
    ``host`` resolves to, all on one port, and listening unless ``listen`` is
    false (a reservation); with ``SO_REUSEPORT`` if ``reuse_port`` or the
    pool says so. ``backlog`` ``None`` asks for the most allowed.

    Raises:
        BindError: An address could not be bound; nothing stays open.
        ValueError: ``port`` is out of range.
    """
    infos = await _passive_addresses(port, host)
    pool = active_listener_pool()
    reserved: PooledListener | None = None
    if pool is not None:
        reuse_port = reuse_port or pool.reuse_port
        claimed = pool.claim_tcp(host, port, [(info[0], info[4]) for info in infos])
        if claimed and claimed[0].sockets:
            return [sock for entry in claimed for sock in entry.sockets]
        if claimed:
            reserved = claimed[0]
            assert reserved.port is not None
            port = reserved.port
    try:
        bound = await _bind_tcp(infos, port, backlog=backlog, reuse_port=reuse_port, listen=listen)
    except BaseException:
        if reserved is not None:
            reserved.claimed = None  # not taken after all
        raise
    # Handed to other processes: plain sockets (real ones, by this path).
    sockets = [
        stdlib_socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        for sock in bound
    ]
    if reserved is not None:
        reserved.claimed = [sock.getsockname() for sock in sockets]
    return sockets


async def _passive_addresses(port: int, host: str | None) -> list[tuple[Any, ...]]:
    checks.count("port", port, minimum=0, maximum=65535)
    wanted = format_address((host or "*", port))
    try:
        return await trio.socket.getaddrinfo(
            host, port, type=stdlib_socket.SOCK_STREAM, flags=stdlib_socket.AI_PASSIVE
        )
    except stdlib_socket.gaierror as exc:
        raise BindError(errno.EADDRNOTAVAIL, f"cannot listen on {wanted}: {exc}") from None


async def _bind_tcp(
    infos: Sequence[tuple[Any, ...]],
    port: int,
    *,
    backlog: int | None,
    reuse_port: bool,
    listen: bool,
) -> list[trio.socket.SocketType]:
    # Sockets come from trio's socket factory, so a virtual network
    # (trionet.testing.VirtualTCPNetwork) installed in the run gets them.
    seen: set[tuple[int, Any]] = set()
    sockets: list[trio.socket.SocketType] = []
    chosen_port = port
    try:
        for family, type_, proto, _, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = trio.socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
            if family == stdlib_socket.AF_INET6:
                # Dual-stack is two sockets, one per family, as trio does.
                sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
            target = (sockaddr[0], chosen_port, *sockaddr[2:])
            try:
                # A numeric address (from getaddrinfo): bind() does not block.
                await sock.bind(target)
                if listen:
                    sock.listen(_MAX_BACKLOG if backlog is None else backlog)
            except OSError as exc:
                raise _bind_error(exc, format_address(target)) from None
            chosen_port = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def open_tcp_listeners(
    port: int, host: str | None, *, backlog: int | None
) -> tuple[list[trio.SocketListener], list[SocketAddress]]:
    """Listen on every address ``host`` resolves to, all on one port (or on
    the sockets the process's pool holds for that request).

    Returns:
        The listeners and the addresses they are bound to.

    Raises:
        BindError: An address could not be bound; nothing stays open.
        ValueError: ``port`` is out of range.
    """
    if active_listener_pool() is None:
        # Bound through trio's socket factory: virtual under a VirtualTCPNetwork.
        infos = await _passive_addresses(port, host)
        bound = await _bind_tcp(infos, port, backlog=backlog, reuse_port=False, listen=True)
        return [trio.SocketListener(sock) for sock in bound], [s.getsockname() for s in bound]
    sockets = await open_tcp_sockets(port, host, backlog=backlog)
    return [_listener_of(sock) for sock in sockets], [sock.getsockname() for sock in sockets]


def _listener_of(sock: stdlib_socket.socket) -> trio.SocketListener:
    # A socket handed down from another process is inheritable (pass_fds made
    # it so): a program this one runs must not get a copy.
    sock.set_inheritable(False)
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


# -- Unix -----------------------------------------------------------------------


class SocketFile:
    """The file of a Unix socket we bound, removed by :meth:`remove` unless
    another server has replaced it meanwhile (a different inode)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._inode = _inode(path)

    def remove(self) -> None:
        """Remove the file if it is still ours (at most once)."""
        if self._inode is not None and _inode(self.path) == self._inode:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._inode = None


class UnixListener(trio.abc.Listener[trio.SocketStream]):
    """A listener on a Unix socket path that removes its socket file when
    closed, unless another server has replaced it meanwhile, or the socket
    was not bound here (``remove_on_close=False``: handed down by a
    supervisor, systemd or the caller, whose file it is)."""

    def __init__(
        self, listener: trio.SocketListener, path: str, *, remove_on_close: bool = True
    ) -> None:
        self._listener = listener
        self._file = SocketFile(path) if remove_on_close else None

    async def accept(self) -> trio.SocketStream:
        return await self._listener.accept()

    @property
    def socket(self) -> trio.socket.SocketType:
        """The listening socket."""
        return self._listener.socket

    async def aclose(self) -> None:
        if self._file is not None:
            self._file.remove()
        await self._listener.aclose()


def _inode(path: str) -> tuple[int, int] | None:
    if path.startswith("\0"):
        return None  # Linux abstract namespace: no file to clean up
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


async def _remove_stale_socket(path: str) -> None:
    """Remove ``path`` if it is a socket no server answers on.

    Raises:
        BindError: ``path`` is not a socket, or a live server listens on it.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(errno.EEXIST, f"cannot listen on {path}: it exists and is not a socket")
    probe = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: left behind by a server that died
        return
    except FileNotFoundError:
        return
    finally:
        probe.close()
    raise BindError(errno.EADDRINUSE, f"address already in use: {path} (a server answers there)")


async def open_unix_socket(
    path: str | os.PathLike[str], *, backlog: int | None, mode: int | None
) -> tuple[stdlib_socket.socket, bool]:
    """The socket for ``serve_unix(handler, path)``: taken from the process's
    pool when it has it, else bound and listening.

    A stale socket file (nobody listening) is removed first; a live one, or a
    file that is not a socket, is left alone and reported.

    Returns:
        The listening socket, and whether it was bound here (so that its
        file is ours to remove).

    Raises:
        BindError: The path is in use or cannot be bound.
    """
    path = os.fspath(path)
    pool = active_listener_pool()
    claimed = pool.claim_unix(path) if pool is not None else None
    if claimed is not None:
        if mode is not None:
            os.chmod(path, mode)
        return claimed.sockets[0], False
    if not path.startswith("\0"):
        await _remove_stale_socket(path)
    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise _bind_error(exc, path) from None
    try:
        if mode is not None:
            os.chmod(path, mode)
        sock.listen(_MAX_BACKLOG if backlog is None else backlog)
    except BaseException as exc:
        sock.close()
        if not path.startswith("\0"):
            os.unlink(path)  # we created it a moment ago
        if isinstance(exc, OSError):
            raise _bind_error(exc, path) from None
        raise
    return sock, True


async def open_unix_listener(
    path: str | os.PathLike[str], *, backlog: int | None, mode: int | None
) -> UnixListener:
    """Listen on a Unix socket path (see :func:`open_unix_socket`).

    Raises:
        BindError: The path is in use or cannot be bound.
    """
    sock, bound_here = await open_unix_socket(path, backlog=backlog, mode=mode)
    return UnixListener(_listener_of(sock), os.fspath(path), remove_on_close=bound_here)


# -- sockets from elsewhere -------------------------------------------------------


def listeners_from_sockets(
    sockets: Sequence[stdlib_socket.socket],
) -> tuple[list[trio.SocketListener | UnixListener], list[SocketAddress]]:
    """Wrap sockets that are already bound and listening (made by the
    caller, or received from another process) as a server's listeners.

    The listeners own the sockets from then on: closing a listener closes
    its socket. A Unix socket's file is left in place when it closes (it is
    not ours). The sockets are made non-inheritable.

    Args:
        sockets: Listening stream sockets (TCP or Unix).

    Returns:
        The listeners, and the address each socket is bound to.

    Raises:
        ValueError: A socket is not a stream socket, or does not listen, or
            ``sockets`` is empty.
        TypeError: An item is not a ``socket.socket``.
    """
    if not sockets:
        raise ValueError("sockets must hold at least one listening socket")
    for sock in sockets:
        if not isinstance(sock, stdlib_socket.socket):
            raise TypeError(f"sockets must hold socket.socket objects, not {sock!r}")
        if sock.type != stdlib_socket.SOCK_STREAM:
            raise ValueError(f"a server needs stream sockets, not {describe_socket(sock)}")
        if not is_listening(sock):
            raise ValueError(
                f"a server needs listening sockets (call listen() first): {describe_socket(sock)}"
            )
    listeners: list[trio.SocketListener | UnixListener] = []
    addresses: list[SocketAddress] = []
    for sock in sockets:
        if sock.family == stdlib_socket.AF_UNIX:
            path = unix_name(sock)
            listeners.append(UnixListener(_listener_of(sock), path, remove_on_close=False))
            addresses.append(path)
        else:
            listeners.append(_listener_of(sock))
            addresses.append(sock.getsockname())
    return listeners, addresses


async def listen(
    port: int, host: str | None, backlog: int | None, sockets: Sequence[stdlib_socket.socket] | None
) -> tuple[Sequence[trio.abc.Listener[trio.SocketStream]], list[SocketAddress]]:
    """The listeners of a TCP-based server: the caller's ``sockets``
    (:func:`listeners_from_sockets`), or else :func:`open_tcp_listeners`.

    Raises:
        BindError: The address cannot be bound.
        ValueError: A socket does not listen, or ``port`` is out of range.
    """
    if sockets is not None:
        return listeners_from_sockets(sockets)
    return await open_tcp_listeners(port, host, backlog=backlog)
