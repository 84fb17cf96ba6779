"""permessage-deflate (RFC 7692) for trionet's WebSockets, sans-IO: the
negotiation (which offers and answers are valid, and which parameters are
honoured) and inflating within the message size limit. wsproto does the
compression; this module bounds it and checks what wsproto lets through.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import RemoteProtocolError

__all__ = ["bounded_deflate"]


class _BoundedDeflate(PerMessageDeflate):
    """permessage-deflate (RFC 7692) whose inflating stops at the message size
    limit: zlib is asked for at most what is left of the limit plus one byte,
    and a message that would inflate past it is refused with 1009."""

    def __init__(self, max_size: int | None) -> None:
        super().__init__()
        self._max_size = max_size
        self._inflated = 0

    def accept(self, offer: str) -> bool | str | None:
        # RFC 7692 section 5.1: a server declines an offer with a parameter it
        # does not define, an invalid value or a repeated parameter. wsproto
        # ignores unknown parameters and fails on a value that is not a
        # number (a 500 before this check); a declined offer leaves the
        # connection uncompressed, or lets the client's next offer be taken.
        checked = _checked_parameters(offer, answer=False)
        if checked is None:
            return None
        return super().accept(checked)

    def finalize(self, offer: str) -> None:
        # RFC 7692 section 5: the client fails the connection on an answer
        # with a parameter it does not define, an invalid or missing value,
        # or a repeated parameter (wsproto would take some and crash on the
        # rest).
        checked = _checked_parameters(offer, answer=True)
        if checked is None:
            raise RemoteProtocolError(
                f"an invalid permessage-deflate answer: {offer!r} (RFC 7692 section 7.1)",
                event_hint=None,
            )
        super().finalize(checked)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            if self._max_size is None:
                return decompressor.decompress(data)
            room = self._max_size - self._inflated
            out = decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self._max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            # A control frame may come between the fragments of a message
            # (RFC 6455 section 5.4) and is never compressed (RFC 7692
            # section 6.1): it must leave the message's state alone. wsproto's
            # own header and completion steps record the ping's "not
            # compressed" as the message's, and the fragments after it are
            # then read as plain bytes.
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not self._inbound_is_compressible:
            return None  # a control frame: see frame_inbound_header
        if not fin or not self._inbound_compressed:
            if fin:
                self._inbound_compressed = None
                self._inflated = 0
            return None
        out = self._inflate(b"\x00\x00\xff\xff")  # RFC 7692 section 7.2.2
        self._inflated = 0
        self._inbound_compressed = None
        no_takeover = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if no_takeover:
            self._decompressor = None
        return out


_NO_VALUE_PARAMETERS = frozenset({"server_no_context_takeover", "client_no_context_takeover"})


def _checked_parameters(offer: str, *, answer: bool) -> str | None:
    """A permessage-deflate offer (from a client) or ``answer`` (from a
    server), with quoted values unquoted, or ``None`` if RFC 7692 section 7.1
    says the server must decline the offer or the client must fail the
    connection on the answer. Only an offer may name client_max_window_bits
    without a value ("the client supports any")."""
    seen: set[str] = set()
    parts: list[str] = []
    for raw in offer.split(";")[1:]:
        name, has_value, value = (piece.strip() for piece in raw.partition("="))
        name = name.lower()
        if not name or name in seen:
            return None
        seen.add(name)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name in _NO_VALUE_PARAMETERS:
            if has_value:
                return None
            parts.append(name)
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if not has_value:
                if answer or name == "server_max_window_bits":
                    return None
                parts.append(name)
            elif value.isascii() and value.isdigit() and 8 <= int(value) <= 15:
                parts.append(f"{name}={int(value)}")
            else:
                return None
        else:
            return None
    return "; ".join(["permessage-deflate", *parts])


def bounded_deflate(max_message_size: int | None) -> PerMessageDeflate:
    """A permessage-deflate extension for wsproto that inflates at most
    ``max_message_size`` bytes per message."""
    return _BoundedDeflate(max_message_size)
