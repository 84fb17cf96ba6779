"""The seed's Node ``http`` server in trionet: every request gets
``Hello World``.

    uv run python examples/http_hello.py [--port 12010] [--host 127.0.0.1] [--parser h11]
                                         [--workers N] [--metrics-port N]

The Node original::

    var http = require('http');
    http.createServer(function (req, res) {
      res.writeHead(200, {'Content-Type': 'text/plain'});
      res.end('Hello World\\n');
    }).listen(12010, '127.0.0.1');
    console.log('Server running at http://127.0.0.1:12010/');
"""

import argparse
import sys
from functools import partial

import trio

import trionet
import trionet.http
import trionet.metrics

HELLO = trionet.http.Response(200, {"content-type": "text/plain"}, b"Hello World\n")


async def hello(request: trionet.http.Request) -> trionet.http.Response:
    # writeHead(200, ...) and end('Hello World\n'): one immutable response,
    # built once and sent to everyone.
    return HELLO


async def main(host: str, port: int, parser: str, metrics_port: int | None = None) -> None:
    metrics = None if metrics_port is None else trionet.metrics.Metrics()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(trionet.http.serve, hello, port, host, parser=parser, metrics=metrics)
        )
        worker = trionet.current_worker()
        if worker is None or worker.index == 0:  # with --workers, one line for all
            print(f"Server running at http://{host}:{server.port}/", flush=True)
        # With --workers, each worker counts into its own Metrics and the
        # supervisor serves their sum (run_workers' metrics_port).
        if metrics is not None and metrics_port is not None and worker is None:
            scrape = await nursery.start(trionet.metrics.serve_metrics, metrics, metrics_port, host)
            print(f"Metrics at http://{host}:{scrape.port}/metrics", flush=True)


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
    parser.add_argument(
        "--workers", type=int, help="serve from N processes sharing the port (default: this one)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (needs trionet[metrics])",
    )
    args = parser.parse_args()
    if args.workers is not None:
        # N copies of main, each serving the socket bound here once; SIGHUP
        # replaces them one by one, SIGTERM drains them all.
        listen = [(args.host, args.port)]
        main_args = (args.host, args.port, args.parser, args.metrics_port)
        status = trionet.run_workers(
            main,
            *main_args,
            workers=args.workers,
            listen=listen,
            metrics_port=args.metrics_port,
            metrics_host=args.host,
        )
        sys.exit(status)
    # SIGINT (Ctrl-C) or SIGTERM shuts the server down gracefully; a second
    # signal stops it at once. Either way the exit status is 0.
    trionet.run(main, args.host, args.port, args.parser, args.metrics_port)


if __name__ == "__main__":
    cli()
