"""permessage-deflate (RFC 7692) on trionet's server and client, checked
without any outside peer: trionet's client against trionet's server, and a
raw wsproto peer that offers the extension's parameters one by one and looks
at the frames on the wire. Oversized and bomb-shaped compressed messages are
in ``test_websocket_hostile.py``."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import trio
from wsproto.events import CloseConnection, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import generate_accept_token

import trionet.websocket
from tests._ws import (
    CONTINUATION,
    HANG_GUARD,
    PING,
    TEXT,
    RawPeer,
    echo,
    frame,
    raw_listener,
    start_ws,
    url,
)
from trionet.websocket import connect

# Text that deflate shrinks a lot, as JSON and HTML do.
REPETITIVE = "the quick brown fox jumps over the lazy dog; " * 2000  # 90 KB


def deflated(data: bytes, wbits: int = 15) -> bytes:
    """A message's payload as permessage-deflate sends it (RFC 7692 section
    7.2.1): raw deflate, flushed, without the final empty block's tail."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def agreed(peer: RawPeer) -> PerMessageDeflate:
    """The permessage-deflate the server's 101 agreed to, as wsproto (our
    side) understood the answer's parameters."""
    assert peer.accepted is not None
    [extension] = peer.accepted.extensions
    assert isinstance(extension, PerMessageDeflate)
    assert extension.enabled()
    return extension


@pytest.mark.parametrize(
    ("server_on", "client_on"),
    [(True, True), (True, False), (False, True)],
    ids=["both", "client-off", "server-off"],
)
async def test_trionet_client_and_server_agree_and_compress_on_the_wire(
    nursery: trio.Nursery, server_on: bool, client_on: bool
) -> None:
    seen: list[Any] = []

    async def handler(ws: trionet.websocket.WebSocketConnection) -> None:
        seen.append(ws)
        await echo(ws)

    server = await start_ws(nursery, handler, compression=server_on)
    with trio.fail_after(HANG_GUARD):
        async with connect(url(server), compression=client_on) as ws:
            await ws.send(REPETITIVE)
            assert (await ws.receive()).data == REPETITIVE
            wire = ws.statistics()
            agreed = server_on and client_on
            expected = ["permessage-deflate"] if agreed else []
            assert ws.extensions == expected
            assert seen[0].extensions == expected
            offered = "permessage-deflate" in ws.response_headers.get(
                "sec-websocket-extensions", ""
            )
            assert offered == agreed
            if agreed:
                # Both directions went compressed: far fewer bytes than text.
                assert wire.bytes_sent < len(REPETITIVE) // 20
                assert wire.bytes_received < len(REPETITIVE) // 20
            else:
                assert wire.bytes_sent > len(REPETITIVE)
                assert wire.bytes_received > len(REPETITIVE)


async def echo_sizes(peer: RawPeer, message: str, times: int) -> list[int]:
    """Send ``message`` ``times`` times, one at a time, and return how many
    bytes each echo took on the wire."""
    sizes = []
    for _ in range(times):
        before = peer.received_bytes
        await peer.send(TextMessage(message))
        event, _ = await peer.until(TextMessage)
        assert isinstance(event, TextMessage)
        assert event.data == message
        sizes.append(peer.received_bytes - before)
    return sizes


MESSAGE = "a message of moderate size that the second copy can point back to " * 20


async def test_context_takeover_makes_a_repeated_message_cheaper(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    async with RawPeer.connect(server.port, compression=True) as peer:
        agreed(peer)
        first, second = await echo_sizes(peer, MESSAGE, 2)
    # The second echo refers back to the first, kept in the window.
    assert second < first // 2


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        (PerMessageDeflate(server_no_context_takeover=True), {"server_no_context_takeover": True}),
        (PerMessageDeflate(client_no_context_takeover=True), {"client_no_context_takeover": True}),
        (PerMessageDeflate(server_max_window_bits=9), {"server_max_window_bits": 9}),
        (PerMessageDeflate(client_max_window_bits=10), {"client_max_window_bits": 10}),
    ],
    ids=[
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    ],
)
async def test_the_server_accepts_each_parameter_and_honours_it(
    nursery: trio.Nursery, offer: PerMessageDeflate, answer: dict[str, object]
) -> None:
    server = await start_ws(nursery, echo)
    async with RawPeer.connect(server.port, compression=True, extension=offer) as peer:
        extension = agreed(peer)
        for name, value in answer.items():
            assert getattr(extension, name) == value, name
        # wsproto on our side decompresses with exactly what was agreed (a
        # 9-bit window, no context between messages...), so an echo that
        # decodes proves the server compressed that way.
        sizes = await echo_sizes(peer, MESSAGE, 3)
        # Our side compresses as agreed too (a 10-bit window, a fresh context
        # per message): the server inflated it right, or the echo differs.
    if "server_no_context_takeover" in answer:
        # No back-reference across messages: every echo costs the same.
        assert sizes[0] == sizes[1] == sizes[2]
    else:
        assert sizes[1] < sizes[0]


