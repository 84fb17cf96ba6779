"""The machinery under :class:`~trionet.http.Client`: one request through
the auth flow, the redirects, the retry of a stale connection, the proxy
and the pool (the rules are in :mod:`._client`'s theory of operation)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Mapping
from typing import Any
from urllib.parse import urljoin

import trio

from ..._connect import Trace
from .._headers import Headers, HeadersInput
from ._auth import Auth, AuthInput, AuthRequest, as_auth, authenticated
from ._body import UNSET, Content, RequestBody, Unset, encode_body
from ._connection import ClientConnection, default_ssl_context, open_connection
from ._cookies import Cookies
from ._errors import (
    HTTPConnectError,
    ReadTimeout,
    RedirectLoop,
    ServerDisconnected,
    TooManyRedirects,
    WriteTimeout,
)
from ._exchange import exchange
from ._limits import Timeouts, TimeoutsInput
from ._multipart import Files
from ._pool import Pool
from ._redirects import next_hop
from ._response import ClientResponse
from ._retries import RetryPolicy
from ._transports import ClientTransport, open_transport_connection
from ._urls import (
    Origin,
    PoolKey,
    Proxy,
    QueryParams,
    Target,
    add_params,
    environment_proxy,
    parse_url,
)

__all__ = ["Sender"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

# Redirect responses whose body is drained (up to this) so that their
# connection can serve the next hop; a larger body closes it instead.
_DRAIN_LIMIT = 64 * 1024


class Sender:
    """What :class:`~trionet.http.Client` sends with; its ``__init__`` sets
    these attributes."""

    _auth: Auth | None
    _cookies: Cookies
    _retry: RetryPolicy
    _base_url: str | None
    _headers: Headers
    _ssl_context: ssl.SSLContext | None
    _timeouts: Timeouts
    _follow_redirects: bool
    _max_redirects: int
    _max_response_size: int
    _max_header_size: int
    _continue_timeout: float
    _proxy: Proxy | None
    _env_proxies: dict[str, str]
    _proxy_cache: dict[str, Proxy | None]
    _trace: Trace | None
    _pool: Pool
    _uds: str | None
    _transport: ClientTransport | None

    async def _send(
        self,
        method: str,
        url: str,
        params: QueryParams | None,
        headers: HeadersInput | None,
        content: Content | None,
        json: Any,
        form: Mapping[str, str] | None,
        timeout: TimeoutsInput | Unset,  # noqa: ASYNC109 - the four HTTP timeouts
        follow_redirects: bool | None,
        expect_continue: bool,
        auth: AuthInput | Unset | None = UNSET,
        cookies: Mapping[str, str] | None = None,
        files: Files | None = None,
        data: Mapping[str, str] | None = None,
    ) -> ClientResponse:
        if data is not None:
            if form is not None:
                raise TypeError("give form or data (the same), not both")
            form = data
        flow = self._auth if isinstance(auth, Unset) else as_auth(auth)
        if not isinstance(method, str) or not method:
            raise ValueError(f"a method is a non-empty str, not {method!r}")
        if self._base_url is not None:
            url = urljoin(self._base_url, url)
        if params is not None:
            url = add_params(url, params)
        target = parse_url(url)
        fields = self._headers.copy()
        for name, value in Headers(headers):
            fields.set(name, value)
        body = encode_body(content, json, form, fields, files)
        timeouts = self._timeouts if isinstance(timeout, Unset) else Timeouts.of(timeout)
        follow = self._follow_redirects if follow_redirects is None else follow_redirects
        if expect_continue and body is not None:
            fields.set("expect", "100-continue")
        started = trio.current_time()
        history: list[ClientResponse] = []
        seen = {(method, target.url)}
        origin = target.origin
        # The jar's cookies (and this request's own, to its origin only),
        # unless the caller wrote a Cookie field.
        cookies_managed = "cookie" not in fields
        while True:
            if cookies_managed:
                self._cookie_field(fields, target, cookies if target.origin == origin else None)
            if flow is not None and target.origin == origin:  # credentials stay home
                response = await self._authenticated(flow, method, target, fields, body, timeouts)
            else:
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
                method, next_target, body = next_hop(response, method, target, fields, body)
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

    def _cookie_field(
        self, fields: Headers, target: Target, extra: Mapping[str, str] | None
    ) -> None:
        pairs = [self._cookies.header(target.url)]
        if extra:
            pairs += [f"{name}={value}" for name, value in extra.items()]
        value = "; ".join(pair for pair in pairs if pair)
        if value:
            fields.set("cookie", value)
        else:
            fields.remove("cookie")

    async def _retried(self, attempt: int, target: Target, error: Exception) -> None:
        delay = self._retry.delay(attempt)
        if self._trace is not None:
            self._trace(
                "retry",
                {"attempt": attempt + 1, "url": target.url, "error": str(error), "delay": delay},
            )
        await trio.sleep(delay)

    def _proxy_for(self, origin: Origin) -> Proxy | None:
        if self._proxy is not None or not self._env_proxies:
            return self._proxy
        cached = self._proxy_cache.get(f"{origin.scheme}:{origin.host}", UNSET)
        if not isinstance(cached, Unset):
            return cached
        proxy = environment_proxy(origin.scheme, origin.host, self._env_proxies)
        self._proxy_cache[f"{origin.scheme}:{origin.host}"] = proxy
        return proxy

    async def _send_retrying(
        self,
        method: str,
        target: Target,
        fields: Headers,
        body: RequestBody,
        timeouts: Timeouts,
    ) -> ClientResponse:
        origin = target.origin
        proxy = self._proxy_for(origin)
        # Plain HTTP through a proxy: one proxy connection serves any origin.
        plain = proxy is not None and not proxy.socks and origin.scheme == "http"
        key: PoolKey = (None, proxy) if plain else (origin, proxy)
        replayable = not isinstance(body, AsyncIterable)
        retry_allowed = method in _IDEMPOTENT and replayable
        retrying = False
        attempt = 0  # opt-in retries made (see _retries.py)
        self._retry.request()
        while True:
            # The retry takes a new connection: the idle ones may have been
            # closed by the same server at the same moment.
            try:
                conn = await self._pool.acquire(
                    key, lambda: self._open(key, timeouts), timeouts.pool, fresh=retrying
                )
            except HTTPConnectError as exc:
                # Nothing was sent: any method may try again.
                if not self._retry.allow(attempt):
                    raise
                await self._retried(attempt, target, exc)
                attempt += 1
                continue
            reused = conn.requests > 0
            try:
                response = await exchange(
                    conn,
                    self._pool,
                    method,
                    target,
                    proxy,
                    fields,
                    body,
                    timeouts,
                    continue_timeout=self._continue_timeout,
                    max_response_size=self._max_response_size,
                    trace=self._trace,
                )
                self._cookies.extract(response.url, response.headers)
                return response
            except (ServerDisconnected, ReadTimeout, WriteTimeout) as exc:
                await self._pool.release(conn, False)
                stale = isinstance(exc, ServerDisconnected) and reused and exc.before_response
                if stale and retry_allowed:
                    # The server closed an idle connection as we used it.
                    retry_allowed = False
                    retrying = True
                    self._pool.retries += 1
                    continue
                if method in _IDEMPOTENT and replayable and self._retry.allow(attempt):
                    await self._retried(attempt, target, exc)
                    attempt += 1
                    retrying = True
                    continue
                raise
            except BaseException:
                await self._pool.release(conn, False)
                raise

    async def _authenticated(
        self,
        auth: Auth,
        method: str,
        target: Target,
        fields: Headers,
        body: RequestBody,
        timeouts: Timeouts,
    ) -> ClientResponse:
        async def send(request: AuthRequest) -> ClientResponse:
            hop = target if request.url == target.url else parse_url(request.url)
            return await self._send_retrying(request.method, hop, request.headers, body, timeouts)

        return await authenticated(
            auth.auth_flow(AuthRequest(method, target.url, fields)),
            send,
            replayable=not isinstance(body, AsyncIterable),
            drain_limit=_DRAIN_LIMIT,
        )

    async def _open(self, key: PoolKey, timeouts: Timeouts) -> ClientConnection:
        origin = key[0]
        if self._transport is not None:
            assert origin is not None  # no proxy with a transport
            return await open_transport_connection(
                self._transport,
                origin,
                connect_timeout=timeouts.connect,
                max_header_size=self._max_header_size,
            )
        context = None
        proxy = key[1]
        if (origin is not None and origin.scheme == "https") or (proxy is not None and proxy.tls):
            if self._ssl_context is None:
                self._ssl_context = default_ssl_context()
            context = self._ssl_context
        return await open_connection(
            key,
            ssl_context=context,
            connect_timeout=timeouts.connect,
            max_header_size=self._max_header_size,
            trace=self._trace,
            uds=self._uds,
        )
