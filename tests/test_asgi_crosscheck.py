"""The same ASGI applications and requests under ``trionet.asgi.serve`` and
hypercorn's trio worker, where the specification leaves them no choice: the
same scope values, the same answers. A behavioural cross-check of the
conformance modules (``test_asgi_*.py``) against the one other ASGI server
on trio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

import trionet.asgi
from tests._http import LOOPBACK, Reply, exchange, parse, request
from tests.test_asgi_http import Message, Receive, Send

SERVERS = ["trionet", "hypercorn"]


@asynccontextmanager
async def serving(server: str, app: trionet.asgi.ASGIApp) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        if server == "trionet":
            started = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK))
            port = started.port
        else:
            config = Config()
            config.bind = [f"{LOOPBACK}:0"]
            config.accesslog = None
            config.errorlog = logging.getLogger("hypercorn.crosscheck")
            binds = await nursery.start(partial(hypercorn_serve, app, config, mode="asgi"))
            port = int(binds[0].rsplit(":", 1)[1])
        yield port
        nursery.cancel_scope.cancel()


def scope_recorder(seen: list[Message]) -> trionet.asgi.ASGIApp:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append({**scope, "body": body})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"part one, ", "more_body": True})
        await send({"type": "http.response.body", "body": body})

    return app


REQUESTS = {
    "plain": request("GET", "/a/b?c=d&e", "Connection: close\r\n"),
    "encoded": request(
        "GET", "/caf%C3%A9/x%20y?q=%20", "X-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n"
    ),
    "counted-body": request("POST", "/p", "Connection: close\r\n", b"0123456789"),
    "chunked-body": (
        b"POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    ),
    "http-1.0": b"GET /old HTTP/1.0\r\nHost: test\r\n\r\n",
}


async def observe(server: str, raw: bytes) -> tuple[Message, Reply]:
    seen: list[Message] = []
    async with serving(server, scope_recorder(seen)) as port:
        data = await exchange(port, raw)
    method = raw.split(b" ", 1)[0].decode()
    [reply] = parse(data, [(method, "/")])
    [scope] = seen
    return scope, reply


@pytest.mark.parametrize("case", list(REQUESTS))
async def test_the_same_scope_and_answer(case: str) -> None:
    (ours, our_reply), (theirs, their_reply) = [
        await observe(server, REQUESTS[case]) for server in SERVERS
    ]
    for key in ("type", "http_version", "method", "scheme", "path", "query_string", "root_path"):
        assert ours[key] == theirs[key], key
    assert ours["raw_path"] == theirs["raw_path"]
    assert [tuple(field) for field in ours["headers"]] == [tuple(f) for f in theirs["headers"]]
    assert ours["client"][0] == theirs["client"][0] == LOOPBACK
    assert ours["body"] == theirs["body"]
    assert (our_reply.status, our_reply.body) == (their_reply.status, their_reply.body)
    assert our_reply.headers["x-a"] == their_reply.headers["x-a"] == "1"


async def raises(scope: Message, receive: Receive, send: Send) -> None:
    raise LookupError("broken")  # (for the lifespan scope too: no lifespan)


async def returns_without_response(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")


@pytest.mark.parametrize("app", [raises, returns_without_response], ids=lambda f: f.__name__)
async def test_the_same_500_for_a_failing_app(app: trionet.asgi.ASGIApp) -> None:
    statuses = []
    for server in SERVERS:
        async with serving(server, app) as port:
            [reply] = parse(
                await exchange(port, request(headers="Connection: close\r\n")), [("GET", "/")]
            )
            statuses.append(reply.status)
    assert statuses == [500, 500]
