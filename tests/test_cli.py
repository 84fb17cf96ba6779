"""The ``trionet`` command, run as a real process: ``--version``, help, and
``trionet demo`` as a user runs it: its banner, every service answering real
clients (Node's ``net``, ``dgram`` and ``ws``, curl, and the banner's own
commands run by bash as printed), the log, Ctrl-C and a busy port."""

from __future__ import annotations

import argparse
import html.parser
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

import trionet
import trionet.http
import trionet.websocket
from tests._http import parse, read_until_closed, request
from tests._net import receive_exactly
from tests._node import (
    NODE_TIMEOUT,
    node_command,
    node_executable,
    node_package,
    run_node_lines,
)
from tests._peers import require_executable
from tests._process import REPO, STARTUP_TIMEOUT, OutputReader, child_env, gone, running
from trionet.cli import build_parser
from trionet.cli._demo import SERVICES, Service, banner, cli_command
from trionet.tls._devcert import dev_certificate

WELCOME = "欢迎光临《深入浅出Node.js》示例:\n".encode()
GREETING = "你好".encode()
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Seconds for a short CLI run (a cold Python start on a loaded machine).
RUN_TIMEOUT = 30.0
# Seconds for a step of a conversation with a running demo.
STEP_TIMEOUT = 10.0


def trionet_command() -> list[str]:
    """The installed ``trionet`` console script, next to this Python (the
    virtualenv's ``bin``); ``python -m trionet.cli`` where there is none."""
    script = Path(sys.executable).with_name("trionet")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "trionet.cli"]


