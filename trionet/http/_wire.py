"""Pieces of the wire format that every response shares, computed once."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["http_date", "reason_phrase", "status_line"]


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code (``"Not Found"``), or ``""``.

    Args:
        status: The status code.

    Returns:
        The phrase from the IANA registry, as Python's ``http.HTTPStatus``
        knows it.
    """
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_date_second = 0
_date_value = b""


def http_date() -> bytes:
    """The ``Date`` header (RFC 9110 section 6.6.1), recomputed once a second."""
    global _date_second, _date_value
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_value = formatdate(now, usegmt=True).encode("ascii")
    return _date_value


_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """The status line, ``HTTP/1.1 200 OK`` and its CRLF."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (
            status,
            reason_phrase(status).encode("ascii"),
        )
    return line
