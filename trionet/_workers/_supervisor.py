"""``trionet.serve_workers`` and ``trionet.run_workers``: the supervisor.

Theory of operation
-------------------
The supervisor binds every ``listen`` entry once, before any worker starts,
so that a busy port fails at once with a :class:`~trionet.BindError`, and
every worker gets the same sockets (see :mod:`._worker` for how they travel).
With ``reuse_port`` it binds each TCP entry without listening, only to hold
the port (with ``SO_REUSEPORT``, so the workers can bind it too, and port 0
means the same chosen port for all of them); a socket that does not listen
gets no connections. A UDP entry is bound once and shared all the same: a
datagram socket has no listening state, so one held only to reserve the port
would be dealt its share of the datagrams, and nobody would read them.
Sockets that systemd passed to the supervisor go to the workers as they are.

:func:`run_workers` is :func:`serve_workers` plus the signals a process
manager and an operator send, with gunicorn's meanings: SIGTERM or SIGINT
stops gracefully (a second one kills the workers at once), SIGHUP replaces
every worker with no failed request, SIGTTIN and SIGTTOU add and remove one.
"""

from __future__ import annotations

import logging
import pickle
import signal
import socket as stdlib_socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVarTuple

import trio

from .. import _checks as checks
from .._addresses import format_address
from .._listener_pool import ListenEntry, active_listener_pool, is_listening
from .._listeners import SocketFile, open_tcp_sockets, open_unix_socket
from .._server import DEFAULT_SHUTDOWN_GRACE, SocketAddress, describe_callable
from ._pool import WorkerPool
from ._types import PoolOptions, WorkerError
from ._worker import HandedListener

__all__ = ["run_workers", "serve_workers"]

logger = logging.getLogger("trionet.workers")

Ts = TypeVarTuple("Ts")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SIGNALS = (*_STOP_SIGNALS, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)


def check_picklable(main: object, args: tuple[object, ...]) -> None:
    """Refuse, before anything starts, what a spawned worker cannot get.

    Raises:
        TypeError: ``main`` is not callable, or cannot be pickled by
            reference, or lives in an interactive session; or an argument
            cannot be pickled.
    """
    if not callable(main):
        raise TypeError(f"main must be an async function, not {main!r}")
    name = describe_callable(main)
    try:
        pickle.dumps(main)
    except Exception as exc:
        raise TypeError(
            f"main must be picklable by reference (a function defined at the top level"
            f" of a module, which each worker imports), and {name} is not: {exc}"
        ) from None
    if name.startswith("__main__."):
        module = sys.modules["__main__"]
        if getattr(module, "__file__", None) is None and getattr(module, "__spec__", None) is None:
            raise TypeError(
                f"main ({name}) is defined in an interactive session, which a worker"
                " cannot import: define it in a file"
            )
    try:
        pickle.dumps(args)
    except Exception as exc:
        raise TypeError(f"the arguments for main must be picklable: {exc}") from None


def _checked_options(
    main: Callable[..., Awaitable[object]], args: tuple[object, ...], **options: Any
) -> PoolOptions:
    """The pool's options, checked, once ``main`` and ``args`` are known to
    reach a spawned worker: what :func:`serve_workers` and
    :func:`run_workers` check before anything starts.

    Raises:
        TypeError: As :meth:`PoolOptions.build` and :func:`check_picklable`.
        ValueError: As :meth:`PoolOptions.build`.
    """
    checked = PoolOptions.build(**options)
    check_picklable(main, args)
    return checked


class _Bound:
    """What the supervisor holds open for its workers: its own copies,
    closed first when the pool stops."""

    def __init__(self) -> None:
        self.handed: list[HandedListener] = []
        self.addresses: list[SocketAddress] = []
        self.sockets: list[stdlib_socket.socket] = []
        self.files: list[SocketFile] = []

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for file in self.files:
            file.remove()
        self.sockets.clear()
        self.files.clear()


