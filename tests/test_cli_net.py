"""``trionet tcp``, ``trionet udp`` and ``trionet ws``, run as real processes
against peers we did not write where possible (Node's ``net``, ``dgram`` and
``ws``) and trionet's own servers started in the test: what a user sees on
stdout and stderr, and the exit status."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio

import trionet
import trionet.http
import trionet.websocket
from tests._leaks import SESSIONS
from tests._node import NODE_TIMEOUT, node_command, node_executable, node_package, parse_report
from tests._process import OutputReader, child_env, kill_group, refusing_port, running
from tests._ws import TEXT, frame, raw_listener
from tests.test_cli import RUN_TIMEOUT, STEP_TIMEOUT, trionet_command
from tests.test_ws_node import node_ws_server, summary
from trionet.cli import build_parser
from trionet.testing import TLSCertificates


async def run_with_input(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``trionet ARGS`` to its end with ``stdin`` piped in whole."""
    with trio.fail_after(RUN_TIMEOUT):
        return await trio.run_process(
            [*trionet_command(), *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=child_env(),
        )


async def run_all(
    *commands: list[str], stdin: bytes = b""
) -> list[subprocess.CompletedProcess[bytes]]:
    """Run several independent ``trionet`` commands at once (a cold start
    costs most of a second here), each with ``stdin``; their results in order."""
    results: list[subprocess.CompletedProcess[bytes] | None] = [None] * len(commands)

    async def run(index: int) -> None:
        results[index] = await run_with_input(*commands[index], stdin=stdin)

    async with trio.open_nursery() as nursery:
        for index in range(len(commands)):
            nursery.start_soon(run, index)
    return [result for result in results if result is not None]


def one_line(stderr: bytes) -> str:
    """The single line a failed command printed on stderr."""
    text = stderr.decode()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@dataclass
class Client:
    """A ``trionet`` process we type into: stdin, stdout and stderr piped."""

    process: trio.Process
    stdin: trio.abc.SendStream
    stdout: trio.abc.ReceiveStream
    stderr: trio.abc.ReceiveStream

    async def type(self, data: bytes) -> None:
        with trio.fail_after(STEP_TIMEOUT):
            await self.stdin.send_all(data)

    async def end_input(self) -> None:
        await self.stdin.aclose()

    async def read_exactly(self, size: int) -> bytes:
        """The next ``size`` bytes of stdout, however they are split."""
        data = b""
        with trio.fail_after(STEP_TIMEOUT):
            while len(data) < size:
                chunk = await self.stdout.receive_some(size - len(data))
                assert chunk, f"stdout ended after {data!r}"
                data += chunk
        return data

    async def finish(self) -> tuple[int, bytes, bytes]:
        """Wait for the exit (bounded); the status, the rest of stdout, and stderr."""
        rest = b""
        errors = b""
        with trio.fail_after(STEP_TIMEOUT):
            while chunk := await self.stdout.receive_some():
                rest += chunk
            while chunk := await self.stderr.receive_some():
                errors += chunk
            status = await self.process.wait()
        return status, rest, errors


@asynccontextmanager
async def typing_into(*args: str) -> AsyncIterator[Client]:
    """Start ``trionet ARGS`` with its standard streams piped; on exit it is
    killed if it still runs, and always waited for."""
    process = await trio.lowlevel.open_process(
        [*trionet_command(), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        start_new_session=True,
    )
    SESSIONS.add(process.pid)
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        yield Client(process, process.stdin, process.stdout, process.stderr)
    finally:
        with trio.CancelScope(shield=True):
            kill_group(process.pid)
            await process.wait()
            for pipe in (process.stdin, process.stdout, process.stderr):
                await pipe.aclose()


def lines_of(client: Client) -> OutputReader:
    """A line reader of the client's stdout."""
    return OutputReader(client.stdout)


@asynccontextmanager
async def node_peer(script: str, *args: object) -> AsyncIterator[tuple[int, OutputReader]]:
    """Run a Node peer from ``tests/node`` that prints ``{"port": N}`` first;
    yield the port and its output, for the reports that follow."""
    async with running(node_command(script, *args)) as (_, output):
        with trio.fail_after(NODE_TIMEOUT):
            first = parse_report(await output.readline(), "its port")
        if "skip" in first:
            pytest.skip(first["skip"])
        yield first["port"], output


@pytest.fixture(scope="session")
def bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture(autouse=True)
def compile_once(bytecode_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command starts a Python that imports trionet: let the children
    share one bytecode cache, outside the repository, instead of compiling
    trionet afresh each time (half of a cold start) where the environment
    says PYTHONDONTWRITEBYTECODE."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(bytecode_cache))


@pytest.fixture
def node() -> str:
    return node_executable()


@pytest.fixture
def node_ws(node: str) -> str:
    node_package("ws")
    return node


def ca_file(tls: TLSCertificates, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- help and usage -------------------------------------------------------------------


def subcommand_parser(name: str) -> argparse.ArgumentParser:
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = subcommands.choices[name]
    return parser


# Every flag and argument each command must document.
ARGUMENTS = {
    "tcp": {"--tls", "--insecure", "--cafile", "--connect-timeout", "HOST", "PORT"},
    "udp": {"--timeout", "HOST", "PORT"},
    "ws": {
        "--subprotocol",
        "-H",
        "--header",
        "--origin",
        "--insecure",
        "--cafile",
        "--binary",
        "URL",
    },
}


async def test_help_documents_every_argument() -> None:
    results = await run_all(*([command, "--help"] for command in ARGUMENTS))
    top = build_parser().format_help()
    for command, result in zip(ARGUMENTS, results, strict=True):
        assert result.returncode == 0, command
        help_text = result.stdout.decode()
        assert help_text.startswith(f"usage: trionet {command}")
        parser = subcommand_parser(command)
        assert parser.description, command
        assert f"trionet {command} " in help_text.split("examples:")[1], command
        names: set[str] = set()
        for action in parser._actions:
            assert action.help, f"{command}: {action.option_strings or action.dest} has no help"
            shown = action.option_strings or [str(action.metavar)]
            names.update(shown)
            for name in shown:
                assert name in help_text, f"{command}: {name} is not in its --help"
        assert ARGUMENTS[command] <= names, command
        # The top-level help lists the command with its summary.
        assert f"    {command} " in top, command


async def test_usage_errors_exit_2() -> None:
    commands = [
        ["tcp", "--insecure", "127.0.0.1", "1"],
        ["udp", "127.0.0.1", "70000"],
        ["ws", "-H", "no colon", "ws://127.0.0.1:1/"],
    ]
    results = await run_all(*commands)
    for command, result in zip(commands, results, strict=True):
        stderr = result.stderr.decode()
        assert result.returncode == 2, (command, stderr)
        assert stderr.startswith(f"usage: trionet {command[0]}")
        assert "Traceback" not in stderr
    lines = [result.stderr.decode().splitlines()[-1] for result in results]
    assert lines == [
        "trionet tcp: error: --insecure applies to TLS connections only",
        "trionet udp: error: argument PORT: a port is 1..65535, not 70000",
        "trionet ws: error: argument -H/--header: a header is 'Name: value', not 'no colon'",
    ]


# -- tcp ------------------------------------------------------------------------------


async def test_tcp_round_trip_then_half_close_with_node(node: str) -> None:
    async with node_peer("tcp_echo_server.js") as (port, output):
        result = await run_with_input("tcp", "127.0.0.1", str(port), stdin=b"hello\nworld")
        with trio.fail_after(NODE_TIMEOUT):
            report = parse_report(await output.readline(), "the connection's end")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    # The echo, then the reply Node sent only once it saw our end of stream.
    assert result.stdout == b"hello\nworldbye after 11 bytes\n"
    assert report == {"received": "hello\nworld", "ended": True}


async def test_tcp_sends_input_as_it_arrives_and_prints_after_its_end(
    nursery: trio.Nursery,
) -> None:
    seen: list[trionet.StreamEvent] = []

    async def echo_then_goodbye(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            seen.append(event)
            match event:
                case trionet.Data(data):
                    await conn.send(data)
                case trionet.EndOfStream():
                    await conn.send(b"server saw the end\n")

    server = await nursery.start(trionet.serve_tcp, echo_then_goodbye, 0, "127.0.0.1")
    async with typing_into("tcp", "127.0.0.1", str(server.port)) as client:
        # No newline: the bytes go out, and come back out, as they are.
        await client.type(b"no newline yet")
        assert await client.read_exactly(14) == b"no newline yet"
        await client.type(b", now one\n")
        assert await client.read_exactly(10) == b", now one\n"
        await client.end_input()
        status, rest, errors = await client.finish()
    assert (status, rest, errors) == (0, b"server saw the end\n", b"")
    assert seen[-1] == trionet.EndOfStream()
    assert b"".join(e.data for e in seen if isinstance(e, trionet.Data)) == (
        b"no newline yet, now one\n"
    )


async def test_tcp_over_tls_with_cafile(
    nursery: trio.Nursery, trionet_tls: TLSCertificates, tmp_path: Path
) -> None:
    async def answer_one_line(conn: trionet.TCPConnection) -> None:
        assert conn.tls is not None
        received = b""
        async for event in conn:
            if isinstance(event, trionet.Data):
                received += event.data
                if received.endswith(b"\n"):
                    break
        await conn.send(b"secure: " + received)
        # Returning closes the connection with a TLS close_notify.

    server = await nursery.start(
        partial(
            trionet.serve_tcp,
            answer_one_line,
            0,
            "127.0.0.1",
            ssl_context=trionet_tls.server_context,
        )
    )
    port = str(server.port)
    cafile = ca_file(trionet_tls, tmp_path)

    trusted, rejected, insecure = await run_all(
        ["tcp", "--tls", "--cafile", cafile, "127.0.0.1", port],
        # The system's trust store does not know the test CA.
        ["tcp", "--tls", "127.0.0.1", port],
        ["tcp", "--tls", "--insecure", "127.0.0.1", port],
        stdin=b"hello over TLS\n",
    )
    assert trusted.returncode == 0, trusted.stderr
    assert (trusted.stdout, trusted.stderr) == (b"secure: hello over TLS\n", b"")

    assert rejected.returncode == 1
    line = one_line(rejected.stderr)
    assert line.startswith(f"trionet tcp: TLS handshake with 127.0.0.1:{port} failed: ")
    assert "certificate" in line
    assert "--cafile" in line
    assert rejected.stdout == b""

    assert insecure.returncode == 0, insecure.stderr
    assert insecure.stdout == b"secure: hello over TLS\n"


async def test_tcp_connection_refused() -> None:
    with refusing_port() as port:
        result = await run_with_input("tcp", "127.0.0.1", str(port), stdin=b"hello\n")
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"trionet tcp: cannot connect to 127.0.0.1:{port}: Connection refused"
    )
    assert result.stdout == b""


async def test_tcp_reset_by_node(node: str) -> None:
    async with node_peer("server.js", "reset") as (port, output):
        # Input stays open: the reset, not our end of input, ends the command.
        async with typing_into("tcp", "127.0.0.1", str(port)) as client:
            await client.type(b"boom")
            status, stdout, stderr = await client.finish()
        with trio.fail_after(NODE_TIMEOUT):
            assert parse_report(await output.readline(), "the reset") == {"reset": True}
    assert (status, stdout) == (1, b"")
    assert one_line(stderr) == "trionet tcp: connection lost: Connection reset by peer"


async def test_tcp_ctrl_c_exits_130_quietly(nursery: trio.Nursery) -> None:
    connected = trio.Event()

    async def wait_forever(conn: trionet.TCPConnection) -> None:
        async for _ in conn:
            connected.set()

    server = await nursery.start(trionet.serve_tcp, wait_forever, 0, "127.0.0.1")
    async with typing_into("tcp", "127.0.0.1", str(server.port)) as client:
        await client.type(b"are you there?\n")
        with trio.fail_after(STEP_TIMEOUT):
            await connected.wait()
        client.process.send_signal(signal.SIGINT)
        status, rest, errors = await client.finish()
    assert (status, rest, errors) == (130, b"", b"")


# -- udp ------------------------------------------------------------------------------


async def test_udp_round_trip_with_node(node: str) -> None:
    async with node_peer("udp_echo_server.js", 4) as (port, output):
        result = await run_with_input(
            "udp", "--timeout", "0.5", "127.0.0.1", str(port), stdin=b"one\ntwo\n\nthree"
        )
        with trio.fail_after(NODE_TIMEOUT):
            report = parse_report(await output.readline(), "the datagrams")
    # One datagram per line (the empty one too; the last without its
    # newline), and each echo printed on a line of its own.
    assert report == {"received": ["one", "two", "", "three"]}
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (b"one\ntwo\n\nthree\n", b"")


async def test_udp_port_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await run_with_input("udp", "127.0.0.1", str(port), stdin=b"anyone?\n")
    assert result.returncode == 1
    assert one_line(result.stderr) == f"trionet udp: 127.0.0.1:{port}: port unreachable (ICMP)"


# -- ws -------------------------------------------------------------------------------


async def test_ws_text_and_binary_round_trip_with_node(node_ws: str, tmp_path: Path) -> None:
    async with node_ws_server(tmp_path, 2) as (port, next_report):
        url = f"ws://127.0.0.1:{port}/echo"
        async with typing_into("ws", url) as client:
            output = lines_of(client)
            await client.type("héllo, 世界 🎉\n".encode())
            with trio.fail_after(STEP_TIMEOUT):
                assert await output.readline() == "héllo, 世界 🎉"
            await client.type(b"second\n")
            with trio.fail_after(STEP_TIMEOUT):
                assert await output.readline() == "second"
            await client.end_input()
            status, rest, errors = await client.finish()
        assert (status, rest, errors) == (0, b"", b"")
        text_report = await next_report()

        async with typing_into("ws", "--binary", url) as client:
            output = lines_of(client)
            await client.type(b"\x00\xffbin\n")
            with trio.fail_after(STEP_TIMEOUT):
                assert await output.readline() == "<binary 5 bytes: 00ff62696e>"
            await client.end_input()
            status, rest, errors = await client.finish()
        assert (status, rest, errors) == (0, b"", b"")
        binary_report = await next_report()

    assert text_report["received"] == [summary("héllo, 世界 🎉"), summary("second")]
    assert text_report["close"] == {"code": 1000, "reason": ""}
    assert binary_report["received"] == [summary(b"\x00\xffbin")]
    assert binary_report["close"] == {"code": 1000, "reason": ""}


@dataclass
class Seen:
    path: str = ""
    subprotocol: str | None = None
    header: str | None = None
    origin: str | None = None
    received: list[str | bytes] | None = None
    close_code: int | None = None


async def test_ws_options_and_messages_from_a_trionet_server(nursery: trio.Nursery) -> None:
    seen = Seen()
    handler_done = trio.Event()

    async def greet_then_echo(ws: trionet.websocket.WebSocketConnection) -> None:
        seen.path = ws.path
        seen.subprotocol = ws.subprotocol
        seen.header = ws.request_headers.get("x-test")
        seen.origin = ws.request_headers.get("origin")
        await ws.send("welcome")
        await ws.send(bytes(range(100)))
        seen.received = []
        async for message in ws:
            seen.received.append(message.data)
            await ws.send(message.data)
        seen.close_code = ws.close_code
        handler_done.set()

    server = await nursery.start(
        partial(trionet.websocket.serve, greet_then_echo, 0, "127.0.0.1", subprotocols=["chat.v1"])
    )
    args = ["--subprotocol", "chat.v2", "--subprotocol", "chat.v1", "-H", "X-Test: yes"]
    args += ["--origin", "http://example.test", f"ws://127.0.0.1:{server.port}/room"]
    async with typing_into("ws", *args) as client:
        output = lines_of(client)
        with trio.fail_after(STEP_TIMEOUT):
            assert await output.readline() == "welcome"
            # Binary: the length, and the first 64 bytes in hex.
            assert await output.readline() == (f"<binary 100 bytes: {bytes(range(64)).hex()}...>")
        await client.type(b"hi\n")
        with trio.fail_after(STEP_TIMEOUT):
            assert await output.readline() == "hi"
        await client.end_input()
        status, rest, errors = await client.finish()
    assert (status, rest, errors) == (0, b"", b"")
    with trio.fail_after(STEP_TIMEOUT):
        await handler_done.wait()
    assert seen == Seen(
        path="/room",
        subprotocol="chat.v1",
        header="yes",
        origin="http://example.test",
        received=["hi"],
        close_code=1000,
    )


async def test_ws_prints_what_arrives_before_the_servers_close_answer() -> None:
    # `echo hi | trionet ws URL`: stdin ends at once and the client starts
    # the close (Node's ws.close()), but what the server sends before it
    # answers that close is still printed. The server here is a raw peer: it
    # reads the line and the close frame, sends one more message, then
    # answers the close.
    async with raw_listener() as listener, trio.open_nursery() as nursery:

        async def late_answer() -> None:
            async with listener.accept() as peer:
                close = await peer.close_frame()
                await peer.send_raw(frame(TEXT, b"echo: hi, late", masked=False))
                await peer.answer_close(close)
                # Leaving the block closes TCP: the server closes first.

        nursery.start_soon(late_answer)
        result = await run_with_input("ws", f"ws://127.0.0.1:{listener.port}/", stdin=b"hi\n")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout.decode().splitlines() == ["echo: hi, late"]


async def test_ws_server_close_codes_with_node(node_ws: str, tmp_path: Path) -> None:
    routes = {
        "/closes-4001": {"on_message": {"do": "close", "code": 4001, "reason": "bye"}},
        "/closes-1000": {"on_message": {"do": "close", "code": 1000}},
    }
    ends: dict[str, tuple[int, bytes, bytes]] = {}
    async with node_ws_server(tmp_path, len(routes), routes=routes) as (port, next_report):
        for path in routes:
            # Input stays open: the server's close ends the command.
            async with typing_into("ws", f"ws://127.0.0.1:{port}{path}") as client:
                await client.type(b"hello\n")
                ends[path] = await client.finish()
            await next_report()
    status, stdout, stderr = ends["/closes-4001"]
    assert status == 1
    assert stdout == b""
    assert one_line(stderr) == "trionet ws: connection closed: 4001 (bye)"
    assert ends["/closes-1000"] == (
        0,
        b"",
        b"trionet ws: closed by server: 1000 (normal closure)\n",
    )


async def test_wss_with_cafile_and_a_clean_close_by_the_server(
    nursery: trio.Nursery, trionet_tls: TLSCertificates, tmp_path: Path
) -> None:
    async def hello_and_goodbye(ws: trionet.websocket.WebSocketConnection) -> None:
        await ws.send("over wss")
        await ws.aclose(1001, "done here")

    server = await nursery.start(
        partial(
            trionet.websocket.serve,
            hello_and_goodbye,
            0,
            "127.0.0.1",
            ssl_context=trionet_tls.server_context,
        )
    )
    cafile = ca_file(trionet_tls, tmp_path)
    async with typing_into("ws", "--cafile", cafile, f"wss://127.0.0.1:{server.port}/") as client:
        status, stdout, stderr = await client.finish()
    assert status == 0
    assert stdout == b"over wss\n"
    assert stderr == b"trionet ws: closed by server: 1001 (done here)\n"


async def test_ws_refused_upgrade(nursery: trio.Nursery) -> None:
    async def not_here(request: trionet.http.Request) -> trionet.http.Response:
        return trionet.http.Response(404, {"content-type": "text/plain"}, b"no such room\n")

    server = await nursery.start(trionet.http.serve, not_here, 0, "127.0.0.1")
    url = f"ws://127.0.0.1:{server.port}/nowhere"
    result = await run_with_input("ws", url)
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"trionet ws: {url} refused the WebSocket upgrade with HTTP 404"
    )


async def test_ws_bad_url_or_no_server() -> None:
    with refusing_port() as free:
        urls = ["http://127.0.0.1/", f"ws://127.0.0.1:{free}/"]
        results = await run_all(*(["ws", url] for url in urls))
    ends = [(result.returncode, one_line(result.stderr), result.stdout) for result in results]
    assert ends == [
        (
            2,
            "trionet ws: a WebSocket URL starts with ws:// or wss://, not 'http://127.0.0.1/'",
            b"",
        ),
        (1, f"trionet ws: cannot connect to 127.0.0.1:{free}: Connection refused", b""),
    ]
