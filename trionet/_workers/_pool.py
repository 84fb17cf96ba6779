"""The worker pool: N processes of one program, kept running.

Theory of operation
-------------------
The pool has one *slot* per worker index, ``0..N-1``, each with its current
process. Every process is watched by a task of the pool's nursery
(:meth:`WorkerPool._supervise`) that reads its heartbeats, kills it if they
stop for ``heartbeat_timeout``, and, when it ends, decides what that means:

* a *retiring* process (asked to stop) ending is the plan;
* a *starting* process ending is a failed start, reported by whoever is
  waiting for it to be ready: at the pool's start-up that is a
  :class:`~trionet.WorkerError` out of :func:`~trionet.serve_workers` (the
  program is broken: better to stop than to loop); later, one more failure
  in a row;
* a *serving* process ending is a failure: it is logged and replaced after a
  back-off that doubles with each failure in a row (0.1 s up to 10 s, afresh
  once a worker ran 30 s), so that a crash loop does not spin.

Replacing a serving worker on purpose (:meth:`WorkerPool.restart`, or
``max_requests``) starts the new process first and retires the old one only
once the new one is ready: the old one drains (its servers stop accepting,
finish what they have, within ``grace``) while the new one already accepts,
so no request fails. Retiring is SIGTERM, then SIGKILL after ``grace`` plus
a margin.

:meth:`WorkerPool.shutdown` closes the supervisor's own copies of the
listening sockets *first*: once every worker has closed its copy too, the
kernel refuses new connections instead of queueing them on a socket that
nobody will accept from (hypercorn issue #128). Then every worker is retired
at once.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from .. import _checks as checks
from .._server import SocketAddress
from ..metrics._record import add_into
from ._process import WorkerProcess
from ._types import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    HEALTHY_AFTER,
    KILL_MARGIN,
    PoolOptions,
    WorkerError,
    WorkerPoolStatistics,
    WorkerStatistics,
    sum_statistics,
)
from ._worker import HandedListener, WorkerSpec

__all__ = ["WorkerPool"]

logger = logging.getLogger("trionet.workers")

_ZERO = sum_statistics(())


class _Slot:
    """One worker index and its current process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: WorkerProcess | None = None
        self.generation = 0  # of the next process
        self.restarts = 0
        self.delay = BACKOFF_INITIAL  # before the next restart after a failure
        self.removed = False
        self.background: set[trio.CancelScope] = set()  # its restarts and replacements
        # Held while a process is being started for this slot: a restart, a
        # replacement and a removal of the same slot wait for one another.
        self.lock = trio.Lock()


