"""``trionet demo``: the seed's servers, all at once, on their usual ports:
TCP 8124, UDP 41234, HTTP 12010 and HTTPS 12443 (with a development
certificate made on first run, see :mod:`trionet.tls._devcert`). Both HTTP ports
also serve the seed's WebSocket: ``/updates`` pushes an update every second
and echoes what it receives, and ``GET /`` is a small page that connects to
it (``ws://`` or ``wss://``, whichever the page came over), lists the updates
and has an echo box. The servers themselves are :mod:`._demo_servers`.

The banner lists every service with a command to paste into another
terminal; then one line is logged per connection, request or datagram, each
``KIND ADDRESS WHAT``. Ctrl-C (or SIGTERM) shuts every server down
gracefully, all at once (WebSockets get close 1001, requests in flight are
answered), and the command exits 0.

With ``--workers N`` the same servers run in N processes under
:func:`trionet.run_workers`: this process makes the development certificate
first (so that no two workers race to write it), binds every port once (UDP
as a ``"udp"`` listen entry, shared like the rest), and each worker serves
on the sockets it inherits. Worker 0 prints the banner, each log line ends
with the worker that handled it (``[worker 1]``), and the pool's own events
are logged as ``workers: ...``.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import re
import shlex
import signal
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from .._errors import BindError
from .._listener_pool import ListenEntry
from .._listeners import format_address, url_host
from .._run import run as trionet_run
from .._server import Server, SocketAddress
from .._tcp import serve_tcp
from .._udp import serve_udp
from .._workers import current_worker, run_workers
from ..http import PARSERS
from ..http import serve as serve_http
from ..tls._contexts import server_context
from ..tls._devcert import DevCertificateError, cache_directory, dev_certificate
from ._demo_servers import dgram_echo, http_app, say, welcome

__all__ = ["add_arguments", "run"]

# Seconds the servers get to finish what they are doing after Ctrl-C; then
# the rest is cancelled. Every demo exchange is short: 5 s is generous.
SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True)
class Service:
    kind: str  # "tcp", "udp", "http", "https"
    name: str
    flag: str
    default_port: int
    tls: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


SERVICES = [
    Service("tcp", "TCP welcome server", "--tcp-port", 8124),
    Service("udp", "UDP echo server", "--udp-port", 41234),
    Service("http", "HTTP and WebSocket server", "--http-port", 12010),
    Service("https", "HTTPS and wss server", "--https-port", 12443, tls=True),
]


@dataclass(frozen=True)
class Settings:
    """What starting the servers takes, from the command line: picklable, as
    it goes to every worker process.

    Attributes:
        host: The address every service listens on.
        ports: The port asked for each service that runs (``--no-tls``
            leaves HTTPS out), in the order of :data:`SERVICES`.
        parser: The HTTP request parser.
        certificate: The development certificate and its key, with TLS.
    """

    host: str
    ports: tuple[tuple[Service, int], ...]
    parser: str
    certificate: tuple[Path, Path] | None

    @classmethod
    def of(cls, args: argparse.Namespace, certificate: tuple[Path, Path] | None) -> Settings:
        ports = tuple(
            (service, int(getattr(args, service.dest)))
            for service in SERVICES
            if not (service.tls and args.no_tls)
        )
        return cls(args.host, ports, args.parser, certificate)


class Refused(Exception):
    """The demo cannot start; the message is the one line that says why."""


async def _start(
    service: Service,
    nursery: trio.Nursery,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    parser: str,
) -> Server:
    if service.kind == "tcp":
        start = partial(serve_tcp, welcome, port, host)
    elif service.kind == "udp":
        start = partial(serve_udp, dgram_echo, port, host)
    else:
        context = tls if service.tls else None
        start = partial(
            serve_http, http_app(service.kind), port, host, ssl_context=context, parser=parser
        )
    server: Server = await nursery.start(start)
    return server


async def _serve(settings: Settings, banner_wanted: bool) -> None:
    """Start every service, print the banner if wanted, and serve until
    cancelled (by :func:`trionet.run`, after its graceful shutdown).

    Raises:
        Refused: A service could not be bound.
    """
    context = None if settings.certificate is None else server_context(*settings.certificate)
    servers: dict[str, Server] = {}
    failure: str | None = None
    async with trio.open_nursery() as nursery:
        for service, port in settings.ports:
            try:
                servers[service.kind] = await _start(
                    service, nursery, settings.host, port, context, settings.parser
                )
            except BindError as exc:
                failure = _cannot_start(service, exc)
                nursery.cancel_scope.cancel()
                break
        else:
            if banner_wanted:
                addresses = {kind: server.addresses[0] for kind, server in servers.items()}
                cert = None if settings.certificate is None else settings.certificate[0]
                # One write, so that no other process's line lands inside it.
                say("\n".join(banner(settings.host, addresses, cert, cli_command())))
            await trio.sleep_forever()
    # (Raised out here: inside the nursery it would come wrapped in a group.)
    if failure is not None:
        raise Refused(failure)


def _cannot_start(service: Service, exc: BindError) -> str:
    if exc.errno == errno.EADDRINUSE:
        hint = f"choose another port with {service.flag} PORT"
    else:
        hint = "check --host"
    return f"cannot start the {service.name}: {exc.strerror}; {hint}"


def _certificate() -> tuple[Path, Path]:
    """The development certificate and its key, made on first run.

    Raises:
        Refused: It cannot be made.
    """
    try:
        return dev_certificate()
    except DevCertificateError as exc:
        raise Refused(f"{exc}; or run with --no-tls") from None
    except OSError as exc:  # the cache directory is not writable...
        raise Refused(
            f"cannot make the development certificate in {cache_directory()}:"
            f" {exc.strerror or exc}; or run with --no-tls"
        ) from None


def cli_command() -> str:
    """How a person runs trionet's command in another terminal: ``uv run
    trionet`` when this demo was started by ``uv run`` in a project (uv
    sets ``UV`` in the environment of what it runs, and the virtual
    environment is the project's ``.venv``), else ``trionet`` (installed on
    the ``PATH``, or a virtual environment the user activated)."""
    venv = os.environ.get("VIRTUAL_ENV")
    if os.environ.get("UV") and venv and (Path(venv).parent / "pyproject.toml").is_file():
        return "uv run trionet"
    return "trionet"


def _client_host(host: str) -> str:
    """The address a client on this machine connects to: the loopback
    address for a wildcard one (``0.0.0.0``, ``::``)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


