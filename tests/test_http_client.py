"""trionet.http.Client against loopback peers: the four timeouts, the pool,
the retry of a stale connection, request bodies and header fields,
100-continue, content decoding (and its bound), the response API, misuse, and
malformed answers.

The peers are trionet's own HTTP server, and raw TCP servers written here that
misbehave precisely (stall, close at a chosen moment, answer garbage); they
parse what the client sends with h11, a parser we did not write. Timeouts run
under ``autojump_clock`` against the same raw servers on a virtual network
(the ``trionet_virtual_tcp`` fixture): virtual time and real sockets do not
mix."""

from __future__ import annotations

import gc
import gzip
import math
import ssl
import struct
import sys
import tracemalloc
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import brotli
import h11
import pytest
import trio
import trio.testing

import trionet
import trionet.http
from tests._http import LOOPBACK
from tests._process import refusing_port
from trionet.http import (
    Client,
    ClientStatistics,
    DecodingError,
    HTTPConnectTimeout,
    HTTPError,
    HTTPStatusError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    Response,
    ResponseTooLarge,
    ServerDisconnected,
    Timeouts,
    TransportError,
    WriteTimeout,
)
from trionet.testing import TLSCertificates, VirtualTCPNetwork

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MiB = 1024 * 1024

# Seconds (real, or virtual under autojump_clock) an exchange may take before
# the test fails as hung: a guard, never an assertion about speed.
BOUND = 20


# -- peers ---------------------------------------------------------------------------


async def start(
    nursery: trio.Nursery, handler: Callable[[Request], Awaitable[Response]], **kwargs: Any
) -> trionet.Server:
    """trionet's HTTP server on loopback."""
    kwargs.setdefault("handler_errors", "raise")
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, handler, 0, LOOPBACK, **kwargs)
    )
    return server


def url(port: int, path: str = "/") -> str:
    return f"http://{LOOPBACK}:{port}{path}"


