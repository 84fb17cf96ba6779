"""``Client``: HTTP/1.1 and HTTPS requests (Node's ``http.request`` and
``https.request``), with a connection pool, redirects and proxies.

Theory of operation
-------------------
A request is built once (URL, header fields, body), then sent through the
pool (:mod:`._pool`) over a :class:`~._client_connection.ClientConnection`.
Three rules shape what happens next:

* **Retry** (RFC 9110 section 9.2.2): a request sent on a *reused*
  connection that the server closed before answering a single byte is sent
  once more on a fresh connection, if its method is idempotent (``GET``,
  ``HEAD``, ``PUT``, ``DELETE``, ``OPTIONS``, ``TRACE``) and its body can be
  sent again. ``POST`` and ``PATCH`` are never retried: the server may have
  acted on them.
* **Redirects** (RFC 9110 section 15.4): 301, 302, 303, 307 and 308 with a
  ``Location`` are followed (up to ``max_redirects``). 303 turns any method
  but ``HEAD`` into ``GET`` without a body; so do 301 and 302 for ``POST``,
  as every browser does; 307 and 308 keep the method and the body. A redirect
  to another origin drops ``Authorization`` and ``Cookie``. A redirect back
  to a request already made is a :class:`RedirectLoop`.
* **100-continue** (RFC 9110 section 10.1.1): with ``expect_continue=True``
  the head goes first and the body only after ``100 Continue`` (or after
  ``continue_timeout``); a final answer instead means the body is never
  sent, and the connection is closed after the response.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json as jsonlib
import ssl
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Self, TypedDict, Unpack
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit

import h11
import trio

from .. import _checks as checks
from .._version import __version__
from ._client_connection import (
    ClientConnection,
    Origin,
    PoolKey,
    Proxy,
    Trace,
    basic_credentials,
    open_connection,
)
from ._client_errors import (
    RedirectError,
    RedirectLoop,
    RemoteProtocolError,
    ServerDisconnected,
    TooManyRedirects,
)
from ._client_limits import (
    DEFAULT_CONTINUE_TIMEOUT,
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_KEEPALIVE_PER_HOST,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESPONSE_HEADER_SIZE,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_TIMEOUTS,
    Timeouts,
    TimeoutsInput,
)
from ._client_response import ClientResponse
from ._headers import Headers, HeadersInput
from ._pool import ClientStatistics, Pool

__all__ = ["Client", "Content", "QueryParams", "RequestOptions"]

#: A request body: bytes, text (sent as UTF-8), or an async iterable of bytes
#: (sent chunked, RFC 9112 section 7.1).
Content = bytes | bytearray | memoryview | str | AsyncIterable[bytes]

#: Query parameters: a mapping or ``(name, value)`` pairs; a mapping's value
#: may be a list for a repeated parameter.
QueryParams = (
    Mapping[str, str | int | float | Iterable[str | int | float]]
    | Iterable[tuple[str, str | int | float]]
)

# NO_PROXY matching as urllib does it (typeshed does not list the function).
_proxy_bypass: Callable[[str, dict[str, str]], bool] = vars(urllib.request)[
    "proxy_bypass_environment"
]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

# Redirect responses whose body is drained (up to this) so that their
# connection can serve the next hop; a larger body closes it instead.
_DRAIN_LIMIT = 64 * 1024

# Header fields that belong to the body, dropped with it on a redirect to GET.
_BODY_FIELDS = ("content-length", "content-type", "content-encoding", "transfer-encoding")

# Credentials that must not follow a redirect to another origin.
_CREDENTIAL_FIELDS = ("authorization", "cookie", "proxy-authorization")


class _Unset:
    pass


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Client.request` (for the shorthands
    :meth:`~Client.get`, :meth:`~Client.post`...)."""

    params: QueryParams | None
    headers: HeadersInput | None
    content: Content | None
    json: Any
    form: Mapping[str, str] | None
    timeout: TimeoutsInput
    follow_redirects: bool | None
    expect_continue: bool


_UNSET: Final = _Unset()


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """A parsed request URL."""

    url: str
    origin: Origin
    target: str
    authorization: str | None


