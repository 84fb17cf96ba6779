"""FastAPI, Starlette and Quart-Trio applications as users run them: each
served by ``trionet serve MODULE:APP --app-dir DIR --port 0`` in a process
of its own, driven over loopback by curl, trionet's client and WebSocket,
httpx, and Node's ``http`` and ``ws``, then stopped with Ctrl-C (SIGINT).
What the application does out of sight (a background task, the end of a
WebSocket) it prints, and the test reads it from the process's output."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

import trionet
import trionet.http
import trionet.websocket
from tests._node import node_package, run_node
from tests._peers import require_executable
from tests._process import OutputReader, read_port, running
from tests.test_cli_serve import SERVING, serve_command, stop

DEADLINE = 20


@asynccontextmanager
async def served(app: str) -> AsyncIterator[tuple[str, OutputReader]]:
    """``trionet serve APP`` from ``tests/asgi_apps``; yields its base URL and
    its output (stderr included). On the way out it is stopped with SIGINT,
    must exit 0, and must have printed no traceback."""
    async with running(serve_command(app), stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        yield f"http://127.0.0.1:{port}", output
        assert await stop(process) == 0
    assert not any("Traceback" in line for line in output.lines), output.lines


async def curl(*arguments: str) -> bytes:
    program = require_executable("curl", "apt-get install curl")
    result = await trio.run_process([program, "-sS", *arguments], capture_stdout=True)
    return bytes(result.stdout)


@pytest.mark.node
async def test_fastapi_under_trionet_serve() -> None:
    node_package("ws")
    async with served("fastapi_app:app") as (base, output):
        with trio.fail_after(DEADLINE):
            # curl, waiting for 100 Continue before its JSON body.
            posted = await curl(
                "-H",
                "content-type: application/json",
                "-H",
                "expect: 100-continue",
                "--data",
                json.dumps({"name": "book", "price": 10, "tags": ["x"]}),
                f"{base}/items",
            )
            assert json.loads(posted) == {"name": "book", "total": 12.0, "tags": ["x"]}
            await output.wait_for(r"^done: stored book$")  # the background task ran
            # trionet's client: the lifespan's state, anyio on trio, a
            # plain def endpoint in a worker thread.
            async with trionet.http.Client() as client:
                state = await (await client.get(f"{base}/state")).json()
                assert state == {"greeting": "hello from the lifespan", "backend": "trio"}
                sync = await (await client.get(f"{base}/sync")).json()
                assert sync["thread"] != sync["main"]
                invalid = await client.post(f"{base}/items", json={"name": "", "price": -1})
                assert invalid.status == 422  # pydantic said no
            # Node's http (JSON, a chunked stream) and ws (a subprotocol, a
            # close code).
            report = await run_node("asgi_client.js", base)
            await output.wait_for(r"^done: ws closed 4003$")
    assert report["item"] == {"status": 200, "body": {"name": "lamp", "total": 12.0, "tags": []}}
    assert report["invalid"] == {"status": 422}
    assert report["stream"] == {
        "status": 200,
        "transferEncoding": "chunked",
        "body": "0\n1\n2\n3\n",
    }
    assert report["ws"] == {"protocol": "chat", "echo": "echo: from node", "close": {"code": 4003}}


async def test_starlette_under_trionet_serve() -> None:
    async with served("starlette_app:app") as (base, _):
        with trio.fail_after(DEADLINE):
            assert await curl(f"{base}/") == b"Hello, Starlette"
            async with httpx.AsyncClient() as client:
                echoed = (await client.post(f"{base}/json", json={"n": [1, 2]})).json()
            assert echoed == {"received": {"n": [1, 2]}, "path": "/json"}
            # A stream that never ends: the client reads some and leaves.
            async with (
                trionet.http.Client() as client,
                client.stream("GET", f"{base}/forever") as forever,
            ):
                assert forever.headers["transfer-encoding"] == "chunked"
                async for chunk in forever:
                    assert chunk.startswith(b"tick 0\n")
                    break
            async with trionet.websocket.connect(f"{base.replace('http', 'ws')}/ws") as ws:
                await ws.send("text")
                assert (await ws.receive()).data == "text"
                await ws.send(b"\x00\xff" * 1000)
                assert (await ws.receive()).data == b"\x00\xff" * 1000


async def test_quart_trio_under_trionet_serve() -> None:
    async with served("quart_app:app") as (base, _):
        with trio.fail_after(DEADLINE):
            assert await curl(f"{base}/") == b"Hello, Quart-Trio"
            async with trionet.http.Client() as client:
                posted = await (await client.post(f"{base}/json", json={"x": 1})).json()
            # started: Quart's before_serving ran, through the lifespan.
            assert posted == {"received": {"x": 1}, "started": True}
            async with trionet.websocket.connect(f"{base.replace('http', 'ws')}/ws") as ws:
                await ws.send("hello")
                assert (await ws.receive()).data == "quart: hello"
