"""The supervisor's handle on one worker process: spawn it, read its
heartbeats, notice its exit, signal it.

Theory of operation
-------------------
A worker is a ``multiprocessing`` process of the *spawn* kind, started from
the trio thread itself: spawning is a fork-and-exec plus a small write to a
pipe, quick enough not to need a thread, and a process's parent is the thread
that forked it, which had better be one that lives as long as the supervisor.

Its exit is watched through a pidfd (``os.pidfd_open``, Linux 5.3), which
becomes readable when the process ends, whatever descriptors its own children
inherited; elsewhere through multiprocessing's sentinel pipe. The exit status
is then collected with ``Process.exitcode``, a non-blocking ``waitpid``.

The process goes through three states: *starting* (spawned, not ready yet: its
launcher waits for it), *serving* (ready, and the pool's process for its
index), *retiring* (asked to stop, or killed on purpose). What its exit means
depends on the state it was in, and the pool decides (:mod:`._pool`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket as stdlib_socket
import time
from collections.abc import Callable
from typing import Literal

import trio

from .._server import ServerStatistics
from ._beat import ASK, BeatReader, MetricsSnapshots
from ._types import describe_exit, sum_statistics
from ._worker import WorkerSpec, worker_entry

__all__ = ["WorkerProcess"]

logger = logging.getLogger("trionet.workers")

State = Literal["starting", "serving", "retiring"]

# How often to collect the exit status of a process that has just ended (or
# was just killed): it is there within microseconds.
_REAP_POLL = 0.002

# Seconds to read what a process sent before it ended (its last beat): it is
# in the socket buffer already, and the end of stream follows, unless a child
# of the worker still holds its end of the socket pair.
_DRAIN_AFTER_EXIT = 1.0

_ZERO = sum_statistics(())


class WorkerProcess:
    """One worker process, from the supervisor's side.

    Attributes:
        index: The worker's index in the pool.
        generation: The process's generation at that index.
        pid: The process id.
        state: ``"starting"``, ``"serving"`` or ``"retiring"``.
        ready: Set at the first heartbeat that says the worker is ready.
        exited: Set once the process has ended and its status is collected.
        exitcode: The exit status (negative: the signal that killed it).
        servers: The counters of its last heartbeat.
        metrics: The metrics snapshots of its last heartbeat, by namespace.
        pending: The ``listen`` entries it said it does not serve yet.
        last_beat: When its last heartbeat came (trio's clock).
        ready_at: When it became ready.
        request_limit: Connections after which it is replaced
            (``max_requests`` plus its jitter), or ``None``.
        recycling: Its replacement for ``request_limit`` has begun.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        process: multiprocessing.process.BaseProcess,
        channel: stdlib_socket.socket,
        request_limit: int | None,
    ) -> None:
        self.index = spec.index
        self.generation = spec.generation
        self._process = process
        assert process.pid is not None
        self.pid: int = process.pid
        self._exit_fd, self._own_exit_fd = _exit_descriptor(process)
        self._channel = trio.SocketStream(trio.socket.from_stdlib_socket(channel))
        self.state: State = "starting"
        self.ready = trio.Event()
        self.exited = trio.Event()
        self.settled = trio.Event()  # ready or exited, whichever comes first
        self.exitcode: int | None = None
        self.servers: ServerStatistics = _ZERO
        self.metrics: MetricsSnapshots = {}
        self._asked = 0  # beats asked for (ask_for_beat)
        self._answered = 0  # of which the worker has answered
        self._beat_arrived = trio.lowlevel.ParkingLot()
        self._send_lock = trio.Lock()
        self.pending: tuple[str, ...] = ()
        self.last_beat = trio.current_time()
        self.ready_at: float | None = None
        self.request_limit = request_limit
        self.recycling = False

    def __repr__(self) -> str:
        return f"worker {self.index} (pid {self.pid})"

    @classmethod
    def spawn(cls, spec: WorkerSpec, request_limit: int | None) -> WorkerProcess:
        """Start a worker process running ``spec``.

        Raises:
            OSError: The process could not be started.
        """
        context = multiprocessing.get_context("spawn")
        ours, theirs = stdlib_socket.socketpair()
        try:
            process = context.Process(
                target=worker_entry,
                args=(spec, theirs),
                name=f"trionet-worker-{spec.index}",
                daemon=False,  # a daemonic process may not start processes of its own
            )
            # Pickling the arguments while spawning hands each socket's
            # descriptor to the child (multiprocessing's DupFd); nothing
            # else of ours reaches it (pass_fds closes the rest).
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its own copy now
        return cls(spec, process, ours, request_limit)

    async def run(self, on_beat: Callable[[WorkerProcess], None]) -> None:
        """Read heartbeats until the process ends, calling ``on_beat(self)``
        after each; return once it has ended and its status is collected.
        The handle's descriptors are closed then, whatever happens."""
        try:
            async with trio.open_nursery() as nursery:
                read_all = trio.Event()
                nursery.start_soon(self._read_beats, on_beat, read_all)
                await trio.lowlevel.wait_readable(self._exit_fd)
                with trio.move_on_after(_DRAIN_AFTER_EXIT):
                    await read_all.wait()
                nursery.cancel_scope.cancel()
            await self._reap(deadline=None)
        finally:
            if not self.exited.is_set():
                with trio.CancelScope(shield=True):
                    await self.force_close()

    async def _read_beats(
        self, on_beat: Callable[[WorkerProcess], None], read_all: trio.Event
    ) -> None:
        try:
            await self._read_beats_until_the_end(on_beat)
        finally:
            read_all.set()
            self._beat_arrived.unpark_all()  # nothing more will come

    async def _read_beats_until_the_end(self, on_beat: Callable[[WorkerProcess], None]) -> None:
        reader = BeatReader()
        while True:
            try:
                data = await self._channel.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            try:
                beats = reader.feed(data)
            except ValueError as exc:
                # Heard no more: if it does not exit, it stops beating and is
                # replaced for that.
                logger.warning("%r: %s", self, exc)
                return
            for beat in beats:
                self.last_beat = trio.current_time()
                self.servers = beat.servers
                self.metrics = beat.metrics
                self._answered = max(self._answered, beat.answered)
                self._beat_arrived.unpark_all()
                self.pending = beat.pending
                if beat.ready and not self.ready.is_set():
                    self.ready_at = self.last_beat
                    self.ready.set()
                    self.settled.set()
                on_beat(self)

    async def ask_for_beat(self) -> None:
        """Ask the worker for a heartbeat now, and return once it came (its
        counters and metrics are then fresh), or once the process ended.
        The caller bounds the wait."""
        async with self._send_lock:
            if self.exited.is_set():
                return
            try:
                await self._channel.send_all(ASK)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # it is ending: its last beat is what we have
            self._asked += 1
            asked = self._asked
        while self._answered < asked and not self.exited.is_set():
            await self._beat_arrived.park()

    def terminate(self) -> None:
        """Ask the worker to stop gracefully (SIGTERM)."""
        if self.exitcode is None:
            self._process.terminate()

    def kill(self) -> None:
        """Stop the worker at once (SIGKILL)."""
        if self.exitcode is None:
            self._process.kill()

    def describe_exit(self) -> str:
        """How it ended: ``exited with status 1``, ``was killed by SIGKILL``."""
        return describe_exit(self.exitcode)

    async def force_close(self) -> None:
        """Kill the process if it still runs, collect its status (waiting at
        most a few seconds), and close the handle."""
        self.kill()
        await self._reap(deadline=time.monotonic() + 5.0)

    async def _reap(self, *, deadline: float | None) -> None:
        if self.exited.is_set():
            return  # reaped and released already
        # The process has ended (or was killed just now): its status is a
        # non-blocking waitpid away, within microseconds.
        while (code := self._process.exitcode) is None:
            if deadline is not None and time.monotonic() > deadline:
                logger.error("%r: could not collect its exit status", self)
                break
            await trio.sleep(_REAP_POLL)
        self.exitcode = code
        self._release()

    def _release(self) -> None:
        if self.exited.is_set():
            return
        if self._own_exit_fd:
            trio.lowlevel.notify_closing(self._exit_fd)
            os.close(self._exit_fd)
            self._own_exit_fd = False
        self._channel.socket.close()
        if self.exitcode is not None:
            self._process.close()  # multiprocessing's pipes
        self.exited.set()
        self.settled.set()
        self._beat_arrived.unpark_all()


def _exit_descriptor(process: multiprocessing.process.BaseProcess) -> tuple[int, bool]:
    """A descriptor that becomes readable when ``process`` ends, and whether
    it is ours to close. Called right after the start, before anything could
    have collected the process's status (so its pid cannot be another's)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            return pidfd_open(process.pid), True
        except OSError:
            pass  # an old kernel, or a sandbox that forbids it
    return process.sentinel, False
