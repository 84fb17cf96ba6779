"""``trionet serve MODULE:APP``: an ASGI application on trionet's server,
with the flags users know from uvicorn and hypercorn; with ``--wsgi``, a
WSGI one (Flask, Django) in threads, through :func:`trionet.asgi.from_wsgi`.

One process by default, under :func:`trionet.run` (SIGINT or SIGTERM drains
it: requests in flight are answered, WebSockets get close 1001, then the
lifespan shut-down runs). With ``--workers N``, a :func:`trionet.run_workers`
supervisor binds the socket once and each worker imports the application
and serves it (SIGHUP replaces the workers one by one, without a failed
request). The application is imported once in this process first, so that
a wrong name fails at once, with one line.

Exit statuses: 0 after a clean stop; 1 when the application cannot be
loaded or the address bound (one line on stderr); 3 when its lifespan
start-up failed (as uvicorn); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import trio

from .._errors import BindError
from .._listeners import SocketFile, format_address, open_unix_socket
from .._run import run as trionet_run
from .._workers import current_worker, run_workers
from ..asgi import AppLoadError, ASGIApp, LifespanError, load_app
from ..asgi import serve as serve_asgi
from ..http import PARSERS

__all__ = ["add_command"]

logger = logging.getLogger("trionet.asgi")

# The exit status of a failed lifespan start-up (uvicorn's).
STARTUP_FAILED = 3


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve`` on the ``trionet`` command's subparsers."""
    parser = commands.add_parser(
        "serve",
        help="serve an ASGI application (Starlette, FastAPI, Quart-Trio...): MODULE:APP",
        description=(
            "Serve the ASGI application APP of MODULE (import path 'package.module:attribute')"
            " over HTTP/1.1 and WebSocket, on trio, until Ctrl-C or SIGTERM;"
            " with --wsgi, a WSGI application (Flask, Django...) in threads."
        ),
        epilog=(
            "examples:\n"
            "  trionet serve main:app --port 8000\n"
            "  trionet serve myproject.asgi:application --workers 4 --host 0.0.0.0\n"
            "  trionet serve app:create_app --factory --app-dir src --uds /run/app.sock\n"
            "  trionet serve --wsgi myproject.wsgi:application --threads 20"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("app", metavar="MODULE:APP", help="where the application is")
    parser.add_argument(
        "--app-dir", default=".", metavar="DIR", help="import MODULE from DIR (default: .)"
    )
    parser.add_argument(
        "--factory", action="store_true", help="APP is a function that returns the application"
    )
    parser.add_argument(
        "--wsgi", action="store_true", help="APP is a WSGI application (Flask, Django...)"
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="with --wsgi: the WSGI calls at once, each in a thread (default 10)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8000, help="the port (default 8000; 0 picks one)"
    )
    parser.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead")
    parser.add_argument(
        "--workers", type=_positive, metavar="N", help="serve from N processes (default: one)"
    )
    parser.add_argument("--certfile", metavar="FILE", help="serve HTTPS with this certificate")
    parser.add_argument("--keyfile", metavar="FILE", help="and this private key")
    parser.add_argument(
        "--root-path", default="", metavar="PATH", help="where a proxy mounted the application"
    )
    parser.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="the lifespan protocol (default auto: if the application speaks it)",
    )
    parser.add_argument(
        "--proxy-protocol",
        nargs="?",
        const="auto",
        default="off",
        choices=["off", "v1", "v2", "auto"],
        help="read a PROXY protocol header first (alone: either version)",
    )
    parser.add_argument(
        "--proxy-allow-from",
        default="127.0.0.1,::1",
        metavar="LIST",
        help="the proxies whose PROXY header is believed (default 127.0.0.1,::1)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="LIST",
        help="the proxies whose X-Forwarded-* headers are believed (default: none)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log one line per request on stderr"
    )
    parser.add_argument(
        "--access-log-format", choices=("common", "json"), default="common", help="its format"
    )
    parser.add_argument(
        "--parser", choices=PARSERS, default="auto", help="the HTTP request parser (default auto)"
    )
    parser.add_argument(
        "--max-body-size",
        type=_positive,
        default=None,
        metavar="BYTES",
        help="the largest request body (default 1 MiB; 413 beyond)",
    )
    parser.add_argument(
        "--ws-max-size",
        type=_positive,
        default=None,
        metavar="BYTES",
        help="the largest WebSocket message received (default 1 MiB; close 1009 beyond)",
    )
    parser.add_argument(
        "--ws-ping-interval",
        type=_seconds_or_none,
        default=20.0,
        metavar="S",
        help="seconds between WebSocket keepalive pings (default 20; 0: none)",
    )
    parser.add_argument(
        "--ws-ping-timeout",
        type=_seconds_or_none,
        default=20.0,
        metavar="S",
        help="seconds a keepalive ping waits for its pong (default 20; 0: forever)",
    )
    parser.add_argument(
        "--ws-per-message-deflate",
        choices=("true", "false"),
        default="true",
        help="agree to WebSocket compression (default true)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds requests get to finish on shutdown (default 10)",
    )
    parser.set_defaults(run=lambda args: run(parser, args))


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is in 0..65535, not {port}")
    return port


def _seconds_or_none(text: str) -> float | None:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text}")
    return value or None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fail(message: str, status: int = 1) -> int:
    print(f"trionet serve: {message}", file=sys.stderr, flush=True)
    return status


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """What each process needs to serve: plain data (it goes to workers)."""
    return {
        "app": args.app,
        "app_dir": args.app_dir,
        "factory": args.factory,
        "wsgi": args.wsgi,
        "threads": args.threads,
        "host": args.host,
        "port": args.port,
        "uds": args.uds,
        "certfile": args.certfile,
        "keyfile": args.keyfile,
        "serve": {
            "root_path": args.root_path,
            "lifespan": args.lifespan,
            "proxy_protocol": args.proxy_protocol,
            "proxy_allow_from": args.proxy_allow_from,
            "forwarded_allow_ips": args.forwarded_allow_ips,
            "access_log": args.access_log,
            "access_log_format": args.access_log_format,
            "parser": args.parser,
            "ping_interval": args.ws_ping_interval,
            "ping_timeout": args.ws_ping_timeout,
            "compression": args.ws_per_message_deflate == "true",
            **({"max_body_size": args.max_body_size} if args.max_body_size else {}),
            **({"max_message_size": args.ws_max_size} if args.ws_max_size else {}),
        },
    }


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``trionet serve``; return the exit status."""
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    if args.uds and args.certfile:
        parser.error("--uds serves plain HTTP (put TLS in the proxy in front)")
    if args.threads is not None and not args.wsgi:
        parser.error("--threads goes with --wsgi (an ASGI application runs in trio)")
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("trionet.http.access").setLevel(logging.INFO)
    options = _options(args)
    try:
        _load(options)
    except AppLoadError as exc:
        return _fail(str(exc))
    try:
        if args.workers is not None:
            listen = [args.uds] if args.uds else [(args.host, args.port)]
            return run_workers(
                serve_application, options, workers=args.workers, listen=listen, grace=args.grace
            )
        status = trionet_run(serve_application, options, grace=args.grace)
    except BindError as exc:
        return _fail(f"cannot listen: {exc.strerror or exc}")
    return 0 if status is None else status


def _load(options: dict[str, Any]) -> ASGIApp:
    return load_app(
        options["app"],
        app_dir=options["app_dir"],
        factory=options["factory"],
        wsgi=options["wsgi"],
        threads=options["threads"],
    )


async def serve_application(options: dict[str, Any]) -> int:
    """What each process runs (the one, or each worker): load the
    application, serve it until stopped. Returns an exit status for a
    failure (``None`` once stopped by a signal, under :func:`trionet.run`)."""
    try:
        app = _load(options)
    except AppLoadError as exc:
        return _fail(str(exc))
    serve_options: dict[str, Any] = dict(options["serve"])
    if options["certfile"]:
        from ..tls import server_context

        serve_options["ssl_context"] = server_context(options["certfile"], options["keyfile"])
    host: str | None = options["host"]
    port: int = options["port"]
    socket_file = None
    if options["uds"]:
        # The supervisor's socket under --workers, else one bound here
        # (whose file goes when we stop).
        sock, bound_here = await open_unix_socket(options["uds"], backlog=None, mode=None)
        serve_options["sockets"] = [sock]
        socket_file = SocketFile(options["uds"]) if bound_here else None
        host, port = None, 0
    scheme = "https" if options["certfile"] else "http"
    try:
        async with trio.open_nursery() as nursery:
            try:
                server = await nursery.start(_serve, app, port, host, serve_options)
            except LifespanError as exc:
                return _fail(str(exc), STARTUP_FAILED)
            except BindError as exc:
                return _fail(f"cannot listen: {exc.strerror or exc}")
            worker = current_worker()
            if worker is None or (worker.index == 0 and worker.generation == 0):
                where = options["uds"] or format_address(server.addresses[0])
                print(
                    f"trionet serve: {options['app']} on {scheme}://{where} (Ctrl-C to stop)",
                    flush=True,
                )
    finally:
        if socket_file is not None:
            socket_file.remove()
    return 0


async def _serve(
    app: Any,
    port: int,
    host: str | None,
    options: dict[str, Any],
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_asgi(app, port, host, task_status=task_status, **options)