def banner(
    host: str,
    addresses: Mapping[str, SocketAddress],
    cert: Path | None,
    cli: str,
) -> list[str]:
    """The lines printed once every server listens: each service, its
    address and commands to paste into another terminal.

    Args:
        host: The ``--host`` the servers listen on.
        addresses: The first address of each running service, by kind
            (``"tcp"``...); ``"https"`` is absent with ``--no-tls``.
        cert: The development certificate (with TLS).
        cli: How to run ``trionet`` (:func:`cli_command`).
    """
    client = _client_host(host)
    name = url_host(client)
    # The development certificate names localhost: TLS clients use that name
    # when the demo listens on loopback, so the name check is shown working.
    tls_host = "localhost" if client in ("127.0.0.1", "::1", "localhost") else name
    port = {kind: int(address[1]) for kind, address in addresses.items()}
    http = f"{name}:{port['http']}"
    rows: list[tuple[str, str, str, list[str]]] = [
        (
            "TCP",
            "tcp",
            "welcome server (net): type a line; Ctrl-D ends",
            [f"{cli} tcp {client} {port['tcp']}"],
        ),
        (
            "UDP",
            "udp",
            "echo server (dgram)",
            [f"echo 深入浅出Node.js | {cli} udp {client} {port['udp']}"],
        ),
        ("HTTP", "http", "Hello World (http)", [f"curl http://{http}/hello"]),
        (
            "WS",
            "http",
            "/updates: an update every second; each line sent comes back",
            [f"{cli} ws ws://{http}/updates"],
        ),
        ("page", "http", "live updates and an echo box, in a browser", [f"http://{http}/"]),
    ]
    if "https" in addresses and cert is not None:
        cafile = shlex.quote(str(cert))
        https = f"{tls_host}:{port['https']}"
        rows.append(
            (
                "HTTPS",
                "https",
                "HTTP, WS and the page over TLS, with the development certificate",
                [
                    f"curl --cacert {cafile} https://{name}:{port['https']}/hello",
                    f"{cli} get --cafile {cafile} https://{https}/hello",
                    f"{cli} ws --cafile {cafile} wss://{https}/updates",
                    f"https://{https}/",
                ],
            )
        )
    shown = {kind: format_address(address) for kind, address in addresses.items()}
    width = max(len(shown[kind]) for _, kind, _, _ in rows)
    lines = ["trionet demo is running; press Ctrl-C to stop. Try it from another terminal:", ""]
    for label, kind, what, commands in rows:
        lines.append(f"  {label:<6} {shown[kind]:<{width}}  {what}")
        lines.extend(f"         {command}" for command in commands)
    lines += ["", "Connections are logged below as they come:"]
    return lines


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is in 0..65535, not {port}")
    return port