def _parse_url(url: str) -> _Target:
    """Split an absolute ``http``/``https`` URL into what a request needs.

    Raises:
        ValueError: It is not one.
        TypeError: It is not a ``str``.
    """
    if not isinstance(url, str):
        raise TypeError(f"a URL is a str, not {url!r}")
    return _parse_str_url(url)


# A client usually asks the same few URLs again and again.
@functools.lru_cache(maxsize=256)
def _parse_str_url(url: str) -> _Target:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in the URL {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"a bad port in the URL {url!r}") from None
    if ":" not in host:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"a bad host name in the URL {url!r}") from None
    # Non-ASCII and spaces in the path or query are percent-encoded (RFC
    # 3986 section 2.1); what is already encoded stays as it is.
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    target = f"{path}?{query}" if query else path
    authorization = basic_credentials(parts)
    origin = Origin(scheme, host, port)
    clean = urlunsplit((scheme, origin.host_header, path, query, ""))
    return _Target(clean, origin, target, authorization)


def _add_params(url: str, params: QueryParams) -> str:
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if isinstance(value, str | int | float):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(each)) for each in value)
    if not pairs:
        return url
    parts = urlsplit(url)
    query = urlencode(pairs)
    query = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit(parts._replace(query=query))


def _encode_body(
    content: Content | None, json: Any, form: Mapping[str, str] | None, headers: Headers
) -> bytes | AsyncIterable[bytes] | None:
    given = [content is not None, json is not _UNSET, form is not None]
    if sum(given) > 1:
        raise TypeError("give one of content, json and form")
    if json is not _UNSET:
        if "content-type" not in headers:
            headers.set("content-type", "application/json")
        return jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
    if form is not None:
        if "content-type" not in headers:
            headers.set("content-type", "application/x-www-form-urlencoded")
        return urlencode(list(form.items())).encode()
    if content is None:
        return None
    if isinstance(content, str):
        if "content-type" not in headers:
            headers.set("content-type", "text/plain; charset=utf-8")
        return content.encode()
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    if isinstance(content, AsyncIterable):
        return content
    raise TypeError(
        f"content is bytes, str or an async iterable of bytes, not {type(content).__name__}"
    )


def _default_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()  # verifying, with the system's trust store
    context.set_alpn_protocols(["http/1.1"])
    return context


