"""What the test session left behind: child processes still running (in
particular a server under a shell, whose shell was killed but not the server)
and listening sockets the pytest process still holds. ``tests/conftest.py``
asks at the end of the session; anything left is killed or reported, and the
session fails.

Children started through ``tests/_process.py`` run in sessions of their own
(``start_new_session``); their session ids are recorded in ``SESSIONS``, so a
grandchild is found even after its parent died and it was adopted by init."""

from __future__ import annotations

import gc
import os
import signal
import warnings
from pathlib import Path

import pytest

# Session ids (= process group ids) of the children the suite started.
SESSIONS: set[int] = set()

REPORT = pytest.StashKey[list[str]]()

_baseline_sockets: set[int] = set()


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, session id, state) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[3]), fields[0]


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or "?"


def _listening_inodes() -> dict[int, str]:
    """Inodes of listening TCP sockets and bound UDP sockets, with their
    local address (as the kernel writes it)."""
    found: dict[int, str] = {}
    for table, listening in (("tcp", "0A"), ("tcp6", "0A"), ("udp", None), ("udp6", None)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if listening is not None and fields[3] != listening:
                continue
            port = fields[1].rsplit(":", 1)[1]
            found[int(fields[9])] = f"{table} port {int(port, 16)}"
    return found


def _own_socket_inodes() -> set[int]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def remember_baseline() -> None:
    """What the process held before the first test (pytest's own)."""
    _baseline_sockets.update(_own_socket_inodes())


def leftovers() -> list[str]:
    """Describe (and end) what the suite left: living children and sockets."""
    report: list[str] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or pid == me:
            continue
        ppid, session, state = stat
        if state == "Z":
            continue  # exited; only waiting to be reaped
        if ppid == me or session in SESSIONS:
            report.append(f"process {pid} still running: {_command(pid)}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()  # a socket nobody references is closed here, not a leak
    listening = _listening_inodes()
    for inode in _own_socket_inodes() - _baseline_sockets:
        if inode in listening:
            report.append(f"socket still open in the test process: {listening[inode]}")
    return report
