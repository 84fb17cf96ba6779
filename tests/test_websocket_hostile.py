"""trionet.websocket against peers the test drives frame by frame: raw
wsproto clients (and servers) over loopback sockets that fragment at will,
never answer a ping or a close, vanish mid-message, break the protocol, send
oversized messages and compression bombs, or glue frames to the handshake.
Time-related cases run under ``autojump_clock``, over memory streams (the
server's own code, the socket replaced; see tests/_ws.py).
"""

from __future__ import annotations

import itertools
import tracemalloc
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.utilities import generate_accept_token

import trionet
import trionet.websocket
from tests._wait import wait_until
from tests._ws import (
    BINARY,
    CLOSE,
    CONTINUATION,
    HANG_GUARD,
    LOOPBACK,
    MEMORY_URL,
    PING,
    TEXT,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RawPeer,
    Record,
    TextMessage,
    deflate_zeros,
    echo,
    frame,
    memory_connects,
    memory_raw_listener,
    raw_listener,
    start_ws,
    start_ws_in_memory,
    url,
    watchdog,
)
from trionet.websocket import HandshakeError, WebSocketClosed, WebSocketConnection, connect

# A guard in virtual seconds, for autojump_clock tests: larger than any
# timeout they set, reached at once if something hangs.
VIRTUAL_GUARD = 1000


@pytest.fixture
async def nursery(nursery: trio.Nursery) -> trio.Nursery:
    """pytest-trio's nursery, watched: a test that hangs fails (an autouse
    async fixture would never run: pytest-trio runs only the fixtures a
    test names)."""
    nursery.start_soon(watchdog)
    return nursery


def message(data: str | bytes, finished: bool = True) -> Any:
    """The wsproto event sending ``data`` (text or binary)."""
    if isinstance(data, str):
        return TextMessage(data, message_finished=finished)
    return BytesMessage(data, message_finished=finished)


# -- fragmented messages from the peer -----------------------------------------------------------


async def test_a_message_in_many_frames_arrives_whole(nursery: trio.Nursery) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    text = "frägmented ☃ text"
    encoded = text.encode()
    pieces = [b"\x00" * 10, b"", b"\x01" * 70000, b"\x02", b"\x03" * 5]
    async with RawPeer.connect(server.port) as peer:
        # One byte per frame: every multi-byte character is split across frames.
        for index in range(len(encoded)):
            opcode = TEXT if index == 0 else CONTINUATION
            last = index == len(encoded) - 1
            await peer.send_raw(frame(opcode, encoded[index : index + 1], fin=last))
        for index, piece in enumerate(pieces):
            await peer.send(message(piece, finished=index == len(pieces) - 1))
        await peer.send(CloseConnection(1000))
        assert (await peer.close_frame()).code == 1000
    await record.wait()
    assert record.error is None
    assert record.messages == [
        trionet.websocket.TextMessage(text),
        trionet.websocket.BinaryMessage(b"".join(pieces)),
    ]


async def test_receive_fragments_gives_each_piece_as_it_arrives(nursery: trio.Nursery) -> None:
    async def handler(ws: WebSocketConnection) -> None:
        fragments = ws.receive_fragments()
        async for piece in fragments:
            await ws.send(f"got {piece}")
        await ws.send(f"end, text: {fragments.is_text}")
        await echo(ws)

    server = await start_ws(nursery, handler)
    async with RawPeer.connect(server.port) as peer:
        # Each piece is sent only once the server has had the one before:
        # the handler sees the message before it is complete.
        for piece, last in (("one", False), ("two", False), ("three", True)):
            await peer.send(message(piece, finished=last))
            assert await peer.messages(1) == [f"got {piece}"]
        assert await peer.messages(1) == ["end, text: True"]
        await peer.send(message("next, whole"))
        assert await peer.messages(1) == ["next, whole"]


