"""trionet servers behind real reverse proxies (nginx, HAProxy; see
``tests/_proxies.py``): the client the application sees is the one that
connected to the proxy, told by the proxy's ``X-Forwarded-For`` or PROXY
protocol header, and believed only from the proxies the server trusts.

The client connects from 127.0.0.5, another loopback address than the
proxy's 127.0.0.1, so that the two can be told apart.
"""

from __future__ import annotations

import re
import ssl
import struct
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trustme

import trionet
import trionet.http
import trionet.tls
import trionet.websocket
from tests._http import read_until_closed
from tests._process import child_env, read_port, running
from tests._proxies import deploy_config, haproxy, nginx
from tests._wait import wait_until

CLIENT = "127.0.0.5"
LOOPBACK = "127.0.0.1"


def _text(address: object) -> str:
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return repr(address)


async def whoami(request: trionet.http.Request) -> trionet.http.Response:
    proxy = request.proxy_header
    lines = [
        f"client={_text(request.client)}",
        f"scheme={request.scheme}",
        f"host={request.host}",
        f"peer={_text(request.remote_address)}",
        f"proxy={'-' if proxy is None else f'v{proxy.version}'}",
    ]
    return trionet.http.Response(200, body="\n".join(lines).encode())


def fields(body: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.decode().splitlines())


