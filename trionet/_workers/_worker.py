"""Inside a worker process: who it is, and how it runs the program.

Theory of operation
-------------------
The supervisor starts each worker with ``multiprocessing``'s *spawn* method:
a fresh interpreter that imports the program's main module (under the name
``__mp_main__``, so its ``if __name__ == "__main__":`` block does not run
again) and unpickles :class:`WorkerSpec` and one end of a socket pair. The
listening sockets ride in the spec: pickled while a process is being spawned,
a socket becomes a descriptor handed to the child (``pass_fds``), so the
worker holds the very sockets the supervisor bound.

:func:`worker_entry` then

* leaves SIGINT and SIGHUP to the supervisor: Ctrl-C reaches every process
  of the terminal's group, and a worker that took it as its own stop signal
  would see the supervisor's SIGTERM that follows as a second signal, the one
  that stops at once;
* makes every inherited descriptor non-inheritable, so that a program the
  worker runs gets none of them;
* records its identity for :func:`current_worker`, and puts the sockets in
  this process's :class:`~trionet._listener_pool.ListenerPool`, where the
  program's ``serve_*`` calls find them;
* runs ``main(*args)`` under :func:`trionet.run`'s machinery, stopped by
  SIGTERM: every server drains within ``grace``, then the process exits 0.

Beside ``main`` two tasks talk to the supervisor over the socket pair: one
sends a heartbeat every ``heartbeat_interval`` (at once, the first time the
worker is ready: when it serves every ``listen`` entry, or, given none, once
its first server listens; and at once when the supervisor asks, see
:mod:`._beat`), with the servers' summed counters and the snapshots of the
process's :class:`~trionet.metrics.Metrics`; the other reads the
supervisor's requests until the end of the stream. The supervisor keeps its
end open until the worker has exited, so an end of stream means the
supervisor died: the worker stops as if it had been sent SIGTERM, and no
orphan is left serving. Once its servers have drained, a stopping worker
sends one last beat, so that the supervisor's totals have its final counts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from .._listener_pool import (
    ListenerPool,
    ListenKey,
    PooledListener,
    current_listener_pool,
)
from .._run import run
from .._server import Server, ServerRegistry, ServerStatistics, current_registry
from ..metrics._collector import process_snapshots
from ._beat import ASK, Beat
from ._types import Worker, sum_statistics

__all__ = ["HandedListener", "WorkerSpec", "current_worker", "worker_entry"]

logger = logging.getLogger("trionet.workers")

# How often a worker that is not ready yet looks again: being ready is a
# matter of its servers starting, which nothing announces.
_READY_POLL = 0.01

# Seconds the last beat may take (the supervisor reads it at once; this only
# bounds a supervisor that stopped reading).
_LAST_BEAT_TIMEOUT = 1.0

# This process's identity: set once, when the process starts as a worker.
_identity: Worker | None = None


def current_worker() -> Worker | None:
    """Who this process is in its worker pool.

    Example::

        worker = trionet.current_worker()
        if worker is None or worker.index == 0:
            print(f"listening on port {server.port}")

    Returns:
        A :class:`~trionet.Worker` inside a worker of
        :func:`~trionet.run_workers` or :func:`~trionet.serve_workers`;
        ``None`` in any other process (the supervisor included).
    """
    return _identity


#: A listening socket a worker gets: the ``listen`` entry it answers (``None``
#: for one matched by address, as systemd's), its sockets (none with
#: ``reuse_port``), the port to bind with ``reuse_port``, and systemd's name.
HandedListener = tuple[ListenKey | None, list[stdlib_socket.socket], int | None, str | None]


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process is given (pickled by ``multiprocessing``)."""

    main: Callable[..., Awaitable[object]]
    args: tuple[object, ...]
    index: int
    count: int
    generation: int
    grace: float
    heartbeat_interval: float
    reuse_port: bool
    listeners: tuple[HandedListener, ...]


def worker_entry(spec: WorkerSpec, channel: stdlib_socket.socket) -> None:
    """The function a worker process runs (the ``multiprocessing`` target).

    Args:
        spec: What to run, and with which sockets.
        channel: This worker's end of the socket pair to the supervisor.
    """
    global _identity
    # The supervisor owns these (see the module's theory of operation). A
    # handler that does nothing, not SIG_IGN: a program the worker runs gets
    # the default back (exec resets handled signals, not ignored ones).
    signal.signal(signal.SIGINT, _leave_to_the_supervisor)
    signal.signal(signal.SIGHUP, _leave_to_the_supervisor)
    _close_on_exec_everything()
    _identity = Worker(spec.index, spec.count, os.getpid(), spec.generation)
    pool = ListenerPool(
        [PooledListener(key, sockets, port, name) for key, sockets, port, name in spec.listeners],
        reuse_port=spec.reuse_port,
    )
    current_listener_pool.set(pool)  # before trio.run, so that every task sees it
    run(
        _serve,
        spec,
        pool,
        channel,
        grace=spec.grace,
        signals=(signal.SIGTERM,),
        on_signal=None,
    )


def _leave_to_the_supervisor(signum: int, frame: object) -> None:
    pass


