"""HTTP/1.1 and HTTPS servers and client (Node's ``http`` and ``https``),
on h11.

``await nursery.start(trionet.http.serve, handler, port)`` serves
``async def handler(request) -> Response``; :class:`HTTPConnection` is the
connection underneath, an async iterator of :class:`Request` objects, usable
on any trio stream. ``async with trionet.http.Client() as client`` sends
requests: ``await client.get(url)``.
"""

from ._client import Client as Client
from ._client import Content as Content
from ._client import QueryParams as QueryParams
from ._client import RequestOptions as RequestOptions
from ._client_errors import ConnectError as ConnectError
from ._client_errors import ConnectTimeout as ConnectTimeout
from ._client_errors import DecodingError as DecodingError
from ._client_errors import HTTPError as HTTPError
from ._client_errors import PoolTimeout as PoolTimeout
from ._client_errors import ProxyError as ProxyError
from ._client_errors import ReadTimeout as ReadTimeout
from ._client_errors import RedirectError as RedirectError
from ._client_errors import RedirectLoop as RedirectLoop
from ._client_errors import RemoteProtocolError as RemoteProtocolError
from ._client_errors import ResponseTooLarge as ResponseTooLarge
from ._client_errors import ServerDisconnected as ServerDisconnected
from ._client_errors import Timeout as Timeout
from ._client_errors import TLSError as TLSError
from ._client_errors import TooManyRedirects as TooManyRedirects
from ._client_errors import TransportError as TransportError
from ._client_errors import WriteTimeout as WriteTimeout
from ._client_limits import DEFAULT_CONTINUE_TIMEOUT as DEFAULT_CONTINUE_TIMEOUT
from ._client_limits import DEFAULT_KEEPALIVE_EXPIRY as DEFAULT_KEEPALIVE_EXPIRY
from ._client_limits import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from ._client_limits import DEFAULT_MAX_KEEPALIVE_PER_HOST as DEFAULT_MAX_KEEPALIVE_PER_HOST
from ._client_limits import DEFAULT_MAX_REDIRECTS as DEFAULT_MAX_REDIRECTS
from ._client_limits import (
    DEFAULT_MAX_RESPONSE_HEADER_SIZE as DEFAULT_MAX_RESPONSE_HEADER_SIZE,
)
from ._client_limits import DEFAULT_MAX_RESPONSE_SIZE as DEFAULT_MAX_RESPONSE_SIZE
from ._client_limits import DEFAULT_TIMEOUTS as DEFAULT_TIMEOUTS
from ._client_limits import Timeouts as Timeouts
from ._client_limits import TimeoutsInput as TimeoutsInput
from ._client_response import ClientResponse as ClientResponse
from ._client_response import HTTPStatusError as HTTPStatusError
from ._connection import HTTPConnection as HTTPConnection
from ._connection import HTTPConnectionStatistics as HTTPConnectionStatistics
from ._headers import Headers as Headers
from ._limits import DEFAULT_BODY_TIMEOUT as DEFAULT_BODY_TIMEOUT
from ._limits import DEFAULT_KEEPALIVE_TIMEOUT as DEFAULT_KEEPALIVE_TIMEOUT
from ._limits import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
from ._limits import DEFAULT_MAX_HEADER_COUNT as DEFAULT_MAX_HEADER_COUNT
from ._limits import DEFAULT_MAX_HEADER_SIZE as DEFAULT_MAX_HEADER_SIZE
from ._limits import (
    DEFAULT_MAX_REQUESTS_PER_CONNECTION as DEFAULT_MAX_REQUESTS_PER_CONNECTION,
)
from ._limits import DEFAULT_MAX_TARGET_LENGTH as DEFAULT_MAX_TARGET_LENGTH
from ._limits import DEFAULT_REQUEST_HEAD_TIMEOUT as DEFAULT_REQUEST_HEAD_TIMEOUT
from ._messages import BodyTooLarge as BodyTooLarge
from ._messages import ProtocolError as ProtocolError
from ._messages import Request as Request
from ._messages import RequestBody as RequestBody
from ._messages import RequestTimeout as RequestTimeout
from ._messages import Response as Response
from ._messages import ResponseStream as ResponseStream
from ._pool import ClientStatistics as ClientStatistics
from ._serve import Handler as Handler
from ._serve import serve as serve
from ._wire import reason_phrase as reason_phrase

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CONTINUE_TIMEOUT",
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_KEEPALIVE_PER_HOST",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_MAX_REQUESTS_PER_CONNECTION",
    "DEFAULT_MAX_RESPONSE_HEADER_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_MAX_TARGET_LENGTH",
    "DEFAULT_REQUEST_HEAD_TIMEOUT",
    "DEFAULT_TIMEOUTS",
    "BodyTooLarge",
    "Client",
    "ClientResponse",
    "ClientStatistics",
    "ConnectError",
    "ConnectTimeout",
    "Content",
    "DecodingError",
    "HTTPConnection",
    "HTTPConnectionStatistics",
    "HTTPError",
    "HTTPStatusError",
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
    "TLSError",
    "Timeout",
    "Timeouts",
    "TimeoutsInput",
    "TooManyRedirects",
    "TransportError",
    "WriteTimeout",
    "reason_phrase",
    "serve",
]