async def test_a_fragmented_compressed_message_is_reassembled(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    payload = deflated(REPETITIVE.encode())
    third = len(payload) // 3
    pieces = [payload[:third], payload[third : 2 * third], payload[2 * third :]]
    async with RawPeer.connect(server.port, compression=True) as peer:
        # RFC 7692 section 6.1: RSV1 on the first frame only.
        await peer.send_raw(
            frame(TEXT, pieces[0], fin=False, rsv1=True)
            + frame(CONTINUATION, pieces[1], fin=False)
            + frame(PING, b"between")  # a control frame may come between fragments
            + frame(CONTINUATION, pieces[2], fin=True)
        )
        parts: list[str] = []
        with trio.fail_after(HANG_GUARD):
            while True:
                event = await peer.next_event()
                assert event is not None, "the server closed the connection"
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        break
    assert "".join(parts) == REPETITIVE


async def test_a_fragmented_compressed_message_to_the_client_is_reassembled() -> None:
    payload = deflated(REPETITIVE.encode())
    half = len(payload) // 2
    async with raw_listener() as listener, trio.open_nursery() as nursery:
        received: list[Any] = []

        async def client() -> None:
            async with connect(f"ws://127.0.0.1:{listener.port}/") as ws:
                received.append((await ws.receive()).data)

        nursery.start_soon(client)
        with trio.fail_after(HANG_GUARD):
            async with listener.accept(compression=True) as peer:
                await peer.send_raw(
                    frame(TEXT, payload[:half], fin=False, rsv1=True, masked=False)
                    + frame(CONTINUATION, payload[half:], fin=True, masked=False)
                )
                close = await peer.close_frame()
                await peer.answer_close(close)
    assert received == [REPETITIVE]


@pytest.mark.parametrize(
    "bad",
    [
        frame(PING, b"x", rsv1=True),
        frame(TEXT, deflated(b"first half, "), fin=False, rsv1=True)
        + frame(CONTINUATION, deflated(b"second"), fin=True, rsv1=True),
    ],
    ids=["compressed control frame", "RSV1 on a continuation"],
)
async def test_rsv1_where_rfc_7692_forbids_it_is_a_protocol_error(
    nursery: trio.Nursery, bad: bytes
) -> None:
    server = await start_ws(nursery, echo, handler_errors="log")
    async with RawPeer.connect(server.port, compression=True) as peer:
        await peer.send_raw(bad)
        close = await peer.close_frame()
    assert isinstance(close, CloseConnection)
    assert close.code == 1002


async def test_a_compressed_binary_message_round_trips_between_trionet_peers(
    nursery: trio.Nursery,
) -> None:
    server = await start_ws(nursery, echo)
    data = bytes(range(256)) * 400 + bytes(50_000)
    async with connect(url(server)) as ws:
        for _ in range(3):
            await ws.send(data)
            assert (await ws.receive()).data == data
        assert ws.statistics().bytes_sent < len(data)


async def upgrade_answer(port: int, offer: str) -> tuple[str, str | None]:
    """Send an upgrade request offering ``offer`` by hand; return the status
    line of the answer and its Sec-WebSocket-Extensions value, if any."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: " + offer.encode() + b"\r\n\r\n"
        )
        head = b""
        with trio.fail_after(HANG_GUARD):
            while b"\r\n\r\n" not in head:
                chunk = await stream.receive_some(4096)
                assert chunk, f"closed after {head!r}"
                head += chunk
    status, *fields = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    for line in fields:
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-extensions":
            return status, value.strip()
    return status, None


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", "permessage-deflate"),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9",
        ),
        (
            'permessage-deflate; server_max_window_bits="10"',
            "permessage-deflate; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=15",
        ),
        (
            "permessage-deflate; client_max_window_bits=12",
            "permessage-deflate; client_max_window_bits=12",
        ),
        # RFC 7692 section 7.1: offers the server must decline.
        ("permessage-deflate; server_max_window_bits=7", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=abc", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; unknown_parameter=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        # A declined offer lets the client's next one be taken.
        (
            "permessage-deflate; unknown=1, permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=9",
        ),
        ("x-webkit-deflate-frame", None),
    ],
)
async def test_the_server_answers_each_offer_as_rfc_7692_says(
    nursery: trio.Nursery, offer: str, answer: str | None
) -> None:
    server = await start_ws(nursery, echo)
    status, extensions = await upgrade_answer(server.port, offer)
    assert status == "HTTP/1.1 101 Switching Protocols"
    # The parameters in any order.
    assert (extensions and sorted(extensions.split("; "))) == (
        answer and sorted(answer.split("; "))
    )


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; unknown_parameter",
        "x-unoffered-extension",
    ],
)
async def test_the_client_fails_a_101_with_an_extension_answer_it_cannot_accept(
    answer: str,
) -> None:
    async with raw_listener() as listener, trio.open_nursery() as nursery:
        outcome: list[BaseException] = []

        async def client() -> None:
            try:
                async with connect(f"ws://127.0.0.1:{listener.port}/"):
                    pass
            except Exception as exc:
                outcome.append(exc)

        nursery.start_soon(client)
        with trio.fail_after(HANG_GUARD):
            stream = await listener.accept_stream()
            async with stream:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += await stream.receive_some(4096)
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in request.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                await stream.send_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + generate_accept_token(key)
                    + b"\r\nSec-WebSocket-Extensions: "
                    + answer.encode()
                    + b"\r\n\r\n"
                )
                try:
                    while await stream.receive_some(4096):
                        pass
                except trio.BrokenResourceError:
                    pass
    [error] = outcome
    assert isinstance(error, trionet.websocket.HandshakeError), repr(error)
