"""HTTP/1.1 and HTTPS servers (Node's ``http`` and ``https``), on h11.

``await nursery.start(trionet.http.serve, handler, port)`` serves
``async def handler(request) -> Response``; :class:`HTTPConnection` is the
connection underneath, an async iterator of :class:`Request` objects, usable
on any trio stream.
"""

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
from ._messages import reason_phrase as reason_phrase
from ._serve import serve as serve

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_REQUESTS_PER_CONNECTION",
    "DEFAULT_MAX_TARGET_LENGTH",
    "DEFAULT_REQUEST_HEAD_TIMEOUT",
    "BodyTooLarge",
    "HTTPConnection",
    "HTTPConnectionStatistics",
    "Headers",
    "ProtocolError",
    "Request",
    "RequestBody",
    "RequestTimeout",
    "Response",
    "ResponseStream",
    "reason_phrase",
    "serve",
]
