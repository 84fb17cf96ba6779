"""The ``trionet`` command: ``trionet demo`` (:mod:`._demo`), ``trionet serve``
(:mod:`._serve`), ``trionet get`` (:mod:`._get`), and the ``tcp`` / ``udp`` /
``ws`` tools (:mod:`._net`), with what they share (:mod:`._io`: TLS options,
output, exit statuses).

Run it as the ``trionet`` console script or ``python -m trionet.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from . import _demo, _get, _net, _serve

__all__ = ["console_main", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trionet",
        description="Node.js-style networking for trio: servers and tools.",
    )
    parser.add_argument("--version", action="version", version=f"trionet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help=(
            "run the seed's example servers (TCP 8124, UDP 41234, HTTP and WebSocket 12010,"
            " HTTPS and wss 12443) until Ctrl-C"
        ),
        description="Run the seed's example servers on 127.0.0.1 until Ctrl-C.",
    )
    _demo.add_arguments(demo)
    demo.set_defaults(run=_demo.run)
    _serve.add_command(commands)
    _get.add_command(commands)
    _net.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trionet`` console script; returns the exit status."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.run(args)
    return status


def console_main() -> None:
    """The console script: exit with :func:`main`'s status."""
    sys.exit(main())
