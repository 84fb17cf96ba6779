"""A mock transport for :class:`trionet.http.Client`: canned answers and
recorded calls for code that calls outside HTTP APIs (what respx does for
httpx).

Theory of operation
-------------------
:class:`MockTransport` is a :class:`trionet.http.ClientTransport`: the client
asks it for a byte stream to an origin, and gets a :class:`_MockStream`, an
in-memory HTTP/1.1 server with no task of its own. What the client writes is
parsed by h11 in the server role; when the client reads, the request it sent
is matched against the routes, the route's answer is produced (in the
client's own task) and its bytes are what the client reads. So the whole
client runs as against a real server: the request is really encoded, the
response really parsed, and keep-alive, redirects, cookies, auth, decoding
and timeouts work as they do on the network. A streamed response body (an
async iterable) is pulled one piece per read, so server-sent events and
slow bodies can be mocked too.

A request that matches no route, or an answer that raises, raises in the
client's call itself (from its read of the response), so a test fails where
the unexpected request was made.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio

from .._addresses import host_header
from ..http._headers import Headers, HeadersInput
from ..http._server._response import Response
from ._mock_protocol import MockCall, MockRequest, MockServerProtocol, UnmatchedRequest

__all__ = ["MockCall", "MockRequest", "MockRoute", "MockTransport", "UnmatchedRequest"]

_UNSET: Any = object()

#: What a route answers with: a response, a function of the request (plain
#: or ``async``) that returns one, or ``None`` to drop the connection.
Answer = Response | Callable[["MockRequest"], "Response | Awaitable[Response]"] | None


class MockRoute:
    """A route of a :class:`MockTransport`: which requests it matches, how it
    answers them, and the calls it answered. Made by
    :meth:`MockTransport.route` (or ``get``, ``post``...).

    Attributes:
        calls: The calls it answered, oldest first.
    """

    def __init__(
        self, method: str | None, url: str | re.Pattern[str], headers: HeadersInput | None
    ) -> None:
        self.method = method.upper() if method is not None else None
        self._pattern = url if isinstance(url, re.Pattern) else None
        self._url = _UrlPattern.parse(url) if isinstance(url, str) else None
        self._headers = list(Headers(headers))
        self._answers: list[Answer] = [Response(200)]
        self._repeat_last = True
        self.calls: list[MockCall] = []

    def __repr__(self) -> str:
        url = self._pattern.pattern if self._pattern is not None else str(self._url)
        return f"<MockRoute {self.method or '*'} {url}>"

    @property
    def called(self) -> bool:
        """Whether it answered at least one request."""
        return bool(self.calls)

    @property
    def call_count(self) -> int:
        """How many requests it answered."""
        return len(self.calls)

    def respond(
        self,
        status: int = 200,
        *,
        headers: HeadersInput | None = None,
        content: bytes | None = None,
        text: str | None = None,
        json: Any = _UNSET,
    ) -> MockRoute:
        """Answer every matching request with this response.

        Args:
            status: The status code (default 200).
            headers: Header fields (``Content-Length`` is added).
            content: The body as bytes.
            text: The body as text (``text/plain; charset=utf-8``).
            json: The body as JSON (``application/json``).

        Returns:
            The route, for chaining.

        Raises:
            ValueError: More than one of ``content``, ``text`` and ``json``.
        """
        if sum(x is not None for x in (content, text)) + (json is not _UNSET) > 1:
            raise ValueError("give one of content=, text= and json=")
        if json is not _UNSET:
            response = Response.json(json, status, headers)
        elif text is not None:
            response = Response(status, headers, text)
        else:
            response = Response(status, headers, content or b"")
        return self.respond_with(response)

    def respond_with(self, *answers: Answer) -> MockRoute:
        """Answer with a :class:`~trionet.http.Response`, with what a
        function of the :class:`MockRequest` returns (plain or ``async``; it
        may raise to fail the client's call), or with ``None``: drop the
        connection (see :meth:`drop`). Given several, the first call gets the
        first answer, the next the next, and a call past the last raises
        :exc:`UnmatchedRequest`; one answer is given to every call.

        Args:
            answers: One or more responses, functions or ``None``.

        Returns:
            The route, for chaining.

        Raises:
            TypeError: An answer is neither a response nor callable.
            ValueError: No answer was given.
        """
        if not answers:
            raise ValueError("give at least one answer")
        for answer in answers:
            if not (answer is None or isinstance(answer, Response) or callable(answer)):
                raise TypeError(f"an answer is a Response, a function or None, not {answer!r}")
        self._answers = list(answers)
        self._repeat_last = len(answers) == 1
        return self

    def drop(self) -> MockRoute:
        """Close the connection instead of answering, as a server that
        crashed or restarted would: the client's call raises
        :class:`~trionet.http.ServerDisconnected` (or retries it, as it
        would on the network). Same as ``respond_with(None)``.

        Returns:
            The route, for chaining.
        """
        return self.respond_with(None)

    def matches(self, request: MockRequest) -> bool:
        """Whether this route answers ``request``.

        Args:
            request: The request.

        Returns:
            ``True`` if the method, URL and headers match.
        """
        if self.method is not None and request.method != self.method:
            return False
        if self._pattern is not None and not self._pattern.fullmatch(request.url):
            return False
        if self._url is not None and not self._url.matches(request.url):
            return False
        return all(request.headers.get(name) == value for name, value in self._headers)

    async def _answer(self, request: MockRequest) -> Response | None:
        index = len(self.calls)
        if index >= len(self._answers) and not self._repeat_last:
            raise UnmatchedRequest(
                f"{self!r} has {len(self._answers)} answers, and this is call {index + 1}:"
                f" {request.method} {request.url}"
            )
        answer = self._answers[min(index, len(self._answers) - 1)]
        if answer is not None and not isinstance(answer, Response):
            result = answer(request)
            answer = await result if inspect.isawaitable(result) else result
            if not isinstance(answer, Response):
                raise TypeError(f"{self!r}: the answer function returned {answer!r}")
        self.calls.append(MockCall(request, answer))
        return answer


@dataclass(frozen=True)
class _UrlPattern:
    """A URL to match: scheme, host and port, path exactly, and the query
    parameters it names (the request may have more)."""

    scheme: str
    authority: str
    path: str
    params: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, url: str) -> _UrlPattern:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a route's URL is http:// or https:// with a host, not {url!r}")
        default = 443 if parts.scheme == "https" else 80
        authority = host_header(parts.hostname, parts.port or default, default)
        params = tuple(parse_qsl(parts.query, keep_blank_values=True))
        return cls(parts.scheme, authority, parts.path or "/", params)

    def __str__(self) -> str:
        query = "&".join(f"{name}={value}" for name, value in self.params)
        return f"{self.scheme}://{self.authority}{self.path}" + (f"?{query}" if query else "")

    def matches(self, url: str) -> bool:
        other = _UrlPattern.parse(url)
        return (other.scheme, other.authority, other.path) == (
            self.scheme,
            self.authority,
            self.path,
        ) and set(self.params) <= set(other.params)


class MockTransport:
    """A transport for :class:`trionet.http.Client` that answers from
    routes instead of the network, and records every call::

        mock = trionet.testing.MockTransport()
        users = mock.get("https://api.example.com/users/1").respond(json={"id": 1})
        async with trionet.http.Client(transport=mock) as client:
            assert (await client.get("https://api.example.com/users/1")).json() == {"id": 1}
        assert users.call_count == 1

    Routes are tried in the order they were added; the first that matches
    answers. A URL route matches the scheme, host, port and path exactly,
    and the query parameters it names (the request may carry more); a
    compiled regular expression must match the whole URL instead. No TLS is
    run: ``https`` URLs are answered in the clear.

    Args:
        handler: Answers the requests no route matches (a function of the
            :class:`MockRequest`, plain or ``async``, returning a
            :class:`~trionet.http.Response`), as httpx's ``MockTransport``
            handler does.
        routes: Canned responses by ``"METHOD URL"`` or ``"URL"`` (any
            method), added as routes in order.
        assert_all_mocked: Raise :exc:`UnmatchedRequest` in the client's
            call for a request nothing answers (default); ``False`` answers
            it with a 404.

    Attributes:
        calls: Every call answered, oldest first, whichever route answered.
    """

    def __init__(
        self,
        handler: Callable[[MockRequest], Response | Awaitable[Response]] | None = None,
        *,
        routes: Mapping[str, Response] | None = None,
        assert_all_mocked: bool = True,
    ) -> None:
        self._routes: list[MockRoute] = []
        self._fallback = MockRoute(None, re.compile(".*"), None)
        if handler is not None:
            self._fallback.respond_with(handler)
        self._has_fallback = handler is not None
        self._assert_all_mocked = assert_all_mocked
        self._refused: set[tuple[str, str, int]] = set()
        self.calls: list[MockCall] = []
        for key, response in (routes or {}).items():
            method, _, url = key.rpartition(" ")
            self.route(method or None, url).respond_with(response)

    def route(
        self,
        method: str | None,
        url: str | re.Pattern[str],
        *,
        headers: HeadersInput | None = None,
    ) -> MockRoute:
        """Add a route; it answers ``200`` with no body until told otherwise
        (:meth:`MockRoute.respond`).

        Args:
            method: The method to match, or ``None`` for any.
            url: An ``http://`` or ``https://`` URL, or a compiled regular
                expression for the whole URL.
            headers: Header fields the request must carry, with these values.

        Returns:
            The new :class:`MockRoute`.

        Raises:
            ValueError: ``url`` is not an http(s) URL with a host.
        """
        added = MockRoute(method, url, headers)
        self._routes.append(added)
        return added

    def get(self, url: str | re.Pattern[str], **kwargs: Any) -> MockRoute:
        """:meth:`route` for ``GET``.

        Args:
            url: As for :meth:`route`.
            kwargs: As for :meth:`route`.

        Returns:
            The new route.
        """
        return self.route("GET", url, **kwargs)

    def post(self, url: str | re.Pattern[str], **kwargs: Any) -> MockRoute:
        """:meth:`route` for ``POST``.

        Args:
            url: As for :meth:`route`.
            kwargs: As for :meth:`route`.

        Returns:
            The new route.
        """
        return self.route("POST", url, **kwargs)

    def put(self, url: str | re.Pattern[str], **kwargs: Any) -> MockRoute:
        """:meth:`route` for ``PUT``.

        Args:
            url: As for :meth:`route`.
            kwargs: As for :meth:`route`.

        Returns:
            The new route.
        """
        return self.route("PUT", url, **kwargs)

    def patch(self, url: str | re.Pattern[str], **kwargs: Any) -> MockRoute:
        """:meth:`route` for ``PATCH``.

        Args:
            url: As for :meth:`route`.
            kwargs: As for :meth:`route`.

        Returns:
            The new route.
        """
        return self.route("PATCH", url, **kwargs)

    def delete(self, url: str | re.Pattern[str], **kwargs: Any) -> MockRoute:
        """:meth:`route` for ``DELETE``.

        Args:
            url: As for :meth:`route`.
            kwargs: As for :meth:`route`.

        Returns:
            The new route.
        """
        return self.route("DELETE", url, **kwargs)

    def refuse(self, origin: str) -> None:
        """Refuse connections to ``origin`` (``scheme://host[:port]``), as a
        host with nothing listening would: the client's call raises
        :class:`~trionet.http.HTTPConnectError`.

        Args:
            origin: The origin to refuse.

        Raises:
            ValueError: ``origin`` is not an http(s) URL with a host.
        """
        pattern = _UrlPattern.parse(origin)
        parts = urlsplit(origin)
        default = 443 if pattern.scheme == "https" else 80
        self._refused.add((pattern.scheme, (parts.hostname or "").lower(), parts.port or default))

    def assert_all_called(self) -> None:
        """Check that every route answered at least once.

        Raises:
            AssertionError: Naming the routes never called.
        """
        idle = [route for route in self._routes if not route.called]
        if idle:
            raise AssertionError(f"routes never called: {', '.join(map(repr, idle))}")

    async def open_stream(self, scheme: str, host: str, port: int) -> trio.abc.Stream:
        """Open an in-memory connection to the origin, served by the routes
        (the :class:`~trionet.http.ClientTransport` method).

        Args:
            scheme: ``"http"`` or ``"https"``.
            host: The host.
            port: The port.

        Returns:
            The client's end of the connection.

        Raises:
            ConnectionRefusedError: The origin was :meth:`refuse`\\ d.
        """
        await trio.lowlevel.checkpoint()
        if (scheme, host.lower(), port) in self._refused:
            raise ConnectionRefusedError(111, "Connection refused (MockTransport.refuse)")
        default = 443 if scheme == "https" else 80
        return _MockStream(self, f"{scheme}://{host_header(host, port, default)}")

    async def _answer(self, request: MockRequest) -> Response | None:
        for candidate in self._routes:
            if candidate.matches(request):
                response = await candidate._answer(request)
                break
        else:
            if self._has_fallback:
                response = await self._fallback._answer(request)
            elif self._assert_all_mocked:
                routes = "".join(f"\n  {route!r}" for route in self._routes) or " none"
                raise UnmatchedRequest(
                    f"no route matches {request.method} {request.url}; the routes:{routes}"
                )
            else:
                response = Response(404, None, "no route matches\n")
        self.calls.append(MockCall(request, response))
        return response


class _MockStream(trio.abc.HalfCloseableStream):
    """The client's end of a connection to a :class:`MockTransport`: the
    sans-IO :class:`MockServerProtocol`, driven in the reader's task (see
    the module docstring)."""

    def __init__(self, mock: MockTransport, origin: str) -> None:
        self._mock = mock
        self._protocol = MockServerProtocol(origin)
        self._outgoing = bytearray()
        self._pieces: AsyncIterator[bytes] | None = None
        self._finished = False  # our side will send nothing more
        self._closed = False
        self._arrived = trio.lowlevel.ParkingLot()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        if self._finished:
            raise trio.BrokenResourceError("the mock server closed the connection")
        self._protocol.receive_data(bytes(data))
        self._arrived.unpark_all()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self._protocol.receive_data(b"")
        self._arrived.unpark_all()

    async def aclose(self) -> None:
        self._closed = True
        self._arrived.unpark_all()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        while not self._outgoing and not self._finished:
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
            await self._step()
        size = len(self._outgoing) if max_bytes is None else max_bytes
        data = bytes(self._outgoing[:size])
        del self._outgoing[:size]
        return data

    async def _step(self) -> None:
        """Move the server on: the next piece of a streamed body, or the
        next request answered, or wait for the client to send more."""
        if self._pieces is not None:
            try:
                piece = await anext(self._pieces)
            except StopAsyncIteration:
                self._pieces = None
                self._end()
            else:
                self._outgoing += self._protocol.data(piece)
            return
        request = self._protocol.next_request()
        if request is None:
            interim = self._protocol.interim()
            if self._protocol.client_closed:
                self._finished = True
            elif interim:
                self._outgoing += interim
            else:
                await self._arrived.park()  # until the client sends more
            return
        response = await self._mock._answer(request)
        if response is None:  # dropped
            self._finished = True
            return
        self._outgoing += self._protocol.head(response)
        body = response.body
        if request.method == "HEAD":
            self._end()
        elif isinstance(body, bytes):
            self._outgoing += self._protocol.data(body)
            self._end()
        else:
            self._pieces = aiter(body)

    def _end(self) -> None:
        self._outgoing += self._protocol.end()
        self._finished = self._protocol.must_close