@dataclass
class Received:
    """A request as a raw server parsed it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        assert len(values) <= 1, values
        return values[0] if values else None


class Wire:
    """One connection accepted by a :class:`RawServer`."""

    def __init__(self, stream: trio.abc.Stream, server: RawServer) -> None:
        self.stream = stream
        self.server = server
        self.buffer = b""

    async def receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(64 * 1024))
        except trio.BrokenResourceError:  # a reset: the end, for these tests
            return b""

    async def read_request(self) -> Received | None:
        """The next request (``None`` at a clean end of stream); a request cut
        short raises EOFError, which ends the connection."""
        h = h11.Connection(h11.SERVER)
        if self.buffer:  # (b"" would mean the end of the stream to h11)
            h.receive_data(self.buffer)
        self.buffer = b""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise EOFError(f"request cut short: {exc}") from None
            if event is h11.NEED_DATA:
                h.receive_data(await self.receive())
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self.buffer = h.trailing_data[0]
                received = Received(
                    head.method.decode(),
                    head.target.decode(),
                    [(k.decode(), v.decode("latin-1")) for k, v in head.headers],
                    bytes(body),
                )
                self.server.received.append(received)
                return received
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def read_head(self) -> bytes:
        """The bytes of a request head, not one byte more (the body, if any,
        stays unread)."""
        while b"\r\n\r\n" not in self.buffer:
            data = await self.receive()
            if not data:
                raise EOFError("no request head")
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    async def read_to_eof(self) -> bytes:
        """Everything until the client closes (what is left unread included)."""
        data = bytearray(self.buffer)
        self.buffer = b""
        while chunk := await self.receive():
            data += chunk
        return bytes(data)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)


@dataclass
class RawServer:
    """A loopback TCP server running ``behave(wire, index)`` for the
    connection number ``index`` (0, 1, ...)."""

    port: int = 0
    connections: int = 0
    received: list[Received] = field(default_factory=list)

    def methods(self) -> list[str]:
        return [r.method for r in self.received]


Behaviour = Callable[[Wire, int], Awaitable[None]]


def _handler(server: RawServer, behave: Behaviour) -> Callable[[Any], Awaitable[None]]:
    async def handle(stream: Any) -> None:
        index = server.connections
        server.connections += 1
        async with stream:
            try:
                await behave(Wire(stream, server), index)
            except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    return handle


async def raw_server(nursery: trio.Nursery, behave: Behaviour) -> RawServer:
    server = RawServer()
    listeners = await nursery.start(
        partial(trio.serve_tcp, _handler(server, behave), 0, host=LOOPBACK)
    )
    server.port = listeners[0].socket.getsockname()[1]
    return server


def reply(body: bytes = b"", status: str = "200 OK", headers: str = "") -> bytes:
    """An HTTP/1.1 response with Content-Length; ``headers`` are extra lines."""
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode("latin-1") + body


async def answer_all(wire: Wire, index: int) -> None:
    """A well-behaved keep-alive server: ``conn <index>: <target>`` to each
    request."""
    while (received := await wire.read_request()) is not None:
        await wire.send(reply(f"conn {index}: {received.target}".encode()))


async def never_answer(wire: Wire, index: int) -> None:
    await wire.read_to_eof()


def check_timeout(exc: BaseException, kind: type[BaseException]) -> None:
    assert type(exc) is kind
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, trionet.http.HTTPTimeout)
    assert isinstance(exc, HTTPError)


# -- timeouts ------------------------------------------------------------------------


async def test_connect_timeout_when_the_server_never_speaks_tls(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:
    server = await raw_server(nursery, never_answer)  # accepts, reads the ClientHello
    async with Client(timeout=Timeouts(connect=5)) as client:
        started = trio.current_time()
        with trio.fail_after(BOUND), pytest.raises(HTTPConnectTimeout) as info:
            await client.get(f"https://{LOOPBACK}:{server.port}/")
        assert trio.current_time() - started >= 5
        assert client.statistics().connections == 0
    check_timeout(info.value, HTTPConnectTimeout)
    assert isinstance(info.value, trionet.ConnectError)
    assert isinstance(info.value, trionet.http.HTTPConnectError)
    assert isinstance(info.value, trionet.ConnectTimeout)
    assert str(info.value) == f"connecting to https://{LOOPBACK}:{server.port} took longer than 5 s"
    assert server.connections == 1


async def test_connect_timeout_when_an_https_proxy_never_speaks_tls(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:
    proxy = await raw_server(nursery, never_answer)  # accepts, reads the ClientHello
    proxy_url = f"https://{LOOPBACK}:{proxy.port}"
    async with Client(proxy=proxy_url, timeout=Timeouts(connect=5)) as client:
        for target in ("http://origin.test/", "https://origin.test/"):
            started = trio.current_time()
            with trio.fail_after(BOUND), pytest.raises(HTTPConnectTimeout) as info:
                await client.get(target)
            assert trio.current_time() - started >= 5
            assert str(info.value) == f"connecting to the proxy {proxy_url} took longer than 5 s"
        assert client.statistics().connections == 0
    assert proxy.connections == 2


async def test_an_https_proxy_host_is_idna_2008(
    trionet_http_server: Any,
    trionet_virtual_tcp: VirtualTCPNetwork,
    trionet_tls: TLSCertificates,
) -> None:
    async def target(request: trionet.http.Request) -> trionet.http.Response:
        return trionet.http.Response.text(f"{request.headers.get('host')} {request.target}")

    # faß.test is xn--fa-hia.test under IDNA 2008 (fass.test under Python's
    # IDNA 2003 codec), the name its certificate is for, and the name the
    # client's trace and messages give.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trionet_tls.ca.issue_cert("xn--fa-hia.test").configure_cert(context)
    server = await trionet_http_server(target, ssl_context=context)
    trionet_virtual_tcp.add_host("xn--fa-hia.test", LOOPBACK)
    handshakes: list[dict[str, Any]] = []
    async with Client(
        proxy=f"https://faß.test:{server.port}",
        verify=trionet_tls.client_context,
        trace=lambda step, details: handshakes.append(dict(details)) if step == "tls" else None,
    ) as client:
        with trio.fail_after(BOUND):
            response = await client.get("http://origin.test/via")
    assert await response.text() == "origin.test http://origin.test/via"
    (handshake,) = handshakes
    assert handshake["server_hostname"] == "xn--fa-hia.test"
    assert handshake["proxy"] == f"https://xn--fa-hia.test:{server.port}"


async def test_read_timeout_when_the_server_never_answers(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:

    async def read_then_nothing(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.read_to_eof()

    server = await raw_server(nursery, read_then_nothing)
    async with Client(timeout=Timeouts(read=5)) as client:
        with trio.fail_after(BOUND), pytest.raises(ReadTimeout) as info:
            await client.get(url(server.port))
        assert client.statistics().connections == 0  # the connection is given up
    check_timeout(info.value, ReadTimeout)
    assert isinstance(info.value, trionet.ConnectionClosed)
    assert isinstance(info.value, TransportError)
    assert str(info.value) == "the server sent nothing for 5 s"
    assert server.methods() == ["GET"]


async def stall_mid_body(wire: Wire, index: int) -> None:
    await wire.read_request()
    await wire.send(reply(b"0123456789")[:-7])  # the head and 3 of 10 bytes
    await wire.read_to_eof()


@pytest.mark.parametrize("how", ["get", "read", "iterate"])
async def test_read_timeout_mid_body(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    how: str,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:
    server = await raw_server(nursery, stall_mid_body)
    chunks: list[bytes] = []

    async def consume(client: Client) -> None:
        if how == "get":
            await client.get(url(server.port))
            return
        async with client.stream("GET", url(server.port)) as response:
            assert response.status == 200
            if how == "read":
                await response.read()
            else:
                async for chunk in response:
                    chunks.append(chunk)

    async with Client(timeout=Timeouts(read=5)) as client:
        with trio.fail_after(BOUND), pytest.raises(ReadTimeout) as info:
            await consume(client)
        assert client.statistics().connections == 0
    check_timeout(info.value, ReadTimeout)
    if how == "iterate":
        assert b"".join(chunks) == b"012"


async def test_read_timeout_is_per_read_not_for_the_whole_response(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:

    async def trickle(wire: Wire, index: int) -> None:
        await wire.read_request()
        await trio.sleep(4)
        await wire.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        for byte in b"slow!":
            await trio.sleep(4)
            await wire.send(bytes([byte]))
        await wire.read_to_eof()

    server = await raw_server(nursery, trickle)
    async with Client(timeout=Timeouts(read=5)) as client:
        started = trio.current_time()
        with trio.fail_after(BOUND * 2):
            response = await client.get(url(server.port))
        assert await response.read() == b"slow!"
        assert trio.current_time() - started >= 24  # six pauses of 4 s, none fatal


class Upload:
    """An async iterator of ``count`` MiB (a class, not a generator: an
    abandoned generator is the subject of its own test)."""

    def __init__(self, count: int, last: Any = b"") -> None:
        self.left = count
        self.last = last

    def __aiter__(self) -> Upload:
        return self

    async def __anext__(self) -> Any:
        await trio.lowlevel.checkpoint()
        self.left -= 1
        if self.left > 0:
            return b"u" * MiB
        if self.left == 0 and self.last:
            return self.last
        raise StopAsyncIteration


@pytest.mark.parametrize("body", ["bytes", "iterator"])
async def test_write_timeout_when_the_server_never_reads(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    body: str,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:

    async def head_then_deaf(wire: Wire, index: int) -> None:
        await wire.read_head()
        await trio.sleep_forever()

    server = await raw_server(nursery, head_then_deaf)
    content: bytes | Upload = b"u" * (32 * MiB) if body == "bytes" else Upload(256)
    async with Client(timeout=Timeouts(write=5)) as client:
        with trio.fail_after(BOUND), pytest.raises(WriteTimeout) as info:
            await client.put(url(server.port), content=content)
        assert client.statistics().connections == 0
    check_timeout(info.value, WriteTimeout)
    assert isinstance(info.value, trionet.ConnectionClosed)
    assert str(info.value) == "the server accepted no data for 5 s"


async def test_pool_timeout_then_the_freed_connection_serves(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:
    server = await raw_server(nursery, answer_all)
    waited: list[bytes] = []
    finished = trio.Event()

    async with Client(max_connections=1) as client:

        async def wait_for_a_connection() -> None:
            response = await client.get(url(server.port, "/waiter"))
            waited.append(await response.read())
            finished.set()

        with trio.fail_after(BOUND):
            async with client.stream("GET", url(server.port, "/held")) as held:
                assert held.status == 200
                with pytest.raises(PoolTimeout) as info:
                    await client.get(url(server.port, "/second"), timeout=Timeouts(pool=2))
                check_timeout(info.value, PoolTimeout)
                message = "no connection was free within 2 s (1 open, the limit is 1)"
                assert str(info.value) == message
                nursery.start_soon(wait_for_a_connection)
                await trio.testing.wait_all_tasks_blocked()
                assert client.statistics().waiting == 1
            # The held response closed unread: its connection closed, and the
            # waiter got the room.
            await finished.wait()
            assert waited == [b"conn 1: /waiter"]
            response = await client.get(url(server.port, "/after"))
        assert await response.read() == b"conn 1: /after"
        assert client.statistics().waiting == 0
    assert server.methods() == ["GET", "GET", "GET"]  # the one that timed out was never sent


async def test_request_timeout_overrides_the_clients(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:

    async def answer_after_5s(wire: Wire, index: int) -> None:
        while await wire.read_request() is not None:
            await trio.sleep(5)
            await wire.send(reply(b"late"))

    server = await raw_server(nursery, answer_after_5s)
    async with Client(timeout=Timeouts(read=100)) as client:
        with trio.fail_after(BOUND), pytest.raises(ReadTimeout, match="for 2 s"):
            await client.get(url(server.port), timeout=Timeouts(read=2))
    async with Client(timeout=Timeouts(read=2)) as client:
        with trio.fail_after(BOUND):
            assert (await client.get(url(server.port), timeout=Timeouts(read=10))).status == 200
            assert (await client.get(url(server.port), timeout=None)).status == 200
            with pytest.raises(ReadTimeout, match="for 2 s"):
                await client.get(url(server.port))  # the client's own again
    async with Client(timeout=3) as client:  # one number: all four
        with trio.fail_after(BOUND), pytest.raises(ReadTimeout, match="for 3 s"):
            await client.get(url(server.port))


# -- the pool ------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(nursery: trio.Nursery) -> None:
    async def hello(request: Request) -> Response:
        return Response(200, body=request.target.encode())

    server = await start(nursery, hello)
    async with Client() as client:
        with trio.fail_after(BOUND):
            bodies = [await (await client.get(url(server.port, f"/{i}"))).read() for i in range(10)]
        assert bodies == [f"/{i}".encode() for i in range(10)]
        assert server.statistics().accepted == 1
        assert client.statistics() == ClientStatistics(
            connections=1,
            idle_connections=1,
            connections_opened=1,
            connections_reused=9,
            requests=10,
            retries=0,
            waiting=0,
            per_host={f"http://{LOOPBACK}:{server.port}": 1},
        )


async def test_statistics_while_a_response_is_held(nursery: trio.Nursery) -> None:
    server = await raw_server(nursery, answer_all)
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(server.port)) as response:
                stats = client.statistics()
                assert (stats.connections, stats.idle_connections, stats.requests) == (1, 0, 1)
                assert await response.read() == b"conn 0: /"
                # Read to its end: the connection is back in the pool at once.
                assert client.statistics().idle_connections == 1
            assert client.statistics().per_host == {f"http://{LOOPBACK}:{server.port}": 1}


@pytest.mark.parametrize(("expiry", "accepted"), [(2, 2), (4, 1)])
async def test_idle_connections_expire(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    expiry: float,
    accepted: int,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:
    server = await raw_server(nursery, answer_all)
    async with Client(keepalive_expiry=expiry) as client:
        with trio.fail_after(BOUND):
            assert await (await client.get(url(server.port))).read() == b"conn 0: /"
            await trio.sleep(3)
            response = await client.get(url(server.port))
        assert await response.read() == f"conn {accepted - 1}: /".encode()
        assert server.connections == accepted
        assert client.statistics().connections_opened == accepted


async def test_max_keepalive_per_host_keeps_one_of_three(nursery: trio.Nursery) -> None:
    arrived = 0
    all_here = trio.Event()

    async def together(request: Request) -> Response:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_here.set()
        await all_here.wait()
        return Response(200, body=b"ok")

    server = await start(nursery, together)
    bodies: list[bytes] = []
    async with Client(max_keepalive_per_host=1) as client:

        async def get() -> None:
            bodies.append(await (await client.get(url(server.port))).read())

        with trio.fail_after(BOUND):
            async with trio.open_nursery() as requests:
                for _ in range(3):
                    requests.start_soon(get)
        assert bodies == [b"ok"] * 3
        assert server.statistics().accepted == 3
        stats = client.statistics()
        assert (stats.connections, stats.idle_connections, stats.connections_opened) == (1, 1, 3)
        with trio.fail_after(BOUND):
            await client.get(url(server.port))  # on the one kept
        assert server.statistics().accepted == 3


async def test_response_closed_before_its_end_closes_its_connection(
    nursery: trio.Nursery,
) -> None:
    server = await raw_server(nursery, answer_all_big)
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(server.port)) as response:
                async for chunk in response:
                    assert chunk.startswith(b"x")
                    break
            # The rest of the body was not read: the connection cannot serve.
            assert client.statistics().connections == 0
            second = await client.get(url(server.port, "/small"))
        assert await second.read() == b"conn 1: /small"
        assert server.connections == 2


async def answer_all_big(wire: Wire, index: int) -> None:
    """Like :func:`answer_all`, but ``/`` is 4 MiB of ``x``."""
    while (received := await wire.read_request()) is not None:
        if received.target == "/":
            await wire.send(reply(b"x" * (4 * MiB)))
        else:
            await wire.send(reply(f"conn {index}: {received.target}".encode()))


@pytest.mark.parametrize("how", ["break", "one-chunk", "too-large"])
async def test_abandoning_a_body_leaves_nothing_to_the_gc(nursery: trio.Nursery, how: str) -> None:
    server = await raw_server(nursery, answer_all_big)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Client(max_response_size=MiB) as client:
            with trio.fail_after(BOUND):
                if how == "break":
                    async with client.stream("GET", url(server.port)) as response:
                        async for _ in response:
                            break
                elif how == "one-chunk":
                    async with client.stream("GET", url(server.port)) as response:
                        await anext(aiter(response))
                else:
                    with pytest.raises(ResponseTooLarge):
                        await client.get(url(server.port))
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


async def test_an_abandoned_upload_generator_is_closed(
    echo_server: tuple[trionet.Server, list[Received]],
) -> None:
    server, _ = echo_server
    closed: list[bool] = []

    async def body() -> AsyncIterator[Any]:
        try:
            yield b"fine"
            yield "not bytes"
            yield b"never"  # pragma: no cover
        finally:
            closed.append(True)

    async with Client() as client:
        with trio.fail_after(BOUND), pytest.raises(TypeError):
            await client.post(url(server.port), content=body())
        assert closed == [True]


async def test_aclose_closes_idle_connections_and_the_client(nursery: trio.Nursery) -> None:
    eof = trio.Event()

    async def one_then_wait_for_eof(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.send(reply(b"one"))
        assert await wire.read_to_eof() == b""
        eof.set()

    server = await raw_server(nursery, one_then_wait_for_eof)
    client = Client()
    with trio.fail_after(BOUND):
        assert await (await client.get(url(server.port))).read() == b"one"
        assert client.statistics().idle_connections == 1
        await client.aclose()
        await eof.wait()  # the server saw the client's end of stream
        await client.aclose()  # idempotent
    assert client.statistics().connections == 0
    with pytest.raises(trio.ClosedResourceError):
        await client.get(url(server.port))
    with pytest.raises(trio.ClosedResourceError):
        async with client.stream("GET", url(server.port)):
            pass  # pragma: no cover
    assert server.connections == 1


# -- retrying a stale connection -----------------------------------------------------


async def drop_the_second_request(wire: Wire, index: int) -> None:
    """Connection 0 answers one request, reads the next and closes without a
    word (a keep-alive close that crossed the request); the others answer."""
    if index == 0:
        await wire.read_request()
        await wire.send(reply(b"first"))
        await wire.read_request()
        return
    await answer_all(wire, index)


@pytest.mark.parametrize(
    ("method", "content"),
    [("GET", None), ("HEAD", None), ("PUT", b"put body"), ("DELETE", None), ("OPTIONS", None)],
)
async def test_idempotent_request_on_a_stale_connection_is_retried_once(
    nursery: trio.Nursery, method: str, content: bytes | None
) -> None:
    server = await raw_server(nursery, drop_the_second_request)
    async with Client() as client:
        with trio.fail_after(BOUND):
            assert await (await client.get(url(server.port))).read() == b"first"
            response = await client.request(method, url(server.port, "/again"), content=content)
        assert response.status == 200
        if method != "HEAD":
            assert await response.read() == b"conn 1: /again"
        assert client.statistics().retries == 1
        assert server.connections == 2
        assert server.methods() == ["GET", method, method]
        assert server.received[1].body == server.received[2].body == (content or b"")


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_post_and_patch_on_a_stale_connection_are_not_retried(
    nursery: trio.Nursery, method: str
) -> None:
    server = await raw_server(nursery, drop_the_second_request)
    async with Client() as client:
        with trio.fail_after(BOUND):
            assert await (await client.get(url(server.port))).read() == b"first"
            with pytest.raises(ServerDisconnected) as info:
                await client.request(method, url(server.port, "/once"), content=b"act once")
        assert info.value.before_response is True
        assert isinstance(info.value, trionet.ConnectionClosed)
        assert client.statistics().retries == 0
        assert client.statistics().connections == 0
    assert server.connections == 1
    assert server.methods() == ["GET", method]
    assert server.received[1].body == b"act once"


async def test_the_retry_goes_to_a_new_connection(nursery: trio.Nursery) -> None:
    """Two pooled connections, both closed by the server as the next request
    crosses: the one retry must not land on the other stale one."""
    both = trio.Event()
    first_round = 0

    async def two_stale(wire: Wire, index: int) -> None:
        nonlocal first_round
        if index >= 2:
            await answer_all(wire, index)
            return
        await wire.read_request()
        first_round += 1
        if first_round == 2:
            both.set()
        await both.wait()
        await wire.send(reply(b"first"))
        await wire.read_request()  # then close without an answer

    server = await raw_server(nursery, two_stale)
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as requests:
                for _ in range(2):
                    requests.start_soon(client.get, url(server.port))
            assert client.statistics().idle_connections == 2
            response = await client.get(url(server.port, "/again"))
        assert await response.read() == b"conn 2: /again"
        assert client.statistics().retries == 1


async def test_connection_closed_while_idle_is_not_used(nursery: trio.Nursery) -> None:
    closed = trio.Event()

    async def one_then_close(wire: Wire, index: int) -> None:
        if index == 0:
            await wire.read_request()
            await wire.send(reply(b"first"))  # keep-alive, by HTTP/1.1's default
            await wire.stream.aclose()
            closed.set()
            return
        await answer_all(wire, index)

    server = await raw_server(nursery, one_then_close)
    async with Client() as client:
        with trio.fail_after(BOUND):
            assert await (await client.get(url(server.port))).read() == b"first"
            await closed.wait()  # the FIN is in the client's socket now
            response = await client.post(url(server.port, "/next"), content=b"safe")
        assert await response.read() == b"conn 1: /next"
        stats = client.statistics()
        assert (stats.retries, stats.connections_opened, stats.connections_reused) == (0, 2, 0)
    assert server.methods() == ["GET", "POST"]


async def test_close_mid_response_is_never_retried(nursery: trio.Nursery) -> None:
    async def cut_the_second(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.send(reply(b"first"))
        await wire.read_request()
        await wire.send(reply(b"0123456789")[:-5])

    server = await raw_server(nursery, cut_the_second)
    async with Client() as client:
        with trio.fail_after(BOUND):
            assert await (await client.get(url(server.port))).read() == b"first"
            with pytest.raises(ServerDisconnected) as info:
                await client.get(url(server.port))
        assert info.value.before_response is False
        assert client.statistics().retries == 0
    assert server.connections == 1
    assert server.methods() == ["GET", "GET"]


# -- request bodies and header fields ------------------------------------------------


@pytest.fixture
async def echo_server(nursery: trio.Nursery) -> tuple[trionet.Server, list[Received]]:
    """trionet's server, keeping each request (its body read whole)."""
    seen: list[Received] = []

    async def record(request: Request) -> Response:
        body = await request.read()
        seen.append(Received(request.method, request.target, list(request.headers.items()), body))
        return Response(200, body=body)

    return await start(nursery, record, handler_errors="log"), seen


