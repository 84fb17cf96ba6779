"""The clients through an ``https://`` proxy (TLS to the proxy itself):
pproxy (from PyPI) listening as ``http+ssl``, with a certificate from the
test's authority; httpbin, trionet's HTTPS server and Node's ``ws`` behind
it. What pproxy prints of each connection shows the destination it was asked
for, so each test can tell the request went through it."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio

import trionet.http
import trionet.websocket
from tests._pproxy import StartProxy, proxy_certificate
from tests.test_cli import run_cli
from tests.test_ws_node import node_ws_server
from trionet.testing import LocalServer, TLSCertificates

BOUND = 20  # seconds: a hang fails the test instead of the run


async def tls_proxy(
    start: StartProxy, certificates: TLSCertificates, directory: Path, auth: str = ""
) -> int:
    """An HTTP proxy over TLS on loopback, its certificate for localhost and
    127.0.0.1 from ``certificates``' authority; its port."""
    certificate = proxy_certificate(certificates, directory)
    return (await start(f"http+ssl://127.0.0.1:0{auth}", certificate)).port


async def hello(request: trionet.http.Request) -> trionet.http.Response:
    tls = request.tls.version if request.tls is not None else "no TLS"
    return trionet.http.Response.text(f"{request.scheme} {request.target} {tls}")


async def test_http_and_https_origins_through_an_https_proxy(
    httpbin: int,
    pproxy_server: StartProxy,
    trionet_http_server: Any,
    trionet_tls: TLSCertificates,
    tmp_path: Path,
) -> None:
    certificate = proxy_certificate(trionet_tls, tmp_path)
    proxy = await pproxy_server("http+ssl://127.0.0.1:0", certificate)
    origin: LocalServer = await trionet_http_server(hello, ssl_context=trionet_tls.server_context)
    steps: list[tuple[str, dict[str, Any]]] = []
    async with trionet.http.Client(
        proxy=f"https://localhost:{proxy.port}",
        verify=trionet_tls.client_context,
        trace=lambda step, details: steps.append((step, dict(details))),
    ) as client:
        with trio.fail_after(BOUND):
            # Plain http: to the proxy over TLS, in absolute form.
            first = await client.get(f"http://localhost:{httpbin}/get?n=1")
            second = await client.get(f"http://localhost:{httpbin}/get?n=2")
            http_statistics = client.statistics()
            relayed_http = await proxy.relayed()  # pproxy prints a connection once
            # https: CONNECT over the proxy's TLS, the origin's TLS inside it.
            secure = await client.get(f"https://localhost:{origin.port}/secret")
            relayed_https = await proxy.relayed()
    assert json.loads(await first.read())["args"] == {"n": "1"}
    assert json.loads(await second.read())["url"] == f"http://localhost:{httpbin}/get?n=2"
    # One TLS connection to the proxy carried both http requests.
    assert http_statistics.connections_opened == 1
    assert relayed_http == f"localhost:{httpbin}"
    assert (await secure.text()).startswith("https /secret TLSv1.")
    assert relayed_https == f"localhost:{origin.port}"
    handshakes = [details for step, details in steps if step == "tls"]
    proxy_url = f"https://localhost:{proxy.port}"
    # The proxy's handshake for each connection, then the origin's.
    assert [details["proxy"] for details in handshakes] == [proxy_url, proxy_url, None]
    assert all(details["server_hostname"] == "localhost" for details in handshakes)
    assert all(details["verified"] for details in handshakes)
    tunnels = [details["tunnel"] for step, details in steps if step == "proxy"]
    assert tunnels == [f"localhost:{origin.port}"]


async def test_proxy_credentials_travel_inside_tls(
    httpbin: int,
    pproxy_server: StartProxy,
    trionet_http_server: Any,
    trionet_tls: TLSCertificates,
    tmp_path: Path,
) -> None:
    port = await tls_proxy(pproxy_server, trionet_tls, tmp_path, "#ann:s3cret")
    origin: LocalServer = await trionet_http_server(hello, ssl_context=trionet_tls.server_context)
    url = f"http://localhost:{httpbin}/get"
    secure_url = f"https://localhost:{origin.port}/inside"
    with trio.fail_after(BOUND):
        async with trionet.http.Client(
            proxy=f"https://localhost:{port}", verify=trionet_tls.client_context
        ) as client:
            refused = await client.get(url)
            with pytest.raises(trionet.http.ProxyError) as tunnel_refused:
                await client.get(secure_url)
        async with trionet.http.Client(
            proxy=f"https://ann:s3cret@localhost:{port}", verify=trionet_tls.client_context
        ) as client:
            answer = await client.get(url)
            secure = await client.get(secure_url)
    # The proxy's own answers, through its TLS: 407 to a request, and to
    # CONNECT (the tunnel refused).
    assert refused.status == 407
    assert tunnel_refused.value.status == 407
    assert answer.status == 200
    # The proxy takes the credentials off: the origin never sees them.
    assert "Proxy-Authorization" not in json.loads(await answer.read())["headers"]
    assert (await secure.text()).startswith("https /inside")