async def _bind(options: PoolOptions) -> _Bound:
    from .._udp._open import shared_udp_socket

    bound = _Bound()
    try:
        for key in options.listen:
            if key.path is not None:
                path = key.path
                sock, bound_here = await open_unix_socket(path, backlog=None, mode=None)
                bound.sockets.append(sock)
                if bound_here:
                    bound.files.append(SocketFile(path))
                bound.handed.append((key, [sock], None, None))
                bound.addresses.append(path)
                continue
            if key.udp:
                # Always shared, reuse_port or not: a socket held only to
                # reserve the port would be given its share of the datagrams
                # (the kernel spreads them over every socket on the port), and
                # nobody would read them.
                sock = await shared_udp_socket(key.host, key.port)
                bound.sockets.append(sock)
                bound.addresses.append(sock.getsockname())
                bound.handed.append((key, [sock], None, None))
                continue
            sockets = await open_tcp_sockets(
                key.port,
                key.host,
                backlog=None,
                reuse_port=options.reuse_port,
                listen=not options.reuse_port,
            )
            bound.sockets.extend(sockets)
            bound.addresses.extend(sock.getsockname() for sock in sockets)
            if all(is_listening(sock) for sock in sockets):
                bound.handed.append((key, sockets, None, None))
            else:  # reserved: each worker binds its own with SO_REUSEPORT
                bound.handed.append((key, [], sockets[0].getsockname()[1], None))
        pool = active_listener_pool()
        for entry in pool.unclaimed() if pool is not None else []:
            entry.claimed = [sock.getsockname() for sock in entry.sockets]
            bound.sockets.extend(entry.sockets)
            bound.handed.append((None, entry.sockets, None, entry.name))
            logger.debug("handing %s to the workers", entry.describe())
    except BaseException:
        bound.close()
        raise
    return bound


async def _serve(
    main: Callable[..., Awaitable[object]],
    args: tuple[object, ...],
    options: PoolOptions,
    task_status: trio.TaskStatus[WorkerPool],
) -> None:
    bound = await _bind(options)
    try:
        pool = WorkerPool(main, args, options, bound.handed, bound.addresses, bound.close)
        await pool._run(task_status)
    finally:
        bound.close()


