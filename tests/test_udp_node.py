"""UDP interop with Node's ``dgram`` as the real peer, both directions, over
IPv4 and IPv6 loopback: Node clients against ``serve_udp`` (plain and
connected mode), trionet clients against Node servers, a dual-stack trionet
socket answering Node's ``udp4`` and ``udp6`` clients at once, and ICMP "port
unreachable" from a Node server that went away.

Each Node peer is a small inline script (``node -e SCRIPT args``) that
prints JSON lines; every wait is bounded by ``NODE_TIMEOUT``."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio

import trionet
from tests._net import ipv6_loopback_available
from tests._node import NODE_TIMEOUT, node_executable, parse_report
from tests._process import running

pytestmark = pytest.mark.node

# Probed, not guessed: some containers have no IPv6 at all.
needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(socket.SOCK_DGRAM),
    reason="no IPv6 loopback on this machine (probed: cannot bind a UDP socket to ::1)",
)

# (loopback address, Node's socket type), as each parametrized test gets it.
FAMILIES = [
    pytest.param(("127.0.0.1", "udp4"), id="ipv4"),
    pytest.param(("::1", "udp6"), id="ipv6", marks=needs_ipv6),
]


def address_of(host: str, port: int) -> trionet.SocketAddress:
    """A sender's address as trionet reports it for a loopback ``host``."""
    return (host, port, 0, 0) if ":" in host else (host, port)


# A client: `node -e CLIENT type host port mode message...`. It sends the
# messages one at a time (the next once the previous one's reply is in), to
# host:port, or in mode "connected" with socket.connect(port, host) then
# send(msg). It reports its own port, Node's remoteAddress() when connected,
# and every reply with its sender.
NODE_CLIENT = """
const dgram = require('dgram');
const [type, host, port, mode, ...messages] = process.argv.slice(1);
const s = dgram.createSocket(type);
const replies = [];
const next = () => {
  const msg = Buffer.from(messages[replies.length]);
  if (mode === 'connected') s.send(msg); else s.send(msg, Number(port), host);
};
s.on('error', (err) => { console.error(err); process.exit(1); });
s.on('message', (msg, rinfo) => {
  replies.push({data: msg.toString(), from: [rinfo.address, rinfo.port]});
  if (replies.length < messages.length) return next();
  const remote = mode === 'connected' ? s.remoteAddress() : null;
  console.log(JSON.stringify({port: s.address().port, remote, replies}));
  s.close();
});
if (mode === 'connected') s.connect(Number(port), host, next); else s.bind(0, host, next);
"""

# An echo server: `node -e ECHO_SERVER type host port` (port 0: any). It
# reports {"port": ...} once bound, or {"error": code} if it cannot bind; the
# datagram "close" makes it close its socket and report {"closed": true}.
NODE_ECHO_SERVER = """
const dgram = require('dgram');
const [type, host, port] = process.argv.slice(1);
const s = dgram.createSocket(type);
s.on('error', (err) => { console.log(JSON.stringify({error: err.code})); process.exit(1); });
s.on('message', (msg, rinfo) => {
  if (msg.toString() === 'close') {
    s.close(() => console.log(JSON.stringify({closed: true})));
    return;
  }
  s.send(msg, rinfo.port, rinfo.address);
});
s.bind(Number(port), host, () => console.log(JSON.stringify({port: s.address().port})));
"""


@pytest.fixture
def node() -> str:
    # Checked here, outside trio, so that pytest reports why a test skipped.
    return node_executable()


