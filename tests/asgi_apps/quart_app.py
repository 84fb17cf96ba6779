"""A Quart-Trio application for the ASGI tests: a route, a JSON body and a
WebSocket, with Quart's own lifespan (before_serving)."""

from __future__ import annotations

from typing import Any

from quart import request, websocket
from quart_trio import QuartTrio

app = QuartTrio(__name__)
STARTED: list[bool] = []


@app.before_serving
async def startup() -> None:
    STARTED.append(True)


@app.route("/")
async def index() -> str:
    return "Hello, Quart-Trio"


@app.route("/json", methods=["POST"])
async def echo_json() -> dict[str, Any]:
    data = await request.get_json()
    return {"received": data, "started": bool(STARTED)}


@app.websocket("/ws")
async def ws() -> None:
    while True:
        message = await websocket.receive()
        await websocket.send(f"quart: {message}")
