"""The fast paths that build and parse common frames without wsproto give
exactly what wsproto gives, for any frame (property tests against wsproto
itself)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage
from wsproto.frame_protocol import FrameProtocol

from trionet.websocket._frames import plain_frame, whole_masked_frame


def masked_frame(first: int, payload: bytes, mask: bytes, *, long_form: bool = False) -> bytes:
    size = len(payload)
    if size < 126 and not long_form:
        header = bytes((first, 0x80 | size))
    elif size < 65536:
        header = bytes((first, 0x80 | 126)) + struct.pack("!H", size)
    else:
        header = bytes((first, 0x80 | 127)) + struct.pack("!Q", size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def wsproto_reads(data: bytes) -> list[object]:
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    return list(server.events())


@given(
    first=st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x80, 0x88, 0x89, 0x8A, 0xC1, 0x91, 0x83]),
    payload=st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode()),
    mask=st.binary(min_size=4, max_size=4),
    long_form=st.booleans(),
    extra=st.sampled_from([b"", b"\x81"]),
)
def test_the_fast_parser_agrees_with_wsproto(
    first: int, payload: bytes, mask: bytes, long_form: bool, extra: bytes
) -> None:
    data = masked_frame(first, payload, mask, long_form=long_form) + extra
    fast = whole_masked_frame(data)
    if fast is None:
        return  # left to wsproto
    # Taken only for one whole frame that wsproto reads as one whole message.
    events = wsproto_reads(data)
    assert len(events) == 1
    (event,) = events
    assert isinstance(event, TextMessage | BytesMessage)
    assert event.message_finished
    assert isinstance(fast, str) == isinstance(event, TextMessage)
    assert fast == event.data


def test_the_fast_parser_takes_the_common_frames() -> None:
    mask = b"\x01\x02\x03\x04"
    text = whole_masked_frame(masked_frame(0x81, "héllo".encode(), mask))
    assert text == "héllo"
    binary = whole_masked_frame(masked_frame(0x82, bytes(range(200)), mask))
    assert binary == bytes(range(200))
    # Not for it: unmasked, invalid UTF-8, fragments, two frames at once.
    assert whole_masked_frame(b"\x81\x02hi") is None
    assert whole_masked_frame(masked_frame(0x81, b"\xff", mask)) is None
    assert whole_masked_frame(masked_frame(0x01, b"hi", mask)) is None
    assert whole_masked_frame(masked_frame(0x81, b"a", mask) * 2) is None


@given(data=st.binary(max_size=70000) | st.text(max_size=300))
def test_the_fast_builder_agrees_with_wsproto(data: bytes | str) -> None:
    expected = FrameProtocol(client=False, extensions=[]).send_data(data, True)
    assert plain_frame(data) == bytes(expected)
