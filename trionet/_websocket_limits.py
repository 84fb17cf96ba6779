"""The WebSocket limits' defaults and their check, apart from
:mod:`trionet.websocket` so that :mod:`trionet.http` can name them without
importing it."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from . import _checks as checks

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_TOTAL_QUEUED_BYTES",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "ConnectionOptions",
    "QueueBudget",
]

# 1 MiB per message, as the issue asks and as Node's `ws` uses 100 MiB and
# websockets 1 MiB: a message is held whole in memory before the application
# sees it, so this bounds what one peer can make a server hold.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024

# Bytes of received messages waiting for the application. Past this the
# connection stops reading the socket (TCP backpressure reaches the peer); one
# message is always admitted, however large, up to max_message_size.
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024

# Bytes of received messages waiting for the application across all the
# WebSockets of one server. max_queued_bytes bounds one connection, but 10 000
# slow readers at 4 MiB each would be 40 GiB: this bounds them together. Past
# it, readers stop reading their sockets (TCP backpressure again) until the
# applications consume; a connection with nothing queued may always take one
# message, so no reader starves. 64 MiB is sixteen connections' worth of full
# queues, small beside the memory a 10 000-connection server needs anyway.
DEFAULT_MAX_TOTAL_QUEUED_BYTES = 64 * 1024 * 1024

# Keepalive: a ping every 20 s, and a peer that has not answered within 20 s
# is gone (websockets' defaults; a NAT or proxy typically drops idle flows
# after 30 s or more).
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0

# Connect, TLS and the upgrade exchange, as one deadline.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


class QueueBudget:
    """Received message bytes queued for the applications of all the
    WebSockets of one server, against ``max_total_queued_bytes``. Readers
    that find it spent wait in ``room`` until a consumer frees some."""

    __slots__ = ("limit", "room", "used", "waits")

    def __init__(self, limit: int) -> None:
        checks.count("max_total_queued_bytes", limit)
        self.limit = limit
        self.used = 0
        self.waits = 0  # times a reader stopped reading because it was spent
        self.room = trio.lowlevel.ParkingLot()

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def release(self, size: int) -> None:
        self.used -= size
        if self.room and self.used < self.limit:
            self.room.unpark_all()


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """A WebSocket connection's limits and behaviour, as the public
    functions take them (each documents them), checked once here: the one
    place ``websocket.serve``, ``websocket.connect`` and
    ``Request.accept_websocket`` turn their keyword arguments into a value."""

    max_message_size: int | None
    max_queued_bytes: int
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    control_events: bool
    # Connect, TLS and the upgrade (a client), or the upgrade request (a
    # server); None for no limit, or where no handshake is left to bound
    # (Request.accept_websocket: the request has arrived).
    handshake_timeout: float | None = None
    # Shared by the connections of one server; None for a lone connection.
    budget: QueueBudget | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        checks.count("max_message_size", self.max_message_size, none=True)
        checks.count("max_queued_bytes", self.max_queued_bytes)
        checks.seconds("ping_interval", self.ping_interval, none=True)
        checks.seconds("ping_timeout", self.ping_timeout, none=True)
        checks.non_negative_seconds("close_timeout", self.close_timeout)
        checks.seconds("handshake_timeout", self.handshake_timeout, none=True)
