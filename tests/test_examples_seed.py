"""Every seed example against its Node counterpart: each trionet program
under ``examples/`` talks to the Node.js program of the seed it replaces
(``tests/node/seed/*.js``, the book's code with the port as an argument), so
the pair is checked end to end against a peer we did not write.

The servers' other peers (Node's ``net`` and ``dgram`` clients, curl, a
browser) are in ``test_examples.py``, ``test_https_example.py`` and
``test_ws_browser.py``; here are the pairs those do not cover."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import trio
import trustme

from tests._node import NODE_TIMEOUT, node_command, node_executable, node_package
from tests._process import EXAMPLES, child_env, read_port, running

pytestmark = [pytest.mark.node, pytest.mark.usefixtures("node")]

WELCOME = "欢迎光临《深入浅出Node.js》示例:"


@pytest.fixture
def node() -> str:
    # Checked outside trio, so that pytest says why a test skipped (on CI,
    # CI=true, a missing node fails instead).
    return node_executable()


@pytest.fixture
def ws_package() -> None:
    # The `ws` package comes from `npm ci` (package-lock.json).
    node_package("ws")


def python_example(name: str, *args: object) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *map(str, args)]


async def run_to_end(command: list[str]) -> tuple[int, list[str], str]:
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False, env=child_env()
        )
    return (
        result.returncode,
        result.stdout.decode("utf-8").splitlines(),
        result.stderr.decode("utf-8", "replace"),
    )


async def test_tcp_client_against_the_seeds_node_server() -> None:
    async with running(node_command("seed/net_server.js", 0)) as (_, server):
        port = await read_port(server, r"^server bound on 127\.0\.0\.1:(\d+)$")
        status, lines, errors = await run_to_end(python_example("tcp_client.py", "--port", port))
        with trio.fail_after(NODE_TIMEOUT):
            await server.wait_for(r"^连接断开$")
    assert status == 0, errors
    assert lines[0] == "client connected"
    assert lines[-1] == "client disconnected"
    # The welcome and 你好 may come as one 'data' or two: both are printed.
    assert "".join(line for line in lines[1:-1] if line) == WELCOME + "你好"


async def test_udp_client_against_the_seeds_node_server() -> None:
    async with running(node_command("seed/dgram_server.js", 0)) as (process, server):
        port = await read_port(server, r"^server listening 127\.0\.0\.1:(\d+)$")
        status, _, errors = await run_to_end(
            python_example("udp_client.py", "--port", port, "--host", "127.0.0.1")
        )
        with trio.fail_after(NODE_TIMEOUT):
            match = await server.wait_for(r"^server got: ")
            assert await process.wait() == 0
    assert status == 0, errors
    assert re.fullmatch(r"server got: 深入浅出Node\.js from 127\.0\.0\.1:\d+", match.string)


async def test_http_get_against_the_seeds_node_server() -> None:
    async with running(node_command("seed/http_server.js", 0)) as (_, server):
        port = await read_port(server, r"^Server running at http://127\.0\.0\.1:(\d+)/$")
        status, lines, errors = await run_to_end(
            python_example("http_get.py", f"http://127.0.0.1:{port}/")
        )
    assert status == 0, errors
    assert lines[0] == "STATUS: 200"
    assert "'content-type': 'text/plain'" in lines[1]
    assert lines[2:] == ["Hello World"]


async def test_http_hello_answers_the_seeds_node_client() -> None:
    async with running(python_example("http_hello.py", "--port", 0)) as (_, server):
        port = await read_port(server, r"^Server running at http://127\.0\.0\.1:(\d+)/$")
        status, lines, errors = await run_to_end(node_command("seed/http_client.js", port))
    assert status == 0, errors
    assert lines[0] == "STATUS: 200"
    headers = json.loads(lines[1].removeprefix("HEADERS: "))
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "12"
    assert lines[2:] == ["BODY: Hello World"]


async def test_https_hello_answers_the_seeds_node_https_client(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    files = {name: tmp_path / name for name in ("ca.pem", "server.crt", "server.key")}
    ca.cert_pem.write_to_path(str(files["ca.pem"]))
    issued.cert_chain_pems[0].write_to_path(str(files["server.crt"]))
    issued.private_key_pem.write_to_path(str(files["server.key"]))
    command = python_example(
        "https_hello.py",
        "--port",
        0,
        "--cert",
        files["server.crt"],
        "--key",
        files["server.key"],
    )
    async with running(command) as (_, server):
        port = await read_port(server, r"^Server running at https://127\.0\.0\.1:(\d+)/$")
        status, lines, errors = await run_to_end(
            node_command("seed/http_client.js", port, files["ca.pem"])
        )
    assert status == 0, errors  # Node verified the certificate for localhost
    assert lines[0] == "STATUS: 200"
    assert lines[2:] == ["BODY: hello world"]


@pytest.mark.usefixtures("ws_package")
async def test_ws_server_with_the_seeds_node_client() -> None:
    async with running(python_example("ws_server.py", "--port", 0)) as (_, server):
        port = await read_port(server, r"^WebSocket updates at ws://127\.0\.0\.1:(\d+)/updates$")
        status, lines, errors = await run_to_end(
            node_command("seed/ws_client.js", f"ws://127.0.0.1:{port}/updates", 6)
        )
    assert status == 0, errors
    assert lines[0] == "welcome to /updates"
    # The server's updates and the echoes of Node's updates, interleaved.
    assert any(line.startswith("update 1: ") for line in lines[1:6])
    assert "echo: 'update from node 1'" in lines[1:6]
    assert lines[-1] == "closed 1000"


@pytest.mark.usefixtures("ws_package")
async def test_ws_client_against_a_node_ws_server() -> None:
    async with running(node_command("seed/ws_server.js")) as (process, server):
        port = await read_port(server, r"^listening (\d+)$")
        status, lines, errors = await run_to_end(
            python_example("ws_client.py", "--url", f"ws://127.0.0.1:{port}/updates", "--count", 4)
        )
        with trio.fail_after(NODE_TIMEOUT):
            await server.wait_for(r"^client closed 1000$")
            assert await process.wait() == 0
    assert status == 0, errors
    assert lines[0] == "welcome from node"
    assert "echo: hello from trionet" in lines[1:4]
    assert any(line.startswith("node update ") for line in lines[1:4])
    assert lines[-1] == "closed with 1000"
    assert "received hello from trionet" in server.lines
