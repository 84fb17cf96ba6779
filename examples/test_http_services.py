"""Testing HTTP and WebSocket services built on trionet, and code that calls
outside HTTP APIs: the plugin's server fixtures, and the client's mock
transport.

    uv run pytest examples/test_http_services.py

The plugin is registered by installing trionet; the only configuration is
pytest-trio's ``trio_mode = true`` (see ``pyproject.toml``).
"""

import pytest
import trio

import trionet
from trionet.http import Client, Request, Response
from trionet.testing import MockRequest, MockTransport
from trionet.websocket import WebSocketConnection, connect

# -- a service under test: an HTTP handler and a WebSocket handler ------------


async def greet(request: Request) -> Response:
    if request.path != "/hello":
        return Response.text("not found\n", status=404)
    name = request.query.get("name", ["world"])[-1]
    return Response.json({"greeting": f"hello, {name}"})


async def shout(ws: WebSocketConnection) -> None:
    async for message in ws:
        await ws.send(str(message.data).upper())


async def test_http_service(trionet_http_server) -> None:
    local = await trionet_http_server(greet)
    async with Client(base_url=local.url) as client:
        response = await client.get("/hello", params={"name": "ada"})
        assert response.status == 200
        assert await response.json() == {"greeting": "hello, ada"}
        assert (await client.get("/elsewhere")).status == 404


async def test_websocket_service(trionet_websocket_server) -> None:
    local = await trionet_websocket_server(shout)
    async with connect(local.url + "/chat") as ws:
        await ws.send("hi")
        assert (await anext(ws)).data == "HI"


# -- an ASGI application (a tiny one here; Starlette or FastAPI the same) -----


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        body = f"{scope['method']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    else:  # websocket: accept, then echo one message
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close", "code": 1000})


async def test_asgi_application(trionet_asgi_server) -> None:
    local = await trionet_asgi_server(app)
    async with Client() as client:
        assert await (await client.post(local.url + "/items")).text() == "POST /items"
    async with connect(local.websocket_url + "/ws") as ws:
        await ws.send("ping")
        assert (await anext(ws)).data == "ping"


# -- code that calls an outside API, tested with canned answers ---------------


async def current_temperature(client: Client, city: str) -> float:
    """The code under test: it calls a weather API, retrying once on 503."""
    for _ in range(2):
        response = await client.get("https://weather.example.com/v1/current", params={"city": city})
        if response.status != 503:
            break
    response.raise_for_status()
    return float((await response.json())["celsius"])


async def test_code_that_calls_an_outside_api() -> None:
    mock = MockTransport()
    weather = mock.get("https://weather.example.com/v1/current?city=Oslo").respond_with(
        Response(503),
        Response.json({"celsius": -3.5}),
    )
    async with Client(transport=mock) as client:
        assert await current_temperature(client, "Oslo") == -3.5
    assert weather.call_count == 2
    assert weather.calls[-1].request.params == {"city": "Oslo"}


async def test_a_mock_that_computes_its_answers(autojump_clock) -> None:
    async def slow_echo(request: MockRequest) -> Response:
        await trio.sleep(60)  # a slow API, in virtual time: the test is instant
        return Response.json(request.json())

    mock = MockTransport(slow_echo)  # answers every request
    async with Client(transport=mock, timeout=10) as client:
        with pytest.raises(trionet.http.ReadTimeout):
            await client.post("https://api.example.com/echo", json={"a": 1})


# -- in process: the same tests, no socket, in virtual time -------------------


async def test_in_process(
    trionet_virtual_tcp, trionet_http_server, trionet_websocket_server, autojump_clock
) -> None:
    # With trionet_virtual_tcp, the fixtures' servers and the clients below
    # run in memory: the real server and client code, no socket.
    http = await trionet_http_server(greet, keepalive_timeout=5)
    async with Client(base_url=http.url) as client:
        assert (await client.get("/hello")).status == 200
        await trio.sleep(60)  # past the server's keep-alive timeout: instant
        assert (await client.get("/hello")).status == 200
        assert client.statistics().connections_opened == 2  # it had closed the first
    chat = await trionet_websocket_server(shout)
    async with connect(chat.url) as ws:
        await ws.send("in memory")
        assert (await anext(ws)).data == "IN MEMORY"
    assert trionet_virtual_tcp.statistics().opened == 3
