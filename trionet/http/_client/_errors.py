"""The exceptions of the HTTP client: one base, :class:`HTTPError`.

Every failure of :class:`~trionet.http.Client` is an :class:`HTTPError`, so
one ``except`` catches them all. Each also belongs to the family trionet uses
everywhere else, so code written against the rest of the library keeps
working:

* a connection that could not be opened is a :class:`~trionet.ConnectError`
  (an ``OSError``);
* a connection that broke during an exchange, or a server that does not speak
  HTTP, is a :class:`~trionet.ConnectionClosed`;
* every timeout is a ``TimeoutError``.

Misuse of the API (a malformed URL, a body of the wrong type) raises
``ValueError`` or ``TypeError`` at once, as elsewhere in trionet.
"""

from __future__ import annotations

import errno as errno_codes
import re
import ssl

from ..._errors import ConnectError as _ConnectError
from ..._errors import ConnectionClosed, ConnectionReset
from ..._errors import ConnectTimeout as _ConnectTimeout
from ..._errors import TLSError as _TLSError

__all__ = [
    "DecodingError",
    "HTTPConnectError",
    "HTTPConnectTimeout",
    "HTTPError",
    "HTTPTLSError",
    "HTTPTimeout",
    "PoolTimeout",
    "ProxyError",
    "ReadTimeout",
    "RedirectError",
    "RedirectLoop",
    "RemoteProtocolError",
    "ResponseTooLarge",
    "ServerDisconnected",
    "TooManyRedirects",
    "TransportError",
    "UnsupportedProxy",
    "WriteTimeout",
    "tls_failure",
]


class HTTPError(Exception):
    """The base of every error the HTTP client raises.

    Attributes:
        message: What happened, in one line.
    """

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransportError(HTTPError, ConnectionClosed):
    """The connection failed during an exchange (also a
    :class:`trionet.ConnectionClosed`, whose ``reason`` is the message)."""

    def __init__(self, message: str) -> None:
        HTTPError.__init__(self, message)
        self.reason = message


class ServerDisconnected(TransportError):
    """The server closed the connection (or reset it) before its response
    was complete.

    Attributes:
        before_response: ``True`` when not one byte of the response had
            arrived: the server may not have processed the request at all.
    """

    def __init__(self, message: str, *, before_response: bool = False) -> None:
        super().__init__(message)
        self.before_response = before_response


class RemoteProtocolError(TransportError):
    """The server's answer is not valid HTTP/1.1 (RFC 9112)."""


class DecodingError(RemoteProtocolError):
    """A response body could not be decoded as its ``Content-Encoding``
    says."""


class HTTPTLSError(TransportError, _TLSError):
    """The TLS handshake with the server (or the proxy's tunnel) failed, for
    example because its certificate was not trusted (also a
    :class:`trionet.TLSError`)."""


class ProxyError(TransportError):
    """The proxy refused to open a tunnel: its answer to ``CONNECT`` was not
    2xx, or a SOCKS proxy refused (or broke) its handshake.

    Attributes:
        status: The HTTP proxy's status code; 502 for a SOCKS proxy.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnsupportedProxy(HTTPError, ValueError):
    """A proxy URL (given as ``proxy=``, or from the environment) has a
    scheme the client cannot use: only ``http://`` proxies are (also a
    ``ValueError``)."""


class HTTPConnectError(HTTPError, _ConnectError):
    """The connection to the server (or proxy) could not be opened: refused,
    unreachable, or the name did not resolve (also a
    :class:`trionet.ConnectError`, an ``OSError``; ``errno`` is kept)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        HTTPError.__init__(self, message)
        self.errno = errno
        self.strerror = message


class HTTPTimeout(HTTPError, TimeoutError):
    """The base of the client's timeouts (also a ``TimeoutError``)."""


class HTTPConnectTimeout(HTTPConnectError, HTTPTimeout, _ConnectTimeout):
    """Opening the connection (name lookup, TCP, proxy tunnel and TLS
    handshake) took longer than the ``connect`` timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errno_codes.ETIMEDOUT)


class ReadTimeout(HTTPTimeout, TransportError):
    """The server sent nothing for longer than the ``read`` timeout."""


class WriteTimeout(HTTPTimeout, TransportError):
    """The server accepted no data for longer than the ``write`` timeout."""


class PoolTimeout(HTTPTimeout):
    """No connection became available within the ``pool`` timeout (every
    connection the limits allow was busy)."""


class RedirectError(HTTPError):
    """A redirect could not be followed (a ``Location`` that is not an
    ``http`` or ``https`` URL, or a body that cannot be sent twice)."""


class TooManyRedirects(RedirectError):
    """More redirects than ``max_redirects``."""


class RedirectLoop(TooManyRedirects):
    """A redirect led back to a request already made."""


class ResponseTooLarge(HTTPError):
    """A response body (counted after decoding) grew beyond
    ``max_response_size`` while being read whole."""


def tls_failure(exc: ConnectionReset) -> str | None:
    """What TLS itself reported when a connection over TLS broke (a
    certificate refused after a TLS 1.3 handshake arrives as a failed read),
    or ``None`` when it broke otherwise. A TLS stream that just ends (no
    close_notify) counts as an ordinary close, as over TCP: many servers
    close idle connections that way."""
    broken = exc.__cause__
    cause = broken.__cause__ if broken is not None else None
    if isinstance(cause, ssl.SSLError) and not isinstance(
        cause, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(cause))
    return None
