"""``trionet serve MODULE:APP`` as a user runs it: a real process serving
an application from ``--app-dir``, reached over loopback TCP, a Unix socket
and TLS, stopped with real signals; its workers; and its failures, each in
one line with its exit status."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

import trionet
import trionet.http
import trionet.websocket
from tests._http import read_until_closed
from tests._process import STARTUP_TIMEOUT, read_port, running
from tests.test_cli import trionet_command

APPS = Path(__file__).resolve().parent / "asgi_apps"
SERVING = r"^trionet serve: \S+ on https?://127\.0\.0\.1:(\d+) \(Ctrl-C to stop\)$"


def serve_command(app: str = "plain:app", *flags: str) -> list[str]:
    return [*trionet_command(), "serve", app, "--app-dir", str(APPS), "--port", "0", *flags]


async def get_json(url: str, **options: Any) -> dict[str, Any]:
    async with trionet.http.Client(**options) as client:
        response = await client.get(url)
        assert response.status == 200
        result: dict[str, Any] = json.loads(await response.read())
        return result


async def stop(process: trio.Process) -> int:
    process.send_signal(signal.SIGINT)
    with trio.fail_after(STARTUP_TIMEOUT):
        return await process.wait()


async def test_serve_runs_the_app_with_its_lifespan_until_ctrl_c() -> None:
    command = serve_command("plain:app", "--root-path", "/api")
    async with running(command, stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        with trio.fail_after(STARTUP_TIMEOUT):
            answer = await get_json(f"http://127.0.0.1:{port}/items")
            async with trionet.websocket.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send("hi")
                assert (await ws.receive()).data == "hi"
        assert await stop(process) == 0
    assert answer["state"] == {"started": True}
    assert (answer["root_path"], answer["path"]) == ("/api", "/api/items")
    assert not any("Traceback" in line for line in output.lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_request_in_flight_is_answered_before_a_graceful_exit(
    signum: signal.Signals,
) -> None:
    async with running(serve_command(), stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        with trio.fail_after(STARTUP_TIMEOUT):
            conn = await trionet.connect_tcp("127.0.0.1", port)
            async with conn:
                await conn.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                await output.wait_for(r"^slow request started$")
                process.send_signal(signum)
                raw = await read_until_closed(conn)
            assert await process.wait() == 0
            await output.wait_for(r"^lifespan shutdown complete$")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in head
    assert json.loads(body)["path"] == "/slow"


async def test_factory_and_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    command = [*serve_command("plain:create_app", "--factory", "--uds", str(path))]
    async with running(command, stderr=subprocess.STDOUT) as (process, output):
        with trio.fail_after(STARTUP_TIMEOUT):
            await output.wait_for(rf"^trionet serve: plain:create_app on http://{path}")
            stream = await trio.open_unix_socket(str(path))
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                raw = b""
                while chunk := await stream.receive_some():
                    raw += chunk
        assert raw.startswith(b"HTTP/1.1 200 ")
        answer = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert answer["client"] is None  # a Unix socket's peer has no address
        assert await stop(process) == 0
    assert not path.exists()  # its file removed on the way out


async def test_https_with_certfile_and_keyfile(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    flags = ["--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem")]
    async with running(serve_command("plain:app", *flags)) as (process, output):
        port = await read_port(output, SERVING)
        context = trionet.tls.client_context(cafile=str(tmp_path / "ca.pem"))
        with trio.fail_after(STARTUP_TIMEOUT):
            answer = await get_json(f"https://127.0.0.1:{port}/", ssl_context=context)
        assert await stop(process) == 0
    assert answer["scheme"] == "https"


async def test_workers_share_the_port() -> None:
    command = serve_command("plain:app", "--workers", "2")
    async with running(command, stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        pids = set()
        with trio.fail_after(STARTUP_TIMEOUT):
            while len(pids) < 2:  # new connections until both workers answered
                answer = await get_json(f"http://127.0.0.1:{port}/")
                assert answer["state"] == {"started": True}  # each worker's own lifespan
                pids.add(answer["pid"])
        assert process.pid not in pids
        assert await stop(process) == 0


@pytest.mark.parametrize(
    ("app", "flags", "status", "message"),
    [
        ("plain:missing", [], 1, "module 'plain' has no attribute 'missing'"),
        ("nowhere:app", [], 1, "no module named 'nowhere'"),
        ("plain:failing_startup", [], 3, "startup failed: the database is down"),
        ("plain:app", ["--certfile", "x.pem"], 2, "--certfile and --keyfile go together"),
    ],
)
async def test_failures_say_one_line(app: str, flags: list[str], status: int, message: str) -> None:
    with trio.fail_after(STARTUP_TIMEOUT):
        result = await trio.run_process(
            serve_command(app, *flags), capture_stdout=True, capture_stderr=True, check=False
        )
    assert result.returncode == status
    assert message in result.stderr.decode()
    assert b"Traceback" not in result.stderr


async def test_a_busy_port_is_one_line() -> None:
    async with running(serve_command()) as (process, output):
        port = await read_port(output, SERVING)
        command = [
            *trionet_command(),
            "serve",
            "plain:app",
            "--app-dir",
            str(APPS),
            "--port",
            str(port),
        ]
        with trio.fail_after(STARTUP_TIMEOUT):
            result = await trio.run_process(command, capture_stderr=True, check=False)
        assert await stop(process) == 0
    assert result.returncode == 1
    assert b"trionet serve: cannot listen: " in result.stderr
    assert b"Traceback" not in result.stderr


async def test_websocket_flags() -> None:
    flags = ["--ws-max-size", "10", "--ws-per-message-deflate", "false", "--ws-ping-interval", "0"]
    async with running(serve_command("plain:app", *flags)) as (process, output):
        port = await read_port(output, SERVING)
        with trio.fail_after(STARTUP_TIMEOUT):
            async with trionet.websocket.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                assert ws.response_headers.get("sec-websocket-extensions") is None
                await ws.send("0123456789")
                assert (await ws.receive()).data == "0123456789"
                await ws.send("0123456789a")
                with pytest.raises(trionet.websocket.WebSocketClosed) as closed:
                    await ws.receive()
        assert await stop(process) == 0
    assert closed.value.code == 1009
