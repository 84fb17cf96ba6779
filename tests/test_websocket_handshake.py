"""trionet/websocket/_handshake.py on its own, sans-IO: upgrade requests and
answers as bytes, both sides. No event loop, no socket (the network side is
in tests/test_websocket.py and tests/test_websocket_hostile.py)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from trionet.websocket import HandshakeError
from trionet.websocket._client import parse_url
from trionet.websocket._handshake import (
    ClientHandshake,
    UpgradeRefused,
    accept_upgrade,
    encode_headers,
    origin_allowed,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def request(*extra: str, version: str = "13", key: str = KEY) -> bytes:
    lines = [
        "GET /chat HTTP/1.1",
        "Host: example.test",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def accept(head: bytes, **kwargs: object) -> object:
    options: dict[str, object] = {
        "subprotocol": None,
        "headers": None,
        "compression": True,
        "max_message_size": None,
    }
    options.update(kwargs)
    return accept_upgrade(head, **options)  # type: ignore[arg-type]


def test_the_accept_key_of_rfc_6455() -> None:
    agreed = accept_upgrade(
        request(), subprotocol=None, headers=None, compression=False, max_message_size=None
    )
    assert agreed.response.startswith(b"HTTP/1.1 101 ")
    assert f"sec-websocket-accept: {ACCEPT}".encode() in agreed.response.lower().replace(
        ACCEPT.lower().encode(), ACCEPT.encode()
    )
    assert agreed.extensions == []
    assert agreed.protocol.plain


def test_subprotocol_and_deflate_are_negotiated_and_extra_headers_sent() -> None:
    agreed = accept_upgrade(
        request("Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Extensions: permessage-deflate"),
        subprotocol="b",
        headers={"x-served-by": "trionet"},
        compression=True,
        max_message_size=None,
    )
    head = agreed.response.lower()
    assert b"sec-websocket-protocol: b\r\n" in head
    assert b"sec-websocket-extensions: permessage-deflate" in head
    assert b"x-served-by: trionet\r\n" in head
    assert agreed.extensions == ["permessage-deflate"]
    assert not agreed.protocol.plain


def test_compression_off_declines_the_offer() -> None:
    agreed = accept_upgrade(
        request("Sec-WebSocket-Extensions: permessage-deflate"),
        subprotocol=None,
        headers=None,
        compression=False,
        max_message_size=None,
    )
    assert b"sec-websocket-extensions" not in agreed.response.lower()
    assert agreed.extensions == []


def test_a_subprotocol_the_client_did_not_offer_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="was not offered"):
        accept(request("Sec-WebSocket-Protocol: a"), subprotocol="z")


def test_an_invalid_extra_header_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="x-bad"):
        encode_headers({"x-bad": "a\r\nb"})


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (request(version="8"), 426),  # another version: 426 and the one we speak
        (request().replace(b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n", b""), 400),
        (request().replace(b"Upgrade: websocket\r\n", b""), 400),
    ],
)
def test_bad_upgrade_requests_are_refused_with_a_status(head: bytes, status: int) -> None:
    with pytest.raises(UpgradeRefused) as caught:
        accept(head)
    assert caught.value.status == status
    if status == 426:
        assert ("Sec-WebSocket-Version", "13") in [
            (name.title(), value) for name, value in caught.value.headers
        ] or any(name.lower() == "sec-websocket-version" for name, _ in caught.value.headers)


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://app.example", None, True),
        ("https://APP.example", ["https://app.example"], True),
        ("https://evil.example", ["https://app.example"], False),
        (None, ["https://app.example"], False),
        (None, ["https://app.example", None], True),
    ],
)
def test_origin_allow_list(
    origin: str | None, allowed: list[str | None] | None, expected: bool
) -> None:
    assert origin_allowed(origin, allowed) is expected


# -- the client's side -----------------------------------------------------------------------


def client(**kwargs: object) -> ClientHandshake:
    options: dict[str, object] = {
        "host": "example.test",
        "target": "/chat?x=1",
        "subprotocols": ["chat.v1"],
        "extra_headers": [(b"authorization", b"Bearer t")],
        "compression": False,
        "max_message_size": None,
    }
    options.update(kwargs)
    return ClientHandshake("ws://example.test/chat?x=1", **options)  # type: ignore[arg-type]


def key_of(request_bytes: bytes) -> str:
    for line in request_bytes.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"sec-websocket-key":
            return value.strip().decode()
    raise AssertionError("no key")


def answer(key: str, *extra: str) -> bytes:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {base64.b64encode(digest).decode()}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_the_client_request_and_an_answer_in_pieces() -> None:
    hello = client()
    assert hello.request.startswith(b"GET /chat?x=1 HTTP/1.1\r\n")
    assert b"authorization: Bearer t\r\n" in hello.request.replace(
        b"Authorization", b"authorization"
    )
    reply = answer(key_of(hello.request), "Sec-WebSocket-Protocol: chat.v1")
    assert not hello.receive_data(reply[:20])
    assert hello.receive_data(reply[20:])
    assert hello.subprotocol == "chat.v1"
    assert hello.extensions == []
    assert (b"sec-websocket-protocol", b"chat.v1") in [
        (name.lower(), value) for name, value in hello.response_fields
    ]
    assert hello.protocol().client


def test_a_wrong_accept_key_is_a_handshake_error() -> None:
    hello = client()
    with pytest.raises(HandshakeError, match="answered the upgrade wrongly"):
        hello.receive_data(answer("not the key"))


def test_a_refusal_carries_status_headers_and_body() -> None:
    hello = client()
    refusal = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nX-Why: no\r\n\r\nnope!"
    with pytest.raises(
        HandshakeError, match="refused the WebSocket upgrade with HTTP 403"
    ) as caught:
        hello.receive_data(refusal)
    assert caught.value.status == 403
    assert caught.value.body == b"nope!"
    assert (b"x-why", b"no") in [(name.lower(), value) for name, value in caught.value.headers]


def test_the_server_closing_during_the_handshake_is_a_handshake_error() -> None:
    hello = client()
    with pytest.raises(HandshakeError, match="answered the upgrade wrongly"):
        hello.receive_data(b"")  # h11 reads an end before any answer as a bad one
    cut = client()
    assert not cut.receive_data(b"HTTP/1.1 101 Switching")
    with pytest.raises(HandshakeError, match="answered the upgrade wrongly"):
        cut.receive_data(b"")  # in the middle of the head: not a valid answer


def test_an_over_long_response_head_is_a_handshake_error() -> None:
    hello = client()
    hello.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n")
    filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    for _ in range(15):
        assert not hello.receive_data(filler)
    # (h11's own bound on an incomplete head is the same 16 KiB, and may
    # speak first.)
    with pytest.raises(
        HandshakeError, match=r"over-long response head|answered the upgrade wrongly"
    ):
        hello.receive_data(filler * 2)


def test_an_international_host_is_connected_to_by_its_idna_2008_a_label() -> None:
    # What the client resolves, sends as SNI and writes in Host: faß.de is
    # xn--fa-hia.de (IDNA 2008, UTS 46), not fass.de (Python's IDNA 2003).
    secure, host, port, target, host_header = parse_url("wss://faß.de:8443/chat?x=1")
    assert (secure, host, port, target) == (True, "xn--fa-hia.de", 8443, "/chat?x=1")
    assert host_header == "xn--fa-hia.de:8443"
    with pytest.raises(ValueError, match="not a valid international host name"):
        parse_url("ws://☃.com/")
