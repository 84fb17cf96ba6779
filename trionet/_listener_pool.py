"""The sockets a process was given instead of binding its own.

Theory of operation
-------------------
Before binding, :func:`~._listeners.open_tcp_listeners`,
:func:`~._listeners.open_unix_listener` and :func:`trionet.serve_udp` look in
the process's :class:`ListenerPool`: sockets that are already listening (or,
for UDP, bound) because someone else bound them for us.

* A worker of :func:`trionet.serve_workers` gets the sockets its supervisor
  bound, keyed by the ``listen`` entry as the user wrote it (``8000`` is
  ``serve_*(handler, 8000)``, ``("127.0.0.1", 0)`` is
  ``serve_*(handler, 0, "127.0.0.1")``, ``("127.0.0.1", 0, "udp")`` is
  ``serve_udp(handler, 0, "127.0.0.1")``, a path is ``serve_unix(handler,
  path)``), so that the program's ``serve_*`` calls read exactly as they do
  in a single process. Several entries may ask for port 0 on one host: each
  has a port of its own, and the ``serve_*`` calls take them in the order of
  ``listen``. With ``reuse_port`` the supervisor only reserves a TCP port,
  and the worker binds its own socket with ``SO_REUSEPORT``. A UDP socket is
  always shared: a reserved socket that nobody reads would still be given
  its share of the datagrams, and lose them. The pool is the worker's, set
  once at start-up in :data:`current_listener_pool`.
* A program started by systemd socket activation (``LISTEN_PID`` is our pid,
  ``LISTEN_FDS=N``) owns descriptors 3..3+N-1 (sd_listen_fds(3)), listening
  stream sockets and bound datagram sockets alike. They are read once per
  process, the variables unset as ``sd_listen_fds(1)`` does, and matched to
  a request by their kind and the address they are bound to (family, host,
  port) or their path. One nobody asks for stays open, noted at debug level.

A pooled socket is handed out once: the server that takes it closes it when it
stops, and a process must not keep a second descriptor of it, or the socket
would go on queueing connections that nobody accepts (hypercorn issue #128).
"""

from __future__ import annotations

import functools
import logging
import os
import socket as stdlib_socket
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _checks as checks
from ._addresses import format_address
from ._server import SocketAddress

__all__ = [
    "ListenEntry",
    "ListenKey",
    "ListenerPool",
    "PooledListener",
    "active_listener_pool",
    "current_listener_pool",
    "describe_socket",
    "is_bound_datagram",
    "is_listening",
    "listen_key",
    "unix_name",
]

logger = logging.getLogger("trionet.listeners")

# sd_listen_fds(3): the variables systemd sets, and the first descriptor it
# passes (always 3).
_SD_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_SD_LISTEN_FDS_START = 3

#: The transports a ``(host, port, transport)`` listen entry may name.
TRANSPORTS = ("tcp", "udp")

#: A ``listen`` entry of :func:`trionet.serve_workers`: a TCP port (every
#: interface, as ``serve_tcp(handler, port)``), a TCP ``(host, port)`` pair,
#: a ``(host, port, transport)`` triple whose transport is ``"tcp"`` or
#: ``"udp"`` (host ``None``: every interface), or the path of a Unix socket.
ListenEntry = int | tuple[str, int] | tuple[str | None, int, Literal["tcp", "udp"]] | str


@dataclass(frozen=True, slots=True)
class ListenKey:
    """A ``listen`` entry in a form to compare with a ``serve_*`` request:
    a ``host`` (``None``: every interface) and ``port``, for TCP or, with
    ``udp``, for UDP; or a Unix socket ``path``."""

    host: str | None = None
    port: int = 0
    path: str | None = None
    udp: bool = False

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        address = format_address((self.host or "*", self.port))
        return f"udp {address}" if self.udp else address


