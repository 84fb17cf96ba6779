"""``trionet demo``: the seed's servers, all at once, on their usual ports:
TCP 8124, UDP 41234, HTTP 12010 and HTTPS 12443 (with a development
certificate made on first run, see :mod:`trionet.tls._devcert`). Both HTTP ports
also serve the seed's WebSocket: ``/updates`` pushes an update every second
and echoes what it receives, and ``GET /`` is a small page that connects to
it (``ws://`` or ``wss://``, whichever the page came over), lists the updates
and has an echo box.

The banner lists every service with a command to paste into another
terminal; then one line is logged per connection, request or datagram, each
``KIND ADDRESS WHAT``. Ctrl-C (or SIGTERM) shuts every server down
gracefully, all at once (WebSockets get close 1001, requests in flight are
answered), and the command exits 0.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import itertools
import os
import shlex
import signal
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from .._errors import BindError, ConnectionClosed
from .._events import Data, EndOfStream
from .._listeners import format_address, url_host
from .._run import run as trionet_run
from .._server import Server, SocketAddress
from .._stream import TCPConnection
from .._tcp import serve_tcp
from .._udp import UDPPeer, serve_udp
from ..http import PARSERS, Handler, Request, Response
from ..http import serve as serve_http
from ..tls._contexts import server_context
from ..tls._devcert import DevCertificateError, cache_directory, dev_certificate
from ..websocket import WebSocketConnection, close_code_name

__all__ = ["add_arguments", "run"]

WELCOME = "欢迎光临《深入浅出Node.js》示例:\n"
GREETING = "你好"
GOODBYE = "连接断开"
# Seconds the servers get to finish what they are doing after Ctrl-C; then
# the rest is cancelled. Every demo exchange is short: 5 s is generous.
SHUTDOWN_GRACE = 5.0
UPDATE_INTERVAL = 1.0


def say(line: str) -> None:
    print(line, flush=True)


def log(kind: str, address: SocketAddress, what: str) -> None:
    """One log line: ``tcp   127.0.0.1:53012 connected``."""
    say(f"{kind:<5} {format_address(address)} {what}")


# -- the seed's servers -------------------------------------------------------------


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


# -- the command ------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    kind: str  # "tcp", "udp", "http", "https"
    name: str
    flag: str
    default_port: int
    tls: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


SERVICES = [
    Service("tcp", "TCP welcome server", "--tcp-port", 8124),
    Service("udp", "UDP echo server", "--udp-port", 41234),
    Service("http", "HTTP and WebSocket server", "--http-port", 12010),
    Service("https", "HTTPS and wss server", "--https-port", 12443, tls=True),
]


async def _start(
    service: Service,
    nursery: trio.Nursery,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    parser: str,
) -> Server:
    if service.kind == "tcp":
        start = partial(serve_tcp, welcome, port, host)
    elif service.kind == "udp":
        start = partial(serve_udp, dgram_echo, port, host)
    else:
        context = tls if service.tls else None
        start = partial(
            serve_http, http_app(service.kind), port, host, ssl_context=context, parser=parser
        )
    server: Server = await nursery.start(start)
    return server


def cli_command() -> str:
    """How a person runs trionet's command in another terminal: ``uv run
    trionet`` when this demo was started by ``uv run`` in a project (uv
    sets ``UV`` in the environment of what it runs, and the virtual
    environment is the project's ``.venv``), else ``trionet`` (installed on
    the ``PATH``, or a virtual environment the user activated)."""
    venv = os.environ.get("VIRTUAL_ENV")
    if os.environ.get("UV") and venv and (Path(venv).parent / "pyproject.toml").is_file():
        return "uv run trionet"
    return "trionet"


def _client_host(host: str) -> str:
    """The address a client on this machine connects to: the loopback
    address for a wildcard one (``0.0.0.0``, ``::``)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


