"""The programs under ``examples/``, each run as a subprocess and checked
against a real peer: Node's ``net`` for the servers, a trionet server for the
client."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import trio

import trionet
from tests._node import NODE_TIMEOUT, node_executable, run_node
from tests._process import (
    EXAMPLES,
    STARTUP_TIMEOUT,
    child_env,
    free_port,
    running,
    wait_until_accepting,
)

WELCOME = "欢迎光临《深入浅出Node.js》示例:\n"


def example(name: str, port: int) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), "--port", str(port)]


@pytest.fixture
def node() -> str:
    # Checked here, outside trio, so that pytest reports why a test skipped.
    return node_executable()


@pytest.mark.node
@pytest.mark.usefixtures("node")
async def test_tcp_welcome_with_node_client() -> None:
    port = free_port()
    async with running(example("tcp_welcome.py", port)) as (_, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(r"^server bound$")
        # No retry: once 'server bound' is printed, the server must accept.
        report = await run_node("client.js", port, "welcome")
        with trio.fail_after(10):
            await output.wait_for(r"^连接断开$")
    assert output.lines == ["server bound", "连接断开"]
    # Node saw the welcome, the answer to its data, then the server's end
    # (the report is written at Node's 'end').
    assert report == {"text": WELCOME + "你好", "state": "ended"}


async def test_tcp_client_against_trionet_server(trionet_tcp_server) -> None:
    received: list[bytes] = []
    events: list[trionet.StreamEvent] = []

    async def welcome(conn: trionet.TCPConnection) -> None:
        await conn.send(WELCOME)
        async for event in conn:
            events.append(event)
            if isinstance(event, trionet.Data):
                received.append(event.data)
                await conn.send("你好")

    server = await trionet_tcp_server(welcome)
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            example("tcp_client.py", server.port),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=child_env(),
        )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr
    assert stderr == ""
    stdout = result.stdout.decode("utf-8")
    lines = stdout.splitlines()
    assert lines[0] == "client connected"
    assert lines[-1] == "client disconnected"
    # The welcome and 你好 may come as one Data event or two: both are printed.
    printed = "".join(line for line in lines[1:-1] if line)
    assert printed == WELCOME.rstrip("\n") + "你好"
    assert b"".join(received) == b"world!\r\n"
    assert events[-1] == trionet.EndOfStream()


@pytest.mark.node
@pytest.mark.usefixtures("node")
async def test_tcp_echo_with_node_client(tmp_path: Path) -> None:
    payload = os.urandom(1 << 20)
    payload_file = tmp_path / "payload.bin"
    payload_file.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    port = free_port()
    async with running(example("tcp_echo.py", port)) as (process, _):
        await wait_until_accepting(port, process)
        report = await run_node("client.js", port, "echo", payload_file)
    # Reported at Node's 'end': every byte came back, then the server closed.
    assert report == {
        "sent_sha256": digest,
        "sent_length": len(payload),
        "received_sha256": digest,
        "received_length": len(payload),
    }
