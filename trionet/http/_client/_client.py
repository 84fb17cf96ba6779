"""``Client``: HTTP/1.1 and HTTPS requests (Node's ``http.request`` and
``https.request``), with a connection pool, redirects and proxies.

Theory of operation
-------------------
A request is built once (URL, header fields, body), then sent through the
pool (:mod:`._pool`) over a :class:`~._connection.ClientConnection`.
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

import os
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Self, Unpack

import trio

from ... import _checks as checks
from ..._connect import Trace
from ..._version import __version__
from .._headers import Headers, HeadersInput
from ._auth import AuthInput, as_auth
from ._body import UNSET, Content, Unset
from ._connection import Verify, verify_context
from ._cookies import Cookies, CookiesInput
from ._decoding import accept_encoding
from ._limits import (
    DEFAULT_CLIENT_MAX_CONNECTIONS,
    DEFAULT_CONTINUE_TIMEOUT,
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_KEEPALIVE_PER_HOST,
    DEFAULT_MAX_LINE_SIZE,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESPONSE_HEADER_SIZE,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_TIMEOUTS,
    Timeouts,
    TimeoutsInput,
)
from ._multipart import Files
from ._options import RequestOptions
from ._pool import ClientStatistics, Pool
from ._response import ClientResponse
from ._retries import DEFAULT_RETRY_BACKOFF, DEFAULT_RETRY_BUDGET, RetryPolicy
from ._sending import Sender
from ._sse import DEFAULT_EVENT_RETRY, DEFAULT_MAX_RECONNECTS, EventSource
from ._transports import ClientTransport
from ._urls import Proxy, QueryParams, parse_url

__all__ = ["Client", "Content", "QueryParams", "RequestOptions"]


class Client(Sender, trio.abc.AsyncResource):
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
        proxy: A proxy for every request: ``http://[user:password@]host:port``
            (``https`` goes through it in a ``CONNECT`` tunnel),
            ``https://...`` (the same, over TLS to the proxy, verified as
            origins are), or SOCKS: ``socks5h://``, ``socks5://``,
            ``socks4a://``, ``socks4://`` (the ``h`` and ``a`` ones let the
            proxy resolve names).
        uds: Connect to this Unix socket for every request, whatever the
            URL's host (curl's ``--unix-socket``, for Docker-style APIs);
            the URL still gives ``Host``, and ``https`` runs TLS over it.
        auth: Credentials for every request to the origin it is made to
            (not to another after a redirect): ``(user, password)`` for
            Basic, or an :class:`Auth` (:class:`DigestAuth`,
            :class:`BearerAuth`, your own flow).
        verify: How servers are verified, as httpx spells it: ``True``
            (default: the system's trust store), a CA file or directory,
            ``"certifi"`` (the certifi bundle: ``pip install
            'trionet[certifi]'``), an ``ssl.SSLContext``, or ``False`` (no
            verification at all: anyone in the middle can read and change
            the traffic).
        retries: Try a request again up to this many times (default 0:
            never) when the connection could not be opened (any method),
            or broke or timed out after an idempotent request went out
            (never a ``POST`` that may have arrived); see :doc:`client`.
        retry_backoff: Seconds before the first retry, doubled for each
            next one, with jitter (0.5).
        retry_budget: Retries each request earns for the whole client,
            beyond a reserve of 10 (0.2: at most one in five requests is
            retried while a server is down).
        cookies: The jar to keep cookies in (a :class:`Cookies`, shared
            if you pass one), or cookies to start with; see
            :attr:`cookies`.
        transport: Open connections through this :class:`ClientTransport`
            instead of the network (no proxy, no TLS: it stands in for
            both), such as :class:`trionet.testing.MockTransport` in tests.
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
        max_connections: int = DEFAULT_CLIENT_MAX_CONNECTIONS,
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
        uds: str | os.PathLike[str] | None = None,
        auth: AuthInput | None = None,
        cookies: CookiesInput | None = None,
        verify: Verify = True,
        retries: int = 0,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        transport: ClientTransport | None = None,
    ) -> None:
        checks.count("retries", retries, minimum=0)
        checks.seconds("retry_backoff", retry_backoff)
        checks.fraction("retry_budget", retry_budget)
        self._retry = RetryPolicy(retries, retry_backoff, retry_budget)
        self._auth = as_auth(auth)
        self._cookies = cookies if isinstance(cookies, Cookies) else Cookies(cookies)
        if uds is not None and proxy is not None:
            raise ValueError("a client with uds= connects to its socket, not through a proxy")
        if transport is not None and (uds is not None or proxy is not None):
            raise ValueError("a client with transport= connects through it: no uds= or proxy=")
        if transport is not None and not isinstance(transport, ClientTransport):
            raise TypeError(f"transport= takes a ClientTransport, not {type(transport).__name__}")
        self._transport = transport
        self._uds = os.fspath(uds) if uds is not None else None
        checks.count("max_connections", max_connections)
        checks.count("max_connections_per_host", max_connections_per_host, none=True)
        checks.count("max_keepalive_per_host", max_keepalive_per_host)
        checks.count("max_response_size", max_response_size)
        checks.count("max_header_size", max_header_size)
        checks.count("max_redirects", max_redirects, minimum=0)
        checks.seconds("keepalive_expiry", keepalive_expiry)
        checks.seconds("continue_timeout", continue_timeout)
        if base_url is not None:
            parse_url(base_url)
        self._base_url = base_url
        self._headers = Headers(
            [
                ("user-agent", f"trionet/{__version__}"),
                ("accept", "*/*"),
                ("accept-encoding", accept_encoding()),
            ]
        )
        for name, value in Headers(headers):
            self._headers.set(name, value)
        if ssl_context is not None and verify is not True:
            raise ValueError("give ssl_context or verify, not both")
        self._ssl_context = ssl_context or verify_context(verify)
        self._timeouts = Timeouts.of(timeout)
        self._follow_redirects = follow_redirects
        self._max_redirects = max_redirects
        self._max_response_size = max_response_size
        self._max_header_size = max_header_size
        self._continue_timeout = continue_timeout
        self._proxy = Proxy.parse(proxy) if proxy is not None else None
        from_env = proxy is None and trust_env and uds is None and transport is None
        self._env_proxies = urllib.request.getproxies_environment() if from_env else {}
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

    @property
    def cookies(self) -> Cookies:
        """The client's cookie jar: what servers set (``Set-Cookie``) is kept
        (RFC 6265) and sent back where it belongs; read, set or clear it as
        a mapping."""
        return self._cookies

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
        json: Any = UNSET,
        form: Mapping[str, str] | None = None,
        timeout: TimeoutsInput | Unset = UNSET,  # noqa: ASYNC109 - the four HTTP timeouts
        follow_redirects: bool | None = None,
        expect_continue: bool = False,
        auth: AuthInput | Unset | None = UNSET,
        cookies: Mapping[str, str] | None = None,
        files: Files | None = None,
        data: Mapping[str, str] | None = None,
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
            auth: This request's credentials, instead of the client's
                (``None``: none).
            cookies: Cookies for this request only (to its origin, beside
                the jar's; not stored).
            files: Files to upload as ``multipart/form-data`` (RFC 7578),
                with ``form`` fields beside them: ``{"field": content}``,
                ``(filename, content)`` or ``(filename, content,
                content_type)``; a content is bytes, str, a binary file or
                a path, read while sending.
            data: ``form``, as httpx spells it.

        Returns:
            The :class:`ClientResponse`, its body read (``await
            response.read()`` returns it at once).

        Raises:
            HTTPError: A subclass says what failed: ``HTTPConnectError``,
                ``HTTPConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
                ``PoolTimeout``, ``HTTPTLSError``, ``ServerDisconnected``,
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
            auth,
            cookies,
            files,
            data,
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
        json: Any = UNSET,
        form: Mapping[str, str] | None = None,
        timeout: TimeoutsInput | Unset = UNSET,  # noqa: ASYNC109 - the four HTTP timeouts
        follow_redirects: bool | None = None,
        expect_continue: bool = False,
        auth: AuthInput | Unset | None = UNSET,
        cookies: Mapping[str, str] | None = None,
        files: Files | None = None,
        data: Mapping[str, str] | None = None,
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
            auth,
            cookies,
            files,
            data,
        )
        try:
            yield response
        finally:
            await response.aclose()

    def events(
        self,
        url: str,
        *,
        params: QueryParams | None = None,
        headers: HeadersInput | None = None,
        timeout: TimeoutsInput | Unset = UNSET,
        last_event_id: str = "",
        reconnect: bool = True,
        retry: float = DEFAULT_EVENT_RETRY,
        max_reconnects: int = DEFAULT_MAX_RECONNECTS,
        max_event_size: int = DEFAULT_MAX_LINE_SIZE,
    ) -> EventSource:
        """Server-sent events from ``url``: ``async with client.events(url)
        as events: async for event in events: ...`` gives each
        :class:`ServerSentEvent`, reconnecting as a browser does (see
        :class:`EventSource`).

        Args:
            url: The event stream's URL (``params``, ``headers`` and
                ``timeout`` as for :meth:`request`; a quiet stream needs a
                ``read`` timeout longer than its silences).
            last_event_id: Resume after this event id (``Last-Event-ID``).
            reconnect: Connect again when the stream ends or breaks.
            retry: Seconds to wait before that, until the server sends
                ``retry`` (default 3).
            max_reconnects: Attempts in a row without an event before the
                last error is raised, or the iteration ends (default 10).
            max_event_size: Characters of one event's data, and of one
                line (default 1 MiB).

        Returns:
            The :class:`EventSource`; nothing is sent before iterating.
        """
        return EventSource(
            self,
            url,
            params=params,
            headers=headers,
            timeout=timeout,
            last_event_id=last_event_id,
            reconnect=reconnect,
            retry=retry,
            max_reconnects=max_reconnects,
            max_event_size=max_event_size,
        )
