"""The client's response, its body, and ``Content-Encoding`` decoding.

A response is returned once its head has arrived; its body is read from the
connection as it is asked for (``async for chunk in response``) or all at
once (:meth:`ClientResponse.read`, which the non-streaming methods of the
client call for you). When the body ends, the connection goes back to the
pool; a response closed before its end closes its connection instead, since
the rest of the body would have to be read before the next response.

Decoding (``Content-Encoding``) is :mod:`._decoding`'s, a bounded step at a
time as the body is read, so a small "bomb" cannot grow in memory beyond
what the reader takes; a body read whole stops at ``max_response_size``.
"""

from __future__ import annotations

import codecs
import json as jsonlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Self

import trio

from ... import _checks as checks
from .._headers import Headers
from ._connection import ClientConnection
from ._decoding import decode, decoders_for
from ._errors import (
    DecodingError,
    HTTPError,
    ResponseTooLarge,
    ServerDisconnected,
    TransportError,
)
from ._limits import DEFAULT_MAX_LINE_SIZE
from ._lines import LineSplitter, LineTooLong
from ._protocol import Body, ResponseEnd


class HTTPStatusError(HTTPError):
    """Raised by :meth:`ClientResponse.raise_for_status` for a 4xx or 5xx.

    Attributes:
        response: The response.
        status: Its status code.
    """

    def __init__(self, message: str, response: ClientResponse) -> None:
        super().__init__(message)
        self.response = response
        self.status = response.status


__all__ = ["ClientResponse"]


