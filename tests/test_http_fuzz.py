"""trionet.http against malformed and hostile requests.

Property tests (hypothesis) send arbitrary bytes and mutated requests to one
server per test, running in its own thread and trio loop, over blocking
loopback sockets; every answer is parsed with h11 as the client (a parser we
did not write). Whatever the bytes, the client gets well-formed HTTP/1.1
responses or a clean close with nothing sent, never a hang or a reset; the
server then still serves a normal request, lets go of the connection, and
counts no handler error.

Then deterministic cases: the known request-smuggling shapes, each refused
with the connection closed, so that a second request pipelined behind it is
never answered."""

from __future__ import annotations

import errno
import queue
import socket
import string
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h11
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trionet
import trionet.http
from tests._wait import wait_until
from trionet.http import Request, Response

# Every test here runs under each request parser (h11, httptools).
pytestmark = pytest.mark.usefixtures("http_parser")

LOOPBACK = "127.0.0.1"

# Real seconds for one exchange: the server's own limits below are under a
# second, so anything near this is a hang.
EXCHANGE_TIMEOUT = 10.0
STARTUP_TIMEOUT = 20.0

# Short limits, so that an incomplete request is answered (408) or an idle
# connection closed quickly: each example costs at most about a second.
FUZZ_LIMITS: dict[str, Any] = {
    "request_head_timeout": 0.3,
    "body_timeout": 0.3,
    "keepalive_timeout": 0.2,
}

CHECK_REQUEST = b"GET /check HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


# -- reading responses ------------------------------------------------------------


@dataclass
class Parsed:
    statuses: list[int] = field(default_factory=list)  # final responses
    informational: list[int] = field(default_factory=list)
    versions: set[bytes] = field(default_factory=set)
    close: bool = False  # the last response said Connection: close


def parse_responses(raw: bytes, method: str = "GET") -> Parsed:
    """Every response in ``raw`` (a whole connection's worth, up to the
    server's close), each to a ``method`` request. Raises AssertionError when
    ``raw`` is not a sequence of complete, well-formed responses."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(raw)
    client.receive_data(b"")
    parsed = Parsed()
    while True:
        client.send(h11.Request(method=method, target="/", headers=[("host", "test")]))
        client.send(h11.EndOfMessage())
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError as exc:
                raise AssertionError(f"not a well-formed response ({exc}): {raw!r}") from None
            if isinstance(event, h11.InformationalResponse):
                parsed.informational.append(event.status_code)
                parsed.versions.add(bytes(event.http_version))
            elif isinstance(event, h11.Response):
                parsed.statuses.append(event.status_code)
                parsed.versions.add(bytes(event.http_version))
                parsed.close = any(
                    name.lower() == b"connection" and b"close" in value.lower()
                    for name, value in event.headers
                )
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError(f"the connection closed before a response: {raw!r}")
        leftover, _ = client.trailing_data
        if not leftover:
            return parsed
        if client.their_state is not h11.DONE:
            raise AssertionError(f"bytes after a response that closes: {bytes(leftover)!r}")
        client.start_next_cycle()


@dataclass
class Exchanged:
    received: bytes
    reset: bool


# The pause between the two pieces of a split request: long enough that the
# server most likely reads the head alone, so that what follows reaches the
# body reader rather than arriving with the head (nothing depends on it).
SPLIT_PAUSE = 0.02


def exchange_blocking(
    port: int, data: bytes, *, half_close: bool, split: int | None = None
) -> Exchanged:
    """Send ``data`` (in two pieces, cut at ``split``, if given; then our FIN
    if ``half_close``) over a blocking socket; read until the server closes.
    Fails on a stall of EXCHANGE_TIMEOUT."""
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    received = bytearray()
    reset = False
    with socket.create_connection((LOOPBACK, port), timeout=EXCHANGE_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if split is not None:
                sock.sendall(data[:split])
                time.sleep(SPLIT_PAUSE)
                data = data[split:]
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all; read on
        except OSError as exc:
            # Reset already: shutdown() on a connection the server's reset
            # ended says "not connected" (what was received still reads).
            if exc.errno != errno.ENOTCONN:
                raise
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"no close after {EXCHANGE_TIMEOUT} s; received {bytes(received)!r}"
                ) from None
            except ConnectionResetError:
                reset = True
                break
            if not chunk:
                break
            received += chunk
    return Exchanged(bytes(received), reset)


# -- a server in a thread ------------------------------------------------------------


async def fuzz_handler(request: Request) -> Response:
    """Reads the body (so that its framing is exercised), answers with an
    empty body (so that a response parses the same whatever the method)."""
    body = await request.read()
    return Response(200, {"x-body-length": str(len(body))})


class ThreadedServer:
    """``trionet.http.serve`` in its own thread and trio loop, for the length
    of a (synchronous) hypothesis test."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response | None]], **kwargs: Any):
        self._handler = handler
        self._kwargs = {"handler_errors": "log", **kwargs}
        self._ready: queue.Queue[tuple[trionet.Server, trio.lowlevel.TrioToken]] = queue.Queue()
        self._cancel = trio.CancelScope()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="trionet-http-fuzz", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    server = await nursery.start(
                        partial(trionet.http.serve, self._handler, 0, LOOPBACK, **self._kwargs)
                    )
                    self._ready.put((server, trio.lowlevel.current_trio_token()))

        try:
            trio.run(main)
        except BaseException as exc:  # reported by stop()
            self._error = exc

    def start(self) -> None:
        self._thread.start()
        try:
            self.server, self._token = self._ready.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"the server did not start: {self._error!r}") from None

    @property
    def port(self) -> int:
        return self.server.port

    def statistics(self) -> trionet.ServerStatistics:
        return trio.from_thread.run_sync(self.server.statistics, trio_token=self._token)

    def wait_idle(self) -> trionet.ServerStatistics:
        """The statistics once no connection is open; fails after EXCHANGE_TIMEOUT."""
        deadline = time.monotonic() + EXCHANGE_TIMEOUT
        while (stats := self.statistics()).active:
            if time.monotonic() > deadline:
                raise AssertionError(f"connections still open: {stats}")
            time.sleep(0.005)
        return stats

    def stop(self) -> None:
        trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(STARTUP_TIMEOUT)
        assert not self._thread.is_alive(), "the server thread did not end"
        if self._error is not None:
            raise self._error


