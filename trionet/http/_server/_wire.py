"""Pieces of the wire format that every response of the server shares,
computed once: the ``Date`` value (once a second) and the status lines."""

from __future__ import annotations

import time
from email.utils import formatdate

from .._wire import reason_phrase

__all__ = ["http_date", "status_line"]


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