async def serve_workers(
    main: Callable[[*Ts], Awaitable[object]],
    *args: *Ts,
    workers: int | None = None,
    listen: Sequence[ListenEntry] = (),
    reuse_port: bool = False,
    grace: float = DEFAULT_SHUTDOWN_GRACE,
    heartbeat_interval: float = 1.0,
    heartbeat_timeout: float = 10.0,
    startup_timeout: float = 30.0,
    max_requests: int | None = None,
    max_requests_jitter: int = 0,
    task_status: trio.TaskStatus[WorkerPool] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``main(*args)`` in worker processes that serve the same listeners,
    and keep them running (Node's ``cluster``).

    Start it with ``pool = await nursery.start(trionet.serve_workers, main,
    ...)``: that returns the :class:`~trionet.WorkerPool` once every worker is
    ready. It runs until :meth:`WorkerPool.shutdown
    <trionet.WorkerPool.shutdown>` (graceful) or until cancelled (the workers
    are killed at once). :func:`run_workers` runs it with signals.

    Each worker is a new Python process (``multiprocessing``'s *spawn*) that
    imports ``main``'s module and runs ``main(*args)`` as :func:`trionet.run`
    would: its ``serve_*`` calls, written as usual, get the sockets the
    supervisor bound for ``listen`` (``listen=[("127.0.0.1", 8000)]`` answers
    ``serve(handler, 8000, "127.0.0.1")``), and SIGTERM drains its servers
    within ``grace``. So ``main`` must be picklable by reference: a function
    at the top level of a module (``functools.partial`` of one works), and a
    script that defines it must start only under ``if __name__ ==
    "__main__":``. Inside a worker, :func:`current_worker` says which one it
    is. A worker is *ready* once it serves every ``listen`` entry (with none,
    once its first server listens).

    A worker that crashes, or sends no heartbeat for ``heartbeat_timeout``, is
    logged on the ``trionet.workers`` logger, killed if need be, and replaced,
    after a back-off that doubles with each failure in a row (0.1 s to 10 s).

    Args:
        main: The async function every worker runs.
        *args: Its arguments (picklable).
        workers: How many workers; ``None`` for one per CPU
            (``os.cpu_count()``).
        listen: What the supervisor binds: TCP ports (every interface, as
            ``serve_tcp(handler, port)``), TCP ``(host, port)`` tuples,
            ``(host, port, "udp")`` tuples for :func:`serve_udp`
            (``(host, port, "tcp")`` is ``(host, port)``; host ``None`` is
            every interface), and Unix socket paths. Port 0 picks one port
            for all workers (read it from :attr:`WorkerPool.addresses
            <trionet.WorkerPool.addresses>`); written several times for one
            host and transport, it picks a port for each, taken by the
            workers' ``serve_*`` calls in the order of ``listen``. A
            ``serve_*`` call that matches no entry binds as usual (with
            ``reuse_port``, with ``SO_REUSEPORT``).
        reuse_port: ``False`` (default): the workers share the supervisor's
            sockets, and the kernel hands each connection to whichever worker
            accepts first. ``True``: every worker's ``serve_*`` binds a socket
            of its own with ``SO_REUSEPORT`` and the kernel spreads
            connections evenly by a hash, but the connections queued on a
            worker that stops are reset (unless ``net.ipv4.tcp_migrate_req=1``).
            Unix socket paths and UDP entries are always shared (a UDP
            socket held only to reserve its port would be dealt datagrams
            that nobody reads). See :doc:`/deployment`.
        grace: Seconds each worker's servers get to finish when it stops
            (default 10); a worker still running 5 s later is killed.
        heartbeat_interval: Seconds between a worker's heartbeats (default 1).
        heartbeat_timeout: Seconds without a heartbeat after which a worker is
            taken for hung, killed and replaced (default 10).
        startup_timeout: Seconds a worker gets to become ready (default 30).
        max_requests: Replace a worker (new one first, as in a restart) once
            it accepted this many connections (each HTTP connection counts
            once, however many requests it carries); ``None`` (default) never.
            Bounds the harm of a slow leak.
        max_requests_jitter: Add a random 0..jitter to each worker's
            ``max_requests``, so that they are not all replaced at once
            (default 0).
        task_status: Set by ``nursery.start``.

    Raises:
        WorkerError: A worker exited before it was ready, or was not ready
            within ``startup_timeout`` (raised by ``nursery.start``; the other
            workers are stopped).
        BindError: A ``listen`` entry could not be bound.
        TypeError: ``main`` or an argument cannot be pickled, or an option is
            of the wrong kind.
        ValueError: An option is out of range.
    """
    options = _checked_options(
        main,
        args,
        workers=workers,
        listen=listen,
        reuse_port=reuse_port,
        grace=grace,
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        startup_timeout=startup_timeout,
        max_requests=max_requests,
        max_requests_jitter=max_requests_jitter,
    )
    await _serve(main, args, options, task_status)


def run_workers(
    main: Callable[[*Ts], Awaitable[object]],
    *args: *Ts,
    workers: int | None = None,
    listen: Sequence[ListenEntry] = (),
    reuse_port: bool = False,
    grace: float = DEFAULT_SHUTDOWN_GRACE,
    heartbeat_interval: float = 1.0,
    heartbeat_timeout: float = 10.0,
    startup_timeout: float = 30.0,
    max_requests: int | None = None,
    max_requests_jitter: int = 0,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
) -> int:
    """Run ``main(*args)`` in worker processes until a signal stops them: the
    multi-process :func:`trionet.run`.

    The supervisor (this process) runs :func:`serve_workers` and answers
    signals:

    * SIGTERM or SIGINT: stop gracefully (the supervisor closes its listening
      sockets, each worker drains within ``grace``); a second one kills the
      workers at once. Workers ignore SIGINT, so Ctrl-C in a terminal stops
      them through the supervisor, gracefully.
    * SIGHUP: replace every worker, one at a time, each new one ready before
      the old one drains (to load new code, say).
    * SIGTTIN / SIGTTOU: one worker more / one fewer.

    Example::

        if __name__ == "__main__":
            sys.exit(trionet.run_workers(main, workers=4, listen=[("0.0.0.0", 8000)]))

    Args:
        main: The async function every worker runs; picklable by reference
            (see :func:`serve_workers`).
        *args: Its arguments (picklable).
        workers: As for :func:`serve_workers`.
        listen: As for :func:`serve_workers`.
        reuse_port: As for :func:`serve_workers`.
        grace: As for :func:`serve_workers`.
        heartbeat_interval: As for :func:`serve_workers`.
        heartbeat_timeout: As for :func:`serve_workers`.
        startup_timeout: As for :func:`serve_workers`.
        max_requests: As for :func:`serve_workers`.
        max_requests_jitter: As for :func:`serve_workers`.
        metrics_port: Serve the workers' metrics, summed, on this port once
            every worker is ready (:class:`trionet.metrics.WorkerMetrics`;
            needs ``trionet[metrics]``); each worker gives a
            :class:`~trionet.metrics.Metrics` of its own to its servers.
            Port 0 picks one. The address is printed to stderr (``Metrics
            at http://HOST:PORT/metrics``). ``None`` (default): no metrics
            server.
        metrics_host: The address of the metrics server; ``None`` (default)
            listens on every address. Bind a private one where you can.

    Returns:
        The exit status for ``sys.exit``: 0 when every worker stopped cleanly
        (exit status 0 within its grace), 1 otherwise (a worker failed to
        start, had to be killed, or exited with an error).

    Raises:
        BindError: A ``listen`` entry could not be bound.
        TypeError: ``main`` or an argument cannot be pickled, or an option is
            of the wrong kind.
        ValueError: An option is out of range.
    """
    options = _checked_options(
        main,
        args,
        workers=workers,
        listen=listen,
        reuse_port=reuse_port,
        grace=grace,
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        startup_timeout=startup_timeout,
        max_requests=max_requests,
        max_requests_jitter=max_requests_jitter,
    )
    checks.count("metrics_port", metrics_port, minimum=0, maximum=65535, none=True)
    if metrics_port is not None:
        from ..metrics import WorkerMetrics  # noqa: F401  (an ImportError now, not later)
    try:
        return trio.run(_supervise, main, args, options, (metrics_port, metrics_host))
    except KeyboardInterrupt:
        # Ctrl-C in the instants before the signal watcher was in place or
        # after it was gone: whether every worker stopped cleanly is unknown.
        return 1


async def _supervise(
    main: Callable[..., Awaitable[object]],
    args: tuple[object, ...],
    options: PoolOptions,
    metrics_at: tuple[int | None, str | None],
) -> int:
    pool: WorkerPool | None = None
    failure: Exception | None = None
    stopping = False
    forced = False
    early = False  # stopped before the workers were ready

    def answer(signum: signal.Signals) -> None:
        nonlocal stopping, forced, early
        if signum in _STOP_SIGNALS:
            if pool is None or stopping:
                forced = pool is not None
                early = pool is None
                _say(f"{signum.name}: stopping the workers now")
                nursery.cancel_scope.cancel()  # the pool kills what still runs
            else:
                stopping = True
                _say(f"{signum.name}: stopping the workers (again to kill them at once)")
                nursery.start_soon(pool.shutdown)
        elif pool is None or stopping:
            state = "starting" if pool is None else "stopping"
            logger.warning("%s ignored: the workers are %s", signum.name, state)
        elif signum == signal.SIGHUP:
            nursery.start_soon(_logged, pool.restart, "restart")
        elif signum == signal.SIGTTIN:
            nursery.start_soon(_logged, pool.add_worker, "adding a worker")
        else:
            nursery.start_soon(_logged, pool.remove_worker, "removing a worker")

    async def watch(received: AsyncIterator[int]) -> None:
        async for signum in received:
            answer(signal.Signals(signum))

    async def serve(task_status: trio.TaskStatus[WorkerPool]) -> None:
        try:
            await _serve(main, args, options, task_status)
        finally:
            nursery.cancel_scope.cancel()  # the pool is gone: stop watching signals

    with trio.open_signal_receiver(*_SIGNALS) as received:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, received)
            try:
                pool = await nursery.start(serve)
                if metrics_at[0] is not None:
                    await nursery.start(_serve_metrics, pool, *metrics_at)
            except WorkerError as exc:
                _say(f"run_workers: {exc}")
                nursery.cancel_scope.cancel()
                return 1
            except Exception as exc:
                # Raised as itself (a BindError, say), not in an ExceptionGroup.
                failure = exc
                nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if pool is None or early:
        # Stopped by a signal before the workers were ready (the pool may
        # have become ready as the signal was handled: it was not counted).
        return 0
    if forced or pool.exit_status is None:
        return 1
    return pool.exit_status


async def _serve_metrics(
    pool: WorkerPool, port: int, host: str | None, task_status: trio.TaskStatus[None]
) -> None:
    from ..metrics import WorkerMetrics, serve_metrics

    metrics = WorkerMetrics(pool)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_metrics, metrics, port, host)
        _say(f"Metrics at http://{format_address(server.addresses[0])}/metrics")
        task_status.started()


async def _logged(operation: Callable[[], Awaitable[None]], what: str) -> None:
    try:
        await operation()
    except (WorkerError, ValueError, trio.ClosedResourceError) as exc:
        logger.error("%s failed: %s", what, exc)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
