"""Metrics under worker processes: each worker counts into a Metrics of its
own, heartbeats carry the snapshots, and the supervisor serves their sum
(``trionet.metrics.WorkerMetrics``). Real worker processes, real loopback
clients, the exposition read with prometheus-client's parser over HTTP."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

import trionet
import trionet.http
import trionet.metrics
from tests._process import gone
from tests._worker_metrics_app import metrics_main
from tests.test_metrics import Samples, parse, value
from tests.test_workers import DEADLINE, LOOPBACK, Failed, wait_until
from tests.test_workers import _stop_resource_tracker as _stop_resource_tracker
from tests.test_workers import get as get_pid
from trionet._workers._beat import Beat, BeatReader, check_snapshot
from trionet._workers._types import sum_statistics

# Heartbeats so rare that no test sees one by chance: every count a test
# reads comes from a scrape's request for fresh beats, or a worker's last beat.
RARE_HEARTBEAT = 600.0


@asynccontextmanager
async def metered_pool(
    **options: object,
) -> AsyncIterator[tuple[trionet.WorkerPool, trionet.metrics.WorkerMetrics, int]]:
    """Two workers of ``metrics_main`` (one SO_REUSEPORT socket each, so the
    kernel spreads connections by a hash of their ports), their summed
    metrics served by this process; yield the pool, its WorkerMetrics and
    the metrics port. The pool is killed at the end."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            pool = await nursery.start(
                partial(
                    trionet.serve_workers,
                    metrics_main,
                    LOOPBACK,
                    0,
                    workers=2,
                    listen=[(LOOPBACK, 0)],
                    reuse_port=True,
                    heartbeat_interval=RARE_HEARTBEAT,
                    heartbeat_timeout=2 * RARE_HEARTBEAT,
                )
            )
        refresh_timeout = options.pop("refresh_timeout", trionet.metrics.DEFAULT_REFRESH_TIMEOUT)
        assert isinstance(refresh_timeout, float)
        metrics = trionet.metrics.WorkerMetrics(pool, refresh_timeout=refresh_timeout)
        server = await nursery.start(trionet.metrics.serve_metrics, metrics, 0, LOOPBACK)
        try:
            yield pool, metrics, server.port
        finally:
            nursery.cancel_scope.cancel()


async def scrape(port: int) -> Samples:
    with trio.fail_after(DEADLINE):
        async with trionet.http.Client() as client:
            response = await client.get(f"http://{LOOPBACK}:{port}/metrics")
            assert response.status == 200
            return parse(await response.text())


async def requests_to_both_workers(port: int, at_least: int) -> Counter[int]:
    """Requests on new connections until each of the two workers answered
    some and ``at_least`` were made; the count by worker pid."""
    pids: Counter[int] = Counter()
    with trio.fail_after(DEADLINE):
        while len(pids) < 2 or pids.total() < at_least:
            pid, _ = await get_pid(port)
            pids[pid] += 1
    return pids


def server_label(pool: trionet.WorkerPool) -> str:
    return f"http server {LOOPBACK}:{pool.port}"


def counted(samples: Samples, pool: trionet.WorkerPool) -> tuple[float | None, float | None]:
    """The 2xx GET requests and the connections the metrics counted."""
    name = server_label(pool)
    requests = value(
        samples, "trionet_http_requests_total", server=name, method="GET", status="2xx"
    )
    return requests, value(samples, "trionet_connections_total", server=name)


async def test_a_scrape_sums_every_workers_counts_at_that_instant() -> None:
    async with metered_pool() as (pool, _, metrics_port):
        pids = await requests_to_both_workers(pool.port, at_least=20)
        made = pids.total()
        samples = await scrape(metrics_port)
        # Both workers counted (each answered some), into one series: the
        # sum, exact, though no periodic heartbeat came since the requests.
        assert counted(samples, pool) == (made, made)
        name = server_label(pool)
        assert value(samples, "trionet_connections_open", server=name) == 0
        assert (
            value(samples, "trionet_http_request_duration_seconds_count", server=name, method="GET")
            == made
        )
        # The pool's statistics were refreshed by the scrape too, per worker.
        by_pid = {w.pid: w.servers.accepted for w in pool.statistics().workers}
        assert by_pid == dict(pids)


