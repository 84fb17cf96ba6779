""":func:`serve_metrics`: the metrics on a port of their own, as
``prometheus_client.start_http_server`` does, but as a trio server under
the caller's nursery."""

from __future__ import annotations

import trio

from .._server import Server
from ._collector import Metrics
from ._workers import WorkerMetrics

__all__ = ["serve_metrics"]


async def serve_metrics(
    metrics: Metrics | WorkerMetrics,
    port: int,
    host: str | None = None,
    *,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``metrics`` for Prometheus on a port of its own: a small
    :func:`trionet.http.serve` of :meth:`Metrics.handler`, which answers a
    ``GET`` at any path (``/metrics`` is what Prometheus asks for).

    Start it beside your servers with ``server = await
    nursery.start(trionet.metrics.serve_metrics, metrics, 9100)``. It stops
    as every server does (``server.shutdown()`` or cancelling its nursery;
    :func:`trionet.run` stops it on SIGTERM with the others). Its own traffic
    is not counted in ``metrics``. Bind it where only Prometheus can reach
    it (a private address): the metrics name your servers' addresses.

    Args:
        metrics: The metrics to serve: a process's :class:`Metrics`, or
            in the supervisor of worker processes, their
            :class:`WorkerMetrics`.
        port: The port; 0 lets the system pick.
        host: The address; ``None`` listens on every address.
        task_status: Set by ``nursery.start`` (to the :class:`~trionet.Server`).

    Raises:
        BindError: The address is in use or cannot be bound.
        ValueError: ``port`` is out of range.
    """
    # (Imported here: every server module imports this package, for the
    # Metrics type of its ``metrics`` argument.)
    from ..http._server._serve import serve

    await serve(metrics.handler, port, host, task_status=task_status)
