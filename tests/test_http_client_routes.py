"""trionet.http.Client along its routes: redirects (the seed's
"example.com -> www.example.com" flow end to end, the method and body rules,
credentials across origins, connection reuse), HTTP proxies (absolute form,
CONNECT tunnels, credentials, environment variables) and HTTPS (trust, host
names, client certificates), against trionet's own server and small raw-TCP
peers written here, over loopback only."""

from __future__ import annotations

import base64
import socket as stdlib_socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import trionet
import trionet.http
import trionet.tls
from tests._net import ipv6_loopback_available
from tests._process import refusing_port
from trionet.http import (
    Client,
    HTTPConnection,
    Request,
    Response,
    Timeouts,
)
from trionet.testing import TLSCertificates

LOOPBACK = "127.0.0.1"
WAIT = 10  # seconds: the bound of every test's exchanges
TIMEOUTS = Timeouts(connect=5, read=5, write=5, pool=5)
PAGE = b"<!doctype html><title>www</title><p>Welcome to www.example.test\n"
needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="no IPv6 loopback on this machine"
)
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without proxy variables (the machine's own would
    route loopback requests through a proxy; lower case ones would win over
    the upper case ones a test sets); monkeypatch restores them after."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)  # urllib's CGI rule


# -- peers ---------------------------------------------------------------------------


@dataclass
class Seen:
    """A request as the server received it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    tls: trionet.tls.TLSInfo | None
    port: int

    @classmethod
    async def of(cls, request: Request, port: int) -> Seen:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        return cls(request.method, request.target, headers, body, request.tls, port)


Handler = Callable[[Request], Awaitable[Response]]


async def start(
    nursery: trio.Nursery,
    handler: Handler,
    ssl_context: ssl.SSLContext | None = None,
    host: str = LOOPBACK,
) -> trionet.Server:
    server: trionet.Server = await nursery.start(
        partial(
            trionet.http.serve,
            handler,
            0,
            host,
            ssl_context=ssl_context,
            handler_errors="raise",
        )
    )
    return server


class Site:
    """A trionet server that records every request, redirects the targets
    listed in ``redirects`` (target -> (status, Location)) and answers any
    other target with a small page naming it."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.redirects: dict[str, tuple[int, str]] = {}
        self.server: trionet.Server | None = None
        self.port = 0

    @property
    def targets(self) -> list[str]:
        return [seen.target for seen in self.seen]

    async def start(
        self, nursery: trio.Nursery, ssl_context: ssl.SSLContext | None = None, host: str = LOOPBACK
    ) -> Site:
        self.server = await start(nursery, self.handle, ssl_context, host)
        self.port = self.server.port
        return self

    async def handle(self, request: Request) -> Response:
        self.seen.append(await Seen.of(request, self.port))
        if request.target in self.redirects:
            status, location = self.redirects[request.target]
            return Response.redirect(location, status)
        return Response(200, {"content-type": "text/plain"}, f"page {request.target}")

    def url(self, target: str, scheme: str = "http", host: str = LOOPBACK) -> str:
        name = f"[{host}]" if ":" in host else host
        return f"{scheme}://{name}:{self.port}{target}"