def every_port_flag_zero() -> list[str]:
    """``--tcp-port 0`` and the like for every demo service, so that parallel
    test runs never fight over the default ports."""
    return [arg for service in SERVICES for arg in (service.flag, "0")]


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(RUN_TIMEOUT):
        return await trio.run_process(
            [*trionet_command(), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=child_env(),
        )


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's development certificate goes to the test's own cache
    directory, never the user's (children inherit the environment)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


async def test_version() -> None:
    result = await run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode() == f"trionet {trionet.__version__}\n"


async def test_no_command_prints_help_and_exits_2() -> None:
    result = await run_cli()
    assert result.returncode == 2
    help_text = result.stdout.decode()
    assert help_text.startswith("usage: trionet")
    assert "demo" in help_text


async def test_demo_help_documents_every_flag() -> None:
    result = await run_cli("demo", "--help")
    assert result.returncode == 0
    help_text = result.stdout.decode()
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    demo_parser = subcommands.choices["demo"]
    flags = {flag for action in demo_parser._actions for flag in action.option_strings}
    assert {"--host", "--no-tls"} | {service.flag for service in SERVICES} <= flags
    for action in demo_parser._actions:
        assert action.help, f"{action.option_strings} has no help text"
        for flag in action.option_strings:
            assert flag in help_text
    for service in SERVICES:
        assert str(service.default_port) in help_text  # the default is documented


async def test_demo_refuses_a_port_out_of_range() -> None:
    result = await run_cli("demo", "--udp-port", "70000")
    assert result.returncode == 2
    assert "a port is in 0..65535, not 70000" in result.stderr.decode()


# -- trionet demo, run as a user runs it ---------------------------------------------


def curl_executable() -> str:
    """The path of ``curl``. Without it, the test is skipped; on CI
    (``CI=true``) it fails instead, so that the test never silently stops
    running."""
    return require_executable("curl", "apt-get install curl")


@pytest.fixture
def curl() -> str:
    # Checked here, outside trio, so that pytest reports why a test skipped.
    return curl_executable()


@pytest.fixture
def node_ws() -> None:
    """Node and its ``ws`` package, for the WebSocket peers."""
    node_executable()
    node_package("ws")


@dataclass
class Row:
    """One service in the banner: ``  TCP    127.0.0.1:8124  what it is``
    followed by the commands that try it, each on a line of its own."""

    address: str
    what: str
    commands: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


@dataclass
class Demo:
    process: trio.Process
    output: OutputReader
    banner: list[str]
    rows: dict[str, Row]

    def port(self, label: str) -> int:
        return self.rows[label].port

    def log(self) -> list[str]:
        """The lines printed after the banner so far."""
        return self.output.lines[len(self.banner) :]

    async def stop(self, signum: int = signal.SIGINT) -> list[str]:
        """Stop the demo as Ctrl-C does; check it says so, stops and exits 0
        without a word on stderr; return the log."""
        with trio.fail_after(STEP_TIMEOUT):
            self.process.send_signal(signum)
            await self.output.wait_for(rf"^{signal.Signals(signum).name}: shutting down\.\.\.$")
            await self.output.wait_for(r"^stopped\.$")
            assert await self.output.read_rest() == []
            assert await self.process.wait() == 0
        return self.log()


ROW = re.compile(r"^  (\S+) +(\S+)  (.+)$")
COMMAND = re.compile(r"^ {9}(\S.*)$")


# Every kind of line the demo prints after its banner: each run below checks
# its log against it, and so does the test of the docs' example.
CONNECTION_LINE = (
    r"(tcp   \S+ (connected|ended: 连接断开|closed \(shutting down\)|reset: .+))"
    r"|(udp   \S+ got '.*')"
    r"|((http |https) \S+ [A-Z]+ /\S* \d{3})"
    r"|((ws    |wss   )\S+ (open /updates|closed \d{4} \([a-z ]+\)))"
)
LOG_LINE = re.compile(rf"{CONNECTION_LINE}|((SIGINT|SIGTERM): shutting down\.\.\.)|(stopped\.)")
# With --workers: each connection's line says which worker handled it, the
# pool logs its own events, and the supervisor says it stops the workers.
WORKERS_LOG_LINE = re.compile(
    rf"(({CONNECTION_LINE}) \[worker \d+\])"
    r"|(workers: .+)"
    r"|((SIGINT|SIGTERM): stopping the workers \(again to kill them at once\))"
    r"|(stopped\.)"
)


@asynccontextmanager
async def demo(*flags: str) -> AsyncIterator[Demo]:
    """Run ``trionet demo`` on free ports (plus ``flags``) until the end of
    the block, and read its banner. Its stderr is merged into its stdout, so
    that a warning or a traceback shows among the lines and fails the test."""
    command = [*trionet_command(), "demo", *every_port_flag_zero(), *flags]
    async with running(["/bin/sh", "-c", 'exec "$@" 2>&1', "sh", *command]) as (
        process,
        output,
    ):
        rows: dict[str, Row] = {}
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(r"^trionet demo is running; press Ctrl-C to stop\.")
            while (line := await output.readline()) != "Connections are logged below as they come:":
                if line is None:
                    pytest.fail(f"the banner did not end: {output.lines!r}")
                if row := ROW.match(line):
                    rows[row.group(1)] = Row(row.group(2), row.group(3))
                elif command_line := COMMAND.match(line):
                    list(rows.values())[-1].commands.append(command_line.group(1))
                else:
                    assert line == "", f"an unexpected line in the banner: {line!r}"
        running_demo = Demo(process, output, list(output.lines), rows)
        yield running_demo
        expected = WORKERS_LOG_LINE if "--workers" in flags else LOG_LINE
        for line in running_demo.log():
            assert expected.fullmatch(line), f"an unexpected line: {line!r}"


def logged(lines: list[str], pattern: str) -> list[re.Match[str]]:
    """The log lines matching ``pattern`` in full."""
    return [match for line in lines if (match := re.fullmatch(pattern, line))]


async def test_demo_banner_lists_every_service_and_a_command_for_each(
    private_cache: Path,
) -> None:
    async with demo() as running_demo:
        rows = running_demo.rows
        cert = private_cache / "trionet" / "dev-cert" / "cert.pem"
        tcp, udp, http, https = (rows[label].port for label in ("TCP", "UDP", "HTTP", "HTTPS"))
        assert 0 not in (tcp, udp, http, https)
        cli = cli_command()
        assert {label: (row.address, row.commands) for label, row in rows.items()} == {
            "TCP": (f"127.0.0.1:{tcp}", [f"{cli} tcp 127.0.0.1 {tcp}"]),
            "UDP": (f"127.0.0.1:{udp}", [f"echo 深入浅出Node.js | {cli} udp 127.0.0.1 {udp}"]),
            "HTTP": (f"127.0.0.1:{http}", [f"curl http://127.0.0.1:{http}/hello"]),
            "WS": (f"127.0.0.1:{http}", [f"{cli} ws ws://127.0.0.1:{http}/updates"]),
            "page": (f"127.0.0.1:{http}", [f"http://127.0.0.1:{http}/"]),
            "HTTPS": (
                f"127.0.0.1:{https}",
                [
                    f"curl --cacert {cert} https://127.0.0.1:{https}/hello",
                    f"{cli} get --cafile {cert} https://localhost:{https}/hello",
                    f"{cli} ws --cafile {cert} wss://localhost:{https}/updates",
                    f"https://localhost:{https}/",
                ],
            ),
        }
        # Each row says what the service is.
        assert "(net)" in rows["TCP"].what
        assert "(dgram)" in rows["UDP"].what
        assert "Hello World" in rows["HTTP"].what
        assert "echo box" in rows["page"].what
        assert "development certificate" in rows["HTTPS"].what
        # One block: the banner is only these rows and blank lines around.
        assert running_demo.banner[1] == ""
        assert running_demo.banner[-2:] == ["", "Connections are logged below as they come:"]
        assert await running_demo.stop() == ["SIGINT: shutting down...", "stopped."]


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"UV": "/bin/uv", "VIRTUAL_ENV": "{project}/.venv"}, "uv run trionet"),
        ({"VIRTUAL_ENV": "{project}/.venv"}, "trionet"),  # activated by hand
        ({"UV": "/bin/uv", "VIRTUAL_ENV": "{elsewhere}/venv"}, "trionet"),  # uvx, say
        ({}, "trionet"),
    ],
    ids=["uv-run-in-a-clone", "activated-venv", "uv-tool-run", "installed"],
)
def test_demo_commands_start_with_uv_run_only_under_uv_run_in_a_project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    expected: str,
) -> None:
    project, elsewhere = tmp_path / "clone", tmp_path / "cache"
    (project / ".venv").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(project=project, elsewhere=elsewhere))
    assert cli_command() == expected


