"""The seed's Node ``dgram`` client in trionet: send one message, then close.

    uv run python examples/udp_client.py [--port 41234] [--host 127.0.0.1]

The Node original::

    var dgram = require('dgram');
    var message = new Buffer("深入浅出Node.js");
    var client = dgram.createSocket("udp4");
    client.send(message, 0, message.length, 41234, "localhost", function (err, bytes) {
      client.close();
    });
"""

import argparse

import trio

import trionet


async def main(host: str, port: int) -> None:
    message = "深入浅出Node.js".encode()
    async with trionet.open_udp_socket("127.0.0.1") as client:  # createSocket("udp4")
        # send(buf, offset, length, port, address, callback): the callback is the await.
        await client.send(message, (host, port))
    # Leaving the block is client.close().


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=41234)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    trio.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
