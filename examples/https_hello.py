"""Node's ``https`` server in trionet: every request gets ``hello world``
over TLS.

    uv run python examples/https_hello.py --port 8000 --cert server.crt --key server.key \\
        [--host 127.0.0.1]

The Node original::

    const https = require('https');
    const fs = require('fs');
    const options = {
      key: fs.readFileSync('server.key'),
      cert: fs.readFileSync('server.crt'),
    };
    https.createServer(options, (req, res) => {
      res.writeHead(200);
      res.end('hello world\\n');
    }).listen(8000);
"""

import argparse
import ssl
from functools import partial

import trio

import trionet
import trionet.http
import trionet.tls

HELLO = trionet.http.Response(200, body=b"hello world\n")


async def hello(request: trionet.http.Request) -> trionet.http.Response:
    # writeHead(200) and end('hello world\n'): no Content-Type, as in Node.
    return HELLO


async def main(host: str, port: int, context: ssl.SSLContext, parser: str) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(trionet.http.serve, hello, port, host, ssl_context=context, parser=parser)
        )
        print(f"Server running at https://{host}:{server.port}/", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", required=True, help="PEM certificate chain (Node's cert)")
    parser.add_argument("--key", required=True, help="PEM private key (Node's key)")
    parser.add_argument(
        "--parser",
        choices=trionet.http.PARSERS,
        default="auto",
        help="the request parser (auto: httptools when installed, else h11)",
    )
    args = parser.parse_args()
    # Read before serving, as Node's readFileSync does: a missing or wrong file
    # is a one-line error naming it, not a traceback.
    try:
        context = trionet.tls.server_context(args.cert, args.key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        parser.error(str(exc))
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, args.host, args.port, context, args.parser)


if __name__ == "__main__":
    cli()