@pytest.mark.parametrize(
    ("host", "client", "url", "tls"),
    [
        ("0.0.0.0", "127.0.0.1", "127.0.0.1", "localhost"),
        ("::", "::1", "[::1]", "localhost"),
        ("::1", "::1", "[::1]", "localhost"),
        ("192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.7"),
    ],
)
def test_demo_banner_commands_reach_the_host_listened_on(
    host: str, client: str, url: str, tls: str
) -> None:
    """Clients connect to loopback for a wildcard ``--host``, and to the
    address itself otherwise; TLS clients use ``localhost`` (a name the
    development certificate holds) for loopback."""
    address = (host, 1, 0, 0) if ":" in host else (host, 1)
    addresses = dict.fromkeys(("tcp", "udp", "http", "https"), address)
    lines = banner(host, addresses, Path("/c/cert.pem"), "trionet")
    assert f"         trionet tcp {client} 1" in lines
    assert f"         trionet ws ws://{url}:1/updates" in lines
    assert f"         curl --cacert /c/cert.pem https://{url}:1/hello" in lines
    assert f"         trionet ws --cafile /c/cert.pem wss://{tls}:1/updates" in lines


def shell_env() -> dict[str, str]:
    """The environment for the banner's commands run by a shell: as the
    user's, with this virtualenv's ``trionet`` and ``uv`` on the ``PATH``."""
    env = child_env()
    directories = [str(Path(sys.executable).parent)]
    if "UV" in env:
        directories.append(str(Path(env["UV"]).parent))
    env["PATH"] = os.pathsep.join([*directories, env.get("PATH", "")])
    return env


async def run_shell(command: str, stdin: bytes = b"") -> str:
    """Run one of the banner's command lines as a user pastes it into a shell
    (from the clone); return its stdout. It must exit 0."""
    with trio.fail_after(RUN_TIMEOUT):
        result = await trio.run_process(
            ["/bin/bash", "-c", command],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=REPO,
            env=shell_env(),
        )
    assert result.returncode == 0, f"{command}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode()


async def converse_ws(command: str, updates: int) -> list[str]:
    """Run a banner's ``trionet ws`` command line; send one line, read until
    its echo and ``updates`` updates arrived, then end the input (the client
    closes with 1000 and exits 0). Return the lines it printed."""
    with trio.fail_after(STEP_TIMEOUT + RUN_TIMEOUT):
        async with running(
            ["/bin/bash", "-c", command], env=shell_env(), stdin=subprocess.PIPE
        ) as (process, output):
            assert process.stdin is not None
            await process.stdin.send_all("héllo 世界\n".encode())
            received: list[str] = []
            while not (
                "echo: 'héllo 世界'" in received
                and sum(line.startswith("update ") for line in received) >= updates
            ):
                line = await output.readline()
                assert line is not None, f"{command} ended: {received!r}"
                received.append(line)
            await process.stdin.aclose()
            assert await output.read_rest() == []
            assert await process.wait() == 0
    return received


