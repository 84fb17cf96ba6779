"""A first trionet server: it greets each client, answers every piece of data
in capitals, and says goodbye when the client has finished sending.

    uv run python examples/first_server.py [--port 8000] [--host 127.0.0.1]

Talk to it with ``examples/first_client.py``, or ``nc 127.0.0.1 8000``.
"""

import argparse

import trio

import trionet


async def shout(conn: trionet.TCPConnection) -> None:
    await conn.send("hello! I answer in capitals.\n")
    async for event in conn:
        match event:
            case trionet.Data(data):
                await conn.send(data.upper())
            case trionet.EndOfStream():
                await conn.send("goodbye\n")
    # Returning closes the connection.


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(trionet.serve_tcp, shout, port, host)
        print(f"listening on {host}:{server.port}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