@contextmanager
def threaded_server(**kwargs: Any) -> Iterator[ThreadedServer]:
    server = ThreadedServer(fuzz_handler, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def check_one(
    server: ThreadedServer, data: bytes, *, half_close: bool, split: int | None = None
) -> None:
    """The properties, for one input."""
    result = exchange_blocking(server.port, data, half_close=half_close, split=split)
    assert not result.reset, f"reset after {result.received!r}"
    if result.received:
        parsed = parse_responses(result.received)
        assert parsed.statuses, result.received
        assert parsed.versions == {b"1.1"}
        for status in parsed.statuses:
            assert 200 <= status < 300 or 400 <= status < 600, parsed
        assert set(parsed.informational) <= {100}, parsed
    # The server still serves, lets go of every connection, and a malformed
    # request was never the handler's fault.
    check = exchange_blocking(server.port, CHECK_REQUEST, half_close=False)
    assert parse_responses(check.received).statuses == [200]
    stats = server.wait_idle()
    assert stats.handler_errors == 0, stats


# -- strategies ------------------------------------------------------------------------

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


def _not_special(method: bytes) -> bool:
    # HEAD answers parse differently (no body); CONNECT is tested on its own.
    return method.upper() not in (b"HEAD", b"CONNECT")


methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]),
    st.text(TCHAR, min_size=1, max_size=12).map(str.encode),
    st.binary(min_size=0, max_size=8),
).filter(_not_special)

targets = st.one_of(
    st.sampled_from(
        [b"/", b"/a/b?c=d&e", b"*", b"http://test/x", b"//x", b"/%00", b"x", b"test:80"]
    ),
    st.text(string.printable, max_size=30).map(str.encode),
    st.binary(max_size=30),
    st.just(b"/" + b"a" * 9000),  # over max_target_length: 414
)