async def gen_body() -> AsyncIterator[bytes]:
    yield b"chunk one,"
    yield b""
    yield bytearray(b" chunk two,")
    yield memoryview(b" end")


async def test_request_bodies(echo_server: tuple[trionet.Server, list[Received]]) -> None:
    server, seen = echo_server
    target = url(server.port)
    async with Client() as client:
        with trio.fail_after(BOUND):
            await client.post(target, content=b"raw bytes")
            await client.post(target, content="héllo")
            await client.post(target, json={"a": [1, 2], "é": None})
            await client.post(target, form={"a": "1 2", "b": "&="})
            await client.post(target, content=gen_body())
            await client.post(target, json=[1], headers={"Content-Type": "application/x+json"})
            await client.post(target)
    raw, text, as_json, form, streamed, typed, empty = seen
    assert (raw.body, raw.header("content-length"), raw.header("transfer-encoding")) == (
        b"raw bytes",
        "9",
        None,
    )
    assert text.body == "héllo".encode()
    assert text.header("content-type") == "text/plain; charset=utf-8"
    assert as_json.body == '{"a":[1,2],"é":null}'.encode()
    assert as_json.header("content-type") == "application/json"
    assert form.body == b"a=1+2&b=%26%3D"
    assert form.header("content-type") == "application/x-www-form-urlencoded"
    assert streamed.body == b"chunk one, chunk two, end"
    assert streamed.header("transfer-encoding") == "chunked"
    assert streamed.header("content-length") is None
    assert typed.header("content-type") == "application/x+json"
    assert (empty.body, empty.header("content-length")) == (b"", "0")


