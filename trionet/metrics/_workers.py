""":class:`WorkerMetrics`: the metrics of every worker process, summed, served
by their supervisor.

Theory of operation
-------------------
A worker's servers report to the :class:`~trionet.metrics.Metrics` the
program made in that worker, as in a single process. Each heartbeat carries
the snapshots of the process's metrics to the supervisor
(:mod:`trionet._workers._beat`), and the pool adds them up, keeping the last
counts of processes that have ended (:meth:`trionet.WorkerPool.metrics_snapshot`).
A scrape first asks every worker for a heartbeat *now*
(:meth:`trionet.WorkerPool.refresh`), so that what a client just did is
counted, then renders the sum: counters and histograms add up across
workers, and so does the ``connections_open`` gauge (a live sum, as
prometheus-client's multiprocess mode calls it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .. import _checks as checks
from ..http._server._request import Request
from ..http._server._response import Response
from ._collector import import_prometheus, in_run, scrape_response

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.registry import CollectorRegistry

    from .._workers._pool import WorkerPool

__all__ = ["DEFAULT_REFRESH_TIMEOUT", "WorkerMetrics"]

#: Seconds a scrape of :class:`WorkerMetrics` waits for the workers' fresh
#: counts: far below Prometheus' default ``scrape_timeout`` (10 s), far above
#: the milliseconds a worker whose event loop is not blocked takes to answer.
DEFAULT_REFRESH_TIMEOUT = 1.0


class WorkerMetrics:
    """The metrics of a worker pool, summed over its processes: a
    prometheus-client collector for the supervisor.

    Each worker makes its own :class:`~trionet.metrics.Metrics` and gives it
    to its servers (``metrics=``), as a single process would; the supervisor
    serves the sum::

        pool = await nursery.start(functools.partial(trionet.serve_workers, main, listen=[8000]))
        metrics = trionet.metrics.WorkerMetrics(pool)
        await nursery.start(trionet.metrics.serve_metrics, metrics, 9100)

    (:func:`trionet.run_workers` does this for you with ``metrics_port=``.)
    The servers of one name (``http server 0.0.0.0:8000`` in every worker)
    become one series; a worker that was replaced still counts what it
    counted, so no counter goes backwards. Every metrics namespace the
    workers use is exposed.

    Args:
        pool: The running :class:`~trionet.WorkerPool`.
        registry: The registry to register into; by default a new
            ``prometheus_client.CollectorRegistry`` of its own.
        refresh_timeout: Seconds a scrape through :meth:`handler` waits for
            every worker's fresh counts (default
            :data:`DEFAULT_REFRESH_TIMEOUT`); a worker that has not answered
            by then (its event loop is blocked) is counted as of its last
            heartbeat.

    Attributes:
        registry: The registry the collector is registered in.
        refresh_timeout: As given.

    Raises:
        ImportError: prometheus-client is not installed.
        TypeError: ``refresh_timeout`` is not a number.
        ValueError: ``refresh_timeout`` is negative.
    """

    def __init__(
        self,
        pool: WorkerPool,
        *,
        registry: CollectorRegistry | None = None,
        refresh_timeout: float = DEFAULT_REFRESH_TIMEOUT,
    ) -> None:
        prometheus_client, self._render = import_prometheus()
        timeout = checks.non_negative_seconds("refresh_timeout", refresh_timeout)
        self.refresh_timeout: float = timeout or 0.0
        self._pool = pool
        try:
            self._trio_token: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
        except RuntimeError:
            self._trio_token = None
        self.registry = registry if registry is not None else prometheus_client.CollectorRegistry()
        self.registry.register(self)

    def __repr__(self) -> str:
        return f"<trionet.metrics.WorkerMetrics of {self._pool!r}>"

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Return the workers' metrics, summed, as of their last heartbeats
        (see :meth:`trionet.WorkerPool.metrics_snapshot`). It may be called
        from any thread.

        Returns:
            ``{namespace: snapshot}``, each snapshot as
            :meth:`Metrics.snapshot <trionet.metrics.Metrics.snapshot>` has it.
        """
        token = self._trio_token
        if token is not None and not in_run(token):
            try:
                return trio.from_thread.run_sync(self._pool.metrics_snapshot, trio_token=token)
            except trio.RunFinishedError:
                pass
        return self._pool.metrics_snapshot()

    def collect(self) -> list[Metric]:
        """Return the metric families of every namespace (prometheus-client's
        collector interface).

        Returns:
            The families, with the summed samples.
        """
        families: list[Metric] = []
        for namespace, snapshot in sorted(self.snapshot().items()):
            families.extend(self._render(namespace, snapshot))
        return families

    def describe(self) -> list[Metric]:
        """Return no families: which namespaces the workers use is known only
        once they report (prometheus-client's collector interface; the
        registry then does not check these names for clashes).

        Returns:
            An empty list.
        """
        return []

    async def handler(self, request: Request) -> Response:
        """Answer a scrape, as :meth:`Metrics.handler
        <trionet.metrics.Metrics.handler>` does, after asking every worker
        for its counts of this instant (waiting at most ``refresh_timeout``).

        Args:
            request: The request: ``GET`` (or ``HEAD``) gets the registry in
                Prometheus' text format; any other method, 405.

        Returns:
            The :class:`~trionet.http.Response`.
        """
        if request.method in ("GET", "HEAD"):
            with trio.move_on_after(self.refresh_timeout):
                await self._pool.refresh()
        return scrape_response(request, self.registry)