async def fetch(
    port: int,
    headers: str = "",
    *,
    local: str = CLIENT,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One GET over a connection from ``local``: the status and body."""
    request = f"GET / HTTP/1.1\r\nHost: app.test\r\n{headers}Connection: close\r\n\r\n"
    raw = b""
    with trio.fail_after(20):
        conn = await trionet.connect_tcp(
            LOOPBACK, port, local_address=local, ssl_context=context, server_hostname="localhost"
        )
        async with conn:
            await conn.send(request.encode())
            async for event in conn:
                if isinstance(event, trionet.Data):
                    raw += event.data
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return 0, b""
    return int(head.split()[1]), body


async def start_http(nursery: trio.Nursery, **options: object) -> trionet.Server:
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, whoami, 0, LOOPBACK, handler_errors="raise", **options)
    )
    return server


# -- nginx: HTTP proxying with X-Forwarded-For ------------------------------------


async def test_nginx_forwards_the_client_and_a_forged_hop_is_not_believed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start_http(nursery, forwarded_allow_ips="127.0.0.1")
    async with nginx(tmp_path, deploy_config("nginx-http.conf", server.port)) as front:
        # The client forges a hop; nginx appends the address it saw.
        status, body = await fetch(front, "X-Forwarded-For: 203.0.113.9\r\n")
    assert status == 200
    seen = fields(body)
    assert seen["client"] == f"{CLIENT}:0"
    assert seen["peer"].startswith("127.0.0.1:")  # nginx
    assert seen["scheme"] == "http"
    assert seen["host"] == "app.test"


async def test_forwarding_headers_from_an_untrusted_peer_change_nothing(
    nursery: trio.Nursery,
) -> None:
    server = await start_http(nursery, forwarded_allow_ips="127.0.0.1")
    status, body = await fetch(
        server.port,
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
        "Forwarded: for=203.0.113.9;proto=https;host=evil.test\r\n",
    )
    assert status == 200
    seen = fields(body)
    assert seen["client"].startswith(f"{CLIENT}:")
    assert seen["client"] != f"{CLIENT}:0"  # the socket's own port
    assert seen["scheme"] == "http"
    assert seen["host"] == "app.test"


async def test_by_default_nobody_is_believed(nursery: trio.Nursery) -> None:
    server = await start_http(nursery)
    _, body = await fetch(server.port, "X-Forwarded-For: 203.0.113.9\r\n", local=LOOPBACK)
    assert fields(body)["client"].startswith("127.0.0.1:")


async def test_nginx_passes_websocket_upgrades(nursery: trio.Nursery, tmp_path: Path) -> None:
    async def echo(ws: trionet.websocket.WebSocketConnection) -> None:
        await ws.send(f"client={_text(ws.client)} peer={_text(ws.remote_address)}")
        async for message in ws:
            await ws.send(message.data)

    server: trionet.Server = await nursery.start(
        partial(
            trionet.websocket.serve,
            echo,
            0,
            LOOPBACK,
            handler_errors="raise",
            forwarded_allow_ips="127.0.0.1",
        )
    )
    async with nginx(tmp_path, deploy_config("nginx-http.conf", server.port)) as front:
        with trio.fail_after(20):
            async with trionet.websocket.connect(
                f"ws://127.0.0.1:{front}/chat", headers={"x-forwarded-for": "198.51.100.7"}
            ) as ws:
                hello = await ws.receive()
                await ws.send("through nginx")
                echoed = await ws.receive()
    # The client (127.0.0.1) is trusted too, so the hop before it is the client.
    assert hello.data.startswith("client=198.51.100.7:0 peer=127.0.0.1:")
    assert echoed.data == "through nginx"


# -- PROXY protocol: nginx stream (v1) and HAProxy (v2) ---------------------------


async def test_nginx_stream_sends_proxy_v1_to_a_tcp_server(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def tell(conn: trionet.TCPConnection) -> None:
        header = conn.proxy_header
        assert header is not None
        await conn.send(
            f"{_text(conn.remote_address)} via {_text(conn.proxy_address)}"
            f" v{header.version} {header.family}".encode()
        )

    server: trionet.Server = await nursery.start(
        partial(trionet.serve_tcp, tell, 0, LOOPBACK, handler_errors="raise", proxy_protocol="v1")
    )
    async with nginx(
        tmp_path, deploy_config("nginx-stream.conf", server.port), stream=True
    ) as front:
        with trio.fail_after(20):
            conn = await trionet.connect_tcp(LOOPBACK, front, local_address=CLIENT)
            async with conn:
                said = b""
                async for event in conn:
                    if isinstance(event, trionet.Data):
                        said += event.data
    client, _, via, version, family = said.decode().split(" ")
    assert client.startswith(f"{CLIENT}:")
    assert via.startswith("127.0.0.1:")
    assert (version, family) == ("v1", "TCP4")


async def test_nginx_stream_proxy_v1_to_an_http_server(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start_http(nursery, proxy_protocol="auto")
    async with nginx(
        tmp_path, deploy_config("nginx-stream.conf", server.port), stream=True
    ) as front:
        status, body = await fetch(front)
    seen = fields(body)
    assert status == 200
    assert seen["client"].startswith(f"{CLIENT}:")
    assert seen["peer"] == seen["client"]
    assert seen["proxy"] == "v1"


async def test_haproxy_sends_proxy_v2(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start_http(nursery, proxy_protocol="v2")
    async with haproxy(tmp_path, deploy_config("haproxy.cfg", server.port)) as front:
        first = await fetch(front)
        second = await fetch(front)
    for status, body in (first, second):
        assert status == 200
        seen = fields(body)
        assert seen["client"].startswith(f"{CLIENT}:")
        assert seen["proxy"] == "v2"
    assert server.statistics().handshake_failures == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    folder = tmp_path_factory.mktemp("tls")
    chain, key = folder / "chain.pem", folder / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    return ca, chain, key


async def test_haproxy_tls_passthrough_with_proxy_v2(
    nursery: trio.Nursery, tmp_path: Path, certificate: tuple[trustme.CA, Path, Path]
) -> None:
    ca, chain, key = certificate
    context = trionet.tls.server_context(chain, key)
    server = await start_http(nursery, ssl_context=context, proxy_protocol="v2")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with haproxy(tmp_path, deploy_config("haproxy.cfg", server.port)) as front:
        status, body = await fetch(front, context=client_context)
    seen = fields(body)
    assert status == 200
    assert seen["client"].startswith(f"{CLIENT}:")
    assert seen["scheme"] == "https"


# -- the PROXY header's own rules, against the server directly ----------------------


def v2_header(source: tuple[str, int], destination: tuple[str, int], tlvs: bytes = b"") -> bytes:
    """A PROXY v2 header for TCP over IPv4, built by hand from the spec's
    layout (not with trionet's encoder)."""
    addresses = (
        bytes(map(int, source[0].split(".")))
        + bytes(map(int, destination[0].split(".")))
        + struct.pack("!HH", source[1], destination[1])
    )
    body = addresses + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


async def raw_exchange(port: int, data: bytes, *, local: str = LOOPBACK) -> bytes:
    with trio.fail_after(20):
        conn = await trionet.connect_tcp(LOOPBACK, port, local_address=local)
        async with conn:
            await conn.send(data)
            return await read_until_closed(conn)


REQUEST = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"


async def test_a_trusted_peer_without_a_header_is_closed_and_counted(
    nursery: trio.Nursery,
) -> None:
    server = await start_http(nursery, proxy_protocol="auto")
    assert await raw_exchange(server.port, REQUEST) == b""
    await wait_until(lambda: server.statistics().handshake_failures == 1)
    assert server.statistics().handler_errors == 0


async def test_an_untrusted_peer_is_served_as_if_the_option_were_off(
    nursery: trio.Nursery,
) -> None:
    server = await start_http(nursery, proxy_protocol="auto", proxy_allow_from="127.0.0.1")
    # Its own request: served, with its own address.
    _, body = await fetch(server.port)
    assert fields(body)["client"].startswith(f"{CLIENT}:")
    assert fields(body)["proxy"] == "-"
    # A PROXY line from it is not a header but a malformed request.
    spoof = b"PROXY TCP4 203.0.113.9 127.0.0.1 4444 80\r\n" + REQUEST
    assert (await raw_exchange(server.port, spoof, local=CLIENT)).startswith(b"HTTP/1.1 400 ")


async def test_a_hand_built_v2_header_names_the_client(nursery: trio.Nursery) -> None:
    server = await start_http(nursery, proxy_protocol="v2")
    header = v2_header(("203.0.113.9", 4444), ("192.0.2.1", 443))
    raw = await raw_exchange(server.port, header + REQUEST)
    _, _, body = raw.partition(b"\r\n\r\n")
    seen = fields(body)
    assert seen["client"] == "203.0.113.9:4444"
    assert seen["proxy"] == "v2"


async def test_max_proxy_header_size_bites(nursery: trio.Nursery) -> None:
    tlv = bytes([0x02]) + struct.pack("!H", 100) + b"a" * 100  # an authority TLV
    header = v2_header(("203.0.113.9", 4444), ("192.0.2.1", 443), tlv)
    small = await start_http(nursery, proxy_protocol="v2", max_proxy_header_size=64)
    assert await raw_exchange(small.port, header + REQUEST) == b""
    await wait_until(lambda: small.statistics().handshake_failures == 1)
    roomy = await start_http(nursery, proxy_protocol="v2")
    assert (await raw_exchange(roomy.port, header + REQUEST)).startswith(b"HTTP/1.1 200 ")


async def test_proxy_header_timeout_bites(nursery: trio.Nursery) -> None:
    server = await start_http(nursery, proxy_protocol="v2", proxy_header_timeout=0.05)
    with trio.fail_after(20):
        conn = await trionet.connect_tcp(LOOPBACK, server.port)
        async with conn:
            await conn.send(b"\r\n\r\n\x00")  # the start of a v2 signature, then silence
            events = [event async for event in conn]
    assert events == [trionet.EndOfStream()]
    await wait_until(lambda: server.statistics().handshake_failures == 1)


async def silent(conn: trionet.TCPConnection) -> None:
    await conn.aclose()


async def test_proxy_options_are_checked_before_binding() -> None:
    with pytest.raises(ValueError, match="proxy_protocol"):
        await trionet.serve_tcp(silent, 0, proxy_protocol="v3")
    with pytest.raises(ValueError, match=re.escape("10.0.0.0/33")):
        await trionet.http.serve(whoami, 0, proxy_protocol="v1", proxy_allow_from="10.0.0.0/33")
    with pytest.raises(ValueError, match="not an address"):
        await trionet.http.serve(whoami, 0, forwarded_allow_ips="not an address")
    with pytest.raises(ValueError, match="forwarded_header"):
        await trionet.http.serve(whoami, 0, forwarded_header="x-real-ip")
    with pytest.raises(ValueError, match="proxy_header_timeout"):
        await trionet.serve_tcp(silent, 0, proxy_header_timeout=-1)
    with pytest.raises(ValueError, match="max_proxy_header_size"):
        await trionet.serve_tcp(silent, 0, proxy_protocol="v2", max_proxy_header_size=8)


# -- the whoami example, behind HAProxy and nginx -------------------------------------


@pytest.mark.parametrize(
    ("proxy", "flags"),
    [
        ("haproxy", ["--proxy-protocol"]),
        ("nginx", ["--forwarded-allow-ips", "127.0.0.1,::1"]),
    ],
)
async def test_whoami_example_behind_a_proxy(tmp_path: Path, proxy: str, flags: list[str]) -> None:
    command = ["uv", "run", "--quiet", "python", "examples/whoami.py", "--port", "0", *flags]
    async with running(command, env=child_env()) as (_, output):
        port = await read_port(output, r"whoami at http://127\.0\.0\.1:(\d+)/")
        if proxy == "haproxy":
            front_door = haproxy(tmp_path, deploy_config("haproxy.cfg", port))
        else:
            front_door = nginx(tmp_path, deploy_config("nginx-http.conf", port))
        async with front_door as front:
            status, body = await fetch(front, "X-Forwarded-For: 203.0.113.9\r\n")
    text = body.decode()
    assert status == 200
    assert f"client: {CLIENT}:" in text
    assert "203.0.113.9" not in text
    assert ("proxy: TCP4" in text) == (proxy == "haproxy")