async def test_params_are_added_to_the_query(
    echo_server: tuple[trionet.Server, list[Received]],
) -> None:
    server, seen = echo_server
    async with Client() as client:
        with trio.fail_after(BOUND):
            first = await client.get(url(server.port, "/p"), params={"a": "1 2", "b": [3, "x"]})
            await client.get(url(server.port, "/p?z=0"), params=[("a", "é")])
            await client.get(url(server.port, "/p?z=0"), params={})
    assert [r.target for r in seen] == ["/p?a=1+2&b=3&b=x", "/p?z=0&a=%C3%A9", "/p?z=0"]
    assert first.url == url(server.port, "/p?a=1+2&b=3&b=x")


async def test_wrong_bodies_are_type_errors(
    echo_server: tuple[trionet.Server, list[Received]],
) -> None:
    server, _ = echo_server
    target = url(server.port)

    async with Client() as client:
        with trio.fail_after(BOUND):
            with pytest.raises(TypeError, match="one of content, json and form"):
                await client.post(target, content=b"a", json={"b": 1})
            with pytest.raises(TypeError):
                await client.post(target, content=b"a", form={"b": "1"})
            with pytest.raises(TypeError):
                await client.post(target, content=12345)  # type: ignore[arg-type]
            assert client.statistics().requests == 0  # nothing was sent
            with pytest.raises(TypeError, match="yields bytes, not str"):
                await client.post(target, content=Upload(2, last="not bytes"))
            assert client.statistics().connections == 0  # that connection is not reused
            response = await client.post(target, content=b"after")
        assert await response.read() == b"after"


