"""The request-head checks beyond h11 (trionet.http._server._head), on plain
bytes, no event loop."""

from __future__ import annotations

import pytest

from trionet.http._server._errors import BodyTooLarge, ProtocolError
from trionet.http._server._head import check_head, check_head_bytes
from trionet.http._server._limits import HTTPLimits

LIMITS = HTTPLimits()


def test_a_plain_get_keeps_alive() -> None:
    assert check_head(b"GET", b"/", b"1.1", [(b"Host", b"x")], LIMITS) == (False, None, False)


def test_what_a_head_says_about_its_exchange() -> None:
    raw = [
        (b"Host", b"x"),
        (b"Content-Length", b"12"),
        (b"Connection", b"Close"),
        (b"Expect", b"100-Continue"),
    ]
    assert check_head(b"PUT", b"/up", b"1.1", raw, LIMITS) == (True, 12, True)
    assert check_head(b"GET", b"*", b"1.0", [], LIMITS) == (True, None, False)


@pytest.mark.parametrize(
    ("method", "target", "version", "raw", "status"),
    [
        (b"GET", b"/", b"2.0", [], 505),
        (b"GET", b"/", b"1.1", [(b"Host", b"a"), *[(b"A", b"1")] * 100], 431),
        (b"GET", b"/" * 8193, b"1.1", [(b"Host", b"a")], 414),
        (b"GET", b"/", b"1.1", [(b"Host", b"a"), (b"A", b"a" * 16 * 1024)], 431),
        (b"GET", b"/", b"1.1", [(b"Host", b"a"), (b"host", b"b")], 400),
        (
            b"POST",
            b"/",
            b"1.1",
            [(b"Host", b"a"), (b"Content-Length", b"1"), (b"Transfer-Encoding", b"x")],
            400,
        ),
        (b"CONNECT", b"x:1", b"1.1", [(b"Host", b"a")], 501),
        (b"GET", b"/", b"1.1", [], 400),
        (b"GET", b"/", b"1.0", [(b"Host", b"a"), (b"Host", b"a")], 400),
        (b"GET", b"/\x80", b"1.1", [(b"Host", b"a")], 400),
        (b"GET", b"/a\tb", b"1.1", [(b"Host", b"a")], 400),
        (b"GET", b"x", b"1.1", [(b"Host", b"a")], 400),
    ],
)
def test_refused_heads(
    method: bytes, target: bytes, version: bytes, raw: list[tuple[bytes, bytes]], status: int
) -> None:
    with pytest.raises(ProtocolError) as info:
        check_head(method, target, version, raw, LIMITS)
    assert info.value.status == status


def test_content_length_over_the_body_limit_is_413_at_once() -> None:
    with pytest.raises(BodyTooLarge) as info:
        check_head(
            b"POST",
            b"/",
            b"1.1",
            [(b"Host", b"a"), (b"Content-Length", b"2")],
            HTTPLimits(max_body_size=1),
        )
    assert info.value.status == 413


def test_line_endings() -> None:
    check_head_bytes(b"GET / HTTP/1.1\r\nHost: x\r\nA: caf\xe9\tb\r\n\r\n")
    for loose in (
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\x7fc\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\x0bc\r\n\r\n",
    ):
        with pytest.raises(ProtocolError, match="bare LF, a folded line"):
            check_head_bytes(loose)


def test_limits_are_checked_once() -> None:
    HTTPLimits()
    with pytest.raises(ValueError, match="max_header_size"):
        HTTPLimits(max_header_size=0)
    with pytest.raises(ValueError, match="server_header"):
        HTTPLimits(server_header="a\r\nb")
