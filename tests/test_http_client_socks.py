"""The client through SOCKS proxies: pproxy (from PyPI) as the SOCKS5 and
SOCKS4 server, Twisted's SOCKS4 server for SOCKS4a (pproxy takes no names
over SOCKS4), httpbin and trionet's own HTTPS server as the origins. What
each proxy prints of each connection shows who resolved the name."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import trionet.http
from tests._pproxy import RunningProxy, StartProxy
from tests.test_cli import run_cli
from trionet.testing import LocalServer, TLSCertificates

BOUND = 20  # seconds: a hang fails the test instead of the run


async def get_json(client: trionet.http.Client, url: str) -> Any:
    response = await client.get(url)
    assert response.status == 200
    return json.loads(await response.read())


async def hello(request: trionet.http.Request) -> trionet.http.Response:
    return trionet.http.Response.text(f"{request.scheme} {request.path}")


@pytest.mark.parametrize(
    ("listen", "scheme", "resolved_by_proxy"),
    [
        ("socks5", "socks5h", True),
        ("socks5", "socks5", False),
        # pproxy's SOCKS4 takes an address only: socks4a (a name) goes
        # through Twisted's, below.
        ("socks4", "socks4", False),
    ],
)
async def test_http_through_socks(
    httpbin: int, pproxy_server: StartProxy, listen: str, scheme: str, resolved_by_proxy: bool
) -> None:
    proxy = await pproxy_server(f"{listen}://127.0.0.1:0")
    steps: list[str] = []
    async with trionet.http.Client(
        proxy=f"{scheme}://127.0.0.1:{proxy.port}", trace=lambda step, _: steps.append(step)
    ) as client:
        with trio.fail_after(BOUND):
            body = await get_json(client, f"http://localhost:{httpbin}/get?via=socks")
            again = await get_json(client, f"http://localhost:{httpbin}/get?n=2")
            statistics = client.statistics()
            asked_for = await proxy.relayed()
    # Origin-form through the tunnel, as to the origin itself.
    assert body["url"] == f"http://localhost:{httpbin}/get?via=socks"
    assert again["args"] == {"n": "2"}
    assert "proxy" in steps
    # One tunnel, kept alive for the second request.
    assert statistics.connections_opened == 1
    assert asked_for == (f"localhost:{httpbin}" if resolved_by_proxy else f"127.0.0.1:{httpbin}")


async def test_https_through_socks5h_end_to_end_tls(
    pproxy_server: StartProxy, trionet_http_server: Any, trionet_tls: TLSCertificates
) -> None:
    origin: LocalServer = await trionet_http_server(hello, ssl_context=trionet_tls.server_context)
    proxy = await pproxy_server("socks5://127.0.0.1:0")
    async with trionet.http.Client(
        proxy=f"socks5h://127.0.0.1:{proxy.port}", verify=trionet_tls.client_context
    ) as client:
        with trio.fail_after(BOUND):
            response = await client.get(f"https://localhost:{origin.port}/secret")
            assert await response.text() == "https /secret"
            assert await proxy.relayed() == f"localhost:{origin.port}"


@pytest.mark.parametrize(
    ("scheme", "user", "asked_for"),
    [("socks4a", "ann", "localhost"), ("socks4", "", "127.0.0.1")],
)
async def test_socks4a_sends_the_name_and_the_user_id(
    httpbin: int,
    twisted_socks4_server: RunningProxy,
    scheme: str,
    user: str,
    asked_for: str,
) -> None:
    proxy = twisted_socks4_server
    credentials = f"{user}@" if user else ""
    async with trionet.http.Client(
        proxy=f"{scheme}://{credentials}127.0.0.1:{proxy.port}"
    ) as client:
        with trio.fail_after(BOUND):
            body = await get_json(client, f"http://localhost:{httpbin}/get?via={scheme}")
            line = await proxy.output.wait_for(r"^socks4 (\S*) -> (\S+)$")
    assert body["args"] == {"via": scheme}
    # socks4a: the proxy resolved "localhost" itself; socks4: we did.
    assert line.groups() == (user, f"{asked_for}:{httpbin}")


async def test_https_through_socks4a_end_to_end_tls(
    twisted_socks4_server: RunningProxy,
    trionet_http_server: Any,
    trionet_tls: TLSCertificates,
) -> None:
    origin: LocalServer = await trionet_http_server(hello, ssl_context=trionet_tls.server_context)
    proxy = twisted_socks4_server
    async with trionet.http.Client(
        proxy=f"socks4a://127.0.0.1:{proxy.port}", verify=trionet_tls.client_context
    ) as client:
        with trio.fail_after(BOUND):
            response = await client.get(f"https://localhost:{origin.port}/four-a")
            assert await response.text() == "https /four-a"
            assert await proxy.relayed() == f"localhost:{origin.port}"


async def test_socks5_username_and_password(httpbin: int, pproxy_server: StartProxy) -> None:
    proxy = await pproxy_server("socks5://127.0.0.1:0#ann:s3cret")
    url = f"http://127.0.0.1:{httpbin}/get"
    wrong = f"socks5://ann:wrong@127.0.0.1:{proxy.port}"
    right = f"socks5://ann:s3cret@127.0.0.1:{proxy.port}"
    # The wrong one first: pproxy then trusts an address that authenticated.
    with trio.fail_after(BOUND):
        async with trionet.http.Client(proxy=wrong) as client:
            with pytest.raises(trionet.http.ProxyError) as refused:
                await client.get(url)
        async with trionet.http.Client(proxy=right) as client:
            assert (await client.get(url)).status == 200
    assert f"socks5://127.0.0.1:{proxy.port}" in str(refused.value)
    assert "wrong" not in str(refused.value)


async def test_all_proxy_from_the_environment_and_no_proxy(
    httpbin: int, pproxy_server: StartProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await pproxy_server("socks5://127.0.0.1:0")
    monkeypatch.setenv("ALL_PROXY", f"socks5h://127.0.0.1:{proxy.port}")
    with trio.fail_after(BOUND):
        async with trionet.http.Client() as client:
            await get_json(client, f"http://localhost:{httpbin}/get")
            assert await proxy.relayed() == f"localhost:{httpbin}"
        monkeypatch.setenv("NO_PROXY", "localhost")
        async with trionet.http.Client() as client:
            await get_json(client, f"http://localhost:{httpbin}/get")
    assert not [line for line in proxy.output.lines[2:] if " -> " in line]


async def test_a_proxy_that_cannot_reach_the_origin(pproxy_server: StartProxy) -> None:
    # pproxy grants the tunnel before it connects, then closes it: the client
    # sees a server that hung up (a proxy that answers "refused", 0x05, gives
    # a ProxyError: test_socks_protocol.py).
    proxy = await pproxy_server("socks5://127.0.0.1:0")
    async with trionet.http.Client(proxy=f"socks5h://127.0.0.1:{proxy.port}") as client:
        with trio.fail_after(BOUND), pytest.raises(trionet.http.ServerDisconnected):
            await client.get("http://127.0.0.1:9/")  # nothing listens on discard


async def test_trionet_get_through_socks_with_its_trace(
    httpbin: int, pproxy_server: StartProxy
) -> None:
    proxy = await pproxy_server("socks5://127.0.0.1:0")
    url = f"http://localhost:{httpbin}/get?cli=1"
    result = await run_cli("get", "--trace", "--proxy", f"socks5h://127.0.0.1:{proxy.port}", url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["args"] == {"cli": "1"}
    trace = result.stderr.decode()
    assert f"tunnel to localhost:{httpbin} through socks5h://127.0.0.1:{proxy.port}" in trace
