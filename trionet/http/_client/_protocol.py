"""The HTTP/1.1 client protocol, sans I/O: the only module of the client that
speaks h11, and one that never touches trio or a socket.

Theory of operation
-------------------
:class:`ClientProtocol` is one connection's client side, one exchange at a
time. The driver (:mod:`._connection`) asks it for the bytes of a request
(:meth:`~ClientProtocol.request`, :meth:`~ClientProtocol.body`,
:meth:`~ClientProtocol.end`: ``Content-Length`` or chunked framing, RFC 9112
sections 6 and 7), writes them, and feeds it what the server sends
(:meth:`~ClientProtocol.receive_data`, ``b""`` for the end of the stream).
:meth:`~ClientProtocol.next_event` then says what happened, as trionet's own
events: an :class:`Informational` answer (``100 Continue``, ``103 Early
Hints``), the :class:`ResponseHead`, :class:`Body` pieces, the
:class:`ResponseEnd`, :class:`ServerClosed` between responses, or
:data:`NEED_DATA` when it cannot say before more bytes arrive.

It also checks what h11 leaves to its user:

* a response head within ``max_header_size``: h11 bounds a head only while it
  is incomplete, so one that arrived in a single read is measured here;
* framing one way only: a response with both ``Transfer-Encoding`` and
  ``Content-Length`` is refused (RFC 9112 section 6.3 says it "ought to be
  handled as an error": two parties framing it differently disagree on where
  the next response starts: response splitting, cache poisoning);
* no endless 1xx: informational answers may precede the response (RFC 9110
  section 15.2) but not without end, since a stream of them would never trip
  the read timeout.

A malformed response raises :class:`RemoteProtocolError`; an end of stream
before the response was complete raises :class:`ServerDisconnected` (h11
calls it a protocol error; for the client it is a disconnect, and, before the
first byte, the case that may be retried). Either makes the connection
unusable.

After the response, :meth:`~ClientProtocol.reusable` says whether the
connection may carry another exchange: only when both sides ended this one
cleanly and neither asked to close (RFC 9112 section 9.3); if so, it is ready
for the next request.

:class:`TunnelExchange` is the proxy's ``CONNECT`` (RFC 9110 section 9.3.6),
sans I/O as well: its request's bytes, and the verdict on the proxy's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import h11

from .._headers import Headers
from ._errors import ProxyError, RemoteProtocolError, ServerDisconnected

__all__ = [
    "NEED_DATA",
    "Body",
    "ClientEvent",
    "ClientProtocol",
    "Informational",
    "NeedData",
    "ResponseEnd",
    "ResponseHead",
    "ServerClosed",
    "TunnelExchange",
    "wire_fields",
]

# 1xx responses accepted before a response: 100 Continue and 103 Early Hints
# come once or twice; a server sending more is broken or hostile.
MAX_INFORMATIONAL = 32


class ClientEvent:
    """The base of what :meth:`ClientProtocol.next_event` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Informational(ClientEvent):
    """A 1xx answer before the response (``100 Continue``, ``103 Early
    Hints``)."""

    status: int


@dataclass(frozen=True, slots=True)
class ResponseHead(ClientEvent):
    """The response's status line and header fields (checked)."""

    status: int
    reason: str
    headers: Headers
    http_version: str