class WorkerPool:
    """A running pool of worker processes, as returned by ``await
    nursery.start(trionet.serve_workers, main, ...)``.

    The pool lives as long as the task that ``nursery.start`` started:
    cancelling it kills the workers at once (SIGKILL); :meth:`shutdown` is the
    graceful stop.

    Attributes:
        exit_status: ``None`` while the pool runs; then 0 if every worker
            stopped cleanly (exit status 0 within its grace), else 1 (what
            :func:`~trionet.run_workers` returns).
    """

    def __init__(
        self,
        main: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        options: PoolOptions,
        listeners: list[HandedListener],
        addresses: list[SocketAddress],
        close_listeners: Callable[[], None],
    ) -> None:
        self._main = main
        self._args = args
        self._options = options
        self._listeners = tuple(listeners)
        self._addresses = list(addresses)
        self._close_listeners = close_listeners
        self._slots: list[_Slot] = []
        self._processes: set[WorkerProcess] = set()
        self._nursery: trio.Nursery | None = None
        self._background: set[trio.CancelScope] = set()
        self._stopping = False
        self._shutdown_requested = trio.Event()
        self._shutdown_grace = options.grace
        self._stopped = trio.Event()
        self._restart_lock = trio.Lock()
        self._resize_lock = trio.Lock()
        # The metrics of processes that have ended, by namespace: their
        # counters stay in the totals (a counter never goes backwards).
        self._ended_metrics: dict[str, dict[str, Any]] = {}
        self.exit_status: int | None = None

    def __repr__(self) -> str:
        return f"<trionet.WorkerPool of {len(self._slots)} workers>"

    @property
    def addresses(self) -> list[SocketAddress]:
        """The addresses the supervisor bound for the ``listen`` entries (with
        ``reuse_port``, the ones it reserved), as the sockets report them, so a
        port given as 0 shows the port chosen."""
        return list(self._addresses)

    @property
    def port(self) -> int:
        """The port of the first TCP address.

        Raises:
            ValueError: The pool has no TCP address.
        """
        for address in self._addresses:
            if isinstance(address, tuple):
                return int(address[1])
        raise ValueError(f"{self!r} has no TCP address, so it has no port")

    def statistics(self) -> WorkerPoolStatistics:
        """Return a snapshot of every worker and the sum of their counters.

        Returns:
            A :class:`~trionet.WorkerPoolStatistics`.
        """
        workers = tuple(
            WorkerStatistics(
                index=slot.index,
                pid=slot.process.pid if slot.process else None,
                restarts=slot.restarts,
                restart_delay=slot.delay,
                servers=slot.process.servers if slot.process else _ZERO,
            )
            for slot in self._slots
        )
        return WorkerPoolStatistics(workers, sum_statistics(w.servers for w in workers))

    def metrics_snapshot(self) -> dict[str, dict[str, Any]]:
        """Return the workers' :class:`~trionet.metrics.Metrics`, summed, as
        of their last heartbeats (call :meth:`refresh` first for counts of
        this instant). :class:`trionet.metrics.WorkerMetrics` exposes them.

        Each worker process reports a snapshot per metrics namespace
        (:meth:`trionet.metrics.Metrics.snapshot`); the servers of one name
        add up to one series across workers. Processes that have ended
        still count, as of their last heartbeat (a worker that stops
        gracefully sends one once its servers have drained; one that is
        killed loses what it counted since the one before), but their open
        connections no longer do.

        Returns:
            ``{namespace: snapshot}``, a new dict (empty when no worker has
            a :class:`~trionet.metrics.Metrics` with a server).
        """
        total = copy.deepcopy(self._ended_metrics)
        for process in self._processes:
            for namespace, snapshot in process.metrics.items():
                add_into(total.setdefault(namespace, {}), snapshot)
        return total

    async def refresh(self) -> None:
        """Ask every ready worker for a heartbeat now, and return once each
        has answered (or ended), so that :meth:`statistics` and
        :meth:`metrics_snapshot` are of this instant rather than of the last
        heartbeat. A worker whose event loop is blocked answers late: bound
        the wait with ``trio.move_on_after`` (each worker then keeps the
        counts of its last heartbeat)."""
        async with trio.open_nursery() as nursery:
            for process in list(self._processes):
                if process.ready.is_set():
                    nursery.start_soon(process.ask_for_beat)

    async def add_worker(self) -> None:
        """Start one more worker (index ``N``), and return once it is ready.

        Raises:
            WorkerError: It exited before it was ready, or was not ready in
                time; the pool keeps its other workers.
            trio.ClosedResourceError: The pool is shutting down.
        """
        self._check_open()
        async with self._resize_lock:
            slot = _Slot(len(self._slots))
            self._slots.append(slot)
            try:
                async with slot.lock:
                    await self._start(slot)
            except BaseException:
                slot.removed = True
                self._slots.remove(slot)
                raise
        logger.info("worker %d added: %d workers", slot.index, len(self._slots))

    async def remove_worker(self) -> None:
        """Stop the worker with the highest index gracefully, and return once
        it has exited.

        Raises:
            ValueError: Only one worker is left.
            trio.ClosedResourceError: The pool is shutting down.
        """
        self._check_open()
        async with self._resize_lock:
            if len(self._slots) <= 1:
                raise ValueError("a worker pool keeps at least one worker")
            slot = self._slots.pop()
            slot.removed = True
            for scope in list(slot.background):
                scope.cancel()  # a restart waiting out its back-off, say
            async with slot.lock:  # a start in progress finishes first
                process, slot.process = slot.process, None
        if process is not None:
            logger.info("removing %r: %d workers", process, len(self._slots))
            await self._retire_and_wait(process)

    async def restart(self) -> None:
        """Replace every worker, one at a time: each new process is ready
        before the one it replaces starts draining, so no request fails.
        Returns once every old process has exited.

        Raises:
            WorkerError: A new worker failed to start; the one it was to
                replace (and the rest not replaced yet) keep serving.
            trio.ClosedResourceError: The pool is shutting down.
        """
        self._check_open()
        async with self._restart_lock:
            retiring = []
            try:
                for slot in list(self._slots):
                    old = await self._replace(slot)
                    if old is not None:
                        retiring.append(old)
            finally:
                for old in retiring:
                    await old.exited.wait()

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop the pool gracefully, and return when every worker is gone.

        Closes the supervisor's listening sockets first, then sends every
        worker SIGTERM: each stops accepting and drains its servers (within
        the ``grace`` the pool was started with) and exits; a worker still
        running ``grace`` plus 5 seconds later is killed. Calling it again
        just waits for the end.

        Args:
            grace: Seconds to wait for the workers before killing them;
                ``None`` for the pool's ``grace``. (Each worker drains within
                the pool's ``grace`` whatever this says.)

        Raises:
            ValueError: ``grace`` is negative.
        """
        if grace is not None:
            grace = checks.non_negative_seconds("grace", grace)
        if not self._shutdown_requested.is_set():
            self._shutdown_grace = self._options.grace if grace is None else grace
            self._shutdown_requested.set()
        await self._stopped.wait()

    # -- running ------------------------------------------------------------

    async def _run(self, task_status: trio.TaskStatus[WorkerPool]) -> None:
        failure: WorkerError | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._start_first()
                except WorkerError as exc:
                    failure = exc
                    await self._shut_down(self._options.grace)
                else:
                    task_status.started(self)
                    await self._shutdown_requested.wait()
                    await self._shut_down(self._shutdown_grace)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                # A hard stop (cancelled): whatever still runs is killed.
                self._stopping = True
                self._close_listeners()
                for process in list(self._processes):
                    await process.force_close()
                if self.exit_status is None:
                    self.exit_status = 1
                self._stopped.set()
        if failure is not None:
            raise failure

    async def _start_first(self) -> None:
        self._slots = [_Slot(index) for index in range(self._options.workers)]
        failures: list[WorkerError] = []

        async def start(slot: _Slot) -> None:
            try:
                async with slot.lock:
                    await self._start(slot)
            except WorkerError as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()  # the others are not wanted now

        async with trio.open_nursery() as nursery:
            for slot in self._slots:
                nursery.start_soon(start, slot)
        if failures:
            raise failures[0]
        logger.info("%d workers ready", len(self._slots))

    def _check_open(self) -> None:
        if self._stopping or self._nursery is None:
            raise trio.ClosedResourceError("the worker pool is shutting down")

    @contextmanager
    def _in_background(self, slot: _Slot) -> Iterator[None]:
        """A scope for a task of ``slot`` that :meth:`_shut_down` and
        :meth:`remove_worker` cancel (a restart after a failure, a replacement
        for ``max_requests``)."""
        with trio.CancelScope() as scope:
            self._background.add(scope)
            slot.background.add(scope)
            try:
                yield
            finally:
                self._background.discard(scope)
                slot.background.discard(scope)

    async def _start(self, slot: _Slot) -> WorkerProcess | None:
        """Start a process for ``slot`` (whose lock the caller holds) and
        wait until it is ready; then make it the slot's process, and return
        the one it replaces.

        Raises:
            WorkerError: It ended before it was ready, or was not ready in
                time (it is killed).
            trio.ClosedResourceError: The pool is shutting down.
        """
        self._check_open()
        assert self._nursery is not None
        options = self._options
        spec = WorkerSpec(
            main=self._main,
            args=self._args,
            index=slot.index,
            count=len(self._slots),
            generation=slot.generation,
            grace=options.grace,
            heartbeat_interval=options.heartbeat_interval,
            reuse_port=options.reuse_port,
            listeners=self._listeners,
        )
        limit = None
        if options.max_requests is not None:
            limit = options.max_requests + random.randint(0, options.max_requests_jitter)
        try:
            process = WorkerProcess.spawn(spec, limit)
        except OSError as exc:  # out of processes or descriptors, say
            raise WorkerError(
                f"worker {slot.index} could not be started: {exc}",
                index=slot.index,
                pid=0,
                exitcode=None,
            ) from exc
        slot.generation += 1
        self._processes.add(process)
        self._nursery.start_soon(self._supervise, process, slot)
        logger.debug("%r started", process)
        try:
            with trio.move_on_after(options.startup_timeout):
                await process.settled.wait()
        except BaseException:
            process.state = "retiring"
            process.kill()
            raise
        if self._stopping:
            raise trio.ClosedResourceError("the worker pool is shutting down")
        if process.exited.is_set():
            raise WorkerError(
                f"{process!r} {process.describe_exit()} before it was ready",
                index=slot.index,
                pid=process.pid,
                exitcode=process.exitcode,
            )
        if not process.ready.is_set():
            process.state = "retiring"
            process.kill()
            waiting = (
                f" (it does not serve {', '.join(process.pending)})" if process.pending else ""
            )
            raise WorkerError(
                f"{process!r} was not ready within {options.startup_timeout:g} s{waiting}",
                index=slot.index,
                pid=process.pid,
                exitcode=None,
            )
        process.state = "serving"
        old, slot.process = slot.process, process
        logger.info("%r ready", process)
        return old

    async def _supervise(self, process: WorkerProcess, slot: _Slot) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._detect_silence, process)
            await process.run(self._on_beat)
            nursery.cancel_scope.cancel()
        self._processes.discard(process)
        self._keep_metrics(process)
        self._on_exit(process, slot)

    async def _detect_silence(self, process: WorkerProcess) -> None:
        # From its first heartbeat on; but only a serving worker is killed for
        # silence (a starting one has startup_timeout, a retiring one its grace).
        await process.ready.wait()
        timeout = self._options.heartbeat_timeout
        while process.state != "retiring":
            deadline = process.last_beat + timeout
            if trio.current_time() < deadline:
                await trio.sleep_until(deadline)
            elif process.state == "serving":
                logger.error(
                    "%r sent no heartbeat for %g s; killing it (a blocked event loop?)",
                    process,
                    timeout,
                )
                process.kill()  # its exit is then a failure like any crash
                return
            else:
                await trio.sleep(self._options.heartbeat_interval)

    def _on_beat(self, process: WorkerProcess) -> None:
        limit = process.request_limit
        if (
            limit is not None
            and process.state == "serving"
            and not process.recycling
            and process.servers.accepted >= limit
        ):
            process.recycling = True
            logger.info("%r accepted %d connections (max_requests): replacing it", process, limit)
            assert self._nursery is not None
            self._nursery.start_soon(self._recycle, process)

    def _keep_metrics(self, process: WorkerProcess) -> None:
        """Fold an ended process's last metrics into the totals, without its
        open connections (none are open now)."""
        for namespace, snapshot in process.metrics.items():
            for values in snapshot.get("servers", {}).values():
                values.pop("connections_open", None)
            add_into(self._ended_metrics.setdefault(namespace, {}), snapshot)
        process.metrics = {}

    def _on_exit(self, process: WorkerProcess, slot: _Slot) -> None:
        if process.state == "starting":
            return  # a failed start: its launcher reports it
        if process.state == "retiring" or self._stopping:
            level = logging.INFO if process.exitcode == 0 else logging.WARNING
            logger.log(level, "%r stopped: it %s", process, process.describe_exit())
            return
        if slot.process is not process:
            logger.warning("%r (replaced) %s", process, process.describe_exit())
            return
        # The serving worker ended by itself: a failure.
        slot.process = None
        if process.ready_at is not None and trio.current_time() - process.ready_at >= HEALTHY_AFTER:
            slot.delay = BACKOFF_INITIAL
        if slot.removed:
            logger.warning("%r %s", process, process.describe_exit())
            return
        logger.error(
            "%r %s; starting it again in %g s", process, process.describe_exit(), slot.delay
        )
        assert self._nursery is not None
        self._nursery.start_soon(self._respawn, slot)

    async def _respawn(self, slot: _Slot) -> None:
        with self._in_background(slot):
            async with slot.lock:
                while not slot.removed and slot.process is None:
                    delay = slot.delay
                    slot.delay = min(delay * 2, BACKOFF_MAX)
                    await trio.sleep(delay)
                    slot.restarts += 1
                    try:
                        await self._start(slot)
                    except WorkerError as exc:
                        logger.error("%s; trying again in %g s", exc, slot.delay)
                    except trio.ClosedResourceError:
                        return

    async def _replace(
        self, slot: _Slot, only: WorkerProcess | None = None
    ) -> WorkerProcess | None:
        """Start a new process for ``slot``, then retire its old one (in the
        background). Returns the old one, if any. With ``only``, nothing is
        done unless that is still the slot's process."""
        async with slot.lock:
            if slot.removed or (only is not None and slot.process is not only):
                return None
            old = await self._start(slot)
        if old is not None:
            old.state = "retiring"  # now, not when the task below runs: its exit is no failure
            assert self._nursery is not None
            self._nursery.start_soon(self._retire, old)
        return old

    async def _recycle(self, process: WorkerProcess) -> None:
        slot = next((s for s in self._slots if s.process is process), None)
        if slot is None:
            return
        with self._in_background(slot):
            try:
                await self._replace(slot, only=process)
            except WorkerError as exc:
                logger.error("%s; %r keeps serving", exc, process)
            except trio.ClosedResourceError:
                pass

    async def _retire(self, process: WorkerProcess, grace: float | None = None) -> None:
        """SIGTERM, then SIGKILL if it outlives its grace and the margin."""
        if grace is None:
            grace = self._options.grace
        process.state = "retiring"
        process.terminate()
        with trio.move_on_after(grace + KILL_MARGIN):
            await process.exited.wait()
            return
        logger.warning("%r did not stop within %g s; killing it", process, grace + KILL_MARGIN)
        process.kill()
        await process.exited.wait()

    async def _retire_and_wait(self, process: WorkerProcess) -> None:
        # In the pool's nursery: a caller that gives up waiting does not stop
        # the SIGKILL that may be due.
        assert self._nursery is not None
        self._nursery.start_soon(self._retire, process)
        await process.exited.wait()

    async def _shut_down(self, grace: float) -> None:
        self._stopping = True
        self._close_listeners()  # first: see the theory of operation
        for scope in list(self._background):
            scope.cancel()
        processes = list(self._processes)
        # Those still starting are not counted in the exit status: they are
        # killed, having never served.
        counted = [process for process in processes if process.state != "starting"]
        logger.info("stopping %d workers", len(counted))
        async with trio.open_nursery() as nursery:
            for process in processes:
                if process.state != "retiring":  # a second SIGTERM would cut its drain short
                    nursery.start_soon(self._retire, process, grace)
        for process in processes:
            await process.exited.wait()
        clean = all(process.exitcode == 0 for process in counted)
        self.exit_status = 0 if clean else 1
