"""The seed's Node ``net`` client in trionet: connect, say ``world!``, print
what the server answers, end our side, and report when the server ends its.

    uv run python examples/tcp_client.py [--port 8124] [--host 127.0.0.1]

Run it against ``examples/tcp_welcome.py``. The Node original::

    var client = net.connect({port: 8124}, function () {
      console.log('client connected');
      client.write('world!\\r\\n');
    });
    client.on('data', function (data) { console.log(data.toString()); client.end(); });
    client.on('end', function () { console.log('client disconnected'); });
"""

import argparse
import codecs

import trio

import trionet


async def main(host: str, port: int) -> None:
    # connect_tcp returns once connected: Node's 'connect' callback.
    async with await trionet.connect_tcp(host, port) as conn:
        print("client connected")
        await conn.send("world!\r\n")
        # TCP may cut a multi-byte character between two reads; an incremental
        # decoder keeps its first bytes until the rest arrives.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for event in conn:
            match event:
                case trionet.Data(data):  # client.on('data')
                    print(decoder.decode(data))
                    await conn.send_eof()  # client.end(); calling it again does nothing
                case trionet.EndOfStream():  # client.on('end')
                    print("client disconnected")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    trio.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