@dataclass(frozen=True, slots=True)
class Body(ClientEvent):
    """A piece of the response body, as it arrived (before any decoding)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseEnd(ClientEvent):
    """The response body is complete."""


@dataclass(frozen=True, slots=True)
class ServerClosed(ClientEvent):
    """The server ended the stream where no response was under way."""


@dataclass(frozen=True, slots=True)
class NeedData(ClientEvent):
    """Nothing more to say until :meth:`ClientProtocol.receive_data`."""


NEED_DATA: Final = NeedData()
_END: Final = ResponseEnd()
_CLOSED: Final = ServerClosed()


def _misuse(exc: h11.LocalProtocolError) -> ValueError:
    """The caller's request breaks HTTP/1.1 (a ``Content-Length`` that its
    body does not match, a body for a method that has none...)."""
    return ValueError(f"cannot send this request: {exc}")


class ClientProtocol:
    """One connection's HTTP/1.1 client state (see the module docstring).

    Args:
        max_header_size: The most bytes of a response head.
    """

    __slots__ = ("_h11", "_informational", "_server_closed", "max_header_size")

    def __init__(self, max_header_size: int) -> None:
        self.max_header_size = max_header_size
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
        self._informational = 0
        self._server_closed = False

    # -- state -------------------------------------------------------------

    @property
    def server_closed(self) -> bool:
        """Whether the server's end of stream was received."""
        return self._server_closed

    def reusable(self) -> bool:
        """After an exchange: whether both sides ended it cleanly and keep
        the connection open; if so, the protocol is ready for the next one."""
        h = self._h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            return True
        return False

    # -- the request -------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None = None,
        *,
        end: bool = False,
    ) -> bytes:
        """The bytes of a request head; with ``end``, also of ``body`` (if
        any) and of the request's end, in one buffer (a request head with
        its small body goes out in one packet).

        Raises:
            ValueError: The request breaks HTTP/1.1 (a bad method, target or
                field; a ``Content-Length`` its body does not match).
        """
        self._informational = 0
        send = self._h11.send
        try:
            head = h11.Request(method=method, target=target, headers=headers)
            data = send(head) or b""
            if not end:
                return data
            if body is not None:
                data += send(h11.Data(data=body)) or b""
            return data + (send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise _misuse(exc) from None

    def body(self, data: bytes, *, end: bool = False) -> bytes:
        """The bytes of a piece of the request body (and, with ``end``, of
        the request's end).

        Raises:
            ValueError: More body than the ``Content-Length`` said.
        """
        send = self._h11.send
        try:
            out = send(h11.Data(data=data)) or b""
            if end:
                out += send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise _misuse(exc) from None
        return out

    def end(self) -> bytes:
        """The bytes of the request's end.

        Raises:
            ValueError: Less body than the ``Content-Length`` said.
        """
        try:
            return self._h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise _misuse(exc) from None

    # -- the response ------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` for its end of stream."""
        if not data:
            self._server_closed = True
        self._h11.receive_data(data)

    def next_event(self) -> ClientEvent:
        """What the bytes received so far say, one event at a time.

        Returns:
            An event; :data:`NEED_DATA` when more bytes are needed.

        Raises:
            RemoteProtocolError: The server's bytes are not valid HTTP/1.1,
                its head is too large, framed two ways, or preceded by too
                many 1xx answers.
            ServerDisconnected: The stream ended mid-response.
        """
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise self._protocol_error(exc) from None
        if isinstance(event, h11.Data):
            return Body(bytes(event.data))
        if event is h11.NEED_DATA:
            return NEED_DATA
        if isinstance(event, h11.EndOfMessage):
            return _END
        if isinstance(event, h11.Response):
            return self._head(event)
        if isinstance(event, h11.InformationalResponse):
            self._informational += 1
            if self._informational > MAX_INFORMATIONAL:
                raise RemoteProtocolError(
                    f"more than {MAX_INFORMATIONAL} informational (1xx) responses"
                )
            return Informational(event.status_code)
        if isinstance(event, h11.ConnectionClosed):
            return _CLOSED
        # h11 hands a client nothing else (no Request, no PAUSED).
        raise RemoteProtocolError(  # pragma: no cover
            f"unexpected {type(event).__name__} from the server"
        )

    def _head(self, event: h11.Response) -> ResponseHead:
        """A response head within ``max_header_size`` and framed one way
        only (see the module docstring); the error makes the connection
        unusable, so it is closed, never pooled."""
        size = len(event.reason) + 15
        chunked = False
        length = False
        for name, value in event.headers:  # names lowercased by h11
            size += len(name) + len(value) + 4
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                length = True
        if size > self.max_header_size:
            raise RemoteProtocolError(
                f"the response head is larger than max_header_size ({self.max_header_size} bytes)"
            )
        if chunked and length:
            raise RemoteProtocolError(
                "the response has both Transfer-Encoding and Content-Length"
                " (RFC 9112 section 6.3): refused, and the connection closed"
            )
        return ResponseHead(
            event.status_code,
            event.reason.decode("latin-1"),
            Headers._from_raw(event.headers),
            event.http_version.decode("ascii"),
        )

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> Exception:
        if self._server_closed:
            return ServerDisconnected(
                "the server closed the connection before the response was complete"
            )
        return RemoteProtocolError(f"the server's response is not valid HTTP/1.1: {exc}")


def wire_fields(method: str, target: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header fields of a request as they go on the wire (names in lower
    case, framing values normalized), for a trace: only called for a request
    that :meth:`ClientProtocol.request` accepted."""
    request = h11.Request(method=method, target=target, headers=headers)
    return [(name.decode(), value.decode("latin-1")) for name, value in request.headers]


class TunnelExchange:
    """A ``CONNECT`` request to a proxy and the verdict on its answer (RFC
    9110 section 9.3.6), sans I/O.

    Args:
        authority: ``host:port`` of the origin (an IPv6 literal in brackets).
        proxy_url: The proxy, as error messages name it.
        authorization: The ``Proxy-Authorization`` value, if any.
        max_header_size: The most bytes of the proxy's answer head.
    """

    __slots__ = ("_h11", "_request", "authority", "proxy_url")

    def __init__(
        self, authority: str, proxy_url: str, authorization: str | None, max_header_size: int
    ) -> None:
        self.authority = authority
        self.proxy_url = proxy_url
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
        self._request: list[tuple[str, str]] = [("Host", authority)]
        if authorization is not None:
            self._request.append(("Proxy-Authorization", authorization))

    def request(self) -> bytes:
        """The bytes of the ``CONNECT`` request."""
        # The target of CONNECT is always host and port (RFC 9110 section 9.3.6).
        return (
            self._h11.send(
                h11.Request(method="CONNECT", target=self.authority, headers=self._request)
            )
            or b""
        )

    def receive_data(self, data: bytes) -> bool:
        """Bytes from the proxy (``b""`` at its end of stream).

        Returns:
            ``True`` once the tunnel is open, ``False`` while the answer is
            incomplete.

        Raises:
            ProxyError: The proxy refused the tunnel, answered wrongly,
                closed the connection, or sent bytes before the tunnel was
                used.
        """
        h = self._h11
        h.receive_data(data)
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProxyError(
                    f"the proxy {self.proxy_url} answered CONNECT wrongly: {exc}", 502
                ) from None
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                break
            raise ProxyError(
                f"the proxy {self.proxy_url} closed the connection during CONNECT", 502
            )
        if not 200 <= event.status_code < 300:
            reason = event.reason.decode("latin-1", "replace")
            raise ProxyError(
                f"the proxy {self.proxy_url} refused the tunnel to {self.authority}:"
                f" {event.status_code} {reason}",
                event.status_code,
            )
        if h.trailing_data[0]:
            raise ProxyError(
                f"the proxy {self.proxy_url} sent bytes before the tunnel was used", 502
            )
        return True
