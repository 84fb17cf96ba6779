"""trionet.http.Headers as received (over the parser's bytes, decoded only
when all of it is needed) behaves exactly as Headers built from text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.http import Headers
from trionet.http._headers import _Wire

RAW = [
    (b"Host", b"example.com"),
    (b"X-Multi", b"a"),
    (b"Sec-WebSocket-Protocol", b"chat, superchat"),
    (b"x-multi", b"b"),
    (b"X-Latin", b"caf\xe9"),
]
TEXT = [
    ("host", "example.com"),
    ("x-multi", "a"),
    ("sec-websocket-protocol", "chat, superchat"),
    ("x-multi", "b"),
    ("x-latin", "café"),
]


def received() -> Headers:
    return Headers._from_raw(list(RAW))


@pytest.mark.parametrize("name", ["x-multi", "X-MULTI", "X-Multi"])
def test_lookups_on_received_fields_ignore_case(name: str) -> None:
    headers = received()
    assert headers.get_all(name) == ["a", "b"]
    assert headers[name] == "a, b"
    assert headers.get(name) == "a, b"
    assert name in headers


def test_received_fields_read_like_built_ones() -> None:
    headers = received()
    built = Headers(TEXT)
    assert len(headers) == len(built) == 5
    assert headers.get("x-latin") == "café"  # obs-text kept as Latin-1
    assert headers.get("absent") is None
    assert headers.get("absent", "default") == "default"
    assert "absent" not in headers
    with pytest.raises(KeyError):
        headers["absent"]
    assert list(headers) == TEXT
    assert headers == built
    assert headers.items() == TEXT
    assert repr(headers) == repr(built)


def test_a_name_no_received_field_can_have_matches_nothing() -> None:
    headers = received()
    assert headers.get_all("hôst") == []
    assert "hôst" not in headers
    assert 42 not in headers  # type: ignore[operator]


def test_changing_received_fields() -> None:
    raw = list(RAW)
    headers = Headers._from_raw(raw)
    headers.add("X-New", "1")
    headers.set("host", "other.example")
    headers.remove("X-MULTI")
    assert list(headers) == [
        ("sec-websocket-protocol", "chat, superchat"),
        ("x-latin", "café"),
        ("x-new", "1"),
        ("host", "other.example"),
    ]
    assert raw == RAW  # the parser's list is left as it was
    copy = received().copy()
    copy.add("x-copy", "yes")
    assert "x-copy" not in received()
    assert copy.get("x-copy") == "yes"


# -- encoding byte fields to send (an ASGI application's) -------------------------

_FIELD_BYTES = st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"a"))
_NAMES = st.sampled_from(
    [b"content-type", b"Content-Length", b"connection", b"transfer-encoding", b"x-a", b"bad name"]
)


@given(st.lists(st.tuples(_NAMES | _FIELD_BYTES, _FIELD_BYTES | st.just(b" 12 ")), max_size=6))
def test_byte_fields_are_encoded_as_their_text_would_be(fields: list[tuple[bytes, bytes]]) -> None:
    """``_Wire.from_raw`` (the ASGI path) gives the same bytes, the same
    framing fields and the same refusals as encoding the decoded text."""
    try:
        expected = _Wire([(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in fields])
    except ValueError:
        with pytest.raises(ValueError, match="not a valid"):
            _Wire.from_raw(fields)
        return
    got = _Wire.from_raw(fields)
    assert (got.block, got.length, got.transfer_encoding, got.connection) == (
        expected.block,
        expected.length,
        expected.transfer_encoding,
        expected.connection,
    )
