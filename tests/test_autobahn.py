"""Autobahn|Testsuite, the reference WebSocket conformance suite, against
trionet's server (``examples/ws_echo.py``) and client
(``scripts/autobahn_client.py``): here the default case set, every case but
the permessage-deflate ones (12.* and 13.*), so that a plain ``uv run
pytest`` checks conformance in about a minute. The full set, all 517 cases
with compression, runs on every CI run as a check of its own, both sides at
once, beside pytest (``scripts/autobahn_full``, started by ``.ci/run``).

``scripts/autobahn`` runs the suite and judges its report
(``scripts/autobahn_summary.py``): OK, NON-STRICT and INFORMATIONAL pass;
FAILED, WRONG CODE, UNCLEAN, FAILED BY CLIENT, UNIMPLEMENTED (compression not
negotiated) and a case the run never reached (MISSING) fail. Its exit status
is the verdict; its output, shown when a test fails, names every failing case
and what the suite said about it. The per-case reports stay in the test's
temporary directory (printed on failure).

The suite runs only on Python 2.7, in a venv ``scripts/autobahn install``
builds (about a minute, with network; once per machine, in
``~/.cache/trionet-autobahn``). Without Python 2.7 or the network the tests
are skipped; on CI (``CI=true``) they fail instead, so that conformance never
silently stops being checked.

Each side takes 25 to 40 s on a two-core machine: most of it in 9.* (up to
16 MiB per message), then the suite's deliberate one-second pauses in 5.19,
5.20 and 6.4.*.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests._peers import missing
from tests._process import EXAMPLES, REPO, STARTUP_TIMEOUT, child_env, running

AUTOBAHN = REPO / "scripts" / "autobahn"
CLIENT = REPO / "scripts" / "autobahn_client.py"

# Seconds `scripts/autobahn install` may take: a minute or so to download and
# install Twisted and the suite; wide for a slow network. Instant once done.
INSTALL_TIMEOUT = 900.0

# Seconds one default-set run may take: 25 to 40 s measured on a two-core
# machine, so ten times that for one shared with other test runs.
RUN_TIMEOUT = 400.0

# The 9.* cases send messages of up to 16 MiB, past the 1 MiB default.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

# scripts/autobahn's exit status when the suite cannot be installed.
CANNOT_INSTALL = 3


@pytest.fixture(scope="module")
def suite() -> None:
    """Install the suite (instant once done). Without Python 2.7 or the
    network the test is skipped; on CI (``CI=true``) it fails instead, as the
    Node, curl and REDbot peers do. A synchronous fixture: a skip raised in a
    trio test loses its reason in the exception group."""
    try:
        result = subprocess.run(
            [str(AUTOBAHN), "install"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/autobahn install took over {INSTALL_TIMEOUT:g} s")
    output = (result.stdout + result.stderr).strip()
    if result.returncode == CANNOT_INSTALL:
        missing("Autobahn|Testsuite", f"scripts/autobahn install: {output}")
    assert result.returncode == 0, f"scripts/autobahn install: {output}"


async def run_suite(reports: Path, *args: str) -> tuple[int, str]:
    """Run ``scripts/autobahn`` with ``args``, its reports in ``reports``;
    return its exit status and its output (stdout and stderr, interleaved).

    It runs in a session of its own, and a timeout ends the whole session: the
    suite and the client under test are its children, and must not outlive the
    test holding their ports."""

    async def kill_session(process: trio.Process) -> None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            with trio.move_on_after(5):
                await process.wait()
                return
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    env = {**child_env(), "AUTOBAHN_REPORTS": str(reports)}
    print(f"reports in {reports}")
    with trio.fail_after(RUN_TIMEOUT):
        result = await trio.run_process(
            [str(AUTOBAHN), *args],
            capture_stdout=True,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
            start_new_session=True,
            deliver_cancel=kill_session,
            check=False,
        )
    return result.returncode, result.stdout.decode("utf-8", "replace")


def assert_all_passed(report: str) -> None:
    """The summary's own count agrees with the exit status: cases did run
    (the default set is some 300), and none failed."""
    match = re.search(r"^agent trionet: (\d+) cases, (\d+) passed, (\d+) failed$", report, re.M)
    assert match is not None, f"no summary in the output:\n{report}"
    cases, passed, failed = map(int, match.groups())
    assert cases >= 250, report
    assert (passed, failed) == (cases, 0), report


async def check_server(tmp_path: Path, program: list[str], ready: str, path: str = "/") -> None:
    """Run ``program`` (a server that prints ``ready``, a pattern whose
    group is its port) and the default cases against ``path`` on it.

    The server's stderr joins its stdout, which the test reads: the suite
    judges only the wire, and a handler that raised (a trionet bug the peer
    may not see: the close frame had gone out already) is logged there."""
    command = ["sh", "-c", 'exec "$@" 2>&1', "sh", *program]
    async with running(command) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            port = int((await output.wait_for(ready))[1])
        status, report = await run_suite(
            tmp_path, "server", f"ws://127.0.0.1:{port}{path}", "default"
        )
        process.terminate()
        with trio.fail_after(STARTUP_TIMEOUT):
            logged = await output.read_rest()
    log = "\n".join(logged)
    assert status == 0, f"Autobahn|Testsuite failed the server:\n{report}\nits log:\n{log}"
    assert_all_passed(report)
    assert "Traceback" not in log, f"the server's handler raised:\n{log}"


@pytest.mark.usefixtures("suite")
async def test_autobahn_default_cases_against_the_server(tmp_path: Path) -> None:
    program = [
        sys.executable,
        str(EXAMPLES / "ws_echo.py"),
        "--port",
        "0",
        "--max-message-size",
        str(MAX_MESSAGE_SIZE),
    ]
    await check_server(tmp_path, program, r"^WebSocket echo at ws://[^:]+:(\d+)/")


@pytest.mark.usefixtures("suite")
async def test_autobahn_default_cases_against_the_client(tmp_path: Path) -> None:
    status, report = await run_suite(
        tmp_path, "client", "default", "--", sys.executable, str(CLIENT)
    )
    assert status == 0, f"Autobahn|Testsuite failed trionet's client:\n{report}"
    assert_all_passed(report)


@pytest.mark.usefixtures("suite")
async def test_autobahn_default_cases_against_an_asgi_app(tmp_path: Path) -> None:
    """Starlette's WebSocket echo (``tests/asgi_apps/starlette_app.py``)
    served by ``trionet serve``: the ASGI layer passes every message and
    close code through unharmed (hypercorn crashed on case 7.1.6, its #177)."""
    program = [
        sys.executable,
        "-m",
        "trionet.cli",
        "serve",
        "starlette_app:app",
        "--app-dir",
        str(REPO / "tests" / "asgi_apps"),
        "--port",
        "0",
        "--ws-max-size",
        str(MAX_MESSAGE_SIZE),
    ]
    await check_server(tmp_path, program, r"^trionet serve: .* on http://[^:]+:(\d+) ", "/ws")
