"""The sans-IO HTTP/1.1 server protocol on its own: byte strings in, events
and bytes out, no event loop (in the manner of h11's and wsproto's tests)."""

from __future__ import annotations

import re

import pytest

from trionet.http import Headers
from trionet.http._server._errors import BodyTooLarge, ProtocolError
from trionet.http._server._events import (
    BODY,
    CLIENT_CLOSED,
    DONE,
    END_OF_BODY,
    FINISHED,
    HEAD,
    IDLE,
    NEED_DATA,
    NOT_STARTED,
    STARTED,
    SWITCHED,
    BodyData,
    Event,
    RequestHead,
)
from trionet.http._server._limits import HTTPLimits
from trionet.http._server._protocol import ServerProtocol

# Every test here runs under each request parser (h11, httptools).
pytestmark = pytest.mark.usefixtures("http_parser")

DATE = re.compile(rb"date: [^\r]+\r\n")


def server(**limits: object) -> ServerProtocol:
    return ServerProtocol(HTTPLimits(**limits))  # type: ignore[arg-type]


def feed(proto: ServerProtocol, data: bytes) -> list[Event]:
    """Feed ``data`` and collect events up to NEED_DATA (or the end)."""
    proto.receive_data(data)
    return drain(proto)


def drain(proto: ServerProtocol) -> list[Event]:
    events: list[Event] = []
    while True:
        event = proto.next_event()
        if event is NEED_DATA or event is CLIENT_CLOSED:
            events.append(event)
            return events
        events.append(event)
        if isinstance(event, RequestHead):
            proto.start_body()
        if event is END_OF_BODY:
            return events


def head_of(proto: ServerProtocol, data: bytes) -> RequestHead:
    proto.receive_data(data)
    event = proto.next_event()
    assert isinstance(event, RequestHead)
    return event


def undated(data: bytes) -> bytes:
    return DATE.sub(b"date: X\r\n", data)


def _read_all(proto: ServerProtocol, data: bytes) -> None:
    proto.receive_data(data)
    while proto.next_event() is not NEED_DATA:
        pass


def refused(proto: ServerProtocol, data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        _read_all(proto, data)
    return info.value


# -- requests ---------------------------------------------------------------------


def test_simple_get_and_its_response() -> None:
    proto = server()
    assert proto.state == IDLE
    event = head_of(proto, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
    assert event == RequestHead("GET", "/a?b=1", [(b"Host", b"x"), (b"Accept", b"*/*")], "1.1")
    assert proto.state == BODY
    assert proto.start_body() is True
    assert proto.state == DONE
    assert proto.next_event() is END_OF_BODY
    assert proto.requests == 1
    out = proto.complete_response(200, Headers({"content-type": "text/plain"}), b"hi")
    assert undated(out) == (
        b"HTTP/1.1 200 OK\r\ndate: X\r\nserver: trionet\r\n"
        b"content-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
    )
    assert proto.response_state == FINISHED
    assert not proto.closing
    assert (proto.last_status, proto.last_response_bytes) == (200, 2)


def test_no_server_header_when_none() -> None:
    proto = server(server_header=None)
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    assert undated(proto.complete_response(204, Headers(), b"")) == (
        b"HTTP/1.1 204 No Content\r\ndate: X\r\n\r\n"
    )


def test_a_head_in_pieces_and_empty_lines_before_it() -> None:
    proto = server()
    assert feed(proto, b"\r\n\r\n") == [NEED_DATA]
    assert proto.state == IDLE
    assert not proto.head_started
    assert feed(proto, b"GET / HT") == [NEED_DATA]
    assert proto.state == HEAD
    assert proto.head_started
    events = feed(proto, b"TP/1.1\r\nHost: x\r\n\r\n")
    assert events == [RequestHead("GET", "/", [(b"Host", b"x")], "1.1"), END_OF_BODY]


def test_client_closing_between_requests() -> None:
    proto = server()
    assert feed(proto, b"") == [CLIENT_CLOSED]


def test_client_closing_inside_a_head_is_a_400() -> None:
    proto = server()
    feed(proto, b"GET / HTTP/1.1\r\n")
    error = refused(proto, b"")
    assert error.status == 400


def test_keep_alive_by_default_on_http_11() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    out = proto.complete_response(200, Headers(), b"ok")
    assert b"connection" not in out
    assert not proto.closing
    proto.start_next_request()
    assert proto.state == IDLE


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
    ],
)
def test_close_after_http_10_or_connection_close(request_bytes: bytes) -> None:
    proto = server()
    head_of(proto, request_bytes)
    proto.start_body()
    assert proto.closing
    out = proto.complete_response(200, Headers(), b"ok")
    assert b"\r\nconnection: close\r\n" in out


