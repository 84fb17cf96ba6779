"""Prometheus metrics of trionet servers (``pip install 'trionet[metrics]'``).

::

    metrics = trionet.metrics.Metrics()
    await nursery.start(partial(trionet.http.serve, app, 8080, metrics=metrics))
    await nursery.start(trionet.metrics.serve_metrics, metrics, 9100)

Theory of operation
-------------------
A :class:`Metrics` is a prometheus-client *custom collector*: nothing is
pushed into prometheus-client objects as the servers work. Each ``serve_*``
given ``metrics=`` registers its server core with it; on each scrape the
collector reads every server's :class:`~trionet.ServerStatistics` (and a
UDP server's socket statistics, and the open WebSockets' statistics), so
counters that the servers keep anyway cost nothing more. Only what no
statistics hold is recorded as it happens, and only by servers that have
metrics: an HTTP server's connections get a recorder (``None`` otherwise, as
for the access log) that counts each request by method and status class and
times it, and counts each WebSocket's close code when its connection ends.

Label values are bounded where they are recorded (nine standard methods and
``"other"``; status classes; the defined close codes and ``"3xxx"``,
``"4xxx"``, ``"other"``), so that no client can grow the number of series.
A server that stops is folded into per-name totals at the next scrape:
its counters stay (a counter never goes backwards; a server started again
under the same name goes on from them) and its ``connections_open`` gauge
leaves. Everything is rendered from :meth:`Metrics.snapshot`, nested dicts
of plain numbers that add up leaf by leaf: the supervisor of worker processes sums theirs into one
exposition (:class:`WorkerMetrics`, see :mod:`._workers`).

Importing this package does not import prometheus-client; making a
:class:`Metrics` without it raises :exc:`ImportError`.
"""

from ._collector import DEFAULT_DURATION_BUCKETS as DEFAULT_DURATION_BUCKETS
from ._collector import Metrics as Metrics
from ._serve import serve_metrics as serve_metrics
from ._workers import DEFAULT_REFRESH_TIMEOUT as DEFAULT_REFRESH_TIMEOUT
from ._workers import WorkerMetrics as WorkerMetrics

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_REFRESH_TIMEOUT",
    "Metrics",
    "WorkerMetrics",
    "serve_metrics",
]
