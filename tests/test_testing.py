"""The testing kit: the pytest plugin and its fixtures, as a user sees them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

USER_TESTS = textwrap.dedent(
    """
    import pytest
    import trio
    import trionet


    async def echo(conn):
        async for event in conn:
            if isinstance(event, trionet.Data):
                await conn.send(event.data)


    async def test_server_factory(trionet_tcp_server):
        server = await trionet_tcp_server(echo)
        assert server.addresses[0][0] == "127.0.0.1"
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            await conn.send(b"hi")
            assert await conn.__anext__() == trionet.Data(b"hi")


    async def udp_echo(peer):
        async for dgram in peer:
            await peer.send(dgram.data)


    async def test_udp_server_factory(trionet_udp_server):
        server = await trionet_udp_server(udp_echo)
        async with await trionet.connect_udp("127.0.0.1", server.port) as sock:
            await sock.send(b"hi")
            assert (await anext(sock)).data == b"hi"


    async def test_virtual_network_needs_no_fixture(autojump_clock):
        from trionet.testing import VirtualUDPNetwork

        net = VirtualUDPNetwork(seed=1, latency=5)
        async with net.open_udp_socket() as a, net.open_udp_socket() as b:
            await a.send(b"slow", ("127.0.0.1", b.port))
            assert (await anext(b)).data == b"slow"
            assert trio.current_time() == 5


    async def test_tls_fixture(trionet_tcp_server, trionet_tls):
        server = await trionet_tcp_server(echo, ssl_context=trionet_tls.server_context)
        async with await trionet.connect_tcp(
            "127.0.0.1", server.port, ssl_context=trionet_tls.client_context,
            server_hostname=trionet_tls.hostname,
        ) as conn:
            await conn.send(b"tls")
            assert await conn.__anext__() == trionet.Data(b"tls")


    async def test_handler_error_fails_the_test(trionet_tcp_server):
        async def broken(conn):
            raise ValueError("handler bug seen by the test")

        server = await trionet_tcp_server(broken)
        async with await trionet.connect_tcp("127.0.0.1", server.port) as conn:
            async for _ in conn:
                pass
        await trio.sleep_forever()  # the handler's error must end the test


    async def test_http_and_websocket_fixtures(trionet_http_server, trionet_websocket_server):
        async def hello(request):
            return trionet.http.Response.text("hello")

        async def echo_ws(ws):
            async for message in ws:
                await ws.send(message.data)

        http = await trionet_http_server(hello)
        assert http.url == f"http://127.0.0.1:{http.port}"
        async with trionet.http.Client() as client:
            assert await (await client.get(http.url)).text() == "hello"
        ws_server = await trionet_websocket_server(echo_ws)
        assert ws_server.url == f"ws://127.0.0.1:{ws_server.port}"
        async with trionet.websocket.connect(ws_server.url) as ws:
            await ws.send("hi")
            assert (await anext(ws)).data == "hi"


    async def test_https_fixture(trionet_http_server, trionet_tls):
        async def hello(request):
            return trionet.http.Response.text(request.scheme)

        local = await trionet_http_server(hello, ssl_context=trionet_tls.server_context)
        assert local.url.startswith("https://127.0.0.1:")
        async with trionet.http.Client(verify=trionet_tls.client_context) as client:
            assert await (await client.get(local.url)).text() == "https"


    async def test_http_handler_error_fails_the_test(trionet_http_server):
        async def broken(request):
            raise ValueError("http handler bug seen by the test")

        local = await trionet_http_server(broken)
        async with trionet.http.Client() as client:
            try:
                await client.get(local.url)
            except trionet.http.HTTPError:
                pass
        await trio.sleep_forever()  # the handler's error must end the test


    async def test_asgi_app_error_fails_the_test(trionet_asgi_server):
        async def app(scope, receive, send):
            if scope["type"] == "http":
                raise RuntimeError("asgi app bug seen by the test")

        local = await trionet_asgi_server(app, lifespan="off")
        assert local.websocket_url == local.url.replace("http://", "ws://")
        async with trionet.http.Client() as client:
            try:
                await client.get(local.url)
            except trionet.http.HTTPError:
                pass
        await trio.sleep_forever()
    """
)


def test_plugin_fixtures_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=3)
    result.stdout.fnmatch_lines(["*test_handler_error_fails_the_test*", "*handler bug seen*"])
    for name in ("http_handler", "asgi_app"):
        result.stdout.fnmatch_lines([f"*FAILED*test_{name}_error_fails_the_test*"])
    result.stdout.fnmatch_lines(["*http handler bug seen*"])
    result.stdout.fnmatch_lines(["*asgi app bug seen*"])


def test_plugin_imports_without_pytest_trio() -> None:
    code = (
        "import sys; sys.modules['pytest_trio'] = None\n"
        "import trionet.testing._pytest_plugin as plugin\n"
        "print(plugin.trionet_tcp_server.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "trionet_tcp_server" in result.stdout


def test_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="pytest11")}
    assert "trionet.testing._pytest_plugin" in names
