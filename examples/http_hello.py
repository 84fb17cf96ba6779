"""The seed's Node ``http`` server in trionet: every request gets
``Hello World``.

    uv run python examples/http_hello.py [--port 12010] [--host 127.0.0.1] [--parser h11]

The Node original::

    var http = require('http');
    http.createServer(function (req, res) {
      res.writeHead(200, {'Content-Type': 'text/plain'});
      res.end('Hello World\\n');
    }).listen(12010, '127.0.0.1');
    console.log('Server running at http://127.0.0.1:12010/');
"""

import argparse
from functools import partial

import trio

import trionet
import trionet.http

HELLO = trionet.http.Response(200, {"content-type": "text/plain"}, b"Hello World\n")


async def hello(request: trionet.http.Request) -> trionet.http.Response:
    # writeHead(200, ...) and end('Hello World\n'): one immutable response,
    # built once and sent to everyone.
    return HELLO


async def main(host: str, port: int, parser: str) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.http.serve, hello, port, host, parser=parser))
        print(f"Server running at http://{host}:{server.port}/", flush=True)


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
