"""The seed's Node ``dgram`` server in trionet: print every message with its
sender.

    uv run python examples/udp_server.py [--port 41234] [--host 127.0.0.1]

Try it with ``examples/udp_client.py``. The Node original::

    var dgram = require("dgram");
    var server = dgram.createSocket("udp4");
    server.on("message", function (msg, rinfo) {
      console.log("server got: " + msg + " from " + rinfo.address + ":" + rinfo.port);
    });
    server.on("listening", function () {
      var address = server.address();
      console.log("server listening " + address.address + ":" + address.port);
    });
    server.bind(41234);
"""

import argparse

import trionet


async def main(host: str, port: int) -> None:
    # createSocket + bind; the `async with` block returns once bound: 'listening'.
    async with trionet.open_udp_socket(host, port) as server:
        address, bound_port = server.local_address[:2]
        print(f"server listening {address}:{bound_port}", flush=True)
        async for dgram in server:  # server.on('message')
            host_, port_ = dgram.address[:2]
            message = dgram.data.decode("utf-8", "replace")
            print(f"server got: {message} from {host_}:{port_}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=41234)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
