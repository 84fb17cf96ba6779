"""What :class:`~trionet.metrics.Metrics` keeps of each server, without
prometheus-client: the per-request recorder an HTTP server calls, the
watched servers, and the snapshot (nested dicts of plain numbers) that the
exposition is rendered from.

Everything here is read at scrape time except what no statistics hold: the
HTTP requests (method, status class, duration) and the end of each
WebSocket (its close code, and its message counts once its connection is
gone). Label values are bounded here, before they are stored: a client
choosing methods or close codes cannot grow the number of series.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

import trio

from ..http._server._errors import ProtocolError

if TYPE_CHECKING:
    from .._server import ServerCore
    from ..http._server._connection import HTTPConnection
    from ..http._server._request import Request

__all__ = [
    "STANDARD_METHODS",
    "HTTPRecorder",
    "Snapshot",
    "Source",
    "add_into",
    "close_code_label",
    "method_label",
    "status_class",
]

#: A snapshot: nested dicts whose leaves are numbers (see Metrics.snapshot).
Snapshot = dict[str, Any]

#: The methods of RFC 9110 section 9 and PATCH (RFC 5789); any other is "other".
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

_STATUS_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


def method_label(method: str) -> str:
    """``method`` if it is a standard one, else ``"other"``."""
    return method if method in STANDARD_METHODS else "other"


def status_class(status: int) -> str:
    """``"2xx"`` for 200 to 299, and so on (``"other"`` outside 100-599)."""
    index = status // 100
    return _STATUS_CLASSES[index] if 0 < index < len(_STATUS_CLASSES) else "other"


def close_code_label(code: int | None) -> str:
    """A WebSocket close code as a bounded label: the codes RFC 6455 and the
    IANA registry define (1000-1015) as themselves, the ranges left to
    libraries and applications as ``"3xxx"`` and ``"4xxx"``, anything else
    ``"other"``. ``None`` (the connection ended without a close code) is
    1006, as RFC 6455 section 7.1.5 reports it."""
    if code is None:
        return "1006"
    if 1000 <= code <= 1015:
        return str(code)
    if 3000 <= code <= 3999:
        return "3xxx"
    if 4000 <= code <= 4999:
        return "4xxx"
    return "other"


def add_into(total: Snapshot, more: Snapshot) -> None:
    """Add ``more`` into ``total`` leaf by leaf (what summing two snapshots,
    of two servers of one name or two processes, is)."""
    for key, value in more.items():
        if isinstance(value, dict):
            add_into(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


class _Histogram:
    """One histogram series: per-bucket counts (not cumulative, so that two
    can be added) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last: beyond every bound (+Inf)
        self.total = 0.0

    def snapshot(self, keys: tuple[str, ...]) -> Snapshot:
        return {
            "buckets": dict(zip(keys, self.counts, strict=True)),
            "sum": self.total,
            "count": sum(self.counts),
        }


class _WebSocketLike(Protocol):
    """What is read of a server's WebSocket (a WebSocketConnection)."""

    @property
    def close_code(self) -> int | None: ...

    def statistics(self) -> Any: ...


