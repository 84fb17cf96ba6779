"""The ``trionet`` command, run as a real process: ``--version``, help, and
``trionet demo`` serving the seed's welcome server until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import trionet
from tests._http import exchange, parse, read_until_closed, request
from tests._net import receive_exactly
from tests._process import STARTUP_TIMEOUT, child_env, running
from trionet._cli import build_parser
from trionet._demo import SERVICES
from trionet._devcert import dev_certificate

WELCOME = "欢迎光临《深入浅出Node.js》示例:\n".encode()
GREETING = "你好".encode()

# Seconds for a short CLI run (a cold Python start on a loaded machine).
RUN_TIMEOUT = 30.0
# Seconds for a step of a conversation with a running demo.
STEP_TIMEOUT = 10.0


def trionet_command() -> list[str]:
    """The installed ``trionet`` console script, next to this Python (the
    virtualenv's ``bin``); ``python -m trionet._cli`` where there is none."""
    script = Path(sys.executable).with_name("trionet")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "trionet._cli"]


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
    assert {"--host", "--tcp-port"} <= flags
    for action in demo_parser._actions:
        assert action.help, f"{action.option_strings} has no help text"
        for flag in action.option_strings:
            assert flag in help_text
    for service in SERVICES:
        assert str(service.default_port) in help_text  # the default is documented


async def test_demo_serves_welcome_and_stops_on_sigint() -> None:
    command = [*trionet_command(), "demo", *every_port_flag_zero()]
    async with running(command) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(r"^trionet demo is running")
            banner = await output.wait_for(r"^  TCP welcome server \(net\): 127\.0\.0\.1:(\d+)$")
            udp_banner = await output.wait_for(r"^  UDP server \(dgram\): 127\.0\.0\.1:(\d+)$")
        port = int(banner.group(1))
        udp_port = int(udp_banner.group(1))
        assert port != 0
        assert udp_port != 0

        with trio.fail_after(STEP_TIMEOUT):
            async with trionet.open_udp_socket("127.0.0.1") as client:
                await client.send("深入浅出Node.js", ("127.0.0.1", udp_port))
                line = await output.wait_for(r"^server got: ")
                assert line.string == f"server got: 深入浅出Node.js from 127.0.0.1:{client.port}"

        with trio.fail_after(STEP_TIMEOUT):
            async with await trionet.connect_tcp("127.0.0.1", port) as conn:
                assert await receive_exactly(conn, len(WELCOME)) == WELCOME
                await output.wait_for(r"^tcp: connection from 127\.0\.0\.1:\d+$")
                await conn.send(b"hello\n")
                assert await receive_exactly(conn, len(GREETING)) == GREETING
                await conn.send_eof()
                await output.wait_for(r"^连接断开$")
                # Then the demo closes its side too (allowHalfOpen: false).
                assert await anext(conn) == trionet.EndOfStream()

        # Ctrl-C with a client still connected: a graceful stop closes it.
        with trio.fail_after(STEP_TIMEOUT):
            async with await trionet.connect_tcp("127.0.0.1", port) as idle:
                assert await receive_exactly(idle, len(WELCOME)) == WELCOME
                await output.wait_for(r"^tcp: connection from")
                process.send_signal(signal.SIGINT)
                await output.wait_for(r"^SIGINT: shutting down")
                assert [event async for event in idle] == [trionet.EndOfStream()]
            await output.wait_for(r"^stopped\.$")
            rest = await output.read_rest()
            status = await process.wait()
    assert rest == []
    assert status == 0
    # The shutdown ended the idle client's loop, not a FIN from it: the demo
    # said goodbye only to the client that ended.
    assert output.lines.count("连接断开") == 1


