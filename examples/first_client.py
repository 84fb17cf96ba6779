"""A first trionet client: it sends a line to ``examples/first_server.py``,
says it has finished, and prints everything the server answers.

    uv run python examples/first_client.py [--port 8000] [--host 127.0.0.1] [TEXT]
"""

import argparse
import sys

import trio

import trionet


async def main(host: str, port: int, text: str) -> None:
    async with await trionet.connect_tcp(host, port) as conn:
        await conn.send(text + "\n")
        await conn.send_eof()  # "that is all": the server sees EndOfStream
        async for event in conn:
            if isinstance(event, trionet.Data):
                sys.stdout.buffer.write(event.data)  # bytes, as they came
                sys.stdout.buffer.flush()
    # The loop ended when the server closed its side; `async with` closes ours.


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("text", nargs="?", default="trio and Node")
    args = parser.parse_args()
    trio.run(main, args.host, args.port, args.text)


if __name__ == "__main__":
    cli()
