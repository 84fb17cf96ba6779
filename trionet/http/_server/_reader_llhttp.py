"""``LLHTTPReader``: request heads parsed by llhttp (Node's parser, through
httptools), the fast path; sans-IO. The other request reader behind
:class:`~._protocol.ServerProtocol` is :mod:`._reader_h11`, the reference;
this one must never disagree with it, and ``tests/test_http_parsers.py``
checks that it does not, on every byte stream it can think of.

How it stays equal to h11
-------------------------
Request smuggling lives where two parsers disagree on where a message ends,
so the framing is not left to llhttp at all:

* The head ends where h11 ends it (the first empty line, ``\\n\\r?\\n``),
  and an incomplete head is refused by h11's rules, in h11's order (a first
  byte that cannot start a request line: 400; more than ``max_header_size``
  bytes: 431; the client closed: 400).
* llhttp parses that head, and only that head (strictly: no "dangerous
  leniencies" are ever enabled). When it refuses the head, or the head
  frames its body with ``Transfer-Encoding``, or its request line is not
  in the one plain form (``METHOD SP target SP HTTP/x.y CRLF``), the
  request goes to h11 whole, and h11's answer is the answer: the reference
  decides every case that is not plainly well-formed, and reads every
  chunked body.
* A ``Content-Length`` body is counted here, as h11 counts it.

What llhttp accepts and h11 would refuse is refused by trionet's own
checks (:mod:`._head`), which run on the head after either reader.
"""

from __future__ import annotations

import re
import threading

import httptools

from ._errors import ProtocolError
from ._events import CLIENT_CLOSED, END_OF_BODY, NEED_DATA, BodyData, Event, ParsedHead
from ._limits import HTTPLimits
from ._reader_h11 import H11Reader

__all__ = ["LLHTTPReader"]

# Where h11 ends a request head (h11._receivebuffer); the same rule here.
_END_OF_HEAD = re.compile(rb"\n\r?\n")

# Where the reader is in the current request.
_HEAD, _BODY, _END, _DONE = range(4)


class _HeadParser:
    """llhttp, one complete request head at a time. One per thread, shared
    by the connections it serves: parsing a head never waits, so two never
    interleave, and an idle connection holds no parser."""

    __slots__ = (
        "_complete",
        "_feeding",
        "_framed",
        "_headers",
        "_keep_alive",
        "_length",
        "_parser",
        "_url",
    )

    def __init__(self) -> None:
        self._parser: httptools.HttpRequestParser | None = None
        # The parser being fed, for the callbacks.
        self._feeding: httptools.HttpRequestParser | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: bytes | None = None
        self._framed = False
        self._complete = False
        self._keep_alive = False

    # -- llhttp's callbacks --------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value but keeps what follows
        # it; h11 drops both.
        value = value.rstrip(b" \t")
        self._headers.append((name, value))
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self._length = value
        elif size == 17 and name.lower() == b"transfer-encoding":
            self._framed = True

    def on_headers_complete(self) -> None:
        self._complete = True
        # Asked now: once the message is complete, llhttp answers True even
        # after "Connection: close" (and refuses whatever it is fed next).
        assert self._feeding is not None
        self._keep_alive = self._feeding.should_keep_alive()

    def parse(
        self, head: bytes
    ) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]], int] | None:
        """Parse a complete head.

        Returns:
            The method, target, version, fields and ``Content-Length`` (0
            when absent), or ``None`` when h11 must read this request: llhttp
            refused it, its body is framed by ``Transfer-Encoding``, or its
            request line is not in the one plain form.
        """
        self._url = b""
        self._headers = []
        self._length = None
        self._framed = self._complete = self._keep_alive = False
        # Taken out, and put back only when it is ready for another head.
        parser, self._parser = self._parser, None
        if parser is None:
            parser = httptools.HttpRequestParser(self)
        self._feeding = parser
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            upgraded = True  # (it resumed after the upgrade; start afresh)
        except httptools.HttpParserError:
            return None
        else:
            upgraded = False
        if not self._complete or self._framed:
            return None
        method = parser.get_method()
        url = self._url
        version = parser.get_http_version().encode("ascii")
        if not head.startswith(b"%b %b HTTP/%b\r\n" % (method, url, version)):
            return None
        length = int(self._length) if self._length is not None else 0
        # Not mid-message (a body follows) or past a last message.
        if not (upgraded or length) and self._keep_alive:
            self._parser = parser
        return method, url, version, self._headers, length


