"""ASGI ``websocket`` conformance (asgiref ``specs/www.rst``, version 2.5):
the scope, the handshake decisions (accept, close before accept, the denial
response), messages both ways, and the close codes each side sees. Plain
ASGI applications, trionet's WebSocket client and raw HTTP as the peers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import trionet
import trionet.asgi
import trionet.websocket
from tests._http import LOOPBACK, exchange, parse
from tests._ws import frame
from tests.test_asgi_http import Message, Receive, Send

DEADLINE = 10

UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@asynccontextmanager
async def serving(app: trionet.asgi.ASGIApp, **options: Any) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(trionet.asgi.serve, app, 0, LOOPBACK, lifespan="off", **options)
        )
        yield server.port
        nursery.cancel_scope.cancel()


class Echo:
    """Accepts (with the first offered subprotocol and a header), echoes
    every message, records the scope and how it ended."""

    def __init__(self) -> None:
        self.scope: Message = {}
        self.ended: Message | None = None
        self.done = trio.Event()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        self.scope = scope
        assert await receive() == {"type": "websocket.connect"}
        offered = scope["subprotocols"]
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-accepted", b"yes")],
            }
        )
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.ended = message
                    return
                if message.get("text") == "close-please":
                    await send({"type": "websocket.close", "code": 4000, "reason": "as asked"})
                    continue
                reply = {k: v for k, v in message.items() if k in ("text", "bytes")}
                await send({"type": "websocket.send", **reply})
        finally:
            self.done.set()


async def test_scope_handshake_and_echo() -> None:
    app = Echo()
    async with serving(app) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(
                f"ws://{LOOPBACK}:{port}/chat/room%201?x=1", subprotocols=["v2", "v1"]
            ) as ws:
                assert ws.subprotocol == "v2"
                assert ws.response_headers.get("x-accepted") == "yes"
                await ws.send("hello")
                assert (await ws.receive()).data == "hello"
                await ws.send(b"\x00\x01")
                assert (await ws.receive()).data == b"\x00\x01"
            await app.done.wait()
    scope = app.scope
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert (scope["scheme"], scope["http_version"]) == ("ws", "1.1")
    assert (scope["path"], scope["raw_path"]) == ("/chat/room 1", b"/chat/room%201")
    assert scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["v2", "v1"]
    assert (b"upgrade", b"websocket") in scope["headers"]
    assert scope["client"][0] == LOOPBACK
    assert scope["server"] == (LOOPBACK, port)
    assert "websocket.http.response" in scope["extensions"]
    # The client's clean close: 1000, as the app saw it.
    assert app.ended == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


async def test_the_peers_close_code_and_reason_reach_the_app() -> None:
    app = Echo()
    async with serving(app) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{port}/") as ws:
                await ws.aclose(4001, "bye now")
            await app.done.wait()
    assert app.ended == {"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}


async def test_the_apps_close_code_reaches_the_peer() -> None:
    app = Echo()
    async with serving(app) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{port}/") as ws:
                await ws.send("close-please")
                with pytest.raises(trionet.websocket.WebSocketClosed) as closed:
                    await ws.receive()
            await app.done.wait()
    assert (closed.value.code, str(closed.value.args[0])) == (4000, "as asked")


async def test_close_before_accept_is_a_403() -> None:
    async def refuse(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async with serving(refuse) as port:
        [reply] = parse(await exchange(port, UPGRADE), [("GET", "/chat")])
    assert reply.status == 403


async def test_the_denial_response_extension() -> None:
    async def deny(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"are you?"})

    async with serving(deny) as port:
        [reply] = parse(await exchange(port, UPGRADE), [("GET", "/chat")])
    assert (reply.status, reply.headers["www-authenticate"], reply.body) == (
        401,
        "Bearer",
        b"who are you?",
    )


async def test_an_app_that_returns_without_deciding_gets_a_500() -> None:
    async def forgets(scope: Message, receive: Receive, send: Send) -> None:
        await receive()

    async with serving(forgets) as port:
        [reply] = parse(await exchange(port, UPGRADE), [("GET", "/chat")])
    assert reply.status == 500


async def test_an_app_that_raises_after_accept_closes_with_1011() -> None:
    async def crashes(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise LookupError("broken")

    async with serving(crashes) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{port}/") as ws:
                await ws.send("boom")
                with pytest.raises(trionet.websocket.WebSocketClosed) as closed:
                    await ws.receive()
    assert closed.value.code == 1011


async def test_send_after_the_peer_left_raises_an_oserror() -> None:
    raised: list[BaseException] = []
    accepted = trio.Event()
    ended = trio.Event()

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            raised.append(exc)
        finally:
            ended.set()

    async with serving(app) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{port}/"):
                await accepted.wait()
            await ended.wait()
    assert isinstance(raised[0], trionet.asgi.ClientDisconnected)


async def test_message_limits_are_trionets() -> None:
    app = Echo()
    async with serving(app, max_message_size=100) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{port}/") as ws:
                await ws.send("x" * 101)
                with pytest.raises(trionet.websocket.WebSocketClosed) as closed:
                    await ws.receive()
            await app.done.wait()
    assert closed.value.code == 1009
    assert app.ended is not None
    assert app.ended["code"] == 1009


async def test_a_frame_in_the_same_packet_as_the_upgrade_reaches_the_app() -> None:
    """hypercorn issue #225: bytes right behind the upgrade request (a
    client that does not wait for the 101) crashed the server. They belong
    to the WebSocket: the first message."""
    app = Echo()
    upgrade = UPGRADE.replace(b"Connection: Upgrade, close", b"Connection: Upgrade")
    async with serving(app) as port:
        with trio.fail_after(DEADLINE):
            async with await trionet.connect_tcp(LOOPBACK, port) as conn:
                await conn.send(upgrade + frame(0x1, b"early"))
                received = b""
                while b"early" not in received:
                    event = await anext(aiter(conn))
                    assert isinstance(event, trionet.Data)
                    received += event.data
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest == b"\x81\x05early"  # the echo, an unmasked text frame


async def test_a_receive_waiting_before_accept_gets_the_first_message() -> None:
    """An app that reads in another task before it accepts (Quart does):
    that ``receive`` waits for the handshake, then gets the client's first
    message, not an end."""
    got: list[Message] = []

    async def reads_ahead(scope: Message, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"

        async def reader() -> None:
            got.append(await receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()  # the reader waits first
            await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"got {got[0].get('text')}"})

    async with serving(reads_ahead) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.websocket.connect(f"ws://{LOOPBACK}:{port}/") as ws:
                await ws.send("first")
                assert (await ws.receive()).data == "got first"
    assert got == [{"type": "websocket.receive", "text": "first"}]
