"""Worker processes on every core (Node's ``cluster``), with structured
lifetimes: :func:`run_workers` and :func:`serve_workers` run N processes of
one program serving the same listeners (:mod:`._supervisor`), kept running by
a :class:`WorkerPool` (:mod:`._pool`); inside a worker, :func:`current_worker`
says which one it is (:mod:`._worker`)."""

from ._pool import WorkerPool as WorkerPool
from ._supervisor import run_workers as run_workers
from ._supervisor import serve_workers as serve_workers
from ._types import Worker as Worker
from ._types import WorkerError as WorkerError
from ._types import WorkerPoolStatistics as WorkerPoolStatistics
from ._types import WorkerStatistics as WorkerStatistics
from ._worker import current_worker as current_worker

__all__ = [
    "Worker",
    "WorkerError",
    "WorkerPool",
    "WorkerPoolStatistics",
    "WorkerStatistics",
    "current_worker",
    "run_workers",
    "serve_workers",
]
