"""Testing code built on trionet with its pytest plugin: the fixtures start
real loopback servers and make TLS certificates, and in-memory connections
need no socket at all.

    uv run pytest examples/test_echo_servers.py

The plugin is registered by installing trionet; the only configuration is
pytest-trio's ``trio_mode = true`` (see ``pyproject.toml``).
"""

import trio

import trionet
from trionet.testing import TLSCertificates, memory_tcp_pair


async def echo(conn: trionet.TCPConnection) -> None:
    async for event in conn:
        if isinstance(event, trionet.Data):
            await conn.send(event.data)


async def test_echo(trionet_tcp_server) -> None:
    server = await trionet_tcp_server(echo)
    async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
        await conn.send(b"hi")
        assert await anext(conn) == trionet.Data(b"hi")


async def udp_echo(peer: trionet.UDPPeer) -> None:
    async for dgram in peer:
        await peer.send(dgram.data)


async def test_udp_echo(trionet_udp_server) -> None:
    server = await trionet_udp_server(udp_echo)
    async with await trionet.connect_udp("127.0.0.1", server.port) as sock:
        await sock.send(b"hi")
        assert (await anext(sock)).data == b"hi"


async def test_echo_over_tls(trionet_tcp_server, trionet_tls: TLSCertificates) -> None:
    server = await trionet_tcp_server(echo, ssl_context=trionet_tls.server_context)
    async with await trionet.connect_tcp(
        "127.0.0.1",
        server.port,
        ssl_context=trionet_tls.client_context,
        server_hostname=trionet_tls.hostname,
    ) as conn:
        assert conn.tls is not None
        await conn.send(b"hi")
        assert await anext(conn) == trionet.Data(b"hi")


async def test_idle_connection_times_out(autojump_clock: trio.testing.MockClock) -> None:
    client, server = memory_tcp_pair()
    server.set_timeout(30)
    start = trio.current_time()
    assert await anext(server) == trionet.Timeout()
    assert trio.current_time() - start == 30

    await client.send(b"ping")
    assert await anext(server) == trionet.Data(b"ping")
