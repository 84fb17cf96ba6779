"""trionet/websocket/_protocol.py on its own, sans-IO: a server's and a
client's protocol talk to each other (or to hand-built frames) as bytes. No
event loop, no socket."""

from __future__ import annotations

import os
import struct

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection

from trionet.websocket import Ping, Pong
from trionet.websocket._deflate import bounded_deflate
from trionet.websocket._handshake import ClientHandshake, accept_upgrade
from trionet.websocket._protocol import (
    CloseReceived,
    Failed,
    MessageData,
    ProtocolEvent,
    State,
    WebSocketProtocol,
)


def masked(first: int, payload: bytes, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 65536:
        header = bytes((first, 0x80 | 126)) + struct.pack("!H", size)
    else:
        header = bytes((first, 0x80 | 127)) + struct.pack("!Q", size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server(
    max_message_size: int | None = None, extensions: list[str] | None = None
) -> WebSocketProtocol:
    return WebSocketProtocol(
        Connection(ConnectionType.SERVER),
        client=False,
        extensions=extensions or [],
        max_message_size=max_message_size,
    )


def client(max_message_size: int | None = None) -> WebSocketProtocol:
    return WebSocketProtocol(
        Connection(ConnectionType.CLIENT),
        client=True,
        extensions=[],
        max_message_size=max_message_size,
    )


def feed(proto: WebSocketProtocol, data: bytes) -> list[ProtocolEvent]:
    proto.receive_data(data)
    return list(proto.events())


def test_opening_through_the_handshake_gives_two_open_protocols() -> None:
    hello = ClientHandshake(
        "ws://example.test/chat",
        host="example.test",
        target="/chat",
        subprotocols=["chat.v1"],
        extra_headers=[],
        compression=True,
        max_message_size=None,
    )
    agreed = accept_upgrade(
        hello.request, subprotocol="chat.v1", headers=None, compression=True, max_message_size=None
    )
    assert agreed.response.startswith(b"HTTP/1.1 101 ")
    assert agreed.extensions == ["permessage-deflate"]
    assert hello.receive_data(agreed.response)
    assert (hello.subprotocol, hello.extensions) == ("chat.v1", ["permessage-deflate"])
    ours, theirs = hello.protocol(), agreed.protocol
    assert ours.state is theirs.state is State.OPEN
    assert not ours.plain  # compressed: no shortcuts
    assert not theirs.plain
    # A compressed message each way.
    assert feed(theirs, ours.send_message("hello " * 50)) == [MessageData("hello " * 50, True, 300)]
    assert feed(ours, theirs.send_message(b"\x00" * 1000)) == [
        MessageData(b"\x00" * 1000, True, 1000)
    ]


@pytest.mark.parametrize("data", ["héllo", "", b"\x00\xff", b"x" * 200, "é" * 40000])
def test_a_message_from_the_client_arrives_whole(data: str | bytes) -> None:
    ours, theirs = client(), server()
    size = len(data.encode()) if isinstance(data, str) else len(data)
    assert feed(theirs, ours.send_message(data)) == [MessageData(data, True, size)]


def test_fragments_arrive_as_pieces_and_a_ping_between_them_is_its_own_event() -> None:
    ours, theirs = client(), server()
    wire = ours.send_fragment("ab", False) + ours.send_ping(b"p") + ours.send_fragment("cd", True)
    assert feed(theirs, wire) == [
        MessageData("ab", False, 2),
        Ping(b"p"),
        MessageData("cd", True, 2),
    ]


def test_ping_and_pong_carry_their_payloads_and_the_pong_answers() -> None:
    ours, theirs = client(), server()
    (ping,) = feed(theirs, ours.send_ping(b"are you there"))
    assert ping == Ping(b"are you there")
    assert feed(ours, theirs.send_pong(ping.payload)) == [Pong(b"are you there")]


def test_the_close_handshake_started_by_the_server() -> None:
    ours, theirs = client(), server()
    frame = theirs.send_close(1001, "going away")
    assert theirs.state is State.LOCAL_CLOSING
    assert theirs.close_started_by == "local"
    (event,) = feed(ours, frame)
    assert isinstance(event, CloseReceived)
    assert (event.code, event.reason) == (1001, "going away")
    assert ours.state is State.REMOTE_CLOSING
    assert ours.close_started_by == "remote"
    answer = ours.send_close(event.code, event.reason)  # the client echoes the code
    assert ours.state is State.CLOSED
    (echo,) = feed(theirs, answer)
    assert isinstance(echo, CloseReceived)
    assert echo.code == 1001
    assert theirs.state is State.CLOSED


def test_the_close_handshake_started_by_the_client_without_a_code() -> None:
    theirs = server()
    (event,) = feed(theirs, masked(0x88, b""))
    assert isinstance(event, CloseReceived)
    assert (event.code, event.reason) == (1005, "")
    # The answer to a close without a code carries none either.
    assert theirs.send_close(event.code, event.reason) == b"\x88\x00"
    assert theirs.state is State.CLOSED


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x81\x02hi", 1002),  # unmasked from a client
        (masked(0x83, b"x"), 1002),  # a reserved opcode
        (masked(0xC1, b"x"), 1002),  # RSV1 without an extension
        (masked(0x81, b"\xff\xfe"), 1007),  # text that is not UTF-8
        (masked(0x80, b"x"), 1002),  # a continuation with nothing to continue
    ],
)
def test_protocol_errors_fail_with_1002_or_1007_and_end_the_events(wire: bytes, code: int) -> None:
    theirs = server()
    events = feed(theirs, wire + masked(0x81, b"after"))
    assert len(events) == 1
    (failed,) = events
    assert isinstance(failed, Failed)
    assert failed.code == code
    assert failed.drop
    assert theirs.state is State.OPEN  # no close frame was exchanged yet
    assert theirs.send_close(failed.code, failed.reason[:120]).startswith(b"\x88")


