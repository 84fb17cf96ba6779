"""The WebSocket client through proxies: pproxy (from PyPI) as the HTTP
(CONNECT) and SOCKS5 proxy, Twisted's SOCKS4 server for SOCKS4a, a Node
``ws`` server (and trionet's own, for wss://) behind it. The ``https://``
proxy is tested in test_http_client_https_proxy.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import trionet.http
import trionet.websocket
from tests._pproxy import RunningProxy, StartProxy
from tests.test_ws_node import node_ws_server
from trionet.testing import TLSCertificates

BOUND = 20  # seconds: a hang fails the test instead of the run


@pytest.mark.parametrize(
    ("listen", "scheme"), [("http", "http"), ("socks5", "socks5h"), ("socks5", "socks5")]
)
async def test_ws_to_node_through_a_proxy(
    tmp_path: Path, pproxy_server: StartProxy, listen: str, scheme: str
) -> None:
    proxy = await pproxy_server(f"{listen}://127.0.0.1:0")
    async with node_ws_server(tmp_path, 1) as (port, next_report):
        with trio.fail_after(BOUND):
            async with trionet.websocket.connect(
                f"ws://localhost:{port}/echo", proxy=f"{scheme}://127.0.0.1:{proxy.port}"
            ) as ws:
                await ws.send("through the proxy")
                assert (await ws.receive()).data == "through the proxy"
            report = await next_report()
            asked_for = await proxy.relayed()
    assert report["path"] == "/echo"
    resolved_here = scheme == "socks5"
    assert asked_for == (f"127.0.0.1:{port}" if resolved_here else f"localhost:{port}")


async def test_ws_to_node_through_socks4a(
    tmp_path: Path, twisted_socks4_server: RunningProxy
) -> None:
    proxy = twisted_socks4_server
    async with node_ws_server(tmp_path, 1) as (port, next_report):
        with trio.fail_after(BOUND):
            async with trionet.websocket.connect(
                f"ws://localhost:{port}/four-a", proxy=f"socks4a://127.0.0.1:{proxy.port}"
            ) as ws:
                await ws.send("by name")
                assert (await ws.receive()).data == "by name"
            report = await next_report()
            asked_for = await proxy.relayed()
    assert report["path"] == "/four-a"
    assert asked_for == f"localhost:{port}"  # the proxy resolved the name


async def test_wss_through_socks5h_and_the_environment(
    pproxy_server: StartProxy,
    trionet_websocket_server: Any,
    trionet_tls: TLSCertificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def echo(ws: trionet.websocket.WebSocketConnection) -> None:
        async for message in ws:
            await ws.send(message.data)

    server = await trionet_websocket_server(echo, ssl_context=trionet_tls.server_context)
    proxy = await pproxy_server("socks5://127.0.0.1:0")
    monkeypatch.setenv("HTTPS_PROXY", f"socks5h://127.0.0.1:{proxy.port}")
    url = f"wss://localhost:{server.port}/"
    with trio.fail_after(BOUND):
        # proxy=None (the default) connects directly, whatever the environment.
        async with trionet.websocket.connect(url, ssl_context=trionet_tls.client_context) as ws:
            await ws.send("direct")
            assert (await ws.receive()).data == "direct"
        async with trionet.websocket.connect(
            url, ssl_context=trionet_tls.client_context, proxy=True
        ) as ws:
            assert ws.tls is not None  # end to end with the server, inside the tunnel
            await ws.send("tunnelled")
            assert (await ws.receive()).data == "tunnelled"
        assert await proxy.relayed() == f"localhost:{server.port}"
    assert len([line for line in proxy.output.lines if " -> " in line]) == 1


async def test_an_unusable_proxy_is_explained() -> None:
    with pytest.raises(trionet.http.UnsupportedProxy, match="ftp://"):
        async with trionet.websocket.connect("ws://127.0.0.1:9/", proxy="ftp://127.0.0.1:21"):
            pass