class HTTPRecorder:
    """The HTTP server's recorder: ``serve`` passes it to each connection,
    which calls :meth:`request_done` after each request and
    :meth:`connection_done` at its end. Only a server with metrics has one."""

    __slots__ = (
        "_bounds",
        "_counted",
        "_durations",
        "_keys",
        "_requests",
        "_ws_closes",
        "_ws_received",
        "_ws_sent",
    )

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._keys = (*(repr(bound) for bound in bounds), "+Inf")
        self._requests: dict[tuple[str, str], int] = {}
        self._durations: dict[str, _Histogram] = {}
        # WebSockets whose connection ended: their counts are in the totals
        # below, and must not be read again from a connection the server core
        # has not let go of yet.
        self._counted: weakref.WeakSet[object] = weakref.WeakSet()
        self._ws_received = 0
        self._ws_sent = 0
        self._ws_closes: dict[str, int] = {}

    def request_done(self, request: Request, conn: HTTPConnection, started: float) -> None:
        """Count ``request`` (its response is over) and time it from
        ``started``, when its head was read. A request that got no response
        at all (its handler was cancelled first) is not counted; an upgrade
        (101) is counted but not timed, since its "response" lasts as long as
        the WebSocket."""
        if not request.responded:
            return
        status = conn.last_status
        method = method_label(request.method)
        key = (method, status_class(status))
        self._requests[key] = self._requests.get(key, 0) + 1
        if status == 101:
            return
        histogram = self._durations.get(method)
        if histogram is None:
            histogram = self._durations[method] = _Histogram(len(self._bounds))
        elapsed = trio.current_time() - started
        histogram.counts[bisect_left(self._bounds, elapsed)] += 1
        histogram.total += elapsed

    def connection_done(self, head_error: BaseException | None, upgraded: object | None) -> None:
        """The connection ended. ``head_error``: what ended it while no
        request was current, a :class:`ProtocolError` being a request head
        the server answered itself (400, 408, 414, 431, 505), counted with
        method ``"other"`` and not timed. ``upgraded``: the WebSocket the
        connection was handed to, whose counts move into the totals."""
        if isinstance(head_error, ProtocolError):
            key = ("other", status_class(head_error.status))
            self._requests[key] = self._requests.get(key, 0) + 1
        if upgraded is not None and upgraded not in self._counted:
            ws = cast("_WebSocketLike", upgraded)
            stats = ws.statistics()
            self._ws_received += stats.messages_received
            self._ws_sent += stats.messages_sent
            label = close_code_label(ws.close_code)
            self._ws_closes[label] = self._ws_closes.get(label, 0) + 1
            self._counted.add(upgraded)

    def snapshot(self, live: Iterable[object]) -> Snapshot:
        """The counts so far; ``live``: the server's open connections, whose
        WebSockets' messages are read now."""
        received = self._ws_received
        sent = self._ws_sent
        for conn in live:
            ws = getattr(conn, "_upgraded", None)
            if ws is not None and ws not in self._counted:
                stats = cast("_WebSocketLike", ws).statistics()
                received += stats.messages_received
                sent += stats.messages_sent
        requests: Snapshot = {}
        for (method, status), count in self._requests.items():
            requests.setdefault(method, {})[status] = count
        return {
            "http_requests_total": requests,
            "http_request_duration_seconds": {
                method: histogram.snapshot(self._keys)
                for method, histogram in self._durations.items()
            },
            "websocket_messages_received_total": received,
            "websocket_messages_sent_total": sent,
            "websocket_closes_total": dict(self._ws_closes),
        }


class _UDPStatisticsSource(Protocol):
    def statistics(self) -> Any: ...


class Source:
    """One server a :class:`~trionet.metrics.Metrics` watches: its core (the
    statistics), and the HTTP recorder or the UDP socket it has."""

    __slots__ = ("core", "http", "udp")

    def __init__(
        self,
        core: ServerCore[Any, Any],
        http: HTTPRecorder | None,
        udp: _UDPStatisticsSource | None,
    ) -> None:
        self.core = core
        self.http = http
        self.udp = udp

    @property
    def name(self) -> str:
        """The server's name: its ``server`` label."""
        return self.core.name

    @property
    def finished(self) -> bool:
        """Whether the server is gone (its counts are final)."""
        return self.core.finished.is_set()

    def snapshot(self) -> Snapshot:
        """The server's counts now; ``connections_open`` only while it runs."""
        core = self.core
        stats = core.statistics()
        values: Snapshot = {
            "connections_total": stats.accepted,
            "connections_dropped_total": stats.dropped,
            "connections_evicted_total": stats.evicted_idle,
            "handshake_failures_total": stats.handshake_failures,
            "handler_errors_total": stats.handler_errors,
            "connection_errors_total": stats.connection_errors,
            "received_bytes_total": stats.bytes_received,
            "sent_bytes_total": stats.bytes_sent,
        }
        if not self.finished:
            values["connections_open"] = stats.active
        if self.http is not None:
            live = [slot.conn for slot in core.slots if slot.conn is not None]
            values.update(self.http.snapshot(live))
        if self.udp is not None:
            udp = self.udp.statistics()
            values.update(
                udp_datagrams_received_total=udp.datagrams_received,
                udp_datagrams_sent_total=udp.datagrams_sent,
                udp_datagrams_dropped_total=udp.dropped,
                udp_datagrams_truncated_total=udp.truncated,
                udp_send_errors_total=udp.send_errors,
            )
        return values