@pytest.mark.parametrize("names", [(), ("proxy.test",)], ids=["untrusted", "another-name"])
async def test_a_proxy_certificate_that_fails_verification(
    pproxy_server: StartProxy,
    trionet_tls: TLSCertificates,
    tmp_path: Path,
    names: tuple[str, ...],
) -> None:
    certificate = proxy_certificate(trionet_tls, tmp_path, *names)
    proxy = await pproxy_server("http+ssl://127.0.0.1:0", certificate)
    proxy_url = f"https://localhost:{proxy.port}"
    # Without the authority's trust (the system's store), or with it for a
    # certificate made out to another name: refused, naming the proxy.
    verify: ssl.SSLContext | bool = trionet_tls.client_context if names else True
    async with trionet.http.Client(proxy=proxy_url, verify=verify) as client:
        for url in ("http://localhost:9/", "https://localhost:9/"):
            with trio.fail_after(BOUND), pytest.raises(trionet.http.HTTPTLSError) as caught:
                await client.get(url)
            assert f"TLS with the proxy {proxy_url}" in str(caught.value)
            assert isinstance(caught.value, trionet.TLSError)
            assert client.statistics().connections == 0
    # Nothing was relayed: the proxy was never asked for a destination.
    assert not [line for line in proxy.output.lines if " -> " in line]


async def test_https_proxy_from_the_environment_and_its_default_port(
    httpbin: int,
    pproxy_server: StartProxy,
    trionet_tls: TLSCertificates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = await tls_proxy(pproxy_server, trionet_tls, tmp_path)
    monkeypatch.setenv("HTTP_PROXY", f"https://localhost:{port}")
    with trio.fail_after(BOUND):
        async with trionet.http.Client(verify=trionet_tls.client_context) as client:
            response = await client.get(f"http://localhost:{httpbin}/get?env=1")
    assert json.loads(await response.read())["args"] == {"env": "1"}
    # Without a port, an https:// proxy is on 443 (nothing listens there).
    async with trionet.http.Client(proxy="https://127.0.0.1", timeout=5) as client:
        with trio.fail_after(BOUND), pytest.raises(trionet.http.HTTPConnectError) as caught:
            await client.get("http://localhost:9/")
    assert "https://127.0.0.1:443" in str(caught.value)


async def test_trionet_get_through_an_https_proxy_with_its_trace(
    pproxy_server: StartProxy,
    trionet_http_server: Any,
    trionet_tls: TLSCertificates,
    tmp_path: Path,
) -> None:
    port = await tls_proxy(pproxy_server, trionet_tls, tmp_path)
    origin: LocalServer = await trionet_http_server(hello, ssl_context=trionet_tls.server_context)
    cafile = tmp_path / "ca.pem"
    trionet_tls.ca.cert_pem.write_to_path(str(cafile))
    result = await run_cli(
        "get",
        "--trace",
        "--cafile",
        str(cafile),
        "--proxy",
        f"https://localhost:{port}",
        f"https://localhost:{origin.port}/cli",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("https /cli TLSv1.")
    trace = result.stderr.decode()
    assert f"TLS handshake with the proxy https://localhost:{port}: TLSv1." in trace
    assert f"tunnel to localhost:{origin.port} through https://localhost:{port}" in trace
    assert "certificate verified for localhost" in trace


async def test_websocket_through_an_https_proxy(
    pproxy_server: StartProxy,
    trionet_websocket_server: Any,
    trionet_tls: TLSCertificates,
    tmp_path: Path,
) -> None:
    async def echo(ws: trionet.websocket.WebSocketConnection) -> None:
        async for message in ws:
            await ws.send(message.data)

    proxy = await pproxy_server("http+ssl://127.0.0.1:0", proxy_certificate(trionet_tls, tmp_path))
    through = f"https://localhost:{proxy.port}"
    server = await trionet_websocket_server(echo, ssl_context=trionet_tls.server_context)
    async with node_ws_server(tmp_path, 1) as (port, next_report):
        with trio.fail_after(BOUND):
            # ws:// to Node: ssl_context verifies the proxy alone.
            async with trionet.websocket.connect(
                f"ws://localhost:{port}/plain",
                proxy=through,
                ssl_context=trionet_tls.client_context,
            ) as ws:
                assert ws.tls is None
                await ws.send("to node")
                assert (await ws.receive()).data == "to node"
            report = await next_report()
            assert await proxy.relayed() == f"localhost:{port}"
    assert report["path"] == "/plain"
    with trio.fail_after(BOUND):
        # wss://: TLS with the server inside TLS with the proxy.
        async with trionet.websocket.connect(
            f"wss://localhost:{server.port}/", proxy=through, ssl_context=trionet_tls.client_context
        ) as ws:
            assert ws.tls is not None
            await ws.send("inside")
            assert (await ws.receive()).data == "inside"
        assert await proxy.relayed() == f"localhost:{server.port}"
    # The system's trust store knows nothing of the test's authority.
    with trio.fail_after(BOUND), pytest.raises(trionet.TLSError, match="the proxy"):
        async with trionet.websocket.connect(f"ws://localhost:{port}/", proxy=through):
            pass