def _close_on_exec_everything() -> None:
    """Mark every descriptor above stderr close-on-exec: ``pass_fds`` made
    the ones handed to us inheritable, and multiprocessing's own (the pipe
    whose end tells the supervisor we exited) must not live on in a program
    this worker runs."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return  # no /proc: Python's own descriptors are non-inheritable already
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory's own descriptor, closed by now


class _Requests:
    """The beats the supervisor asked for (see :mod:`._beat`): how many
    requests were read, and a wake-up for the task that sends beats."""

    def __init__(self) -> None:
        self.count = 0
        self.arrived = trio.Event()

    def add(self, count: int) -> None:
        self.count += count
        self.arrived.set()

    def reset(self) -> None:
        if self.arrived.is_set():
            self.arrived = trio.Event()


async def _serve(
    spec: WorkerSpec, pool: ListenerPool, channel_socket: stdlib_socket.socket
) -> None:
    registry = current_registry.get()
    assert registry is not None  # we run under trionet.run
    channel = trio.SocketStream(trio.socket.from_stdlib_socket(channel_socket))
    beats = _Beats(channel, pool, registry)
    requests = _Requests()
    async with channel:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(beats.send_every, spec.heartbeat_interval, requests)
                nursery.start_soon(_watch_supervisor, channel, registry, requests)
                await spec.main(*spec.args)
                # main returned by itself: the supervisor sees the exit and decides.
                nursery.cancel_scope.cancel()
        finally:
            # The last word, once every server has stopped (trionet.run
            # cancels main after the drain): the final counts, so that the
            # supervisor's totals miss nothing of this process.
            with trio.CancelScope(shield=True), trio.move_on_after(_LAST_BEAT_TIMEOUT):
                await beats.send(requests.count)


def _readiness(pool: ListenerPool, registry: ServerRegistry) -> tuple[bool, tuple[str, ...]]:
    """Whether the worker serves every ``listen`` entry (or, with none, has
    a server at all), and the entries it does not serve yet. An entry is
    served once a server that took it runs on its addresses: a UDP server
    for a ``"udp"`` entry (whose address a TCP server may have too)."""
    from .._udp._server import UDPServer

    expected = [entry for entry in pool.entries if entry.key is not None]
    if not expected:
        return bool(registry.servers), ()
    served = {
        (isinstance(server, UDPServer), address)
        for server in registry.servers
        for address in server.addresses
    }
    pending = tuple(
        str(entry.key)
        for entry in expected
        if entry.key is not None
        and not (entry.claimed and {(entry.key.udp, a) for a in entry.claimed} <= served)
    )
    return not pending, pending


class _Beats:
    """What the heartbeats report, and sending them."""

    def __init__(
        self, channel: trio.SocketStream, pool: ListenerPool, registry: ServerRegistry
    ) -> None:
        self._channel = channel
        self._pool = pool
        self._registry = registry
        # The last counters of every server this worker ran: a server that
        # stopped still counts in the worker's totals.
        self._seen: dict[Server, ServerStatistics] = {}
        self.ready = False
        self._pending: tuple[str, ...] = ()
        self._lock = trio.Lock()  # the periodic beat and the last one

    def poll(self) -> bool:
        """Note the servers' counters; return whether the worker has just
        become ready."""
        for server in list(self._registry.servers):
            self._seen[server] = server.statistics()
        now_ready, self._pending = _readiness(self._pool, self._registry)
        became_ready = now_ready and not self.ready
        self.ready = self.ready or now_ready
        if became_ready:
            _note_unused(self._pool)
        return became_ready

    async def send(self, answered: int) -> bool:
        """Send a beat answering ``answered`` requests; ``False`` if the
        supervisor is gone."""
        async with self._lock:
            self.poll()
            beat = Beat(
                self.ready,
                sum_statistics(self._seen.values()),
                () if self.ready else self._pending,
                metrics=process_snapshots(),
                answered=answered,
            )
            try:
                await self._channel.send_all(beat.encode())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False  # _watch_supervisor acts on it
            return True

    async def send_every(self, interval: float, requests: _Requests) -> None:
        """Beat every ``interval``, at once when the worker becomes ready, and
        at once when the supervisor asks."""
        next_beat = trio.current_time()
        answered = 0
        while True:
            became_ready = self.poll()
            asked = requests.count > answered
            if became_ready or asked or trio.current_time() >= next_beat:
                requests.reset()
                answered = requests.count
                if not await self.send(answered):
                    return
                next_beat = trio.current_time() + interval
            with trio.move_on_after(interval if self.ready else min(interval, _READY_POLL)):
                await requests.arrived.wait()


def _note_unused(pool: ListenerPool) -> None:
    for entry in pool.unclaimed():
        # Kept open (it may be asked for later), never closed unseen.
        logger.debug("no server of this worker uses %s", entry.describe())


async def _watch_supervisor(
    channel: trio.SocketStream, registry: ServerRegistry, requests: _Requests
) -> None:
    while True:
        try:
            data = await channel.receive_some()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            break
        requests.add(data.count(ASK))
    if not registry.stopping:
        logger.warning(
            "worker %d (pid %d): the supervisor is gone; shutting down",
            _identity.index if _identity else -1,
            os.getpid(),
        )
        # Stop the way the supervisor would have asked: trionet.run drains
        # every server on this signal.
        os.kill(os.getpid(), signal.SIGTERM)