async def test_a_content_length_the_body_does_not_match_is_a_value_error(
    echo_server: tuple[trionet.Server, list[Received]],
) -> None:
    server, seen = echo_server
    async with Client() as client:
        with trio.fail_after(BOUND):
            for declared in ("5", "2"):
                with pytest.raises(ValueError, match="Content-Length"):
                    await client.post(
                        url(server.port), content=b"abc", headers={"content-length": declared}
                    )
            response = await client.post(url(server.port), content=b"abc")
    assert await response.read() == b"abc"
    assert [received.body for received in seen] == [b"abc"]  # nothing else reached it


async def test_header_fields(echo_server: tuple[trionet.Server, list[Received]]) -> None:
    server, seen = echo_server
    async with Client(headers={"X-Client": "c", "X-Both": "client", "Accept": "text/x"}) as client:
        with trio.fail_after(BOUND):
            await client.get(url(server.port), headers={"x-BOTH": "request"})
            await client.get(url(server.port))
    first, second = seen
    assert first.header("x-client") == "c"
    assert first.header("x-both") == "request"
    assert second.header("x-both") == "client"
    assert first.header("accept") == "text/x"
    user_agent = first.header("user-agent")
    assert user_agent is not None
    assert user_agent.startswith("trionet/")
    assert first.header("host") == f"{LOOPBACK}:{server.port}"
    # What it can decode: the test dependencies include brotli and zstd.
    assert first.header("accept-encoding") == "gzip, deflate, br, zstd"


# -- 100-continue --------------------------------------------------------------------


async def test_expect_continue_with_trionets_server(
    echo_server: tuple[trionet.Server, list[Received]],
) -> None:
    server, seen = echo_server
    # A long continue_timeout: only the server's 100 can let the body go in time.
    async with Client(continue_timeout=1000) as client:
        with trio.fail_after(BOUND):
            response = await client.post(
                url(server.port), content=b"the body", expect_continue=True
            )
    assert (response.status, await response.read()) == (200, b"the body")
    [received] = seen
    assert received.header("expect") == "100-continue"


@pytest.mark.parametrize("status", ["417 Expectation Failed", "401 Unauthorized"])
async def test_expect_continue_final_answer_means_no_body(
    nursery: trio.Nursery, status: str
) -> None:
    rest: list[bytes] = []
    done = trio.Event()

    async def refuse(wire: Wire, index: int) -> None:
        head = await wire.read_head()
        assert b"\r\nexpect: 100-continue\r\n" in head.lower()
        await wire.send(reply(b"no", status))
        rest.append(await wire.read_to_eof())
        done.set()

    server = await raw_server(nursery, refuse)
    async with Client(continue_timeout=1000) as client:
        with trio.fail_after(BOUND):
            response = await client.put(
                url(server.port), content=b"b" * 100_000, expect_continue=True
            )
            assert (response.status, await response.read()) == (int(status[:3]), b"no")
            await done.wait()  # the client closed the connection
        assert client.statistics().connections == 0
    assert rest == [b""]  # not one byte of the body


async def test_expect_continue_ignored_by_the_server(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    trionet_virtual_tcp: VirtualTCPNetwork,
) -> None:
    times: dict[str, float] = {}

    async def ignores_expect(wire: Wire, index: int) -> None:
        times["head"] = trio.current_time()
        received = await wire.read_request()
        times["body"] = trio.current_time()
        assert received is not None
        await wire.send(reply(b"got " + received.body))
        await wire.read_to_eof()

    server = await raw_server(nursery, ignores_expect)
    async with Client(continue_timeout=1) as client:
        with trio.fail_after(BOUND):
            response = await client.post(url(server.port), content=b"data", expect_continue=True)
    assert (response.status, await response.read()) == (200, b"got data")
    assert times["body"] - times["head"] >= 1  # sent once continue_timeout passed


# -- decoding ------------------------------------------------------------------------

TEXT = b"The quick brown fox jumps over the lazy dog. " * 200


def deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "gzip": ("gzip", gzip.compress(TEXT)),
    "x-gzip": ("x-gzip", gzip.compress(TEXT)),
    "deflate-zlib": ("deflate", zlib.compress(TEXT)),
    "deflate-raw": ("deflate", deflate_raw(TEXT)),
    "gzip-twice": ("gzip, gzip", gzip.compress(gzip.compress(TEXT))),
    "identity": ("identity", TEXT),
    "br": ("br", brotli.compress(TEXT)),
    # Two frames: a body may hold several (RFC 8878 section 3.1).
    "zstd": ("zstd", zstd.compress(TEXT[:1000]) + zstd.compress(TEXT[1000:])),
    "br-after-gzip": ("gzip, br", brotli.compress(gzip.compress(TEXT))),
}


@pytest.fixture
async def encoded_server(nursery: trio.Nursery) -> trionet.Server:
    async def encoded(request: Request) -> Response:
        name = request.path.strip("/")
        if name == "unknown":
            return Response(200, {"content-encoding": "x-unknown"}, b"\x8b\x02\x80not really")
        coding, _, fault = name.partition("-")
        if fault == "corrupt":
            return Response(200, {"content-encoding": coding}, b"\x1f\x8b\x08\x00garbage!" * 4)
        if fault == "truncated":
            _, whole = ENCODED[coding]
            return Response(200, {"content-encoding": coding}, whole[:-20])
        coding, body = ENCODED[name]
        return Response(200, {"content-encoding": coding}, body)

    return await start(nursery, encoded)


@pytest.mark.parametrize("name", sorted(ENCODED))
async def test_encoded_bodies_are_decoded(encoded_server: trionet.Server, name: str) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(encoded_server.port, f"/{name}"))
            assert await response.read() == TEXT
            async with client.stream("GET", url(encoded_server.port, f"/{name}")) as streamed:
                assert b"".join([chunk async for chunk in streamed]) == TEXT


@pytest.mark.parametrize("coding", ["deflate-zlib", "deflate-raw", "gzip"])
async def test_decoding_across_one_byte_chunks(nursery: trio.Nursery, coding: str) -> None:
    _, body = ENCODED[coding]

    async def byte_by_byte(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.send(
            f"HTTP/1.1 200 OK\r\nContent-Encoding: {ENCODED[coding][0]}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for byte in body:
            await wire.send(b"1\r\n" + bytes([byte]) + b"\r\n")
            await trio.lowlevel.checkpoint()
        await wire.send(b"0\r\n\r\n")
        await wire.read_to_eof()

    server = await raw_server(nursery, byte_by_byte)
    async with Client() as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(server.port))
    assert await response.read() == TEXT


async def test_unknown_coding_is_passed_through(encoded_server: trionet.Server) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(encoded_server.port, "/unknown"))
    assert await response.read() == b"\x8b\x02\x80not really"
    assert response.headers["content-encoding"] == "x-unknown"


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("fault", ["corrupt", "truncated"])
async def test_bad_encoded_body_is_a_decoding_error(
    encoded_server: trionet.Server, coding: str, fault: str
) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND), pytest.raises(DecodingError) as info:
            await client.get(url(encoded_server.port, f"/{coding}-{fault}"))
    assert isinstance(info.value, RemoteProtocolError)
    assert isinstance(info.value, trionet.ConnectionClosed)
    assert f"the {coding} body" in str(info.value)


