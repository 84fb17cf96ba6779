"""WebSocket interop with Node's ``ws`` package as the peer, both directions:
``ws`` clients (``tests/node/ws_client.js``) against trionet servers, and the
trionet client against a ``ws`` ``WebSocketServer`` (``tests/node/ws_server.js``).

The Node scripts read a plan (a JSON file: what to send, how to close) and
print one JSON line per connection saying what they saw: the messages
received (type, length, SHA-256), the agreed subprotocol and extensions, and
the close code and reason of their ``'close'`` event."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import trionet
import trionet.http
import trionet.websocket
from tests._node import (
    NODE_TIMEOUT,
    node_command,
    node_executable,
    node_package,
    parse_report,
    run_node_lines,
)
from tests._process import running
from trionet.websocket import BinaryMessage, TextMessage, WebSocketClosed

pytestmark = pytest.mark.node


@pytest.fixture(autouse=True)
def node() -> str:
    # Checked here, outside trio, so that pytest reports why a test skipped
    # (or, on CI, fails: `npm ci` must have installed `ws`).
    node_package("ws")
    return node_executable()


KIB = 1024
MIB = 1024 * KIB

# Text with one- to four-byte UTF-8 characters, binary that is not UTF-8, and
# both kinds empty: each must arrive as the type it was sent as.
SMALL_MESSAGES: list[str | bytes] = [
    "héllo, 世界 — WebSocket 🎉",
    b"\x00\xff\xfe binary \x80\xc3",
    "",
    b"",
    "0123",
]
# 100 KiB each way (an echo): non-ASCII text, and random (incompressible) bytes.
BIG_TEXT = ("trionet ↔ ws · 你好 🎉 Grüße\n" * 4000).encode()[: 100 * KIB].decode("utf-8", "ignore")
BIG_BINARY = os.urandom(100 * KIB)
# Half a megabyte of each kind that deflate shrinks a hundredfold.
COMPRESSIBLE_TEXT = "All work and no play makes Jack a dull boy. " * 12_000
COMPRESSIBLE_BINARY = bytes(range(256)) * 2_000
# Over trionet's default max_message_size (1 MiB), under Node's (100 MiB).
TEN_MIB = 10 * MIB
RAISED_LIMIT = 16 * MIB


def summary(message: str | bytes) -> dict[str, Any]:
    """A message as the Node scripts report it."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    result: dict[str, Any] = {
        "type": "text" if isinstance(message, str) else "binary",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if isinstance(message, str) and len(data) <= 100:
        result["text"] = message
    return result


def spec(message: str | bytes) -> dict[str, str]:
    """A message as the Node scripts' plans give it."""
    if isinstance(message, str):
        return {"text": message}
    return {"base64": base64.b64encode(message).decode("ascii")}


def as_message(data: str | bytes) -> TextMessage | BinaryMessage:
    return TextMessage(data) if isinstance(data, str) else BinaryMessage(data)