async def test_demo_banner_commands_work_when_pasted(curl: str, private_cache: Path) -> None:
    """Every command line the banner prints, run by bash exactly as printed,
    gets the answer the banner promises; the browser URLs serve the page."""
    async with demo() as running_demo:
        rows = running_demo.rows
        (tcp,) = rows["TCP"].commands
        assert await run_shell(tcp, stdin=b"hello\n") == (WELCOME + GREETING).decode()

        (udp,) = rows["UDP"].commands
        assert await run_shell(udp) == "深入浅出Node.js\n"

        (hello,) = rows["HTTP"].commands
        assert await run_shell(hello) == "Hello World\n"

        (ws,) = rows["WS"].commands
        received = await converse_ws(ws, updates=2)
        assert received[0].startswith("update 1: ")
        updates = [line for line in received if line.startswith("update ")]
        assert [line.split(":")[0] for line in updates] == ["update 1", "update 2"]

        (page,) = rows["page"].commands
        html = await run_shell(f"curl -sS {page}")
        assert html.startswith("<!doctype html>")
        assert 'id="echo-form"' in html

        curl_https, get_https, wss, page_https = rows["HTTPS"].commands
        assert await run_shell(curl_https) == "Hello World\n"
        assert await run_shell(get_https) == "Hello World\n"
        received = await converse_ws(wss, updates=1)
        assert received[0].startswith("update 1: ")
        cert = private_cache / "trionet" / "dev-cert" / "cert.pem"
        html = await run_shell(f"curl -sS --cacert {cert} {page_https}")
        assert html.startswith("<!doctype html>")

        log = await running_demo.stop()
    assert len(logged(log, r"tcp   127\.0\.0\.1:\d+ connected")) == 1
    assert len(logged(log, r"tcp   127\.0\.0\.1:\d+ ended: 连接断开")) == 1
    assert len(logged(log, r"udp   127\.0\.0\.1:\d+ got '深入浅出Node\.js'")) == 1
    assert len(logged(log, r"http  127\.0\.0\.1:\d+ GET /hello 200")) == 1
    assert len(logged(log, r"http  127\.0\.0\.1:\d+ GET / 200")) == 1
    assert len(logged(log, r"https 127\.0\.0\.1:\d+ GET /hello 200")) == 2
    assert len(logged(log, r"https 127\.0\.0\.1:\d+ GET / 200")) == 1
    for kind in ("ws", "wss"):
        opened = logged(log, rf"{kind} +(127\.0\.0\.1:\d+) open /updates")
        closed = logged(log, rf"{kind} +(127\.0\.0\.1:\d+) closed 1000 \(normal closure\)")
        assert [m.group(1) for m in opened] == [m.group(1) for m in closed]
        assert len(opened) == 1


NODE_UDP_CLIENT = """
const dgram = require('dgram');
const [port, text] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
socket.on('message', (msg, rinfo) => {
  process.stdout.write(JSON.stringify({
    echo: msg.toString('utf8'), from: rinfo.port, port: socket.address().port,
  }) + '\\n');
  socket.close();
});
socket.send(text, Number(port), '127.0.0.1');
"""


async def run_node_udp(port: int, text: str) -> dict[str, Any]:
    """Node's ``dgram``: send ``text`` to the port, report the answer."""
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            [node_executable(), "-e", NODE_UDP_CLIENT, str(port), text],
            capture_stdout=True,
            check=True,
        )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def run_node_ws(tmp_path: Path, session: dict[str, Any], **env: str) -> dict[str, Any]:
    """Node's ``ws`` (``tests/node/ws_client.js``) through one session."""
    plan = tmp_path / f"plan-{os.urandom(4).hex()}.json"
    plan.write_text(json.dumps({"sessions": [session]}))
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            node_command("ws_client.js", plan),
            capture_stdout=True,
            check=True,
            env={**os.environ, **env},
        )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.node