versions = st.one_of(
    st.sampled_from(
        [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.9", b"HTTP/3", b"http/1.1"]
    ),
    st.binary(max_size=10),
)

header_names = st.one_of(
    st.sampled_from(
        [
            b"Host",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Connection",
            b"Expect",
            b"Upgrade",
            b"Trailer",
            b"X-Custom",
        ]
    ),
    st.text(TCHAR, min_size=1, max_size=12).map(str.encode),
    st.binary(max_size=12),
)

header_values = st.one_of(
    st.sampled_from(
        [
            b"test",
            b"0",
            b"5",
            b"  7  ",
            b"1,2",
            b"-1",
            b"99999999999999999999",
            b"chunked",
            b"gzip, chunked",
            b"chunked, identity",
            b"close",
            b"keep-alive",
            b"upgrade",
            b"100-continue",
        ]
    ),
    st.binary(max_size=30),
)

INSERTIONS = [
    b"\r",
    b"\n",
    b"\x00",
    b"\r\n",
    b" ",
    b":",
    b"\t",
    b"\x7f",
    b"\x01",
    b"\r\n\r\n",
    b"\r\n ",
]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The framing headers and the body bytes."""
    kind = draw(st.sampled_from(["none", "length", "chunked", "bad-chunks", "raw"]))
    data = draw(st.binary(max_size=40))
    if kind == "length":
        declared = draw(st.one_of(st.just(len(data)), st.integers(0, 60)))
        return [(b"Content-Length", str(declared).encode())], data
    if kind == "bad-chunks":
        # Chunked framing with sizes that lie, and arbitrary bytes around them.
        pieces = draw(st.lists(st.tuples(st.integers(0, 40), st.binary(max_size=20)), max_size=3))
        body = b"".join(b"%x\r\n%s\r\n" % piece for piece in pieces)
        return [(b"Transfer-Encoding", b"chunked")], body + data
    if kind == "chunked":
        pieces = draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3))
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
        trailer = draw(st.sampled_from([b"", b"X-Trailer: 1\r\n", b"Content-Length: 3\r\n"]))
        return [(b"Transfer-Encoding", b"chunked")], body + b"0\r\n" + trailer + b"\r\n"
    if kind == "raw":
        return [], data
    return [], b""


@st.composite
def valid_ish_requests(draw: st.DrawFn) -> bytes:
    """A request assembled from plausible and arbitrary parts."""
    method = draw(st.one_of(st.just(b"GET"), st.just(b"POST"), methods))
    target = draw(st.one_of(st.just(b"/"), targets))
    version = draw(st.one_of(st.just(b"HTTP/1.1"), versions))
    framing, body = draw(bodies())
    headers = [(b"Host", b"test"), *framing]
    headers += draw(
        st.one_of(st.just([]), st.lists(st.tuples(header_names, header_values), max_size=4))
    )
    if draw(st.booleans()):
        headers = draw(st.permutations(headers))
    head = method + b" " + target + b" " + version + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid-ish request, then a few edits: truncations, inserted control
    characters and line ends, a huge header line, duplicated pieces."""
    data = draw(valid_ish_requests())
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["truncate", "insert", "delete", "duplicate", "huge"]))
        at = draw(st.integers(0, len(data)))
        if op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.sampled_from(INSERTIONS)) + data[at:]
        elif op == "delete":
            end = draw(st.integers(at, min(len(data), at + 8)))
            data = data[:at] + data[end:]
        elif op == "duplicate":
            end = draw(st.integers(at, min(len(data), at + 40)))
            data = data[:end] + data[at:end] + data[end:]
        else:
            line_end = data.find(b"\r\n")
            cut = line_end + 2 if line_end >= 0 else len(data)
            data = data[:cut] + b"X-Huge: " + b"a" * 20_000 + b"\r\n" + data[cut:]
    return data


any_bytes = st.binary(max_size=300).filter(lambda data: _not_special(data[:7].split(b" ")[0]))

FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ThreadedServer]:
    # One server for every example of every property test of this module.
    with threaded_server(**FUZZ_LIMITS) as server:
        yield server


@FUZZ_SETTINGS
@given(data=any_bytes, half_close=st.booleans())
def test_arbitrary_bytes(fuzz_server: ThreadedServer, data: bytes, half_close: bool) -> None:
    check_one(fuzz_server, data, half_close=half_close)


@FUZZ_SETTINGS
@given(data=mutated_requests(), half_close=st.booleans(), split=st.none() | st.floats(0, 1))
def test_mutated_requests(
    fuzz_server: ThreadedServer, data: bytes, half_close: bool, split: float | None
) -> None:
    # Split after the head, most of the time: the rest goes to the body reader.
    cut = None
    if split is not None:
        head_end = data.find(b"\r\n\r\n")
        start = head_end + 4 if head_end >= 0 else 0
        cut = start + int(split * (len(data) - start))
    check_one(fuzz_server, data, half_close=half_close, split=cut)


@FUZZ_SETTINGS
@given(
    framing=bodies(),
    noise=st.sampled_from([b"", *INSERTIONS]),
    at=st.floats(0, 1),
    half_close=st.booleans(),
)
def test_malformed_bodies(
    fuzz_server: ThreadedServer,
    framing: tuple[list[tuple[bytes, bytes]], bytes],
    noise: bytes,
    at: float,
    half_close: bool,
) -> None:
    # A valid head, sent alone; then a body that may lie about its length or
    # its chunk sizes, or carry stray line ends: the handler reading it gets a
    # ProtocolError (400/408/413), never anything it would count as its own bug.
    fields, body = framing
    cut = int(at * len(body))
    body = body[:cut] + noise + body[cut:]
    head = b"POST /body HTTP/1.1\r\nHost: test\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in fields) + b"\r\n"
    check_one(fuzz_server, head + body, half_close=half_close, split=len(head))