@cache
def gzip_bomb(mib: int = 1024) -> bytes:
    """About ``mib`` KB of gzip that inflates to ``mib`` MiB of zeros, built
    without holding them: after a full flush, deflate encodes each further
    MiB of zeros to the same bytes, so one such segment is repeated; the
    trailer carries the CRC and size of the whole."""
    zeros = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)[:-8]  # the last block, without the trailer
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, (mib * MiB) & 0xFFFFFFFF)
    return first + segment * (mib - 1) + end + trailer


def test_the_gzip_bomb_is_what_it_claims() -> None:
    assert gzip.decompress(gzip_bomb(5)) == bytes(5 * MiB)  # the construction is sound
    bomb = gzip_bomb()
    assert len(bomb) < 1.1 * MiB
    # One 64 KiB network read of it inflates to about a thousand times more.
    inflated = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bomb[: 64 * 1024])
    assert len(inflated) > 60 * MiB


@pytest.fixture
async def bomb_server(nursery: trio.Nursery) -> trionet.Server:
    bomb = gzip_bomb()

    async def bomb_handler(request: Request) -> Response:
        return Response(200, {"content-encoding": "gzip"}, bomb)

    return await start(nursery, bomb_handler, handler_errors="log")


async def test_gzip_bomb_read_whole_stops_at_max_response_size(
    bomb_server: trionet.Server,
) -> None:
    async with Client(max_response_size=10 * MiB) as client:
        tracemalloc.start()
        try:
            with trio.fail_after(BOUND), pytest.raises(ResponseTooLarge) as info:
                await client.get(url(bomb_server.port))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert client.statistics().connections == 0
    assert "max_response_size (10485760 bytes)" in str(info.value)
    assert peak < 100 * MiB, f"peak {peak / MiB:.0f} MiB"


async def test_gzip_bomb_read_whole_memory_stays_near_the_limit(
    bomb_server: trionet.Server,
) -> None:
    """Memory while refusing a bomb stays near max_response_size (plus a few
    64 KiB steps), not ~1000 times a network read."""
    async with Client(max_response_size=10 * MiB) as client:
        tracemalloc.start()
        try:
            with trio.fail_after(BOUND), pytest.raises(ResponseTooLarge):
                await client.get(url(bomb_server.port))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 24 * MiB, f"peak {peak / MiB:.0f} MiB"


async def test_gzip_bomb_streamed_in_bounded_chunks(bomb_server: trionet.Server) -> None:
    sizes: list[int] = []
    async with Client(max_response_size=MiB) as client:  # streaming is not bounded by it
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(bomb_server.port)) as response:
                async for chunk in response:
                    assert not chunk.strip(b"\0")
                    sizes.append(len(chunk))
                    if sum(sizes) >= 4 * MiB:
                        break
    assert max(sizes) <= 64 * 1024
    assert sum(sizes) >= 4 * MiB


async def test_gzip_bomb_streamed_memory_stays_small(bomb_server: trionet.Server) -> None:
    """Reading the first MiB of a streamed bomb holds about one step, not the
    ~64 MiB that one 64 KiB network read inflates to."""
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(bomb_server.port)) as response:
                tracemalloc.start()
                try:
                    total = 0
                    async for chunk in response:
                        total += len(chunk)
                        if total >= MiB:
                            break
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
    assert peak < 8 * MiB, f"peak {peak / MiB:.0f} MiB"


# -- the response API ----------------------------------------------------------------


@pytest.fixture
async def api_server(nursery: trio.Nursery) -> trionet.Server:
    async def api(request: Request) -> Response:
        path = request.path
        if path == "/created":
            return Response(
                201,
                [("content-type", "text/plain"), ("x-multi", "a"), ("x-multi", "b")],
                b"made",
            )
        if path == "/latin":
            return Response(
                200, {"content-type": "text/plain; charset=ISO-8859-1"}, "café".encode("latin-1")
            )
        if path == "/json":
            return Response.json({"a": [1, "é"]})
        if path.startswith("/status/"):
            return Response(int(path.rsplit("/", 1)[1]), body=b"ignored for 204 and 304")
        return Response(200, body=b"hello")

    return await start(nursery, api)


async def test_response_attributes(api_server: trionet.Server) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(api_server.port, "/created?x=1"))
    assert (response.status, response.reason, response.http_version) == (201, "Created", "1.1")
    assert response.url == url(api_server.port, "/created?x=1")
    assert response.method == "GET"
    assert response.ok
    assert not response.is_redirect
    assert response.history == []
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers.get_all("X-MULTI") == ["a", "b"]
    assert response.headers["content-length"] == "4"
    assert await response.read() == b"made"
    assert await response.text() == "made"
    assert response.raise_for_status() is response


async def test_raise_for_status(api_server: trionet.Server) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            missing = await client.get(url(api_server.port, "/status/404"))
            broken = await client.get(url(api_server.port, "/status/503"))
    assert not missing.ok
    with pytest.raises(HTTPStatusError) as info:
        missing.raise_for_status()
    assert info.value.response is missing
    assert info.value.status == 404
    assert str(info.value) == f"404 Not Found (client error) for {missing.url}"
    with pytest.raises(HTTPStatusError, match=r"^503 Service Unavailable \(server error\) for "):
        broken.raise_for_status()


async def test_text_json_and_charset(api_server: trionet.Server) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            latin = await client.get(url(api_server.port, "/latin"))
            as_json = await client.get(url(api_server.port, "/json"))
    assert latin.encoding == "ISO-8859-1"
    assert await latin.text() == "café"
    assert await latin.read() == b"caf\xe9"
    assert await as_json.json() == {"a": [1, "é"]}
    assert as_json.encoding == "utf-8"


async def test_a_streamed_body_is_read_once(api_server: trionet.Server) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(api_server.port)) as response:
                assert b"".join([chunk async for chunk in response]) == b"hello"
                with pytest.raises(RuntimeError):
                    async for _ in response:
                        pass  # pragma: no cover
                with pytest.raises(RuntimeError):
                    await response.read()
            read = await client.get(url(api_server.port))
    # A body read whole can be iterated (it is kept) as often as wanted.
    assert [chunk async for chunk in read] == [b"hello"]
    assert [chunk async for chunk in read] == [b"hello"]


async def test_bodiless_responses_keep_the_connection(api_server: trionet.Server) -> None:
    async with Client() as client:
        with trio.fail_after(BOUND):
            head = await client.head(url(api_server.port))
            no_content = await client.get(url(api_server.port, "/status/204"))
            not_modified = await client.get(url(api_server.port, "/status/304"))
            after = await client.get(url(api_server.port))
        assert client.statistics().connections_reused == 3
    assert (head.status, await head.read(), head.headers["content-length"]) == (200, b"", "5")
    assert (no_content.status, await no_content.read()) == (204, b"")
    assert (not_modified.status, await not_modified.read()) == (304, b"")
    assert await after.read() == b"hello"
    assert api_server.statistics().accepted == 1


