"""The program of the worker metrics tests (``tests/test_worker_metrics.py``):
:func:`tests._worker_apps.answer` served with a :class:`trionet.metrics.Metrics`
of the worker's own, as a user's ``main`` does under ``run_workers``; and
``/block?flag=FILE``, which creates ``FILE`` and then blocks the worker's event
loop for good (a worker too busy to answer its supervisor)."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import trio

import trionet
import trionet.http
import trionet.metrics
from tests._worker_apps import answer


async def answer_or_block(request: trionet.http.Request) -> trionet.http.Response:
    if request.path == "/block":
        Path(request.query["flag"][0]).touch()  # noqa: ASYNC240 (blocking is the point)
        time.sleep(3600)  # noqa: ASYNC251
    return await answer(request)


async def metrics_main(host: str, port: int) -> None:
    """Serve ``answer_or_block`` on ``(host, port)``, counted in this
    worker's own metrics."""
    metrics = trionet.metrics.Metrics()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(trionet.http.serve, answer_or_block, port, host, metrics=metrics)
        )
