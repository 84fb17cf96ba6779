"""The server side of one :class:`~trionet.testing.MockTransport`
connection, sans I/O: bytes from the client in, complete requests out, and
the bytes of the answers (h11 in the server role). The requests and calls a
mock records are defined here too."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11

from ..http._headers import Headers
from ..http._server._response import Response

__all__ = ["MockCall", "MockRequest", "MockServerProtocol", "UnmatchedRequest"]


class UnmatchedRequest(AssertionError):
    """A request reached a :class:`MockTransport` that no route matches (and
    it has no fallback ``handler``). Raised in the client's call that made
    the request."""


@dataclass(frozen=True)
class MockRequest:
    """A request as a :class:`MockTransport` received it, parsed from the
    bytes the client sent.

    Attributes:
        method: ``"GET"``, ``"POST"``...
        url: The full URL: ``scheme://host[:port]/path?query``.
        headers: The header fields, as sent.
        content: The body, de-chunked (``b""`` when there is none).
    """

    method: str
    url: str
    headers: Headers
    content: bytes

    @property
    def path(self) -> str:
        """The URL's path (still percent-encoded)."""
        return urlsplit(self.url).path

    @property
    def params(self) -> dict[str, str]:
        """The query parameters, decoded (a repeated name keeps its last
        value)."""
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Returns:
            The parsed value.

        Raises:
            ValueError: The body is not JSON.
        """
        return jsonlib.loads(self.content)

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded``.

        Returns:
            The fields (a repeated name keeps its last value).
        """
        return dict(parse_qsl(self.content.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(frozen=True)
class MockCall:
    """One request a :class:`MockTransport` answered, and what with.

    Attributes:
        request: The request.
        response: The response sent, or ``None`` when the route dropped the
            connection.
    """

    request: MockRequest
    response: Response | None


class MockServerProtocol:
    """One connection's server, sans I/O: :meth:`receive_data` what the
    client sent, :meth:`next_request` to get each complete request, then
    :meth:`head`, :meth:`data` and :meth:`end` give the bytes of the answer.

    Args:
        origin: ``scheme://authority``, prefixed to each request target to
            make its URL.
    """

    def __init__(self, origin: str) -> None:
        self._origin = origin
        self._h11 = h11.Connection(h11.SERVER)
        self._head: h11.Request | None = None
        self._body = bytearray()
        #: The client closed its side (or half-closed it, between requests).
        self.client_closed = False

    def receive_data(self, data: bytes) -> None:
        """Take bytes the client sent; ``b""`` is its end of stream."""
        self._h11.receive_data(data)

    def next_request(self) -> MockRequest | None:
        """The next complete request, or ``None`` when more bytes are needed
        (or the client closed: :attr:`client_closed`).

        Raises:
            UnmatchedRequest: The client sent bytes that are not HTTP/1.1.
        """
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise UnmatchedRequest(f"the client sent a malformed request: {exc}") from None
            if event is h11.NEED_DATA:
                return None
            if event is h11.PAUSED:
                self._h11.start_next_cycle()
            elif isinstance(event, h11.Request):
                self._head = event
                self._body.clear()
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert self._head is not None
                return MockRequest(
                    self._head.method.decode("ascii"),
                    self._origin + self._head.target.decode("ascii"),
                    Headers._from_raw(self._head.headers.raw_items()),
                    bytes(self._body),
                )
            elif isinstance(event, h11.ConnectionClosed):
                self.client_closed = True
                return None

    def interim(self) -> bytes:
        """A ``100 Continue`` when the client waits for one before its
        body (RFC 9110 section 10.1.1), else ``b""``."""
        if not self._h11.they_are_waiting_for_100_continue:
            return b""
        return self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""

    def head(self, response: Response) -> bytes:
        """The bytes of the response head; a ``bytes`` body gets its
        ``Content-Length``, a streamed one is chunked."""
        fields = Headers(response.headers)
        if isinstance(response.body, bytes) and "content-length" not in fields:
            fields.set("content-length", str(len(response.body)))
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
        return self._h11.send(h11.Response(status_code=response.status, headers=raw)) or b""

    def data(self, piece: bytes) -> bytes:
        """The bytes of a piece of the body."""
        if not piece:
            return b""
        return self._h11.send(h11.Data(data=bytes(piece))) or b""

    def end(self) -> bytes:
        """The bytes that end the response."""
        return self._h11.send(h11.EndOfMessage()) or b""

    @property
    def must_close(self) -> bool:
        """After :meth:`end`: the connection closes (either side said
        ``Connection: close``)."""
        return self._h11.our_state is h11.MUST_CLOSE