_threads = threading.local()


def _head_parser() -> _HeadParser:
    try:
        parser: _HeadParser = _threads.parser
    except AttributeError:
        parser = _threads.parser = _HeadParser()
    return parser


class LLHTTPReader:
    """Reads one request at a time: heads with llhttp, ``Content-Length``
    bodies by counting, anything else with h11 (see the module docstring).

    Args:
        limits: The server's limits (``max_header_size`` bounds an
            incomplete head: 431).

    Attributes:
        trailers: The trailer fields of the request just read (after
            :data:`~._events.END_OF_BODY`; only a chunked body, read by
            h11, has any).
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_fallback",
        "_limits",
        "_remaining",
        "_state",
        "trailers",
    )

    def __init__(self, limits: HTTPLimits) -> None:
        self._limits = limits
        self._buffer = b""
        self._closed = False
        self._state = _HEAD
        self._remaining = 0
        # The request h11 reads instead (see the module docstring).
        self._fallback: H11Reader | None = None
        self.trailers: list[tuple[bytes, bytes]] = []

    # -- bytes in, events out ------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` when it closed its side."""
        if self._fallback is not None:
            self._fallback.receive_data(data)
        elif data:
            self._buffer += data
        else:
            self._closed = True

    def next_event(self) -> Event:
        """The next event, as :meth:`H11Reader.next_event
        <._reader_h11.H11Reader.next_event>` gives it.

        Raises:
            ProtocolError: The bytes are refused (with the status h11 gives).
        """
        if self._fallback is not None:
            event = self._fallback.next_event()
            if event is END_OF_BODY:
                self.trailers = self._fallback.trailers
            return event
        state = self._state
        if state == _HEAD:
            return self._read_head()
        if state == _BODY:
            buffer = self._buffer
            if buffer:
                remaining = self._remaining
                if len(buffer) > remaining:
                    data, self._buffer = buffer[:remaining], buffer[remaining:]
                else:
                    data, self._buffer = buffer, b""
                self._remaining = remaining = remaining - len(data)
                if not remaining:
                    self._state = _END
                return BodyData(data)
            if self._closed:
                raise ProtocolError(
                    "bad request: the client closed before the end of the body"
                    f" ({self._remaining} bytes short)"
                )
            return NEED_DATA
        if state == _END:
            self._state = _DONE
            return END_OF_BODY
        return NEED_DATA  # pragma: no cover (not asked once the request is read)

    def _read_head(self) -> Event:
        buffer = self._buffer
        end = _END_OF_HEAD.search(buffer)
        if end is None:
            # h11's rules for an incomplete head, in h11's order.
            if buffer and buffer[0] < 0x21:
                raise ProtocolError("bad request: illegal request line")
            if len(buffer) > self._limits.max_header_size:
                raise ProtocolError("bad request: the request head is too long", 431)
            if self._closed:
                if not buffer:
                    return CLIENT_CLOSED
                raise ProtocolError("bad request: the client closed in the request head")
            return NEED_DATA
        head = buffer[: end.end()]
        parsed = _head_parser().parse(head)
        if parsed is None:
            return self._fall_back()
        method, target, version, fields, length = parsed
        self._buffer = buffer[len(head) :]
        if length:
            self._state = _BODY
            self._remaining = length
        else:
            self._state = _END
        return ParsedHead(method, target, version, fields, head)

    def _fall_back(self) -> Event:
        """Hand the current request, whole, to h11."""
        reader = self._fallback = H11Reader(self._limits)
        reader.receive_data(self._buffer)
        if self._closed:
            reader.receive_data(b"")
        self._buffer = b""
        return reader.next_event()

    def trailing_data(self) -> tuple[bytes, bool]:
        """What arrived after the request read so far, and whether the
        client closed its side."""
        if self._fallback is not None:
            return self._fallback.trailing_data()
        return self._buffer, self._closed

    def next_request(self) -> bytes:
        """Start reading the next request, from what arrived after this one.

        Returns:
            Those bytes, without the empty lines before a request line
            (RFC 9112 section 2.2).
        """
        leftover, self._closed = self.trailing_data()
        self._fallback = None
        self._buffer = leftover = leftover.lstrip(b"\r\n")
        self._state = _HEAD
        self.trailers = []
        return leftover

    def release(self) -> None:
        """Drop what is buffered: the connection went to another protocol."""
        self._fallback = None
        self._buffer = b""
