"""A UDP echo server: every datagram goes back to its sender, whole. The
benchmark contender for UDP.

    uv run python examples/udp_echo.py --port 9000 [--host 127.0.0.1]
"""

import argparse

import trionet


async def main(host: str, port: int) -> None:
    async with trionet.open_udp_socket(host, port) as sock:
        print(f"UDP echo on {host}:{sock.local_address[1]}", flush=True)
        async for dgram in sock:
            await sock.send(dgram.data, dgram.address)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    trionet.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
