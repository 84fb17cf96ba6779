"""A WebSocket echo server beside plain HTTP on one port: every message is
sent back as it came (text as text, binary as binary), on any path; a plain
HTTP request gets ``Hello World``. The benchmark and Autobahn target.

    uv run python examples/ws_echo.py [--port 9001] [--host 127.0.0.1]
                                      [--max-message-size BYTES] [--workers N]

The library's default limits apply (1 MiB per message, close 1009 beyond)
unless ``--max-message-size`` raises them (Autobahn's 9.* cases send up to
16 MiB).
"""

import argparse
import sys
from functools import partial

import trio

import trionet

HELLO = trionet.http.Response(200, {"content-type": "text/plain"}, b"Hello World\n")


async def app(max_message_size: int, request: trionet.http.Request) -> trionet.http.Response | None:
    if not request.is_websocket_upgrade:
        return HELLO
    ws = await request.accept_websocket(
        max_message_size=max_message_size, max_queued_bytes=max(max_message_size, 4 << 20)
    )
    async for message in ws:
        await ws.send(message.data)
    return None


async def main(host: str, port: int, max_message_size: int, parser: str) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(trionet.http.serve, partial(app, max_message_size), port, host, parser=parser)
        )
        worker = trionet.current_worker()
        if worker is None or worker.index == 0:  # with --workers, one line for all
            print(f"WebSocket echo at ws://{host}:{server.port}/", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--max-message-size", type=int, default=trionet.websocket.DEFAULT_MAX_MESSAGE_SIZE
    )
    parser.add_argument(
        "--parser",
        choices=trionet.http.PARSERS,
        default="auto",
        help="the request parser (auto: httptools when installed, else h11)",
    )
    parser.add_argument(
        "--workers", type=int, help="serve from N processes sharing the port (default: this one)"
    )
    args = parser.parse_args()
    main_args = (args.host, args.port, args.max_message_size, args.parser)
    if args.workers is not None:
        listen = [(args.host, args.port)]
        sys.exit(trionet.run_workers(main, *main_args, workers=args.workers, listen=listen))
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, *main_args)


if __name__ == "__main__":
    cli()
