"""The client's connection pool (Node's ``http.Agent``).

Connections are kept per :data:`~._urls.PoolKey` (scheme, host,
port and proxy). A request takes the most recently used idle connection of
its key (LIFO: the one least likely to have been closed by the server), else
opens one if the limits allow, else evicts an idle connection of another key
to make room, else waits for one, up to the ``pool`` timeout.

Idle connections expire after ``keepalive_expiry`` seconds and are checked
before reuse (:meth:`ClientConnection.dropped`). Nothing runs in the
background: expiry is enforced when the pool is next used, and a connection
held past its expiry is closed then. Every connection is closed when the
client is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ._connection import ClientConnection
from ._errors import PoolTimeout
from ._urls import PoolKey

__all__ = ["ClientStatistics", "Pool", "describe_key"]


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot of a :class:`~trionet.http.Client`'s connections.

    Attributes:
        connections: Connections open now (idle and in use).
        idle_connections: Open connections waiting in the pool for a request.
        connections_opened: Connections opened since the client started.
        connections_reused: Requests sent on a connection that had already
            served one (keep-alive reuse).
        requests: Requests sent, redirects and retries included.
        retries: Requests sent again because a pooled connection turned out
            to be closed.
        waiting: Tasks waiting for a connection (the limits are all busy).
        per_host: Open connections per origin (``"https://host:443"``, or
            ``"proxy http://host:port"`` for plain HTTP through a proxy).
    """

    connections: int
    idle_connections: int
    connections_opened: int
    connections_reused: int
    requests: int
    retries: int
    waiting: int
    per_host: dict[str, int]


def describe_key(key: PoolKey) -> str:
    origin, proxy = key
    if origin is None:
        assert proxy is not None
        return f"proxy {proxy.url}"
    return str(origin)


class Pool:
    """Connections kept for reuse, within the limits (see the module
    docstring)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_connections_per_host: int | None,
        max_keepalive_per_host: int,
        keepalive_expiry: float,
    ) -> None:
        self._max_connections = max_connections
        self._max_per_host = max_connections_per_host
        self._max_keepalive = max_keepalive_per_host
        self._expiry = keepalive_expiry
        self._idle: dict[PoolKey, list[ClientConnection]] = {}
        self._open: dict[PoolKey, int] = {}
        self._total = 0
        self._active: set[ClientConnection] = set()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self.opened = 0
        self.reused = 0
        self.requests = 0
        self.retries = 0

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            connections=self._total,
            idle_connections=sum(len(idle) for idle in self._idle.values()),
            connections_opened=self.opened,
            connections_reused=self.reused,
            requests=self.requests,
            retries=self.retries,
            waiting=self._lot.statistics().tasks_waiting,
            per_host={describe_key(key): count for key, count in self._open.items() if count},
        )

    async def acquire(
        self,
        key: PoolKey,
        opener: Callable[[], Awaitable[ClientConnection]],
        pool_timeout: float | None,
        *,
        fresh: bool = False,
    ) -> ClientConnection:
        """A connection for ``key``: an idle one (unless ``fresh``), or a new
        one from ``opener``.

        Raises:
            PoolTimeout: No connection could be had within ``pool_timeout``.
            trio.ClosedResourceError: The client is closed.
        """
        deadline = trio.current_time() + (
            pool_timeout if pool_timeout is not None else float("inf")
        )
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the client is closed")
            conn = None if fresh else await self._take_idle(key)
            if conn is not None:
                self._active.add(conn)
                return conn
            if self._has_room(key) or await self._evict_one(key, own=fresh):
                return await self._open_new(key, opener)
            with trio.move_on_at(deadline) as scope:
                await self._lot.park()
            if scope.cancelled_caught:
                raise PoolTimeout(
                    f"no connection was free within {pool_timeout:g} s "
                    f"({self._total} open, the limit is {self._max_connections}"
                    + (f", {self._max_per_host} per host)" if self._max_per_host else ")")
                )

    def _has_room(self, key: PoolKey) -> bool:
        if self._total >= self._max_connections:
            return False
        return self._max_per_host is None or self._open.get(key, 0) < self._max_per_host

    async def _open_new(
        self, key: PoolKey, opener: Callable[[], Awaitable[ClientConnection]]
    ) -> ClientConnection:
        self._total += 1
        self._open[key] = self._open.get(key, 0) + 1
        try:
            conn = await opener()
        except BaseException:
            self._forget(key)
            raise
        self.opened += 1
        self._active.add(conn)
        return conn

    async def _take_idle(self, key: PoolKey) -> ClientConnection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if trio.current_time() - conn.idle_since < self._expiry and not conn.dropped():
                return conn
            await self._discard(conn)
        return None

    async def _evict_one(self, key: PoolKey, *, own: bool = False) -> bool:
        """Close the longest-idle connection that stands in the way of a new
        one for ``key``: another key's when the total is at its limit, or,
        when a new connection is wanted (``own``), one of ``key``'s own."""
        at_host_limit = (
            self._max_per_host is not None and self._open.get(key, 0) >= self._max_per_host
        )
        if at_host_limit and not own:
            return False  # only this host's own connections free its slots
        oldest: ClientConnection | None = None
        for other, idle in self._idle.items():
            if at_host_limit and other != key:
                continue
            if (
                (other != key or own)
                and idle
                and (oldest is None or idle[0].idle_since < oldest.idle_since)
            ):
                oldest = idle[0]
        if oldest is None:
            return False
        self._idle[oldest.key].remove(oldest)
        await self._discard(oldest)
        return self._has_room(key)

    async def release(self, conn: ClientConnection, reusable: bool) -> None:
        """Give a connection back after an exchange: kept when ``reusable``
        and there is room among the idle ones, else closed."""
        if conn not in self._active:
            return  # released already (or the client closed it)
        self._active.discard(conn)
        idle = self._idle.setdefault(conn.key, [])
        if reusable and not self._closed and not conn.closed and len(idle) < self._max_keepalive:
            conn.idle_since = trio.current_time()
            idle.append(conn)
            self._lot.unpark_all()
            await trio.lowlevel.checkpoint()
            return
        await self._discard(conn)

    async def _discard(self, conn: ClientConnection) -> None:
        self._forget(conn.key)
        self._active.discard(conn)
        await conn.aclose()

    def _forget(self, key: PoolKey) -> None:
        self._total -= 1
        self._open[key] -= 1
        if not self._open[key]:
            del self._open[key]
            self._idle.pop(key, None)
        self._lot.unpark_all()

    async def aclose(self) -> None:
        """Close every connection, idle or in use (idempotent)."""
        self._closed = True
        conns = [conn for idle in self._idle.values() for conn in idle]
        conns.extend(self._active)
        self._idle.clear()
        with trio.CancelScope(shield=True):
            for conn in conns:
                await self._discard(conn)
