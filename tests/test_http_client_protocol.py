"""The sans-IO HTTP/1.1 client protocol (``trionet.http._client._protocol``)
on byte strings: no event loop, no socket. Each test writes what a server
would send and reads the events and bytes the protocol gives back."""

from __future__ import annotations

import pytest

from trionet.http import Headers, ProxyError, RemoteProtocolError, ServerDisconnected
from trionet.http._client._protocol import (
    NEED_DATA,
    Body,
    ClientEvent,
    ClientProtocol,
    Informational,
    ResponseEnd,
    ResponseHead,
    ServerClosed,
    TunnelExchange,
)

HOST = [("host", "example.test")]


def events(protocol: ClientProtocol, data: bytes = b"") -> list[ClientEvent]:
    """Feed ``data`` (if any), then every event up to NEED_DATA or the end."""
    if data:
        protocol.receive_data(data)
    out: list[ClientEvent] = []
    while True:
        event = protocol.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
        if isinstance(event, ResponseEnd | ServerClosed):
            return out


def body_of(items: list[ClientEvent]) -> bytes:
    return b"".join(event.data for event in items if isinstance(event, Body))


def test_a_simple_exchange_and_the_next_on_the_same_connection() -> None:
    protocol = ClientProtocol(max_header_size=64 * 1024)
    sent = protocol.request("GET", "/a?b=c", [*HOST, ("X-Thing", "1")], end=True)
    assert sent == b"GET /a?b=c HTTP/1.1\r\nhost: example.test\r\nX-Thing: 1\r\n\r\n"
    assert events(protocol) == []  # nothing received yet: NEED_DATA
    got = events(protocol, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhel")
    head = got[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.http_version) == (200, "OK", "1.1")
    assert head.headers == Headers([("content-length", "5"), ("x-a", "b")])
    assert got[1:] == [Body(b"hel")]
    assert events(protocol, b"lo") == [Body(b"lo"), ResponseEnd()]
    assert protocol.reusable()
    sent = protocol.request("POST", "/", [*HOST, ("content-length", "3")], b"abc", end=True)
    assert sent.endswith(b"\r\n\r\nabc")
    got = events(protocol, b"HTTP/1.1 204 No Content\r\n\r\n")
    assert [type(event) for event in got] == [ResponseHead, ResponseEnd]
    assert protocol.reusable()


def test_a_head_and_a_response_in_one_read_are_split_exactly() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    got = events(protocol, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert body_of(got) == b"ok"
    assert got[-1] == ResponseEnd()


def test_a_chunked_response() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    got = events(
        protocol,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    )
    assert body_of(got) == b"abcdefg"
    assert got[-1] == ResponseEnd()
    assert protocol.reusable()


def test_a_chunked_request_body() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    head = protocol.request("PUT", "/", [*HOST, ("transfer-encoding", "chunked")])
    assert head.endswith(b"\r\n\r\n")
    assert protocol.body(b"abc") == b"3\r\nabc\r\n"
    assert protocol.end() == b"0\r\n\r\n"


def test_a_head_response_has_no_body_whatever_its_length() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("HEAD", "/", HOST, end=True)
    got = events(protocol, b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
    assert [type(event) for event in got] == [ResponseHead, ResponseEnd]
    assert protocol.reusable()


def test_100_continue_then_the_body_then_the_response() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    fields = [*HOST, ("content-length", "4"), ("expect", "100-continue")]
    head = protocol.request("POST", "/", fields)
    assert head.endswith(b"expect: 100-continue\r\n\r\n")
    assert events(protocol, b"HTTP/1.1 100 Continue\r\n\r\n") == [Informational(100)]
    assert protocol.body(b"data", end=True) == b"data"
    got = events(protocol, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(got[0], ResponseHead)
    assert got[0].status == 201
    assert protocol.reusable()


def test_an_early_final_answer_means_the_connection_is_not_reused() -> None:
    # The server answers before the body was sent (RFC 9110 section
    # 10.1.1): the request never ended, so the connection cannot go on.
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("POST", "/", [*HOST, ("content-length", "10"), ("expect", "100-continue")])
    got = events(protocol, b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(got[0], ResponseHead)
    assert got[0].status == 413
    assert got[-1] == ResponseEnd()
    assert not protocol.reusable()


def test_103_early_hints_come_before_the_response() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    got = events(
        protocol,
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    assert got[0] == Informational(103)
    assert isinstance(got[1], ResponseHead)


def test_endless_informational_answers_are_refused() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    protocol.receive_data(b"HTTP/1.1 103 Early Hints\r\n\r\n" * 40)
    with pytest.raises(RemoteProtocolError, match=r"more than 32 informational \(1xx\)"):
        events(protocol)


def test_a_head_over_max_header_size_in_one_read() -> None:
    protocol = ClientProtocol(max_header_size=200)
    protocol.request("GET", "/", HOST, end=True)
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 190 + b"\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(RemoteProtocolError, match=r"larger than max_header_size \(200 bytes\)"):
        events(protocol, big)


def test_an_incomplete_head_over_max_header_size() -> None:
    protocol = ClientProtocol(max_header_size=200)
    protocol.request("GET", "/", HOST, end=True)
    with pytest.raises(RemoteProtocolError, match=r"not valid HTTP/1\.1"):
        events(protocol, b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 400)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    ],
)
def test_a_malformed_response_is_a_remote_protocol_error(response: bytes) -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    with pytest.raises(RemoteProtocolError, match=r"not valid HTTP/1\.1") as info:
        events(protocol, response)
    assert not isinstance(info.value, ServerDisconnected)


def test_a_response_framed_two_ways_is_refused() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    with pytest.raises(RemoteProtocolError, match="both Transfer-Encoding and Content-Length"):
        events(
            protocol,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        )


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_a_server_that_closes_after_the_response_is_not_reused(response: bytes) -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    assert events(protocol, response)[-1] == ResponseEnd()
    assert not protocol.reusable()
    protocol.receive_data(b"")
    assert protocol.server_closed
    assert events(protocol) == [ServerClosed()]


def test_a_request_saying_close_is_not_reused() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", [*HOST, ("connection", "close")], end=True)
    events(protocol, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert not protocol.reusable()


def test_a_response_not_read_to_its_end_is_not_reused() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    events(protocol, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert not protocol.reusable()


def test_the_end_of_stream_mid_body_is_a_disconnect() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    events(protocol, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    protocol.receive_data(b"")
    with pytest.raises(ServerDisconnected, match="before the response was complete"):
        events(protocol)


def test_the_end_of_stream_before_any_response_is_a_disconnect() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    protocol.request("GET", "/", HOST, end=True)
    protocol.receive_data(b"")
    with pytest.raises(ServerDisconnected):
        events(protocol)


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        ([*HOST, ("content-length", "5")], b"abc"),  # less than declared
        ([*HOST, ("content-length", "2")], b"abc"),  # more than declared
    ],
)
def test_a_body_that_breaks_its_content_length_is_a_value_error(
    fields: list[tuple[str, str]], body: bytes
) -> None:
    protocol = ClientProtocol(max_header_size=1024)
    with pytest.raises(ValueError, match="cannot send this request"):
        protocol.request("POST", "/", fields, body, end=True)


def test_a_bad_request_head_is_a_value_error() -> None:
    protocol = ClientProtocol(max_header_size=1024)
    with pytest.raises(ValueError, match="cannot send this request"):
        protocol.request("GET", "/ space", HOST, end=True)


# -- the CONNECT tunnel ------------------------------------------------------------------


def tunnel() -> TunnelExchange:
    return TunnelExchange("[::1]:443", "http://proxy.test:3128", "Basic eDp5", 1024)


def test_a_tunnel_opens_on_2xx() -> None:
    exchange = tunnel()
    assert exchange.request() == (
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic eDp5\r\n\r\n"
    )
    assert not exchange.receive_data(b"HTTP/1.1 200 Connection")
    assert exchange.receive_data(b" established\r\n\r\n")


def test_a_refused_tunnel_names_the_proxy_and_its_status() -> None:
    exchange = tunnel()
    exchange.request()
    with pytest.raises(ProxyError) as info:
        exchange.receive_data(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
        )
    assert info.value.status == 407
    assert str(info.value) == (
        "the proxy http://proxy.test:3128 refused the tunnel to [::1]:443:"
        " 407 Proxy Authentication Required"
    )


def test_bytes_before_the_tunnel_was_used_are_refused() -> None:
    exchange = tunnel()
    exchange.request()
    with pytest.raises(ProxyError, match="sent bytes before the tunnel was used") as info:
        exchange.receive_data(b"HTTP/1.1 200 OK\r\n\r\nsurprise")
    assert info.value.status == 502


def test_a_malformed_or_closed_tunnel_answer() -> None:
    exchange = tunnel()
    exchange.request()
    with pytest.raises(ProxyError, match="answered CONNECT wrongly"):
        exchange.receive_data(b"NOT HTTP\r\n\r\n")
    exchange = tunnel()
    exchange.request()
    with pytest.raises(ProxyError, match=r"answered CONNECT wrongly|closed the connection"):
        exchange.receive_data(b"")
