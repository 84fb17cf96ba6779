"""A FastAPI application for the ASGI tests: pydantic-validated JSON, a
streaming response, a background task, a WebSocket, lifespan state, and a
plain ``def`` endpoint that FastAPI runs in a worker thread (anyio's, on
trio)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import trio
from fastapi import BackgroundTasks, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

# What background tasks and WebSocket endings did, for the tests to read:
# in this list in-process, on stdout under ``trionet serve``.
DONE: list[str] = []


def done(what: str) -> None:
    DONE.append(what)
    print(f"done: {what}", flush=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from the lifespan"}


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


@app.post("/items")
async def create_item(item: Item, background: BackgroundTasks) -> dict[str, Any]:
    background.add_task(done, f"stored {item.name}")
    return {"name": item.name, "total": round(item.price * 1.2, 2), "tags": item.tags}


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    try:
        trio.lowlevel.current_trio_token()
        backend = "trio"
    except RuntimeError:
        backend = "not trio"
    return {"greeting": request.state.greeting, "backend": backend}


@app.get("/sync")
def sync_endpoint() -> dict[str, Any]:
    # Not async: FastAPI runs it in a worker thread.
    return {"thread": threading.current_thread().name, "main": threading.main_thread().name}


@app.get("/stream")
async def stream(count: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(count):
            yield f"{number}\n".encode()
            await anyio.lowlevel.checkpoint()

    return StreamingResponse(numbers(), media_type="text/plain")


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat")
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo: {text}")
    except WebSocketDisconnect as exc:
        done(f"ws closed {exc.code}")