def banner(
    host: str,
    addresses: Mapping[str, SocketAddress],
    cert: Path | None,
    cli: str,
) -> list[str]:
    """The lines printed once every server listens: each service, its
    address and commands to paste into another terminal.

    Args:
        host: The ``--host`` the servers listen on.
        addresses: The first address of each running service, by kind
            (``"tcp"``...); ``"https"`` is absent with ``--no-tls``.
        cert: The development certificate (with TLS).
        cli: How to run ``trionet`` (:func:`cli_command`).
    """
    client = _client_host(host)
    name = url_host(client)
    # The development certificate names localhost: TLS clients use that name
    # when the demo listens on loopback, so the name check is shown working.
    tls_host = "localhost" if client in ("127.0.0.1", "::1", "localhost") else name
    port = {kind: int(address[1]) for kind, address in addresses.items()}
    http = f"{name}:{port['http']}"
    rows: list[tuple[str, str, str, list[str]]] = [
        (
            "TCP",
            "tcp",
            "welcome server (net): type a line; Ctrl-D ends",
            [f"{cli} tcp {client} {port['tcp']}"],
        ),
        (
            "UDP",
            "udp",
            "echo server (dgram)",
            [f"echo 深入浅出Node.js | {cli} udp {client} {port['udp']}"],
        ),
        ("HTTP", "http", "Hello World (http)", [f"curl http://{http}/hello"]),
        (
            "WS",
            "http",
            "/updates: an update every second; each line sent comes back",
            [f"{cli} ws ws://{http}/updates"],
        ),
        ("page", "http", "live updates and an echo box, in a browser", [f"http://{http}/"]),
    ]
    if "https" in addresses and cert is not None:
        cafile = shlex.quote(str(cert))
        https = f"{tls_host}:{port['https']}"
        rows.append(
            (
                "HTTPS",
                "https",
                "HTTP, WS and the page over TLS, with the development certificate",
                [
                    f"curl --cacert {cafile} https://{name}:{port['https']}/hello",
                    f"{cli} get --cafile {cafile} https://{https}/hello",
                    f"{cli} ws --cafile {cafile} wss://{https}/updates",
                    f"https://{https}/",
                ],
            )
        )
    shown = {kind: format_address(address) for kind, address in addresses.items()}
    width = max(len(shown[kind]) for _, kind, _, _ in rows)
    lines = ["trionet demo is running; press Ctrl-C to stop. Try it from another terminal:", ""]
    for label, kind, what, commands in rows:
        lines.append(f"  {label:<6} {shown[kind]:<{width}}  {what}")
        lines.extend(f"         {command}" for command in commands)
    lines += ["", "Connections are logged below as they come:"]
    return lines


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is in 0..65535, not {port}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address every service listens on (127.0.0.1)"
    )
    for service in SERVICES:
        parser.add_argument(
            service.flag,
            type=_port,
            default=service.default_port,
            metavar="PORT",
            help=f"port of the {service.name} ({service.default_port}; 0 picks a free one)",
        )
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="do not start the HTTPS and wss server (no development certificate is made)",
    )
    parser.add_argument(
        "--parser",
        choices=PARSERS,
        default="auto",
        help="the HTTP request parser (auto: httptools when installed, else h11)",
    )


def _fail(message: str) -> int:
    print(f"trionet demo: {message}", file=sys.stderr, flush=True)
    return 1


async def _main(args: argparse.Namespace) -> int:
    # Run by trionet.run, which watches SIGINT and SIGTERM from the start: a
    # signal while starting stops the demo too, and once it serves, the
    # first signal shuts every server down at once (each stops accepting,
    # says goodbye in its protocol: WebSocket close 1001, Connection: close,
    # and waits for its handlers up to the grace period), then this is
    # cancelled. It returns only for a failure.
    services = [s for s in SERVICES if not (s.tls and args.no_tls)]
    cert: Path | None = None
    context: ssl.SSLContext | None = None
    if not args.no_tls:
        try:
            certfile, keyfile = await trio.to_thread.run_sync(dev_certificate)
        except DevCertificateError as exc:
            return _fail(f"{exc}; or run with --no-tls")
        except OSError as exc:  # the cache directory is not writable...
            return _fail(
                f"cannot make the development certificate in {cache_directory()}:"
                f" {exc.strerror or exc}; or run with --no-tls"
            )
        cert, context = certfile, server_context(certfile, keyfile)
    servers: dict[str, Server] = {}
    async with trio.open_nursery() as nursery:
        for service in services:
            port = getattr(args, service.dest)
            try:
                servers[service.kind] = await _start(
                    service, nursery, args.host, port, context, args.parser
                )
            except BindError as exc:
                nursery.cancel_scope.cancel()
                if exc.errno == errno.EADDRINUSE:
                    hint = f"choose another port with {service.flag} PORT"
                else:
                    hint = "check --host"
                return _fail(f"cannot start the {service.name}: {exc.strerror}; {hint}")
        addresses = {kind: server.addresses[0] for kind, server in servers.items()}
        for line in banner(args.host, addresses, cert, cli_command()):
            say(line)
        await trio.sleep_forever()
    raise AssertionError("unreachable: trionet.run cancels the demo")


def _on_signal(signum: signal.Signals, forced: bool) -> None:
    say(f"{signum.name}: stopping now" if forced else f"{signum.name}: shutting down...")


def run(args: argparse.Namespace) -> int:
    """Run the demo until SIGINT or SIGTERM; return the exit status."""
    status = trionet_run(_main, args, grace=SHUTDOWN_GRACE, on_signal=_on_signal)
    if status is not None:
        return status  # it could not start
    say("stopped.")
    return 0
