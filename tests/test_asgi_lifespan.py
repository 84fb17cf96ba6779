"""ASGI ``lifespan`` (asgiref ``specs/lifespan.rst``) and finding the
application (``module:attribute``, factories, ASGI 2): start-up before the
server listens, ``state`` copied into each request, shut-down after the
server stopped, each failure path, and ``lifespan_timeout`` biting."""

from __future__ import annotations

import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import trionet
import trionet.asgi
from tests._http import LOOPBACK, exchange, parse, request
from tests.test_asgi_http import Message, Receive, Send


class LifespanApp:
    """Speaks lifespan: puts a value in the state at start-up (or fails, or
    never answers), records the phases, and answers each request with the
    value its scope's state has."""

    def __init__(self, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.events: list[str] = []
        self.states: list[dict[str, Any]] = []

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            self.events.append(message["type"])
            if self.startup == "hang":
                await trio.sleep_forever()
            if self.startup == "failed":
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["db"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.events.append(message["type"])
            await send({"type": f"lifespan.shutdown.{self.shutdown}", "message": "oops"})
            return
        self.states.append(scope["state"])
        scope["state"]["scribble"] = True  # a copy per request: nobody else sees it
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["state"]["db"].encode()})


async def test_startup_state_and_shutdown() -> None:
    app = LifespanApp()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK))
        assert app.events == ["lifespan.startup"]
        raw = await exchange(server.port, request() + request(headers="Connection: close\r\n"))
        assert [r.body for r in parse(raw, [("GET", "/")] * 2)] == [b"connected", b"connected"]
        await server.shutdown()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]
    assert app.states == [{"db": "connected", "scribble": True}] * 2
    assert app.states[0] is not app.states[1]


async def test_a_failed_startup_raises_and_binds_nothing() -> None:
    app = LifespanApp(startup="failed")
    with pytest.raises(trionet.asgi.LifespanError, match="startup failed: no database"):
        await serve_and_stop(app)
    assert app.events == ["lifespan.startup"]


async def serve_and_stop(app: trionet.asgi.ASGIApp, **options: Any) -> None:
    """Start ``app`` and stop it; raise what ``serve`` raised, as itself."""
    try:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK, **options))
            await server.shutdown()
    except ExceptionGroup as group:
        [failure] = group.exceptions
        raise failure from None


async def test_a_failed_shutdown_is_reported() -> None:
    app = LifespanApp(shutdown="failed")
    with pytest.raises(trionet.asgi.LifespanError, match="shutdown failed: oops"):
        await serve_and_stop(app)


async def app_without_lifespan(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']!r}")
    await send({"type": "http.response.start", "status": 204})
    await send({"type": "http.response.body"})


async def test_auto_tolerates_an_app_without_lifespan_and_on_does_not() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app_without_lifespan, 0, LOOPBACK))
        [reply] = parse(
            await exchange(server.port, request(headers="Connection: close\r\n")), [("GET", "/")]
        )
        assert reply.status == 204
        await server.shutdown()
    with pytest.raises(trionet.asgi.LifespanError, match="raised ValueError"):
        await serve_and_stop(app_without_lifespan, lifespan="on")


async def test_off_never_calls_the_lifespan() -> None:
    app = LifespanApp()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK, lifespan="off"))
        await server.shutdown()
    assert app.events == []


async def test_lifespan_timeout_bites(autojump_clock: trio.abc.Clock) -> None:
    app = LifespanApp(startup="hang")
    start = trio.current_time()
    with pytest.raises(trionet.asgi.LifespanError, match="within 7 s"):
        await serve_and_stop(app, lifespan_timeout=7)
    assert trio.current_time() - start == pytest.approx(7)


def test_options_are_checked() -> None:
    async def main(**options: Any) -> None:
        await trionet.asgi.serve(app_without_lifespan, 0, LOOPBACK, **options)

    for options, error in [
        ({"lifespan": "maybe"}, ValueError),
        ({"lifespan_timeout": -1}, ValueError),
        ({"root_path": "api"}, ValueError),
        ({"compression": "yes"}, TypeError),
        ({"max_message_size": 0}, ValueError),
    ]:
        with pytest.raises(error):
            trio.run(partial(main, **options))


# -- finding the application -------------------------------------------------------


APP_MODULE = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"three"})

class Two:  # ASGI 2: the class is called with the scope
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"two"})

def create_app():
    return app

class Holder:
    inner = app
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "asgi_sample_app.py").write_text(APP_MODULE)
    yield tmp_path
    sys.modules.pop("asgi_sample_app", None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize(
    ("spec", "factory", "body"),
    [
        ("asgi_sample_app:app", False, b"three"),
        ("asgi_sample_app:Two", False, b"two"),
        ("asgi_sample_app:create_app", True, b"three"),
        ("asgi_sample_app:Holder.inner", False, b"three"),
    ],
)
async def test_load_app(app_dir: Path, spec: str, factory: bool, body: bytes) -> None:
    app = trionet.asgi.load_app(spec, app_dir=str(app_dir), factory=factory)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK))
        raw = await exchange(server.port, request(headers="Connection: close\r\n"))
        nursery.cancel_scope.cancel()
    [reply] = parse(raw, [("GET", "/")])
    assert reply.body == body


@pytest.mark.parametrize(
    ("spec", "factory", "message"),
    [
        ("no_colon", False, "MODULE:ATTRIBUTE"),
        ("no_such_module_here:app", False, "no module named"),
        ("asgi_sample_app:missing", False, "has no attribute 'missing'"),
        ("asgi_sample_app:create_app", False, "use --factory"),
    ],
)
def test_load_app_says_what_is_wrong(app_dir: Path, spec: str, factory: bool, message: str) -> None:
    with pytest.raises(trionet.asgi.AppLoadError, match=message):
        trionet.asgi.load_app(spec, app_dir=str(app_dir), factory=factory)


def test_the_shutdown_runs_when_trionet_run_stops_on_a_signal() -> None:
    """``trionet.run`` cancels what is left of ``main`` as soon as every
    server has drained: the application's lifespan call must still get
    ``lifespan.shutdown``, and answer it. (The race is timing's: under load
    it showed in ``test_cli_serve.py``'s request-in-flight test, which
    failed most runs without the lifespan call's own shielded scope.)"""
    app = LifespanApp()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK))
            os.kill(os.getpid(), signal.SIGTERM)  # as a process manager stops us
            await trio.sleep_forever()

    assert trionet.run(main, on_signal=None) is None
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]