async def test_counts_outlive_the_workers_that_made_them() -> None:
    async with metered_pool() as (pool, _, metrics_port):
        before = (await requests_to_both_workers(pool.port, at_least=10)).total()
        # A rolling restart: every worker stops gracefully and says its final
        # counts; the new ones start from zero, and the sum goes on.
        old = {w.pid for w in pool.statistics().workers}
        with trio.fail_after(DEADLINE):
            await pool.restart()
        assert old.isdisjoint(w.pid for w in pool.statistics().workers)
        assert counted(await scrape(metrics_port), pool) == (before, before)
        after = (await requests_to_both_workers(pool.port, at_least=10)).total()
        samples = await scrape(metrics_port)
        assert counted(samples, pool) == (before + after, before + after)
        # A worker killed outright cannot say goodbye: what it counted up to
        # its last heartbeat (here, the scrape's) stays in the sum.
        victim = pool.statistics().workers[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        await wait_until(lambda: gone(victim), "the killed worker is gone")
        await wait_until(
            lambda: victim not in {w.pid for w in pool.statistics().workers},
            "the pool noticed",
        )
        assert counted(await scrape(metrics_port), pool) == (before + after, before + after)


async def test_a_busy_worker_does_not_stall_the_scrape_past_refresh_timeout(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "blocked"
    async with metered_pool(refresh_timeout=0.5) as (pool, _, metrics_port):
        made = (await requests_to_both_workers(pool.port, at_least=10)).total()
        assert counted(await scrape(metrics_port), pool) == (made, made)
        async with trio.open_nursery() as nursery:
            # One worker's event loop stops for good (a blocking call): it
            # reads no request for a beat any more.
            nursery.start_soon(_expect_no_answer, pool.port, f"/block?flag={flag}")
            await wait_until(flag.exists, "a worker took the blocking request")
            # The scrape still answers, after refresh_timeout, with the
            # blocked worker's last counts (the test's deadline would end a
            # scrape that waited for it).
            assert counted(await scrape(metrics_port), pool) == (made, made)
            nursery.cancel_scope.cancel()


async def _expect_no_answer(port: int, path: str) -> None:
    with pytest.raises(Failed):
        await get_pid(port, path)


def test_a_beat_carries_metrics_snapshots() -> None:
    snapshot = {
        "servers": {"http server 127.0.0.1:80": {"connections_total": 3, "x": {"0.5": 1.5}}}
    }
    beat = Beat(True, sum_statistics(()), metrics={"trionet": snapshot}, answered=4)
    [decoded] = BeatReader().feed(beat.encode())
    assert decoded.metrics == {"trionet": snapshot}
    assert decoded.answered == 4
    # A beat from a worker of an older version has neither.
    old = b'{"ready":true,"servers":{},"pending":[]}\n'
    [decoded] = BeatReader().feed(old)
    assert (decoded.metrics, decoded.answered) == ({}, 0)


@pytest.mark.parametrize(
    "metrics",
    [[], {"trionet": []}, {"trionet": {"servers": {"s": {"n": "3"}}}}, {"t": {"n": True}}],
    ids=["list", "namespace-list", "string-leaf", "bool-leaf"],
)
def test_a_beat_with_malformed_metrics_is_refused(metrics: object) -> None:
    import json

    line = json.dumps({"ready": True, "servers": {}, "pending": [], "metrics": metrics})
    with pytest.raises(ValueError, match="not a heartbeat"):
        BeatReader().feed(line.encode() + b"\n")
    with pytest.raises(ValueError, match="metrics"):
        check_snapshot(metrics)


async def test_worker_metrics_options_are_checked() -> None:
    with pytest.raises(ValueError, match="refresh_timeout"):
        trionet.metrics.WorkerMetrics(None, refresh_timeout=-1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="refresh_timeout"):
        trionet.metrics.WorkerMetrics(None, refresh_timeout="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metrics_port"):
        trionet.run_workers(metrics_main, LOOPBACK, 0, workers=1, metrics_port=70000)