def test_a_message_over_max_message_size_fails_with_1009_counted_piece_by_piece() -> None:
    ours, theirs = client(), server(max_message_size=10)
    wire = ours.send_fragment(b"123456", False) + ours.send_fragment(b"789012", True)
    wire += ours.send_message(b"later")
    events = feed(theirs, wire)
    assert events[0] == MessageData(b"123456", False, 6)
    failed = events[1]
    assert isinstance(failed, Failed)
    assert (failed.code, failed.drop) == (1009, False)
    assert failed.reason == "a message over max_message_size=10 bytes"
    assert len(events) == 2  # nothing more is kept; the peer's close is awaited


def test_a_message_exactly_at_the_limit_is_taken() -> None:
    ours, theirs = client(), server(max_message_size=5)
    assert feed(theirs, ours.send_message("12345")) == [MessageData("12345", True, 5)]


def test_a_compressed_message_is_refused_as_it_inflates() -> None:
    sender = Connection(ConnectionType.CLIENT, extensions=[_agreed_deflate(client=True)])
    receiver = WebSocketProtocol(
        Connection(ConnectionType.SERVER, extensions=[_agreed_deflate(client=False, limit=100)]),
        client=False,
        extensions=["permessage-deflate"],
        max_message_size=100,
    )
    from wsproto.events import BytesMessage

    (failed,) = feed(receiver, sender.send(BytesMessage(b"\x00" * 100_000)))
    assert isinstance(failed, Failed)
    assert (failed.code, failed.drop) == (1009, True)
    assert failed.reason == "a message over max_message_size=100 bytes"


def _agreed_deflate(*, client: bool, limit: int | None = None):  # type: ignore[no-untyped-def]
    extension = bounded_deflate(limit)
    if client:
        extension.finalize("permessage-deflate")
    else:
        extension.accept("permessage-deflate")
    return extension


def test_discarding_drops_message_data_but_not_control_frames() -> None:
    ours, theirs = client(max_message_size=None), server(max_message_size=3)
    theirs.discard_messages()
    events = feed(theirs, ours.send_message(b"far too long") + ours.send_ping(b"!"))
    assert events == [Ping(b"!")]
    assert theirs.whole_frame(masked(0x82, b"x")) is None  # the shortcut is off too


# -- the whole-frame shortcut ---------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", [b"", b"x", os.urandom(125), os.urandom(126), os.urandom(70000), "héllo".encode()]
)
def test_the_shortcut_gives_what_wsproto_gives(payload: bytes) -> None:
    for first in (0x81, 0x82):
        wire = masked(first, payload)
        fast = server().whole_frame(wire)
        slow = feed(server(), wire)
        if first == 0x81 and not _utf8(payload):
            assert fast is None  # invalid text: wsproto reports the error
            assert isinstance(slow[0], Failed)
            continue
        if len(payload) >= 65536:
            assert fast is None  # a 64-bit length: left to wsproto
            continue
        assert fast is not None
        assert [fast] == slow


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_the_shortcut_only_when_plain_and_the_parser_is_idle() -> None:
    wire = masked(0x82, b"abc")
    assert server(extensions=["permessage-deflate"]).whole_frame(wire) is None
    assert client().whole_frame(wire) is None
    theirs = server()
    assert feed(theirs, wire[:3]) == []  # half a frame is inside wsproto now
    assert theirs.whole_frame(wire) is None
    assert feed(theirs, wire[3:]) == [MessageData(b"abc", True, 3)]
    assert theirs.whole_frame(wire) == MessageData(b"abc", True, 3)  # idle again
    # In the middle of a fragmented message: not for the shortcut.
    assert feed(theirs, masked(0x02, b"a")) == [MessageData(b"a", False, 1)]
    assert theirs.whole_frame(wire) is None


def test_the_shortcut_enforces_max_message_size() -> None:
    theirs = server(max_message_size=2)
    assert theirs.whole_frame(masked(0x82, b"ab")) == MessageData(b"ab", True, 2)
    failed = theirs.whole_frame(masked(0x82, b"abc"))
    assert isinstance(failed, Failed)
    assert (failed.code, failed.drop) == (1009, False)
    # Nothing more is kept after that.
    assert theirs.whole_frame(masked(0x82, b"a")) is None
    assert feed(theirs, masked(0x82, b"a")) == []


def test_the_plain_sender_builds_what_wsproto_builds() -> None:
    plain = server()
    wsproto_built = server(extensions=["x"])  # not plain: wsproto frames it
    for data in ("héllo", b"\x00" * 300, b"y" * 70000):
        assert plain.send_message(data) == wsproto_built.send_message(data)
