"""Real frameworks on ``trionet.asgi.serve``: FastAPI (pydantic validation,
streaming, background tasks, lifespan state, a sync endpoint in a worker
thread, WebSocket), Starlette (a stream that ends when the client leaves)
and Quart-Trio, driven over loopback by trionet's client, httpx, curl and
Node's ``http`` and ``ws`` (under ``trionet serve``, in
``tests/test_cli_serve_frameworks.py``).
The frameworks are test dependencies only."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import trionet
import trionet.asgi
import trionet.http
import trionet.websocket
from tests._peers import require_executable
from tests._wait import wait_until
from trionet.testing import TLSCertificates

APPS = Path(__file__).resolve().parent / "asgi_apps"
LOOPBACK = "127.0.0.1"
DEADLINE = 10


@pytest.fixture(autouse=True, scope="module")
def _apps_importable() -> Any:
    sys.path.insert(0, str(APPS))
    yield
    sys.path.remove(str(APPS))


@asynccontextmanager
async def serving(spec: str) -> AsyncIterator[str]:
    """The application ``spec`` of ``tests/asgi_apps`` served on loopback;
    yields its base URL."""
    app = trionet.asgi.load_app(spec)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK))
        yield f"http://{LOOPBACK}:{server.port}"
        await server.shutdown()


async def test_fastapi_validates_json_and_runs_background_tasks() -> None:
    from fastapi_app import DONE  # type: ignore[import-not-found]

    async with serving("fastapi_app:app") as base, trionet.http.Client() as client:
        with trio.fail_after(DEADLINE):
            response = await client.post(f"{base}/items", json={"name": "pen", "price": 2.5})
            assert response.status == 200
            assert await response.json() == {"name": "pen", "total": 3.0, "tags": []}
            # pydantic refuses; FastAPI answers 422 with the details.
            bad = await client.post(f"{base}/items", json={"name": "", "price": -1})
            assert bad.status == 422
            errors = (await bad.json())["detail"]
            assert {error["loc"][-1] for error in errors} == {"name", "price"}
            await wait_until(lambda: "stored pen" in DONE)


async def test_fastapi_lifespan_state_sync_endpoint_and_stream() -> None:
    async with serving("fastapi_app:app") as base, trionet.http.Client() as client:
        with trio.fail_after(DEADLINE):
            state = await (await client.get(f"{base}/state")).json()
            assert state == {"greeting": "hello from the lifespan", "backend": "trio"}
            threads = await (await client.get(f"{base}/sync")).json()
            assert threads["thread"] != threads["main"]  # anyio's worker thread
            stream = await client.get(f"{base}/stream?count=5")
            assert stream.headers.get("transfer-encoding") == "chunked"
            assert await stream.read() == b"0\n1\n2\n3\n4\n"


async def test_fastapi_websocket() -> None:
    from fastapi_app import DONE

    async with serving("fastapi_app:app") as base:
        url = base.replace("http://", "ws://") + "/ws"
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(url, subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                await ws.send("hi")
                assert (await ws.receive()).data == "echo: hi"
                await ws.aclose(4002)
            await wait_until(lambda: "ws closed 4002" in DONE)


async def test_starlette_with_httpx() -> None:
    async with serving("starlette_app:app") as base:
        with trio.fail_after(DEADLINE):
            async with httpx.AsyncClient() as client:
                home = await client.get(f"{base}/")
                posted = await client.post(f"{base}/json", json={"a": [1, 2]})
    assert (home.status_code, home.text) == (200, "Hello, Starlette")
    assert posted.json() == {"received": {"a": [1, 2]}, "path": "/json"}


async def test_a_starlette_stream_ends_when_the_client_leaves() -> None:
    """Starlette listens for ``http.disconnect`` while it streams: the
    never-ending response must stop once the client is gone."""
    app = trionet.asgi.load_app("starlette_app:app")
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK))
        with trio.fail_after(DEADLINE):
            conn = await trionet.connect_tcp(LOOPBACK, server.port)
            await conn.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            async for event in conn:
                received += event.data  # type: ignore[union-attr]
                if b"tick 3" in received:
                    break
            await conn.aclose()
            # The handler ends: the connection leaves the server's count.
            await wait_until(lambda: server.statistics().active == 0)
        await server.shutdown()


async def test_quart_trio() -> None:
    async with serving("quart_app:app") as base, trionet.http.Client() as client:
        with trio.fail_after(DEADLINE):
            index = await client.get(f"{base}/")
            assert (index.status, await index.text()) == (200, "Hello, Quart-Trio")
            posted = await (await client.post(f"{base}/json", json={"x": 1})).json()
            assert posted == {"received": {"x": 1}, "started": True}
            async with trionet.websocket.connect(base.replace("http", "ws") + "/ws") as ws:
                await ws.send("hello")
                assert (await ws.receive()).data == "quart: hello"


async def test_curl_posts_a_file_to_fastapi(tmp_path: Path) -> None:
    curl = require_executable("curl", "apt-get install curl")
    async with serving("fastapi_app:app") as base:
        with trio.fail_after(DEADLINE):
            result = await trio.run_process(
                [
                    curl,
                    "-sS",
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "expect: 100-continue",
                    "--data",
                    json.dumps({"name": "book", "price": 10, "tags": ["x"]}),
                    f"{base}/items",
                ],
                capture_stdout=True,
            )
    assert json.loads(result.stdout) == {"name": "book", "total": 12.0, "tags": ["x"]}


async def test_streams_over_https_keep_the_connection_usable(trionet_tls: TLSCertificates) -> None:
    """A streaming response is sent while FastAPI waits in ``receive`` for
    the client to leave; the end of the response ends that wait in the
    middle of a TLS read. The same connection must serve the next request,
    and the scope must say TLS."""
    app = trionet.asgi.load_app("fastapi_app:app")
    async with trio.open_nursery() as nursery:
        start = partial(
            trionet.asgi.serve, app, 0, LOOPBACK, ssl_context=trionet_tls.server_context
        )
        server = await nursery.start(start)
        base = f"https://localhost:{server.port}"
        with trio.fail_after(DEADLINE):
            async with trionet.http.Client(ssl_context=trionet_tls.client_context) as client:
                for count in (3, 5, 2):
                    stream = await client.get(f"{base}/stream?count={count}")
                    expected = "".join(f"{n}\n" for n in range(count)).encode()
                    assert await stream.read() == expected
                statistics = client.statistics()
        assert statistics.connections_opened == 1  # one TLS connection, kept alive
        await server.shutdown()