@FUZZ_SETTINGS
@given(requests=st.lists(mutated_requests(), min_size=2, max_size=4))
def test_pipelined_mutated_requests(fuzz_server: ThreadedServer, requests: list[bytes]) -> None:
    check_one(fuzz_server, b"".join(requests), half_close=True)


@FUZZ_SETTINGS
# (Only empty lines and then the end is no request: RFC 9112 section 2.2.)
@given(second=st.one_of(mutated_requests(), any_bytes).filter(lambda b: b.strip(b"\r\n")))
def test_request_after_a_kept_alive_one_is_answered(
    fuzz_server: ThreadedServer, second: bytes
) -> None:
    # Whatever follows a complete request on a kept-alive connection is a
    # request too: it gets an answer (an error at worst) before the close.
    first = b"GET /first HTTP/1.1\r\nHost: test\r\n\r\n"
    result = exchange_blocking(fuzz_server.port, first + second, half_close=True)
    parsed = parse_responses(result.received)
    assert len(parsed.statuses) >= 2, result.received


# -- known request-smuggling shapes -----------------------------------------------------

SECOND = b"GET /second HTTP/1.1\r\nHost: test\r\n\r\n"


SMUGGLING: list[Any] = [
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {400},
        id="CL+TE",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n",
        {400},
        id="TE+CL",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        {400},
        id="CL+TE-obs-fold",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        {400},
        id="TE-obs-fold",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        {400, 501},
        id="TE-chunked-identity",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        {400, 501},
        id="TE-identity-chunked",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {400, 501},
        id="TE-twice",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        {400, 501},
        id="TE-xchunked",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        {400},
        id="TE-space-before-colon",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1,2\r\n\r\nab",
        {400},
        id="CL-list",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        {400},
        id="CL-conflicting",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
        {400},
        id="CL-negative",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: +2\r\n\r\nab",
        {400},
        id="CL-plus",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0x2\r\n\r\nab",
        {400},
        id="CL-hex",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999999999999\r\n\r\n",
        {400, 413},
        id="CL-huge",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 999999999999999999999999999\r\n\r\n",
        {400, 413},
        id="CL-too-many-digits",
    ),
    pytest.param(b"GET / HTTP/1.1\nHost: test\n\n", {400}, id="bare-LF"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nX-A: b\nContent-Length: 2\r\n\r\nab",
        {400},
        id="bare-LF-inside-a-field",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nX-A: b\rContent-Length: 2\r\n\r\nab",
        {400},
        id="bare-CR",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost : test\r\n\r\n", {400}, id="space-before-colon"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: test\r\nX-A: b\x00c\r\n\r\n", {400}, id="NUL-in-a-field"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}, id="two-Hosts"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n",
        {400},
        id="chunk-bare-LF",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0x2\r\nab\r\n0\r\n\r\n",
        {400},
        id="chunk-size-0x",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
        {400},
        id="chunk-without-CRLF",
    ),
]


@dataclass
class Recorder:
    targets: list[str] = field(default_factory=list)

    async def __call__(self, request: Request) -> Response:
        self.targets.append(request.target)
        body = await request.read()
        return Response(200, {"x-body-length": str(len(body))}, b"ok")


async def raw_exchange(port: int, data: bytes) -> Exchanged:
    """Send ``data`` and read until the server closes (our side stays open)."""
    received = bytearray()
    reset = False
    with trio.fail_after(EXCHANGE_TIMEOUT):
        async with await trio.open_tcp_stream(LOOPBACK, port) as stream:
            await stream.send_all(data)
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                reset = True
    return Exchanged(bytes(received), reset)


async def start_recorded(nursery: trio.Nursery, **kwargs: Any) -> tuple[trionet.Server, Recorder]:
    recorder = Recorder()
    # A keep-alive shorter than the wait: a connection left open is seen as a
    # second response or a missing Connection: close, not as a slow test.
    kwargs.setdefault("keepalive_timeout", 1.0)
    server = await nursery.start(
        partial(trionet.http.serve, recorder, 0, LOOPBACK, handler_errors="log", **kwargs)
    )
    return server, recorder