async def test_demo_serves_every_service_to_clients_we_did_not_write(
    curl: str, node_ws: None, private_cache: Path, tmp_path: Path
) -> None:
    async with demo() as running_demo:
        http, https = running_demo.port("HTTP"), running_demo.port("HTTPS")
        cert = private_cache / "trionet" / "dev-cert" / "cert.pem"

        # TCP: Node's net reads the welcome, says hello, gets 你好, ends.
        report = await run_node_lines("client.js", running_demo.port("TCP"), "welcome")
        assert report == [{"text": (WELCOME + GREETING).decode(), "state": "ended"}]

        # A client that resets its connection is logged as such.
        with trio.fail_after(STEP_TIMEOUT):
            with trio.socket.socket() as rude:
                await rude.connect(("127.0.0.1", running_demo.port("TCP")))
                await running_demo.output.wait_for(r"^tcp   127\.0\.0\.1:\d+ connected$")
                welcome = b""
                while len(welcome) < len(WELCOME):
                    welcome += await rude.recv(len(WELCOME) - len(welcome))
                assert welcome == WELCOME
                rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await running_demo.output.wait_for(r"^tcp   127\.0\.0\.1:\d+ reset: ")

        # UDP: Node's dgram gets its datagram back.
        report_udp = await run_node_udp(running_demo.port("UDP"), "深入浅出Node.js")
        assert report_udp["echo"] == "深入浅出Node.js"
        assert report_udp["from"] == running_demo.port("UDP")

        # HTTP: curl, the seed's Hello World on any path but /, and the page.
        assert await run_shell(f"{curl} -sS http://127.0.0.1:{http}/any/path") == "Hello World\n"
        page = await run_shell(f"{curl} -sS -i http://127.0.0.1:{http}/")
        head, _, body = page.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 200 OK\r\n")
        assert "content-type: text/html; charset=utf-8" in head.lower()
        check_page(body)

        # WebSocket: Node's ws gets update 1 at once, then the echo of what
        # it sent (each of its messages goes out once something came back).
        session = {
            "url": f"ws://127.0.0.1:{http}/updates",
            "messages": [{"text": "hi"}, {"text": "again"}, {"text": "more"}],
        }
        report_ws = await run_node_ws(tmp_path, session)
        texts = [message["text"] for message in report_ws["received"]]
        assert texts[0].startswith("update 1: ")
        # Unless a stall of a second let update 2 in first: the echo is next.
        assert "echo: 'hi'" in texts[1:]
        assert report_ws["close"] == {"code": 1000, "reason": ""}
        assert report_ws["errors"] == []

        # HTTPS and wss: curl and Node trust the development certificate.
        hello = await run_shell(f"{curl} -sS --cacert {cert} https://localhost:{https}/x")
        assert hello == "Hello World\n"
        session = {"url": f"wss://localhost:{https}/updates", "messages": [{"text": "hi"}]}
        report_wss = await run_node_ws(tmp_path, session, NODE_EXTRA_CA_CERTS=str(cert))
        assert report_wss["received"][0]["text"].startswith("update 1: ")
        assert report_wss["close"] == {"code": 1000, "reason": ""}
        assert report_wss["errors"] == []

        log = await running_demo.stop()
    assert logged(log, rf"udp   127\.0\.0\.1:{report_udp['port']} got '深入浅出Node\.js'")
    assert logged(log, r"http  127\.0\.0\.1:\d+ GET /any/path 200")
    assert logged(log, r"https 127\.0\.0\.1:\d+ GET /x 200")
    assert logged(log, r"wss   127\.0\.0\.1:\d+ closed 1000 \(normal closure\)")
    # Made once, in the private cache, then reused by the next run.
    made = (await trio.Path(cert).stat()).st_mtime_ns
    again, _ = await trio.to_thread.run_sync(dev_certificate)
    assert again == cert
    assert (await trio.Path(cert).stat()).st_mtime_ns == made


