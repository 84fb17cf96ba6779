"""Memory per idle connection of trionet's servers: HTTP keep-alive,
WebSocket (with and without permessage-deflate) and TCP.

    uv run python benchmarks/idle_memory.py [--connections 10000] [--kind all]
                                            [--parser auto] [--where]

For each kind, a trionet server runs in a child process; this process opens
``--connections`` connections to it and leaves them idle (HTTP: after one
keep-alive request; WebSocket: after the handshake; TCP: connected), then
reads the server's resident memory (VmRSS) before and after, and prints the
difference divided by the number of connections. The number includes the
kernel-side socket buffers only as far as they count in the process's RSS
(they do not): it is what the Python process holds.

``--where`` runs the server under tracemalloc (which inflates the RSS
figure) and prints, per connection, where the Python heap grew, by source
line: what ``docs/limits.rst`` reports as "where the bytes go". ``--parser``
picks the HTTP request parser (``h11``, ``httptools``; ``auto`` by
default). RSS moves
with the allocator's arenas, so compare runs of the same size, and repeat.
"""

# The server program below is a string run by a child process: its long lines stay.
# ruff: noqa: E501
from __future__ import annotations

import argparse
import base64
import os
import resource
import socket
import subprocess
import sys
import time

KINDS = ["http", "websocket", "websocket-deflate", "tcp"]

SERVER = r"""
import sys, tracemalloc, linecache
where = sys.argv[2] == "1"
if where:
    tracemalloc.start(1)
import resource, trio, trionet, trionet.http, trionet.websocket
from functools import partial
CAP = 100_000  # above any --connections: this measures memory, not the cap
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
kind = sys.argv[1]
parser = sys.argv[3]
HELLO = trionet.http.Response(200, {"content-type": "text/plain"}, b"Hello World\n")

async def hello(request):
    return HELLO

async def ws_echo(ws):
    async for message in ws:
        await ws.send(message.data)

async def tcp_echo(conn):
    async for event in conn:
        if isinstance(event, trionet.Data):
            await conn.send(event.data)

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def main():
    async with trio.open_nursery() as nursery:
        if kind == "http":
            server = await nursery.start(partial(trionet.http.serve, hello, 0, "127.0.0.1", max_connections=CAP, parser=parser))
        elif kind.startswith("websocket"):
            server = await nursery.start(partial(trionet.websocket.serve, ws_echo, 0, "127.0.0.1", max_connections=CAP, parser=parser))
        else:
            server = await nursery.start(partial(trionet.serve_tcp, tcp_echo, 0, "127.0.0.1", max_connections=CAP))
        print("port", server.port, flush=True)
        baseline = None
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                break
            if line.strip() == "baseline":
                if where:
                    baseline = tracemalloc.take_snapshot()
            if line.strip() == "top":
                snap = tracemalloc.take_snapshot()
                stats = snap.compare_to(baseline, "lineno")
                print("total", sum(stat.size_diff for stat in stats), flush=True)
                for stat in stats[:40]:
                    frame = stat.traceback[0]
                    print("top", stat.size_diff, stat.count_diff, f"{frame.filename}:{frame.lineno}",
                          linecache.getline(frame.filename, frame.lineno).strip()[:80], flush=True)
                print("end", flush=True)
                continue
            heap = tracemalloc.get_traced_memory()[0] if where else 0
            print("rss", rss(), server.statistics().active, heap, flush=True)
        nursery.cancel_scope.cancel()

trio.run(main)
"""


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_idle(kind: str, port: int, count: int) -> list[socket.socket]:
    """``count`` idle connections of ``kind``; spread over 127.0.0.x sources
    so that ephemeral ports do not run out."""
    sockets = []
    for index in range(count):
        source = f"127.0.0.{2 + index // 20000}"
        sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        if kind == "http":
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            data = b""
            while not data.endswith(b"Hello World\n"):
                data += sock.recv(4096)
        elif kind.startswith("websocket"):
            key = base64.b64encode(os.urandom(16))
            extensions = (
                b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                if kind == "websocket-deflate"
                else b""
            )
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: "
                + key
                + b"\r\nSec-WebSocket-Version: 13\r\n"
                + extensions
                + b"\r\n"
            )
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(4096)
            assert data.startswith(b"HTTP/1.1 101"), data[:100]
        sockets.append(sock)
    return sockets


def ask(server: subprocess.Popen[str], command: str) -> str:
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write(command + "\n")
    server.stdin.flush()
    return server.stdout.readline()


def measure(kind: str, count: int, where: bool, parser: str) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, kind, "1" if where else "0", parser],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        # Warm up: the first connection's code paths and caches are not
        # per-connection costs.
        warm = open_idle(kind, port, 10)
        ask(server, "rss")
        ask(server, "baseline")
        _, before, _, _ = ask(server, "rss").split()
        sockets = open_idle(kind, port, count)
        deadline = time.monotonic() + 120
        while True:
            _, rss, active, _ = ask(server, "rss").split()
            if int(active) >= count + len(warm) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        grown = int(rss) - int(before)
        print(f"{kind:18} {count} idle connections: +{grown} KiB RSS, {grown / count:.1f} KiB each")
        if where:
            assert server.stdin is not None
            assert server.stdout is not None
            server.stdin.write("top\n")
            server.stdin.flush()
            total = int(server.stdout.readline().split()[1])
            print(f"  the Python heap grew {total / count:.0f} B per connection ({kind}); where:")
            while (line := server.stdout.readline()).startswith("top"):
                _, size, blocks, place, *code = line.split(" ", 4)
                print(
                    f"  {int(size) / count:8.0f} B  {int(blocks) / count:5.1f} blocks  "
                    f"{place.split('site-packages/')[-1].split('/work/main/')[-1]}  "
                    f"{code[0].strip() if code else ''}"
                )
        for sock in sockets + warm:
            sock.close()
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    parser.add_argument("--parser", choices=["auto", "h11", "httptools"], default="auto")
    parser.add_argument("--where", action="store_true", help="attribute the heap by source line")
    args = parser.parse_args()
    raise_fd_limit()
    for kind in KINDS if args.kind == "all" else [args.kind]:
        measure(kind, args.connections, args.where, args.parser)


if __name__ == "__main__":
    main()
