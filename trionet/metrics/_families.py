"""A snapshot (:mod:`._record`) rendered as prometheus-client metric
families: the one module of :mod:`trionet.metrics` that imports
prometheus-client at import time (the others import it only through this
one, once a :class:`~trionet.metrics.Metrics` is made).

Every family is always rendered, with or without samples, so that the
registry knows every name at registration (and refuses a second collector
that would repeat one) and a dashboard finds each metric before its first
event.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ._record import Snapshot

__all__ = ["render"]

# (snapshot key, help) of the counters every server has, from its statistics.
_SERVER_COUNTERS = (
    ("connections_total", "Connections accepted (UDP: sessions started), dropped ones included."),
    ("connections_dropped_total", "Connections closed at once at max_connections."),
    ("connections_evicted_total", "Idle connections closed to make room at max_connections."),
    ("handshake_failures_total", "Connections that failed before their handler (TLS, PROXY)."),
    ("handler_errors_total", "Handlers that raised an exception."),
    ("connection_errors_total", "Handlers ended by the peer breaking the connection."),
    ("received_bytes_total", "Bytes received over all connections."),
    ("sent_bytes_total", "Bytes sent over all connections."),
)

# (snapshot key, help) of the counters of HTTP servers' WebSockets and of UDP servers.
_PLAIN_COUNTERS = (
    ("websocket_messages_received_total", "Whole WebSocket messages received."),
    ("websocket_messages_sent_total", "Whole WebSocket messages sent."),
    ("udp_datagrams_received_total", "UDP datagrams received."),
    ("udp_datagrams_sent_total", "UDP datagrams sent."),
    ("udp_datagrams_dropped_total", "UDP datagrams dropped (a full queue, an ended session)."),
    ("udp_datagrams_truncated_total", "UDP datagrams dropped for exceeding max_datagram_size."),
    ("udp_send_errors_total", "UDP sends the kernel refused."),
)


def _sorted_buckets(buckets: dict[str, float]) -> Iterator[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, by bound (``+Inf`` last)."""
    running = 0.0
    for bound in sorted(buckets, key=float):
        running += buckets[bound]
        yield bound, running


def render(namespace: str, snapshot: Snapshot) -> list[Metric]:
    """The metric families of ``snapshot`` (see ``Metrics.snapshot``), each
    name prefixed with ``namespace``."""
    prefix = f"{namespace}_"
    server = ["server"]
    open_now = GaugeMetricFamily(
        prefix + "connections_open", "Connections open now (UDP: sessions).", labels=server
    )
    counters = {
        key: CounterMetricFamily(prefix + key, text, labels=server)
        for key, text in _SERVER_COUNTERS + _PLAIN_COUNTERS
    }
    requests = CounterMetricFamily(
        prefix + "http_requests_total",
        "HTTP requests answered, by method and status class.",
        labels=["server", "method", "status"],
    )
    durations = HistogramMetricFamily(
        prefix + "http_request_duration_seconds",
        "Seconds from a request's head read to the end of its response.",
        labels=["server", "method"],
    )
    closes = CounterMetricFamily(
        prefix + "websocket_closes_total",
        "WebSocket connections ended, by close code.",
        labels=["server", "code"],
    )
    for name, values in sorted(snapshot.get("servers", {}).items()):
        if "connections_open" in values:
            open_now.add_metric([name], values["connections_open"])
        for key, family in counters.items():
            if key in values:
                family.add_metric([name], values[key])
        for method, by_status in sorted(values.get("http_requests_total", {}).items()):
            for status, count in sorted(by_status.items()):
                requests.add_metric([name, method, status], count)
        for method, histogram in sorted(values.get("http_request_duration_seconds", {}).items()):
            durations.add_metric(
                [name, method], list(_sorted_buckets(histogram["buckets"])), histogram["sum"]
            )
        for code, count in sorted(values.get("websocket_closes_total", {}).items()):
            closes.add_metric([name, code], count)
    return [open_now, *counters.values(), requests, durations, closes]
