""":class:`Metrics`: the prometheus-client collector that servers report to.

prometheus-client is imported when a :class:`Metrics` is made, never when
this module is: ``import trionet`` (whose servers name this class in their
signatures) works without it.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ..http._server._request import Request
from ..http._server._response import Response
from ._record import HTTPRecorder, Snapshot, Source, add_into

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.registry import CollectorRegistry

    from .._server import ServerCore
    from .._udp._socket import UDPSocket

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "INSTALL_HINT",
    "Metrics",
    "import_prometheus",
    "in_run",
    "process_snapshots",
    "scrape_response",
]

#: The bounds (seconds) of ``trionet_http_request_duration_seconds``:
#: prometheus-client's defaults (5 ms to 10 s) with 0.5 to 2.5 ms below them,
#: where a trionet server answers a small request on a quiet machine, and
#: 30 s above, the default ``request_head_timeout`` and ``body_timeout``.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
)

_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")

INSTALL_HINT = "trionet.metrics needs prometheus-client: pip install 'trionet[metrics]'"


def _check_buckets(buckets: Iterable[float]) -> tuple[float, ...]:
    bounds = []
    for bound in buckets:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise TypeError(f"duration_buckets holds numbers of seconds, not {bound!r}")
        bounds.append(float(bound))
    if bounds and bounds[-1] == math.inf:
        bounds.pop()  # +Inf is always the last bucket
    if not bounds:
        raise ValueError("duration_buckets needs at least one finite bound")
    if any(not math.isfinite(bound) for bound in bounds) or any(
        later <= earlier for earlier, later in itertools.pairwise(bounds)
    ):
        raise ValueError(f"duration_buckets must be finite and increasing, not {bounds!r}")
    return tuple(bounds)


# Every Metrics of this process: a worker's heartbeats carry their snapshots
# to the supervisor (see trionet._workers), which sums them over workers.
_live: weakref.WeakSet[Metrics] = weakref.WeakSet()


def process_snapshots() -> dict[str, dict[str, Any]]:
    """The snapshots of every :class:`Metrics` of this process that reports
    at least one server, by namespace (two of one namespace are summed)."""
    snapshots: dict[str, dict[str, Any]] = {}
    for metrics in list(_live):
        if metrics._sources or metrics._retired:
            add_into(snapshots.setdefault(metrics.namespace, {}), metrics.snapshot())
    return snapshots


def import_prometheus() -> tuple[Any, Callable[[str, Snapshot], list[Metric]]]:
    """prometheus-client, and the function that renders a snapshot for it.

    Raises:
        ImportError: prometheus-client is not installed (with what to install).
    """
    try:
        import prometheus_client

        from . import _families
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "prometheus_client":
            raise
        raise ImportError(INSTALL_HINT) from exc
    return prometheus_client, _families.render


def in_run(token: trio.lowlevel.TrioToken) -> bool:
    try:
        return trio.lowlevel.current_trio_token() is token
    except RuntimeError:  # not in a trio run at all
        return False


class Metrics:
    """Prometheus metrics of trionet servers: a prometheus-client collector.

    Give it to any number of servers (``metrics=`` of every ``serve_*``);
    each reports under its own ``server`` label (its name, such as ``"http
    server 127.0.0.1:8080"``). The connection, byte and UDP counters are read
    from the servers' statistics when Prometheus scrapes, so they cost the
    servers nothing; an HTTP server also records each request's method,
    status class and duration, and each WebSocket's close code. A stopped
    server's counters stay in the totals (a counter never goes backwards),
    and its ``connections_open`` gauge disappears.

    Expose them with :meth:`handler` on a route of your HTTP server, or on a
    port of their own with :func:`~trionet.metrics.serve_metrics`, or with
    any prometheus-client exposition of :attr:`registry` (its threaded
    ``start_http_server`` too: a scrape from another thread reads the
    servers in their own trio thread).

    Args:
        registry: The registry to register into; by default a new
            ``prometheus_client.CollectorRegistry`` of its own (pass
            ``prometheus_client.REGISTRY`` to join the process-wide one,
            beside your own metrics).
        namespace: The prefix of every metric name (default ``"trionet"``).
        duration_buckets: The upper bounds, in seconds, of the request
            duration histogram's buckets (``+Inf`` is added); default
            :data:`DEFAULT_DURATION_BUCKETS`.

    Attributes:
        registry: The registry the metrics are registered in.
        namespace: The prefix of every metric name.

    Raises:
        ImportError: prometheus-client is not installed (``pip install
            'trionet[metrics]'``).
        ValueError: ``namespace`` is not a valid metric name prefix, the
            buckets are not increasing, or ``registry`` already has metrics
            of these names (another :class:`Metrics` of the same namespace).
        TypeError: ``namespace`` is not a str, or a bucket bound not a number.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "trionet",
        duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
    ) -> None:
        prometheus_client, self._render = import_prometheus()
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
        if not _NAMESPACE.match(namespace):
            raise ValueError(f"namespace must be a metric name prefix, not {namespace!r}")
        self.namespace = namespace
        self._bounds = _check_buckets(duration_buckets)
        self._sources: list[Source] = []
        # The trio run the servers live in: a scrape from another thread
        # (prometheus-client's own HTTP server) reads their state there.
        self._trio_token: trio.lowlevel.TrioToken | None = None
        # The final counts of stopped servers, by name: a server started again
        # under the same name goes on from them.
        self._retired: dict[str, Snapshot] = {}
        self.registry = registry if registry is not None else prometheus_client.CollectorRegistry()
        self.registry.register(self)
        _live.add(self)

    def __repr__(self) -> str:
        return f"<trionet.metrics.Metrics {self.namespace!r}, {len(self._sources)} server(s)>"

    # -- the servers' side ------------------------------------------------------

    def _http_recorder(self) -> HTTPRecorder:
        """A recorder for a new HTTP server (see :func:`trionet.http.serve`)."""
        return HTTPRecorder(self._bounds)

    def _watch(
        self,
        core: ServerCore[Any, Any],
        *,
        http: HTTPRecorder | None = None,
        udp: UDPSocket | None = None,
    ) -> None:
        """Report the server ``core`` runs from now on (a ``serve_*`` calls
        it once the core is built), with its HTTP recorder or UDP socket."""
        self._retire_finished()
        self._sources.append(Source(core, http, udp))
        self._trio_token = trio.lowlevel.current_trio_token()

    def _retire_finished(self) -> None:
        running = []
        for source in self._sources:
            if source.finished:
                add_into(self._retired.setdefault(source.name, {}), source.snapshot())
            else:
                running.append(source)
        self._sources = running

    # -- the collector ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return every counter now, as plain data: the basis of the exposition,
        and of summing the metrics of several processes.

        The result is ``{"servers": {name: counts}}`` where the leaves are
        numbers and every other value a dict, so that two snapshots add up
        leaf by leaf (the servers of one name in several worker processes
        sum to one series, the ``connections_open`` gauge included). For each
        server, the keys are the metric names without the namespace:
        ``connections_open`` (only while the server runs),
        ``connections_total`` and the other server counters, and by kind of
        server ``http_requests_total`` (``{method: {status_class: n}}``),
        ``http_request_duration_seconds`` (``{method: {"buckets": {le: n},
        "sum": s, "count": n}}``, the buckets *not* cumulative),
        ``websocket_messages_received_total``, ``websocket_messages_sent_total``,
        ``websocket_closes_total`` (``{code: n}``) and the
        ``udp_datagrams_*_total`` and ``udp_send_errors_total`` counters.

        It may be called from any thread: from outside the servers' trio
        run, the state is read in that run's thread (with
        ``trio.from_thread.run_sync``), never while it changes.

        Returns:
            A new dict (the caller may keep or change it).
        """
        token = self._trio_token
        if token is not None and not in_run(token):
            try:
                return trio.from_thread.run_sync(self._snapshot, trio_token=token)
            except trio.RunFinishedError:
                pass  # the servers are gone with their run: nothing changes any more
        return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        self._retire_finished()
        servers = copy.deepcopy(self._retired)
        for source in self._sources:
            add_into(servers.setdefault(source.name, {}), source.snapshot())
        return {"servers": servers}

    def collect(self) -> list[Metric]:
        """Return the metric families (prometheus-client's collector
        interface; the registry calls it on every scrape).

        Returns:
            The families, with the servers' samples.
        """
        return self._render(self.namespace, self.snapshot())

    def describe(self) -> list[Metric]:
        """Return the metric families without samples (prometheus-client's
        collector interface: the registry checks the names at registration).

        Returns:
            The families, empty.
        """
        return self._render(self.namespace, {"servers": {}})

    async def handler(self, request: Request) -> Response:
        """Answer a scrape: a handler for :func:`trionet.http.serve`, at any
        path you route to it (``/metrics`` by convention)::

            async def app(request):
                if request.path == "/metrics":
                    return await metrics.handler(request)
                ...

        Args:
            request: The request: ``GET`` (or ``HEAD``) gets the registry in
                Prometheus' text format; any other method, 405.

        Returns:
            The :class:`~trionet.http.Response`.
        """
        return scrape_response(request, self.registry)


def scrape_response(request: Request, registry: CollectorRegistry) -> Response:
    """The answer to a scrape of ``registry``: its text exposition for
    ``GET`` and ``HEAD``, 405 for any other method."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if request.method not in ("GET", "HEAD"):
        return Response(
            405,
            {"allow": "GET, HEAD", "content-type": "text/plain; charset=utf-8"},
            b"405 Method Not Allowed: scrape with GET\n",
        )
    return Response(200, {"content-type": CONTENT_TYPE_LATEST}, generate_latest(registry))