async def start_site(
    nursery: trio.Nursery,
    redirects: dict[str, tuple[int, str]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    host: str = LOOPBACK,
) -> Site:
    site = await Site().start(nursery, ssl_context, host)
    site.redirects.update(redirects or {})
    return site


def in_use(client: Client) -> int:
    """Connections the client holds that are neither idle nor closed."""
    stats = client.statistics()
    return stats.connections - stats.idle_connections


class TestNames(trio.abc.HostnameResolver):
    """Resolves the seed's names to 127.0.0.1; any other name goes to the
    previous resolver (or the system's)."""

    __test__ = False  # not a test class

    def __init__(self, names: set[str], previous: trio.abc.HostnameResolver | None) -> None:
        self.names = names
        self.previous = previous
        self.looked_up: list[str] = []

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        name = host.decode("ascii") if isinstance(host, bytes) else host
        if name in self.names:
            self.looked_up.append(name)
            return await trio.socket.getaddrinfo(LOOPBACK, port, family, type, proto, flags)
        if self.previous is not None:
            return await self.previous.getaddrinfo(host, port, family, type, proto, flags)
        return await trio.to_thread.run_sync(
            stdlib_socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int) -> tuple[str, str]:
        if self.previous is not None:
            return await self.previous.getnameinfo(sockaddr, flags)
        return await trio.to_thread.run_sync(stdlib_socket.getnameinfo, sockaddr, flags)


@pytest.fixture
async def names() -> AsyncIterator[TestNames]:
    """``example.test`` and ``www.example.test`` resolve to 127.0.0.1 for the
    test; the previous resolver is restored after it."""
    resolver = TestNames({"example.test", "www.example.test"}, None)
    resolver.previous = trio.socket.set_custom_hostname_resolver(resolver)
    try:
        yield resolver
    finally:
        assert trio.socket.set_custom_hostname_resolver(resolver.previous) is resolver


def server_context_for(ca: Any, *names: str) -> ssl.SSLContext:
    """A server context with a certificate of ``ca`` for ``names`` (as the
    trionet_tls fixture builds its own)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


async def _read_head(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


class RecordingProxy:
    """A small HTTP proxy on raw TCP: ``CONNECT host:port`` opens a tunnel to
    the origin (or is refused with ``refuse_connect``), an absolute-form
    request is answered by the proxy itself (with a 302 for the URLs in
    ``redirects``). Every request line and ``Proxy-Authorization`` is
    recorded."""

    def __init__(self, refuse_connect: int | None = None) -> None:
        self.refuse_connect = refuse_connect
        self.redirects: dict[str, str] = {}
        self.request_lines: list[str] = []
        self.proxy_authorization: list[str | None] = []
        self.hosts: list[str | None] = []
        self.connections = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self, nursery: trio.Nursery) -> RecordingProxy:
        listeners = await nursery.start(partial(trio.serve_tcp, self._handle, 0, host=LOOPBACK))
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buffer = bytearray()
        async with stream:
            try:
                while (head := await _read_head(stream, buffer)) is not None:
                    line, *fields = head.decode("latin-1").split("\r\n")
                    headers = {}
                    for field in fields:
                        name, _, value = field.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    self.request_lines.append(line)
                    self.proxy_authorization.append(headers.get("proxy-authorization"))
                    self.hosts.append(headers.get("host"))
                    method, target, _ = line.split(" ")
                    if method == "CONNECT":
                        await self._tunnel(stream, target, bytes(buffer))
                        return
                    body = f"answered by the proxy: {method} {target}".encode()
                    status = b"200 OK"
                    if target in self.redirects:
                        status = b"302 Found\r\nlocation: " + self.redirects[target].encode()
                    await stream.send_all(
                        b"HTTP/1.1 %s\r\ncontent-type: text/plain\r\n"
                        b"content-length: %d\r\n\r\n%s" % (status, len(body), body)
                    )
            except trio.BrokenResourceError:
                pass

    async def _tunnel(self, stream: trio.SocketStream, authority: str, early: bytes) -> None:
        if self.refuse_connect is not None:
            await stream.send_all(
                b'HTTP/1.1 %d Refused\r\nproxy-authenticate: Basic realm="test"\r\n'
                b"content-length: 0\r\n\r\n" % self.refuse_connect
            )
            return
        host, _, port = authority.rpartition(":")
        upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
        async with upstream:
            await stream.send_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            if early:
                await upstream.send_all(early)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, stream, upstream, nursery.cancel_scope)
                nursery.start_soon(_pipe, upstream, stream, nursery.cancel_scope)


async def start_proxy(nursery: trio.Nursery, refuse_connect: int | None = None) -> RecordingProxy:
    return await RecordingProxy(refuse_connect).start(nursery)


# -- 1. the seed's flow: example.test redirects to www.example.test --------------------


class SeedSite:
    """The seed's server: a request for ``example.test`` is sent to
    ``www.example.test`` (301, same path), which serves the page."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.hosts: list[str | None] = []
        self.targets: list[str] = []
        self.tls: list[trionet.tls.TLSInfo | None] = []
        self.port = 0

    async def handle(self, request: Request) -> Response:
        host = request.headers.get("host")
        self.hosts.append(host)
        self.targets.append(request.target)
        self.tls.append(request.tls)
        if host == f"example.test:{self.port}":
            return Response.redirect(
                f"{self.scheme}://www.example.test:{self.port}{request.target}", 301
            )
        if host == f"www.example.test:{self.port}":
            return Response(200, {"content-type": "text/html; charset=utf-8"}, PAGE)
        return Response(421, body=b"misdirected\n")


async def test_seed_flow_example_redirects_to_www_and_the_client_follows(
    nursery: trio.Nursery, names: TestNames
) -> None:
    site = SeedSite("http")
    site.port = (await start(nursery, site.handle)).port
    first = f"http://example.test:{site.port}/index.html"
    final = f"http://www.example.test:{site.port}/index.html"
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(first)
    assert response.status == 200
    assert await response.read() == PAGE
    assert await response.text() == PAGE.decode()
    assert response.url == final
    assert response.method == "GET"
    [hop] = response.history
    assert (hop.status, hop.url, hop.headers["location"]) == (301, first, final)
    assert site.hosts == [f"example.test:{site.port}", f"www.example.test:{site.port}"]
    assert site.targets == ["/index.html", "/index.html"]
    assert names.looked_up == ["example.test", "www.example.test"]


async def test_seed_flow_over_https_verifies_each_hop_by_its_own_name(
    nursery: trio.Nursery, names: TestNames, trionet_tls: TLSCertificates
) -> None:
    server_context = server_context_for(trionet_tls.ca, "example.test", "www.example.test")
    sni: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _context: sni.append(name)
    site = SeedSite("https")
    site.port = (await start(nursery, site.handle, server_context)).port
    first = f"https://example.test:{site.port}/index.html"
    final = f"https://www.example.test:{site.port}/index.html"
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            response = await client.get(first)
            # Two origins: two connections, each with its own handshake.
            assert client.statistics().connections_opened == 2
    assert (response.status, response.url, await response.read()) == (200, final, PAGE)
    assert [(hop.status, hop.url) for hop in response.history] == [(301, first)]
    assert site.hosts == [f"example.test:{site.port}", f"www.example.test:{site.port}"]
    assert sni == ["example.test", "www.example.test"]
    assert all(tls is not None for tls in site.tls)


async def test_seed_flow_over_https_refuses_a_hop_the_certificate_does_not_name(
    nursery: trio.Nursery, names: TestNames, trionet_tls: TLSCertificates
) -> None:
    # The certificate names example.test only: the redirect to www must fail
    # its own verification, not ride on the first hop's.
    site = SeedSite("https")
    context = server_context_for(trionet_tls.ca, "example.test")
    site.port = (await start(nursery, site.handle, context)).port
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.HTTPTLSError, match="certificate"):
                await client.get(f"https://example.test:{site.port}/index.html")
    assert site.hosts == [f"example.test:{site.port}"]


