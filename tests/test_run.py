"""``trionet.run``: real programs stopped with real signals. The first
SIGINT or SIGTERM shuts the servers down gracefully (a request in flight is
answered), a second one stops the program at once, and either way it exits
with status 0 and no traceback. Every example that serves is stopped this way.

Each child reports its steps on stdout, which the test waits for; stderr is
merged into it so that a traceback would be seen."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio
import trustme

import trionet
from tests._process import EXAMPLES, STARTUP_TIMEOUT, OutputReader, running

PROGRAM = Path(__file__).resolve().parent / "programs" / "run_server.py"

# Seconds a child may take to exit after the signal that stops it: the
# shutdown itself is immediate; the margin is for a loaded machine.
EXIT_TIMEOUT = 20.0


def child(command: list[str]) -> AbstractAsyncContextManager[tuple[trio.Process, OutputReader]]:
    """Start ``command`` in its own process group with stdout and stderr on
    one pipe; the group is killed if the test leaves it running."""
    return running(command, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)


async def finish(process: trio.Process, output: OutputReader) -> list[str]:
    """The rest of the output, once the process has exited with status 0."""
    with trio.fail_after(EXIT_TIMEOUT):
        rest = await output.read_rest()
        status = await process.wait()
    assert not any("Traceback" in line for line in output.lines), output.lines
    assert status == 0, output.lines
    return rest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_idle_server_exits_0_on_signal(signum: signal.Signals) -> None:
    async with child([sys.executable, str(PROGRAM), "10"]) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(r"^listening on \d+$")
        process.send_signal(signum)
        rest = await finish(process, output)
    assert rest == [f"{signum.name} graceful", "exited"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_request_in_flight_is_answered_before_exit(signum: signal.Signals) -> None:
    async with child([sys.executable, str(PROGRAM), "30"]) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            port = int((await output.wait_for(r"^listening on (\d+)$"))[1])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(
                b"POST /slow HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhe"
            )
            await output.wait_for(r"^handling POST /slow$")
            process.send_signal(signum)
            await output.wait_for(rf"^{signum.name} graceful$")
            # The server is draining: the port no longer accepts...
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port)).close()
            # ...and the request in flight is still answered.
            await stream.send_all(b"llo")
            received = b""
            while chunk := await stream.receive_some(65536):
                received += chunk
            await stream.aclose()
        rest = await finish(process, output)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert received.endswith(b"got hello")
    assert rest == ["exited"]


async def test_second_signal_forces_the_stop() -> None:
    # A grace far longer than the test's bound: only the second signal can
    # end this in time.
    async with child([sys.executable, str(PROGRAM), "3600"]) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            port = int((await output.wait_for(r"^listening on (\d+)$"))[1])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /forever HTTP/1.1\r\nHost: test\r\n\r\n")
            await output.wait_for(r"^handling GET /forever$")
            process.send_signal(signal.SIGTERM)
            await output.wait_for(r"^SIGTERM graceful$")
            process.send_signal(signal.SIGINT)
            await output.wait_for(r"^SIGINT forced$")
        rest = await finish(process, output)
        await stream.aclose()
    assert rest == ["exited"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("run-cert")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    return certfile, keyfile


SERVING_EXAMPLES = {
    "first_server.py": r"^listening on ",
    "http_hello.py": r"^Server running at http://",
    "https_hello.py": r"^Server running at https://",
    "tcp_welcome.py": r"^server bound on ",
    "tcp_echo.py": r"^TCP echo on ",
    "udp_server.py": r"^server listening ",
    "udp_echo.py": r"^UDP echo on ",
    "ws_echo.py": r"^WebSocket echo at ",
    "ws_server.py": r"^WebSocket updates at ",
    "whoami.py": r"^whoami at http://",
}


def test_every_serving_example_is_covered() -> None:
    starts_a_server = re.compile(
        r"serve_tcp|serve_unix|serve_udp|http\.serve|websocket\.serve|open_udp_socket\(host, port\)"
    )
    serving = {
        path.name
        for path in EXAMPLES.glob("*.py")
        if starts_a_server.search(path.read_text()) and not path.name.startswith("test_")
    }
    # Not run as programs: pytest files (test_*.py, run by test_docs_examples),
    # and a program that runs its own server and client once and exits.
    serving.discard("tcp_close.py")
    assert serving == set(SERVING_EXAMPLES)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", sorted(SERVING_EXAMPLES))
async def test_example_stops_cleanly_on_signal(
    name: str, signum: signal.Signals, certificate: tuple[Path, Path]
) -> None:
    command = [sys.executable, str(EXAMPLES / name), "--port", "0"]
    if name == "https_hello.py":
        command += ["--cert", str(certificate[0]), "--key", str(certificate[1])]
    async with child(command) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(SERVING_EXAMPLES[name])
        process.send_signal(signum)
        rest = await finish(process, output)
    assert rest[:1] == [f"{signum.name}: shutting down (again to stop at once)"]


# -- in-process: what run() returns and raises --------------------------------------


def test_run_returns_what_main_returns() -> None:
    async def main(a: int, b: int) -> int:
        await trio.lowlevel.checkpoint()
        return a + b

    assert trionet.run(main, 2, 3) == 5


def test_run_raises_mains_exception_itself() -> None:
    async def main() -> None:
        await trio.lowlevel.checkpoint()
        raise LookupError("no such thing")

    with pytest.raises(LookupError, match="no such thing"):
        trionet.run(main)


def test_sys_exit_in_main_ends_the_program_with_its_status() -> None:
    async def main() -> None:
        await trio.lowlevel.checkpoint()
        sys.exit(3)

    # SystemExit itself, as from a plain function: Python exits with 3 and
    # prints no traceback (an exception group would print one, and exit 1).
    with pytest.raises(SystemExit) as raised:
        trionet.run(main)
    assert type(raised.value) is SystemExit
    assert raised.value.code == 3


def test_run_checks_its_arguments() -> None:
    async def main() -> None:
        await trio.lowlevel.checkpoint()

    with pytest.raises(ValueError, match="grace"):
        trionet.run(main, grace=-1)
    with pytest.raises(ValueError, match="signals"):
        trionet.run(main, signals=())
