"""``ServerProtocol``: the sans-IO HTTP/1.1 server, one connection's worth.

Theory of operation
-------------------
Bytes in, events and bytes out; no trio and no socket here. The trio driver
(:mod:`._connection`) feeds what it reads to :meth:`ServerProtocol.receive_data`
and asks :meth:`ServerProtocol.next_event` what happened: a
:class:`RequestHead`, a piece of body (:class:`BodyData`), the body's end
(:data:`END_OF_BODY`), :data:`NEED_DATA`, or :data:`CLIENT_CLOSED` (the client
closed between requests). A broken request raises :exc:`ProtocolError` (or
:exc:`BodyTooLarge`) carrying the status to answer; :meth:`error_response`
gives the bytes of that answer. Responses come out as bytes too:
:meth:`response_head`, :meth:`complete_response`, :meth:`body_bytes`,
:meth:`end_of_response`. The driver owns every wait and every timeout.

A request reader parses requests: h11 (:mod:`._reader_h11`, the reference)
or llhttp (:mod:`._reader_llhttp`, the fast path), as ``limits.parser``
says; both give the same events, and every check of trionet's own runs here
on those events, after whichever reader ran. Responses are written here
without either, because serializing a response through h11 costs more than
parsing the request did (it validates every field again, for every
response). A response's fields
are checked once per :class:`~trionet.http.Headers` object (names are
tokens, values have no CR, LF or other control characters, so no response
splitting; RFC 9110 section 5) and kept encoded, so a response sent many
times is checked once; the framing rules are RFC 9112 section 6:
``Content-Length`` for a known body, chunked for a streamed one
(close-delimited to an HTTP/1.0 client), no body for HEAD, 204 and 304, and
``Connection: close`` on the last response of a connection.

One request is in flight at a time. When its exchange is over
(:meth:`start_next_request`), the reader starts on the next request head
from whatever the client already sent after the previous request. Pipelined
requests are simply already there, so they are answered in order.

The RFC 9112 checks beyond h11 on a request head, and the limits that are
counts and sizes, are :mod:`._head`'s; the body's size is counted here (413).

The decisions of an exchange are made here too: whether the connection must
close after this response (HTTP/1.0, ``Connection: close``, the request
limit, a graceful shutdown, an unread body too large to drain), whether to
send ``100 Continue`` (RFC 9110 section 10.1.1: only when the handler starts
reading the body; a handler that answers without reading it gets
``Connection: close`` instead), whether the next request is already here
(pipelined), and, on an upgrade, which bytes after the head already belong
to the new protocol (:meth:`switch_protocols`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from .._headers import Headers
from .._wire import reason_phrase
from ._errors import BodyTooLarge, ProtocolError
from ._events import (
    BODY,
    CLIENT_CLOSED,
    DONE,
    END_OF_BODY,
    FINISHED,
    HEAD,
    IDLE,
    NEED_DATA,
    NOT_STARTED,
    STARTED,
    SWITCHED,
    BodyData,
    Event,
    ParsedHead,
    RequestHead,
    RequestReader,
)
from ._head import check_head, check_head_bytes
from ._limits import HTTPLimits
from ._reader_h11 import H11Reader
from ._wire import http_date, status_line

__all__ = ["DRAIN_LIMIT", "ServerProtocol"]

# An unread request body up to this size is read and thrown away to keep the
# connection alive; a larger one closes the connection instead.
DRAIN_LIMIT = 64 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@functools.cache
def _llhttp_reader() -> Callable[[HTTPLimits], RequestReader]:
    from ._reader_llhttp import LLHTTPReader  # (an optional dependency)

    return LLHTTPReader


def _reader(limits: HTTPLimits) -> RequestReader:
    # (An import statement per connection is a measurable part of serving one.)
    if limits.parser == "httptools":
        return _llhttp_reader()(limits)
    return H11Reader(limits)


class ServerProtocol:
    """The sans-IO side of one HTTP/1.1 server connection (see the module
    docstring).

    Args:
        limits: The server's limits (checked by the caller).

    Attributes:
        closing: The connection closes after the current response.
        shutdown_requested: The server is shutting down gracefully: the
            current response carries ``Connection: close``, unless the next
            request is already pipelined behind it.
        requests: Request heads accepted so far.
        last_status: The status of the last response begun (0 before).
        last_response_bytes: Body bytes of that response so far.
    """

    # Slots, not a __dict__: a server holds one of these per idle connection.
    __slots__ = (
        "_body_done",
        "_body_received",
        "_chunked_out",
        "_expect_continue",
        "_head_started",
        "_http_10",
        "_length_out",
        "_limits",
        "_line_done",
        "_line_length",
        "_method",
        "_no_body",
        "_pending_head",
        "_reader",
        "_reading_head",
        "_request_length",
        "_sent_out",
        "_server_line",
        "_stash",
        "_switched",
        "closing",
        "last_response_bytes",
        "last_status",
        "requests",
        "response_state",
        "shutdown_requested",
    )

    def __init__(self, limits: HTTPLimits) -> None:
        self._limits = limits
        self._reader = _reader(limits)
        server_header = limits.server_header
        self._server_line = (
            b"\r\nserver: " + server_header.encode("latin-1") if server_header else b""
        ) + b"\r\n"
        # the request head being read
        self._reading_head = True
        self._pending_head = b""  # bytes of the next head received behind a request
        self._head_started = False
        self._line_done = False
        self._line_length = 0
        # the current exchange
        self.response_state = NOT_STARTED
        self._body_done = True
        self._body_received = 0
        self._stash: bytes | None = None  # body bytes read ahead with the head
        self.closing = False
        self._method = b""
        self._http_10 = False
        self._request_length: int | None = None
        self._expect_continue = False
        self._no_body = False
        self._chunked_out = False
        self._length_out: int | None = None
        self._sent_out = 0
        self._switched = False
        self.last_status = 0
        self.last_response_bytes = 0
        # the connection
        self.shutdown_requested = False
        self.requests = 0

    # -- what it can be asked ---------------------------------------------------

    @property
    def state(self) -> str:
        """Where the request side is: :data:`IDLE`, :data:`HEAD`,
        :data:`BODY`, :data:`DONE` or :data:`SWITCHED`."""
        if self._switched:
            return SWITCHED
        if self._reading_head:
            return HEAD if self._head_started else IDLE
        return DONE if self._body_done else BODY

    @property
    def head_started(self) -> bool:
        """Whether bytes of the next request head arrived (its time limit runs)."""
        return self._head_started

    @property
    def body_done(self) -> bool:
        """Whether the current request's body was received to its end (or
        there is no current request)."""
        return self._body_done

    @property
    def trailers(self) -> list[tuple[bytes, bytes]]:
        """The trailer fields of the request body, once it was read to its
        end (empty before, and when it had none)."""
        return self._reader.trailers if self._body_done else []

    @property
    def no_body(self) -> bool:
        """Whether the response begun has no body (HEAD, 204, 304)."""
        return self._no_body

    # -- bytes in, events out -----------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the client; ``b""`` when it closed its side.

        Raises:
            ProtocolError: The request line is over ``max_target_length`` (414).
        """
        if self._reading_head:
            if not self._head_started and data:
                data = data.lstrip(b"\r\n")  # empty lines first: ignored
                if not data:
                    return  # still nothing of a request; still idle
                self._head_started = True
            if not self._line_done:
                end = data.find(b"\n")
                self._line_done = end >= 0
                self._line_length += end if self._line_done else len(data)
                if self._line_length > self._limits.max_target_length + 32:  # method, version
                    raise ProtocolError("the request target is too long", 414)
        self._reader.receive_data(data)

    def receive_behind(self, data: bytes) -> None:
        """Feed bytes read behind a complete body while its response goes on
        (watching for the client to go away): kept for the next request."""
        assert self._body_done, "the body is not received to its end"
        self._reader.receive_data(data)

    def receive_ahead(self, data: bytes) -> None:
        """Feed bytes found waiting while no request is read (a graceful
        shutdown looks whether the next request came): they start its head."""
        self._pending_head += data
        self._reader.receive_data(data)
        self._begin_head()

    def next_event(self) -> Event:
        """The next event of the request side.

        Returns:
            A :class:`RequestHead` (then call :meth:`start_body`),
            :class:`BodyData`, :data:`END_OF_BODY`, :data:`NEED_DATA`, or
            :data:`CLIENT_CLOSED`.

        Raises:
            ProtocolError: The request is malformed, or breaks a limit (with
                the status to answer).
            BodyTooLarge: The body is over ``max_body_size`` (413).
        """
        if not self._reading_head:
            return self._next_body_event()
        event = self._reader.next_event()
        if type(event) is ParsedHead:
            return self._accept(event)
        if event is NEED_DATA or event is CLIENT_CLOSED:
            return event
        raise ProtocolError(f"unexpected {type(event).__name__}")  # pragma: no cover

    def _next_body_event(self) -> Event:
        if self._body_done:
            return END_OF_BODY
        if self._stash is not None:
            data, self._stash = self._stash, None
            return BodyData(self._count_body(data))
        event = self._body_event()
        if type(event) is BodyData:
            self._count_body(event.data)
        elif event is END_OF_BODY:
            self._body_done = True
        return event

    def _body_event(self) -> Event:
        try:
            event = self._reader.next_event()
        except ProtocolError as exc:
            self.closing = True
            raise ProtocolError(f"a malformed request body: {exc}") from None
        if type(event) is BodyData or event is END_OF_BODY or event is NEED_DATA:
            return event
        self.closing = True  # pragma: no cover
        raise ProtocolError(f"unexpected {type(event).__name__} in a body")  # pragma: no cover

    def _count_body(self, data: bytes) -> bytes:
        self._body_received += len(data)
        if self._body_received > self._limits.max_body_size:
            self.closing = True
            raise BodyTooLarge(
                f"the request body is over max_body_size={self._limits.max_body_size}"
            )
        return data

    def _accept(self, event: ParsedHead) -> RequestHead:
        """Check a parsed request head against what the parser let through,
        and begin its exchange."""
        check_head_bytes(event.head)
        self._method = event.method  # (an answer to a HEAD has no body)
        raw = event.headers
        close, length, expect_continue = check_head(
            event.method, event.target, event.http_version, raw, self._limits
        )
        self.requests += 1
        self._reading_head = False
        self.response_state = NOT_STARTED
        self.closing = close
        self._http_10 = http_10 = event.http_version == b"1.0"
        self._request_length = length
        self._expect_continue = expect_continue and not http_10
        self._body_received = 0
        self._stash = None
        self._body_done = False
        return RequestHead(
            event.method.decode("ascii"),
            event.target.decode("ascii", "replace"),
            raw,
            event.http_version.decode("ascii"),
        )

    def start_body(self) -> bool:
        """Look, without I/O, whether the request just accepted is complete
        already (no body, or all of it came with the head).

        Returns:
            Whether the body is done.

        Raises:
            ProtocolError: The body's framing is malformed.
        """
        nxt = self._body_event()
        if nxt is END_OF_BODY:
            self._body_done = True
        elif type(nxt) is BodyData:
            self._stash = nxt.data
        return self._body_done

    def continue_response(self) -> bytes:
        """The ``100 Continue`` to send before waiting for the body, once, if
        the client asked for it and no response started (else ``b""``)."""
        if self._expect_continue and self._stash is None and self.response_state == NOT_STARTED:
            self._expect_continue = False
            return _CONTINUE
        return b""

    def start_next_request(self) -> None:
        """End the exchange (its response finished, its body read) and get
        ready for the next request head.

        Raises:
            RuntimeError: The response is not finished.
        """
        if self.response_state != FINISHED:
            raise RuntimeError("respond to the previous request before reading the next")
        # RFC 9112 section 2.2: empty lines before a request line are ignored
        # (some clients end a body with an extra CRLF); the reader drops them.
        self._pending_head = self._reader.next_request()
        self._reading_head = True
        self.response_state = NOT_STARTED
        self._method = b""
        self._begin_head()

    def _begin_head(self) -> None:
        # Bytes that came behind the previous request already started this head.
        pending = self._pending_head
        self._head_started = bool(pending)
        self._line_done = b"\n" in pending
        self._line_length = len(pending) if not self._line_done else 0

    def pipelined(self) -> bool:
        """Whether the next request's whole head has already arrived
        (pipelined behind this one): on shutdown it is answered too, rather
        than dropped with the connection."""
        if not self._body_done:
            return False
        return b"\r\n\r\n" in self._reader.trailing_data()[0].lstrip(b"\r\n")

    def _must_close(self) -> bool:
        if self.shutdown_requested and not self.pipelined():
            return True
        max_requests = self._limits.max_requests_per_connection
        if max_requests is not None and self.requests >= max_requests:
            return True
        if not self._body_done:
            # A body nobody read: read it only if it is small and on its way.
            if self._expect_continue:
                return True
            length = self._request_length
            if length is None or length - self._body_received > DRAIN_LIMIT:
                return True
        return False

    # -- responses, as bytes ------------------------------------------------------

    def response_head(self, status: int, headers: Headers, length: int | None) -> bytes:
        """The status line and header block of the response to the current
        request, and the framing of its body (RFC 9112 section 6).

        Args:
            status: The final status.
            headers: The handler's fields.
            length: The body's length when it is known (a bytes body).

        Returns:
            The bytes of the head.

        Raises:
            RuntimeError: A response was already begun.
            ValueError: A status below 200, or framing fields that contradict
                the body.
        """
        if self.response_state != NOT_STARTED:
            raise RuntimeError("a response was already sent for this request")
        if not 200 <= status <= 999:
            raise ValueError(f"a final response has a status in 200..999, not {status!r}")
        wire = headers._wire()
        self._no_body = self._method == b"HEAD" or status in (204, 304)
        self._chunked_out = False
        self._length_out = None
        framing = b""
        if wire.transfer_encoding is not None:
            if wire.transfer_encoding.lower() != b"chunked" or wire.length is not None:
                raise ValueError("only Transfer-Encoding: chunked, without Content-Length")
            if length is not None:
                raise ValueError("Transfer-Encoding: chunked with a bytes body")
            if self._http_10:
                self.closing = True  # no chunked to HTTP/1.0: the close ends the body
            elif not self._no_body:
                framing = b"transfer-encoding: chunked\r\n"
                self._chunked_out = True
        elif wire.length is not None:
            if length is not None and length != wire.length and not self._no_body:
                raise ValueError(f"Content-Length: {wire.length} for a {length}-byte body")
            self._length_out = wire.length
        elif length is not None:
            if status not in (204, 304):
                framing = b"content-length: %d\r\n" % length
            self._length_out = length
        elif not self._no_body:
            if self._http_10:
                self.closing = True  # the end of the body is the end of the connection
            else:
                framing = b"transfer-encoding: chunked\r\n"
                self._chunked_out = True
        if not self.closing and self._must_close():
            self.closing = True
        if wire.connection is not None and b"close" in wire.connection.lower():
            self.closing = True
        if self.closing:
            # Whatever the handler wrote there: the truth is that we close.
            framing += b"connection: close\r\n"
        elif wire.connection is not None:
            framing += b"connection: " + wire.connection + b"\r\n"
        self._sent_out = 0
        self.response_state = STARTED
        self.last_status = status
        self.last_response_bytes = 0
        return b"".join(
            (
                status_line(status),
                b"date: ",
                http_date(),
                self._server_line,
                wire.block,
                framing,
                b"\r\n",
            )
        )

    def complete_response(self, status: int, headers: Headers, body: bytes) -> bytes:
        """A whole response with a bytes body, head and body in one piece.

        Raises:
            RuntimeError: As for :meth:`response_head`.
            ValueError: As for :meth:`response_head`.
        """
        head = self.response_head(status, headers, len(body))
        self.response_state = FINISHED
        if self._no_body or not body:
            return head
        self.last_response_bytes = len(body)
        return head + body

    def body_bytes(self, data: bytes) -> bytes:
        """A piece of a streamed response body, framed (``b""``: nothing to
        send, as for any body of a HEAD, 204 or 304 response).

        Raises:
            RuntimeError: No response body is open.
            ValueError: More body than its ``Content-Length``.
        """
        if self.response_state != STARTED:
            raise RuntimeError("the response is not open for sending a body")
        if not data or self._no_body:
            return b""  # a HEAD, 204 or 304 response has no body; the handler need not know
        size = len(data)
        if self._chunked_out:
            data = b"%x\r\n%b\r\n" % (size, data)
        elif self._length_out is not None and self._sent_out + size > self._length_out:
            raise ValueError(f"more body than the Content-Length of {self._length_out}")
        self._sent_out += size
        self.last_response_bytes += size
        return data

    def end_of_response(self, trailers: Headers) -> bytes:
        """The end of a streamed response (the last chunk and the trailers),
        or ``b""`` when nothing marks it (or it ended already).

        Raises:
            ValueError: The body ended short of its ``Content-Length`` (the
                connection then closes, so the client sees it cut).
        """
        if self.response_state != STARTED:
            return b""
        self.response_state = FINISHED
        if self._no_body:
            return b""
        if self._chunked_out:
            return b"0\r\n" + trailers._wire().block + b"\r\n"
        if self._length_out is not None and self._sent_out < self._length_out:
            self.closing = True  # the message cannot end: the client must see it cut
            raise ValueError(
                f"the body ended {self._length_out - self._sent_out} bytes short of its"
                " Content-Length"
            )
        return b""

    def error_response(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes | None:
        """The answer to a broken request, after which the connection closes;
        ``None`` when a response already started (then there is no answer but
        closing).

        Args:
            status: The status (400, 408, 413...).
            headers: Extra header fields.
        """
        self.closing = True
        if self.response_state != NOT_STARTED:
            return None
        phrase = reason_phrase(status)
        body = f"{status} {phrase}\n".encode("ascii")
        length = len(body)
        if self._method == b"HEAD":
            body = b""  # RFC 9110 section 9.3.2: the head only
        head = (
            f"HTTP/1.1 {status} {phrase}\r\n"
            f"date: {http_date().decode()}\r\n"
            "content-type: text/plain; charset=utf-8\r\n"
            f"content-length: {length}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers)
            + "connection: close\r\n\r\n"
        ).encode("ascii")
        self.response_state = FINISHED
        self.last_status = status
        self.last_response_bytes = len(body)
        return head + body

    def switch_protocols(self) -> bytes:
        """Hand the connection to another protocol (after a ``101``, which
        the caller sends): no more requests are read.

        Returns:
            The bytes that arrived behind the request head: the new
            protocol's.

        Raises:
            RuntimeError: A response to this request was already begun.
        """
        if self.response_state != NOT_STARTED:
            raise RuntimeError("a response to this request was already sent")
        self.response_state = FINISHED
        self.closing = True
        self._switched = True
        self.last_status = 101
        self.last_response_bytes = 0
        trailing = self._reader.trailing_data()[0]
        if self._stash:
            trailing = self._stash + trailing
            self._stash = None
        # No request is read here again: an idle WebSocket need not hold a parser.
        self._reader.release()
        return trailing