@pytest.mark.parametrize(("data", "statuses"), SMUGGLING)
async def test_smuggling_shape_is_refused(
    nursery: trio.Nursery, data: bytes, statuses: set[int]
) -> None:
    server, recorder = await start_recorded(nursery)
    result = await raw_exchange(server.port, data + SECOND)
    assert not result.reset
    parsed = parse_responses(result.received)
    assert len(parsed.statuses) == 1, f"the pipelined request was answered: {result.received!r}"
    assert parsed.statuses[0] in statuses
    assert parsed.close
    assert "/second" not in recorder.targets
    await wait_until(lambda: server.statistics().active == 0)
    assert server.statistics().handler_errors == 0


async def test_http10_chunked_request_closes_the_connection(nursery: trio.Nursery) -> None:
    # RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has
    # faulty framing; the connection must close after it.
    server, recorder = await start_recorded(nursery)
    data = (
        b"POST / HTTP/1.0\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    )
    result = await raw_exchange(server.port, data + SECOND)
    assert not result.reset
    parsed = parse_responses(result.received)
    assert len(parsed.statuses) == 1
    assert parsed.statuses[0] in {200, 400}
    assert "/second" not in recorder.targets


# -- other findings ------------------------------------------------------------------------


async def test_error_response_to_head_has_no_body(nursery: trio.Nursery) -> None:
    server, _ = await start_recorded(nursery, max_body_size=1000)
    data = b"HEAD / HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n"
    result = await raw_exchange(server.port, data)
    parsed = parse_responses(result.received, method="HEAD")
    assert parsed.statuses == [413]


async def test_empty_line_before_request_line_is_ignored(nursery: trio.Nursery) -> None:
    # Some clients end a POST body with an extra CRLF, before their next request.
    server, recorder = await start_recorded(nursery)
    data = (
        b"POST /first HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nab\r\n"
        b"GET /second HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    result = await raw_exchange(server.port, data)
    assert parse_responses(result.received).statuses == [200, 200]
    assert recorder.targets == ["/first", "/second"]


async def test_connect_is_not_a_handler_error(nursery: trio.Nursery) -> None:
    # Proxy scanners send CONNECT to every server; a handler that answers every
    # request with a page must not log a traceback for each.
    server, _ = await start_recorded(nursery)
    result = await raw_exchange(server.port, b"CONNECT test:443 HTTP/1.1\r\nHost: test:443\r\n\r\n")
    parsed = parse_responses(result.received)
    assert len(parsed.statuses) == 1
    await wait_until(lambda: server.statistics().active == 0)
    assert server.statistics().handler_errors == 0


async def test_connect_is_refused_501_with_framing_and_no_handler_call(
    nursery: trio.Nursery,
) -> None:
    # The server is no proxy: it never lets a handler accept CONNECT (whose
    # 2xx answer would have no framing at all, RFC 9110 section 9.3.6), so a
    # CONNECT gets 501, an ordinarily framed answer, and the handler is never
    # called. (This replaces a test that asserted only inside `if status is
    # 2xx`, which never ran.)
    server, recorder = await start_recorded(nursery)
    request = b"CONNECT test:443 HTTP/1.1\r\nHost: test:443\r\n\r\n"
    result = await raw_exchange(server.port, request)
    parsed = parse_responses(result.received)
    assert parsed.statuses == [501]
    head = result.received.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\ncontent-length:" in head
    assert b"\r\nconnection: close" in head
    assert recorder.targets == []


async def test_partial_pipelined_request_gets_408(nursery: trio.Nursery) -> None:
    server, recorder = await start_recorded(
        nursery, keepalive_timeout=0.3, request_head_timeout=1.0
    )
    data = b"GET /a HTTP/1.1\r\nHost: test\r\n\r\nGET /b HTT"
    result = await raw_exchange(server.port, data)
    assert parse_responses(result.received).statuses == [200, 408]
    assert recorder.targets == ["/a"]


@pytest.mark.parametrize(
    ("second", "status"),
    [
        pytest.param(
            b"POST /b HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n", 413, id="413"
        ),
        pytest.param(
            b"GET /b HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
            id="431",
        ),
        pytest.param(b"GET /" + b"b" * 9000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414, id="414"),
        pytest.param(b"GET /b HTTP/1.1\r\n\r\n", 400, id="400-no-Host"),
        pytest.param(b"GET /b HTTP/2.0\r\nHost: test\r\n\r\n", 505, id="505"),
    ],
)
async def test_error_on_a_kept_alive_connection_is_answered(
    nursery: trio.Nursery, second: bytes, status: int
) -> None:
    server, recorder = await start_recorded(nursery, max_body_size=1000)
    first = b"GET /a HTTP/1.1\r\nHost: test\r\n\r\n"
    result = await raw_exchange(server.port, first + second)
    assert not result.reset
    assert parse_responses(result.received).statuses == [200, status]
    assert recorder.targets == ["/a"]