# -- 2. redirect rules ---------------------------------------------------------------

JSON_BODY = b'{"order":42}'


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "PUT"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_method_and_body_rules(
    nursery: trio.Nursery, status: int, method: str
) -> None:
    site = await start_site(nursery, {"/from": (status, "/to")})
    with_body = method in ("POST", "PUT")
    body_kwargs: dict[str, Any] = {"json": {"order": 42}} if with_body else {}
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.request(method, site.url("/from"), **body_kwargs)
    # RFC 9110 section 15.4: 303 makes a GET of all but HEAD; 301 and 302
    # make a GET of POST only (as browsers do); 307 and 308 change nothing.
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        expected_method, resent = "GET", False
    else:
        expected_method, resent = method, with_body
    assert response.status == 200
    assert response.method == expected_method
    assert response.url == site.url("/to")
    [hop] = response.history
    assert (hop.status, hop.method, hop.url) == (status, method, site.url("/from"))
    first, second = site.seen
    assert (first.method, first.target) == (method, "/from")
    assert first.body == (JSON_BODY if with_body else b"")
    assert (second.method, second.target) == (expected_method, "/to")
    if resent:
        assert second.body == JSON_BODY
        assert second.headers["content-type"] == "application/json"
        assert second.headers["content-length"] == str(len(JSON_BODY))
    else:
        assert second.body == b""
        assert "content-type" not in second.headers
        assert "content-length" not in second.headers
        assert "transfer-encoding" not in second.headers
    assert site.server is not None
    assert site.server.statistics().accepted == 1  # the redirect's body was drained


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/a", "/a"),
        ("b", "/x/y/b"),
        ("../c", "/x/c"),
        ("?q=1", "/x/y/start?q=1"),
        ("./d;p?r=s#fragment", "/x/y/d;p?r=s"),
        ("//127.0.0.1:{port}/e", "/e"),
    ],
)
async def test_a_relative_location_is_resolved_against_the_request_url(
    nursery: trio.Nursery, location: str, expected: str
) -> None:
    site = await start_site(nursery)
    site.redirects["/x/y/start?z=1"] = (302, location.format(port=site.port))
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/x/y/start?z=1"))
    assert response.status == 200
    assert site.targets == ["/x/y/start?z=1", expected]
    assert response.url == site.url(expected)
    assert await response.text() == f"page {expected}"


async def test_follow_redirects_false_returns_the_3xx(nursery: trio.Nursery) -> None:
    site = await start_site(nursery, {"/from": (302, "/to")})
    with trio.fail_after(WAIT):
        async with Client(follow_redirects=False, timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/from"))
            assert (response.status, response.history) == (302, [])
            assert response.is_redirect
            assert response.headers["location"] == "/to"
            assert response.url == site.url("/from")
            assert await response.read() == b"302 Found: /to\n"
            # ...and a request can still ask for it.
            followed = await client.get(site.url("/from"), follow_redirects=True)
            assert (followed.status, followed.url) == (200, site.url("/to"))
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/from"), follow_redirects=False)
            assert (response.status, response.history) == (302, [])
            async with client.stream("GET", site.url("/from"), follow_redirects=False) as streamed:
                assert streamed.status == 302
    assert site.targets == ["/from", "/from", "/to", "/from", "/from"]


def chain(length: int) -> dict[str, tuple[int, str]]:
    """/hop/N redirects to /hop/N-1 ... /hop/1 to /hop/0, the page."""
    return {f"/hop/{n}": (302, f"/hop/{n - 1}") for n in range(1, length + 1)}


async def test_max_redirects_allows_that_many_and_no_more(nursery: trio.Nursery) -> None:
    site = await start_site(nursery, chain(4))
    with trio.fail_after(WAIT):
        async with Client(max_redirects=3, timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/hop/3"))
            assert response.status == 200
            assert [hop.url for hop in response.history] == [
                site.url(f"/hop/{n}") for n in (3, 2, 1)
            ]
            site.seen.clear()
            with pytest.raises(trionet.http.TooManyRedirects, match="max_redirects") as caught:
                await client.get(site.url("/hop/4"))
            assert isinstance(caught.value, trionet.http.RedirectError)
            assert isinstance(caught.value, trionet.http.HTTPError)
            assert not isinstance(caught.value, trionet.http.RedirectLoop)
            assert site.targets == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]  # not /hop/0
            assert in_use(client) == 0
        async with Client(max_redirects=0, timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.TooManyRedirects):
                await client.get(site.url("/hop/1"))


async def test_a_redirect_back_to_a_request_already_made_is_a_loop(
    nursery: trio.Nursery,
) -> None:
    site = await start_site(nursery, {"/a": (302, "/b"), "/b": (307, "/a")})
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.RedirectLoop) as caught:
                await client.get(site.url("/a"))
            assert in_use(client) == 0
    assert isinstance(caught.value, trionet.http.TooManyRedirects)
    assert isinstance(caught.value, trionet.http.HTTPError)
    assert site.targets == ["/a", "/b"]  # /a is not asked for twice