class Client(trio.abc.AsyncResource):
    """An HTTP/1.1 client with a connection pool (Node's ``http.request``,
    ``https.request`` and ``http.Agent`` in one).

    Use it as ``async with trionet.http.Client() as client:``; leaving the
    block closes every connection. The non-streaming methods
    (:meth:`request`, :meth:`get`...) return once the whole body is read;
    :meth:`stream` returns at the response head.

    Args:
        base_url: Resolves relative request URLs (RFC 3986: end it with
            ``/`` to add paths below it).
        headers: Header fields sent with every request (a request's own
            fields replace them, name by name).
        ssl_context: TLS client context for ``https``; default: verify
            servers against the system's trust store. Use
            :func:`trionet.tls.client_context` for a custom CA or a client
            certificate.
        timeout: :class:`Timeouts` (connect, read, write, pool), or seconds
            for all four, or ``None`` for none. Default
            ``Timeouts(connect=10, read=30, write=30, pool=10)``.
        max_connections: Connections open at once over all hosts (100).
        max_connections_per_host: Connections open at once per origin;
            ``None`` (default): only ``max_connections`` applies.
        max_keepalive_per_host: Idle connections kept per origin (100).
        keepalive_expiry: Seconds an idle connection is kept (4).
        follow_redirects: Follow 3xx redirects (default ``True``).
        max_redirects: Redirects followed per request (10).
        max_response_size: The most bytes of a body read whole, after
            decoding (64 MiB); beyond: :class:`ResponseTooLarge`.
        max_header_size: The most bytes of a response head (64 KiB).
        continue_timeout: Seconds to wait for ``100 Continue`` before sending
            the body anyway (1).
        proxy: An ``http://[user:password@]host:port`` proxy for every
            request; ``https`` goes through it in a ``CONNECT`` tunnel.
        trust_env: When no ``proxy`` is given, take it from ``HTTP_PROXY``,
            ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (and their lower
            case forms), as curl does (default ``True``).
        trace: ``trace(step, details)`` is called as each step of a request
            happens, with measured times: ``"dns"``, ``"connect"``,
            ``"proxy"``, ``"tls"``, ``"request"``, ``"sent"``, ``"response"``
            and ``"redirect"`` (``trionet get --trace`` prints these), and
            ``"done"`` when the final response's head has arrived (its body
            is read after).

    Raises:
        ValueError: A limit or timeout is out of range, or a URL is bad.
        TypeError: A limit or timeout has the wrong type.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        headers: HeadersInput | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: TimeoutsInput = DEFAULT_TIMEOUTS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_host: int | None = None,
        max_keepalive_per_host: int = DEFAULT_MAX_KEEPALIVE_PER_HOST,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        follow_redirects: bool = True,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_header_size: int = DEFAULT_MAX_RESPONSE_HEADER_SIZE,
        continue_timeout: float = DEFAULT_CONTINUE_TIMEOUT,
        proxy: str | None = None,
        trust_env: bool = True,
        trace: Trace | None = None,
    ) -> None:
        checks.count("max_connections", max_connections)
        checks.count("max_connections_per_host", max_connections_per_host, none=True)
        checks.count("max_keepalive_per_host", max_keepalive_per_host)
        checks.count("max_response_size", max_response_size)
        checks.count("max_header_size", max_header_size)
        checks.count("max_redirects", max_redirects, minimum=0)
        checks.seconds("keepalive_expiry", keepalive_expiry)
        checks.seconds("continue_timeout", continue_timeout)
        if base_url is not None:
            _parse_url(base_url)
        self._base_url = base_url
        self._headers = Headers(
            [
                ("user-agent", f"trionet/{__version__}"),
                ("accept", "*/*"),
                ("accept-encoding", "gzip, deflate"),
            ]
        )
        for name, value in Headers(headers):
            self._headers.set(name, value)
        self._ssl_context = ssl_context
        self._timeouts = Timeouts.of(timeout)
        self._follow_redirects = follow_redirects
        self._max_redirects = max_redirects
        self._max_response_size = max_response_size
        self._max_header_size = max_header_size
        self._continue_timeout = continue_timeout
        self._proxy = Proxy.parse(proxy) if proxy is not None else None
        self._env_proxies: dict[str, str] = (
            urllib.request.getproxies_environment() if proxy is None and trust_env else {}
        )
        self._proxy_cache: dict[str, Proxy | None] = {}
        self._trace = trace
        self._pool = Pool(
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
            max_keepalive_per_host=max_keepalive_per_host,
            keepalive_expiry=keepalive_expiry,
        )

    async def __aenter__(self) -> Self:
        return self

    async def aclose(self) -> None:
        """Close every connection (idempotent); the client cannot be used
        after."""
        await self._pool.aclose()

    def statistics(self) -> ClientStatistics:
        """Return a snapshot of the connection pool.

        Returns:
            A :class:`ClientStatistics`.
        """
        return self._pool.statistics()

    # -- the request methods ------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        headers: HeadersInput | None = None,
        content: Content | None = None,
        json: Any = _UNSET,
        form: Mapping[str, str] | None = None,
        timeout: TimeoutsInput | _Unset = _UNSET,  # noqa: ASYNC109 - the four HTTP timeouts
        follow_redirects: bool | None = None,
        expect_continue: bool = False,
    ) -> ClientResponse:
        """Send a request and read the whole response.

        Args:
            method: The method, such as ``"GET"`` (case-sensitive, RFC 9110
                section 9.1).
            url: An absolute ``http``/``https`` URL, or one relative to
                ``base_url``.
            params: Query parameters to add to the URL.
            headers: Header fields for this request (they replace the
                client's fields of the same name).
            content: The body: bytes; str (sent as UTF-8); or an async
                iterable of bytes, sent chunked.
            json: A value to send as JSON (``application/json``).
            form: Fields to send as ``application/x-www-form-urlencoded``.
            timeout: This request's timeouts, instead of the client's.
            follow_redirects: Instead of the client's setting.
            expect_continue: Send ``Expect: 100-continue`` and the body only
                once the server agrees (RFC 9110 section 10.1.1).

        Returns:
            The :class:`ClientResponse`, its body read (``await
            response.read()`` returns it at once).

        Raises:
            HTTPError: A subclass says what failed: ``ConnectError``,
                ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
                ``PoolTimeout``, ``TLSError``, ``ServerDisconnected``,
                ``RemoteProtocolError``, ``TooManyRedirects``,
                ``ResponseTooLarge``...
            ValueError: The URL is not a valid ``http``/``https`` URL.
            TypeError: More than one body, or a body of the wrong type.
            trio.ClosedResourceError: The client is closed.
        """
        response = await self._send(
            method,
            url,
            params,
            headers,
            content,
            json,
            form,
            timeout,
            follow_redirects,
            expect_continue,
        )
        try:
            await response.read()
        finally:
            await response.aclose()
        return response

    async def get(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``GET`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response, body read.
        """
        return await self.request("GET", url, **options)

    async def head(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``HEAD`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response (no body).
        """
        return await self.request("HEAD", url, **options)

    async def options(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``OPTIONS`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response, body read.
        """
        return await self.request("OPTIONS", url, **options)

    async def post(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``POST`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response, body read.
        """
        return await self.request("POST", url, **options)

    async def put(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``PUT`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response, body read.
        """
        return await self.request("PUT", url, **options)

    async def patch(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``PATCH`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response, body read.
        """
        return await self.request("PATCH", url, **options)

    async def delete(self, url: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """Send a ``DELETE`` request.

        Args:
            url: The URL.
            options: The keyword arguments of :meth:`request`.

        Returns:
            The response, body read.
        """
        return await self.request("DELETE", url, **options)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        headers: HeadersInput | None = None,
        content: Content | None = None,
        json: Any = _UNSET,
        form: Mapping[str, str] | None = None,
        timeout: TimeoutsInput | _Unset = _UNSET,  # noqa: ASYNC109 - the four HTTP timeouts
        follow_redirects: bool | None = None,
        expect_continue: bool = False,
    ) -> AsyncIterator[ClientResponse]:
        """Send a request; the response comes at its head, the body is read
        as you iterate: ``async with client.stream("GET", url) as response:
        async for chunk in response: ...``. The arguments are those of
        :meth:`request`.

        Yields:
            The :class:`ClientResponse`, body unread. Leaving the block
            closes it (an unread rest of the body closes the connection).

        Raises:
            HTTPError: As :meth:`request`.
        """
        response = await self._send(
            method,
            url,
            params,
            headers,
            content,
            json,
            form,
            timeout,
            follow_redirects,
            expect_continue,
        )
        try:
            yield response
        finally:
            await response.aclose()

    # -- sending ------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        params: QueryParams | None,
        headers: HeadersInput | None,
        content: Content | None,
        json: Any,
        form: Mapping[str, str] | None,
        timeout: TimeoutsInput | _Unset,  # noqa: ASYNC109 - the four HTTP timeouts
        follow_redirects: bool | None,
        expect_continue: bool,
    ) -> ClientResponse:
        if not isinstance(method, str) or not method:
            raise ValueError(f"a method is a non-empty str, not {method!r}")
        if self._base_url is not None:
            url = urljoin(self._base_url, url)
        if params is not None:
            url = _add_params(url, params)
        target = _parse_url(url)
        fields = self._headers.copy()
        for name, value in Headers(headers):
            fields.set(name, value)
        body = _encode_body(content, json, form, fields)
        timeouts = self._timeouts if isinstance(timeout, _Unset) else Timeouts.of(timeout)
        follow = self._follow_redirects if follow_redirects is None else follow_redirects
        if expect_continue and body is not None:
            fields.set("expect", "100-continue")
        started = trio.current_time()
        history: list[ClientResponse] = []
        seen = {(method, target.url)}
        while True:
            response = await self._send_retrying(method, target, fields, body, timeouts)
            response.history = list(history)
            if not follow or not response.is_redirect:
                if self._trace is not None:
                    self._trace(
                        "done", {"seconds": trio.current_time() - started, "url": response.url}
                    )
                return response
            if len(history) >= self._max_redirects:
                await response.aclose()
                raise TooManyRedirects(
                    f"more than max_redirects ({self._max_redirects}) redirects from {url}"
                )
            try:
                method, next_target, body = self._redirect(response, method, target, fields, body)
            except BaseException:
                await response.aclose()
                raise
            await response._discard(_DRAIN_LIMIT)
            history.append(response)
            if (method, next_target.url) in seen:
                raise RedirectLoop(
                    f"{response.url} redirects back to {next_target.url}, already requested"
                )
            seen.add((method, next_target.url))
            if self._trace is not None:
                self._trace(
                    "redirect",
                    {
                        "status": response.status,
                        "from": response.url,
                        "to": next_target.url,
                        "method": method,
                    },
                )
            target = next_target

    def _redirect(
        self,
        response: ClientResponse,
        method: str,
        target: _Target,
        fields: Headers,
        body: bytes | AsyncIterable[bytes] | None,
    ) -> tuple[str, _Target, bytes | AsyncIterable[bytes] | None]:
        """The next hop of a redirect: its method, target and body; adjusts
        ``fields`` in place."""
        location = response.headers["location"]
        # RFC 9110 section 10.2.2: a relative Location is resolved against
        # the request's URL.
        try:
            next_url = urljoin(response.url, location.strip())
            next_target = _parse_url(next_url)
        except ValueError:
            raise RedirectError(
                f"{response.url} redirects to {location!r}, not an http(s) URL"
            ) from None
        status = response.status
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
            body = None
            for name in (*_BODY_FIELDS, "expect"):
                fields.remove(name)
        elif body is not None and not isinstance(body, bytes):
            raise RedirectError(
                f"{response.url} redirects ({status}) a request whose streamed body"
                " cannot be sent again"
            )
        if next_target.origin != target.origin:
            for name in _CREDENTIAL_FIELDS:
                fields.remove(name)
            fields.remove("host")
        elif next_target.authorization is None:
            # Credentials of the URL stay with its origin, as a header would.
            next_target = dataclasses.replace(next_target, authorization=target.authorization)
        return method, next_target, body

    def _proxy_for(self, origin: Origin) -> Proxy | None:
        if self._proxy is not None or not self._env_proxies:
            return self._proxy
        cached = self._proxy_cache.get(f"{origin.scheme}:{origin.host}", _UNSET)
        if not isinstance(cached, _Unset):
            return cached
        url = self._env_proxies.get(origin.scheme) or self._env_proxies.get("all")
        proxy = None
        if url and not _proxy_bypass(origin.host, self._env_proxies):
            proxy = Proxy.parse(url)
        self._proxy_cache[f"{origin.scheme}:{origin.host}"] = proxy
        return proxy

    async def _send_retrying(
        self,
        method: str,
        target: _Target,
        fields: Headers,
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Timeouts,
    ) -> ClientResponse:
        origin = target.origin
        proxy = self._proxy_for(origin)
        # Plain HTTP through a proxy: one proxy connection serves any origin.
        key: PoolKey = (None, proxy) if proxy and origin.scheme == "http" else (origin, proxy)
        retry_allowed = method in _IDEMPOTENT and not isinstance(body, AsyncIterable)
        retrying = False
        while True:
            # The retry takes a new connection: the idle ones may have been
            # closed by the same server at the same moment.
            conn = await self._pool.acquire(
                key, lambda: self._open(key, timeouts), timeouts.pool, fresh=retrying
            )
            reused = conn.requests > 0
            try:
                return await self._exchange(conn, method, target, proxy, fields, body, timeouts)
            except ServerDisconnected as exc:
                await self._pool.release(conn, False)
                if reused and retry_allowed and exc.before_response:
                    retry_allowed = False
                    retrying = True
                    self._pool.retries += 1
                    continue
                raise
            except BaseException:
                await self._pool.release(conn, False)
                raise

    async def _open(self, key: PoolKey, timeouts: Timeouts) -> ClientConnection:
        origin = key[0]
        context = None
        if origin is not None and origin.scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = _default_ssl_context()
            context = self._ssl_context
        return await open_connection(
            key,
            ssl_context=context,
            connect_timeout=timeouts.connect,
            max_header_size=self._max_header_size,
            trace=self._trace,
        )

    def _request_head(
        self,
        method: str,
        target: _Target,
        proxy: Proxy | None,
        fields: Headers,
        body: bytes | AsyncIterable[bytes] | None,
    ) -> h11.Request:
        origin = target.origin
        pairs: list[tuple[str, str]] = []
        if "host" not in fields:
            pairs.append(("host", origin.host_header))
        pairs.extend(fields)
        if target.authorization is not None and "authorization" not in fields:
            pairs.append(("authorization", target.authorization))
        request_target = target.target
        if proxy is not None and origin.scheme == "http":
            request_target = target.url  # absolute form (RFC 9112 section 3.2.2)
            if proxy.authorization is not None:
                pairs.append(("proxy-authorization", proxy.authorization))
        if isinstance(body, bytes):
            if "content-length" not in fields:
                pairs.append(("content-length", str(len(body))))
        elif body is not None:
            if "content-length" not in fields and "transfer-encoding" not in fields:
                pairs.append(("transfer-encoding", "chunked"))
        elif method in ("POST", "PUT", "PATCH") and "content-length" not in fields:
            pairs.append(("content-length", "0"))  # RFC 9110 section 8.6
        try:
            return h11.Request(method=method, target=request_target, headers=pairs)
        except h11.LocalProtocolError as exc:
            raise ValueError(f"cannot send this request: {exc}") from None

    async def _exchange(
        self,
        conn: ClientConnection,
        method: str,
        target: _Target,
        proxy: Proxy | None,
        fields: Headers,
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Timeouts,
    ) -> ClientResponse:
        """Send one request on ``conn`` and read the response head."""
        head = self._request_head(method, target, proxy, fields, body)
        pool = self._pool
        pool.requests += 1
        if conn.requests:
            pool.reused += 1
        conn.requests += 1
        trace = self._trace
        if trace is not None:
            trace(
                "request",
                {
                    "method": method,
                    "url": target.url,
                    "target": head.target.decode("ascii"),
                    "reused": conn.requests > 1,
                    "headers": [(k.decode(), v.decode("latin-1")) for k, v in head.headers],
                },
            )
        received_before = conn.transport.bytes_received
        conn.first_byte_at = None
        conn.informational = 0
        started = trio.current_time()
        response_event: h11.Response | None = None
        try:
            if body is None:
                await conn.send_all((head, h11.EndOfMessage()), timeouts.write)
            elif "100-continue" in fields.get("expect", "").lower():
                await conn.send(head, timeouts.write)
                response_event = await self._await_continue(conn, timeouts)
                if response_event is None:
                    await self._send_body(conn, body, timeouts)
            elif isinstance(body, bytes):
                await conn.send_all((head, h11.Data(data=body), h11.EndOfMessage()), timeouts.write)
            else:
                await conn.send(head, timeouts.write)
                await self._send_body(conn, body, timeouts)
        except ServerDisconnected as exc:
            # The server may have answered (413, 401...) and closed while we
            # were sending: that answer is the one to report.
            response_event = await self._early_answer(conn, timeouts)
            if response_event is None:
                raise ServerDisconnected(
                    exc.message,
                    before_response=conn.transport.bytes_received == received_before,
                ) from None
        sent = trio.current_time()
        if trace is not None:
            trace("sent", {"seconds": sent - started, "bytes": conn.transport.bytes_sent})
        if response_event is None:
            response_event = await self._read_head(conn, timeouts, received_before)
        now = trio.current_time()
        response = ClientResponse(
            status=response_event.status_code,
            reason=response_event.reason.decode("latin-1"),
            headers=Headers._from_raw(response_event.headers),
            http_version=response_event.http_version.decode("ascii"),
            url=target.url,
            method=method,
            conn=conn,
            release=pool.release,
            read_timeout=timeouts.read,
            max_size=self._max_response_size,
            elapsed=now - started,
        )
        if trace is not None:
            trace(
                "response",
                {
                    "status": response.status,
                    "reason": response.reason,
                    "http_version": response.http_version,
                    "headers": response.headers.items(),
                    "first_byte": (conn.first_byte_at or now) - started,
                    "seconds": now - started,
                },
            )
        return response

    async def _read_head(
        self, conn: ClientConnection, timeouts: Timeouts, received_before: int
    ) -> h11.Response:
        while True:
            try:
                event = await conn.receive_event(timeouts.read)
            except ServerDisconnected as exc:
                raise ServerDisconnected(
                    exc.message,
                    before_response=conn.transport.bytes_received == received_before,
                ) from None
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue, 103 Early Hints: nothing to do
            if isinstance(event, h11.Response):
                return self._checked(event)
            if isinstance(event, h11.ConnectionClosed):
                raise ServerDisconnected(
                    "the server closed the connection without answering",
                    before_response=conn.transport.bytes_received == received_before,
                )
            raise RemoteProtocolError(f"unexpected {type(event).__name__} before the response")

    def _checked(self, event: h11.Response) -> h11.Response:
        """A response head within ``max_header_size`` (h11 bounds a head
        only while it is incomplete, so one that arrived in a single read is
        measured here), and framed one way only.

        A response with both ``Transfer-Encoding`` and ``Content-Length`` is
        refused, as the server refuses such a request: RFC 9112 section 6.3
        says it "ought to be handled as an error", since two parties that
        frame it differently disagree on where the next response starts
        (response splitting, cache poisoning). The error makes the
        connection unusable, so it is closed, never pooled.
        """
        size = len(event.reason) + 15
        chunked = False
        length = False
        for name, value in event.headers:  # names lowercased by h11
            size += len(name) + len(value) + 4
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                length = True
        if size > self._max_header_size:
            raise RemoteProtocolError(
                f"the response head is larger than max_header_size ({self._max_header_size} bytes)"
            )
        if chunked and length:
            raise RemoteProtocolError(
                "the response has both Transfer-Encoding and Content-Length"
                " (RFC 9112 section 6.3): refused, and the connection closed"
            )
        return event

    async def _await_continue(
        self, conn: ClientConnection, timeouts: Timeouts
    ) -> h11.Response | None:
        """After a head with ``Expect: 100-continue``: ``None`` to send the
        body (100 came, or ``continue_timeout`` passed), or the server's
        final answer, which means the body must not be sent."""
        with trio.move_on_after(self._continue_timeout):
            while True:
                event = await conn.receive_event(timeouts.read)
                if isinstance(event, h11.InformationalResponse):
                    if event.status_code == 100:
                        return None
                    continue
                if isinstance(event, h11.Response):
                    return self._checked(event)
                raise ServerDisconnected("the server closed the connection before answering")
        return None

    async def _send_body(
        self, conn: ClientConnection, body: bytes | AsyncIterable[bytes], timeouts: Timeouts
    ) -> None:
        if isinstance(body, bytes):
            await conn.send_all((h11.Data(data=body), h11.EndOfMessage()), timeouts.write)
            return
        try:
            async for chunk in body:
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise TypeError(f"a body iterator yields bytes, not {type(chunk).__name__}")
                if chunk:
                    await conn.send(h11.Data(data=bytes(chunk)), timeouts.write)
        finally:
            if inspect.isasyncgen(body):
                # Stopped early (an error): the generator's own cleanup runs
                # now, not whenever the garbage collector finds it.
                await body.aclose()
        await conn.send(h11.EndOfMessage(), timeouts.write)

    async def _early_answer(
        self, conn: ClientConnection, timeouts: Timeouts
    ) -> h11.Response | None:
        """A response the server sent before it stopped reading, if any."""
        try:
            while True:
                event = await conn.receive_event(timeouts.read)
                if isinstance(event, h11.Response):
                    return self._checked(event)
                if not isinstance(event, h11.InformationalResponse):
                    return None
        except (ServerDisconnected, RemoteProtocolError, TimeoutError):
            return None
