"""The values of the worker API: who a worker is, what a pool reports, the
error a failed start raises, and the pool's options, checked once."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from .. import _checks as checks
from .._listener_pool import ListenKey, listen_key
from .._server import ServerStatistics

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "HEALTHY_AFTER",
    "KILL_MARGIN",
    "PoolOptions",
    "Worker",
    "WorkerError",
    "WorkerPoolStatistics",
    "WorkerStatistics",
    "describe_exit",
    "sum_statistics",
]

# A worker that fails is replaced after BACKOFF_INITIAL seconds, and each
# further failure of the same worker doubles the wait, up to BACKOFF_MAX: a
# program that crashes at once must not spin the machine's cores on start-ups
# (gunicorn's arbiter and systemd's RestartSec do the same for the same
# reason). A worker that ran HEALTHY_AFTER seconds before it failed starts the
# count afresh: an occasional crash is not a crash loop.
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 10.0
HEALTHY_AFTER = 30.0

# How long after its grace a worker asked to stop may take before it is
# killed: the time for a Python process to unwind and exit after its servers
# are done, with room to spare on a loaded machine.
KILL_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class Worker:
    """Who this process is, inside a worker of :func:`trionet.run_workers`
    or :func:`trionet.serve_workers` (see :func:`trionet.current_worker`).

    Attributes:
        index: The worker's place in the pool, ``0`` to ``count - 1``; a
            replacement takes the index of the worker it replaces.
        count: How many workers the pool had when this one started.
        pid: This process's id.
        generation: ``0`` for the first process at this index, then one more
            for each replacement (a crash, a restart, ``max_requests``).
    """

    index: int
    count: int
    pid: int
    generation: int


class WorkerError(Exception):
    """A worker failed to start: it exited (or was killed) before it was
    ready, or it was not ready within ``startup_timeout``.

    Attributes:
        index: The worker's index.
        pid: The worker's process id (0 if it could not be started at all).
        exitcode: Its exit status (negative: the number of the signal that
            killed it), or ``None`` if it did not exit (a timeout).
    """

    def __init__(self, message: str, *, index: int, pid: int, exitcode: int | None) -> None:
        super().__init__(message)
        self.index = index
        self.pid = pid
        self.exitcode = exitcode


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """One worker, in :meth:`WorkerPool.statistics() <trionet.WorkerPool.statistics>`.

    Attributes:
        index: The worker's index.
        pid: Its current process, or ``None`` while it is being replaced
            after a failure.
        restarts: How many times this worker was started again after it
            failed (crashed, stopped beating, or did not start).
        restart_delay: The seconds the next replacement after a failure will
            wait: doubles with each failure in a row (the crash-loop
            back-off).
        servers: Its servers' counters, summed, as its last heartbeat
            reported them (all zero before the first one). A new process
            counts from zero.
    """

    index: int
    pid: int | None
    restarts: int
    restart_delay: float
    servers: ServerStatistics


@dataclass(frozen=True, slots=True)
class WorkerPoolStatistics:
    """A snapshot of a :class:`~trionet.WorkerPool`.

    Attributes:
        workers: One entry per worker, by index.
        servers: The sum of every worker's ``servers``.
    """

    workers: tuple[WorkerStatistics, ...]
    servers: ServerStatistics


def sum_statistics(many: Iterable[ServerStatistics]) -> ServerStatistics:
    """Add counters up, field by field."""
    totals = dict.fromkeys((f.name for f in fields(ServerStatistics)), 0)
    for stats in many:
        for name in totals:
            totals[name] += getattr(stats, name)
    return ServerStatistics(**totals)


def describe_exit(exitcode: int | None) -> str:
    """``exited with status 3`` or ``was killed by SIGKILL``, as
    ``multiprocessing`` reports an exit (a negative code is a signal)."""
    if exitcode is None:
        return "is still running"
    if exitcode >= 0:
        return f"exited with status {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return f"was killed by {name}"


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """The options of a pool, checked once (see :func:`trionet.serve_workers`)."""

    workers: int
    listen: tuple[ListenKey, ...]
    reuse_port: bool
    grace: float
    heartbeat_interval: float
    heartbeat_timeout: float
    startup_timeout: float
    max_requests: int | None
    max_requests_jitter: int

    @classmethod
    def build(
        cls,
        *,
        workers: int | None,
        listen: Sequence[object],
        reuse_port: bool,
        grace: float,
        heartbeat_interval: float,
        heartbeat_timeout: float,
        startup_timeout: float,
        max_requests: int | None,
        max_requests_jitter: int,
    ) -> PoolOptions:
        """Check every option.

        Raises:
            TypeError: An option is of the wrong kind.
            ValueError: An option is out of range.
        """
        if workers is None:
            workers = os.cpu_count() or 1
        checks.count("workers", workers)
        if isinstance(listen, str | bytes) or not isinstance(listen, Iterable):
            raise TypeError(f"listen must be a sequence of entries, not {listen!r}")
        keys = tuple(listen_key(entry) for entry in listen)
        # Port 0 asks for a new port each time it is written: ("::1", 0) twice
        # is two ports, which the workers' serve_* calls take in order.
        fixed = [key for key in keys if key.path is not None or key.port != 0]
        if len(set(fixed)) != len(fixed):
            raise ValueError(f"listen names an entry twice: {list(listen)!r}")
        if not isinstance(reuse_port, bool):
            raise TypeError(f"reuse_port must be a bool, not {reuse_port!r}")
        grace = checks.non_negative_seconds("grace", grace) or 0.0
        interval = checks.seconds("heartbeat_interval", heartbeat_interval)
        timeout = checks.seconds("heartbeat_timeout", heartbeat_timeout)
        startup = checks.seconds("startup_timeout", startup_timeout)
        assert interval is not None
        assert timeout is not None
        assert startup is not None
        if math.isinf(interval):
            raise ValueError("heartbeat_interval must be finite, not inf")
        if timeout <= interval:
            raise ValueError(
                f"heartbeat_timeout must be longer than heartbeat_interval"
                f" ({interval!r} s), not {timeout!r}"
            )
        checks.count("max_requests", max_requests, none=True)
        checks.count("max_requests_jitter", max_requests_jitter, minimum=0)
        return cls(
            workers=workers,
            listen=keys,
            reuse_port=reuse_port,
            grace=grace,
            heartbeat_interval=interval,
            heartbeat_timeout=timeout,
            startup_timeout=startup,
            max_requests=max_requests,
            max_requests_jitter=max_requests_jitter,
        )