async def test_demo_serves_http_and_https_with_a_development_certificate(
    private_cache: Path,
) -> None:
    command = [*trionet_command(), "demo", *every_port_flag_zero()]
    async with running(command) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            http = await output.wait_for(r"^  HTTP server \(http.*\): 127\.0\.0\.1:(\d+)$")
            https = await output.wait_for(r"^  HTTPS server \(.*\): 127\.0\.0\.1:(\d+)$")
            try_https = await output.wait_for(r"^    try: curl --cacert (\S+) https://")
        cert = Path(try_https.group(1))
        assert cert.is_relative_to(private_cache)
        with trio.fail_after(STEP_TIMEOUT):
            raw = await exchange(
                int(http.group(1)), request(target="/hello", headers="Connection: close\r\n")
            )
            assert parse(raw, [("GET", "/hello")])[0].body == b"Hello World\n"
            context = ssl.create_default_context(cafile=cert)
            async with await trionet.connect_tcp(
                "127.0.0.1", int(https.group(1)), ssl_context=context, server_hostname="127.0.0.1"
            ) as conn:
                await conn.send(request(target="/any", headers="Connection: close\r\n"))
                raw = await read_until_closed(conn)
            assert parse(raw, [("GET", "/any")])[0].body == b"Hello World\n"
            process.send_signal(signal.SIGINT)
            await output.wait_for(r"^stopped\.$")
            assert await process.wait() == 0
    # Made once, then reused by the next run.
    made = (await trio.Path(cert).stat()).st_mtime_ns
    again, _ = await trio.to_thread.run_sync(dev_certificate)
    assert again == cert
    assert (await trio.Path(cert).stat()).st_mtime_ns == made


async def test_demo_no_tls_makes_no_certificate(private_cache: Path) -> None:
    command = [*trionet_command(), "demo", *every_port_flag_zero(), "--no-tls"]
    async with running(command) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(r"^  HTTP server")
            process.send_signal(signal.SIGINT)
            await output.wait_for(r"^stopped\.$")
    assert "HTTPS" not in "\n".join(output.lines)
    assert not await trio.Path(private_cache).exists()


async def test_demo_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await run_cli("demo", *every_port_flag_zero(), "--tcp-port", str(port))
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "--tcp-port" in lines[0]
    assert "trionet demo is running" not in result.stdout.decode()


async def test_demo_pushes_updates_over_ws_and_wss_and_serves_the_page(
    private_cache: Path,
) -> None:
    command = [*trionet_command(), "demo", *every_port_flag_zero()]
    async with running(command) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            http = await output.wait_for(r"^  HTTP server \(http.*\): 127\.0\.0\.1:(\d+)$")
            https = await output.wait_for(r"^  HTTPS server \(.*\): 127\.0\.0\.1:(\d+)$")
            try_https = await output.wait_for(r"^    try: curl --cacert (\S+) https://")
        http_port, https_port = int(http.group(1)), int(https.group(1))
        with trio.fail_after(STEP_TIMEOUT):
            # The page connects back to /updates on whatever host served it.
            raw = await exchange(http_port, request(headers="Connection: close\r\n"))
            page = parse(raw, [("GET", "/")])[0]
            assert page.headers["content-type"].startswith("text/html")
            assert b'location.host + "/updates"' in page.body
            assert b"new WebSocket(url)" in page.body
            async with trionet.websocket.connect(f"ws://127.0.0.1:{http_port}/updates") as ws:
                first = await ws.receive()
                assert isinstance(first, trionet.websocket.TextMessage)
                assert first.data.startswith("update 1: ")
                await ws.send("hi")
                # Updates keep coming; the echo is among the next messages.
                seen = [(await ws.receive()).data for _ in range(2)]
                assert "echo: 'hi'" in seen
            assert ws.close_code == 1000
            await output.wait_for(r"^ws: 127\.0\.0\.1:\d+ closed \(1000\)$")
            context = ssl.create_default_context(cafile=try_https.group(1))
            url = f"wss://127.0.0.1:{https_port}/updates"
            async with trionet.websocket.connect(url, ssl_context=context) as wss:
                assert (await wss.receive()).data.startswith("update 1: ")
                assert wss.tls is not None
            process.send_signal(signal.SIGINT)
            await output.wait_for(r"^stopped\.$")
            assert await process.wait() == 0
