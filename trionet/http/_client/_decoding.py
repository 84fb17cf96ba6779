"""``Content-Encoding`` decoding of response bodies, sans I/O (RFC 9110
section 8.4).

``gzip`` (and ``x-gzip``), ``deflate`` (the zlib format, and the raw deflate
some servers send instead) and ``identity`` are always undone; ``br``
(Brotli, RFC 7932) when the ``brotli`` package is installed, ``zstd``
(Zstandard, RFC 8878) with Python 3.14's ``compression.zstd`` or its
backport, ``backports.zstd`` (``pip install 'trionet[brotli,zstd]'``). The
client offers in ``Accept-Encoding`` exactly what it can undo
(:func:`accept_encoding`). Codings are undone in the reverse order of their
listing; a body with a coding not known here is passed through as it came.

Every decoder is bounded: a step never produces more than 64 KiB, and the
rest of its input waits until the reader asks for more, so a small "bomb"
cannot grow in memory beyond what the reader takes.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator
from typing import Any

from .._headers import Headers
from ._errors import DecodingError

__all__ = ["Decoder", "accept_encoding", "decode", "decoders_for"]

# The most one decoding step produces: bounds the memory of one step.
_DECODE_STEP = 64 * 1024


def _optional(*names: str) -> Any:
    """The first of these modules that imports, or ``None``."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


_brotli: Any = _optional("brotli")
if _brotli is not None and not hasattr(_brotli.Decompressor, "can_accept_more_data"):
    _brotli = None  # before 1.2 its output is not bounded: a bomb would be unbounded too
_zstd: Any = _optional("compression.zstd", "backports.zstd")


def accept_encoding() -> str:
    """The ``Accept-Encoding`` the client sends: the codings it can undo."""
    codings = ["gzip", "deflate"]
    if _brotli is not None:
        codings.append("br")
    if _zstd is not None:
        codings.append("zstd")
    return ", ".join(codings)


class Decoder:
    """One content coding undone incrementally, output bounded per step."""

    __slots__ = ()

    def decode(self, data: bytes) -> Iterator[bytes]:
        """Undo the coding of ``data``, at most ``_DECODE_STEP`` bytes per
        piece, one piece at a time.

        Raises:
            DecodingError: ``data`` is not what the coding says.
        """
        raise NotImplementedError

    def finish(self) -> None:
        """The body ended.

        Raises:
            DecodingError: It ended before its coding's end.
        """
        raise NotImplementedError


class _ZlibDecoder(Decoder):
    """``gzip`` and ``deflate``: zlib's decompressor, asked for a step at a
    time."""

    __slots__ = ("_coding", "_first", "_inflater", "_start")

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._first = True
        self._start = b""
        wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            if self._first:
                if self._coding == "deflate":
                    # RFC 9110 says deflate is the zlib format (RFC 1950), but
                    # some servers send raw deflate (RFC 1951): a zlib stream
                    # opens with a method of 8 and a header checksum.
                    data = self._start + data
                    if len(data) < 2:
                        self._start = data
                        return
                    if (data[0] & 0x0F) != 8 or ((data[0] << 8) | data[1]) % 31:
                        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self._first = not data
            piece = self._inflater.decompress(data, _DECODE_STEP)
            while True:
                if piece:
                    yield piece
                tail = self._inflater.unconsumed_tail
                if not tail:
                    break
                piece = self._inflater.decompress(tail, _DECODE_STEP)
        except zlib.error as exc:
            raise DecodingError(f"the {self._coding} body cannot be decoded: {exc}") from None

    def finish(self) -> None:
        if (not self._first or self._start) and not self._inflater.eof:
            raise DecodingError(f"the {self._coding} body is truncated")


# brotli's output buffer stops growing once it reaches its limit, having
# grown in blocks (16 KiB gives pieces of 32 KiB, 32 KiB pieces of 96 KiB):
# a quarter of a step keeps a piece within a step.
_BROTLI_LIMIT = _DECODE_STEP // 4


class _BrotliDecoder(Decoder):
    """``br``: the ``brotli`` package's decompressor, whose output buffer
    stops growing at a limit; the rest comes from empty calls."""

    __slots__ = ("_brotli_state", "_started")

    def __init__(self) -> None:
        self._brotli_state = _brotli.Decompressor()
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        state = self._brotli_state
        try:
            if data:
                self._started = True
            piece = state.process(data, output_buffer_limit=_BROTLI_LIMIT)
            while True:
                if piece:
                    yield piece
                if state.can_accept_more_data() or state.is_finished():
                    break
                piece = state.process(b"", output_buffer_limit=_BROTLI_LIMIT)
        except _brotli.error as exc:
            raise DecodingError(f"the br body cannot be decoded: {exc}") from None

    def finish(self) -> None:
        if self._started and not self._brotli_state.is_finished():
            raise DecodingError("the br body is truncated")


class _ZstdDecoder(Decoder):
    """``zstd``: ``compression.zstd`` (or its backport), whose
    ``decompress`` takes a ``max_length``. A body may hold several frames
    (RFC 8878 section 3.1): each ends one decompressor, the next starts a
    new one."""

    __slots__ = ("_started", "_zstd_state")

    def __init__(self) -> None:
        self._zstd_state = _zstd.ZstdDecompressor()
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            while True:
                state = self._zstd_state
                if data:
                    self._started = True
                piece = state.decompress(data, _DECODE_STEP)
                data = b""
                if piece:
                    yield piece
                if state.eof:
                    data = state.unused_data
                    self._zstd_state = _zstd.ZstdDecompressor()
                    self._started = False
                    if not data:
                        break
                elif state.needs_input:
                    break
        except _zstd.ZstdError as exc:
            raise DecodingError(f"the zstd body cannot be decoded: {exc}") from None

    def finish(self) -> None:
        if self._started:
            raise DecodingError("the zstd body is truncated")


def decode(decoders: list[Decoder], data: bytes, index: int = 0) -> Iterator[bytes]:
    """``data`` through every decoder, outermost first, a bounded piece at a
    time: nothing is decoded before the reader asks for it."""
    if index == len(decoders):
        yield data
        return
    for piece in decoders[index].decode(data):
        yield from decode(decoders, piece, index + 1)


def decoders_for(headers: Headers) -> list[Decoder] | None:
    """The decoders for a response's ``Content-Encoding``, outermost first;
    ``None`` when there is nothing to undo, or a coding is unknown (then the
    body is passed through as it came)."""
    value = headers.get("content-encoding")
    if value is None:
        return None
    codings = [coding.strip().lower() for coding in value.split(",") if coding.strip()]
    decoders: list[Decoder] = []
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            decoders.append(_ZlibDecoder("gzip"))
        elif coding == "deflate":
            decoders.append(_ZlibDecoder("deflate"))
        elif coding == "br" and _brotli is not None:
            decoders.append(_BrotliDecoder())
        elif coding == "zstd" and _zstd is not None:
            decoders.append(_ZstdDecoder())
        elif coding != "identity":
            return None
    return decoders or None