async def test_post_redirected_to_get_of_the_same_url_is_not_a_loop(
    nursery: trio.Nursery,
) -> None:
    # The post/redirect/get pattern: POST /form -> 303 /form -> GET /form.
    site = Site()

    async def handle(request: Request) -> Response:
        site.seen.append(await Seen.of(request, site.port))
        if request.method == "POST":
            return Response.redirect("/form", 303)
        return Response(200, body=b"form")

    site.server = await start(nursery, handle)
    site.port = site.server.port
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.post(site.url("/form"), form={"a": "1"})
    assert (response.status, response.method, await response.read()) == (200, "GET", b"form")
    assert [(seen.method, seen.target) for seen in site.seen] == [
        ("POST", "/form"),
        ("GET", "/form"),
    ]


@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1/file.txt", "javascript:alert(1)", "mailto:a@example.test"]
)
async def test_a_location_that_is_not_http_is_a_redirect_error(
    nursery: trio.Nursery, location: str
) -> None:
    site = await start_site(nursery, {"/from": (302, location)})
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.RedirectError) as caught:
                await client.get(site.url("/from"))
    assert location in str(caught.value)
    assert not isinstance(caught.value, trionet.http.TooManyRedirects)
    assert site.targets == ["/from"]


async def numbers() -> AsyncIterator[bytes]:
    for piece in (b"one ", b"two ", b"three"):
        yield piece


@pytest.mark.parametrize(
    ("status", "method", "follows"),
    [(307, "POST", False), (308, "PUT", False), (302, "PUT", False), (303, "POST", True)],
)
async def test_a_streamed_body_cannot_be_sent_again(
    nursery: trio.Nursery, status: int, method: str, follows: bool
) -> None:
    site = await start_site(nursery, {"/from": (status, "/to")})
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            if follows:  # the redirect drops the body: nothing to resend
                response = await client.request(method, site.url("/from"), content=numbers())
                assert (response.status, response.method) == (200, "GET")
            else:
                with pytest.raises(trionet.http.RedirectError, match="body"):
                    await client.request(method, site.url("/from"), content=numbers())
    assert site.seen[0].body == b"one two three"
    assert site.seen[0].headers["transfer-encoding"] == "chunked"
    assert site.targets == (["/from", "/to"] if follows else ["/from"])


@pytest.mark.parametrize("cause", ["ftp location", "streamed body"])
async def test_a_refused_redirect_gives_its_connection_back(
    nursery: trio.Nursery, cause: str
) -> None:
    site = await start_site(nursery, {"/ftp": (302, "ftp://127.0.0.1/"), "/307": (307, "/to")})
    timeouts = Timeouts(connect=5, read=5, write=5, pool=0.5)
    with trio.fail_after(WAIT):
        async with Client(max_connections=1, timeout=timeouts) as client:
            refused = (
                client.get(site.url("/ftp"))
                if cause == "ftp location"
                else client.post(site.url("/307"), content=numbers())
            )
            with pytest.raises(trionet.http.RedirectError):
                await refused
            assert in_use(client) == 0
            response = await client.get(site.url("/page"))
            assert response.status == 200


async def test_a_3xx_without_location_is_returned_as_it_is(nursery: trio.Nursery) -> None:
    async def handle(request: Request) -> Response:
        return Response(int(request.path[1:]), {"content-type": "text/plain"}, b"nowhere")

    server = await start(nursery, handle)
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            for status in (301, 302, 303, 307, 308):
                response = await client.get(f"http://{LOOPBACK}:{server.port}/{status}")
                assert (response.status, response.history) == (status, [])
                assert not response.is_redirect
                assert await response.read() == b"nowhere"
            assert client.statistics().connections_opened == 1


CREDENTIALS = {"authorization": "Bearer secret-token", "cookie": "session=s3cr3t"}


async def test_credentials_follow_a_same_origin_hop_but_not_another_port(
    nursery: trio.Nursery,
) -> None:
    other = await start_site(nursery)
    site = await start_site(nursery, {"/same": (302, "/next")})
    site.redirects["/next"] = (307, other.url("/other"))
    with trio.fail_after(WAIT):
        async with Client(headers={"cookie": CREDENTIALS["cookie"]}, timeout=TIMEOUTS) as client:
            response = await client.get(
                site.url("/same"),
                headers={"authorization": CREDENTIALS["authorization"], "x-trace": "kept"},
            )
    assert (response.status, response.url) == (200, other.url("/other"))
    for seen in site.seen:  # /same, then /next on the same origin
        assert seen.headers["authorization"] == CREDENTIALS["authorization"]
        assert seen.headers["cookie"] == CREDENTIALS["cookie"]
    [crossed] = other.seen
    assert "authorization" not in crossed.headers
    assert "cookie" not in crossed.headers
    assert crossed.headers["x-trace"] == "kept"  # other fields do follow
    assert crossed.headers["host"] == f"{LOOPBACK}:{other.port}"


async def test_a_user_set_host_is_dropped_on_a_cross_origin_hop(nursery: trio.Nursery) -> None:
    other = await start_site(nursery)
    site = await start_site(nursery)
    site.redirects["/from"] = (302, other.url("/to"))
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            await client.get(site.url("/from"), headers={"host": "virtual.test"})
    assert site.seen[0].headers["host"] == "virtual.test"
    assert other.seen[0].headers["host"] == f"{LOOPBACK}:{other.port}"


async def test_url_credentials_are_dropped_on_a_cross_origin_hop(nursery: trio.Nursery) -> None:
    other = await start_site(nursery)
    site = await start_site(nursery, {"/start": (302, other.url("/other"))})
    url = f"http://alice:pa%20ss@{LOOPBACK}:{site.port}/start"
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(url)
    assert response.status == 200
    assert site.seen[0].headers["authorization"] == basic("alice", "pa ss")
    assert "authorization" not in other.seen[0].headers
    # The URL's credentials are never shown in the response's URL.
    assert "alice" not in response.history[0].url


