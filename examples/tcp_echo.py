"""A TCP echo server: every byte comes back; after the client's FIN, the rest is
echoed and the connection closed. The benchmark contender for TCP.

    uv run python examples/tcp_echo.py --port 9000 [--host 127.0.0.1] [--workers N]
"""

import argparse
import sys
from functools import partial

import trio

import trionet


async def echo(conn: trionet.TCPConnection) -> None:
    async for event in conn:
        if isinstance(event, trionet.Data):
            await conn.send(event.data)


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.serve_tcp, echo, port, host))
        worker = trionet.current_worker()
        if worker is None or worker.index == 0:  # with --workers, one line for all
            print(f"TCP echo on {host}:{server.port}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--workers", type=int, help="serve from N processes sharing the port (default: this one)"
    )
    args = parser.parse_args()
    if args.workers is not None:
        listen = [(args.host, args.port)]
        main_args = (args.host, args.port)
        sys.exit(trionet.run_workers(main, *main_args, workers=args.workers, listen=listen))
    trionet.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
