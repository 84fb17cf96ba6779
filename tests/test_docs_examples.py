"""The programs under ``examples/`` that the documentation is built around
(Getting started, the networking background, the testing page), each run as a
user runs it: as a process, talking over loopback."""

from __future__ import annotations

import re
import subprocess
import sys

import trio

from tests._process import EXAMPLES, REPO, child_env, read_port, running

# Seconds a short program may take (a cold Python start on a busy machine).
RUN_TIMEOUT = 30.0


async def run_python(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(RUN_TIMEOUT):
        return await trio.run_process(
            [sys.executable, *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=REPO,
            env=child_env(),
        )


async def test_first_server_and_first_client() -> None:
    server = [sys.executable, str(EXAMPLES / "first_server.py"), "--port", "0"]
    async with running(server) as (_, output):
        port = await read_port(output, r"^listening on 127\.0\.0\.1:(\d+)$")
        # No retry: once it says it listens, it must accept.
        result = await run_python(str(EXAMPLES / "first_client.py"), "--port", str(port))
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"hello! I answer in capitals.\nTRIO AND NODE\ngoodbye\n"
        # Any text, any size: the answer is the text in capitals, between the
        # greeting and the goodbye, however TCP cut it up.
        text = "深入浅出 Node.js, " * 5000
        result = await run_python(str(EXAMPLES / "first_client.py"), "--port", str(port), text)
        assert result.returncode == 0, result.stderr
        expected = f"hello! I answer in capitals.\n{text.upper()}\ngoodbye\n"
        assert result.stdout.decode("utf-8") == expected


async def test_tcp_close_shows_each_step_in_order() -> None:
    result = await run_python(str(EXAMPLES / "tcp_close.py"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    # Each step happens only after the one before it: the server sees the
    # client's data, then its FIN; the client sees the answer, then the
    # server's FIN.
    assert result.stdout.decode().splitlines() == [
        "client: connected (SYN, SYN-ACK, ACK)",
        "client: send(b'hello\\n'), then send_eof() (the client's FIN)",
        "server: Data(data=b'hello\\n')",
        "server: EndOfStream()",
        "server: send(b'bye\\n'), then return: the server closes (its FIN)",
        "client: Data(data=b'bye\\n')",
        "client: EndOfStream()",
        "client: aclose()",
    ]


async def test_the_testing_pages_tests_pass() -> None:
    # Run as a user runs them: the plugin comes from the entry point, and
    # nothing of tests/conftest.py applies.
    result = await run_python(
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        str(EXAMPLES / "test_echo_servers.py"),
        str(EXAMPLES / "test_http_services.py"),
    )
    report = result.stdout.decode()
    assert result.returncode == 0, report
    assert re.search(r"^10 passed", report, re.MULTILINE), report


async def test_the_virtual_tcp_examples_pass() -> None:
    result = await run_python(
        "-m", "pytest", "-p", "no:cacheprovider", "-q", str(EXAMPLES / "test_virtual_tcp.py")
    )
    report = result.stdout.decode()
    assert result.returncode == 0, report
    assert re.search(r"^2 passed", report, re.MULTILINE), report