def _worker_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"a number of workers is at least 1, not {count}")
    return count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address every service listens on (127.0.0.1)"
    )
    for service in SERVICES:
        parser.add_argument(
            service.flag,
            type=_port,
            default=service.default_port,
            metavar="PORT",
            help=f"port of the {service.name} ({service.default_port}; 0 picks a free one)",
        )
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="do not start the HTTPS and wss server (no development certificate is made)",
    )
    parser.add_argument(
        "--parser",
        choices=PARSERS,
        default="auto",
        help="the HTTP request parser (auto: httptools when installed, else h11)",
    )
    parser.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help=(
            "run the servers in N worker processes that share every port"
            " (default: one process, no workers)"
        ),
    )


def _fail(message: str) -> int:
    print(f"trionet demo: {message}", file=sys.stderr, flush=True)
    return 1


# -- one process ------------------------------------------------------------------


async def _main(args: argparse.Namespace) -> int:
    # Run by trionet.run, which watches SIGINT and SIGTERM from the start: a
    # signal while starting stops the demo too, and once it serves, the
    # first signal shuts every server down at once (each stops accepting,
    # says goodbye in its protocol: WebSocket close 1001, Connection: close,
    # and waits for its handlers up to the grace period), then this is
    # cancelled. It returns only for a failure.
    try:
        certificate = None if args.no_tls else await trio.to_thread.run_sync(_certificate)
        await _serve(Settings.of(args, certificate), banner_wanted=True)
    except Refused as exc:
        return _fail(str(exc))
    raise AssertionError("unreachable: trionet.run cancels the demo")


def _on_signal(signum: signal.Signals, forced: bool) -> None:
    say(f"{signum.name}: stopping now" if forced else f"{signum.name}: shutting down...")


# -- worker processes ---------------------------------------------------------------


async def serve_worker(settings: Settings) -> None:
    """What each worker runs (under :func:`trionet.run_workers`): the
    servers, on the sockets the supervisor bound. The first worker prints
    the banner; its replacements, and the others, do not."""
    worker = current_worker()
    first = worker is not None and worker.index == 0 and worker.generation == 0
    await _serve(settings, banner_wanted=first)


def _listen(settings: Settings) -> list[ListenEntry]:
    """The ``listen`` entries, in the order the workers start the services:
    several asking for port 0 are handed out in that order."""
    return [
        (settings.host, port, "udp") if service.kind == "udp" else (settings.host, port)
        for service, port in settings.ports
    ]


def _duplicate_port(settings: Settings) -> str | None:
    """What one process would say of two TCP services asked to listen on
    one port (the second finds it in use), which workers would only refuse
    as a listen entry written twice."""
    seen: set[int] = set()
    for service, port in settings.ports:
        if service.kind != "udp" and port != 0:
            if port in seen:
                message = f"address already in use: {format_address((settings.host, port))}"
                return _cannot_start(service, BindError(errno.EADDRINUSE, message))
            seen.add(port)
    return None


def _failed_service(settings: Settings, exc: BindError) -> Service:
    """The service whose port the supervisor could not bind: its message
    names the address, a UDP one after ``udp`` (entries are bound in order,
    so of several that match, the first is the one)."""
    message = exc.strerror or ""
    udp = " udp " in message
    named = {int(port) for port in re.findall(r":(\d+)(?:\D|$)", message)}
    candidates = [
        (service, port) for service, port in settings.ports if (service.kind == "udp") == udp
    ] or list(settings.ports)
    for service, port in candidates:
        if port in named:
            return service
    return candidates[0][0]


def _show_the_pool() -> None:
    """Log the pool's events (workers ready, replaced, stopping) with the
    demo's lines: ``workers: worker 1 (pid 4242) ready``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("workers: %(message)s"))
    pool_logger = logging.getLogger("trionet.workers")
    pool_logger.addHandler(handler)
    pool_logger.setLevel(logging.INFO)


def _run_workers(args: argparse.Namespace) -> int:
    duplicate = _duplicate_port(Settings.of(args, None))
    if duplicate is not None:
        return _fail(duplicate)
    try:
        # Here, once, before any worker starts: no two workers race to make it.
        certificate = None if args.no_tls else _certificate()
    except Refused as exc:
        return _fail(str(exc))
    settings = Settings.of(args, certificate)
    _show_the_pool()
    try:
        status = run_workers(
            serve_worker,
            settings,
            workers=args.workers,
            listen=_listen(settings),
            grace=SHUTDOWN_GRACE,
        )
    except BindError as exc:
        return _fail(_cannot_start(_failed_service(settings, exc), exc))
    if status == 0:
        say("stopped.")
    return status


def run(args: argparse.Namespace) -> int:
    """Run the demo until SIGINT or SIGTERM; return the exit status."""
    if args.workers is not None:
        return _run_workers(args)
    status = trionet_run(_main, args, grace=SHUTDOWN_GRACE, on_signal=_on_signal)
    if status is not None:
        return status  # it could not start
    say("stopped.")
    return 0