def listen_key(entry: object) -> ListenKey:
    """The key of a ``listen`` entry, checked. ``(host, port, "tcp")`` is
    the same entry as ``(host, port)``, and ``(None, port, "tcp")`` as
    ``port``.

    Raises:
        TypeError: ``entry`` is none of the kinds, or a part of it is of the
            wrong type.
        ValueError: A port is out of range, a path is empty, or a transport
            is neither ``"tcp"`` nor ``"udp"``.
    """
    if isinstance(entry, int) and not isinstance(entry, bool):
        checks.count("listen port", entry, minimum=0, maximum=65535)
        return ListenKey(port=entry)
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        port = checks.count("listen port", entry[1], minimum=0, maximum=65535)
        assert port is not None
        return ListenKey(host=entry[0], port=port)
    if isinstance(entry, tuple) and len(entry) == 3:
        host, port, transport = entry
        if host is not None and not isinstance(host, str):
            raise TypeError(f"a listen host must be a str or None, not {host!r} in {entry!r}")
        checked = checks.count("listen port", port, minimum=0, maximum=65535)
        assert checked is not None
        if not isinstance(transport, str):
            raise TypeError(f"a listen transport must be a str, not {transport!r} in {entry!r}")
        if transport not in TRANSPORTS:
            raise ValueError(
                f"a listen transport must be 'tcp' or 'udp', not {transport!r} in {entry!r}"
            )
        return ListenKey(host=host, port=checked, udp=transport == "udp")
    if isinstance(entry, str | os.PathLike):
        path = os.fspath(entry)
        if not isinstance(path, str) or not path:
            raise ValueError(f"a listen path must be a non-empty str, not {entry!r}")
        return ListenKey(path=path)
    raise TypeError(
        "a listen entry must be a port, a (host, port) tuple, a (host, port, 'tcp' or 'udp')"
        f" tuple or a Unix socket path, not {entry!r}"
    )


def is_bound_datagram(sock: stdlib_socket.socket) -> bool:
    """Whether ``sock`` is an IPv4 or IPv6 datagram socket bound to a port."""
    try:
        return (
            sock.type == stdlib_socket.SOCK_DGRAM
            and sock.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6)
            and sock.getsockname()[1] != 0
        )
    except OSError:
        return False


def is_listening(sock: stdlib_socket.socket) -> bool:
    """Whether ``sock`` is a stream socket that listens (``SO_ACCEPTCONN``)."""
    try:
        return sock.type == stdlib_socket.SOCK_STREAM and bool(
            sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN)
        )
    except OSError:
        return False


def unix_name(sock: stdlib_socket.socket) -> str:
    name = sock.getsockname()
    return os.fsdecode(name) if isinstance(name, bytes) else str(name)


def describe_socket(sock: stdlib_socket.socket) -> str:
    try:
        if sock.family == stdlib_socket.AF_UNIX:
            where = unix_name(sock) or "(unnamed)"
        else:
            where = format_address(sock.getsockname())
    except OSError as exc:
        where = f"(unknown: {exc.strerror})"
    kinds = {stdlib_socket.SOCK_STREAM: "stream", stdlib_socket.SOCK_DGRAM: "datagram"}
    kind = kinds.get(sock.type, f"type {sock.type}")
    return f"{kind} socket {where} (fd {sock.fileno()})"


# -- the pool of sockets bound for us ---------------------------------------


@dataclass(eq=False)
class PooledListener:
    """One entry of a :class:`ListenerPool`.

    Attributes:
        key: The ``listen`` entry it answers, or ``None`` for a socket
            matched by its address only (systemd's).
        sockets: Sockets already listening (a UDP one: bound); empty when
            the worker binds its own (``reuse_port``, TCP only).
        port: With ``reuse_port``, the port to bind (the supervisor holds it).
        name: systemd's name for the descriptor (``LISTEN_FDNAMES``).
        claimed: The addresses of the server that took it, once one did.
    """

    key: ListenKey | None
    sockets: list[stdlib_socket.socket] = field(default_factory=list)
    port: int | None = None
    name: str | None = None
    claimed: list[SocketAddress] | None = None

    def describe(self) -> str:
        """For log messages."""
        if self.sockets:
            said = ", ".join(describe_socket(sock) for sock in self.sockets)
        else:
            said = f"port {self.port} (SO_REUSEPORT)"
        named = f" named {self.name!r}" if self.name else ""
        return f"{said}{named}"


