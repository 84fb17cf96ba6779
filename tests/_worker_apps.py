"""Programs for the worker tests (``tests/test_workers.py``).

``http_main`` is what each worker runs: an HTTP server whose answers carry
the worker's pid (``x-worker-pid``) and index (``x-worker-index``); it prints
``worker I/N pid P port X`` once it listens. ``unix_main`` says its pid to
each connection on a Unix socket. ``udp_main`` answers every datagram
with the worker's pid (and the datagram). Run as a program, this module is:

* ``python -m tests._worker_apps workers [--workers N] [--grace S]``: a
  ``run_workers`` supervisor of ``http_main`` on ``127.0.0.1``, port 0, with
  the ``trionet.workers`` log on stderr;
* ``python -m tests._worker_apps single --port P``: ``http_main`` under
  ``trionet.run``, in this one process (with ``--udp``, ``udp_main``; with
  ``--udp --workers N``, ``udp_main`` in N workers sharing ``(127.0.0.1, P,
  "udp")``);
* ``python -m tests._worker_apps systemd FD -- COMMAND...``: what systemd
  does for socket activation: move the listening socket ``FD`` to descriptor
  3, set ``LISTEN_FDS=1`` and ``LISTEN_PID`` to this process's pid, and
  replace this process with ``COMMAND`` (same pid).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import trio

import trionet
import trionet.http

# What a slow request waits before it is answered: long enough that a
# graceful stop or a restart finds requests in flight.
SLOW = 0.05


async def answer(request: trionet.http.Request) -> trionet.http.Response:
    worker = trionet.current_worker()
    if request.path == "/slow":
        await trio.sleep(SLOW)
    elif request.path == "/block":
        # A worker whose event loop is stuck: it stops sending heartbeats.
        time.sleep(3600)  # noqa: ASYNC251
    headers = {
        "content-type": "text/plain",
        "x-worker-pid": str(os.getpid()),
        "x-worker-index": str(worker.index if worker else -1),
    }
    return trionet.http.Response(200, headers, b"hello\n")


async def http_main(host: str, port: int, crash_flag: str | None = None) -> None:
    """Serve ``answer`` on ``(host, port)``; exit with status 3 at once if
    the file ``crash_flag`` exists (a worker that fails at start-up)."""
    if crash_flag is not None and await trio.Path(crash_flag).exists():
        os._exit(3)  # no traceback to read in the test's output
    async with trio.open_nursery() as nursery:
        server = await nursery.start(trionet.http.serve, answer, port, host)
        worker = trionet.current_worker()
        who = f"{worker.index}/{worker.count}" if worker else "-/-"
        print(f"worker {who} pid {os.getpid()} port {server.port}", flush=True)
        if worker is None:
            print(f"LISTEN_FDS={os.environ.get('LISTEN_FDS')}", flush=True)


async def say_pid(conn: trionet.TCPConnection) -> None:
    await conn.send(f"{os.getpid()}\n".encode())


async def unix_main(path: str) -> None:
    """Tell each connection on the Unix socket ``path`` this worker's pid."""
    async with trio.open_nursery() as nursery:
        await nursery.start(trionet.serve_unix, say_pid, path)


async def udp_pid_echo(peer: trionet.UDPPeer) -> None:
    async for dgram in peer:
        await peer.send(f"{os.getpid()} ".encode() + dgram.data)


async def udp_main(host: str, port: int, servers: int = 1) -> None:
    """Answer each datagram to ``(host, port)`` with ``b"PID "`` and the
    datagram itself; with ``servers``, start that many such servers, one
    after the other."""
    async with trio.open_nursery() as nursery:
        for _ in range(servers):
            await nursery.start(trionet.serve_udp, udp_pid_echo, port, host)


def _systemd(fd: int, command: list[str]) -> None:
    os.dup2(fd, 3)  # dup2 clears close-on-exec: descriptor 3 survives the exec
    if fd != 3:
        os.close(fd)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())  # the pid execv keeps
    os.execv(command[0], command)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    workers = commands.add_parser("workers")
    workers.add_argument("--workers", type=int, default=2)
    workers.add_argument("--grace", type=float, default=10.0)
    single = commands.add_parser("single")
    single.add_argument("--port", type=int, required=True)
    single.add_argument("--udp", action="store_true")
    single.add_argument("--workers", type=int)
    systemd = commands.add_parser("systemd")
    systemd.add_argument("fd", type=int)
    systemd.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "systemd":
        _systemd(args.fd, [arg for arg in args.rest if arg != "--"])
    elif args.command == "single" and args.udp and args.workers:
        listen = [("127.0.0.1", args.port, "udp")]
        status = trionet.run_workers(
            udp_main, "127.0.0.1", args.port, workers=args.workers, listen=listen
        )
        sys.exit(status)
    elif args.command == "single" and args.udp:
        trionet.run(udp_main, "127.0.0.1", args.port)
    elif args.command == "single":
        trionet.run(http_main, "127.0.0.1", args.port)
    else:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
        status = trionet.run_workers(
            http_main,
            "127.0.0.1",
            0,
            workers=args.workers,
            listen=[("127.0.0.1", 0)],
            grace=args.grace,
            heartbeat_interval=0.2,
        )
        print(f"exit status {status}", flush=True)
        sys.exit(status)


if __name__ == "__main__":
    cli()