def write_plan(tmp_path: Path, plan: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path


# -- Node client -> trionet server --------------------------------------------


@dataclass
class ServerSide:
    """What one trionet server connection saw."""

    path: str
    subprotocol: str | None
    extensions: list[str]
    received: list[TextMessage | BinaryMessage] = field(default_factory=list)
    # ("clean", close_code, close_reason) when `async for` ended, or
    # ("WebSocketClosed", exc.code, exc.reason) when it raised.
    end: tuple[str, int | None, str | None] | None = None
    bytes_received: int = 0
    bytes_sent: int = 0


async def echo_until_closed(
    ws: trionet.websocket.WebSocketConnection, side: ServerSide, close: tuple[int, str] | None
) -> None:
    """Echo every message (text as text, binary as binary); with ``close``,
    close with that code and reason after the first message instead."""
    try:
        async for message in ws:
            assert isinstance(message, TextMessage | BinaryMessage)
            side.received.append(message)
            if close is not None:
                await ws.aclose(*close)
                break
            await ws.send(message.data)
        side.end = ("clean", ws.close_code, ws.close_reason)
    except WebSocketClosed as exc:
        side.end = ("WebSocketClosed", exc.code, exc.reason)
    stats = ws.statistics()
    side.bytes_received, side.bytes_sent = stats.bytes_received, stats.bytes_sent


class TrionetServer:
    """A trionet WebSocket echo server, and what its connections saw."""

    def __init__(self, port: int, sides: trio.MemoryReceiveChannel[ServerSide]) -> None:
        self.port = port
        self._sides = sides

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def next_side(self) -> ServerSide:
        """What the next connection to finish saw (its handler is done)."""
        with trio.fail_after(NODE_TIMEOUT):
            return await self._sides.receive()


# The paths on which the server closes after the first message, instead of
# echoing it (code, reason).
SERVER_CLOSES = {"/server-closes": (4002, "done")}


async def start_http_server(
    nursery: trio.Nursery,
    subprotocol: Callable[[list[str]], str | None] = lambda offered: None,
    **accept_options: Any,
) -> TrionetServer:
    """A trionet HTTP server whose handler accepts the upgrade
    (``accept_websocket(**accept_options)``, the subprotocol chosen by
    ``subprotocol(offered)``) and echoes."""
    send, receive = trio.open_memory_channel[ServerSide](math.inf)

    async def app(request: trionet.http.Request) -> trionet.http.Response | None:
        assert request.is_websocket_upgrade
        offered = [
            token.strip()
            for value in request.headers.get_all("sec-websocket-protocol")
            for token in value.split(",")
        ]
        ws = await request.accept_websocket(subprotocol(offered), **accept_options)
        side = ServerSide(request.path, ws.subprotocol, ws.extensions)
        await echo_until_closed(ws, side, SERVER_CLOSES.get(request.path))
        send.send_nowait(side)
        return None

    server = await nursery.start(
        partial(trionet.http.serve, app, 0, "127.0.0.1", handler_errors="raise")
    )
    return TrionetServer(server.port, receive)


async def run_ws_client(tmp_path: Path, *sessions: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``ws_client.js`` through ``sessions`` (one connection each, one
    after the other); return its report of each."""
    plan = write_plan(tmp_path, {"sessions": list(sessions)})
    reports = await run_node_lines("ws_client.js", plan)
    assert len(reports) == len(sessions), reports
    return reports


async def test_node_client_round_trip(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start_http_server(nursery)
    messages = [*SMALL_MESSAGES, BIG_TEXT, BIG_BINARY]
    [report] = await run_ws_client(
        tmp_path,
        {"url": server.url("/echo"), "ping": "ping 🏓", "messages": [spec(m) for m in messages]},
    )
    side = await server.next_side()
    # trionet got each message whole, as the type Node sent it as...
    assert side.received == [as_message(m) for m in messages]
    # ...and Node got each echo back as the type trionet sent it as.
    assert report["received"] == [summary(m) for m in messages]
    # trionet answered Node's ping with its payload (and did not yield it).
    assert report["pongs"] == ["ping 🏓"]
    assert report["close"] == {"code": 1000, "reason": ""}
    assert report["errors"] == []
    assert side.end == ("clean", 1000, "")


async def test_node_client_subprotocols(nursery: trio.Nursery, tmp_path: Path) -> None:
    # websocket.serve agrees to the first of its own subprotocols the client
    # offered; an HTTP handler agrees to the one it names.
    send, receive = trio.open_memory_channel[trionet.websocket.WebSocketConnection](math.inf)

    async def handler(ws: trionet.websocket.WebSocketConnection) -> None:
        send.send_nowait(ws)
        async for message in ws:
            await ws.send(message.data)

    ws_server = await nursery.start(
        partial(
            trionet.websocket.serve, handler, 0, "127.0.0.1", subprotocols=["chat.v1", "chat.v2"]
        )
    )
    http_server = await start_http_server(
        nursery, subprotocol=lambda offered: "chat.v2" if "chat.v2" in offered else None
    )
    offered = {"protocols": ["chat.v2", "chat.v1"], "messages": [spec("hi")]}
    by_serve, by_handler = await run_ws_client(
        tmp_path,
        {"url": f"ws://127.0.0.1:{ws_server.port}/", **offered},
        {"url": http_server.url(), **offered},
    )
    with trio.fail_after(NODE_TIMEOUT):
        serve_ws = await receive.receive()
    handler_side = await http_server.next_side()
    assert serve_ws.subprotocol == "chat.v1"
    assert by_serve["protocol"] == "chat.v1"
    assert handler_side.subprotocol == "chat.v2"
    assert by_handler["protocol"] == "chat.v2"
    for report in (by_serve, by_handler):
        assert report["received"] == [summary("hi")]
        assert report["errors"] == []


@pytest.mark.parametrize(
    ("node_deflate", "trionet_compression"),
    [(True, True), (False, True), (True, False)],
    ids=["both", "node-off", "trionet-off"],
)
async def test_node_client_compression(
    nursery: trio.Nursery, tmp_path: Path, node_deflate: bool, trionet_compression: bool
) -> None:
    server = await start_http_server(nursery, compression=trionet_compression)
    messages = [COMPRESSIBLE_TEXT, COMPRESSIBLE_BINARY]
    [report] = await run_ws_client(
        tmp_path,
        {
            "url": server.url(),
            "perMessageDeflate": node_deflate,
            "messages": [spec(m) for m in messages],
        },
    )
    side = await server.next_side()
    assert side.received == [as_message(m) for m in messages]
    assert report["received"] == [summary(m) for m in messages]
    assert report["errors"] == []
    payload = sum(summary(m)["length"] for m in messages)
    if node_deflate and trionet_compression:
        assert side.extensions == ["permessage-deflate"]
        assert report["extensions"] == "permessage-deflate"
        assert report["response_extensions"].startswith("permessage-deflate")
        # Compressed on the wire, both ways.
        assert side.bytes_received < payload // 10
        assert side.bytes_sent < payload // 10
    else:
        assert side.extensions == []
        assert report["extensions"] == ""
        assert report["response_extensions"] is None
        assert side.bytes_received > payload
        assert side.bytes_sent > payload


# Over the limit uncompressed (random bytes, sent as they are), and
# compressed: 10 MiB of "x" is ten kilobytes on the wire, so trionet must
# refuse it while inflating (the bounded inflater), not by its frame sizes.
TOO_BIG = ["random-binary-uncompressed", "text-compressed"]


def too_big(kind: str) -> tuple[str | bytes, bool]:
    """A 10 MiB message, and whether the Node side compresses."""
    if kind == "text-compressed":
        return "x" * TEN_MIB, True
    return os.urandom(TEN_MIB), False


@pytest.mark.parametrize("kind", TOO_BIG)
async def test_node_client_10mib_is_refused_with_1009(
    nursery: trio.Nursery, tmp_path: Path, kind: str
) -> None:
    message, node_deflate = too_big(kind)
    server = await start_http_server(nursery)
    [report] = await run_ws_client(
        tmp_path,
        {
            "url": server.url(),
            "perMessageDeflate": node_deflate,
            "messages": [spec("first"), spec(message), spec("never sent")],
        },
    )
    side = await server.next_side()
    assert side.received == [TextMessage("first")]
    assert side.end is not None
    assert side.end[:2] == ("WebSocketClosed", 1009)
    assert report["received"] == [summary("first")]
    assert report["close"]["code"] == 1009
    assert "max_message_size" in report["close"]["reason"]
    assert report["errors"] == []


@pytest.mark.parametrize("kind", ["random-binary-uncompressed", "text-compressed"])
async def test_node_client_10mib_with_raised_limit(
    nursery: trio.Nursery, tmp_path: Path, kind: str
) -> None:
    message, node_deflate = too_big(kind)
    server = await start_http_server(
        nursery, max_message_size=RAISED_LIMIT, max_queued_bytes=RAISED_LIMIT
    )
    [report] = await run_ws_client(
        tmp_path,
        {"url": server.url(), "perMessageDeflate": node_deflate, "messages": [spec(message)]},
    )
    side = await server.next_side()
    assert side.extensions == (["permessage-deflate"] if node_deflate else [])
    assert side.received == [as_message(message)]
    assert report["received"] == [summary(message)]
    assert report["close"] == {"code": 1000, "reason": ""}
    assert side.end == ("clean", 1000, "")


async def test_node_client_close_codes(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start_http_server(nursery)
    hello = [spec("hello")]
    reports = await run_ws_client(
        tmp_path,
        {"url": server.url("/node-closes-1000"), "messages": hello, "then": "close"},
        {
            "url": server.url("/node-closes-4001"),
            "messages": hello,
            "then": "close",
            "code": 4001,
            "reason": "bye",
        },
        {
            "url": server.url("/node-closes-without-code"),
            "messages": hello,
            "then": "close",
            "code": None,
        },
        {"url": server.url("/server-closes"), "messages": hello, "then": "wait"},
        {"url": server.url("/node-terminates"), "messages": hello, "then": "terminate"},
    )
    with trio.fail_after(NODE_TIMEOUT):
        sides = {side.path: side for side in [await server.next_side() for _ in reports]}
    node_closes_1000, node_closes_4001, node_closes_without_code, server_closes, node_terminates = (
        reports
    )

    # Node closes normally: the loop ends quietly.
    assert sides["/node-closes-1000"].end == ("clean", 1000, "")
    assert node_closes_1000["close"] == {"code": 1000, "reason": ""}
    # Node closes with its own code: WebSocketClosed says which, and why.
    assert sides["/node-closes-4001"].end == ("WebSocketClosed", 4001, "bye")
    assert node_closes_4001["close"] == {"code": 4001, "reason": "bye"}
    # Node closes without a code (as browsers do): reported as 1005, quietly.
    assert sides["/node-closes-without-code"].end == ("clean", 1005, "")
    assert node_closes_without_code["close"] == {"code": 1005, "reason": ""}
    # trionet closes with its own code: Node's 'close' event has it.
    assert sides["/server-closes"].end == ("clean", 4002, "done")
    assert server_closes["close"] == {"code": 4002, "reason": "done"}
    assert server_closes["received"] == []
    # Node drops the TCP connection without a close frame: 1006, no hang.
    end = sides["/node-terminates"].end
    assert end is not None
    assert end[:2] == ("WebSocketClosed", 1006)
    assert node_terminates["close"]["code"] == 1006

    for report in reports:
        assert report["errors"] == []
    for side in sides.values():
        assert side.received == [TextMessage("hello")]


# -- trionet client -> Node server --------------------------------------------


@asynccontextmanager
async def node_ws_server(
    tmp_path: Path, connections: int, **plan: Any
) -> AsyncIterator[tuple[int, Callable[[], Awaitable[dict[str, Any]]]]]:
    """Run ``ws_server.js`` for ``connections`` connections; yield its port
    and a function returning its report of the next connection to close. On
    leaving, check that it exited 0 after them."""
    plan_file = write_plan(tmp_path, {"connections": connections, **plan})
    async with running(node_command("ws_server.js", plan_file)) as (process, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]

        async def next_report() -> dict[str, Any]:
            with trio.fail_after(NODE_TIMEOUT):
                return parse_report(await output.readline(), "a closed connection")

        yield port, next_report
        with trio.fail_after(NODE_TIMEOUT):
            status = await process.wait()
        assert status == 0


async def test_trionet_client_round_trip(tmp_path: Path) -> None:
    messages = [*SMALL_MESSAGES, BIG_TEXT, BIG_BINARY]
    async with node_ws_server(tmp_path, 1) as (port, next_report):
        with trio.fail_after(NODE_TIMEOUT):
            async with trionet.websocket.connect(f"ws://127.0.0.1:{port}/echo") as ws:
                # Node answers our ping with its payload: ping() returns.
                await ws.ping(b"ping \xf0\x9f\x8f\x93")
                echoes = []
                for message in messages:
                    await ws.send(message)
                    echoes.append(await ws.receive())
            report = await next_report()
    assert echoes == [as_message(m) for m in messages]
    assert report["received"] == [summary(m) for m in messages]
    assert report["close"] == {"code": 1000, "reason": ""}
    assert report["errors"] == []
    assert ws.close_code == 1000


async def test_trionet_client_subprotocols(tmp_path: Path) -> None:
    async with node_ws_server(tmp_path, 3, protocols=["chat.v1", "chat.v2"]) as (
        port,
        next_report,
    ):
        agreed = []
        reports = []
        for offered in (["chat.v2", "chat.v1"], ["chat.v3"], []):
            with trio.fail_after(NODE_TIMEOUT):
                async with trionet.websocket.connect(
                    f"ws://127.0.0.1:{port}/", subprotocols=offered
                ) as ws:
                    agreed.append(ws.subprotocol)
                    await ws.send("hi")
                    assert await ws.receive() == TextMessage("hi")
            reports.append(await next_report())
    # Node's handleProtocols picks its preferred one among those offered; when
    # none is shared, the connection opens without a subprotocol.
    assert agreed == ["chat.v1", None, None]
    assert [report["protocol"] for report in reports] == ["chat.v1", "", ""]
    for report in reports:
        assert report["errors"] == []


@pytest.mark.parametrize(
    ("node_deflate", "trionet_compression"),
    [(True, True), (False, True), (True, False)],
    ids=["both", "node-off", "trionet-off"],
)
async def test_trionet_client_compression(
    tmp_path: Path, node_deflate: bool, trionet_compression: bool
) -> None:
    messages = [COMPRESSIBLE_TEXT, COMPRESSIBLE_BINARY]
    async with node_ws_server(tmp_path, 1, perMessageDeflate=node_deflate) as (port, next_report):
        with trio.fail_after(NODE_TIMEOUT):
            async with trionet.websocket.connect(
                f"ws://127.0.0.1:{port}/", compression=trionet_compression
            ) as ws:
                extensions = ws.extensions
                echoes = []
                for message in messages:
                    await ws.send(message)
                    echoes.append(await ws.receive())
                stats = ws.statistics()
            report = await next_report()
    assert echoes == [as_message(m) for m in messages]
    assert report["received"] == [summary(m) for m in messages]
    assert report["errors"] == []
    payload = sum(summary(m)["length"] for m in messages)
    if trionet_compression:
        assert report["offered_extensions"].startswith("permessage-deflate")
    else:
        assert report["offered_extensions"] is None
    if node_deflate and trionet_compression:
        assert extensions == ["permessage-deflate"]
        assert report["extensions"] == "permessage-deflate"
        assert report["response_extensions"].startswith("permessage-deflate")
        assert stats.bytes_sent < payload // 10
        assert stats.bytes_received < payload // 10
    else:
        assert extensions == []
        assert report["extensions"] == ""
        assert report["response_extensions"] is None
        assert stats.bytes_sent > payload
        assert stats.bytes_received > payload


@pytest.mark.parametrize("kind", TOO_BIG)
async def test_trionet_client_refuses_10mib_with_1009(tmp_path: Path, kind: str) -> None:
    message, node_deflate = too_big(kind)
    async with node_ws_server(
        tmp_path,
        1,
        perMessageDeflate=node_deflate,
        routes={"/big": {"send": [spec("first"), spec(message), spec("never read")]}},
    ) as (port, next_report):
        with trio.fail_after(NODE_TIMEOUT):
            received = []
            async with trionet.websocket.connect(f"ws://127.0.0.1:{port}/big") as ws:

                async def read_all() -> None:
                    async for event in ws:
                        received.append(event)

                with pytest.raises(WebSocketClosed) as excinfo:
                    await read_all()
            report = await next_report()
    assert received == [TextMessage("first")]
    assert excinfo.value.code == 1009
    assert ws.close_code == 1009
    assert report["close"]["code"] == 1009
    assert "max_message_size" in report["close"]["reason"]
    assert report["errors"] == []


@pytest.mark.parametrize("kind", ["random-binary-uncompressed", "text-compressed"])
async def test_trionet_client_10mib_with_raised_limit(tmp_path: Path, kind: str) -> None:
    message, node_deflate = too_big(kind)
    async with node_ws_server(
        tmp_path, 1, perMessageDeflate=node_deflate, routes={"/big": {"send": [spec(message)]}}
    ) as (port, next_report):
        with trio.fail_after(NODE_TIMEOUT):
            async with trionet.websocket.connect(
                f"ws://127.0.0.1:{port}/big",
                max_message_size=RAISED_LIMIT,
                max_queued_bytes=RAISED_LIMIT,
            ) as ws:
                assert ws.extensions == (["permessage-deflate"] if node_deflate else [])
                received = await ws.receive()
                await ws.send(received.data)
                # Node echoes it back once more: 10 MiB three times over.
                echoed = await ws.receive()
            report = await next_report()
    assert received == as_message(message)
    assert echoed == as_message(message)
    assert report["received"] == [summary(message)]
    assert report["close"] == {"code": 1000, "reason": ""}


async def test_trionet_client_close_codes(tmp_path: Path) -> None:
    routes = {
        "/node-closes-1000": {"on_message": {"do": "close", "code": 1000}},
        "/node-closes-4001": {"on_message": {"do": "close", "code": 4001, "reason": "bye"}},
        "/node-closes-without-code": {"on_message": {"do": "close"}},
        "/node-terminates": {"on_message": {"do": "terminate"}},
    }
    ends: dict[str, tuple[str, int | None, str | None]] = {}
    reports: dict[str, dict[str, Any]] = {}
    async with node_ws_server(tmp_path, len(routes) + 1, routes=routes) as (port, next_report):
        for path in routes:
            with trio.fail_after(NODE_TIMEOUT):
                async with trionet.websocket.connect(f"ws://127.0.0.1:{port}{path}") as ws:
                    await ws.send("hello")
                    try:
                        async for message in ws:
                            pytest.fail(f"{path}: unexpected {message!r}")
                        ends[path] = ("clean", ws.close_code, ws.close_reason)
                    except WebSocketClosed as exc:
                        ends[path] = ("WebSocketClosed", exc.code, exc.reason)
            reports[path] = await next_report()
        with trio.fail_after(NODE_TIMEOUT):
            async with trionet.websocket.connect(f"ws://127.0.0.1:{port}/echo") as ws:
                await ws.send("hello")
                assert await ws.receive() == TextMessage("hello")
                await ws.aclose(4002, "done")
            ends["/echo"] = ("closed by us", ws.close_code, ws.close_reason)
        reports["/echo"] = await next_report()

    # Node closes normally: the loop ends quietly.
    assert ends["/node-closes-1000"] == ("clean", 1000, "")
    assert reports["/node-closes-1000"]["close"] == {"code": 1000, "reason": ""}
    # Node closes with its own code: WebSocketClosed says which, and why.
    assert ends["/node-closes-4001"] == ("WebSocketClosed", 4001, "bye")
    assert reports["/node-closes-4001"]["close"] == {"code": 4001, "reason": "bye"}
    # Node closes without a code: reported as 1005, quietly.
    assert ends["/node-closes-without-code"] == ("clean", 1005, "")
    assert reports["/node-closes-without-code"]["close"] == {"code": 1005, "reason": ""}
    # trionet closes with its own code: Node's 'close' event has it.
    assert ends["/echo"] == ("closed by us", 4002, "done")
    assert reports["/echo"]["close"] == {"code": 4002, "reason": "done"}
    # Node drops the TCP connection without a close frame: 1006, no hang.
    assert ends["/node-terminates"][:2] == ("WebSocketClosed", 1006)
    assert reports["/node-terminates"]["close"]["code"] == 1006

    for path, report in reports.items():
        assert report["path"] == path
        assert report["received"] == [summary("hello")]
        assert report["errors"] == []
