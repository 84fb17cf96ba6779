"""trionet.http.Headers as received (over the parser's bytes, decoded only
when all of it is needed) behaves exactly as Headers built from text."""

from __future__ import annotations

import pytest

from trionet.http import Headers

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
