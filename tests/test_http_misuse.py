"""trionet.http: API misuse by handler authors and lifecycle races.

What test_http_server.py does not cover: handlers that respond twice or too
late, streams and bodies used after their exchange is over, partial reads and
the drain-or-close decision, shutdown and cancellation in the middle of an
exchange, reused and mutated responses, header encoding errors, statistics,
long keep-alive and backpressure. Deterministic cases run the per-connection
driver over in-memory streams (time under ``autojump_clock``); the rest over
loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import trionet
import trionet.http
import trionet.http._server._wire as wire_module
from tests._http import LOOPBACK, exchange, parse, read_until_closed, request
from tests._wait import wait_until
from trionet.http import Headers, HTTPConnection, ProtocolError, Request, Response
from trionet.http._server._serve import _serve_connection
from trionet.testing import memory_stream_pair

# Every test here runs under each request parser (h11, httptools).
pytestmark = pytest.mark.usefixtures("http_parser")

Handler = Callable[[Request], Awaitable[Response | None]]


async def start(nursery: trio.Nursery, handler: Any, **kwargs: Any) -> trionet.Server:
    kwargs.setdefault("handler_errors", "log")
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, handler, 0, LOOPBACK, **kwargs)
    )
    return server


async def receive_all(stream: trio.abc.Stream) -> bytes:
    data = bytearray()
    try:
        while chunk := await stream.receive_some():
            data += chunk
    except trio.BrokenResourceError:
        pass
    return bytes(data)


async def drive(
    handler: Handler, data: bytes, *, eof: bool = True, **kwargs: Any
) -> tuple[bytes, BaseException | None, HTTPConnection]:
    """Run serve's per-connection driver over an in-memory stream: send
    ``data`` (then EOF), and return what the client received, what the driver
    raised, and the connection."""
    client, server_stream = memory_stream_pair(1 << 20)
    conn = HTTPConnection(server_stream, **kwargs)
    error: BaseException | None = None

    async def run() -> None:
        nonlocal error
        try:
            await _serve_connection(handler, None, conn)
        except Exception as exc:
            error = exc
        finally:
            await conn.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await client.send_all(data)
        if eof:
            await client.send_eof()
        raw = await receive_all(client)
    return raw, error, conn


def ok(request: Request) -> Response:
    return Response(200, body=request.path.encode())


# -- responding twice, too late, wrongly ------------------------------------------------


async def test_respond_twice_keeps_the_first_response_and_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    second: list[BaseException] = []

    async def twice(request: Request) -> Response:
        await request.respond(Response(200, body=b"first"))
        try:
            await request.respond(Response(201, body=b"second"))
        except RuntimeError as exc:
            second.append(exc)
            raise
        return Response(202)

    raw, error, _ = await drive(twice, request(target="/a") + request(target="/b"))
    assert isinstance(second[0], RuntimeError)
    assert isinstance(error, RuntimeError)  # the handler's bug, reported
    replies = parse(raw, [("GET", "/a"), ("GET", "/b")])
    assert [(r.status, r.body) for r in replies] == [(200, b"first")]
    assert b"second" not in raw
    assert b"HTTP/1.1 500" not in raw


async def test_respond_after_respond_stream_is_refused_and_truncates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def mixed(request: Request) -> Response:
        stream = await request.respond_stream(200)
        await stream.send(b"streamed")
        await request.respond(Response(500, body=b"oops"))
        return Response(200)

    raw, error, _ = await drive(mixed, request())
    assert isinstance(error, RuntimeError)
    assert b"oops" not in raw
    assert parse(raw, [("GET", "/")]) == []  # the chunked body never ended: seen as cut
    assert not raw.endswith(b"0\r\n\r\n")


async def test_returning_a_response_after_streaming_one_is_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def both(request: Request) -> Response:
        stream = await request.respond_stream(200)
        await stream.send(b"streamed")
        return Response(418, body=b"ignored")

    raw, error, _ = await drive(both, request() + request())
    assert error is None
    replies = parse(raw, [("GET", "/"), ("GET", "/")])
    assert [(r.status, r.body) for r in replies] == [(200, b"streamed")] * 2


async def test_response_stream_used_after_the_handler_returned_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    saved: list[trionet.http.ResponseStream] = []
    outcome: list[BaseException] = []

    async def leaky(request: Request) -> None:
        if request.path == "/1":
            stream = await request.respond_stream(200)
            await stream.send(b"one")
            saved.append(stream)
            return
        # the second request: the first one's stream is used from "elsewhere"
        try:
            await saved[0].send(b"late")
        except RuntimeError as exc:
            outcome.append(exc)
        await saved[0].finish()  # a no-op, not a second terminator
        await request.respond(Response(200, body=b"two"))
        return

    raw, error, _ = await drive(leaky, request(target="/1") + request(target="/2"))
    assert error is None
    assert isinstance(outcome[0], RuntimeError)
    replies = parse(raw, [("GET", "/1"), ("GET", "/2")])
    assert [r.body for r in replies] == [b"one", b"two"]
    assert b"late" not in raw


async def test_response_stream_from_a_background_task_after_return(
    nursery: trio.Nursery,
) -> None:
    """A handler hands its stream to a task of a longer-lived nursery and
    returns: the response is ended by the server, the task's late sends
    raise, and nothing it sends reaches the wire."""
    results: list[object] = []
    done = trio.Event()

    async def background(stream: trionet.http.ResponseStream, go: trio.Event) -> None:
        await go.wait()
        try:
            await stream.send(b"late")
            results.append("sent")
        except RuntimeError as exc:
            results.append(exc)
        done.set()

    go = trio.Event()

    async def spawner(request: Request) -> None:
        stream = await request.respond_stream(200)
        await stream.send(b"early")
        nursery.start_soon(background, stream, go)
        return

    server = await start(nursery, spawner, handler_errors="raise")
    async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
        await conn.send(request())
        received = b""
        while not received.endswith(b"0\r\n\r\n"):
            event = await anext(conn)
            assert isinstance(event, trionet.Data)
            received += event.data
        go.set()
        await done.wait()
        await conn.send(request(headers="Connection: close\r\n"))
        received += await read_until_closed(conn)
    assert isinstance(results[0], RuntimeError)
    replies = parse(received, [("GET", "/"), ("GET", "/")])
    assert [r.body for r in replies] == [b"early", b"early"]
    assert b"late" not in received


@pytest.mark.parametrize("status", [100, 101, 103, 199])
async def test_informational_status_in_a_response_is_a_500(
    autojump_clock: trio.testing.MockClock, status: int
) -> None:
    async def informational(request: Request) -> Response:
        return Response(status)

    raw, error, _ = await drive(informational, request() + request())
    assert isinstance(error, ValueError)
    [reply] = parse(raw, [("GET", "/")])
    assert reply.status == 500
    assert raw.count(b"HTTP/1.1") == 1


async def test_non_latin1_header_value_is_a_500_before_any_byte(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def euro(request: Request) -> Response:
        return Response(200, {"x-price": "10 €"}, b"x")

    raw, error, _ = await drive(euro, request())
    assert isinstance(error, ValueError)
    assert "x-price" in str(error)
    [reply] = parse(raw, [("GET", "/")])
    assert reply.status == 500
    assert "x-price" not in reply.headers


async def test_latin1_header_value_is_sent_as_latin1(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def cafe(request: Request) -> Response:
        return Response(200, {"x-word": "café"}, b"x")

    raw, error, _ = await drive(cafe, request())
    assert error is None
    assert b"x-word: caf\xe9\r\n" in raw


async def test_non_ascii_header_name_is_a_500(autojump_clock: trio.testing.MockClock) -> None:
    async def name(request: Request) -> Response:
        return Response(200, {"x-naïve": "1"}, b"x")

    raw, error, _ = await drive(name, request())
    assert isinstance(error, ValueError)
    assert raw.startswith(b"HTTP/1.1 500 ")


async def test_handler_raising_protocol_error_answers_its_status(
    nursery: trio.Nursery,
) -> None:
    async def refuse(request: Request) -> Response:
        raise ProtocolError("no teapots here", 422)

    # handler_errors="raise": a ProtocolError is the client's fault, not a bug,
    # so the server must go on.
    server = await start(nursery, refuse, handler_errors="raise")
    raw = await exchange(server.port, request() + request())
    [reply] = parse(raw, [("GET", "/")])
    assert reply.status == 422
    assert reply.headers["connection"] == "close"
    await wait_until(lambda: server.statistics().connection_errors == 1)
    assert server.statistics().handler_errors == 0
    again = await exchange(server.port, request())
    assert again.startswith(b"HTTP/1.1 422 ")


async def test_protocol_error_after_responding_aborts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def late(request: Request) -> Response:
        stream = await request.respond_stream(200)
        await stream.send(b"part")
        raise ProtocolError("changed my mind", 400)

    raw, error, _ = await drive(late, request())
    assert isinstance(error, ProtocolError)
    assert b"400" not in raw
    assert parse(raw, [("GET", "/")]) == []


# -- request bodies: partial reads, reads after the exchange --------------------------


async def test_small_unread_body_is_drained_and_keep_alive_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def lazy(request: Request) -> Response:
        if request.path == "/partial":
            await anext(request.body)  # the first chunk only
        return Response(200, body=request.path.encode())

    body = b"x" * 1000
    data = (
        request("POST", "/unread", body=body)
        + request("POST", "/partial", body=body)
        + request(target="/last")
    )
    raw, error, conn = await drive(lazy, data)
    assert error is None
    replies = parse(raw, [("POST", "/unread"), ("POST", "/partial"), ("GET", "/last")])
    assert [r.body for r in replies] == [b"/unread", b"/partial", b"/last"]
    assert all("connection" not in r.headers for r in replies[:2])
    assert conn.statistics().requests == 3


async def test_small_chunked_body_arrived_in_full_is_closed_not_drained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A chunked body of unknown length closes the connection after the
    response (announced with Connection: close), even a tiny one."""

    async def lazy(request: Request) -> Response:
        return Response(200, body=b"ok")

    chunked = (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    raw, error, _ = await drive(lazy, chunked + request())
    assert error is None
    replies = parse(raw, [("POST", "/"), ("GET", "/")])
    assert len(replies) == 1
    assert replies[0].headers["connection"] == "close"


async def test_large_unread_body_closes_with_connection_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def lazy(request: Request) -> Response:
        if request.path == "/partial":
            await anext(request.body)
        return Response(200, body=b"ok")

    body = b"x" * (200 * 1024)
    for target in ("/unread", "/partial"):
        data = request("POST", target, body=body) + request(target="/next")
        raw, error, _ = await drive(lazy, data, max_body_size=1 << 20)
        assert error is None
        replies = parse(raw, [("POST", target), ("GET", "/next")])
        assert len(replies) == 1, target
        assert replies[0].headers["connection"] == "close"


async def test_partially_read_body_then_read_rest_after_responding(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Responding first and reading the body afterwards (an upload that is
    acknowledged early) still gets the whole body."""
    got: list[bytes] = []

    async def early(request: Request) -> None:
        await request.respond(Response(202, body=b"accepted"))
        got.append(await request.read())
        return

    body = bytes(range(256)) * 64
    raw, error, _ = await drive(early, request("POST", body=body) + request())
    assert error is None
    assert got == [body, b""]
    replies = parse(raw, [("POST", "/"), ("GET", "/")])
    assert [r.status for r in replies] == [202, 202]


async def test_reading_a_body_after_the_exchange_ended_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    saved: list[Request] = []
    outcome: list[object] = []

    async def handler(request: Request) -> Response:
        if request.path == "/upload":
            saved.append(request)  # "read it later", from elsewhere
            return Response(202, body=b"later")
        try:
            outcome.append(await saved[0].read())
        except (RuntimeError, trio.ClosedResourceError) as exc:
            outcome.append(exc)
        return Response(200, body=b"next")

    data = request("POST", "/upload", body=b"precious data") + request(target="/next")
    raw, error, _ = await drive(handler, data)
    assert error is None
    assert len(parse(raw, [("POST", "/upload"), ("GET", "/next")])) == 2
    # The body was drained by the server: reading it now cannot give it; it
    # must say so rather than return b"" as if the upload were empty.
    assert not isinstance(outcome[0], bytes), outcome


async def test_body_read_concurrently_by_two_tasks_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server_stream = memory_stream_pair()
    conn = HTTPConnection(server_stream)
    await client.send_all(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
    )  # the body comes later
    req = await anext(conn)
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await req.read()
        except trio.BusyResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"0123456789")
    assert len(errors) == 1


# -- HTTPConnection used directly ------------------------------------------------------


async def test_two_tasks_iterating_one_connection(autojump_clock: trio.testing.MockClock) -> None:
    client, server_stream = memory_stream_pair()
    conn = HTTPConnection(server_stream)
    outcomes: list[object] = []

    async def iterate() -> None:
        try:
            async for req in conn:
                outcomes.append(req.path)
                await req.respond(Response(200, body=b"x"))
        except trio.BusyResourceError as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(iterate)
        nursery.start_soon(iterate)
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(request(target="/1") + request(target="/2"))
        await client.send_eof()
    assert sum(isinstance(o, trio.BusyResourceError) for o in outcomes) == 1
    assert [o for o in outcomes if isinstance(o, str)] == ["/1", "/2"]


async def test_next_request_before_responding_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server_stream = memory_stream_pair()
    conn = HTTPConnection(server_stream)
    await client.send_all(request(target="/1") + request(target="/2"))
    first = await anext(conn)
    with pytest.raises(RuntimeError, match="respond"):
        await anext(conn)
    await first.respond(Response(200, body=b"1"))  # the connection is still usable
    second = await anext(conn)
    assert second.path == "/2"
    with pytest.raises(RuntimeError, match="exchange is over"):
        await first.respond(Response(200))
    await second.respond(Response(200, body=b"2"))
    await conn.aclose()
    raw = await receive_all(client)
    assert [r.body for r in parse(raw, [("GET", "/1"), ("GET", "/2")])] == [b"1", b"2"]


async def test_iterating_a_closed_connection(autojump_clock: trio.testing.MockClock) -> None:
    _client, server_stream = memory_stream_pair()
    conn = HTTPConnection(server_stream)
    await conn.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await anext(conn)


async def test_server_header_with_crlf_is_refused() -> None:
    _client, server_stream = memory_stream_pair()
    with pytest.raises(ValueError, match="server_header"):
        HTTPConnection(server_stream, server_header="trionet\r\nset-cookie: session=evil")


async def test_serve_refuses_a_bad_server_header_before_binding(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Today serve() binds and serves; the fail_after ends it (TooSlowError).
    with trio.fail_after(5), pytest.raises(ValueError, match="server_header"):
        await trionet.http.serve(_ok, 0, LOOPBACK, server_header="trionet €")


# -- responses reused and mutated ---------------------------------------------------------


async def test_reused_response_reflects_header_mutations(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = Response(200, {"x-version": "1"}, b"same")
    count = 0

    async def reuse(request: Request) -> Response:
        nonlocal count
        count += 1
        if count == 2:
            shared.headers.set("x-version", "2")
        elif count == 3:
            shared.headers.add("x-extra", "yes")
        elif count == 4:
            shared.headers.remove("x-extra")
            shared.headers.set("content-length", "4")
        return shared

    raw, error, _ = await drive(reuse, request() * 4)
    assert error is None
    replies = parse(raw, [("GET", "/")] * 4)
    assert [r.headers["x-version"] for r in replies] == ["1", "2", "2", "2"]
    assert ["x-extra" in r.headers for r in replies] == [False, False, True, False]
    assert all(r.body == b"same" for r in replies)


async def test_reused_response_made_invalid_is_a_500_then_fixed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = Response(200, body=b"four")
    count = 0

    async def reuse(request: Request) -> Response:
        nonlocal count
        count += 1
        shared.headers.set("content-length", "5" if count == 1 else "4")
        return shared

    raw, error, _ = await drive(reuse, request())
    assert isinstance(error, ValueError)
    assert raw.startswith(b"HTTP/1.1 500 ")
    raw, error, _ = await drive(reuse, request())
    assert error is None
    assert parse(raw, [("GET", "/")])[0].body == b"four"


async def test_response_does_not_mutate_the_headers_it_was_given() -> None:
    common = Headers({"x-app": "demo"})
    Response(200, common, "text body")
    assert "content-type" not in common
    image = Response(200, common, b"\x89PNG")
    assert "content-type" not in image.headers


async def test_async_iterable_response_reused_is_empty_the_second_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A generator body is consumed by its first use: documenting that a
    reused streaming Response sends an empty (but well-framed) body."""

    async def gen() -> AsyncIterator[bytes]:
        yield b"once"

    shared = Response(200, body=gen())

    async def reuse(request: Request) -> Response:
        return shared

    raw, error, _ = await drive(reuse, request() * 2)
    assert error is None
    assert [r.body for r in parse(raw, [("GET", "/")] * 2)] == [b"once", b""]


# -- framing chosen by the handler ---------------------------------------------------------


async def test_http10_with_handler_transfer_encoding_is_not_a_framing_lie(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def streamed(request: Request) -> None:
        stream = await request.respond_stream(200, {"transfer-encoding": "chunked"})
        await stream.send(b"hello")
        return

    raw, error, _ = await drive(streamed, b"GET / HTTP/1.0\r\n\r\n")
    assert error is None
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        assert body == b"5\r\nhello\r\n0\r\n\r\n"
    else:
        assert body == b"hello"


async def test_handler_connection_keep_alive_does_not_hide_a_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def node_style(request: Request) -> Response:
        return Response(200, {"connection": "keep-alive"}, b"x")

    raw, error, _ = await drive(node_style, request() + request(), max_requests_per_connection=1)
    assert error is None
    [reply] = parse(raw, [("GET", "/")])
    assert "close" in reply.headers["connection"].lower()


async def test_handler_connection_close_closes(autojump_clock: trio.testing.MockClock) -> None:
    async def closer(request: Request) -> Response:
        return Response(200, {"connection": "close"}, b"x")

    raw, error, conn = await drive(closer, request() + request())
    assert error is None
    assert len(parse(raw, [("GET", "/")] * 2)) == 1
    assert raw.count(b"HTTP/1.1") == 1
    assert conn.statistics().requests == 1


# -- statistics, long keep-alive, Date -----------------------------------------------------


async def test_statistics_count_every_byte_and_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def echo(request: Request) -> Response:
        return Response(200, body=await request.read())

    data = (
        request("POST", body=b"a" * 5000)
        + b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
        + request(headers="Connection: close\r\n")
    )
    raw, error, conn = await drive(echo, data)
    assert error is None
    stats = conn.statistics()
    assert stats.bytes_received == len(data)
    assert stats.bytes_sent == len(raw)
    assert stats.requests == 3


async def test_statistics_after_an_error_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    data = request() + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    raw, error, conn = await drive(_ok, data)
    assert isinstance(error, ProtocolError)
    assert raw.count(b"HTTP/1.1 400 ") == 1
    stats = conn.statistics()
    assert stats.bytes_received == len(data)
    assert stats.bytes_sent == len(raw)


async def _ok(request: Request) -> Response:
    return Response(200, body=b"ok")


@pytest.mark.parametrize("limit", [1000, None])
async def test_keep_alive_across_many_requests(
    autojump_clock: trio.testing.MockClock, limit: int | None
) -> None:
    total = 1500
    data = b"".join(request(target=f"/{i}") for i in range(total))
    kwargs: dict[str, Any] = {"max_requests_per_connection": limit}
    if limit is None:
        data += request(target="/end", headers="Connection: close\r\n")
    raw, error, conn = await drive(_ok, data, **kwargs)
    assert error is None
    expected = limit if limit is not None else total + 1
    replies = parse(raw, [("GET", "/")] * (total + 1))
    assert len(replies) == expected
    assert raw.count(b"HTTP/1.1 200 ") == expected
    assert replies[-1].headers["connection"] == "close"
    assert all("connection" not in r.headers for r in replies[:-1])
    assert conn.statistics().requests == expected


async def test_date_header_follows_the_wall_clock(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_700_000_000.25]

    class FakeTime:
        @staticmethod
        def time() -> float:
            return now[0]

    monkeypatch.setattr(wire_module, "time", FakeTime)

    async def tick(request: Request) -> Response:
        now[0] += {"/a": 0.0, "/half": 0.5, "/day": 86400.0}[request.path]
        return Response(200, body=b"x")

    raw, error, _ = await drive(
        tick, request(target="/a") + request(target="/half") + request(target="/day")
    )
    assert error is None
    dates = [r.headers["date"] for r in parse(raw, [("GET", "/")] * 3)]
    assert dates[0] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert dates[1] == "Tue, 14 Nov 2023 22:13:20 GMT"  # same second... (0.75)
    assert dates[2] == "Wed, 15 Nov 2023 22:13:20 GMT"


# -- backpressure ---------------------------------------------------------------------------


async def test_pipelining_client_that_never_reads_gets_backpressure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client sending thousands of requests and reading nothing: the server
    stops reading once its responses fill the pipe, so the client's own
    send_all blocks; nothing grows without bound."""
    buffer = 64 * 1024
    client, server_stream = memory_stream_pair(buffer)
    conn = HTTPConnection(server_stream, max_requests_per_connection=None)
    big = Response(200, body=b"r" * 1000)
    handled = 0

    async def handler(request: Request) -> Response:
        nonlocal handled
        handled += 1
        return big

    one = request()
    count = 20_000  # about 0.7 MB of requests, 20 MB of responses
    sent_all = trio.Event()

    async def flood() -> None:
        await client.send_all(one * count)
        sent_all.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(_serve_connection, handler, None, conn))
        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent_all.is_set()
        stats = conn.statistics()
        # Bounded by the two pipes (and one receive), not by the flood.
        assert stats.bytes_sent <= buffer + 1000 + 200  # the pipe, one response
        assert stats.bytes_received <= buffer + 64 * 1024
        assert handled < 100
        nursery.cancel_scope.cancel()


# -- shutdown and cancellation ----------------------------------------------------------------


async def test_shutdown_while_a_response_streams_ends_it_cleanly(
    nursery: trio.Nursery,
) -> None:
    streaming = trio.Event()
    release = trio.Event()

    async def streamer(request: Request) -> None:
        stream = await request.respond_stream(200)
        await stream.send(b"part1;")
        streaming.set()
        await release.wait()
        await stream.send(b"part2")
        return

    server = await start(nursery, streamer, handler_errors="raise")
    async with await trionet.connect_tcp(LOOPBACK, server.port) as client:
        await client.send(request() + request())  # a second one pipelined
        await streaming.wait()
        async with trio.open_nursery() as inner:
            inner.start_soon(server.shutdown, 30)
            await wait_until(lambda: server.statistics().accepted == 1)
            release.set()
            with trio.fail_after(10):
                raw = await read_until_closed(client)
    replies = parse(raw, [("GET", "/"), ("GET", "/")])
    # The streamed response ends cleanly; the pipelined request, which had
    # arrived before the shutdown, is answered too, and closes the connection.
    assert [r.body for r in replies] == [b"part1;part2", b"part1;part2"]
    assert replies[1].headers["connection"] == "close"
    assert raw.endswith(b"0\r\n\r\n")
    assert server.statistics().active == 0


async def test_shutdown_while_a_body_uploads_answers_with_close(
    nursery: trio.Nursery,
) -> None:
    reading = trio.Event()

    async def upload(request: Request) -> Response:
        first = await anext(request.body)
        reading.set()
        rest = await request.read()
        return Response(200, body=b"%d" % (len(first) + len(rest)))

    server = await start(nursery, upload, handler_errors="raise")
    shutdown_called = trio.Event()
    async with await trionet.connect_tcp(LOOPBACK, server.port) as client:
        await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        await reading.wait()
        async with trio.open_nursery() as inner:

            async def shut() -> None:
                shutdown_called.set()
                await server.shutdown(30)

            inner.start_soon(shut)
            await shutdown_called.wait()
            await trio.testing.wait_all_tasks_blocked()  # the shutdown waits for the handler
            await client.send(b"67890")
            with trio.fail_after(10):
                raw = await read_until_closed(client)
    [reply] = parse(raw, [("POST", "/")])
    assert reply.body == b"10"
    assert reply.headers["connection"] == "close"


async def test_shutdown_while_a_head_is_half_received_serves_it_if_it_completes(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, _ok, handler_errors="raise")
    async with await trionet.connect_tcp(LOOPBACK, server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHo")
        await wait_until(lambda: server.statistics().bytes_received > 0)
        async with trio.open_nursery() as inner:
            inner.start_soon(server.shutdown, 30)
            await trio.testing.wait_all_tasks_blocked()  # the shutdown waits for the head
            await client.send(b"st: t\r\n\r\n")
            with trio.fail_after(10):
                raw = await read_until_closed(client)
    [reply] = parse(raw, [("GET", "/")])
    assert reply.status == 200
    assert reply.headers["connection"] == "close"


async def test_shutdown_grace_expiry_with_a_half_received_head_closes(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, _ok, handler_errors="raise")
    async with await trionet.connect_tcp(LOOPBACK, server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHo")
        await wait_until(lambda: server.statistics().bytes_received > 0)
        with trio.fail_after(10):
            await server.shutdown(0.1)
            raw = await read_until_closed(client)
    assert not raw.startswith(b"HTTP/1.1 2")
    assert server.statistics().active == 0


async def test_cancelling_the_server_mid_response_leaks_nothing() -> None:
    streaming = trio.Event()

    async def forever(request: Request) -> None:
        stream = await request.respond_stream(200)
        while True:
            await stream.send(b"x" * 1024)
            streaming.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            server = await start(outer, forever, handler_errors="raise")
            client = await trionet.connect_tcp(LOOPBACK, server.port)
            await client.send(request())
            await streaming.wait()
            outer.cancel_scope.cancel()
        # the server task is gone; the client sees the connection end
        received = await read_until_closed(client)
        await client.aclose()
    assert parse(received, [("GET", "/")]) == []  # cut, never a complete response
    assert server.statistics().active == 0
    with pytest.raises(trionet.ConnectError):
        await trionet.connect_tcp(LOOPBACK, server.port)


async def test_cancelling_a_handler_blocked_on_a_client_that_does_not_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server_stream = memory_stream_pair(4096)
    conn = HTTPConnection(server_stream)

    async def huge(request: Request) -> Response:
        return Response(200, body=b"z" * (1 << 20))

    await client.send_all(request())
    with trio.move_on_after(60) as scope:
        await _serve_connection(huge, None, conn)
    assert scope.cancelled_caught
    # the driver aborted the connection: the client's reads end
    data = await receive_all(client)
    assert 0 < len(data) < (1 << 20)
    with pytest.raises(trio.ClosedResourceError):
        await anext(conn)
