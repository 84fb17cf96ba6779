"""``trionet.run``: one way to run a server program.

Theory of operation
-------------------
A server program should stop the way process managers ask it to: SIGTERM
(systemd, Kubernetes, Docker) or SIGINT (Ctrl-C) starts a graceful shutdown,
a second signal forces it, and the process exits 0 either way. Done by hand
with ``trio.run`` this goes wrong in two ways: trio delivers
``KeyboardInterrupt`` wherever the program happens to be, often wrapped in an
``ExceptionGroup`` that ``except KeyboardInterrupt`` does not catch (a
traceback and exit status 1), and SIGTERM kills without draining.

:func:`run` watches the signals from before ``main`` starts
(``trio.open_signal_receiver``, so trio raises no ``KeyboardInterrupt``),
and every ``serve_*`` started in ``main`` (in any task: tasks inherit the
context) registers its :class:`~trionet.Server` with this run. The first
signal shuts every registered server down concurrently, each with
:meth:`Server.shutdown(grace) <trionet.Server.shutdown>`; when they are done,
what is left of ``main`` (a ticker, a client loop) is cancelled. The second
signal cancels everything at once.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, TypeVarTuple

import trio

from . import _checks as checks
from ._server import DEFAULT_SHUTDOWN_GRACE, ServerRegistry, current_registry

__all__ = ["run"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: Called on each signal: ``on_signal(signum, forced)``.
SignalHook = Callable[[signal.Signals, bool], None]


def _announce(signum: signal.Signals, forced: bool) -> None:
    if forced:
        message = f"{signum.name}: stopping now"
    else:
        message = f"{signum.name}: shutting down (again to stop at once)"
    print(message, file=sys.stderr, flush=True)


def run(
    main: Callable[[*Ts], Awaitable[T]],
    *args: *Ts,
    grace: float = DEFAULT_SHUTDOWN_GRACE,
    signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM),
    on_signal: SignalHook | None = _announce,
) -> T | None:
    """Run ``main(*args)`` under trio until it returns or a signal stops it.

    The first of ``signals`` starts a graceful shutdown of every server
    started inside ``main`` (any ``serve_*``, in any of its tasks): each stops
    accepting, says its protocol's goodbye and waits up to ``grace`` seconds
    for its handlers; then whatever else ``main`` still runs is cancelled. A
    second signal cancels everything at once. Either way ``run`` returns
    normally, so the program exits with status 0, without a traceback. A
    server started after the first signal is shut down as soon as it starts.

    Example::

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(trionet.http.serve, app, 8080)

        if __name__ == "__main__":
            trionet.run(main)

    Args:
        main: The async function to run.
        *args: Positional arguments for ``main``.
        grace: Seconds each server's handlers get to finish after the first
            signal (default 10, :data:`trionet.DEFAULT_SHUTDOWN_GRACE`).
        signals: The signals that stop the program (default SIGINT and
            SIGTERM).
        on_signal: Called with each signal received and whether it forces
            the stop (the second), once the servers have stopped accepting;
            by default a line on stderr such as
            ``SIGTERM: shutting down (again to stop at once)``. ``None`` says
            nothing.

    Returns:
        What ``main`` returned, or ``None`` if a signal stopped it first.

    Raises:
        ValueError: ``grace`` is negative, or ``signals`` is empty.
        Exception: What ``main`` raised (itself, not wrapped in an
            ``ExceptionGroup``); ``SystemExit`` too, so that ``sys.exit(n)``
            in ``main`` ends the program with status ``n``.
    """
    checks.non_negative_seconds("grace", grace)
    watched = [signal.Signals(signum) for signum in signals]
    if not watched:
        raise ValueError("signals must name at least one signal")
    try:
        return trio.run(_run, main, args, grace, watched, on_signal)
    except KeyboardInterrupt:
        # Ctrl-C in the instants before the signal watcher was in place or
        # after it was gone: a stop all the same, not a crash.
        return None


async def _run(
    main: Callable[..., Awaitable[T]],
    args: tuple[object, ...],
    grace: float,
    signals: list[signal.Signals],
    on_signal: SignalHook | None,
) -> T | None:
    registry = ServerRegistry(grace)
    current_registry.set(registry)  # inherited by every task started below
    result: list[T] = []
    failure: list[Exception | SystemExit] = []
    main_scope = trio.CancelScope()

    async def run_main(watcher: trio.CancelScope) -> None:
        try:
            with main_scope:
                result.append(await main(*args))
        except (Exception, SystemExit) as exc:  # sys.exit(n) in main: exit n, no group
            failure.append(exc)
        finally:
            watcher.cancel()  # main is over: stop watching for signals

    async def shut_down(task_status: trio.TaskStatus[None]) -> None:
        servers = list(registry.servers)
        for server in servers:
            server._core._begin_shutdown()  # stop accepting now, before started()
        task_status.started()
        async with trio.open_nursery() as nursery:
            for server in servers:
                nursery.start_soon(server.shutdown, grace)
        main_scope.cancel()

    with trio.open_signal_receiver(*signals) as received:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_main, nursery.cancel_scope)
            async for signum in received:
                forced = registry.stopping
                if forced:
                    main_scope.cancel()
                else:
                    registry.stopping = True
                    await nursery.start(shut_down)
                # Said once it is so: after the first signal, every server has
                # stopped accepting.
                if on_signal is not None:
                    on_signal(signal.Signals(signum), forced)
    if failure:
        raise failure[0]
    return result[0] if result else None
