"""The ASGI ``lifespan`` protocol: the application's start-up before the
server listens, and its shut-down after the server stopped.

Theory of operation
-------------------
The app is called once with a ``lifespan`` scope, in a task of
:func:`~trionet.asgi.serve`'s own nursery, and lives as long as the server.
Its ``receive`` gives ``lifespan.startup`` at once, and
``lifespan.shutdown`` once the server has stopped; the server waits for the
app's answer to each (``….complete`` or ``….failed``) within
``lifespan_timeout``. The scope's ``state`` dict is what the app fills at
start-up; every request's scope gets a shallow copy of it.

``lifespan="auto"`` tolerates an app that does not speak the protocol: if it
raises (or returns) before it answered ``lifespan.startup``, that is logged
at debug level and the server serves without a lifespan, as uvicorn and
hypercorn do. ``"on"`` makes that an error, and ``"off"`` never calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._scope import ASGI_VERSION

__all__ = ["LIFESPAN_MODES", "Lifespan", "LifespanError"]

logger = logging.getLogger("trionet.asgi")

#: The values of ``lifespan``.
LIFESPAN_MODES = ("auto", "on", "off")

ASGIApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class LifespanError(Exception):
    """The application's lifespan start-up (or shut-down) failed: it sent
    ``lifespan.startup.failed``, raised, or did not answer in time
    (``lifespan_timeout``)."""


class Lifespan:
    """One application's lifespan (see the module's theory of operation)."""

    def __init__(self, app: ASGIApp, mode: str, timeout: float) -> None:
        self._app = app
        self._mode = mode
        self._timeout = timeout
        self.state: dict[str, Any] = {}
        self._events: list[dict[str, Any]] = []
        self._asked = trio.Event()  # a lifespan.* event waits in _events
        self._answer: dict[str, Any] | None = None
        self._answered = trio.Event()
        self._ended = trio.Event()  # the app's lifespan call is over
        self._scope = trio.CancelScope(shield=True)
        self._failure: BaseException | None = None
        self.supported = mode != "off"
        self._phase = "startup"

    async def startup(self, nursery: trio.Nursery) -> None:
        """Run the app's start-up; return once it said ``complete``.

        Raises:
            LifespanError: It failed (or, with ``lifespan="on"``, does not
                speak the protocol).
        """
        if self._mode == "off":
            return
        nursery.start_soon(self._run)
        await self._ask("lifespan.startup")

    async def shutdown(self) -> None:
        """Run the app's shut-down (after the server stopped).

        Raises:
            LifespanError: It failed.
        """
        if not self.supported or self._ended.is_set():
            return
        self._phase = "shutdown"
        await self._ask("lifespan.shutdown")

    async def _ask(self, kind: str) -> None:
        self._answer = None
        self._answered = trio.Event()
        self._events.append({"type": kind})
        self._asked.set()
        timeout = self._timeout
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:

                async def ended() -> None:
                    await self._ended.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(ended)
                await self._answered.wait()
                nursery.cancel_scope.cancel()
        answer = self._answer
        if answer is None and self._ended.is_set():
            self._ended_without_answer(kind)
            return
        if answer is None:
            raise LifespanError(f"the application did not answer {kind} within {timeout:g} s")
        if answer["type"] == f"{kind}.failed":
            message = answer.get("message") or ""
            raise LifespanError(f"the application's {self._phase} failed: {message}".rstrip(": "))

    def _ended_without_answer(self, kind: str) -> None:
        failure = self._failure
        if self._phase == "startup" and self._mode == "auto":
            # Not an app that speaks lifespan (most raise on an unknown scope).
            self.supported = False
            logger.debug(
                "the application does not support lifespan (%r): going on without", failure
            )
            return
        what = f"raised {failure!r}" if failure is not None else "returned"
        raise LifespanError(f"the application {what} before it answered {kind}") from failure

    async def _receive(self) -> dict[str, Any]:
        while not self._events:
            self._asked = trio.Event()
            await self._asked.wait()
        return self._events.pop(0)

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        expected = (f"lifespan.{self._phase}.complete", f"lifespan.{self._phase}.failed")
        if kind in expected and not self._answered.is_set():
            self._answer = message
            self._answered.set()
        elif not str(kind).startswith("lifespan."):
            raise ValueError(f"not an ASGI lifespan message: {kind!r}")
        else:
            # Out of turn (a framework cancelled mid-start-up reports a failed
            # shut-down): nobody is waiting for it.
            logger.debug("lifespan message %r during %s ignored", kind, self._phase)
        await trio.lowlevel.checkpoint()

    def cancel(self) -> None:
        """End the app's lifespan call (once its shut-down is over, or the
        server failed)."""
        self._scope.cancel()

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            # Shielded: a stop of the program (trionet.run cancels what is
            # left once the servers have drained) must not end the call
            # before it got lifespan.shutdown; serve() ends it with cancel().
            with self._scope:
                await self._app(scope, self._receive, self._send)
        except Exception as exc:
            self._failure = exc
            if self._answered.is_set() or self._mode == "on":
                logger.error("the application's lifespan raised", exc_info=exc)
        finally:
            self._ended.set()
