"""A WebSocket echo as a raw ASGI application, for ``bench ws``: the same
app under ``trionet serve`` and hypercorn's trio worker.

    trionet serve asgi_ws_echo:app --app-dir benchmarks --port 9001
    python -m hypercorn --worker-class trio --bind 127.0.0.1:9001 benchmarks/asgi_ws_echo.py:app
"""

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 426, "headers": []})
        await send({"type": "http.response.body", "body": b"WebSocket only\n"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})
