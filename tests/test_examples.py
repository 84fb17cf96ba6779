"""The programs under ``examples/``, each run as a subprocess and checked
against a real peer: Node's ``net`` for the servers, a trionet server for the
client."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import trionet
import trionet.http
from tests._node import NODE_TIMEOUT, node_executable, run_node
from tests._process import (
    EXAMPLES,
    STARTUP_TIMEOUT,
    child_env,
    read_port,
    refusing_port,
    running,
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
    async with running(example("tcp_welcome.py", 0)) as (_, output):
        port = await read_port(output, r"^server bound on 127\.0\.0\.1:(\d+)$")
        # No retry: once 'server bound' is printed, the server must accept.
        report = await run_node("client.js", port, "welcome")
        with trio.fail_after(10):
            await output.wait_for(r"^连接断开$")
    assert output.lines == [f"server bound on 127.0.0.1:{port}", "连接断开"]
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
    async with running(example("tcp_echo.py", 0)) as (_, output):
        port = await read_port(output, r"^TCP echo on 127\.0\.0\.1:(\d+)$")
        report = await run_node("client.js", port, "echo", payload_file)
    # Reported at Node's 'end': every byte came back, then the server closed.
    assert report == {
        "sent_sha256": digest,
        "sent_length": len(payload),
        "received_sha256": digest,
        "received_length": len(payload),
    }


NODE_SEED_DGRAM_CLIENT = """
var dgram = require('dgram');
var message = Buffer.from("深入浅出Node.js");
var client = dgram.createSocket("udp4");
var port = Number(process.argv[1]);
client.send(message, 0, message.length, port, "127.0.0.1", function (err, bytes) {
  if (err) { console.error(err); process.exitCode = 1; }
  client.close();
});
"""


@pytest.mark.node
@pytest.mark.usefixtures("node")
async def test_udp_server_with_the_seeds_node_client() -> None:
    async with running(example("udp_server.py", 0)) as (_, output):
        port = await read_port(output, r"^server listening 127\.0\.0\.1:(\d+)$")
        with trio.fail_after(NODE_TIMEOUT):
            result = await trio.run_process(
                [node_executable(), "-e", NODE_SEED_DGRAM_CLIENT, str(port)], check=False
            )
            assert result.returncode == 0
            match = await output.wait_for(r"^server got: ")
    assert match.string.startswith("server got: 深入浅出Node.js from 127.0.0.1:")


async def test_udp_client_sends_the_seed_message() -> None:
    async with trionet.open_udp_socket("127.0.0.1") as server:
        command = [*example("udp_client.py", server.port), "--host", "127.0.0.1"]
        with trio.fail_after(STARTUP_TIMEOUT):
            result = await trio.run_process(command, env=child_env(), check=False)
            dgram = await server.__anext__()
    assert result.returncode == 0
    assert dgram.data == "深入浅出Node.js".encode()


NODE_DGRAM_PINGER = """
const dgram = require('dgram');
const s = dgram.createSocket('udp4');
const port = Number(process.argv[1]);
const payloads = [Buffer.from('one'), Buffer.from('深入浅出Node.js'), Buffer.alloc(60000, 7)];
let i = 0;
const next = () => s.send(payloads[i], port, '127.0.0.1');
s.on('message', (msg) => {
  if (!msg.equals(payloads[i])) { console.error('mismatch at', i); process.exit(1); }
  if (++i === payloads.length) { console.log('ok'); s.close(); } else next();
});
next();
setTimeout(() => { console.error('timeout'); process.exit(1); }, 10000).unref();
"""


@pytest.mark.node
@pytest.mark.usefixtures("node")
async def test_udp_echo_with_node_dgram() -> None:
    async with running(example("udp_echo.py", 0)) as (_, output):
        # Printed once the socket is bound: a datagram sent now is echoed, no retry needed.
        port = await read_port(output, r"^UDP echo on 127\.0\.0\.1:(\d+)$")
        with trio.fail_after(STARTUP_TIMEOUT):
            async with trionet.open_udp_socket("127.0.0.1") as probe:
                await probe.send(b"probe", ("127.0.0.1", port))
                assert (await probe.__anext__()).data == b"probe"
        with trio.fail_after(NODE_TIMEOUT):
            result = await trio.run_process(
                [node_executable(), "-e", NODE_DGRAM_PINGER, str(port)],
                capture_stdout=True,
                check=False,
            )
    assert result.returncode == 0
    assert result.stdout.decode().strip() == "ok"


async def test_ws_server_and_ws_client_are_the_seeds_pair() -> None:
    async with running(example("ws_server.py", 0)) as (_, server_output):
        port = await read_port(
            server_output, r"^WebSocket updates at ws://127\.0\.0\.1:(\d+)/updates$"
        )
        client = [
            sys.executable,
            str(EXAMPLES / "ws_client.py"),
            "--url",
            f"ws://127.0.0.1:{port}/updates",
            "--count",
            "3",
        ]
        async with running(client) as (process, output):
            with trio.fail_after(STARTUP_TIMEOUT):
                lines = await output.read_rest()
                assert await process.wait() == 0
        # Plain HTTP on the same port.
        async with await trionet.connect_tcp("127.0.0.1", port) as conn:
            await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b"".join([event.data async for event in conn if isinstance(event, trionet.Data)])
    assert raw.endswith(b"\r\n\r\nHello World\n")
    assert lines[0] == "welcome to /updates"
    # The first update and the echo of the greeting, in either order.
    assert {line.split(":")[0] for line in lines[1:3]} == {"update 1", "echo"}
    assert "echo: 'hello from trionet'" in lines[1:3]
    assert lines[-1] == "closed with 1000"


async def test_ws_echo_echoes_and_its_limit_flag_bites() -> None:
    command = [*example("ws_echo.py", 0), "--max-message-size", "1000", "--parser", "h11"]
    async with running(command) as (_, output):
        port = await read_port(output, r"^WebSocket echo at ws://127\.0\.0\.1:(\d+)/$")
        with trio.fail_after(STARTUP_TIMEOUT):
            async with trionet.websocket.connect(f"ws://127.0.0.1:{port}/any/path") as ws:
                await ws.send("héllo")
                await ws.send(b"\x00" * 1000)
                assert await ws.receive() == trionet.websocket.TextMessage("héllo")
                assert await ws.receive() == trionet.websocket.BinaryMessage(b"\x00" * 1000)
                await ws.send(b"\x00" * 1001)
                with pytest.raises(trionet.websocket.WebSocketClosed) as info:
                    await ws.receive()
    assert info.value.code == 1009


@pytest.mark.parametrize("parser", ["h11", "httptools"])
async def test_http_get_fetches_from_the_seeds_http_server(parser: str) -> None:
    async with running([*example("http_hello.py", 0), "--parser", parser]) as (_, server_output):
        port = await read_port(server_output, r"^Server running at http://127\.0\.0\.1:(\d+)/$")
        client = [sys.executable, str(EXAMPLES / "http_get.py"), f"http://127.0.0.1:{port}/x"]
        async with running(client) as (process, output):
            with trio.fail_after(STARTUP_TIMEOUT):
                lines = await output.read_rest()
                assert await process.wait() == 0
    assert lines[0] == "STATUS: 200"
    assert lines[1].startswith("HEADERS: {")
    assert "'content-length': '12'" in lines[1]
    assert lines[2:] == ["Hello World"]


async def hello_requests_counted(flags: list[str], connections: int) -> list[str]:
    """Run ``http_hello.py --metrics-port 0`` with ``flags``, make one
    request on each of ``connections`` new connections, scrape; return the
    2xx lines of ``trionet_http_requests_total``."""
    command = [*example("http_hello.py", 0), "--metrics-port", "0", *flags]
    async with running(command, stderr=subprocess.STDOUT) as (_, output):
        port = await read_port(output, r"^Server running at http://127\.0\.0\.1:(\d+)/$")
        # With workers, printed by the supervisor once every worker is ready.
        metrics_port = await read_port(output, r"^Metrics at http://127\.0\.0\.1:(\d+)/metrics$")
        with trio.fail_after(STARTUP_TIMEOUT):
            for _ in range(connections):
                async with trionet.http.Client() as client:
                    assert (await client.get(f"http://127.0.0.1:{port}/")).status == 200
            async with trionet.http.Client() as client:
                scraped = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
                text = await scraped.text()
    return [
        line
        for line in text.splitlines()
        if line.startswith("trionet_http_requests_total{") and 'status="2xx"' in line
    ]


async def test_http_hello_serves_its_metrics_on_the_metrics_port() -> None:
    [count] = await hello_requests_counted([], 3)
    assert count.endswith(" 3.0")


async def test_http_hello_with_workers_serves_their_summed_metrics() -> None:
    # One series for the two workers' servers, with every request in it.
    [count] = await hello_requests_counted(["--workers", "2"], 6)
    assert count.endswith(" 6.0")


async def test_http_get_reports_a_refused_connection_in_one_line() -> None:
    with refusing_port() as port:
        client = [sys.executable, str(EXAMPLES / "http_get.py"), f"http://127.0.0.1:{port}/"]
        with trio.fail_after(STARTUP_TIMEOUT):
            result = await trio.run_process(
                client, capture_stdout=True, capture_stderr=True, check=False
            )
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"http_get: cannot connect to http://127.0.0.1:{port}: Connection refused"
    ]