async def test_http_10_close_delimited_body(nursery: trio.Nursery) -> None:
    async def old_server(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        await trio.sleep(0.01)
        await wire.send(b"the end")

    server = await raw_server(nursery, old_server)
    async with Client() as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(server.port))
            assert (response.http_version, await response.read()) == ("1.0", b"until the end")
            assert client.statistics().connections == 0
            response = await client.get(url(server.port))  # a new connection
        assert await response.read() == b"until the end"
    assert server.connections == 2


# -- misuse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://example.com/",
        "example.com/path",
        "http:///path",
        "http://:80/",
        f"http://{LOOPBACK}:99999/",
        f"http://{LOOPBACK}:port/",
        "",
    ],
)
async def test_bad_urls_are_value_errors(bad: str) -> None:
    async with Client() as client:
        with pytest.raises(ValueError, match="URL"):
            await client.get(bad)
        assert client.statistics().requests == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connections": 0}, "max_connections must be >= 1"),
        ({"max_connections": -1}, "max_connections must be >= 1"),
        ({"max_connections_per_host": 0}, "max_connections_per_host must be >= 1"),
        ({"max_keepalive_per_host": 0}, "max_keepalive_per_host must be >= 1"),
        ({"max_response_size": 0}, "max_response_size must be >= 1"),
        ({"max_header_size": -5}, "max_header_size must be >= 1"),
        ({"max_redirects": -1}, "max_redirects must be >= 0"),
        ({"keepalive_expiry": 0}, "keepalive_expiry must be > 0"),
        ({"keepalive_expiry": -1.0}, "keepalive_expiry must be > 0"),
        ({"keepalive_expiry": math.nan}, "keepalive_expiry must be > 0"),
        ({"continue_timeout": math.nan}, "continue_timeout must be > 0"),
        ({"continue_timeout": 0}, "continue_timeout must be > 0"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"timeout": -1}, "timeout must be > 0"),
        ({"timeout": math.nan}, "timeout must be > 0"),
        ({"base_url": "ftp://example.com/"}, "not an http:// or https:// URL"),
        ({"proxy": "ftp://127.0.0.1:21"}, "ftp:// proxies are not supported"),
    ],
)
def test_bad_limits_are_value_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_connections": 1.5}, {"max_connections": True}, {"timeout": "5"}, {"max_redirects": 2.0}],
)
def test_limits_of_the_wrong_type_are_type_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Client(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"read": 0}, {"connect": -1}, {"write": math.nan}, {"pool": -0.5}]
)
def test_bad_timeouts_are_value_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be > 0 seconds"):
        Timeouts(**kwargs)


def test_timeouts_accept_none() -> None:
    timeouts = Timeouts(connect=None, read=1)
    assert (timeouts.connect, timeouts.read, timeouts.write, timeouts.pool) == (None, 1.0, 30, 10)
    assert Timeouts.of(None) == Timeouts(None, None, None, None)
    assert Timeouts.of(2) == Timeouts(2, 2, 2, 2)


# -- malformed responses -------------------------------------------------------------


def answer_with(data: bytes, then_close: bool = False) -> Behaviour:
    async def behave(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.send(data)
        if not then_close:
            await wire.read_to_eof()

    return behave


@pytest.mark.parametrize(
    "data",
    [
        b"garbage, not HTTP\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\r\n",
        b"HTTP/1.1 2000 Big\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nBad Header Name: x\r\n\r\n",
    ],
    ids=["garbage", "ssh", "status", "two-lengths", "field-name"],
)
async def test_malformed_response_is_a_remote_protocol_error(
    nursery: trio.Nursery, data: bytes
) -> None:
    server = await raw_server(nursery, answer_with(data))
    async with Client() as client:
        with trio.fail_after(BOUND), pytest.raises(RemoteProtocolError) as info:
            await client.get(url(server.port))
        assert client.statistics().connections == 0
    assert type(info.value) is RemoteProtocolError
    assert isinstance(info.value, trionet.ConnectionClosed)
    assert isinstance(info.value, HTTPError)
    assert "not valid HTTP/1.1" in str(info.value)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n",
    ],
    ids=["length-first", "chunked-first"],
)
async def test_response_with_both_length_and_chunked_is_refused_and_not_reused(
    nursery: trio.Nursery, head: bytes
) -> None:
    # RFC 9112 section 6.3: a smuggling shape. The first connection answers
    # with it (a chunked body that also fits the length), then would answer
    # a second request on the same connection if the client kept it.
    async def behave(wire: Wire, index: int) -> None:
        if index == 0:
            await wire.read_request()
            await wire.send(head + b"5\r\nhello\r\n0\r\n\r\n")
        await answer_all(wire, index)

    server = await raw_server(nursery, behave)
    async with Client() as client:
        with trio.fail_after(BOUND):
            with pytest.raises(RemoteProtocolError, match="both Transfer-Encoding and Content"):
                await client.get(url(server.port, "/first"))
            response = await client.get(url(server.port, "/second"))
        assert await response.text() == "conn 1: /second"  # a new connection
    assert server.connections == 2


async def test_half_a_head_then_close_is_server_disconnected(nursery: trio.Nursery) -> None:
    server = await raw_server(
        nursery, answer_with(b"HTTP/1.1 200 OK\r\nContent-Le", then_close=True)
    )
    async with Client() as client:
        with trio.fail_after(BOUND), pytest.raises(ServerDisconnected) as info:
            await client.get(url(server.port))
    assert info.value.before_response is False
    assert server.connections == 1


@pytest.mark.parametrize(
    ("size", "limit"),
    [
        (4 * 1024, 2048),
        (200 * 1024, 64 * 1024),
    ],
    ids=["in-one-read", "over-many-reads"],
)
async def test_response_head_larger_than_max_header_size(
    nursery: trio.Nursery, size: int, limit: int
) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * size + b"\r\nContent-Length: 2\r\n\r\nhi"
    server = await raw_server(nursery, answer_with(head))
    async with Client(max_header_size=limit) as client:
        with trio.fail_after(BOUND), pytest.raises(RemoteProtocolError) as info:
            await client.get(url(server.port))
    assert type(info.value) is RemoteProtocolError


async def test_endless_response_head_does_not_hang(nursery: trio.Nursery) -> None:
    async def endless(wire: Wire, index: int) -> None:
        await wire.read_request()
        await wire.send(b"HTTP/1.1 200 OK\r\n")
        while True:
            await wire.send(b"X-More: and more\r\n" * 100)

    server = await raw_server(nursery, endless)
    async with Client() as client:
        with trio.fail_after(BOUND), pytest.raises(RemoteProtocolError):
            await client.get(url(server.port))


def test_error_hierarchy() -> None:
    assert issubclass(trionet.http.DecodingError, RemoteProtocolError)
    assert issubclass(ServerDisconnected, TransportError)
    assert issubclass(TransportError, trionet.ConnectionClosed)
    assert issubclass(trionet.http.HTTPConnectError, OSError)
    assert issubclass(PoolTimeout, TimeoutError)
    assert not issubclass(PoolTimeout, TransportError)


async def test_endless_informational_responses_do_not_hang(nursery: trio.Nursery) -> None:
    async def endless(wire: Wire, index: int) -> None:
        await wire.read_request()
        while True:
            await wire.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")

    server = await raw_server(nursery, endless)
    async with Client() as client:
        with trio.fail_after(BOUND), pytest.raises(RemoteProtocolError, match=r"1xx"):
            await client.get(url(server.port))


