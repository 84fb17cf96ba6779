"""The plumbing of the ``trionet`` commands that copy standard input to a
connection and what arrives to standard output (``tcp``, ``udp``, ``ws``).

Standard input is read without blocking trio. A pipe or a socket is read
through :class:`trio.lowlevel.FdStream` on a duplicate of fd 0: it sets
``O_NONBLOCK``, which is shared with every holder of that open file
description and restored when the stream closes; nobody else reads our end of
a pipe. A terminal is read in a worker thread instead: the shell usually opens
the terminal once for stdin, stdout and stderr, so ``O_NONBLOCK`` on stdin
would make our own (and, after a crash, the shell's) writes to the terminal
fail with ``EAGAIN``. Regular files and devices such as ``/dev/null`` are read
in a thread too, since epoll refuses them. Standard output is written with
``os.write`` in a worker thread, unbuffered (every chunk is visible at once),
so that a stalled reader of our output never freezes the event loop (Ctrl-C
still works). Ctrl-C (``SIGINT``) cancels everything and exits with 130, the
shell's convention, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import ssl
import stat
import sys
from collections.abc import Awaitable, Callable, Sequence

import trio

from .. import tls
from .._errors import ConnectionClosed

# Bytes asked of stdin per read: the size trionet's connections read too.
READ_SIZE = 65536
# The longest stdin line `udp` and `ws` hold while waiting for its newline:
# far above a datagram (64 KiB) and trionet's default WebSocket message limit
# (1 MiB), so that only input that is not line-oriented at all trips it.
MAX_LINE = 16 * 1024 * 1024
# The exit status of a command ended by Ctrl-C: 128 + SIGINT, as shells report.
INTERRUPTED = 128 + signal.SIGINT
# The exit status of a usage error, as argparse gives.
USAGE_ERROR = 2

__all__ = [
    "INTERRUPTED",
    "MAX_LINE",
    "READ_SIZE",
    "USAGE_ERROR",
    "Ending",
    "Failure",
    "Lines",
    "Stdin",
    "StdoutClosed",
    "describe",
    "run_command",
    "say",
    "tls_context",
    "write_stdout",
]


class Failure(Exception):
    """Ends a command with one line on stderr and a non-zero status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def say(command: str, message: str) -> None:
    print(f"trionet {command}: {message}", file=sys.stderr, flush=True)


def describe(exc: BaseException) -> str:
    """One line for an error: an ``OSError``'s text without the ``[Errno N]``
    prefix."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# -- standard input and output ------------------------------------------------


class Stdin:
    """Standard input, in chunks as they arrive (see the module's doc)."""

    def __init__(self) -> None:
        self._stream: trio.lowlevel.FdStream | None = None
        self._eof = False
        try:
            mode = os.fstat(0).st_mode
        except OSError:  # fd 0 is closed: no input at all
            self._eof = True
            return
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            self._stream = trio.lowlevel.FdStream(os.dup(0))

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at end of input (or when it cannot be read)."""
        if self._eof:
            await trio.lowlevel.checkpoint()
            return b""
        try:
            if self._stream is not None:
                chunk = await self._stream.receive_some(READ_SIZE)
            else:
                # Abandoned on cancel: a thread blocked on a terminal read
                # must not hold up the exit. It reads fd 0 unbuffered, so
                # nothing is left in a buffer of sys.stdin.
                chunk = await trio.to_thread.run_sync(os.read, 0, READ_SIZE, abandon_on_cancel=True)
        except (OSError, trio.BrokenResourceError):  # a hung-up terminal, say
            chunk = b""
        if not chunk:
            self._eof = True
        return chunk

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()  # restores fd 0's blocking mode
        else:
            await trio.lowlevel.checkpoint()


class Lines:
    """Standard input split at ``\\n`` (the newline is dropped; a last line
    without one still counts)."""

    def __init__(self, stdin: Stdin) -> None:
        self._stdin = stdin
        self._buffer = bytearray()
        self._searched = 0  # the buffer holds no newline before this offset
        self._eof = False

    async def next(self) -> bytes | None:
        """The next line, or ``None`` at end of input.

        Raises:
            Failure: A line is longer than ``MAX_LINE``.
        """
        while True:
            end = self._buffer.find(b"\n", self._searched)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._searched = 0
                return line
            self._searched = len(self._buffer)
            if self._eof:
                if not self._buffer:
                    return None
                line = bytes(self._buffer)
                self._buffer.clear()
                self._searched = 0
                return line
            if len(self._buffer) > MAX_LINE:
                raise Failure(f"an input line is longer than {MAX_LINE} bytes")
            chunk = await self._stdin.read()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True


class StdoutClosed(Exception):
    """Whoever read our output went away (``EPIPE``)."""


def _write_all(data: bytes) -> None:
    written = 0
    while written < len(data):
        try:
            written += os.write(1, data[written:])
        except BlockingIOError:
            # fd 1 shares its open file description with a non-blocking fd 0
            # (one socket for both, inetd style): wait in this thread.
            select.select([], [1], [])


async def write_stdout(data: bytes) -> None:
    """Write ``data`` to fd 1, unbuffered, in a worker thread (see the module's
    doc).

    Raises:
        StdoutClosed: Standard output is closed or its reader went away.
    """
    try:
        await trio.to_thread.run_sync(_write_all, data, abandon_on_cancel=True)
    except OSError as exc:
        raise StdoutClosed from exc


# -- running a command ------------------------------------------------------------


class Ending:
    """How a conversation ended. The first task to finish decides the exit
    status, prints its line (if any) on stderr, and cancels the others."""

    def __init__(self, command: str, scope: trio.CancelScope) -> None:
        self._command = command
        self._scope = scope
        self.status: int | None = None

    def finish(self, status: int, message: str | None = None) -> None:
        if self.status is not None:
            return
        self.status = status
        if message is not None:
            say(self._command, message)
        self._scope.cancel()


async def _guarded(command: str, main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` until it returns or Ctrl-C; turn a :class:`Failure`, and the
    errors of connecting, into one line on stderr."""
    interrupted = False
    status = INTERRUPTED
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def interrupt_on_sigint() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(interrupt_on_sigint)
            try:
                status = await main()
            except Failure as exc:
                say(command, exc.message)
                status = exc.status
            except (OSError, ConnectionClosed) as exc:
                # ConnectError, ConnectTimeout, HandshakeError, BindError, a CA
                # file that cannot be read or loaded, a late TLSError...
                say(command, describe(exc))
                status = 1
            nursery.cancel_scope.cancel()
    return INTERRUPTED if interrupted else status


def run_command(command: str, main: Callable[[], Awaitable[int]]) -> int:
    try:
        return trio.run(_guarded, command, main)
    except KeyboardInterrupt:  # before or after the SIGINT receiver was in place
        return INTERRUPTED


def tls_context(args: argparse.Namespace, alpn: Sequence[str] | None = None) -> ssl.SSLContext:
    """The client context of the ``--cafile`` and ``--insecure`` flags.

    Raises:
        OSError: The CA file cannot be read (``ssl.SSLError``: or loaded).
    """
    context = tls.client_context(cafile=args.cafile, alpn=alpn)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
