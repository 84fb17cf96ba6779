"""Plain ASGI applications (no framework) for ``trionet serve`` tests.

``app`` speaks lifespan (its start-up puts ``started`` in the state) and
answers each request with the worker's pid, the state and the scope's
paths (``/slow`` after a moment: a request in flight at a stop);
``failing_startup`` fails its lifespan start-up; ``create_app`` is a
factory of ``app``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import trio


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                print("lifespan shutdown complete", flush=True)
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        return
    if scope["path"] == "/slow":
        # A request still in flight when the test stops the server.
        print("slow request started", flush=True)
        await trio.sleep(0.3)
    body = json.dumps(
        {
            "pid": os.getpid(),
            "state": scope["state"],
            "path": scope["path"],
            "root_path": scope["root_path"],
            "scheme": scope["scheme"],
            "client": scope["client"],
        }
    ).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "the database is down"})


def create_app() -> Any:
    return app
