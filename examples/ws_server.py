"""The seed's WebSocket server in trionet: HTTP and WebSocket on one port,
live updates pushed on ``/updates``.

    uv run python examples/ws_server.py [--port 12010] [--host 127.0.0.1] [--parser h11]

The Node original upgrades by hand on the HTTP server's ``'upgrade'`` event
(reading ``Sec-WebSocket-Key``, answering ``101 Switching Protocols`` with
``Sec-WebSocket-Accept``)::

    server.on('upgrade', function (req, socket, upgradeHead) {
      var key = req.headers['sec-websocket-key'];
      key = crypto.createHash('sha1')
        .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      ...
    });

Here ``request.accept_websocket()`` does the handshake. Each client on
``/updates`` gets a welcome, then an update every second (the time and a
counter), and every message it sends is answered with ``echo: ...``.
"""

import argparse
import time
from functools import partial

import trio

import trionet


async def updates(ws: trionet.websocket.WebSocketConnection) -> None:
    """Push one update a second until the connection ends."""
    count = 0
    while True:
        count += 1
        await ws.send(f"update {count}: {time.strftime('%H:%M:%S')}")
        await trio.sleep(1)


async def app(request: trionet.http.Request) -> trionet.http.Response | None:
    if request.path == "/updates" and request.is_websocket_upgrade:
        ws = await request.accept_websocket()
        await ws.send("welcome to /updates")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(updates, ws)
            try:
                async for message in ws:
                    await ws.send(f"echo: {message.data!r}")
            except trionet.ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()
        return None
    return trionet.http.Response.text("Hello World\n")


async def main(host: str, port: int, parser: str) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.http.serve, app, port, host, parser=parser))
        print(f"Server running at http://{host}:{server.port}/", flush=True)
        print(f"WebSocket updates at ws://{host}:{server.port}/updates", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=12010)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--parser",
        choices=trionet.http.PARSERS,
        default="auto",
        help="the request parser (auto: httptools when installed, else h11)",
    )
    args = parser.parse_args()
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, args.host, args.port, args.parser)


if __name__ == "__main__":
    cli()