async def test_url_credentials_follow_a_same_origin_hop(nursery: trio.Nursery) -> None:
    site = await start_site(nursery, {"/start": (302, "/next")})
    url = f"http://alice:pa%20ss@{LOOPBACK}:{site.port}/start"
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(url)
    assert response.status == 200
    assert [seen.headers.get("authorization") for seen in site.seen] == [
        basic("alice", "pa ss"),
        basic("alice", "pa ss"),
    ]


async def _serve_http_and_https_on_one_port(
    nursery: trio.Nursery, handler: Handler, context: ssl.SSLContext
) -> int:
    """Plain HTTP and HTTPS on the same port (the first byte of a TLS
    ClientHello is 0x16), so that a hop can change the scheme alone."""

    async def one(stream: trio.SocketStream) -> None:
        first = await stream.socket.recv(1, stdlib_socket.MSG_PEEK)
        transport: trio.abc.Stream = stream
        try:
            if first == b"\x16":
                tls = trio.SSLStream(stream, context, server_side=True)
                await tls.do_handshake()
                transport = tls
            async with HTTPConnection(transport) as connection:
                async for request in connection:
                    await request.respond(await handler(request))
        except (trio.BrokenResourceError, trionet.ConnectionClosed):
            pass

    listeners = await nursery.start(partial(trio.serve_tcp, one, 0, host=LOOPBACK))
    return int(listeners[0].socket.getsockname()[1])


