"""``trionet demo``: the seed's servers, all at once, on their usual ports:
TCP 8124, UDP 41234, HTTP 12010 and HTTPS 12443 (with a development
certificate made on first run, see :mod:`trionet._devcert`). Both HTTP ports
also serve the seed's WebSocket: ``/updates`` pushes live updates, and ``GET
/`` is a small page that connects to it and shows them (``ws://`` or
``wss://``, whichever the page came over).

Each service is a (name, port flag, starter) entry in ``SERVICES``; later
protocols add theirs there. Ctrl-C (or SIGTERM) shuts every server down
gracefully and the command exits 0.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from ._devcert import DevCertificateError, cache_directory, dev_certificate
from ._errors import BindError
from ._events import Data, EndOfStream
from ._listeners import format_address
from ._server import Server
from ._stream import TCPConnection
from ._tcp import serve_tcp
from ._udp_server import UDPPeer, serve_udp
from .http import Request, Response
from .http import serve as serve_http
from .tls import server_context
from .websocket import WebSocketConnection

__all__ = ["add_arguments", "run"]

WELCOME = "欢迎光临《深入浅出Node.js》示例:\n"
GREETING = "你好"
GOODBYE = "连接断开"
SHUTDOWN_GRACE = 5.0


def say(line: str) -> None:
    print(line, flush=True)


async def welcome(conn: TCPConnection) -> None:
    """The seed's ``net`` server: a welcome line, ``你好`` for every piece of
    data, ``连接断开`` printed when the client ends; then our side closes too
    (Node's default, ``allowHalfOpen: false``)."""
    say(f"tcp: connection from {format_address(conn.remote_address)}")
    await conn.send(WELCOME)
    async for event in conn:
        match event:
            case Data():
                await conn.send(GREETING)
            case EndOfStream():
                say(GOODBYE)


async def dgram_server(peer: UDPPeer) -> None:
    """The seed's ``dgram`` server: print every message with its sender."""
    async for dgram in peer:
        message = dgram.data.decode("utf-8", "replace")
        say(f"server got: {message} from {format_address(dgram.address)}")


HELLO = Response(200, {"content-type": "text/plain"}, b"Hello World\n")

# The seed's browser side: open a WebSocket to /updates on the same host and
# show what arrives (newest first), sending a message now and then.
PAGE = Response(
    200,
    {"content-type": "text/html; charset=utf-8"},
    """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>trionet demo: live updates</title>
<h1>trionet demo: live updates</h1>
<p id="status">connecting...</p>
<ol id="log" reversed></ol>
<script>
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/updates";
const socket = new WebSocket(url);
const status = document.getElementById("status");
const log = document.getElementById("log");
socket.onopen = () => {
  status.textContent = "connected to " + url;
  socket.send("hello from the browser");
};
socket.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  log.prepend(item);
  while (log.children.length > 20) log.lastChild.remove();
};
socket.onclose = (event) => {
  status.textContent = "closed with code " + event.code + (event.reason ? ": " + event.reason : "");
};
</script>
</html>
""",
)
UPDATE_INTERVAL = 1.0


async def push_updates(ws: WebSocketConnection) -> None:
    """One update a second: a counter and the time."""
    for count in itertools.count(1):
        await ws.send(f"update {count}: {time.strftime('%H:%M:%S')}")
        await trio.sleep(UPDATE_INTERVAL)


async def hello(request: Request) -> Response | None:
    """The seed's ``http`` server: ``Hello World`` for every request, but
    ``GET /`` (the live-updates page) and the WebSocket ``/updates`` (pushes
    updates and answers every message with ``echo: ...``)."""
    if request.path == "/updates" and request.is_websocket_upgrade:
        ws = await request.accept_websocket()
        say(f"ws: {format_address(request.client)} connected to /updates")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push_updates, ws)
            async for message in ws:
                await ws.send(f"echo: {message.data!r}")
            nursery.cancel_scope.cancel()
        say(f"ws: {format_address(request.client)} closed ({ws.close_code})")
        return None
    if request.path == "/" and request.method in ("GET", "HEAD"):
        return PAGE
    return HELLO


