"""Server-sent events with trionet's client: the event stream format as the
WHATWG HTML standard (section 9.2) parses it, sans I/O; and
``client.events()`` against loopback servers, reconnecting with
``Last-Event-ID`` as a browser does, stopping at 204, refusing what is not an
event stream, and the limits biting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import trio

import trionet
import trionet.http
from tests._http import LOOPBACK
from trionet.http import (
    EventStreamError,
    EventStreamParser,
    Request,
    Response,
    ResponseTooLarge,
    ServerSentEvent,
)

BOUND = 20


def parse(text: str, **options: int) -> list[ServerSentEvent]:
    parser = EventStreamParser(**options)
    events = [parser.feed(line) for line in text.split("\n")]
    parser.end()
    return [event for event in events if event is not None]


# -- the format, sans I/O ------------------------------------------------------------


def test_data_lines_are_joined_and_a_blank_line_dispatches() -> None:
    assert parse("data: YHOO\ndata: +2\ndata: 10\n\n") == [ServerSentEvent("YHOO\n+2\n10")]


def test_ids_persist_until_changed_and_comments_are_skipped() -> None:
    text = (
        ": test stream\n\n"
        "data: first event\nid: 1\n\n"
        "data:second event\nid\n\n"
        "data:  third event\n\n"
    )
    assert parse(text) == [
        ServerSentEvent("first event", id="1"),
        ServerSentEvent("second event", id=""),
        ServerSentEvent(" third event", id=""),  # only one space is removed
    ]


def test_empty_data_and_an_event_cut_off_by_the_end() -> None:
    # "data" alone is a data line with an empty value; the last event has no
    # blank line after it, so the end of the stream drops it.
    assert parse("data\n\ndata\ndata\n\ndata:") == [ServerSentEvent(""), ServerSentEvent("\n")]


def test_event_retry_and_what_is_ignored() -> None:
    parser = EventStreamParser()
    lines = [
        "\ufeffevent: update",  # a byte order mark opens the stream
        "data: x",
        "retry: 1500",
        "retry: soon",  # not digits: ignored
        "id: a\0b",  # a NUL: ignored
        "unknown: field",
        "",
        "",  # no data: nothing to dispatch
        "data: y",
        "",
    ]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [ServerSentEvent("x", "update", "", 1500), ServerSentEvent("y")]
    assert (parser.retry, parser.last_event_id) == (1500, "")


def test_max_event_size_bounds_the_data_of_one_event() -> None:
    parser = EventStreamParser(max_event_size=10)
    parser.feed("data: 12345")
    with pytest.raises(ValueError, match="longer than 10 characters"):
        parser.feed("data: 67890")
    with pytest.raises(ValueError, match="max_event_size"):
        EventStreamParser(max_event_size=0)


# -- over loopback -------------------------------------------------------------------


async def start(nursery: trio.Nursery, handler: Callable[[Request], Awaitable[Response]]) -> str:
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, handler, 0, LOOPBACK, handler_errors="raise")
    )
    return f"http://{LOOPBACK}:{server.port}/events"


def stream(*chunks: str) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk.encode()

    return Response(200, {"content-type": "text/event-stream; charset=utf-8"}, body())


async def test_events_reconnect_with_last_event_id_until_204(nursery: trio.Nursery) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def handler(request: Request) -> Response:
        seen.append((request.headers.get("last-event-id"), request.headers.get("accept")))
        if len(seen) == 1:
            # retry: 0 makes the reconnection immediate (no real wait here).
            return stream(
                "retry: 0\nid: 1\ndata: one\n\n",
                ": keep-alive\n",
                "event: update\ndata: two\r\ndata: lines\nid: 2\n\n",
                "data: cut off by the end",
            )
        if len(seen) == 2:
            return stream("data: three\n\n")
        return Response(204)

    url = await start(nursery, handler)
    async with trionet.http.Client() as client:
        with trio.fail_after(BOUND):
            async with client.events(url) as events:
                received = [event async for event in events]
                assert events.last_event_id == "2"
    assert received == [
        ServerSentEvent("one", id="1", retry=0),
        ServerSentEvent("two\nlines", "update", "2"),
        ServerSentEvent("three", id="2"),
    ]
    assert seen == [
        (None, "text/event-stream"),
        ("2", "text/event-stream"),
        ("2", "text/event-stream"),
    ]


async def test_max_reconnects_stops_a_stream_that_brings_nothing(nursery: trio.Nursery) -> None:
    requests: list[Request] = []

    async def handler(request: Request) -> Response:
        requests.append(request)
        return stream(": nothing to say\n\n")

    url = await start(nursery, handler)
    async with trionet.http.Client() as client:
        with trio.fail_after(BOUND):
            async with client.events(url, retry=0, max_reconnects=2) as events:
                assert [event async for event in events] == []
            async with client.events(url, reconnect=False, last_event_id="41") as events:
                assert [event async for event in events] == []
    assert len(requests) == 3 + 1  # the first connection and two more; then one
    assert requests[-1].headers.get("last-event-id") == "41"


async def test_a_server_that_is_gone_raises_after_max_reconnects() -> None:
    from tests._process import refusing_port

    with refusing_port() as port:
        async with trionet.http.Client() as client:
            with trio.fail_after(BOUND):
                events = client.events(f"http://{LOOPBACK}:{port}/", retry=0, max_reconnects=3)
                async with events:
                    with pytest.raises(trionet.http.HTTPConnectError):
                        async for _ in events:
                            pass


@pytest.mark.parametrize(
    ("status", "content_type"), [(200, "text/html"), (404, "text/event-stream"), (200, None)]
)
async def test_what_is_not_an_event_stream_is_an_error_not_retried(
    nursery: trio.Nursery, status: int, content_type: str | None
) -> None:
    requests: list[Request] = []

    async def handler(request: Request) -> Response:
        requests.append(request)
        headers = {"content-type": content_type} if content_type else {}
        return Response(status, headers, b"data: x\n\n")

    url = await start(nursery, handler)
    async with trionet.http.Client() as client:
        with trio.fail_after(BOUND):
            async with client.events(url, retry=0) as events:
                with pytest.raises(EventStreamError, match="not a 200 text/event-stream") as info:
                    async for _ in events:
                        pass
    assert info.value.response.status == status
    assert len(requests) == 1


async def test_max_event_size_bites_over_the_network(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return stream("data: " + "x" * 600 + "\n", "data: " + "y" * 600 + "\n\n")

    url = await start(nursery, handler)
    async with trionet.http.Client() as client:
        with trio.fail_after(BOUND):
            async with client.events(url, max_event_size=1000) as events:
                with pytest.raises(ResponseTooLarge, match="max_event_size"):
                    async for _ in events:
                        pass
            assert client.statistics().connections == 0  # that stream was closed
