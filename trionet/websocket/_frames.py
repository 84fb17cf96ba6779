"""WebSocket frames that trionet builds or reads itself, sans-IO (bytes in,
bytes or text out, no I/O and no wsproto): the two shortcuts that spare
wsproto the commonest frames on a server (a whole masked frame read, an
unmasked frame written), the close codes an endpoint may send, and the fields
of a 101 response head. Property-tested against wsproto in
``tests/test_websocket_frames.py``; :mod:`._protocol` decides when the
shortcuts apply.
"""

from __future__ import annotations

import struct

__all__ = [
    "SENDABLE_CODES",
    "check_close",
    "head_fields",
    "plain_frame",
    "whole_masked_frame",
]

# RFC 6455 section 7.4.1 and the IANA registry: the codes an endpoint may put
# in a close frame (1004, 1005, 1006 and 1015 are reserved or report-only).
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def head_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of a response head (a 101), as bytes."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    fields = (line.partition(b":") for line in lines)
    return [(name.strip(), value.strip()) for name, _, value in fields]


def whole_masked_frame(data: bytes) -> str | bytes | None:
    """The message's text or bytes, if ``data`` is exactly one whole client frame of the
    common kind: FIN, no RSV bits, text or binary, masked, a payload under
    64 KiB in its shortest length encoding, and (for text) valid UTF-8.
    Anything else returns ``None`` and goes to wsproto, which parses it and
    reports every error; this only spares wsproto the commonest frame, with
    the same result."""
    total = len(data)
    if total < 6:
        return None
    first = data[0]
    if first != 0x81 and first != 0x82:
        return None
    size = data[1] ^ 0x80  # the mask bit must be set: then size < 128
    if size < 126:
        start = 6
    elif size == 126 and total >= 8:
        size = (data[2] << 8) | data[3]
        start = 8
        if size < 126:
            return None  # not the shortest encoding: wsproto refuses it
    else:
        return None
    if start + size != total:
        return None
    mask = data[start - 4 : start]
    masked = int.from_bytes(data[start:], "little")
    key = int.from_bytes((mask * ((size >> 2) + 1))[:size], "little")
    payload = (masked ^ key).to_bytes(size, "little")
    if first == 0x82:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_close(code: int, reason: str) -> None:
    if code not in SENDABLE_CODES and not 3000 <= code <= 4999:
        raise ValueError(f"close code {code} may not be sent (RFC 6455 section 7.4)")
    if len(reason.encode("utf-8")) > 123:
        raise ValueError("a close reason is at most 123 bytes of UTF-8")


def plain_frame(data: str | bytes) -> bytes:
    """One whole unmasked, uncompressed frame (RFC 6455 section 5.2): text for
    ``str``, binary for bytes."""
    if isinstance(data, str):
        opcode = 0x81  # FIN, text
        payload = data.encode("utf-8")
    else:
        opcode = 0x82  # FIN, binary
        payload = data
    length = len(payload)
    if length < 126:
        return bytes((opcode, length)) + payload
    if length < 65536:
        return _HEADER_16.pack(opcode, 126, length) + payload
    return _HEADER_64.pack(opcode, 127, length) + payload