async def run_client(node: str, *args: object) -> dict[str, Any]:
    """Run ``NODE_CLIENT`` with ``args`` to its end; return its report."""
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            [node, "-e", NODE_CLIENT, *map(str, args)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"the node client exited {result.returncode}: {stderr}"
    lines = result.stdout.decode("utf-8").splitlines()
    return parse_report(lines[-1] if lines else None, "its replies")


async def echo_recording(peer: trionet.UDPPeer, seen: list[trionet.SocketAddress]) -> None:
    seen.append(peer.remote_address)
    async for dgram in peer:
        await peer.send(dgram.data)


@pytest.mark.parametrize("family", FAMILIES)
async def test_node_client_against_serve_udp(
    node: str, nursery: trio.Nursery, family: tuple[str, str]
) -> None:
    host, kind = family
    seen: list[trionet.SocketAddress] = []

    async def handler(peer: trionet.UDPPeer) -> None:
        await echo_recording(peer, seen)

    server = await nursery.start(trionet.serve_udp, handler, 0, host)
    messages = ["hello", "深入浅出Node.js"]
    report = await run_client(node, kind, host, server.port, "unconnected", *messages)
    assert report["replies"] == [{"data": m, "from": [host, server.port]} for m in messages]
    # One session, keyed by Node's own address and port.
    assert seen == [address_of(host, report["port"])]


@pytest.mark.parametrize("family", FAMILIES)
async def test_node_connected_client_against_serve_udp(
    node: str, nursery: trio.Nursery, family: tuple[str, str]
) -> None:
    host, kind = family
    seen: list[trionet.SocketAddress] = []

    async def handler(peer: trionet.UDPPeer) -> None:
        await echo_recording(peer, seen)

    server = await nursery.start(trionet.serve_udp, handler, 0, host)
    report = await run_client(node, kind, host, server.port, "connected", "one", "two")
    # A connected Node socket drops datagrams from anyone but its peer, so the
    # replies arriving at all shows they came from the address Node connected to.
    assert report["replies"] == [{"data": m, "from": [host, server.port]} for m in ("one", "two")]
    assert report["remote"] == {
        "address": host,
        "family": "IPv6" if ":" in host else "IPv4",
        "port": server.port,
    }
    assert seen == [address_of(host, report["port"])]


@pytest.mark.parametrize("family", FAMILIES)
async def test_trionet_client_against_node_echo_server(node: str, family: tuple[str, str]) -> None:
    host, kind = family
    async with running([node, "-e", NODE_ECHO_SERVER, kind, host, "0"]) as (_, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            async with trionet.open_udp_socket(host) as sock:
                payloads = [b"one", "深入浅出Node.js".encode(), b"z" * 60000, b""]
                for payload in payloads:
                    await sock.send(payload, (host, port))
                    assert await sock.__anext__() == trionet.Datagram(
                        payload, address_of(host, port)
                    )
                stats = sock.statistics()
    assert (stats.datagrams_sent, stats.datagrams_received) == (4, 4)
    assert stats.bytes_received == sum(map(len, payloads))


@needs_ipv6
async def test_dual_stack_socket_answers_node_udp4_and_udp6_clients(node: str) -> None:
    seen: list[trionet.SocketAddress] = []
    reports: dict[str, dict[str, Any]] = {}
    async with trionet.open_udp_socket(None, 0) as sock:
        assert sock.local_address == ("::", sock.port, 0, 0)

        async def answer() -> None:
            # Each reply says which address trionet saw the request come from.
            async for dgram in sock:
                seen.append(dgram.address)
                await sock.send(f"{dgram.address[0]} {dgram.address[1]}", dgram.address)

        async def client(host: str, kind: str) -> None:
            reports[kind] = await run_client(node, kind, host, sock.port, "unconnected", "hi")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            async with trio.open_nursery() as clients:
                clients.start_soon(client, "127.0.0.1", "udp4")
                clients.start_soon(client, "::1", "udp6")
            nursery.cancel_scope.cancel()

    port4, port6 = reports["udp4"]["port"], reports["udp6"]["port"]
    # Plain IPv4, never ('::ffff:127.0.0.1', port, 0, 0).
    assert ("127.0.0.1", port4) in seen
    assert ("::1", port6, 0, 0) in seen
    assert len(seen) == 2
    # Each Node client got its reply, from the address it had sent to.
    assert reports["udp4"]["replies"] == [
        {"data": f"127.0.0.1 {port4}", "from": ["127.0.0.1", sock.port]}
    ]
    assert reports["udp6"]["replies"] == [{"data": f"::1 {port6}", "from": ["::1", sock.port]}]


@pytest.mark.parametrize("family", FAMILIES)
async def test_connected_trionet_socket_talks_to_node_only(
    node: str, family: tuple[str, str]
) -> None:
    host, kind = family
    async with running([node, "-e", NODE_ECHO_SERVER, kind, host, "0"]) as (_, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            async with (
                trionet.open_udp_socket(host) as sock,
                trionet.open_udp_socket(host) as stranger,
            ):
                await sock.connect(host, port)
                assert sock.remote_address == address_of(host, port)
                # Sent first, but a connected socket only hears from its peer.
                await stranger.send(b"not for you", (host, sock.port))
                await sock.send(b"hello node")
                assert await sock.__anext__() == trionet.Datagram(
                    b"hello node", address_of(host, port)
                )


@pytest.mark.parametrize("family", FAMILIES)
async def test_node_server_going_away_is_port_unreachable_then_back(
    node: str, family: tuple[str, str]
) -> None:
    host, kind = family
    async with running([node, "-e", NODE_ECHO_SERVER, kind, host, "0"]) as (first, output):
        with trio.fail_after(NODE_TIMEOUT):
            port = parse_report(await output.readline(), "its port")["port"]
            async with trionet.open_udp_socket(host) as sock:
                await sock.connect(host, port)
                await sock.send(b"before")
                assert (await sock.__anext__()).data == b"before"

                await sock.send(b"close")
                # Node reports once its socket is closed (libuv closes the fd
                # synchronously in uv_close): nothing listens on the port now.
                assert parse_report(await output.readline(), "closing") == {"closed": True}
                await first.wait()

                await sock.send(b"anyone?")
                with pytest.raises(trionet.PortUnreachable, match="port unreachable"):
                    await sock.__anext__()

                # A new Node server on the same port: the same socket works again.
                command = [node, "-e", NODE_ECHO_SERVER, kind, host, str(port)]
                async with running(command) as (_, second):
                    report = parse_report(await second.readline(), "its port")
                    assert report == {"port": port}, "someone else took the port meanwhile"
                    await sock.send(b"after")
                    assert await sock.__anext__() == trionet.Datagram(
                        b"after", address_of(host, port)
                    )
                assert sock.statistics().datagrams_received == 2
