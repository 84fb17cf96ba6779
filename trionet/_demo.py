"""``trionet demo``: the seed's servers, all at once, on their usual ports.

Each service is a (name, port flag, starter) entry in ``SERVICES``; later
protocols add theirs there. Ctrl-C (or SIGTERM) shuts every server down
gracefully and the command exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from ._errors import BindError
from ._events import Data, EndOfStream
from ._listeners import format_address
from ._server import Server
from ._stream import TCPConnection
from ._tcp import serve_tcp
from ._udp_server import UDPPeer, serve_udp

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


@dataclass(frozen=True)
class Service:
    name: str
    flag: str
    default_port: int
    start: Callable[[trio.Nursery, str, int], Awaitable[Server]]
    try_it: Callable[[str, int], str]


async def _start_tcp(nursery: trio.Nursery, host: str, port: int) -> Server:
    server: Server = await nursery.start(partial(serve_tcp, welcome, port, host))
    return server


async def _start_udp(nursery: trio.Nursery, host: str, port: int) -> Server:
    server: Server = await nursery.start(partial(serve_udp, dgram_server, port, host))
    return server


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


async def _main(args: argparse.Namespace) -> int:
    servers: list[Server] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for service in SERVICES:
                port = getattr(args, service.flag.lstrip("-").replace("-", "_"))
                try:
                    server = await service.start(nursery, args.host, port)
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
            for service, server in zip(SERVICES, servers, strict=True):
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
