"""trionet.websocket between trionet's own client and server over loopback:
messages and fragments, the close handshake, subprotocols, origins, the
upgrade's details, shutdown, crash isolation, handshake failures, limits,
backpressure, statistics, and websocat as a foreign peer.

The tests with misbehaving peers (raw wsproto over a socket) are in
test_websocket_hostile.py.
"""

from __future__ import annotations

import gc
import math
import shutil
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trio.lowlevel
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request as WsRequest
from wsproto.events import TextMessage as WsText

import trionet
import trionet.http
import trionet.websocket
from tests._http import exchange, parse, request
from tests._peers import missing
from tests._process import refusing_port
from tests._wait import wait_until
from tests._ws import (
    HANG_GUARD,
    LOOPBACK,
    MEMORY_URL,
    RawPeer,
    Record,
    echo,
    memory_connects,
    memory_raw_listener,
    start_http,
    start_ws,
    start_ws_in_memory,
    url,
    watchdog,
)
from trionet.http import Request, Response
from trionet.websocket import (
    BinaryMessage,
    HandshakeError,
    TextMessage,
    WebSocketClosed,
    WebSocketConnection,
    connect,
)


@pytest.fixture
async def nursery(nursery: trio.Nursery) -> trio.Nursery:
    """pytest-trio's nursery, watched: a test that hangs fails (an autouse
    async fixture would never run: pytest-trio runs only the fixtures a
    test names)."""
    nursery.start_soon(watchdog)
    return nursery


async def collect(ws: WebSocketConnection, into: list[Any]) -> None:
    async for message in ws:
        into.append(message)


# -- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [True, False])
async def test_text_and_binary_messages_round_trip(
    nursery: trio.Nursery, compression: bool
) -> None:
    agreed: list[list[str]] = []

    async def handler(ws: WebSocketConnection) -> None:
        agreed.append(ws.extensions)
        await echo(ws)

    server = await start_ws(nursery, handler)
    async with connect(url(server), compression=compression) as ws:
        await ws.send("héllo wörld ☃")
        await ws.send(b"\x00\xff" * 5000)
        await ws.send(bytearray(b"a bytearray"))
        await ws.send(memoryview(b"a memoryview"))
        await ws.send("")
        assert await ws.receive() == TextMessage("héllo wörld ☃")
        assert await ws.receive() == BinaryMessage(b"\x00\xff" * 5000)
        assert await ws.receive() == BinaryMessage(b"a bytearray")
        assert await ws.receive() == BinaryMessage(b"a memoryview")
        assert await ws.receive() == TextMessage("")
        expected = ["permessage-deflate"] if compression else []
        assert ws.extensions == expected
    assert agreed == [expected]