async def test_a_few_informational_responses_are_skipped(nursery: trio.Nursery) -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" * 3
    server = await raw_server(
        nursery, answer_with(hints + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    )
    async with Client() as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(server.port))
    assert (response.status, await response.read()) == (200, b"hi")


# -- lines -----------------------------------------------------------------------------


def test_lines_end_at_lf_crlf_or_cr_even_across_pieces() -> None:
    from trionet.http._client._lines import LineSplitter

    splitter = LineSplitter(max_line_size=100)
    pieces = ["one\r", "\ntwo\rthree\n\nfour\x0cstill four\r\n", "fi", "ve"]
    lines = [line for piece in pieces for line in splitter.feed(piece)]
    assert lines + splitter.finish() == ["one", "two", "three", "", "four\x0cstill four", "five"]
    # A "\r" that ends a piece ends its line at once (a live feed must not
    # wait for the next piece to learn whether "\n" follows).
    assert splitter.feed("six\r") == ["six"]
    assert splitter.feed("\r") == [""]
    assert splitter.feed("\n") == []
    assert splitter.finish() == []


async def test_aiter_lines_gives_decoded_text_lines_as_they_arrive(
    nursery: trio.Nursery,
) -> None:
    # A gzip body in latin-1: two lines go out (flushed), then the server
    # waits until the client has them, which it must before the rest exists.
    both_read = trio.Event()

    async def handler(request: Request) -> Response:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)

        async def body() -> AsyncIterator[bytes]:
            first = "grüße\r\nzweite Zeile\n".encode("latin-1")
            yield compressor.compress(first) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await both_read.wait()
            yield compressor.compress(b"\rlast, without an ending") + compressor.flush()

        headers = {"content-type": "text/plain; charset=latin-1", "content-encoding": "gzip"}
        return Response(200, headers, body())

    server = await start(nursery, handler)
    lines: list[str] = []
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(server.port)) as response:
                async for line in response.aiter_lines():
                    lines.append(line)
                    if len(lines) == 2:
                        both_read.set()
            # A body read whole gives its lines too.
            whole = await client.get(url(server.port, "/again"))
            again = [line async for line in whole.aiter_lines()]
    expected = ["grüße", "zweite Zeile", "", "last, without an ending"]
    assert lines == again == expected


async def test_a_line_longer_than_max_line_size_is_refused(nursery: trio.Nursery) -> None:
    # One endless line: the client gives up at max_line_size, and closes.
    async def handler(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 4096

        return Response(200, {"content-type": "text/plain"}, body())

    server = await start(nursery, handler, handler_errors="log")
    async with Client() as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(server.port)) as response:
                with pytest.raises(ResponseTooLarge, match="longer than 10000 characters"):
                    async for _ in response.aiter_lines(max_line_size=10_000):
                        pass
            assert client.statistics().connections == 0  # not reused: closed
            with pytest.raises(ValueError, match="max_line_size"):
                response.aiter_lines(max_line_size=0)


@cache
def compressed_zeros(coding: str, mib: int = 64) -> bytes:
    zeros = bytes(mib * MiB)
    return brotli.compress(zeros, quality=5) if coding == "br" else zstd.compress(zeros)


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_brotli_and_zstd_bombs_are_decoded_a_bounded_step_at_a_time(
    nursery: trio.Nursery, coding: str
) -> None:
    bomb = compressed_zeros(coding)
    assert len(bomb) < MiB // 4  # 64 MiB of zeros in a few KB

    async def handler(request: Request) -> Response:
        return Response(200, {"content-encoding": coding}, bomb)

    server = await start(nursery, handler, handler_errors="log")
    sizes: list[int] = []
    async with Client(max_response_size=8 * MiB) as client:
        with trio.fail_after(BOUND):
            async with client.stream("GET", url(server.port)) as response:
                async for chunk in response:
                    assert not chunk.strip(b"\0")
                    sizes.append(len(chunk))
                    if sum(sizes) >= 4 * MiB:
                        break
            with pytest.raises(ResponseTooLarge):
                await client.get(url(server.port))
    assert max(sizes) <= 64 * 1024


# -- opt-in retries ----------------------------------------------------------------


def retry_trace(events: list[dict[str, Any]]) -> Callable[[str, dict[str, Any]], None]:
    def trace(step: str, details: dict[str, Any]) -> None:
        if step == "retry":
            events.append(details)

    return trace


async def test_retries_when_the_connection_cannot_be_opened() -> None:
    # Nothing was sent, so even a POST goes again; then the error stands.
    retried: list[dict[str, Any]] = []
    with refusing_port() as port:
        async with Client(
            retries=2, retry_backoff=0.001, trace=retry_trace(retried), trust_env=False
        ) as client:
            with trio.fail_after(BOUND), pytest.raises(trionet.http.HTTPConnectError):
                await client.post(url(port), content=b"x")
        async with Client(trust_env=False, trace=retry_trace(retried)) as never:
            with trio.fail_after(BOUND), pytest.raises(trionet.http.HTTPConnectError):
                await never.get(url(port))  # retries=0: the default
    assert [event["attempt"] for event in retried] == [1, 2]
    assert all(0.0005 <= event["delay"] <= 0.002 for event in retried[:1])


async def test_retries_an_idempotent_request_the_server_dropped_never_a_post(
    nursery: trio.Nursery,
) -> None:
    async def drop_twice(wire: Wire, index: int) -> None:
        while await wire.read_request() is not None:
            if index < 2:
                return  # closed without an answer
            await wire.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = await raw_server(nursery, drop_twice)
    retried: list[dict[str, Any]] = []
    async with Client(retries=3, retry_backoff=0.001, trace=retry_trace(retried)) as client:
        with trio.fail_after(BOUND):
            response = await client.get(url(server.port))
            assert (response.status, await response.read()) == (200, b"ok")
    assert [event["attempt"] for event in retried] == [1, 2]
    assert server.methods() == ["GET", "GET", "GET"]

    dropped = await raw_server(nursery, drop_twice)
    async with Client(retries=3, retry_backoff=0.001) as client:
        with trio.fail_after(BOUND), pytest.raises(ServerDisconnected):
            await client.post(url(dropped.port), content=b"pay once")
    assert dropped.methods() == ["POST"]  # it may have arrived: never twice


async def test_the_retry_budget_bounds_retries_across_requests() -> None:
    # A budget of 0: only the reserve of 10 retries, then none.
    retried: list[dict[str, Any]] = []
    with refusing_port() as port:
        async with Client(
            retries=4, retry_backoff=0.001, retry_budget=0, trace=retry_trace(retried)
        ) as client:
            for _ in range(4):
                with trio.fail_after(BOUND), pytest.raises(trionet.http.HTTPConnectError):
                    await client.get(url(port))
    assert len(retried) == 10
    with pytest.raises(ValueError, match="retries"):
        Client(retries=-1)
    with pytest.raises(ValueError, match="retry_budget"):
        Client(retry_budget=2)
