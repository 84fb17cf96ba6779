"""Opening listening sockets for stream servers (TCP and Unix).

trio's ``open_tcp_listeners`` is close to what we need, but with ``port=0`` and
several addresses (``host=None`` gives IPv4 and IPv6) it lets each listener
pick its own port, and its bind error does not say which address was busy in a
form a person reads at a glance. Here every address gets the port the first
one was given, and a failure raises :class:`~trionet.BindError` naming the
address.
"""

from __future__ import annotations

import errno
import os
import socket as stdlib_socket
import stat
from typing import Any

import trio

from . import _checks as checks
from ._errors import BindError
from ._server import SocketAddress

__all__ = ["UnixListener", "format_address", "open_tcp_listeners", "open_unix_listener"]

# listen() silently truncates the backlog to net.core.somaxconn, so asking for
# the most the API takes means "as much as the system allows" (trio does the same).
_MAX_BACKLOG = 0xFFFF


def format_address(address: SocketAddress) -> str:
    """``127.0.0.1:80``, ``[::1]:80`` or a Unix path, for messages (and the
    authority of a URL)."""
    if isinstance(address, str):
        return address
    return f"{url_host(str(address[0]))}:{address[1]}"


def url_host(host: str) -> str:
    """A host as a URL writes it: an IPv6 address in brackets (RFC 3986
    section 3.2.2)."""
    return f"[{host}]" if ":" in host else host


def host_header(host: str, port: int, default_port: int) -> str:
    """The ``Host`` field (RFC 9110 section 7.2): the port only when it is
    not the scheme's default."""
    return url_host(host) if port == default_port else format_address((host, port))


def _bind_error(exc: OSError, what: str) -> BindError:
    if exc.errno == errno.EADDRINUSE:
        message = f"address already in use: {what}"
    else:
        message = f"cannot listen on {what}: {exc.strerror or exc}"
    return BindError(exc.errno or 0, message)


async def open_tcp_listeners(
    port: int, host: str | None, *, backlog: int | None
) -> tuple[list[trio.SocketListener], list[SocketAddress]]:
    """Bind and listen on every address ``host`` resolves to, all on one port.

    Returns:
        The listeners and the addresses they are bound to.

    Raises:
        BindError: An address could not be bound; nothing stays open.
        ValueError: ``port`` is out of range.
    """
    checks.count("port", port, minimum=0, maximum=65535)
    wanted = format_address((host or "*", port))
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=stdlib_socket.SOCK_STREAM, flags=stdlib_socket.AI_PASSIVE
        )
    except stdlib_socket.gaierror as exc:
        raise BindError(errno.EADDRNOTAVAIL, f"cannot listen on {wanted}: {exc}") from None
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
            if family == stdlib_socket.AF_INET6:
                # Dual-stack is two sockets, one per family, as trio does.
                sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
            target = (sockaddr[0], chosen_port, *sockaddr[2:])
            try:
                await sock.bind(target)
                sock.listen(_MAX_BACKLOG if backlog is None else backlog)
            except OSError as exc:
                raise _bind_error(exc, format_address(target)) from None
            chosen_port = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return [trio.SocketListener(sock) for sock in sockets], [sock.getsockname() for sock in sockets]


class UnixListener(trio.abc.Listener[trio.SocketStream]):
    """A listener on a Unix socket path that removes its socket file when
    closed, unless another server has replaced it meanwhile."""

    def __init__(self, listener: trio.SocketListener, path: str) -> None:
        self._listener = listener
        self._path = path
        self._inode = _inode(path)

    async def accept(self) -> trio.SocketStream:
        return await self._listener.accept()

    @property
    def socket(self) -> trio.socket.SocketType:
        """The listening socket."""
        return self._listener.socket

    async def aclose(self) -> None:
        if self._inode is not None and _inode(self._path) == self._inode:
            self._inode = None
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
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


async def open_unix_listener(
    path: str | os.PathLike[str], *, backlog: int | None, mode: int | None
) -> UnixListener:
    """Bind and listen on a Unix socket path.

    A stale socket file (nobody listening) is removed first; a live one, or a
    file that is not a socket, is left alone and reported.

    Raises:
        BindError: The path is in use or cannot be bound.
    """
    path = os.fspath(path)
    if not path.startswith("\0"):
        await _remove_stale_socket(path)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await sock.bind(path)
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
    return UnixListener(trio.SocketListener(sock), path)
