"""The response a handler returns: :class:`Response`, a value that holds
no connection (the connection that sends it frames it)."""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterable
from typing import Any

from .._headers import Headers, HeadersInput
from .._wire import reason_phrase

__all__ = ["Body", "Response"]

#: What a :class:`Response` body may be.
Body = bytes | bytearray | memoryview | str | AsyncIterable[bytes]


def _with_content_type(headers: Headers, content_type: str) -> Headers:
    """``headers`` with ``Content-Type`` set to ``content_type`` unless it
    has one; a copy when it changes, so the caller's object never does."""
    if "content-type" in headers:
        return headers
    headers = headers.copy()
    headers.add("content-type", content_type)
    return headers


def _encode_body(body: Body) -> bytes | AsyncIterable[bytes]:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, AsyncIterable):
        return body
    raise TypeError(f"a response body is bytes, str or an async iterable, not {body!r}")


class Response:
    """A response for a handler to return.

    Args:
        status: The status code (default 200).
        headers: Header fields; ``Date``, ``Server``, ``Content-Length`` or
            ``Transfer-Encoding`` are added for you.
        body: ``bytes``, a ``str`` (sent as UTF-8, with ``Content-Type:
            text/plain; charset=utf-8`` unless you set one), or an async
            iterable of ``bytes`` (sent as it comes, chunked unless you set
            ``Content-Length``).

    Raises:
        ValueError: ``status`` is not in 100..999.
        TypeError: ``body`` is of another type.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int = 200, headers: HeadersInput | None = None, body: Body = b""
    ) -> None:
        if not (isinstance(status, int) and 100 <= status <= 999):
            raise ValueError(f"a status code is an int in 100..999, not {status!r}")
        self.status = status
        fields = headers if isinstance(headers, Headers) else Headers(headers)
        if isinstance(body, str):
            fields = _with_content_type(fields, "text/plain; charset=utf-8")
        self.headers = fields
        self.body: bytes | AsyncIterable[bytes] = _encode_body(body)

    def __repr__(self) -> str:
        return f"<trionet.http.Response {self.status}>"

    @classmethod
    def text(cls, text: str, status: int = 200, headers: HeadersInput | None = None) -> Response:
        """A ``text/plain; charset=utf-8`` response.

        Args:
            text: The body.
            status: The status code.
            headers: More header fields.

        Returns:
            The response.
        """
        return cls(status, headers, text)  # a str body is text/plain by default

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: HeadersInput | None = None) -> Response:
        """An ``application/json`` response.

        Args:
            data: Anything ``json.dumps`` takes.
            status: The status code.
            headers: More header fields.

        Returns:
            The response.
        """
        fields = _with_content_type(Headers(headers), "application/json")
        return cls(status, fields, jsonlib.dumps(data, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def redirect(
        cls, location: str, status: int = 302, headers: HeadersInput | None = None
    ) -> Response:
        """A redirect to ``location``.

        Args:
            location: Where to (absolute or relative URL).
            status: 301, 302 (default), 303, 307 or 308.
            headers: More header fields.

        Returns:
            The response.

        Raises:
            ValueError: ``status`` is not a redirect status.
        """
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"a redirect status is 301, 302, 303, 307 or 308, not {status!r}")
        fields = Headers(headers)
        fields.set("location", location)
        return cls(status, fields, f"{status} {reason_phrase(status)}: {location}\n")