@dataclass(frozen=True)
class Service:
    name: str
    flag: str
    default_port: int
    start: Callable[[trio.Nursery, str, int], Awaitable[Server]]
    try_it: Callable[[str, int], str]
    tls: bool = False


async def _start_tcp(nursery: trio.Nursery, host: str, port: int) -> Server:
    server: Server = await nursery.start(partial(serve_tcp, welcome, port, host))
    return server


async def _start_udp(nursery: trio.Nursery, host: str, port: int) -> Server:
    server: Server = await nursery.start(partial(serve_udp, dgram_server, port, host))
    return server


async def _start_http(nursery: trio.Nursery, host: str, port: int) -> Server:
    server: Server = await nursery.start(partial(serve_http, hello, port, host))
    return server


async def _start_https(nursery: trio.Nursery, host: str, port: int) -> Server:
    cert, key = dev_certificate()
    context = server_context(cert, key)
    server: Server = await nursery.start(
        partial(serve_http, hello, port, host, ssl_context=context)
    )
    return server


def _https_try(host: str, port: int) -> str:
    cert = cache_directory() / "cert.pem"
    return f"curl --cacert {cert} https://{_url_host(host)}:{port}/"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


SERVICES = [
    Service(
        name="TCP welcome server (net)",
        flag="--tcp-port",
        default_port=8124,
        start=_start_tcp,
        try_it=lambda host, port: f"nc {host} {port}   (type a line, Ctrl-D to end)",
    ),
    Service(
        name="UDP server (dgram)",
        flag="--udp-port",
        default_port=41234,
        start=_start_udp,
        try_it=lambda host, port: f"bash -c 'echo -n 深入浅出Node.js > /dev/udp/{host}/{port}'",
    ),
    Service(
        name="HTTP server (http, WebSocket /updates)",
        flag="--http-port",
        default_port=12010,
        start=_start_http,
        try_it=lambda host, port: (
            f"curl http://{_url_host(host)}:{port}/hello; open http://{_url_host(host)}:{port}/"
            " in a browser for the live updates"
        ),
    ),
    Service(
        name="HTTPS server (https and wss, development certificate)",
        flag="--https-port",
        default_port=12443,
        start=_start_https,
        try_it=_https_try,
        tls=True,
    ),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address every service listens on (127.0.0.1)"
    )
    for service in SERVICES:
        parser.add_argument(
            service.flag,
            type=int,
            default=service.default_port,
            metavar="PORT",
            help=f"port of the {service.name} ({service.default_port}; 0 picks a free one)",
        )
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="do not start the TLS services (no development certificate is made)",
    )


async def _main(args: argparse.Namespace) -> int:
    servers: list[Server] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            services = [s for s in SERVICES if not (s.tls and args.no_tls)]
            for service in services:
                port = getattr(args, service.flag.lstrip("-").replace("-", "_"))
                try:
                    server = await service.start(nursery, args.host, port)
                except DevCertificateError as exc:
                    print(
                        f"trionet demo: {service.name}: {exc}; or run with --no-tls",
                        file=sys.stderr,
                        flush=True,
                    )
                    nursery.cancel_scope.cancel()
                    return 1
                except BindError as exc:
                    print(
                        f"trionet demo: {service.name}: {exc}; choose another port with "
                        f"{service.flag} PORT",
                        file=sys.stderr,
                        flush=True,
                    )
                    nursery.cancel_scope.cancel()
                    return 1
                servers.append(server)
            say("trionet demo is running; press Ctrl-C to stop.")
            for service, server in zip(services, servers, strict=True):
                say(f"  {service.name}: {format_address(server.addresses[0])}")
                say(f"    try: {service.try_it(args.host, server.port)}")
            async for signum in signals:
                say(f"{signal.Signals(signum).name}: shutting down...")
                break
            with trio.CancelScope(shield=True):
                for server in servers:
                    await server.shutdown(SHUTDOWN_GRACE)
    say("stopped.")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C; return the exit status."""
    return trio.run(_main, args)
