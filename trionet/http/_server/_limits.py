"""The limits of the HTTP server, with the reason for each default, their
checks (run by :func:`~trionet.http.serve` before binding), and
:class:`HTTPLimits`, the one value that carries them from the public edge
(``serve``'s keyword arguments, or ``HTTPConnection``'s) down to the
connection and its sans-IO protocol."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ... import _checks as checks
from ..._trust import TrustedPeers
from .._forwarded import FORWARDED_HEADERS
from .._headers import Headers

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_REQUESTS_PER_CONNECTION",
    "DEFAULT_MAX_TARGET_LENGTH",
    "DEFAULT_REQUEST_HEAD_TIMEOUT",
    "PARSERS",
    "HTTPLimits",
    "check_server_header",
    "resolve_parser",
]

# The request head (request line and header fields) may take 16 KiB: h11's
# default, and Node's --max-http-header-size. Beyond: 431.
DEFAULT_MAX_HEADER_SIZE = 16 * 1024

# Header fields per request: Apache's LimitRequestFields. Browsers send ~20.
DEFAULT_MAX_HEADER_COUNT = 100

# The request target: nginx's large_client_header_buffers line limit. Beyond: 414.
DEFAULT_MAX_TARGET_LENGTH = 8 * 1024

# A request body: nginx's client_max_body_size. Raise it for uploads. Beyond: 413.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024

# A new connection's first request head, and any head once its first byte
# arrived, must be complete in this time: half of Node's and nginx's 60 s, long
# for any real client (a head is one packet), short against slowloris.
DEFAULT_REQUEST_HEAD_TIMEOUT = 30.0

# Idle time between two requests on a kept-alive connection: Node's default.
DEFAULT_KEEPALIVE_TIMEOUT = 5.0

# The longest pause while a body is being received: nginx's client_body_timeout
# is 60 s; 30 s matches the head's limit.
DEFAULT_BODY_TIMEOUT = 30.0

# Requests on one connection before it is closed: nginx's keepalive_requests.
# Bounds what one connection can hold on to (and rebalances clients).
DEFAULT_MAX_REQUESTS_PER_CONNECTION = 1000


# The request parsers: h11 (pure Python, the reference, always installed) and
# llhttp through httptools (``pip install 'trionet[fast]'``); "auto" takes
# httptools when it is installed.
PARSERS = ("auto", "h11", "httptools")


@cache
def _httptools_installed() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


def _auto() -> str:
    # (The tests replace this to run a suite under each parser.)
    return "httptools" if _httptools_installed() else "h11"


def resolve_parser(parser: str) -> str:
    """The request parser a server uses for ``parser=``.

    Args:
        parser: ``"auto"`` (httptools when it is installed, else h11),
            ``"h11"`` or ``"httptools"``.

    Returns:
        ``"h11"`` or ``"httptools"``.

    Raises:
        ValueError: An unknown parser.
        ImportError: ``"httptools"`` without httptools installed.
    """
    if parser not in PARSERS:
        raise ValueError(f"parser must be one of {', '.join(map(repr, PARSERS))}, not {parser!r}")
    if parser == "auto":
        return _auto()
    if parser == "httptools" and not _httptools_installed():
        raise ImportError(
            "parser='httptools' needs the httptools package: pip install 'trionet[fast]'"
        )
    return parser


def check_server_header(server_header: str | None) -> None:
    """Validate the ``Server`` header a server sends (before binding).

    Raises:
        ValueError: It is not a valid field value (CR, LF, control
            characters, or not Latin-1).
    """
    if server_header is None:
        return
    try:
        Headers({"server": server_header})._wire()
    except ValueError:
        raise ValueError(f"server_header is not a valid header value: {server_header!r}") from None


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """The server's limits and timeouts for one connection, checked when it
    is built (``ValueError`` / ``TypeError``, before anything binds).

    Built by :func:`~trionet.http.serve` from its keyword arguments (or by
    :class:`~trionet.http.HTTPConnection` from its own) and shared by every
    connection of the server. The sizes and counts are the sans-IO protocol's
    business; the timeouts are the trio driver's.

    Attributes:
        max_header_size: Bytes the request head may take (431 beyond).
        max_header_count: Header fields per request (431 beyond).
        max_target_length: Length of the request target (414 beyond).
        max_body_size: Bytes of a request body (413 beyond).
        request_head_timeout: Seconds a request head may take (408 beyond).
        keepalive_timeout: Seconds a connection may idle between requests.
        body_timeout: Seconds a request body may stall (408 beyond).
        max_requests_per_connection: Requests before the connection closes;
            ``None`` for no limit.
        server_header: The ``Server`` header's value; ``None`` to send none.
        parser: The request parser: ``"auto"`` (the default: httptools when
            it is installed, else h11), ``"h11"`` or ``"httptools"``;
            resolved when built, so it reads ``"h11"`` or ``"httptools"``.
        forwarded: The peers whose forwarding headers are believed;
            ``None`` (the default) believes nobody.
        forwarded_header: Which forwarding headers they write:
            ``"x-forwarded"`` (``X-Forwarded-For`` / ``-Proto`` / ``-Host``,
            the default) or ``"forwarded"`` (RFC 7239).
    """

    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_target_length: int = DEFAULT_MAX_TARGET_LENGTH
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    request_head_timeout: float = DEFAULT_REQUEST_HEAD_TIMEOUT
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_requests_per_connection: int | None = DEFAULT_MAX_REQUESTS_PER_CONNECTION
    server_header: str | None = "trionet"
    parser: str = "auto"
    forwarded: TrustedPeers | None = None
    forwarded_header: str = "x-forwarded"

    def __post_init__(self) -> None:
        check_server_header(self.server_header)
        checks.one_of("forwarded_header", self.forwarded_header, FORWARDED_HEADERS)
        object.__setattr__(self, "parser", resolve_parser(self.parser))
        checks.count("max_header_size", self.max_header_size)
        checks.count("max_header_count", self.max_header_count)
        checks.count("max_target_length", self.max_target_length)
        checks.count("max_body_size", self.max_body_size)
        checks.seconds("request_head_timeout", self.request_head_timeout)
        checks.seconds("keepalive_timeout", self.keepalive_timeout)
        checks.seconds("body_timeout", self.body_timeout)
        checks.count("max_requests_per_connection", self.max_requests_per_connection, none=True)
