"""The seed's servers that ``trionet demo`` runs (:mod:`._demo`): the
``net`` welcome server, the ``dgram`` echo, and the ``http`` Hello World with
its WebSocket ``/updates`` and the page that uses it. Each connection,
request or datagram is logged as one line, ``KIND ADDRESS WHAT``.
"""

from __future__ import annotations

import itertools
import time

import trio

from .._errors import ConnectionClosed
from .._events import Data, EndOfStream
from .._listeners import format_address
from .._server import SocketAddress
from .._stream import TCPConnection
from .._udp import UDPPeer
from .._workers import current_worker
from ..http import Handler, Request, Response
from ..websocket import WebSocketConnection, close_code_name

__all__ = ["dgram_echo", "http_app", "say", "welcome"]

WELCOME = "欢迎光临《深入浅出Node.js》示例:\n"
GREETING = "你好"
GOODBYE = "连接断开"
UPDATE_INTERVAL = 1.0


def say(line: str) -> None:
    print(line, flush=True)


def log(kind: str, address: SocketAddress, what: str) -> None:
    """One log line: ``tcp   127.0.0.1:53012 connected``; in a worker
    process, followed by which one (``[worker 1]``)."""
    worker = current_worker()
    where = "" if worker is None else f" [worker {worker.index}]"
    say(f"{kind:<5} {format_address(address)} {what}{where}")


async def welcome(conn: TCPConnection) -> None:
    """The seed's ``net`` server: a welcome line, ``你好`` for every piece of
    data, ``连接断开`` when the client ends; then our side closes too (Node's
    default, ``allowHalfOpen: false``)."""
    peer = conn.remote_address
    log("tcp", peer, "connected")
    try:
        await conn.send(WELCOME)
        async for event in conn:
            match event:
                case Data():
                    await conn.send(GREETING)
                case EndOfStream():
                    log("tcp", peer, f"ended: {GOODBYE}")
                    return
    except ConnectionClosed as exc:
        log("tcp", peer, f"reset: {exc.reason}")
        return
    log("tcp", peer, "closed (shutting down)" if conn.shutdown_requested else "closed")


async def dgram_echo(peer: UDPPeer) -> None:
    """The seed's ``dgram`` server, which prints every message with its
    sender; and, so that a client sees an answer, it sends it back."""
    async for dgram in peer:
        log("udp", dgram.address, f"got {dgram.data.decode('utf-8', 'replace')!r}")
        await peer.send(dgram.data)


HELLO = Response(200, {"content-type": "text/plain"}, b"Hello World\n")

# The seed's browser side: a WebSocket to /updates on the same host, the
# updates listed newest first, and an echo box. No external resource (the
# empty icon keeps the browser from asking for /favicon.ico), and a policy
# that allows none.
PAGE_HTML = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trionet demo</title>
<link rel="icon" href="data:,">
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 36em; margin: 1.5em auto;
       padding: 0 1em; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .25em; }
h2 { font-size: 1.1em; margin: 1.25em 0 .25em; }
p { margin: 0 0 .5em; }
#status { color: #555; }
form { display: flex; gap: .5em; align-items: center; margin-bottom: .5em; }
input { flex: 1; font: inherit; padding: .3em .5em; }
button { font: inherit; padding: .3em 1em; }
output { font-family: ui-monospace, monospace; }
ul { font-family: ui-monospace, monospace; padding-left: 1.25em; margin: 0; }
</style>
</head>
<body>
<main>
<h1>trionet demo</h1>
<p>The server pushes an update every second over the WebSocket <code>/updates</code>,
and answers each message you send with its echo.</p>
<p id="status" role="status">Connecting…</p>
<h2>Echo</h2>
<form id="echo-form">
<label for="message">Message</label>
<input id="message" autocomplete="off" required>
<button id="send" type="submit" disabled>Send</button>
</form>
<p>Server: <output id="echo" for="message"></output></p>
<h2 id="updates-title">Live updates</h2>
<ul id="updates" aria-labelledby="updates-title"></ul>
</main>
<script>
"use strict";
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/updates";
const status = document.getElementById("status");
const updates = document.getElementById("updates");
const input = document.getElementById("message");
const send = document.getElementById("send");
const socket = new WebSocket(url);
socket.onopen = () => {
  status.textContent = "Connected to " + url;
  send.disabled = false;
};
socket.onmessage = (event) => {
  if (event.data.startsWith("echo: ")) {
    document.getElementById("echo").textContent = event.data;
    return;
  }
  const item = document.createElement("li");
  item.textContent = event.data;
  updates.prepend(item);
  while (updates.children.length > 8) updates.lastElementChild.remove();
};
socket.onclose = (event) => {
  send.disabled = true;
  status.textContent = "Closed with code " + event.code + (event.reason ? ": " + event.reason : "");
};
document.getElementById("echo-form").onsubmit = (event) => {
  event.preventDefault();
  socket.send(input.value);
  input.value = "";
};
</script>
</body>
</html>
"""
PAGE = Response(
    200,
    {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": (
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
            " img-src data:; connect-src 'self'"
        ),
    },
    PAGE_HTML,
)


def update(count: int) -> str:
    return f"update {count}: {time.strftime('%H:%M:%S')}"


async def push_updates(ws: WebSocketConnection, start: int) -> None:
    """An update a second, numbered from ``start``. Ends quietly when the
    connection closes (the shutdown's close 1001 included)."""
    try:
        for count in itertools.count(start):
            await trio.sleep(UPDATE_INTERVAL)
            await ws.send(update(count))
    except (ConnectionClosed, trio.ClosedResourceError):
        pass


async def updates(ws: WebSocketConnection) -> None:
    """The seed's WebSocket: push updates (the first at once, before any
    echo), and answer every message with ``echo: ...``, until the client (or
    the shutdown) closes."""
    async with trio.open_nursery() as nursery:
        try:
            await ws.send(update(1))
            nursery.start_soon(push_updates, ws, 2)
            async for message in ws:
                await ws.send(f"echo: {message.data!r}")
        except (ConnectionClosed, trio.ClosedResourceError):
            pass  # the close code says what happened
        nursery.cancel_scope.cancel()


def http_app(scheme: str) -> Handler:
    """The seed's ``http`` server: ``Hello World`` for every request, but
    ``GET /`` (the page) and the WebSocket ``/updates``."""
    ws_kind = "wss" if scheme == "https" else "ws"

    async def app(request: Request) -> Response | None:
        if request.path == "/updates" and request.is_websocket_upgrade:
            ws = await request.accept_websocket()
            log(ws_kind, request.client, "open /updates")
            await updates(ws)
            code = ws.close_code or 1005
            log(ws_kind, request.client, f"closed {code} ({close_code_name(code)})")
            return None
        # The body is read before the answer: a request whose body is still
        # arriving at Ctrl-C is in flight, and gets its whole answer.
        await request.read()
        response = PAGE if request.path == "/" and request.method in ("GET", "HEAD") else HELLO
        log(scheme, request.client, f"{request.method} {request.target} {response.status}")
        return response

    return app