def test_handler_connection_close_is_honoured() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    out = proto.complete_response(200, Headers({"connection": "close"}), b"")
    assert out.count(b"connection: close\r\n") == 1
    assert proto.closing


def test_max_requests_per_connection_closes_the_last() -> None:
    proto = server(max_requests_per_connection=2)
    for n in (1, 2):
        head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        proto.start_body()
        out = proto.complete_response(200, Headers(), b"")
        assert (b"connection: close" in out) is (n == 2)
        if n == 1:
            proto.start_next_request()


def test_shutdown_closes_unless_the_next_request_is_pipelined() -> None:
    proto = server()
    proto.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(proto.next_event(), RequestHead)
    proto.start_body()
    assert proto.pipelined()
    proto.shutdown_requested = True
    assert b"connection: close" not in proto.complete_response(200, Headers(), b"")
    proto.start_next_request()
    assert proto.head_started  # the pipelined head already started
    event = proto.next_event()
    assert isinstance(event, RequestHead)
    assert event.target == "/2"
    proto.start_body()
    assert not proto.pipelined()
    assert b"connection: close" in proto.complete_response(200, Headers(), b"")


def test_pipelined_requests_come_in_order() -> None:
    proto = server()
    proto.receive_data(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    targets = []
    bodies = []
    for _ in range(3):
        events = drain(proto)
        head = events[0]
        assert isinstance(head, RequestHead)
        targets.append(head.target)
        bodies.append(b"".join(e.data for e in events if isinstance(e, BodyData)))
        proto.complete_response(200, Headers(), b"")
        proto.start_next_request()
    assert targets == ["/1", "/2", "/3"]
    assert bodies == [b"", b"abc", b""]
    assert proto.requests == 3
    assert proto.next_event() is NEED_DATA


def test_receive_ahead_starts_the_next_head() -> None:
    proto = server()
    proto.receive_ahead(b"GET / HTTP/1.1\r\n")
    assert proto.head_started
    proto.receive_data(b"Host: x\r\n\r\n")
    assert isinstance(proto.next_event(), RequestHead)


def test_chunked_body() -> None:
    proto = server()
    events = feed(
        proto,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    assert isinstance(events[0], RequestHead)
    assert events[1:] == [BodyData(b"hello"), NEED_DATA]
    assert proto.state == BODY
    assert feed(proto, b"6\r\n world\r\n0\r\n\r\n") == [BodyData(b" world"), END_OF_BODY]
    assert proto.state == DONE


def test_content_length_body_read_ahead_with_the_head() -> None:
    proto = server()
    head_of(proto, b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    assert proto.start_body() is False
    assert proto.next_event() == BodyData(b"ab")
    assert proto.next_event() is NEED_DATA
    assert feed(proto, b"cd") == [BodyData(b"cd"), END_OF_BODY]


def test_expect_100_continue_sent_once_when_the_body_is_wanted() -> None:
    proto = server()
    head_of(
        proto, b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    assert proto.start_body() is False
    assert proto.continue_response() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert proto.continue_response() == b""
    assert feed(proto, b"ok") == [BodyData(b"ok"), END_OF_BODY]


def test_expect_100_continue_unread_body_closes_instead() -> None:
    proto = server()
    head_of(
        proto, b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    proto.start_body()
    out = proto.complete_response(413, Headers(), b"")
    assert b"connection: close" in out
    assert proto.continue_response() == b""  # a response started: no 100 any more


def test_no_100_continue_for_http_10() -> None:
    proto = server()
    head_of(proto, b"PUT / HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    proto.start_body()
    assert proto.continue_response() == b""


def test_small_unread_body_keeps_the_connection_a_large_one_closes_it() -> None:
    proto = server()
    head_of(proto, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    proto.start_body()
    assert b"connection: close" not in proto.complete_response(200, Headers(), b"")
    proto = server()
    head_of(proto, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    proto.start_body()
    assert b"connection: close" in proto.complete_response(200, Headers(), b"")


# -- limits and rules, each with its status ------------------------------------------


@pytest.mark.parametrize(
    ("limits", "data", "status"),
    [
        (
            {"max_header_size": 100},
            b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * 200 + b"\r\n\r\n",
            431,
        ),
        ({"max_header_count": 2}, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", 431),
        ({"max_target_length": 10}, b"GET /" + b"a" * 20 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ({"max_target_length": 10}, b"GET /" + b"a" * 60, 414),  # still streaming in
        ({"max_body_size": 5}, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n", 413),
        ({}, b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 501),
        ({}, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ({}, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        ({}, b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x01c\r\n\r\n", 400),
        (
            {},
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ({}, b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),  # a bare LF
        ({}, b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400),  # a folded line
        ({}, b"GET a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ({}, b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        ({}, b"NOT HTTP\r\n\r\n", 400),
    ],
)
def test_each_rule_and_limit_answers_its_status(
    limits: dict[str, int], data: bytes, status: int
) -> None:
    error = refused(server(**limits), data)
    assert error.status == status


def test_body_over_the_limit_as_it_arrives_is_413() -> None:
    proto = server(max_body_size=5)
    events = feed(proto, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    proto.receive_data(b"3\r\nabc\r\n3\r\ndef\r\n")
    assert proto.next_event() == BodyData(b"abc")
    with pytest.raises(BodyTooLarge) as info:
        proto.next_event()
    assert info.value.status == 413
    assert proto.closing


def test_malformed_chunked_body_is_a_400_and_closes() -> None:
    proto = server()
    feed(proto, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    proto.receive_data(b"zz\r\n")
    with pytest.raises(ProtocolError) as info:
        proto.next_event()
    assert info.value.status == 400
    assert proto.closing


# -- responses -------------------------------------------------------------------------


def test_head_response_has_no_body() -> None:
    proto = server()
    head_of(proto, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    out = proto.complete_response(200, Headers(), b"hello")
    assert out.endswith(b"content-length: 5\r\n\r\n")
    assert proto.last_response_bytes == 0


def test_streamed_response_is_chunked_with_trailers() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    head = proto.response_head(200, Headers(), None)
    assert head.endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert proto.response_state == STARTED
    assert proto.body_bytes(b"hello") == b"5\r\nhello\r\n"
    assert proto.body_bytes(b"") == b""
    assert proto.end_of_response(Headers({"x-sum": "1"})) == b"0\r\nx-sum: 1\r\n\r\n"
    assert proto.response_state == FINISHED
    assert proto.end_of_response(Headers()) == b""  # once only
    with pytest.raises(RuntimeError):
        proto.body_bytes(b"late")


def test_streamed_response_to_http_10_ends_with_the_connection() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.0\r\n\r\n")
    proto.start_body()
    head = proto.response_head(200, Headers(), None)
    assert b"transfer-encoding" not in head
    assert b"connection: close" in head
    assert proto.body_bytes(b"raw") == b"raw"


def test_content_length_response_checks_its_length() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    proto.response_head(200, Headers({"content-length": "4"}), None)
    assert proto.body_bytes(b"abc") == b"abc"
    with pytest.raises(ValueError, match="more body"):
        proto.body_bytes(b"de")
    with pytest.raises(ValueError, match="1 bytes short"):
        proto.end_of_response(Headers())
    assert proto.closing


def test_second_response_and_bad_status_are_refused() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    with pytest.raises(ValueError, match=r"200\.\.999"):
        proto.response_head(101, Headers(), 0)
    proto.complete_response(200, Headers(), b"")
    with pytest.raises(RuntimeError):
        proto.response_head(200, Headers(), 0)


def test_next_request_only_after_the_response() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(RuntimeError):
        proto.start_next_request()


def test_error_answer_bytes() -> None:
    proto = server()
    answer = proto.error_response(431, [("x-why", "big")])
    assert answer is not None
    assert undated(answer) == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ndate: X\r\n"
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: 36\r\n"
        b"x-why: big\r\nconnection: close\r\n\r\n"
        b"431 Request Header Fields Too Large\n"
    )
    assert proto.closing
    assert (proto.last_status, proto.last_response_bytes) == (431, 36)
    assert proto.error_response(500) is None  # answered already


def test_error_answer_to_head_has_no_body() -> None:
    proto = server()
    head_of(proto, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = proto.error_response(500)
    assert answer is not None
    assert answer.endswith(b"content-length: 26\r\nconnection: close\r\n\r\n")


def test_error_answer_after_a_response_started_is_none() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    proto.response_head(200, Headers(), None)
    assert proto.error_response(500) is None
    assert proto.closing


# -- upgrade --------------------------------------------------------------------------


def test_upgrade_hands_over_the_bytes_after_the_head() -> None:
    proto = server()
    head_of(
        proto,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"\x81\x85frame",
    )
    proto.start_body()
    assert proto.switch_protocols() == b"\x81\x85frame"
    assert proto.state == SWITCHED
    assert proto.closing
    assert (proto.last_status, proto.response_state) == (101, FINISHED)


def test_upgrade_after_a_response_is_refused() -> None:
    proto = server()
    head_of(proto, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.start_body()
    proto.complete_response(200, Headers(), b"")
    with pytest.raises(RuntimeError):
        proto.switch_protocols()
    assert proto.response_state != NOT_STARTED
