"""The request a handler sees: :class:`Request`, its body stream
(:class:`RequestBody`) and the streaming response sender
(:class:`ResponseStream`).

They hold no protocol state of their own: every read and write goes through
the :class:`Exchange` they belong to (the
:class:`~trionet.http.HTTPConnection`), which keeps the sans-IO protocol and
the socket in step.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self
from urllib.parse import parse_qs, unquote

import trio

from ..._proxy._protocol import ProxyHeader
from ..._server import SocketAddress
from ..._transport import DEFAULT_CLOSE_TIMEOUT
from ..._trust import TrustedPeers
from ..._websocket_limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    ConnectionOptions,
)
from ...tls._stream import TLSInfo
from .._forwarded import ForwardedView
from .._forwarded import resolve as resolve_forwarded
from .._headers import Headers, HeadersInput
from ._errors import ProtocolError
from ._response import Body, Response
from ._upgrade import UPGRADES, Upgrade

if TYPE_CHECKING:
    from ...websocket._connection import WebSocketConnection

__all__ = ["Exchange", "Request", "RequestBody", "ResponseStream", "websocket_upgrade"]


class Exchange(Protocol):
    """What requests, their bodies and their responses need of the
    connection they came on (:class:`~trionet.http.HTTPConnection` is the
    one): a protocol, so that messages do not depend on the connection that
    drives them."""

    tls: TLSInfo | None
    _forwarded: TrustedPeers | None
    _forwarded_header: str

    @property
    def remote_address(self) -> SocketAddress: ...

    @property
    def proxy_header(self) -> ProxyHeader | None: ...

    async def _read_body(self, request: Request) -> bytes | None: ...

    def _responded(self, request: Request) -> bool: ...

    async def _respond(self, request: Request, response: Response) -> None: ...

    async def _start_response(
        self, request: Request, status: int, headers: Headers, length: int | None
    ) -> None: ...

    async def _send_body(self, request: Request, data: bytes) -> None: ...

    async def _finish_response(self, request: Request, trailers: Headers) -> None: ...

    def _upgrade(self, request: Request) -> Upgrade: ...


class RequestBody:
    """A request's body, read as an async iterator of byte chunks
    (``async for chunk in request.body``).

    Reading it the first time sends ``100 Continue`` to a client that asked
    for it. Passing the server's ``max_body_size`` raises
    :exc:`BodyTooLarge`; a client that stalls longer than ``body_timeout``
    raises :exc:`RequestTimeout`.
    """

    __slots__ = ("_conn", "_request")

    def __init__(self, conn: Exchange, request: Request) -> None:
        self._conn = conn
        self._request = request

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._conn._read_body(self._request)
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class Request:
    """One HTTP request, as a handler receives it.

    Attributes:
        method: The method, such as ``"GET"``.
        target: The request target exactly as sent (path and query, still
            percent-encoded).
        http_version: ``"1.1"`` or ``"1.0"``.
    """

    __slots__ = (
        "_body",
        "_body_read",
        "_conn",
        "_headers",
        "_path",
        "_query",
        "_raw_headers",
        "_trailers",
        "_view",
        "_view_read",
        "http_version",
        "method",
        "target",
    )

    def __init__(
        self,
        conn: Exchange,
        method: str,
        target: str,
        raw_headers: list[tuple[bytes, bytes]],
        http_version: str,
    ) -> None:
        self._conn = conn
        self.method = method
        self.target = target
        self._raw_headers = raw_headers
        self.http_version = http_version
        self._body: RequestBody | None = None
        self._body_read = False  # the handler read the body to its end
        self._trailers: list[tuple[bytes, bytes]] = []
        self._headers: Headers | None = None
        self._path: str | None = None
        self._query: dict[str, list[str]] | None = None
        # What trusted forwarding headers say (see client), once asked.
        self._view: ForwardedView | None = None
        self._view_read = False

    def __repr__(self) -> str:
        return f"<trionet.http.Request {self.method} {self.target}>"

    @property
    def client(self) -> SocketAddress:
        """The client's address: the connection's peer
        (:attr:`remote_address`), or, when that peer is a proxy the server
        trusts (``forwarded_allow_ips``), the client its ``X-Forwarded-For``
        (or ``Forwarded``, per ``forwarded_header``) names: the right-most
        hop that is not a trusted proxy, with port 0 when the header gives
        none."""
        view = self._forwarded()
        return self._conn.remote_address if view is None else view.client

    @property
    def remote_address(self) -> SocketAddress:
        """The address of the peer that sent this request, whatever its
        headers say: the client, or the proxy in front of the server (with
        a trusted PROXY protocol header, the client that header names)."""
        return self._conn.remote_address

    @property
    def scheme(self) -> str:
        """``"https"`` over TLS, else ``"http"``; from a trusted proxy, the
        scheme its ``X-Forwarded-Proto`` (or ``Forwarded: proto=``) gives."""
        view = self._forwarded()
        if view is not None:
            return view.scheme
        return "https" if self._conn.tls is not None else "http"

    @property
    def host(self) -> str | None:
        """The host the client asked for: the ``Host`` header (``None``
        without one); from a trusted proxy, the host its
        ``X-Forwarded-Host`` (or ``Forwarded: host=``) gives."""
        view = self._forwarded()
        if view is not None:
            return view.host
        return self.headers.get("host")

    @property
    def proxy_header(self) -> ProxyHeader | None:
        """The PROXY protocol header of the connection (see the server's
        ``proxy_protocol`` option), or ``None``."""
        return self._conn.proxy_header

    def _head_bytes(self) -> bytes:
        """The request head as the client sent it (for a handshake that
        parses it again)."""
        head = [f"{self.method} {self.target} HTTP/{self.http_version}\r\n".encode()]
        head.extend(b"%s: %s\r\n" % field for field in self._raw_headers)
        head.append(b"\r\n")
        return b"".join(head)

    def _forwarded(self) -> ForwardedView | None:
        if not self._view_read:
            self._view_read = True
            trusted = self._conn._forwarded
            if trusted is not None:
                self._view = resolve_forwarded(
                    self._conn.remote_address,
                    self._raw_headers,
                    trusted,
                    scheme="https" if self._conn.tls is not None else "http",
                    host=self.headers.get("host"),
                    header=self._conn._forwarded_header,
                )
        return self._view

    @property
    def tls(self) -> TLSInfo | None:
        """The TLS details, or ``None`` over plain TCP."""
        return self._conn.tls

    @property
    def body(self) -> RequestBody:
        """The body, as a :class:`RequestBody` stream."""
        if self._body is None:
            self._body = RequestBody(self._conn, self)
        return self._body

    @property
    def headers(self) -> Headers:
        """The request's header fields (case-insensitive, multi-valued, in the
        order received)."""
        if self._headers is None:
            self._headers = Headers._from_raw(self._raw_headers)
        return self._headers

    @property
    def trailers(self) -> Headers:
        """The trailer fields that followed a chunked body (RFC 9112 section
        7.1.2), once the body was read to its end; empty before, and when it
        had none. (A server may not let them change what the header fields
        said: they are kept apart.)"""
        return Headers._from_raw(self._trailers)

    @property
    def path(self) -> str:
        """The path part of the target, percent-decoded (``/a%20b`` → ``/a b``)."""
        if self._path is None:
            raw = self.target.split("?", 1)[0]
            self._path = unquote(raw) if "%" in raw else raw
        return self._path

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string, decoded: each name maps to all its values, in
        order (``?a=1&a=2`` → ``{"a": ["1", "2"]}``); blank values are kept."""
        if self._query is None:
            _, _, raw = self.target.partition("?")
            self._query = parse_qs(raw, keep_blank_values=True) if raw else {}
        return self._query

    @property
    def is_websocket_upgrade(self) -> bool:
        """True when the request asks to switch to WebSocket (RFC 6455
        section 4.1: a GET with ``Upgrade: websocket`` and ``Connection:
        upgrade``)."""
        if self.method != "GET":
            return False
        headers = self.headers
        upgrade = headers.get("upgrade", "").lower()
        connection = headers.get("connection", "").lower()
        return "websocket" in upgrade and "upgrade" in connection

    @property
    def responded(self) -> bool:
        """True once a response to this request has started."""
        return self._conn._responded(self)

    async def read(self) -> bytes:
        """Read the whole body.

        Returns:
            The body (``b""`` when there is none).

        Raises:
            BodyTooLarge: The body is larger than the server's
                ``max_body_size``.
            RequestTimeout: The client stalled longer than ``body_timeout``.
            ProtocolError: The body is malformed.
            trionet.ConnectionClosed: The client went away.
        """
        chunks = [chunk async for chunk in self.body]
        return b"".join(chunks)

    async def text(self, encoding: str | None = None) -> str:
        """Read the whole body as text.

        Args:
            encoding: The encoding; by default the ``charset`` of
                ``Content-Type``, else UTF-8.

        Returns:
            The decoded body (undecodable bytes are replaced).

        Raises:
            BodyTooLarge: As for :meth:`read`.
        """
        data = await self.read()
        if encoding is None:
            encoding = "utf-8"
            for part in self.headers.get("content-type", "").split(";")[1:]:
                key, _, value = part.strip().partition("=")
                if key.lower() == "charset" and value:
                    encoding = value.strip('"')
        try:
            return data.decode(encoding, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")

    async def json(self) -> Any:
        """Read the whole body as JSON.

        Returns:
            The decoded value.

        Raises:
            ProtocolError: The body is not valid JSON (the server answers 400).
            BodyTooLarge: As for :meth:`read`.
        """
        data = await self.read()
        try:
            return jsonlib.loads(data)
        except ValueError as exc:
            raise ProtocolError(f"the request body is not valid JSON: {exc}") from None

    async def respond(self, response: Response) -> None:
        """Send the response (what ``serve`` does with the handler's return
        value).

        Args:
            response: The response.

        Raises:
            RuntimeError: A response was already sent for this request.
            trionet.ConnectionClosed: The client went away.
        """
        await self._conn._respond(self, response)

    async def respond_stream(
        self, status: int = 200, headers: HeadersInput | None = None
    ) -> ResponseStream:
        """Start a response whose body you send piece by piece (long or live
        bodies). Without a ``Content-Length`` header the body is sent chunked
        (to HTTP/1.0 clients: until the connection closes).

        Args:
            status: The status code.
            headers: The header fields.

        Returns:
            The :class:`ResponseStream` to send the body with; the response
            ends when the handler returns, or with
            :meth:`ResponseStream.finish`.

        Raises:
            RuntimeError: A response was already sent for this request.
        """
        await self._conn._start_response(self, status, Headers(headers), None)
        return ResponseStream(self._conn, self)

    async def accept_websocket(
        self,
        subprotocol: str | None = None,
        headers: HeadersInput | None = None,
        *,
        origins: Sequence[str | None] | None = None,
        compression: bool = True,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        control_events: bool = False,
    ) -> WebSocketConnection:
        """Accept the WebSocket upgrade this request asks for (Node's
        ``'upgrade'`` event with ``ws``'s ``handleUpgrade``): answer ``101
        Switching Protocols`` and return the connection. The HTTP connection
        is the WebSocket's from then on; when the handler returns, the
        WebSocket is closed (1000; 1011 if the handler raised).

        Args:
            subprotocol: The subprotocol to agree to; it must be one the
                client offered (``Sec-WebSocket-Protocol``).
            headers: Extra header fields for the 101 response.
            origins: Allowed ``Origin`` values (``"https://app.example"``);
                ``None`` (default) allows any. Include ``None`` in the list
                to admit clients that send no ``Origin`` (non-browsers). A
                request from another origin is answered 403: the defence
                against cross-site WebSocket hijacking.
            compression: Agree to permessage-deflate when the client offers
                it (default on; inflating is bounded by ``max_message_size``).
            max_message_size: Bytes of one received message (default 1 MiB;
                close 1009 beyond); ``None`` for no limit.
            max_queued_bytes: Bytes of received messages waiting to be read
                (default 4 MiB) before the socket is no longer read.
            ping_interval: Seconds between keepalive pings (default 20);
                ``None`` for none.
            ping_timeout: Seconds a keepalive ping may wait for its pong
                (default 20; then the connection is dropped and reported with
                code 1011); ``None`` to wait forever.
            close_timeout: Seconds the close handshake may take (default 5).
            control_events: Report :class:`~trionet.websocket.Ping` and
                :class:`~trionet.websocket.Pong` events through
                :meth:`~trionet.websocket.WebSocketConnection.events` (default
                off; pings are answered either way).

        Returns:
            The open :class:`~trionet.websocket.WebSocketConnection`.

        Raises:
            ProtocolError: The upgrade request is malformed (answered 400, or
                426 for an unsupported version) or its origin is not allowed
                (403).
            ValueError: ``subprotocol`` was not offered, or a limit is out of
                range.
            TypeError: A limit is of the wrong kind.
            RuntimeError: The request is not a WebSocket upgrade, was already
                answered, or its connection is not served by
                :func:`~trionet.http.serve`.
        """
        accept = UPGRADES.websocket
        if accept is None:  # pragma: no cover - importing trionet imports trionet.websocket
            raise RuntimeError("trionet.websocket is not imported")
        options = ConnectionOptions(
            max_message_size=max_message_size,
            max_queued_bytes=max_queued_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            control_events=control_events,
        )
        return await accept(
            self,
            websocket_upgrade(self),
            subprotocol=subprotocol,
            headers=headers,
            origins=origins,
            compression=compression,
            options=options,
        )

    async def reject_websocket(
        self,
        status: int = 403,
        headers: HeadersInput | None = None,
        body: Body = b"",
    ) -> None:
        """Refuse the WebSocket upgrade with an ordinary HTTP response (the
        connection stays HTTP).

        Args:
            status: The status (default 403); not 101.
            headers: The response's header fields.
            body: The response body.

        Raises:
            ValueError: ``status`` is not a final status (below 200).
            RuntimeError: A response was already sent for this request.
        """
        if status < 200:
            raise ValueError(f"a rejection needs a final status (>= 200), not {status}")
        await self.respond(Response(status, headers, body))


class ResponseStream(trio.abc.AsyncResource):
    """The body of a response started with :meth:`Request.respond_stream`."""

    __slots__ = ("_conn", "_request")

    def __init__(self, conn: Exchange, request: Request) -> None:
        self._conn = conn
        self._request = request

    async def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send a piece of the body; returns once the connection took it.

        Args:
            data: The bytes; a ``str`` is sent as UTF-8.

        Raises:
            RuntimeError: The response was finished.
            trionet.ConnectionClosed: The client went away.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        await self._conn._send_body(self._request, bytes(data))

    async def finish(self, trailers: HeadersInput | None = None) -> None:
        """End the body. Calling it again does nothing.

        Args:
            trailers: Trailer fields, sent after a chunked body (ignored when
                the body is not chunked).

        Raises:
            trionet.ConnectionClosed: The client went away.
        """
        await self._conn._finish_response(self._request, Headers(trailers))

    async def aclose(self) -> None:
        """The same as :meth:`finish`."""
        await self.finish()


def websocket_upgrade(request: Request) -> Upgrade:
    """The hand-off of ``request``'s connection to a WebSocket (see
    :mod:`._upgrade`): what :meth:`Request.accept_websocket` and
    :func:`trionet.websocket.serve` give the WebSocket server side.

    Raises:
        RuntimeError: The request was already answered, is not a WebSocket
            upgrade, or its connection is not served by
            :func:`~trionet.http.serve`.
    """
    if request.responded:
        raise RuntimeError("a response to this request was already sent")
    if not request.is_websocket_upgrade:
        raise RuntimeError(f"{request!r} is not a WebSocket upgrade request")
    return request._conn._upgrade(request)
