"""The RFC 9112 checks a server makes on a request head beyond h11's, and
the limits that are counts and sizes; sans-IO (plain bytes in, a
:exc:`ProtocolError` carrying the status to answer out), called by
:mod:`._protocol` once per request head.

Stricter than h11 alone, as RFC 9112 asks of a server:

* a request with both ``Content-Length`` and ``Transfer-Encoding`` is answered
  400 and the connection closed (section 6.3: such a message "ought to be
  handled as an error"; answering it and reading on is how requests are
  smuggled past proxies);
* more than one ``Host``, an HTTP/1.1 request without one, control
  characters in a field value (h11's field grammar admits them), a request
  target with anything but visible ASCII, a bare LF or a folded line, and
  an HTTP major version other than 1 (505) are refused. h11 refuses some of
  these itself; llhttp (the fast reader) admits a missing ``Host``: the
  checks here hold whichever parser read the head.
* the limits that are counts and sizes: the head (431), its field count
  (431), the target (414, measured while the request line streams in), the
  body (413, from ``Content-Length`` at once, else as it arrives); CONNECT
  is answered 501.


"""

from __future__ import annotations

import re

from ._errors import BodyTooLarge, ProtocolError
from ._limits import HTTPLimits

__all__ = ["check_head", "check_head_bytes"]

# A line ending that is not CRLF, a line folded onto the previous one, a bare
# CR, or a control character other than HTAB anywhere in a head (RFC 9110
# section 5.5 allows only VCHAR, obs-text, SP and HTAB in a field value; the
# request line and field names allow less).
_LOOSE = re.compile(rb"(?<!\r)\n|\n[ \t]|\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# A request target is visible ASCII (RFC 9112 section 3.2, RFC 3986).
_TARGET = re.compile(rb"[^\x21-\x7e]")


def check_head_bytes(head: bytes) -> None:
    """Refuse a head with a bare LF, a folded line, a bare CR or a control
    character, in one scan of its bytes. h11 accepts bare LFs and folded
    lines, as RFC 9112 allows, but proxies disagree on them, which is how
    requests are smuggled (Node refuses them too: CVE-2023-30589,
    CVE-2022-32215); and h11's field grammar admits control characters.

    Args:
        head: The bytes of the request head, as received.

    Raises:
        ProtocolError: Any of those (400).
    """
    if _LOOSE.search(head):
        raise ProtocolError(
            "a bare LF, a folded line, a bare CR or a control character in the request head"
        )


def check_head(
    method: bytes,
    target: bytes,
    http_version: bytes,
    raw: list[tuple[bytes, bytes]],
    limits: HTTPLimits,
) -> tuple[bool, int | None, bool]:
    """Check a request head a parser read (h11 or llhttp).

    Args:
        method: The method.
        target: The request target.
        http_version: ``b"1.1"``, ``b"1.0"``...
        raw: The header fields as sent.
        limits: The server's limits.

    Returns:
        Whether the connection closes after this request (HTTP/1.0,
        ``Connection: close``), the ``Content-Length`` (``None`` when absent),
        and whether the client expects ``100 Continue``.

    Raises:
        ProtocolError: The head breaks a rule or a limit (400, 414, 431, 501,
            505).
        BodyTooLarge: Its ``Content-Length`` is over ``max_body_size`` (413).
    """
    hosts = 0
    length: int | None = None
    chunked = False
    close = http_version == b"1.0"  # no HTTP/1.0 keep-alive, as h11
    expect_continue = False
    # h11 bounds only a head that arrives in pieces; one that came whole is
    # measured here (the same 431 either way).
    size = len(method) + len(target) + 12
    for raw_name, value in raw:
        name = raw_name.lower()
        size += len(name) + len(value) + 4
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"connection":
            close = close or b"close" in value.lower()
        elif name == b"expect":
            expect_continue = value.lower() == b"100-continue"
    # First what h11 itself refuses while parsing (400), so that the answer
    # is the same whichever parser read the head: the Host count, and the
    # target's characters.
    if hosts != 1 and (hosts or http_version == b"1.1"):
        raise ProtocolError("an HTTP/1.1 request needs exactly one Host header field")
    if _TARGET.search(target):
        raise ProtocolError("a request target of anything but visible ASCII")
    if http_version[:2] != b"1.":
        raise ProtocolError("only HTTP/1.x is served", 505)
    if len(raw) > limits.max_header_count:
        raise ProtocolError(f"more than {limits.max_header_count} header fields", 431)
    if len(target) > limits.max_target_length:
        raise ProtocolError("the request target is too long", 414)
    if size > limits.max_header_size:
        raise ProtocolError(f"the request head is over {limits.max_header_size} bytes", 431)
    if chunked and length is not None:
        raise ProtocolError("both Content-Length and Transfer-Encoding")
    if length is not None and length > limits.max_body_size:
        raise BodyTooLarge(f"a {length}-byte body is over max_body_size={limits.max_body_size}")
    if method == b"CONNECT":
        # A tunnel is a proxy's business (RFC 9110 section 9.3.6), and its
        # 2xx answer has no framing at all: not something to hand a handler
        # written for requests.
        raise ProtocolError("CONNECT is not served here", 501)
    if not (target[:1] == b"/" or target == b"*" or b"://" in target):
        shown = target.decode("ascii", "replace")
        raise ProtocolError(f"a malformed request target: {shown[:80]!r}")
    return close, length, expect_continue
