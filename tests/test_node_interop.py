"""Interop with Node's own ``net`` module as the peer, both directions:
Node clients against trionet servers, the trionet client against Node servers.
The Node scripts are in ``tests/node/``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import trio

import trionet
from tests._node import NODE_TIMEOUT, node_command, node_executable, parse_report, run_node
from tests._process import running

pytestmark = pytest.mark.node


@pytest.fixture(autouse=True)
def node() -> str:
    # Checked here, outside trio, so that pytest reports why a test skipped.
    return node_executable()


WELCOME = "欢迎光临《深入浅出Node.js》示例:\n"
FAREWELL = "再见\n"


# -- Node client -> trionet server --------------------------------------------


async def test_node_client_half_close(trionet_tcp_server) -> None:
    lines: list[bytes] = []
    events: list[trionet.StreamEvent] = []

    async def welcome(conn: trionet.TCPConnection) -> None:
        await conn.send(WELCOME)
        buffer = b""
        async for event in conn:
            events.append(event)
            match event:
                case trionet.Data(data):
                    buffer += data
                    while b"\n" in buffer:
                        line, _, buffer = buffer.partition(b"\n")
                        lines.append(line)
                        await conn.send("你好")
                case trionet.EndOfStream():
                    # Node ended its side; ours is still open for last words.
                    await conn.send(FAREWELL)

    server = await trionet_tcp_server(welcome)
    report = await run_node("client.js", server.port, "welcome")
    # The report is written at Node's 'end': the farewell sent after our
    # EndOfStream arrived before it.
    assert report == {"text": WELCOME + "你好" + FAREWELL, "state": "ended"}
    assert lines == [b"hello\r"]
    assert events[-1] == trionet.EndOfStream()
    assert all(isinstance(event, trionet.Data) for event in events[:-1])


async def test_node_client_echo_1mib(trionet_tcp_server, tmp_path: Path) -> None:
    payload = os.urandom(1 << 20)
    payload_file = tmp_path / "payload.bin"
    payload_file.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    server_side: list[tuple[str, int]] = []

    async def echo(conn: trionet.TCPConnection) -> None:
        received = hashlib.sha256()
        length = 0
        async for event in conn:
            if isinstance(event, trionet.Data):
                received.update(event.data)
                length += len(event.data)
                await conn.send(event.data)
        server_side.append((received.hexdigest(), length))

    server = await trionet_tcp_server(echo)
    report = await run_node("client.js", server.port, "echo", payload_file)
    assert server_side == [(digest, len(payload))]
    assert report == {
        "sent_sha256": digest,
        "sent_length": len(payload),
        "received_sha256": digest,
        "received_length": len(payload),
    }


# -- trionet client -> Node server --------------------------------------------


async def test_node_server_half_closes_first() -> None:
    async with running(node_command("server.js", "halfclose")) as (process, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            events: list[trionet.StreamEvent] = []
            text = b""
            async with await trionet.connect_tcp("127.0.0.1", port) as conn:
                async for event in conn:
                    events.append(event)
                    if isinstance(event, trionet.Data):
                        text += event.data
                        if text == b"hello from node\n":
                            await conn.send(b"ping\n")
                # Node half-closed; we can still send, and Node still reads.
                await conn.send("after end\n")
            report = parse_report(await output.readline(), "what it received")
            status = await process.wait()
    assert text == b"hello from node\npong\n"
    assert events[-1] == trionet.EndOfStream()
    assert report == {"received": "ping\nafter end\n"}
    assert status == 0


async def test_node_server_sends_1mib(tmp_path: Path) -> None:
    payload = os.urandom(1 << 20)
    payload_file = tmp_path / "payload.bin"
    payload_file.write_bytes(payload)
    async with running(node_command("server.js", "bulk", payload_file)) as (process, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            chunks: list[bytes] = []
            async with await trionet.connect_tcp("127.0.0.1", port) as conn:
                async for event in conn:
                    match event:
                        case trionet.Data(data):
                            chunks.append(data)
                        case trionet.EndOfStream():
                            chunks.append(b"<end>")
            report = parse_report(await output.readline(), "the end of the connection")
            status = await process.wait()
    assert chunks[-1] == b"<end>"
    received = b"".join(chunks[:-1])
    assert len(received) == len(payload)
    assert received == payload
    assert report == {"received": ""}
    assert status == 0


async def test_node_server_reset_raises_connection_reset() -> None:
    async with running(node_command("server.js", "reset")) as (process, output):
        with trio.fail_after(NODE_TIMEOUT):
            first = parse_report(await output.readline(), "its port")
            if "skip" in first:
                pytest.skip(first["skip"])
            async with await trionet.connect_tcp("127.0.0.1", first["port"]) as conn:
                await conn.send(b"reset me\n")
                events: list[trionet.StreamEvent] = []

                async def read_events() -> None:
                    async for event in conn:
                        events.append(event)

                with pytest.raises(trionet.ConnectionReset) as excinfo:
                    await read_events()
            assert parse_report(await output.readline(), "the reset") == {"reset": True}
            status = await process.wait()
    assert events == []
    assert isinstance(excinfo.value, trionet.ConnectionClosed)
    assert not isinstance(excinfo.value, OSError)
    assert "reset" in excinfo.value.reason.lower()
    assert status == 0


async def test_node_tls_client(trionet_tcp_server, trionet_tls, tmp_path: Path) -> None:
    events: list[trionet.StreamEvent] = []
    seen_tls: list[trionet.TLSInfo | None] = []

    async def pong(conn: trionet.TCPConnection) -> None:
        seen_tls.append(conn.tls)
        async for event in conn:
            events.append(event)
            if isinstance(event, trionet.Data):
                await conn.send("pong")

    server = await trionet_tcp_server(pong, ssl_context=trionet_tls.server_context)
    ca_file = tmp_path / "ca.pem"
    trionet_tls.ca.cert_pem.write_to_path(str(ca_file))
    report = await run_node("tls_client.js", server.port, ca_file)
    assert report["text"] == "pong"
    assert report["authorized"] is True
    assert report["protocol"] in ("TLSv1.2", "TLSv1.3")
    # Node's end() sends close_notify: a clean end, not a TLSError.
    assert events == [trionet.Data(b"ping"), trionet.EndOfStream()]
    [info] = seen_tls
    assert info is not None
    assert info.version == report["protocol"]


async def test_trionet_tls_client_against_node_tls_server(trionet_tls, tmp_path: Path) -> None:
    cert = trionet_tls.ca.issue_cert("localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    async with running(node_command("tls_server.js", cert_file, key_file)) as (process, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            conn = await trionet.connect_tcp(
                "127.0.0.1",
                port,
                ssl_context=trionet_tls.client_context,
                server_hostname="localhost",
            )
            async with conn:
                assert conn.tls is not None
                assert conn.tls.peer_certificate is not None
                await conn.send("ping")
                events = [event async for event in conn]
            report = parse_report(await output.readline(), "the end of the connection")
            status = await process.wait()
    # Node's end() is a close_notify: the loop ends cleanly.
    assert events[-1] == trionet.EndOfStream()
    assert b"".join(e.data for e in events if isinstance(e, trionet.Data)) == b"PING"
    assert report == {"received": "ping"}
    assert status == 0