async def test_a_ping_between_fragments_is_answered_at_once(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    async with RawPeer.connect(server.port) as peer:
        await peer.send(message(b"first half, ", finished=False))
        await peer.send(Ping(b"mid-message"))
        pong, before = await peer.until(Pong)
        assert pong.payload == b"mid-message"
        assert before == []  # nothing of the message came back yet: it is not finished
        await peer.send(message(b"second half", finished=True))
        assert await peer.messages(1) == [b"first half, second half"]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.one_of(st.text(max_size=200), st.binary(max_size=300)),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
)
async def test_any_fragmentation_gives_back_the_same_message(
    data: str | bytes, cuts: list[int]
) -> None:
    payload = data.encode() if isinstance(data, str) else data
    # Cut anywhere, UTF-8 characters included; empty frames too.
    bounds = [0, *sorted(cut % (len(payload) + 1) for cut in cuts), len(payload)]
    pieces = [payload[start:end] for start, end in itertools.pairwise(bounds)]
    first = TEXT if isinstance(data, str) else BINARY
    frames = b"".join(
        frame(first if index == 0 else CONTINUATION, piece, fin=index == len(pieces) - 1)
        for index, piece in enumerate(pieces)
    )
    async with trio.open_nursery() as nursery:
        server = await start_ws(nursery, echo)
        async with RawPeer.connect(server.port) as peer:
            await peer.send_raw(frames)
            assert await peer.messages(1) == [data]
        nursery.cancel_scope.cancel()


# -- a peer that vanishes --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("when", ["mid-message", "after a message"])
async def test_a_peer_that_vanishes_ends_the_loop_with_1006(
    nursery: trio.Nursery, how: str, when: str
) -> None:
    seen: list[object] = []
    got_whole = trio.Event()
    codes: list[int | None] = []

    async def handler(ws: WebSocketConnection) -> None:
        try:
            async for received in ws:
                seen.append(received)
                got_whole.set()
                await ws.send(received.data)
        except WebSocketClosed as exc:
            seen.append(exc)
            codes.append(ws.close_code)
            raise  # a peer's failure: counted, and no handler bug

    server = await start_ws(nursery, handler)  # handler_errors="raise"
    async with RawPeer.connect(server.port) as peer:
        if when == "mid-message":
            await peer.send(message("half a mess", finished=False))
        else:
            await peer.send(message("whole"))
            with trio.fail_after(HANG_GUARD):
                await got_whole.wait()
        if how == "reset":
            await peer.reset()
        else:
            await peer.stream.aclose()  # FIN, and no close frame
    # Counted as the peer's failure first, then the socket is closed and the
    # slot given back: wait for both.
    await wait_until(
        lambda: server.statistics().connection_errors == 1 and server.statistics().active == 0
    )
    error = seen[-1]
    assert isinstance(error, WebSocketClosed)
    assert error.code == 1006
    assert codes == [1006]
    if when == "after a message":
        assert seen[0] == trionet.websocket.TextMessage("whole")
    else:
        assert len(seen) == 1  # no piece of the cut message was delivered as a message
    assert server.statistics().handler_errors == 0
    # The server goes on serving.
    async with connect(url(server)) as ws:
        await ws.send("next client")
        assert await ws.receive() == trionet.websocket.TextMessage("next client")


async def test_receive_fragments_raises_1006_when_the_message_is_cut(
    nursery: trio.Nursery,
) -> None:
    outcome: list[object] = []

    async def handler(ws: WebSocketConnection) -> None:
        fragments = ws.receive_fragments()
        try:
            async for piece in fragments:
                outcome.append(piece)
                await ws.send("ack")
        except WebSocketClosed as exc:
            outcome.append(exc)

    server = await start_ws(nursery, handler)
    async with RawPeer.connect(server.port) as peer:
        await peer.send(message(b"first piece", finished=False))
        assert await peer.messages(1) == ["ack"]
        await peer.reset()
    await wait_until(lambda: len(outcome) == 2)
    assert outcome[0] == b"first piece"
    error = outcome[1]
    assert isinstance(error, WebSocketClosed)
    assert error.code == 1006


# -- keepalive ------------------------------------------------------------------------------