async def test_send_refuses_what_is_not_text_or_bytes(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    async with connect(url(server)) as ws:
        with pytest.raises(TypeError):
            await ws.send(42)  # type: ignore[arg-type]
        await ws.send("still open")
        assert await ws.receive() == TextMessage("still open")


async def test_only_one_task_receives_at_a_time(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    async with connect(url(server)) as ws, trio.open_nursery() as inner:
        inner.start_soon(ws.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await ws.receive()
        await ws.send("for the first receiver")


# -- fragments ------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [True, False])
async def test_send_fragments_arrive_as_one_message(
    nursery: trio.Nursery, compression: bool
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)

    async def produced() -> AsyncIterator[bytes]:
        for piece in (b"ab", b"", b"cd", b"\x00" * 70000):
            await trio.lowlevel.checkpoint()
            yield piece

    async with connect(url(server), compression=compression) as ws:
        await ws.send_fragments(["hé", "llo", " ", "wörld"])
        await ws.send_fragments(produced())
        await ws.send_fragments([])
        await ws.send("after")
    await record.wait()
    assert record.error is None
    assert record.messages == [
        TextMessage("héllo wörld"),
        BinaryMessage(b"abcd" + b"\x00" * 70000),
        BinaryMessage(b""),
        TextMessage("after"),
    ]


async def test_send_fragments_are_separate_frames_at_the_receiver(nursery: trio.Nursery) -> None:
    seen: list[tuple[list[str | bytes], bool | None]] = []

    async def handler(ws: WebSocketConnection) -> None:
        for _ in range(2):
            fragments = ws.receive_fragments()
            seen.append(([piece async for piece in fragments], fragments.is_text))
        await ws.send("done")

    server = await start_ws(nursery, handler)
    async with connect(url(server)) as ws:
        await ws.send_fragments(["one", "two", "three"])
        await ws.send_fragments([b"\x01", b"\x02"])
        assert await ws.receive() == TextMessage("done")
    [(text, is_text), (data, is_binary_text)] = seen
    # One piece per frame at least (a frame may arrive in pieces, never merged).
    assert "".join(map(str, text)) == "onetwothree"
    assert len(text) >= 3
    assert is_text is True
    assert b"".join(p for p in data if isinstance(p, bytes)) == b"\x01\x02"
    assert len(data) >= 2
    assert is_binary_text is False


async def test_send_fragments_refuses_mixed_types_before_sending_anything(
    nursery: trio.Nursery,
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with connect(url(server)) as ws:
        with pytest.raises(TypeError):
            await ws.send_fragments(["text", b"bytes"])
        with pytest.raises(TypeError):
            await ws.send_fragments([b"bytes", "text"])
        with pytest.raises(TypeError):
            await ws.send_fragments([1, 2])  # type: ignore[list-item]
        await ws.send("still fine")
    await record.wait()
    assert record.error is None
    assert record.messages == [TextMessage("still fine")]


async def test_a_fragmented_message_holds_other_messages_but_not_pings(
    nursery: trio.Nursery,
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    resume = trio.Event()

    async def slow() -> AsyncIterator[str]:
        yield "first half, "
        await resume.wait()
        yield "second half"

    async with connect(url(server), ping_interval=None) as ws, trio.open_nursery() as inner:
        inner.start_soon(ws.send_fragments, slow())
        await trio.testing.wait_all_tasks_blocked()
        inner.start_soon(ws.send, "other")
        with trio.fail_after(HANG_GUARD):
            await ws.ping(b"between fragments")  # not held back
        await trio.testing.wait_all_tasks_blocked()  # "other" waits for its turn
        resume.set()
    await record.wait()
    assert record.messages == [TextMessage("first half, second half"), TextMessage("other")]


class _Broken(Exception):
    pass


@pytest.mark.parametrize("failure", ["mixed types", "iterator raises", "cancelled"])
async def test_send_fragments_failing_midway_never_splices_messages(
    nursery: trio.Nursery, failure: str
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with connect(url(server)) as ws:

        async def pieces(scope: trio.CancelScope) -> AsyncIterator[Any]:
            yield "a"
            yield "b"
            if failure == "mixed types":
                yield b"c"
            elif failure == "iterator raises":
                raise _Broken
            else:
                scope.cancel()
                await trio.sleep_forever()

        with trio.CancelScope() as scope:
            async with aclosing(pieces(scope)) as fragments:
                try:
                    await ws.send_fragments(fragments)
                except (TypeError, _Broken):
                    pass
        # A frame of the message is out and cannot be taken back: the
        # connection fails (1011) rather than let the next send continue it.
        with pytest.raises((WebSocketClosed, trio.ClosedResourceError)):
            await ws.send("x")
        assert ws.close_code == 1011
    await record.wait()
    # The peer never gets "a" + "b" (truncated) nor "a" + "b" + "x" (spliced).
    assert record.messages == []
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 1011


async def test_send_fragments_that_fails_leaves_no_generator_behind(
    nursery: trio.Nursery,
) -> None:
    server = await start_ws(nursery, echo)
    async with connect(url(server)) as ws:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                await ws.send_fragments(["text", b"bytes"])
            except TypeError:
                pass
            gc.collect()
            await trio.lowlevel.checkpoint()
        await ws.send("after")
        assert await ws.receive() == TextMessage("after")
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


# -- the close handshake ----------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001])
async def test_server_close_ends_the_client_loop_cleanly(nursery: trio.Nursery, code: int) -> None:
    ended: list[int | None] = []

    async def handler(ws: WebSocketConnection) -> None:
        await ws.send("bye")
        await ws.aclose(code, "done here")
        ended.append(ws.close_code)

    server = await start_ws(nursery, handler)
    async with connect(url(server)) as ws:
        with trio.fail_after(HANG_GUARD):
            messages = [message async for message in ws]
        assert messages == [TextMessage("bye")]
        assert ws.close_code == code
        assert ws.close_reason == "done here"
        with pytest.raises(WebSocketClosed) as info:
            await ws.receive()
        assert info.value.code == code
        with pytest.raises(WebSocketClosed):
            await ws.send("too late")
    await wait_until(lambda: ended == [code])


async def test_client_close_ends_the_server_loop_cleanly(nursery: trio.Nursery) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with connect(url(server)) as ws:
        await ws.send("last words")
        await ws.aclose(1000, "client done")
        assert ws.closed
        assert ws.close_code == 1000
        with pytest.raises(trio.ClosedResourceError):
            await ws.send("after my own close")
    await record.wait()
    assert record.error is None
    assert record.messages == [TextMessage("last words")]
    assert record.ws is not None
    assert record.ws.close_code == 1000
    assert record.ws.close_reason == "client done"


async def test_leaving_the_client_block_closes_with_1000(nursery: trio.Nursery) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with connect(url(server)) as ws:
        await ws.send("hi")
    assert ws.closed
    await record.wait()
    assert record.error is None
    assert record.ws is not None
    assert record.ws.close_code == 1000


async def test_an_exception_in_the_client_block_closes_1011_and_comes_out_as_itself(
    nursery: trio.Nursery,
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)

    async def failing_client() -> None:
        async with connect(url(server)) as ws:
            await ws.send("x")
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await failing_client()
    await record.wait()
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 1011


@pytest.mark.parametrize(
    ("code", "reason"), [(4000, "custom"), (4999, ""), (3000, "x"), (1008, "p")]
)
async def test_server_close_with_another_code_raises_at_the_client(
    nursery: trio.Nursery, code: int, reason: str
) -> None:
    async def handler(ws: WebSocketConnection) -> None:
        await ws.send("before")
        await ws.aclose(code, reason)

    server = await start_ws(nursery, handler)
    async with connect(url(server)) as ws:
        received: list[Any] = []
        with pytest.raises(WebSocketClosed) as info, trio.fail_after(HANG_GUARD):
            await collect(ws, received)
    assert received == [TextMessage("before")]
    assert info.value.code == code
    assert info.value.reason == reason
    assert isinstance(info.value, trionet.ConnectionClosed)
    assert ws.close_code == code


async def test_client_close_with_a_private_code_raises_at_the_server(
    nursery: trio.Nursery,
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with connect(url(server)) as ws:
        await ws.aclose(4001, "go away, privately")
    await record.wait()
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 4001
    assert record.error.reason == "go away, privately"
    assert "4001" in str(record.error)


async def test_a_close_you_started_ends_your_own_loop_quietly(nursery: trio.Nursery) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    ended: list[str] = []
    async with connect(url(server)) as ws:

        async def reader() -> None:
            async for _ in ws:
                pass
            ended.append("quietly")

        async with trio.open_nursery() as inner:
            inner.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            await ws.aclose(4002, "my own reasons")
    assert ended == ["quietly"]  # even with a code that raises at the other side
    await record.wait()
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 4002


async def test_send_close_keeps_receiving_until_the_peers_close(nursery: trio.Nursery) -> None:
    # Node's ws.close(): our close frame goes out, and what the server sent
    # before its own close frame is still delivered (aclose would drop it).
    sent = trio.Event()
    record: list[int | None] = []

    async def handler(ws: WebSocketConnection) -> None:
        for text in ("a", "b", "c"):
            await ws.send(text)
        sent.set()
        async for _ in ws:
            pass
        record.append(ws.close_code)

    server = await start_ws(nursery, handler)
    async with connect(url(server)) as ws:
        await sent.wait()
        await ws.send_close(1000, "done sending")
        with pytest.raises(trio.ClosedResourceError):
            await ws.send("after send_close")
        with trio.fail_after(HANG_GUARD):
            messages = [message async for message in ws]  # ends cleanly
        assert messages == [TextMessage("a"), TextMessage("b"), TextMessage("c")]
        assert ws.close_code == 1000  # the server answered with our code
        await ws.send_close()  # a second call: nothing to do
    await wait_until(lambda: record == [1000])


async def test_send_close_against_a_peer_that_never_answers_ends_with_1006(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with memory_raw_listener(monkeypatch) as listener, trio.open_nursery() as inner:

        async def deaf_server() -> None:
            async with listener.accept() as peer:
                await peer.send(WsText(data="before the close"))
                await peer.close_frame(1000)  # read, never answered
                await trio.sleep_forever()

        inner.start_soon(deaf_server)
        async with connect(MEMORY_URL, close_timeout=3) as ws:
            await ws.send_close()
            with trio.fail_after(10):
                assert await ws.receive() == TextMessage("before the close")
                with pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
            assert info.value.code == 1006
            assert ws.close_code == 1006
        inner.cancel_scope.cancel()


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
async def test_aclose_refuses_codes_that_may_not_be_sent(nursery: trio.Nursery, code: int) -> None:
    server = await start_ws(nursery, echo)
    async with connect(url(server)) as ws:
        with pytest.raises(ValueError, match=str(code)):
            await ws.aclose(code)
        with pytest.raises(ValueError, match="123 bytes"):
            await ws.aclose(1000, "x" * 124)
        # Refused before anything was sent: the connection goes on.
        await ws.send("still open")
        assert await ws.receive() == TextMessage("still open")
        assert ws.close_code is None


# -- subprotocols and the upgrade request ------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "agreed"),
    [
        (["chat.v1", "chat.v2"], "chat.v2"),  # the server's preference wins
        (["chat.v1"], "chat.v1"),
        (["other"], None),
        ([], None),
    ],
)
async def test_subprotocol_negotiation(
    nursery: trio.Nursery, offered: list[str], agreed: str | None
) -> None:
    seen: list[str | None] = []

    async def handler(ws: WebSocketConnection) -> None:
        seen.append(ws.subprotocol)
        await echo(ws)

    server = await start_ws(nursery, handler, subprotocols=["chat.v2", "chat.v1"])
    async with connect(url(server), subprotocols=offered) as ws:
        assert ws.subprotocol == agreed
        await ws.send("x")
        assert await ws.receive() == TextMessage("x")
    assert seen == [agreed]


async def test_accepting_a_subprotocol_the_client_did_not_offer_is_refused(
    nursery: trio.Nursery,
) -> None:
    errors: list[Exception] = []

    async def app(request: Request) -> Response | None:
        try:
            await request.accept_websocket("not.offered")
        except ValueError as exc:
            errors.append(exc)
            await request.reject_websocket(400, body=b"no such subprotocol\n")
        return None

    server = await start_http(nursery, app)
    with pytest.raises(HandshakeError) as info:
        async with connect(url(server), subprotocols=["chat"]):
            pass
    assert info.value.status == 400
    assert info.value.body == b"no such subprotocol\n"
    assert len(errors) == 1


async def test_path_target_and_headers_of_the_upgrade(nursery: trio.Nursery) -> None:
    seen: dict[str, Any] = {}

    async def app(request: Request) -> Response | None:
        ws = await request.accept_websocket(headers={"X-Server": "yes"})
        seen.update(
            path=ws.path,
            target=ws.target,
            authorization=ws.request_headers.get("authorization"),
            query=request.query,
            accept=ws.response_headers.get("sec-websocket-accept"),
        )
        await ws.send("ready")
        await echo(ws)
        return None

    server = await start_http(nursery, app)
    target = "/chat%20room/x?a=1&b=2"
    async with connect(url(server, target), headers={"Authorization": "Bearer t"}) as ws:
        assert await ws.receive() == TextMessage("ready")
        assert ws.path == "/chat room/x"
        assert ws.target == target
        assert ws.request_headers.get("authorization") == "Bearer t"
        assert ws.response_headers.get("x-server") == "yes"
        # The whole 101, on both sides: the handshake's own fields too.
        accept = ws.response_headers.get("sec-websocket-accept")
        assert accept
        assert ws.response_headers.get("upgrade", "").lower() == "websocket"
    assert seen == {
        "path": "/chat room/x",
        "target": target,
        "authorization": "Bearer t",
        "query": {"a": ["1"], "b": ["2"]},
        "accept": accept,
    }


async def test_plain_requests_then_an_upgrade_on_one_connection(nursery: trio.Nursery) -> None:
    clients: list[object] = []

    async def app(request: Request) -> Response | None:
        clients.append(request.client)
        if not request.is_websocket_upgrade:
            return Response(200, {"content-type": "text/plain"}, f"plain {request.path}")
        ws = await request.accept_websocket()
        await echo(ws)
        return None

    server = await start_http(nursery, app)
    stream = await trio.open_tcp_stream(LOOPBACK, server.port)
    async with stream:
        http = h11.Connection(h11.CLIENT)
        with trio.fail_after(HANG_GUARD):
            for path in ("/one", "/two"):
                await stream.send_all(
                    http.send(h11.Request(method="GET", target=path, headers=[("Host", "t")]))
                    + http.send(h11.EndOfMessage())
                )
                body = b""
                while True:
                    event = http.next_event()
                    if event is h11.NEED_DATA:
                        http.receive_data(await stream.receive_some())
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert body == f"plain {path}".encode()
                http.start_next_cycle()
        peer = RawPeer(stream, WSConnection(ConnectionType.CLIENT))
        await peer.send(WsRequest(host="t", target="/ws"))
        with trio.fail_after(HANG_GUARD):
            await peer.read_handshake()
        assert peer.accepted is not None
        await peer.send(WsText("over the upgraded connection"))
        assert await peer.messages(1) == ["over the upgraded connection"]
    assert len(clients) == 3
    assert len(set(clients)) == 1  # one connection
    assert server.statistics().accepted == 1


# -- origins --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (["https://good.example"], "https://good.example", True),
        (["https://good.example"], "HTTPS://GOOD.EXAMPLE", True),
        (["https://good.example"], "https://evil.example", False),
        (["https://good.example"], None, False),
        (["https://good.example", None], None, True),
        (["https://good.example", None], "https://evil.example", False),
        (None, "https://evil.example", True),
    ],
)
async def test_origin_allow_list(
    nursery: trio.Nursery,
    origins: list[str | None] | None,
    origin: str | None,
    allowed: bool,
) -> None:
    async def app(request: Request) -> Response | None:
        ws = await request.accept_websocket(origins=origins)
        await echo(ws)
        return None

    server = await start_http(nursery, app)
    if allowed:
        async with connect(url(server), origin=origin) as ws:
            await ws.send("in")
            assert await ws.receive() == TextMessage("in")
    else:
        with pytest.raises(HandshakeError) as info:
            async with connect(url(server), origin=origin):
                pass
        assert info.value.status == 403
        assert isinstance(info.value, trionet.ConnectError)
        # The refusal is the client's fault, not a bug of the handler.
        await wait_until(lambda: server.statistics().active == 0)
        assert server.statistics().handler_errors == 0


async def test_websocket_serve_checks_origins(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo, origins=["https://good.example"])
    with pytest.raises(HandshakeError) as info:
        async with connect(url(server), origin="https://evil.example"):
            pass
    assert info.value.status == 403
    async with connect(url(server), origin="https://good.example") as ws:
        await ws.send("ok")
        assert await ws.receive() == TextMessage("ok")


# -- crash isolation and shutdown ------------------------------------------------------------------


async def test_a_handler_that_crashes_after_accepting_closes_1011_and_the_server_goes_on(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: WebSocketConnection) -> None:
        async for message in ws:
            if message.data == "crash":
                raise RuntimeError("boom in the handler")
            await ws.send(message.data)

    server = await start_ws(nursery, handler, handler_errors="log")
    async with connect(url(server)) as ws:
        await ws.send("crash")
        with pytest.raises(WebSocketClosed) as info, trio.fail_after(HANG_GUARD):
            async for _ in ws:
                pass
    assert info.value.code == 1011
    await wait_until(lambda: server.statistics().handler_errors == 1)
    assert "boom in the handler" in caplog.text
    async with connect(url(server)) as other:
        await other.send("fine")
        assert await other.receive() == TextMessage("fine")
    assert server.statistics().handler_errors == 1


async def test_shutdown_closes_open_websockets_with_1001(nursery: trio.Nursery) -> None:
    ended: list[object] = []

    async def handler(ws: WebSocketConnection) -> None:
        try:
            await echo(ws)
        except BaseException as exc:
            ended.append(exc)
            raise
        ended.append(ws.close_code)

    server = await start_ws(nursery, handler)
    async with connect(url(server)) as ws:
        await ws.send("hi")
        assert await ws.receive() == TextMessage("hi")
        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as inner:
                inner.start_soon(server.shutdown, 60)
                messages = [message async for message in ws]  # ends without an exception
        # ...and the shutdown returned, long before its grace ran out.
        assert messages == []
        assert ws.close_code == 1001
    assert ended == [1001]  # the handler's loop ended cleanly too
    with pytest.raises(OSError, match="onnect"):  # nobody listens any more
        await trio.open_tcp_stream(LOOPBACK, server.port)


async def test_shutdown_with_a_handler_that_does_not_read(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = trio.Event()
    cancelled: list[bool] = []

    async def handler(ws: WebSocketConnection) -> None:
        accepted.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    server, listener = await start_ws_in_memory(nursery, handler)
    memory_connects(monkeypatch, listener)
    async with connect(MEMORY_URL) as ws:
        await accepted.wait()
        with trio.fail_after(1000):
            async with trio.open_nursery() as inner:
                inner.start_soon(server.shutdown, 10)
                messages = [message async for message in ws]
        assert messages == []
        assert ws.close_code == 1001
    assert cancelled == [True]  # after the grace


# -- handshake failures ---------------------------------------------------------------------------

_UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
_KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ("Sec-WebSocket-Version: 13\r\n", 400),  # no key
        (_KEY, 400),  # no version
        (_KEY + "Sec-WebSocket-Version: 8\r\n", 426),
    ],
)
async def test_bad_upgrade_requests_are_refused(
    nursery: trio.Nursery, extra: str, status: int
) -> None:
    async def app(request: Request) -> Response | None:
        ws = await request.accept_websocket()
        await echo(ws)
        return None

    server = await start_http(nursery, app)  # handler_errors="raise": a refusal is no bug
    raw = await exchange(server.port, request(headers=_UPGRADE + extra))
    [reply] = parse(raw, [("GET", "/")])
    assert reply.status == status
    if status == 426:
        assert reply.headers["sec-websocket-version"] == "13"
    # The server goes on.
    async with connect(url(server)) as ws:
        await ws.send("good")
        assert await ws.receive() == TextMessage("good")


async def test_websocket_serve_answers_plain_http_with_426(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    raw = await exchange(server.port, request(headers="Connection: close\r\n"))
    [reply] = parse(raw, [("GET", "/")])
    assert reply.status == 426
    assert reply.headers["upgrade"].lower() == "websocket"


@pytest.mark.parametrize("status", [200, 404])
async def test_client_against_a_plain_http_endpoint_gets_the_status(
    nursery: trio.Nursery, status: int
) -> None:
    async def app(request: Request) -> Response:
        return Response(status, {"content-type": "text/plain"}, b"Hello World\n")

    server = await start_http(nursery, app)
    with pytest.raises(HandshakeError) as info:
        async with connect(url(server)):
            pass
    assert info.value.status == status
    assert info.value.body == b"Hello World\n"
    assert (b"content-type", b"text/plain") in info.value.headers
    assert isinstance(info.value, trionet.ConnectError)


async def test_client_handshake_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with memory_raw_listener(monkeypatch) as listener:
        received: list[bytes] = []
        eof = trio.Event()

        async def silent() -> None:
            stream = await listener.accept_stream()
            async with stream:
                while data := await stream.receive_some():
                    received.append(data)
            eof.set()

        nursery.start_soon(silent)
        with pytest.raises(trionet.ConnectTimeout):
            async with connect(MEMORY_URL, handshake_timeout=5):
                pass
        with trio.fail_after(1000):
            await eof.wait()
        # The request was sent, and the client closed its end after giving up.
        assert b"".join(received).startswith(b"GET / HTTP/1.1\r\n")


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: t\r\n"], ids=["nothing", "half"])
async def test_websocket_serve_drops_an_upgrade_that_never_comes(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    sent: bytes,
) -> None:
    _, listener = await start_ws_in_memory(nursery, echo, handshake_timeout=5)
    stream = listener.connect_stream()
    async with stream:
        await stream.send_all(sent)
        received = b""
        with trio.fail_after(1000):
            while data := await stream.receive_some():
                received += data
    # Closed by the server (an unfinished request is told 408 first).
    assert received == b"" or received.startswith(b"HTTP/1.1 408 ")
    # ...and a prompt client is still served.
    memory_connects(monkeypatch, listener)
    async with connect(MEMORY_URL) as ws:
        await ws.send("prompt")
        assert await ws.receive() == TextMessage("prompt")


async def test_client_connect_errors(nursery: trio.Nursery) -> None:
    with refusing_port() as port, pytest.raises(trionet.ConnectError):
        async with connect(f"ws://{LOOPBACK}:{port}/"):
            pass
    for bad in ("http://127.0.0.1/", "ws://127.0.0.1/#fragment", "ws:///nohost"):
        with pytest.raises(ValueError, match="ws"):
            async with connect(bad):
                pass


# -- limits ---------------------------------------------------------------------------------------

_NAN = math.nan
_BAD_OPTIONS = [
    ("max_message_size", 0),
    ("max_message_size", -1),
    ("max_message_size", _NAN),
    ("max_queued_bytes", 0),
    ("max_queued_bytes", -5),
    ("max_queued_bytes", _NAN),
    ("ping_interval", 0),
    ("ping_interval", -1),
    ("ping_interval", _NAN),
    ("ping_timeout", 0),
    ("ping_timeout", -1),
    ("ping_timeout", _NAN),
    ("close_timeout", -1),
    ("close_timeout", _NAN),
]
_COUNTS = {"max_message_size", "max_queued_bytes"}


def _refusal(name: str, value: float) -> type[Exception]:
    """A float (NaN included) for a count is the wrong kind of number: a
    TypeError; any other bad value here is out of range: a ValueError."""
    return TypeError if name in _COUNTS and isinstance(value, float) else ValueError


@pytest.mark.parametrize(("name", "value"), _BAD_OPTIONS)
async def test_accept_websocket_refuses_bad_limits(
    nursery: trio.Nursery, name: str, value: float
) -> None:
    errors: list[Exception] = []

    async def app(request: Request) -> Response | None:
        try:
            ws = await request.accept_websocket(**{name: value})
        except (ValueError, TypeError) as exc:
            errors.append(exc)
            await request.reject_websocket(400)
            return None
        await ws.aclose()
        return None

    server = await start_http(nursery, app)
    with pytest.raises(HandshakeError) as info:
        async with connect(url(server)):
            pass
    assert info.value.status == 400
    assert len(errors) == 1
    assert type(errors[0]) is _refusal(name, value)
    assert name in str(errors[0])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *_BAD_OPTIONS,
        ("handshake_timeout", 0),
        ("handshake_timeout", -1),
        ("handshake_timeout", _NAN),
    ],
)
async def test_connect_refuses_bad_limits_before_connecting(
    nursery: trio.Nursery, name: str, value: float
) -> None:
    # Nobody listens: connecting first would be a ConnectError.
    with refusing_port() as port, pytest.raises(_refusal(name, value), match=name):
        async with connect(f"ws://{LOOPBACK}:{port}/", **{name: value}):
            pass


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *_BAD_OPTIONS,
        ("handshake_timeout", 0),
        ("handshake_timeout", -1),
        ("handshake_timeout", _NAN),
    ],
)
async def test_serve_refuses_bad_limits(nursery: trio.Nursery, name: str, value: float) -> None:
    with pytest.raises(_refusal(name, value), match=name):
        await nursery.start(partial(trionet.websocket.serve, echo, 0, LOOPBACK, **{name: value}))


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
async def test_the_client_closes_1009_on_a_message_over_its_limit(
    nursery: trio.Nursery, compression: bool
) -> None:
    errors: list[WebSocketClosed] = []

    async def handler(ws: WebSocketConnection) -> None:
        await ws.send("a" * 100)  # at the client's limit
        await ws.receive()
        await ws.send(b"b" * 101)  # over it
        try:
            await ws.receive()
        except WebSocketClosed as exc:
            errors.append(exc)

    server = await start_ws(nursery, handler)
    async with connect(url(server), compression=compression, max_message_size=100) as ws:
        assert await ws.receive() == TextMessage("a" * 100)
        await ws.send("got it")
        with pytest.raises(WebSocketClosed) as info, trio.fail_after(HANG_GUARD):
            await ws.receive()
    assert info.value.code == 1009
    await wait_until(lambda: len(errors) == 1)
    assert errors[0].code == 1009


# -- keepalive and pings ------------------------------------------------------------------------


async def test_ping_returns_once_the_pong_arrives(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    async with connect(url(server), ping_interval=None) as ws:
        with trio.fail_after(HANG_GUARD):
            await ws.ping(b"hello?")
            await ws.ping()
        stats = ws.statistics()
        assert stats.pings_sent == 2
        assert stats.pongs_received == 2
        with pytest.raises(ValueError, match="125 bytes"):
            await ws.ping(b"x" * 126)
    with pytest.raises(trio.ClosedResourceError):
        await ws.ping()


async def test_events_yields_control_events_when_asked(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    async with connect(url(server), control_events=True, ping_interval=None) as ws:
        await ws.ping(b"abc")
        await ws.send("m")
        events = ws.events()
        with trio.fail_after(HANG_GUARD):
            received = [await anext(events), await anext(events)]
        assert received == [trionet.websocket.Pong(b"abc"), TextMessage("m")]
        # async for over the connection itself yields messages only.
        await ws.ping(b"def")
        await ws.send("n")
        with trio.fail_after(HANG_GUARD):
            assert await anext(ws) == TextMessage("n")


# -- backpressure ---------------------------------------------------------------------------------

_SIZE = 16 * 1024
_COUNT = 512  # 8 MiB: far more than the kernel's buffers hold unread


def _numbered(index: int) -> bytes:
    return index.to_bytes(4, "big") * (_SIZE // 4)


async def test_a_server_that_does_not_read_stops_reading_and_loses_nothing(
    nursery: trio.Nursery,
) -> None:
    go = trio.Event()
    handled = trio.Event()
    state: dict[str, Any] = {}

    async def handler(ws: WebSocketConnection) -> None:
        state["ws"] = ws
        await go.wait()
        received = []
        async for message in ws:
            received.append(message.data)
            if len(received) == _COUNT:
                break
        state["received"] = received
        handled.set()

    server = await start_ws(nursery, handler, max_queued_bytes=2 * _SIZE)
    sent = 0
    async with connect(url(server), compression=False) as ws:

        async def sender() -> None:
            nonlocal sent
            for index in range(_COUNT):
                await ws.send(_numbered(index))
                sent += 1

        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as inner:
                inner.start_soon(sender)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                # Everything waits: the sender is stuck in send(), and the
                # server holds about max_queued_bytes.
                assert 0 < sent < _COUNT
                server_side: WebSocketConnection = state["ws"]
                stats = server_side.statistics()
                assert 2 * _SIZE <= stats.queued_bytes <= 3 * _SIZE
                assert stats.bytes_received < _COUNT * _SIZE // 4
                go.set()
    assert sent == _COUNT
    with trio.fail_after(HANG_GUARD):
        await handled.wait()  # the last queued messages may still be on their way
    received = state["received"]
    assert len(received) == _COUNT
    assert all(data == _numbered(index) for index, data in enumerate(received))


async def test_closing_discards_the_queue_and_the_close_handshake_completes(
    nursery: trio.Nursery,
) -> None:
    go = trio.Event()
    handled = trio.Event()
    state: dict[str, Any] = {}

    async def handler(ws: WebSocketConnection) -> None:
        state["ws"] = ws
        await go.wait()
        await ws.aclose(4000, "enough")
        state["stats"] = ws.statistics()
        handled.set()

    server = await start_ws(nursery, handler, max_queued_bytes=2 * _SIZE, close_timeout=30)
    outcomes: dict[str, BaseException | str] = {}
    async with connect(url(server), compression=False) as ws:

        async def sender() -> None:
            try:
                for index in range(_COUNT):
                    await ws.send(_numbered(index))
            except WebSocketClosed as exc:
                outcomes["sender"] = exc

        async def reader() -> None:
            try:
                async for _ in ws:
                    pass
            except WebSocketClosed as exc:
                outcomes["reader"] = exc

        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as inner:
                inner.start_soon(sender)
                inner.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert state["ws"].statistics().queued_bytes >= 2 * _SIZE
                go.set()
        # The client got the close frame and answered it: a timed-out close
        # handshake would have ended in 1006 here, not in the server's code.
        assert ws.close_code == 4000
        assert ws.close_reason == "enough"
    with trio.fail_after(HANG_GUARD):
        await handled.wait()
    sender_error = outcomes["sender"]
    assert isinstance(sender_error, WebSocketClosed)
    assert sender_error.code == 4000
    assert state["ws"].close_code == 4000
    assert state["stats"].queued_bytes == 0


# -- statistics ---------------------------------------------------------------------------------


async def test_statistics_count_messages_pings_and_bytes(nursery: trio.Nursery) -> None:
    server_stats: list[Any] = []

    async def handler(ws: WebSocketConnection) -> None:
        for _ in range(3):
            message = await ws.receive()
            await ws.send(message.data)
        await ws.receive()  # the fourth, after which the counters are read
        server_stats.append(ws.statistics())

    server = await start_ws(nursery, handler)
    payload = b"x" * 1000
    async with connect(url(server), compression=False, ping_interval=None) as ws:
        for _ in range(3):
            await ws.send(payload)
        for _ in range(3):
            assert await ws.receive() == BinaryMessage(payload)
        await ws.ping(b"p")
        await ws.send("fourth")
        stats = ws.statistics()
        assert stats.messages_sent == 4
        assert stats.messages_received == 3
        assert stats.pings_sent == 1
        assert stats.pongs_received == 1
        assert stats.queued_bytes == 0
        assert stats.bytes_sent >= 3000
        assert stats.bytes_received >= 3000
    await wait_until(lambda: server.statistics().active == 0)
    [served] = server_stats
    assert served.messages_received == 4
    assert served.messages_sent == 3
    assert served.bytes_received >= 3000
    # The server's own counters go on across the upgrade.
    assert server.statistics().bytes_received >= 3000
    assert server.statistics().bytes_sent >= 3000


async def test_queued_bytes_counts_what_waits_for_the_application(
    nursery: trio.Nursery,
) -> None:
    go = trio.Event()
    state: dict[str, Any] = {}

    async def handler(ws: WebSocketConnection) -> None:
        state["ws"] = ws
        await go.wait()
        state["first"] = await ws.receive()
        state["after"] = ws.statistics().queued_bytes
        await ws.send("read")

    server = await start_ws(nursery, handler)
    async with connect(url(server), compression=False) as ws:
        for _ in range(3):
            await ws.send(b"q" * 100)
        await wait_until(lambda: "ws" in state and state["ws"].statistics().queued_bytes == 300)
        go.set()
        assert await ws.receive() == TextMessage("read")
    assert state["first"] == BinaryMessage(b"q" * 100)
    assert state["after"] == 200


# -- websocat, a client we did not write -----------------------------------------------------------


@pytest.fixture
def websocat() -> str:
    """The path of ``websocat``. Without it, the test is skipped; on CI
    (``CI=true``) it fails instead, so that the interop tests never silently
    stop running. ``uv run --with websocat pytest`` runs them locally."""
    found = shutil.which("websocat")
    if found is None:
        beside = Path(sys.executable).parent / "websocat"
        found = str(beside) if beside.exists() else None
    if found is None:
        missing("websocat", "uv sync --group dev")
    return found


@pytest.mark.parametrize(
    ("flags", "data", "expected"),
    [
        (["-t"], "hello\nwörld\n".encode(), [TextMessage("hello\n"), TextMessage("wörld\n")]),
        (["-b"], b"\x00\x01binary\xfe\xff", [BinaryMessage(b"\x00\x01binary\xfe\xff")]),
    ],
    ids=["text", "binary"],
)
async def test_websocat_client_gets_the_echo(
    nursery: trio.Nursery, websocat: str, flags: list[str], data: bytes, expected: list[Any]
) -> None:
    received: list[Any] = []

    async def handler(ws: WebSocketConnection) -> None:
        while len(received) < len(expected):
            message = await ws.receive()
            received.append(message)
            await ws.send(message.data)
        await ws.aclose()  # websocat (-n: no close of its own at EOF) exits on it

    server = await start_ws(nursery, handler)
    with trio.fail_after(HANG_GUARD):
        result = await trio.run_process(
            [websocat, *flags, "-n", url(server, "/echo")],
            stdin=data,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == data
    assert received == expected


async def serve_one_with_websocat(listener: trio.SocketListener, websocat: str) -> None:
    """Accept one connection and have websocat serve it, inetd-style, on its
    standard input and output; fails (``check``) unless websocat exits 0."""
    stream = await listener.accept()
    async with stream:
        fd = stream.socket.fileno()
        await trio.run_process([websocat, "-t", "inetd-ws:", "mirror:"], stdin=fd, stdout=fd)


async def test_client_against_a_websocat_echo_server(websocat: str) -> None:
    # websocat does not say which port it bound when given port 0, and a port
    # chosen here could be taken before it binds: the test listens, on a port
    # the system picks, and websocat serves the connection accepted there.
    [listener] = await trio.open_tcp_listeners(0, host=LOOPBACK)
    async with listener:
        port = listener.socket.getsockname()[1]
        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as peer:
                peer.start_soon(serve_one_with_websocat, listener, websocat)
                async with connect(f"ws://{LOOPBACK}:{port}/") as ws:
                    await ws.send("héllo from trionet")
                    assert await ws.receive() == TextMessage("héllo from trionet")
                    await ws.ping(b"are you there")


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"bad name": "x"}, None),
        ({"x-ok": "split\r\nx-injected: 1"}, None),
        ({"x-ok": "€ is not Latin-1"}, None),
        (None, "http://example.test\r\nx-injected: 1"),
    ],
)
async def test_connect_refuses_invalid_header_fields_before_connecting(
    headers: dict[str, str] | None, origin: str | None
) -> None:
    # Nothing listens on port 9: a ValueError means the fields were refused
    # before any connection was tried.
    with pytest.raises(ValueError, match=r"header|valid"):
        async with trionet.websocket.connect("ws://127.0.0.1:9/", headers=headers, origin=origin):
            pass