async def test_credentials_are_dropped_from_https_to_http_on_the_same_host_and_port(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = Site()
    port = await _serve_http_and_https_on_one_port(nursery, site.handle, trionet_tls.server_context)
    site.port = port
    site.redirects = {
        "/secure": (302, f"https://{LOOPBACK}:{port}/still-secure"),
        "/still-secure": (302, f"http://{LOOPBACK}:{port}/plain"),
    }
    with trio.fail_after(WAIT):
        async with Client(
            ssl_context=trionet_tls.client_context, headers=CREDENTIALS, timeout=TIMEOUTS
        ) as client:
            response = await client.get(f"https://{LOOPBACK}:{port}/secure")
    assert (response.status, response.url) == (200, f"http://{LOOPBACK}:{port}/plain")
    secure, still_secure, plain = site.seen
    assert secure.tls is not None
    assert still_secure.tls is not None
    assert plain.tls is None
    for seen in (secure, still_secure):
        assert seen.headers["authorization"] == CREDENTIALS["authorization"]
        assert seen.headers["cookie"] == CREDENTIALS["cookie"]
    assert "authorization" not in plain.headers
    assert "cookie" not in plain.headers


async def test_redirect_bodies_are_drained_so_one_connection_serves_the_chain(
    nursery: trio.Nursery,
) -> None:
    big = b"x" * 40_000  # below the client's drain limit

    async def handle(request: Request) -> Response:
        hop = int(request.path.rsplit("/", 1)[1])
        if hop == 0:
            return Response(200, body=b"arrived")
        location = {"location": f"/hop/{hop - 1}"}
        if hop % 2:

            async def chunked() -> AsyncIterator[bytes]:
                yield b"moved "
                yield b"along"

            return Response(302, location, chunked())
        return Response(302, location, big)

    server = await start(nursery, handle)
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(f"http://{LOOPBACK}:{server.port}/hop/4")
            stats = client.statistics()
    assert (response.status, await response.read(), len(response.history)) == (200, b"arrived", 4)
    assert server.statistics().accepted == 1
    assert (stats.connections_opened, stats.connections_reused, stats.requests) == (1, 4, 5)
    assert stats.idle_connections == 1


async def test_a_large_redirect_body_closes_its_connection_cleanly(
    nursery: trio.Nursery,
) -> None:
    site = await start_site(nursery)

    async def handle(request: Request) -> Response:
        site.seen.append(await Seen.of(request, site.port))
        if request.path == "/big":
            return Response(301, {"location": "/small"}, b"x" * 300_000)
        return Response(200, body=b"small")

    site.server = await start(nursery, handle)
    site.port = site.server.port
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/big"))
            assert (response.status, await response.read()) == (200, b"small")
            assert in_use(client) == 0
    # Not worth reading 300 kB to keep a connection: a new one is opened.
    assert site.targets == ["/big", "/small"]
    assert site.server.statistics().accepted == 2


# -- 3. proxies ------------------------------------------------------------------------


async def test_https_through_a_proxy_tunnel_is_verified_end_to_end(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    proxy = await start_proxy(nursery)
    with trio.fail_after(WAIT):
        async with Client(
            proxy=proxy.url, ssl_context=trionet_tls.client_context, timeout=TIMEOUTS
        ) as client:
            response = await client.get(site.url("/secret", "https"))
            again = await client.get(site.url("/again", "https"))
    assert (response.status, await response.read()) == (200, b"page /secret")
    assert again.status == 200
    # One tunnel, reused; the origin saw origin-form requests over TLS.
    assert proxy.request_lines == [f"CONNECT {LOOPBACK}:{site.port} HTTP/1.1"]
    assert proxy.hosts == [f"{LOOPBACK}:{site.port}"]
    assert site.targets == ["/secret", "/again"]
    assert all(seen.tls is not None for seen in site.seen)


async def test_the_tunnel_does_not_lift_certificate_verification(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    # The proxy is trusted with nothing: the origin's certificate is still
    # checked against the client's trust store (here the system's).
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    proxy = await start_proxy(nursery)
    with trio.fail_after(WAIT):
        async with Client(proxy=proxy.url, timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.HTTPTLSError, match="certificate"):
                await client.get(site.url("/", "https"))
    assert proxy.request_lines == [f"CONNECT {LOOPBACK}:{site.port} HTTP/1.1"]
    assert site.seen == []


async def test_http_through_a_proxy_uses_the_absolute_url(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    # The proxy answers: no origin listens, and a request sent past the proxy is refused.
    with refusing_port() as port_a, refusing_port() as port_b, trio.fail_after(WAIT):
        async with Client(proxy=proxy.url, timeout=TIMEOUTS) as client:
            first = await client.get(f"http://{LOOPBACK}:{port_a}/a/b?c=d")
            second = await client.get(f"http://localhost:{port_b}/e")
    assert await first.text() == f"answered by the proxy: GET http://{LOOPBACK}:{port_a}/a/b?c=d"
    assert second.status == 200
    assert proxy.request_lines == [
        f"GET http://{LOOPBACK}:{port_a}/a/b?c=d HTTP/1.1",
        f"GET http://localhost:{port_b}/e HTTP/1.1",
    ]
    assert proxy.hosts == [f"{LOOPBACK}:{port_a}", f"localhost:{port_b}"]
    assert proxy.connections == 1  # one proxy connection serves every host
    assert proxy.proxy_authorization == [None, None]


async def test_international_host_names_are_sent_as_idna_2008_a_labels(
    nursery: trio.Nursery,
) -> None:
    # faß.de and fass.de are two domains under IDNA 2008 (UTS 46,
    # non-transitional), one under Python's IDNA 2003 codec. The proxy sees
    # exactly what would go to DNS and into the Host field.
    proxy = await start_proxy(nursery)
    with trio.fail_after(WAIT):
        async with Client(proxy=proxy.url, timeout=TIMEOUTS) as client:
            await client.get("http://faß.de/straße")
            await client.get("http://Bücher.Example:8080/")
            with pytest.raises(ValueError, match="a bad host name"):
                await client.get("http://☃.com/")
    assert proxy.request_lines == [
        "GET http://xn--fa-hia.de/stra%C3%9Fe HTTP/1.1",
        "GET http://xn--bcher-kva.example:8080/ HTTP/1.1",
    ]
    assert proxy.hosts == ["xn--fa-hia.de", "xn--bcher-kva.example:8080"]


async def test_proxy_credentials_go_to_the_proxy_only(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    proxy = await start_proxy(nursery)
    proxy_url = f"http://user:p%40ss@{LOOPBACK}:{proxy.port}"
    expected = basic("user", "p@ss")
    with refusing_port() as no_origin, trio.fail_after(WAIT):
        async with Client(
            proxy=proxy_url, ssl_context=trionet_tls.client_context, timeout=TIMEOUTS
        ) as client:
            secure = await client.get(site.url("/tunnelled", "https"))
            plain = await client.get(f"http://{LOOPBACK}:{no_origin}/plain")
    assert (secure.status, plain.status) == (200, 200)
    assert proxy.request_lines[0] == f"CONNECT {LOOPBACK}:{site.port} HTTP/1.1"
    assert proxy.request_lines[1].startswith(f"GET http://{LOOPBACK}:")
    assert proxy.proxy_authorization == [expected, expected]  # on CONNECT, on the request
    [seen] = site.seen
    assert "proxy-authorization" not in seen.headers
    assert "authorization" not in seen.headers


async def test_a_redirect_from_http_to_https_through_the_proxy_opens_a_tunnel(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    proxy = await start_proxy(nursery)
    plain_url = f"http://{LOOPBACK}:{site.port}/upgrade"
    proxy.redirects[plain_url] = site.url("/secure", "https")
    with trio.fail_after(WAIT):
        async with Client(
            proxy=f"http://u:p@{LOOPBACK}:{proxy.port}",
            ssl_context=trionet_tls.client_context,
            timeout=TIMEOUTS,
        ) as client:
            response = await client.get(plain_url)
    assert (response.status, response.url) == (200, site.url("/secure", "https"))
    assert [hop.status for hop in response.history] == [302]
    assert proxy.request_lines == [
        f"GET {plain_url} HTTP/1.1",
        f"CONNECT {LOOPBACK}:{site.port} HTTP/1.1",
    ]
    assert proxy.proxy_authorization == [basic("u", "p"), basic("u", "p")]
    [seen] = site.seen
    assert seen.target == "/secure"
    assert "proxy-authorization" not in seen.headers


@needs_ipv6
async def test_ipv6_origins_through_the_proxy(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context, host="::1")
    proxy = await start_proxy(nursery)
    plain_url = f"http://[::1]:{site.port}/plain"
    with trio.fail_after(WAIT):
        async with Client(
            proxy=proxy.url, ssl_context=trionet_tls.client_context, timeout=TIMEOUTS
        ) as client:
            secure = await client.get(site.url("/secure", "https", host="::1"))
            plain = await client.get(plain_url)
    assert (secure.status, await secure.read()) == (200, b"page /secure")
    assert plain.status == 200
    # RFC 9110 section 9.3.6 / RFC 3986: an IPv6 literal in brackets.
    assert proxy.request_lines == [
        f"CONNECT [::1]:{site.port} HTTP/1.1",
        f"GET {plain_url} HTTP/1.1",
    ]
    assert proxy.hosts == [f"[::1]:{site.port}", f"[::1]:{site.port}"]
    assert site.seen[0].headers["host"] == f"[::1]:{site.port}"


async def test_a_proxy_refusing_the_tunnel_is_a_proxy_error(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    proxy = await start_proxy(nursery, refuse_connect=407)
    with trio.fail_after(WAIT):
        async with Client(
            proxy=proxy.url, ssl_context=trionet_tls.client_context, timeout=TIMEOUTS
        ) as client:
            with pytest.raises(trionet.http.ProxyError, match="407") as caught:
                await client.get(site.url("/", "https"))
            assert client.statistics().connections == 0
    assert caught.value.status == 407
    assert isinstance(caught.value, trionet.http.TransportError)
    assert isinstance(caught.value, trionet.ConnectionClosed)
    assert site.seen == []


async def test_a_proxy_that_is_not_listening_is_a_connect_error() -> None:
    with refusing_port() as port, trio.fail_after(WAIT):
        async with Client(proxy=f"http://{LOOPBACK}:{port}", timeout=TIMEOUTS) as client:
            for url in ("http://127.0.0.1:1/", "https://127.0.0.1:1/"):
                with pytest.raises(trionet.http.HTTPConnectError) as caught:
                    await client.get(url)
                assert isinstance(caught.value, trionet.ConnectError)
                assert isinstance(caught.value, OSError)
                assert f"{LOOPBACK}:{port}" in str(caught.value)  # names the proxy
                assert not isinstance(caught.value, trionet.http.ProxyError)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_http_proxy_from_the_environment(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    proxy = await start_proxy(nursery)
    site = await start_site(nursery)
    monkeypatch.setenv(variable, proxy.url)
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/via"))
    assert await response.text() == f"answered by the proxy: GET {site.url('/via')}"
    assert proxy.request_lines == [f"GET {site.url('/via')} HTTP/1.1"]
    assert site.seen == []


async def test_an_unusable_proxy_in_the_environment_is_explained(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy of a kind the client cannot use, set for other programs: the
    # error says where it came from and what to do, and NO_PROXY gets the
    # request through.
    site = await start_site(nursery)
    monkeypatch.setenv("ALL_PROXY", "ftp://127.0.0.1:21")
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.UnsupportedProxy) as caught:
                await client.get(site.url("/blocked"))
        message = str(caught.value)
        assert "ALL_PROXY" in message
        assert "ftp:// proxies are not supported" in message
        assert "NO_PROXY" in message
        assert isinstance(caught.value, ValueError)
        monkeypatch.setenv("NO_PROXY", LOOPBACK)
        async with Client(timeout=TIMEOUTS) as client:
            assert (await client.get(site.url("/direct"))).status == 200
    assert site.targets == ["/direct"]


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
async def test_https_proxy_from_the_environment(
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    trionet_tls: TLSCertificates,
    variable: str,
) -> None:
    proxy = await start_proxy(nursery)
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    monkeypatch.setenv(variable, proxy.url)
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/via", "https"))
    assert response.status == 200
    assert proxy.request_lines == [f"CONNECT {LOOPBACK}:{site.port} HTTP/1.1"]
    assert site.targets == ["/via"]


async def test_each_scheme_takes_its_own_proxy_variable(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, trionet_tls: TLSCertificates
) -> None:
    proxy = await start_proxy(nursery)
    plain = await start_site(nursery)
    secure = await start_site(nursery, ssl_context=trionet_tls.server_context)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)  # no HTTP_PROXY: http goes direct
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            assert (await client.get(plain.url("/direct"))).status == 200
            assert (await client.get(secure.url("/proxied", "https"))).status == 200
    assert plain.targets == ["/direct"]
    assert proxy.request_lines == [f"CONNECT {LOOPBACK}:{secure.port} HTTP/1.1"]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
async def test_no_proxy_bypasses_the_proxy(
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    trionet_tls: TLSCertificates,
    no_proxy: str,
) -> None:
    proxy = await start_proxy(nursery)
    plain = await start_site(nursery)
    secure = await start_site(nursery, ssl_context=trionet_tls.server_context)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            assert (await client.get(plain.url("/direct"))).status == 200
            assert (await client.get(secure.url("/direct", "https"))).status == 200
    assert plain.targets == secure.targets == ["/direct"]
    assert proxy.request_lines == []
    assert proxy.connections == 0


async def test_trust_env_false_and_an_explicit_proxy_ignore_the_environment(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_proxy = await start_proxy(nursery)
    own_proxy = await start_proxy(nursery)
    site = await start_site(nursery)
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(variable, env_proxy.url)
    with trio.fail_after(WAIT):
        async with Client(trust_env=False, timeout=TIMEOUTS) as client:
            assert (await client.get(site.url("/direct"))).status == 200
        async with Client(proxy=own_proxy.url, timeout=TIMEOUTS) as client:
            assert (await client.get(site.url("/own"))).status == 200
    assert site.targets == ["/direct"]
    assert own_proxy.request_lines == [f"GET {site.url('/own')} HTTP/1.1"]
    assert env_proxy.request_lines == []


# -- 4. HTTPS --------------------------------------------------------------------------


async def test_https_with_a_trusted_certificate(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            by_address = await client.get(site.url("/one", "https"))
            by_name = await client.get(site.url("/two", "https", host="localhost"))
    assert (by_address.status, await by_address.read()) == (200, b"page /one")
    assert (by_name.status, by_name.url) == (200, f"https://localhost:{site.port}/two")
    for seen in site.seen:
        assert seen.tls is not None
        assert seen.tls.version in ("TLSv1.2", "TLSv1.3")
        assert seen.tls.peer_certificate is None  # no client certificate asked for
    assert site.seen[0].headers["host"] == f"{LOOPBACK}:{site.port}"


async def test_the_default_context_refuses_an_unknown_authority(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    with trio.fail_after(WAIT):
        async with Client(timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.HTTPTLSError) as caught:
                await client.get(site.url("/", "https", host="localhost"))
            assert client.statistics().connections == 0
    error = caught.value
    assert isinstance(error, trionet.TLSError)
    assert isinstance(error, trionet.ConnectionClosed)
    assert isinstance(error, trionet.http.HTTPError)
    assert "certificate" in str(error)
    assert site.seen == []


async def test_a_certificate_for_another_host_name_is_refused(
    nursery: trio.Nursery, names: TestNames, trionet_tls: TLSCertificates
) -> None:
    # The fixture's certificate names localhost, 127.0.0.1 and ::1; the
    # name asked for is example.test, which resolves to the same server.
    site = await start_site(nursery, ssl_context=trionet_tls.server_context)
    other = await start_site(nursery, ssl_context=server_context_for(trionet_tls.ca, "other.test"))
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            with pytest.raises(trionet.http.HTTPTLSError, match="certificate") as caught:
                await client.get(site.url("/", "https", host="example.test"))
            assert "mismatch" in str(caught.value).lower()
            with pytest.raises(trionet.http.HTTPTLSError, match="certificate"):
                await client.get(other.url("/", "https"))
    assert site.seen == other.seen == []


@dataclass
class ClientCertificateFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture
def client_certificate(trionet_tls: TLSCertificates, tmp_path: Path) -> ClientCertificateFiles:
    issued = trionet_tls.ca.issue_cert("client.test", common_name="trionet test client")
    files = ClientCertificateFiles(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    trionet_tls.ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    return files


def requiring_client_certificates(trionet_tls: TLSCertificates) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trionet_tls.ca.issue_cert("localhost", LOOPBACK).configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    trionet_tls.ca.configure_trust(context)
    return context


async def test_a_client_certificate_reaches_the_server(
    nursery: trio.Nursery,
    trionet_tls: TLSCertificates,
    client_certificate: ClientCertificateFiles,
) -> None:
    site = await start_site(nursery, ssl_context=requiring_client_certificates(trionet_tls))
    context = trionet.tls.client_context(
        cafile=client_certificate.ca,
        certfile=client_certificate.cert,
        keyfile=client_certificate.key,
    )
    with trio.fail_after(WAIT):
        async with Client(ssl_context=context, timeout=TIMEOUTS) as client:
            response = await client.get(site.url("/mutual", "https"))
    assert (response.status, await response.read()) == (200, b"page /mutual")
    [seen] = site.seen
    assert seen.tls is not None
    certificate = seen.tls.peer_certificate
    assert certificate is not None
    assert ("DNS", "client.test") in certificate["subjectAltName"]
    assert (("commonName", "trionet test client"),) in certificate["subject"]


async def test_without_the_required_client_certificate_the_request_fails(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=requiring_client_certificates(trionet_tls))
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            # With TLS 1.3 the server's refusal comes after the client's side
            # of the handshake ended: it surfaces as a transport failure.
            with pytest.raises(trionet.http.TransportError):
                await client.get(site.url("/mutual", "https"))
    assert site.seen == []


async def test_a_missing_client_certificate_is_named_in_the_error(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    site = await start_site(nursery, ssl_context=requiring_client_certificates(trionet_tls))
    with trio.fail_after(WAIT):
        async with Client(ssl_context=trionet_tls.client_context, timeout=TIMEOUTS) as client:
            # trionet's server closes without sending TLS 1.3's "certificate
            # required" alert (trio's SSLStream drops it), so what reaches
            # the client is the TLS stream ending early: named as TLS.
            with pytest.raises(trionet.http.TransportError, match=r"TLS error"):
                await client.get(site.url("/mutual", "https"))


# -- 5. base_url -----------------------------------------------------------------------


async def test_base_url_joins_as_rfc_3986_says(nursery: trio.Nursery) -> None:
    site = await start_site(nursery)
    root = f"http://{LOOPBACK}:{site.port}"
    with trio.fail_after(WAIT):
        # base_url="http://h/api/" + "users" -> "http://h/api/users": the
        # trailing slash makes "api/" a directory to resolve below...
        async with Client(base_url=f"{root}/api/", timeout=TIMEOUTS) as client:
            assert (await client.get("users")).url == f"{root}/api/users"
            await client.get("users", params={"page": 2})
            await client.get("/users")  # an absolute path replaces the path
            await client.get("../v2/users")
            await client.get("")  # the base itself
            await client.get(f"{root}/elsewhere")  # an absolute URL wins
        # ...without it, "http://h/api" + "users" -> "http://h/users": the
        # last segment is replaced, as a browser resolves a link.
        async with Client(base_url=f"{root}/api", timeout=TIMEOUTS) as client:
            assert (await client.get("users")).url == f"{root}/users"
    assert site.targets == [
        "/api/users",
        "/api/users?page=2",
        "/users",
        "/v2/users",
        "/api/",
        "/elsewhere",
        "/users",
    ]


async def test_a_relative_url_without_base_url_is_refused() -> None:
    async with Client(timeout=TIMEOUTS) as client:
        with pytest.raises(ValueError, match="http"):
            await client.get("/users")