class ListenerPool:
    """The listening sockets a process was given (see the module's theory of
    operation), and whether the ones it binds itself use ``SO_REUSEPORT``."""

    def __init__(self, entries: Iterable[PooledListener] = (), *, reuse_port: bool = False) -> None:
        self.entries = list(entries)
        self.reuse_port = reuse_port

    def unclaimed(self) -> list[PooledListener]:
        """The entries no server has taken yet."""
        return [entry for entry in self.entries if entry.claimed is None]

    def claim_tcp(
        self, host: str | None, port: int, resolved: Sequence[tuple[int, Any]]
    ) -> list[PooledListener]:
        """Take what answers ``serve_*(handler, port, host)``: the entry
        written as that request, or else every socket bound to one of the
        ``resolved`` ``(family, sockaddr)`` pairs on that very port (port 0
        asks for a new port, so it matches no address). Marked claimed with
        their own addresses; a reuse-port entry is marked by the caller once
        bound. Empty when nothing matches."""
        for entry in self.unclaimed():
            if entry.key == ListenKey(host=host, port=port):
                entry.claimed = [sock.getsockname() for sock in entry.sockets]
                return [entry]
        if port == 0:
            return []
        wanted = {(family, sockaddr[0], port) for family, sockaddr in resolved}
        found = []
        for entry in self.unclaimed():
            bound = {
                (sock.family, sock.getsockname()[0], sock.getsockname()[1])
                for sock in entry.sockets
                if sock.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6)
                and is_listening(sock)
            }
            if bound and bound <= wanted:
                entry.claimed = [sock.getsockname() for sock in entry.sockets]
                found.append(entry)
        return found

    def claim_udp(
        self, host: str | None, port: int, resolved: Sequence[tuple[int, Any]]
    ) -> PooledListener | None:
        """Take the socket for ``serve_udp(handler, port, host)``: the entry
        written as that request, or else a bound datagram socket on one of
        the ``resolved`` ``(family, sockaddr)`` pairs on that very port (port
        0 matches no address). Marked claimed with its address; the caller
        may restate it as its server reports it. ``None`` when nothing
        matches."""
        for entry in self.unclaimed():
            if entry.key == ListenKey(host=host, port=port, udp=True):
                entry.claimed = [sock.getsockname() for sock in entry.sockets]
                return entry
        if port == 0:
            return None
        wanted = {(family, sockaddr[0], port) for family, sockaddr in resolved}
        for entry in self.unclaimed():
            if len(entry.sockets) == 1 and is_bound_datagram(sock := entry.sockets[0]):
                name = sock.getsockname()
                if (sock.family, name[0], name[1]) in wanted:
                    entry.claimed = [name]
                    return entry
        return None

    def claim_unix(self, path: str) -> PooledListener | None:
        """Take the socket for ``serve_unix(handler, path)``: the entry written
        as that path, or else a listening socket bound to it."""
        for entry in self.unclaimed():
            if entry.key == ListenKey(path=path) or (
                entry.sockets
                and all(
                    sock.family == stdlib_socket.AF_UNIX
                    and is_listening(sock)
                    and unix_name(sock) == path
                    for sock in entry.sockets
                )
            ):
                entry.claimed = [path]
                return entry
        return None


#: The listener pool of this process's worker, set once at its start-up
#: (before ``trio.run``, so every task sees it). ``None`` elsewhere.
current_listener_pool: ContextVar[ListenerPool | None] = ContextVar(
    "trionet_listener_pool", default=None
)


@functools.cache
def _systemd_pool() -> ListenerPool | None:
    """The sockets systemd passed to this process, read once (the variables
    are unset, so a second reading would find nothing)."""
    pid, count, names = (os.environ.pop(name, None) for name in _SD_VARIABLES)
    if pid is None or count is None:
        return None
    try:
        mine = int(pid) == os.getpid()
        number = int(count)
    except ValueError:
        logger.debug("ignoring malformed LISTEN_PID=%r LISTEN_FDS=%r", pid, count)
        return None
    if not mine or number <= 0:
        return None
    labels = names.split(":") if names else []
    entries = []
    for offset in range(number):
        fd = _SD_LISTEN_FDS_START + offset
        name = labels[offset] if offset < len(labels) else None
        try:
            os.set_inheritable(fd, False)  # as sd_listen_fds sets FD_CLOEXEC
            sock = stdlib_socket.socket(fileno=fd)
        except OSError as exc:
            # Left open: it is ours, but not a socket we can serve on.
            logger.debug("systemd passed fd %d (%r), not a socket: %s", fd, name, exc)
            continue
        entry = PooledListener(None, [sock], name=name)
        logger.debug("systemd passed %s", entry.describe())
        entries.append(entry)
    return ListenerPool(entries)


def active_listener_pool() -> ListenerPool | None:
    """The pool ``serve_*`` consults in this task: a worker's, or else the
    sockets of systemd socket activation, if any."""
    return current_listener_pool.get() or _systemd_pool()
