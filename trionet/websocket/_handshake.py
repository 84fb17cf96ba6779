"""The opening handshake (RFC 6455 section 4), both sides, sans-IO: request
and response heads as bytes in and out, through wsproto's handshake; no
trio, no socket (:mod:`._server` and :mod:`._client` move the bytes).

Server (:func:`accept_upgrade`): the HTTP server already parsed the upgrade
request with h11; its head is handed to wsproto's handshake as received,
which checks it (``Sec-WebSocket-Key``, version 13, ``Upgrade`` and
``Connection``), and negotiates the subprotocol and permessage-deflate
(:mod:`._deflate`), and writes the ``101``. A bad request comes out as
:exc:`UpgradeRefused` with the status (400, or 426 for another version) and
header fields to answer with.

Client (:class:`ClientHandshake`): the request's bytes, then the answer fed
as it arrives until the ``101`` is complete. A non-101 answer (with up to
64 KiB of its body), a 101 that breaks RFC 6455 (a wrong
``Sec-WebSocket-Accept``, an extension or subprotocol that was not offered)
or an over-long head is a :exc:`~trionet.websocket.HandshakeError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..http._headers import Headers, HeadersInput
from ._deflate import bounded_deflate
from ._events import HandshakeError
from ._frames import head_fields
from ._protocol import WebSocketProtocol

__all__ = [
    "ClientHandshake",
    "ServerAccept",
    "UpgradeRefused",
    "accept_upgrade",
    "encode_headers",
    "origin_allowed",
]

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


def encode_headers(headers: HeadersInput | None) -> list[tuple[bytes, bytes]]:
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


class UpgradeRefused(Exception):
    """The upgrade request is not a valid WebSocket opening handshake: answer
    it with ``status`` and the header fields ``headers``."""

    def __init__(self, message: str, status: int, headers: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


class ServerAccept:
    """What :func:`accept_upgrade` agreed to: the ``101`` response to send,
    the protocol of the connection, and the extensions' names."""

    __slots__ = ("extensions", "protocol", "response")

    def __init__(self, response: bytes, protocol: WebSocketProtocol, extensions: list[str]) -> None:
        self.response = response
        self.protocol = protocol
        self.extensions = extensions


def accept_upgrade(
    head: bytes,
    *,
    subprotocol: str | None,
    headers: HeadersInput | None,
    compression: bool,
    max_message_size: int | None,
) -> ServerAccept:
    """Check the upgrade request ``head`` (its request line and header
    fields, as received) and agree to it.

    Raises:
        UpgradeRefused: The request is not a valid upgrade.
        ValueError: ``subprotocol`` was not offered, or ``headers`` holds an
            invalid field.
    """
    handshake = H11Handshake(ConnectionType.SERVER)
    try:
        handshake.receive_data(head)
        event = next(iter(handshake.events()))
    except RemoteProtocolError as exc:
        hint = exc.event_hint
        status = hint.status_code if isinstance(hint, RejectConnection) else 400
        extra = (
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in hint.headers]
            if isinstance(hint, RejectConnection)
            else []
        )
        raise UpgradeRefused(f"a bad WebSocket upgrade: {exc}", status, extra) from None
    assert isinstance(event, Request)
    if subprotocol is not None and subprotocol not in event.subprotocols:
        raise ValueError(
            f"subprotocol {subprotocol!r} was not offered (the client offered"
            f" {list(event.subprotocols)})"
        )
    offered = [bounded_deflate(max_message_size)] if compression else []
    try:
        response = handshake.send(
            AcceptConnection(
                subprotocol=subprotocol,
                extensions=list(offered),
                extra_headers=encode_headers(headers),
            )
        )
    except LocalProtocolError as exc:  # pragma: no cover - checked above
        raise ValueError(str(exc)) from None
    conn = handshake.connection
    assert conn is not None
    agreed = [extension.name for extension in offered if extension.enabled()]
    protocol = WebSocketProtocol(
        conn, client=False, extensions=agreed, max_message_size=max_message_size
    )
    return ServerAccept(response, protocol, agreed)


class ClientHandshake:
    """The client's side: :attr:`request` to send, then
    :meth:`receive_data` with what the server answers until it returns
    ``True``; then :meth:`protocol` and the agreed parameters.

    Attributes:
        request: The upgrade request's bytes.
        subprotocol: The subprotocol the server agreed to (once accepted).
        extensions: The extensions' names the server agreed to (once accepted).
        response_fields: The 101's header fields (once accepted).
    """

    def __init__(
        self,
        url: str,
        *,
        host: str,
        target: str,
        subprotocols: Iterable[str],
        extra_headers: list[tuple[bytes, bytes]],
        compression: bool,
        max_message_size: int | None,
    ) -> None:
        self._url = url
        self._max_message_size = max_message_size
        self._handshake = H11Handshake(ConnectionType.CLIENT)
        offered = [bounded_deflate(max_message_size)] if compression else []
        self.request = self._handshake.send(
            Request(
                host=host,
                target=target,
                extensions=list(offered),
                subprotocols=list(subprotocols),
                extra_headers=extra_headers,
            )
        )
        self._received = bytearray()
        self._rejected: RejectConnection | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self.subprotocol: str | None = None
        self.extensions: list[str] = []
        self.response_fields: list[tuple[bytes, bytes]] = []

    def receive_data(self, data: bytes) -> bool:
        """Feed what the server sent (``b""`` when it closed the connection);
        ``True`` once the upgrade was accepted, ``False`` while more is needed.

        Raises:
            HandshakeError: The server refused the upgrade, answered it
                wrongly, or closed the connection.
        """
        if len(self._received) <= _MAX_RESPONSE_HEAD:
            self._received += data
        try:
            self._handshake.receive_data(data or None)
            events = list(self._handshake.events())
        except RemoteProtocolError as exc:
            raise HandshakeError(f"{self._url} answered the upgrade wrongly: {exc}") from None
        for event in events:
            if isinstance(event, AcceptConnection):
                self.subprotocol = event.subprotocol
                self.extensions = [extension.name for extension in event.extensions]
                self.response_fields = head_fields(bytes(self._received))
                return True
            if isinstance(event, RejectConnection):
                self._rejected = event
                if not event.has_body:
                    raise self._refusal()
            elif isinstance(event, RejectData):
                self._body.append(bytes(event.data))
                self._body_size += len(event.data)
                if event.body_finished:
                    raise self._refusal()
        if self._rejected is None and len(self._received) > _MAX_RESPONSE_HEAD:
            raise HandshakeError(f"{self._url} answered with an over-long response head")
        if data and self._body_size < _MAX_REJECT_BODY:
            return False
        raise self._refusal()

    def _refusal(self) -> HandshakeError:
        rejected = self._rejected
        if rejected is None:
            return HandshakeError(f"{self._url} closed the connection during the handshake")
        status = rejected.status_code
        return HandshakeError(
            f"{self._url} refused the WebSocket upgrade with HTTP {status}",
            status,
            list(rejected.headers),
            b"".join(self._body)[:_MAX_REJECT_BODY],
        )

    def protocol(self) -> WebSocketProtocol:
        """The connection's protocol, once :meth:`receive_data` accepted."""
        conn = self._handshake.connection
        assert conn is not None, "the handshake is not complete"
        return WebSocketProtocol(
            conn, client=True, extensions=self.extensions, max_message_size=self._max_message_size
        )
