"""Running Node.js as the peer of interop tests.

The scripts live in ``tests/node/``. Each reports on its stdout with one JSON
object per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from tests._peers import NODE_MODULES, require_executable, require_file

NODE_SCRIPTS = Path(__file__).resolve().parent / "node"

# Seconds a whole Node peer run may take, startup included (1 MiB over
# loopback is milliseconds; the rest is margin for a loaded two-core machine).
NODE_TIMEOUT = 30.0


def node_executable() -> str:
    """The path of ``node``. Without it, the test is skipped; on CI
    (``CI=true``) it fails instead, so that interop tests never silently
    stop running."""
    return require_executable("node", "install Node.js")


def node_command(script: str, *args: object) -> list[str]:
    """The command line running ``tests/node/<script>`` with ``args``."""
    return [node_executable(), str(NODE_SCRIPTS / script), *map(str, args)]


def parse_report(line: str | None, what: str) -> dict[str, Any]:
    """One JSON report line from a Node script, or a test failure saying what
    was expected."""
    if line is None:
        pytest.fail(f"node exited without reporting {what}")
    try:
        report: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        pytest.fail(f"node printed {line!r} instead of reporting {what}")
    return report


async def run_node(script: str, *args: object) -> dict[str, Any]:
    """Run a Node script to its end; return the JSON report on the last line of
    its stdout. Fails the test if it exits non-zero or prints no report."""
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            node_command(script, *args),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout = result.stdout.decode("utf-8")
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"node {script} exited {result.returncode}: {stderr}"
    lines = stdout.splitlines()
    return parse_report(lines[-1] if lines else None, f"from {script}")


def node_package(name: str) -> Path:
    """The directory of the npm package ``name`` in the repository's
    ``node_modules`` (``npm ci`` installs them from ``package-lock.json``).
    Without it, the test is skipped; on CI (``CI=true``) it fails instead."""
    path = NODE_MODULES / name
    require_file(f"the npm package {name}", path / "package.json", "npm ci")
    return path


async def terminate_then_kill(process: trio.Process) -> None:
    """A ``deliver_cancel`` for :func:`trio.run_process`: ask the process to
    end (SIGTERM, on which a browser driver reports and closes its browser),
    and kill it if it has not within a few seconds (trio cancels this as soon
    as the process exits). Trio's default does the same but warns before the
    kill, which the suite's ``filterwarnings = error`` turns into an error."""
    process.terminate()
    await trio.sleep(5)
    process.kill()


async def run_node_lines(script: str, *args: object) -> list[dict[str, Any]]:
    """Run a Node script to its end; return every JSON object it printed, one
    per stdout line. Fails the test if it exits non-zero (showing its output)
    or prints nothing. Guard the call with ``trio.fail_after``: when it is
    cancelled, the script is terminated, then killed."""
    result = await trio.run_process(
        node_command(script, *args),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        deliver_cancel=terminate_then_kill,
    )
    stdout = result.stdout.decode("utf-8")
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, (
        f"node {script} exited {result.returncode}:\n{stdout[-4000:]}\n{stderr[-4000:]}"
    )
    lines = stdout.splitlines()
    if not lines:
        pytest.fail(f"node {script} printed nothing: {stderr[-4000:]}")
    return [parse_report(line, f"from {script}") for line in lines]
