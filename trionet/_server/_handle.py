"""The server as its user sees it: :class:`Server` and its statistics, the
shared defaults and option checks, and the registry :func:`trionet.run`
shuts servers down through. The engine behind it is :mod:`._core`."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .. import _checks as checks

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SHUTDOWN_GRACE",
    "Engine",
    "HandlerErrors",
    "HandshakeFailed",
    "Server",
    "ServerRegistry",
    "ServerStatistics",
    "SocketAddress",
    "check_server_options",
    "current_registry",
]

# Node's net.Server has no cap at all; every production server has one. 10 000
# keeps a connection flood from exhausting memory and file descriptors (each
# connection holds one) while staying far above what one trio process serves
# well; raise it with the keyword argument when you also raise `ulimit -n`.
DEFAULT_MAX_CONNECTIONS = 10_000

# How long shutdown() waits for handlers to finish by themselves before it
# cancels them. Ten seconds is what Kubernetes-style deployments usually leave
# between SIGTERM and SIGKILL after draining (their default is 30 s in total).
DEFAULT_SHUTDOWN_GRACE = 10.0

#: An address as the socket module reports it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6, a path for Unix sockets.
SocketAddress = tuple[Any, ...] | str

HandlerErrors = Literal["log", "raise"]


class ServerRegistry:
    """The servers started inside one :func:`trionet.run`, so that a signal
    can shut them all down. Every ``serve_*`` registers its server with the
    registry of the context it runs in (tasks inherit it), and one started
    after the shutdown began is shut down at once."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.servers: set[Server] = set()
        self.stopping = False


#: The registry of the trionet.run() this task runs under, if any.
current_registry: ContextVar[ServerRegistry | None] = ContextVar(
    "trionet_server_registry", default=None
)


class HandshakeFailed(Exception):
    """Raised by an opener when a connection fails before its handler starts
    (a TLS handshake that fails or times out). Logged at debug level and
    counted; the handler never sees the connection."""


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """A snapshot of a server's counters, from :meth:`Server.statistics`.

    Attributes:
        active: Connections open right now (handshaking or in a handler).
        accepted: Connections accepted since the server started, dropped ones
            included.
        dropped: Connections closed at once because ``max_connections`` were
            already open and none of them was idle.
        evicted_idle: Idle keep-alive connections closed to make room for a
            new connection at ``max_connections``.
        handler_errors: Handlers that raised an exception (other than
            :class:`~trionet.ConnectionClosed`).
        connection_errors: Handlers ended by a :class:`~trionet.ConnectionClosed`
            (the peer reset or broke the connection).
        handshake_failures: Connections that failed before reaching the
            handler, such as a TLS handshake that failed or timed out.
        bytes_received: Payload bytes received over all connections.
        bytes_sent: Payload bytes sent over all connections.
    """

    active: int
    accepted: int
    dropped: int
    evicted_idle: int
    handler_errors: int
    connection_errors: int
    handshake_failures: int
    bytes_received: int
    bytes_sent: int


class Engine(Protocol):
    """What a :class:`Server` asks of the core that runs it."""

    name: str
    addresses: list[SocketAddress]

    def statistics(self) -> ServerStatistics: ...

    def _begin_shutdown(self) -> None: ...

    async def shutdown(self, grace: float) -> None: ...


class Server:
    """A running server, as returned by ``await nursery.start(serve_..., ...)``.

    The server lives as long as the task that ``nursery.start`` started:
    cancelling that task (or its nursery) is the hard stop; :meth:`shutdown` is
    the graceful one.
    """

    def __init__(self, core: Engine) -> None:
        self._core = core

    def __repr__(self) -> str:
        return f"<trionet.Server {self._core.name} on {self.addresses!r}>"

    @property
    def addresses(self) -> list[SocketAddress]:
        """Every address the server listens on, as the socket reports it (so a
        port given as 0 shows the port the system chose)."""
        return list(self._core.addresses)

    @property
    def port(self) -> int:
        """The port the server listens on (the same on every address).

        Raises:
            ValueError: The server listens on a Unix socket, which has no port.
        """
        for address in self._core.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        raise ValueError(f"{self!r} listens on no IP address, so it has no port")

    def statistics(self) -> ServerStatistics:
        """Return a snapshot of the server's counters.

        Returns:
            A :class:`ServerStatistics`.
        """
        return self._core.statistics()

    async def shutdown(self, grace: float = DEFAULT_SHUTDOWN_GRACE) -> None:
        """Stop the server gracefully, and return when it is gone.

        Stops accepting at once (the listening sockets are closed), asks every
        open connection to finish in its protocol's way (for TCP the handler's
        event loop ends, see :attr:`TCPConnection.shutdown_requested
        <trionet.TCPConnection.shutdown_requested>`), waits up to ``grace``
        seconds for the handlers to return, then cancels the ones still running.
        When it returns, no task and no socket of the server is left and the
        ``serve_*`` call has returned. Calling it again, or after the server
        stopped, just waits for the end.

        A handler may call it (an admin "quit" command): the shutdown does not
        wait for the calling handler, and like every other handler still
        running at the end, the caller is cancelled inside this call, so
        nothing after it in the handler runs.

        Args:
            grace: Seconds to wait for handlers before cancelling them.

        Raises:
            ValueError: ``grace`` is negative.
        """
        await self._core.shutdown(grace)


def check_server_options(*, max_connections: int, handler_errors: str) -> None:
    """Check the options every ``serve_*`` shares; call it before binding.

    Raises:
        TypeError: ``max_connections`` is not an int.
        ValueError: An option is out of range.
    """
    checks.count("max_connections", max_connections)
    checks.one_of("handler_errors", handler_errors, ("log", "raise"))
