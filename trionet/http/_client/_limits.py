"""The HTTP client's timeouts and limits, with the reason for each default."""

from __future__ import annotations

from dataclasses import dataclass

from ... import _checks as checks

__all__ = [
    "DEFAULT_CLIENT_MAX_CONNECTIONS",
    "DEFAULT_CONTINUE_TIMEOUT",
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_KEEPALIVE_PER_HOST",
    "DEFAULT_MAX_LINE_SIZE",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_MAX_RESPONSE_HEADER_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_TIMEOUTS",
    "Timeouts",
    "TimeoutsInput",
]

# Connections open at once, over all hosts: httpx's and aiohttp's default.
# Enough for a crawler's parallelism, few enough to stay under a default
# ulimit of 1024 descriptors with room for the rest of a program.
DEFAULT_CLIENT_MAX_CONNECTIONS = 100

# Idle connections kept per host: as many as the pool may open, so that a
# burst of concurrent requests finds its connections again in the next burst
# instead of reconnecting (Node's Agent keeps up to 256 per host). They cost
# a descriptor each, and go after keepalive_expiry.
DEFAULT_MAX_KEEPALIVE_PER_HOST = 100

# Seconds an idle connection is kept: below the 5 s after which Node's server
# (and many others) close an idle keep-alive connection, so the client gives
# a connection up before the server does, rather than racing its close.
DEFAULT_KEEPALIVE_EXPIRY = 4.0

# Redirects followed per request: Chrome and Firefox stop at 20, curl at 50
# with -L; ten is what a legitimate site needs with a wide margin (requests
# allows 30, httpx 20).
DEFAULT_MAX_REDIRECTS = 10

# A response head may take 64 KiB: servers send far larger heads than clients
# (cookies, CSP); curl allows 100 KiB, Node's parser 16 KiB.
DEFAULT_MAX_RESPONSE_HEADER_SIZE = 64 * 1024

# The most a response body read whole (``read()``, ``text()``, ``json()``,
# and the non-streaming methods) may hold, counted after decoding: what a
# program can afford in memory, and the bound on a compressed "bomb". Stream
# a larger download with ``client.stream()``.
DEFAULT_MAX_RESPONSE_SIZE = 64 * 1024 * 1024

# The longest line ``aiter_lines()`` gives, in characters: far beyond a log
# line, an NDJSON record or a server-sent event's field, and a bound on what
# a server sending one endless line makes the client hold.
DEFAULT_MAX_LINE_SIZE = 1024 * 1024

# How long to wait for ``100 Continue`` before sending the body anyway
# (RFC 9110 section 10.1.1 lets a client go on; curl waits one second).
DEFAULT_CONTINUE_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The four timeouts of an HTTP exchange, in seconds; ``None`` waits
    forever.

    Args:
        connect: Opening a connection: name lookup, TCP connect, proxy tunnel
            and TLS handshake together. Default 10 s, a slow mobile link's
            worst case for a TLS handshake.
        read: The longest wait for the next bytes of a response (not the
            whole response). Default 30 s: nginx's ``proxy_read_timeout``
            is 60 s; a server silent for 30 s is rarely coming back.
        write: The longest wait for the server to accept more of the
            request. Default 30 s, as ``read``.
        pool: The longest wait for a connection when ``max_connections``
            (or the per-host limit) are all busy. Default 10 s.

    Raises:
        ValueError: A timeout is 0, negative or NaN.
        TypeError: A timeout is not a number.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    write: float | None = 30.0
    pool: float | None = 10.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            seconds = checks.seconds(f"the {name} timeout", getattr(self, name), none=True)
            object.__setattr__(self, name, seconds)

    @classmethod
    def of(cls, value: TimeoutsInput) -> Timeouts:
        """A :class:`Timeouts` from what ``timeout=`` accepts.

        Args:
            value: A :class:`Timeouts`; a number of seconds for all four;
                or ``None`` for no timeouts at all.

        Returns:
            The timeouts.
        """
        if isinstance(value, Timeouts):
            return value
        if value is None:
            return cls(None, None, None, None)
        return cls(value, value, value, value)


#: What ``timeout=`` accepts: :class:`Timeouts`, seconds for all four, or ``None``.
TimeoutsInput = Timeouts | float | None

DEFAULT_TIMEOUTS = Timeouts()
