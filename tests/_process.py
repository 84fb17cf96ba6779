"""Helpers for tests that run a program as a subprocess and talk to it over
loopback: a running child that is always killed, its output read line by
line, the port a child bound read from the line it prints when ready, and a
port that refuses connections."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio

from tests._leaks import SESSIONS

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# Seconds a child gets to start listening: a cold start of Python plus trio, or
# of Node, on a busy two-core machine, with a wide margin.
STARTUP_TIMEOUT = 20.0


def child_env() -> dict[str, str]:
    """The environment for a child Python: UTF-8 output whatever the locale,
    since the seed's examples print Chinese text; and buffered output, as a
    user's pipe has it, so that a program that forgets to flush a line a
    test waits for fails here rather than only in production."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("PYTHONUNBUFFERED", None)
    return env


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections for as long as the block
    runs. The socket is bound but never listens: holding the port keeps any
    other process from taking it, where a port closed after a look-up could be
    taken by anyone before the test uses it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


class OutputReader:
    """Reads a child's output pipe line by line; remembers every line seen, so
    that a failed wait can show what the child did print."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False
        self.lines: list[str] = []

    async def readline(self) -> str | None:
        """The next line without its line ending, or ``None`` at end of file."""
        while b"\n" not in self._buffer and not self._eof:
            chunk = await self._stream.receive_some(65536)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
        if not self._buffer:
            return None
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        text = line.decode("utf-8").rstrip("\r")
        self.lines.append(text)
        return text

    async def wait_for(self, pattern: str) -> re.Match[str]:
        """Read lines until one matches the regular expression ``pattern``
        (``re.search``); fail the test if the output ends first. Guard the
        call with ``trio.fail_after``."""
        regex = re.compile(pattern)
        while True:
            line = await self.readline()
            if line is None:
                pytest.fail(f"output ended without a line matching {pattern!r}: {self.lines!r}")
            match = regex.search(line)
            if match is not None:
                return match

    async def read_rest(self) -> list[str]:
        """Read to end of file; return the lines read by this call."""
        start = len(self.lines)
        while await self.readline() is not None:
            pass
        return self.lines[start:]


@asynccontextmanager
async def running(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    stderr: int | None = None,
    pass_fds: Sequence[int] = (),
) -> AsyncIterator[tuple[trio.Process, OutputReader]]:
    """Start ``command`` with its stdout piped (stderr goes where pytest
    captures it) and yield the process and a reader of its stdout. ``stdin``
    is ``subprocess.PIPE`` to write to it (``process.stdin``), or
    ``subprocess.DEVNULL``; by default the child shares ours. ``stderr`` is
    ``subprocess.STDOUT`` to read it with stdout (a traceback is then seen);
    ``pass_fds`` are descriptors the child inherits. On exit the
    process is killed if it still runs, always waited for, and its pipes
    closed; the lines read are printed for pytest's report of a failed test.

    The child runs in a session (and process group) of its own, and on exit
    the whole group is killed, not just the child: a command run through a
    shell (``bash -c``) has the program under the shell, which killing the
    shell alone would leave running, and listening, after the suite."""
    process = await trio.lowlevel.open_process(
        list(command),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=REPO,
        env=env or child_env(),
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    SESSIONS.add(process.pid)
    assert process.stdout is not None
    output = OutputReader(process.stdout)
    try:
        yield process, output
    finally:
        # Shown by pytest when the test fails (a timeout says nothing else).
        print(f"stdout lines read from {command!r}:", *output.lines, sep="\n  ")
        with trio.CancelScope(shield=True):
            kill_group(process.pid)
            await process.wait()
            kill_group(process.pid)  # what the child left in its group
            await process.stdout.aclose()
            if process.stdin is not None:
                await process.stdin.aclose()


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it serves nothing)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rindex(")") + 2] == "Z"


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid`` (if any is left)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def read_port(output: OutputReader, pattern: str) -> int:
    """The port a child server bound, read from the line it prints once it
    listens: ``pattern`` matches that line and its first group is the port.
    Start the child with port 0 so that the system picks a port nobody holds;
    the ready line is then the only way to learn it. Fails the test if the
    output ends first or ``STARTUP_TIMEOUT`` runs out."""
    with trio.fail_after(STARTUP_TIMEOUT):
        match = await output.wait_for(pattern)
    return int(match.group(1))
