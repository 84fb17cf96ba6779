"""The smallest ASGI application: ``Hello World`` for every request, with a
lifespan that says when it starts and stops. Serve it with

    uv run trionet serve asgi_hello:app --app-dir examples --port 8000

(any ASGI server runs it: it uses nothing of trionet's).
"""

from typing import Any

HELLO_HEADERS = [(b"content-type", b"text/plain")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        raise NotImplementedError(f"asgi_hello serves http, not {scope['type']}")
    await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
    await send({"type": "http.response.body", "body": b"Hello World\n"})
