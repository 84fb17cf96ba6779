"""HTTP/1.1 and HTTPS servers and client (Node's ``http`` and ``https``),
on h11.

``await nursery.start(trionet.http.serve, handler, port)`` serves
``async def handler(request) -> Response``; :class:`HTTPConnection` is the
connection underneath, an async iterator of :class:`Request` objects, usable
on any trio stream. ``async with trionet.http.Client() as client`` sends
requests: ``await client.get(url)``.
"""

from .._deprecated import aliases as _aliases
from ._client._auth import Auth as Auth
from ._client._auth import AuthInput as AuthInput
from ._client._auth import AuthRequest as AuthRequest
from ._client._auth import BasicAuth as BasicAuth
from ._client._auth import BearerAuth as BearerAuth
from ._client._auth import DigestAuth as DigestAuth
from ._client._client import Client as Client
from ._client._client import Content as Content
from ._client._client import QueryParams as QueryParams
from ._client._client import RequestOptions as RequestOptions
from ._client._connection import Verify as Verify
from ._client._cookies import DEFAULT_MAX_COOKIES as DEFAULT_MAX_COOKIES
from ._client._cookies import Cookie as Cookie
from ._client._cookies import CookieConflict as CookieConflict
from ._client._cookies import Cookies as Cookies
from ._client._cookies import CookiesInput as CookiesInput
from ._client._errors import DecodingError as DecodingError
from ._client._errors import HTTPConnectError as HTTPConnectError
from ._client._errors import HTTPConnectTimeout as HTTPConnectTimeout
from ._client._errors import HTTPError as HTTPError
from ._client._errors import HTTPTimeout as HTTPTimeout
from ._client._errors import HTTPTLSError as HTTPTLSError
from ._client._errors import PoolTimeout as PoolTimeout
from ._client._errors import ProxyError as ProxyError
from ._client._errors import ReadTimeout as ReadTimeout
from ._client._errors import RedirectError as RedirectError
from ._client._errors import RedirectLoop as RedirectLoop
from ._client._errors import RemoteProtocolError as RemoteProtocolError
from ._client._errors import ResponseTooLarge as ResponseTooLarge
from ._client._errors import ServerDisconnected as ServerDisconnected
from ._client._errors import TooManyRedirects as TooManyRedirects
from ._client._errors import TransportError as TransportError
from ._client._errors import UnsupportedProxy as UnsupportedProxy
from ._client._errors import WriteTimeout as WriteTimeout
from ._client._limits import DEFAULT_CLIENT_MAX_CONNECTIONS as DEFAULT_CLIENT_MAX_CONNECTIONS
from ._client._limits import DEFAULT_CONTINUE_TIMEOUT as DEFAULT_CONTINUE_TIMEOUT
from ._client._limits import DEFAULT_KEEPALIVE_EXPIRY as DEFAULT_KEEPALIVE_EXPIRY
from ._client._limits import DEFAULT_MAX_KEEPALIVE_PER_HOST as DEFAULT_MAX_KEEPALIVE_PER_HOST
from ._client._limits import DEFAULT_MAX_LINE_SIZE as DEFAULT_MAX_LINE_SIZE
from ._client._limits import DEFAULT_MAX_REDIRECTS as DEFAULT_MAX_REDIRECTS
from ._client._limits import (
    DEFAULT_MAX_RESPONSE_HEADER_SIZE as DEFAULT_MAX_RESPONSE_HEADER_SIZE,
)
from ._client._limits import DEFAULT_MAX_RESPONSE_SIZE as DEFAULT_MAX_RESPONSE_SIZE
from ._client._limits import DEFAULT_TIMEOUTS as DEFAULT_TIMEOUTS
from ._client._limits import Timeouts as Timeouts
from ._client._limits import TimeoutsInput as TimeoutsInput
from ._client._multipart import FileContent as FileContent
from ._client._multipart import Files as Files
from ._client._multipart import FileSpec as FileSpec
from ._client._pool import ClientStatistics as ClientStatistics
from ._client._response import ClientResponse as ClientResponse
from ._client._response import HTTPStatusError as HTTPStatusError
from ._client._retries import DEFAULT_RETRY_BACKOFF as DEFAULT_RETRY_BACKOFF
from ._client._retries import DEFAULT_RETRY_BUDGET as DEFAULT_RETRY_BUDGET
from ._client._sse import DEFAULT_EVENT_RETRY as DEFAULT_EVENT_RETRY
from ._client._sse import DEFAULT_MAX_RECONNECTS as DEFAULT_MAX_RECONNECTS
from ._client._sse import EventSource as EventSource
from ._client._sse import EventStreamError as EventStreamError
from ._client._sse import EventStreamParser as EventStreamParser
from ._client._sse import ServerSentEvent as ServerSentEvent
from ._client._transports import ClientTransport as ClientTransport
from ._headers import Headers as Headers
from ._server._connection import HTTPConnection as HTTPConnection
from ._server._errors import BodyTooLarge as BodyTooLarge
from ._server._errors import ProtocolError as ProtocolError
from ._server._errors import RequestTimeout as RequestTimeout
from ._server._limits import DEFAULT_BODY_TIMEOUT as DEFAULT_BODY_TIMEOUT
from ._server._limits import DEFAULT_KEEPALIVE_TIMEOUT as DEFAULT_KEEPALIVE_TIMEOUT
from ._server._limits import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
from ._server._limits import DEFAULT_MAX_HEADER_COUNT as DEFAULT_MAX_HEADER_COUNT
from ._server._limits import DEFAULT_MAX_HEADER_SIZE as DEFAULT_MAX_HEADER_SIZE
from ._server._limits import (
    DEFAULT_MAX_REQUESTS_PER_CONNECTION as DEFAULT_MAX_REQUESTS_PER_CONNECTION,
)
from ._server._limits import DEFAULT_MAX_TARGET_LENGTH as DEFAULT_MAX_TARGET_LENGTH
from ._server._limits import DEFAULT_REQUEST_HEAD_TIMEOUT as DEFAULT_REQUEST_HEAD_TIMEOUT
from ._server._limits import PARSERS as PARSERS
from ._server._request import Request as Request
from ._server._request import RequestBody as RequestBody
from ._server._request import ResponseStream as ResponseStream
from ._server._response import Response as Response
from ._server._serve import Handler as Handler
from ._server._serve import serve as serve
from ._server._statistics import HTTPConnectionStatistics as HTTPConnectionStatistics
from ._wire import reason_phrase as reason_phrase

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CLIENT_MAX_CONNECTIONS",
    "DEFAULT_CONTINUE_TIMEOUT",
    "DEFAULT_EVENT_RETRY",
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_COOKIES",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_KEEPALIVE_PER_HOST",
    "DEFAULT_MAX_LINE_SIZE",
    "DEFAULT_MAX_RECONNECTS",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_MAX_REQUESTS_PER_CONNECTION",
    "DEFAULT_MAX_RESPONSE_HEADER_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_MAX_TARGET_LENGTH",
    "DEFAULT_REQUEST_HEAD_TIMEOUT",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_TIMEOUTS",
    "PARSERS",
    "Auth",
    "AuthInput",
    "AuthRequest",
    "BasicAuth",
    "BearerAuth",
    "BodyTooLarge",
    "Client",
    "ClientResponse",
    "ClientStatistics",
    "ClientTransport",
    "Content",
    "Cookie",
    "CookieConflict",
    "Cookies",
    "CookiesInput",
    "DecodingError",
    "DigestAuth",
    "EventSource",
    "EventStreamError",
    "EventStreamParser",
    "FileContent",
    "FileSpec",
    "Files",
    "HTTPConnectError",
    "HTTPConnectTimeout",
    "HTTPConnection",
    "HTTPConnectionStatistics",
    "HTTPError",
    "HTTPStatusError",
    "HTTPTLSError",
    "HTTPTimeout",
    "Handler",
    "Headers",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "QueryParams",
    "ReadTimeout",
    "RedirectError",
    "RedirectLoop",
    "RemoteProtocolError",
    "Request",
    "RequestBody",
    "RequestOptions",
    "RequestTimeout",
    "Response",
    "ResponseStream",
    "ResponseTooLarge",
    "ServerDisconnected",
    "ServerSentEvent",
    "Timeouts",
    "TimeoutsInput",
    "TooManyRedirects",
    "TransportError",
    "UnsupportedProxy",
    "Verify",
    "WriteTimeout",
    "reason_phrase",
    "serve",
]

# Renamed (see docs/changelog.rst): the old names meant something else at
# the top level (trionet.Timeout is an event, trionet.DEFAULT_MAX_CONNECTIONS
# the server's cap, trionet.ConnectError the plain socket's error).
__getattr__ = _aliases(
    __name__,
    {
        "DEFAULT_MAX_CONNECTIONS": (
            "DEFAULT_CLIENT_MAX_CONNECTIONS",
            DEFAULT_CLIENT_MAX_CONNECTIONS,
        ),
        "ConnectError": ("HTTPConnectError", HTTPConnectError),
        "ConnectTimeout": ("HTTPConnectTimeout", HTTPConnectTimeout),
        "TLSError": ("HTTPTLSError", HTTPTLSError),
        "Timeout": ("HTTPTimeout", HTTPTimeout),
    },
)