class PageChecker(html.parser.HTMLParser):
    """Collects what :func:`check_page` looks at."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.labels: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "label" and found.get("for"):
            self.labels.append(str(found["for"]))
        for name in ("src", "href", "action"):
            if name in found:
                self.links.append(str(found[name]))


def check_page(body: str) -> None:
    """The page: a language, a title, the elements the browser test uses,
    a label for the input, unique ids, and no external resource."""
    assert body.startswith('<!doctype html>\n<html lang="en">')
    checker = PageChecker()
    checker.feed(body)
    assert len(checker.ids) == len(set(checker.ids))
    assert {"status", "echo-form", "message", "send", "echo", "updates"} <= set(checker.ids)
    assert checker.labels == ["message"]
    assert checker.links == ["data:,"]  # the empty icon: nothing is fetched
    assert "title" in checker.tags
    assert 'location.host + "/updates"' in body


async def wait_until_refused(port: int) -> None:
    """Poll connecting to the port until the connection is refused."""
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return
        await stream.aclose()
        await trio.sleep(0.01)


@pytest.mark.node
async def test_demo_ctrl_c_closes_websockets_with_1001_and_finishes_requests(
    node_ws: None, tmp_path: Path
) -> None:
    """Ctrl-C with a client of each kind connected: the WebSocket client
    (Node's ws) gets close 1001, a request whose body is still on its way gets
    its whole response (with ``Connection: close``), an idle TCP client gets
    its end of stream; then the demo exits 0."""
    async with demo("--no-tls") as running_demo, trio.open_nursery() as nursery:
        output = running_demo.output
        http = running_demo.port("HTTP")
        reports: list[dict[str, Any]] = []

        async def node_client() -> None:
            session = {"url": f"ws://127.0.0.1:{http}/updates", "then": "wait"}
            reports.append(await run_node_ws(tmp_path, session))

        nursery.start_soon(node_client)
        with trio.fail_after(STEP_TIMEOUT):
            await output.wait_for(r"^ws    127\.0\.0\.1:\d+ open /updates$")
            idle = await trionet.connect_tcp("127.0.0.1", running_demo.port("TCP"))
            assert await receive_exactly(idle, len(WELCOME)) == WELCOME
            await output.wait_for(r"^tcp   127\.0\.0\.1:\d+ connected$")
            # A request in flight: its head is in, and the server, reading
            # its body, asked for it (100 Continue) when Ctrl-C comes.
            conn = await trionet.connect_tcp("127.0.0.1", http)
            await conn.send(
                request("POST", "/upload", "Expect: 100-continue\r\nContent-Length: 5\r\n")
            )
            raw = await receive_exactly(conn, len(CONTINUE))
            assert raw == CONTINUE
            running_demo.process.send_signal(signal.SIGINT)
            await output.wait_for(r"^SIGINT: shutting down\.\.\.$")
            # Once the HTTP port refuses connections, the server has stopped
            # accepting, and so has asked the request in flight to finish.
            await wait_until_refused(http)
            await conn.send(b"hello")
            raw += await read_until_closed(conn)
            await conn.aclose()
            assert [event async for event in idle] == [trionet.EndOfStream()]
            await idle.aclose()
            await output.wait_for(r"^stopped\.$")
            assert await output.read_rest() == []
            assert await running_demo.process.wait() == 0
    (reply,) = parse(raw, [("POST", "/upload")])
    assert reply.informational == [100]
    assert (reply.status, reply.body) == (200, b"Hello World\n")
    assert reply.headers["connection"] == "close"
    (report,) = reports
    assert report["close"] == {"code": 1001, "reason": "server shutting down"}
    assert report["received"][0]["text"].startswith("update 1: ")
    assert report["errors"] == []
    log = running_demo.log()
    assert logged(log, r"ws    127\.0\.0\.1:\d+ closed 1001 \(going away\)")
    assert logged(log, r"tcp   127\.0\.0\.1:\d+ closed \(shutting down\)")
    assert logged(log, r"http  127\.0\.0\.1:\d+ POST /upload 200")


async def test_demo_stops_on_sigterm_and_no_tls_makes_no_certificate(
    private_cache: Path,
) -> None:
    async with demo("--no-tls") as running_demo:
        assert "HTTPS" not in running_demo.rows
        assert set(running_demo.rows) == {"TCP", "UDP", "HTTP", "WS", "page"}
        assert await running_demo.stop(signal.SIGTERM) == ["SIGTERM: shutting down...", "stopped."]
    assert not await trio.Path(private_cache).exists()


@pytest.mark.parametrize("service", SERVICES, ids=[service.kind for service in SERVICES])
async def test_demo_port_in_use_is_one_line_naming_the_port_and_the_flag(
    service: Service,
) -> None:
    kind = socket.SOCK_DGRAM if service.kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            busy.listen()
        port = busy.getsockname()[1]
        result = await run_cli("demo", *every_port_flag_zero(), service.flag, str(port))
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr == (
        f"trionet demo: cannot start the {service.name}: address already in use:"
        f" 127.0.0.1:{port}; choose another port with {service.flag} PORT\n"
    )
    assert "trionet demo is running" not in result.stdout.decode()


# -- trionet demo --workers -----------------------------------------------------------


async def seen(output: OutputReader, pattern: str) -> re.Match[str]:
    """The first line read so far that matches ``pattern`` (``re.search``),
    or else the next one read that does."""
    for line in output.lines:
        if match := re.search(pattern, line):
            return match
    return await output.wait_for(pattern)


async def http_hello(port: int) -> bytes:
    """``GET /hello`` on a new connection; the body of a 200."""
    async with await trionet.connect_tcp("127.0.0.1", port) as conn:
        await conn.send(request("GET", "/hello", "Connection: close\r\n"))
        raw = await read_until_closed(conn)
    (reply,) = parse(raw, [("GET", "/hello")])
    assert reply.status == 200
    return reply.body


async def test_demo_with_workers_shares_every_port_and_stops_every_worker(
    private_cache: Path,
) -> None:
    """``--workers 2`` with every port 0: the supervisor picks each port once
    and both workers serve it; the banner, from worker 0, shows the ports
    picked; each log line names its worker; Ctrl-C stops every worker
    gracefully and the demo exits 0, having said ``stopped.`` once."""
    async with demo("--workers", "2") as running_demo:
        output = running_demo.output
        with trio.fail_after(STARTUP_TIMEOUT):
            await seen(output, r"^workers: 2 workers ready$")
        ready = (
            re.fullmatch(r"workers: worker (\d+) \(pid (\d+)\) ready", x) for x in output.lines
        )
        pids = {int(match.group(1)): int(match.group(2)) for match in ready if match}
        assert sorted(pids) == [0, 1]
        assert running_demo.process.pid not in pids.values()
        tcp, udp, http, https = (
            running_demo.port(label) for label in ("TCP", "UDP", "HTTP", "HTTPS")
        )
        assert 0 not in (tcp, udp, http, https)
        with trio.fail_after(STEP_TIMEOUT):
            # TCP: the welcome, 你好, and the end.
            async with await trionet.connect_tcp("127.0.0.1", tcp) as conn:
                assert await receive_exactly(conn, len(WELCOME)) == WELCOME
                await conn.send(b"hello")
                assert await receive_exactly(conn, len(GREETING)) == GREETING
                await conn.send_eof()
                assert [event async for event in conn] == [trionet.EndOfStream()]
            # UDP: the echo, from the port the banner shows.
            async with trionet.open_udp_socket("127.0.0.1") as sock:
                await sock.send("深入浅出Node.js".encode(), ("127.0.0.1", udp))
                dgram = await anext(sock)
            assert dgram == trionet.Datagram("深入浅出Node.js".encode(), ("127.0.0.1", udp))
            # WebSocket: update 1 at once, then the echo of what was sent.
            async with trionet.websocket.connect(f"ws://127.0.0.1:{http}/updates") as ws:
                first = await anext(ws)
                assert str(first.data).startswith("update 1: ")
                await ws.send("hi")
                while (await anext(ws)).data != "echo: 'hi'":
                    pass
            # HTTPS: the development certificate the supervisor made, once.
            cert = private_cache / "trionet" / "dev-cert" / "cert.pem"
            context = ssl.create_default_context(cafile=str(cert))
            async with trionet.http.Client(ssl_context=context, trust_env=False) as client:
                response = await client.get(f"https://localhost:{https}/hello")
                assert (response.status, await response.read()) == (200, b"Hello World\n")

        # HTTP: both workers answer on the one port.
        handled: set[int] = set()

        async def read_handlers() -> None:
            while len(handled) < 2:
                match = await output.wait_for(r"^http  \S+ GET /hello 200 \[worker (\d+)\]$")
                handled.add(int(match.group(1)))

        async def ask() -> None:
            while len(handled) < 2:
                assert await http_hello(http) == b"Hello World\n"

        with trio.fail_after(STARTUP_TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_handlers)
                for _ in range(4):
                    nursery.start_soon(ask)
        assert handled == {0, 1}

        with trio.fail_after(STEP_TIMEOUT + 10):
            # Ctrl-C in a terminal: SIGINT to every process of the group.
            os.killpg(running_demo.process.pid, signal.SIGINT)
            await output.wait_for(r"^SIGINT: stopping the workers \(again to kill them at once\)$")
            await output.wait_for(r"^stopped\.$")
            assert await output.read_rest() == []
            assert await running_demo.process.wait() == 0
        # No worker outlived the demo (checked before the end of the block,
        # which kills whatever is left of its process group).
        assert [pid for pid in pids.values() if not gone(pid)] == []
        log = running_demo.log()
    every_line = running_demo.output.lines
    assert sum(line.startswith("trionet demo is running") for line in every_line) == 1
    assert every_line.count("stopped.") == 1
    # Every line says which worker: the ones this test caused, from the
    # workers that were ready.
    assert logged(log, r"tcp   127\.0\.0\.1:\d+ connected \[worker [01]\]")
    assert logged(log, r"tcp   127\.0\.0\.1:\d+ ended: 连接断开 \[worker [01]\]")
    assert logged(log, r"udp   127\.0\.0\.1:\d+ got '深入浅出Node\.js' \[worker [01]\]")
    assert logged(log, r"ws    127\.0\.0\.1:\d+ open /updates \[worker [01]\]")
    assert logged(log, r"https 127\.0\.0\.1:\d+ GET /hello 200 \[worker [01]\]")


async def test_demo_with_workers_stops_on_sigterm(private_cache: Path) -> None:
    async with demo("--workers", "1", "--no-tls") as running_demo:
        output = running_demo.output
        with trio.fail_after(STARTUP_TIMEOUT):
            match = await seen(output, r"^workers: worker 0 \(pid (\d+)\) ready$")
            await seen(output, r"^workers: 1 workers ready$")
        assert await http_hello(running_demo.port("HTTP")) == b"Hello World\n"
        with trio.fail_after(STEP_TIMEOUT + 10):
            running_demo.process.send_signal(signal.SIGTERM)
            await output.wait_for(r"^SIGTERM: stopping the workers")
            await output.wait_for(r"^stopped\.$")
            assert await output.read_rest() == []
            assert await running_demo.process.wait() == 0
        assert gone(int(match.group(1)))
    assert not await trio.Path(private_cache).exists()  # --no-tls: no certificate


@pytest.mark.parametrize("service", SERVICES, ids=[service.kind for service in SERVICES])
async def test_demo_with_workers_port_in_use_is_one_line_too(service: Service) -> None:
    kind = socket.SOCK_DGRAM if service.kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            busy.listen()
        port = busy.getsockname()[1]
        flags = [*every_port_flag_zero(), "--workers", "2", service.flag, str(port)]
        result = await run_cli("demo", *flags)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    # The supervisor says which transport: udp before a UDP address.
    where = f"udp 127.0.0.1:{port}" if service.kind == "udp" else f"127.0.0.1:{port}"
    assert stderr == (
        f"trionet demo: cannot start the {service.name}: address already in use:"
        f" {where}; choose another port with {service.flag} PORT\n"
    )
    assert result.stdout.decode() == ""  # no banner, no worker started


async def test_demo_with_workers_refuses_two_services_on_one_port() -> None:
    """Two services asked for one port: what one process would say (the
    second finds the port in use), said before any port is bound."""
    with socket.socket() as holder:
        # A port of ours (bound, not listening), so that the test races
        # nobody: the refusal comes before the demo binds anything.
        holder.bind(("127.0.0.1", 0))
        port = str(holder.getsockname()[1])
        flags = ["--no-tls", "--udp-port", "0", "--tcp-port", port, "--http-port", port]
        result = await run_cli("demo", *flags, "--workers", "2")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "trionet demo: cannot start the HTTP and WebSocket server: address already in use:"
        f" 127.0.0.1:{port}; choose another port with --http-port PORT\n"
    )
    assert result.stdout.decode() == ""


async def test_demo_workers_must_be_a_positive_number() -> None:
    result = await run_cli("demo", "--workers", "0")
    assert result.returncode == 2
    assert "a number of workers is at least 1, not 0" in result.stderr.decode()


# -- the docs show what the demo prints ----------------------------------------------


def demo_docs() -> str:
    text = (REPO / "docs" / "cli.rst").read_text(encoding="utf-8")
    return text[text.index("``trionet demo``\n---") : text.index("``trionet get``\n---")]


def code_block_after(text: str, first_line: str) -> list[str]:
    """The lines of the indented block whose first line is ``first_line``."""
    lines: list[str] = []
    for line in text[text.index(first_line) :].splitlines():
        if line and not line.startswith("   "):
            break
        lines.append(line[3:])
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_docs_show_the_banner_as_printed() -> None:
    shown = code_block_after(demo_docs(), "   $ uv run trionet demo\n")
    defaults = {service.kind: ("127.0.0.1", service.default_port) for service in SERVICES}
    cert = Path("/home/you/.cache/trionet/dev-cert/cert.pem")
    assert shown == [
        "$ uv run trionet demo",
        *banner("127.0.0.1", defaults, cert, "uv run trionet"),
    ]


def test_docs_show_log_lines_as_printed() -> None:
    shown = code_block_after(demo_docs(), "   tcp   ")
    assert len(shown) > 10
    for line in shown:
        assert LOG_LINE.fullmatch(line), line
