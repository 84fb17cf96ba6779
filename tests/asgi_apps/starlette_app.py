"""A Starlette application for the ASGI tests: routes, a streaming
response that stops when the client goes away, and a WebSocket echo (also
the endpoint the Autobahn runs test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, Starlette")


async def echo_json(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"received": data, "path": request.url.path})


async def forever(request: Request) -> StreamingResponse:
    async def ticks() -> AsyncIterator[bytes]:
        number = 0
        while True:
            yield f"tick {number}\n".encode()
            number += 1
            await anyio.sleep(0.01)

    return StreamingResponse(ticks(), media_type="text/plain")


async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/json", echo_json, methods=["POST"]),
        Route("/forever", forever),
        WebSocketRoute("/ws", websocket_echo),
    ]
)