async def test_unanswered_keepalive_pings_end_the_connection_with_1011(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    record = Record()
    _, listener = await start_ws_in_memory(
        nursery, record.handler, ping_interval=5, ping_timeout=10
    )
    async with RawPeer.over(listener.connect_stream()) as peer:
        events = await peer.rest(VIRTUAL_GUARD)  # never answered; until the socket closes
    assert peer.eof
    assert any(isinstance(event, Ping) for event in events)
    # The server said why before it dropped the connection.
    [close] = [event for event in events if isinstance(event, CloseConnection)]
    assert (close.code, close.reason) == (1011, "keepalive ping timeout")
    await record.wait(VIRTUAL_GUARD)
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 1011
    assert record.ws is not None
    assert record.ws.closed
    assert record.ws.close_code == 1011


async def test_client_keepalive_against_a_server_that_never_answers(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    async with memory_raw_listener(monkeypatch) as listener, trio.open_nursery() as inner:

        async def silent_server() -> None:
            async with listener.accept() as peer:
                seen.extend(await peer.rest(VIRTUAL_GUARD))
                seen.append("eof" if peer.eof else "open")

        inner.start_soon(silent_server)

        async def client() -> None:
            async with connect(MEMORY_URL, ping_interval=5, ping_timeout=10) as ws:
                async for _ in ws:
                    pass

        with pytest.raises(WebSocketClosed) as info:
            await client()
    assert info.value.code == 1011
    assert any(isinstance(event, Ping) for event in seen)
    [close] = [event for event in seen if isinstance(event, CloseConnection)]
    assert close.code == 1011  # the client said why
    assert seen[-1] == "eof"  # the client closed its socket


async def test_no_keepalive_pings_with_ping_interval_none(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, listener = await start_ws_in_memory(nursery, echo, ping_interval=None)
    async with RawPeer.over(listener.connect_stream()) as peer:
        seen = []
        with trio.move_on_after(600):
            seen.append(await peer.next_event())
        assert seen == []
        await peer.send(message("still open after ten minutes"))
        assert await peer.messages(1) == ["still open after ten minutes"]


async def test_answered_keepalive_pings_keep_the_connection_open(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, listener = await start_ws_in_memory(nursery, echo, ping_interval=10, ping_timeout=5)
    async with RawPeer.over(listener.connect_stream()) as peer:
        pings = 0
        with trio.move_on_after(100):
            while True:
                event = await peer.next_event()
                assert isinstance(event, Ping), event
                pings += 1
                await peer.send(event.response())
        assert pings >= 5
        await peer.send(message("alive"))
        assert await peer.messages(1) == ["alive"]


async def test_ping_waits_for_its_pong(nursery: trio.Nursery) -> None:
    ponged = trio.Event()

    async def handler(ws: WebSocketConnection) -> None:
        await ws.ping(b"hold")
        ponged.set()
        await echo(ws)

    server = await start_ws(nursery, handler, ping_interval=None)
    async with RawPeer.connect(server.port) as peer:
        ping, _ = await peer.until(Ping)
        assert ping.payload == b"hold"
        await peer.send(Pong(b"unsolicited"))  # allowed, and answers nothing
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert not ponged.is_set()
        await peer.send(ping.response())
        with trio.fail_after(HANG_GUARD):
            await ponged.wait()
        await peer.send(message("after the pong"))
        assert await peer.messages(1) == ["after the pong"]


async def test_events_reports_pings_and_pongs_with_control_events(nursery: trio.Nursery) -> None:
    events: list[Any] = []

    async def handler(ws: WebSocketConnection) -> None:
        async for event in ws.events():
            events.append(event)
            if isinstance(event, trionet.websocket.TextMessage):
                await ws.send("seen")

    server = await start_ws(nursery, handler, control_events=True, ping_interval=None)
    async with RawPeer.connect(server.port) as peer:
        await peer.send(Ping(b"p1"))
        pong, _ = await peer.until(Pong)
        assert pong.payload == b"p1"  # answered by trionet, not by the handler
        await peer.send(Pong(b"u1"))
        await peer.send(message("m"))
        assert await peer.messages(1) == ["seen"]
    assert events[:3] == [
        trionet.websocket.Ping(b"p1"),
        trionet.websocket.Pong(b"u1"),
        trionet.websocket.TextMessage("m"),
    ]


async def test_pings_are_answered_while_the_handler_reads_nothing(nursery: trio.Nursery) -> None:
    release = trio.Event()

    async def handler(ws: WebSocketConnection) -> None:
        await release.wait()  # accepted, and reading nothing until told
        received = [await ws.receive() for _ in range(3)]
        await ws.send(" | ".join(str(m.data) for m in received))

    server = await start_ws(nursery, handler)
    async with RawPeer.connect(server.port) as peer:
        for index in range(3):
            await peer.send(message(f"unread {index}"))
            await peer.send(Ping(b"p%d" % index))
            pong, _ = await peer.until(Pong)
            assert pong.payload == b"p%d" % index
        release.set()
        assert await peer.messages(1) == ["unread 0 | unread 1 | unread 2"]


# -- message size limits ----------------------------------------------------------------------


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize(
    ("at_limit", "over"),
    [("é" * 500, "é" * 500 + "a"), (b"b" * 1000, b"b" * 1001)],
    ids=["text in UTF-8 bytes", "binary"],
)
async def test_a_message_over_max_message_size_is_closed_with_1009(
    nursery: trio.Nursery, compression: bool, at_limit: str | bytes, over: str | bytes
) -> None:
    errors: list[WebSocketClosed] = []

    async def handler(ws: WebSocketConnection) -> None:
        try:
            await echo(ws)
        except WebSocketClosed as exc:
            errors.append(exc)

    server = await start_ws(nursery, handler, max_message_size=1000)
    async with RawPeer.connect(server.port, compression=compression) as peer:
        await peer.send(message(at_limit))
        assert await peer.messages(1) == [at_limit]  # exactly the limit passes
        await peer.send(message(over))
        close = await peer.close_frame()
        assert close.code == 1009
        await peer.answer_close(close)
        await peer.rest()  # and the server closes the socket
    await wait_until(lambda: len(errors) == 1)
    assert errors[0].code == 1009


async def test_the_limit_counts_every_fragment_of_a_message(nursery: trio.Nursery) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler, max_message_size=1000)
    async with RawPeer.connect(server.port) as peer:
        await peer.send(message(b"x" * 600, finished=False))
        await peer.send(message(b"y" * 600, finished=True))
        close = await peer.close_frame()
        await peer.answer_close(close)
    assert close.code == 1009
    await record.wait()
    assert record.messages == []
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 1009


async def test_a_frame_announcing_gigabytes_is_refused_as_its_bytes_cross_the_limit(
    nursery: trio.Nursery,
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler, max_message_size=1000)
    announced = frame(BINARY, b"z" * 70000)[:2] + (2 << 30).to_bytes(8, "big") + b"\x00" * 4
    async with RawPeer.connect(server.port) as peer:
        # The header says 2 GiB; only 2000 bytes follow, and the server does
        # not wait for the rest (a mask of zeros leaves them as sent).
        await peer.send_raw(announced + b"z" * 2000)
        close = await peer.close_frame()
    assert close.code == 1009
    await record.wait()
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 1009


@pytest.mark.parametrize("frames", [1, 25], ids=["one frame", "fragmented"])
async def test_a_compression_bomb_is_refused_without_inflating_it(
    nursery: trio.Nursery, frames: int
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)  # the default limit: 1 MiB
    payload = deflate_zeros(100 << 20)  # about 100 KB that inflate to 100 MiB
    step = -(-len(payload) // frames)
    chunks = [payload[start : start + step] for start in range(0, len(payload), step)]
    data = b"".join(
        frame(
            BINARY if index == 0 else CONTINUATION,
            chunk,
            fin=index == len(chunks) - 1,
            rsv1=index == 0,  # compressed (RFC 7692: set on the first frame only)
        )
        for index, chunk in enumerate(chunks)
    )
    async with RawPeer.connect(server.port, compression=True) as peer:
        tracemalloc.start()
        try:
            try:
                await peer.send_raw(data)
            except trio.BrokenResourceError:
                pass  # the server may drop the connection before it read it all
            close = await peer.close_frame()
            await peer.rest()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert close.code == 1009
    # Inflating it whole would have needed 100 MiB; the limit is 1 MiB.
    assert peak < 16 << 20, f"{peak} bytes allocated at most"
    await record.wait()
    assert record.messages == []
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 1009


@pytest.mark.parametrize(
    ("bad", "code", "compression"),
    [
        (frame(BINARY, b"x" * 1001), 1009, False),
        (frame(TEXT, b"\xff not UTF-8"), 1007, False),
        (frame(BINARY, deflate_zeros(2 << 20), rsv1=True), 1009, True),
    ],
    ids=["oversize", "invalid UTF-8", "compressed oversize"],
)
async def test_messages_before_a_violation_are_still_delivered(
    nursery: trio.Nursery, bad: bytes, code: int, compression: bool
) -> None:
    # The good message and the bad frame arrive together; the handler reads
    # only after the connection failed. It must get the good message first,
    # as it would had they come in separate packets, or before a close frame.
    failed = trio.Event()
    record = Record()

    async def handler(ws: WebSocketConnection) -> None:
        await failed.wait()
        await record.handler(ws)

    server = await start_ws(nursery, handler, max_message_size=1000)
    async with RawPeer.connect(server.port, compression=compression) as peer:
        await peer.send_raw(frame(TEXT, b"good") + bad)
        close = await peer.close_frame()
        assert close.code == code
        await peer.answer_close(close)
    failed.set()
    await record.wait()
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == code
    assert record.messages == [trionet.websocket.TextMessage("good")]


async def test_messages_before_a_close_frame_are_delivered(nursery: trio.Nursery) -> None:
    closed = trio.Event()
    record = Record()

    async def handler(ws: WebSocketConnection) -> None:
        await closed.wait()
        await record.handler(ws)

    server = await start_ws(nursery, handler)
    async with RawPeer.connect(server.port) as peer:
        await peer.send_raw(frame(TEXT, b"good") + frame(CLOSE, (4000).to_bytes(2, "big")))
        assert (await peer.close_frame()).code == 4000
    closed.set()
    await record.wait()
    assert record.messages == [trionet.websocket.TextMessage("good")]
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == 4000


# -- protocol violations and the close handshake ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"\xff\xfe not UTF-8"), 1007),
        (frame(TEXT, b"a client must mask", masked=False), 1002),
        (frame(0x3, b"a reserved opcode"), 1002),
        (frame(PING, b"x" * 126), 1002),  # a control frame over 125 bytes
        (frame(PING, b"fragmented", fin=False), 1002),
        (frame(CONTINUATION, b"continues nothing"), 1002),
        (frame(TEXT, b"RSV1 without an extension", rsv1=True), 1002),
        (frame(CLOSE, b"\x03\xe8" + b"\xff"), 1007),  # a reason that is not UTF-8
        (frame(CLOSE, (1005).to_bytes(2, "big")), 1002),  # a code nobody may send
    ],
    ids=[
        "invalid UTF-8",
        "unmasked",
        "reserved opcode",
        "long control frame",
        "fragmented control frame",
        "orphan continuation",
        "RSV1",
        "close reason not UTF-8",
        "close code 1005",
    ],
)
async def test_protocol_violations_are_answered_with_their_close_code(
    nursery: trio.Nursery, data: bytes, code: int
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with RawPeer.connect(server.port) as peer:
        await peer.send_raw(data)
        close = await peer.close_frame()
        await peer.rest()  # and the server closes the socket without waiting
    assert close.code == code
    await record.wait()
    assert isinstance(record.error, WebSocketClosed)
    assert record.error.code == code


@pytest.mark.parametrize(
    ("close", "code", "reason"),
    [
        (frame(CLOSE, (1000).to_bytes(2, "big") + b"bye"), 1000, "bye"),
        (frame(CLOSE, b""), 1005, ""),  # no code, as a browser's ws.close() sends
    ],
    ids=["1000", "no code"],
)
async def test_the_server_answers_a_close_and_closes_tcp(
    nursery: trio.Nursery, close: bytes, code: int, reason: str
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with RawPeer.connect(server.port) as peer:
        await peer.send_raw(close)
        answer = await peer.close_frame()
        assert await peer.rest() == []  # then TCP closes: the server does not linger
    assert answer.code == code
    await record.wait()
    assert record.error is None  # a clean close ends the loop quietly
    assert record.ws is not None
    assert record.ws.close_code == code
    assert record.ws.close_reason == reason


async def test_aclose_against_a_peer_that_never_answers_returns_and_closes_the_socket(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    closed: list[bool] = []

    async def handler(ws: WebSocketConnection) -> None:
        await ws.aclose(1000, "bye")
        closed.append(ws.closed)

    _, listener = await start_ws_in_memory(nursery, handler, close_timeout=3)
    async with RawPeer.over(listener.connect_stream()) as peer:
        close = await peer.close_frame(VIRTUAL_GUARD)  # and never answered
        assert await peer.rest(VIRTUAL_GUARD) == []
    assert close.code == 1000
    assert close.reason == "bye"
    assert peer.eof  # the server closed its end: what the peer sees of a closed socket
    await wait_until(lambda: closed == [True])


async def _aclose_unanswered(close_timeout: float) -> tuple[bool, int | None]:
    """Serve one connection whose peer never answers the close; return
    whether ``aclose()`` returned within ``close_timeout`` plus one virtual
    second, and the close code it left."""
    outcome: list[tuple[bool, int | None]] = []
    done = trio.Event()

    async def handler(ws: WebSocketConnection) -> None:
        with trio.move_on_after(close_timeout + 1) as scope:
            await ws.aclose()
        if scope.cancelled_caught:
            await ws.aclose()
        outcome.append((not scope.cancelled_caught, ws.close_code))
        done.set()

    async with trio.open_nursery() as nursery:
        _, listener = await start_ws_in_memory(nursery, handler, close_timeout=close_timeout)
        async with RawPeer.over(listener.connect_stream()) as peer:
            await peer.close_frame(VIRTUAL_GUARD)
            await peer.rest(VIRTUAL_GUARD)
        with trio.fail_after(VIRTUAL_GUARD):
            await done.wait()
        nursery.cancel_scope.cancel()
    return outcome[0]


async def test_aclose_against_a_peer_that_never_answers_is_bounded_by_close_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    in_time, _ = await _aclose_unanswered(close_timeout=3)
    assert in_time


async def test_close_code_after_an_unanswered_close_is_1006(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, code = await _aclose_unanswered(close_timeout=3)
    assert code == 1006


async def test_client_aclose_against_a_server_that_never_answers(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    async with memory_raw_listener(monkeypatch) as listener, trio.open_nursery() as inner:

        async def deaf_server() -> None:
            async with listener.accept() as peer:
                seen.append(await peer.close_frame(VIRTUAL_GUARD))
                seen.extend(await peer.rest(VIRTUAL_GUARD))
                seen.append("eof" if peer.eof else "open")

        inner.start_soon(deaf_server)
        async with connect(MEMORY_URL, close_timeout=3) as ws:
            with trio.fail_after(VIRTUAL_GUARD):
                await ws.aclose(4000, "leaving")
            assert ws.closed
    [close, end] = seen
    assert isinstance(close, CloseConnection)
    assert close.code == 4000
    assert end == "eof"


# -- the handshake, from the raw side --------------------------------------------------------------


async def test_frames_glued_to_the_upgrade_request_are_not_lost(nursery: trio.Nursery) -> None:
    server = await start_ws(nursery, echo)
    glued = frame(TEXT, "early ☃".encode()) + frame(BINARY, b"\x01\x02") + frame(PING, b"hi")
    async with RawPeer.connect(server.port, glued=glued) as peer:
        pongs: list[bytes] = []
        echoed: list[str | bytes] = []
        with trio.fail_after(HANG_GUARD):
            while len(pongs) < 1 or len(echoed) < 2:
                event = await peer.next_event()
                assert event is not None, (pongs, echoed)
                if isinstance(event, Pong):
                    pongs.append(event.payload)
                elif isinstance(event, TextMessage | BytesMessage):
                    echoed.append(event.data)
    assert pongs == [b"hi"]
    assert echoed == ["early ☃", b"\x01\x02"]


async def test_frames_glued_to_the_101_are_not_lost(nursery: trio.Nursery) -> None:
    async with raw_listener() as listener, trio.open_nursery() as inner:

        async def eager_server() -> None:
            greeting = frame(TEXT, b"first", masked=False) + frame(BINARY, b"\x00", masked=False)
            async with listener.accept(glued=greeting) as peer:
                await peer.answer_close(await peer.close_frame())

        inner.start_soon(eager_server)
        async with connect(f"ws://{LOOPBACK}:{listener.port}/") as ws:
            assert await ws.receive() == trionet.websocket.TextMessage("first")
            assert await ws.receive() == trionet.websocket.BinaryMessage(b"\x00")


def _answer(key: bytes, *, accept: bytes | None = None, extra: bytes = b"") -> bytes:
    token = generate_accept_token(key) if accept is None else accept
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + token + b"\r\n" + extra + b"\r\n"
    )


@pytest.mark.parametrize(
    "answer",
    [
        lambda key: _answer(key, accept=b"d3Jvbmcgd3Jvbmcgd3Jvbmc="),
        lambda key: _answer(key, extra=b"Sec-WebSocket-Extensions: x-not-offered\r\n"),
        lambda key: _answer(key, extra=b"Sec-WebSocket-Protocol: not.offered\r\n"),
        lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        lambda key: b"this is not HTTP\r\n\r\n",
    ],
    ids=["wrong accept", "extension", "subprotocol", "no Connection", "not HTTP"],
)
async def test_a_101_that_breaks_the_rules_is_a_handshake_error(
    nursery: trio.Nursery, answer: Any
) -> None:
    async with raw_listener() as listener, trio.open_nursery() as inner:

        async def server() -> None:
            stream = await listener.accept_stream()
            async with stream:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive_some()
                [key] = [
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                ]
                await stream.send_all(answer(key))
                await trio.sleep_forever()

        inner.start_soon(server)
        address = f"ws://{LOOPBACK}:{listener.port}/"
        with pytest.raises(HandshakeError) as info, trio.fail_after(HANG_GUARD):
            await _open(address)
        inner.cancel_scope.cancel()
    assert isinstance(info.value, trionet.ConnectError)


async def _open(address: str) -> None:
    async with connect(address, subprotocols=["chat"]):
        pass


# -- backpressure from a raw peer -----------------------------------------------------------------


async def test_a_full_queue_stops_reading_and_the_peer_is_held_back(nursery: trio.Nursery) -> None:
    release = trio.Event()
    received: list[bytes] = []

    async def handler(ws: WebSocketConnection) -> None:
        await release.wait()
        async for got in ws:
            assert isinstance(got.data, bytes)
            received.append(got.data)
            if len(received) == 256:
                await ws.send("all read")

    server = await start_ws(nursery, handler, max_queued_bytes=4096, compression=False)
    chunk = 1 << 14
    sent = 0
    async with RawPeer.connect(server.port) as peer:

        async def flood() -> None:
            nonlocal sent
            for index in range(256):
                await peer.send_raw(frame(BINARY, bytes([index]) * chunk))
                sent += 1

        async with trio.open_nursery() as inner:
            inner.start_soon(flood)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert sent < 256  # the flood is held back by TCP
            release.set()
        assert await peer.messages(1) == ["all read"]
    assert received == [bytes([index]) * chunk for index in range(256)]


async def test_keepalive_does_not_drop_a_peer_whose_pong_waits_behind_unread_messages(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's queue is full and its reader paused, so the pong of its
    # keepalive ping sits in the socket behind messages the handler has not
    # read: the peer is alive (it filled the queue), and must not be dropped
    # with 1011 however long the handler takes to read.
    size, count = 16 * 1024, 512
    received: list[bytes] = []

    async def slow_reader(ws: WebSocketConnection) -> None:
        await trio.sleep(300)  # many keepalive periods
        async for message in ws:
            assert isinstance(message.data, bytes)
            received.append(message.data)
            if len(received) == count:
                return

    _, listener = await start_ws_in_memory(
        nursery, slow_reader, max_queued_bytes=32 * 1024, ping_interval=5, ping_timeout=10
    )
    memory_connects(monkeypatch, listener)
    async with connect(MEMORY_URL, compression=False, ping_interval=None) as ws:
        with trio.fail_after(VIRTUAL_GUARD):
            for index in range(count):
                await ws.send(index.to_bytes(4, "big") * (size // 4))
            async for _ in ws:
                pass
        assert ws.close_code == 1000
    assert [int.from_bytes(data[:4], "big") for data in received] == list(range(count))
