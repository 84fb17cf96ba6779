"""Server-sent events (the ``text/event-stream`` format of the WHATWG HTML
standard, section 9.2): :class:`EventSource` reads them with a
:class:`~trionet.http.Client`, reconnecting as a browser's ``EventSource``
does.

Theory of operation
-------------------
:class:`EventStreamParser` is sans I/O: lines in (the body's lines, as
:meth:`ClientResponse.aiter_lines` splits them), events out. It follows the
standard's rules: ``event``, ``data`` (lines joined with ``"\\n"``), ``id``
(kept for the events after it, until another ``id``; one with a NUL is
ignored) and ``retry`` (milliseconds, digits only); a line starting with
``":"`` is a comment (servers send them to keep a quiet stream alive); a
blank line dispatches the event, unless it has no data; an event cut off by
the end of the stream is dropped. The stream is always UTF-8.

:class:`EventSource` sends ``GET`` with ``Accept: text/event-stream`` (and
``Last-Event-ID`` once an event had an id). When the stream ends or breaks,
it waits ``retry`` seconds (or what the server's last ``retry`` field said)
and connects again, giving up after ``max_reconnects`` attempts in a row
that brought no event. A ``204 No Content`` ends the iteration: the server's
way to say there is nothing more. Any other status but 200, or a response
that is not ``text/event-stream``, is an error and is not retried.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Self

import trio

from ... import _checks as checks
from .._headers import Headers, HeadersInput
from ._body import UNSET, Unset
from ._errors import HTTPConnectError, HTTPError, ResponseTooLarge, TransportError
from ._limits import DEFAULT_MAX_LINE_SIZE, TimeoutsInput
from ._response import ClientResponse
from ._sending import Sender
from ._urls import QueryParams

__all__ = [
    "DEFAULT_EVENT_RETRY",
    "DEFAULT_MAX_RECONNECTS",
    "EventSource",
    "EventStreamError",
    "EventStreamParser",
    "ServerSentEvent",
]

#: Seconds between a stream's end and the next connection, until the server
#: says otherwise with ``retry``: browsers wait about 3 s (the standard
#: leaves it to them).
DEFAULT_EVENT_RETRY = 3.0

#: Connection attempts in a row that bring no event before
#: :class:`EventSource` gives up.
DEFAULT_MAX_RECONNECTS = 10


class EventStreamError(HTTPError):
    """The response to an :class:`EventSource` is not an event stream: a
    status other than 200 (and 204), or another ``Content-Type``.

    Attributes:
        response: The response (its body unread, closed).
    """

    def __init__(self, message: str, response: ClientResponse) -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event of a ``text/event-stream``.

    Attributes:
        data: Its ``data`` lines, joined with ``"\\n"``.
        event: Its type (``event``); ``"message"`` when it named none.
        id: The last ``id`` the stream gave, at or before this event (``""``
            before any).
        retry: The ``retry`` the event carried, in milliseconds, or ``None``.
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class EventStreamParser:
    """The event stream format, sans I/O: :meth:`feed` it the body's lines
    (without their endings); it returns the events they complete.

    Args:
        max_event_size: The most characters of ``data`` one event may hold.

    Raises:
        ValueError: ``max_event_size`` is less than 1.
    """

    __slots__ = ("_data", "_event", "_first", "_max", "_retry", "_size", "last_event_id", "retry")

    def __init__(self, max_event_size: int = DEFAULT_MAX_LINE_SIZE) -> None:
        size = checks.count("max_event_size", max_event_size)
        assert size is not None
        self._max = size
        self._data: list[str] = []
        self._size = 0
        self._event = ""
        self._retry: int | None = None
        self._first = True
        #: The id of the last event (what ``Last-Event-ID`` carries on a
        #: reconnection).
        self.last_event_id = ""
        #: The last ``retry`` the stream gave, in milliseconds, or ``None``.
        self.retry: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; return the event it completes (a blank line after
        data), else ``None``.

        Raises:
            ValueError: The event's data grew beyond ``max_event_size``.
        """
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self._max:
                raise ValueError(f"an event's data is longer than {self._max} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._size, self._event, self._retry = [], 0, "", None
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message", self.last_event_id, retry)

    def end(self) -> None:
        """The stream ended: an event it cut off is dropped; the next
        stream (a reconnection) starts afresh, ``last_event_id`` kept."""
        self._data, self._size, self._event, self._retry = [], 0, "", None
        self._first = True


class EventSource:
    """Server-sent events from a URL, read as ``async with
    client.events(url) as events: async for event in events:``; see
    :meth:`Client.events <trionet.http.Client.events>`."""

    def __init__(
        self,
        client: Sender,
        url: str,
        *,
        params: QueryParams | None,
        headers: HeadersInput | None,
        timeout: TimeoutsInput | Unset,
        last_event_id: str,
        reconnect: bool,
        retry: float,
        max_reconnects: int,
        max_event_size: int,
    ) -> None:
        self._client = client
        self._url = url
        self._params = params
        self._headers = headers
        self._timeout = timeout
        self._reconnect = reconnect
        seconds = checks.non_negative_seconds("retry", retry)
        attempts = checks.count("max_reconnects", max_reconnects, minimum=0)
        assert seconds is not None
        assert attempts is not None
        self._retry = seconds
        self._max_reconnects = attempts
        self._parser = EventStreamParser(max_event_size)
        self._parser.last_event_id = last_event_id
        self._max_line = max_event_size
        #: The response being read, or ``None`` between connections.
        self.response: ClientResponse | None = None
        self._events: AsyncGenerator[ServerSentEvent, None] | None = None
        self._closed = False

    @property
    def last_event_id(self) -> str:
        """The id of the last event received (``""`` before any)."""
        return self._parser.last_event_id

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: close the stream being read (idempotent)."""
        self._closed = True
        if self._events is not None:
            await self._events.aclose()
        await self._close_response()
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        if self._events is not None or self._closed:
            raise RuntimeError("an EventSource is iterated once, inside its async with block")
        self._events = self._run()
        return self._events

    async def _run(self) -> AsyncGenerator[ServerSentEvent, None]:
        attempts = 0  # connections in a row that brought no event
        while True:
            failure: HTTPError | None = None
            try:
                response = await self._connect()
                if response is None:
                    return  # 204: the server has nothing more
                async for line in response.aiter_lines(
                    encoding="utf-8", max_line_size=self._max_line
                ):
                    event = self._feed(response, line)
                    if event is not None:
                        attempts = 0
                        yield event
            except (TransportError, HTTPConnectError) as exc:
                failure = exc  # the stream broke, or the server is not there
            finally:
                self._parser.end()
                await self._close_response()
            if not self._reconnect or attempts >= self._max_reconnects:
                if failure is not None:
                    raise failure
                return
            attempts += 1
            retry = self._parser.retry
            await trio.sleep(retry / 1000 if retry is not None else self._retry)

    async def _connect(self) -> ClientResponse | None:
        fields = Headers(self._headers)
        if "accept" not in fields:
            fields.set("accept", "text/event-stream")
        fields.set("cache-control", "no-store")
        if self._parser.last_event_id:
            fields.set("last-event-id", self._parser.last_event_id)
        response = self.response = await self._client._send(
            "GET", self._url, self._params, fields, None, UNSET, None, self._timeout, None, False
        )
        if response.status == 204:
            return None
        kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if response.status != 200 or kind != "text/event-stream":
            raise EventStreamError(
                f"{response.url} answered {response.status} {response.reason} "
                f"({kind or 'no content type'}), not a 200 text/event-stream",
                response,
            )
        return response

    def _feed(self, response: ClientResponse, line: str) -> ServerSentEvent | None:
        try:
            return self._parser.feed(line)
        except ValueError as exc:
            raise ResponseTooLarge(f"{response.url}: {exc} (max_event_size)") from None

    async def _close_response(self) -> None:
        response, self.response = self.response, None
        if response is not None:
            with trio.CancelScope(shield=True):
                await response.aclose()
