"""The opening handshake (RFC 6455 section 4), both sides, through wsproto.

Server: the HTTP server already parsed the upgrade request with h11; its
head is handed to wsproto's handshake as received, which checks it
(``Sec-WebSocket-Key``, version 13, ``Upgrade`` and ``Connection``), and
negotiates the subprotocol and permessage-deflate, and writes the ``101``.
Whatever the client sent after the request head is already in the HTTP
connection's buffer: it is fed to the new WebSocket before anything else is
read, so frames that came with the request are not lost.

Client: TCP (and TLS) through :func:`trionet.connect_tcp`, then wsproto's
handshake writes the request and reads the answer, all under one
``handshake_timeout``. A non-101 answer (with up to 64 KiB of its body) is a
:exc:`~trionet.websocket.HandshakeError`.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import trio
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .._errors import ConnectionClosed as _ConnectionClosed
from .._errors import ConnectTimeout
from .._listeners import host_header
from .._tcp import connect_tcp
from .._tls import tls_info
from .._transport import Transport
from .._websocket_limits import ConnectionOptions
from ..http._connection import HTTPConnection
from ..http._headers import Headers, HeadersInput
from ..http._messages import UPGRADES, ProtocolError
from ._connection import WebSocketConnection
from ._deflate import bounded_deflate
from ._events import HandshakeError
from ._frames import head_fields

if TYPE_CHECKING:
    from ..http._messages import Request as HTTPRequest

__all__ = ["accept", "open_client", "origin_allowed", "parse_url"]

_MAX_REJECT_BODY = 64 * 1024
_MAX_RESPONSE_HEAD = 16 * 1024


def origin_allowed(origin: str | None, origins: Sequence[str | None] | None) -> bool:
    """Whether a request's ``Origin`` is in the allow-list (``None`` in the
    list admits requests without one: non-browser clients)."""
    if origins is None:
        return True
    if origin is None:
        return None in origins
    origin = origin.lower()
    return any(allowed is not None and allowed.lower() == origin for allowed in origins)


def _encode_headers(headers: HeadersInput | None) -> list[tuple[bytes, bytes]]:
    """Header fields to send, checked (a token name, a value without CR, LF
    or control characters, Latin-1).

    Raises:
        ValueError: A field is not valid.
    """
    if headers is None:
        return []
    fields = Headers(headers)
    fields._wire()  # raises ValueError for an invalid name or value
    try:
        return [(name.encode("ascii"), value.encode("latin-1")) for name, value in fields]
    except UnicodeEncodeError:
        raise ValueError(f"header values are Latin-1 text, not {fields!r}") from None


async def accept(
    request: HTTPRequest,
    *,
    subprotocol: str | None,
    headers: HeadersInput | None,
    origins: Sequence[str | None] | None,
    compression: bool,
    options: ConnectionOptions,
) -> WebSocketConnection:
    """Complete the server side of the handshake for ``request``."""
    conn = request._conn
    if not isinstance(conn, HTTPConnection):
        raise RuntimeError(f"{request!r} did not come on an HTTP/1.1 connection: no upgrade")
    if options.budget is None and conn._ws_budget is not None:
        # The server's budget for the messages all its WebSockets queue.
        options = replace(options, budget=conn._ws_budget)
    if request.responded:
        raise RuntimeError("a response to this request was already sent")
    if not request.is_websocket_upgrade:
        raise RuntimeError(f"{request!r} is not a WebSocket upgrade request")
    if conn._nursery is None:
        raise RuntimeError(
            "accept_websocket() needs the connection to be served by trionet.http.serve"
            " (its reader task runs in the connection's nursery)"
        )
    if not origin_allowed(request.headers.get("origin"), origins):
        raise ProtocolError(f"origin {request.headers.get('origin')!r} is not allowed", 403)
    handshake = H11Handshake(ConnectionType.SERVER)
    head = [f"{request.method} {request.target} HTTP/{request.http_version}\r\n".encode()]
    head.extend(b"%s: %s\r\n" % field for field in request._raw_headers)
    head.append(b"\r\n")
    try:
        handshake.receive_data(b"".join(head))
        event = next(iter(handshake.events()))
    except RemoteProtocolError as exc:
        hint = exc.event_hint
        status = hint.status_code if isinstance(hint, RejectConnection) else 400
        extra = (
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in hint.headers]
            if isinstance(hint, RejectConnection)
            else []
        )
        raise ProtocolError(f"a bad WebSocket upgrade: {exc}", status, extra) from None
    assert isinstance(event, Request)
    if subprotocol is not None and subprotocol not in event.subprotocols:
        raise ValueError(
            f"subprotocol {subprotocol!r} was not offered (the client offered"
            f" {list(event.subprotocols)})"
        )
    offered = [bounded_deflate(options.max_message_size)] if compression else []
    try:
        response = handshake.send(
            AcceptConnection(
                subprotocol=subprotocol,
                extensions=list(offered),
                extra_headers=_encode_headers(headers),
            )
        )
    except LocalProtocolError as exc:  # pragma: no cover - checked above
        raise ValueError(str(exc)) from None
    proto = handshake.connection
    assert proto is not None
    transport, trailing = await conn._switch_protocols(request, response)
    agreed = [extension.name for extension in offered if extension.enabled()]
    ws = WebSocketConnection(
        transport,
        proto,
        client=False,
        subprotocol=subprotocol,
        extensions=agreed,
        path=request.path,
        target=request.target,
        request_headers=request.headers,
        response_headers=response,
        tls=conn.tls,
        options=options,
    )
    if trailing:
        proto.receive_data(trailing)
    conn._upgraded = ws
    ws._start(conn._nursery)
    return ws


# Request.accept_websocket (trionet.http) runs this: HTTP does not import WebSocket.
UPGRADES.websocket = accept


def parse_url(url: str) -> tuple[bool, str, int, str, str]:
    """``(secure, host, port, target, host_header)`` of a ws:// or wss:// URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"a WebSocket URL starts with ws:// or wss://, not {url!r}")
    if parts.fragment:
        raise ValueError(f"a WebSocket URL has no fragment (RFC 6455 section 3): {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    secure = scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        raise ValueError(f"a bad port in {url!r}") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return secure, host, port, target, host_header(host, port, 443 if secure else 80)


async def open_client(
    url: str,
    *,
    subprotocols: Iterable[str],
    headers: HeadersInput | None,
    origin: str | None,
    ssl_context: ssl.SSLContext | None,
    compression: bool,
    handshake_timeout: float | None,
    options: ConnectionOptions,
) -> WebSocketConnection:
    """Connect and complete the client side of the handshake."""
    secure, host, port, target, host_header = parse_url(url)
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    elif not secure:
        ssl_context = None
    offered_protocols = list(subprotocols)
    extra = _encode_headers(headers)
    if origin is not None:
        extra += _encode_headers([("Origin", origin)])
    offered = [bounded_deflate(options.max_message_size)] if compression else []
    handshake = H11Handshake(ConnectionType.CLIENT)
    request = handshake.send(
        Request(
            host=host_header,
            target=target,
            extensions=list(offered),
            subprotocols=offered_protocols,
            extra_headers=extra,
        )
    )
    deadline = trio.current_time() + (handshake_timeout or float("inf"))
    conn = await connect_tcp(
        host,
        port,
        ssl_context=ssl_context,
        connect_timeout=handshake_timeout,
        close_timeout=options.close_timeout,
    )
    transport = Transport(conn.stream, options.close_timeout)
    accepted: AcceptConnection | None = None
    fields: list[tuple[bytes, bytes]] = []
    with trio.move_on_at(deadline) as scope:
        try:
            await transport.send_all(request)
            accepted, fields = await _read_answer(handshake, transport, url)
        except _ConnectionClosed as exc:
            await transport.aclose()
            raise HandshakeError(
                f"the connection to {url} broke during the handshake: {exc}"
            ) from exc
        except BaseException:
            await transport.aclose()
            raise
    if scope.cancelled_caught or accepted is None:
        await transport.aclose()
        raise ConnectTimeout(
            errno.ETIMEDOUT, f"the WebSocket handshake with {url} took over {handshake_timeout:g} s"
        )
    proto = handshake.connection
    assert proto is not None
    path = target.split("?", 1)[0]
    sent = Headers._from_raw([(b"host", host_header.encode("idna")), *extra])
    return WebSocketConnection(
        transport,
        proto,
        client=True,
        subprotocol=accepted.subprotocol,
        extensions=[extension.name for extension in accepted.extensions],
        path=unquote(path),
        target=target,
        request_headers=sent,
        response_headers=Headers._from_raw(fields),
        tls=tls_info(conn.stream) if isinstance(conn.stream, trio.SSLStream) else None,
        options=options,
    )


async def _read_answer(
    handshake: H11Handshake, transport: Transport, url: str
) -> tuple[AcceptConnection, list[tuple[bytes, bytes]]]:
    """The server's acceptance, and the header fields of its 101."""
    received = bytearray()
    rejected: RejectConnection | None = None
    body: list[bytes] = []
    body_size = 0
    while True:
        data = await transport.receive()
        if len(received) <= _MAX_RESPONSE_HEAD:
            received += data
        try:
            handshake.receive_data(data or None)
            events = list(handshake.events())
        except RemoteProtocolError as exc:
            raise HandshakeError(f"{url} answered the upgrade wrongly: {exc}") from None
        for event in events:
            if isinstance(event, AcceptConnection):
                return event, head_fields(bytes(received))
            if isinstance(event, RejectConnection):
                rejected = event
                if not event.has_body:
                    break
            elif isinstance(event, RejectData):
                body.append(bytes(event.data))
                body_size += len(event.data)
                if event.body_finished:
                    break
        else:
            if rejected is None and len(received) > _MAX_RESPONSE_HEAD:
                raise HandshakeError(f"{url} answered with an over-long response head")
            if data and body_size < _MAX_REJECT_BODY:
                continue
        if rejected is None:
            raise HandshakeError(f"{url} closed the connection during the handshake")
        status = rejected.status_code
        raise HandshakeError(
            f"{url} refused the WebSocket upgrade with HTTP {status}",
            status,
            list(rejected.headers),
            b"".join(body)[:_MAX_REJECT_BODY],
        )
