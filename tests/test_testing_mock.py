"""trionet.testing.MockTransport: the real client against canned routes, no
socket, in virtual time. Each test checks what a user of the client would
see: the response, the recorded request, or the error raised."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator

import pytest
import trio

import trionet
from trionet.http import Client, Response
from trionet.testing import MockRequest, MockTransport, UnmatchedRequest
from trionet.testing._mock_protocol import MockServerProtocol

API = "https://api.example.com"


async def test_a_route_answers_and_records_the_request(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport()
    create = mock.post(f"{API}/users").respond(201, json={"id": 7})
    async with Client(transport=mock) as client:
        response = await client.post(f"{API}/users", json={"name": "ada"}, headers={"x-a": "1"})
    assert response.status == 201
    assert (await response.json()) == {"id": 7}
    assert response.headers["content-type"] == "application/json"
    assert create.called
    assert create.call_count == 1
    request = create.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{API}/users"
    assert request.json() == {"name": "ada"}
    assert request.headers["x-a"] == "1"
    assert request.headers["host"] == "api.example.com"
    assert mock.calls == create.calls


async def test_an_unmatched_request_fails_the_call_that_made_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    mock = MockTransport()
    mock.get(f"{API}/a")
    async with Client(transport=mock) as client:
        with pytest.raises(UnmatchedRequest, match=r"(?s)GET https://api.example.com/b.*/a>"):
            await client.get(f"{API}/b")
        # The client goes on: the broken connection was not kept.
        assert (await client.get(f"{API}/a")).status == 200


async def test_without_assert_all_mocked_an_unmatched_request_is_a_404(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with Client(transport=MockTransport(assert_all_mocked=False)) as client:
        assert (await client.get(f"{API}/nothing")).status == 404


async def test_a_handler_answers_what_no_route_does(autojump_clock: trio.abc.Clock) -> None:
    async def handler(request: MockRequest) -> Response:
        await trio.sleep(1)  # an async handler, in virtual time
        return Response.text(f"{request.method} {request.path} {request.params}")

    mock = MockTransport(handler)
    mock.get(f"{API}/fixed").respond(text="fixed")
    async with Client(transport=mock) as client:
        assert (await (await client.get(f"{API}/fixed")).text()) == "fixed"
        response = await client.delete(f"{API}/x", params={"q": "1"})
    assert (await response.text()) == "DELETE /x {'q': '1'}"
    assert [call.request.path for call in mock.calls] == ["/fixed", "/x"]


async def test_a_table_of_canned_responses(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport(
        routes={
            f"GET {API}/a": Response.text("a"),
            f"{API}/any": Response.text("any method"),
        }
    )
    async with Client(transport=mock) as client:
        assert (await (await client.get(f"{API}/a")).text()) == "a"
        assert (await (await client.put(f"{API}/any", content=b"x")).text()) == "any method"
        with pytest.raises(UnmatchedRequest):
            await client.post(f"{API}/a")


async def test_matching_by_query_parameters_headers_and_regex(
    autojump_clock: trio.abc.Clock,
) -> None:
    mock = MockTransport()
    page2 = mock.get(f"{API}/items?page=2").respond(text="page 2")
    tokened = mock.get(f"{API}/me", headers={"authorization": "Bearer t"}).respond(text="me")
    anything = mock.get(re.compile(r"https://cdn\.example\.com/.*\.png")).respond(content=b"PNG")
    async with Client(transport=mock) as client:
        # The route names page=2; the request may carry more parameters.
        response = await client.get(f"{API}/items", params={"size": "5", "page": "2"})
        assert (await response.text()) == "page 2"
        with pytest.raises(UnmatchedRequest):
            await client.get(f"{API}/items", params={"page": "3"})
        response = await client.get(f"{API}/me", auth=trionet.http.BearerAuth("t"))
        assert (await response.text()) == "me"
        with pytest.raises(UnmatchedRequest):
            await client.get(f"{API}/me")
        assert (await (await client.get("https://cdn.example.com/img/a.png")).read()) == b"PNG"
    assert (page2.call_count, tokened.call_count, anything.call_count) == (1, 1, 1)


async def test_answers_in_sequence_then_unmatched(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport()
    mock.get(f"{API}/job").respond_with(
        Response.json({"state": "running"}),
        lambda request: Response.json({"state": "done", "asked": request.url}),
    )
    async with Client(transport=mock) as client:
        assert (await (await client.get(f"{API}/job")).json()) == {"state": "running"}
        assert (await (await client.get(f"{API}/job")).json())["state"] == "done"
        with pytest.raises(UnmatchedRequest, match="has 2 answers, and this is call 3"):
            await client.get(f"{API}/job")


async def test_an_answer_function_that_raises_fails_the_call(
    autojump_clock: trio.abc.Clock,
) -> None:
    def broken(request: MockRequest) -> Response:
        raise KeyError("boom")

    mock = MockTransport()
    mock.get(f"{API}/x").respond_with(broken)
    async with Client(transport=mock) as client:
        with pytest.raises(KeyError, match="boom"):
            await client.get(f"{API}/x")


async def test_keep_alive_redirects_and_cookies_run_as_on_the_network(
    autojump_clock: trio.abc.Clock,
) -> None:
    mock = MockTransport()
    mock.post(f"{API}/login").respond(303, headers={"location": "/home", "set-cookie": "sid=s1"})
    home = mock.get(f"{API}/home").respond(text="home")
    async with Client(transport=mock) as client:
        response = await client.post(f"{API}/login", form={"user": "ada"})
        assert (await response.text()) == "home"
        assert response.url == f"{API}/home"
        statistics = client.statistics()
    assert home.calls[0].request.headers["cookie"] == "sid=s1"
    assert mock.calls[0].request.form() == {"user": "ada"}
    # Both requests went over one kept-alive connection.
    assert statistics.connections_opened == 1
    assert statistics.connections_reused == 1


async def test_a_compressed_and_a_streamed_body_are_decoded(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def ticks() -> AsyncIterator[bytes]:
        for n in range(3):
            await trio.sleep(10)
            yield f"data: tick {n}\n\n".encode()

    mock = MockTransport()
    mock.get(f"{API}/gz").respond(
        content=gzip.compress(b"hello" * 100), headers={"content-encoding": "gzip"}
    )
    mock.get(f"{API}/events").respond_with(
        Response(200, {"content-type": "text/event-stream"}, ticks())
    )
    async with Client(transport=mock) as client:
        assert (await (await client.get(f"{API}/gz")).read()) == b"hello" * 100
        started = trio.current_time()
        async with client.events(f"{API}/events", reconnect=False) as events:
            received = [event.data async for event in events]
    assert received == ["tick 0", "tick 1", "tick 2"]
    assert trio.current_time() - started == pytest.approx(30)


async def test_a_body_sent_after_100_continue(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport()
    upload = mock.put(f"{API}/upload").respond(204)
    async with Client(transport=mock) as client:
        started = trio.current_time()
        response = await client.put(
            f"{API}/upload", content=b"x" * 5000, headers={"expect": "100-continue"}
        )
    assert response.status == 204
    assert upload.calls[0].request.content == b"x" * 5000
    # The 100 came at once: the client did not wait out its continue_timeout.
    assert trio.current_time() == started


async def test_head_gets_the_length_without_the_body(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport()
    mock.route("HEAD", f"{API}/file").respond(content=b"x" * 1000)
    async with Client(transport=mock) as client:
        response = await client.head(f"{API}/file")
    assert response.headers["content-length"] == "1000"
    assert (await response.read()) == b""


async def test_a_slow_answer_times_out_in_virtual_time(autojump_clock: trio.abc.Clock) -> None:
    async def slow(request: MockRequest) -> Response:
        await trio.sleep(60)
        return Response.text("late")

    mock = MockTransport()
    mock.get(f"{API}/slow").respond_with(slow)
    async with Client(transport=mock, timeout=5) as client:
        with pytest.raises(trionet.http.ReadTimeout):
            await client.get(f"{API}/slow")


async def test_drop_and_refuse_look_like_network_failures(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport()
    dropped = mock.get(f"{API}/crash").drop()
    mock.refuse("https://down.example.com")
    async with Client(transport=mock) as client:
        with pytest.raises(trionet.http.ServerDisconnected):
            await client.get(f"{API}/crash")
        with pytest.raises(trionet.http.HTTPConnectError, match="refused"):
            await client.get("https://down.example.com/")
    assert dropped.call_count == 1
    assert dropped.calls[0].response is None


async def test_opt_in_retries_recover_from_dropped_connections(
    autojump_clock: trio.abc.Clock,
) -> None:
    mock = MockTransport()
    flaky = mock.get(f"{API}/flaky").respond_with(None, None, Response.text("ok"))
    async with Client(transport=mock, retries=2, retry_backoff=1) as client:
        started = trio.current_time()
        assert (await (await client.get(f"{API}/flaky")).text()) == "ok"
    assert [call.response is None for call in flaky.calls] == [True, True, False]
    assert trio.current_time() - started >= 1  # it backed off, in virtual time


async def test_assert_all_called_names_the_routes_never_used(
    autojump_clock: trio.abc.Clock,
) -> None:
    mock = MockTransport()
    mock.get(f"{API}/used")
    mock.get(f"{API}/unused")
    async with Client(transport=mock) as client:
        await client.get(f"{API}/used")
    with pytest.raises(AssertionError, match=r"unused") as raised:
        mock.assert_all_called()
    assert "com/used>" not in str(raised.value)


def test_bad_routes_and_arguments_are_refused() -> None:
    mock = MockTransport()
    with pytest.raises(ValueError, match="http:// or https://"):
        mock.get("/relative")
    with pytest.raises(ValueError, match="one of"):
        mock.get(f"{API}/x").respond(text="a", json={})
    with pytest.raises(TypeError, match="a Response, a function or None"):
        mock.get(f"{API}/x").respond_with(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no uds= or proxy="):
        Client(transport=mock, proxy="http://127.0.0.1:1")
    with pytest.raises(TypeError, match="ClientTransport"):
        Client(transport=object())  # type: ignore[arg-type]


# -- the sans-IO server under the mock ---------------------------------------------


def test_the_mock_server_protocol_without_an_event_loop() -> None:
    server = MockServerProtocol("http://api.example.com")
    assert server.next_request() is None  # nothing yet
    server.receive_data(b"POST /a?x=1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Le")
    assert server.next_request() is None  # a head in two pieces
    server.receive_data(b"ngth: 3\r\nExpect: 100-continue\r\n\r\n")
    assert server.next_request() is None
    assert server.interim() == b"HTTP/1.1 100 \r\n\r\n"
    server.receive_data(b"abc")
    request = server.next_request()
    assert request is not None
    assert (request.method, request.url, request.content) == (
        "POST",
        "http://api.example.com/a?x=1",
        b"abc",
    )
    assert request.params == {"x": "1"}
    head = server.head(Response(201, {"x-id": "7"}, b"made"))
    assert head.startswith(b"HTTP/1.1 201 \r\nx-id: 7\r\ncontent-length: 4\r\n")
    assert server.data(b"made") + server.end() == b"made"
    assert not server.must_close
    # The next request on the same connection, then the client's close.
    server.receive_data(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
    request = server.next_request()
    assert request is not None
    assert request.url == "http://api.example.com/"
    server.head(Response(204))
    server.end()
    assert server.must_close


def test_the_mock_server_protocol_refuses_what_is_not_http() -> None:
    server = MockServerProtocol("http://api.example.com")
    server.receive_data(b"\x16\x03\x01 this is a TLS hello\r\n\r\n")
    with pytest.raises(UnmatchedRequest, match="malformed request"):
        server.next_request()
