"""The seed's Node ``net`` server in trionet: a welcome line for each client,
``你好`` for every piece of data, ``连接断开`` printed when the client ends.

    uv run python examples/tcp_welcome.py [--port 8124] [--host 127.0.0.1]

Try it with ``nc 127.0.0.1 8124`` (type a line, Ctrl-D to end). The Node original::

    var net = require('net');
    var server = net.createServer(function (socket) {
      socket.on('data', function (data) { socket.write("你好"); });
      socket.on('end', function () { console.log('连接断开'); });
      socket.write("欢迎光临《深入浅出Node.js》示例:\\n");
    });
    server.listen(8124, function () { console.log('server bound'); });
"""

import argparse

import trio

import trionet


async def welcome(conn: trionet.TCPConnection) -> None:
    # The createServer callback: called once per connection, in its own task.
    await conn.send("欢迎光临《深入浅出Node.js》示例:\n")  # a str is sent as UTF-8, as in Node
    async for event in conn:
        match event:
            case trionet.Data():  # socket.on('data')
                await conn.send("你好")
            case trionet.EndOfStream():  # socket.on('end'): the client half-closed
                print("连接断开", flush=True)
    # Returning closes our side too, as Node does with allowHalfOpen: false.


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        # nursery.start returns once the server is listening: Node's 'listening'.
        server = await nursery.start(trionet.serve_tcp, welcome, port, host)
        # The address too: with --port 0 it is how a user learns the port.
        print(f"server bound on {host}:{server.port}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