class _Body:
    """The iterator of ``async for chunk in response``. A class, not an
    async generator, so that leaving the loop early needs no finalizer."""

    __slots__ = ("_response",)

    def __init__(self, response: ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        piece = await self._response._next()
        if piece is None:
            raise StopAsyncIteration
        return piece


class _Lines:
    """The iterator of :meth:`ClientResponse.aiter_lines`: the body's text,
    a line at a time, read as the lines are asked for."""

    __slots__ = ("_body", "_decoder", "_done", "_lines", "_response", "_splitter")

    def __init__(self, response: ClientResponse, encoding: str, max_line_size: int) -> None:
        self._response = response
        self._body = response.__aiter__()
        try:
            decoder = codecs.getincrementaldecoder(encoding)
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")
        self._decoder = decoder(errors="replace")
        self._splitter = LineSplitter(max_line_size)
        self._lines: deque[str] = deque()
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        while not self._lines:
            if self._done:
                raise StopAsyncIteration
            try:
                piece = await self._body.__anext__()
            except StopAsyncIteration:
                self._done = True
                last = self._decoder.decode(b"", final=True)
                self._lines.extend(self._split(last) + self._splitter.finish())
                continue
            self._lines.extend(await self._checked(piece))
        return self._lines.popleft()

    async def _checked(self, piece: bytes) -> list[str]:
        try:
            return self._split(self._decoder.decode(piece))
        except ResponseTooLarge:
            await self._response.aclose()
            raise

    def _split(self, text: str) -> list[str]:
        try:
            return self._splitter.feed(text)
        except LineTooLong as exc:
            raise ResponseTooLarge(
                f"the response body from {self._response.url} has {exc} (max_line_size)"
            ) from None


class _Once:
    """A body already read, iterated again: one piece."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data


class ClientResponse:
    """A response received by :class:`~trionet.http.Client` (Node's
    ``http.IncomingMessage`` on the client side).

    Attributes:
        status: The status code, such as ``200``.
        reason: The reason phrase the server sent, such as ``"OK"``.
        headers: The header fields (:class:`~trionet.http.Headers`).
        http_version: ``"1.1"`` or ``"1.0"``.
        url: The URL this response answers (after redirects, the last one).
        method: The request's method.
        history: The redirect responses that led here, first first (their
            bodies are not kept).
        elapsed: Seconds from sending the request to the end of the head.
    """

    __slots__ = (
        "_body_done",
        "_closed",
        "_conn",
        "_content",
        "_decoders",
        "_max_size",
        "_pieces",
        "_read_timeout",
        "_release",
        "_streaming",
        "elapsed",
        "headers",
        "history",
        "http_version",
        "method",
        "reason",
        "status",
        "url",
    )

    def __init__(
        self,
        *,
        status: int,
        reason: str,
        headers: Headers,
        http_version: str,
        url: str,
        method: str,
        conn: ClientConnection | None,
        release: Callable[[ClientConnection, bool], Awaitable[None]],
        read_timeout: float | None,
        max_size: int,
        elapsed: float,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.http_version = http_version
        self.url = url
        self.method = method
        self.history: list[ClientResponse] = []
        self.elapsed = elapsed
        self._conn = conn
        self._release = release
        self._read_timeout = read_timeout
        self._max_size = max_size
        self._decoders = decoders_for(headers)
        self._pieces: Iterator[bytes] | None = None
        self._content: bytes | None = None
        self._body_done = conn is None
        self._streaming = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason} {self.url}>"

    @property
    def ok(self) -> bool:
        """Whether the status is below 400."""
        return self.status < 400

    @property
    def is_redirect(self) -> bool:
        """Whether this is a redirect with a ``Location`` to follow."""
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers

    def raise_for_status(self) -> Self:
        """Raise for a 4xx or 5xx status (Node: check ``res.statusCode``).

        Returns:
            The response itself, for chaining.

        Raises:
            HTTPStatusError: The status is 400 or above.
        """
        if self.status >= 400:
            kind = "client error" if self.status < 500 else "server error"
            raise HTTPStatusError(f"{self.status} {self.reason} ({kind}) for {self.url}", self)
        return self

    async def _next_raw(self) -> bytes | None:
        """The next piece of the body as it arrived, before decoding, or
        ``None`` at its end (the connection then goes back to the pool)."""
        conn = self._conn
        if conn is None:
            await trio.lowlevel.checkpoint()
            return None
        try:
            event = await conn.receive_event(self._read_timeout)
        except BaseException:
            await self._abandon()
            raise
        if isinstance(event, Body):
            return event.data
        if isinstance(event, ResponseEnd):
            self._body_done = True
            self._conn = None
            await self._release(conn, conn.reusable())
            return None
        await self._abandon()
        raise ServerDisconnected("the server closed the connection mid-response")

    async def _next(self) -> bytes | None:
        """The next piece of the decoded body, or ``None`` at its end.

        A piece that arrived compressed is decoded one bounded step at a
        time (a sync generator holds the rest of it, still compressed)."""
        while True:
            if self._pieces is not None:
                try:
                    piece = next(self._pieces, None)
                except DecodingError:
                    await self._abandon()
                    raise
                if piece is not None:
                    return piece
                self._pieces = None
            raw = await self._next_raw()
            decoders = self._decoders
            if raw is None:
                if decoders is not None:
                    for decoder in decoders:
                        decoder.finish()
                return None
            if decoders is None:
                return raw
            self._pieces = decode(decoders, raw)

    def _start_body(self) -> None:
        if self._streaming or self._closed:
            raise RuntimeError("the response body was already read (or the response closed)")
        self._streaming = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        """``async for chunk in response``: the body, decoded, piece by
        piece as it arrives.

        Raises:
            RuntimeError: The body was already read or is being read.
            ReadTimeout: The server paused longer than the ``read`` timeout.
            ServerDisconnected: The connection broke before the body's end.
            DecodingError: The body does not match its ``Content-Encoding``.
        """
        if self._content is not None:
            return _Once(self._content)
        self._start_body()
        return _Body(self)

    def aiter_lines(
        self, *, encoding: str | None = None, max_line_size: int = DEFAULT_MAX_LINE_SIZE
    ) -> AsyncIterator[str]:
        """``async for line in response.aiter_lines()``: the body as text, a
        line at a time, as it arrives (a log tail, NDJSON, a feed). A line
        ends at ``"\\n"``, ``"\\r\\n"`` or ``"\\r"`` and is given without its
        ending; the last one needs none.

        Args:
            encoding: The text encoding; default :attr:`encoding`.
            max_line_size: The longest line, in characters (default 1 MiB).

        Returns:
            The lines, as an async iterator.

        Raises:
            ResponseTooLarge: A line is longer than ``max_line_size`` (the
                connection is closed).
            RuntimeError: The body was already read or is being read.
            ReadTimeout: As for ``async for chunk in response``.
            ServerDisconnected: As for ``async for chunk in response``.
            DecodingError: As for ``async for chunk in response``.
        """
        size = checks.count("max_line_size", max_line_size)
        assert size is not None
        return _Lines(self, encoding or self.encoding, size)

    async def read(self) -> bytes:
        """Read the whole body (decoded) and return it; later calls return
        the same bytes.

        Returns:
            The body.

        Raises:
            ResponseTooLarge: The body grew beyond ``max_response_size``.
            ReadTimeout: The server paused longer than the ``read`` timeout.
            ServerDisconnected: The connection broke before the body's end.
            DecodingError: The body does not match its ``Content-Encoding``.
            RuntimeError: The body was already consumed by streaming.
        """
        if self._content is not None:
            await trio.lowlevel.checkpoint()
            return self._content
        self._start_body()
        pieces = []
        size = 0
        while (piece := await self._next()) is not None:
            size += len(piece)
            if size > self._max_size:
                await self._abandon()
                raise ResponseTooLarge(
                    f"the response body from {self.url} is larger than "
                    f"max_response_size ({self._max_size} bytes)"
                )
            pieces.append(piece)
        self._content = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return self._content

    async def _discard(self, limit: int) -> None:
        """Read the rest of the body away, up to ``limit`` bytes as they
        came, so the connection can serve the next request; beyond, or on an
        error, the connection is closed."""
        size = 0
        try:
            while (raw := await self._next_raw()) is not None:
                size += len(raw)
                if size > limit:
                    break
        except (TransportError, TimeoutError):
            pass
        await self.aclose()

    @property
    def encoding(self) -> str:
        """The ``charset`` of ``Content-Type``, else ``"utf-8"``."""
        content_type = self.headers.get("content-type", "")
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip('"').strip()
        return "utf-8"

    async def text(self, encoding: str | None = None) -> str:
        """The body as text.

        Args:
            encoding: The encoding; default :attr:`encoding`.

        Returns:
            The decoded text; undecodable bytes become U+FFFD.

        Raises:
            ResponseTooLarge: As :meth:`read`.
        """
        data = await self.read()
        try:
            return data.decode(encoding or self.encoding, errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON.

        Returns:
            The parsed value.

        Raises:
            ValueError: The body is not valid JSON.
            ResponseTooLarge: As :meth:`read`.
        """
        return jsonlib.loads(await self.read())

    async def _abandon(self) -> None:
        """Give up on the rest of the body: the connection cannot carry
        another exchange, so it is closed."""
        conn = self._conn
        self._conn = None
        self._body_done = True
        if conn is not None:
            with trio.CancelScope(shield=True):
                await self._release(conn, False)

    async def aclose(self) -> None:
        """Close the response: a body not read to its end closes the
        connection (idempotent; ``async with client.stream(...)`` does it)."""
        self._closed = True
        if not self._body_done:
            await self._abandon()
        else:
            await trio.lowlevel.checkpoint()
